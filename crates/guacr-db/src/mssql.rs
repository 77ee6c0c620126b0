//! SQL Server through tiberius (TDS 7.3+, rustls). Built and unit-tested; not
//! tested against a live server (none runs on the test machines).

use futures_util::TryStreamExt;
use guacr_protocol::Status;
use guacr_session::SessionError;
use tiberius::{AuthMethod, Client, ColumnData, Config, EncryptionLevel, QueryItem};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::backend::{
    Canceller, ConnectSettings, Connection, DbError, Fetch, Kind, Request, unauthorized, upstream,
};
use crate::tls::{TlsMode, roots_pem};

fn connect_error(e: tiberius::error::Error) -> SessionError {
    match &e {
        // 18456: login failed.
        tiberius::error::Error::Server(t) if t.code() == 18456 => {
            unauthorized(format!("Authentication failed: {}", t.message()))
        }
        tiberius::error::Error::Server(t) if t.code() == 4060 => {
            SessionError::new(Status::UpstreamNotFound, t.message().to_owned())
        }
        _ => upstream(format!("Unable to connect to SQL Server: {e}")),
    }
}

pub fn config(s: &ConnectSettings) -> Result<Config, SessionError> {
    let mut c = Config::new();
    c.host(&s.host);
    c.port(s.port);
    c.application_name("guacr");
    c.authentication(AuthMethod::sql_server(&s.username, &s.password));
    if let Some(db) = &s.database {
        c.database(db);
    }
    match s.tls {
        TlsMode::Disable => c.encryption(EncryptionLevel::NotSupported),
        TlsMode::Prefer => {
            c.encryption(EncryptionLevel::On);
            c.trust_cert();
        }
        TlsMode::Require => {
            c.encryption(EncryptionLevel::Required);
            c.trust_cert();
        }
        TlsMode::VerifyCa | TlsMode::VerifyFull => {
            c.encryption(EncryptionLevel::Required);
            let pem = roots_pem(s.ca_certificate.as_deref())
                .map_err(|e| SessionError::new(Status::ClientBadRequest, e))?;
            c.trust_cert_ca_bundle(pem);
        }
    }
    Ok(c)
}

pub async fn connect(s: &ConnectSettings) -> Result<Connection, SessionError> {
    if s.read_only {
        return Err(SessionError::new(
            Status::ClientBadRequest,
            "read-only is not supported for sqlserver: use a login without write permissions",
        ));
    }
    let cfg = config(s)?;
    let tcp = guacr_console::connect_tcp(&s.host, s.port, s.connect_timeout).await?;
    let client = tokio::time::timeout(s.connect_timeout, Client::connect(cfg, tcp.compat_write()))
        .await
        .map_err(|_| {
            SessionError::new(
                Status::UpstreamTimeout,
                "Timed out logging in to SQL Server.",
            )
        })?
        .map_err(connect_error)?;
    let (tx, rx) = mpsc::channel(4);
    let task = tokio::spawn(tracing::Instrument::in_current_span(serve(client, rx)));
    Ok(Connection {
        requests: tx,
        canceller: Canceller::Disconnect(task.abort_handle()),
        kind: Kind::SqlServer,
    })
}

/// A value as text.
pub fn cell_text(v: &ColumnData<'_>) -> Option<String> {
    fn s<T: ToString>(v: &Option<T>) -> Option<String> {
        v.as_ref().map(ToString::to_string)
    }
    fn d<T: std::fmt::Debug>(v: &Option<T>) -> Option<String> {
        v.as_ref().map(|x| format!("{x:?}"))
    }
    match v {
        ColumnData::U8(x) => s(x),
        ColumnData::I16(x) => s(x),
        ColumnData::I32(x) => s(x),
        ColumnData::I64(x) => s(x),
        ColumnData::F32(x) => s(x),
        ColumnData::F64(x) => s(x),
        ColumnData::Bit(x) => s(x),
        ColumnData::String(x) => x.as_ref().map(|c| c.to_string()),
        ColumnData::Guid(x) => s(x),
        ColumnData::Binary(x) => x.as_ref().map(|b| {
            let mut out = String::from("0x");
            for byte in b.iter() {
                out.push_str(&format!("{byte:02X}"));
            }
            out
        }),
        ColumnData::Numeric(x) => s(x),
        ColumnData::Xml(x) => x.as_ref().map(|x| x.to_string()),
        ColumnData::DateTime(x) => d(x),
        ColumnData::SmallDateTime(x) => d(x),
        ColumnData::Time(x) => d(x),
        ColumnData::Date(x) => d(x),
        ColumnData::DateTime2(x) => d(x),
        ColumnData::DateTimeOffset(x) => d(x),
    }
}

async fn serve(mut client: Client<Compat<TcpStream>>, mut rx: mpsc::Receiver<Request>) {
    while let Some(req) = rx.recv().await {
        if !run(&mut client, req).await {
            return;
        }
    }
    let _ = client.close().await;
}

fn is_lost(e: &tiberius::error::Error) -> bool {
    matches!(e, tiberius::error::Error::Io { .. })
}

async fn run(client: &mut Client<Compat<TcpStream>>, req: Request) -> bool {
    let fail = |e: tiberius::error::Error| {
        if is_lost(&e) {
            DbError::lost("The connection to SQL Server was lost.")
        } else {
            DbError::sql(match &e {
                tiberius::error::Error::Server(t) => {
                    format!("Msg {}, Level {}: {}", t.code(), t.class(), t.message())
                }
                other => other.to_string(),
            })
        }
    };
    let mut stream = match client.simple_query(req.sql.as_str()).await {
        Ok(s) => s,
        Err(e) => {
            let err = fail(e);
            let lost = err.lost;
            let _ = req.reply.send(Err(err)).await;
            return !lost;
        }
    };
    let mut rows = 0u64;
    let mut open = false;
    loop {
        let item = match stream.try_next().await {
            Ok(Some(i)) => i,
            Ok(None) => break,
            Err(e) => {
                let err = fail(e);
                let lost = err.lost;
                let _ = req.reply.send(Err(err)).await;
                return !lost;
            }
        };
        let fetch = match item {
            QueryItem::Metadata(meta) => {
                if open {
                    let _ = req
                        .reply
                        .send(Ok(Fetch::Done {
                            rows,
                            has_rows: true,
                        }))
                        .await;
                }
                open = true;
                rows = 0;
                Fetch::Columns(meta.columns().iter().map(|c| c.name().to_owned()).collect())
            }
            QueryItem::Row(row) => {
                rows += 1;
                Fetch::Row(row.cells().map(|(_, v)| cell_text(v)).collect())
            }
        };
        if req.reply.send(Ok(fetch)).await.is_err() {
            break;
        }
    }
    let _ = req
        .reply
        .send(Ok(Fetch::Done {
            rows,
            has_rows: open,
        }))
        .await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(tls: TlsMode) -> ConnectSettings {
        ConnectSettings {
            kind: Kind::SqlServer,
            host: "db.example".into(),
            port: 1433,
            username: "sa".into(),
            password: "pw".into(),
            database: Some("master".into()),
            tls,
            ca_certificate: None,
            read_only: false,
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn config_from_settings() {
        let c = config(&settings(TlsMode::Require)).unwrap();
        assert_eq!(c.get_addr(), "db.example:1433");
        assert!(config(&settings(TlsMode::Disable)).is_ok());
    }

    #[test]
    fn cells_as_text() {
        assert_eq!(cell_text(&ColumnData::I32(Some(42))).as_deref(), Some("42"));
        assert_eq!(cell_text(&ColumnData::I32(None)), None);
        assert_eq!(
            cell_text(&ColumnData::Binary(Some(vec![0xab, 1].into()))).as_deref(),
            Some("0xAB01")
        );
        assert_eq!(
            cell_text(&ColumnData::String(Some("x".into()))).as_deref(),
            Some("x")
        );
        assert_eq!(
            cell_text(&ColumnData::Bit(Some(true))).as_deref(),
            Some("true")
        );
    }

    #[tokio::test]
    async fn cancel_closes_the_connection_task() {
        let task = tokio::spawn(std::future::pending::<()>());
        let c = Canceller::Disconnect(task.abort_handle());
        assert!(c.disconnects());
        c.cancel().await.unwrap();
        assert!(task.await.unwrap_err().is_cancelled());
    }

    #[tokio::test]
    async fn read_only_is_refused_and_unreachable_is_519() {
        let mut s = settings(TlsMode::Disable);
        s.read_only = true;
        let e = connect(&s).await.err().unwrap();
        assert_eq!(e.status, Status::ClientBadRequest);
        s.read_only = false;
        s.host = "127.0.0.1".into();
        s.port = 1;
        let e = connect(&s).await.err().unwrap();
        assert_eq!(e.status, Status::UpstreamNotFound);
    }
}
