//! Event archives: named, filtered views of a bus's stored events, which replays read from.
//!
//! One model for both places archives come from: `[[archive]]` tables in `muon.toml` and the
//! control API's JSON (EventBridge's CreateArchive shape). An archive copies nothing: muon stores
//! every accepted event once, and an archive is the bus, pattern and retention that select some of
//! them.

use std::time::Duration;

use muon_types::{ArchiveName, BusName};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::rule::ApiProblems;

/// At most this many characters in an archive's description (EventBridge's limit).
pub const MAX_DESCRIPTION: usize = 512;
const DAY: u64 = 86_400;

/// A validated archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    pub name: ArchiveName,
    /// The bus whose events it holds.
    pub bus: BusName,
    /// The event pattern's JSON text, already validated; `None` holds every event of the bus.
    pub pattern: Option<String>,
    /// How old an event it holds may be; `None` keeps them indefinitely.
    pub retention: Option<Duration>,
    pub description: Option<String>,
}

impl Archive {
    /// The ARN AWS would give this archive in `region` and `account`.
    pub fn arn(&self, region: &str, account: &str) -> String {
        format!("arn:aws:events:{region}:{account}:archive/{}", self.name)
    }

    /// The archive's retention in EventBridge's whole days (0 = indefinitely), rounded up.
    pub fn retention_days(&self) -> u64 {
        self.retention
            .map_or(0, |r| r.as_secs().div_ceil(DAY).max(1))
    }
}

/// A problem with an archive sent to the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct ArchiveError {
    /// `InvalidEventPatternException` when only the pattern is wrong, else `ValidationException`.
    pub code: &'static str,
    pub problems: Vec<String>,
}

/// How an archive's keys are named in messages (TOML and API spell them apart).
struct Keys {
    name: String,
    bus: String,
    pattern: String,
    description: String,
}

/// Validate an archive's parts; `problem(key, why)` hears every problem.
fn validate(
    name: Option<&str>,
    bus: Option<&str>,
    pattern: Option<String>,
    retention: Option<Duration>,
    description: Option<String>,
    keys: &Keys,
    problem: &mut dyn FnMut(String, String),
) -> Option<Archive> {
    let name = match name.map(ArchiveName::new) {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            problem(keys.name.clone(), e.to_string());
            None
        }
        None => {
            problem(keys.name.clone(), "missing".into());
            None
        }
    };
    let bus = match bus.map(BusName::new) {
        None => Some(BusName::default_bus()),
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => {
            problem(keys.bus.clone(), e.to_string());
            None
        }
    };
    let mut pattern_ok = true;
    if let Some(p) = &pattern {
        if p.chars().count() > crate::rule::MAX_PATTERN_CHARS_API {
            problem(
                keys.pattern.clone(),
                format!(
                    "the pattern is longer than {} characters",
                    crate::rule::MAX_PATTERN_CHARS_API
                ),
            );
            pattern_ok = false;
        } else if let Err(e) = muon_pattern::Pattern::parse(p) {
            problem(keys.pattern.clone(), e.to_string());
            pattern_ok = false;
        }
    }
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        problem(
            keys.description.clone(),
            format!("longer than {MAX_DESCRIPTION} characters"),
        );
    }
    if !pattern_ok {
        return None;
    }
    Some(Archive {
        name: name?,
        bus: bus?,
        pattern,
        retention,
        description,
    })
}

// ---- muon.toml ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArchive {
    name: Option<String>,
    bus: Option<String>,
    pattern: Option<toml::Value>,
    retention: Option<String>,
    description: Option<String>,
}

impl RawArchive {
    pub(crate) fn validate(
        self,
        index: usize,
        problem: &mut dyn FnMut(String, String),
    ) -> Option<Archive> {
        let key = |field: &str| format!("archive[{index}].{field}");
        let pattern = match self.pattern.map(crate::rule::toml_to_json) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(why)) => {
                problem(key("pattern"), why);
                return None;
            }
        };
        let mut retention_ok = true;
        let retention = match self.retention.as_deref().map(muon_types::parse_duration) {
            None => None,
            Some(Ok(d)) if d.as_secs() >= 1 => Some(d),
            Some(Ok(_)) => {
                problem(
                    key("retention"),
                    "must be at least 1s: leave `retention` out to keep events indefinitely".into(),
                );
                retention_ok = false;
                None
            }
            Some(Err(e)) => {
                problem(key("retention"), format!("{e}; e.g. \"30d\", \"12h\""));
                retention_ok = false;
                None
            }
        };
        let keys = Keys {
            name: key("name"),
            bus: key("bus"),
            pattern: key("pattern"),
            description: key("description"),
        };
        let archive = validate(
            self.name.as_deref(),
            self.bus.as_deref(),
            pattern,
            retention,
            self.description,
            &keys,
            problem,
        )?;
        retention_ok.then_some(archive)
    }
}

// ---- the control API (EventBridge's names) ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ApiArchive {
    archive_name: Option<String>,
    event_source_arn: Option<String>,
    event_pattern: Option<Value>,
    retention_days: Option<i64>,
    description: Option<String>,
}

/// The bus an `EventSourceArn` names: a bus ARN (`arn:aws:events:R:A:event-bus/NAME`) or a bare
/// bus name.
pub fn bus_of_source_arn(arn: &str) -> Result<BusName, String> {
    let name = if arn.starts_with("arn:") {
        match arn.split(':').collect::<Vec<_>>().as_slice() {
            ["arn", _, "events", _, _, resource] => resource
                .strip_prefix("event-bus/")
                .ok_or_else(|| format!("{arn:?} is not an event bus ARN"))?,
            _ => return Err(format!("{arn:?} is not an event bus ARN")),
        }
    } else {
        arn
    };
    BusName::new(name).map_err(|e| e.to_string())
}

impl Archive {
    /// An archive from the control API's JSON: `{"ArchiveName", "EventSourceArn",
    /// "EventPattern", "RetentionDays", "Description"}`.
    pub fn from_api_json(text: &str) -> Result<Archive, ArchiveError> {
        let invalid = |problems| ArchiveError {
            code: "ValidationException",
            problems,
        };
        let raw: ApiArchive = serde_json::from_str(text)
            .map_err(|e| invalid(vec![format!("malformed archive: {e}")]))?;
        let mut problems = ApiProblems::default();
        let bus = match raw.event_source_arn.as_deref().map(bus_of_source_arn) {
            None => {
                problems.other("EventSourceArn: missing: which bus's events does it hold?".into());
                None
            }
            Some(Ok(b)) => Some(b),
            Some(Err(why)) => {
                problems.other(format!("EventSourceArn: {why}"));
                None
            }
        };
        let retention = match raw.retention_days {
            None | Some(0) => None,
            Some(d) if (1..=36_500).contains(&d) => Some(Duration::from_secs(d as u64 * DAY)),
            Some(d) => {
                problems.other(format!(
                    "RetentionDays: {d} is out of range: use 0 (indefinitely) to 36500"
                ));
                None
            }
        };
        let keys = Keys {
            name: "ArchiveName".into(),
            bus: "EventSourceArn".into(),
            pattern: "EventPattern".into(),
            description: "Description".into(),
        };
        let archive = validate(
            raw.archive_name.as_deref(),
            bus.as_ref().map(BusName::as_str),
            raw.event_pattern.map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            retention,
            raw.description,
            &keys,
            &mut |key, why| problems.field(&key, why),
        );
        match archive {
            Some(a) if problems.is_empty() => Ok(a),
            _ => Err(ArchiveError {
                code: problems.code(),
                problems: problems.list,
            }),
        }
    }

    /// The archive in the API's JSON form (what [`Archive::from_api_json`] reads back); the
    /// `EventSourceArn` is the bare bus name, which the AWS protocol turns into an ARN.
    pub fn to_api_json(&self) -> Value {
        let mut v = json!({
            "ArchiveName": self.name,
            "EventSourceArn": self.bus,
            "RetentionDays": self.retention_days(),
        });
        if let Some(p) = &self.pattern {
            v["EventPattern"] = json!(p);
        }
        if let Some(d) = &self.description {
            v["Description"] = json!(d);
        }
        v
    }
}
