//! Runs the event-pattern cases recorded against real AWS
//! (`shared/conformance/event-patterns/*.json`, see its README).

mod cases;

use muon_pattern::{Error, test_event_pattern};

/// Cases known to fail, each with why. The runner fails if one passes, so the
/// list only shrinks.
const KNOWN_GAPS: &[&str] = &[];

fn run_case(case: &serde_json::Value) -> Result<(), String> {
    let text = |k: &str| {
        case[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("case lacks `{k}`"))
    };
    let pattern = text("pattern_text")?;
    let event = text("event_text")?;
    let expect = text("expect")?;
    let got = test_event_pattern(&pattern, &event);
    match (expect.as_str(), &got) {
        ("match", Ok(true))
        | ("no-match", Ok(false))
        | ("invalid-event", Err(Error::InvalidEvent(_))) => Ok(()),
        ("invalid", Err(e @ Error::InvalidPattern(_))) => {
            if e.aws_code() != "InvalidEventPatternException" {
                return Err(format!("wrong code {}", e.aws_code()));
            }
            match case["aws_error"].as_str() {
                Some(want) if want != e.to_string() => Err(format!(
                    "message differs:\n      want: {want}\n      got:  {e}"
                )),
                _ => Ok(()),
            }
        }
        _ => Err(format!("expected {expect}, got {got:?}")),
    }
}

#[test]
fn event_pattern_conformance() {
    let Some(files) = cases::files() else {
        return;
    };

    let mut failures = Vec::new();
    let mut passed = 0;
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).expect("read a case");
        let case: serde_json::Value = serde_json::from_str(&text).expect("a case is JSON");
        let result = run_case(&case);
        let known = KNOWN_GAPS.contains(&name.as_str());
        match (result, known) {
            (Ok(()), false) => passed += 1,
            (Err(_), true) => {}
            (Ok(()), true) => failures.push(format!(
                "{name}: listed in KNOWN_GAPS but passes now; remove it from the list"
            )),
            (Err(why), false) => failures.push(format!("{name}: {why}")),
        }
    }
    for gap in KNOWN_GAPS {
        assert!(
            files
                .iter()
                .any(|f| f.file_stem().is_some_and(|s| s == *gap)),
            "KNOWN_GAPS names {gap}, which is not a case"
        );
    }
    println!(
        "{passed}/{} event-pattern cases pass ({} known gaps)",
        files.len(),
        KNOWN_GAPS.len()
    );
    assert!(
        failures.is_empty(),
        "{} event-pattern case(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}
