//! The event bus: EventBridge-compatible rules fanning events out to targets, durably.
//!
//! Data path: [`Bus::put_events`] validates each entry (per-entry errors, as PutEvents answers
//! them), wraps it in the EventBridge envelope, matches it against every rule of its bus at once
//! ([`muon_pattern::RuleSet`]), and commits the events *and* one pending [`Delivery`] per
//! (rule, target) in one store transaction. Only after that commit does it answer, so an
//! acknowledged event is never lost: after a crash, the pending deliveries are loaded again and
//! retried (at least once). The scheduler then runs each delivery: targets of one event are
//! attempted in parallel; a failure is retried with exponential backoff and jitter until the
//! target's retry policy gives up, and then the delivery is dead-lettered with why.
//!
//! Design decision: the bus knows how to put events on buses, and nothing else. Functions, HTTP
//! endpoints and workflows are reached through [`Dispatch`], which the binary implements, so
//! this crate depends on no runtime and no HTTP client.
//!
//! It must never answer a put before the store committed it, and never drop a pending delivery
//! without recording why.

mod archives;
pub mod cloudevents;
mod deliver;
mod ingest;
mod input;
mod rules;
mod schedules;
mod trace;

use std::sync::Arc;
use std::time::Duration;

pub use archives::{ArchiveInfo, MAX_REPLAYS, ReplayInfo, ReplaySource, ReplayState, Write};
pub use ingest::{EntryResult, MAX_ENTRIES, MAX_REQUEST_BYTES, PutEntry, PutError};
use muon_manifest::{Rule, TargetKind};
use muon_store::{BoxFuture, Store};
pub use muon_store::{Delivery, DeliveryStatus, EventRecord};
use muon_types::{ArchiveName, BusName, DeliveryId, EventId, RuleName};
pub use rules::{Edit, Origin, RuleInfo};
use tokio::sync::{broadcast, mpsc};
pub use trace::{MAX_HOPS, TraceContext, TraceNode};

/// How the bus runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The buses that exist (`default` is added if missing).
    pub buses: Vec<BusName>,
    /// Rules from the manifest (API rules are loaded from the store).
    pub rules: Vec<Rule>,
    /// Schedules from the manifest: each puts an event on its bus when it fires.
    pub schedules: Vec<muon_manifest::Schedule>,
    /// Archives from the manifest (API archives are loaded from the store).
    pub archives: Vec<muon_manifest::Archive>,
    /// The `account` and `region` fields of events.
    pub account: String,
    pub region: String,
    /// The first retry waits about this long; each next one about twice as long.
    pub retry_base: Duration,
    /// No retry waits longer than this.
    pub retry_cap: Duration,
    /// Deliveries attempted at once, across all targets.
    pub max_in_flight: usize,
    /// Deliveries waiting or in flight past which PutEvents is refused with
    /// `ThrottlingException` (and bus targets and replays wait): the scheduler holds each one
    /// in memory, so this bounds its memory under a sustained overload.
    pub max_backlog: usize,
    /// Events older than this are forgotten (checked every minute), unless one of their
    /// deliveries is pending or dead-lettered. `None` keeps every event (the archive).
    pub retention: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            buses: vec![BusName::default_bus()],
            rules: Vec::new(),
            schedules: Vec::new(),
            archives: Vec::new(),
            account: "000000000000".into(),
            region: "us-east-1".into(),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(600),
            max_in_flight: 256,
            max_backlog: 200_000,
            retention: None,
        }
    }
}

/// What a target gets: an HTTP POST body with its headers.
#[derive(Debug, Clone)]
pub struct Message {
    pub body: String,
    pub content_type: &'static str,
    /// CloudEvents binary-mode headers (`ce-id`, `ce-source`, `ce-type`, ...), `traceparent`
    /// and muon's own (`x-muon-delivery`, `x-muon-rule`, `x-muon-attempt`).
    pub headers: Vec<(&'static str, String)>,
}

/// Why a target did not take a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    /// A short name: `FunctionError`, `Timeout`, `HttpError`, `NotFound`, ...
    pub code: String,
    pub message: String,
    /// Whether trying again could succeed (a 4xx answer, a missing function cannot).
    pub retryable: bool,
}

/// How the bus reaches targets other than buses. The binary implements it.
pub trait Dispatch: Send + Sync + 'static {
    fn deliver(
        &self,
        target: &TargetKind,
        message: Message,
    ) -> BoxFuture<'static, Result<(), DeliveryError>>;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] muon_store::Error),
    #[error("Event bus {0} does not exist.")]
    NoSuchBus(BusName),
    #[error("Rule {0} does not exist on event bus {1}.")]
    NoSuchRule(RuleName, BusName),
    #[error("Rule {0} is defined in muon.toml: change it there.")]
    ManifestRule(RuleName),
    #[error("stored rule {0} cannot be read: {1}")]
    BadStoredRule(RuleName, String),
    /// An edit left a rule that would not read back (too many targets, a repeated target ID).
    #[error("rule {0} is not valid: {1}")]
    InvalidRule(RuleName, String),
    #[error("Archive {0} does not exist.")]
    NoSuchArchive(ArchiveName),
    #[error("Archive {0} already exists.")]
    ArchiveExists(ArchiveName),
    #[error("Archive {0} is defined in muon.toml: change it there.")]
    ManifestArchive(ArchiveName),
    #[error("stored archive {0} cannot be read: {1}")]
    BadStoredArchive(ArchiveName, String),
    #[error("Replay {0} does not exist.")]
    NoSuchReplay(String),
    #[error("Replay {0} already exists.")]
    ReplayExists(String),
}

impl Error {
    /// The AWS error name this error is reported with.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Error::Store(_) | Error::BadStoredRule(..) | Error::BadStoredArchive(..) => {
                "InternalException"
            }
            Error::NoSuchBus(_)
            | Error::NoSuchRule(..)
            | Error::NoSuchArchive(_)
            | Error::NoSuchReplay(_) => "ResourceNotFoundException",
            Error::ManifestRule(_) => "ManagedRuleException",
            Error::InvalidRule(..) | Error::ManifestArchive(_) => "ValidationException",
            Error::ArchiveExists(_) | Error::ReplayExists(_) => "ResourceAlreadyExistsException",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How many stored events a scan (an archive's count, a replay) reads at once: memory stays at
/// one page however many events it goes through.
pub(crate) const SCAN_PAGE: usize = 1000;

/// The running bus. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    dispatch: Arc<dyn Dispatch>,
    rules: std::sync::RwLock<rules::Table>,
    /// Held while an API rule is read, changed and written ([`Bus::edit_rule`]).
    rule_edits: tokio::sync::Mutex<()>,
    archives: std::sync::RwLock<std::collections::BTreeMap<ArchiveName, ArchiveInfo>>,
    /// Held while an API archive is read, changed and written.
    archive_edits: tokio::sync::Mutex<()>,
    /// The last [`MAX_REPLAYS`] replays.
    replays: std::sync::Mutex<archives::Replays>,
    schedule: mpsc::UnboundedSender<deliver::Job>,
    /// Delivery outcomes to record, batched by [`deliver::record`].
    outcomes: mpsc::UnboundedSender<Delivery>,
    tail: broadcast::Sender<Arc<EventRecord>>,
    /// How deep in a chain of deliveries recent delivery spans are, to cut loops.
    hops: trace::Hops,
    /// Deliveries handed to the scheduler and not yet delivered or dead-lettered.
    backlog: std::sync::atomic::AtomicUsize,
}

impl Bus {
    /// Load the API rules and the pending deliveries from `store`, and start delivering.
    pub async fn start(
        mut config: Config,
        store: Arc<dyn Store>,
        dispatch: Arc<dyn Dispatch>,
    ) -> Result<Bus> {
        if !config.buses.contains(&BusName::default_bus()) {
            config.buses.insert(0, BusName::default_bus());
        }
        let mut table = rules::Table::new(&config.buses);
        for rule in &config.rules {
            table.insert(Arc::new(rule.clone()), Origin::Manifest);
        }
        for schedule in &config.schedules {
            table.insert(Arc::new(schedule.rule.clone()), Origin::Schedule);
        }
        for record in store.rules().await? {
            let rule = Rule::from_api_json(&record.json)
                .map_err(|e| Error::BadStoredRule(record.name.clone(), e.to_string()))?;
            if table.bus(&rule.bus).is_some() {
                table.insert(Arc::new(rule), Origin::Api);
            } else {
                tracing::warn!(
                    "rule {} is on bus {}, which this app no longer has: ignored",
                    rule.name,
                    rule.bus
                );
            }
        }
        let archives = archives::load(&config.archives, &config.buses, store.as_ref()).await?;
        let (schedule, jobs) = mpsc::unbounded_channel();
        let (outcomes, to_record) = mpsc::unbounded_channel();
        tokio::spawn(deliver::record(store.clone(), to_record));
        let (tail, _) = broadcast::channel(1024);
        let bus = Bus {
            inner: Arc::new(Inner {
                config,
                store,
                dispatch,
                rules: std::sync::RwLock::new(table),
                rule_edits: tokio::sync::Mutex::new(()),
                archives: std::sync::RwLock::new(archives),
                archive_edits: tokio::sync::Mutex::new(()),
                replays: Default::default(),
                schedule,
                outcomes,
                tail,
                hops: Default::default(),
                backlog: Default::default(),
            }),
        };
        let pending = bus.resume().await?;
        tokio::spawn(deliver::run(Arc::downgrade(&bus.inner), jobs));
        if let Some(retention) = bus.inner.config.retention {
            let weak = Arc::downgrade(&bus.inner);
            tokio::spawn(async move {
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    let bus = Bus { inner };
                    if let Err(e) = bus.prune(now_ms() - retention.as_millis() as i64).await {
                        tracing::error!("retention: {e}");
                    }
                    drop(bus);
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            });
        }
        for schedule in &bus.inner.config.schedules {
            tokio::spawn(schedules::run(Arc::downgrade(&bus.inner), schedule.clone()));
        }
        if pending > 0 {
            tracing::info!("resuming {pending} pending deliveries");
        }
        Ok(bus)
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Follow the events accepted from now on.
    pub fn tail(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.inner.tail.subscribe()
    }

    pub async fn event(&self, id: EventId) -> Result<Option<EventRecord>> {
        Ok(self.inner.store.event(id).await?)
    }

    /// The dead-letter queue, oldest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<Delivery>> {
        Ok(self
            .inner
            .store
            .deliveries(DeliveryStatus::DeadLettered, limit)
            .await?)
    }

    /// Send dead-lettered deliveries (these, or all) to their targets again, with fresh
    /// attempts. Returns how many were redriven.
    pub async fn redrive(&self, ids: Option<&[DeliveryId]>) -> Result<usize> {
        let dead = self.dead_letters(usize::MAX >> 1).await?;
        let chosen: Vec<Delivery> = dead
            .into_iter()
            .filter(|d| ids.is_none_or(|ids| ids.contains(&d.id)))
            .collect();
        let now = now_ms();
        let mut tx = muon_store::Transaction::new();
        let mut jobs = Vec::new();
        for mut d in chosen {
            let Some(event) = self.inner.store.event(d.event).await? else {
                continue;
            };
            d.status = DeliveryStatus::Pending;
            d.attempts = 0;
            d.created_ms = now;
            d.due_ms = now;
            d.exhausted = None;
            tx.push(muon_store::Op::PutDelivery(d.clone()));
            jobs.push(deliver::Job {
                delivery: d,
                event: Arc::new(event),
            });
        }
        let count = jobs.len();
        self.inner.store.commit(tx).await?;
        for job in jobs {
            self.inner.enqueue(job);
        }
        Ok(count)
    }

    /// Forget the events accepted before `before_ms` whose deliveries are all delivered (what
    /// the retention setting does every minute).
    pub async fn prune(&self, before_ms: i64) -> Result<()> {
        let mut tx = muon_store::Transaction::new();
        tx.push(muon_store::Op::Prune { before_ms });
        Ok(self.inner.store.commit(tx).await?)
    }

    /// Schedule every pending delivery found in the store.
    async fn resume(&self) -> Result<usize> {
        let pending = self
            .inner
            .store
            .deliveries(DeliveryStatus::Pending, usize::MAX >> 1)
            .await?;
        let mut events: std::collections::HashMap<EventId, Arc<EventRecord>> =
            std::collections::HashMap::new();
        let count = pending.len();
        for d in pending {
            let event = match events.get(&d.event) {
                Some(e) => e.clone(),
                None => match self.inner.store.event(d.event).await? {
                    Some(e) => {
                        let e = Arc::new(e);
                        events.insert(d.event, e.clone());
                        e
                    }
                    None => {
                        tracing::error!("delivery {} names missing event {}", d.id, d.event);
                        continue;
                    }
                },
            };
            self.inner.enqueue(deliver::Job { delivery: d, event });
        }
        Ok(count)
    }
}

impl Inner {
    /// Hands a delivery that is not yet in the scheduler to it (a retry goes back directly).
    fn enqueue(&self, job: deliver::Job) {
        self.backlog
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.schedule.send(job);
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new event ID: a UUIDv7, so IDs grow with time and the store's indexes on them are
/// appended to instead of written all over (a random UUIDv4 dirties a random index page per
/// event).
pub(crate) fn new_event_id() -> EventId {
    EventId::from_u128(uuid::Uuid::now_v7().as_u128())
}

/// A new delivery ID, time-ordered like [`new_event_id`].
pub(crate) fn new_delivery_id() -> DeliveryId {
    DeliveryId::from_u128(uuid::Uuid::now_v7().as_u128())
}

/// A random 64-bit number (for jitter and trace IDs).
pub(crate) fn random_u64() -> u64 {
    uuid::Uuid::new_v4().as_u128() as u64
}
