//! `muon events test-pattern`, as a user runs it: no server, exit codes that scripts can use.

use std::process::Command;

fn test_pattern(pattern: &str, event: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_muon"))
        .args([
            "events",
            "test-pattern",
            "--pattern",
            pattern,
            "--event",
            event,
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ORDER: &str = r#"{"id": "1", "source": "shop", "detail-type": "OrderPlaced", "account": "123456789012",
  "region": "us-east-1", "time": "2026-11-26T10:00:00Z", "resources": [],
  "detail": {"total": 300.0, "customer": {"tier": "gold"}}}"#;

#[test]
fn match_and_no_match_exit_zero() {
    let (code, out, _) = test_pattern(
        r#"{"source": ["shop"], "detail": {"customer": {"tier": [{"prefix": "go"}]}}}"#,
        ORDER,
    );
    assert_eq!((code, out.trim()), (0, "match"));
    // Exact matching compares numbers as written; `numeric` compares values.
    let (code, out, _) = test_pattern(r#"{"detail": {"total": [300]}}"#, ORDER);
    assert_eq!(
        (code, out.trim()),
        (0, "match"),
        "300 and 300.0 are equal doubles"
    );
    let (code, out, _) = test_pattern(r#"{"detail": {"total": [{"numeric": [">", 500]}]}}"#, ORDER);
    assert_eq!((code, out.trim()), (0, "no match"));
}

#[test]
fn invalid_patterns_and_events_exit_two_with_the_reason() {
    let (code, out, err) = test_pattern(r#"{"source": "shop"}"#, ORDER);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("InvalidEventPatternException"), "{err}");
    assert!(err.contains("Event pattern is not valid. Reason:"), "{err}");
    let (code, _, err) = test_pattern(r#"{"source": ["shop"]}"#, "{not json");
    assert_eq!(code, 2);
    assert!(err.contains("Event"), "{err}");
}

#[test]
fn files_are_read_with_at() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("p.json");
    let event = dir.path().join("e.json");
    std::fs::write(&pattern, r#"{"detail-type": ["OrderPlaced"]}"#).unwrap();
    std::fs::write(&event, ORDER).unwrap();
    let (code, out, _) = test_pattern(
        &format!("@{}", pattern.display()),
        &format!("@{}", event.display()),
    );
    assert_eq!((code, out.trim()), (0, "match"));
    let (code, _, err) = test_pattern("@/no/such/file", ORDER);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
}
