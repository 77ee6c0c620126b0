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

/// Flushes exported traces when dropped (at exit).
pub struct TracingGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("guacr: flushing traces failed: {e}");
        }
    }
}

fn otlp_provider(
    endpoint: &str,
    service: &str,
) -> anyhow::Result<opentelemetry_sdk::trace::SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot create the OTLP exporter for {endpoint}: {e}"))?;
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build())
}

/// Installs the global subscriber; returns the function that changes the level.
///
/// JSON lines carry the fields of the enclosing spans (`connection`, `user`,
/// `protocol`, `peer`), so every line of a session can be attributed.
pub fn init(level: &str, format: &str) -> anyhow::Result<LogReloader> {
    init_with_traces(level, format, None).map(|(r, _)| r)
}

/// [`init`] plus OpenTelemetry export of the spans (connection, session) over
/// OTLP/HTTP when `otlp` = Some((endpoint, service name)).
pub fn init_with_traces(
    level: &str,
    format: &str,
    otlp: Option<(&str, &str)>,
) -> anyhow::Result<(LogReloader, TracingGuard)> {
    let provider = match otlp {
        Some((endpoint, service)) => Some(otlp_provider(endpoint, service)?),
        None => None,
    };
    let otel_layer = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(p.tracer("guacr"))
    });
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
        .with(otel_layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))?;
    let reloader: LogReloader = Box::new(move |level: &str| {
        let f = filter(level)?;
        handle
            .reload(f)
            .map_err(|e| anyhow::anyhow!("cannot change the log level: {e}"))
    });
    Ok((reloader, TracingGuard { provider }))
}
