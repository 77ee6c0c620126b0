//! MySQL and MariaDB through mysql_async (text protocol: rows are streamed
//! from the socket as they are read).

use guacr_protocol::Status;
use guacr_session::SessionError;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, SslOpts, Value};
use tokio::sync::mpsc;

use crate::backend::{
    Canceller, ConnectSettings, Connection, DbError, Fetch, Kind, Request, unauthorized, upstream,
};
use crate::tls::{TlsMode, roots_pem};

/// Cancels with `KILL QUERY <id>` on a second connection.
#[derive(Clone)]
pub struct MyCanceller {
    opts: Opts,
    id: u32,
}

impl MyCanceller {
    pub async fn cancel(&self) -> Result<(), String> {
        let mut conn = Conn::new(self.opts.clone())
            .await
            .map_err(|e| format_error(&e))?;
        let r = conn
            .query_drop(format!("KILL QUERY {}", self.id))
            .await
            .map_err(|e| format_error(&e));
        let _ = conn.disconnect().await;
        r
    }
}

/// Formats an error like the mysql client (`ERROR 1146 (42S02): …`).
pub fn format_error(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("ERROR {} ({}): {}", s.code, s.state, s.message),
        other => other.to_string(),
    }
}

fn is_lost(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Io(_))
        || matches!(
            e,
            mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed)
        )
}

fn connect_error(e: mysql_async::Error) -> SessionError {
    let msg = format_error(&e);
    match &e {
        // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
        mysql_async::Error::Server(s) if matches!(s.code, 1045 | 1044 | 1698) => {
            unauthorized(format!("Authentication failed: {msg}"))
        }
        // ER_BAD_DB_ERROR
        mysql_async::Error::Server(s) if s.code == 1049 => {
            SessionError::new(Status::UpstreamNotFound, msg)
        }
        mysql_async::Error::Server(s) if s.code == 1040 => {
            SessionError::new(Status::UpstreamUnavailable, msg)
        }
        _ => upstream(format!("Unable to connect to MySQL: {msg}")),
    }
}

fn ssl_opts(s: &ConnectSettings) -> Result<Option<SslOpts>, SessionError> {
    let bad = |e: String| SessionError::new(Status::ClientBadRequest, e);
    Ok(match s.tls {
        TlsMode::Disable => None,
        TlsMode::Prefer | TlsMode::Require => {
            Some(SslOpts::default().with_danger_accept_invalid_certs(true))
        }
        TlsMode::VerifyCa | TlsMode::VerifyFull => {
            let pem = roots_pem(s.ca_certificate.as_deref()).map_err(bad)?;
            Some(
                SslOpts::default()
                    .with_root_certs(vec![pem.into()])
                    .with_danger_skip_domain_validation(s.tls == TlsMode::VerifyCa),
            )
        }
    })
}

fn opts(s: &ConnectSettings, ssl: Option<SslOpts>) -> Opts {
    let mut init = Vec::new();
    if s.read_only {
        // Enforced by the server: later transactions of this session are read-only.
        init.push("SET SESSION TRANSACTION READ ONLY".to_owned());
    }
    OptsBuilder::default()
        .ip_or_hostname(s.host.clone())
        .tcp_port(s.port)
        .user(Some(s.username.clone()))
        .pass(Some(s.password.clone()))
        .db_name(s.database.clone())
        .prefer_socket(false)
        .stmt_cache_size(0)
        .init(init)
        .ssl_opts(ssl)
        .into()
}

pub async fn connect(s: &ConnectSettings) -> Result<Connection, SessionError> {
    // The TCP probe gives guacd's 519/514 for unreachable servers.
    drop(guacr_console::connect_tcp(&s.host, s.port, s.connect_timeout).await?);
    let ssl = ssl_opts(s)?;
    let timeout = |r: Result<mysql_async::Result<Conn>, tokio::time::error::Elapsed>| {
        r.map_err(|_| SessionError::new(Status::UpstreamTimeout, "Timed out logging in to MySQL."))
    };
    let mut used = opts(s, ssl.clone());
    let mut result =
        timeout(tokio::time::timeout(s.connect_timeout, Conn::new(used.clone())).await)?;
    if s.tls == TlsMode::Prefer
        && matches!(
            result,
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer
            ))
        )
    {
        // `prefer`: the server has no TLS; go on without.
        used = opts(s, None);
        result = timeout(tokio::time::timeout(s.connect_timeout, Conn::new(used.clone())).await)?;
    }
    let conn = result.map_err(connect_error)?;
    let canceller = Canceller::MySql(MyCanceller {
        opts: used,
        id: conn.id(),
    });
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(tracing::Instrument::in_current_span(serve(conn, rx)));
    Ok(Connection {
        requests: tx,
        canceller,
        kind: Kind::MySql,
    })
}

async fn serve(mut conn: Conn, mut rx: mpsc::Receiver<Request>) {
    while let Some(req) = rx.recv().await {
        if !run(&mut conn, req).await {
            return;
        }
    }
    let _ = conn.disconnect().await;
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }),
        other => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

async fn run(conn: &mut Conn, req: Request) -> bool {
    let fail = |e: mysql_async::Error| {
        if is_lost(&e) {
            DbError::lost("The connection to the MySQL server was lost.")
        } else {
            DbError::sql(format_error(&e))
        }
    };
    let mut result = match conn.query_iter(req.sql.as_str()).await {
        Ok(r) => r,
        Err(e) => {
            let err = fail(e);
            let lost = err.lost;
            let _ = req.reply.send(Err(err)).await;
            return !lost;
        }
    };
    loop {
        let columns = result.columns();
        let has_rows = columns.as_ref().is_some_and(|c| !c.is_empty());
        if let Some(cols) = columns.as_ref().filter(|c| !c.is_empty()) {
            let names = cols.iter().map(|c| c.name_str().into_owned()).collect();
            if req.reply.send(Ok(Fetch::Columns(names))).await.is_err() {
                break;
            }
        }
        let mut rows = 0u64;
        loop {
            match result.next().await {
                Ok(Some(row)) => {
                    rows += 1;
                    let values = row.unwrap().into_iter().map(text).collect();
                    if req.reply.send(Ok(Fetch::Row(values))).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let err = fail(e);
                    let lost = err.lost;
                    let _ = req.reply.send(Err(err)).await;
                    return !lost;
                }
            }
        }
        let n = if has_rows {
            rows
        } else {
            result.affected_rows()
        };
        let warnings = result.warnings();
        if req
            .reply
            .send(Ok(Fetch::Done { rows: n, has_rows }))
            .await
            .is_err()
        {
            break;
        }
        if warnings > 0 {
            let _ = req
                .reply
                .send(Ok(Fetch::Notice(format!(
                    "{warnings} warning(s); SHOW WARNINGS to see them"
                ))))
                .await;
        }
        if result.is_empty() {
            break;
        }
    }
    // Whatever was not read (the reader went away) is skipped by the driver.
    if let Err(e) = result.drop_result().await {
        return !is_lost(&e);
    }
    true
}
