//! Archives (named views of a bus's stored events) and the replays read from them.
//!
//! An archive holds no events: every accepted event is stored once, and an archive is the bus,
//! pattern and retention that pick some of them. Counting an archive's events or replaying it
//! scans the bus's stored events, which is fine for a local store.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use muon_manifest::Archive;
use muon_pattern::{Event, Pattern};
use muon_store::{ArchiveRecord, EventQuery, EventRecord, Op, Transaction};
use muon_types::{ArchiveName, BusName, RuleName};
use serde_json::json;

use crate::{Bus, Error, Origin, Result, now_ms};

/// At most this many replays are remembered (they are kept in memory only).
pub const MAX_REPLAYS: usize = 100;

/// An archive as listed.
#[derive(Debug, Clone)]
pub struct ArchiveInfo {
    pub archive: Arc<Archive>,
    /// [`Origin::Manifest`] or [`Origin::Api`].
    pub origin: Origin,
    /// When it was created (a manifest archive: when the bus started), epoch ms.
    pub created_ms: i64,
}

/// How [`Bus::put_archive`] treats an archive of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// There must be none (EventBridge's CreateArchive).
    Create,
    /// There must be one (UpdateArchive).
    Update,
    /// Either way.
    Put,
}

/// How a replay ended. Replays run synchronously, so none is ever seen running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayState {
    Completed,
    Failed,
}

impl ReplayState {
    /// EventBridge's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayState::Completed => "COMPLETED",
            ReplayState::Failed => "FAILED",
        }
    }
}

/// What a replay read from: a bus's events, or an archive's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySource {
    Bus(BusName),
    Archive(ArchiveName),
}

/// A replay as described.
#[derive(Debug, Clone)]
pub struct ReplayInfo {
    pub name: String,
    pub source: ReplaySource,
    /// The bus the events were replayed to (the archive's).
    pub bus: BusName,
    /// Only these rules were given the events (all of the bus's when `None`).
    pub rules: Option<Vec<RuleName>>,
    /// The window of ingestion times replayed: `[from_ms, to_ms)`.
    pub from_ms: i64,
    pub to_ms: i64,
    pub state: ReplayState,
    /// Why it failed.
    pub reason: Option<String>,
    pub events: usize,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// The ingestion time of the last event replayed.
    pub last_replayed_ms: Option<i64>,
}

/// The remembered replays, oldest first.
#[derive(Default)]
pub(crate) struct Replays {
    order: VecDeque<String>,
    by_name: BTreeMap<String, ReplayInfo>,
}

/// An archive's filter over stored events.
pub(crate) struct Filter {
    pattern: Option<Pattern>,
    /// Events ingested before this are past the archive's retention.
    since_ms: i64,
}

impl Filter {
    pub(crate) fn of(archive: &Archive, now: i64) -> Filter {
        Filter {
            pattern: archive
                .pattern
                .as_deref()
                .map(|p| Pattern::parse(p).expect("archives hold validated patterns")),
            since_ms: archive
                .retention
                .map_or(i64::MIN, |r| now.saturating_sub(r.as_millis() as i64)),
        }
    }

    /// Whether the archive holds `event`. Replayed events are never archived.
    pub(crate) fn holds(&self, event: &EventRecord) -> bool {
        event.replay.is_none()
            && event.ingested_ms >= self.since_ms
            && self
                .pattern
                .as_ref()
                .is_none_or(|p| Event::parse(&event.json).is_ok_and(|e| p.matches(&e)))
    }
}

/// What is stored for an API archive: its API JSON and when it was created.
fn record_json(archive: &Archive, created_ms: i64) -> String {
    json!({ "Archive": archive.to_api_json(), "CreatedMs": created_ms }).to_string()
}

fn read_record(record: &ArchiveRecord) -> Result<(Archive, i64)> {
    let bad = |why: String| Error::BadStoredArchive(record.name.clone(), why);
    let value: serde_json::Value =
        serde_json::from_str(&record.json).map_err(|e| bad(e.to_string()))?;
    let archive =
        Archive::from_api_json(&value["Archive"].to_string()).map_err(|e| bad(e.to_string()))?;
    Ok((archive, value["CreatedMs"].as_i64().unwrap_or(0)))
}

/// The archives at start: the manifest's, then the stored API ones.
pub(crate) async fn load(
    manifest: &[Archive],
    buses: &[BusName],
    store: &dyn muon_store::Store,
) -> Result<BTreeMap<ArchiveName, ArchiveInfo>> {
    let now = now_ms();
    let mut archives = BTreeMap::new();
    for a in manifest {
        archives.insert(
            a.name.clone(),
            ArchiveInfo {
                archive: Arc::new(a.clone()),
                origin: Origin::Manifest,
                created_ms: now,
            },
        );
    }
    for record in store.archives().await? {
        let (archive, created_ms) = read_record(&record)?;
        if archives.contains_key(&archive.name) {
            tracing::warn!(
                "archive {} is now defined in muon.toml: the stored one is ignored",
                archive.name
            );
        } else if !buses.contains(&archive.bus) {
            tracing::warn!(
                "archive {} is on bus {}, which this app no longer has: ignored",
                archive.name,
                archive.bus
            );
        } else {
            archives.insert(
                archive.name.clone(),
                ArchiveInfo {
                    archive: Arc::new(archive),
                    origin: Origin::Api,
                    created_ms,
                },
            );
        }
    }
    Ok(archives)
}

impl Bus {
    /// Every archive, by name.
    pub fn archives(&self) -> Vec<ArchiveInfo> {
        let archives = self
            .inner
            .archives
            .read()
            .expect("no panics under the lock");
        archives.values().cloned().collect()
    }

    /// One archive.
    pub fn archive(&self, name: &ArchiveName) -> Result<ArchiveInfo> {
        let archives = self
            .inner
            .archives
            .read()
            .expect("no panics under the lock");
        archives
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NoSuchArchive(name.clone()))
    }

    /// Create or replace an archive through the API; it is stored and survives restarts. An
    /// archive of the manifest is refused with [`Error::ManifestArchive`].
    pub async fn put_archive(&self, archive: Archive, write: Write) -> Result<ArchiveInfo> {
        let _one_at_a_time = self.inner.archive_edits.lock().await;
        if !self.inner.config.buses.contains(&archive.bus) {
            return Err(Error::NoSuchBus(archive.bus.clone()));
        }
        let current = self.archive(&archive.name).ok();
        let created_ms = match (&current, write) {
            (Some(c), _) if c.origin != Origin::Api => {
                return Err(Error::ManifestArchive(archive.name.clone()));
            }
            (Some(_), Write::Create) => return Err(Error::ArchiveExists(archive.name.clone())),
            (None, Write::Update) => return Err(Error::NoSuchArchive(archive.name.clone())),
            (Some(c), _) => c.created_ms,
            (None, _) => now_ms(),
        };
        let mut tx = Transaction::new();
        tx.push(Op::PutArchive(ArchiveRecord {
            name: archive.name.clone(),
            json: record_json(&archive, created_ms),
        }));
        self.inner.store.commit(tx).await?;
        let info = ArchiveInfo {
            archive: Arc::new(archive),
            origin: Origin::Api,
            created_ms,
        };
        self.inner
            .archives
            .write()
            .expect("no panics under the lock")
            .insert(info.archive.name.clone(), info.clone());
        Ok(info)
    }

    /// Delete an API archive (the events it held stay in the store).
    pub async fn delete_archive(&self, name: &ArchiveName) -> Result<()> {
        let _one_at_a_time = self.inner.archive_edits.lock().await;
        if self.archive(name)?.origin != Origin::Api {
            return Err(Error::ManifestArchive(name.clone()));
        }
        let mut tx = Transaction::new();
        tx.push(Op::DeleteArchive { name: name.clone() });
        self.inner.store.commit(tx).await?;
        self.inner
            .archives
            .write()
            .expect("no panics under the lock")
            .remove(name);
        Ok(())
    }

    /// How many stored events an archive holds, and their size in bytes (counted by scanning
    /// its bus's stored events).
    pub async fn archive_stats(&self, name: &ArchiveName) -> Result<(usize, usize)> {
        let archive = self.archive(name)?.archive;
        let filter = Filter::of(&archive, now_ms());
        // Page through the bus's events: memory stays at one page however many it holds.
        let (mut count, mut size, mut after) = (0, 0, None);
        loop {
            let page = self
                .inner
                .store
                .events(EventQuery {
                    bus: Some(archive.bus.clone()),
                    from_ms: (filter.since_ms > i64::MIN).then_some(filter.since_ms),
                    after,
                    limit: crate::SCAN_PAGE,
                    ..Default::default()
                })
                .await?;
            for e in page.iter().filter(|e| filter.holds(e)) {
                count += 1;
                size += e.json.len();
            }
            match page.last() {
                Some(last) if page.len() == crate::SCAN_PAGE => after = Some(last.id),
                _ => return Ok((count, size)),
            }
        }
    }

    /// Replay an archive: its events ingested in `[from_ms, to_ms)` (those of its bus that
    /// match its pattern and are within its retention) go through its bus's rules (or only
    /// `rules`) again, as new events carrying `replay-name`. Runs to the end before it
    /// returns; the replay is remembered for [`Bus::replays`]. A name already used is refused.
    pub async fn replay_archive(
        &self,
        name: &str,
        archive: &ArchiveName,
        from_ms: i64,
        to_ms: i64,
        rules: Option<Vec<RuleName>>,
    ) -> Result<ReplayInfo> {
        let archive = self.archive(archive)?.archive;
        let filter = Filter::of(&archive, now_ms());
        self.run_replay(
            name,
            ReplaySource::Archive(archive.name.clone()),
            &archive.bus,
            from_ms,
            to_ms,
            rules,
            Some(filter),
        )
        .await
    }

    /// Run a replay and remember it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_replay(
        &self,
        name: &str,
        source: ReplaySource,
        bus: &BusName,
        from_ms: i64,
        to_ms: i64,
        rules: Option<Vec<RuleName>>,
        filter: Option<Filter>,
    ) -> Result<ReplayInfo> {
        if !self.inner.config.buses.contains(bus) {
            return Err(Error::NoSuchBus(bus.clone()));
        }
        // A replay through rules that do not exist would store every event again and deliver
        // none of them.
        for rule in rules.iter().flatten() {
            self.rule(bus, rule)?;
        }
        let started_ms = now_ms();
        {
            let mut replays = self.inner.replays.lock().expect("no panics under the lock");
            if replays.by_name.contains_key(name) {
                return Err(Error::ReplayExists(name.to_string()));
            }
            // Hold the name while the replay runs.
            replays.order.push_back(name.to_string());
            replays.by_name.insert(
                name.to_string(),
                ReplayInfo {
                    name: name.to_string(),
                    source: source.clone(),
                    bus: bus.clone(),
                    rules: rules.clone(),
                    from_ms,
                    to_ms,
                    state: ReplayState::Failed,
                    reason: Some("still running".into()),
                    events: 0,
                    started_ms,
                    ended_ms: started_ms,
                    last_replayed_ms: None,
                },
            );
            while replays.order.len() > MAX_REPLAYS {
                if let Some(old) = replays.order.pop_front() {
                    replays.by_name.remove(&old);
                }
            }
        }
        let outcome = self
            .replay_events(name, bus, from_ms, to_ms, rules.as_deref(), filter.as_ref())
            .await;
        let mut replays = self.inner.replays.lock().expect("no panics under the lock");
        let info = ReplayInfo {
            name: name.to_string(),
            source,
            bus: bus.clone(),
            rules,
            from_ms,
            to_ms,
            state: if outcome.is_ok() {
                ReplayState::Completed
            } else {
                ReplayState::Failed
            },
            reason: outcome.as_ref().err().map(|e| e.to_string()),
            events: outcome.as_ref().map_or(0, |(n, _)| *n),
            started_ms,
            ended_ms: now_ms(),
            last_replayed_ms: outcome.as_ref().ok().and_then(|(_, last)| *last),
        };
        if let Some(slot) = replays.by_name.get_mut(name) {
            *slot = info.clone();
        }
        drop(replays);
        outcome.map(|_| info)
    }

    /// The remembered replays (the last [`MAX_REPLAYS`]), oldest first.
    pub fn replays(&self) -> Vec<ReplayInfo> {
        let replays = self.inner.replays.lock().expect("no panics under the lock");
        replays
            .order
            .iter()
            .filter_map(|n| replays.by_name.get(n).cloned())
            .collect()
    }

    /// One remembered replay.
    pub fn replay_info(&self, name: &str) -> Result<ReplayInfo> {
        let replays = self.inner.replays.lock().expect("no panics under the lock");
        replays
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NoSuchReplay(name.to_string()))
    }
}
