//! Storage traits for muon's durable state, and [`Memory`], the in-memory model every backend
//! is tested against.
//!
//! Design decision: every write goes through one [`Transaction`] (a list of [`Op`]s) that a
//! backend commits atomically, so a caller composes "append these events and create their
//! deliveries" into one commit, and a backend can group many transactions into one disk sync
//! (group commit). A commit's future resolves only after the data is durable: callers
//! acknowledge to users after it, never before. Reads are separate queries.
//!
//! Two concerns share the store: the event bus (events, deliveries, rules) and workflows (state
//! machines, executions with the inputs applied to them and their history). One transaction may
//! touch both.
//!
//! This crate names no backend and does no IO itself; `store-sqlite` (embedded) implements
//! [`Store`], the binary chooses.

mod memory;
pub mod testing;

use std::future::Future;
use std::pin::Pin;

pub use memory::Memory;
use muon_types::{ArchiveName, BusName, DeliveryId, EventId, RuleName};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The backend failed (disk full, corrupt file, ...); the message says how.
    #[error("storage failed: {0}")]
    Backend(String),
    /// The store was shut down.
    #[error("the store is closed")]
    Closed,
    /// The transaction breaks a rule of the data: an execution that already exists, a step
    /// recorded twice, a step of an unknown execution.
    #[error("conflict: {0}")]
    Conflict(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One accepted event, as it was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: EventId,
    pub bus: BusName,
    /// When muon accepted it, milliseconds since the Unix epoch.
    pub ingested_ms: i64,
    /// The whole event in the EventBridge envelope, as JSON text.
    pub json: String,
    /// The W3C trace ID (32 hex digits) the event belongs to.
    pub trace_id: String,
    /// The span (a delivery's span ID) that published this event, if it was published while a
    /// function handled another event.
    pub parent_span: Option<String>,
    /// The replay that re-sent this event, if any (replayed events are not archived again).
    pub replay: Option<String>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt at `due_ms`.
    Pending,
    /// The target accepted it.
    Delivered,
    /// Given up: it is in the dead-letter queue.
    DeadLettered,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::DeadLettered => "dead_lettered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "dead_lettered" => DeliveryStatus::DeadLettered,
            _ => return None,
        })
    }
}

/// One event on its way to one target of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event: EventId,
    pub bus: BusName,
    pub rule: RuleName,
    /// The target's ID within its rule.
    pub target: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the delivery was created (the event's age counts from here), epoch ms.
    pub created_ms: i64,
    /// When the next attempt is due (pending), or when it ended, epoch ms.
    pub due_ms: i64,
    /// The last failure: an error code and a message.
    pub error: Option<(String, String)>,
    /// Why it was given up: `MaximumRetryAttempts`, `MaximumEventAge` or `NonRetryable`.
    pub exhausted: Option<String>,
}

/// A rule created through the API (manifest rules are not stored), as JSON text the bus owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecord {
    pub bus: BusName,
    pub name: RuleName,
    pub json: String,
}

/// An archive created through the API (manifest archives are not stored), as JSON text the bus
/// owns. An archive is a view over the stored events: it holds no events of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRecord {
    pub name: ArchiveName,
    pub json: String,
}

/// An API key for the control API: its public ID and what its owner (the server's auth) keeps
/// of it (name, scopes, the secret's hash, when it was made or revoked), JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub json: String,
}

/// A state machine created through the API (manifest workflows are not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachineRecord {
    pub name: String,
    /// `STANDARD` or `EXPRESS`.
    pub kind: String,
    /// The Amazon States Language definition, JSON text.
    pub definition: String,
    pub created_ms: i64,
}

/// One durable (Standard) workflow execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub arn: String,
    /// The state machine's name.
    pub machine: String,
    pub name: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    /// JSON text.
    pub input: String,
    /// JSON text, once it succeeded.
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// The definition it runs, as it was when it started (JSON text).
    pub definition: String,
    /// What the engine needs besides the definition and input to rebuild the execution (its
    /// identity and random seed), JSON text the engine owns.
    pub info: String,
    /// How many times in a row it was resumed after muon stopped without shutting down cleanly,
    /// with no step recorded since: an execution that keeps crashing its host is not resumed
    /// blindly.
    pub resumes: u32,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionEnd {
    pub status: String,
    pub stop_ms: i64,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// One input applied to an execution (a task's result, a timer that fired, a stop), numbered
/// from 1 in the order applied: replaying them rebuilds the execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub seq: u64,
    pub at_ms: i64,
    /// JSON text the engine owns.
    pub input: String,
}

/// One event of an execution's history, as `GetExecutionHistory` shows it (JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRecord {
    /// The event's `id`, from 1.
    pub id: u64,
    pub json: String,
}

/// Which executions a query returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionQuery {
    pub machine: Option<String>,
    pub status: Option<String>,
    pub limit: usize,
}

/// One write in a [`Transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Append an event (its ID is new).
    AppendEvent(EventRecord),
    /// Create or replace a delivery.
    PutDelivery(Delivery),
    /// Create or replace an API rule.
    PutRule(RuleRecord),
    DeleteRule {
        bus: BusName,
        name: RuleName,
    },
    /// Create or replace an API archive.
    PutArchive(ArchiveRecord),
    DeleteArchive {
        name: ArchiveName,
    },
    /// Retention: forget the events ingested before `before_ms` that have no pending or
    /// dead-lettered delivery, with their deliveries.
    Prune {
        before_ms: i64,
    },
    /// Create or replace an API key (revoking one replaces it).
    PutKey(KeyRecord),
    /// Create or replace an API state machine.
    PutStateMachine(StateMachineRecord),
    DeleteStateMachine {
        name: String,
    },
    /// Create an execution (its ARN is new) with the first events of its history.
    StartExecution {
        execution: ExecutionRecord,
        history: Vec<HistoryRecord>,
    },
    /// Set an execution's count of resumes without progress ([`ExecutionRecord::resumes`]).
    SetResumes {
        execution: String,
        resumes: u32,
    },
    /// A clean shutdown: no running execution was resumed after a crash.
    ClearResumes,
    /// Record one input applied to a running execution, the history events it appended and,
    /// if it ended the execution, how. A step whose number was already recorded fails the
    /// transaction: an execution cannot fork.
    Step {
        execution: String,
        step: StepRecord,
        history: Vec<HistoryRecord>,
        end: Option<ExecutionEnd>,
    },
}

/// Writes committed together: all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    pub ops: Vec<Op>,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Which events a query returns, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub bus: Option<BusName>,
    /// Ingested at or after, epoch ms.
    pub from_ms: Option<i64>,
    /// Ingested before, epoch ms.
    pub to_ms: Option<i64>,
    /// Only events published by this span.
    pub parent_span: Option<String>,
    /// Only events stored after this one (a page's last): scans page through events with it
    /// instead of holding them all.
    pub after: Option<EventId>,
    pub limit: usize,
}

/// The durable state of the event bus.
pub trait Store: Send + Sync + 'static {
    /// Commit `tx` atomically. Resolves once it is durable.
    fn commit(&self, tx: Transaction) -> BoxFuture<'_, Result<()>>;
    fn event(&self, id: EventId) -> BoxFuture<'_, Result<Option<EventRecord>>>;
    fn events(&self, query: EventQuery) -> BoxFuture<'_, Result<Vec<EventRecord>>>;
    fn delivery(&self, id: DeliveryId) -> BoxFuture<'_, Result<Option<Delivery>>>;
    /// Deliveries with `status`, oldest first (at most `limit`).
    fn deliveries(
        &self,
        status: DeliveryStatus,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Delivery>>>;
    /// Every delivery of one event.
    fn deliveries_of(&self, event: EventId) -> BoxFuture<'_, Result<Vec<Delivery>>>;
    fn rules(&self) -> BoxFuture<'_, Result<Vec<RuleRecord>>>;
    /// The API archives, by name.
    fn archives(&self) -> BoxFuture<'_, Result<Vec<ArchiveRecord>>>;
    /// The API keys, by ID.
    fn keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>>>;
    fn state_machines(&self) -> BoxFuture<'_, Result<Vec<StateMachineRecord>>>;
    fn execution(&self, arn: &str) -> BoxFuture<'_, Result<Option<ExecutionRecord>>>;
    fn executions(&self, query: ExecutionQuery) -> BoxFuture<'_, Result<Vec<ExecutionRecord>>>;
    /// The inputs applied to an execution, in order.
    fn steps(&self, arn: &str) -> BoxFuture<'_, Result<Vec<StepRecord>>>;
    /// Why the last commit failed, while the store cannot write (a full disk, say); `None`
    /// once a commit succeeds again. What `/v1/health` reports.
    fn write_error(&self) -> Option<String> {
        None
    }
    /// An execution's history events with `id > after`, in order (at most `limit`).
    fn history(
        &self,
        arn: &str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<HistoryRecord>>>;
}
