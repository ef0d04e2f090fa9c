//! Wire types of the control API (REST under `/v1`), shared by the server and the CLI.
//!
//! These are the JSON shapes on the wire and nothing else: the server converts its domain types
//! into them, the CLI reads them. Field names are snake_case; times are milliseconds since the
//! Unix epoch (`*_ms`), durations are milliseconds as numbers.

use serde::{Deserialize, Serialize};

/// `GET /v1/health`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub app: String,
    pub functions: usize,
    pub version: String,
}

/// One function, as `GET /v1/functions` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    pub runtime: String,
    pub route: Option<String>,
    pub source: String,
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub min_instances: u32,
    pub max_instances: u32,
    pub instance_reuse: u32,
    pub invocations: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionList {
    pub functions: Vec<Function>,
}

/// One invocation. `logs` is present when one invocation is asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invocation {
    pub id: String,
    pub function: String,
    pub started_ms: u64,
    pub duration_ms: f64,
    /// `ok`, `trap`, `timeout`, `memory_limit` or `start_failed`.
    pub status: String,
    pub http_status: Option<u16>,
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Vec<LogLine>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvocationList {
    pub invocations: Vec<Invocation>,
}

/// One line a function wrote; `stream` is `stdout`, `stderr` or `platform` (muon about it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLine {
    pub time_ms: u64,
    pub function: String,
    pub invocation_id: String,
    pub stream: String,
    pub text: String,
}

/// `GET /v1/functions/{name}/logs`; with `?follow=true` the answer is instead a stream of
/// [`LogLine`]s, one JSON object per line (`application/x-ndjson`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogList {
    pub logs: Vec<LogLine>,
}

/// `POST /v1/events/test-pattern`: does `event` match `event_pattern`? Both are JSON texts (as in
/// EventBridge's TestEventPattern), because exact matching compares numbers as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestEventPattern {
    pub event_pattern: String,
    pub event: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestEventPatternResult {
    pub result: bool,
}

/// Every error the API (and the gateway) answers with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code: `not_found`, `bad_request`, `payload_too_large`, `trap`, `timeout`,
    /// `memory_limit`, `start_failed`, ...
    pub error: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
}

/// The header that carries an invocation's ID on every answer from a function.
pub const INVOCATION_ID_HEADER: &str = "x-muon-invocation-id";

/// The header on answers that muon itself made (not the function): its value is the error code.
pub const ERROR_HEADER: &str = "x-muon-error";

/// Format milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            super::rfc3339(1_795_651_200_000),
            "2026-11-26T00:00:00.000Z"
        );
    }
}
