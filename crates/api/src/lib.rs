//! Wire types of the control API (REST under `/v1`), shared by the server and the CLI.
//!
//! These are the JSON shapes on the wire and nothing else: the server converts its domain types
//! into them, the CLI reads them. Field names are snake_case; times are milliseconds since the
//! Unix epoch (`*_ms`), durations are milliseconds as numbers. The exceptions are AWS's own
//! shapes, which keep AWS's PascalCase names: PutEvents here, and [`eventbridge`]'s rule and bus
//! operations.

use serde::{Deserialize, Serialize};

pub mod eventbridge;

/// `GET /v1/health`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` while the store cannot write.
    pub status: String,
    pub app: String,
    pub functions: usize,
    pub version: String,
    /// Why the store cannot write, while it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
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

/// `POST /v1/events`: EventBridge's PutEvents, with its field names, so an existing request body
/// works as it is. `Detail` is JSON text.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEvents {
    pub entries: Vec<PutEventsEntry>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_bus_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// RFC 3339, or epoch seconds as the AWS SDKs send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<serde_json::Value>,
    /// A W3C `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsResult {
    pub failed_entry_count: usize,
    pub entries: Vec<PutEventsResultEntry>,
}

/// `EventId` for an accepted entry, `ErrorCode` + `ErrorMessage` for a failed one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutEventsResultEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// One rule as `GET /v1/rules` lists it: the rule in EventBridge's shape (`Name`,
/// `EventBusName`, `EventPattern`, `State`, `Targets`), and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rule {
    pub origin: String,
    pub rule: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleList {
    pub rules: Vec<Rule>,
}

/// One event as stored: the envelope plus what muon knows about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub bus: String,
    pub ingested_ms: i64,
    pub trace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
    /// The event in the EventBridge envelope.
    pub event: serde_json::Value,
}

/// One delivery of an event to one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub bus: String,
    pub rule: String,
    pub target: String,
    /// `pending`, `delivered` or `dead_lettered`.
    pub status: String,
    pub attempts: u32,
    pub created_ms: i64,
    pub due_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// For dead letters: `MaximumRetryAttempts`, `MaximumEventAge` or `NonRetryable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhausted: Option<String>,
    /// The span ID the delivery's `traceparent` carries.
    pub span_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

/// `POST /v1/dlq/redrive`: these deliveries, or every dead letter when `ids` is absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Redrive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Count {
    pub count: usize,
}

/// `POST /v1/replays`: send a bus's stored events from a time window through its rules again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replay {
    pub name: String,
    #[serde(default = "default_bus")]
    pub bus: String,
    /// Replay this archive's events (to its bus) instead of all of `bus`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Only these rules (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<String>>,
}

/// One archive in `GET /v1/archives`: its EventBridge JSON, where it came from, and what it
/// holds now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Archive {
    /// `manifest` or `api`.
    pub origin: String,
    /// `{"ArchiveName", "EventSourceArn", "EventPattern", "RetentionDays", "Description"}`.
    pub archive: serde_json::Value,
    pub events: usize,
    pub size_bytes: usize,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveList {
    pub archives: Vec<Archive>,
}

/// One remembered replay in `GET /v1/replays`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayRecord {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    pub bus: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// `COMPLETED` or `FAILED`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub events: usize,
    pub started_ms: i64,
    pub ended_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplayList {
    pub replays: Vec<ReplayRecord>,
}

fn default_bus() -> String {
    "default".into()
}

/// `GET /v1/events/{id}/trace`: the event, its deliveries, and what they published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceNode {
    pub event: Event,
    pub deliveries: Vec<TraceDelivery>,
    /// Events this event's deliveries published were left out: the trace reached its limit
    /// (1,000 events).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceDelivery {
    pub delivery: Delivery,
    pub emitted: Vec<TraceNode>,
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
