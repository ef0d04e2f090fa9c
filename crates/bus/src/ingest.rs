//! PutEvents: validate entries one by one, wrap them in the envelope, match, commit, answer.

use std::sync::Arc;

use muon_manifest::Rule;
use muon_pattern::{Event, Fields};
use muon_store::{Delivery, DeliveryStatus, EventRecord, Op, Transaction};
use muon_types::{BusName, EventId};

use crate::trace::TraceContext;
use crate::{Bus, deliver, now_ms};

/// At most this many entries per request.
pub const MAX_ENTRIES: usize = 10;
/// The entries of one request may total at most this many bytes (as EventBridge counts them).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
const MAX_DETAIL_TYPE: usize = 128;

/// One PutEvents entry as sent (every field optional: checking them is ingest's job).
#[derive(Debug, Clone, Default)]
pub struct PutEntry {
    pub source: Option<String>,
    pub detail_type: Option<String>,
    /// The detail as JSON text.
    pub detail: Option<String>,
    pub event_bus_name: Option<String>,
    pub resources: Vec<String>,
    /// RFC 3339; now when absent.
    pub time: Option<String>,
    /// A W3C `traceparent` for this entry (PutEvents' `TraceHeader`).
    pub trace_header: Option<String>,
}

impl PutEntry {
    /// The size EventBridge counts for an entry.
    pub fn size(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        text(&self.source)
            + text(&self.detail_type)
            + text(&self.detail)
            + self.resources.iter().map(String::len).sum::<usize>()
            + if self.time.is_some() { 14 } else { 0 }
    }
}

/// How one entry fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    Accepted(EventId),
    Failed { code: String, message: String },
}

/// Why a whole request was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PutError {
    #[error("{0}")]
    Validation(String),
    /// The scheduler's backlog is full: try again later.
    #[error("{0}")]
    Throttled(String),
    #[error("the events could not be stored: {0}")]
    Store(#[from] muon_store::Error),
}

impl PutError {
    pub fn aws_code(&self) -> &'static str {
        match self {
            PutError::Validation(_) => "ValidationException",
            PutError::Throttled(_) => "ThrottlingException",
            PutError::Store(_) => "InternalException",
        }
    }
}

fn failed(code: &str, message: impl Into<String>) -> EntryResult {
    EntryResult::Failed {
        code: code.into(),
        message: message.into(),
    }
}

fn invalid(field: &str, reason: &str) -> EntryResult {
    failed(
        "InvalidArgument",
        format!("Parameter {field} is not valid. Reason: {reason}"),
    )
}

/// An event ready to commit.
pub(crate) struct Accepted {
    pub record: EventRecord,
    pub parsed: Event,
}

impl Bus {
    /// The fields the rules of `bus` look at (none when it has no rules or does not exist).
    fn fields(&self, bus: &BusName) -> Arc<Fields> {
        self.inner
            .rules
            .read()
            .expect("no panics under the lock")
            .bus(bus)
            .map(|b| b.fields())
            .unwrap_or_default()
    }

    /// Why new events must wait, when the scheduler's backlog is full.
    pub(crate) fn backlogged(&self) -> Option<String> {
        let backlog = self
            .inner
            .backlog
            .load(std::sync::atomic::Ordering::Relaxed);
        let max = self.inner.config.max_backlog;
        (backlog >= max).then(|| {
            format!(
                "Rate exceeded: {backlog} deliveries are waiting (at most {max}); slow down and try again."
            )
        })
    }

    /// PutEvents: each entry is accepted or fails on its own; accepted ones are committed,
    /// with their deliveries, before this returns.
    pub async fn put_events(
        &self,
        entries: Vec<PutEntry>,
        trace: Option<TraceContext>,
    ) -> Result<Vec<EntryResult>, PutError> {
        if entries.is_empty() || entries.len() > MAX_ENTRIES {
            return Err(PutError::Validation(format!(
                "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and {MAX_ENTRIES} (got {})",
                entries.len()
            )));
        }
        let total: usize = entries.iter().map(PutEntry::size).sum();
        if total > MAX_REQUEST_BYTES {
            return Err(PutError::Validation(format!(
                "Total size of the entries in the request is over the limit: {total} bytes, at most {MAX_REQUEST_BYTES}."
            )));
        }
        if let Some(why) = self.backlogged() {
            return Err(PutError::Throttled(why));
        }
        let now = now_ms();
        let mut results = Vec::with_capacity(entries.len());
        let mut accepted = Vec::new();
        for entry in entries {
            let entry_trace = entry
                .trace_header
                .as_deref()
                .and_then(TraceContext::parse)
                .or_else(|| trace.clone());
            match self.envelope(entry, now, entry_trace) {
                Ok(a) => {
                    results.push(EntryResult::Accepted(a.record.id));
                    accepted.push(a);
                }
                Err(r) => results.push(r),
            }
        }
        if let Err(e) = self.commit(accepted, now, None).await {
            for r in &mut results {
                if matches!(r, EntryResult::Accepted(_)) {
                    *r = failed("InternalFailure", format!("the event was not stored: {e}"));
                }
            }
        }
        Ok(results)
    }

    /// Put an event that is already in the envelope (a bus target's) on `bus`.
    pub(crate) async fn put_envelope(
        &self,
        bus: &BusName,
        mut envelope: serde_json::Value,
        trace: TraceContext,
    ) -> Result<EventId, crate::DeliveryError> {
        if let Some(why) = self.backlogged() {
            return Err(crate::DeliveryError {
                code: "ThrottlingException".into(),
                message: why,
                retryable: true,
            });
        }
        let hops = self.inner.hops.of(trace.parent_span.as_deref());
        if hops > 0 && !self.inner.hops.publish_in(&trace.trace_id) {
            return Err(crate::DeliveryError {
                code: "LoopDetected".into(),
                message: format!(
                    "deliveries of this trace published more than {} events: a rule that fans out onto a bus its pattern matches again? The loop is cut here.",
                    crate::trace::MAX_TRACE_PUBLISHED
                ),
                retryable: false,
            });
        }
        if hops > crate::MAX_HOPS {
            return Err(crate::DeliveryError {
                code: "LoopDetected".into(),
                message: format!(
                    "the event came through {hops} deliveries in a row that each put the next one on a bus (at most {}): a rule whose target is a bus its pattern matches again? The loop is cut here.",
                    crate::MAX_HOPS
                ),
                retryable: false,
            });
        }
        let id = crate::new_event_id();
        envelope["id"] = serde_json::Value::String(id.to_string());
        let json = envelope.to_string();
        let parsed =
            Event::parse_fields(&json, &self.fields(bus)).map_err(|e| crate::DeliveryError {
                code: "MalformedEvent".into(),
                message: e.to_string(),
                retryable: false,
            })?;
        if !self.inner.config.buses.contains(bus) {
            return Err(crate::DeliveryError {
                code: "ResourceNotFoundException".into(),
                message: format!("Event bus {bus} does not exist."),
                retryable: false,
            });
        }
        let now = now_ms();
        let record = EventRecord {
            id,
            bus: bus.clone(),
            ingested_ms: now,
            json,
            trace_id: trace.trace_id,
            parent_span: trace.parent_span,
            replay: None,
        };
        self.commit(vec![Accepted { record, parsed }], now, None)
            .await
            .map_err(|e| crate::DeliveryError {
                code: "InternalFailure".into(),
                message: e.to_string(),
                retryable: true,
            })?;
        Ok(id)
    }

    /// Match `accepted` events, commit them with their deliveries, then schedule and announce.
    pub(crate) async fn commit(
        &self,
        accepted: Vec<Accepted>,
        now: i64,
        only: Option<&[muon_types::RuleName]>,
    ) -> Result<(), muon_store::Error> {
        if accepted.is_empty() {
            return Ok(());
        }
        let mut tx = Transaction::new();
        let mut jobs = Vec::new();
        let mut records = Vec::with_capacity(accepted.len());
        {
            let table = self.inner.rules.read().expect("no panics under the lock");
            for a in accepted {
                let matched: Vec<Arc<Rule>> = table
                    .bus(&a.record.bus)
                    .map(|b| b.matching(&a.parsed))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| only.is_none_or(|only| only.contains(&r.name)))
                    .collect();
                let record = Arc::new(a.record);
                tx.push(Op::AppendEvent((*record).clone()));
                for rule in matched {
                    for target in &rule.targets {
                        let delivery = Delivery {
                            id: crate::new_delivery_id(),
                            event: record.id,
                            bus: record.bus.clone(),
                            rule: rule.name.clone(),
                            target: target.id.clone(),
                            status: DeliveryStatus::Pending,
                            attempts: 0,
                            created_ms: now,
                            due_ms: now,
                            error: None,
                            exhausted: None,
                        };
                        tx.push(Op::PutDelivery(delivery.clone()));
                        jobs.push(deliver::Job {
                            delivery,
                            event: record.clone(),
                        });
                    }
                }
                records.push(record);
            }
        }
        // Committed work must proceed whether or not the caller still waits (a PutEvents client
        // that hung up): the commit and the scheduling that follows it run in a task of their own.
        let inner = self.inner.clone();
        tokio::spawn(async move {
            inner.store.commit(tx).await?;
            for job in jobs {
                inner.enqueue(job);
            }
            for r in records {
                let _ = inner.tail.send(r);
            }
            Ok(())
        })
        .await
        .map_err(|e| muon_store::Error::Backend(format!("the commit task failed: {e}")))?
    }

    /// Check one entry and wrap it in the EventBridge envelope.
    fn envelope(
        &self,
        entry: PutEntry,
        now: i64,
        trace: Option<TraceContext>,
    ) -> Result<Accepted, EntryResult> {
        let hops = self
            .inner
            .hops
            .of(trace.as_ref().and_then(|t| t.parent_span.as_deref()));
        let fans_out = hops > 0
            && trace
                .as_ref()
                .is_some_and(|t| !self.inner.hops.publish_in(&t.trace_id));
        if fans_out {
            return Err(failed(
                "LoopDetected",
                format!(
                    "deliveries of this trace published more than {} events: a function that publishes what its own rule matches, more than once? The loop is cut here.",
                    crate::trace::MAX_TRACE_PUBLISHED
                ),
            ));
        }
        if hops > crate::MAX_HOPS {
            return Err(failed(
                "LoopDetected",
                format!(
                    "the event comes from {hops} deliveries in a row that each published the next (at most {}): a function that publishes what its own rule matches? The loop is cut here.",
                    crate::MAX_HOPS
                ),
            ));
        }
        let bus = match entry.event_bus_name.as_deref() {
            None | Some("") => BusName::default_bus(),
            Some(name) => {
                // An ARN names the bus after `event-bus/`.
                let name = name.rsplit_once("event-bus/").map_or(name, |(_, n)| n);
                match BusName::new(name) {
                    Ok(b) if self.inner.config.buses.contains(&b) => b,
                    _ => {
                        return Err(failed(
                            "ResourceNotFoundException",
                            format!("Event bus {name} does not exist."),
                        ));
                    }
                }
            }
        };
        let source = match entry.source {
            Some(s) if !s.is_empty() && s.len() <= 256 => s,
            Some(s) if !s.is_empty() => {
                return Err(invalid("Source", "Source is longer than 256 characters."));
            }
            _ => return Err(invalid("Source", "Source is a required argument.")),
        };
        if source.starts_with("aws.") {
            return Err(failed(
                "NotAuthorizedForSourceException",
                format!("Not authorized for the source {source}."),
            ));
        }
        let detail_type = match entry.detail_type {
            Some(s) if !s.is_empty() && s.chars().count() <= MAX_DETAIL_TYPE => s,
            Some(s) if !s.is_empty() => {
                return Err(invalid(
                    "DetailType",
                    "DetailType is longer than 128 characters.",
                ));
            }
            _ => return Err(invalid("DetailType", "DetailType is a required argument.")),
        };
        // These fields travel in HTTP headers (`ce-source`, `ce-type`, `ce-subject`) and in
        // log lines: a control character could never be delivered.
        let control = |s: &str| s.chars().any(char::is_control);
        if control(&source) {
            return Err(invalid(
                "Source",
                "Source must not contain control characters.",
            ));
        }
        if control(&detail_type) {
            return Err(invalid(
                "DetailType",
                "DetailType must not contain control characters.",
            ));
        }
        if entry.resources.iter().any(|r| control(r)) {
            return Err(invalid(
                "Resources",
                "Resources must not contain control characters.",
            ));
        }
        let detail = match entry.detail {
            Some(d) if !d.trim().is_empty() => d,
            _ => return Err(invalid("Detail", "Detail is a required argument.")),
        };
        // The detail must be a JSON object on its own, so that its text cannot add fields to the
        // envelope around it; this also bounds its nesting.
        if let Err(e) = Event::parse_fields(&detail, &Fields::new()) {
            let message = match e {
                muon_pattern::Error::InvalidEvent(why) => format!("Detail is malformed: {why}."),
                other => format!("Detail is malformed: {other}."),
            };
            return Err(failed("MalformedDetail", message));
        }
        let time = match entry.time.as_deref() {
            None | Some("") => format_time(now),
            Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(t) => t
                    .with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
                Err(_) => {
                    return Err(invalid("Time", "Time must be an RFC 3339 timestamp."));
                }
            },
        };
        let id = crate::new_event_id();
        let json = format!(
            "{{\"version\":\"0\",\"id\":\"{id}\",\"detail-type\":{},\"source\":{},\"account\":{},\"time\":\"{time}\",\"region\":{},\"resources\":{},\"detail\":{detail}}}",
            serde_json::Value::String(detail_type),
            serde_json::Value::String(source),
            serde_json::Value::String(self.inner.config.account.clone()),
            serde_json::Value::String(self.inner.config.region.clone()),
            serde_json::Value::from(entry.resources),
        );
        let parsed = Event::parse_fields(&json, &self.fields(&bus)).map_err(|e| {
            failed(
                "MalformedDetail",
                format!("Detail is malformed: {e} (nested too deeply inside the envelope?)"),
            )
        })?;
        let trace = trace.unwrap_or_else(TraceContext::new_root);
        Ok(Accepted {
            record: EventRecord {
                id,
                bus,
                ingested_ms: now,
                json,
                trace_id: trace.trace_id,
                parent_span: trace.parent_span,
                replay: None,
            },
            parsed,
        })
    }
}

impl Bus {
    /// Replay: put the events `bus` accepted in `[from_ms, to_ms)` through its rules (or only
    /// `rules`) again. Each replayed event is a new event carrying `replay-name`; events that
    /// were themselves replays are skipped. Returns how many events were replayed. The replay
    /// is remembered for [`Bus::replays`]; a name already used is refused.
    pub async fn replay(
        &self,
        name: &str,
        bus: &BusName,
        from_ms: i64,
        to_ms: i64,
        rules: Option<Vec<muon_types::RuleName>>,
    ) -> Result<usize, crate::Error> {
        let info = self
            .run_replay(
                name,
                crate::ReplaySource::Bus(bus.clone()),
                bus,
                from_ms,
                to_ms,
                rules,
                None,
            )
            .await?;
        Ok(info.events)
    }

    /// Put the events of `bus` in `[from_ms, to_ms)` that `filter` keeps through its rules (or
    /// only `rules`) again. Returns how many were replayed, and the ingestion time of the last.
    pub(crate) async fn replay_events(
        &self,
        name: &str,
        bus: &BusName,
        from_ms: i64,
        to_ms: i64,
        rules: Option<&[muon_types::RuleName]>,
        filter: Option<&crate::archives::Filter>,
    ) -> Result<(usize, Option<i64>), crate::Error> {
        // Page through the window: memory stays at one page however many events it holds.
        let (mut count, mut last, mut after) = (0, None, None);
        loop {
            let events = self
                .inner
                .store
                .events(muon_store::EventQuery {
                    bus: Some(bus.clone()),
                    from_ms: Some(from_ms),
                    to_ms: Some(to_ms),
                    parent_span: None,
                    after,
                    limit: crate::SCAN_PAGE,
                })
                .await?;
            for chunk in events.chunks(100) {
                let now = now_ms();
                let mut batch = Vec::with_capacity(chunk.len());
                let kept = chunk
                    .iter()
                    .filter(|e| e.replay.is_none() && filter.is_none_or(|f| f.holds(e)));
                for original in kept {
                    let mut de = serde_json::Deserializer::from_str(&original.json);
                    de.disable_recursion_limit();
                    let Ok(mut envelope) =
                        <serde_json::Value as serde::Deserialize>::deserialize(&mut de)
                    else {
                        continue;
                    };
                    let id = crate::new_event_id();
                    envelope["id"] = serde_json::Value::String(id.to_string());
                    envelope["replay-name"] = serde_json::Value::String(name.to_string());
                    let json = envelope.to_string();
                    let Ok(parsed) = Event::parse_fields(&json, &self.fields(bus)) else {
                        continue;
                    };
                    batch.push(Accepted {
                        record: EventRecord {
                            id,
                            bus: bus.clone(),
                            ingested_ms: now,
                            json,
                            trace_id: original.trace_id.clone(),
                            parent_span: original.parent_span.clone(),
                            replay: Some(name.to_string()),
                        },
                        parsed,
                    });
                    last = Some(original.ingested_ms);
                }
                count += batch.len();
                // A replay waits for the scheduler rather than fill its memory.
                while self.backlogged().is_some() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                self.commit(batch, now, rules).await?;
            }

            match events.last() {
                Some(e) if events.len() == crate::SCAN_PAGE => after = Some(e.id),
                _ => break,
            }
        }
        Ok((count, last))
    }
}

/// An event's `time`: RFC 3339 in UTC to the second, as EventBridge writes it.
pub(crate) fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
