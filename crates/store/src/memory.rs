//! The in-memory model of a [`Store`]: what every backend must agree with.

use std::collections::BTreeMap;
use std::sync::Mutex;

use muon_types::{BusName, DeliveryId, EventId, RuleName};

use crate::{
    BoxFuture, Delivery, DeliveryStatus, EventQuery, EventRecord, Op, Result, RuleRecord, Store,
    Transaction,
};

/// A store that keeps everything in memory (lost on exit): for tests and as the model.
#[derive(Default)]
pub struct Memory {
    inner: Mutex<State>,
}

#[derive(Default, Clone)]
struct State {
    /// Events in commit order.
    events: Vec<EventRecord>,
    /// Delivery ID -> (commit sequence of its creation, delivery).
    deliveries: BTreeMap<DeliveryId, (u64, Delivery)>,
    rules: BTreeMap<(BusName, RuleName), RuleRecord>,
    next_seq: u64,
}

impl Memory {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().expect("no panics while the lock is held")
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(value))
}

impl Store for Memory {
    fn commit(&self, tx: Transaction) -> BoxFuture<'_, Result<()>> {
        let mut state = self.state();
        for op in tx.ops {
            match op {
                Op::AppendEvent(e) => state.events.push(e),
                Op::PutDelivery(d) => {
                    let seq = match state.deliveries.get(&d.id) {
                        Some((seq, _)) => *seq,
                        None => {
                            state.next_seq += 1;
                            state.next_seq
                        }
                    };
                    state.deliveries.insert(d.id, (seq, d));
                }
                Op::PutRule(r) => {
                    state.rules.insert((r.bus.clone(), r.name.clone()), r);
                }
                Op::DeleteRule { bus, name } => {
                    state.rules.remove(&(bus, name));
                }
                Op::Prune { before_ms } => {
                    let kept: std::collections::HashSet<EventId> = state
                        .deliveries
                        .values()
                        .filter(|(_, d)| d.status != DeliveryStatus::Delivered)
                        .map(|(_, d)| d.event)
                        .collect();
                    let gone: std::collections::HashSet<EventId> = state
                        .events
                        .iter()
                        .filter(|e| e.ingested_ms < before_ms && !kept.contains(&e.id))
                        .map(|e| e.id)
                        .collect();
                    state.events.retain(|e| !gone.contains(&e.id));
                    state
                        .deliveries
                        .retain(|_, (_, d)| !gone.contains(&d.event));
                }
            }
        }
        ready(Ok(()))
    }

    fn event(&self, id: EventId) -> BoxFuture<'_, Result<Option<EventRecord>>> {
        ready(Ok(self.state().events.iter().find(|e| e.id == id).cloned()))
    }

    fn events(&self, q: EventQuery) -> BoxFuture<'_, Result<Vec<EventRecord>>> {
        let state = self.state();
        let found = state
            .events
            .iter()
            .filter(|e| q.bus.as_ref().is_none_or(|b| &e.bus == b))
            .filter(|e| q.from_ms.is_none_or(|t| e.ingested_ms >= t))
            .filter(|e| q.to_ms.is_none_or(|t| e.ingested_ms < t))
            .filter(|e| {
                q.parent_span
                    .as_ref()
                    .is_none_or(|s| e.parent_span.as_ref() == Some(s))
            })
            .take(q.limit)
            .cloned()
            .collect();
        ready(Ok(found))
    }

    fn delivery(&self, id: DeliveryId) -> BoxFuture<'_, Result<Option<Delivery>>> {
        ready(Ok(self.state().deliveries.get(&id).map(|(_, d)| d.clone())))
    }

    fn deliveries(
        &self,
        status: DeliveryStatus,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Delivery>>> {
        let state = self.state();
        let mut found: Vec<_> = state
            .deliveries
            .values()
            .filter(|(_, d)| d.status == status)
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        ready(Ok(found
            .into_iter()
            .take(limit)
            .map(|(_, d)| d.clone())
            .collect()))
    }

    fn deliveries_of(&self, event: EventId) -> BoxFuture<'_, Result<Vec<Delivery>>> {
        let state = self.state();
        let mut found: Vec<_> = state
            .deliveries
            .values()
            .filter(|(_, d)| d.event == event)
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        ready(Ok(found.into_iter().map(|(_, d)| d.clone()).collect()))
    }

    fn rules(&self) -> BoxFuture<'_, Result<Vec<RuleRecord>>> {
        ready(Ok(self.state().rules.values().cloned().collect()))
    }
}
