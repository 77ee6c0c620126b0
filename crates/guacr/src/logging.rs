//! `tracing` setup with guacd's log levels (`-L`).

use tracing_subscriber::filter::LevelFilter;

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

pub fn init(level: &str, format: &str) -> anyhow::Result<()> {
    let level = parse_level(level)?;
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy()
        // Library chatter stays at warn unless asked for explicitly.
        .add_directive("russh=warn".parse()?)
        .add_directive("rustls=warn".parse()?);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}
