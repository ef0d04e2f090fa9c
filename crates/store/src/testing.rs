//! The trait tests every backend runs: random sequences of transactions, committed to the
//! backend and to [`Memory`], must read back the same.

use muon_types::{ArchiveName, BusName, DeliveryId, EventId, RuleName};

use crate::{
    ArchiveRecord, Delivery, DeliveryStatus, EventQuery, EventRecord, ExecutionEnd, ExecutionQuery,
    ExecutionRecord, HistoryRecord, Memory, Op, RuleRecord, StateMachineRecord, StepRecord, Store,
    Transaction,
};

/// A small deterministic generator (xorshift), so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Commit `rounds` random transactions to `store` and to the model, checking after each that
/// every query answers the same. Panics with the seed and round on a difference.
pub async fn agrees_with_model(store: &dyn Store, seed: u64, rounds: usize) {
    let model = Memory::new();
    let mut rng = Rng(seed | 1);
    let buses = [BusName::default_bus(), BusName::new("orders").unwrap()];
    let rules = [
        RuleName::new("a").unwrap(),
        RuleName::new("b").unwrap(),
        RuleName::new("c").unwrap(),
    ];
    let mut events: Vec<EventId> = Vec::new();
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut spans: Vec<String> = vec!["00000000000000aa".into()];
    // ARN -> (steps recorded, history events recorded, ended).
    let mut executions: Vec<(String, u64, u64, bool)> = Vec::new();
    let machines = ["order", "refund"];
    for round in 0..rounds {
        let mut tx = Transaction::new();
        for _ in 0..=rng.below(4) {
            match rng.below(12) {
                7 => {
                    let name = machines[rng.below(2) as usize].to_string();
                    if rng.below(4) == 0 {
                        tx.push(Op::DeleteStateMachine { name });
                    } else {
                        tx.push(Op::PutStateMachine(StateMachineRecord {
                            name,
                            kind: ["STANDARD", "EXPRESS"][rng.below(2) as usize].into(),
                            definition: format!("{{\"v\":{}}}", rng.next()),
                            created_ms: round as i64,
                        }));
                    }
                }
                8 => {
                    let machine = machines[rng.below(2) as usize];
                    let arn = format!("arn:aws:states:local:0:execution:{machine}:{}", rng.next());
                    let events = rng.below(3);
                    tx.push(Op::StartExecution {
                        execution: ExecutionRecord {
                            arn: arn.clone(),
                            machine: machine.into(),
                            name: arn.rsplit(':').next().unwrap_or_default().into(),
                            status: "RUNNING".into(),
                            start_ms: round as i64,
                            stop_ms: None,
                            input: "{}".into(),
                            output: None,
                            error: None,
                            cause: None,
                            definition: "{}".into(),
                            info: format!("{{\"seed\":{}}}", rng.next()),
                            resumes: 0,
                        },
                        history: (1..=events)
                            .map(|id| HistoryRecord {
                                id,
                                json: format!("{{\"id\":{id}}}"),
                            })
                            .collect(),
                    });
                    executions.push((arn, 0, events, false));
                }
                9 | 10 if !executions.is_empty() => {
                    let i = rng.below(executions.len() as u64) as usize;
                    let (arn, steps, events, ended) = &mut executions[i];
                    if *ended {
                        continue;
                    }
                    match rng.below(6) {
                        0 => tx.push(Op::SetResumes {
                            execution: arn.clone(),
                            resumes: rng.below(4) as u32,
                        }),
                        1 => tx.push(Op::ClearResumes),
                        _ => &mut tx,
                    };
                    // Now and then a step recorded twice: both must refuse it.
                    let seq = if *steps > 0 && rng.below(8) == 0 {
                        *steps
                    } else {
                        *steps += 1;
                        *steps
                    };
                    let history: Vec<HistoryRecord> = (0..rng.below(4))
                        .map(|_| {
                            *events += 1;
                            HistoryRecord {
                                id: *events,
                                json: format!("{{\"id\":{events}}}"),
                            }
                        })
                        .collect();
                    let end = (rng.below(4) == 0).then(|| {
                        *ended = true;
                        ExecutionEnd {
                            status: "SUCCEEDED".into(),
                            stop_ms: round as i64,
                            output: Some("{\"ok\":true}".into()),
                            error: None,
                            cause: None,
                        }
                    });
                    tx.push(Op::Step {
                        execution: arn.clone(),
                        step: StepRecord {
                            seq,
                            at_ms: round as i64,
                            input: format!("{{\"n\":{seq}}}"),
                        },
                        history,
                        end,
                    });
                }
                6 => {
                    tx.push(Op::Prune {
                        before_ms: 1_000 + rng.below(round as u64 * 10 + 1) as i64,
                    });
                }
                0 | 1 => {
                    let id = EventId::random();
                    events.push(id);
                    let parent_span = match rng.below(3) {
                        0 => Some(spans[rng.below(spans.len() as u64) as usize].clone()),
                        _ => None,
                    };
                    tx.push(Op::AppendEvent(EventRecord {
                        id,
                        bus: buses[rng.below(2) as usize].clone(),
                        ingested_ms: 1_000 + round as i64 * 10 + rng.below(10) as i64,
                        json: format!("{{\"id\":\"{id}\",\"n\":{}}}", rng.next()),
                        trace_id: format!("{:032x}", rng.next()),
                        parent_span,
                        replay: (rng.below(4) == 0).then(|| "r1".to_string()),
                    }));
                }
                2 if !events.is_empty() => {
                    let d = Delivery {
                        id: DeliveryId::random(),
                        event: events[rng.below(events.len() as u64) as usize],
                        bus: buses[rng.below(2) as usize].clone(),
                        rule: rules[rng.below(3) as usize].clone(),
                        target: format!("t{}", rng.below(5)),
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        created_ms: round as i64,
                        due_ms: round as i64,
                        error: None,
                        exhausted: None,
                    };
                    spans.push(d.id.span_id());
                    deliveries.push(d.clone());
                    tx.push(Op::PutDelivery(d));
                }
                3 if !deliveries.is_empty() => {
                    let i = rng.below(deliveries.len() as u64) as usize;
                    let d = &mut deliveries[i];
                    d.attempts += 1;
                    d.due_ms += rng.below(1000) as i64;
                    match rng.below(3) {
                        0 => d.status = DeliveryStatus::Delivered,
                        1 => {
                            d.status = DeliveryStatus::DeadLettered;
                            d.error = Some(("Timeout".into(), "took \"too\" long".into()));
                            d.exhausted = Some("MaximumRetryAttempts".into());
                        }
                        _ => {
                            d.status = DeliveryStatus::Pending;
                            d.error = Some(("HttpError".into(), "503".into()));
                        }
                    }
                    tx.push(Op::PutDelivery(d.clone()));
                }
                11 => {
                    let name = ArchiveName::new(["orders", "audit"][rng.below(2) as usize])
                        .expect("a valid archive name");
                    if rng.below(3) == 0 {
                        tx.push(Op::DeleteArchive { name });
                    } else if rng.below(2) == 0 {
                        tx.push(Op::PutArchive(ArchiveRecord {
                            name,
                            json: format!("{{\"v\":{}}}", rng.next()),
                        }));
                    } else {
                        tx.push(Op::PutKey(crate::KeyRecord {
                            id: format!("k{}", rng.below(3)),
                            json: format!("{{\"v\":{}}}", rng.next()),
                        }));
                    }
                }
                4 => {
                    tx.push(Op::PutRule(RuleRecord {
                        bus: buses[rng.below(2) as usize].clone(),
                        name: rules[rng.below(3) as usize].clone(),
                        json: format!("{{\"v\":{}}}", rng.next()),
                    }));
                }
                _ => {
                    tx.push(Op::DeleteRule {
                        bus: buses[rng.below(2) as usize].clone(),
                        name: rules[rng.below(3) as usize].clone(),
                    });
                }
            }
        }
        let (a, b) = (store.commit(tx.clone()).await, model.commit(tx).await);
        assert_eq!(
            a.is_ok(),
            b.is_ok(),
            "seed {seed} round {round}: the store answered {a:?}, the model {b:?}"
        );
        if let Err(e) = &a {
            assert!(
                matches!(e, crate::Error::Conflict(_)),
                "seed {seed} round {round}: {e}"
            );
            // A refused transaction leaves nothing behind: forget what it would have written.
            let mut kept = Vec::new();
            for e in executions.drain(..) {
                if model.execution(&e.0).await.unwrap().is_some() {
                    kept.push(e);
                }
            }
            executions = kept;
            resync(&model, &mut executions).await;
        }
        let context = |what: &str| format!("seed {seed} round {round}: {what} differ");
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::DeadLettered,
        ] {
            assert_eq!(
                store.deliveries(status, 1000).await.unwrap(),
                model.deliveries(status, 1000).await.unwrap(),
                "{}",
                context(status.as_str())
            );
        }
        let mut rules_a = store.rules().await.unwrap();
        let mut rules_b = model.rules().await.unwrap();
        rules_a.sort_by(|x, y| (&x.bus, &x.name).cmp(&(&y.bus, &y.name)));
        rules_b.sort_by(|x, y| (&x.bus, &x.name).cmp(&(&y.bus, &y.name)));
        assert_eq!(rules_a, rules_b, "{}", context("rules"));
        assert_eq!(
            store.archives().await.unwrap(),
            model.archives().await.unwrap(),
            "{}",
            context("archives")
        );
        assert_eq!(
            store.keys().await.unwrap(),
            model.keys().await.unwrap(),
            "{}",
            context("keys")
        );
        let query = EventQuery {
            bus: (rng.below(2) == 0).then(|| buses[rng.below(2) as usize].clone()),
            from_ms: (rng.below(2) == 0).then(|| 1_000 + rng.below(round as u64 * 10 + 1) as i64),
            to_ms: (rng.below(2) == 0).then(|| 1_000 + rng.below(round as u64 * 10 + 20) as i64),
            parent_span: (rng.below(3) == 0)
                .then(|| spans[rng.below(spans.len() as u64) as usize].clone()),
            after: (rng.below(3) == 0 && !events.is_empty())
                .then(|| events[rng.below(events.len() as u64) as usize]),
            limit: 1 + rng.below(50) as usize,
        };
        assert_eq!(
            store.events(query.clone()).await.unwrap(),
            model.events(query).await.unwrap(),
            "{}",
            context("events")
        );
        if let Some(&id) = events.last() {
            assert_eq!(
                store.event(id).await.unwrap(),
                model.event(id).await.unwrap(),
                "{}",
                context("event")
            );
            assert_eq!(
                store.deliveries_of(id).await.unwrap(),
                model.deliveries_of(id).await.unwrap(),
                "{}",
                context("deliveries of an event")
            );
        }
        let mut machines_a = store.state_machines().await.unwrap();
        machines_a.sort_by(|x, y| x.name.cmp(&y.name));
        let mut machines_b = model.state_machines().await.unwrap();
        machines_b.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(machines_a, machines_b, "{}", context("state machines"));
        let query = ExecutionQuery {
            machine: (rng.below(2) == 0).then(|| machines[rng.below(2) as usize].to_string()),
            status: (rng.below(2) == 0)
                .then(|| ["RUNNING", "SUCCEEDED"][rng.below(2) as usize].to_string()),
            limit: 1 + rng.below(20) as usize,
        };
        assert_eq!(
            store.executions(query.clone()).await.unwrap(),
            model.executions(query).await.unwrap(),
            "{}",
            context("executions")
        );
        if !executions.is_empty() {
            let arn = &executions[rng.below(executions.len() as u64) as usize].0;
            assert_eq!(
                store.execution(arn).await.unwrap(),
                model.execution(arn).await.unwrap(),
                "{}",
                context("execution")
            );
            assert_eq!(
                store.steps(arn).await.unwrap(),
                model.steps(arn).await.unwrap(),
                "{}",
                context("steps")
            );
            let after = rng.below(4);
            assert_eq!(
                store.history(arn, after, 3).await.unwrap(),
                model.history(arn, after, 3).await.unwrap(),
                "{}",
                context("history")
            );
        }
        if let Some(d) = deliveries.first() {
            assert_eq!(
                store.delivery(d.id).await.unwrap(),
                model.delivery(d.id).await.unwrap(),
                "{}",
                context("delivery")
            );
        }
    }
}

/// After a refused transaction, count the executions' steps and events from the model again.
async fn resync(model: &Memory, executions: &mut [(String, u64, u64, bool)]) {
    for (arn, steps, events, ended) in executions.iter_mut() {
        *steps = model.steps(arn).await.unwrap().len() as u64;
        *events = model
            .history(arn, 0, usize::MAX)
            .await
            .unwrap()
            .last()
            .map_or(0, |h| h.id);
        *ended = model
            .execution(arn)
            .await
            .unwrap()
            .is_some_and(|e| e.status != "RUNNING");
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_model_agrees_with_itself() {
        let store = crate::Memory::new();
        super::agrees_with_model(&store, 7, 200).await;
    }
}
