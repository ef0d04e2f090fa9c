//! The interpreter: an execution is a state machine that takes inputs (task
//! results, timers) and returns actions, appending history events as it goes.

use crate::definition::{
    Count, Definition, IoPath, Kind, MachineId, MapState, StateId, Text, Transition, WaitFor, Work,
};
use crate::history::{Cursor, EventType, HistoryEvent};
use crate::path::{Missing, Path};
use crate::retry::{error_matches, retry_delay_millis};
use crate::rng::Rng;
use crate::scope::Scope;
use crate::template::Template;
use crate::{Failure, errors, time};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

/// The most bytes a state's input or output, or a task's result, may have.
pub const MAX_PAYLOAD_BYTES: usize = 262_144;
/// Most levels of nesting a state's input or output may have: what serde_json parses an
/// execution's input to by default, and what the interpreter's recursion stays well within.
pub const MAX_DEPTH: usize = muon_types::MAX_JSON_DEPTH;
/// The most events an execution's history may have.
pub const MAX_HISTORY_EVENTS: usize = 25_000;
/// Most bytes of history (its events' details) one execution may hold in memory: 25,000 events
/// of 256 KB each would be 6 GB, so a loop over a large payload is stopped here instead.
pub const MAX_HISTORY_BYTES: usize = 64 << 20;

/// Identifies one task invocation (one attempt of one Task state, in one
/// branch or iteration) within an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tsk_{}", self.0)
    }
}

/// Identifies one timer within an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerId(pub u64);

impl fmt::Display for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tmr_{}", self.0)
    }
}

/// Who is running: what the context object (`$$`) and the history show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionInfo {
    pub execution_arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub state_machine_name: String,
    pub role_arn: String,
    /// The region `TaskScheduled` events name.
    pub region: String,
    pub redrive_count: u32,
    /// Seeds the execution's random numbers (retry jitter, `States.UUID`,
    /// `States.MathRandom`).
    pub seed: u64,
    /// 128 random bits that make the execution's task tokens unguessable: a
    /// token ends with a MAC of what it names under this secret. 0 (what
    /// executions stored before it existed read as) keeps the old, guessable
    /// `...#token` form.
    #[serde(default)]
    pub token_secret: u128,
    /// The longest the execution may run, whatever its `TimeoutSeconds` (Step Functions gives a
    /// Standard execution one year): it times out then, as with `TimeoutSeconds`. `None` (what
    /// executions stored before it existed read as) sets no limit.
    #[serde(default)]
    pub max_duration_ms: Option<i64>,
}

/// Step Functions' limit on a Standard execution's duration: one year.
pub const MAX_STANDARD_DURATION_MS: i64 = 365 * 24 * 3600 * 1000;

/// The task token of the task `key` (`<execution ARN>#<state entry>#<attempt>`)
/// names: `key` and 128 bits of SHA-256 over the execution's token secret and
/// `key`, so only a token muon handed out names a task.
fn task_token(key: &str, secret: u128) -> String {
    use sha2::Digest as _;
    if secret == 0 {
        return format!("{key}#token");
    }
    let mut hash = sha2::Sha256::new();
    hash.update(secret.to_le_bytes());
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    let mac: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{key}#{mac}")
}

/// What kind of thing a Task's `Resource` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceKind {
    /// A Lambda function ARN: `LambdaFunction*` events.
    LambdaFunction,
    /// `arn:aws:states:::<service>:<action>`: `Task*` events. `action`
    /// keeps any `.sync` or `.waitForTaskToken` suffix.
    Service { service: String, action: String },
    /// Anything else (an activity, say): `Task*` events.
    Other,
}

impl ResourceKind {
    /// Classifies a `Resource` ARN.
    pub fn of(resource: &str) -> ResourceKind {
        let parts: Vec<&str> = resource.split(':').collect();
        if parts.len() >= 7 && parts[2] == "lambda" && parts[5] == "function" {
            return ResourceKind::LambdaFunction;
        }
        if parts.len() >= 7 && parts[2] == "states" && parts[3].is_empty() && parts[4].is_empty() {
            return ResourceKind::Service {
                service: parts[5].to_owned(),
                action: parts[6..].join(":"),
            };
        }
        ResourceKind::Other
    }

    fn type_and_name(&self, resource: &str) -> (String, String) {
        match self {
            ResourceKind::Service { service, action } => (service.clone(), action.clone()),
            _ => ("other".to_owned(), resource.to_owned()),
        }
    }
}

/// A task for the caller to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    pub task: TaskId,
    pub state_name: String,
    pub resource: String,
    pub kind: ResourceKind,
    /// The task's input (the state's effective `Parameters`).
    pub input: Value,
    /// Stable across replays: execution, state entry and attempt.
    pub idempotency_key: String,
    /// 0 for the first attempt, then 1, 2, ... for retries.
    pub attempt: u32,
    pub timeout_seconds: Option<u64>,
    pub heartbeat_seconds: Option<u64>,
    /// The token `.waitForTaskToken` integrations pass on.
    pub task_token: Option<String>,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Run a task; answer with [`Input::TaskSucceeded`] or [`Input::TaskFailed`].
    Invoke(Invocation),
    /// Stop waiting for a task (its branch ended or it timed out).
    CancelTask { task: TaskId },
    /// Call back with [`Input::TimerFired`] at `at` (epoch milliseconds).
    StartTimer { timer: TimerId, at: i64 },
    /// The timer is no longer needed.
    CancelTimer { timer: TimerId },
    /// The execution succeeded.
    Succeed { output: Value },
    /// The execution failed.
    Fail {
        error: Option<String>,
        cause: Option<String>,
    },
    /// The execution ran past its `TimeoutSeconds`.
    TimedOut,
    /// The execution was stopped.
    Aborted,
}

/// What happened outside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    TaskSucceeded {
        task: TaskId,
        output: Value,
    },
    TaskFailed {
        task: TaskId,
        error: Option<String>,
        cause: Option<String>,
    },
    /// The task ran out of time (as the caller saw it).
    TaskTimedOut {
        task: TaskId,
    },
    /// `SendTaskHeartbeat`.
    TaskHeartbeat {
        task: TaskId,
    },
    TimerFired {
        timer: TimerId,
    },
    /// `StopExecution`.
    Stop {
        error: Option<String>,
        cause: Option<String>,
    },
}

/// Where an execution stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Status {
    Running,
    Succeeded {
        output: Value,
    },
    Failed {
        error: Option<String>,
        cause: Option<String>,
    },
    TimedOut,
    Aborted,
}

impl Status {
    /// The status name as `DescribeExecution` gives it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Running => "RUNNING",
            Status::Succeeded { .. } => "SUCCEEDED",
            Status::Failed { .. } => "FAILED",
            Status::TimedOut => "TIMED_OUT",
            Status::Aborted => "ABORTED",
        }
    }
}

type FrameId = usize;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Frame {
    machine: MachineId,
    parent: Option<FrameId>,
    slot: usize,
    worker: usize,
    cursor: Cursor,
    silent: bool,
    map_item: Option<(usize, Value)>,
    vars: Map<String, Value>,
    step: Step,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Step {
    Ready { state: StateId, input: Value },
    Running(Box<Running>),
    Done(Value),
    Failed(Failure),
    Aborted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Running {
    state: StateId,
    input: Value,
    entered_event: u64,
    entered_time: i64,
    retry_counts: Vec<u32>,
    retry_total: u32,
    wait: Waiting,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Waiting {
    /// The state is being evaluated (nothing to wait for yet).
    Evaluating,
    Task {
        task: TaskId,
        attempt: u32,
        timeout: Option<TimerId>,
        heartbeat: Option<(TimerId, u64)>,
    },
    Retry {
        timer: TimerId,
    },
    Wait {
        timer: TimerId,
    },
    Parallel {
        children: Vec<FrameId>,
        results: Vec<Option<Value>>,
        pending: usize,
        failed: Option<Failure>,
    },
    Map(Box<MapRun>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MapRun {
    input: Value,
    items: Vec<Value>,
    results: Vec<Option<Value>>,
    next: usize,
    workers: Vec<Worker>,
    finished: usize,
    failures: usize,
    tolerated_count: Option<u64>,
    tolerated_percentage: Option<f64>,
    failed: Option<Failure>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Worker {
    cursor: Cursor,
    job: Option<FrameId>,
    closed: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum TimerKind {
    TaskTimeout,
    Heartbeat,
    Retry,
    Wait,
    Execution,
}

#[derive(Debug, Clone, Copy)]
enum Queued {
    Step(FrameId),
    StartJob { map: FrameId, worker: usize },
}

/// The definition an execution runs, shared; persisted as its JSON source.
#[derive(Debug, Clone)]
struct Shared(Arc<Definition>);

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.source().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Definition::from_value(v)
            .map(|def| Shared(Arc::new(def)))
            .map_err(serde::de::Error::custom)
    }
}

/// One execution of a state machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    def: Shared,
    info: ExecutionInfo,
    input: Value,
    start_time: i64,
    status: Status,
    history: Vec<HistoryEvent>,
    frames: Vec<Option<Frame>>,
    tasks: BTreeMap<TaskId, FrameId>,
    invocations: BTreeMap<TaskId, Invocation>,
    timers: BTreeMap<TimerId, (Option<FrameId>, TimerKind, i64)>,
    next_task: u64,
    next_timer: u64,
    rng: Rng,
    history_full: bool,
    /// The bytes of the details of the events in `history`.
    #[serde(default)]
    history_bytes: usize,
    #[serde(skip)]
    now: i64,
    #[serde(skip)]
    queue: VecDeque<Queued>,
    #[serde(skip)]
    actions: Vec<Action>,
}

fn text(v: &Value) -> String {
    v.to_string()
}

/// Why a payload may not be carried, if it may not: `"nesting"` past [`MAX_DEPTH`] levels (a
/// loop that wraps its input once more each time would otherwise grow it until serializing it
/// overflows the stack), `"size"` past [`MAX_PAYLOAD_BYTES`].
fn payload_problem(v: &Value) -> Option<&'static str> {
    fn deeper_than(v: &Value, levels: usize) -> bool {
        match v {
            Value::Array(items) => levels == 0 || items.iter().any(|i| deeper_than(i, levels - 1)),
            Value::Object(map) => levels == 0 || map.values().any(|i| deeper_than(i, levels - 1)),
            _ => false,
        }
    }
    if deeper_than(v, MAX_DEPTH) {
        return Some("nesting");
    }
    serde_json::to_vec(v)
        .map_or(true, |b| b.len() > MAX_PAYLOAD_BYTES)
        .then_some("size")
}

fn details(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn io_details(key: &str, v: &Value) -> Vec<(&'static str, Value)> {
    let (k, d) = if key == "input" {
        ("input", "inputDetails")
    } else {
        ("output", "outputDetails")
    };
    vec![(k, Value::from(text(v))), (d, json!({"truncated": false}))]
}

fn missing_message(path: &Path, m: &Missing) -> String {
    if m.no_results {
        format!(
            "Invalid path '{}' : No results for path: {}",
            path.as_str(),
            m.at
        )
    } else {
        format!(
            "Invalid path '{}' : Missing property in path {}",
            path.as_str(),
            m.at
        )
    }
}

fn entered_type(kind: &Kind) -> EventType {
    match kind {
        Kind::Pass { .. } => EventType::PassStateEntered,
        Kind::Task { .. } => EventType::TaskStateEntered,
        Kind::Choice { .. } => EventType::ChoiceStateEntered,
        Kind::Wait { .. } => EventType::WaitStateEntered,
        Kind::Succeed => EventType::SucceedStateEntered,
        Kind::Fail { .. } => EventType::FailStateEntered,
        Kind::Parallel { .. } => EventType::ParallelStateEntered,
        Kind::Map(_) => EventType::MapStateEntered,
    }
}

fn exited_type(kind: &Kind) -> EventType {
    match kind {
        Kind::Pass { .. } => EventType::PassStateExited,
        Kind::Task { .. } => EventType::TaskStateExited,
        Kind::Choice { .. } => EventType::ChoiceStateExited,
        Kind::Wait { .. } => EventType::WaitStateExited,
        Kind::Succeed => EventType::SucceedStateExited,
        Kind::Parallel { .. } => EventType::ParallelStateExited,
        Kind::Map(_) => EventType::MapStateExited,
        Kind::Fail { .. } => EventType::FailStateEntered,
    }
}

/// Applies a `ResultPath`: where `result` goes in `input`.
fn apply_result_path(path: &IoPath, input: &Value, result: Value) -> Result<Value, Failure> {
    match path {
        None => Ok(input.clone()),
        Some(p) => p.set(input.clone(), result).map_err(|_| {
            Failure::new(
                errors::RESULT_PATH_MATCH_FAILURE,
                format!(
                    "Unable to apply step \"{}\" to input {}",
                    p.as_str().trim_start_matches("$."),
                    text(input)
                ),
            )
        }),
    }
}

impl Execution {
    /// Starts an execution of `def` with `input` at `now` (epoch ms).
    /// Returns the execution and the first actions.
    pub fn start(
        def: Arc<Definition>,
        info: ExecutionInfo,
        input: Value,
        now: i64,
    ) -> (Execution, Vec<Action>) {
        let mut exe = Execution {
            rng: Rng::new(info.seed),
            def: Shared(def),
            info,
            input: input.clone(),
            start_time: now,
            status: Status::Running,
            history: Vec::new(),
            frames: Vec::new(),
            tasks: BTreeMap::new(),
            invocations: BTreeMap::new(),
            timers: BTreeMap::new(),
            next_task: 0,
            next_timer: 0,
            history_full: false,
            history_bytes: 0,
            now,
            queue: VecDeque::new(),
            actions: Vec::new(),
        };
        let mut cursor = Cursor::after(0);
        let mut d = io_details("input", &input);
        d.push(("roleArn", Value::from(exe.info.role_arn.clone())));
        exe.event(
            &mut cursor,
            false,
            EventType::ExecutionStarted,
            Some(details(d)),
            false,
        );
        if let Some(limit) = payload_problem(&input) {
            exe.finish_execution(Status::Failed {
                error: Some(errors::DATA_LIMIT_EXCEEDED.into()),
                cause: Some(format!("The execution input exceeds the maximum {limit}.")),
            });
            let actions = std::mem::take(&mut exe.actions);
            return (exe, actions);
        }
        let by_definition = exe
            .def
            .0
            .timeout_seconds
            .map(|secs| now.saturating_add((secs as i64).saturating_mul(1000)));
        let by_limit = exe.info.max_duration_ms.map(|ms| now.saturating_add(ms));
        if let Some(at) = by_definition.into_iter().chain(by_limit).min() {
            exe.start_timer_for(None, TimerKind::Execution, at);
        }
        let root = exe.def.0.root();
        let start = exe.def.0.machine(root).start;
        let fid = exe.new_frame(Frame {
            machine: root,
            parent: None,
            slot: 0,
            worker: 0,
            cursor,
            silent: false,
            map_item: None,
            vars: Map::new(),
            step: Step::Ready {
                state: start,
                input,
            },
        });
        exe.queue.push_back(Queued::Step(fid));
        exe.run();
        let actions = std::mem::take(&mut exe.actions);
        (exe, actions)
    }

    /// Applies one input at `now` (epoch ms); returns what to do next.
    /// Inputs that no longer apply (a late result for a cancelled task, a
    /// timer that was cancelled) are ignored.
    pub fn apply(&mut self, now: i64, input: Input) -> Vec<Action> {
        self.now = now;
        if self.status != Status::Running {
            return Vec::new();
        }
        match input {
            Input::TaskSucceeded { task, output } => self.task_succeeded(task, output),
            Input::TaskFailed { task, error, cause } => {
                self.task_failed(task, Failure { error, cause }, false)
            }
            Input::TaskTimedOut { task } => self.task_failed(
                task,
                Failure {
                    error: Some(errors::TIMEOUT.into()),
                    cause: None,
                },
                true,
            ),
            Input::TaskHeartbeat { task } => self.heartbeat(task),
            Input::TimerFired { timer } => self.timer_fired(timer),
            Input::Stop { error, cause } => {
                let mut d = Vec::new();
                if let Some(e) = &error {
                    d.push(("error", Value::from(e.clone())));
                }
                if let Some(c) = &cause {
                    d.push(("cause", Value::from(c.clone())));
                }
                let mut cursor = self.last_cursor();
                self.event(
                    &mut cursor,
                    false,
                    EventType::ExecutionAborted,
                    Some(details(d)),
                    true,
                );
                self.finish_execution(Status::Aborted);
            }
        }
        self.run();
        std::mem::take(&mut self.actions)
    }

    /// Where the execution stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The error and cause of an execution that failed, timed out or was stopped (from its
    /// status, else from its last history event); `(None, None)` otherwise.
    pub fn error_and_cause(&self) -> (Option<String>, Option<String>) {
        if let Status::Failed { error, cause } = &self.status {
            return (error.clone(), cause.clone());
        }
        if !matches!(self.status, Status::TimedOut | Status::Aborted) {
            return (None, None);
        }
        let details = self.history.last().and_then(|e| e.details.as_ref());
        let field = |key: &str| {
            details
                .and_then(|d| d.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        (field("error"), field("cause"))
    }

    /// The history so far.
    pub fn history(&self) -> &[HistoryEvent] {
        &self.history
    }

    /// The definition this execution runs.
    pub fn definition(&self) -> &Arc<Definition> {
        &self.def.0
    }

    /// Who is running.
    pub fn info(&self) -> &ExecutionInfo {
        &self.info
    }

    /// The tasks waiting for a result: after a restart, a durable caller
    /// dispatches these again (their idempotency keys are unchanged).
    pub fn pending_tasks(&self) -> impl Iterator<Item = &Invocation> + '_ {
        self.invocations.values()
    }

    /// The waiting task a `.waitForTaskToken` token belongs to
    /// (`SendTaskSuccess`, `SendTaskFailure` and `SendTaskHeartbeat` name
    /// tasks by token).
    pub fn task_for_token(&self, token: &str) -> Option<TaskId> {
        self.invocations
            .values()
            .find(|i| i.task_token.as_deref() == Some(token))
            .map(|i| i.task)
    }

    /// The timers still armed, with when they fire: after a restart, a
    /// durable caller arms these again.
    pub fn pending_timers(&self) -> impl Iterator<Item = (TimerId, i64)> + '_ {
        self.timers.iter().map(|(t, (_, _, at))| (*t, *at))
    }

    /// Rebuilds an execution from how it started and the inputs applied
    /// since (with the time of each), as a durable caller recorded them.
    /// The result is the execution as it was, history included.
    pub fn replay(
        def: Arc<Definition>,
        info: ExecutionInfo,
        input: Value,
        start_time: i64,
        inputs: impl IntoIterator<Item = (i64, Input)>,
    ) -> Execution {
        let (mut exe, _) = Execution::start(def, info, input, start_time);
        for (now, input) in inputs {
            exe.apply(now, input);
        }
        exe
    }

    // ---- bookkeeping ----------------------------------------------------

    fn last_cursor(&self) -> Cursor {
        let last = self.history.last().map_or(0, |e| e.id);
        Cursor::after(last)
    }

    fn event(
        &mut self,
        cursor: &mut Cursor,
        silent: bool,
        event_type: EventType,
        details: Option<Map<String, Value>>,
        update: bool,
    ) -> u64 {
        if silent {
            return cursor.source;
        }
        let terminal = matches!(
            event_type,
            EventType::ExecutionSucceeded
                | EventType::ExecutionFailed
                | EventType::ExecutionTimedOut
                | EventType::ExecutionAborted
        );
        let bytes = details.as_ref().map_or(0, |d| {
            d.iter()
                .map(|(k, v)| {
                    k.len()
                        + crate::scope::json_size(v, MAX_HISTORY_BYTES).unwrap_or(MAX_HISTORY_BYTES)
                })
                .sum()
        });
        if !terminal
            && (self.history.len() + 1 >= MAX_HISTORY_EVENTS
                || self.history_bytes + bytes > MAX_HISTORY_BYTES)
        {
            self.history_full = true;
            return cursor.source;
        }
        self.history_bytes += bytes;
        let id = self.history.len() as u64 + 1;
        self.history.push(HistoryEvent {
            id,
            previous_event_id: cursor.source,
            timestamp: self.now,
            event_type,
            details,
        });
        cursor.last = id;
        if update {
            cursor.source = id;
        }
        id
    }

    /// Adds an event in a frame's numbering.
    fn frame_event(
        &mut self,
        f: FrameId,
        event_type: EventType,
        details: Option<Map<String, Value>>,
        update: bool,
    ) -> u64 {
        let (mut cursor, silent) = {
            let fr = self.frame(f);
            (fr.cursor, fr.silent)
        };
        let id = self.event(&mut cursor, silent, event_type, details, update);
        self.frame_mut(f).cursor = cursor;
        id
    }

    fn new_frame(&mut self, frame: Frame) -> FrameId {
        if let Some(i) = self.frames.iter().position(Option::is_none) {
            self.frames[i] = Some(frame);
            i
        } else {
            self.frames.push(Some(frame));
            self.frames.len() - 1
        }
    }

    fn frame(&self, f: FrameId) -> &Frame {
        self.frames[f].as_ref().expect("a live frame")
    }

    fn frame_mut(&mut self, f: FrameId) -> &mut Frame {
        self.frames[f].as_mut().expect("a live frame")
    }

    fn running_mut(&mut self, f: FrameId) -> &mut Running {
        match &mut self.frame_mut(f).step {
            Step::Running(r) => r,
            _ => panic!("frame {f} is not running a state"),
        }
    }

    fn start_timer_for(&mut self, frame: Option<FrameId>, kind: TimerKind, at: i64) -> TimerId {
        let timer = TimerId(self.next_timer);
        self.next_timer += 1;
        self.timers.insert(timer, (frame, kind, at));
        self.actions.push(Action::StartTimer { timer, at });
        timer
    }

    fn start_timer(&mut self, frame: FrameId, kind: TimerKind, at: i64) -> TimerId {
        self.start_timer_for(Some(frame), kind, at)
    }

    fn cancel_timer(&mut self, timer: TimerId) {
        if self.timers.remove(&timer).is_some() {
            self.actions.push(Action::CancelTimer { timer });
        }
    }

    fn context(&self, f: FrameId, state_name: &str, entered: i64, retry: Option<u32>) -> Value {
        let fr = self.frame(f);
        let mut state = Map::new();
        state.insert("Name".into(), Value::from(state_name));
        state.insert(
            "EnteredTime".into(),
            Value::from(time::format_millis(entered)),
        );
        if let Some(r) = retry {
            state.insert("RetryCount".into(), Value::from(r));
        }
        let mut ctx = Map::new();
        ctx.insert(
            "Execution".into(),
            json!({
                "Id": self.info.execution_arn,
                "Input": self.input,
                "StartTime": time::format_millis(self.start_time),
                "Name": self.info.name,
                "RoleArn": self.info.role_arn,
                "RedriveCount": self.info.redrive_count,
            }),
        );
        ctx.insert(
            "StateMachine".into(),
            json!({"Id": self.info.state_machine_arn, "Name": self.info.state_machine_name}),
        );
        ctx.insert("State".into(), Value::Object(state));
        if let Some((i, v)) = &fr.map_item {
            ctx.insert("Map".into(), json!({"Item": {"Index": i, "Value": v}}));
        }
        Value::Object(ctx)
    }

    // ---- the run loop ----------------------------------------------------

    fn run(&mut self) {
        while let Some(work) = self.queue.pop_front() {
            if self.status != Status::Running {
                self.queue.clear();
                break;
            }
            match work {
                Queued::Step(f) => self.step_frame(f),
                Queued::StartJob { map, worker } => self.start_job(map, worker),
            }
            if self.history_full && self.status == Status::Running {
                self.finish_execution(Status::Failed {
                    error: Some(errors::RUNTIME.into()),
                    cause: Some(format!(
                        "The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS}) or of history bytes ({MAX_HISTORY_BYTES})."
                    )),
                });
            }
        }
    }

    fn step_frame(&mut self, f: FrameId) {
        loop {
            if self.status != Status::Running
                || self.history_full
                || self.frames.get(f).is_none_or(Option::is_none)
            {
                return;
            }
            match &self.frame(f).step {
                Step::Ready { state, input } => {
                    let (state, input) = (*state, input.clone());
                    self.enter(f, state, input);
                }
                Step::Done(_) | Step::Failed(_) => {
                    self.frame_finished(f);
                    return;
                }
                Step::Running(_) | Step::Aborted => return,
            }
        }
    }

    fn finish_execution(&mut self, status: Status) {
        let mut cursor = self.last_cursor();
        if let Some(root) = self.frames.first().and_then(Option::as_ref) {
            cursor = root.cursor;
        }
        match &status {
            Status::Succeeded { output } => {
                let d = io_details("output", output);
                self.event(
                    &mut cursor,
                    false,
                    EventType::ExecutionSucceeded,
                    Some(details(d)),
                    true,
                );
                self.actions.push(Action::Succeed {
                    output: output.clone(),
                });
            }
            Status::Failed { error, cause } => {
                let mut d = Vec::new();
                if let Some(e) = error {
                    d.push(("error", Value::from(e.clone())));
                }
                if let Some(c) = cause {
                    d.push(("cause", Value::from(c.clone())));
                }
                self.event(
                    &mut cursor,
                    false,
                    EventType::ExecutionFailed,
                    Some(details(d)),
                    true,
                );
                self.actions.push(Action::Fail {
                    error: error.clone(),
                    cause: cause.clone(),
                });
            }
            Status::TimedOut => {
                let d = vec![("error", Value::from(errors::TIMEOUT))];
                self.event(
                    &mut cursor,
                    false,
                    EventType::ExecutionTimedOut,
                    Some(details(d)),
                    true,
                );
                self.actions.push(Action::TimedOut);
            }
            Status::Aborted => self.actions.push(Action::Aborted),
            Status::Running => return,
        }
        self.invocations.clear();
        for task in std::mem::take(&mut self.tasks).into_keys() {
            self.actions.push(Action::CancelTask { task });
        }
        for timer in std::mem::take(&mut self.timers).into_keys() {
            self.actions.push(Action::CancelTimer { timer });
        }
        self.status = status;
    }

    // ---- states ------------------------------------------------------------

    fn state_failure(&self, f: FrameId, failure: Failure) -> Failure {
        if !failure.is_runtime() {
            return failure;
        }
        let (name, entered) = match &self.frame(f).step {
            Step::Running(r) => (
                self.def
                    .0
                    .state(self.frame(f).machine, r.state)
                    .name
                    .clone(),
                r.entered_event,
            ),
            _ => return failure,
        };
        Failure {
            error: failure.error,
            cause: Some(format!(
                "An error occurred while executing the state '{name}' (entered at the event id #{entered}). {}",
                failure.cause.unwrap_or_default()
            )),
        }
    }

    /// Fails the frame's current state with `failure` (no retry or catch).
    fn fail_frame(&mut self, f: FrameId, failure: Failure) {
        let failure = self.state_failure(f, failure);
        self.frame_mut(f).step = Step::Failed(failure);
        self.queue.push_front(Queued::Step(f));
    }

    fn select_io(
        &self,
        path: &IoPath,
        value: &Value,
        ctx: &Value,
        f: FrameId,
    ) -> Result<Value, Failure> {
        match path {
            None => Ok(json!({})),
            Some(p) => {
                let mut rng = self.rng.clone();
                let scope = Scope::new(value, ctx, Some(&self.frame(f).vars), &mut rng);
                scope
                    .select(p)
                    .map_err(|m| Failure::runtime(missing_message(p, &m)))
            }
        }
    }

    fn eval_template(
        &mut self,
        f: FrameId,
        t: &Template,
        data: &Value,
        ctx: &Value,
    ) -> Result<Value, Failure> {
        let vars = std::mem::take(&mut self.frame_mut(f).vars);
        let result = {
            let mut scope = Scope::new(data, ctx, Some(&vars), &mut self.rng);
            t.eval(&mut scope)
        };
        self.frame_mut(f).vars = vars;
        result
    }

    fn assign(
        &mut self,
        f: FrameId,
        assign: &Option<Template>,
        data: &Value,
        ctx: &Value,
    ) -> Result<Option<Value>, Failure> {
        let Some(t) = assign else { return Ok(None) };
        let value = self.eval_template(f, t, data, ctx)?;
        if let Value::Object(obj) = &value {
            let vars = &mut self.frame_mut(f).vars;
            for (k, v) in obj {
                vars.insert(k.clone(), v.clone());
            }
        }
        Ok(Some(value))
    }

    fn enter(&mut self, f: FrameId, sid: StateId, input: Value) {
        let def = self.def.0.clone();
        let machine = self.frame(f).machine;
        let state = def.state(machine, sid);
        let d = {
            let mut d = io_details("input", &input);
            d.push(("name", Value::from(state.name.clone())));
            d
        };
        let entered_event = self.frame_event(f, entered_type(&state.kind), Some(details(d)), true);
        let now = self.now;
        self.frame_mut(f).step = Step::Running(Box::new(Running {
            state: sid,
            input: input.clone(),
            entered_event,
            entered_time: now,
            retry_counts: Vec::new(),
            retry_total: 0,
            wait: Waiting::Evaluating,
        }));
        if let Some(limit) = payload_problem(&input) {
            let failure = Failure::new(
                errors::DATA_LIMIT_EXCEEDED,
                format!(
                    "The state '{}' input exceeds the maximum {limit}.",
                    state.name
                ),
            );
            return self.fail_frame(f, failure);
        }
        let retry = matches!(
            state.kind,
            Kind::Task { .. } | Kind::Parallel { .. } | Kind::Map(_)
        )
        .then_some(0);
        let ctx = self.context(f, &state.name, now, retry);
        let effective = match self.select_io(&state.input_path, &input, &ctx, f) {
            Ok(v) => v,
            Err(e) => return self.fail_frame(f, e),
        };
        match &state.kind {
            Kind::Pass {
                result,
                parameters,
                result_path,
                next,
            } => {
                let outcome = (|| {
                    let effective = match parameters {
                        Some(t) => self.eval_template(f, t, &effective, &ctx)?,
                        None => effective,
                    };
                    let result = result.clone().unwrap_or(effective);
                    let assigned = self.assign(f, &state.assign, &result, &ctx)?;
                    let out = apply_result_path(result_path, &input, result)?;
                    Ok((self.select_io(&state.output_path, &out, &ctx, f)?, assigned))
                })();
                match outcome {
                    Ok((out, assigned)) => self.exit_state(f, sid, out, *next, assigned),
                    Err(e) => self.fail_frame(f, e),
                }
            }
            Kind::Choice { choices, default } => {
                let mut chosen = None;
                for rule in choices {
                    let vars = std::mem::take(&mut self.frame_mut(f).vars);
                    let r = {
                        let mut scope = Scope::new(&effective, &ctx, Some(&vars), &mut self.rng);
                        rule.condition.eval(&mut scope)
                    };
                    self.frame_mut(f).vars = vars;
                    match r {
                        Ok(true) => {
                            chosen = Some((rule.next, &rule.assign));
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => return self.fail_frame(f, e),
                    }
                }
                let (next, rule_assign) = match (chosen, default) {
                    (Some((n, a)), _) => (n, a.clone()),
                    (None, Some(d)) => (*d, None),
                    (None, None) => {
                        let failure = Failure::new(
                            errors::NO_CHOICE_MATCHED,
                            format!(
                                "No Matches! (The state '{}' could not find a matching choice rule.)",
                                state.name
                            ),
                        );
                        return self.fail_frame(f, failure);
                    }
                };
                let outcome = (|| {
                    let mut assigned = self.assign(f, &state.assign, &effective, &ctx)?;
                    if let Some(a) = self.assign(f, &rule_assign, &effective, &ctx)? {
                        assigned = Some(a);
                    }
                    Ok((
                        self.select_io(&state.output_path, &effective, &ctx, f)?,
                        assigned,
                    ))
                })();
                match outcome {
                    Ok((out, assigned)) => {
                        self.exit_state(f, sid, out, Transition::Next(next), assigned)
                    }
                    Err(e) => self.fail_frame(f, e),
                }
            }
            Kind::Wait { wait, .. } => {
                let at = match wait {
                    WaitFor::Seconds(s) => Ok(now + *s as i64 * 1000),
                    WaitFor::Timestamp(t) => Ok(time::parse_timestamp(t).unwrap_or(now)),
                    WaitFor::SecondsPath(p) => {
                        match self.select_io(&Some(p.clone()), &effective, &ctx, f) {
                            Err(_) => Err(Failure::runtime(format!(
                                "The SecondsPath parameter does not reference an input value: {}",
                                p.as_str()
                            ))),
                            Ok(v) => match v.as_i64() {
                                Some(s) if s >= 0 => Ok(now + s * 1000),
                                _ => Err(Failure::runtime(format!(
                                    "The SecondsPath parameter cannot be parsed as a long value: {} == {}",
                                    p.as_str(),
                                    v
                                ))),
                            },
                        }
                    }
                    WaitFor::TimestampPath(p) => {
                        match self.select_io(&Some(p.clone()), &effective, &ctx, f) {
                            Err(_) => Err(Failure::runtime(format!(
                                "The TimestampPath parameter does not reference an input value: {}",
                                p.as_str()
                            ))),
                            Ok(v) => match v.as_str().and_then(time::parse_timestamp) {
                                Some(t) => Ok(t),
                                None => Err(Failure::runtime(format!(
                                    "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {}",
                                    p.as_str(),
                                    v
                                ))),
                            },
                        }
                    }
                };
                match at {
                    Ok(at) => {
                        let timer = self.start_timer(f, TimerKind::Wait, at);
                        self.running_mut(f).wait = Waiting::Wait { timer };
                    }
                    Err(e) => self.fail_frame(f, e),
                }
            }
            Kind::Succeed => match self.select_io(&state.output_path, &effective, &ctx, f) {
                Ok(out) => {
                    let mut d = io_details("output", &out);
                    d.insert(0, ("name", Value::from(state.name.clone())));
                    self.frame_event(f, EventType::SucceedStateExited, Some(details(d)), true);
                    self.frame_mut(f).step = Step::Done(out);
                }
                Err(e) => self.fail_frame(f, e),
            },
            Kind::Fail { error, cause } => {
                let mut eval_text = |t: &Option<Text>,
                                     field: &str|
                 -> Result<Option<String>, Failure> {
                    match t {
                        None => Ok(None),
                        Some(Text::Literal(s)) => Ok(Some(s.clone())),
                        Some(Text::Expr(e)) => {
                            let vars = self.frame(f).vars.clone();
                            let mut scope = Scope::new(&input, &ctx, Some(&vars), &mut self.rng);
                            match e.eval(&mut scope, field) {
                                Ok(Value::String(s)) => Ok(Some(s)),
                                Ok(other) => Ok(Some(other.to_string())),
                                Err(_) => Err(Failure::runtime(match e {
                                    crate::template::Expr::Path(p) => format!(
                                        "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                                        p.as_str(),
                                        text(&input)
                                    ),
                                    crate::template::Expr::Call(c) => format!(
                                        "The intrinsic function '{}' specified for the field '{field}' failed",
                                        c.name
                                    ),
                                })),
                            }
                        }
                    }
                };
                let failure = eval_text(error, "ErrorPath").and_then(|error| {
                    Ok(Failure {
                        error,
                        cause: eval_text(cause, "CausePath")?,
                    })
                });
                match failure {
                    Ok(failure) => self.frame_mut(f).step = Step::Failed(failure),
                    Err(e) => self.fail_frame(f, e),
                }
            }
            Kind::Task { .. } => self.schedule_task(f, effective),
            Kind::Parallel { work, branches, .. } => {
                let branch_input = match &work.parameters {
                    Some(t) => match self.eval_template(f, t, &effective, &ctx) {
                        Ok(v) => v,
                        Err(e) => return self.fail_frame(f, e),
                    },
                    None => effective,
                };
                self.start_parallel(f, branches, branch_input);
            }
            Kind::Map(m) => self.start_map(f, m, effective, &ctx),
        }
    }

    /// Leaves a state: the Exited event, then the transition.
    fn exit_state(
        &mut self,
        f: FrameId,
        sid: StateId,
        output: Value,
        next: Transition,
        assigned: Option<Value>,
    ) {
        let def = self.def.0.clone();
        let state = def.state(self.frame(f).machine, sid);
        if let Some(limit) = payload_problem(&output) {
            let failure = Failure::new(
                errors::DATA_LIMIT_EXCEEDED,
                format!(
                    "The state '{}' output exceeds the maximum {limit}.",
                    state.name
                ),
            );
            return self.fail_frame(f, failure);
        }
        let mut d = vec![("name", Value::from(state.name.clone()))];
        if let Some(Value::Object(vars)) =
            assigned.filter(|a| a.as_object().is_some_and(|o| !o.is_empty()))
        {
            let shown: Map<String, Value> = vars
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(text(v))))
                .collect();
            d.push(("assignedVariables", Value::Object(shown)));
            d.push(("assignedVariablesDetails", json!({"truncated": false})));
        }
        d.extend(io_details("output", &output));
        self.frame_event(f, exited_type(&state.kind), Some(details(d)), true);
        self.frame_mut(f).step = match next {
            Transition::Next(n) => Step::Ready {
                state: n,
                input: output,
            },
            Transition::End => Step::Done(output),
        };
    }

    /// The work state's result pipeline: ResultSelector, ResultPath, OutputPath.
    fn finish_work(&mut self, f: FrameId, result: Value) {
        let def = self.def.0.clone();
        let (sid, input, entered, retry) = {
            let r = match &self.frame(f).step {
                Step::Running(r) => r,
                _ => return,
            };
            (r.state, r.input.clone(), r.entered_time, r.retry_total)
        };
        let state = def.state(self.frame(f).machine, sid);
        let (work, next) = match &state.kind {
            Kind::Task { work, next, .. } | Kind::Parallel { work, next, .. } => (work, *next),
            Kind::Map(m) => (&m.work, m.next),
            _ => return,
        };
        let ctx = self.context(f, &state.name, entered, Some(retry));
        let outcome = (|| {
            let result = match &work.result_selector {
                Some(t) => self.eval_template(f, t, &result, &ctx)?,
                None => result,
            };
            let assigned = self.assign(f, &state.assign, &result, &ctx)?;
            let out = apply_result_path(&work.result_path(), &input, result)?;
            Ok((self.select_io(&state.output_path, &out, &ctx, f)?, assigned))
        })();
        match outcome {
            Ok((out, assigned)) => {
                self.exit_state(f, sid, out, next, assigned);
                self.queue.push_front(Queued::Step(f));
            }
            Err(e) => self.handle_failure(f, e),
        }
    }

    /// A work state failed: retry, catch, or fail the frame.
    fn handle_failure(&mut self, f: FrameId, failure: Failure) {
        let failure = self.state_failure(f, failure);
        let def = self.def.0.clone();
        let (sid, input) = match &self.frame(f).step {
            Step::Running(r) => (r.state, r.input.clone()),
            _ => return,
        };
        let state = def.state(self.frame(f).machine, sid);
        let work: &Work = match &state.kind {
            Kind::Task { work, .. } | Kind::Parallel { work, .. } => work,
            Kind::Map(m) => &m.work,
            _ => {
                self.frame_mut(f).step = Step::Failed(failure);
                self.queue.push_front(Queued::Step(f));
                return;
            }
        };
        let error = failure.error_name().to_owned();
        if let Some(i) = work
            .retry
            .iter()
            .position(|r| error_matches(&r.error_equals, &error))
        {
            let retrier = &work.retry[i];
            let count = {
                let r = self.running_mut(f);
                if r.retry_counts.len() < work.retry.len() {
                    r.retry_counts.resize(work.retry.len(), 0);
                }
                r.retry_counts[i]
            };
            if count < retrier.max_attempts {
                let delay = retry_delay_millis(retrier, count + 1, &mut self.rng);
                let at = self.now + delay as i64;
                let timer = self.start_timer(f, TimerKind::Retry, at);
                let r = self.running_mut(f);
                r.retry_counts[i] += 1;
                r.retry_total += 1;
                r.wait = Waiting::Retry { timer };
                return;
            }
        }
        match &state.kind {
            Kind::Parallel { .. } => {
                self.frame_event(f, EventType::ParallelStateFailed, None, true);
            }
            Kind::Map(_) => {
                self.frame_event(f, EventType::MapStateFailed, None, true);
            }
            _ => {}
        }
        if let Some(c) = work
            .catch
            .iter()
            .find(|c| error_matches(&c.error_equals, &error))
        {
            let err_out = json!({
                "Error": failure.error.clone().unwrap_or_default(),
                "Cause": failure.cause.clone().unwrap_or_default(),
            });
            let entered = match &self.frame(f).step {
                Step::Running(r) => r.entered_time,
                _ => self.now,
            };
            let ctx = self.context(f, &state.name, entered, None);
            let outcome = (|| {
                let assigned = self.assign(f, &c.assign, &err_out, &ctx)?;
                Ok((
                    apply_result_path(&c.result_path, &input, err_out)?,
                    assigned,
                ))
            })();
            match outcome {
                Ok((out, assigned)) => {
                    self.exit_state(f, sid, out, Transition::Next(c.next), assigned)
                }
                Err(e) => self.frame_mut(f).step = Step::Failed(e),
            }
        } else {
            self.frame_mut(f).step = Step::Failed(failure);
        }
        self.queue.push_front(Queued::Step(f));
    }

    // ---- tasks ---------------------------------------------------------------

    fn schedule_task(&mut self, f: FrameId, effective: Value) {
        let def = self.def.0.clone();
        let (sid, input, entered_event, entered_time, retry_total) = match &self.frame(f).step {
            Step::Running(r) => (
                r.state,
                r.input.clone(),
                r.entered_event,
                r.entered_time,
                r.retry_total,
            ),
            _ => return,
        };
        let state = def.state(self.frame(f).machine, sid);
        let Kind::Task {
            resource,
            work,
            timeout,
            heartbeat,
            ..
        } = &state.kind
        else {
            return;
        };
        let key = format!(
            "{}#{}#{}",
            self.info.execution_arn, entered_event, retry_total
        );
        let token = resource
            .ends_with(".waitForTaskToken")
            .then(|| task_token(&key, self.info.token_secret));
        let mut ctx = self.context(f, &state.name, entered_time, Some(retry_total));
        if let Some(t) = &token {
            ctx["Task"] = json!({ "Token": t });
        }
        let params = match &work.parameters {
            Some(t) => match self.eval_template(f, t, &effective, &ctx) {
                Ok(v) => v,
                Err(e) => return self.handle_failure(f, e),
            },
            None => effective,
        };
        let seconds = |c: &Option<Count>, this: &Self| -> Result<Option<u64>, Failure> {
            match c {
                None => Ok(None),
                Some(Count::Literal(n)) => Ok(Some(*n as u64)),
                Some(Count::Path(p)) => {
                    let v = this.select_io(&Some(p.clone()), &input, &ctx, f)?;
                    v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
                        Failure::runtime(format!(
                            "The value of {} must be a positive integer: {v}",
                            p.as_str()
                        ))
                    })
                }
            }
        };
        let (timeout_s, heartbeat_s) = match (seconds(timeout, self), seconds(heartbeat, self)) {
            (Ok(t), Ok(h)) => (t, h),
            (Err(e), _) | (_, Err(e)) => return self.fail_frame(f, e),
        };
        let kind = ResourceKind::of(resource);
        match &kind {
            ResourceKind::LambdaFunction => {
                let mut d = io_details("input", &params);
                d.insert(0, ("resource", Value::from(resource.clone())));
                if let Some(t) = timeout_s {
                    d.push(("timeoutInSeconds", Value::from(t)));
                }
                if let Some(h) = heartbeat_s {
                    d.push(("heartbeatInSeconds", Value::from(h)));
                }
                self.frame_event(
                    f,
                    EventType::LambdaFunctionScheduled,
                    Some(details(d)),
                    true,
                );
                self.frame_event(f, EventType::LambdaFunctionStarted, None, true);
            }
            _ => {
                let (rtype, rname) = kind.type_and_name(resource);
                let mut d = vec![
                    ("resourceType", Value::from(rtype.clone())),
                    ("resource", Value::from(rname.clone())),
                    ("region", Value::from(self.info.region.clone())),
                    ("parameters", Value::from(text(&params))),
                ];
                if let Some(t) = timeout_s {
                    d.push(("timeoutInSeconds", Value::from(t)));
                }
                if let Some(h) = heartbeat_s {
                    d.push(("heartbeatInSeconds", Value::from(h)));
                }
                self.frame_event(f, EventType::TaskScheduled, Some(details(d)), true);
                let d = vec![
                    ("resourceType", Value::from(rtype)),
                    ("resource", Value::from(rname)),
                ];
                self.frame_event(f, EventType::TaskStarted, Some(details(d)), true);
            }
        }
        let task = TaskId(self.next_task);
        self.next_task += 1;
        self.tasks.insert(task, f);
        let now = self.now;
        let timeout_timer =
            timeout_s.map(|t| self.start_timer(f, TimerKind::TaskTimeout, now + t as i64 * 1000));
        let heartbeat_timer = heartbeat_s.map(|h| {
            (
                self.start_timer(f, TimerKind::Heartbeat, now + h as i64 * 1000),
                h,
            )
        });
        let invocation = Invocation {
            task,
            state_name: state.name.clone(),
            resource: resource.clone(),
            kind,
            input: params,
            idempotency_key: key,
            attempt: retry_total,
            timeout_seconds: timeout_s,
            heartbeat_seconds: heartbeat_s,
            task_token: token,
        };
        self.invocations.insert(task, invocation.clone());
        self.actions.push(Action::Invoke(invocation));
        self.running_mut(f).wait = Waiting::Task {
            task,
            attempt: retry_total,
            timeout: timeout_timer,
            heartbeat: heartbeat_timer,
        };
    }

    /// The frame waiting for `task`, with its timers released.
    fn take_task(&mut self, task: TaskId) -> Option<FrameId> {
        let f = self.tasks.remove(&task)?;
        self.invocations.remove(&task);
        if let Step::Running(r) = &self.frame(f).step
            && let Waiting::Task {
                timeout, heartbeat, ..
            } = r.wait.clone()
        {
            if let Some(t) = timeout {
                self.cancel_timer(t);
            }
            if let Some((t, _)) = heartbeat {
                self.cancel_timer(t);
            }
        }
        Some(f)
    }

    fn task_resource(&self, f: FrameId) -> Option<(String, ResourceKind)> {
        let Step::Running(r) = &self.frame(f).step else {
            return None;
        };
        match &self.def.0.state(self.frame(f).machine, r.state).kind {
            Kind::Task { resource, .. } => Some((resource.clone(), ResourceKind::of(resource))),
            _ => None,
        }
    }

    fn task_succeeded(&mut self, task: TaskId, output: Value) {
        let Some(f) = self.take_task(task) else {
            return;
        };
        let Some((resource, kind)) = self.task_resource(f) else {
            return;
        };
        if payload_problem(&output).is_some() {
            let who = match &kind {
                ResourceKind::Service { service, .. } => service.clone(),
                _ => resource.clone(),
            };
            let failure = Failure::new(
                errors::DATA_LIMIT_EXCEEDED,
                format!(
                    "The state/task '{who}' returned a result with a size exceeding the maximum number of bytes service limit."
                ),
            );
            return self.record_task_failure(f, &resource, &kind, failure, false);
        }
        match &kind {
            ResourceKind::LambdaFunction => {
                let d = io_details("output", &output);
                self.frame_event(
                    f,
                    EventType::LambdaFunctionSucceeded,
                    Some(details(d)),
                    true,
                );
            }
            _ => {
                let (rtype, rname) = kind.type_and_name(&resource);
                let mut d = vec![
                    ("resourceType", Value::from(rtype)),
                    ("resource", Value::from(rname)),
                ];
                d.extend(io_details("output", &output));
                self.frame_event(f, EventType::TaskSucceeded, Some(details(d)), true);
            }
        }
        self.finish_work(f, output);
    }

    fn task_failed(&mut self, task: TaskId, failure: Failure, timed_out: bool) {
        let Some(f) = self.take_task(task) else {
            return;
        };
        let Some((resource, kind)) = self.task_resource(f) else {
            return;
        };
        self.record_task_failure(f, &resource, &kind, failure, timed_out);
    }

    fn record_task_failure(
        &mut self,
        f: FrameId,
        resource: &str,
        kind: &ResourceKind,
        failure: Failure,
        timed_out: bool,
    ) {
        let mut d = Vec::new();
        if let Some(e) = &failure.error {
            d.push(("error", Value::from(e.clone())));
        }
        if let Some(c) = &failure.cause {
            d.push(("cause", Value::from(c.clone())));
        }
        let event_type = match (kind, timed_out) {
            (ResourceKind::LambdaFunction, false) => EventType::LambdaFunctionFailed,
            (ResourceKind::LambdaFunction, true) => EventType::LambdaFunctionTimedOut,
            (_, false) => EventType::TaskFailed,
            (_, true) => EventType::TaskTimedOut,
        };
        if !matches!(kind, ResourceKind::LambdaFunction) {
            let (rtype, rname) = kind.type_and_name(resource);
            d.push(("resourceType", Value::from(rtype)));
            d.push(("resource", Value::from(rname)));
        }
        self.frame_event(f, event_type, Some(details(d)), true);
        self.handle_failure(f, failure);
    }

    fn heartbeat(&mut self, task: TaskId) {
        let Some(&f) = self.tasks.get(&task) else {
            return;
        };
        let old = match &self.frame(f).step {
            Step::Running(r) => match &r.wait {
                Waiting::Task {
                    heartbeat: Some(h), ..
                } => *h,
                _ => return,
            },
            _ => return,
        };
        self.cancel_timer(old.0);
        let at = self.now + old.1 as i64 * 1000;
        let timer = self.start_timer(f, TimerKind::Heartbeat, at);
        if let Waiting::Task { heartbeat, .. } = &mut self.running_mut(f).wait {
            *heartbeat = Some((timer, old.1));
        }
    }

    fn timer_fired(&mut self, timer: TimerId) {
        let Some((frame, kind, _)) = self.timers.remove(&timer) else {
            return;
        };
        let Some(f) = frame else {
            // The execution's own timeout.
            self.finish_execution(Status::TimedOut);
            return;
        };
        if self.frames.get(f).is_none_or(Option::is_none) {
            return;
        }
        let wait = match &self.frame(f).step {
            Step::Running(r) => r.wait.clone(),
            _ => return,
        };
        match (kind, wait) {
            (TimerKind::TaskTimeout | TimerKind::Heartbeat, Waiting::Task { task, .. }) => {
                if let Some(f) = self.take_task(task) {
                    self.actions.push(Action::CancelTask { task });
                    let error = if matches!(kind, TimerKind::Heartbeat) {
                        errors::HEARTBEAT_TIMEOUT
                    } else {
                        errors::TIMEOUT
                    };
                    if let Some((resource, rkind)) = self.task_resource(f) {
                        let failure = Failure {
                            error: Some(error.into()),
                            cause: None,
                        };
                        self.record_task_failure(f, &resource, &rkind, failure, true);
                    }
                }
            }
            (TimerKind::Retry, Waiting::Retry { timer: t }) if t == timer => self.retry(f),
            (TimerKind::Wait, Waiting::Wait { timer: t }) if t == timer => {
                let def = self.def.0.clone();
                let (sid, input, entered) = match &self.frame(f).step {
                    Step::Running(r) => (r.state, r.input.clone(), r.entered_time),
                    _ => return,
                };
                let state = def.state(self.frame(f).machine, sid);
                let Kind::Wait { next, .. } = &state.kind else {
                    return;
                };
                let ctx = self.context(f, &state.name, entered, None);
                let outcome = (|| {
                    let effective = self.select_io(&state.input_path, &input, &ctx, f)?;
                    let assigned = self.assign(f, &state.assign, &effective, &ctx)?;
                    Ok((
                        self.select_io(&state.output_path, &effective, &ctx, f)?,
                        assigned,
                    ))
                })();
                match outcome {
                    Ok((out, assigned)) => self.exit_state(f, sid, out, *next, assigned),
                    Err(e) => {
                        let e = self.state_failure(f, e);
                        self.frame_mut(f).step = Step::Failed(e);
                    }
                }
                self.queue.push_front(Queued::Step(f));
            }
            _ => {}
        }
    }

    /// Runs a work state again after a retry delay.
    fn retry(&mut self, f: FrameId) {
        let def = self.def.0.clone();
        let (sid, input, entered, retry) = match &self.frame(f).step {
            Step::Running(r) => (r.state, r.input.clone(), r.entered_time, r.retry_total),
            _ => return,
        };
        let state = def.state(self.frame(f).machine, sid);
        let ctx = self.context(f, &state.name, entered, Some(retry));
        let effective = match self.select_io(&state.input_path, &input, &ctx, f) {
            Ok(v) => v,
            Err(e) => return self.fail_frame(f, e),
        };
        match &state.kind {
            Kind::Task { .. } => self.schedule_task(f, effective),
            Kind::Parallel { work, branches, .. } => {
                let branch_input = match &work.parameters {
                    Some(t) => match self.eval_template(f, t, &effective, &ctx) {
                        Ok(v) => v,
                        Err(e) => return self.fail_frame(f, e),
                    },
                    None => effective,
                };
                self.start_parallel(f, branches, branch_input);
            }
            Kind::Map(m) => self.start_map(f, m, effective, &ctx),
            _ => {}
        }
    }

    // ---- Parallel ------------------------------------------------------------

    fn start_parallel(&mut self, f: FrameId, branches: &[MachineId], input: Value) {
        self.frame_event(f, EventType::ParallelStateStarted, None, true);
        let (source, silent, vars) = {
            let fr = self.frame(f);
            (fr.cursor.source, fr.silent, fr.vars.clone())
        };
        let def = self.def.0.clone();
        let mut children = Vec::new();
        for (i, b) in branches.iter().enumerate() {
            let child = self.new_frame(Frame {
                machine: *b,
                parent: Some(f),
                slot: i,
                worker: 0,
                cursor: Cursor::after(source),
                silent,
                map_item: None,
                vars: vars.clone(),
                step: Step::Ready {
                    state: def.machine(*b).start,
                    input: input.clone(),
                },
            });
            children.push(child);
        }
        for c in children.iter().rev() {
            self.queue.push_front(Queued::Step(*c));
        }
        self.running_mut(f).wait = Waiting::Parallel {
            results: vec![None; children.len()],
            pending: children.len(),
            children,
            failed: None,
        };
    }

    /// A branch or an iteration ended (done or failed): tell its parent.
    fn frame_finished(&mut self, f: FrameId) {
        let Some(parent) = self.frame(f).parent else {
            match self.frame(f).step.clone() {
                Step::Done(output) => self.finish_execution(Status::Succeeded { output }),
                Step::Failed(failure) => self.finish_execution(Status::Failed {
                    error: failure.error,
                    cause: failure.cause,
                }),
                _ => {}
            }
            return;
        };
        let fr = self.frames[f].take().expect("a live frame");
        let outcome = match &fr.step {
            Step::Done(v) => Ok(v.clone()),
            Step::Failed(e) => Err(e.clone()),
            _ => return,
        };
        let is_parallel = matches!(&self.frame(parent).step, Step::Running(r) if matches!(r.wait, Waiting::Parallel { .. }));
        if is_parallel {
            self.frame_mut(parent).cursor.integrate(fr.cursor);
            self.branch_finished(parent, fr.slot, outcome);
        } else {
            self.job_finished(parent, fr, outcome);
        }
    }

    fn branch_finished(&mut self, p: FrameId, slot: usize, outcome: Result<Value, Failure>) {
        let done = {
            let Waiting::Parallel {
                results,
                pending,
                failed,
                ..
            } = &mut self.running_mut(p).wait
            else {
                return;
            };
            *pending -= 1;
            match outcome {
                Ok(v) => results[slot] = Some(v),
                Err(e) => {
                    if failed.is_none() {
                        *failed = Some(e);
                    }
                }
            }
            if failed.is_some() {
                Some(true)
            } else if *pending == 0 {
                Some(false)
            } else {
                None
            }
        };
        match done {
            None => {}
            Some(true) => {
                // Stop the other branches, then fail the state.
                let (children, failure) = match &mut self.running_mut(p).wait {
                    Waiting::Parallel {
                        children, failed, ..
                    } => (std::mem::take(children), failed.take()),
                    _ => return,
                };
                for c in children {
                    self.abort_frame(c, Some(p));
                }
                let failure = failure.expect("set above");
                self.handle_failure(p, failure);
            }
            Some(false) => {
                let results = match &mut self.running_mut(p).wait {
                    Waiting::Parallel { results, .. } => std::mem::take(results),
                    _ => return,
                };
                let out =
                    Value::Array(results.into_iter().map(Option::unwrap_or_default).collect());
                self.frame_event(p, EventType::ParallelStateSucceeded, None, false);
                self.finish_work(p, out);
            }
        }
    }

    /// Stops a branch or an iteration that is still running (and everything
    /// below it), integrating its numbering into `into`.
    fn abort_frame(&mut self, f: FrameId, into: Option<FrameId>) {
        let Some(fr) = self.frames.get(f).and_then(Option::as_ref) else {
            return;
        };
        let step = fr.step.clone();
        if let Step::Running(r) = step {
            match r.wait {
                Waiting::Task {
                    task,
                    timeout,
                    heartbeat,
                    ..
                } => {
                    self.tasks.remove(&task);
                    self.invocations.remove(&task);
                    self.actions.push(Action::CancelTask { task });
                    if let Some(t) = timeout {
                        self.cancel_timer(t);
                    }
                    if let Some((t, _)) = heartbeat {
                        self.cancel_timer(t);
                    }
                    self.frame_event(f, EventType::TaskStateAborted, None, true);
                }
                Waiting::Retry { timer } | Waiting::Wait { timer } => self.cancel_timer(timer),
                Waiting::Evaluating => {}
                Waiting::Parallel { children, .. } => {
                    for c in children {
                        self.abort_frame(c, Some(f));
                    }
                    self.frame_event(f, EventType::ParallelStateAborted, None, true);
                }
                Waiting::Map(run) => {
                    for w in &run.workers {
                        if let Some(j) = w.job {
                            self.abort_frame(j, Some(f));
                        }
                    }
                    self.frame_event(f, EventType::MapStateAborted, None, true);
                }
            }
        }
        if let Some(fr) = self.frames[f].take()
            && let Some(p) = into
            && let Some(parent) = self.frames.get_mut(p).and_then(Option::as_mut)
        {
            parent.cursor.integrate(fr.cursor);
        }
    }

    // ---- Map -------------------------------------------------------------------

    fn start_map(&mut self, f: FrameId, m: &MapState, effective: Value, ctx: &Value) {
        let count = |this: &Self,
                     c: &Option<Count>,
                     field: &str,
                     float: bool|
         -> Result<Option<f64>, Failure> {
            match c {
                None => Ok(None),
                Some(Count::Literal(n)) => Ok(Some(*n)),
                Some(Count::Path(p)) => {
                    let v = this.select_io(&Some(p.clone()), &effective, ctx, f)?;
                    let n = if float {
                        v.as_f64()
                    } else {
                        v.as_i64().map(|i| i as f64)
                    };
                    n.map(Some).ok_or_else(|| {
                        let shown = match &v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        Failure::runtime(format!(
                            "The {field}Path field refers to value \"{shown}\" which is not a valid {}: {}",
                            if float { "float" } else { "integer" },
                            p.as_str()
                        ))
                    })
                }
            }
        };
        let max_concurrency = match count(self, &m.max_concurrency, "MaxConcurrency", false) {
            Ok(n) => n.unwrap_or(0.0) as usize,
            Err(e) => return self.fail_frame(f, e),
        };
        let items = match &m.items_path {
            None => Ok(json!({})),
            Some(p) => self.select_io(&Some(p.clone()), &effective, ctx, f),
        };
        let items = match items {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let failure = Failure::new(
                    errors::RUNTIME,
                    format!(
                        "Invalid path '{}' : The Map state's ItemsPath must reference a JSON array, got: {}",
                        m.items_path.as_ref().map_or("null", |p| p.as_str()),
                        text(&other)
                    ),
                );
                return self.fail_frame(f, failure);
            }
            Err(e) => return self.fail_frame(f, e),
        };
        let d = vec![("length", Value::from(items.len()))];
        self.frame_event(f, EventType::MapStateStarted, Some(details(d)), true);
        let tolerated_count = match count(
            self,
            &m.tolerated_failure_count,
            "ToleratedFailureCount",
            false,
        ) {
            Ok(Some(n)) if n < 0.0 => Err(Failure::runtime(
                "ToleratedFailureCount cannot be negative.",
            )),
            Ok(n) => Ok(n.map(|n| n as u64)),
            Err(e) => Err(e),
        };
        let tolerated_percentage = match count(
            self,
            &m.tolerated_failure_percentage,
            "ToleratedFailurePercentage",
            true,
        ) {
            Ok(Some(n)) if !(0.0..=100.0).contains(&n) => Err(Failure::runtime(
                "ToleratedFailurePercentage must be between 0 and 100.",
            )),
            Ok(n) => Ok(n),
            Err(e) => Err(e),
        };
        let (tolerated_count, tolerated_percentage) = match (tolerated_count, tolerated_percentage)
        {
            (Ok(c), Ok(p)) => (c, p),
            (Err(e), _) | (_, Err(e)) => return self.fail_frame(f, e),
        };
        if m.distributed {
            let label = self.rng.uuid();
            let run_id = self.rng.uuid();
            let d = vec![(
                "mapRunArn",
                Value::from(format!(
                    "{}/{}:{}",
                    self.info
                        .state_machine_arn
                        .replacen(":stateMachine:", ":mapRun:", 1),
                    label,
                    run_id
                )),
            )];
            self.frame_event(f, EventType::MapRunStarted, Some(details(d)), true);
        }
        let n = items.len();
        let workers = if max_concurrency == 0 {
            n
        } else {
            max_concurrency.min(n)
        };
        let source = self.frame(f).cursor.source;
        let run = MapRun {
            input: effective,
            results: vec![None; n],
            items,
            next: 0,
            workers: (0..workers)
                .map(|_| Worker {
                    cursor: Cursor::after(source),
                    job: None,
                    closed: false,
                })
                .collect(),
            finished: 0,
            failures: 0,
            tolerated_count,
            tolerated_percentage,
            failed: None,
        };
        self.running_mut(f).wait = Waiting::Map(Box::new(run));
        if n == 0 {
            return self.map_done(f);
        }
        for w in (0..workers).rev() {
            self.queue
                .push_front(Queued::StartJob { map: f, worker: w });
        }
    }

    fn map_run(&mut self, f: FrameId) -> Option<&mut MapRun> {
        match &mut self.frames.get_mut(f)?.as_mut()?.step {
            Step::Running(r) => match &mut r.wait {
                Waiting::Map(run) => Some(run),
                _ => None,
            },
            _ => None,
        }
    }

    fn start_job(&mut self, map: FrameId, worker: usize) {
        let def = self.def.0.clone();
        let Some(run) = self.map_run(map) else { return };
        if run.failed.is_some() || run.next >= run.items.len() {
            return;
        }
        let index = run.next;
        run.next += 1;
        let item = run.items[index].clone();
        let map_input = run.input.clone();
        let cursor = Cursor::after(run.workers[worker].cursor.source);
        let (machine, sid) = (
            self.frame(map).machine,
            match &self.frame(map).step {
                Step::Running(r) => r.state,
                _ => return,
            },
        );
        let state = def.state(machine, sid);
        let Kind::Map(m) = &state.kind else { return };
        let (silent, vars) = {
            let fr = self.frame(map);
            (fr.silent || m.distributed, fr.vars.clone())
        };
        let job = self.new_frame(Frame {
            machine: m.processor,
            parent: Some(map),
            slot: index,
            worker,
            cursor,
            silent,
            map_item: Some((index, item.clone())),
            vars,
            step: Step::Aborted,
        });
        if let Some(run) = self.map_run(map) {
            run.workers[worker].job = Some(job);
        }
        let d = vec![
            ("index", Value::from(index)),
            ("name", Value::from(state.name.clone())),
        ];
        self.frame_event(job, EventType::MapIterationStarted, Some(details(d)), true);
        let input = match &m.item_selector {
            None => Ok(item),
            Some(t) => {
                let mut ctx = self.context(map, &state.name, self.now, None);
                ctx["Map"] = json!({"Item": {"Index": index, "Value": item}});
                self.eval_template(job, t, &map_input, &ctx)
            }
        };
        match input {
            Ok(input) => {
                self.frame_mut(job).step = Step::Ready {
                    state: def.machine(m.processor).start,
                    input,
                };
            }
            Err(e) => self.frame_mut(job).step = Step::Failed(e),
        }
        self.queue.push_front(Queued::Step(job));
    }

    fn job_finished(&mut self, map: FrameId, job: Frame, outcome: Result<Value, Failure>) {
        let def = self.def.0.clone();
        let Step::Running(r) = &self.frame(map).step else {
            return;
        };
        let state = def.state(self.frame(map).machine, r.state);
        let distributed = matches!(&state.kind, Kind::Map(m) if m.distributed);
        let (index, worker) = (job.slot, job.worker);
        let mut job_cursor = job.cursor;
        let ev = if outcome.is_ok() {
            EventType::MapIterationSucceeded
        } else {
            EventType::MapIterationFailed
        };
        let d = vec![
            ("index", Value::from(index)),
            ("name", Value::from(state.name.clone())),
        ];
        self.event(&mut job_cursor, job.silent, ev, Some(details(d)), false);
        let Some(run) = self.map_run(map) else { return };
        let n = run.items.len();
        run.workers[worker].cursor.integrate(job_cursor);
        run.workers[worker].job = None;
        run.finished += 1;
        match outcome {
            Ok(v) => run.results[index] = Some(v),
            Err(e) => {
                run.failures += 1;
                let tolerated = distributed && {
                    let by_count = run
                        .tolerated_count
                        .is_some_and(|c| run.failures as u64 <= c);
                    let by_pct = run
                        .tolerated_percentage
                        .is_some_and(|p| (run.failures as f64) * 100.0 / (n as f64) <= p);
                    by_count || by_pct
                };
                if tolerated {
                    run.results[index] = Some(json!({"Error": e.error, "Cause": e.cause}));
                } else if distributed {
                    run.failed = Some(Failure::new(
                        errors::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                        "The specified tolerated failure threshold was exceeded",
                    ));
                } else {
                    run.failed = Some(e);
                }
            }
        }
        if let Some(failure) = run.failed.clone() {
            run.workers[worker].closed = true;
            let wc = run.workers[worker].cursor;
            let others: Vec<FrameId> = run.workers.iter().filter_map(|w| w.job).collect();
            for w in run.workers.iter_mut() {
                w.job = None;
            }
            self.frame_mut(map).cursor.integrate(wc);
            for j in others {
                self.abort_frame(j, Some(map));
            }
            if distributed {
                self.frame_event(map, EventType::MapRunFailed, None, true);
            }
            return self.handle_failure(map, failure);
        }
        if run.next < n {
            self.queue.push_front(Queued::StartJob { map, worker });
            return;
        }
        run.workers[worker].cursor.source = job_cursor.last;
        run.workers[worker].closed = true;
        let wc = run.workers[worker].cursor;
        let all_done = run.finished == n;
        self.frame_mut(map).cursor.integrate(wc);
        if all_done {
            self.map_done(map);
        }
    }

    fn map_done(&mut self, map: FrameId) {
        let def = self.def.0.clone();
        let Step::Running(r) = &self.frame(map).step else {
            return;
        };
        let distributed = matches!(&def.state(self.frame(map).machine, r.state).kind, Kind::Map(m) if m.distributed);
        let Some(run) = self.map_run(map) else { return };
        let results = Value::Array(
            std::mem::take(&mut run.results)
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
        );
        if distributed {
            self.frame_event(map, EventType::MapRunSucceeded, None, true);
        }
        self.frame_event(map, EventType::MapStateSucceeded, None, false);
        self.finish_work(map, results);
    }
}
