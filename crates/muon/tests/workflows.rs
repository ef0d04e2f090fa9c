//! Workflows in a running `muon up`: the REST API, the CLI, Step Functions' own protocol, rules
//! that start workflows, task tokens, and `kill -9` during 100 running executions.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Up, client, eventually, guest};

fn json(response: reqwest::blocking::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

fn manifest() -> String {
    format!(
        "app = \"flows\"\n[[function]]\nname = \"echo\"\nruntime = \"wasm\"\nsource = {:?}\n",
        guest("echo").display().to_string()
    )
}

/// echo -> wait -> echo: the output is the input.
fn two_tasks(wait_seconds: u64) -> String {
    json!({
        "StartAt": "First",
        "States": {
            "First": { "Type": "Task", "Resource": "muon:function:echo", "Next": "Wait" },
            "Wait": { "Type": "Wait", "Seconds": wait_seconds, "Next": "Second" },
            "Second": { "Type": "Task", "Resource": "muon:function:echo", "End": true }
        }
    })
    .to_string()
}

fn create(up: &Up, name: &str, definition: &str, kind: &str) {
    json(
        client()
            .post(format!("{}/v1/state-machines", up.control))
            .json(&json!({ "name": name, "definition": definition, "type": kind }))
            .send()
            .unwrap(),
    );
}

fn history(up: &Up, arn: &str) -> Vec<Value> {
    let body = json(
        client()
            .get(format!("{}/v1/executions/{arn}/history", up.control))
            .send()
            .unwrap(),
    );
    assert!(body["nextToken"].is_null(), "one page is enough here");
    body["events"].as_array().unwrap().clone()
}

fn types(history: &[Value]) -> Vec<&str> {
    history
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

#[test]
fn every_execution_finishes_exactly_once_after_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_string();
    let manifest = manifest();
    let http = client();
    let mut arns = Vec::new();
    {
        let mut up = Up::start(&manifest, &["--data-dir", &data_dir]);
        create(&up, "twostep", &two_tasks(2), "STANDARD");
        let control = up.control.clone();
        for i in 0..100 {
            let started = json(
                http.post(format!(
                    "{control}/v1/state-machines/twostep/executions"
                ))
                .json(&json!({ "name": format!("run-{i}"), "input": json!({ "i": i }).to_string() }))
                .send()
                .unwrap(),
            );
            arns.push(started["executionArn"].as_str().unwrap().to_owned());
        }
        // Some have run their first task and wait; kill -9 while they do.
        let running = json(
            http.get(format!(
                "{control}/v1/state-machines/twostep/executions?status=running&limit=1000"
            ))
            .send()
            .unwrap(),
        );
        assert!(
            running["executions"].as_array().unwrap().len() > 50,
            "most executions should still run: the test proves nothing otherwise"
        );
        up.child.kill().unwrap(); // SIGKILL
        up.child.wait().unwrap();
    }
    let up = Up::start(&manifest, &["--data-dir", &data_dir]);
    eventually("every execution ends", Duration::from_secs(60), || {
        let running = json(
            http.get(format!(
                "{}/v1/state-machines/twostep/executions?status=running&limit=1000",
                up.control
            ))
            .send()
            .unwrap(),
        );
        running["executions"].as_array().unwrap().is_empty()
    });
    let all = json(
        http.get(format!(
            "{}/v1/state-machines/twostep/executions?limit=1000",
            up.control
        ))
        .send()
        .unwrap(),
    );
    assert_eq!(all["executions"].as_array().unwrap().len(), 100);
    for (i, arn) in arns.iter().enumerate() {
        let d = json(
            http.get(format!("{}/v1/executions/{arn}", up.control))
                .send()
                .unwrap(),
        );
        assert_eq!(d["status"], "SUCCEEDED", "{d}");
        assert_eq!(d["output"], json!({ "i": i }).to_string());
        let h = history(&up, arn);
        for (n, e) in h.iter().enumerate() {
            assert_eq!(e["id"], n as u64 + 1, "{arn}: {h:#?}");
        }
        let t = types(&h);
        assert_eq!(
            t.iter().filter(|t| **t == "TaskScheduled").count(),
            2,
            "{arn}: {t:?}"
        );
        assert_eq!(
            t.iter().filter(|t| **t == "TaskSucceeded").count(),
            2,
            "{arn}: {t:?}"
        );
        assert_eq!(
            t.iter().filter(|t| **t == "ExecutionSucceeded").count(),
            1,
            "{arn}: {t:?}"
        );
        assert_eq!(*t.last().unwrap(), "ExecutionSucceeded");
    }
}

#[test]
fn the_cli_and_the_aws_protocol_drive_workflows() {
    let up = Up::start(&manifest(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let definition = dir.path().join("echo.asl.json");
    std::fs::write(&definition, two_tasks(0)).unwrap();
    let out = up.cli(&[
        "flows",
        "create",
        "echoer",
        "--definition",
        definition.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = up.cli(&["flows", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("echoer  (standard, api)"));
    let out = up.cli(&[
        "flows",
        "start",
        "echoer",
        "--name",
        "first",
        "--input",
        r#"{"a":1}"#,
        "--wait",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("status: SUCCEEDED"), "{stdout}");
    assert!(stdout.contains(r#"output: {"a":1}"#), "{stdout}");
    let out = up.cli(&["flows", "describe", "echoer/first", "--json"]);
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["status"], "SUCCEEDED");
    let out = up.cli(&["flows", "history", "echoer/first", "--json"]);
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["events"][0]["type"], "ExecutionStarted");
    let out = up.cli(&["flows", "executions", "echoer"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCEEDED"));
    // Bad input: a clear error and a failing exit.
    let out = up.cli(&["flows", "start", "echoer", "--input", "{nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("InvalidExecutionInput"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = up.cli(&["flows", "start", "nothing"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("StateMachineDoesNotExist"));

    // Step Functions' protocol, as the AWS SDKs speak it.
    let aws = |op: &str, body: Value| {
        client()
            .post(format!("{}/", up.control))
            .header("x-amz-target", format!("AWSStepFunctions.{op}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let r = aws(
        "CreateStateMachine",
        json!({
            "name": "quick", "type": "EXPRESS", "roleArn": "arn:aws:iam::1:role/x",
            "definition": json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": {"ok": true}, "End": true}}}).to_string(),
        }),
    );
    assert!(r.status().is_success());
    let arn = r.json::<Value>().unwrap()["stateMachineArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = aws(
        "StartSyncExecution",
        json!({ "stateMachineArn": arn, "input": "{}" }),
    );
    let body: Value = r.json().unwrap();
    assert_eq!(body["status"], "SUCCEEDED", "{body}");
    assert_eq!(body["output"], r#"{"ok":true}"#);
    let r = aws(
        "DescribeExecution",
        json!({ "executionArn": "arn:aws:states:us-east-1:000000000000:execution:quick:none" }),
    );
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().unwrap()["__type"],
        "ExecutionDoesNotExist"
    );
    let r = aws(
        "CreateStateMachine",
        json!({ "name": "bad", "definition": "{\"StartAt\": \"X\", \"States\": {}}" }),
    );
    assert_eq!(r.status(), 400);
    let e: Value = r.json().unwrap();
    assert_eq!(e["__type"], "InvalidDefinition");
    assert!(e["message"].as_str().unwrap().contains("/StartAt"), "{e}");
}

#[test]
fn rules_start_workflows_and_tokens_resume_them() {
    let up = Up::start(&manifest(), &[]);
    let http = client();
    // Waits for a callback: the token goes out in an event, a rule routes it to a workflow
    // that records it.
    create(
        &up,
        "approval",
        &json!({
            "StartAt": "Ask",
            "States": {
                "Ask": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
                    "Parameters": { "Entries": [{
                        "Source": "flows.test", "DetailType": "ApprovalRequested",
                        "Detail": { "token.$": "$$.Task.Token", "order.$": "$.order" }
                    }] },
                    "End": true
                }
            }
        })
        .to_string(),
        "STANDARD",
    );
    create(&up, "inbox", &two_tasks(0), "STANDARD");
    let rule = json!({
        "Name": "approvals", "EventBusName": "default",
        "EventPattern": json!({ "detail-type": ["ApprovalRequested"] }).to_string(),
        "Targets": [{ "Id": "inbox", "Workflow": "inbox", "InputPath": "$.detail" }],
    });
    json(
        http.put(format!("{}/v1/rules", up.control))
            .body(rule.to_string())
            .send()
            .unwrap(),
    );
    // A rule may not name a workflow that does not exist.
    let bad = http
        .put(format!("{}/v1/rules", up.control))
        .body(
            json!({
                "Name": "nowhere", "EventBusName": "default",
                "EventPattern": "{\"source\": [\"x\"]}",
                "Targets": [{ "Id": "t", "Workflow": "ghost" }],
            })
            .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    let started = json(
        http.post(format!(
            "{}/v1/state-machines/approval/executions",
            up.control
        ))
        .json(&json!({ "input": "{\"order\": \"o-7\"}" }))
        .send()
        .unwrap(),
    );
    let arn = started["executionArn"].as_str().unwrap().to_owned();
    // The event started an `inbox` execution whose input carries the token.
    let mut token = String::new();
    eventually("the inbox workflow ran", Duration::from_secs(20), || {
        let list = json(
            http.get(format!(
                "{}/v1/state-machines/inbox/executions?status=succeeded",
                up.control
            ))
            .send()
            .unwrap(),
        );
        let Some(first) = list["executions"].as_array().unwrap().first().cloned() else {
            return false;
        };
        let d = json(
            http.get(format!(
                "{}/v1/executions/{}",
                up.control,
                first["executionArn"].as_str().unwrap()
            ))
            .send()
            .unwrap(),
        );
        let output: Value = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
        assert_eq!(output["order"], "o-7");
        token = output["token"].as_str().unwrap().to_owned();
        true
    });
    let out = up.cli(&["flows", "send-task-heartbeat", &token]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = up.cli(&[
        "flows",
        "send-task-success",
        &token,
        "--output",
        r#"{"approved": true}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = up.cli(&["flows", "describe", &arn, "--json"]);
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["status"], "SUCCEEDED", "{d}");
    assert_eq!(d["output"], r#"{"approved":true}"#);
    // The token is spent.
    let out = up.cli(&["flows", "send-task-success", &token]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TaskDoesNotExist"));
    let out = up.cli(&["flows", "send-task-failure", "not-a-token"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidToken"));
}

#[test]
fn the_shop_order_workflow_runs_under_muon_up() {
    let shop = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start_app(&shop, &["--data-dir", data.path().to_str().unwrap()]);
    let order = |case: &str| {
        let input = shop.join(format!("workflows/order-{case}.json"));
        let out = up.cli(&[
            "flows",
            "start",
            "order",
            "--input",
            &format!("@{}", input.display()),
            "--wait",
            "--json",
        ]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let ok = order("ok");
    assert_eq!(ok["status"], "SUCCEEDED", "{ok}");
    let output: Value = serde_json::from_str(ok["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["payment"]["charge_id"], "ch_o-1");
    assert_eq!(output["reservation"]["reserved"], 2);
    let declined = order("declined");
    assert_eq!(declined["status"], "FAILED");
    assert_eq!(declined["error"], "OrderFailed");
    // The compensation ran before the failure.
    let h = history(&up, declined["executionArn"].as_str().unwrap());
    let released = h.iter().any(|e| {
        e["type"] == "TaskStateEntered"
            && e["stateEnteredEventDetails"]["name"] == "ReleaseInventory"
    });
    assert!(released, "{:?}", types(&h));
}

#[test]
fn a_manifest_rule_starts_a_manifest_workflow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flow.asl.json"), two_tasks(0)).unwrap();
    let manifest = format!(
        "{}[[workflow]]\nname = \"onboard\"\ndefinition = \"flow.asl.json\"\n\
         [[rule]]\nname = \"signups\"\npattern = {{ detail-type = [\"SignedUp\"] }}\n\
         targets = [{{ workflow = \"onboard\", input_path = \"$.detail\" }}]\n",
        manifest()
    );
    std::fs::write(dir.path().join("muon.toml"), manifest).unwrap();
    let up = Up::start_app(dir.path(), &[]);
    let out = up.cli(&[
        "events",
        "put",
        "--source",
        "app",
        "--detail-type",
        "SignedUp",
        "--detail",
        r#"{"user": "ada"}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the workflow ran", Duration::from_secs(20), || {
        let out = up.cli(&[
            "flows",
            "executions",
            "onboard",
            "--status",
            "succeeded",
            "--json",
        ]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        list["executions"].as_array().is_some_and(|e| e.len() == 1)
    });
    let out = up.cli(&["flows", "executions", "onboard", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let arn = list["executions"][0]["executionArn"].as_str().unwrap();
    // Named after the delivery.
    assert!(arn.contains(":execution:onboard:dlv_"), "{arn}");
    let out = up.cli(&["flows", "describe", arn, "--json"]);
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["output"], r#"{"user":"ada"}"#);
}
