//! The SQL console: a line editor, statement collection, result paging and
//! export, running as the "remote side" of the shared terminal driver. It
//! reads what the terminal sends for keys and answers with VT output, like
//! a remote shell would, so recordings and typescripts see everything.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use guacr_console::{UpstreamCommand, UpstreamEvent, UpstreamHandle};
use guacr_protocol::Status;
use guacr_session::SessionError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backend::{Connection, Fetch, Kind, Request, query_all};
use crate::complete::{SchemaCache, complete, list};
use crate::editor::{EditEvent, LineEditor};
use crate::sql::{first_keyword, redact, split_statements};
use crate::table::{Layout, Row, csv_record};

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Rows waiting to be drawn before fetching pauses (the driver's channel
/// then fills and the server connection is read no further).
const QUEUE_MAX: usize = 512;
/// Blob size of exported files (base64 of it fits guacd's 8 KiB limit).
const EXPORT_CHUNK: usize = 6048;

/// Where exported files go (Guacamole `file` streams to the users).
pub trait FileSink: Send + Sync {
    /// Starts a file; returns its stream index.
    fn open(&self, name: &str, mimetype: &str) -> i32;
    fn blob(&self, stream: i32, data: &[u8]);
    fn end(&self, stream: i32);
    /// Waits until the users have taken in what was sent (flow control).
    fn pace(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

/// Console settings from the connection parameters.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    pub kind: Kind,
    pub connection_id: String,
    /// The Guacamole user (for the audit log).
    pub user: String,
    pub db_user: String,
    pub read_only: bool,
    /// 0: unlimited.
    pub max_rows: u64,
    pub query_timeout: Option<Duration>,
    pub allow_export: bool,
    pub cols: u16,
    pub rows: u16,
    /// Most CSV bytes kept of the last result for `\export`.
    pub export_limit: usize,
    /// How to connect again after a cancel that closed the connection (SQL Server).
    pub reconnect: Option<crate::backend::ConnectSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    User,
    Quit,
    MaxRows,
    Timeout,
}

enum Item {
    F(Fetch),
    Error(String),
}

/// The last result, as CSV, for `\export`.
#[derive(Default)]
struct LastResult {
    csv: Vec<u8>,
    rows: u64,
    truncated: bool,
}

#[derive(Default)]
struct Exec {
    layout: Option<Layout>,
    header_printed: bool,
    queue: VecDeque<Item>,
    budget: usize,
    paused: bool,
    paused_at: Option<Instant>,
    finished: bool,
    discard: bool,
    cancelled: Option<CancelReason>,
    error: bool,
    fetched: u64,
    affected: u64,
    record: u64,
    sets: u32,
    export: Option<(i32, Vec<u8>)>,
}

pub struct Console {
    cfg: ConsoleConfig,
    conn: Connection,
    events: mpsc::Sender<UpstreamEvent>,
    commands: mpsc::UnboundedReceiver<UpstreamCommand>,
    sink: Arc<dyn FileSink>,
    editor: LineEditor,
    stmt: String,
    pending: VecDeque<u8>,
    expanded: bool,
    cache: SchemaCache,
    cache_stale: bool,
    last: Option<LastResult>,
    out: Vec<u8>,
    db_name: String,
    product: String,
    cancel_task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    gone: bool,
    reconnect: bool,
}

enum Flow {
    Continue,
    Quit,
}

type Res<T> = Result<T, SessionError>;

impl Console {
    pub fn new(
        cfg: ConsoleConfig,
        conn: Connection,
        io: UpstreamHandle,
        sink: Arc<dyn FileSink>,
    ) -> Self {
        let editor = LineEditor::new(cfg.cols);
        Console {
            product: cfg.kind.product().to_owned(),
            cfg,
            conn,
            events: io.events,
            commands: io.commands,
            sink,
            editor,
            stmt: String::new(),
            pending: VecDeque::new(),
            expanded: false,
            cache: SchemaCache::default(),
            cache_stale: true,
            last: None,
            out: Vec::with_capacity(16 * 1024),
            db_name: String::new(),
            cancel_task: None,
            gone: false,
            reconnect: false,
        }
    }

    /// Runs until `\q`, the users leave or the connection is lost; then
    /// tells the terminal driver how the session ends.
    pub async fn run(mut self) {
        let result = self.main().await;
        let reason = match result {
            Ok(()) => None,
            Err(e) => {
                let msg = format!("\r\n{RED}{}{RESET}\r\n", e.message);
                self.out.extend_from_slice(msg.as_bytes());
                Some(e)
            }
        };
        let _ = self.flush().await;
        let _ = self.events.send(UpstreamEvent::Closed(reason)).await;
    }

    fn write(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn line(&mut self, color: &str, s: &str) {
        let s = s.replace('\n', "\r\n");
        if color.is_empty() {
            self.write(&s);
        } else {
            self.write(color);
            self.write(&s);
            self.write(RESET);
        }
        self.write("\r\n");
    }

    async fn flush(&mut self) -> Res<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::take(&mut self.out));
        self.out = Vec::with_capacity(16 * 1024);
        if self.events.send(UpstreamEvent::Data(data)).await.is_err() {
            self.gone = true;
        }
        Ok(())
    }

    fn prompt(&mut self) {
        let db = if self.db_name.is_empty() {
            "(none)".to_owned()
        } else {
            self.db_name.clone()
        };
        let p = match (self.cfg.kind, self.stmt.is_empty()) {
            (Kind::Postgres, true) => format!("{db}=> "),
            (Kind::Postgres, false) => format!("{db}-> "),
            (_, true) => format!("{} [{db}]> ", self.product),
            (_, false) => format!("{}-> ", " ".repeat(self.product.len() + db.len() + 2)),
        };
        self.editor.start(&p, &mut self.out);
    }

    async fn main(&mut self) -> Res<()> {
        self.banner().await?;
        self.load_schema().await;
        self.prompt();
        loop {
            while let Some(b) = self.pending.pop_front() {
                if !self.editor.is_active() {
                    self.prompt();
                }
                if let Some(ev) = self.editor.feed(b, &mut self.out) {
                    match self.event(ev).await? {
                        Flow::Continue => {}
                        Flow::Quit => return Ok(()),
                    }
                    if self.gone {
                        return Ok(());
                    }
                }
            }
            if !self.editor.is_active() {
                self.prompt();
            }
            self.flush().await?;
            if self.gone {
                return Ok(());
            }
            match self.commands.recv().await {
                Some(UpstreamCommand::Write(b)) => self.pending.extend(b.iter().copied()),
                Some(UpstreamCommand::Resize { cols, rows, .. }) => self.resize(cols, rows),
                None => return Ok(()),
            }
        }
    }

    fn resize(&mut self, cols: u16, rows: u16) {
        self.cfg.cols = cols.max(1);
        self.cfg.rows = rows.max(3);
        self.editor.set_cols(cols);
    }

    async fn banner(&mut self) -> Res<()> {
        let sql = match self.cfg.kind {
            Kind::Postgres => "SELECT current_database(), current_setting('server_version')",
            Kind::MySql => "SELECT DATABASE(), VERSION()",
            Kind::SqlServer => {
                "SELECT DB_NAME(), CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128))"
            }
        };
        let rows = query_all(&self.conn, sql)
            .await
            .map_err(|e| SessionError::new(Status::UpstreamError, e.message))?;
        let first = rows.into_iter().next().unwrap_or_default();
        let mut it = first.into_iter();
        self.db_name = it.next().flatten().unwrap_or_default();
        let version = it.next().flatten().unwrap_or_default();
        if self.cfg.kind == Kind::MySql && version.contains("MariaDB") {
            self.product = "MariaDB".into();
        }
        let ro = if self.cfg.read_only {
            format!(" {YELLOW}(read-only){RESET}")
        } else {
            String::new()
        };
        let text = format!(
            "guacr SQL console: {} {} as {}{ro}\r\nType \\? for help, \\q to quit.\r\n\r\n",
            self.product, version, self.cfg.db_user
        );
        self.write(&text);
        Ok(())
    }

    async fn load_schema(&mut self) {
        let sql = match self.cfg.kind {
            Kind::Postgres => {
                "SELECT n.nspname, c.relname, a.attname FROM pg_namespace n \
                 LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r','v','m','p','f') \
                 LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
                 ORDER BY 1, 2, a.attnum LIMIT 50000"
            }
            Kind::MySql => {
                "SELECT SCHEMA_NAME, '', '' FROM information_schema.SCHEMATA UNION ALL \
                 (SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION LIMIT 50000)"
            }
            Kind::SqlServer => {
                "SELECT TOP 50000 TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
            }
        };
        match query_all(&self.conn, sql).await {
            Ok(rows) => {
                let mut cache = SchemaCache::default();
                for r in rows {
                    let get = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                    cache.add(&get(0), &get(1), &get(2));
                }
                cache.loaded = true;
                self.cache = cache;
                self.cache_stale = false;
            }
            Err(e) => tracing::debug!("schema for completion not loaded: {}", e.message),
        }
    }

    async fn event(&mut self, ev: EditEvent) -> Res<Flow> {
        match ev {
            EditEvent::Submit(line) => self.submit(line).await,
            EditEvent::Interrupt => {
                self.stmt.clear();
                Ok(Flow::Continue)
            }
            EditEvent::Eof => Ok(Flow::Quit),
            EditEvent::Complete => {
                self.complete().await;
                Ok(Flow::Continue)
            }
        }
    }

    async fn complete(&mut self) {
        if self.cache_stale {
            self.load_schema().await;
        }
        let before = self.editor.before_cursor();
        let text = format!("{}{}", self.stmt, before);
        let c = complete(&text, &self.cache);
        match c.replacement {
            Some(r) => self
                .editor
                .replace_before_cursor(c.word_len, &r, &mut self.out),
            None if c.candidates.len() > 1 => {
                let listing = list(&c.candidates, usize::from(self.cfg.cols), 200);
                self.write("\r\n");
                self.write(&listing);
                self.editor.redraw_below(&mut self.out);
            }
            None => self.write("\x07"),
        }
    }

    async fn submit(&mut self, line: String) -> Res<Flow> {
        let trimmed = line.trim();
        if self.stmt.trim().is_empty() {
            let lower = trimmed.trim_end_matches(';').to_ascii_lowercase();
            if trimmed.starts_with('\\') || lower == "quit" || lower == "exit" {
                self.stmt.clear();
                self.editor.add_history(trimmed);
                return self.meta(trimmed).await;
            }
            if trimmed.is_empty() {
                self.stmt.clear();
                return Ok(Flow::Continue);
            }
        }
        self.stmt.push_str(&line);
        self.stmt.push('\n');
        let (stmts, rest) = split_statements(&self.stmt, self.cfg.kind.dialect());
        self.stmt = rest;
        for s in stmts {
            let hist = s.split_whitespace().collect::<Vec<_>>().join(" ");
            self.editor.add_history(&format!("{hist};"));
            self.execute(&s, None).await?;
            if self.gone {
                break;
            }
        }
        Ok(Flow::Continue)
    }

    fn help(&mut self) {
        let mut h = String::from(
            "General\r\n  \\q                 quit\r\n  \\x                 toggle expanded output\r\n  \\export            send the last result to the browser as a CSV file\r\n  \\export QUERY      run QUERY and send all its rows as a CSV file\r\n  \\?                 this help\r\n",
        );
        h.push_str("Informational\r\n  \\dt                list tables\r\n  \\d NAME            describe a table\r\n  \\l                 list databases\r\n");
        if self.cfg.kind == Kind::Postgres {
            h.push_str("  \\dn                list schemas\r\n");
        } else {
            h.push_str("  SHOW …; DESCRIBE …;  are sent to the server as they are\r\n");
        }
        h.push_str("Statements end with ';'. Tab completes keywords, schemas, tables and columns.\r\nCtrl-C cancels the running statement; in the pager, Space shows the next page, Enter one more line, q stops.\r\n");
        self.write(&h);
    }

    async fn meta(&mut self, cmd: &str) -> Res<Flow> {
        let (name, arg) = match cmd.split_once(char::is_whitespace) {
            Some((n, a)) => (n, a.trim()),
            None => (cmd, ""),
        };
        let name = name.trim_end_matches(';');
        let lit = |s: &str| format!("'{}'", s.trim_end_matches(';').replace('\'', "''"));
        let kind = self.cfg.kind;
        let sql: Option<String> = match (name, kind) {
            ("\\q" | "quit" | "exit" | "QUIT" | "EXIT", _) => return Ok(Flow::Quit),
            ("\\?" | "\\h" | "help", _) => {
                self.help();
                None
            }
            ("\\x", _) => {
                self.expanded = !self.expanded;
                let state = if self.expanded { "on" } else { "off" };
                self.line("", &format!("Expanded display is {state}."));
                None
            }
            ("\\export", _) => {
                self.export(arg).await?;
                None
            }
            ("\\dt", Kind::Postgres) => Some(
                "SELECT n.nspname AS \"Schema\", c.relname AS \"Name\", \
                 CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' END AS \"Type\", \
                 pg_catalog.pg_get_userbyid(c.relowner) AS \"Owner\" \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','p') AND n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema' \
                 AND n.nspname !~ '^pg_toast' AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1, 2"
                    .into(),
            ),
            ("\\d", Kind::Postgres) if arg.is_empty() => Some(
                "SELECT n.nspname AS \"Schema\", c.relname AS \"Name\", \
                 CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
                 WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' END AS \"Type\", \
                 pg_catalog.pg_get_userbyid(c.relowner) AS \"Owner\" \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','p','v','m','S','f') AND n.nspname <> 'pg_catalog' \
                 AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_toast' \
                 AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1, 2"
                    .into(),
            ),
            ("\\d", Kind::Postgres) => Some(format!(
                "SELECT a.attname AS \"Column\", pg_catalog.format_type(a.atttypid, a.atttypmod) AS \"Type\", \
                 CASE WHEN a.attnotnull THEN 'not null' ELSE '' END AS \"Nullable\", \
                 pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS \"Default\" \
                 FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d \
                 ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = {}::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                lit(arg)
            )),
            ("\\l", Kind::Postgres) => Some(
                "SELECT d.datname AS \"Name\", pg_catalog.pg_get_userbyid(d.datdba) AS \"Owner\", \
                 pg_catalog.pg_encoding_to_char(d.encoding) AS \"Encoding\" \
                 FROM pg_catalog.pg_database d ORDER BY 1"
                    .into(),
            ),
            ("\\dn", Kind::Postgres) => Some(
                "SELECT n.nspname AS \"Name\", pg_catalog.pg_get_userbyid(n.nspowner) AS \"Owner\" \
                 FROM pg_catalog.pg_namespace n WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1"
                    .into(),
            ),
            ("\\dt", Kind::MySql) => Some("SHOW TABLES".into()),
            ("\\d", Kind::MySql) if arg.is_empty() => Some("SHOW TABLES".into()),
            ("\\d", Kind::MySql) => Some(format!(
                "DESCRIBE `{}`",
                arg.trim_end_matches(';').replace('`', "``")
            )),
            ("\\l", Kind::MySql) => Some("SHOW DATABASES".into()),
            ("\\dt", Kind::SqlServer) => Some(
                "SELECT TABLE_SCHEMA AS [Schema], TABLE_NAME AS [Name], TABLE_TYPE AS [Type] \
                 FROM INFORMATION_SCHEMA.TABLES ORDER BY 1, 2"
                    .into(),
            ),
            ("\\d", Kind::SqlServer) => Some(format!(
                "SELECT COLUMN_NAME AS [Column], DATA_TYPE AS [Type], IS_NULLABLE AS [Nullable], \
                 COLUMN_DEFAULT AS [Default] FROM INFORMATION_SCHEMA.COLUMNS \
                 WHERE TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                lit(arg)
            )),
            ("\\l", Kind::SqlServer) => Some("SELECT name AS [Name] FROM sys.databases ORDER BY 1".into()),
            _ => {
                self.line(
                    RED,
                    &format!("Invalid command {name}. Try \\? for help."),
                );
                None
            }
        };
        if let Some(sql) = sql {
            self.execute_as(&sql, cmd, None).await?;
        }
        Ok(Flow::Continue)
    }

    async fn export(&mut self, arg: &str) -> Res<()> {
        if !self.cfg.allow_export {
            self.line(
                RED,
                "Export is disabled for this connection (disable-copy).",
            );
            return Ok(());
        }
        let name = format!(
            "{}-{}.csv",
            if self.db_name.is_empty() {
                "result"
            } else {
                &self.db_name
            },
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        );
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '.' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if !arg.is_empty() {
            let stream = self.sink.open(&name, "text/csv");
            let sql = arg.trim_end_matches(';').to_owned();
            self.execute_as(&sql, &format!("\\export {sql}"), Some(stream))
                .await?;
            return Ok(());
        }
        let Some(last) = self.last.take() else {
            self.line(
                RED,
                "No result to export yet: run a query first, or \\export QUERY.",
            );
            return Ok(());
        };
        let stream = self.sink.open(&name, "text/csv");
        for chunk in last.csv.chunks(EXPORT_CHUNK) {
            self.sink.blob(stream, chunk);
            self.sink.pace().await;
        }
        self.sink.end(stream);
        let note = if last.truncated {
            format!(
                " (cut at {} bytes: use \\export QUERY for everything)",
                self.cfg.export_limit
            )
        } else {
            String::new()
        };
        self.line(
            "",
            &format!(
                "Exported {} rows ({} bytes) as {name}{note}.",
                last.rows,
                last.csv.len()
            ),
        );
        tracing::info!(target: "guacr::audit", event = "db_export", connection = %self.cfg.connection_id,
            user = %self.cfg.user, db_user = %self.cfg.db_user, file = %name, rows = last.rows, bytes = last.csv.len());
        self.last = Some(last);
        Ok(())
    }

    async fn execute(&mut self, sql: &str, export: Option<i32>) -> Res<()> {
        self.execute_as(sql, sql, export).await
    }

    fn cancel(&mut self, st: &mut Exec, reason: CancelReason) {
        if st.cancelled.is_none() {
            st.cancelled = Some(reason);
        }
        if self.cancel_task.is_some() {
            return;
        }
        if self.conn.canceller.disconnects() {
            if matches!(reason, CancelReason::Quit | CancelReason::MaxRows) {
                // Rows are skipped until the end rather than losing the connection.
                return;
            }
            self.line(
                YELLOW,
                "Closing the connection to stop the statement (this driver has no cancel request).",
            );
            self.reconnect = true;
        }
        let c = self.conn.canceller.clone();
        self.cancel_task = Some(tokio::spawn(async move { c.cancel().await }));
    }

    async fn wait_cancel(&mut self) {
        if let Some(t) = self.cancel_task.take() {
            match t.await {
                Ok(Err(e)) => self.line(YELLOW, &format!("Cancel request failed: {e}")),
                Err(e) => tracing::debug!("cancel task: {e}"),
                Ok(Ok(())) => {}
            }
        }
    }

    /// Runs one statement: `sql` goes to the server, `shown` to the audit log.
    async fn execute_as(&mut self, sql: &str, shown: &str, export: Option<i32>) -> Res<()> {
        self.wait_cancel().await;
        let started = Instant::now();
        let (tx, mut rx) = mpsc::channel(64);
        if self
            .conn
            .requests
            .send(Request {
                sql: sql.to_owned(),
                reply: tx,
            })
            .await
            .is_err()
        {
            return Err(SessionError::new(
                Status::UpstreamError,
                "The connection to the database server was lost.",
            ));
        }
        let rows = usize::from(self.cfg.rows.max(3));
        let mut st = Exec {
            budget: rows.saturating_sub(2).max(1),
            export: export.map(|s| (s, Vec::with_capacity(EXPORT_CHUNK * 2))),
            ..Default::default()
        };
        if export.is_none() {
            self.last = None;
        }
        let mut deadline = self.cfg.query_timeout.map(|t| started + t);
        loop {
            if !st.paused {
                let more_ready = !rx.is_empty();
                self.print_queue(&mut st, more_ready);
                if !st.queue.is_empty() && st.budget == 0 {
                    st.paused = true;
                    st.paused_at = Some(Instant::now());
                    self.write(&format!(
                        "\x1b[7m--More--\x1b[0m {DIM}(Space: next page, Enter: next line, q: stop){RESET}"
                    ));
                }
            }
            if st.finished && st.queue.is_empty() {
                break;
            }
            self.flush().await?;
            if self.gone {
                self.cancel(&mut st, CancelReason::Quit);
                break;
            }
            let can_recv = !st.finished && !st.paused && st.queue.len() < QUEUE_MAX;
            let armed = deadline.filter(|_| !st.paused && st.cancelled.is_none() && !st.finished);
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    None => {
                        self.gone = true;
                    }
                    Some(UpstreamCommand::Resize { cols, rows, .. }) => self.resize(cols, rows),
                    Some(UpstreamCommand::Write(bytes)) => {
                        for &b in bytes.iter() {
                            if st.paused {
                                let resume = match b {
                                    b' ' => Some(usize::from(self.cfg.rows.max(3)) - 1),
                                    b'\r' | b'\n' => Some(1),
                                    b'q' | b'Q' | 0x03 => {
                                        st.discard = true;
                                        st.queue.retain(|i| matches!(i, Item::Error(_)));
                                        self.cancel(&mut st, CancelReason::Quit);
                                        Some(usize::from(self.cfg.rows.max(3)) - 1)
                                    }
                                    _ => None,
                                };
                                if let Some(budget) = resume {
                                    self.write("\r\x1b[K");
                                    st.budget = budget;
                                    st.paused = false;
                                    if let (Some(at), Some(d)) = (st.paused_at.take(), deadline.as_mut()) {
                                        *d += at.elapsed();
                                    }
                                }
                            } else if b == 0x03 {
                                if st.cancelled.is_none() {
                                    self.line(YELLOW, "^C Cancel request sent.");
                                    self.cancel(&mut st, CancelReason::User);
                                }
                            } else {
                                self.pending.push_back(b);
                            }
                        }
                    }
                },
                item = rx.recv(), if can_recv => match item {
                    None => st.finished = true,
                    Some(Ok(f)) => self.accept(&mut st, f).await,
                    Some(Err(e)) => {
                        if e.lost {
                            return Err(SessionError::new(Status::UpstreamError, e.message));
                        }
                        st.error = true;
                        let quiet = st.discard
                            && matches!(st.cancelled, Some(CancelReason::Quit | CancelReason::MaxRows));
                        if !quiet {
                            st.queue.push_back(Item::Error(e.message));
                        }
                    }
                },
                _ = sleep_until_opt(armed) => {
                    let secs = self.cfg.query_timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
                    self.line(YELLOW, &format!("query-timeout ({secs} s) reached: cancelling the statement."));
                    self.cancel(&mut st, CancelReason::Timeout);
                }
            }
        }
        let elapsed = started.elapsed();
        if std::mem::take(&mut self.reconnect) {
            self.wait_cancel().await;
            let Some(settings) = self.cfg.reconnect.clone() else {
                return Err(SessionError::new(
                    Status::UpstreamError,
                    "The connection was closed to stop the statement.",
                ));
            };
            self.line(DIM, "Reconnecting…");
            self.flush().await?;
            self.conn = crate::backend::connect(&settings).await?;
            if self.cfg.kind == Kind::SqlServer && !self.db_name.is_empty() {
                let use_db = format!("USE [{}]", self.db_name.replace(']', "]]"));
                let _ = query_all(&self.conn, &use_db).await;
            }
        }
        if let Some((stream, buf)) = st.export.take() {
            if !buf.is_empty() {
                for chunk in buf.chunks(EXPORT_CHUNK) {
                    self.sink.blob(stream, chunk);
                }
            }
            self.sink.end(stream);
            if !st.error {
                self.line("", &format!("Exported {} rows as a CSV file.", st.fetched));
            }
        }
        match st.cancelled {
            Some(CancelReason::Quit) => {
                self.line(DIM, &format!("(output stopped after {} rows)", st.fetched))
            }
            Some(CancelReason::MaxRows) => self.line(
                YELLOW,
                &format!(
                    "(max-rows {} reached: the rest of the result was not fetched)",
                    self.cfg.max_rows
                ),
            ),
            _ => {}
        }
        self.line(
            DIM,
            &format!("Time: {:.3} ms", elapsed.as_secs_f64() * 1000.0),
        );
        if !st.error {
            let kw = first_keyword(sql);
            if matches!(kw.as_str(), "CREATE" | "ALTER" | "DROP" | "RENAME" | "USE") {
                self.cache_stale = true;
            }
            let current = match self.cfg.kind {
                Kind::MySql => "SELECT DATABASE()",
                Kind::SqlServer => "SELECT DB_NAME()",
                Kind::Postgres => "",
            };
            if kw == "USE"
                && !current.is_empty()
                && let Ok(rows) = query_all(&self.conn, current).await
            {
                self.db_name = rows
                    .into_iter()
                    .next()
                    .and_then(|r| r.into_iter().next().flatten())
                    .unwrap_or_default();
            }
        }
        let outcome = match (st.error, st.cancelled) {
            (_, Some(CancelReason::User)) => "cancelled",
            (_, Some(CancelReason::Timeout)) => "timeout",
            (true, _) => "error",
            _ => "ok",
        };
        tracing::info!(
            target: "guacr::audit",
            event = "db_statement",
            connection = %self.cfg.connection_id,
            user = %self.cfg.user,
            db_user = %self.cfg.db_user,
            database = %self.db_name,
            protocol = self.cfg.kind.product(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            rows = st.fetched.max(st.affected),
            outcome,
            statement = %redact(shown),
        );
        Ok(())
    }

    async fn accept(&mut self, st: &mut Exec, f: Fetch) {
        if let Some((stream, buf)) = st.export.as_mut() {
            match &f {
                Fetch::Columns(c) => csv_record(c.iter().map(|s| Some(s.as_str())), buf),
                Fetch::Row(r) if !st.discard => {
                    st.fetched += 1;
                    csv_record(r.iter().map(|v| v.as_deref()), buf);
                }
                _ => {}
            }
            if buf.len() >= EXPORT_CHUNK * 8 {
                let stream = *stream;
                let data = std::mem::take(buf);
                for chunk in data.chunks(EXPORT_CHUNK) {
                    self.sink.blob(stream, chunk);
                }
                self.sink.pace().await;
            }
            return;
        }
        match f {
            Fetch::Columns(c) => {
                if st.sets == 0 {
                    let mut csv = Vec::new();
                    csv_record(c.iter().map(|s| Some(s.as_str())), &mut csv);
                    self.last = Some(LastResult {
                        csv,
                        rows: 0,
                        truncated: false,
                    });
                }
                st.sets += 1;
                if !st.discard {
                    st.queue.push_back(Item::F(Fetch::Columns(c)));
                }
            }
            Fetch::Row(r) => {
                if st.discard {
                    return;
                }
                st.fetched += 1;
                if self.cfg.max_rows > 0 && st.fetched > self.cfg.max_rows {
                    st.fetched -= 1;
                    st.discard = true;
                    self.cancel(st, CancelReason::MaxRows);
                    return;
                }
                if st.sets == 1
                    && let Some(last) = self.last.as_mut()
                {
                    if last.csv.len() < self.cfg.export_limit {
                        csv_record(r.iter().map(|v| v.as_deref()), &mut last.csv);
                        last.rows += 1;
                    } else {
                        last.truncated = true;
                    }
                }
                st.queue.push_back(Item::F(Fetch::Row(r)));
            }
            Fetch::Done { rows, has_rows } => {
                if !has_rows {
                    st.affected += rows;
                }
                if !st.discard {
                    st.queue.push_back(Item::F(Fetch::Done { rows, has_rows }));
                }
            }
            Fetch::Notice(n) => st.queue.push_back(Item::F(Fetch::Notice(n))),
        }
    }

    /// Draws queued output while the page has room.
    fn print_queue(&mut self, st: &mut Exec, more_ready: bool) {
        let mut text = String::new();
        while st.budget > 0 {
            let Some(front) = st.queue.front() else { break };
            match front {
                Item::Error(_) => {
                    if let Some(Item::Error(e)) = st.queue.pop_front() {
                        let e = e.replace('\n', "\r\n");
                        text.push_str(&format!("{RED}{e}{RESET}\r\n"));
                        st.budget = st.budget.saturating_sub(1);
                    }
                }
                Item::F(Fetch::Columns(_)) => {
                    if let Some(Item::F(Fetch::Columns(c))) = st.queue.pop_front() {
                        st.layout = Some(Layout::new(c));
                        st.header_printed = false;
                        st.record = 0;
                    }
                }
                Item::F(Fetch::Notice(_)) => {
                    if let Some(Item::F(Fetch::Notice(n))) = st.queue.pop_front() {
                        text.push_str(&format!("{YELLOW}{n}{RESET}\r\n"));
                        st.budget = st.budget.saturating_sub(1);
                    }
                }
                Item::F(Fetch::Done { .. }) => {
                    let Some(Item::F(Fetch::Done { rows, has_rows })) = st.queue.pop_front() else {
                        break;
                    };
                    if has_rows {
                        if let Some(l) = &st.layout
                            && !st.header_printed
                            && !self.expanded
                        {
                            l.header(&mut text);
                        }
                        let s = if rows == 1 { "" } else { "s" };
                        text.push_str(&format!("({rows} row{s})\r\n"));
                    } else if rows > 0 {
                        let s = if rows == 1 { "" } else { "s" };
                        text.push_str(&format!("OK, {rows} row{s} affected\r\n"));
                    } else {
                        text.push_str("OK\r\n");
                    }
                    st.layout = None;
                    st.budget = st.budget.saturating_sub(1);
                }
                Item::F(Fetch::Row(_)) => {
                    // Wait for a page worth of rows (or the end) before the
                    // first lines, so the column widths suit the page.
                    let queued_rows = st
                        .queue
                        .iter()
                        .take_while(|i| matches!(i, Item::F(Fetch::Row(_))))
                        .count();
                    if !st.header_printed && queued_rows < st.budget && more_ready && !st.finished {
                        break;
                    }
                    if st.layout.is_none() {
                        st.layout = Some(Layout::new(Vec::new()));
                    }
                    let take = queued_rows.min(st.budget.max(1));
                    let batch: Vec<Row> = st
                        .queue
                        .drain(..take)
                        .filter_map(|i| match i {
                            Item::F(Fetch::Row(r)) => Some(r),
                            _ => None,
                        })
                        .collect();
                    let cols = usize::from(self.cfg.cols.max(1));
                    let Some(layout) = st.layout.as_mut() else {
                        break;
                    };
                    if self.expanded {
                        layout.fit(&batch);
                        for r in &batch {
                            st.record += 1;
                            layout.record(st.record, r, &mut text);
                            st.budget = st.budget.saturating_sub(layout.columns.len() + 1);
                        }
                        st.header_printed = true;
                        continue;
                    }
                    let widened = layout.fit(&batch);
                    let width = 1
                        + layout.widths.iter().sum::<usize>()
                        + 3 * layout.widths.len().saturating_sub(1);
                    let per_row = width.div_ceil(cols).max(1);
                    if !st.header_printed || widened {
                        layout.header(&mut text);
                        st.header_printed = true;
                        st.budget = st.budget.saturating_sub(2 * per_row);
                    }
                    let mut put_back = Vec::new();
                    for (i, r) in batch.into_iter().enumerate() {
                        if st.budget == 0 && i > 0 {
                            put_back.push(r);
                            continue;
                        }
                        layout.row(&r, &mut text);
                        st.budget = st.budget.saturating_sub(per_row);
                    }
                    for r in put_back.into_iter().rev() {
                        st.queue.push_front(Item::F(Fetch::Row(r)));
                    }
                }
            }
        }
        self.write(&text);
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs the console over the driver channels.
pub async fn run(
    cfg: ConsoleConfig,
    conn: Connection,
    io: UpstreamHandle,
    sink: Arc<dyn FileSink>,
) {
    Console::new(cfg, conn, io, sink).run().await;
}
