//! `muon flows exec`: run one Step Functions execution locally, without a server.
//!
//! The `asl` crate is the interpreter; this module only drives it: it carries out the actions
//! (Task states call the app's functions through the invoker, one at a time, in the order the
//! interpreter asked), and keeps a virtual clock that jumps to the next timer instead of
//! sleeping, so a Wait state or a retry's backoff costs nothing. Nothing is persisted.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use http_body_util::BodyExt;
use muon_asl::{
    Action, Definition, Execution, ExecutionInfo, Input, Invocation, MAX_PAYLOAD_BYTES,
    ResourceKind, Status, TimerId, errors,
};
use muon_runtime::Invoker;
use muon_types::{FunctionName, Stream};
use serde_json::{Value, json};

use crate::client::read_data;

/// How far the virtual clock may run past the start: Step Functions stops a standard execution
/// after one year.
const MAX_VIRTUAL_MS: i64 = 366 * 24 * 3600 * 1000;
/// Interpreter steps (task results and timers) after which the run is stopped. The interpreter
/// caps the history at 25,000 events; this is a second guard.
const MAX_STEPS: u64 = 100_000;
/// The most bytes of a function's answer that are read.
const MAX_ANSWER_BYTES: usize = 4 * MAX_PAYLOAD_BYTES;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run one Step Functions execution locally: Wait states and retry backoffs take no time.
    /// Exits 0 when it succeeded, 1 when it failed, timed out or was stopped, 2 for bad input.
    Exec(ExecArgs),
}

#[derive(clap::Args)]
pub struct ExecArgs {
    /// The state machine definition (Amazon States Language, JSON).
    #[arg(long)]
    definition: PathBuf,
    /// The execution's input: JSON text, `@FILE`, or `@-` for standard input.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Also print the history, as GetExecutionHistory returns it: `{"events": [...]}`.
    #[arg(long)]
    history: bool,
    /// The app (folder holding muon.toml) whose functions Task states call.
    #[arg(long)]
    app: Option<PathBuf>,
    /// Print `{"status", "output", "error", "cause"}` as one JSON object (and the history, with
    /// `--history`, as a second line).
    #[arg(long)]
    json: bool,
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Exec(args) => exec(args).await,
    }
}

async fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let (definition, input) = match read_request(&args) {
        Ok(request) => request,
        Err(problem) => {
            eprintln!("{problem}");
            return Ok(ExitCode::from(2));
        }
    };
    let invoker = match &args.app {
        Some(dir) => match load_app(dir) {
            Ok(invoker) => Some(invoker),
            Err(e) => {
                eprintln!("muon: error: {e:#}");
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
    };
    if let Some(invoker) = &invoker {
        tokio::spawn(print_logs(invoker.clone()));
    }
    // The state machine is named after its file, in the characters Step Functions allows.
    let name: String = args
        .definition
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "local".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let exe = Driver::new(Tasks { invoker })
        .run(Arc::new(definition), info(&name), input)
        .await?;
    // Let the log printer catch up with the last invocation's lines.
    tokio::task::yield_now().await;
    print(&exe, &args);
    Ok(match exe.status() {
        Status::Succeeded { .. } => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Reads and validates the definition and the input; the error is the whole message to print.
fn read_request(args: &ExecArgs) -> Result<(Definition, Value), String> {
    let file = args.definition.display();
    let text = std::fs::read_to_string(&args.definition)
        .map_err(|e| format!("muon: error: cannot read the definition {file}: {e}"))?;
    let definition = Definition::parse(&text).map_err(|e| match e {
        muon_asl::Error::Invalid(diagnostics) => {
            let mut message = format!(
                "muon: invalid state machine definition {file} ({} problem(s)):",
                diagnostics.len()
            );
            for d in diagnostics {
                message.push_str(&format!("\n  {d}"));
            }
            message
        }
    })?;
    let input = read_data(&args.input).map_err(|e| format!("muon: error: {e:#}"))?;
    if input.len() > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "muon: error: the input is {} bytes; an execution's input may have at most {MAX_PAYLOAD_BYTES}",
            input.len()
        ));
    }
    let input = serde_json::from_slice(&input)
        .map_err(|e| format!("muon: error: the input is not valid JSON: {e}"))?;
    Ok((definition, input))
}

/// Builds and prepares the functions of the app in `dir`, as `muon up` does.
fn load_app(dir: &Path) -> anyhow::Result<Invoker> {
    let app = muon_manifest::load(dir)?;
    #[derive(Parser)]
    struct Up {
        #[command(flatten)]
        args: crate::up::Args,
    }
    let up = Up::try_parse_from([
        OsStr::new("muon up"),
        dir.as_os_str(),
        OsStr::new("--quiet"),
    ])
    .context("cannot read muon's settings from the environment")?;
    // No control API runs: functions that publish events reach the default address.
    crate::up::prepare(
        &app,
        &up.args,
        "127.0.0.1:8081".parse().expect("an address"),
    )
}

fn info(name: &str) -> ExecutionInfo {
    // A UUID, as Step Functions names executions by default.
    let hex = muon_types::InvocationId::random().to_string();
    let hex = hex.trim_start_matches("inv_");
    let execution = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    ExecutionInfo {
        execution_arn: format!("arn:aws:states:local:000000000000:execution:{name}:{execution}"),
        name: execution,
        state_machine_arn: format!("arn:aws:states:local:000000000000:stateMachine:{name}"),
        state_machine_name: name.to_owned(),
        role_arn: "arn:aws:iam::000000000000:role/muon-local".into(),
        region: "local".into(),
        redrive_count: 0,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    }
}

/// Wall-clock time plus the waits skipped so far.
struct Clock {
    started: Instant,
    origin_ms: i64,
    skipped_ms: i64,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            started: Instant::now(),
            origin_ms: chrono::Utc::now().timestamp_millis(),
            skipped_ms: 0,
        }
    }

    fn now(&self) -> i64 {
        self.origin_ms + self.started.elapsed().as_millis() as i64 + self.skipped_ms
    }

    /// Moves the clock forward to `at` (never back).
    fn jump_to(&mut self, at: i64) {
        self.skipped_ms += (at - self.now()).max(0);
    }
}

/// Carries out an execution's actions until it ends.
struct Driver {
    tasks: Tasks,
    clock: Clock,
    invocations: VecDeque<Invocation>,
    timers: BTreeSet<(i64, TimerId)>,
}

impl Driver {
    fn new(tasks: Tasks) -> Driver {
        Driver {
            tasks,
            clock: Clock::new(),
            invocations: VecDeque::new(),
            timers: BTreeSet::new(),
        }
    }

    async fn run(
        mut self,
        definition: Arc<Definition>,
        info: ExecutionInfo,
        input: Value,
    ) -> anyhow::Result<Execution> {
        let (mut exe, actions) = Execution::start(definition, info, input, self.clock.now());
        self.take(actions);
        let mut steps = 0;
        while *exe.status() == Status::Running {
            steps += 1;
            let input = if steps > MAX_STEPS {
                Input::Stop {
                    error: Some(errors::RUNTIME.into()),
                    cause: Some(format!(
                        "muon stopped the execution after {MAX_STEPS} steps (task results and timers)"
                    )),
                }
            } else if let Some(invocation) = self.invocations.pop_front() {
                self.tasks.run(&invocation, &self.clock).await
            } else if let Some((at, timer)) = self.timers.pop_first() {
                if at - self.clock.origin_ms > MAX_VIRTUAL_MS {
                    Input::Stop {
                        error: Some(errors::TIMEOUT.into()),
                        cause: Some(
                            "the execution would run past one year (Step Functions' limit for an execution)"
                                .into(),
                        ),
                    }
                } else {
                    self.clock.jump_to(at);
                    Input::TimerFired { timer }
                }
            } else {
                bail!("the execution is running but waits for nothing (an interpreter bug)");
            };
            let actions = exe.apply(self.clock.now(), input);
            self.take(actions);
        }
        Ok(exe)
    }

    fn take(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Invoke(invocation) => self.invocations.push_back(invocation),
                Action::CancelTask { task } => self.invocations.retain(|i| i.task != task),
                Action::StartTimer { timer, at } => {
                    self.timers.insert((at, timer));
                }
                Action::CancelTimer { timer } => self.timers.retain(|(_, t)| *t != timer),
                Action::Succeed { .. }
                | Action::Fail { .. }
                | Action::TimedOut
                | Action::Aborted => {}
            }
        }
    }
}

/// How a Task state's resource reaches a function.
enum Call {
    /// `muon:function:NAME` or a Lambda function ARN: the task input is the body, the answer
    /// is the result.
    Direct(String),
    /// `arn:aws:states:::lambda:invoke`: `Parameters.FunctionName` and `Payload`; the result is
    /// wrapped as Lambda's Invoke answers.
    LambdaInvoke(String, Value),
}

/// A task that did not reach a function: the failure to report.
fn unsupported(invocation: &Invocation, why: String) -> Input {
    Input::TaskFailed {
        task: invocation.task,
        error: Some(errors::RUNTIME.into()),
        cause: Some(why),
    }
}

/// The function name in a name, a partial ARN (`ACCOUNT:function:NAME`) or a Lambda function
/// ARN, without a version or alias qualifier.
fn function_name(text: &str) -> &str {
    match text.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => text,
    }
}

impl Call {
    fn of(invocation: &Invocation) -> Result<Call, String> {
        let resource = invocation.resource.as_str();
        if let Some(name) = resource.strip_prefix("muon:function:") {
            return Ok(Call::Direct(name.to_owned()));
        }
        match &invocation.kind {
            ResourceKind::LambdaFunction => Ok(Call::Direct(function_name(resource).to_owned())),
            ResourceKind::Service { service, action }
                if service == "lambda" && action == "invoke" =>
            {
                let name = invocation.input["FunctionName"].as_str().ok_or_else(|| {
                    format!(
                        "Task state '{}' calls {resource} without a FunctionName parameter",
                        invocation.state_name
                    )
                })?;
                let payload = invocation
                    .input
                    .get("Payload")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                Ok(Call::LambdaInvoke(function_name(name).to_owned(), payload))
            }
            _ => Err(format!(
                "Task state '{}': resource {resource} cannot run locally; `muon flows exec` runs \
                 muon:function:NAME, Lambda function ARNs and arn:aws:states:::lambda:invoke",
                invocation.state_name
            )),
        }
    }

    fn function(&self) -> &str {
        match self {
            Call::Direct(name) | Call::LambdaInvoke(name, _) => name,
        }
    }

    /// The request body: the task input, or the `Payload` (a string is sent as it is written,
    /// as Step Functions does).
    fn body(&self, invocation: &Invocation) -> Vec<u8> {
        let value = match self {
            Call::Direct(_) => &invocation.input,
            Call::LambdaInvoke(_, Value::String(text)) => return text.clone().into_bytes(),
            Call::LambdaInvoke(_, payload) => payload,
        };
        serde_json::to_vec(value).expect("a JSON value serializes")
    }
}

/// Runs Task states' invocations against the app's functions.
struct Tasks {
    invoker: Option<Invoker>,
}

impl Tasks {
    /// Runs one invocation to its end; the answer is the interpreter's next input.
    async fn run(&self, invocation: &Invocation, clock: &Clock) -> Input {
        let call = match Call::of(invocation) {
            Ok(call) => call,
            Err(why) => return unsupported(invocation, why),
        };
        let Some(invoker) = &self.invoker else {
            return unsupported(
                invocation,
                format!(
                    "Task state '{}' calls function `{}`, but no app was given: pass --app DIR \
                     (a folder whose muon.toml defines the function)",
                    invocation.state_name,
                    call.function()
                ),
            );
        };
        let task = invocation.task;
        let not_found = || Input::TaskFailed {
            task,
            error: Some("Lambda.ResourceNotFoundException".into()),
            cause: Some(format!(
                "Function not found: {} (the app defines: {})",
                call.function(),
                invoker
                    .functions()
                    .map(|f| f.name.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        let Ok(name) = FunctionName::new(call.function()) else {
            return not_found();
        };
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri("/")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(muon_runtime::full(bytes::Bytes::from(
                call.body(invocation),
            )))
            .expect("a POST to / with a JSON body is a valid request");
        let limit = [invocation.timeout_seconds, invocation.heartbeat_seconds]
            .into_iter()
            .flatten()
            .min()
            .map(Duration::from_secs);
        let answer = async {
            let (id, result) = invoker.invoke(&name, request).await?;
            Some((id, read_answer(result).await))
        };
        let answer = match limit {
            Some(limit) => match tokio::time::timeout(limit, answer).await {
                Ok(answer) => answer,
                Err(_) => return Input::TaskTimedOut { task },
            },
            None => answer.await,
        };
        let Some((id, answer)) = answer else {
            return not_found();
        };
        let failed = |error: &str, cause: String| Input::TaskFailed {
            task,
            error: Some(error.to_owned()),
            cause: Some(cause),
        };
        let (status, body) = match answer {
            Answer::Complete { status, body } => (status, body),
            Answer::TooLarge => {
                return failed(
                    errors::DATA_LIMIT_EXCEEDED,
                    format!(
                        "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                        invocation.resource
                    ),
                );
            }
            Answer::Failed(f) if f.status == muon_types::Status::Timeout => {
                return Input::TaskTimedOut { task };
            }
            Answer::Failed(f) => {
                return failed(
                    errors::TASK_FAILED,
                    format!(
                        "function {name} (invocation {id}) failed: {} ({})",
                        f.message,
                        f.status.as_str()
                    ),
                );
            }
        };
        let text = String::from_utf8_lossy(&body);
        if !(200..300).contains(&status) {
            let (error, cause) = function_error(status, &body);
            return Input::TaskFailed {
                task,
                error: Some(error),
                cause,
            };
        }
        let result = if text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&body) {
                Ok(value) => value,
                Err(e) => {
                    return failed(
                        errors::TASK_FAILED,
                        format!(
                            "function {name} (invocation {id}) answered HTTP {status} with a body that is not JSON ({e}): {}",
                            text.chars().take(200).collect::<String>()
                        ),
                    );
                }
            }
        };
        let output = match call {
            Call::Direct(_) => result,
            Call::LambdaInvoke(..) => lambda_invoke_result(result, body.len(), &id, clock.now()),
        };
        Input::TaskSucceeded { task, output }
    }
}

/// The error name and cause of a function's non-2xx answer: the name from its JSON body's
/// `errorType` or `error` (as a Lambda function reports errors), else `HTTP <status>`; the body
/// is the cause.
fn function_error(status: u16, body: &[u8]) -> (String, Option<String>) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|v| v["errorType"].as_str().or_else(|| v["error"].as_str()))
        .map_or_else(|| format!("HTTP {status}"), str::to_owned);
    let text = String::from_utf8_lossy(body);
    let cause = (!text.trim().is_empty()).then(|| text.trim().to_owned());
    (error, cause)
}

/// What a function answered.
enum Answer {
    Complete { status: u16, body: Vec<u8> },
    TooLarge,
    Failed(muon_runtime::Failure),
}

/// Reads a function's answer to its end (the invocation is over only then).
async fn read_answer(result: Result<muon_runtime::Response, muon_runtime::Failure>) -> Answer {
    let response = match result {
        Ok(response) => response,
        Err(f) => return Answer::Failed(f),
    };
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    kept.extend_from_slice(&data);
                    if kept.len() > MAX_ANSWER_BYTES {
                        return Answer::TooLarge;
                    }
                }
            }
            Err(e) => {
                return Answer::Failed(muon_runtime::Failure::new(
                    muon_types::Status::Trap,
                    format!("failed while answering: {e}"),
                ));
            }
        }
    }
    Answer::Complete { status, body: kept }
}

/// The result of the `lambda:invoke` integration: Lambda's Invoke answer, as Step Functions
/// passes it on.
fn lambda_invoke_result(
    payload: Value,
    length: usize,
    id: &muon_types::InvocationId,
    now_ms: i64,
) -> Value {
    let date = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let id = id.to_string();
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {
                "X-Amz-Executed-Version": ["$LATEST"],
                "x-amzn-RequestId": [&id],
                "Content-Length": [length.to_string()],
                "Date": [&date],
                "Content-Type": ["application/json"],
            },
            "HttpHeaders": {
                "Content-Length": length.to_string(),
                "Content-Type": "application/json",
                "Date": &date,
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-RequestId": &id,
            },
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": { "RequestId": id },
        "StatusCode": 200,
    })
}

/// Prints what the functions write, to standard error.
async fn print_logs(invoker: Invoker) {
    let mut lines = invoker.journal().follow();
    while let Ok(line) = lines.recv().await {
        match line.stream {
            Stream::Platform => {
                eprintln!("[{}] {} ! {}", line.function, line.invocation, line.text)
            }
            _ => eprintln!("[{}] {}", line.function, line.text),
        }
    }
}

/// The execution's error and cause: from its status, else from its last history event.
fn error_and_cause(exe: &Execution) -> (Option<String>, Option<String>) {
    if let Status::Failed { error, cause } = exe.status() {
        return (error.clone(), cause.clone());
    }
    let details = exe.history().last().and_then(|e| e.details.as_ref());
    let field = |key: &str| {
        details
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match exe.status() {
        Status::TimedOut | Status::Aborted => (field("error"), field("cause")),
        _ => (None, None),
    }
}

fn print(exe: &Execution, args: &ExecArgs) {
    let output = match exe.status() {
        Status::Succeeded { output } => Some(output),
        _ => None,
    };
    let (error, cause) = error_and_cause(exe);
    let history =
        || json!({ "events": exe.history().iter().map(|e| e.to_aws_json()).collect::<Vec<_>>() });
    if args.json {
        println!(
            "{}",
            json!({
                "status": exe.status().as_str(),
                "output": output,
                "error": error,
                "cause": cause,
            })
        );
        if args.history {
            println!("{}", history());
        }
        return;
    }
    println!("status: {}", exe.status().as_str());
    if let Some(output) = output {
        println!("output: {output}");
    }
    if let Some(error) = error {
        println!("error: {error}");
    }
    if let Some(cause) = cause {
        println!("cause: {cause}");
    }
    if args.history {
        println!(
            "{}",
            serde_json::to_string_pretty(&history()).expect("JSON serializes")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{function_error, function_name};

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
}
