//! The drivers behind one interface: a connection task per session that runs
//! one statement at a time and streams its results through a bounded channel
//! (so a large result is pulled from the server only as fast as it is shown),
//! and a [`Canceller`] that stops the running statement on the server.

use std::time::Duration;

use guacr_protocol::Status;
use guacr_session::SessionError;
use tokio::sync::mpsc;

use crate::sql::Dialect;
use crate::table::Row;
use crate::tls::TlsMode;

/// One piece of a statement's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// A result set starts.
    Columns(Vec<String>),
    Row(Row),
    /// A result set (or a statement without rows) ended.
    Done {
        rows: u64,
        has_rows: bool,
    },
    /// A server notice or warning.
    Notice(String),
}

/// A statement error (the session goes on) or a lost connection (it ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    pub message: String,
    pub lost: bool,
}

impl DbError {
    pub fn sql(message: impl Into<String>) -> Self {
        DbError {
            message: message.into(),
            lost: false,
        }
    }
    pub fn lost(message: impl Into<String>) -> Self {
        DbError {
            message: message.into(),
            lost: true,
        }
    }
}

pub type Reply = mpsc::Sender<Result<Fetch, DbError>>;

/// A statement for the connection task; the reply channel closes when it is done.
#[derive(Debug)]
pub struct Request {
    pub sql: String,
    pub reply: Reply,
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    MySql,
    SqlServer,
}

impl Kind {
    pub fn dialect(self) -> Dialect {
        match self {
            Kind::Postgres => Dialect::Postgres,
            Kind::MySql => Dialect::MySql,
            Kind::SqlServer => Dialect::SqlServer,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Kind::Postgres => 5432,
            Kind::MySql => 3306,
            Kind::SqlServer => 1433,
        }
    }

    pub fn product(self) -> &'static str {
        match self {
            Kind::Postgres => "PostgreSQL",
            Kind::MySql => "MySQL",
            Kind::SqlServer => "SQL Server",
        }
    }
}

/// What is needed to connect.
#[derive(Clone)]
pub struct ConnectSettings {
    pub kind: Kind,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    pub database: Option<String>,
    pub tls: TlsMode,
    pub ca_certificate: Option<String>,
    pub read_only: bool,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for ConnectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectSettings")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// Stops the statement running on a connection, from outside it.
#[derive(Clone)]
pub enum Canceller {
    #[cfg(feature = "postgres")]
    Postgres(crate::pg::PgCanceller),
    #[cfg(feature = "mysql")]
    MySql(crate::my::MyCanceller),
    /// The driver has no cancel request (SQL Server through tiberius): the
    /// connection is closed, which makes the server abort the batch, and the
    /// console reconnects.
    Disconnect(tokio::task::AbortHandle),
}

impl Canceller {
    /// Asks the server to cancel; returns once the request was delivered.
    pub async fn cancel(&self) -> Result<(), String> {
        match self {
            #[cfg(feature = "postgres")]
            Canceller::Postgres(c) => c.cancel().await,
            #[cfg(feature = "mysql")]
            Canceller::MySql(c) => c.cancel().await,
            Canceller::Disconnect(task) => {
                task.abort();
                Ok(())
            }
        }
    }

    /// Whether cancelling closes the connection (the console must reconnect).
    pub fn disconnects(&self) -> bool {
        matches!(self, Canceller::Disconnect(_))
    }
}

/// A live connection: its task takes [`Request`]s.
pub struct Connection {
    pub requests: mpsc::Sender<Request>,
    pub canceller: Canceller,
    pub kind: Kind,
}

pub(crate) fn unauthorized(msg: impl Into<String>) -> SessionError {
    SessionError::new(Status::ClientUnauthorized, msg)
}

pub(crate) fn upstream(msg: impl Into<String>) -> SessionError {
    SessionError::new(Status::UpstreamError, msg)
}

/// Connects (TCP errors map to 519/514, authentication failures to 769).
pub async fn connect(s: &ConnectSettings) -> Result<Connection, SessionError> {
    match s.kind {
        #[cfg(feature = "postgres")]
        Kind::Postgres => crate::pg::connect(s).await,
        #[cfg(feature = "mysql")]
        Kind::MySql => crate::my::connect(s).await,
        #[cfg(feature = "sqlserver")]
        Kind::SqlServer => crate::mssql::connect(s).await,
        #[allow(unreachable_patterns)]
        other => Err(SessionError::new(
            Status::Unsupported,
            format!("{} support is not built in", other.product()),
        )),
    }
}

/// Runs a statement to the end and collects its rows (for internal queries:
/// schema, version; never for user statements).
pub async fn query_all(conn: &Connection, sql: &str) -> Result<Vec<Row>, DbError> {
    let (tx, mut rx) = mpsc::channel(256);
    conn.requests
        .send(Request {
            sql: sql.to_owned(),
            reply: tx,
        })
        .await
        .map_err(|_| DbError::lost("The connection to the database server is closed."))?;
    let mut rows = Vec::new();
    let mut err = None;
    while let Some(item) = rx.recv().await {
        match item {
            Ok(Fetch::Row(r)) => rows.push(r),
            Ok(_) => {}
            Err(e) => err = Some(e),
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(rows),
    }
}
