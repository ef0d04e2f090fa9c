//! The workflow API: Step Functions operations, served two ways with one implementation.
//!
//! - AWS's own protocol (awsJson1.0: `POST /` with `X-Amz-Target: AWSStepFunctions.<Op>`), so
//!   the AWS SDKs and CLI work against muon with an endpoint URL;
//! - REST under `/v1` for muon's CLI and for curl, with the same JSON bodies:
//!   `/v1/state-machines[/{name}]`, `/v1/state-machines/{name}/executions`,
//!   `/v1/executions/{arn}[/history|/stop]`, `/v1/tasks/{success|failure|heartbeat}`.
//!
//! Requests and answers have Step Functions' shapes (`stateMachineArn`, `executionArn`,
//! `input`, dates in epoch seconds), and errors its names (`{"__type", "message"}` on the AWS
//! protocol, muon's error body on REST).

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use muon_flow::{Callback, Description, Error, Flows, Kind, Machine, StartRequest};
use serde_json::{Value, json};

use crate::{Failure, State, aws_response, error_response};

/// The most history events one page returns.
const MAX_PAGE: usize = 1000;

pub fn router() -> Router<State> {
    Router::new()
        .route(
            "/v1/state-machines",
            get(list_machines).post(create_machine),
        )
        .route(
            "/v1/state-machines/{name}",
            get(describe_machine)
                .put(update_machine)
                .delete(delete_machine),
        )
        .route(
            "/v1/state-machines/{name}/executions",
            get(list_executions).post(start_execution),
        )
        .route("/v1/executions/{arn}", get(describe_execution))
        .route("/v1/executions/{arn}/history", get(history))
        .route("/v1/executions/{arn}/stop", post(stop))
        .route("/v1/tasks/{outcome}", post(task))
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match &e {
            Error::NoSuchMachine(_) | Error::NoSuchExecution(_) => StatusCode::NOT_FOUND,
            Error::MachineExists(_) | Error::ExecutionExists(_) | Error::ManifestMachine(_) => {
                StatusCode::CONFLICT
            }
            Error::Store(_) | Error::Closed | Error::BadStoredMachine(..) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Failure {
            status,
            code: e.aws_code(),
            message: e.to_string(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        code: "ValidationException",
        message: message.into(),
    }
}

fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn machine_json(m: &Machine, with_definition: bool) -> Value {
    let mut v = json!({
        "stateMachineArn": m.arn,
        "name": m.name,
        "type": m.kind.as_str(),
        "creationDate": seconds(m.created_ms),
        "status": "ACTIVE",
        "origin": m.origin.as_str(),
    });
    if with_definition {
        v["definition"] = json!(m.definition_text);
        v["roleArn"] = json!("arn:aws:iam::000000000000:role/muon");
    }
    v
}

fn execution_json(d: &Description, full: bool) -> Value {
    let mut v = json!({
        "executionArn": d.arn,
        "stateMachineArn": d.machine_arn,
        "name": d.name,
        "status": d.status,
        "startDate": seconds(d.start_ms),
    });
    if let Some(stop) = d.stop_ms {
        v["stopDate"] = seconds(stop);
    }
    if full {
        v["input"] = json!(d.input);
        v["inputDetails"] = json!({ "included": true });
        if let Some(o) = &d.output {
            v["output"] = json!(o);
            v["outputDetails"] = json!({ "included": true });
        }
        if let Some(e) = &d.error {
            v["error"] = json!(e);
        }
        if let Some(c) = &d.cause {
            v["cause"] = json!(c);
        }
    }
    v
}

fn field<'a>(request: &'a Value, key: &str) -> Result<&'a str, Failure> {
    request[key]
        .as_str()
        .ok_or_else(|| invalid(format!("the request needs a string field {key:?}")))
}

fn optional(request: &Value, key: &str) -> Result<Option<String>, Failure> {
    match &request[key] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(invalid(format!("the field {key:?} must be a string"))),
    }
}

/// `maxResults`, checked as Step Functions checks it: 0 (or absent) means the default,
/// anything outside 0..=`max` is refused.
fn max_results(request: &Value, max: usize) -> Result<Option<usize>, Failure> {
    match &request["maxResults"] {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Ok(None),
            Some(m) if m > 0 && m as u64 <= max as u64 => Ok(Some(m as usize)),
            _ => Err(invalid(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value between 0 and {max}"
            ))),
        },
        other => Err(Failure {
            status: StatusCode::BAD_REQUEST,
            code: "SerializationException",
            message: format!("maxResults must be a number, not {other}"),
        }),
    }
}

/// Step Functions' limit on a definition's length, checked before it is parsed.
fn definition_size(request: &Value) -> Result<(), Failure> {
    const MAX: usize = 1024 * 1024;
    match request["definition"].as_str() {
        Some(d) if d.len() > MAX => Err(invalid(format!(
            "1 validation error detected: Value at 'definition' failed to satisfy constraint: Member must have length less than or equal to {MAX}"
        ))),
        _ => Ok(()),
    }
}

fn kind(request: &Value) -> Result<Option<Kind>, Failure> {
    match optional(request, "type")? {
        None => Ok(None),
        Some(t) => Kind::parse(&t)
            .map(Some)
            .ok_or_else(|| invalid(format!("type {t:?} is neither STANDARD nor EXPRESS"))),
    }
}

/// Runs one Step Functions operation.
pub(crate) async fn operation(flows: &Flows, op: &str, request: Value) -> Result<Value, Failure> {
    if !request.is_object() {
        return Err(invalid("the request body must be a JSON object"));
    }
    Ok(match op {
        "CreateStateMachine" => {
            definition_size(&request)?;
            let m = flows
                .create_machine(
                    field(&request, "name")?,
                    field(&request, "definition")?,
                    kind(&request)?.unwrap_or(Kind::Standard),
                )
                .await?;
            json!({ "stateMachineArn": m.arn, "creationDate": seconds(m.created_ms) })
        }
        "UpdateStateMachine" => {
            definition_size(&request)?;
            let m = flows
                .update_machine(
                    field(&request, "stateMachineArn")?,
                    optional(&request, "definition")?.as_deref(),
                    kind(&request)?,
                )
                .await?;
            json!({ "updateDate": seconds(m.created_ms) })
        }
        "DescribeStateMachine" => {
            let m = flows.machine(field(&request, "stateMachineArn")?)?;
            machine_json(&m, true)
        }
        "ListStateMachines" => {
            let machines: Vec<Value> = flows
                .machines()
                .iter()
                .map(|m| machine_json(m, false))
                .collect();
            json!({ "stateMachines": machines })
        }
        "DeleteStateMachine" => {
            flows
                .delete_machine(field(&request, "stateMachineArn")?)
                .await?;
            json!({})
        }
        "StartExecution" | "StartSyncExecution" => {
            let start = StartRequest {
                machine: field(&request, "stateMachineArn")?.to_owned(),
                name: optional(&request, "name")?,
                input: optional(&request, "input")?,
            };
            if op == "StartExecution" {
                let s = flows.start_execution(start).await?;
                json!({ "executionArn": s.arn, "startDate": seconds(s.start_ms) })
            } else {
                let machine = flows.machine(&start.machine)?;
                if machine.kind != Kind::Express {
                    return Err(Failure {
                        status: StatusCode::BAD_REQUEST,
                        code: "StateMachineTypeNotSupported",
                        message: "StartSyncExecution runs EXPRESS state machines only".into(),
                    });
                }
                let d = flows.start_sync(start).await?;
                let mut v = execution_json(&d, true);
                v["billingDetails"] = json!({
                    "billedDurationInMilliseconds": d.stop_ms.unwrap_or(d.start_ms) - d.start_ms,
                });
                v
            }
        }
        "DescribeExecution" => {
            let d = flows.describe(field(&request, "executionArn")?).await?;
            execution_json(&d, true)
        }
        "ListExecutions" => {
            let limit = max_results(&request, 1000)?.unwrap_or(100);
            let status = optional(&request, "statusFilter")?;
            const STATUSES: &[&str] = &[
                "RUNNING",
                "SUCCEEDED",
                "FAILED",
                "TIMED_OUT",
                "ABORTED",
                "PENDING_REDRIVE",
            ];
            if let Some(s) = status.as_deref().filter(|s| !STATUSES.contains(s)) {
                return Err(invalid(format!(
                    "1 validation error detected: Value '{s}' at 'statusFilter' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                    STATUSES.join(", ")
                )));
            }
            let found = flows
                .list(
                    Some(field(&request, "stateMachineArn")?),
                    status.as_deref(),
                    limit,
                )
                .await?;
            let executions: Vec<Value> = found.iter().map(|d| execution_json(d, false)).collect();
            json!({ "executions": executions })
        }
        "GetExecutionHistory" => {
            let arn = field(&request, "executionArn")?;
            let limit = max_results(&request, MAX_PAGE)?.unwrap_or(MAX_PAGE);
            let after: u64 = match optional(&request, "nextToken")? {
                None => 0,
                Some(t) => t
                    .parse()
                    .ok()
                    .filter(|_| t.len() <= 1024)
                    .ok_or_else(|| Failure {
                        status: StatusCode::BAD_REQUEST,
                        code: "InvalidToken",
                        message: format!("Invalid Token: {t:?} is not a nextToken muon issued"),
                    })?,
            };
            let reverse = request["reverseOrder"].as_bool().unwrap_or(false);
            let mut events = if reverse {
                // Newest first: read it all, page from the end.
                let mut all = flows.history(arn, 0, usize::MAX).await?;
                all.reverse();
                all.into_iter().skip(after as usize).take(limit).collect()
            } else {
                flows.history(arn, after, limit).await?
            };
            if after > 0 && events.is_empty() {
                // A token past the end was not one this history gave out.
                let total = flows.history(arn, 0, usize::MAX).await?.len() as u64;
                if after >= total {
                    return Err(Failure {
                        status: StatusCode::BAD_REQUEST,
                        code: "InvalidToken",
                        message: format!(
                            "Invalid Token: nextToken {after} is past the end of the history"
                        ),
                    });
                }
            }
            let next = if events.len() == limit {
                if reverse {
                    Some(after + limit as u64)
                } else {
                    events.last().and_then(|e| e["id"].as_u64())
                }
            } else {
                None
            };
            if request["includeExecutionData"] == json!(false) {
                for e in &mut events {
                    strip_data(e);
                }
            }
            let mut v = json!({ "events": events });
            if let Some(next) = next {
                v["nextToken"] = json!(next.to_string());
            }
            v
        }
        "StopExecution" => {
            let at = flows
                .stop(
                    field(&request, "executionArn")?,
                    optional(&request, "error")?,
                    optional(&request, "cause")?,
                )
                .await?;
            json!({ "stopDate": seconds(at) })
        }
        "SendTaskSuccess" => {
            flows
                .callback(
                    field(&request, "taskToken")?,
                    Callback::Success(field(&request, "output")?.to_owned()),
                )
                .await?;
            json!({})
        }
        "SendTaskFailure" => {
            flows
                .callback(
                    field(&request, "taskToken")?,
                    Callback::Failure {
                        error: optional(&request, "error")?,
                        cause: optional(&request, "cause")?,
                    },
                )
                .await?;
            json!({})
        }
        "SendTaskHeartbeat" => {
            flows
                .callback(field(&request, "taskToken")?, Callback::Heartbeat)
                .await?;
            json!({})
        }
        other => {
            return Err(Failure {
                status: StatusCode::BAD_REQUEST,
                code: "UnknownOperationException",
                message: format!("operation {other} is not served by muon"),
            });
        }
    })
}

/// `includeExecutionData: false`: the events without their inputs and outputs.
fn strip_data(event: &mut Value) {
    if let Some(obj) = event.as_object_mut() {
        for (_, details) in obj.iter_mut() {
            if let Some(d) = details.as_object_mut() {
                for key in ["input", "output", "parameters"] {
                    d.remove(key);
                }
            }
        }
    }
}

fn the_flows(state: &State) -> Result<&Flows, Failure> {
    state.flows().ok_or(Failure {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "ServiceUnavailable",
        message: "this server runs without workflows".into(),
    })
}

/// Step Functions' protocol (awsJson1.0) for one operation.
pub(crate) async fn aws(state: &State, op: &str, body: &[u8]) -> Response {
    let answer = async {
        let flows = the_flows(state)?;
        let request: Value =
            serde_json::from_slice(body).map_err(|e| invalid(format!("malformed request: {e}")))?;
        operation(flows, op, request).await
    }
    .await;
    aws_response("application/x-amz-json-1.0", answer)
}

/// A REST request: the operation with the request built from the path, query and body.
async fn rest(state: &State, op: &str, request: Value) -> Response {
    let answer = async {
        let flows = the_flows(state)?;
        operation(flows, op, request).await
    }
    .await;
    match answer {
        Ok(v) => Json(v).into_response(),
        Err(f) => error_response(f.status, f.code, f.message, None).into_response(),
    }
}

fn body_object(body: &[u8]) -> Result<Value, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(rest_error(invalid(
            "the request body must be a JSON object",
        ))),
        Err(e) => Err(rest_error(invalid(format!("malformed request: {e}")))),
    }
}

fn rest_error(f: Failure) -> Response {
    error_response(f.status, f.code, f.message, None).into_response()
}

async fn list_machines(state: axum::extract::State<State>) -> Response {
    rest(&state, "ListStateMachines", json!({})).await
}

async fn create_machine(state: axum::extract::State<State>, body: axum::body::Bytes) -> Response {
    match body_object(&body) {
        Ok(request) => rest(&state, "CreateStateMachine", request).await,
        Err(r) => r,
    }
}

async fn describe_machine(
    state: axum::extract::State<State>,
    Path(name): Path<String>,
) -> Response {
    rest(
        &state,
        "DescribeStateMachine",
        json!({ "stateMachineArn": name }),
    )
    .await
}

async fn update_machine(
    state: axum::extract::State<State>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    match body_object(&body) {
        Ok(mut request) => {
            request["stateMachineArn"] = json!(name);
            rest(&state, "UpdateStateMachine", request).await
        }
        Err(r) => r,
    }
}

async fn delete_machine(state: axum::extract::State<State>, Path(name): Path<String>) -> Response {
    rest(
        &state,
        "DeleteStateMachine",
        json!({ "stateMachineArn": name }),
    )
    .await
}

#[derive(serde::Deserialize)]
struct StartQuery {
    /// Wait for the execution's end and answer with its description.
    #[serde(default)]
    wait: bool,
}

async fn start_execution(
    state: axum::extract::State<State>,
    Path(name): Path<String>,
    Query(query): Query<StartQuery>,
    body: axum::body::Bytes,
) -> Response {
    let mut request = match body_object(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    request["stateMachineArn"] = json!(name);
    if !query.wait {
        return rest(&state, "StartExecution", request).await;
    }
    // Any type: start, then wait for the end.
    let answer = async {
        let flows = the_flows(&state)?;
        let started = operation(flows, "StartExecution", request).await?;
        let arn = started["executionArn"].as_str().unwrap_or_default();
        let d = flows.wait(arn).await?;
        Ok::<_, Failure>(execution_json(&d, true))
    }
    .await;
    match answer {
        Ok(v) => Json(v).into_response(),
        Err(f) => rest_error(f),
    }
}

#[derive(serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u64>,
}

async fn list_executions(
    state: axum::extract::State<State>,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let mut request = json!({ "stateMachineArn": name });
    if let Some(s) = query.status {
        request["statusFilter"] = json!(s.to_ascii_uppercase());
    }
    if let Some(l) = query.limit {
        request["maxResults"] = json!(l);
    }
    rest(&state, "ListExecutions", request).await
}

async fn describe_execution(
    state: axum::extract::State<State>,
    Path(arn): Path<String>,
) -> Response {
    rest(&state, "DescribeExecution", json!({ "executionArn": arn })).await
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    after: Option<String>,
    limit: Option<u64>,
    #[serde(default)]
    reverse: bool,
}

async fn history(
    state: axum::extract::State<State>,
    Path(arn): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let mut request = json!({ "executionArn": arn, "reverseOrder": query.reverse });
    if let Some(a) = query.after {
        request["nextToken"] = json!(a);
    }
    if let Some(l) = query.limit {
        request["maxResults"] = json!(l);
    }
    rest(&state, "GetExecutionHistory", request).await
}

async fn stop(
    state: axum::extract::State<State>,
    Path(arn): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    match body_object(&body) {
        Ok(mut request) => {
            request["executionArn"] = json!(arn);
            rest(&state, "StopExecution", request).await
        }
        Err(r) => r,
    }
}

async fn task(
    state: axum::extract::State<State>,
    Path(outcome): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let op = match outcome.as_str() {
        "success" => "SendTaskSuccess",
        "failure" => "SendTaskFailure",
        "heartbeat" => "SendTaskHeartbeat",
        other => {
            return rest_error(Failure {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: format!("no task operation {other:?}: use success, failure or heartbeat"),
            });
        }
    };
    match body_object(&body) {
        Ok(request) => rest(&state, op, request).await,
        Err(r) => r,
    }
}
