//! Tab completion from the live schema: keywords, schemas, tables and columns.

use std::collections::{BTreeMap, BTreeSet};

use crate::sql::KEYWORDS;

/// Most names loaded into the cache (huge catalogs are cut).
pub const MAX_NAMES: usize = 50_000;

/// Names known in the database, loaded at connect and after DDL.
#[derive(Debug, Clone, Default)]
pub struct SchemaCache {
    pub schemas: BTreeSet<String>,
    /// table name → (schema, columns in order)
    pub tables: BTreeMap<String, (String, Vec<String>)>,
    pub loaded: bool,
}

impl SchemaCache {
    /// Adds one (schema, table, column) triple; `column` may be empty.
    pub fn add(&mut self, schema: &str, table: &str, column: &str) {
        if self.tables.len() >= MAX_NAMES {
            return;
        }
        if !schema.is_empty() {
            self.schemas.insert(schema.to_owned());
        }
        if table.is_empty() {
            return;
        }
        let entry = self
            .tables
            .entry(table.to_owned())
            .or_insert_with(|| (schema.to_owned(), Vec::new()));
        if !column.is_empty() && !entry.1.iter().any(|c| c == column) && entry.1.len() < 4096 {
            entry.1.push(column.to_owned());
        }
    }
}

/// The result of a completion request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Characters (not bytes) of the word being completed, left of the cursor.
    pub word_len: usize,
    /// The text replacing that word, if it can be extended.
    pub replacement: Option<String>,
    /// All candidates (for listing when ambiguous).
    pub candidates: Vec<String>,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || c == '.'
}

fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.'))
        .filter(|w| !w.is_empty())
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Completes the word left of the cursor.
///
/// `statement` is the text of the statement so far (earlier lines and this
/// line up to the cursor): tables named anywhere in it contribute their columns.
pub fn complete(statement: &str, cache: &SchemaCache) -> Completion {
    let word: String = {
        let rev: Vec<char> = statement
            .chars()
            .rev()
            .take_while(|&c| is_word_char(c))
            .collect();
        rev.into_iter().rev().collect()
    };
    let word_len = word.chars().count();
    let mut cands: BTreeSet<String> = BTreeSet::new();
    let (qualifier, partial) = match word.rsplit_once('.') {
        Some((q, p)) => (Some(q), p),
        None => (None, word.as_str()),
    };
    match qualifier {
        Some(q) => {
            let q = q.rsplit('.').next().unwrap_or(q);
            // schema.table
            for (t, (s, _)) in &cache.tables {
                if s.eq_ignore_ascii_case(q) && starts_with_ci(t, partial) {
                    cands.insert(format!("{q}.{t}"));
                }
            }
            // table.column
            let table = cache
                .tables
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(q))
                .map(|(_, v)| v);
            if let Some((_, cols)) = table {
                for c in cols {
                    if starts_with_ci(c, partial) {
                        cands.insert(format!("{q}.{c}"));
                    }
                }
            }
        }
        None => {
            let lower = !partial.is_empty() && partial.chars().all(|c| !c.is_uppercase());
            for k in KEYWORDS {
                if starts_with_ci(k, partial) {
                    cands.insert(if lower {
                        k.to_ascii_lowercase()
                    } else {
                        (*k).to_owned()
                    });
                }
            }
            for s in &cache.schemas {
                if starts_with_ci(s, partial) {
                    cands.insert(s.clone());
                }
            }
            for t in cache.tables.keys() {
                if starts_with_ci(t, partial) {
                    cands.insert(t.clone());
                }
            }
            // Columns of the tables named in the statement; with none named,
            // of every table (small catalogs only).
            let named: Vec<&(String, Vec<String>)> = identifiers(statement)
                .filter_map(|w| {
                    let w = w.rsplit('.').next().unwrap_or(w);
                    cache
                        .tables
                        .iter()
                        .find(|(t, _)| t.eq_ignore_ascii_case(w))
                        .map(|(_, v)| v)
                })
                .collect();
            let total_cols: usize = cache.tables.values().map(|(_, c)| c.len()).sum();
            let sources: Vec<&(String, Vec<String>)> = if !named.is_empty() {
                named
            } else if total_cols <= 5000 && !partial.is_empty() {
                cache.tables.values().collect()
            } else {
                Vec::new()
            };
            for (_, cols) in sources {
                for c in cols {
                    if starts_with_ci(c, partial) {
                        cands.insert(c.clone());
                    }
                }
            }
        }
    }
    let candidates: Vec<String> = cands.into_iter().collect();
    let replacement = match candidates.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [first, rest @ ..] => {
            // Longest common prefix (case-insensitive), in the first's spelling.
            let mut n = first.len();
            for c in rest {
                let common = first
                    .char_indices()
                    .zip(c.chars())
                    .take_while(|((_, a), b)| a.eq_ignore_ascii_case(b))
                    .last()
                    .map_or(0, |((i, a), _)| i + a.len_utf8());
                n = n.min(common);
            }
            let prefix = first.get(..n).unwrap_or("");
            (prefix.chars().count() > word_len).then(|| prefix.to_owned())
        }
    };
    Completion {
        word_len,
        replacement,
        candidates,
    }
}

/// Lays candidates out in columns for a terminal `cols` wide (VT text, CRLF).
pub fn list(candidates: &[String], cols: usize, max: usize) -> String {
    let shown = &candidates[..candidates.len().min(max)];
    let w = shown.iter().map(|c| c.chars().count()).max().unwrap_or(0) + 2;
    let per_line = (cols / w.max(1)).max(1);
    let mut out = String::new();
    for (i, c) in shown.iter().enumerate() {
        out.push_str(c);
        if (i + 1) % per_line == 0 || i + 1 == shown.len() {
            out.push_str("\r\n");
        } else {
            out.extend(std::iter::repeat_n(' ', w - c.chars().count()));
        }
    }
    if candidates.len() > shown.len() {
        out.push_str(&format!(
            "… and {} more\r\n",
            candidates.len() - shown.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> SchemaCache {
        let mut c = SchemaCache::default();
        for col in ["id", "name", "created_at"] {
            c.add("public", "guacr_people", col);
        }
        c.add("public", "guacr_pets", "owner_id");
        c.add("audit", "events", "event_id");
        c
    }

    #[test]
    fn completes_tables_keywords_and_schemas() {
        let c = cache();
        let r = complete("SELECT * FROM guacr_pe", &c);
        assert_eq!(r.word_len, 8);
        assert_eq!(r.candidates, vec!["guacr_people", "guacr_pets"]);
        assert_eq!(r.replacement, None, "no common extension beyond guacr_pe");
        let r = complete("SELECT * FROM guacr_peo", &c);
        assert_eq!(r.replacement.as_deref(), Some("guacr_people"));
        let r = complete("sel", &c);
        assert_eq!(r.replacement.as_deref(), Some("select"));
        let r = complete("SEL", &c);
        assert_eq!(r.replacement.as_deref(), Some("SELECT"));
        let r = complete("select * from aud", &c);
        assert_eq!(r.replacement.as_deref(), Some("audit"));
        let r = complete("select * from audit.", &c);
        assert_eq!(r.replacement.as_deref(), Some("audit.events"));
    }

    #[test]
    fn completes_columns_of_named_tables() {
        let c = cache();
        let r = complete("select guacr_people.", &c);
        assert_eq!(
            r.candidates,
            vec![
                "guacr_people.created_at",
                "guacr_people.id",
                "guacr_people.name"
            ]
        );
        // Columns of the table named in the statement (a multi-line one too).
        let r = complete("select * from guacr_people\nwhere na", &c);
        assert_eq!(r.replacement.as_deref(), Some("name"));
        let r = complete("select * from guacr_pets where own", &c);
        assert_eq!(r.replacement.as_deref(), Some("owner_id"));
        // Nothing named: every table's columns (small catalog).
        let r = complete("select created", &c);
        assert_eq!(r.replacement.as_deref(), Some("created_at"));
        let r = complete("select zzz", &c);
        assert!(r.candidates.is_empty());
        assert_eq!(r.replacement, None);
    }

    #[test]
    fn listing_in_columns() {
        let names: Vec<String> = ["a", "bb", "ccc", "dddd"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = list(&names, 14, 100);
        assert_eq!(s, "a     bb\r\nccc   dddd\r\n");
        let s = list(&names, 80, 2);
        assert!(s.ends_with("… and 2 more\r\n"), "{s}");
    }
}
