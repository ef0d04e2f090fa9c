//! The workflow engine against a fake dispatch: Standard executions on SQLite (and their
//! resumption after a crash), Express executions, task tokens, child executions, and the
//! errors of bad requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use muon_flow::{
    Answer, Callback, Config, Description, Dispatch, DispatchError, Error, Flows, FunctionCall,
    HttpCall, Kind, StartRequest, Workflow,
};
use muon_store::{BoxFuture, Store};
use serde_json::{Value, json};

/// Functions the tests call:
/// - `double`: `{"n": x}` -> `{"n": 2x}`;
/// - `flaky`: fails with `Busy` on attempt 0, then answers `{"ok": true}`;
/// - `reject`: 400 `{"errorType": "Rejected"}`;
/// - `hang`: never answers (until `release` is set);
/// - anything else: 404-like not found.
#[derive(Default, Clone)]
struct Fake {
    calls: Arc<Mutex<Vec<FunctionCall>>>,
    events: Arc<Mutex<Vec<Value>>>,
    hang: Arc<tokio::sync::Notify>,
}

impl Fake {
    fn calls_to(&self, function: &str) -> Vec<FunctionCall> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.function == function)
            .cloned()
            .collect()
    }
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
        invocation: Some("inv_test".into()),
    }
}

impl Dispatch for Fake {
    fn function(&self, call: FunctionCall) -> BoxFuture<'static, Result<Answer, DispatchError>> {
        self.calls.lock().unwrap().push(call.clone());
        let me = self.clone();
        Box::pin(async move {
            let body: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
            let attempt = call
                .headers
                .iter()
                .find(|(k, _)| *k == "x-muon-attempt")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            match call.function.as_str() {
                "double" => Ok(answer(
                    200,
                    json!({ "n": body["n"].as_i64().unwrap_or(0) * 2 }),
                )),
                "flaky" if attempt == "0" => Ok(answer(503, json!({ "errorType": "Busy" }))),
                "flaky" => Ok(answer(200, json!({ "ok": true }))),
                "reject" => Ok(answer(400, json!({ "errorType": "Rejected" }))),
                "hang" => {
                    me.hang.notified().await;
                    Ok(answer(200, json!({ "released": true })))
                }
                other => Err(DispatchError::new(
                    "Lambda.ResourceNotFoundException",
                    format!("Function not found: {other}"),
                )),
            }
        })
    }

    fn put_events(&self, entries: Value) -> BoxFuture<'static, Result<Value, DispatchError>> {
        self.events.lock().unwrap().push(entries.clone());
        let n = entries.as_array().map_or(0, Vec::len);
        Box::pin(async move {
            Ok(json!({
                "Entries": (0..n).map(|i| json!({ "EventId": format!("e{i}") })).collect::<Vec<_>>(),
                "FailedEntryCount": 0,
            }))
        })
    }

    fn http(&self, call: HttpCall) -> BoxFuture<'static, Result<Answer, DispatchError>> {
        Box::pin(async move {
            Ok(answer(
                if call.url.contains("missing") {
                    404
                } else {
                    200
                },
                json!({ "method": call.method, "url": call.url }),
            ))
        })
    }
}

fn workflow(name: &str, kind: Kind, definition: Value) -> Workflow {
    Workflow {
        name: name.into(),
        definition: definition.to_string(),
        kind,
    }
}

fn workflows() -> Vec<Workflow> {
    vec![
        workflow(
            "doubler",
            Kind::Standard,
            json!({
                "StartAt": "One",
                "States": {
                    "One": { "Type": "Task", "Resource": "muon:function:double", "Next": "Two" },
                    "Two": { "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:double", "Next": "Three" },
                    "Three": {
                        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": { "FunctionName": "double", "Payload.$": "$" },
                        "OutputPath": "$.Payload", "End": true
                    }
                }
            }),
        ),
        workflow(
            "express-doubler",
            Kind::Express,
            json!({
                "StartAt": "One",
                "States": {
                    "One": { "Type": "Task", "Resource": "muon:function:double", "Next": "Done" },
                    "Done": { "Type": "Pass", "End": true }
                }
            }),
        ),
        workflow(
            "retrying",
            Kind::Standard,
            json!({
                "StartAt": "Call",
                "States": {
                    "Call": {
                        "Type": "Task", "Resource": "muon:function:flaky",
                        "Retry": [{ "ErrorEquals": ["Busy"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1 }],
                        "Catch": [{ "ErrorEquals": ["States.ALL"], "Next": "Caught" }],
                        "End": true
                    },
                    "Caught": { "Type": "Fail", "Error": "Caught" }
                }
            }),
        ),
        workflow(
            "rejecting",
            Kind::Standard,
            json!({
                "StartAt": "Call",
                "States": {
                    "Call": {
                        "Type": "Task", "Resource": "muon:function:reject",
                        "Catch": [{ "ErrorEquals": ["Rejected"], "ResultPath": "$.error", "Next": "Undo" }],
                        "End": true
                    },
                    "Undo": { "Type": "Pass", "Result": "undone", "ResultPath": "$.undo", "Next": "Failed" },
                    "Failed": { "Type": "Fail", "Error": "OrderFailed", "Cause": "rejected" }
                }
            }),
        ),
        workflow(
            "waiting",
            Kind::Standard,
            json!({
                "StartAt": "Wait",
                "States": {
                    "Wait": { "Type": "Wait", "Seconds": 1, "Next": "Double" },
                    "Double": { "Type": "Task", "Resource": "muon:function:double", "End": true }
                }
            }),
        ),
        workflow(
            "hanging",
            Kind::Standard,
            json!({
                "StartAt": "Hang",
                "States": {
                    "Hang": { "Type": "Task", "Resource": "muon:function:hang", "Next": "Double" },
                    "Double": { "Type": "Task", "Resource": "muon:function:double", "InputPath": "$$.Execution.Input", "End": true }
                }
            }),
        ),
        workflow(
            "callback",
            Kind::Standard,
            json!({
                "StartAt": "Ask",
                "States": {
                    "Ask": {
                        "Type": "Task", "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
                        "Parameters": { "Entries": [{
                            "Source": "test", "DetailType": "Approve",
                            "Detail": { "token.$": "$$.Task.Token" }
                        }] },
                        "HeartbeatSeconds": 60,
                        "End": true
                    }
                }
            }),
        ),
        workflow(
            "parent",
            Kind::Standard,
            json!({
                "StartAt": "Child",
                "States": {
                    "Child": {
                        "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                        "Parameters": { "StateMachineArn": "arn:aws:states:us-east-1:000000000000:stateMachine:doubler", "Input.$": "$" },
                        "OutputPath": "$.Output",
                        "End": true
                    }
                }
            }),
        ),
        workflow(
            "passes",
            Kind::Standard,
            json!({
                "StartAt": "A",
                "States": {
                    "A": { "Type": "Pass", "Result": 1, "ResultPath": "$.a", "Next": "B" },
                    "B": { "Type": "Pass", "Result": 2, "ResultPath": "$.b", "End": true }
                }
            }),
        ),
        workflow(
            "http",
            Kind::Express,
            json!({
                "StartAt": "Get",
                "States": {
                    "Get": {
                        "Type": "Task", "Resource": "arn:aws:states:::http:invoke",
                        "Parameters": { "ApiEndpoint.$": "$.url", "Method": "GET", "QueryParameters": { "q": "a b" } },
                        "ResultSelector": { "status.$": "$.StatusCode", "body.$": "$.ResponseBody" },
                        "End": true
                    }
                }
            }),
        ),
    ]
}

async fn engine(store: Arc<dyn Store>, fake: Fake) -> Flows {
    Flows::start(
        Config {
            workflows: workflows(),
            ..Config::default()
        },
        store,
        Arc::new(fake),
    )
    .await
    .expect("the engine starts")
}

fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(muon_store_sqlite::Sqlite::open(&dir.path().join("muon.db")).unwrap())
}

async fn run(flows: &Flows, machine: &str, input: Value) -> Arc<Description> {
    tokio::time::timeout(
        Duration::from_secs(20),
        flows.start_sync(StartRequest {
            machine: machine.into(),
            name: None,
            input: Some(input.to_string()),
        }),
    )
    .await
    .expect("the execution ends in time")
    .expect("the execution starts")
}

async fn history(flows: &Flows, arn: &str) -> Vec<Value> {
    flows.history(arn, 0, usize::MAX).await.unwrap()
}

fn types(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Ids 1..=n in order, each naming an earlier event as previous, one end event, last.
fn check_well_formed(history: &[Value]) {
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e["id"].as_u64(), Some(i as u64 + 1), "{history:#?}");
        assert!(e["previousEventId"].as_u64().unwrap() <= i as u64);
    }
    let ends = types(history)
        .iter()
        .filter(|t| {
            [
                "ExecutionSucceeded",
                "ExecutionFailed",
                "ExecutionTimedOut",
                "ExecutionAborted",
            ]
            .contains(&t.as_str())
        })
        .count();
    assert_eq!(ends, 1, "{:?}", types(history));
}

#[tokio::test]
async fn standard_executions_run_tasks_and_keep_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let flows = engine(sqlite(&dir), fake.clone()).await;
    let d = run(&flows, "doubler", json!({ "n": 3 })).await;
    assert_eq!(d.status, "SUCCEEDED", "{d:?}");
    assert_eq!(d.output.as_deref(), Some(r#"{"n":24}"#));
    let described = flows.describe(&d.arn).await.unwrap();
    assert_eq!(described.status, "SUCCEEDED");
    assert!(described.stop_ms.is_some());
    let h = history(&flows, &d.arn).await;
    check_well_formed(&h);
    // muon:function and lambda:invoke are Task* events, a Lambda ARN LambdaFunction* ones.
    assert_eq!(
        types(&h).iter().filter(|t| *t == "TaskSucceeded").count(),
        2
    );
    assert_eq!(
        types(&h)
            .iter()
            .filter(|t| *t == "LambdaFunctionSucceeded")
            .count(),
        1
    );
    // Each call carried its execution, state and a distinct idempotency key.
    let calls = fake.calls_to("double");
    assert_eq!(calls.len(), 3);
    let keys: std::collections::HashSet<String> = calls
        .iter()
        .map(|c| header(c, "x-muon-idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(calls.iter().all(|c| header(c, "x-muon-execution") == d.arn));
    // Paging through the history.
    let page = flows.history(&d.arn, 2, 3).await.unwrap();
    assert_eq!(page.len(), 3);
    assert_eq!(page[0]["id"], 3);
    let listed = flows.list(Some("doubler"), None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].arn, d.arn);
}

fn header(call: &FunctionCall, name: &str) -> String {
    call.headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn names_in_any_script_reach_functions_as_header_safe_text() {
    let fake = Fake::default();
    let flows = engine(Arc::new(muon_store::Memory::new()), fake.clone()).await;
    let d = tokio::time::timeout(
        Duration::from_secs(20),
        flows.start_sync(StartRequest {
            machine: "doubler".into(),
            name: Some("commande-é".into()),
            input: Some(r#"{"n":1}"#.into()),
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(d.status, "SUCCEEDED", "{d:?}");
    let call = &fake.calls_to("double")[0];
    assert!(
        header(call, "x-muon-execution").ends_with(":doubler:commande-%C3%A9"),
        "{call:?}"
    );
}

#[tokio::test]
async fn retries_catches_and_failures() {
    let fake = Fake::default();
    let flows = engine(Arc::new(muon_store::Memory::new()), fake.clone()).await;
    let d = run(&flows, "retrying", json!({})).await;
    assert_eq!(d.status, "SUCCEEDED", "{d:?}");
    let attempts: Vec<String> = fake
        .calls_to("flaky")
        .iter()
        .map(|c| header(c, "x-muon-attempt"))
        .collect();
    assert_eq!(attempts, ["0", "1"]);
    let d = run(&flows, "rejecting", json!({ "order": 1 })).await;
    assert_eq!(d.status, "FAILED");
    assert_eq!(d.error.as_deref(), Some("OrderFailed"));
    assert_eq!(d.cause.as_deref(), Some("rejected"));
    check_well_formed(&history(&flows, &d.arn).await);
}

#[tokio::test]
async fn pass_only_executions_end_as_they_start() {
    let dir = tempfile::tempdir().unwrap();
    let flows = engine(sqlite(&dir), Fake::default()).await;
    let d = run(&flows, "passes", json!({})).await;
    assert_eq!(d.status, "SUCCEEDED");
    assert_eq!(d.output.as_deref(), Some(r#"{"a":1,"b":2}"#));
    assert_eq!(flows.describe(&d.arn).await.unwrap().status, "SUCCEEDED");
}

#[tokio::test]
async fn starting_with_a_name_is_idempotent() {
    let fake = Fake::default();
    let flows = engine(Arc::new(muon_store::Memory::new()), fake.clone()).await;
    let request = |input: &str| StartRequest {
        machine: "hanging".into(),
        name: Some("order-1".into()),
        input: Some(input.into()),
    };
    let a = flows.start_execution(request(r#"{"n":1}"#)).await.unwrap();
    let b = flows.start_execution(request(r#"{"n":1}"#)).await.unwrap();
    assert_eq!(a, b);
    assert!(a.arn.ends_with(":execution:hanging:order-1"));
    let e = flows
        .start_execution(request(r#"{"n":2}"#))
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "ExecutionAlreadyExists");
    // Once it ended, the name stays taken.
    let stopped = flows
        .stop(&a.arn, Some("Why".into()), Some("testing".into()))
        .await
        .unwrap();
    assert!(stopped >= a.start_ms);
    let d = flows.describe(&a.arn).await.unwrap();
    assert_eq!(d.status, "ABORTED");
    assert_eq!(d.error.as_deref(), Some("Why"));
    let e = flows
        .start_execution(request(r#"{"n":1}"#))
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "ExecutionAlreadyExists");
    assert_eq!(fake.calls_to("hang").len(), 1);
}

#[tokio::test]
async fn express_executions_run_in_memory() {
    let store = Arc::new(muon_store::Memory::new());
    let flows = engine(store.clone(), Fake::default()).await;
    let d = run(&flows, "express-doubler", json!({ "n": 5 })).await;
    assert_eq!(d.status, "SUCCEEDED");
    assert_eq!(d.kind, Kind::Express);
    assert!(d.arn.contains(":express:express-doubler:"), "{}", d.arn);
    assert_eq!(d.output.as_deref(), Some(r#"{"n":10}"#));
    // Nothing was written.
    assert!(store.execution(&d.arn).await.unwrap().is_none());
    assert_eq!(flows.describe(&d.arn).await.unwrap().status, "SUCCEEDED");
    check_well_formed(&history(&flows, &d.arn).await);
    let listed = flows.list(Some("express-doubler"), None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    let d = run(&flows, "http", json!({ "url": "http://example.test/x" })).await;
    assert_eq!(d.status, "SUCCEEDED", "{d:?}");
    let output: Value = serde_json::from_str(d.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["status"], "200");
    assert_eq!(output["body"]["url"], "http://example.test/x?q=a%20b");
    let d = run(&flows, "http", json!({ "url": "http://missing.test/" })).await;
    assert_eq!(d.status, "FAILED");
    assert_eq!(d.error.as_deref(), Some("States.Http.StatusCode.404"));
}

#[tokio::test]
async fn task_tokens_succeed_fail_and_beat() {
    let fake = Fake::default();
    let flows = engine(Arc::new(muon_store::Memory::new()), fake.clone()).await;
    let started = |flows: Flows| async move {
        let s = flows
            .start_execution(StartRequest {
                machine: "callback".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        // The token goes out with the event.
        let token = loop {
            let found = fake_token(&flows, &s.arn).await;
            if let Some(t) = found {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        (s, token)
    };
    let (s, token) = started(flows.clone()).await;
    // A token ends with 128 bits of MAC: what it names (execution, state entry, attempt) is not
    // enough to answer the task.
    let (named, mac) = token.rsplit_once('#').unwrap();
    assert_eq!(mac.len(), 32, "{token}");
    for forged in [
        format!("{named}#token"),
        format!("{named}#{}", "0".repeat(32)),
    ] {
        let e = flows
            .callback(&forged, Callback::Success("{}".into()))
            .await
            .unwrap_err();
        assert_eq!(e.aws_code(), "TaskDoesNotExist", "{forged}");
    }
    flows.callback(&token, Callback::Heartbeat).await.unwrap();
    flows
        .callback(&token, Callback::Success(r#"{"approved":true}"#.into()))
        .await
        .unwrap();
    let d = flows.wait(&s.arn).await.unwrap();
    assert_eq!(d.status, "SUCCEEDED");
    assert_eq!(d.output.as_deref(), Some(r#"{"approved":true}"#));
    // The task no longer waits.
    let e = flows
        .callback(&token, Callback::Success("{}".into()))
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "TaskDoesNotExist");
    let (s, token) = started(flows.clone()).await;
    let e = flows
        .callback(&token, Callback::Success("not json".into()))
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "InvalidExecutionInput");
    flows
        .callback(
            &token,
            Callback::Failure {
                error: Some("Denied".into()),
                cause: Some("no".into()),
            },
        )
        .await
        .unwrap();
    let d = flows.wait(&s.arn).await.unwrap();
    assert_eq!(d.status, "FAILED");
    assert_eq!(d.error.as_deref(), Some("Denied"));
    let e = flows
        .callback("garbage", Callback::Heartbeat)
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "InvalidToken");
    assert_eq!(fake.events.lock().unwrap().len(), 2);
}

/// The token in the event the execution put, once it did.
async fn fake_token(flows: &Flows, arn: &str) -> Option<String> {
    let h = flows.history(arn, 0, usize::MAX).await.unwrap();
    h.iter()
        .find(|e| e["type"] == "TaskScheduled")
        .and_then(|e| {
            let p: Value =
                serde_json::from_str(e["taskScheduledEventDetails"]["parameters"].as_str()?)
                    .ok()?;
            p["Entries"][0]["Detail"]["token"]
                .as_str()
                .map(str::to_owned)
        })
}

#[tokio::test]
async fn child_executions_run_to_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let flows = engine(sqlite(&dir), Fake::default()).await;
    let d = run(&flows, "parent", json!({ "n": 1 })).await;
    assert_eq!(d.status, "SUCCEEDED", "{d:?}");
    assert_eq!(d.output.as_deref(), Some(r#"{"n":8}"#));
    let children = flows.list(Some("doubler"), None, 10).await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].status, "SUCCEEDED");
}

#[tokio::test]
async fn bad_requests_are_refused_with_aws_errors() {
    let flows = engine(Arc::new(muon_store::Memory::new()), Fake::default()).await;
    let start = |machine: &str, name: Option<&str>, input: &str| StartRequest {
        machine: machine.into(),
        name: name.map(str::to_owned),
        input: Some(input.into()),
    };
    let code = |r: Result<muon_flow::Started, Error>| r.unwrap_err().aws_code();
    assert_eq!(
        code(flows.start_execution(start("nope", None, "{}")).await),
        "StateMachineDoesNotExist"
    );
    assert_eq!(
        code(flows.start_execution(start("doubler", None, "{oops")).await),
        "InvalidExecutionInput"
    );
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(300_000));
    assert_eq!(
        code(flows.start_execution(start("doubler", None, &big)).await),
        "InvalidExecutionInput"
    );
    assert_eq!(
        code(
            flows
                .start_execution(start("doubler", Some("a b"), "{}"))
                .await
        ),
        "InvalidName"
    );
    assert_eq!(
        code(
            flows
                .start_execution(start("arn:aws:lambda:x", None, "{}"))
                .await
        ),
        "InvalidArn"
    );
    let e = flows
        .create_machine(
            "broken",
            r#"{"StartAt": "Nowhere", "States": {"A": {"Type": "Pass", "Next": "B"}}}"#,
            Kind::Standard,
        )
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "InvalidDefinition");
    let text = e.to_string();
    assert!(
        text.contains("Nowhere") && text.contains("/States/A/Next"),
        "{text}"
    );
    let e = flows
        .create_machine(
            "doubler",
            r#"{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}"#,
            Kind::Standard,
        )
        .await
        .unwrap_err();
    assert_eq!(e.aws_code(), "ValidationException");
    assert_eq!(
        flows
            .describe("arn:aws:states:local:0:execution:x:y")
            .await
            .unwrap_err()
            .aws_code(),
        "ExecutionDoesNotExist"
    );
    // An unknown resource fails the task, not the engine.
    flows
        .create_machine(
            "odd",
            r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage","End":true}}}"#,
            Kind::Express,
        )
        .await
        .unwrap();
    let d = run(&flows, "odd", json!({})).await;
    assert_eq!(d.status, "FAILED");
    assert_eq!(d.error.as_deref(), Some("States.Runtime"));
    assert!(d.cause.as_deref().unwrap().contains("sqs:sendMessage"));
}

#[tokio::test]
async fn api_state_machines_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let definition = r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Result":"hi","End":true}}}"#;
    {
        let flows = engine(sqlite(&dir), Fake::default()).await;
        let m = flows
            .create_machine("greeter", definition, Kind::Standard)
            .await
            .unwrap();
        assert_eq!(
            m.arn,
            "arn:aws:states:us-east-1:000000000000:stateMachine:greeter"
        );
        // Creating it again with the same definition is the same machine; with another, not.
        flows
            .create_machine("greeter", definition, Kind::Standard)
            .await
            .unwrap();
        let e = flows
            .create_machine("greeter", definition, Kind::Express)
            .await
            .unwrap_err();
        assert_eq!(e.aws_code(), "StateMachineAlreadyExists");
    }
    let flows = engine(sqlite(&dir), Fake::default()).await;
    let d = run(
        &flows,
        "arn:aws:states:us-east-1:000000000000:stateMachine:greeter",
        json!({}),
    )
    .await;
    assert_eq!(d.output.as_deref(), Some(r#""hi""#));
    flows.delete_machine("greeter").await.unwrap();
    let flows = engine(sqlite(&dir), Fake::default()).await;
    assert!(flows.machine("greeter").is_err());
    // Its execution is still there.
    assert_eq!(flows.describe(&d.arn).await.unwrap().status, "SUCCEEDED");
}

/// A crash (the runtime dropped with everything on it) while executions wait on tasks and
/// timers; a new engine on the same store finishes every one exactly once.
#[test]
fn executions_resume_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    let mut arns: HashMap<String, &str> = HashMap::new();
    {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let flows = engine(sqlite(&dir), fake.clone()).await;
            for i in 0..20 {
                for machine in ["hanging", "waiting"] {
                    let s = flows
                        .start_execution(StartRequest {
                            machine: machine.into(),
                            name: Some(format!("{machine}-{i}")),
                            input: Some(json!({ "n": i }).to_string()),
                        })
                        .await
                        .unwrap();
                    arns.insert(s.arn, machine);
                }
            }
            // Let every `hang` call begin.
            while fake.calls_to("hang").len() < 20 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        runtime.shutdown_background();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let flows = engine(sqlite(&dir), fake.clone()).await;
        // The hanging tasks were dispatched again, with the same idempotency keys.
        while fake.calls_to("hang").len() < 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let keys: Vec<String> = fake
            .calls_to("hang")
            .iter()
            .map(|c| header(c, "x-muon-idempotency-key"))
            .collect();
        let distinct: std::collections::HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), 20);
        fake.hang.notify_waiters();
        for (arn, machine) in &arns {
            let d = tokio::time::timeout(Duration::from_secs(20), flows.wait(arn))
                .await
                .expect("it ends")
                .unwrap();
            assert_eq!(d.status, "SUCCEEDED", "{machine}: {d:?}");
            let h = history(&flows, arn).await;
            check_well_formed(&h);
            let n = serde_json::from_str::<Value>(&d.input).unwrap()["n"]
                .as_i64()
                .unwrap();
            assert_eq!(
                d.output.as_deref(),
                Some(json!({ "n": 2 * n }).to_string().as_str())
            );
        }
    });
}

#[tokio::test]
async fn a_stored_machine_that_cannot_be_read_refuses_startup() {
    let store: Arc<dyn Store> = Arc::new(muon_store::Memory::new());
    let mut tx = muon_store::Transaction::new();
    tx.push(muon_store::Op::PutStateMachine(
        muon_store::StateMachineRecord {
            name: "broken".into(),
            kind: "STANDARD".into(),
            definition: r#"{"StartAt": "Nowhere", "States": {}}"#.into(),
            created_ms: 0,
        },
    ));
    store.commit(tx).await.unwrap();
    let Err(e) = Flows::start(Config::default(), store, Arc::new(Fake::default())).await else {
        panic!("a store with an unreadable state machine was taken")
    };
    let message = e.to_string();
    assert!(
        message.contains("stored state machine broken cannot be read")
            && message.contains("DELETE FROM state_machines"),
        "{message}"
    );
}

#[tokio::test]
async fn running_executions_are_bounded_in_count_and_input_bytes() {
    let flows = Flows::start(
        Config {
            workflows: workflows(),
            max_running: 3,
            max_running_input_bytes: 10_000,
            ..Config::default()
        },
        Arc::new(muon_store::Memory::new()),
        Arc::new(Fake::default()),
    )
    .await
    .unwrap();
    let start = |name: &str, input: String| {
        flows.start_execution(StartRequest {
            machine: "hanging".into(),
            name: Some(name.into()),
            input: Some(input),
        })
    };
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(6_000));
    start("a", big.clone()).await.unwrap();
    let e = start("b", big.clone()).await.unwrap_err();
    assert_eq!(e.aws_code(), "ExecutionLimitExceeded", "{e}");
    start("c", "{}".into()).await.unwrap();
    start("d", "{}".into()).await.unwrap();
    let e = start("e", "{}".into()).await.unwrap_err();
    assert_eq!(e.aws_code(), "ExecutionLimitExceeded", "{e}");
    // A start that names a running execution with its input is still answered.
    start("a", big).await.unwrap();
}

/// An execution that is resumed, then muon crashes again before it makes progress, three
/// starts in a row, is ended at the fourth instead of resumed once more; a clean shutdown does
/// not count, and progress starts the count again.
#[test]
fn an_execution_that_keeps_crashing_its_host_is_not_resumed_blindly() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::default();
    // One run of the engine on the same store: start (or resume), then crash or stop cleanly.
    let run = |start: bool, clean: bool| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let arn = runtime.block_on(async {
            let flows = engine(sqlite(&dir), fake.clone()).await;
            let arn = "arn:aws:states:us-east-1:000000000000:execution:hanging:stuck".to_string();
            if start {
                flows
                    .start_execution(StartRequest {
                        machine: "hanging".into(),
                        name: Some("stuck".into()),
                        input: Some("{}".into()),
                    })
                    .await
                    .unwrap();
            }
            let d = flows.describe(&arn).await.unwrap();
            if clean {
                flows.shutdown().await.unwrap();
            }
            (arn, d.status.clone(), d.error.clone())
        });
        runtime.shutdown_background();
        arn
    };
    let (_, status, _) = run(true, false);
    assert_eq!(status, "RUNNING");
    // A clean stop between crashes does not count.
    assert_eq!(run(false, true).1, "RUNNING");
    for _ in 0..3 {
        assert_eq!(run(false, false).1, "RUNNING");
    }
    let (_, status, error) = run(false, false);
    assert_eq!(status, "ABORTED");
    assert_eq!(error.as_deref(), Some("muon.HostCrashed"));
}
