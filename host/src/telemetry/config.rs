//! `[telemetry]`: log level and files, and where spans are exported.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// A `tracing` filter such as `info` or `micro_api=debug,info`.
    pub log_level: String,
    /// Where spans go over OTLP/HTTP (protobuf), e.g. `http://127.0.0.1:4318` (Jaeger >= 1.35,
    /// any OpenTelemetry collector); `/v1/traces` is added. Empty: no export, no OTel cost.
    pub otlp_endpoint: String,
    /// Share of new traces exported (0.0 to 1.0); a caller's sampled flag is followed.
    pub sampling_ratio: f64,
    /// `service.name` of the exported spans; `service.instance.id` is `[server] node_id`.
    pub service_name: String,
    /// A folder for rotating JSON log files (besides stdout); empty: stdout only.
    pub log_dir: PathBuf,
    /// When a new log file starts: `minutely`, `hourly`, `daily` or `never`.
    pub log_rotation: String,
    /// Log files kept in `log_dir`; older ones are deleted.
    pub log_files_kept: usize,
    /// A line per request (`json`), whatever `log_level` says; `off` by default.
    pub access_log: AccessLog,
}

/// The target of the access log's lines (written by the front door), which the log filter
/// lets through whatever the level when the access log is on.
pub const ACCESS_LOG_TARGET: &str = "micro_api::access";

/// `[telemetry] access_log`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    #[default]
    Off,
    Json,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_level: "info".into(),
            otlp_endpoint: String::new(),
            sampling_ratio: 1.0,
            service_name: "micro-api".into(),
            log_dir: PathBuf::new(),
            log_rotation: "daily".into(),
            log_files_kept: 7,
            access_log: AccessLog::Off,
        }
    }
}

impl TelemetryConfig {
    /// Every problem of `[telemetry]`, each with its fix.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            problems.push("[telemetry] sampling_ratio must be between 0.0 and 1.0".into());
        }
        if !["minutely", "hourly", "daily", "never"].contains(&self.log_rotation.as_str()) {
            problems.push(
                "[telemetry] log_rotation must be \"minutely\", \"hourly\", \"daily\" or \"never\""
                    .into(),
            );
        }
        let endpoint = &self.otlp_endpoint;
        if !endpoint.is_empty() && url::Url::parse(endpoint).is_err() {
            problems.push(format!(
                "[telemetry] otlp_endpoint {endpoint:?} is not a URL (e.g. \"http://127.0.0.1:4318\"; empty: off)"
            ));
        }
        if self.service_name.trim().is_empty() {
            problems.push("[telemetry] service_name must not be empty".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_telemetry_key_is_named_with_its_fix() {
        assert!(TelemetryConfig::default().problems().is_empty());
        let bad = TelemetryConfig {
            sampling_ratio: 1.5,
            log_rotation: "weekly".into(),
            otlp_endpoint: "localhost 4318".into(),
            service_name: " ".into(),
            ..TelemetryConfig::default()
        };
        let problems = bad.problems().join("\n");
        for key in [
            "sampling_ratio",
            "log_rotation",
            "otlp_endpoint",
            "service_name",
        ] {
            assert!(problems.contains(key), "{key} in {problems}");
        }
    }
}
