//! Runs the Step Functions executions recorded against real AWS
//! (`shared/conformance/stepfunctions/*.json`, see its README): each case's
//! definition is run with its input, Lambda calls are answered with the
//! recorded results, timers fire on a virtual clock, and the status, output
//! and history are compared after the README's normalisation.
//!
//! Cases using JSONata are counted as skipped. Cases still failing are listed
//! in `conformance-known-failures.txt`; the test fails when a case outside the
//! list fails, or a listed case passes. `ASL_CONFORMANCE_UPDATE=1` rewrites
//! the list.

use muon_asl::{Action, Definition, Execution, ExecutionInfo, Input, Status};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/stepfunctions"
);
const KNOWN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/conformance-known-failures.txt"
);

/// Strings the recording put in place of timestamps without listing them.
const TIME_TOKENS: &[&str] = &[
    "date",
    "start-time",
    "entered-time",
    "<start-time>",
    "<entered-time>",
];

fn files() -> Option<Vec<PathBuf>> {
    let dir = Path::new(CASES);
    if !dir.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CASES} does not exist, and CI must run the Step Functions conformance cases"
        );
        println!("note: {CASES} does not exist; skipping the Step Functions conformance cases");
        return None;
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read the conformance folder")
        .map(|e| e.expect("read a folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    Some(files)
}

/// Whether `QueryLanguage: JSONata` appears anywhere in the definition
/// (`{% %}` strings alone are plain strings in JSONPath mode).
fn uses_jsonata(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, v)| {
            (k == "QueryLanguage" && v.as_str() == Some("JSONata")) || uses_jsonata(v)
        }),
        Value::Array(a) => a.iter().any(uses_jsonata),
        _ => false,
    }
}

fn info() -> ExecutionInfo {
    ExecutionInfo {
        execution_arn: "arn:<partition>:states:<region>:111111111111:execution:<ArnPart_0idx>:<ExecArnPart_0idx>".into(),
        name: "<ExecArnPart_0idx>".into(),
        state_machine_arn: "arn:<partition>:states:<region>:111111111111:stateMachine:<ArnPart_0idx>".into(),
        state_machine_name: "<ArnPart_0idx>".into(),
        role_arn: "snf_role_arn".into(),
        region: "<region>".into(),
        redrive_count: 0,
        seed: 0,
        token_secret: 0,
        max_duration_ms: None,
    }
}

/// Runs a case; the outcome is the final status and the history as AWS shows it.
fn execute(case: &Value) -> Result<(Status, Vec<Value>), String> {
    let def = Definition::from_value(case["definition"].clone()).map_err(|e| e.to_string())?;
    let mut recorded: VecDeque<Value> = case["lambda_invocations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into();
    let mut now: i64 = 1_700_000_000_000;
    let (mut exe, actions) = Execution::start(Arc::new(def), info(), case["input"].clone(), now);
    let mut invocations = VecDeque::new();
    let mut timers: BTreeMap<(i64, u64), muon_asl::TimerId> = BTreeMap::new();
    let take =
        |actions: Vec<Action>, invocations: &mut VecDeque<_>, timers: &mut BTreeMap<_, _>| {
            for a in actions {
                match a {
                    Action::Invoke(inv) => invocations.push_back(inv),
                    Action::StartTimer { timer, at } => {
                        timers.insert((at, timer.0), timer);
                    }
                    Action::CancelTimer { timer } => timers.retain(|_, t| *t != timer),
                    Action::CancelTask { task } => {
                        invocations.retain(|i: &muon_asl::Invocation| i.task != task)
                    }
                    _ => {}
                }
            }
        };
    take(actions, &mut invocations, &mut timers);
    let mut steps = 0;
    while *exe.status() == Status::Running {
        steps += 1;
        if steps > 100_000 {
            return Err("the execution does not end".into());
        }
        let input = if let Some(inv) = invocations.pop_front() {
            let rec = recorded.pop_front().ok_or_else(|| {
                format!(
                    "no recorded result for the call from state '{}'",
                    inv.state_name
                )
            })?;
            let result = &rec["result"];
            let event = result["event"].as_str().unwrap_or("");
            // A Lambda function's own error text is Python's `json.dumps`;
            // the `lambda:invoke` integration re-encodes it compactly.
            let python = rec["kind"].as_str() == Some("lambda-resource");
            if event.ends_with("Succeeded") {
                Input::TaskSucceeded {
                    task: inv.task,
                    output: result["output"].clone(),
                }
            } else if event.ends_with("TimedOut") {
                Input::TaskTimedOut { task: inv.task }
            } else {
                let s = |v: &Value| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other if python => Some(python_json(other)),
                    other => Some(other.to_string()),
                };
                Input::TaskFailed {
                    task: inv.task,
                    error: s(&result["error"]),
                    cause: s(&result["cause"]),
                }
            }
        } else if let Some((&(at, id), &timer)) = timers.iter().next() {
            timers.remove(&(at, id));
            now = now.max(at);
            Input::TimerFired { timer }
        } else {
            return Err("the execution is stuck: no task and no timer is pending".into());
        };
        let actions = exe.apply(now, input);
        take(actions, &mut invocations, &mut timers);
        // Every step survives being persisted and read back.
        let saved = serde_json::to_string(&exe).map_err(|e| format!("persist: {e}"))?;
        exe = serde_json::from_str(&saved).map_err(|e| format!("restore: {e}"))?;
    }
    let history = exe
        .history()
        .iter()
        .map(|e| normalize(e.to_aws_json()))
        .collect();
    Ok((exe.status().clone(), history))
}

/// JSON text as Python's `json.dumps` writes it (`", "` and `": "`).
fn python_json(v: &Value) -> String {
    match v {
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", Value::from(k.clone()), python_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Replaces every ISO-8601 timestamp inside `s` with `date`, as the recording did.
fn dates_replaced(s: &str) -> String {
    let b = s.as_bytes();
    let digits =
        |i: usize, n: usize| i + n <= b.len() && b[i..i + n].iter().all(u8::is_ascii_digit);
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let is_date = digits(i, 4)
            && b.get(i + 4) == Some(&b'-')
            && digits(i + 5, 2)
            && b.get(i + 7) == Some(&b'-')
            && digits(i + 8, 2)
            && b.get(i + 10) == Some(&b'T')
            && digits(i + 11, 2)
            && b.get(i + 13) == Some(&b':')
            && digits(i + 14, 2)
            && b.get(i + 16) == Some(&b':')
            && digits(i + 17, 2);
        if is_date {
            let mut j = i + 19;
            if b.get(j) == Some(&b'.') {
                j += 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
            }
            if b.get(j) == Some(&b'Z') {
                j += 1;
            } else if matches!(b.get(j), Some(b'+' | b'-'))
                && digits(j + 1, 2)
                && b.get(j + 3) == Some(&b':')
                && digits(j + 4, 2)
            {
                j += 6;
            }
            out.push_str("date");
            i = j;
        } else {
            let c = s[i..].chars().next().expect("inside the text");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The README's normalisation: no timestamps, no role ARNs, JSON texts parsed.
fn normalize(mut event: Value) -> Value {
    let obj = event.as_object_mut().expect("an event is an object");
    obj.remove("timestamp");
    for (k, v) in obj.iter_mut() {
        if !k.ends_with("EventDetails") {
            continue;
        }
        let Some(d) = v.as_object_mut() else { continue };
        d.remove("roleArn");
        // The recording parsed every string value that begins with `{`.
        if let Some(Value::Object(vars)) = d.get_mut("assignedVariables") {
            for v in vars.values_mut() {
                if let Value::String(s) = v
                    && s.starts_with('{')
                    && let Ok(parsed) = serde_json::from_str::<Value>(s)
                {
                    *v = parsed;
                }
            }
        }
        for key in ["input", "output", "cause", "parameters"] {
            if let Some(Value::String(s)) = d.get(key)
                && let Ok(parsed) = serde_json::from_str::<Value>(s)
            {
                d.insert(key.into(), parsed);
            }
        }
    }
    event
}

/// Whether `text` matches `pattern`, where each token in `tokens` stands for any text.
fn glob(pattern: &str, text: &str, tokens: &[String]) -> bool {
    // Split the pattern into literal pieces around tokens.
    let mut pieces = vec![String::new()];
    let mut rest = pattern;
    'outer: while !rest.is_empty() {
        for t in tokens {
            if !t.is_empty() && rest.starts_with(t.as_str()) {
                pieces.push(String::new());
                rest = &rest[t.len()..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().expect("not empty");
        pieces.last_mut().expect("one piece").push(c);
        rest = &rest[c.len_utf8()..];
    }
    if pieces.len() == 1 {
        return pieces[0] == text;
    }
    let (first, last) = (&pieces[0], &pieces[pieces.len() - 1]);
    if !text.starts_with(first.as_str()) || !text[first.len()..].ends_with(last.as_str()) {
        return false;
    }
    let mut pos = first.len();
    let end = text.len() - last.len();
    if pos > end {
        return false;
    }
    for p in &pieces[1..pieces.len() - 1] {
        match text[pos..end].find(p.as_str()) {
            Some(i) => pos += i + p.len(),
            None => return false,
        }
    }
    true
}

fn same(expected: &Value, actual: &Value, tokens: &[String]) -> bool {
    match (expected, actual) {
        (Value::String(e), a)
            if tokens.iter().any(|t| t == e) || TIME_TOKENS.contains(&e.as_str()) =>
        {
            !matches!(a, Value::Object(_) | Value::Array(_)) || tokens.iter().any(|t| t == e)
        }
        (Value::String(e), Value::String(a)) => {
            let matches = |a: &str| {
                e == a || (tokens.iter().any(|t| e.contains(t.as_str())) && glob(e, a, tokens))
            };
            matches(a) || (e.contains("date") && matches(&dates_replaced(a)))
        }
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| same(x, y, tokens))
        }
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|w| same(v, w, tokens)))
        }
        (e, a) => e == a,
    }
}

/// The recording's parallel transformer dropped `ParallelStateSucceeded`
/// events and the `ParallelStateExited` events of nested Parallel states.
fn without_nested_parallel_ends(history: Vec<Value>) -> Vec<Value> {
    let mut depth = 0usize;
    let mut out = Vec::new();
    for e in history {
        match e["type"].as_str() {
            Some("ParallelStateStarted") => depth += 1,
            Some("ParallelStateSucceeded") => {
                depth = depth.saturating_sub(1);
                continue;
            }
            Some("ParallelStateFailed") => depth = depth.saturating_sub(1),
            Some("ParallelStateExited") if depth >= 1 => continue,
            _ => {}
        }
        out.push(e);
    }
    out
}

fn without_ids(e: &Value) -> Value {
    let mut e = e.clone();
    if let Some(o) = e.as_object_mut() {
        o.remove("id");
        o.remove("previousEventId");
    }
    e
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 600 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(600).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

fn compare_history(expected: &[Value], actual: &[Value], tokens: &[String]) -> Result<(), String> {
    let unordered = |e: &Value| e["id"].is_array();
    let mut pool_e = Vec::new();
    let mut pool_a = Vec::new();
    for (i, e) in expected.iter().enumerate() {
        let Some(a) = actual.get(i) else {
            return Err(format!(
                "history ends after {} events; event {} should be {}",
                actual.len(),
                i + 1,
                short(e)
            ));
        };
        if unordered(e) {
            pool_e.push(without_ids(e));
            pool_a.push(without_ids(a));
        } else if !same(e, a, tokens) {
            return Err(format!(
                "history event {}:\n      want: {}\n      got:  {}",
                i + 1,
                short(e),
                short(a)
            ));
        }
    }
    if actual.len() > expected.len() {
        return Err(format!(
            "history has {} events, want {}; extra: {}",
            actual.len(),
            expected.len(),
            short(&actual[expected.len()])
        ));
    }
    // The recording sorted the events inside Parallel states: compare them as a multiset.
    for e in &pool_e {
        match pool_a.iter().position(|a| same(e, a, tokens)) {
            Some(i) => {
                pool_a.swap_remove(i);
            }
            None => return Err(format!("no parallel-branch event matches {}", short(e))),
        }
    }
    Ok(())
}

fn run_case(case: &Value) -> Result<(), String> {
    let mut tokens: Vec<String> = case["placeholders"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    tokens.sort_by_key(|t| std::cmp::Reverse(t.len()));
    let (status, history) = execute(case)?;
    let want_status = case["expected_status"].as_str().unwrap_or("");
    if status.as_str() != want_status {
        let last = history.last().map(short).unwrap_or_default();
        return Err(format!(
            "status {} (want {want_status}); last event: {last}",
            status.as_str()
        ));
    }
    if let (Some(want), Status::Succeeded { output }) = (case.get("expected_output"), &status)
        && !same(want, output, &tokens)
    {
        return Err(format!(
            "output:\n      want: {}\n      got:  {}",
            short(want),
            short(output)
        ));
    }
    if let Status::Failed { error, .. } = &status
        && let Some(want) = case.get("expected_error")
        && !same(
            want,
            &error.clone().map_or(Value::Null, Value::String),
            &tokens,
        )
    {
        return Err(format!("error {error:?}, want {want}"));
    }
    let expected: Vec<Value> = case["expected_history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let history = if case["parallel_order_normalized"] == Value::Bool(true) {
        without_nested_parallel_ends(history)
    } else {
        history
    };
    compare_history(&expected, &history, &tokens)
}

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

#[test]
fn stepfunctions_conformance() {
    let Some(files) = files() else { return };
    let known_text = std::fs::read_to_string(KNOWN).unwrap_or_default();
    let known: Vec<&str> = known_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut failing = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        let name = file
            .file_stem()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(file).expect("read a case");
        let case: Value = serde_json::from_str(&text).expect("a case is JSON");
        let category = case["category"].as_str().unwrap_or("?").to_owned();
        let t = tally.entry(category).or_default();
        if uses_jsonata(&case["definition"]) {
            // Not supported yet: validation must say so clearly.
            match Definition::from_value(case["definition"].clone()) {
                Err(e) if e.to_string().contains("JSONata is not supported yet") => {}
                other => problems.push(format!(
                    "{name}: JSONata is not rejected clearly: {other:?}"
                )),
            }
            t.skipped += 1;
            continue;
        }
        let result = std::panic::catch_unwind(|| run_case(&case)).unwrap_or_else(|p| {
            Err(format!(
                "panicked: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            ))
        });
        let listed = known.contains(&name.as_str());
        match result {
            Ok(()) => {
                t.passed += 1;
                if listed {
                    problems.push(format!("{name}: listed as a known failure but passes now"));
                }
            }
            Err(why) => {
                t.failed += 1;
                if !listed {
                    problems.push(format!("{name}: {why}"));
                }
                failing.push((name, why));
            }
        }
    }
    let mut total = Tally::default();
    println!(
        "{:<22} {:>6} {:>6} {:>8}",
        "category", "passed", "failed", "skipped (JSONata)"
    );
    for (cat, t) in &tally {
        println!("{cat:<22} {:>6} {:>6} {:>8}", t.passed, t.failed, t.skipped);
        total.passed += t.passed;
        total.failed += t.failed;
        total.skipped += t.skipped;
    }
    println!(
        "{:<22} {:>6} {:>6} {:>8}",
        "total", total.passed, total.failed, total.skipped
    );
    for (name, why) in &failing {
        println!("FAIL {name}\n    {why}");
    }
    if std::env::var("ASL_CONFORMANCE_UPDATE").is_ok_and(|v| v == "1") {
        let mut out = String::from(
            "# Step Functions conformance cases that still fail (one file stem a line).\n\
             # Rewritten by `ASL_CONFORMANCE_UPDATE=1 cargo test -p muon-asl --test conformance`.\n",
        );
        for (name, _) in &failing {
            out.push_str(name);
            out.push('\n');
        }
        std::fs::write(KNOWN, out).expect("write the known-failures list");
        println!("rewrote {KNOWN}");
        return;
    }
    for k in &known {
        if !files.iter().any(|f| f.file_stem().is_some_and(|s| s == *k)) {
            problems.push(format!("{k}: listed as a known failure but is not a case"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} conformance problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}
