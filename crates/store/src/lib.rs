//! Storage traits for muon's durable state, and [`Memory`], the in-memory model every backend
//! is tested against.
//!
//! Design decision: every write goes through one [`Transaction`] (a list of [`Op`]s) that a
//! backend commits atomically, so a caller composes "append these events and create their
//! deliveries" into one commit, and a backend can group many transactions into one disk sync
//! (group commit). A commit's future resolves only after the data is durable: callers
//! acknowledge to users after it, never before. Reads are separate queries.
//!
//! This crate names no backend and does no IO itself; `store-sqlite` (embedded) implements
//! [`Store`], the binary chooses.

mod memory;
pub mod testing;

use std::future::Future;
use std::pin::Pin;

pub use memory::Memory;
use muon_types::{BusName, DeliveryId, EventId, RuleName};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The backend failed (disk full, corrupt file, ...); the message says how.
    #[error("storage failed: {0}")]
    Backend(String),
    /// The store was shut down.
    #[error("the store is closed")]
    Closed,
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
    /// Retention: forget the events ingested before `before_ms` that have no pending or
    /// dead-lettered delivery, with their deliveries.
    Prune {
        before_ms: i64,
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
}
