//! `muon-pattern`: the Amazon EventBridge event-pattern language, as
//! EventBridge and `aws/event-ruler` 2.x implement it.
//!
//! It validates patterns (rejecting invalid ones with EventBridge's
//! `InvalidEventPatternException` reasons) and decides whether an event
//! matches one, which is what the `TestEventPattern` API and event-bus rules
//! need.
//!
//! **Main design decision:** events and patterns are read with the crate's own
//! small JSON parser ([`json`]) that keeps the exact source text of every
//! number, because EventBridge compares exact values by their JSON text
//! (`300`, `300.0` and `3.0e2` are different strings; only `numeric`, and a
//! number literal's value, compare by value). A pattern is compiled into a
//! disjunction of conjunctions over dotted field paths (`$or` expanded);
//! [`Pattern::matches`] is a simple, correct backtracking search that honours
//! array consistency.
//!
//! [`RuleSet`] matches all the rules of a bus against an event together: it
//! indexes every conjunction's conditions per field path (exact values in
//! hash maps, prefixes in a byte trie, other matchers in a per-path list), so
//! an event's values find the conditions they satisfy at a cost that does not
//! grow with the number of exact and prefix rules. Conjunctions whose
//! conditions all hold are then confirmed with the naive matcher, so a
//! `RuleSet` answers exactly what [`Pattern::matches`] would.
//!
//! **It must never** do IO, read a clock, spawn threads or be async: it is a
//! pure function of its inputs. It must never normalise number text, and it
//! must bound its work: nesting depth ([`MAX_DEPTH`]), pattern length
//! ([`MAX_PATTERN_CHARS`]), `$or` expansion ([`MAX_OR_COMBINATIONS`]) and
//! wildcard complexity are all capped.

mod event;
pub mod json;
mod pattern;
mod ruleset;

#[cfg(test)]
mod tests;

pub use event::{Event, Fields};
pub use json::MAX_DEPTH;
pub use pattern::{MAX_OR_COMBINATIONS, MAX_PATTERN_CHARS, Pattern};
pub use ruleset::RuleSet;

/// Why a pattern or an event was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The pattern is not valid; the string is the reason.
    #[error("Event pattern is not valid. Reason: {0}")]
    InvalidPattern(String),
    /// The event is not valid; the string says why (AWS's message does not).
    #[error("Parameter Event is not valid.")]
    InvalidEvent(String),
}

impl Error {
    /// The AWS error code this error is reported with.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Error::InvalidPattern(_) => "InvalidEventPatternException",
            // What AWS answers `TestEventPattern` with for a bad event.
            Error::InvalidEvent(_) => "ValidationException",
        }
    }
}

/// EventBridge `TestEventPattern`: whether `event` matches `pattern`.
///
/// The pattern is validated first, then the event, which must be a JSON
/// object with the envelope fields `id`, `account`, `source`, `time`,
/// `region` and `detail-type`.
pub fn test_event_pattern(pattern: &str, event: &str) -> Result<bool, Error> {
    let pattern = Pattern::parse(pattern)?;
    let event = Event::parse(event)?;
    event.check_envelope()?;
    Ok(pattern.matches(&event))
}
