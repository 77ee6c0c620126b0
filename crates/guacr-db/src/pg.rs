//! PostgreSQL through tokio-postgres: the simple query protocol gives every
//! value as text and streams rows with backpressure.

use futures_util::StreamExt;
use guacr_protocol::Status;
use guacr_session::SessionError;
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, CancelToken, Client, NoTls, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::backend::{
    Canceller, ConnectSettings, Connection, DbError, Fetch, Kind, Request, unauthorized, upstream,
};
use crate::tls::{TlsMode, client_config};

/// Cancels through a new connection to the server (PostgreSQL's cancel request).
#[derive(Clone)]
pub struct PgCanceller {
    token: CancelToken,
    host: String,
    port: u16,
    tls: Option<MakeRustlsConnect>,
    timeout: std::time::Duration,
}

impl PgCanceller {
    pub async fn cancel(&self) -> Result<(), String> {
        let tcp = guacr_console::connect_tcp(&self.host, self.port, self.timeout)
            .await
            .map_err(|e| e.message)?;
        match &self.tls {
            None => self.token.cancel_query_raw(tcp, NoTls).await,
            Some(tls) => {
                let mut tls = tls.clone();
                let connect =
                    <MakeRustlsConnect as MakeTlsConnect<tokio::net::TcpStream>>::make_tls_connect(
                        &mut tls, &self.host,
                    )
                    .map_err(|e| e.to_string())?;
                self.token.cancel_query_raw(tcp, connect).await
            }
        }
        .map_err(|e| e.to_string())
    }
}

/// Whether an error means the session's connection is over: closed, or a
/// FATAL/PANIC from the server (which closes it right after).
fn connection_gone(client: &Client, e: &tokio_postgres::Error) -> bool {
    client.is_closed()
        || e.is_closed()
        || e.as_db_error()
            .is_some_and(|d| matches!(d.severity(), "FATAL" | "PANIC"))
}

/// Formats an error like psql (`ERROR:  message`, then DETAIL/HINT).
pub fn format_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}:  {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!("\nDETAIL:  {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("\nHINT:  {h}"));
            }
            s
        }
        None => e.to_string(),
    }
}

fn connect_error(e: tokio_postgres::Error) -> SessionError {
    let msg = format_error(&e);
    match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            unauthorized(format!("Authentication failed: {msg}"))
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
            SessionError::new(Status::UpstreamNotFound, msg)
        }
        Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => {
            SessionError::new(Status::UpstreamUnavailable, msg)
        }
        _ if msg.contains("password") => unauthorized(format!("Authentication failed: {msg}")),
        _ => upstream(format!("Unable to connect to PostgreSQL: {msg}")),
    }
}

pub async fn connect(s: &ConnectSettings) -> Result<Connection, SessionError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&s.host)
        .port(s.port)
        .user(&s.username)
        .password(&s.password)
        .application_name("guacr")
        .ssl_mode(match s.tls {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
    if let Some(db) = &s.database {
        cfg.dbname(db);
    }
    if s.read_only {
        // Enforced by the server: every transaction of this session is read-only.
        cfg.options("-c default_transaction_read_only=on");
    }
    let tls = client_config(s.tls, s.ca_certificate.as_deref())
        .map_err(|e| SessionError::new(Status::ClientBadRequest, e))?
        .map(MakeRustlsConnect::new);
    let tcp = guacr_console::connect_tcp(&s.host, s.port, s.connect_timeout).await?;
    let (notices_tx, notices) = mpsc::unbounded_channel();
    let client = match &tls {
        None => {
            let (client, conn) =
                tokio::time::timeout(s.connect_timeout, cfg.connect_raw(tcp, NoTls))
                    .await
                    .map_err(|_| {
                        SessionError::new(
                            Status::UpstreamTimeout,
                            "Timed out logging in to PostgreSQL.",
                        )
                    })?
                    .map_err(connect_error)?;
            drive(conn, notices_tx.clone());
            client
        }
        Some(tls) => {
            let mut tls = tls.clone();
            let connect =
                <MakeRustlsConnect as MakeTlsConnect<tokio::net::TcpStream>>::make_tls_connect(
                    &mut tls, &s.host,
                )
                .map_err(|e| SessionError::new(Status::ClientBadRequest, e.to_string()))?;
            let (client, conn) =
                tokio::time::timeout(s.connect_timeout, cfg.connect_raw(tcp, connect))
                    .await
                    .map_err(|_| {
                        SessionError::new(
                            Status::UpstreamTimeout,
                            "Timed out logging in to PostgreSQL.",
                        )
                    })?
                    .map_err(connect_error)?;
            drive(conn, notices_tx.clone());
            client
        }
    };
    if s.read_only {
        client
            .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .await
            .map_err(|e| {
                upstream(format!(
                    "Unable to make the session read-only: {}",
                    format_error(&e)
                ))
            })?;
    }
    let canceller = Canceller::Postgres(PgCanceller {
        token: client.cancel_token(),
        host: s.host.clone(),
        port: s.port,
        tls,
        timeout: s.connect_timeout,
    });
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(tracing::Instrument::in_current_span(serve(
        client, rx, notices,
    )));
    Ok(Connection {
        requests: tx,
        canceller,
        kind: Kind::Postgres,
    })
}

/// Drives the connection, passing server notices (RAISE NOTICE, "…, skipping") on.
fn drive<S, T>(mut conn: tokio_postgres::Connection<S, T>, notices: mpsc::UnboundedSender<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notice(n)) => {
                    let _ = notices.send(format!("{}:  {}", n.severity(), n.message()));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("PostgreSQL connection ended: {e}");
                    break;
                }
            }
        }
    });
}

async fn serve(
    client: Client,
    mut rx: mpsc::Receiver<Request>,
    mut notices: mpsc::UnboundedReceiver<String>,
) {
    while let Some(req) = rx.recv().await {
        if !run(&client, req, &mut notices).await {
            break;
        }
    }
}

async fn pass_notices(
    notices: &mut mpsc::UnboundedReceiver<String>,
    reply: &crate::backend::Reply,
) {
    while let Ok(n) = notices.try_recv() {
        let _ = reply.send(Ok(Fetch::Notice(n))).await;
    }
}

/// Runs one request; false once the connection is gone.
async fn run(client: &Client, req: Request, notices: &mut mpsc::UnboundedReceiver<String>) -> bool {
    // Notices left from earlier internal work are not this statement's.
    while notices.try_recv().is_ok() {}
    let lost = || DbError::lost("The connection to the PostgreSQL server was lost.");
    let stream = match client.simple_query_raw(&req.sql).await {
        Ok(s) => s,
        Err(e) => {
            let closed = connection_gone(client, &e);
            let err = if closed {
                lost()
            } else {
                DbError::sql(format_error(&e))
            };
            let _ = req.reply.send(Err(err)).await;
            return !closed;
        }
    };
    let mut stream = std::pin::pin!(stream);
    let mut described = false;
    while let Some(msg) = stream.next().await {
        let item = match msg {
            Ok(SimpleQueryMessage::RowDescription(cols)) => {
                described = true;
                Fetch::Columns(cols.iter().map(|c| c.name().to_owned()).collect())
            }
            Ok(SimpleQueryMessage::Row(row)) => Fetch::Row(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            Ok(SimpleQueryMessage::CommandComplete(n)) => {
                pass_notices(notices, &req.reply).await;
                let done = Fetch::Done {
                    rows: n,
                    has_rows: described,
                };
                described = false;
                done
            }
            Ok(_) => continue,
            Err(e) => {
                pass_notices(notices, &req.reply).await;
                let closed = connection_gone(client, &e);
                let err = if closed {
                    lost()
                } else {
                    DbError::sql(format_error(&e))
                };
                let _ = req.reply.send(Err(err)).await;
                return !closed;
            }
        };
        if req.reply.send(Ok(item)).await.is_err() {
            // Nobody reads any more: the rest is discarded by the driver.
            break;
        }
    }
    !client.is_closed()
}
