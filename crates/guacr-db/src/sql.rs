//! A small SQL lexer: enough to tell where a statement ends (`;` outside
//! quotes, identifiers, comments and dollar quotes) so the console can collect
//! multi-line statements and split several statements typed on one line.
//! It never interprets the SQL otherwise: what a statement may do is the
//! database's business (read-only is enforced by the server).

/// The SQL dialect, for quoting rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    SqlServer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Normal,
    Single,
    Double,
    Backtick,
    Bracket,
    LineComment,
    Block(u32),
    Dollar(String),
}

/// Splits the complete statements (each ended by `;`) out of `buf`.
///
/// Returns the statements (trimmed, without the `;`, empty ones dropped) and
/// the unfinished rest. For SQL Server a line holding only `GO` also ends a
/// batch.
pub fn split_statements(buf: &str, dialect: Dialect) -> (Vec<String>, String) {
    let mut out = Vec::new();
    let mut state = State::Normal;
    let mut start = 0usize;
    let chars: Vec<(usize, char)> = buf.char_indices().collect();
    let mut i = 0usize;
    let push = |out: &mut Vec<String>, s: &str| {
        let s = s.trim();
        if !s.is_empty() {
            out.push(s.to_owned());
        }
    };
    while let Some(&(pos, c)) = chars.get(i) {
        let next = chars.get(i + 1).map(|&(_, c)| c);
        match &state {
            State::Normal => match c {
                ';' => {
                    push(&mut out, &buf[start..pos]);
                    start = pos + 1;
                }
                '\'' => state = State::Single,
                '"' => state = State::Double,
                '`' if dialect == Dialect::MySql => state = State::Backtick,
                '[' if dialect == Dialect::SqlServer => state = State::Bracket,
                '-' if next == Some('-') => {
                    state = State::LineComment;
                    i += 1;
                }
                '#' if dialect == Dialect::MySql => state = State::LineComment,
                '/' if next == Some('*') => {
                    state = State::Block(1);
                    i += 1;
                }
                '$' if dialect == Dialect::Postgres => {
                    // $tag$ … $tag$ (tag: identifier chars, possibly empty).
                    let prev_ident = i > 0
                        && chars
                            .get(i - 1)
                            .is_some_and(|&(_, p)| p.is_alphanumeric() || p == '_');
                    if !prev_ident {
                        let mut j = i + 1;
                        let mut tag = String::new();
                        while let Some(&(_, t)) = chars.get(j) {
                            if t == '$' {
                                break;
                            }
                            if !(t.is_alphanumeric() || t == '_') {
                                break;
                            }
                            tag.push(t);
                            j += 1;
                        }
                        if chars.get(j).is_some_and(|&(_, t)| t == '$')
                            && !tag.chars().next().is_some_and(|t| t.is_ascii_digit())
                        {
                            state = State::Dollar(tag);
                            i = j;
                        }
                    }
                }
                '\n' if dialect == Dialect::SqlServer => {
                    // A line holding only GO ends the batch.
                    let line_start = buf[..pos].rfind('\n').map_or(0, |p| p + 1).max(start);
                    let line = &buf[line_start..pos];
                    if line.trim().eq_ignore_ascii_case("go") {
                        push(&mut out, &buf[start..line_start]);
                        start = pos + 1;
                    }
                }
                _ => {}
            },
            State::Single => {
                if c == '\\' && dialect == Dialect::MySql {
                    i += 1;
                } else if c == '\'' {
                    if next == Some('\'') {
                        i += 1;
                    } else {
                        state = State::Normal;
                    }
                }
            }
            State::Double => {
                if c == '\\' && dialect == Dialect::MySql {
                    i += 1;
                } else if c == '"' {
                    if next == Some('"') {
                        i += 1;
                    } else {
                        state = State::Normal;
                    }
                }
            }
            State::Backtick => {
                if c == '`' {
                    state = State::Normal;
                }
            }
            State::Bracket => {
                if c == ']' {
                    state = State::Normal;
                }
            }
            State::LineComment => {
                if c == '\n' {
                    state = State::Normal;
                }
            }
            State::Block(depth) => {
                let depth = *depth;
                if c == '*' && next == Some('/') {
                    i += 1;
                    state = if depth <= 1 {
                        State::Normal
                    } else {
                        State::Block(depth - 1)
                    };
                } else if c == '/' && next == Some('*') && dialect == Dialect::Postgres {
                    i += 1;
                    state = State::Block(depth + 1);
                }
            }
            State::Dollar(tag) => {
                if c == '$' {
                    let close: String = format!("{tag}$");
                    if buf[pos + 1..].starts_with(&close) {
                        i += close.chars().count();
                        state = State::Normal;
                    }
                }
            }
        }
        i += 1;
    }
    let rest = &buf[start.min(buf.len())..];
    // A rest of only whitespace and comments is nothing to wait for.
    let rest = if rest.trim().is_empty() { "" } else { rest };
    (out, rest.to_owned())
}

/// The first keyword of a statement, upper-cased (`SELECT`, `CREATE`…).
pub fn first_keyword(stmt: &str) -> String {
    let mut s = stmt.trim_start();
    // Skip leading comments.
    loop {
        if let Some(r) = s.strip_prefix("--") {
            s = r.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(r) = s.strip_prefix("/*") {
            s = r.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Replaces password literals (`PASSWORD '…'`, `IDENTIFIED BY '…'`) with
/// `'***'` so statements can be logged without the secrets they carry.
pub fn redact(stmt: &str) -> String {
    use std::sync::OnceLock;
    static RE: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"(?i)((?:password|identified\s+by|identified\s+with\s+\S+\s+(?:by|as)|secret)\s*(?:=\s*)?(?:n|e)?)'(?:[^']|'')*'",
        )
        .ok()
    });
    match re {
        Some(re) => re.replace_all(stmt, "$1'***'").into_owned(),
        None => stmt.to_owned(),
    }
}

/// SQL keywords offered by completion.
pub const KEYWORDS: &[&str] = &[
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASE",
    "COMMIT",
    "COUNT",
    "CREATE",
    "CROSS",
    "DATABASE",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DISTINCT",
    "DROP",
    "ELSE",
    "END",
    "EXISTS",
    "EXPLAIN",
    "FALSE",
    "FROM",
    "FULL",
    "GRANT",
    "GROUP",
    "HAVING",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTEGER",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "NOT",
    "NULL",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "PRIMARY",
    "REFERENCES",
    "RETURNING",
    "REVOKE",
    "RIGHT",
    "ROLLBACK",
    "SCHEMA",
    "SELECT",
    "SET",
    "SHOW",
    "TABLE",
    "TABLES",
    "TEXT",
    "THEN",
    "TRUE",
    "TRUNCATE",
    "UNION",
    "UNIQUE",
    "UPDATE",
    "USE",
    "USING",
    "VALUES",
    "VARCHAR",
    "VIEW",
    "WHEN",
    "WHERE",
    "WITH",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str, d: Dialect) -> (Vec<String>, String) {
        split_statements(s, d)
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let (s, rest) = split("select 1; select ';' ; -- a;b\nselect 2", Dialect::Postgres);
        assert_eq!(s, vec!["select 1", "select ';'"]);
        assert_eq!(rest, " -- a;b\nselect 2");
        let (s, rest) = split("select \"a;b\" from t;", Dialect::Postgres);
        assert_eq!(s, vec!["select \"a;b\" from t"]);
        assert_eq!(rest, "");
        let (s, _) = split("select /* ; /* nested ; */ ; */ 1;", Dialect::Postgres);
        assert_eq!(s, vec!["select /* ; /* nested ; */ ; */ 1"]);
    }

    #[test]
    fn multi_line_statement_waits_for_semicolon() {
        let (s, rest) = split("select *\nfrom t\nwhere a = 'x;\n", Dialect::Postgres);
        assert!(s.is_empty());
        assert_eq!(rest, "select *\nfrom t\nwhere a = 'x;\n");
        let (s, rest) = split("select *\nfrom t\nwhere a = 'x;\n';", Dialect::Postgres);
        assert_eq!(s.len(), 1);
        assert_eq!(rest, "");
    }

    #[test]
    fn dollar_quotes_and_mysql_quoting() {
        let body =
            "create function f() returns int as $fn$ begin; return 1; end $fn$ language plpgsql;";
        let (s, rest) = split(body, Dialect::Postgres);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(rest, "");
        let (s, _) = split("select $$a;b$$, $1;", Dialect::Postgres);
        assert_eq!(s, vec!["select $$a;b$$, $1"]);
        let (s, _) = split("select `a;b`, 'it\\'s;' # c;\n;", Dialect::MySql);
        assert_eq!(s, vec!["select `a;b`, 'it\\'s;' # c;"]);
        let (s, _) = split("select 'it''s;';", Dialect::Postgres);
        assert_eq!(s, vec!["select 'it''s;'"]);
    }

    #[test]
    fn sqlserver_go_ends_a_batch() {
        let (s, rest) = split("select [a;b]\nGO\nselect 2\n", Dialect::SqlServer);
        assert_eq!(s, vec!["select [a;b]"]);
        assert_eq!(rest, "select 2\n");
    }

    #[test]
    fn unterminated_input_never_panics() {
        for input in [
            "'",
            "\"",
            "$",
            "$a",
            "$a$",
            "/*",
            "--",
            "`",
            "[",
            "\\",
            "é;ü'",
            "$é$x$é$;",
        ] {
            for d in [Dialect::Postgres, Dialect::MySql, Dialect::SqlServer] {
                let _ = split(input, d);
            }
        }
    }

    #[test]
    fn keywords_and_redaction() {
        assert_eq!(first_keyword("  -- hi\n /* x */ select 1"), "SELECT");
        assert_eq!(first_keyword("\\dt"), "");
        let r = redact("ALTER USER bob WITH PASSWORD 'hunter2'");
        assert!(!r.contains("hunter2"), "{r}");
        let r = redact("create user 'a'@'%' identified by 's3cret'");
        assert!(!r.contains("s3cret"), "{r}");
        assert_eq!(redact("select 'password'"), "select 'password'");
    }
}
