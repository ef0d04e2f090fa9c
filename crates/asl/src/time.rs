//! Timestamps as Step Functions writes and reads them (RFC 3339, UTC, with
//! milliseconds in what it writes).

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses an RFC 3339 timestamp (as `Timestamp`, `TimestampPath` and the
/// Timestamp comparisons accept) into epoch milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .filter(|_| s.contains('T'))
        .map(|d| d.with_timezone(&Utc).timestamp_millis())
}

/// Formats epoch milliseconds the way the context object shows times
/// (`2024-01-01T00:00:00.000Z`).
pub fn format_millis(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}
