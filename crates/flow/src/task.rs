//! Task states' resources: which call a `Resource` names, and how the answer becomes the task's
//! result or error.
//!
//! | Resource | What runs | Result |
//! |---|---|---|
//! | `muon:function:NAME`, `arn:aws:lambda:…:function:NAME` | the function, with the task input as body | its JSON answer |
//! | `arn:aws:states:::lambda:invoke` | `Parameters.FunctionName` with `Payload` | Lambda's Invoke answer (`Payload`, `StatusCode`, …) |
//! | `arn:aws:states:::events:putEvents` | `Parameters.Entries` on the bus | `{Entries, FailedEntryCount}` |
//! | `arn:aws:states:::states:startExecution` | a child execution (`.sync`, `.sync:2`: waits for it) | `{ExecutionArn, StartDate}` or its description |
//! | `arn:aws:states:::http:invoke` | an HTTP request (`ApiEndpoint`, `Method`, …) | `{StatusCode, StatusText, Headers, ResponseBody}` |
//!
//! Any of them with `.waitForTaskToken` runs the call, then waits for `SendTaskSuccess` or
//! `SendTaskFailure` with the token (the call failing fails the task).
//!
//! Functions are invoked with the headers `x-muon-execution`, `x-muon-state`,
//! `x-muon-attempt` and `x-muon-idempotency-key` (stable across retries of the same attempt and
//! across restarts), so a function can tell a repeated task from a new one.

use muon_asl::{Input, Invocation, MAX_PAYLOAD_BYTES, ResourceKind, errors};
use muon_store::BoxFuture;
use serde_json::{Map, Value, json};

use crate::{Flows, StartRequest};

/// The most bytes of an answer that are read (a result is then checked against the 256 KiB
/// payload limit).
pub const MAX_ANSWER_BYTES: usize = 4 * MAX_PAYLOAD_BYTES;

/// A function invocation: an HTTP POST of a JSON body.
#[derive(Debug, Clone)]
pub struct FunctionCall {
    pub function: String,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// An HTTP request of an `http:invoke` task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// A whole answer, read to its end (at most [`MAX_ANSWER_BYTES`]).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The invocation ID, for functions.
    pub invocation: Option<String>,
}

/// A call that got no answer: the task fails with this error name and cause. The name
/// `States.Timeout` makes it a timeout (retried and caught as one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchError {
    pub error: String,
    pub cause: String,
}

impl DispatchError {
    pub fn new(error: &str, cause: impl Into<String>) -> DispatchError {
        DispatchError {
            error: error.to_owned(),
            cause: cause.into(),
        }
    }
}

/// How tasks reach functions, buses and HTTP endpoints. The binary implements it.
pub trait Dispatch: Send + Sync + 'static {
    fn function(&self, call: FunctionCall) -> BoxFuture<'static, Result<Answer, DispatchError>>;
    /// PutEvents with EventBridge entries (`Source`, `DetailType`, `Detail`, `EventBusName`);
    /// the answer is PutEvents' (`Entries`, `FailedEntryCount`).
    fn put_events(&self, entries: Value) -> BoxFuture<'static, Result<Value, DispatchError>>;
    fn http(&self, call: HttpCall) -> BoxFuture<'static, Result<Answer, DispatchError>>;
}

/// What a Task state's resource asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `muon:function:NAME` or a Lambda function ARN: the task input is the body, the answer
    /// is the result.
    Function {
        function: String,
        body: Value,
    },
    /// `arn:aws:states:::lambda:invoke`: the result is wrapped as Lambda's Invoke answers.
    LambdaInvoke {
        function: String,
        payload: Value,
    },
    PutEvents {
        entries: Value,
    },
    StartExecution {
        machine: String,
        name: Option<String>,
        input: String,
        /// `.sync` (output as text) or `.sync:2` (output as JSON).
        wait: Option<SyncOutput>,
    },
    Http(HttpCall),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutput {
    Text,
    Json,
}

/// The function name in a name, a partial ARN (`ACCOUNT:function:NAME`) or a Lambda function
/// ARN, without a version or alias qualifier.
pub fn function_name(text: &str) -> &str {
    match text.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => text,
    }
}

fn string_param<'a>(invocation: &'a Invocation, key: &str) -> Result<&'a str, String> {
    invocation.input[key].as_str().ok_or_else(|| {
        format!(
            "Task state '{}' calls {} without a string {key} parameter",
            invocation.state_name, invocation.resource
        )
    })
}

impl Call {
    /// The call `invocation` asks for; the error says why it cannot be made.
    pub fn of(invocation: &Invocation) -> Result<Call, String> {
        let resource = invocation.resource.as_str();
        if let Some(name) = resource.strip_prefix("muon:function:") {
            return Ok(Call::Function {
                function: name.to_owned(),
                body: invocation.input.clone(),
            });
        }
        let (service, action) = match &invocation.kind {
            ResourceKind::LambdaFunction => {
                return Ok(Call::Function {
                    function: function_name(resource).to_owned(),
                    body: invocation.input.clone(),
                });
            }
            ResourceKind::Service { service, action } => (service.as_str(), action.as_str()),
            ResourceKind::Other => return Err(unknown(invocation)),
        };
        let action = action.strip_suffix(".waitForTaskToken").unwrap_or(action);
        match (service, action) {
            ("lambda", "invoke") => Ok(Call::LambdaInvoke {
                function: function_name(string_param(invocation, "FunctionName")?).to_owned(),
                payload: invocation
                    .input
                    .get("Payload")
                    .cloned()
                    .unwrap_or_else(|| json!({})),
            }),
            ("events", "putEvents") => {
                let entries = invocation.input.get("Entries").cloned();
                match entries {
                    Some(Value::Array(entries)) => Ok(Call::PutEvents {
                        entries: Value::Array(entries),
                    }),
                    _ => Err(format!(
                        "Task state '{}' calls {resource} without an Entries array parameter",
                        invocation.state_name
                    )),
                }
            }
            ("states", "startExecution" | "startExecution.sync" | "startExecution.sync:2") => {
                let input = match invocation.input.get("Input") {
                    None => "{}".to_owned(),
                    Some(Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                };
                Ok(Call::StartExecution {
                    machine: string_param(invocation, "StateMachineArn")?.to_owned(),
                    name: invocation.input["Name"].as_str().map(str::to_owned),
                    input,
                    wait: match action {
                        "startExecution.sync" => Some(SyncOutput::Text),
                        "startExecution.sync:2" => Some(SyncOutput::Json),
                        _ => None,
                    },
                })
            }
            ("http", "invoke") => http_call(invocation).map(Call::Http),
            _ => Err(unknown(invocation)),
        }
    }
}

fn unknown(invocation: &Invocation) -> String {
    format!(
        "Task state '{}': muon does not know the resource {}; it runs muon:function:NAME, Lambda \
         function ARNs, and arn:aws:states:::lambda:invoke, events:putEvents, \
         states:startExecution(.sync) and http:invoke (each also with .waitForTaskToken)",
        invocation.state_name, invocation.resource
    )
}

/// `http:invoke`'s parameters: `ApiEndpoint`, `Method`, `Headers`, `QueryParameters`,
/// `RequestBody` (a JSON body unless it is a string).
fn http_call(invocation: &Invocation) -> Result<HttpCall, String> {
    let p = &invocation.input;
    let endpoint = string_param(invocation, "ApiEndpoint")?;
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(format!(
            "Task state '{}': ApiEndpoint {endpoint:?} is not an http:// or https:// URL",
            invocation.state_name
        ));
    }
    let method = string_param(invocation, "Method")?.to_ascii_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(&method.as_str()) {
        return Err(format!(
            "Task state '{}': Method {method} is not an HTTP method",
            invocation.state_name
        ));
    }
    let mut url = endpoint.to_owned();
    if let Some(Value::Object(query)) = p.get("QueryParameters") {
        let pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!("{}={}", encode(k), encode(&v))
            })
            .collect();
        if !pairs.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&pairs.join("&"));
        }
    }
    let mut headers: Vec<(String, String)> = match p.get("Headers") {
        Some(Value::Object(h)) => h
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let body = match p.get("RequestBody") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone().into_bytes()),
        Some(other) => {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("content-type".into(), "application/json".into()));
            }
            Some(other.to_string().into_bytes())
        }
    };
    Ok(HttpCall {
        method,
        url,
        headers,
        body,
    })
}

/// Percent-encodes a query component.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn failed(invocation: &Invocation, error: &str, cause: impl Into<String>) -> Input {
    Input::TaskFailed {
        task: invocation.task,
        error: Some(error.to_owned()),
        cause: Some(cause.into()),
    }
}

fn dispatch_failed(invocation: &Invocation, e: DispatchError) -> Input {
    if e.error == errors::TIMEOUT {
        return Input::TaskTimedOut {
            task: invocation.task,
        };
    }
    failed(invocation, &e.error, e.cause)
}

/// The headers a function gets with a task. Names may hold any Unicode; header values hold
/// visible ASCII, so other bytes (and `%`) are percent-encoded.
pub fn task_headers(invocation: &Invocation, execution: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_owned()),
        ("x-muon-execution", header_value(execution)),
        ("x-muon-state", header_value(&invocation.state_name)),
        ("x-muon-attempt", invocation.attempt.to_string()),
        (
            "x-muon-idempotency-key",
            header_value(&invocation.idempotency_key),
        ),
    ]
}

/// `text` as a header value: bytes outside printable ASCII, and `%`, percent-encoded.
fn header_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The execution an invocation belongs to: its idempotency key starts with the ARN.
fn execution_of(invocation: &Invocation) -> &str {
    invocation
        .idempotency_key
        .split('#')
        .next()
        .unwrap_or_default()
}

/// Runs one task to its end. `None`: the task now waits for its token (`.waitForTaskToken`).
pub async fn run(flows: &Flows, invocation: &Invocation) -> Option<Input> {
    run_with(
        &*flows.inner.dispatch,
        Some(flows),
        invocation,
        crate::now_ms,
    )
    .await
}

/// Runs one task with `dispatch`; `flows` runs child executions (none: they are refused).
/// `now` is the clock the results' dates come from.
pub async fn run_with(
    dispatch: &dyn Dispatch,
    flows: Option<&Flows>,
    invocation: &Invocation,
    now: impl Fn() -> i64,
) -> Option<Input> {
    let call = match Call::of(invocation) {
        Ok(call) => call,
        Err(why) => return Some(failed(invocation, errors::RUNTIME, why)),
    };
    let waits_for_token = invocation.task_token.is_some();
    let outcome = match call {
        Call::Function { function, body } => {
            let body = serde_json::to_vec(&body).expect("JSON serializes");
            call_function(dispatch, invocation, function, body, false, &now).await
        }
        Call::LambdaInvoke { function, payload } => {
            // A string payload is sent as it is written, as Step Functions does.
            let body = match payload {
                Value::String(text) => text.into_bytes(),
                other => serde_json::to_vec(&other).expect("JSON serializes"),
            };
            call_function(dispatch, invocation, function, body, true, &now).await
        }
        Call::PutEvents { entries } => match dispatch.put_events(entries).await {
            Err(e) => dispatch_failed(invocation, e),
            Ok(answer) => {
                let failed_count = answer["FailedEntryCount"].as_u64().unwrap_or(0);
                if failed_count > 0 {
                    failed(invocation, "EventBridge.FailedEntry", answer.to_string())
                } else {
                    Input::TaskSucceeded {
                        task: invocation.task,
                        output: answer,
                    }
                }
            }
        },
        Call::StartExecution {
            machine,
            name,
            input,
            wait,
        } => {
            let Some(flows) = flows else {
                return Some(failed(
                    invocation,
                    errors::RUNTIME,
                    format!(
                        "Task state '{}' starts an execution of {machine}: child executions run \
                         only under `muon up`",
                        invocation.state_name
                    ),
                ));
            };
            start_child(flows, invocation, machine, name, input, wait).await
        }
        Call::Http(call) => match dispatch.http(call).await {
            Err(e) => dispatch_failed(invocation, e),
            Ok(answer) => http_result(invocation, answer),
        },
    };
    match outcome {
        Input::TaskSucceeded { .. } if waits_for_token => None,
        other => Some(other),
    }
}

async fn call_function(
    dispatch: &dyn Dispatch,
    invocation: &Invocation,
    function: String,
    body: Vec<u8>,
    lambda_invoke: bool,
    now: &impl Fn() -> i64,
) -> Input {
    let call = FunctionCall {
        function: function.clone(),
        body,
        headers: task_headers(invocation, execution_of(invocation)),
    };
    let answer = match dispatch.function(call).await {
        Ok(answer) => answer,
        Err(e) => return dispatch_failed(invocation, e),
    };
    if answer.body.len() > MAX_PAYLOAD_BYTES {
        return failed(
            invocation,
            errors::DATA_LIMIT_EXCEEDED,
            format!(
                "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                invocation.resource
            ),
        );
    }
    let id = answer.invocation.clone().unwrap_or_default();
    if !(200..300).contains(&answer.status) {
        let (error, cause) = function_error(answer.status, &answer.body);
        return Input::TaskFailed {
            task: invocation.task,
            error: Some(error),
            cause,
        };
    }
    let text = String::from_utf8_lossy(&answer.body);
    let result = if text.trim().is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&answer.body) {
            Ok(value) => value,
            Err(e) => {
                return failed(
                    invocation,
                    errors::TASK_FAILED,
                    format!(
                        "function {function} (invocation {id}) answered HTTP {} with a body that is not JSON ({e}): {}",
                        answer.status,
                        text.chars().take(200).collect::<String>()
                    ),
                );
            }
        }
    };
    let output = if lambda_invoke {
        lambda_invoke_result(result, answer.body.len(), &id, now())
    } else {
        result
    };
    Input::TaskSucceeded {
        task: invocation.task,
        output,
    }
}

/// The error name and cause of a function's non-2xx answer: the name from its JSON body's
/// `errorType` or `error` (as a Lambda function reports errors), else `HTTP <status>`; the body
/// is the cause.
pub fn function_error(status: u16, body: &[u8]) -> (String, Option<String>) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|v| v["errorType"].as_str().or_else(|| v["error"].as_str()))
        .map_or_else(|| format!("HTTP {status}"), str::to_owned);
    let text = String::from_utf8_lossy(body);
    let cause = (!text.trim().is_empty()).then(|| text.trim().to_owned());
    (error, cause)
}

/// The result of the `lambda:invoke` integration: Lambda's Invoke answer, as Step Functions
/// passes it on.
pub fn lambda_invoke_result(payload: Value, length: usize, id: &str, now_ms: i64) -> Value {
    let date = http_date(now_ms);
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {
                "X-Amz-Executed-Version": ["$LATEST"],
                "x-amzn-RequestId": [id],
                "Content-Length": [length.to_string()],
                "Date": [&date],
                "Content-Type": ["application/json"],
            },
            "HttpHeaders": {
                "Content-Length": length.to_string(),
                "Content-Type": "application/json",
                "Date": &date,
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-RequestId": id,
            },
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": { "RequestId": id },
        "StatusCode": 200,
    })
}

fn http_date(now_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// `http:invoke`'s result; a non-2xx answer fails the task with `States.Http.StatusCode.<n>`.
fn http_result(invocation: &Invocation, answer: Answer) -> Input {
    if answer.body.len() > MAX_PAYLOAD_BYTES {
        return failed(
            invocation,
            errors::DATA_LIMIT_EXCEEDED,
            "The HTTP response exceeds the maximum payload size.",
        );
    }
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    let mut headers = Map::new();
    for (k, v) in answer.headers {
        headers.insert(k, json!([v]));
    }
    let status_text = http_reason(answer.status);
    let result = json!({
        "Headers": headers,
        "ResponseBody": body,
        "StatusCode": answer.status.to_string(),
        "StatusText": status_text,
    });
    if (200..300).contains(&answer.status) {
        Input::TaskSucceeded {
            task: invocation.task,
            output: result,
        }
    } else {
        failed(
            invocation,
            &format!("States.Http.StatusCode.{}", answer.status),
            result.to_string(),
        )
    }
}

fn http_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// `states:startExecution`: a child execution. Its name defaults to one derived from the
/// task's idempotency key, so a task dispatched again after a restart finds the child it
/// started instead of starting another.
async fn start_child(
    flows: &Flows,
    invocation: &Invocation,
    machine: String,
    name: Option<String>,
    input: String,
    wait: Option<SyncOutput>,
) -> Input {
    let name = name.unwrap_or_else(|| {
        let digest = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            invocation.idempotency_key.as_bytes(),
        );
        digest.to_string()
    });
    let started = flows
        .start_execution(StartRequest {
            machine,
            name: Some(name),
            input: Some(input),
        })
        .await;
    let started = match started {
        Ok(s) => s,
        // The child exists: a task run again after a restart.
        Err(crate::Error::ExecutionExists(arn)) => match flows.describe(&arn).await {
            Ok(d) => crate::Started {
                arn: d.arn.clone(),
                start_ms: d.start_ms,
            },
            Err(e) => return failed(invocation, e.aws_code(), e.to_string()),
        },
        Err(e) => {
            return failed(
                invocation,
                &format!("StepFunctions.{}", e.aws_code()),
                e.to_string(),
            );
        }
    };
    let Some(output) = wait else {
        return Input::TaskSucceeded {
            task: invocation.task,
            output: json!({
                "ExecutionArn": started.arn,
                "StartDate": started.start_ms,
            }),
        };
    };
    let d = match flows.wait(&started.arn).await {
        Ok(d) => d,
        Err(e) => return failed(invocation, errors::TASK_FAILED, e.to_string()),
    };
    let mut described = json!({
        "ExecutionArn": d.arn,
        "StateMachineArn": d.machine_arn,
        "Name": d.name,
        "Status": d.status,
        "StartDate": d.start_ms,
        "StopDate": d.stop_ms,
        "Input": d.input,
    });
    match output {
        SyncOutput::Text => {
            described["Output"] = json!(d.output);
        }
        SyncOutput::Json => {
            described["Input"] = serde_json::from_str(&d.input).unwrap_or(Value::Null);
            described["Output"] = d
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(Value::Null);
        }
    }
    if d.status == "SUCCEEDED" {
        Input::TaskSucceeded {
            task: invocation.task,
            output: described,
        }
    } else {
        if let Some(e) = &d.error {
            described["Error"] = json!(e);
        }
        if let Some(c) = &d.cause {
            described["Cause"] = json!(c);
        }
        failed(invocation, errors::TASK_FAILED, described.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::{encode, function_error, function_name};

    #[test]
    fn error_names_from_failed_answers() {
        let body = br#"{"errorType": "OrderRejected", "errorMessage": "too big"}"#;
        assert_eq!(
            function_error(400, body),
            (
                "OrderRejected".to_owned(),
                Some(String::from_utf8_lossy(body).into_owned())
            )
        );
        assert_eq!(
            function_error(500, br#"{"error": "trap", "invocation_id": "inv_1"}"#).0,
            "trap"
        );
        assert_eq!(
            function_error(503, b"busy\n"),
            ("HTTP 503".to_owned(), Some("busy".to_owned()))
        );
        assert_eq!(function_error(404, b""), ("HTTP 404".to_owned(), None));
    }

    #[test]
    fn function_names_from_arns() {
        assert_eq!(function_name("echo"), "echo");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:echo"),
            "echo"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:echo:prod"),
            "echo"
        );
        assert_eq!(function_name("123456789012:function:echo:$LATEST"), "echo");
    }

    #[test]
    fn header_values_keep_to_printable_ascii() {
        assert_eq!(
            super::header_value("arn:aws:states:local:0:execution:m:Étape 1#2"),
            "arn:aws:states:local:0:execution:m:%C3%89tape 1#2"
        );
        assert_eq!(super::header_value("50%\n"), "50%25%0A");
    }

    #[test]
    fn query_components_are_encoded() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
