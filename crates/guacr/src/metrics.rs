//! Prometheus metrics. The recorder is process-wide (installed once); the
//! admin listener renders it.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the global recorder (once) and returns the handle to render it.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("guacr_handshake_seconds".into()),
                    &[
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            "guacr_frame_encode_seconds".into(),
                        ),
                        &[
                            0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
                        ],
                    )
                });
            let builder = match builder {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("metrics disabled: {e}");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "guacr_sessions_active",
        "Live connections (sessions) by protocol."
    );
    describe_counter!("guacr_sessions_total", "Connections started, by protocol.");
    describe_gauge!(
        "guacr_users_active",
        "Connected users (owners and joiners)."
    );
    describe_histogram!("guacr_handshake_seconds", "Time from `select` to `ready`.");
    describe_counter!(
        "guacr_bytes_sent_total",
        "Bytes queued to clients, by protocol."
    );
    describe_counter!("guacr_bytes_received_total", "Bytes received from clients.");
    describe_histogram!(
        "guacr_frame_encode_seconds",
        "Time to render one frame into instructions."
    );
    describe_counter!(
        "guacr_errors_total",
        "Error instructions sent, by status code."
    );
    describe_counter!(
        "guacr_recording_failures_total",
        "Recordings or typescripts that failed."
    );
    describe_counter!(
        "guacr_limit_rejections_total",
        "Connections refused by a limit, by limit."
    );
    describe_counter!(
        "guacr_config_reloads_total",
        "Configuration reloads, by result."
    );
}

/// Counts one error instruction sent with `status`.
pub fn error(status: guacr_protocol::Status) {
    metrics::counter!("guacr_errors_total", "status" => status.code().to_string()).increment(1);
}
