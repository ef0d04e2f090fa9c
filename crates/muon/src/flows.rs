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
use muon_asl::{
    Action, Definition, Execution, ExecutionInfo, Input, Invocation, MAX_PAYLOAD_BYTES, Status,
    TimerId, errors,
};
use muon_flow::task::Call;
use muon_runtime::{Invoker, LogLine};

use crate::dispatch::Targets;
use crate::workflows;
use serde_json::{Value, json};

use crate::client::read_data;

/// How far the virtual clock may run past the start: Step Functions stops a standard execution
/// after one year.
const MAX_VIRTUAL_MS: i64 = 366 * 24 * 3600 * 1000;
/// Interpreter steps (task results and timers) after which the run is stopped. The interpreter
/// caps the history at 25,000 events; this is a second guard.
const MAX_STEPS: u64 = 100_000;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run one Step Functions execution locally: Wait states and retry backoffs take no time.
    /// Exits 0 when it succeeded, 1 when it failed, timed out or was stopped, 2 for bad input.
    Exec(ExecArgs),
    /// List the state machines of a running app.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: crate::Server,
    },
    /// Create a state machine (CreateStateMachine); `[[workflow]]` in muon.toml does it too.
    Create(workflows::CreateArgs),
    /// Delete a state machine created with `create`; its running executions go on.
    Delete {
        name: String,
        #[command(flatten)]
        server: crate::Server,
    },
    /// Start an execution (StartExecution); with --wait, wait for its end.
    Start(workflows::StartArgs),
    /// List a state machine's executions, newest first.
    Executions(workflows::ListArgs),
    /// Where an execution stands: status, input, output, error.
    Describe(workflows::ExecutionArgs),
    /// An execution's history; --json prints it as GetExecutionHistory does.
    History(workflows::ExecutionArgs),
    /// Stop a running execution.
    Stop(workflows::StopArgs),
    /// Report a `.waitForTaskToken` task's result (SendTaskSuccess, --output JSON).
    SendTaskSuccess(workflows::TaskArgs),
    /// Report a `.waitForTaskToken` task's failure (SendTaskFailure, --error, --cause).
    SendTaskFailure(workflows::TaskArgs),
    /// Tell a `.waitForTaskToken` task with HeartbeatSeconds that it is still being worked on.
    SendTaskHeartbeat(workflows::TaskArgs),
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
        Command::List { json, server } => workflows::machines(json, server).await,
        Command::Create(args) => workflows::create(args).await,
        Command::Delete { name, server } => workflows::delete(name, server).await,
        Command::Start(args) => workflows::start(args).await,
        Command::Executions(args) => workflows::executions(args).await,
        Command::Describe(args) => workflows::describe(args).await,
        Command::History(args) => workflows::history(args).await,
        Command::Stop(args) => workflows::stop(args).await,
        Command::SendTaskSuccess(args) => workflows::task("success", args).await,
        Command::SendTaskFailure(args) => workflows::task("failure", args).await,
        Command::SendTaskHeartbeat(args) => workflows::task("heartbeat", args).await,
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
    // Follow the journal before anything runs, so that no function's line is missed.
    let printer = invoker.as_ref().map(|invoker| {
        let lines = invoker.journal().follow();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        (stop, tokio::spawn(print_logs(lines, stopped)))
    });
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
    let exe = Driver::new(Tasks::new(invoker))
        .run(Arc::new(definition), info(&name), input)
        .await?;
    // Every invocation has ended and been recorded: print what is left of their lines first.
    if let Some((stop, printer)) = printer {
        let _ = stop.send(());
        let _ = printer.await;
    }
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
    let control = "127.0.0.1:8081".parse().expect("an address");
    let network = crate::up::Network::new(&up.args, control, control)?;
    crate::up::prepare(&app, &up.args, &network)
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
        execution_arn: format!(
            "arn:aws:states:us-east-1:000000000000:execution:{name}:{execution}"
        ),
        name: execution,
        state_machine_arn: format!("arn:aws:states:us-east-1:000000000000:stateMachine:{name}"),
        state_machine_name: name.to_owned(),
        role_arn: "arn:aws:iam::000000000000:role/muon-local".into(),
        region: "us-east-1".into(),
        redrive_count: 0,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        // A local run: no callback can reach it, so its tokens need no secret.
        token_secret: 0,
        max_duration_ms: Some(muon_asl::MAX_STANDARD_DURATION_MS),
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

/// A task that did not reach a function: the failure to report.
fn unsupported(invocation: &Invocation, why: String) -> Input {
    Input::TaskFailed {
        task: invocation.task,
        error: Some(errors::RUNTIME.into()),
        cause: Some(why),
    }
}

/// Runs Task states' invocations: the `flow` crate resolves resources and turns answers into
/// results; functions are the app's (`--app`), events and child executions need `muon up`.
struct Tasks {
    /// Without an app: no functions.
    targets: Targets,
    has_app: bool,
}

impl Tasks {
    fn new(invoker: Option<Invoker>) -> Tasks {
        let has_app = invoker.is_some();
        let invoker = invoker.unwrap_or_else(|| Invoker::builder().build());
        // No bus and no engine run here: their senders are dropped at once.
        // A local run on the developer's machine: private addresses are theirs to call;
        // link-local and metadata addresses stay refused.
        let (targets, _) = Targets::new(invoker, muon_runtime::Destinations::new(Vec::new(), true));
        Tasks { targets, has_app }
    }

    /// Runs one invocation to its end; the answer is the interpreter's next input.
    async fn run(&self, invocation: &Invocation, clock: &Clock) -> Input {
        if !self.has_app
            && let Ok(Call::Function { function, .. } | Call::LambdaInvoke { function, .. }) =
                Call::of(invocation)
        {
            return unsupported(
                invocation,
                format!(
                    "Task state '{}' calls function `{function}`, but no app was given: pass \
                     --app DIR (a folder whose muon.toml defines the function)",
                    invocation.state_name
                ),
            );
        }
        let limit = [invocation.timeout_seconds, invocation.heartbeat_seconds]
            .into_iter()
            .flatten()
            .min()
            .map(Duration::from_secs);
        let run = muon_flow::task::run_with(&self.targets, None, invocation, || clock.now());
        let outcome = match limit {
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    return Input::TaskTimedOut {
                        task: invocation.task,
                    };
                }
            },
            None => run.await,
        };
        outcome.unwrap_or_else(|| {
            unsupported(
                invocation,
                format!(
                    "Task state '{}' waits for a task token ({}): SendTaskSuccess is served by \
                     `muon up`, not by `muon flows exec`",
                    invocation.state_name, invocation.resource
                ),
            )
        })
    }
}

/// Prints what the functions write, to standard error, until told to stop; then prints the lines
/// already recorded and returns.
async fn print_logs(
    mut lines: tokio::sync::broadcast::Receiver<Arc<LogLine>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let show = |line: &LogLine| eprintln!("{}", crate::up::log_line(line));
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Ok(line) => show(&line),
                Err(RecvError::Lagged(n)) => eprintln!("[muon] {n} log line(s) skipped"),
                Err(RecvError::Closed) => return,
            },
            _ = &mut stop => loop {
                match lines.try_recv() {
                    Ok(line) => show(&line),
                    Err(TryRecvError::Lagged(n)) => eprintln!("[muon] {n} log line(s) skipped"),
                    Err(_) => return,
                }
            },
        }
    }
}

fn print(exe: &Execution, args: &ExecArgs) {
    let output = match exe.status() {
        Status::Succeeded { output } => Some(output),
        _ => None,
    };
    let (error, cause) = exe.error_and_cause();
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
