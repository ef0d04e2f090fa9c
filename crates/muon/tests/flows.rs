//! `muon flows exec` as a user runs it: the real binary, real guest components for Task states.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};
use support::{guest, muon};

/// What one run printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The `--json` result object (the first line of standard output).
    fn result(&self) -> Value {
        let line = self.stdout.lines().next().unwrap_or_else(|| {
            panic!("no output; stderr: {}", self.stderr);
        });
        serde_json::from_str(line).unwrap()
    }

    /// The `--history` object (the second line with `--json`).
    fn history(&self) -> Vec<Value> {
        let line = self.stdout.lines().nth(1).expect("a history line");
        let history: Value = serde_json::from_str(line).unwrap();
        history["events"].as_array().unwrap().clone()
    }
}

/// Runs `muon flows exec` with `definition` (written to a file) and `args`.
fn exec(definition: &Value, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("machine.json");
    std::fs::write(&file, definition.to_string()).unwrap();
    exec_file(&file, args)
}

fn exec_file(file: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = muon()
        .args(["flows", "exec", "--definition"])
        .arg(file)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: status.code().unwrap(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// An app folder whose muon.toml names the `echo`, `trap` and `spin` guests (`spin` twice:
/// `slow` stops after 200 ms).
fn app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = String::from("app = \"flows\"\n");
    for (name, guest_name, extra) in [
        ("echo", "echo", ""),
        ("trap", "trap", ""),
        ("spin", "spin", ""),
        ("slow", "spin", "timeout = \"200ms\"\n"),
    ] {
        manifest.push_str(&format!(
            "[[function]]\nname = \"{name}\"\nruntime = \"wasm\"\nsource = {:?}\n{extra}",
            guest(guest_name).display().to_string()
        ));
    }
    std::fs::write(dir.path().join("muon.toml"), manifest).unwrap();
    dir
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[test]
fn pass_choice_and_a_long_wait_finish_at_once() {
    let definition = json!({
        "StartAt": "Prepare",
        "States": {
            "Prepare": {"Type": "Pass", "Result": {"n": 5}, "ResultPath": "$.p", "Next": "Big?"},
            "Big?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.p.n", "NumericGreaterThan": 3, "Next": "Month"}],
                "Default": "Small"
            },
            "Month": {"Type": "Wait", "Seconds": 2_592_000, "Next": "Done"},
            "Small": {"Type": "Pass", "Result": "small", "End": true},
            "Done": {"Type": "Pass", "Parameters": {"order.$": "$.order", "n.$": "$.p.n"}, "End": true}
        }
    });
    let run = exec(
        &definition,
        &["--input", r#"{"order": 7}"#, "--json", "--history"],
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        run.result(),
        json!({"status": "SUCCEEDED", "output": {"order": 7, "n": 5}, "error": null, "cause": null})
    );
    // The virtual clock jumped 30 days (the test would not end otherwise).
    let events = run.history();
    let at = |t: &str| {
        events.iter().find(|e| e["type"] == t).unwrap()["timestamp"]
            .as_f64()
            .unwrap()
    };
    assert!(at("WaitStateExited") - at("WaitStateEntered") >= 2_592_000.0);

    // Without --json: people's format.
    let run = exec(&definition, &["--input", r#"{"order": 7}"#]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        "status: SUCCEEDED\noutput: {\"order\":7,\"n\":5}\n"
    );
}

#[test]
fn history_is_shaped_like_get_execution_history() {
    let definition = json!({
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Result": {"a": 1}, "Next": "B"},
            "B": {"Type": "Pass", "End": true}
        }
    });
    let run = exec(&definition, &["--json", "--history"]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let events = run.history();
    let shape: Vec<(u64, u64, &str)> = events
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap(),
                e["previousEventId"].as_u64().unwrap(),
                e["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (1, 0, "ExecutionStarted"),
            (2, 0, "PassStateEntered"),
            (3, 2, "PassStateExited"),
            (4, 3, "PassStateEntered"),
            (5, 4, "PassStateExited"),
            (6, 5, "ExecutionSucceeded"),
        ]
    );
    assert_eq!(events[0]["executionStartedEventDetails"]["input"], "{}");
    assert_eq!(events[1]["stateEnteredEventDetails"]["name"], "A");
    assert_eq!(
        events[5]["executionSucceededEventDetails"]["output"],
        r#"{"a":1}"#
    );
    assert!(events.iter().all(|e| e["timestamp"].is_f64()));

    // Without --json, the history is pretty-printed after the status.
    let run = exec(&definition, &["--history"]);
    let text = run.stdout.split_once('\n').unwrap().1;
    let text = text.split_once('\n').unwrap().1;
    let history: Value = serde_json::from_str(text).unwrap();
    assert_eq!(history["events"].as_array().unwrap().len(), 6);
}

#[test]
fn task_states_call_the_apps_functions() {
    let app = app();
    let definition = json!({
        "StartAt": "Direct",
        "States": {
            "Direct": {
                "Type": "Task",
                "Resource": "muon:function:echo",
                "ResultPath": "$.direct",
                "Next": "Arn"
            },
            "Arn": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:echo:live",
                "Parameters": {"via": "arn"},
                "ResultPath": "$.arn",
                "Next": "Integration"
            },
            "Integration": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "echo", "Payload": {"order.$": "$.order"}},
                "ResultSelector": {"payload.$": "$.Payload", "code.$": "$.StatusCode", "version.$": "$.ExecutedVersion"},
                "ResultPath": "$.integration",
                "End": true
            }
        }
    });
    let run = exec(
        &definition,
        &[
            "--app",
            app.path().to_str().unwrap(),
            "--input",
            r#"{"order": 7}"#,
            "--json",
            "--history",
        ],
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(
        run.result()["output"],
        json!({
            "order": 7,
            "direct": {"order": 7},
            "arn": {"via": "arn"},
            "integration": {"payload": {"order": 7}, "code": 200, "version": "$LATEST"}
        })
    );
    let events = run.history();
    let types = types(&events);
    assert!(types.contains(&"LambdaFunctionScheduled"));
    assert!(types.contains(&"LambdaFunctionSucceeded"));
    assert_eq!(types.iter().filter(|t| **t == "TaskSucceeded").count(), 2);
    // The echo guest's stderr is passed on.
    assert!(run.stderr.contains("[echo] echo: "), "{}", run.stderr);
}

#[test]
fn a_trapping_function_is_retried_then_caught() {
    let app = app();
    let definition = json!({
        "StartAt": "Risky",
        "States": {
            "Risky": {
                "Type": "Task",
                "Resource": "muon:function:trap",
                "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 3600, "MaxAttempts": 2, "BackoffRate": 2.0}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Recovered"}],
                "End": true
            },
            "Recovered": {"Type": "Pass", "End": true}
        }
    });
    let run = exec(
        &definition,
        &["--app", app.path().to_str().unwrap(), "--json", "--history"],
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let output = &run.result()["output"];
    assert_eq!(output["failure"]["Error"], "States.TaskFailed");
    assert!(
        output["failure"]["Cause"]
            .as_str()
            .unwrap()
            .contains("function trap"),
        "{output}"
    );
    let events = run.history();
    let types = types(&events);
    assert_eq!(types.iter().filter(|t| **t == "TaskScheduled").count(), 3);
    assert_eq!(types.iter().filter(|t| **t == "TaskFailed").count(), 3);
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"));
    // The retries waited 1 h and 2 h of virtual time.
    let scheduled: Vec<f64> = events
        .iter()
        .filter(|e| e["type"] == "TaskScheduled")
        .map(|e| e["timestamp"].as_f64().unwrap())
        .collect();
    assert!(scheduled[1] - scheduled[0] >= 3600.0);
    assert!(scheduled[2] - scheduled[1] >= 7200.0);

    // Without a Catch, the execution fails: exit 1, with the error and cause.
    let mut uncaught = definition.clone();
    uncaught["States"]["Risky"]
        .as_object_mut()
        .unwrap()
        .remove("Catch");
    let run = exec(&uncaught, &["--app", app.path().to_str().unwrap()]);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert!(
        run.stdout
            .starts_with("status: FAILED\nerror: States.TaskFailed\ncause: ")
    );
}

#[test]
fn timeouts_fail_tasks_with_states_timeout() {
    let app = app();
    // `TimeoutSeconds` stops a function that never answers; the function's own timeout too.
    let definition = json!({
        "StartAt": "Spin",
        "States": {
            "Spin": {
                "Type": "Task",
                "Resource": "muon:function:spin",
                "TimeoutSeconds": 1,
                "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.e", "Next": "Slow"}],
                "End": true
            },
            "Slow": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:slow",
                "End": true
            }
        }
    });
    let run = exec(
        &definition,
        &["--app", app.path().to_str().unwrap(), "--json", "--history"],
    );
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert_eq!(run.result()["error"], "States.Timeout");
    let events = run.history();
    let types = types(&events);
    assert!(types.contains(&"TaskTimedOut"), "{types:?}");
    assert!(types.contains(&"LambdaFunctionTimedOut"), "{types:?}");
    assert_eq!(types.last(), Some(&"ExecutionFailed"));
}

#[test]
fn invalid_input_is_refused_with_exit_2() {
    // Every problem of an invalid definition is listed, with its path.
    let definition = json!({
        "StartAt": "Missing",
        "States": {
            "A": {"Type": "Pass", "Next": "Nowhere"},
            "B": {"Type": "Wait", "End": true}
        }
    });
    let run = exec(&definition, &[]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("invalid state machine definition"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("/StartAt"), "{}", run.stderr);
    assert!(run.stderr.contains("/States/A/Next"), "{}", run.stderr);
    assert!(run.stderr.contains("/States/B"), "{}", run.stderr);

    // JSONata is not supported yet.
    let jsonata = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "End": true}}
    });
    let run = exec(&jsonata, &[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("JSONata"), "{}", run.stderr);

    let ok = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
    // Malformed input, input over 256 KiB, an unreadable input file, an unreadable definition.
    let run = exec(&ok, &["--input", "{not json"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json");
    std::fs::write(&big, format!("\"{}\"", "x".repeat(262_144))).unwrap();
    let run = exec(&ok, &["--input", &format!("@{}", big.display())]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("262144"), "{}", run.stderr);
    let run = exec(&ok, &["--input", "@/nonexistent/input.json"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/nonexistent/input.json"),
        "{}",
        run.stderr
    );
    let run = exec_file(Path::new("/nonexistent/machine.json"), &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("cannot read the definition"),
        "{}",
        run.stderr
    );

    // A malformed definition file.
    let file = dir.path().join("broken.json");
    std::fs::write(&file, "{\"StartAt\": ").unwrap();
    let run = exec_file(&file, &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("invalid state machine definition"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_task_without_app_fails_the_execution() {
    let definition = json!({
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "muon:function:echo",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                "End": true
            },
            "Caught": {"Type": "Pass", "End": true}
        }
    });
    let run = exec(&definition, &["--json"]);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let result = run.result();
    assert_eq!(result["status"], "FAILED");
    assert_eq!(result["error"], "States.Runtime");
    let cause = result["cause"].as_str().unwrap();
    assert!(cause.contains("--app"), "{cause}");
    assert!(cause.contains("echo"), "{cause}");
}

/// The shop example: its `order` workflow and the four sample orders next to it.
fn shop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop")
}

/// The `[[workflow]]` of the shop, run on `workflows/order-<case>.json`.
fn shop_order(case: &str) -> Run {
    let shop = shop();
    let input = shop.join(format!("workflows/order-{case}.json"));
    exec_file(
        &shop.join("workflows/order.asl.json"),
        &[
            "--app",
            shop.to_str().unwrap(),
            "--input",
            &format!("@{}", input.display()),
            "--json",
            "--history",
        ],
    )
}

/// The events of type `kind` (`TaskScheduled`, `TaskFailed`, ...) about `resource`: their
/// timestamps and details.
fn task_events<'a>(events: &'a [Value], kind: &str, resource: &str) -> Vec<(f64, &'a Value)> {
    let details = format!("{}EventDetails", kind[..1].to_lowercase() + &kind[1..]);
    events
        .iter()
        .filter(|e| e["type"] == kind && e[&details]["resource"] == resource)
        .map(|e| (e["timestamp"].as_f64().unwrap(), &e[&details]))
        .collect()
}

#[test]
fn the_shop_order_workflow_places_retries_compensates_and_rejects() {
    // The manifest declares the workflow, and the definition is the one it names.
    let app = muon_manifest::load(&shop()).unwrap();
    let order = app
        .workflow("order")
        .expect("examples/shop declares `order`");
    assert_eq!(order.kind, muon_manifest::WorkflowKind::Standard);
    assert!(order.definition_path.ends_with("workflows/order.asl.json"));

    // Every step succeeds; the results accumulate in the state.
    let ok = shop_order("ok");
    assert_eq!(ok.code, 0, "stderr: {}", ok.stderr);
    let result = ok.result();
    assert_eq!(result["status"], "SUCCEEDED", "{result}");
    let output = &result["output"];
    assert_eq!(output["validated"], true, "{output}");
    assert_eq!(output["reservation"], json!({"reserved": 2}));
    assert_eq!(
        output["payment"],
        json!({"charge_id": "ch_o-1", "amount": 12.5})
    );
    assert_eq!(
        output["notifications"],
        json!({"email": {"sent_to": "ada@example.com"}, "warehouse": {"lines": 1}})
    );
    for line in [
        "[validate] validate: o-1 is valid",
        "[inventory] inventory: reserved 2 item(s) for o-1",
        "[payment] payment: charged 12.5 for o-1 (attempt 0)",
        "[email] email: confirmation for o-1 sent to ada@example.com",
        "[warehouse] warehouse: pick list for o-1: tea x2",
    ] {
        assert!(ok.stderr.contains(line), "{line:?} not in:\n{}", ok.stderr);
    }

    // The flaky card fails the first charge with PaymentUnavailable; the Retry succeeds.
    let flaky = shop_order("flaky");
    assert_eq!(flaky.code, 0, "stderr: {}", flaky.stderr);
    assert_eq!(flaky.result()["output"]["payment"]["charge_id"], "ch_o-2");
    let events = flaky.history();
    let failed = task_events(&events, "TaskFailed", "muon:function:payment");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].1["error"], "PaymentUnavailable");
    // The definition passes `$$.State.RetryCount` as the attempt; the retry waited
    // IntervalSeconds (1 s) of virtual time.
    let scheduled = task_events(&events, "TaskScheduled", "muon:function:payment");
    let attempts: Vec<Value> = scheduled
        .iter()
        .map(|(_, d)| {
            let parameters: Value =
                serde_json::from_str(d["parameters"].as_str().unwrap()).unwrap();
            parameters["attempt"].clone()
        })
        .collect();
    assert_eq!(attempts, [json!(0), json!(1)]);
    assert!(scheduled[1].0 - scheduled[0].0 >= 1.0, "{scheduled:?}");
    assert_eq!(types(&events).last(), Some(&"ExecutionSucceeded"));

    // A declined card is caught: the reserved items are released, then the order fails.
    let declined = shop_order("declined");
    assert_eq!(declined.code, 1, "stderr: {}", declined.stderr);
    assert_eq!(
        declined.result(),
        json!({
            "status": "FAILED",
            "output": null,
            "error": "OrderFailed",
            "cause": "payment failed; inventory released"
        })
    );
    let events = declined.history();
    assert_eq!(
        task_events(&events, "TaskFailed", "muon:function:payment")[0].1["error"],
        "PaymentDeclined"
    );
    let released = task_events(&events, "TaskSucceeded", "muon:function:release");
    assert_eq!(released.len(), 1, "{events:?}");
    assert_eq!(released[0].1["output"], r#"{"released":3}"#);
    assert!(task_events(&events, "TaskScheduled", "muon:function:email").is_empty());
    assert!(
        declined
            .stderr
            .contains("[release] release: released 3 item(s) for o-3 (PaymentDeclined)"),
        "{}",
        declined.stderr
    );

    // An order without items is rejected by validate, before anything is reserved.
    let invalid = shop_order("invalid");
    assert_eq!(invalid.code, 1, "stderr: {}", invalid.stderr);
    let result = invalid.result();
    assert_eq!(result["status"], "FAILED");
    assert_eq!(result["error"], "OrderRejected");
    let cause: Value = serde_json::from_str(result["cause"].as_str().unwrap()).unwrap();
    assert_eq!(
        cause,
        json!({"errorType": "InvalidOrder", "errorMessage": "the order has no items"})
    );
    let events = invalid.history();
    assert!(task_events(&events, "TaskScheduled", "muon:function:inventory").is_empty());
    assert!(
        !invalid.stderr.contains("[inventory]"),
        "{}",
        invalid.stderr
    );
}
