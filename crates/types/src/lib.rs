//! The shared vocabulary of muon: typed IDs with prefixed text forms, validated resource names,
//! durations as users write them, and the outcome of an invocation.
//!
//! Design decision: every ID and name is a newtype that can only be built through a validating
//! constructor, so the rest of the code never handles a raw `String` that might be malformed.
//! This crate never does IO and never reads the clock.

/// The one bound on JSON nesting, for everything muon takes in: an event's whole envelope
/// (so 127 levels for its `detail`), CloudEvents, workflow inputs, outputs and definitions.
/// serde_json parses to this depth by default, and every recursion over such data stays far
/// within a thread's stack at it.
pub const MAX_JSON_DEPTH: usize = 128;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a name or ID was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("function name {0:?} is invalid: use 1-64 characters from a-z, A-Z, 0-9, '-' and '_'")]
    FunctionName(String),
    #[error("invocation id {0:?} is invalid: expected `inv_` followed by 32 hex digits")]
    InvocationId(String),
    #[error("event id {0:?} is invalid: expected a UUID")]
    EventId(String),
    #[error("delivery id {0:?} is invalid: expected `dlv_` followed by 32 hex digits")]
    DeliveryId(String),
    #[error(
        "event bus name {0:?} is invalid: use 1-256 characters from a-z, A-Z, 0-9, '.', '-', '_' and '/'"
    )]
    BusName(String),
    #[error("rule name {0:?} is invalid: use 1-64 characters from a-z, A-Z, 0-9, '.', '-' and '_'")]
    RuleName(String),
    #[error(
        "archive name {0:?} is invalid: use 1-48 characters from a-z, A-Z, 0-9, '.', '-' and '_'"
    )]
    ArchiveName(String),
    #[error(
        "duration {0:?} is invalid: write a number with a unit, e.g. \"500ms\", \"30s\", \"5m\""
    )]
    Duration(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A function's name: `[a-zA-Z0-9-_]{1,64}`, as AWS Lambda requires. Cloning it is cheap: every
/// invocation carries its function's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionName(Arc<str>);

impl FunctionName {
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(name.into()))
        } else {
            Err(Error::FunctionName(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for FunctionName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl Serialize for FunctionName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FunctionName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

/// The ID of one invocation of a function: `inv_` and 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvocationId(u128);

impl InvocationId {
    const PREFIX: &'static str = "inv_";

    /// A fresh random ID.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// The text form, `inv_` and 32 lowercase hex digits, without allocating: it goes into a
    /// header of every response.
    pub fn to_ascii(self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..4].copy_from_slice(Self::PREFIX.as_bytes());
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in self.0.to_be_bytes().iter().enumerate() {
            out[4 + 2 * i] = HEX[usize::from(byte >> 4)];
            out[5 + 2 * i] = HEX[usize::from(byte & 0x0f)];
        }
        out
    }
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ascii = self.to_ascii();
        f.write_str(std::str::from_utf8(&ascii).expect("the text form is ASCII"))
    }
}

impl FromStr for InvocationId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvocationId(s.to_string());
        let hex = s.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u128::from_str_radix(hex, 16).map(Self).map_err(|_| bad())
    }
}

impl Serialize for InvocationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InvocationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Defines a validated name newtype: `$name::new` checks `$valid` and reports `$err`.
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $err:ident, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(name: impl Into<String>) -> Result<Self> {
                let name = name.into();
                let valid: fn(&str) -> bool = $valid;
                if valid(&name) { Ok(Self(name)) } else { Err(Error::$err(name)) }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// An event bus's name, as EventBridge allows it: `[/.\-_A-Za-z0-9]{1,256}`.
    BusName,
    BusName,
    |n| (1..=256).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
);

impl BusName {
    /// The bus that always exists.
    pub fn default_bus() -> Self {
        Self("default".into())
    }
}

name_type!(
    /// A rule's name, as EventBridge allows it: `[.\-_A-Za-z0-9]{1,64}`.
    RuleName,
    RuleName,
    |n| (1..=64).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
);

name_type!(
    /// An event archive's name, as EventBridge allows it: `[.\-_A-Za-z0-9]{1,48}`.
    ArchiveName,
    ArchiveName,
    |n| (1..=48).contains(&n.len())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
);

/// An event's ID: a UUID in its hyphenated text form, as EventBridge gives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(u128);

impl EventId {
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// The ID with these 128 bits (a time-ordered UUIDv7 made by a caller that reads the clock).
    pub fn from_u128(bits: u128) -> Self {
        Self(bits)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        uuid::Uuid::from_u128(self.0).hyphenated().fmt(f)
    }
}

impl FromStr for EventId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        uuid::Uuid::try_parse(s)
            .map(|u| Self(u.as_u128()))
            .map_err(|_| Error::EventId(s.to_string()))
    }
}

/// The ID of one delivery of an event to one target: `dlv_` and 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId(u128);

impl DeliveryId {
    const PREFIX: &'static str = "dlv_";

    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// The ID with these 128 bits (a time-ordered UUIDv7 made by a caller that reads the clock).
    pub fn from_u128(bits: u128) -> Self {
        Self(bits)
    }

    /// A W3C trace-context span ID (16 hex digits) for this delivery.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.0 as u64)
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:032x}", Self::PREFIX, self.0)
    }
}

impl FromStr for DeliveryId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::DeliveryId(s.to_string());
        let hex = s.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u128::from_str_radix(hex, 16).map(Self).map_err(|_| bad())
    }
}

/// Serialize and deserialize through the text form.
macro_rules! text_serde {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

text_serde!(EventId, DeliveryId);

/// Parse a duration as users write it: `250ms`, `30s`, `5m`, `1h`, `7d`, or a bare number of
/// seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = || Error::Duration(text.to_string());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(bad()),
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Render a duration the way [`parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The function answered (any HTTP status) and finished cleanly.
    Ok,
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    Trap,
    /// The invocation ran past the function's timeout and was stopped.
    Timeout,
    /// The guest tried to grow its memory past the function's limit.
    MemoryLimit,
    /// The function could not be started (instantiation failed, no capacity).
    StartFailed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Trap => "trap",
            Status::Timeout => "timeout",
            Status::MemoryLimit => "memory_limit",
            Status::StartFailed => "start_failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which guest stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
    /// A line written by muon itself about the invocation (why it failed, for example).
    Platform,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_follow_lambda_rules() {
        assert!(FunctionName::new("hello-world_2").is_ok());
        assert!(FunctionName::new("a".repeat(64)).is_ok());
        for bad in [
            "",
            "has space",
            "dot.name",
            "slash/",
            &"a".repeat(65),
            "ünï",
        ] {
            assert!(FunctionName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn invocation_ids_round_trip() {
        let id = InvocationId::random();
        let text = id.to_string();
        assert!(text.starts_with("inv_") && text.len() == 36, "{text}");
        assert_eq!(text.parse::<InvocationId>().unwrap(), id);
        let known = InvocationId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        assert_eq!(known.to_string(), "inv_0123456789abcdeffedcba9876543210");
        assert_eq!(format!("{:032x}", known.0), &known.to_string()[4..]);
        assert!("inv_xyz".parse::<InvocationId>().is_err());
        assert!(
            "evt_00000000000000000000000000000000"
                .parse::<InvocationId>()
                .is_err()
        );
    }

    #[test]
    fn bus_ids_and_names_validate() {
        let id = EventId::random();
        assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
        assert_eq!(id.to_string().len(), 36);
        assert!("not-a-uuid".parse::<EventId>().is_err());
        let d = DeliveryId::random();
        assert_eq!(d.to_string().parse::<DeliveryId>().unwrap(), d);
        assert_eq!(d.span_id().len(), 16);
        assert!(BusName::new("orders/eu-1.prod").is_ok());
        assert!(BusName::new("").is_err() && BusName::new("a b").is_err());
        assert!(RuleName::new("order.placed-1").is_ok());
        assert!(RuleName::new("a/b").is_err() && RuleName::new("x".repeat(65)).is_err());
        assert!(ArchiveName::new("orders.2024-x_1").is_ok());
        assert!(ArchiveName::new("a/b").is_err() && ArchiveName::new("x".repeat(49)).is_err());
    }

    #[test]
    fn durations_parse_as_written() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        for bad in ["", "s", "ten seconds", "5 parsecs", "-1s", "1e999"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
    }
}
