//! EventBridge schedule expressions: `rate(...)`, `cron(...)` and `at(...)`,
//! parsed and evaluated in an IANA time zone.
//!
//! This crate answers one question: given a schedule and an instant, when does
//! it fire next? It is what a scheduler loop asks before it sleeps.
//!
//! Main design decision: everything is **pure**. No function reads the clock;
//! each one takes the instant to reason from (`after`), so behaviour is
//! reproducible and testable down to the DST transition. Cron fields are
//! matched against the *local* wall-clock time of the schedule's zone, and the
//! local time is then mapped back to UTC following EventBridge Scheduler's
//! documented rules:
//!
//! * a local time that does not exist (spring-forward gap) is skipped: the
//!   schedule moves on to the next matching local time that does exist;
//! * a local time that exists twice (fall-back overlap) fires once, at its
//!   first occurrence;
//! * `rate(...)` is a fixed duration (`1 day` is 24 hours, whatever the zone),
//!   counted from an anchor instant (see [`Schedule::with_anchor`]).
//!
//! It must never do IO, read the system clock, or panic on user input: every
//! malformed expression is an [`Error`] saying what is wrong and where.

mod cron;

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

pub use cron::Cron;

/// Why a schedule expression or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The expression was empty or only whitespace.
    #[error("empty schedule expression; expected rate(...), cron(...) or at(...)")]
    Empty,
    /// The expression as a whole is malformed.
    #[error("{expression}: {message}")]
    Syntax {
        /// The expression as given.
        expression: String,
        /// What is wrong with it.
        message: String,
    },
    /// One field of a cron expression is malformed.
    #[error("{expression}: {field}: {message}")]
    Field {
        /// The expression as given.
        expression: String,
        /// The field's name, such as `day-of-week`.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The time zone is not a known IANA name.
    #[error("unknown time zone `{name}`; expected an IANA name such as `Europe/Paris`")]
    TimeZone {
        /// The name as given.
        name: String,
    },
}

/// The unit of a `rate(...)` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateUnit {
    /// `minute` / `minutes`.
    Minutes,
    /// `hour` / `hours`.
    Hours,
    /// `day` / `days`: 24 hours, not a calendar day.
    Days,
}

impl RateUnit {
    fn seconds(self) -> i64 {
        match self {
            RateUnit::Minutes => 60,
            RateUnit::Hours => 3_600,
            RateUnit::Days => 86_400,
        }
    }
}

/// A `rate(value unit)` schedule: fires at `anchor + k * period` for every
/// integer `k`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    value: u32,
    unit: RateUnit,
    anchor: DateTime<Utc>,
}

impl Rate {
    /// The number of units between firings (at least 1).
    pub fn value(&self) -> u32 {
        self.value
    }

    /// The unit of [`Rate::value`].
    pub fn unit(&self) -> RateUnit {
        self.unit
    }

    /// The instant the firings are counted from (the Unix epoch unless set).
    pub fn anchor(&self) -> DateTime<Utc> {
        self.anchor
    }

    /// The time between two firings.
    pub fn period(&self) -> TimeDelta {
        TimeDelta::seconds(i64::from(self.value) * self.unit.seconds())
    }

    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if after < self.anchor {
            return Some(self.anchor);
        }
        let period = i64::from(self.value) * self.unit.seconds();
        let elapsed = after.signed_duration_since(self.anchor).num_seconds();
        // `elapsed` is floored to whole seconds; k periods with k*period <= elapsed
        // are not strictly after `after`.
        let k = elapsed / period + 1;
        let next = self
            .anchor
            .checked_add_signed(TimeDelta::try_seconds(k.checked_mul(period)?)?)?;
        debug_assert!(next > after);
        Some(next)
    }
}

/// An `at(yyyy-mm-ddThh:mm:ss)` one-time schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    local: NaiveDateTime,
    timezone: Tz,
    instant: DateTime<Utc>,
}

impl At {
    /// The wall-clock time as written.
    pub fn local(&self) -> NaiveDateTime {
        self.local
    }

    /// The zone [`At::local`] is read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The instant it fires. An ambiguous local time resolves to its first
    /// occurrence; a nonexistent one is moved later by the length of the gap
    /// (`02:30` on a spring-forward night fires at `03:30` new time).
    pub fn instant(&self) -> DateTime<Utc> {
        self.instant
    }
}

/// A parsed EventBridge schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(value unit)`.
    Rate(Rate),
    /// `cron(minutes hours day-of-month month day-of-week year)`.
    Cron(Box<Cron>),
    /// `at(yyyy-mm-ddThh:mm:ss)`.
    At(At),
}

impl Schedule {
    /// Parse `expression`, evaluated in `timezone` (an IANA name; `UTC` when
    /// `None`). `rate(...)` ignores the zone: its periods are fixed durations.
    ///
    /// ```
    /// use chrono::{DateTime, Utc};
    /// use muon_schedule::Schedule;
    ///
    /// let s = Schedule::parse("cron(0 9 ? * MON-FRI *)", Some("Europe/Paris")).unwrap();
    /// let now: DateTime<Utc> = "2024-03-29T12:00:00Z".parse().unwrap(); // a Friday
    /// let next: DateTime<Utc> = "2024-04-01T07:00:00Z".parse().unwrap(); // Monday 09:00 CEST
    /// assert_eq!(s.next_after(now), Some(next));
    ///
    /// let err = Schedule::parse("cron(0 12 ? * 8 *)", None).unwrap_err();
    /// assert_eq!(err.to_string(), "cron(0 12 ? * 8 *): day-of-week: `8` is out of range 1-7");
    /// ```
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Schedule, Error> {
        let tz = match timezone {
            None => Tz::UTC,
            Some(name) => name.trim().parse::<Tz>().map_err(|_| Error::TimeZone {
                name: name.to_owned(),
            })?,
        };
        let expression = expression.trim();
        if expression.is_empty() {
            return Err(Error::Empty);
        }
        let syntax = |message: String| Error::Syntax {
            expression: expression.to_owned(),
            message,
        };
        let Some(open) = expression.find('(') else {
            return Err(syntax(
                "expected rate(...), cron(...) or at(...)".to_owned(),
            ));
        };
        if !expression.ends_with(')') {
            return Err(syntax("missing closing `)`".to_owned()));
        }
        let kind = &expression[..open];
        let body = &expression[open + 1..expression.len() - 1];
        match kind {
            "rate" => parse_rate(expression, body).map(Schedule::Rate),
            "cron" => Cron::parse(expression, body, tz).map(|c| Schedule::Cron(Box::new(c))),
            "at" => parse_at(expression, body, tz).map(Schedule::At),
            other => Err(syntax(format!(
                "unknown schedule kind `{other}`; expected rate, cron or at"
            ))),
        }
    }

    /// Set the instant a `rate(...)` schedule counts its periods from (EventBridge's
    /// start date). Other schedules are returned unchanged.
    #[must_use]
    pub fn with_anchor(self, anchor: DateTime<Utc>) -> Schedule {
        match self {
            Schedule::Rate(rate) => Schedule::Rate(Rate { anchor, ..rate }),
            other => other,
        }
    }

    /// The first firing strictly after `after`, or `None` when there is none
    /// (an `at(...)` already passed, a cron expression's years exhausted).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Rate(rate) => rate.next_after(after),
            Schedule::Cron(cron) => cron.next_after(after),
            Schedule::At(at) => (at.instant > after).then_some(at.instant),
        }
    }

    /// Up to `n` successive firings strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while out.len() < n {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            out.push(next);
            cursor = next;
        }
        out
    }
}

fn parse_rate(expression: &str, body: &str) -> Result<Rate, Error> {
    let syntax = |message: String| Error::Syntax {
        expression: expression.to_owned(),
        message,
    };
    let parts: Vec<&str> = body.split_whitespace().collect();
    let [value, unit] = parts[..] else {
        return Err(syntax(format!(
            "expected two fields `value unit`, found {}",
            parts.len()
        )));
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(format!(
            "value: `{value}` is not a positive integer"
        )));
    }
    let value: u32 = value
        .parse()
        .map_err(|_| syntax(format!("value: `{value}` is too large")))?;
    if value == 0 {
        return Err(syntax("value: `0` is not a positive integer".to_owned()));
    }
    let (unit, plural) = match unit {
        "minute" => (RateUnit::Minutes, false),
        "minutes" => (RateUnit::Minutes, true),
        "hour" => (RateUnit::Hours, false),
        "hours" => (RateUnit::Hours, true),
        "day" => (RateUnit::Days, false),
        "days" => (RateUnit::Days, true),
        other => {
            return Err(syntax(format!(
                "unit: `{other}` is not one of minute(s), hour(s), day(s)"
            )));
        }
    };
    if value == 1 && plural {
        return Err(syntax(format!(
            "unit: a value of 1 takes the singular `{}`",
            &parts[1][..parts[1].len() - 1]
        )));
    }
    if value != 1 && !plural {
        return Err(syntax(format!(
            "unit: a value of {value} takes the plural `{}s`",
            parts[1]
        )));
    }
    Ok(Rate {
        value,
        unit,
        anchor: DateTime::UNIX_EPOCH,
    })
}

fn parse_at(expression: &str, body: &str, timezone: Tz) -> Result<At, Error> {
    let body = body.trim();
    let well_formed = body.len() == 19
        && body.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    let local = well_formed
        .then(|| NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S").ok())
        .flatten()
        .ok_or_else(|| Error::Syntax {
            expression: expression.to_owned(),
            message: format!("`{body}` is not a valid date and time yyyy-mm-ddThh:mm:ss"),
        })?;
    let instant = match timezone.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.with_timezone(&Utc)
        }
        chrono::LocalResult::None => {
            // In a spring-forward gap: read it with the offset in force before the gap.
            let before = timezone
                .offset_from_utc_datetime(&(local - TimeDelta::days(1)))
                .fix()
                .local_minus_utc();
            (local - TimeDelta::seconds(i64::from(before))).and_utc()
        }
    };
    Ok(At {
        local,
        timezone,
        instant,
    })
}
