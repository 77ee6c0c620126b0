//! `tracing` setup with guacd's log levels (`-L`), text or JSON, and a level
//! that can be changed at runtime (configuration reload).

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, reload};

use crate::server::LogReloader;

/// guacd's level names (and tracing's).
pub fn parse_level(s: &str) -> anyhow::Result<LevelFilter> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warning" | "warn" => LevelFilter::WARN,
        "error" => LevelFilter::ERROR,
        "off" => LevelFilter::OFF,
        other => anyhow::bail!(
            "invalid log level {other:?} (expected trace, debug, info, warning or error)"
        ),
    })
}

fn filter(level: &str) -> anyhow::Result<EnvFilter> {
    let level = parse_level(level)?;
    Ok(EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy()
        // Library chatter stays at warn unless asked for explicitly.
        .add_directive("russh=warn".parse()?)
        .add_directive("rustls=warn".parse()?))
}

/// Installs the global subscriber; returns the function that changes the level.
///
/// JSON lines carry the fields of the enclosing spans (`connection`, `user`,
/// `protocol`, `peer`), so every line of a session can be attributed.
pub fn init(level: &str, format: &str) -> anyhow::Result<LogReloader> {
    let (filter_layer, handle) = reload::Layer::new(filter(level)?);
    let fmt_layer = if format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    tracing_subscriber::registry()
        .with(filter_layer)
        .with(fmt_layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))?;
    Ok(Box::new(move |level: &str| {
        let f = filter(level)?;
        handle
            .reload(f)
            .map_err(|e| anyhow::anyhow!("cannot change the log level: {e}"))
    }))
}
