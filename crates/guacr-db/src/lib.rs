//! Database console protocols: `postgresql`, `mysql` (MySQL and MariaDB) and
//! `sqlserver`.
//!
//! The console is the "remote side" of the shared terminal driver
//! ([`guacr_console`]): keys arrive as the bytes a terminal sends, output
//! leaves as VT text, so rendering, sharing, recordings and typescripts work
//! as for SSH. Statements are streamed from the server through a bounded
//! channel and drawn a page at a time ([`console`]); `read-only` is enforced
//! by the database (read-only transactions), never by parsing SQL.
//!
//! * [`sql`] — statement splitting (quotes, comments, dollar quotes), redaction.
//! * [`editor`] — the line editor (history, cursor keys, kills, Tab).
//! * [`table`] — aligned tables, expanded records, CSV.
//! * [`complete`] — completion from the live schema.
//! * [`backend`] — the drivers (tokio-postgres, mysql_async, tiberius) behind one interface.

pub mod backend;
pub mod complete;
pub mod console;
pub mod editor;
#[cfg(feature = "sqlserver")]
pub mod mssql;
#[cfg(feature = "mysql")]
pub mod my;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod sql;
pub mod table;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use guacr_console::ConsoleOptions;
use guacr_protocol::{InstructionWriter, Status};
use guacr_session::{Protocol, ProtocolFuture, Session, SessionContext, SessionError};

pub use backend::Kind;

/// Parameter names of the database protocols.
pub const DB_ARGS: &[&str] = &[
    "hostname",
    "port",
    "username",
    "password",
    "database",
    "ssl-mode",
    "ca-certificate",
    "font-name",
    "font-size",
    "color-scheme",
    "scrollback",
    "backspace",
    "typescript-path",
    "typescript-name",
    "create-typescript-path",
    "recording-path",
    "recording-name",
    "recording-exclude-output",
    "recording-exclude-mouse",
    "recording-include-keys",
    "create-recording-path",
    "read-only",
    "query-timeout",
    "max-rows",
    "disable-copy",
    "disable-paste",
];

/// Most CSV kept of the last result for `\export` (beyond: `\export QUERY`).
pub const EXPORT_LIMIT: usize = 2 * 1024 * 1024;

/// A database console protocol.
#[derive(Debug, Clone)]
pub struct Database {
    pub kind: Kind,
    pub console: ConsoleOptions,
    /// Timeout for the TCP connection and the login.
    pub connect_timeout: Option<Duration>,
}

impl Database {
    pub fn new(kind: Kind, console: ConsoleOptions) -> Self {
        Database {
            kind,
            console,
            connect_timeout: None,
        }
    }
}

/// The protocol name clients select for `kind`.
pub fn protocol_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Postgres => "postgresql",
        Kind::MySql => "mysql",
        Kind::SqlServer => "sqlserver",
    }
}

impl Protocol for Database {
    fn name(&self) -> &'static str {
        protocol_name(self.kind)
    }

    fn arg_names(&self) -> &'static [&'static str] {
        DB_ARGS
    }

    fn run(&self, ctx: SessionContext) -> ProtocolFuture {
        let this = self.clone();
        Box::pin(run(this, ctx))
    }

    fn health(&self) -> Result<(), String> {
        guacr_console::health()
    }

    fn read_only_is_view_only(&self) -> bool {
        false
    }
}

fn bad(e: guacr_session::ParamError) -> SessionError {
    SessionError::new(e.status(), e.to_string())
}

async fn run(proto: Database, mut ctx: SessionContext) -> Result<(), SessionError> {
    let kind = proto.kind;
    let p = ctx.params.clone();
    let host = p.require("hostname").map_err(bad)?.to_owned();
    let port: u16 = p.parse_or("port", kind.default_port()).map_err(bad)?;
    let tls = tls::TlsMode::parse(p.get("ssl-mode"))
        .map_err(|e| SessionError::new(Status::ClientBadRequest, e))?;
    let read_only = p.flag("read-only");
    let query_timeout: u64 = p.parse_or("query-timeout", 0u64).map_err(bad)?;
    let max_rows: u64 = p.parse_or("max-rows", 0u64).map_err(bad)?;
    // `read-only` is the database's business here: the terminal takes keys.
    let mut tparams = p.clone();
    tparams.set("read-only", "false");
    let mut term = guacr_console::create_terminal(&tparams, &ctx.owner)?;
    let username = match p.get("username") {
        Some(u) => u.to_owned(),
        None => guacr_console::read_line(&mut ctx, &mut term, "Username: ", true).await?,
    };
    let password = match p.get("password") {
        Some(pw) => pw.to_owned(),
        None => guacr_console::read_line(&mut ctx, &mut term, "Password: ", false).await?,
    };
    let settings = backend::ConnectSettings {
        kind,
        host: host.clone(),
        port,
        username: username.clone(),
        password,
        database: p.get("database").map(str::to_owned),
        tls,
        ca_certificate: p.get("ca-certificate").map(str::to_owned),
        read_only,
        connect_timeout: proto.connect_timeout.unwrap_or(Duration::from_secs(10)),
    };
    let session = ctx.session.clone();
    let conn = guacr_console::unless_abandoned(&session, backend::connect(&settings)).await??;
    tracing::info!(connection = %session.id(), host = %host, db_user = %username, read_only, "{} connection established", kind.product());
    let (upstream, io) = guacr_console::upstream_channels();
    let cfg = console::ConsoleConfig {
        kind,
        connection_id: session.id().to_owned(),
        user: ctx
            .owner
            .name
            .clone()
            .unwrap_or_else(|| ctx.owner.id.clone()),
        db_user: username,
        read_only,
        max_rows,
        query_timeout: (query_timeout > 0).then(|| Duration::from_secs(query_timeout)),
        allow_export: !p.flag("disable-copy"),
        cols: term.cols(),
        rows: term.rows(),
        export_limit: EXPORT_LIMIT,
        reconnect: Some(settings.clone()),
    };
    let sink = Arc::new(SessionFiles::new(session.clone()));
    tokio::spawn(tracing::Instrument::in_current_span(console::run(
        cfg, conn, io, sink,
    )));
    guacr_console::run(ctx, term, upstream, proto.console).await
}

/// Sends exported files to the session's users that may type (not to
/// read-only viewers) as Guacamole `file` streams.
pub struct SessionFiles {
    session: Arc<Session>,
    next: AtomicI32,
    targets: Mutex<HashMap<i32, Vec<String>>>,
}

impl SessionFiles {
    pub fn new(session: Arc<Session>) -> Self {
        SessionFiles {
            session,
            next: AtomicI32::new(0),
            targets: Mutex::new(HashMap::new()),
        }
    }

    fn send(&self, stream: i32, data: &[u8]) {
        let users = self
            .targets
            .lock()
            .map(|t| t.get(&stream).cloned().unwrap_or_default())
            .unwrap_or_default();
        for u in users {
            self.session.send_to(&u, data);
        }
    }
}

impl console::FileSink for SessionFiles {
    fn open(&self, name: &str, mimetype: &str) -> i32 {
        // Stream indexes above the driver's clipboard stream (3).
        let stream = 64 + self.next.fetch_add(1, Ordering::Relaxed).rem_euclid(900);
        let users: Vec<String> = self
            .session
            .users()
            .iter()
            .filter(|u| !u.read_only)
            .map(|u| u.id.clone())
            .collect();
        if let Ok(mut t) = self.targets.lock() {
            t.insert(stream, users);
        }
        let mut buf = Vec::new();
        InstructionWriter::new(&mut buf, "file")
            .arg(&stream)
            .arg(mimetype)
            .arg(name)
            .finish();
        self.send(stream, &buf);
        stream
    }

    fn blob(&self, stream: i32, data: &[u8]) {
        let mut buf = Vec::with_capacity(data.len() * 4 / 3 + 64);
        for chunk in data.chunks(6048) {
            InstructionWriter::new(&mut buf, "blob")
                .arg(&stream)
                .arg_base64(chunk)
                .finish();
        }
        self.send(stream, &buf);
    }

    fn end(&self, stream: i32) {
        let mut buf = Vec::new();
        InstructionWriter::new(&mut buf, "end")
            .arg(&stream)
            .finish();
        self.send(stream, &buf);
        if let Ok(mut t) = self.targets.lock() {
            t.remove(&stream);
        }
    }

    fn pace(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.session.end_frame();
            self.session
                .wait_for_clients(4, Duration::from_secs(2))
                .await;
        })
    }
}
