//! Property-style check with a tiny hand-written PRNG: for random valid cron
//! expressions in several zones, successive `next_after` results increase
//! strictly, match every field in local time, are the first occurrence of that
//! local time, and (where the gap is short enough to scan) no minute in between
//! would have fired.

use chrono::{DateTime, LocalResult, TimeDelta, TimeZone, Timelike, Utc};
use muon_schedule::{Cron, Schedule};

/// xorshift64*: good enough to pick test cases, and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.range(1, 100) <= percent
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(rng: &mut Rng, v: u32, min: u32, names: &[&str]) -> String {
    if !names.is_empty() && rng.chance(40) {
        names[(v - min) as usize].to_owned()
    } else {
        v.to_string()
    }
}

/// One plain element: `v`, `a-b`, `a/s`, `*/s` or `a-b/s`.
fn element(rng: &mut Rng, min: u32, max: u32, names: &[&str]) -> String {
    let a = rng.range(min, max);
    let b = rng.range(a, max);
    let step = rng.range(1, (max - min).max(1));
    match rng.range(0, 4) {
        0 => value(rng, a, min, names),
        1 => format!(
            "{}-{}",
            value(rng, a, min, names),
            value(rng, b, min, names)
        ),
        2 => format!("{}/{step}", value(rng, a, min, names)),
        3 => format!("*/{step}"),
        _ => format!(
            "{}-{}/{step}",
            value(rng, a, min, names),
            value(rng, b, min, names)
        ),
    }
}

/// A whole plain field: `*`, one element, or a list of them. `star` is the
/// percent chance of `*`.
fn plain(rng: &mut Rng, min: u32, max: u32, names: &[&str], star: u32) -> String {
    if rng.chance(star) {
        return "*".to_owned();
    }
    let n = rng.range(1, 3);
    (0..n)
        .map(|_| element(rng, min, max, names))
        .collect::<Vec<_>>()
        .join(",")
}

fn day_of_month(rng: &mut Rng) -> String {
    match rng.range(0, 9) {
        0 => "L".to_owned(),
        1 => "LW".to_owned(),
        2 => format!("{}W", rng.range(1, 31)),
        3 => format!("L,{}W", rng.range(1, 31)),
        _ => plain(rng, 1, 31, &[], 40),
    }
}

fn day_of_week(rng: &mut Rng) -> String {
    let d = rng.range(1, 7);
    let d = value(rng, d, 1, &DAYS);
    match rng.range(0, 9) {
        0 => "L".to_owned(),
        1 => format!("{d}L"),
        2 => format!("{d}#{}", rng.range(1, 5)),
        3 => format!(
            "{}#{},{}L",
            rng.range(1, 7),
            rng.range(1, 4),
            rng.range(1, 7)
        ),
        _ => plain(rng, 1, 7, &DAYS, 40),
    }
}

fn expression(rng: &mut Rng) -> String {
    let minutes = plain(rng, 0, 59, &[], 20);
    let hours = plain(rng, 0, 23, &[], 50);
    let (dom, dow) = if rng.chance(50) {
        (day_of_month(rng), "?".to_owned())
    } else {
        ("?".to_owned(), day_of_week(rng))
    };
    let month = plain(rng, 1, 12, &MONTHS, 70);
    let year = match rng.range(0, 5) {
        0 => format!("{}-2199", rng.range(2000, 2040)),
        1 => format!("{}/{}", rng.range(2000, 2030), rng.range(1, 3)),
        _ => "*".to_owned(),
    };
    format!("cron({minutes} {hours} {dom} {month} {dow} {year})")
}

/// Whether the minute-aligned instant `t` is a firing, by definition:
/// its local time matches, and it is that local time's first occurrence.
fn fires(cron: &Cron, t: DateTime<Utc>) -> bool {
    let tz = cron.timezone();
    let local = t.with_timezone(&tz).naive_local();
    cron.matches_local(local)
        && match tz.from_local_datetime(&local) {
            LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => x.with_timezone(&Utc) == t,
            LocalResult::None => false,
        }
}

#[test]
fn random_cron_expressions_are_consistent() {
    const ZONES: [&str; 6] = [
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Australia/Lord_Howe", // a 30-minute DST shift
        "Asia/Kathmandu",      // +05:45
        "America/Santiago",    // southern-hemisphere DST
    ];
    const SCAN_LIMIT_MINUTES: i64 = 2 * 24 * 60;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut expressions, mut firings, mut scanned) = (0, 0, 0);
    for _ in 0..1_000 {
        let text = expression(&mut rng);
        let zone = ZONES[rng.range(0, ZONES.len() as u32 - 1) as usize];
        let schedule = Schedule::parse(&text, Some(zone))
            .unwrap_or_else(|e| panic!("generated {text} should parse: {e}"));
        let Schedule::Cron(cron) = &schedule else {
            panic!("{text} is a cron");
        };
        expressions += 1;
        let start = Utc
            .timestamp_opt(i64::from(rng.range(946_684_800, 1_893_456_000)), 0)
            .unwrap()
            + TimeDelta::milliseconds(i64::from(rng.range(0, 59_999)));
        let mut cursor = start;
        for _ in 0..12 {
            let Some(next) = schedule.next_after(cursor) else {
                break;
            };
            firings += 1;
            assert!(
                next > cursor,
                "{text} in {zone}: {next} is not after {cursor}"
            );
            assert_eq!(next.second(), 0, "{text} in {zone}: {next}");
            assert!(
                fires(cron, next),
                "{text} in {zone}: {next} (local {}) does not match",
                next.with_timezone(&cron.timezone())
            );
            // Scan the minutes in between: none of them may fire.
            let mut m =
                cursor.with_second(0).unwrap().with_nanosecond(0).unwrap() + TimeDelta::minutes(1);
            if (next - m).num_minutes() <= SCAN_LIMIT_MINUTES {
                scanned += 1;
                while m < next {
                    assert!(
                        !fires(cron, m),
                        "{text} in {zone}: {m} fires but next_after({cursor}) gave {next}"
                    );
                    m += TimeDelta::minutes(1);
                }
            }
            cursor = next;
        }
    }
    eprintln!("{expressions} expressions, {firings} firings, {scanned} gaps scanned");
    assert_eq!(expressions, 1_000);
    // Make sure the generator exercises something.
    assert!(firings > 5_000, "only {firings} firings");
    assert!(scanned > 1_000, "only {scanned} gaps scanned");
}
