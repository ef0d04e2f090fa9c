//! Table-driven firing times: month ends, leap years, `L`/`W`/`#`, DST, `at`, `rate`.

use chrono::{DateTime, Utc};
use muon_schedule::Schedule;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// (zone, expression, after, the next firings in UTC).
fn check(cases: &[(Option<&str>, &str, &str, &[&str])]) {
    for (tz, expression, after, want) in cases {
        let schedule =
            Schedule::parse(expression, *tz).unwrap_or_else(|e| panic!("{expression}: {e}"));
        let want: Vec<DateTime<Utc>> = want.iter().map(|s| t(s)).collect();
        let got = schedule.upcoming(t(after), want.len() + 1);
        assert_eq!(
            &got[..want.len().min(got.len())],
            &want[..],
            "{expression} in {tz:?} after {after}"
        );
        if want.len() < 3 {
            // Short lists in this table mean "and then nothing".
            assert_eq!(got.len(), want.len(), "{expression} after {after}: {got:?}");
        }
    }
}

#[test]
fn cron_in_utc() {
    check(&[
        (
            None,
            "cron(0 12 * * ? *)",
            "2024-01-31T12:00:00Z",
            &[
                "2024-02-01T12:00:00Z",
                "2024-02-02T12:00:00Z",
                "2024-02-03T12:00:00Z",
            ],
        ),
        // Strictly after: a hair before fires the same day.
        (
            None,
            "cron(0 12 * * ? *)",
            "2024-01-31T11:59:59.999Z",
            &[
                "2024-01-31T12:00:00Z",
                "2024-02-01T12:00:00Z",
                "2024-02-02T12:00:00Z",
            ],
        ),
        (
            None,
            "cron(0/15 * * * ? *)",
            "2024-01-01T00:07:30Z",
            &[
                "2024-01-01T00:15:00Z",
                "2024-01-01T00:30:00Z",
                "2024-01-01T00:45:00Z",
                "2024-01-01T01:00:00Z",
            ],
        ),
        (
            None,
            "cron(5-20/10,59 23 31 12 ? *)",
            "2024-12-31T23:00:00Z",
            &[
                "2024-12-31T23:05:00Z",
                "2024-12-31T23:15:00Z",
                "2024-12-31T23:59:00Z",
                "2025-12-31T23:05:00Z",
            ],
        ),
        // Friday 18:00 -> Monday.
        (
            None,
            "cron(0 18 ? * MON-FRI *)",
            "2024-01-05T18:00:00Z",
            &[
                "2024-01-08T18:00:00Z",
                "2024-01-09T18:00:00Z",
                "2024-01-10T18:00:00Z",
            ],
        ),
        (
            None,
            "cron(0 0 1 JAN,jul ? *)",
            "2024-02-01T00:00:00Z",
            &[
                "2024-07-01T00:00:00Z",
                "2025-01-01T00:00:00Z",
                "2025-07-01T00:00:00Z",
            ],
        ),
        // Only months with a 31st.
        (
            None,
            "cron(0 0 31 * ? *)",
            "2024-01-31T00:00:00Z",
            &[
                "2024-03-31T00:00:00Z",
                "2024-05-31T00:00:00Z",
                "2024-07-31T00:00:00Z",
                "2024-08-31T00:00:00Z",
                "2024-10-31T00:00:00Z",
            ],
        ),
        // Years exhausted.
        (
            None,
            "cron(0 0 1 1 ? 2020)",
            "2019-06-01T00:00:00Z",
            &["2020-01-01T00:00:00Z"],
        ),
        (None, "cron(0 0 1 1 ? 2020)", "2020-01-01T00:00:00Z", &[]),
        (None, "cron(0 0 1 1 ? *)", "2199-01-01T00:00:00Z", &[]),
        (None, "cron(0 0 30 2 ? *)", "2024-01-01T00:00:00Z", &[]),
        (
            None,
            "cron(0 0 1 1 ? 2030/50)",
            "1900-01-01T00:00:00Z",
            &[
                "2030-01-01T00:00:00Z",
                "2080-01-01T00:00:00Z",
                "2130-01-01T00:00:00Z",
                "2180-01-01T00:00:00Z",
            ],
        ),
    ]);
}

#[test]
fn leap_years_and_last_day() {
    check(&[
        (
            None,
            "cron(0 0 29 2 ? *)",
            "2024-03-01T00:00:00Z",
            &[
                "2028-02-29T00:00:00Z",
                "2032-02-29T00:00:00Z",
                "2036-02-29T00:00:00Z",
            ],
        ),
        // 2100 is not a leap year.
        (
            None,
            "cron(0 0 29 2 ? *)",
            "2096-03-01T00:00:00Z",
            &[
                "2104-02-29T00:00:00Z",
                "2108-02-29T00:00:00Z",
                "2112-02-29T00:00:00Z",
            ],
        ),
        (
            None,
            "cron(0 0 L 2 ? *)",
            "2023-01-01T00:00:00Z",
            &[
                "2023-02-28T00:00:00Z",
                "2024-02-29T00:00:00Z",
                "2025-02-28T00:00:00Z",
            ],
        ),
        (
            None,
            "cron(0 0 L 2 ? *)",
            "2099-03-01T00:00:00Z",
            &[
                "2100-02-28T00:00:00Z",
                "2101-02-28T00:00:00Z",
                "2102-02-28T00:00:00Z",
            ],
        ),
        (
            None,
            "cron(0 0 L * ? *)",
            "2024-01-15T00:00:00Z",
            &[
                "2024-01-31T00:00:00Z",
                "2024-02-29T00:00:00Z",
                "2024-03-31T00:00:00Z",
                "2024-04-30T00:00:00Z",
            ],
        ),
        // 2024-03-31 is a Sunday, 2024-08-31 a Saturday.
        (
            None,
            "cron(0 9 LW * ? 2024)",
            "2024-01-01T00:00:00Z",
            &[
                "2024-01-31T09:00:00Z",
                "2024-02-29T09:00:00Z",
                "2024-03-29T09:00:00Z",
                "2024-04-30T09:00:00Z",
                "2024-05-31T09:00:00Z",
                "2024-06-28T09:00:00Z",
                "2024-07-31T09:00:00Z",
                "2024-08-30T09:00:00Z",
            ],
        ),
    ]);
}

#[test]
fn nearest_weekday_stays_in_its_month() {
    check(&[
        // 2024-06-15 is a Saturday (-> Fri 14th), 2024-09-15 a Sunday (-> Mon 16th).
        (
            None,
            "cron(0 0 15W 6,9 ? 2024)",
            "2024-01-01T00:00:00Z",
            &["2024-06-14T00:00:00Z", "2024-09-16T00:00:00Z"],
        ),
        // 2024-06-01 is a Saturday: Monday the 3rd, never May 31st. 2024-09-01 is a Sunday.
        (
            None,
            "cron(0 0 1W 5-9 ? 2024)",
            "2024-04-30T00:00:00Z",
            &[
                "2024-05-01T00:00:00Z",
                "2024-06-03T00:00:00Z",
                "2024-07-01T00:00:00Z",
                "2024-08-01T00:00:00Z",
                "2024-09-02T00:00:00Z",
            ],
        ),
        // 31W: never in a 30-day month; Sunday 31st -> Friday 29th, never the 1st.
        (
            None,
            "cron(0 0 31W * ? 2024)",
            "2024-01-01T00:00:00Z",
            &[
                "2024-01-31T00:00:00Z",
                "2024-03-29T00:00:00Z",
                "2024-05-31T00:00:00Z",
                "2024-07-31T00:00:00Z",
                "2024-08-30T00:00:00Z",
                "2024-10-31T00:00:00Z",
                "2024-12-31T00:00:00Z",
            ],
        ),
        (None, "cron(0 0 30W 2 ? *)", "2024-01-01T00:00:00Z", &[]),
    ]);
}

#[test]
fn nth_and_last_weekday_of_month() {
    check(&[
        // Second Tuesday.
        (
            None,
            "cron(0 10 ? * 3#2 *)",
            "2024-01-01T00:00:00Z",
            &[
                "2024-01-09T10:00:00Z",
                "2024-02-13T10:00:00Z",
                "2024-03-12T10:00:00Z",
            ],
        ),
        (
            None,
            "cron(0 10 ? * TUE#2 *)",
            "2024-01-01T00:00:00Z",
            &[
                "2024-01-09T10:00:00Z",
                "2024-02-13T10:00:00Z",
                "2024-03-12T10:00:00Z",
            ],
        ),
        // Fifth Friday: only some months have one.
        (
            None,
            "cron(0 10 ? * 6#5 2024)",
            "2024-01-01T00:00:00Z",
            &[
                "2024-03-29T10:00:00Z",
                "2024-05-31T10:00:00Z",
                "2024-08-30T10:00:00Z",
                "2024-11-29T10:00:00Z",
            ],
        ),
        // Last Thursday.
        (
            None,
            "cron(0 10 ? * 5L *)",
            "2024-01-01T00:00:00Z",
            &[
                "2024-01-25T10:00:00Z",
                "2024-02-29T10:00:00Z",
                "2024-03-28T10:00:00Z",
            ],
        ),
        // `L` alone: the last day of the week, Saturday.
        (
            None,
            "cron(0 0 ? * L *)",
            "2024-01-01T00:00:00Z",
            &[
                "2024-01-06T00:00:00Z",
                "2024-01-13T00:00:00Z",
                "2024-01-20T00:00:00Z",
            ],
        ),
        (
            None,
            "cron(0 0 ? * 1,7 *)",
            "2024-01-01T00:00:00Z",
            &[
                "2024-01-06T00:00:00Z",
                "2024-01-07T00:00:00Z",
                "2024-01-13T00:00:00Z",
            ],
        ),
    ]);
}

#[test]
fn dst_new_york() {
    let ny = Some("America/New_York");
    check(&[
        // 2024-03-10: 02:00 EST jumps to 03:00 EDT. 02:30 does not exist that day.
        (
            ny,
            "cron(30 2 * * ? *)",
            "2024-03-09T12:00:00Z",
            &[
                "2024-03-11T06:30:00Z",
                "2024-03-12T06:30:00Z",
                "2024-03-13T06:30:00Z",
            ],
        ),
        (
            ny,
            "cron(0/30 * * * ? *)",
            "2024-03-10T06:15:00Z",
            &[
                "2024-03-10T06:30:00Z", // 01:30 EST
                "2024-03-10T07:00:00Z", // 03:00 EDT
                "2024-03-10T07:30:00Z",
            ],
        ),
        // 2024-11-03: 02:00 EDT falls back to 01:00 EST. 01:30 fires once, the first time.
        (
            ny,
            "cron(30 1 * * ? *)",
            "2024-11-02T12:00:00Z",
            &[
                "2024-11-03T05:30:00Z",
                "2024-11-04T06:30:00Z",
                "2024-11-05T06:30:00Z",
            ],
        ),
        (
            ny,
            "cron(0/30 * * * ? *)",
            "2024-11-03T05:00:00Z",
            &[
                "2024-11-03T05:30:00Z", // 01:30 EDT
                "2024-11-03T07:00:00Z", // 02:00 EST; the second 01:00 and 01:30 are skipped
                "2024-11-03T07:30:00Z",
            ],
        ),
        // Starting inside the repeated hour.
        (
            ny,
            "cron(0/30 * * * ? *)",
            "2024-11-03T06:10:00Z",
            &[
                "2024-11-03T07:00:00Z",
                "2024-11-03T07:30:00Z",
                "2024-11-03T08:00:00Z",
            ],
        ),
        (
            ny,
            "cron(0 9 ? * MON-FRI *)",
            "2024-03-08T15:00:00Z",
            &[
                "2024-03-11T13:00:00Z",
                "2024-03-12T13:00:00Z",
                "2024-03-13T13:00:00Z",
            ],
        ),
    ]);
}

#[test]
fn dst_paris() {
    let paris = Some("Europe/Paris");
    check(&[
        // 2024-03-31: 02:00 CET jumps to 03:00 CEST.
        (
            paris,
            "cron(30 2 * * ? *)",
            "2024-03-30T12:00:00Z",
            &[
                "2024-04-01T00:30:00Z",
                "2024-04-02T00:30:00Z",
                "2024-04-03T00:30:00Z",
            ],
        ),
        (
            paris,
            "cron(0 9 * * ? *)",
            "2024-03-30T09:00:00Z",
            &[
                "2024-03-31T07:00:00Z",
                "2024-04-01T07:00:00Z",
                "2024-04-02T07:00:00Z",
            ],
        ),
        // 2024-10-27: 03:00 CEST falls back to 02:00 CET; 02:30 fires once.
        (
            paris,
            "cron(30 2 * * ? *)",
            "2024-10-26T12:00:00Z",
            &[
                "2024-10-27T00:30:00Z",
                "2024-10-28T01:30:00Z",
                "2024-10-29T01:30:00Z",
            ],
        ),
        (
            paris,
            "cron(0 * * * ? *)",
            "2024-10-26T23:30:00Z",
            &[
                "2024-10-27T00:00:00Z", // 02:00 CEST
                "2024-10-27T02:00:00Z", // 03:00 CET; 02:00 CET is the repeat
                "2024-10-27T03:00:00Z",
            ],
        ),
    ]);
}

#[test]
fn at_fires_once() {
    check(&[
        (
            None,
            "at(2030-01-01T00:00:00)",
            "2024-06-01T00:00:00Z",
            &["2030-01-01T00:00:00Z"],
        ),
        (None, "at(2030-01-01T00:00:00)", "2030-01-01T00:00:00Z", &[]),
        (None, "at(2020-01-01T00:00:00)", "2024-06-01T00:00:00Z", &[]),
        (
            Some("Europe/Paris"),
            "at(2024-07-14T10:00:00)",
            "2024-01-01T00:00:00Z",
            &["2024-07-14T08:00:00Z"],
        ),
        // In the spring-forward gap: moved later by the gap, 03:30 EDT.
        (
            Some("America/New_York"),
            "at(2024-03-10T02:30:00)",
            "2024-01-01T00:00:00Z",
            &["2024-03-10T07:30:00Z"],
        ),
        // In the fall-back overlap: the first occurrence.
        (
            Some("America/New_York"),
            "at(2024-11-03T01:30:00)",
            "2024-01-01T00:00:00Z",
            &["2024-11-03T05:30:00Z"],
        ),
    ]);
}

#[test]
fn rate_counts_from_its_anchor() {
    check(&[
        (
            None,
            "rate(5 minutes)",
            "2024-01-01T00:07:30Z",
            &[
                "2024-01-01T00:10:00Z",
                "2024-01-01T00:15:00Z",
                "2024-01-01T00:20:00Z",
            ],
        ),
        (
            None,
            "rate(1 hour)",
            "2024-01-01T00:00:00Z",
            &[
                "2024-01-01T01:00:00Z",
                "2024-01-01T02:00:00Z",
                "2024-01-01T03:00:00Z",
            ],
        ),
    ]);
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "rate(5 minutes)",
            "2024-01-01T00:02:00Z",
            "2024-01-01T00:07:30Z",
            &["2024-01-01T00:12:00Z", "2024-01-01T00:17:00Z"],
        ),
        // Before the anchor: the anchor itself is first.
        (
            "rate(5 minutes)",
            "2024-01-01T00:02:00Z",
            "2023-12-31T00:00:00Z",
            &["2024-01-01T00:02:00Z", "2024-01-01T00:07:00Z"],
        ),
        // Exactly on a firing: the next one.
        (
            "rate(5 minutes)",
            "2024-01-01T00:02:00Z",
            "2024-01-01T00:07:00Z",
            &["2024-01-01T00:12:00Z"],
        ),
        (
            "rate(1 day)",
            "2024-03-09T12:00:00Z",
            "2024-03-09T12:00:00Z",
            &["2024-03-10T12:00:00Z", "2024-03-11T12:00:00Z"],
        ),
        (
            "rate(7 days)",
            "2024-01-01T09:30:15Z",
            "2024-01-20T00:00:00Z",
            &["2024-01-22T09:30:15Z", "2024-01-29T09:30:15Z"],
        ),
    ];
    for (expression, anchor, after, want) in cases {
        // A zone changes nothing: a day is 24 hours.
        for tz in [None, Some("America/New_York")] {
            let schedule = Schedule::parse(expression, tz)
                .unwrap()
                .with_anchor(t(anchor));
            let want: Vec<_> = want.iter().map(|s| t(s)).collect();
            assert_eq!(
                schedule.upcoming(t(after), want.len()),
                want,
                "{expression} from {anchor} after {after}"
            );
        }
    }
}

#[test]
fn with_anchor_leaves_others_alone() {
    let cron = Schedule::parse("cron(0 12 * * ? *)", None).unwrap();
    assert_eq!(cron.clone().with_anchor(t("2024-01-01T00:00:00Z")), cron);
    let at = Schedule::parse("at(2030-01-01T00:00:00)", None).unwrap();
    assert_eq!(at.clone().with_anchor(t("2024-01-01T00:00:00Z")), at);
}

#[test]
fn upcoming_zero_is_empty() {
    let s = Schedule::parse("rate(1 minute)", None).unwrap();
    assert!(s.upcoming(t("2024-01-01T00:00:00Z"), 0).is_empty());
}
