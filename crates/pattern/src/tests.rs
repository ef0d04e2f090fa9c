//! Unit tests of pattern validation and the reference matcher.
use crate::json::{self, Value};
use crate::{Error, Event, MAX_DEPTH, Pattern, RuleSet, test_event_pattern};

fn matches(pattern: &str, event: &str) -> bool {
    Pattern::parse(pattern)
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
        .matches(&Event::parse(event).unwrap_or_else(|e| panic!("{event}: {e:?}")))
}

fn reason(pattern: &str) -> String {
    match Pattern::parse(pattern) {
        Err(Error::InvalidPattern(r)) => r,
        other => panic!("{pattern}: expected an invalid pattern, got {other:?}"),
    }
}

// ------------------------------------------------------------------ JSON

#[test]
fn json_keeps_number_text() {
    let v = json::parse(r#"[300, 300.0, 3.0e2, -0, 1E+2, 49658361752382621885697088319781165717078428243510427650]"#)
        .unwrap();
    let Value::Array(items) = v else { panic!() };
    let texts: Vec<_> = items
        .iter()
        .map(|v| match v {
            Value::Number(n) => n.as_str(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        texts,
        [
            "300",
            "300.0",
            "3.0e2",
            "-0",
            "1E+2",
            "49658361752382621885697088319781165717078428243510427650"
        ]
    );
}

#[test]
fn json_rejects_bad_numbers_and_trailing_text() {
    for bad in [
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "+1",
        "[1,]",
        "{\"a\":1,}",
        "1 2",
        "nul",
        "tru",
    ] {
        assert!(json::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn json_escapes() {
    let v = json::parse(r#""a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\ud83d\ude00""#).unwrap();
    assert_eq!(v, Value::String("a\"b\\c/d\u{8}\u{c}\n\r\tAé😀".into()));
    assert!(
        json::parse(r#""\ud83d""#).is_err(),
        "unpaired high surrogate"
    );
    assert!(
        json::parse(r#""\ude00""#).is_err(),
        "unpaired low surrogate"
    );
    assert!(json::parse(r#""\x""#).is_err());
    assert!(json::parse("\"a\nb\"").is_err(), "raw control character");
}

#[test]
fn json_depth_limit() {
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(json::parse(&ok).is_ok());
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert!(json::parse(&deep).is_err());
    let deep_event = format!(
        "{}1{}",
        "{\"a\":".repeat(MAX_DEPTH + 1),
        "}".repeat(MAX_DEPTH + 1)
    );
    assert!(matches!(
        Event::parse(&deep_event),
        Err(Error::InvalidEvent(_))
    ));
}

#[test]
fn json_unrecognized_token_message() {
    assert_eq!(
        json::parse("this is not json").unwrap_err(),
        "Unrecognized token 'this': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')"
    );
}

#[test]
fn exact_f64_rejects_unrepresentable() {
    assert_eq!(json::exact_f64("300.0"), Some(300.0));
    assert_eq!(json::exact_f64("3.0e2"), Some(300.0));
    assert_eq!(json::exact_f64("0.1"), Some(0.1));
    assert_eq!(json::exact_f64("0.30000000000000001"), None);
    assert_eq!(json::exact_f64("1e400"), None);
    assert_eq!(
        json::exact_f64("49658361752382621885697088319781165717078428243510427650"),
        None
    );
}

// ------------------------------------------------------------- exact values

#[test]
fn exact_strings_and_scalars() {
    assert!(matches(r#"{"a":["x"]}"#, r#"{"a":"x"}"#));
    assert!(!matches(r#"{"a":["x"]}"#, r#"{"a":"X"}"#));
    assert!(matches(r#"{"a":[""]}"#, r#"{"a":""}"#));
    assert!(!matches(r#"{"a":[""]}"#, r#"{"a":null}"#));
    assert!(matches(r#"{"a":[null]}"#, r#"{"a":null}"#));
    assert!(!matches(r#"{"a":[null]}"#, r#"{"a":"null"}"#));
    assert!(!matches(r#"{"a":[null]}"#, r#"{}"#));
    assert!(matches(r#"{"a":[true]}"#, r#"{"a":true}"#));
    assert!(!matches(r#"{"a":["true"]}"#, r#"{"a":true}"#));
    assert!(!matches(r#"{"a":["300"]}"#, r#"{"a":300}"#));
    assert!(matches(r#"{"a":[{"exactly":"x"}]}"#, r#"{"a":"x"}"#));
}

#[test]
fn exact_numbers() {
    // Same text matches; a representable literal also matches by value.
    assert!(matches(r#"{"a":[300]}"#, r#"{"a":300}"#));
    assert!(matches(r#"{"a":[300]}"#, r#"{"a":300.0}"#));
    assert!(matches(r#"{"a":[300]}"#, r#"{"a":3.0e2}"#));
    assert!(!matches(r#"{"a":[300]}"#, r#"{"a":301}"#));
    // Beyond a double: text only.
    let big = "49658361752382621885697088319781165717078428243510427650";
    assert!(matches(
        &format!(r#"{{"a":[{big}]}}"#),
        &format!(r#"{{"a":{big}}}"#)
    ));
    assert!(!matches(
        &format!(r#"{{"a":[{big}]}}"#),
        &format!(r#"{{"a":{big}.0}}"#)
    ));
}

#[test]
fn paths_and_nesting() {
    assert!(matches(
        r#"{"a":{"b.c":["x"]}}"#,
        r#"{"a":{"b":{"c":"x"}}}"#
    ));
    assert!(matches(
        r#"{"a.b":{"c":["x"]}}"#,
        r#"{"a":{"b":{"c":"x"}}}"#
    ));
    assert!(matches(
        r#"{"a":{"b":{"c":["x"]}}}"#,
        r#"{"a.b":{"c":"x"}}"#
    ));
    assert!(!matches(r#"{"A":["x"]}"#, r#"{"a":"x"}"#));
    // Every named field must match; others are ignored.
    assert!(matches(
        r#"{"a":["x"],"b":["y"]}"#,
        r#"{"a":"x","b":"y","c":1}"#
    ));
    assert!(!matches(r#"{"a":["x"],"b":["y"]}"#, r#"{"a":"x","b":"z"}"#));
    // A string holding JSON is not an object.
    assert!(!matches(r#"{"a":{"b":["x"]}}"#, r#"{"a":"{\"b\":\"x\"}"}"#));
}

#[test]
fn duplicate_keys_last_wins() {
    assert!(matches(r#"{"a":["x"],"a":["y"]}"#, r#"{"a":"y"}"#));
    assert!(!matches(r#"{"a":["x"],"a":["y"]}"#, r#"{"a":"x"}"#));
}

// ------------------------------------------------------------- operators

#[test]
fn prefix_suffix_and_ignore_case() {
    assert!(matches(r#"{"a":[{"prefix":"ab"}]}"#, r#"{"a":"abc"}"#));
    assert!(!matches(r#"{"a":[{"prefix":"ab"}]}"#, r#"{"a":"ABc"}"#));
    assert!(matches(r#"{"a":[{"prefix":""}]}"#, r#"{"a":"x"}"#));
    assert!(!matches(r#"{"a":[{"prefix":"1"}]}"#, r#"{"a":12}"#));
    assert!(matches(
        r#"{"a":[{"prefix":{"equals-ignore-case":"ab"}}]}"#,
        r#"{"a":"ABc"}"#
    ));
    assert!(matches(r#"{"a":[{"suffix":".png"}]}"#, r#"{"a":"x.png"}"#));
    assert!(!matches(r#"{"a":[{"suffix":".PNG"}]}"#, r#"{"a":"x.png"}"#));
    assert!(matches(
        r#"{"a":[{"suffix":{"equals-ignore-case":".PNG"}}]}"#,
        r#"{"a":"x.png"}"#
    ));
    assert!(matches(
        r#"{"a":[{"equals-ignore-case":"HeLLo"}]}"#,
        r#"{"a":"hello"}"#
    ));
    assert!(!matches(
        r#"{"a":[{"equals-ignore-case":"hello"}]}"#,
        r#"{"a":"hello!"}"#
    ));
}

#[test]
fn wildcard() {
    let p = r#"{"a":[{"wildcard":"arn:*:bus/*"}]}"#;
    assert!(matches(p, r#"{"a":"arn:x:y:bus/b"}"#));
    assert!(matches(p, r#"{"a":"arn::bus/"}"#));
    assert!(!matches(p, r#"{"a":"arn:x:y:bux/b"}"#));
    assert!(matches(r#"{"a":[{"wildcard":"*"}]}"#, r#"{"a":""}"#));
    assert!(!matches(r#"{"a":[{"wildcard":"*"}]}"#, r#"{"a":1}"#));
    assert!(matches(r#"{"a":[{"wildcard":"a\\*b"}]}"#, r#"{"a":"a*b"}"#));
    assert!(!matches(
        r#"{"a":[{"wildcard":"a\\*b"}]}"#,
        r#"{"a":"axb"}"#
    ));
    assert!(matches(
        r#"{"a":[{"wildcard":"a\\\\b"}]}"#,
        r#"{"a":"a\\b"}"#
    ));
    assert!(!matches(r#"{"a":[{"wildcard":""}]}"#, r#"{"a":"x"}"#));
    assert_eq!(
        reason(r#"{"a":[{"wildcard":"a**"}]}"#),
        "Consecutive wildcard characters at pos 2"
    );
    assert_eq!(
        reason(r#"{"a":[{"wildcard":"a\\b"}]}"#),
        "Invalid escape character at pos 2"
    );
    assert!(
        reason(r#"{"a":[{"wildcard":"*:*:*:*:*:event-bus/*"}]}"#)
            .starts_with("Rule is too complex")
    );
    assert!(Pattern::parse(r#"{"a":[{"wildcard":"a*b*c*d*e"}]}"#).is_ok());
}

#[test]
fn the_complexity_check_is_bounded_work() {
    // ~1000 stars in a 2 KB pattern once took seconds and most of a gigabyte to judge. Each shape
    // is refused as too complex; the check's work is capped (MAX_COMPLEXITY_WORK), so this test
    // finishes at once whatever the shape.
    for piece in ["a*", "ab*", "*a", "a*b*"] {
        let wildcard = piece.repeat(2000 / piece.len() / 2 * 2 / 2);
        let p = format!(r#"{{"a":[{{"wildcard":"{wildcard}"}}]}}"#);
        assert!(
            reason(&p).starts_with("Rule is too complex"),
            "{piece}: {}",
            reason(&p)
        );
    }
    let distinct: String = (0..500)
        .map(|i| format!("{}*", char::from(b'a' + (i % 26) as u8)))
        .collect();
    let p = format!(r#"{{"a":[{{"wildcard":"{distinct}"}}]}}"#);
    assert!(
        reason(&p).starts_with("Rule is too complex"),
        "{}",
        reason(&p)
    );
}

#[test]
fn anything_but() {
    let p = r#"{"a":[{"anything-but":["x","y"]}]}"#;
    assert!(matches(p, r#"{"a":"z"}"#));
    assert!(!matches(p, r#"{"a":"x"}"#));
    assert!(matches(p, r#"{"a":null}"#), "matches null");
    assert!(!matches(p, r#"{}"#), "not an absent field");
    let n = r#"{"a":[{"anything-but":[100, 200]}]}"#;
    assert!(!matches(n, r#"{"a":100.0}"#));
    assert!(matches(n, r#"{"a":"100"}"#));
    assert!(matches(
        r#"{"a":[{"anything-but":{"prefix":"in"}}]}"#,
        r#"{"a":"out"}"#
    ));
    assert!(!matches(
        r#"{"a":[{"anything-but":{"prefix":["in","po"]}}]}"#,
        r#"{"a":"post"}"#
    ));
    assert!(matches(
        r#"{"a":[{"anything-but":{"prefix":"in"}}]}"#,
        r#"{"a":12}"#
    ));
    assert!(!matches(
        r#"{"a":[{"anything-but":{"suffix":".txt"}}]}"#,
        r#"{"a":"f.txt"}"#
    ));
    assert!(!matches(
        r#"{"a":[{"anything-but":{"equals-ignore-case":"X"}}]}"#,
        r#"{"a":"x"}"#
    ));
    assert!(!matches(
        r#"{"a":[{"anything-but":{"wildcard":"*/in/*"}}]}"#,
        r#"{"a":"a/in/b"}"#
    ));
    assert!(matches(
        r#"{"a":[{"anything-but":{"wildcard":""}}]}"#,
        r#"{"a":"a"}"#
    ));
}

#[test]
fn numeric() {
    let p = r#"{"a":[{"numeric":[">",0,"<=",5]}]}"#;
    assert!(matches(p, r#"{"a":5}"#));
    assert!(matches(p, r#"{"a":0.5e1}"#));
    assert!(!matches(p, r#"{"a":0}"#));
    assert!(!matches(p, r#"{"a":"3"}"#));
    assert!(!matches(p, r#"{"a":null}"#));
    assert!(matches(
        r#"{"a":[{"numeric":["=",301.8]}]}"#,
        r#"{"a":3.018e2}"#
    ));
    assert!(matches(
        r#"{"a":[{"numeric":["<",-1e3]}]}"#,
        r#"{"a":-1001}"#
    ));
    assert!(matches(r#"{"a":[{"numeric":[">=",1.5]}]}"#, r#"{"a":1.5}"#));
    assert_eq!(
        reason(r#"{"a":[{"numeric":["<",1,">",0]}]}"#),
        "Too many elements in numeric expression"
    );
    assert_eq!(
        reason(r#"{"a":[{"numeric":[">",0,">",0]}]}"#),
        "Bad numeric range operator: >"
    );
    assert_eq!(
        reason(r#"{"a":[{"numeric":[">",5,"<",1]}]}"#),
        "Bottom must be less than top"
    );
    assert_eq!(
        reason(r#"{"a":[{"numeric":["!=",1]}]}"#),
        "Unrecognized numeric range operator: !="
    );
    assert_eq!(
        reason(r#"{"a":[{"numeric":["=","1"]}]}"#),
        "Value of equals must be numeric"
    );
    assert_eq!(
        reason(r#"{"a":[{"numeric":["=",0.30000000000000001]}]}"#),
        "Cannot compare number : 0.30000000000000001"
    );
}

#[test]
fn cidr() {
    let p = r#"{"a":[{"cidr":"10.0.0.0/24"}]}"#;
    assert!(matches(p, r#"{"a":"10.0.0.255"}"#));
    assert!(!matches(p, r#"{"a":"10.0.1.0"}"#));
    assert!(!matches(p, r#"{"a":"10.0.0.256"}"#));
    let v6 = r#"{"a":[{"cidr":"2001:db8::/32"}]}"#;
    assert!(matches(v6, r#"{"a":"2001:0db8:ffff::1"}"#));
    assert!(!matches(v6, r#"{"a":"2001:db9::"}"#));
    assert!(!matches(v6, r#"{"a":"10.0.0.1"}"#));
    assert!(matches(r#"{"a":["::1"]}"#, r#"{"a":"0:0:0:0:0:0:0:1"}"#));
    assert_eq!(
        reason(r#"{"a":[{"cidr":"10.0.0.0"}]}"#),
        "Malformed CIDR, one '/' required"
    );
    assert_eq!(
        reason(r#"{"a":[{"cidr":"10.0.0.0/32"}]}"#),
        "IPv4 mask bits must be < 32"
    );
    assert_eq!(
        reason(r#"{"a":[{"cidr":"x.1/8"}]}"#),
        "Nonstandard IP address: x.1"
    );
}

#[test]
fn exists() {
    let yes = r#"{"a":{"b":[{"exists":true}]}}"#;
    let no = r#"{"a":{"b":[{"exists":false}]}}"#;
    assert!(matches(yes, r#"{"a":{"b":null}}"#));
    assert!(
        !matches(yes, r#"{"a":{"b":{"c":1}}}"#),
        "an object counts as absent"
    );
    assert!(
        !matches(yes, r#"{"a":{"b":[]}}"#),
        "an empty array counts as absent"
    );
    assert!(matches(no, r#"{"a":{"b":{"c":1}}}"#));
    assert!(matches(no, r#"{"a":{}}"#));
    assert!(!matches(no, r#"{"a":{"b":1}}"#));
    assert!(matches(
        r#"{"a":[{"anything-but":"x"},{"exists":false}]}"#,
        r#"{}"#
    ));
}

// ---------------------------------------------------------------- arrays

#[test]
fn arrays_and_consistency() {
    assert!(matches(r#"{"a":["y"]}"#, r#"{"a":["x","y"]}"#));
    assert!(!matches(r#"{"a":["z"]}"#, r#"{"a":["x","y"]}"#));
    let p = r#"{"a":{"b":["1"],"c":["2"]}}"#;
    assert!(matches(p, r#"{"a":[{"b":"1","c":"2"},{"b":"3"}]}"#));
    assert!(!matches(
        p,
        r#"{"a":[{"b":"1","c":"3"},{"b":"3","c":"2"}]}"#
    ));
    // Different arrays combine freely.
    assert!(matches(
        r#"{"a":{"b":["1"]},"d":{"e":["2"]}}"#,
        r#"{"a":[{"b":"1"}],"d":[{"e":"2"},{"e":"3"}]}"#
    ));
    // Nested arrays.
    assert!(matches(
        r#"{"a":{"b":["1"],"c":["2"]}}"#,
        r#"{"a":[[{"b":"0"}],[{"b":"1","c":"2"}]]}"#
    ));
    assert!(!matches(
        r#"{"a":{"b":["1"],"c":["2"]}}"#,
        r#"{"a":[[{"b":"1"},{"c":"2"}]]}"#
    ));
}

// ------------------------------------------------------------------- $or

#[test]
fn or() {
    let p = r#"{"d":{"$or":[{"a":["1"]},{"b":["2"]}]},"s":["x"]}"#;
    assert!(matches(p, r#"{"d":{"a":"1"},"s":"x"}"#));
    assert!(matches(p, r#"{"d":{"b":"2"},"s":"x"}"#));
    assert!(!matches(p, r#"{"d":{"b":"2"},"s":"y"}"#));
    assert!(!matches(p, r#"{"d":{"c":"3"},"s":"x"}"#));
    // Nested $or.
    let nested = r#"{"$or":[{"a":["1"]},{"$or":[{"b":["2"]},{"c":["3"]}]}]}"#;
    assert!(matches(nested, r#"{"c":"3"}"#));
    assert!(!matches(nested, r#"{"d":"3"}"#));
    assert_eq!(
        reason(r#"{"$or":[{"a":["1"]}]}"#),
        "There must have at least 2 Objects in $or relationship."
    );
    assert_eq!(
        reason(r#"{"$or":{"a":["1"]}}"#),
        "It must be an Array followed with $or."
    );
    assert_eq!(
        reason(r#"{"$or":[{"a":["1"]},["b"]]}"#),
        "Only JSON object is allowed in array of $or relationship."
    );
    assert_eq!(
        reason(r#"{"$or":[{"a":["1"]},{"numeric":["1"]}]}"#),
        "numeric is Ruler reserved fieldName which cannot be used inside $or."
    );
    // 4 $or of 2 each on 4 fields: 16 combinations; 10 of them: 1024 > 1000.
    let many: Vec<String> = (0..10)
        .map(|i| format!(r#""f{i}":{{"$or":[{{"a":["1"]}},{{"b":["2"]}}]}}"#))
        .collect();
    let p = format!("{{{}}}", many.join(","));
    assert!(reason(&p).contains("combinations"));
}

// ----------------------------------------------------------------- errors

#[test]
fn error_messages() {
    assert_eq!(
        reason(r#"{"int":42}"#),
        r#""int" must be an object or an array"#
    );
    assert_eq!(reason(r#"["a"]"#), "Filter is not an object");
    assert_eq!(reason(r#"{"a":[]}"#), "Empty arrays are not allowed");
    assert_eq!(reason(r#"{"a":{}}"#), "Empty objects are not allowed");
    assert_eq!(
        reason(r#"{"a":[[1]]}"#),
        "Match value must be String, number, true, false, or null"
    );
    assert_eq!(reason(r#"{"a":[{}]}"#), "Match expression name not found");
    assert_eq!(
        reason(r#"{"a":[{"NUMERIC":["=",5]}]}"#),
        "Unrecognized match type NUMERIC"
    );
    assert_eq!(
        reason(r#"{"a":[{"prefix":"a","suffix":"b"}]}"#),
        "Only one key allowed in match expression"
    );
    assert_eq!(
        reason(r#"{"a":[{"prefix":1}]}"#),
        "prefix match pattern must be a string"
    );
    assert_eq!(
        reason(r#"{"a":[{"exists":"yes"}]}"#),
        "exists match pattern must be either true or false."
    );
    assert_eq!(
        reason(r#"{"a":[{"anything-but":null}]}"#),
        "Value of anything-but must be an array or single string/number value."
    );
    assert_eq!(
        reason(r#"{"a":[{"anything-but":["a",1]}]}"#),
        "Inside anything but list, either all values are number or string, mixed type is not supported"
    );
    assert_eq!(
        reason(r#"{"a":[{"anything-but":{"prefix":""}}]}"#),
        "Null prefix/suffix not allowed"
    );
    let long = format!(r#"{{"a":["{}"]}}"#, "x".repeat(2048));
    assert!(reason(&long).contains("2048"));

    let e = Pattern::parse(r#"{"int":42}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"Event pattern is not valid. Reason: "int" must be an object or an array"#
    );
    assert_eq!(e.aws_code(), "InvalidEventPatternException");
}

#[test]
fn test_event_pattern_checks_the_envelope() {
    let event =
        r#"{"id":"1","account":"1","source":"s","time":"t","region":"r","detail-type":"d"}"#;
    assert_eq!(test_event_pattern(r#"{"source":["s"]}"#, event), Ok(true));
    assert_eq!(test_event_pattern(r#"{"source":["x"]}"#, event), Ok(false));
    let e = test_event_pattern(r#"{"source":["s"]}"#, r#"{"source":"s"}"#).unwrap_err();
    assert!(matches!(e, Error::InvalidEvent(_)));
    assert_eq!(e.to_string(), "Parameter Event is not valid.");
    assert_eq!(e.aws_code(), "ValidationException");
    assert!(matches!(
        test_event_pattern(r#"{"a":["b"]}"#, r#"["x"]"#),
        Err(Error::InvalidEvent(_))
    ));
    // The pattern is checked first.
    assert!(matches!(
        test_event_pattern("{}", "nope"),
        Err(Error::InvalidPattern(_))
    ));
}

// --------------------------------------------------------------- RuleSet

fn rule_set(rules: &[(&'static str, &str)]) -> RuleSet<&'static str> {
    let mut set = RuleSet::new();
    for (id, pattern) in rules {
        set.add(
            *id,
            &Pattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}")),
        );
    }
    set
}

/// The ids `set` matches, sorted; also checks they agree with the naive matcher.
fn matched(
    set: &RuleSet<&'static str>,
    rules: &[(&'static str, &str)],
    event: &str,
) -> Vec<&'static str> {
    let event = Event::parse(event).unwrap_or_else(|e| panic!("{event}: {e:?}"));
    let mut got = set.matches(&event);
    got.sort_unstable();
    let mut want: Vec<&'static str> = rules
        .iter()
        .filter(|(_, p)| Pattern::parse(p).unwrap().matches(&event))
        .map(|(id, _)| *id)
        .collect();
    want.sort_unstable();
    want.dedup();
    assert_eq!(got, want, "the rule set disagrees with the naive matcher");
    got
}

const MIXED: &[(&str, &str)] = &[
    ("exact", r#"{"source":["aws.ec2"]}"#),
    (
        "exact2",
        r#"{"source":["aws.ec2", "aws.s3"], "detail-type":["Change"]}"#,
    ),
    ("prefix", r#"{"source":[{"prefix":"aws."}]}"#),
    ("prefix-s3", r#"{"source":[{"prefix":"aws.s"}]}"#),
    (
        "numeric",
        r#"{"detail":{"n":[{"numeric":[">",10,"<=",20]}]}}"#,
    ),
    ("number", r#"{"detail":{"n":[15]}}"#),
    ("number-text", r#"{"detail":{"n":[1.5e1]}}"#),
    (
        "anything-but",
        r#"{"detail":{"state":[{"anything-but":["stopped"]}]}}"#,
    ),
    ("exists", r#"{"detail":{"state":[{"exists":true}]}}"#),
    ("absent", r#"{"detail":{"missing":[{"exists":false}]}}"#),
    ("absent-state", r#"{"detail":{"state":[{"exists":false}]}}"#),
    (
        "or",
        r#"{"$or":[{"source":["x"]},{"detail":{"n":[{"numeric":["<",0]}]}}]}"#,
    ),
    ("null-bool", r#"{"detail":{"flag":[true], "gone":[null]}}"#),
    ("ip", r#"{"detail":{"ip":["10.0.0.1"]}}"#),
    ("cidr", r#"{"detail":{"ip":[{"cidr":"10.0.0.0/24"}]}}"#),
    ("suffix", r#"{"source":[{"suffix":".ec2"}]}"#),
];

#[test]
fn rule_set_mixed_operators() {
    let set = rule_set(MIXED);
    assert_eq!(set.len(), MIXED.len());
    assert!(!set.is_empty());
    assert_eq!(
        matched(
            &set,
            MIXED,
            r#"{"source":"aws.ec2","detail":{"n":15,"state":"running"}}"#
        ),
        [
            "absent",
            "anything-but",
            "exact",
            "exists",
            "number",
            "number-text",
            "numeric",
            "prefix",
            "suffix"
        ]
    );
    assert_eq!(
        matched(
            &set,
            MIXED,
            r#"{"source":"aws.s3","detail-type":"Change","detail":{"state":"stopped"}}"#
        ),
        ["absent", "exact2", "exists", "prefix", "prefix-s3"]
    );
    assert_eq!(
        matched(
            &set,
            MIXED,
            r#"{"source":"x","detail":{"n":-1,"flag":true,"gone":null,"ip":"10.0.0.1"}}"#
        ),
        ["absent", "absent-state", "cidr", "ip", "null-bool", "or"]
    );
    assert_eq!(
        matched(
            &set,
            MIXED,
            r#"{"detail":{"missing":1,"state":"x","ip":"10.0.1.1"}}"#
        ),
        ["anything-but", "exists"]
    );
    assert_eq!(
        matched(&set, MIXED, r#"{"source":"y"}"#),
        ["absent", "absent-state"]
    );
}

#[test]
fn rule_set_add_remove_and_replace() {
    let mut set = rule_set(MIXED);
    let event = Event::parse(r#"{"source":"aws.ec2"}"#).unwrap();
    assert!(set.matches(&event).contains(&"exact"));
    set.remove(&"exact");
    set.remove(&"exact"); // a second removal does nothing
    assert_eq!(set.len(), MIXED.len() - 1);
    assert!(!set.matches(&event).contains(&"exact"));
    // Adding under a known id replaces its pattern.
    set.add("prefix", &Pattern::parse(r#"{"source":["nope"]}"#).unwrap());
    assert_eq!(set.len(), MIXED.len() - 1);
    assert!(!set.matches(&event).contains(&"prefix"));
    set.add(
        "exact",
        &Pattern::parse(r#"{"source":["aws.ec2"]}"#).unwrap(),
    );
    assert!(set.matches(&event).contains(&"exact"));
    for (id, _) in MIXED {
        set.remove(id);
    }
    assert!(set.is_empty());
    assert_eq!(set.len(), 0);
    assert!(set.matches(&event).is_empty());
    // Slots are reused cleanly after removal.
    set.add(
        "again",
        &Pattern::parse(r#"{"source":[{"prefix":"aws"}]}"#).unwrap(),
    );
    assert_eq!(set.matches(&event), ["again"]);
}

#[test]
fn rule_set_same_pattern_under_two_ids() {
    let rules = [
        ("a", r#"{"$or":[{"x":["1"]},{"y":["2"]}]}"#),
        ("b", r#"{"$or":[{"x":["1"]},{"y":["2"]}]}"#),
    ];
    let mut set = rule_set(&rules);
    // Both alternatives hold, yet each id is reported once.
    assert_eq!(matched(&set, &rules, r#"{"x":"1","y":"2"}"#), ["a", "b"]);
    set.remove(&"a");
    let event = Event::parse(r#"{"x":"1"}"#).unwrap();
    assert_eq!(set.matches(&event), ["b"]);
}

#[test]
fn rule_set_keeps_array_consistency() {
    let rules = [
        ("same-element", r#"{"items":{"name":["a"],"size":[2]}}"#),
        (
            "prefix-element",
            r#"{"items":{"name":[{"prefix":"b"}],"size":[1]}}"#,
        ),
        ("other", r#"{"items":{"name":["a"],"size":[1]}}"#),
    ];
    let set = rule_set(&rules);
    // Every value is present somewhere, but only in the same element for two rules.
    assert_eq!(
        matched(
            &set,
            &rules,
            r#"{"items":[{"name":"a","size":1},{"name":"b","size":2}]}"#
        ),
        ["other"]
    );
    assert_eq!(
        matched(
            &set,
            &rules,
            r#"{"items":[{"name":"b","size":1},{"name":"a","size":2}]}"#
        ),
        ["prefix-element", "same-element"]
    );
}

#[test]
fn rule_set_numbers_match_by_value_and_text() {
    let rules = [
        ("int", r#"{"n":[300]}"#),
        ("exp", r#"{"n":[3.0e2]}"#),
        ("zero", r#"{"n":[0]}"#),
        (
            "big",
            r#"{"n":[49658361752382621885697088319781165717078428243510427650]}"#,
        ),
    ];
    let set = rule_set(&rules);
    assert_eq!(matched(&set, &rules, r#"{"n":300.0}"#), ["exp", "int"]);
    assert_eq!(matched(&set, &rules, r#"{"n":-0}"#), ["zero"]);
    assert_eq!(
        matched(
            &set,
            &rules,
            r#"{"n":49658361752382621885697088319781165717078428243510427650}"#
        ),
        ["big"]
    );
    assert!(matched(&set, &rules, r#"{"n":"300"}"#).is_empty());
}

#[test]
fn rule_set_confirms_only_indexed_candidates() {
    let mut set = RuleSet::new();
    for i in 0..1000 {
        let text = match i % 2 {
            0 => format!(r#"{{"source":["s{i}"],"detail":{{"n":[{i}]}}}}"#),
            _ => format!(r#"{{"source":[{{"prefix":"p{i}"}}]}}"#),
        };
        set.add(i, &Pattern::parse(&text).unwrap());
    }
    set.add(
        1000,
        &Pattern::parse(r#"{"other":[{"exists":false}]}"#).unwrap(),
    );
    set.add(
        1001,
        &Pattern::parse(r#"{"n":[{"numeric":[">",5]}]}"#).unwrap(),
    );
    let event = Event::parse(r#"{"source":"s10","detail":{"n":10}}"#).unwrap();
    // One exact rule and the always-confirmed `exists: false` one.
    assert_eq!(set.candidates(&event).len(), 2);
    let mut got = set.matches(&event);
    got.sort_unstable();
    assert_eq!(got, [10, 1000]);
    let event = Event::parse(r#"{"source":"p99x","n":6}"#).unwrap();
    // Prefixes `p9` and `p99`, the numeric rule and the `exists: false` one.
    assert_eq!(set.candidates(&event).len(), 4);
    let mut got = set.matches(&event);
    got.sort_unstable();
    assert_eq!(got, [9, 99, 1000, 1001]);
}
