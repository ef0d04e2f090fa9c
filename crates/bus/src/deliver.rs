//! The scheduler: runs each delivery when it is due, retries failures with backoff and jitter,
//! and dead-letters what cannot be delivered.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use muon_manifest::{Rule, Target, TargetKind};
use muon_store::{Delivery, DeliveryStatus, EventRecord, Op, Transaction};
use tokio::sync::{Semaphore, mpsc};

use crate::trace::TraceContext;
use crate::{Bus, DeliveryError, Inner, Message, input, now_ms, random_u64};

/// A delivery and the event it carries.
pub(crate) struct Job {
    pub delivery: Delivery,
    pub event: Arc<EventRecord>,
}

/// Receive jobs, wait until each is due, and attempt it (at most `max_in_flight` at once).
pub(crate) async fn run(bus: Weak<Inner>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let limit = match bus.upgrade() {
        Some(inner) => inner.config.max_in_flight.max(1),
        None => return,
    };
    let permits = Arc::new(Semaphore::new(limit));
    let mut queue: BinaryHeap<Reverse<(i64, u64)>> = BinaryHeap::new();
    let mut waiting: HashMap<u64, Job> = HashMap::new();
    let mut seq = 0u64;
    loop {
        let now = now_ms();
        while let Some(Reverse((due, key))) = queue.peek().copied() {
            if due > now {
                break;
            }
            queue.pop();
            let Some(job) = waiting.remove(&key) else {
                continue;
            };
            let Some(inner) = bus.upgrade() else {
                return;
            };
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            tokio::spawn(async move {
                attempt(Bus { inner }, job).await;
                drop(permit);
            });
        }
        let sleep = match queue.peek() {
            Some(Reverse((due, _))) => Duration::from_millis((due - now).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => {
                    seq += 1;
                    queue.push(Reverse((job.delivery.due_ms, seq)));
                    waiting.insert(seq, job);
                }
                None => return,
            },
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Record delivery outcomes: everything waiting is committed together, in order.
pub(crate) async fn record(
    store: Arc<dyn muon_store::Store>,
    mut outcomes: mpsc::UnboundedReceiver<Delivery>,
) {
    while let Some(first) = outcomes.recv().await {
        let mut tx = Transaction::new();
        tx.push(Op::PutDelivery(first));
        while tx.ops.len() < 4096 {
            match outcomes.try_recv() {
                Ok(d) => {
                    tx.push(Op::PutDelivery(d));
                }
                Err(_) => break,
            }
        }
        // Kept and tried again until the store takes them (a full disk that frees up): given
        // up, these deliveries would stay pending in the store until a restart delivered them
        // once more.
        let mut wait = std::time::Duration::from_millis(100);
        while let Err(e) = store.commit(tx.clone()).await {
            tracing::error!(
                "cannot record {} delivery outcomes ({e}); trying again in {wait:?}",
                tx.ops.len()
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(5));
        }
    }
}

/// How long to wait before retry number `retry` (1-based): exponential from `base`, capped,
/// with "equal jitter" (half fixed, half random) so retries of many deliveries spread out.
pub(crate) fn backoff(retry: u32, base: Duration, cap: Duration, random: u64) -> Duration {
    let exp = base
        .saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1).min(31))
                .unwrap_or(u32::MAX),
        )
        .min(cap);
    let half = exp / 2;
    let jitter_ms = half.as_millis() as u64;
    half + Duration::from_millis(if jitter_ms == 0 {
        0
    } else {
        random % (jitter_ms + 1)
    })
}

/// One attempt of one delivery, and what follows from its outcome.
async fn attempt(bus: Bus, job: Job) {
    let Job {
        mut delivery,
        event,
    } = job;
    delivery.attempts += 1;
    let found = {
        let table = bus.inner.rules.read().expect("no panics under the lock");
        table
            .bus(&delivery.bus)
            .and_then(|b| b.get(&delivery.rule))
            .and_then(|info| {
                let target = info
                    .rule
                    .targets
                    .iter()
                    .find(|t| t.id == delivery.target)?
                    .clone();
                Some((info.rule.clone(), target))
            })
    };
    let outcome = match &found {
        None => Err(DeliveryError {
            code: "TargetNotFound".into(),
            message: format!(
                "rule {} or its target {} no longer exists",
                delivery.rule, delivery.target
            ),
            retryable: false,
        }),
        Some((rule, target)) => send(&bus, &delivery, &event, rule, target).await,
    };
    let now = now_ms();
    let policy = found.as_ref().map(|(_, t)| t.retry).unwrap_or_default();
    let mut retry_at = None;
    match outcome {
        Ok(()) => {
            delivery.status = DeliveryStatus::Delivered;
            delivery.due_ms = now;
        }
        Err(e) => {
            let retry = e.retryable;
            delivery.error = Some((e.code, e.message));
            let delay = backoff(
                delivery.attempts,
                bus.inner.config.retry_base,
                bus.inner.config.retry_cap,
                random_u64(),
            );
            let next = now + delay.as_millis() as i64;
            let exhausted = if !retry {
                Some("NonRetryable")
            } else if delivery.attempts > policy.max_attempts {
                Some("MaximumRetryAttempts")
            } else if next - delivery.created_ms > policy.max_age.as_millis() as i64 {
                Some("MaximumEventAge")
            } else {
                None
            };
            match exhausted {
                Some(why) => {
                    delivery.status = DeliveryStatus::DeadLettered;
                    delivery.exhausted = Some(why.into());
                    delivery.due_ms = now;
                    tracing::warn!(
                        "delivery {} of event {} to {}/{} dead-lettered ({why}): {:?}",
                        delivery.id,
                        delivery.event,
                        delivery.rule,
                        delivery.target,
                        delivery.error
                    );
                }
                None => {
                    delivery.due_ms = next;
                    retry_at = Some(next);
                }
            }
        }
    }
    // Recording the outcome is batched and not waited for: if it is lost in a crash, the
    // delivery is still pending in the store and is attempted again (at least once).
    let _ = bus.inner.outcomes.send(delivery.clone());
    if retry_at.is_some() {
        let _ = bus.inner.schedule.send(Job { delivery, event });
    } else {
        bus.inner
            .backlog
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Render the target's input and hand it over.
async fn send(
    bus: &Bus,
    delivery: &Delivery,
    event: &EventRecord,
    rule: &Rule,
    target: &Target,
) -> Result<(), DeliveryError> {
    let mut de = serde_json::Deserializer::from_str(&event.json);
    de.disable_recursion_limit();
    let value: serde_json::Value =
        serde::Deserialize::deserialize(&mut de).map_err(|e| DeliveryError {
            code: "MalformedEvent".into(),
            message: e.to_string(),
            retryable: false,
        })?;
    let span = delivery.id.span_id();
    // What this delivery makes its target publish is one hop deeper than the event.
    let hops = bus.inner.hops.of(event.parent_span.as_deref()) + 1;
    bus.inner.hops.note(&span, hops);
    if let TargetKind::Bus(to) = &target.kind {
        let trace = TraceContext {
            trace_id: event.trace_id.clone(),
            parent_span: Some(span),
        };
        return bus.put_envelope(to, value, trace).await.map(|_| ());
    }
    let config = &bus.inner.config;
    let (body, content_type) = input::render(
        &target.input,
        &value,
        &event.json,
        rule,
        &config.account,
        &config.region,
    )
    .map_err(|message| DeliveryError {
        code: "InvalidInput".into(),
        message,
        retryable: false,
    })?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    use crate::cloudevents::encode_header;
    let mut headers = vec![
        ("ce-specversion", "1.0".to_string()),
        ("ce-id", event.id.to_string()),
        ("ce-source", encode_header(&field("source"))),
        ("ce-type", encode_header(&field("detail-type"))),
        ("ce-time", field("time")),
        (
            "traceparent",
            TraceContext::header_for(&event.trace_id, &span),
        ),
        ("x-muon-delivery", delivery.id.to_string()),
        ("x-muon-rule", rule.name.to_string()),
        ("x-muon-attempt", delivery.attempts.to_string()),
    ];
    if let Some(subject) = value
        .get("resources")
        .and_then(|r| r.get(0))
        .and_then(|r| r.as_str())
    {
        headers.push(("ce-subject", encode_header(subject)));
    }
    bus.inner
        .dispatch
        .deliver(
            &target.kind,
            Message {
                body,
                content_type,
                headers,
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(600);
        for (retry, lo, hi) in [(1, 500, 1000), (2, 1000, 2000), (5, 8000, 16000)] {
            for random in [0, 1, 999, u64::MAX, 123_456_789] {
                let d = backoff(retry, base, cap, random).as_millis() as u64;
                assert!((lo..=hi).contains(&d), "retry {retry}: {d} ms");
            }
        }
        assert!(backoff(40, base, cap, u64::MAX) <= cap);
        assert!(backoff(40, base, cap, 0) >= cap / 2);
        assert_eq!(backoff(3, Duration::ZERO, cap, 7), Duration::ZERO);
    }
}
