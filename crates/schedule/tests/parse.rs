//! Table-driven parsing: what is accepted, and what is refused with which message.

use muon_schedule::{Error, RateUnit, Schedule};

#[test]
fn valid_expressions_parse() {
    let cases: &[(&str, Option<&str>)] = &[
        ("rate(1 minute)", None),
        ("rate(5 minutes)", None),
        ("rate(1 hour)", None),
        ("rate(2 hours)", None),
        ("rate(1 day)", None),
        ("rate(7 days)", None),
        ("cron(0 12 * * ? *)", None),
        ("cron(0/15 * * * ? *)", None),
        ("cron(*/5 * * * ? *)", None),
        ("cron(0 8 1 * ? *)", None),
        ("cron(0/10 * ? * MON-FRI *)", None),
        ("cron(0/5 8-17 ? * MON-FRI *)", None),
        ("cron(0 9 ? * 2#1 *)", None),
        ("cron(0 9 ? * MON#1 *)", None),
        ("cron(15 10 ? * 6L 2019-2022)", None),
        ("cron(0 18 ? * MON-FRI *)", Some("America/New_York")),
        ("cron(0 0 L * ? *)", None),
        ("cron(0 0 LW * ? *)", None),
        ("cron(0 0 15W * ? *)", None),
        ("cron(0 0 1W,L * ? *)", None),
        ("cron(0 0 ? * L *)", None),
        ("cron(0 0 1,15 JAN,jul ? 2030)", None),
        (
            "cron(5-55/10 1-3 ? * SUN-SAT 1970-2199)",
            Some("Europe/Paris"),
        ),
        ("cron(0 0 * * ? 2030/5)", None),
        ("  cron(0   12 * * ? *)  ", None),
        ("at(2030-01-01T00:00:00)", None),
        ("at(2030-06-30T23:59:59)", Some("Asia/Tokyo")),
    ];
    for (expression, tz) in cases {
        if let Err(e) = Schedule::parse(expression, *tz) {
            panic!("{expression} in {tz:?} should parse, got: {e}");
        }
    }
}

#[test]
fn invalid_expressions_say_what_and_where() {
    let cases: &[(&str, &str)] = &[
        (
            "cron(0 12 ? * 8 *)",
            "cron(0 12 ? * 8 *): day-of-week: `8` is out of range 1-7",
        ),
        (
            "cron(0 12 ? * 0 *)",
            "cron(0 12 ? * 0 *): day-of-week: `0` is out of range 1-7",
        ),
        (
            "cron(0 12 ? * ? *)",
            "cron(0 12 ? * ? *): exactly one of day-of-month and day-of-week must be `?`, both are",
        ),
        (
            "cron(0 12 * * MON *)",
            "cron(0 12 * * MON *): exactly one of day-of-month and day-of-week must be `?`, neither is",
        ),
        (
            "cron(0 12 * * * *)",
            "cron(0 12 * * * *): exactly one of day-of-month and day-of-week must be `?`, neither is",
        ),
        (
            "cron(60 * * * ? *)",
            "cron(60 * * * ? *): minutes: `60` is out of range 0-59",
        ),
        (
            "cron(0 24 * * ? *)",
            "cron(0 24 * * ? *): hours: `24` is out of range 0-23",
        ),
        (
            "cron(0 0 32 * ? *)",
            "cron(0 0 32 * ? *): day-of-month: `32` is out of range 1-31",
        ),
        (
            "cron(0 0 0 * ? *)",
            "cron(0 0 0 * ? *): day-of-month: `0` is out of range 1-31",
        ),
        (
            "cron(0 0 * 13 ? *)",
            "cron(0 0 * 13 ? *): month: `13` is out of range 1-12",
        ),
        (
            "cron(0 0 * FOO ? *)",
            "cron(0 0 * FOO ? *): month: `FOO` is neither a number 1-12 nor one of JAN, FEB, MAR, APR, MAY, JUN, JUL, AUG, SEP, OCT, NOV, DEC",
        ),
        (
            "cron(0 0 ? * FUNDAY *)",
            "cron(0 0 ? * FUNDAY *): day-of-week: `FUNDAY` is neither a number 1-7 nor one of SUN, MON, TUE, WED, THU, FRI, SAT",
        ),
        (
            "cron(0 0 * * ? 1969)",
            "cron(0 0 * * ? 1969): year: `1969` is out of range 1970-2199",
        ),
        (
            "cron(0 0 * * ? 2200)",
            "cron(0 0 * * ? 2200): year: `2200` is out of range 1970-2199",
        ),
        (
            "cron(a 0 * * ? *)",
            "cron(a 0 * * ? *): minutes: `a` is not a number",
        ),
        (
            "cron(0 0 * * ?)",
            "cron(0 0 * * ?): expected 6 fields (minutes hours day-of-month month day-of-week year), found 5",
        ),
        (
            "cron(0 0 * * ? * *)",
            "cron(0 0 * * ? * *): expected 6 fields (minutes hours day-of-month month day-of-week year), found 7",
        ),
        (
            "cron(0/0 * * * ? *)",
            "cron(0/0 * * * ? *): minutes: in `0/0`: step `0` is not a number 1-60",
        ),
        (
            "cron(0/x * * * ? *)",
            "cron(0/x * * * ? *): minutes: in `0/x`: step `x` is not a number 1-60",
        ),
        (
            "cron(30-10 * * * ? *)",
            "cron(30-10 * * * ? *): minutes: range `30-10` runs backwards (30 is after 10)",
        ),
        (
            "cron(0 0 ? * FRI-MON *)",
            "cron(0 0 ? * FRI-MON *): day-of-week: range `FRI-MON` runs backwards (6 is after 2)",
        ),
        (
            "cron(0 0 ? * 2#6 *)",
            "cron(0 0 ? * 2#6 *): day-of-week: `2#6`: the week number after `#` must be 1-5",
        ),
        (
            "cron(0 0 ? * 2#0 *)",
            "cron(0 0 ? * 2#0 *): day-of-week: `2#0`: the week number after `#` must be 1-5",
        ),
        (
            "cron(0 0 ? * 9#1 *)",
            "cron(0 0 ? * 9#1 *): day-of-week: `9` is out of range 1-7",
        ),
        (
            "cron(0 0 ? * 8L *)",
            "cron(0 0 ? * 8L *): day-of-week: `8` is out of range 1-7",
        ),
        (
            "cron(0 0 ? * 1-3L *)",
            "cron(0 0 ? * 1-3L *): day-of-week: `1-3L`: `L` takes a single day of the week, as in `5L`",
        ),
        (
            "cron(0 0 32W * ? *)",
            "cron(0 0 32W * ? *): day-of-month: `32` is out of range 1-31",
        ),
        (
            "cron(0 0 1-5W * ? *)",
            "cron(0 0 1-5W * ? *): day-of-month: `1-5W`: `W` takes a single day 1-31, as in `15W`",
        ),
        (
            "cron(0 0 L-2 * ? *)",
            "cron(0 0 L-2 * ? *): day-of-month: `L-2` is not valid; `L`, `LW` and `nW` stand alone",
        ),
        (
            "cron(0 0 1,,2 * ? *)",
            "cron(0 0 1,,2 * ? *): day-of-month: `1,,2` has an empty list element",
        ),
        (
            "cron(0 0 ?,1 * ? *)",
            "cron(0 0 ?,1 * ? *): day-of-month: `?` must stand alone, not in a list",
        ),
        (
            "cron(? 0 1 * ? *)",
            "cron(? 0 1 * ? *): minutes: `?` must stand alone, not in a list",
        ),
        (
            "rate(0 minutes)",
            "rate(0 minutes): value: `0` is not a positive integer",
        ),
        (
            "rate(-1 minutes)",
            "rate(-1 minutes): value: `-1` is not a positive integer",
        ),
        (
            "rate(1.5 hours)",
            "rate(1.5 hours): value: `1.5` is not a positive integer",
        ),
        (
            "rate(99999999999 days)",
            "rate(99999999999 days): value: `99999999999` is too large",
        ),
        (
            "rate(1 minutes)",
            "rate(1 minutes): unit: a value of 1 takes the singular `minute`",
        ),
        (
            "rate(1 days)",
            "rate(1 days): unit: a value of 1 takes the singular `day`",
        ),
        (
            "rate(5 minute)",
            "rate(5 minute): unit: a value of 5 takes the plural `minutes`",
        ),
        (
            "rate(2 hour)",
            "rate(2 hour): unit: a value of 2 takes the plural `hours`",
        ),
        (
            "rate(5 weeks)",
            "rate(5 weeks): unit: `weeks` is not one of minute(s), hour(s), day(s)",
        ),
        (
            "rate(5)",
            "rate(5): expected two fields `value unit`, found 1",
        ),
        (
            "at(2030-13-01T00:00:00)",
            "at(2030-13-01T00:00:00): `2030-13-01T00:00:00` is not a valid date and time yyyy-mm-ddThh:mm:ss",
        ),
        (
            "at(2030-02-30T00:00:00)",
            "at(2030-02-30T00:00:00): `2030-02-30T00:00:00` is not a valid date and time yyyy-mm-ddThh:mm:ss",
        ),
        (
            "at(2030-01-01 00:00:00)",
            "at(2030-01-01 00:00:00): `2030-01-01 00:00:00` is not a valid date and time yyyy-mm-ddThh:mm:ss",
        ),
        (
            "at(2030-01-01T00:00)",
            "at(2030-01-01T00:00): `2030-01-01T00:00` is not a valid date and time yyyy-mm-ddThh:mm:ss",
        ),
        (
            "every(5 minutes)",
            "every(5 minutes): unknown schedule kind `every`; expected rate, cron or at",
        ),
        (
            "cron 0 0",
            "cron 0 0: expected rate(...), cron(...) or at(...)",
        ),
        ("cron(0 0 * * ? *", "cron(0 0 * * ? *: missing closing `)`"),
        (
            "   ",
            "empty schedule expression; expected rate(...), cron(...) or at(...)",
        ),
    ];
    for (expression, want) in cases {
        match Schedule::parse(expression, None) {
            Ok(s) => panic!("{expression} should be refused, parsed as {s:?}"),
            Err(e) => assert_eq!(e.to_string(), *want, "for {expression}"),
        }
    }
}

#[test]
fn errors_are_structured() {
    let e = Schedule::parse("cron(0 12 ? * 8 *)", None).unwrap_err();
    assert!(matches!(
        e,
        Error::Field {
            field: "day-of-week",
            ..
        }
    ));
    let e = Schedule::parse("cron(0 12 * * ? *)", Some("Mars/Olympus_Mons")).unwrap_err();
    assert_eq!(
        e,
        Error::TimeZone {
            name: "Mars/Olympus_Mons".to_owned()
        }
    );
    assert_eq!(
        e.to_string(),
        "unknown time zone `Mars/Olympus_Mons`; expected an IANA name such as `Europe/Paris`"
    );
    assert_eq!(Schedule::parse("", None).unwrap_err(), Error::Empty);
}

#[test]
fn rate_fields_are_exposed() {
    let cases: &[(&str, u32, RateUnit, i64)] = &[
        ("rate(1 minute)", 1, RateUnit::Minutes, 60),
        ("rate(5 minutes)", 5, RateUnit::Minutes, 300),
        ("rate(1 hour)", 1, RateUnit::Hours, 3_600),
        ("rate(2 hours)", 2, RateUnit::Hours, 7_200),
        ("rate(1 day)", 1, RateUnit::Days, 86_400),
        ("rate(7 days)", 7, RateUnit::Days, 604_800),
    ];
    for (expression, value, unit, seconds) in cases {
        let Schedule::Rate(rate) = Schedule::parse(expression, None).unwrap() else {
            panic!("{expression} is a rate");
        };
        assert_eq!(rate.value(), *value, "{expression}");
        assert_eq!(rate.unit(), *unit, "{expression}");
        assert_eq!(rate.period().num_seconds(), *seconds, "{expression}");
        assert_eq!(rate.anchor(), chrono::DateTime::UNIX_EPOCH);
    }
}

#[test]
fn cron_keeps_expression_and_zone() {
    let Schedule::Cron(cron) =
        Schedule::parse("cron(0 9 ? * MON-FRI *)", Some("Europe/Paris")).unwrap()
    else {
        panic!("a cron");
    };
    assert_eq!(cron.expression(), "cron(0 9 ? * MON-FRI *)");
    assert_eq!(cron.timezone(), chrono_tz::Europe::Paris);
}
