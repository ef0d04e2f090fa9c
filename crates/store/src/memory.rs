//! The in-memory model of a [`Store`]: what every backend must agree with.

use std::collections::BTreeMap;
use std::sync::Mutex;

use muon_types::{ArchiveName, BusName, DeliveryId, EventId, RuleName};

use crate::{
    ArchiveRecord, BoxFuture, Delivery, DeliveryStatus, Error, EventQuery, EventRecord,
    ExecutionQuery, ExecutionRecord, HistoryRecord, KeyRecord, Op, Result, RuleRecord,
    StateMachineRecord, StepRecord, Store, Transaction,
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
    archives: BTreeMap<ArchiveName, ArchiveRecord>,
    keys: BTreeMap<String, KeyRecord>,
    next_seq: u64,
    machines: BTreeMap<String, StateMachineRecord>,
    /// Executions in the order they started.
    executions: Vec<Execution>,
    /// ARN -> index in `executions`.
    by_arn: std::collections::HashMap<String, usize>,
}

#[derive(Clone)]
struct Execution {
    record: ExecutionRecord,
    steps: Vec<StepRecord>,
    history: Vec<HistoryRecord>,
}

impl State {
    /// Why `tx` cannot be committed, if it cannot: the checks a backend's constraints make.
    fn conflict(&self, tx: &Transaction) -> Option<String> {
        let mut started = std::collections::HashSet::new();
        let mut stepped = std::collections::HashSet::new();
        for op in &tx.ops {
            match op {
                Op::StartExecution { execution, .. }
                    if self.by_arn.contains_key(&execution.arn)
                        || !started.insert(execution.arn.as_str()) =>
                {
                    return Some(format!("execution {} already exists", execution.arn));
                }
                Op::Step {
                    execution, step, ..
                } => {
                    let known = self.by_arn.get(execution).map(|&i| &self.executions[i]);
                    if known.is_none() && !started.contains(execution.as_str()) {
                        return Some(format!("execution {execution} does not exist"));
                    }
                    let seen = known.is_some_and(|e| e.steps.iter().any(|s| s.seq == step.seq));
                    if seen || !stepped.insert((execution.as_str(), step.seq)) {
                        return Some(format!(
                            "step {} of execution {execution} is already recorded",
                            step.seq
                        ));
                    }
                }
                _ => {}
            }
        }
        None
    }
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
        if let Some(why) = state.conflict(&tx) {
            return ready(Err(Error::Conflict(why)));
        }
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
                Op::PutArchive(a) => {
                    state.archives.insert(a.name.clone(), a);
                }
                Op::DeleteArchive { name } => {
                    state.archives.remove(&name);
                }
                Op::PutKey(k) => {
                    state.keys.insert(k.id.clone(), k);
                }
                Op::SetResumes { execution, resumes } => {
                    if let Some(&i) = state.by_arn.get(&execution) {
                        state.executions[i].record.resumes = resumes;
                    }
                }
                Op::ClearResumes => {
                    for e in &mut state.executions {
                        if e.record.status == "RUNNING" {
                            e.record.resumes = 0;
                        }
                    }
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
                Op::PutStateMachine(m) => {
                    state.machines.insert(m.name.clone(), m);
                }
                Op::DeleteStateMachine { name } => {
                    state.machines.remove(&name);
                }
                Op::StartExecution { execution, history } => {
                    let index = state.executions.len();
                    state.by_arn.insert(execution.arn.clone(), index);
                    state.executions.push(Execution {
                        record: execution,
                        steps: Vec::new(),
                        history,
                    });
                }
                Op::Step {
                    execution,
                    step,
                    history,
                    end,
                } => {
                    let index = state.by_arn[&execution];
                    let e = &mut state.executions[index];
                    e.steps.push(step);
                    e.history.extend(history);
                    if let Some(end) = end {
                        e.record.status = end.status;
                        e.record.stop_ms = Some(end.stop_ms);
                        e.record.output = end.output;
                        e.record.error = end.error;
                        e.record.cause = end.cause;
                    }
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
        let start = match q.after {
            Some(after) => match state.events.iter().position(|e| e.id == after) {
                Some(i) => i + 1,
                None => state.events.len(),
            },
            None => 0,
        };
        let found = state.events[start..]
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

    fn archives(&self) -> BoxFuture<'_, Result<Vec<ArchiveRecord>>> {
        ready(Ok(self.state().archives.values().cloned().collect()))
    }

    fn keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>>> {
        ready(Ok(self.state().keys.values().cloned().collect()))
    }

    fn state_machines(&self) -> BoxFuture<'_, Result<Vec<StateMachineRecord>>> {
        ready(Ok(self.state().machines.values().cloned().collect()))
    }

    fn execution(&self, arn: &str) -> BoxFuture<'_, Result<Option<ExecutionRecord>>> {
        let state = self.state();
        let found = state
            .by_arn
            .get(arn)
            .map(|&i| state.executions[i].record.clone());
        ready(Ok(found))
    }

    fn executions(&self, q: ExecutionQuery) -> BoxFuture<'_, Result<Vec<ExecutionRecord>>> {
        let state = self.state();
        let found = state
            .executions
            .iter()
            .rev()
            .map(|e| &e.record)
            .filter(|r| q.machine.as_ref().is_none_or(|m| &r.machine == m))
            .filter(|r| q.status.as_ref().is_none_or(|s| &r.status == s))
            .take(q.limit)
            .cloned()
            .collect();
        ready(Ok(found))
    }

    fn steps(&self, arn: &str) -> BoxFuture<'_, Result<Vec<StepRecord>>> {
        let state = self.state();
        let found = state
            .by_arn
            .get(arn)
            .map(|&i| state.executions[i].steps.clone())
            .unwrap_or_default();
        ready(Ok(found))
    }

    fn history(
        &self,
        arn: &str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<HistoryRecord>>> {
        let state = self.state();
        let found = state
            .by_arn
            .get(arn)
            .map(|&i| {
                state.executions[i]
                    .history
                    .iter()
                    .filter(|h| h.id > after)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        ready(Ok(found))
    }
}
