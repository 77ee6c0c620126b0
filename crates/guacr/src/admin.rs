//! The admin listener: `GET /metrics` (Prometheus text format),
//! `GET /health/live` and `GET /health/ready`. A deliberately tiny HTTP/1.1
//! responder: one request per connection, GET only, bounded reads.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::server::ServerState;

pub async fn serve(listener: TcpListener, state: Arc<ServerState>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), handle(sock, state)).await;
        });
    }
}

async fn handle(mut sock: TcpStream, state: Arc<ServerState>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 8192 {
            return respond(&mut sock, 431, "text/plain", "request too large\n").await;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return respond(&mut sock, 405, "text/plain", "method not allowed\n").await;
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => {
            let body = state.render_metrics();
            respond(&mut sock, 200, "text/plain; version=0.0.4", &body).await
        }
        "/health/live" => respond(&mut sock, 200, "text/plain", "ok\n").await,
        "/health/ready" => match state.ready() {
            Ok(()) => respond(&mut sock, 200, "text/plain", "ready\n").await,
            Err(problems) => {
                let body = problems.join("\n") + "\n";
                respond(&mut sock, 503, "text/plain", &body).await
            }
        },
        _ => respond(&mut sock, 404, "text/plain", "not found\n").await,
    }
}

async fn respond(sock: &mut TcpStream, code: u16, ctype: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await?;
    sock.shutdown().await
}
