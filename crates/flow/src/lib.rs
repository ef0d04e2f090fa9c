//! Workflows: Step Functions executions, durable (Standard) or in memory (Express).
//!
//! The `asl` crate is the interpreter, a pure state machine; this crate gives it a life: each
//! running execution is one task (an actor) that owns its [`muon_asl::Execution`], takes the
//! inputs that arrive for it (task results, timers, stops, task-token callbacks), applies
//! them, and carries out the actions the interpreter returns — tasks through [`Dispatch`],
//! timers on the Tokio clock.
//!
//! Durability (Standard executions): every input applied is a *step*, committed to the store
//! with the history events it appended ([`muon_store::Op::Step`]) before any action it caused
//! is carried out. The store refuses a step number recorded twice, so an execution cannot fork.
//! After a restart, [`Flows::start`] rebuilds each running execution by replaying its steps
//! ([`muon_asl::Execution::replay`]: deterministic, the seed is stored), re-arms its timers
//! and dispatches its pending tasks again with the same idempotency keys. Nothing is lost and
//! no transition is repeated; a task may run twice (at least once), which its idempotency key
//! lets the function detect. Concurrent executions commit concurrently, so the store's single
//! writer groups their steps into shared disk syncs (group commit).
//!
//! Express executions take the same path without the store: fast, at most once, gone with the
//! process; the last ones that ended are kept in memory to be described.
//!
//! Design decision: the crate knows resources (`muon:function:NAME`, Lambda ARNs,
//! `arn:aws:states:::lambda:invoke`, `events:putEvents`, `states:startExecution`, `http:invoke`)
//! and how their answers become task results ([`task`]); the binary implements [`Dispatch`] to
//! reach functions, buses and HTTP endpoints, so this crate depends on no runtime and no bus.
//!
//! It must never carry out an action before the step that caused it is committed, and never
//! answer a start before the execution is committed.

mod machines;
mod run;
pub mod task;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use muon_asl::{Definition, Execution, ExecutionInfo, MAX_PAYLOAD_BYTES};
use muon_store::{ExecutionQuery, ExecutionRecord, Store};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

pub use machines::{Kind, Machine, Origin};
pub use task::{Answer, Dispatch, DispatchError, FunctionCall, HttpCall};

/// How many ended Express executions are kept to be described.
const RECENT_EXPRESS: usize = 1000;

/// A workflow declared by the app (`[[workflow]]` in muon.toml).
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    /// The definition, Amazon States Language JSON text.
    pub definition: String,
    pub kind: Kind,
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub workflows: Vec<Workflow>,
    /// The account and region ARNs name.
    pub account: String,
    pub region: String,
    /// The role executions show (`roleArn`); nothing checks it.
    pub role_arn: String,
    /// Most executions running at once, and most bytes of input they may hold together (each
    /// running execution lives in memory): past either, a start is refused with
    /// `ExecutionLimitExceeded`. Executions resumed at start are never refused.
    pub max_running: usize,
    pub max_running_input_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            workflows: Vec::new(),
            account: "000000000000".into(),
            region: "us-east-1".into(),
            role_arn: "arn:aws:iam::000000000000:role/muon".into(),
            max_running: 100_000,
            max_running_input_bytes: 256 << 20,
        }
    }
}

/// Why a request was refused; [`Error::aws_code`] names it as Step Functions does.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] muon_store::Error),
    #[error("{0}")]
    InvalidDefinition(String),
    #[error("Invalid Name: '{0}' ({1})")]
    InvalidName(String, &'static str),
    #[error("Invalid Arn: '{0}'")]
    InvalidArn(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("State Machine Does Not Exist: '{0}'")]
    NoSuchMachine(String),
    #[error("State Machine Already Exists: '{0}'")]
    MachineExists(String),
    #[error("State machine {0} is declared in muon.toml: change it there.")]
    ManifestMachine(String),
    #[error("Execution Does Not Exist: '{0}'")]
    NoSuchExecution(String),
    #[error("Execution Already Exists: '{0}'")]
    ExecutionExists(String),
    #[error("Invalid Token: {0}")]
    InvalidToken(String),
    #[error("Task Does Not Exist: the task of this token is no longer waiting")]
    TaskDoesNotExist,
    #[error("{0}")]
    Unsupported(String),
    #[error("the workflow engine is shutting down")]
    Closed,
    #[error("Execution Limit Exceeded: {0}; try again once some have ended")]
    ExecutionLimitExceeded(String),
    /// A state machine in the store cannot be read back: muon does not start over a store it
    /// cannot read whole (as for stored rules and archives), rather than drop the record.
    #[error(
        "stored state machine {0} cannot be read: {1}. muon does not start over a store it cannot read whole: start the muon version that stored it and delete the state machine, or delete the record itself (sqlite3 muon.db \"DELETE FROM state_machines WHERE name = '{0}'\")"
    )]
    BadStoredMachine(String, String),
}

impl Error {
    /// The AWS error name this error is reported with.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Error::Store(_) | Error::Closed | Error::BadStoredMachine(..) => "ServiceUnavailable",
            Error::InvalidDefinition(_) => "InvalidDefinition",
            Error::InvalidName(..) => "InvalidName",
            Error::InvalidArn(_) => "InvalidArn",
            Error::InvalidInput(_) => "InvalidExecutionInput",
            Error::NoSuchMachine(_) => "StateMachineDoesNotExist",
            Error::MachineExists(_) => "StateMachineAlreadyExists",
            Error::ManifestMachine(_) => "ValidationException",
            Error::NoSuchExecution(_) => "ExecutionDoesNotExist",
            Error::ExecutionExists(_) => "ExecutionAlreadyExists",
            Error::InvalidToken(_) => "InvalidToken",
            Error::TaskDoesNotExist => "TaskDoesNotExist",
            Error::Unsupported(_) => "ValidationException",
            Error::ExecutionLimitExceeded(_) => "ExecutionLimitExceeded",
        }
    }

    /// Whether the caller is at fault (HTTP 400) rather than the service (500).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Error::Store(_) | Error::Closed)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A request to start an execution.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    /// The state machine: its name or ARN.
    pub machine: String,
    /// The execution's name (default: a new UUID). Starting a Standard execution with the name
    /// of a running one and the same input returns that one.
    pub name: Option<String>,
    /// JSON text (default `{}`).
    pub input: Option<String>,
}

/// A started execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub arn: String,
    pub start_ms: i64,
}

/// Where an execution stands, as `DescribeExecution` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    pub arn: String,
    pub machine_arn: String,
    pub machine: String,
    pub name: String,
    pub kind: Kind,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    /// JSON text.
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Description {
    pub fn is_running(&self) -> bool {
        self.status == "RUNNING"
    }
}

/// What a task-token callback reports.
#[derive(Debug, Clone)]
pub enum Callback {
    /// `SendTaskSuccess`: the task's result, JSON text.
    Success(String),
    /// `SendTaskFailure`.
    Failure {
        error: Option<String>,
        cause: Option<String>,
    },
    /// `SendTaskHeartbeat`.
    Heartbeat,
}

/// The running workflow engine. Cheap to clone.
#[derive(Clone)]
pub struct Flows {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    dispatch: Arc<dyn Dispatch>,
    machines: machines::Table,
    /// Running executions by ARN.
    live: Mutex<LiveTable>,
    /// Express executions that ended, newest last.
    recent: Mutex<VecDeque<Arc<Recent>>>,
}

/// A running execution: how to reach its actor.
/// The running executions by ARN, with the bytes of input they hold.
#[derive(Default)]
pub(crate) struct LiveTable {
    map: HashMap<String, Live>,
    input_bytes: usize,
}

impl LiveTable {
    pub(crate) fn get(&self, arn: &str) -> Option<&Live> {
        self.map.get(arn)
    }

    fn values(&self) -> impl Iterator<Item = &Live> {
        self.map.values()
    }

    pub(crate) fn insert(&mut self, arn: String, live: Live) {
        self.input_bytes += live.input.len();
        if let Some(old) = self.map.insert(arn, live) {
            self.input_bytes -= old.input.len();
        }
    }

    pub(crate) fn remove(&mut self, arn: &str) -> Option<Live> {
        let live = self.map.remove(arn)?;
        self.input_bytes -= live.input.len();
        Some(live)
    }

    /// Why one more execution with `input_bytes` of input may not start, if it may not.
    fn full(&self, config: &Config, input_bytes: usize) -> Option<String> {
        if self.map.len() >= config.max_running {
            Some(format!(
                "{} executions are running, the most muon runs at once",
                self.map.len()
            ))
        } else if self.input_bytes + input_bytes > config.max_running_input_bytes {
            Some(format!(
                "the running executions hold {} bytes of input, and this one would pass the {} they may hold together",
                self.input_bytes, config.max_running_input_bytes
            ))
        } else {
            None
        }
    }
}

pub(crate) struct Live {
    inbox: mpsc::UnboundedSender<run::Msg>,
    /// The input it started with (a second start with the same name must bring the same).
    input: Arc<str>,
    start_ms: i64,
    /// Set once it ended.
    done: watch::Receiver<Option<Arc<Description>>>,
    /// For Express executions, which the store does not know.
    express: Option<Arc<Description>>,
}

/// An ended Express execution.
struct Recent {
    description: Arc<Description>,
    execution: Execution,
}

impl Flows {
    /// Load the API state machines, resume every running execution found in `store`, and
    /// start taking requests.
    pub async fn start(
        config: Config,
        store: Arc<dyn Store>,
        dispatch: Arc<dyn Dispatch>,
    ) -> Result<Flows> {
        let machines = machines::Table::new(&config)?;
        for record in store.state_machines().await? {
            machines.load(&config, record)?;
        }
        let flows = Flows {
            inner: Arc::new(Inner {
                config,
                store,
                dispatch,
                machines,
                live: Mutex::new(LiveTable::default()),
                recent: Mutex::new(VecDeque::new()),
            }),
        };
        let resumed = flows.resume().await?;
        if resumed > 0 {
            tracing::info!("resumed {resumed} running workflow execution(s)");
        }
        Ok(flows)
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Every state machine, by name.
    pub fn machines(&self) -> Vec<Arc<Machine>> {
        self.inner.machines.all()
    }

    /// The state machine with this name or ARN.
    pub fn machine(&self, name_or_arn: &str) -> Result<Arc<Machine>> {
        self.inner.machine(name_or_arn)
    }

    /// Create a state machine (`CreateStateMachine`). Creating one that exists with the same
    /// definition and type returns it; with another, it is an error.
    pub async fn create_machine(
        &self,
        name: &str,
        definition: &str,
        kind: Kind,
    ) -> Result<Arc<Machine>> {
        let machine = self
            .inner
            .machines
            .prepare(&self.inner.config, name, definition, kind)?;
        if let Some(existing) = self.inner.machines.get(name) {
            if existing.origin == Origin::Manifest {
                return Err(Error::ManifestMachine(name.to_owned()));
            }
            if existing.definition_text == machine.definition_text && existing.kind == kind {
                return Ok(existing);
            }
            return Err(Error::MachineExists(existing.arn.clone()));
        }
        self.put_machine(machine).await
    }

    /// Replace an API state machine's definition or type (`UpdateStateMachine`); running
    /// executions keep the definition they started with.
    pub async fn update_machine(
        &self,
        name_or_arn: &str,
        definition: Option<&str>,
        kind: Option<Kind>,
    ) -> Result<Arc<Machine>> {
        let existing = self.inner.machine(name_or_arn)?;
        if existing.origin == Origin::Manifest {
            return Err(Error::ManifestMachine(existing.name.clone()));
        }
        let machine = self.inner.machines.prepare(
            &self.inner.config,
            &existing.name,
            definition.unwrap_or(&existing.definition_text),
            kind.unwrap_or(existing.kind),
        )?;
        self.put_machine(machine).await
    }

    async fn put_machine(&self, machine: Machine) -> Result<Arc<Machine>> {
        let mut tx = muon_store::Transaction::new();
        tx.push(muon_store::Op::PutStateMachine(machine.record()));
        self.inner.store.commit(tx).await?;
        Ok(self.inner.machines.insert(machine))
    }

    /// Delete an API state machine (`DeleteStateMachine`); its running executions go on.
    pub async fn delete_machine(&self, name_or_arn: &str) -> Result<()> {
        let machine = self.inner.machine(name_or_arn)?;
        if machine.origin == Origin::Manifest {
            return Err(Error::ManifestMachine(machine.name.clone()));
        }
        let mut tx = muon_store::Transaction::new();
        tx.push(muon_store::Op::DeleteStateMachine {
            name: machine.name.clone(),
        });
        self.inner.store.commit(tx).await?;
        self.inner.machines.remove(&machine.name);
        Ok(())
    }

    /// Start an execution (`StartExecution`). A Standard execution is committed before this
    /// returns.
    /// The start runs in a task of its own, so a caller that goes away cannot strand an
    /// execution that was committed but not yet set going.
    pub async fn start_execution(&self, request: StartRequest) -> Result<Started> {
        let inner = self.inner.clone();
        tokio::spawn(async move { Inner::start_execution(&inner, request).await })
            .await
            .map_err(|e| {
                Error::Store(muon_store::Error::Backend(format!("the start failed: {e}")))
            })?
    }

    /// Start an execution and wait for its end (`StartSyncExecution` for Express; for
    /// Standard, a start followed by [`Flows::wait`]).
    pub async fn start_sync(&self, request: StartRequest) -> Result<Arc<Description>> {
        let started = self.start_execution(request).await?;
        self.wait(&started.arn).await
    }

    /// Where an execution stands (`DescribeExecution`). Executions are named by ARN, or
    /// Standard ones by `MACHINE/NAME`, here and in every method below.
    pub async fn describe(&self, arn: &str) -> Result<Arc<Description>> {
        let arn = &self.inner.resolve(arn);
        self.inner.describe(arn).await
    }

    /// Wait until an execution ends, and describe it.
    pub async fn wait(&self, arn: &str) -> Result<Arc<Description>> {
        let arn = &self.inner.resolve(arn);
        let done = self
            .inner
            .live
            .lock()
            .expect("lock")
            .get(arn)
            .map(|l| l.done.clone());
        if let Some(mut done) = done {
            let ended = done
                .wait_for(Option::is_some)
                .await
                .map(|d| d.clone())
                .ok()
                .flatten();
            if let Some(d) = ended {
                return Ok(d);
            }
        }
        self.inner.describe(arn).await
    }

    /// Executions, newest first (`ListExecutions`): Standard ones from the store, then the
    /// running and recently ended Express ones.
    pub async fn list(
        &self,
        machine: Option<&str>,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Arc<Description>>> {
        let machine = match machine {
            Some(m) => Some(self.inner.machine(m)?.name.clone()),
            None => None,
        };
        let records = self
            .inner
            .store
            .executions(ExecutionQuery {
                machine: machine.clone(),
                status: status.map(str::to_owned),
                limit,
            })
            .await?;
        let mut found: Vec<Arc<Description>> = records
            .iter()
            .map(|r| Arc::new(self.inner.describe_record(r)))
            .collect();
        let wanted = |d: &Description| {
            machine.as_ref().is_none_or(|m| &d.machine == m) && status.is_none_or(|s| d.status == s)
        };
        let live: Vec<Arc<Description>> = self
            .inner
            .live
            .lock()
            .expect("lock")
            .values()
            .filter_map(|l| l.express.clone())
            .filter(|d| wanted(d))
            .collect();
        found.extend(live);
        let recent: Vec<Arc<Description>> = self
            .inner
            .recent
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .map(|r| r.description.clone())
            .filter(|d| wanted(d))
            .collect();
        found.extend(recent);
        found.sort_by_key(|d| std::cmp::Reverse(d.start_ms));
        found.truncate(limit);
        Ok(found)
    }

    /// An execution's history events with `id > after` (`GetExecutionHistory`), at most `limit`.
    pub async fn history(&self, arn: &str, after: u64, limit: usize) -> Result<Vec<Value>> {
        let arn = &self.inner.resolve(arn);
        if let Some(recent) = self.inner.recent_express(arn) {
            return Ok(recent
                .execution
                .history()
                .iter()
                .filter(|e| e.id > after)
                .take(limit)
                .map(muon_asl::HistoryEvent::to_aws_json)
                .collect());
        }
        let live_express = self
            .inner
            .live
            .lock()
            .expect("lock")
            .get(arn)
            .is_some_and(|l| l.express.is_some());
        if live_express {
            let (reply, answer) = oneshot::channel();
            self.inner.send(
                arn,
                run::Msg::History {
                    after,
                    limit,
                    reply,
                },
            )?;
            return answer
                .await
                .map_err(|_| Error::NoSuchExecution(arn.to_owned()));
        }
        let records = self.inner.store.history(arn, after, limit).await?;
        // An empty page is either the end of a history or no execution at all.
        if records.is_empty() && self.inner.store.execution(arn).await?.is_none() {
            return Err(Error::NoSuchExecution(arn.to_owned()));
        }
        records
            .into_iter()
            .map(|h| {
                serde_json::from_str(&h.json).map_err(|e| {
                    Error::Store(muon_store::Error::Backend(format!(
                        "history event {} of {arn} cannot be read: {e}",
                        h.id
                    )))
                })
            })
            .collect()
    }

    /// Stop a running execution (`StopExecution`); returns when it stopped (epoch ms).
    pub async fn stop(
        &self,
        arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<i64> {
        let arn = &self.inner.resolve(arn);
        let (reply, answer) = oneshot::channel();
        match self.inner.send(
            arn,
            run::Msg::Stop {
                error,
                cause,
                reply,
            },
        ) {
            Ok(()) => answer
                .await
                .map_err(|_| Error::NoSuchExecution(arn.to_owned()))?,
            Err(Error::NoSuchExecution(_)) => {
                // Stopping an execution that already ended changes nothing.
                let d = self.inner.describe(arn).await?;
                Ok(d.stop_ms.unwrap_or(d.start_ms))
            }
            Err(e) => Err(e),
        }
    }

    /// `SendTaskSuccess`, `SendTaskFailure` or `SendTaskHeartbeat` for a `.waitForTaskToken`
    /// task.
    pub async fn callback(&self, token: &str, callback: Callback) -> Result<()> {
        let arn = token_execution(token)?;
        let (reply, answer) = oneshot::channel();
        match self.inner.send(
            arn,
            run::Msg::Callback {
                token: token.to_owned(),
                callback,
                reply,
            },
        ) {
            Ok(()) => answer.await.map_err(|_| Error::TaskDoesNotExist)?,
            Err(Error::NoSuchExecution(_)) => Err(Error::TaskDoesNotExist),
            Err(e) => Err(e),
        }
    }

    /// Rebuild and restart every running Standard execution of the store.
    async fn resume(&self) -> Result<usize> {
        let running = self
            .inner
            .store
            .executions(ExecutionQuery {
                machine: None,
                status: Some("RUNNING".into()),
                limit: usize::MAX >> 1,
            })
            .await?;
        let count = running.len();
        // An execution resumed this many times in a row, each ended by muon stopping uncleanly
        // with no step of it in between, is ended instead: it may be what crashes muon.
        let (crashing, resumable): (Vec<_>, Vec<_>) = running
            .into_iter()
            .partition(|r| r.resumes >= MAX_RESUMES_WITHOUT_PROGRESS);
        for record in &crashing {
            if let Err(e) = Inner::abort_crashing(&self.inner, record).await {
                tracing::error!("cannot end execution {}: {e}", record.arn);
            }
        }
        // Counted before anything runs: if this start crashes too, the next one knows.
        let mut tx = muon_store::Transaction::new();
        for r in &resumable {
            tx.push(muon_store::Op::SetResumes {
                execution: r.arn.clone(),
                resumes: r.resumes + 1,
            });
        }
        if !tx.is_empty() {
            self.inner.store.commit(tx).await?;
        }
        for record in resumable {
            if let Err(e) = Inner::resume_one(&self.inner, &record, true).await {
                tracing::error!("cannot resume execution {}: {e}", record.arn);
            }
        }
        Ok(count)
    }

    /// A clean shutdown: the running executions were not stopped by a crash, so none of them
    /// counts this stop against being resumed (see [`MAX_RESUMES_WITHOUT_PROGRESS`]).
    pub async fn shutdown(&self) -> Result<()> {
        let mut tx = muon_store::Transaction::new();
        tx.push(muon_store::Op::ClearResumes);
        self.inner.store.commit(tx).await?;
        Ok(())
    }
}

/// 128 random bits for an execution's task tokens (never 0, which means the old form).
fn token_secret() -> Result<u128> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Store(muon_store::Error::Backend(format!("no randomness: {e}"))))?;
    Ok(u128::from_le_bytes(bytes).max(1))
}

/// How many starts in a row may resume an execution that then made no progress before muon
/// stopped uncleanly again; at the next start it is ended (ABORTED, `muon.HostCrashed`).
pub const MAX_RESUMES_WITHOUT_PROGRESS: u32 = 3;

/// The execution ARN a task token belongs to: tokens are `<execution ARN>#<state entry>#<attempt>#<MAC>`
/// (the MAC is what makes them unguessable: the execution checks the whole token).
fn token_execution(token: &str) -> Result<&str> {
    let invalid = || Error::InvalidToken("this is not a task token muon issued".into());
    if token.len() > 1024 || token.split('#').count() != 4 {
        return Err(invalid());
    }
    let arn = token.split('#').next().ok_or_else(invalid)?;
    if !arn.starts_with("arn:aws:states:") {
        return Err(invalid());
    }
    Ok(arn)
}

/// What the engine stores besides the definition and input, to rebuild an execution.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    info: ExecutionInfo,
}

impl Inner {
    /// An execution's ARN from its ARN or `MACHINE/NAME` (a Standard execution).
    fn resolve(&self, id: &str) -> String {
        match id.split_once('/') {
            Some((machine, name)) if !id.starts_with("arn:") => format!(
                "arn:aws:states:{}:{}:execution:{machine}:{name}",
                self.config.region, self.config.account
            ),
            _ => id.to_owned(),
        }
    }

    fn machine(&self, name_or_arn: &str) -> Result<Arc<Machine>> {
        let name = match name_or_arn.strip_prefix("arn:") {
            Some(_) => {
                let parts: Vec<&str> = name_or_arn.split(':').collect();
                match parts.as_slice() {
                    ["arn", _, "states", _, _, "stateMachine", name] => *name,
                    _ => return Err(Error::InvalidArn(name_or_arn.to_owned())),
                }
            }
            None => name_or_arn,
        };
        self.machines
            .get(name)
            .ok_or_else(|| Error::NoSuchMachine(self.machines.arn(&self.config, name)))
    }

    fn send(&self, arn: &str, msg: run::Msg) -> Result<()> {
        let live = self.live.lock().expect("lock");
        let l = live
            .get(arn)
            .ok_or_else(|| Error::NoSuchExecution(arn.to_owned()))?;
        l.inbox
            .send(msg)
            .map_err(|_| Error::NoSuchExecution(arn.to_owned()))
    }

    fn recent_express(&self, arn: &str) -> Option<Arc<Recent>> {
        self.recent
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .find(|r| r.description.arn == arn)
            .cloned()
    }

    async fn describe(&self, arn: &str) -> Result<Arc<Description>> {
        let express = self
            .live
            .lock()
            .expect("lock")
            .get(arn)
            .and_then(|l| l.express.clone());
        if let Some(d) = express {
            return Ok(d);
        }
        if let Some(r) = self.recent_express(arn) {
            return Ok(r.description.clone());
        }
        if !arn.starts_with("arn:") {
            return Err(Error::InvalidArn(arn.to_owned()));
        }
        match self.store.execution(arn).await? {
            Some(record) => Ok(Arc::new(self.describe_record(&record))),
            None => Err(Error::NoSuchExecution(arn.to_owned())),
        }
    }

    fn describe_record(&self, r: &ExecutionRecord) -> Description {
        Description {
            arn: r.arn.clone(),
            machine_arn: self.machines.arn(&self.config, &r.machine),
            machine: r.machine.clone(),
            name: r.name.clone(),
            kind: Kind::Standard,
            status: r.status.clone(),
            start_ms: r.start_ms,
            stop_ms: r.stop_ms,
            input: r.input.clone(),
            output: r.output.clone(),
            error: r.error.clone(),
            cause: r.cause.clone(),
        }
    }

    async fn start_execution(this: &Arc<Inner>, request: StartRequest) -> Result<Started> {
        let machine = this.machine(&request.machine)?;
        let input_text = request.input.unwrap_or_else(|| "{}".to_owned());
        if input_text.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::InvalidInput(format!(
                "the input has {} bytes; an execution's input may have at most {MAX_PAYLOAD_BYTES}",
                input_text.len()
            )));
        }
        let input: Value = serde_json::from_str(&input_text)
            .map_err(|e| Error::InvalidInput(format!("the input is not valid JSON: {e}")))?;
        let name = match request.name {
            Some(name) => {
                check_name(&name)?;
                name
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let (arn, express) = match machine.kind {
            Kind::Standard => (
                format!(
                    "arn:aws:states:{}:{}:execution:{}:{name}",
                    this.config.region, this.config.account, machine.name
                ),
                false,
            ),
            Kind::Express => (
                format!(
                    "arn:aws:states:{}:{}:express:{}:{name}:{}",
                    this.config.region,
                    this.config.account,
                    machine.name,
                    uuid::Uuid::new_v4()
                ),
                true,
            ),
        };
        let input_text: Arc<str> = Arc::from(input_text);
        // Reserve the name: a second start with it waits for nothing and answers from here.
        let (done_tx, done_rx) = watch::channel(None);
        let (inbox, messages) = mpsc::unbounded_channel();
        let now = now_ms();
        {
            let mut live = this.live.lock().expect("lock");
            if let Some(l) = live.get(&arn) {
                return if l.input == input_text {
                    Ok(Started {
                        arn,
                        start_ms: l.start_ms,
                    })
                } else {
                    Err(Error::ExecutionExists(arn))
                };
            }
            if let Some(why) = live.full(&this.config, input_text.len()) {
                return Err(Error::ExecutionLimitExceeded(why));
            }
            live.insert(
                arn.clone(),
                Live {
                    inbox: inbox.clone(),
                    input: input_text.clone(),
                    start_ms: now,
                    done: done_rx,
                    express: express.then(|| {
                        Arc::new(Description {
                            arn: arn.clone(),
                            machine_arn: machine.arn.clone(),
                            machine: machine.name.clone(),
                            name: name.clone(),
                            kind: Kind::Express,
                            status: "RUNNING".into(),
                            start_ms: now,
                            stop_ms: None,
                            input: input_text.to_string(),
                            output: None,
                            error: None,
                            cause: None,
                        })
                    }),
                },
            );
        }
        let unreserve = || {
            this.live.lock().expect("lock").remove(&arn);
        };
        let info = ExecutionInfo {
            execution_arn: arn.clone(),
            name: name.clone(),
            state_machine_arn: machine.arn.clone(),
            state_machine_name: machine.name.clone(),
            role_arn: this.config.role_arn.clone(),
            region: this.config.region.clone(),
            redrive_count: 0,
            seed: uuid::Uuid::new_v4().as_u128() as u64,
            token_secret: token_secret()?,
            max_duration_ms: (!express).then_some(muon_asl::MAX_STANDARD_DURATION_MS),
        };
        if !express {
            match this.store.execution(&arn).await {
                Ok(None) => {}
                Ok(Some(_)) => {
                    unreserve();
                    return Err(Error::ExecutionExists(arn));
                }
                Err(e) => {
                    unreserve();
                    return Err(e.into());
                }
            }
        }
        let (exe, actions) = Execution::start(machine.definition.clone(), info.clone(), input, now);
        if !express {
            // An execution of Pass, Choice and Succeed states ends as it starts.
            let end = run::end_of(&exe, now);
            let mut tx = muon_store::Transaction::new();
            tx.push(muon_store::Op::StartExecution {
                execution: ExecutionRecord {
                    arn: arn.clone(),
                    machine: machine.name.clone(),
                    name,
                    status: end
                        .as_ref()
                        .map_or_else(|| "RUNNING".to_owned(), |e| e.status.clone()),
                    start_ms: now,
                    stop_ms: end.as_ref().map(|e| e.stop_ms),
                    input: input_text.to_string(),
                    output: end.as_ref().and_then(|e| e.output.clone()),
                    error: end.as_ref().and_then(|e| e.error.clone()),
                    cause: end.as_ref().and_then(|e| e.cause.clone()),
                    definition: machine.definition_text.clone(),
                    resumes: 0,
                    info: serde_json::to_string(&Stored { info }).expect("JSON serializes"),
                },
                history: run::history_records(exe.history(), 0),
            });
            if let Err(e) = this.store.commit(tx).await {
                unreserve();
                return Err(match e {
                    muon_store::Error::Conflict(_) => Error::ExecutionExists(arn),
                    e => e.into(),
                });
            }
        }
        run::spawn(
            this,
            run::Actor::new(
                Arc::downgrade(this),
                arn.clone(),
                exe,
                express,
                inbox,
                done_tx,
            ),
            messages,
            actions,
        );
        Ok(Started { arn, start_ms: now })
    }

    /// Rebuilds a stored execution by replaying its steps, checked against its stored history.
    /// Returns it and how many steps it has.
    async fn rebuild(this: &Arc<Inner>, record: &ExecutionRecord) -> Result<(Execution, u64)> {
        let broken = |what: String| {
            Error::Store(muon_store::Error::Backend(format!(
                "execution {} cannot be rebuilt: {what}",
                record.arn
            )))
        };
        let definition = Definition::parse(&record.definition)
            .map_err(|e| broken(format!("its definition: {e}")))?;
        let stored: Stored =
            serde_json::from_str(&record.info).map_err(|e| broken(format!("its info: {e}")))?;
        let input: Value =
            serde_json::from_str(&record.input).map_err(|e| broken(format!("its input: {e}")))?;
        let steps = this.store.steps(&record.arn).await?;
        let mut inputs = Vec::with_capacity(steps.len());
        for s in &steps {
            let applied: muon_asl::Input = serde_json::from_str(&s.input)
                .map_err(|e| broken(format!("step {}: {e}", s.seq)))?;
            inputs.push((s.at_ms, applied));
        }
        let exe = Execution::replay(
            Arc::new(definition),
            stored.info,
            input,
            record.start_ms,
            inputs,
        );
        let recorded = this
            .store
            .history(&record.arn, exe.history().len() as u64, 1)
            .await?;
        if !recorded.is_empty() {
            return Err(broken(format!(
                "the store has more history events than its {} steps replay to ({})",
                steps.len(),
                exe.history().len()
            )));
        }
        Ok((exe, steps.len() as u64))
    }

    /// Ends a running execution that kept crashing its host instead of resuming it: replayed,
    /// then stopped (ABORTED, error `muon.HostCrashed`), without carrying out any of its actions.
    async fn abort_crashing(this: &Arc<Inner>, record: &ExecutionRecord) -> Result<()> {
        let (mut exe, steps) = Inner::rebuild(this, record).await?;
        let now = now_ms();
        let before = exe.history().len();
        let stop = muon_asl::Input::Stop {
            error: Some("muon.HostCrashed".into()),
            cause: Some(format!(
                "muon stopped {} times in a row without shutting down cleanly while this execution was running, and it made no progress in between: it may be what stops muon, so it was not resumed again",
                record.resumes
            )),
        };
        let text = serde_json::to_string(&stop).expect("an input serializes");
        exe.apply(now, stop);
        let mut tx = muon_store::Transaction::new();
        tx.push(muon_store::Op::Step {
            execution: record.arn.clone(),
            step: muon_store::StepRecord {
                seq: steps + 1,
                at_ms: now,
                input: text,
            },
            history: run::history_records(exe.history(), before),
            end: run::end_of(&exe, now),
        });
        tx.push(muon_store::Op::SetResumes {
            execution: record.arn.clone(),
            resumes: 0,
        });
        this.store.commit(tx).await?;
        tracing::error!(
            "execution {} was not resumed: muon stopped {} times in a row while it ran without progress; it is ABORTED",
            record.arn,
            record.resumes
        );
        Ok(())
    }

    /// Rebuilds a stored execution and sets it going again: its pending tasks are dispatched
    /// again and its timers armed. `after_start` says it is resumed as muon starts (its first
    /// step then clears its count of resumes without progress).
    async fn resume_one(
        this: &Arc<Inner>,
        record: &ExecutionRecord,
        after_start: bool,
    ) -> Result<()> {
        let (exe, steps) = Inner::rebuild(this, record).await?;
        let (inbox, messages) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = watch::channel(None);
        this.live.lock().expect("lock").insert(
            record.arn.clone(),
            Live {
                inbox: inbox.clone(),
                input: Arc::from(record.input.as_str()),
                start_ms: record.start_ms,
                done: done_rx,
                express: None,
            },
        );
        let mut actor = run::Actor::new(
            Arc::downgrade(this),
            record.arn.clone(),
            exe,
            false,
            inbox,
            done_tx,
        );
        actor.steps = steps;
        actor.reset_resumes = after_start;
        let actions = actor.resumed_actions();
        run::spawn(this, actor, messages, actions);
        Ok(())
    }
}

/// Step Functions' rules for state machine and execution names.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let bad = |why| Err(Error::InvalidName(name.to_owned(), why));
    if name.is_empty() || name.chars().count() > 80 {
        return bad("a name has 1-80 characters");
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c))
    {
        return bad(
            "a name has no spaces, brackets, wildcards or any of \" # % \\ ^ | ~ ` $ & , ; : /",
        );
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
