//! `cron(minutes hours day-of-month month day-of-week year)`.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::Error;

const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 2199;

/// A set of small integers `min..=max` (at most 256 of them).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ValueSet {
    min: u32,
    bits: [u64; 4],
}

impl ValueSet {
    fn new(min: u32) -> Self {
        ValueSet { min, bits: [0; 4] }
    }

    fn insert(&mut self, value: u32) {
        let i = (value - self.min) as usize;
        self.bits[i / 64] |= 1 << (i % 64);
    }

    fn contains(&self, value: u32) -> bool {
        match value.checked_sub(self.min) {
            Some(i) if i < 256 => self.bits[i as usize / 64] & (1 << (i % 64)) != 0,
            _ => false,
        }
    }
}

/// How a cron expression picks days.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Days {
    /// Day-of-month is set, day-of-week is `?`.
    OfMonth {
        days: ValueSet,
        last: bool,
        last_weekday: bool,
        nearest_weekday: Vec<u32>,
    },
    /// Day-of-week is set (1 = Sunday), day-of-month is `?`.
    OfWeek {
        days: ValueSet,
        last_of: Vec<u32>,
        nth: Vec<(u32, u32)>,
    },
}

/// A parsed `cron(...)` expression and the zone its fields are read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    expression: String,
    timezone: Tz,
    minutes: ValueSet,
    hours: ValueSet,
    days: Days,
    months: ValueSet,
    years: ValueSet,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Field = Field {
    name: "minutes",
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Field = Field {
    name: "hours",
    min: 0,
    max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 1,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};
const YEAR: Field = Field {
    name: "year",
    min: FIRST_YEAR as u32,
    max: LAST_YEAR as u32,
    names: &[],
};

struct Ctx<'a> {
    expression: &'a str,
    field: &'static Field,
}

impl Ctx<'_> {
    fn err(&self, message: String) -> Error {
        Error::Field {
            expression: self.expression.to_owned(),
            field: self.field.name,
            message,
        }
    }

    /// One value: a number or (where the field has them) a name.
    fn value(&self, text: &str) -> Result<u32, Error> {
        let f = self.field;
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(v) if (f.min..=f.max).contains(&v) => Ok(v),
                _ => Err(self.err(format!("`{text}` is out of range {}-{}", f.min, f.max))),
            };
        }
        if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(f.min + i as u32);
        }
        if f.names.is_empty() {
            Err(self.err(format!("`{text}` is not a number")))
        } else {
            Err(self.err(format!(
                "`{text}` is neither a number {}-{} nor one of {}",
                f.min,
                f.max,
                f.names.join(", ")
            )))
        }
    }

    /// One list element of the plain kinds: `*`, `v`, `a-b`, each optionally `/step`.
    fn range(&self, element: &str, set: &mut ValueSet) -> Result<(), Error> {
        let f = self.field;
        let (base, step) = match element.split_once('/') {
            Some((base, step)) => {
                let span = f.max - f.min + 1;
                let step = match step.parse::<u32>() {
                    Ok(s) if s >= 1 && s <= span && step.bytes().all(|b| b.is_ascii_digit()) => s,
                    _ => {
                        return Err(self.err(format!(
                            "in `{element}`: step `{step}` is not a number 1-{span}"
                        )));
                    }
                };
                (base, Some(step))
            }
            None => (element, None),
        };
        let (start, end) = if base == "*" {
            (f.min, f.max)
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (self.value(a)?, self.value(b)?);
            if a > b {
                return Err(self.err(format!("range `{base}` runs backwards ({a} is after {b})")));
            }
            (a, b)
        } else {
            let v = self.value(base)?;
            (v, if step.is_some() { f.max } else { v })
        };
        let step = step.unwrap_or(1) as usize;
        for v in (start..=end).step_by(step) {
            set.insert(v);
        }
        Ok(())
    }

    /// A field made only of plain elements.
    fn plain(&self, text: &str) -> Result<ValueSet, Error> {
        let mut set = ValueSet::new(self.field.min);
        for element in self.elements(text)? {
            self.range(element, &mut set)?;
        }
        Ok(set)
    }

    fn elements<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, Error> {
        let elements: Vec<&str> = text.split(',').collect();
        for e in &elements {
            if e.is_empty() {
                return Err(self.err(format!("`{text}` has an empty list element")));
            }
            if *e == "?" {
                return Err(self.err("`?` must stand alone, not in a list".to_owned()));
            }
            if e.contains('?') {
                return Err(self.err(format!("`{e}` is not valid here")));
            }
        }
        Ok(elements)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// 1 = Sunday ... 7 = Saturday.
fn weekday(year: i32, month: u32, day: u32) -> u32 {
    NaiveDate::from_ymd_opt(year, month, day).map_or(0, |d| d.weekday().number_from_sunday())
}

impl Cron {
    pub(crate) fn parse(expression: &str, body: &str, timezone: Tz) -> Result<Cron, Error> {
        let fields: Vec<&str> = body.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = fields[..] else {
            return Err(Error::Syntax {
                expression: expression.to_owned(),
                message: format!(
                    "expected 6 fields (minutes hours day-of-month month day-of-week year), found {}",
                    fields.len()
                ),
            });
        };
        let ctx = |field: &'static Field| Ctx { expression, field };
        let minutes = ctx(&MINUTES).plain(minutes)?;
        let hours = ctx(&HOURS).plain(hours)?;
        let months = ctx(&MONTH).plain(month)?;
        let years = ctx(&YEAR).plain(year)?;
        let days = match (dom == "?", dow == "?") {
            (true, true) => {
                return Err(Error::Syntax {
                    expression: expression.to_owned(),
                    message: "exactly one of day-of-month and day-of-week must be `?`, both are"
                        .to_owned(),
                });
            }
            (false, false) => {
                return Err(Error::Syntax {
                    expression: expression.to_owned(),
                    message: "exactly one of day-of-month and day-of-week must be `?`, neither is"
                        .to_owned(),
                });
            }
            (false, true) => parse_day_of_month(&ctx(&DAY_OF_MONTH), dom)?,
            (true, false) => parse_day_of_week(&ctx(&DAY_OF_WEEK), dow)?,
        };
        Ok(Cron {
            expression: expression.to_owned(),
            timezone,
            minutes,
            hours,
            days,
            months,
            years,
        })
    }

    /// The expression as given, `cron(...)` included.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The zone the fields are read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Whether the wall-clock time `local` (in [`Cron::timezone`]) matches every
    /// field; seconds must be zero. Says nothing about whether `local` exists.
    pub fn matches_local(&self, local: NaiveDateTime) -> bool {
        local.second() == 0
            && local.nanosecond() == 0
            && self.minutes.contains(local.minute())
            && self.hours.contains(local.hour())
            && self.months.contains(local.month())
            && u32::try_from(local.year()).is_ok_and(|y| self.years.contains(y))
            && self.day_matches(local.year(), local.month(), local.day())
    }

    fn day_matches(&self, year: i32, month: u32, day: u32) -> bool {
        let last = days_in_month(year, month);
        if day > last {
            return false;
        }
        match &self.days {
            Days::OfMonth {
                days,
                last: want_last,
                last_weekday,
                nearest_weekday,
            } => {
                if days.contains(day) || (*want_last && day == last) {
                    return true;
                }
                if *last_weekday {
                    let lw = match weekday(year, month, last) {
                        7 => last - 1,
                        1 => last - 2,
                        _ => last,
                    };
                    if day == lw {
                        return true;
                    }
                }
                nearest_weekday.iter().any(|&n| {
                    n <= last
                        && day
                            == match weekday(year, month, n) {
                                7 if n == 1 => 3,
                                7 => n - 1,
                                1 if n == last => n - 2,
                                1 => n + 1,
                                _ => n,
                            }
                })
            }
            Days::OfWeek { days, last_of, nth } => {
                let wd = weekday(year, month, day);
                days.contains(wd)
                    || (last_of.contains(&wd) && day + 7 > last)
                    || nth.iter().any(|&(d, n)| d == wd && (day - 1) / 7 + 1 == n)
            }
        }
    }

    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut start = after.with_timezone(&self.timezone).naive_local();
        if start.year() < FIRST_YEAR {
            start = NaiveDate::from_ymd_opt(FIRST_YEAR, 1, 1)?.and_hms_opt(0, 0, 0)?;
        }
        let (sy, sm, sd, sh, smin) = (
            start.year(),
            start.month(),
            start.day(),
            start.hour(),
            start.minute(),
        );
        for year in sy..=LAST_YEAR {
            if !self.years.contains(year as u32) {
                continue;
            }
            let first_year = year == sy;
            for month in if first_year { sm } else { 1 }..=12 {
                if !self.months.contains(month) {
                    continue;
                }
                let first_month = first_year && month == sm;
                for day in if first_month { sd } else { 1 }..=days_in_month(year, month) {
                    if !self.day_matches(year, month, day) {
                        continue;
                    }
                    let first_day = first_month && day == sd;
                    let date = NaiveDate::from_ymd_opt(year, month, day)?;
                    for hour in if first_day { sh } else { 0 }..24 {
                        if !self.hours.contains(hour) {
                            continue;
                        }
                        let first_hour = first_day && hour == sh;
                        for minute in if first_hour { smin } else { 0 }..60 {
                            if !self.minutes.contains(minute) {
                                continue;
                            }
                            let local = date.and_hms_opt(hour, minute, 0)?;
                            match self.timezone.from_local_datetime(&local) {
                                // Fall-back overlap: only the first occurrence fires.
                                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                                    let t = t.with_timezone(&Utc);
                                    if t > after {
                                        return Some(t);
                                    }
                                }
                                // Spring-forward gap: this local time never happens.
                                LocalResult::None => {}
                            }
                        }
                    }
                }
            }
        }
        None
    }
}

fn parse_day_of_month(ctx: &Ctx<'_>, text: &str) -> Result<Days, Error> {
    let mut days = ValueSet::new(1);
    let (mut last, mut last_weekday, mut nearest_weekday) = (false, false, Vec::new());
    for element in ctx.elements(text)? {
        let upper = element.to_ascii_uppercase();
        if upper == "L" {
            last = true;
        } else if upper == "LW" {
            last_weekday = true;
        } else if let Some(n) = upper.strip_suffix('W') {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ctx.err(format!(
                    "`{element}`: `W` takes a single day 1-31, as in `15W`"
                )));
            }
            nearest_weekday.push(ctx.value(n)?);
        } else if upper.contains('L') || upper.contains('W') {
            return Err(ctx.err(format!(
                "`{element}` is not valid; `L`, `LW` and `nW` stand alone"
            )));
        } else {
            ctx.range(element, &mut days)?;
        }
    }
    Ok(Days::OfMonth {
        days,
        last,
        last_weekday,
        nearest_weekday,
    })
}

fn parse_day_of_week(ctx: &Ctx<'_>, text: &str) -> Result<Days, Error> {
    let mut days = ValueSet::new(1);
    let (mut last_of, mut nth) = (Vec::new(), Vec::new());
    for element in ctx.elements(text)? {
        let upper = element.to_ascii_uppercase();
        if upper == "L" {
            // "last day of the week": Saturday.
            days.insert(7);
        } else if let Some((d, n)) = upper.split_once('#') {
            let d = ctx.value(d)?;
            let week = match n.parse::<u32>() {
                Ok(w) if (1..=5).contains(&w) && n.bytes().all(|b| b.is_ascii_digit()) => w,
                _ => {
                    return Err(ctx.err(format!(
                        "`{element}`: the week number after `#` must be 1-5"
                    )));
                }
            };
            nth.push((d, week));
        } else if let Some(d) = upper.strip_suffix('L').filter(|d| !d.is_empty()) {
            if d.contains(['-', '/', '*']) {
                return Err(ctx.err(format!(
                    "`{element}`: `L` takes a single day of the week, as in `5L`"
                )));
            }
            last_of.push(ctx.value(d)?);
        } else {
            ctx.range(element, &mut days)?;
        }
    }
    Ok(Days::OfWeek { days, last_of, nth })
}
