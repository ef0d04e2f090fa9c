//! The bus end to end against the in-memory store and a recording dispatcher.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use muon_bus::{
    Bus, Config, DeliveryError, DeliveryStatus, Dispatch, Edit, EntryResult, Error, Message,
    Origin, PutEntry, PutError,
};
use muon_manifest::{Rule, TargetKind};
use muon_store::{BoxFuture, Memory, Store};
use muon_types::{BusName, EventId, RuleName};

/// Records every message; answers with what `answer` says for the target.
#[derive(Clone, Default)]
struct Recorder {
    got: Arc<Mutex<Vec<(String, Message)>>>,
    /// Failures to answer before succeeding, per target description.
    fail: Arc<Mutex<std::collections::HashMap<String, (u32, bool)>>>,
}

impl Recorder {
    fn failing(self, target: &str, times: u32, retryable: bool) -> Self {
        self.fail
            .lock()
            .unwrap()
            .insert(target.into(), (times, retryable));
        self
    }

    fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|(t, _)| t.clone())
            .collect();
        t.sort();
        t
    }
}

impl Dispatch for Recorder {
    fn deliver(
        &self,
        target: &TargetKind,
        message: Message,
    ) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let name = target.describe();
        self.got.lock().unwrap().push((name.clone(), message));
        let mut fail = self.fail.lock().unwrap();
        let result = match fail.get_mut(&name) {
            Some((n, retryable)) if *n > 0 => {
                *n -= 1;
                Err(DeliveryError {
                    code: "FunctionError".into(),
                    message: "HTTP 500".into(),
                    retryable: *retryable,
                })
            }
            _ => Ok(()),
        };
        Box::pin(std::future::ready(result))
    }
}

fn rule(json: &str) -> Rule {
    Rule::from_api_json(json).unwrap()
}

fn config(rules: Vec<Rule>) -> Config {
    Config {
        buses: vec![BusName::default_bus(), BusName::new("audit").unwrap()],
        rules,
        retry_base: Duration::from_millis(1),
        retry_cap: Duration::from_millis(4),
        ..Default::default()
    }
}

fn order_rule() -> Rule {
    rule(
        r#"{"Name":"order-placed","EventPattern":{"source":["shop"],"detail-type":["OrderPlaced"]},
            "Targets":[{"Function":"inventory"},{"Function":"email"},{"Function":"fraud"},{"Function":"warehouse"}]}"#,
    )
}

fn entry(detail: &str) -> PutEntry {
    PutEntry {
        source: Some("shop".into()),
        detail_type: Some("OrderPlaced".into()),
        detail: Some(detail.into()),
        ..Default::default()
    }
}

async fn accepted(bus: &Bus, entries: Vec<PutEntry>) -> Vec<EventId> {
    bus.put_events(entries, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| match r {
            EntryResult::Accepted(id) => id,
            EntryResult::Failed { code, message } => panic!("{code}: {message}"),
        })
        .collect()
}

/// Wait (bounded) until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn statuses(store: &Memory, id: EventId) -> Vec<DeliveryStatus> {
    store
        .deliveries_of(id)
        .await
        .unwrap()
        .iter()
        .map(|d| d.status)
        .collect()
}

#[tokio::test]
async fn one_event_fans_out_to_four_functions_with_cloudevents_headers() {
    let store = Arc::new(Memory::new());
    let recorder = Recorder::default();
    let bus = Bus::start(
        config(vec![order_rule()]),
        store.clone(),
        Arc::new(recorder.clone()),
    )
    .await
    .unwrap();
    let ids = accepted(
        &bus,
        vec![PutEntry {
            resources: vec!["arn:shop:order/ö 1".into()],
            ..entry(r#"{"order":"o-1","total":42}"#)
        }],
    )
    .await;
    eventually("four deliveries", async || {
        statuses(&store, ids[0]).await == vec![DeliveryStatus::Delivered; 4]
    })
    .await;
    assert_eq!(
        recorder.targets(),
        [
            "function:email",
            "function:fraud",
            "function:inventory",
            "function:warehouse"
        ]
    );
    let got = recorder.got.lock().unwrap();
    let message = &got[0].1;
    let header = |name: &str| {
        message
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(header("ce-specversion"), "1.0");
    assert_eq!(header("ce-id"), ids[0].to_string());
    assert_eq!(header("ce-source"), "shop");
    assert_eq!(header("ce-type"), "OrderPlaced");
    // CloudEvents percent-encodes what is not printable ASCII (and space, `"`, `%`).
    assert_eq!(header("ce-subject"), "arn:shop:order/%C3%B6%201");
    assert!(header("traceparent").starts_with("00-"));
    let body: serde_json::Value = serde_json::from_str(&message.body).unwrap();
    assert_eq!(body["detail"]["order"], "o-1");
    assert_eq!(body["version"], "0");
    assert_eq!(body["id"], ids[0].to_string());
    assert_eq!(message.content_type, "application/json");
}

#[tokio::test]
async fn control_characters_in_header_fields_are_refused_per_entry() {
    let store = Arc::new(Memory::new());
    let bus = Bus::start(
        config(vec![order_rule()]),
        store.clone(),
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap();
    let results = bus
        .put_events(
            vec![
                PutEntry {
                    source: Some("shop\r\nx-evil: 1".into()),
                    ..entry("{}")
                },
                PutEntry {
                    detail_type: Some("Order\0Placed".into()),
                    ..entry("{}")
                },
                PutEntry {
                    resources: vec!["arn:x\n".into()],
                    ..entry("{}")
                },
                PutEntry {
                    source: Some("shöp.ünïcode".into()),
                    ..entry("{}")
                },
            ],
            None,
        )
        .await
        .unwrap();
    let codes: Vec<&str> = results
        .iter()
        .map(|r| match r {
            EntryResult::Accepted(_) => "ok",
            EntryResult::Failed { code, .. } => code.as_str(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "InvalidArgument",
            "InvalidArgument",
            "InvalidArgument",
            "ok"
        ]
    );
}

#[tokio::test]
async fn a_rule_that_targets_its_own_bus_is_cut_after_max_hops() {
    let store = Arc::new(Memory::new());
    let rules = vec![rule(
        r#"{"Name":"loop","EventPattern":{"source":["loop"]},"Targets":[{"Bus":"default"}]}"#,
    )];
    let bus = Bus::start(config(rules), store.clone(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    accepted(
        &bus,
        vec![PutEntry {
            source: Some("loop".into()),
            ..entry("{}")
        }],
    )
    .await;
    let dead = || async {
        store
            .deliveries(DeliveryStatus::DeadLettered, 10)
            .await
            .unwrap()
    };
    eventually("the loop cut", async || !dead().await.is_empty()).await;
    let cut = dead().await;
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].error.as_ref().unwrap().0, "LoopDetected");
    let events = store
        .events(muon_store::EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len() as u32, muon_bus::MAX_HOPS + 1);
    // The trace of the loop is whole (fewer events than a trace's limit), and says so.
    let first = events.first().unwrap().id;
    let mut node = bus.trace(first).await.unwrap().unwrap();
    let mut depth = 0;
    while let Some((_, children)) = node.deliveries.first().cloned() {
        assert!(!node.cut);
        let Some(child) = children.into_iter().next() else {
            break;
        };
        node = child;
        depth += 1;
    }
    assert_eq!(depth, muon_bus::MAX_HOPS);
}

#[tokio::test]
async fn bad_entries_fail_one_by_one_and_bad_requests_whole() {
    let store = Arc::new(Memory::new());
    let bus = Bus::start(
        config(vec![order_rule()]),
        store.clone(),
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap();
    let deep = format!("{}1{}", "{\"a\":".repeat(129), "}".repeat(129));
    let results = bus
        .put_events(
            vec![
                entry(r#"{"ok":true}"#),
                entry("{not json"),
                entry("[1, 2]"),
                entry(&deep),
                PutEntry {
                    source: None,
                    ..entry("{}")
                },
                PutEntry {
                    detail_type: Some("x".repeat(129)),
                    ..entry("{}")
                },
                PutEntry {
                    event_bus_name: Some("nowhere".into()),
                    ..entry("{}")
                },
                PutEntry {
                    source: Some("aws.ec2".into()),
                    ..entry("{}")
                },
                PutEntry {
                    time: Some("yesterday".into()),
                    ..entry("{}")
                },
                PutEntry {
                    detail: None,
                    ..entry("{}")
                },
            ],
            None,
        )
        .await
        .unwrap();
    let codes: Vec<&str> = results
        .iter()
        .map(|r| match r {
            EntryResult::Accepted(_) => "ok",
            EntryResult::Failed { code, .. } => code.as_str(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "MalformedDetail",
            "MalformedDetail",
            "MalformedDetail",
            "InvalidArgument",
            "InvalidArgument",
            "ResourceNotFoundException",
            "NotAuthorizedForSourceException",
            "InvalidArgument",
            "InvalidArgument"
        ]
    );
    // Only the good entry was stored.
    let all = store
        .events(muon_store::EventQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    let eleven = (0..11).map(|_| entry("{}")).collect();
    assert!(matches!(
        bus.put_events(eleven, None).await,
        Err(PutError::Validation(m)) if m.contains("between 1 and 10")
    ));
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024));
    assert!(matches!(
        bus.put_events(vec![entry(&big)], None).await,
        Err(PutError::Validation(m)) if m.contains("over the limit")
    ));
    assert!(matches!(
        bus.put_events(vec![], None).await,
        Err(PutError::Validation(_))
    ));
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_and_redriven() {
    let store = Arc::new(Memory::new());
    let recorder = Recorder::default()
        .failing("function:inventory", 2, true)
        .failing("function:email", 1000, true)
        .failing("function:fraud", 1, false);
    let mut r = order_rule();
    for t in &mut r.targets {
        t.retry.max_attempts = 3;
    }
    let bus = Bus::start(config(vec![r]), store.clone(), Arc::new(recorder.clone()))
        .await
        .unwrap();
    let ids = accepted(&bus, vec![entry("{}")]).await;
    eventually("all settled", async || {
        !statuses(&store, ids[0])
            .await
            .contains(&DeliveryStatus::Pending)
    })
    .await;
    let deliveries = store.deliveries_of(ids[0]).await.unwrap();
    let by_target = |t: &str| deliveries.iter().find(|d| d.target == t).unwrap().clone();
    let inventory = by_target("inventory");
    assert_eq!(
        (inventory.status, inventory.attempts),
        (DeliveryStatus::Delivered, 3)
    );
    let email = by_target("email");
    assert_eq!(email.status, DeliveryStatus::DeadLettered);
    assert_eq!(email.attempts, 4, "1 attempt + 3 retries");
    assert_eq!(email.exhausted.as_deref(), Some("MaximumRetryAttempts"));
    assert_eq!(email.error.as_ref().unwrap().0, "FunctionError");
    let fraud = by_target("fraud");
    assert_eq!(
        (fraud.attempts, fraud.exhausted.as_deref()),
        (1, Some("NonRetryable"))
    );
    assert_eq!(by_target("warehouse").status, DeliveryStatus::Delivered);

    let dead = bus.dead_letters(100).await.unwrap();
    assert_eq!(dead.len(), 2);
    recorder.fail.lock().unwrap().clear();
    assert_eq!(bus.redrive(None).await.unwrap(), 2);
    eventually("redriven", async || {
        statuses(&store, ids[0]).await == vec![DeliveryStatus::Delivered; 4]
    })
    .await;
    assert!(bus.dead_letters(100).await.unwrap().is_empty());
}

#[tokio::test]
async fn pending_deliveries_resume_after_a_restart() {
    let store = Arc::new(Memory::new());
    let ids = {
        // A bus whose targets fail for a long time, then "crashes" (is dropped).
        let mut c = config(vec![order_rule()]);
        c.retry_base = Duration::from_secs(3600);
        c.retry_cap = Duration::from_secs(3600);
        let failing = Recorder::default()
            .failing("function:inventory", 1000, true)
            .failing("function:email", 1000, true)
            .failing("function:fraud", 1000, true)
            .failing("function:warehouse", 1000, true);
        let bus = Bus::start(c, store.clone(), Arc::new(failing.clone()))
            .await
            .unwrap();
        let ids = accepted(&bus, vec![entry("{}"), entry("{}")]).await;
        eventually("first attempts recorded", async || {
            let pending = store
                .deliveries(DeliveryStatus::Pending, 100)
                .await
                .unwrap();
            pending.len() == 8 && pending.iter().all(|d| d.attempts == 1)
        })
        .await;
        ids
    };
    let pending = store
        .deliveries(DeliveryStatus::Pending, 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 8);
    // The retry is an hour away; a restarted bus still has it, due then. Make it due now.
    let mut tx = muon_store::Transaction::new();
    for mut d in pending {
        d.due_ms = 0;
        tx.push(muon_store::Op::PutDelivery(d));
    }
    store.commit(tx).await.unwrap();
    let recorder = Recorder::default();
    let _bus = Bus::start(
        config(vec![order_rule()]),
        store.clone(),
        Arc::new(recorder.clone()),
    )
    .await
    .unwrap();
    for id in ids {
        eventually("resumed", async || {
            statuses(&store, id).await == vec![DeliveryStatus::Delivered; 4]
        })
        .await;
    }
    assert_eq!(recorder.got.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn bus_targets_chain_and_the_trace_shows_the_tree() {
    let store = Arc::new(Memory::new());
    let recorder = Recorder::default();
    let rules = vec![
        rule(
            r#"{"Name":"forward","EventPattern":{"source":["shop"]},
                "Targets":[{"Bus":"audit"},{"Function":"inventory"}]}"#,
        ),
        rule(
            r#"{"Name":"audit-log","EventBusName":"audit","EventPattern":{"source":["shop"]},
                "Targets":[{"Id":"log","Url":"http://127.0.0.1:9/log","InputPath":"$.detail"}]}"#,
        ),
    ];
    let bus = Bus::start(config(rules), store.clone(), Arc::new(recorder.clone()))
        .await
        .unwrap();
    let ids = accepted(&bus, vec![entry(r#"{"n":1}"#)]).await;
    eventually("two hops", async || recorder.got.lock().unwrap().len() == 2).await;
    eventually("all delivered", async || {
        let tree = bus.trace(ids[0]).await.unwrap().unwrap();
        tree.deliveries.len() == 2
            && tree
                .deliveries
                .iter()
                .all(|(d, _)| d.status == DeliveryStatus::Delivered)
            && tree.deliveries.iter().any(|(_, children)| {
                children.len() == 1
                    && children[0].deliveries.len() == 1
                    && children[0].deliveries[0].0.status == DeliveryStatus::Delivered
            })
    })
    .await;
    let tree = bus.trace(ids[0]).await.unwrap().unwrap();
    let (_, children) = tree
        .deliveries
        .iter()
        .find(|(d, _)| d.target == "bus-audit")
        .unwrap();
    assert_eq!(children[0].event.bus.as_str(), "audit");
    assert_eq!(children[0].event.trace_id, tree.event.trace_id, "one trace");
    let got = recorder.got.lock().unwrap();
    let log = got.iter().find(|(t, _)| t.starts_with("http://")).unwrap();
    assert_eq!(log.1.body, r#"{"n":1}"#);
}

#[tokio::test]
async fn api_rules_are_stored_and_manifest_rules_are_read_only() {
    let store = Arc::new(Memory::new());
    let recorder = Recorder::default();
    let bus = Bus::start(
        config(vec![order_rule()]),
        store.clone(),
        Arc::new(recorder.clone()),
    )
    .await
    .unwrap();
    let api = rule(
        r#"{"Name":"big-orders","EventPattern":{"detail":{"total":[{"numeric":[">",100]}]}},
            "Targets":[{"Function":"fraud","Id":"fraud-check"}]}"#,
    );
    bus.put_rule(api.clone()).await.unwrap();
    assert!(
        bus.put_rule(order_rule()).await.is_err(),
        "a manifest rule was replaced"
    );
    assert_eq!(bus.rules().len(), 2);
    // A second bus on the same store sees the stored rule.
    let again = Bus::start(config(vec![]), store.clone(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    assert_eq!(again.rules().len(), 1);
    drop(again);
    let ids = accepted(
        &bus,
        vec![entry(r#"{"total":150}"#), entry(r#"{"total":50}"#)],
    )
    .await;
    eventually("delivered", async || {
        recorder.got.lock().unwrap().len() == 9
    })
    .await;
    assert_eq!(store.deliveries_of(ids[0]).await.unwrap().len(), 5);
    assert_eq!(store.deliveries_of(ids[1]).await.unwrap().len(), 4);
    bus.delete_rule(&BusName::default_bus(), &api.name)
        .await
        .unwrap();
    assert!(
        bus.delete_rule(&BusName::default_bus(), &api.name)
            .await
            .is_err()
    );
    assert_eq!(bus.rules().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_edits_are_one_at_a_time_stored_and_refused_for_manifest_rules() {
    let store = Arc::new(Memory::new());
    let bus = Bus::start(
        config(vec![order_rule()]),
        store.clone(),
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap();
    let default = BusName::default_bus();
    let name = RuleName::new("edited").unwrap();
    // Reading one rule: found with its origin, or the error AWS would name.
    let manifest = bus
        .rule(&default, &RuleName::new("order-placed").unwrap())
        .unwrap();
    assert_eq!(manifest.origin, Origin::Manifest);
    assert!(matches!(
        bus.rule(&default, &name),
        Err(Error::NoSuchRule(..))
    ));
    assert!(matches!(
        bus.rule(&BusName::new("nowhere").unwrap(), &name),
        Err(Error::NoSuchBus(_))
    ));
    // Create it through an edit that sees no rule.
    let saw = bus
        .edit_rule(&default, &name, |r| {
            (
                Edit::Put(rule(
                    r#"{"Name":"edited","EventPattern":{"source":["shop"]}}"#,
                )),
                r.is_none(),
            )
        })
        .await
        .unwrap();
    assert!(saw);
    // Five concurrent read-modify-writes, each adding one target: none is lost.
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (bus, default, name) = (bus.clone(), default.clone(), name.clone());
        tasks.push(tokio::spawn(async move {
            bus.edit_rule(&default, &name, |r| {
                let mut r = r.expect("the rule exists").clone();
                r.targets.push(
                    muon_manifest::Target::from_api_json(
                        serde_json::json!({"Id": format!("t{i}"), "Function": "email"}),
                    )
                    .unwrap(),
                );
                (Edit::Put(r), ())
            })
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(bus.rule(&default, &name).unwrap().rule.targets.len(), 5);
    // A sixth would not read back: refused, and nothing changes.
    let refused = bus
        .edit_rule(&default, &name, |r| {
            let mut r = r.unwrap().clone();
            r.targets.push(r.targets[0].clone());
            (Edit::Put(r), ())
        })
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidRule(..))),
        "{refused:?}"
    );
    assert_eq!(bus.rule(&default, &name).unwrap().rule.targets.len(), 5);
    // Keep writes nothing; the stored rule is the edited one, across a restart.
    bus.edit_rule(&default, &name, |_| (Edit::Keep, ()))
        .await
        .unwrap();
    let again = Bus::start(config(vec![]), store.clone(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    let stored = again.rule(&default, &name).unwrap();
    assert_eq!(stored.origin, Origin::Api);
    assert_eq!(stored.rule.targets.len(), 5);
    drop(again);
    // An edit cannot move a rule: a Put keeps the edited bus and name.
    bus.edit_rule(&default, &name, |r| {
        let mut r = r.unwrap().clone();
        r.name = RuleName::new("elsewhere").unwrap();
        r.enabled = false;
        (Edit::Put(r), ())
    })
    .await
    .unwrap();
    assert!(!bus.rule(&default, &name).unwrap().rule.enabled);
    assert!(
        bus.rule(&default, &RuleName::new("elsewhere").unwrap())
            .is_err()
    );
    // Manifest rules are refused before the edit runs; unknown buses too.
    let refused = bus
        .edit_rule(
            &default,
            &RuleName::new("order-placed").unwrap(),
            |_| -> (Edit, ()) { panic!("a manifest rule was shown to an edit") },
        )
        .await;
    assert!(
        matches!(refused, Err(Error::ManifestRule(_))),
        "{refused:?}"
    );
    assert!(matches!(
        bus.edit_rule(&BusName::new("nowhere").unwrap(), &name, |_| (
            Edit::Delete,
            ()
        ))
        .await,
        Err(Error::NoSuchBus(_))
    ));
    // Delete, then deleting again is a no-op for an edit (delete_rule says it is missing).
    bus.edit_rule(&default, &name, |_| (Edit::Delete, ()))
        .await
        .unwrap();
    assert!(bus.rule(&default, &name).is_err());
    bus.edit_rule(&default, &name, |r| {
        assert!(r.is_none());
        (Edit::Delete, ())
    })
    .await
    .unwrap();
    assert!(matches!(
        bus.delete_rule(&default, &name).await,
        Err(Error::NoSuchRule(..))
    ));
    assert_eq!(store.rules().await.unwrap().len(), 0);
}

#[tokio::test]
async fn replay_sends_a_window_of_events_through_chosen_rules_again() {
    let store = Arc::new(Memory::new());
    let recorder = Recorder::default();
    let rules = vec![
        order_rule(),
        rule(
            r#"{"Name":"all","EventPattern":{"source":["shop"]},"Targets":[{"Url":"http://127.0.0.1:9/x"}]}"#,
        ),
    ];
    let bus = Bus::start(config(rules), store.clone(), Arc::new(recorder.clone()))
        .await
        .unwrap();
    accepted(&bus, vec![entry("{}"), entry("{}")]).await;
    eventually("first deliveries", async || {
        recorder.got.lock().unwrap().len() == 10
    })
    .await;
    let only = Some(vec![muon_types::RuleName::new("all").unwrap()]);
    let n = bus
        .replay("again", &BusName::default_bus(), 0, i64::MAX, only)
        .await
        .unwrap();
    assert_eq!(n, 2);
    eventually("replayed", async || {
        recorder.got.lock().unwrap().len() == 12
    })
    .await;
    let body = recorder.got.lock().unwrap()[11].1.body.clone();
    let replayed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(replayed["replay-name"], "again");
    // Replayed events are not replayed again.
    let n = bus
        .replay("twice", &BusName::default_bus(), 0, i64::MAX, None)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(
        bus.replay("x", &BusName::new("nope").unwrap(), 0, 1, None)
            .await
            .is_err()
    );
    // A rule that does not exist is an error, and nothing is stored again.
    let stored = store
        .events(muon_store::EventQuery {
            limit: 1 << 20,
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    let unknown = Some(vec![muon_types::RuleName::new("nope").unwrap()]);
    assert!(matches!(
        bus.replay("y", &BusName::default_bus(), 0, i64::MAX, unknown)
            .await,
        Err(Error::NoSuchRule(..))
    ));
    assert_eq!(
        store
            .events(muon_store::EventQuery {
                limit: 1 << 20,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        stored
    );
}

#[tokio::test]
async fn a_schedule_puts_its_event_and_its_targets_get_it() {
    let store = Arc::new(Memory::new());
    let recorder = Recorder::default();
    // `at(...)` one second ahead (second precision), in UTC.
    let at = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).format("%Y-%m-%dT%H:%M:%S");
    let schedule = muon_manifest::Schedule {
        expression: format!("at({at})"),
        timezone: None,
        rule: rule(&format!(
            r#"{{"Name":"soon","EventPattern":{},"Targets":[{{"Function":"inventory","InputPath":"$.resources[0]"}}]}}"#,
            serde_json::Value::String(muon_manifest::Schedule::pattern(
                &muon_types::RuleName::new("soon").unwrap()
            ))
        )),
    };
    let mut c = config(vec![]);
    c.schedules = vec![schedule];
    let bus = Bus::start(c, store.clone(), Arc::new(recorder.clone()))
        .await
        .unwrap();
    assert_eq!(bus.rules()[0].origin.as_str(), "schedule");
    eventually("the schedule fired", async || {
        !recorder.got.lock().unwrap().is_empty()
    })
    .await;
    let body = recorder.got.lock().unwrap()[0].1.body.clone();
    assert_eq!(body, r#""muon:schedule:soon""#);
    // It fires once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(recorder.got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn retention_forgets_settled_events_only() {
    let store = Arc::new(Memory::new());
    let recorder = Recorder::default().failing("function:email", 1000, false);
    let bus = Bus::start(
        config(vec![order_rule()]),
        store.clone(),
        Arc::new(recorder.clone()),
    )
    .await
    .unwrap();
    let settled = accepted(&bus, vec![entry("{}")]).await[0];
    let unmatched = bus
        .put_events(
            vec![PutEntry {
                source: Some("elsewhere".into()),
                ..entry("{}")
            }],
            None,
        )
        .await
        .unwrap();
    let EntryResult::Accepted(unmatched) = unmatched[0] else {
        panic!("refused")
    };
    eventually("settled", async || {
        !statuses(&store, settled)
            .await
            .contains(&DeliveryStatus::Pending)
    })
    .await;
    // email's delivery is dead-lettered: the event stays for a redrive; the unmatched one goes.
    bus.prune(i64::MAX).await.unwrap();
    assert!(bus.event(settled).await.unwrap().is_some());
    assert!(bus.event(unmatched).await.unwrap().is_none());
    recorder.fail.lock().unwrap().clear();
    bus.redrive(None).await.unwrap();
    eventually("redriven", async || {
        statuses(&store, settled).await == vec![DeliveryStatus::Delivered; 4]
    })
    .await;
    bus.prune(i64::MAX).await.unwrap();
    assert!(bus.event(settled).await.unwrap().is_none());
    assert!(store.deliveries_of(settled).await.unwrap().is_empty());
}

fn archive(json: &str) -> muon_manifest::Archive {
    muon_manifest::Archive::from_api_json(json).unwrap()
}

#[tokio::test]
async fn an_archive_replays_only_the_events_its_pattern_holds() {
    let store = Arc::new(Memory::new());
    let recorder = Recorder::default();
    let all = rule(
        r#"{"Name":"all","EventPattern":{"source":["shop"]},"Targets":[{"Url":"http://127.0.0.1:9/x"}]}"#,
    );
    let mut config = config(vec![all]);
    config.archives = vec![archive(
        r#"{"ArchiveName":"big","EventSourceArn":"default","EventPattern":{"detail":{"total":[{"numeric":[">",100]}]}}}"#,
    )];
    let bus = Bus::start(config, store.clone(), Arc::new(recorder.clone()))
        .await
        .unwrap();
    accepted(
        &bus,
        vec![
            entry(r#"{"total":500}"#),
            entry(r#"{"total":5}"#),
            entry(r#"{"total":101}"#),
        ],
    )
    .await;
    eventually("first deliveries", async || {
        recorder.got.lock().unwrap().len() == 3
    })
    .await;
    let big = muon_types::ArchiveName::new("big").unwrap();
    assert_eq!(bus.archive_stats(&big).await.unwrap().0, 2);
    let info = bus
        .replay_archive("from-big", &big, 0, i64::MAX, None)
        .await
        .unwrap();
    assert_eq!(
        (info.events, info.state),
        (2, muon_bus::ReplayState::Completed)
    );
    assert_eq!(info.bus, BusName::default_bus());
    eventually("replayed", async || recorder.got.lock().unwrap().len() == 5).await;
    for (_, m) in &recorder.got.lock().unwrap()[3..] {
        let event: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(event["replay-name"], "from-big");
        assert!(event["detail"]["total"].as_i64().unwrap() > 100, "{event}");
    }
    // Replayed events are not in the archive, and a replay's name is used once.
    assert_eq!(bus.archive_stats(&big).await.unwrap().0, 2);
    let again = bus
        .replay_archive("from-big", &big, 0, i64::MAX, None)
        .await;
    assert!(matches!(again, Err(Error::ReplayExists(_))), "{again:?}");
    assert_eq!(
        again.unwrap_err().aws_code(),
        "ResourceAlreadyExistsException"
    );
    assert_eq!(bus.replays().len(), 1);
    assert_eq!(bus.replay_info("from-big").unwrap().events, 2);
    // The bus form is remembered too.
    assert_eq!(
        bus.replay("whole-bus", &BusName::default_bus(), 0, i64::MAX, None)
            .await
            .unwrap(),
        3
    );
    assert!(matches!(
        bus.replay_info("whole-bus").unwrap().source,
        muon_bus::ReplaySource::Bus(_)
    ));
    let missing = muon_types::ArchiveName::new("nope").unwrap();
    assert!(matches!(
        bus.replay_archive("x", &missing, 0, 1, None).await,
        Err(Error::NoSuchArchive(_))
    ));
}

#[tokio::test]
async fn api_archives_are_stored_and_manifest_ones_are_read_only() {
    use muon_bus::Write;
    let store = Arc::new(Memory::new());
    let mut config = config(Vec::new());
    config.archives = vec![archive(
        r#"{"ArchiveName":"fixed","EventSourceArn":"default"}"#,
    )];
    let bus = Bus::start(config.clone(), store.clone(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    let audit = archive(
        r#"{"ArchiveName":"audit","EventSourceArn":"arn:aws:events:local:0:event-bus/audit","RetentionDays":3}"#,
    );
    bus.put_archive(audit.clone(), Write::Create).await.unwrap();
    assert!(matches!(
        bus.put_archive(audit.clone(), Write::Create).await,
        Err(Error::ArchiveExists(_))
    ));
    let fixed = archive(r#"{"ArchiveName":"fixed","EventSourceArn":"default"}"#);
    assert!(matches!(
        bus.put_archive(fixed.clone(), Write::Put).await,
        Err(Error::ManifestArchive(_))
    ));
    assert!(matches!(
        bus.delete_archive(&fixed.name).await,
        Err(Error::ManifestArchive(_))
    ));
    let ghost = archive(r#"{"ArchiveName":"ghost","EventSourceArn":"default"}"#);
    assert!(matches!(
        bus.put_archive(ghost, Write::Update).await,
        Err(Error::NoSuchArchive(_))
    ));
    let elsewhere = archive(r#"{"ArchiveName":"x","EventSourceArn":"nowhere"}"#);
    assert!(matches!(
        bus.put_archive(elsewhere, Write::Put).await,
        Err(Error::NoSuchBus(_))
    ));
    assert_eq!(store.archives().await.unwrap().len(), 1);
    drop(bus);
    // A new bus on the same store has it back.
    let bus = Bus::start(config, store.clone(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    let names: Vec<(String, Origin)> = bus
        .archives()
        .iter()
        .map(|a| (a.archive.name.to_string(), a.origin))
        .collect();
    assert_eq!(
        names,
        [
            ("audit".into(), Origin::Api),
            ("fixed".into(), Origin::Manifest)
        ]
    );
    assert_eq!(*bus.archive(&audit.name).unwrap().archive, audit);
    bus.delete_archive(&audit.name).await.unwrap();
    assert!(store.archives().await.unwrap().is_empty());
    assert!(matches!(
        bus.delete_archive(&audit.name).await,
        Err(Error::NoSuchArchive(_))
    ));
}

#[tokio::test]
async fn a_replay_pages_through_more_events_than_one_page() {
    let store = Arc::new(Memory::new());
    let bus = Bus::start(config(vec![]), store.clone(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    for _ in 0..250 {
        accepted(&bus, (0..10).map(|_| entry("{}")).collect()).await;
    }
    let n = bus
        .replay("all", &BusName::default_bus(), 0, i64::MAX, None)
        .await
        .unwrap();
    assert_eq!(n, 2500);
}

/// A target that takes every delivery and never answers.
struct Stuck;

impl Dispatch for Stuck {
    fn deliver(
        &self,
        _target: &TargetKind,
        _message: Message,
    ) -> BoxFuture<'static, Result<(), DeliveryError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_full_backlog_throttles_put_events_and_loses_nothing() {
    let store = Arc::new(Memory::new());
    let one = rule(
        r#"{"Name":"one","EventPattern":{"source":["shop"]},"Targets":[{"Url":"http://x/"}]}"#,
    );
    let bus = Bus::start(
        Config {
            max_backlog: 25,
            ..config(vec![one])
        },
        store.clone(),
        Arc::new(Stuck),
    )
    .await
    .unwrap();
    let mut accepted_events = 0;
    let mut throttled = None;
    for _ in 0..10 {
        match bus
            .put_events((0..10).map(|_| entry("{}")).collect(), None)
            .await
        {
            Ok(results) => accepted_events += results.len(),
            Err(e) => {
                throttled = Some(e);
                break;
            }
        }
    }
    let Some(PutError::Throttled(why)) = throttled else {
        panic!("never throttled after {accepted_events} events: {throttled:?}")
    };
    assert!(why.contains("at most 25"), "{why}");
    // Nothing accepted was lost: every event was stored with its delivery, waiting.
    assert_eq!(accepted_events, 30);
    let pending = store
        .deliveries(DeliveryStatus::Pending, 100)
        .await
        .unwrap();
    assert_eq!(pending.len(), 30);
}

#[tokio::test]
async fn a_loop_that_fans_out_is_cut_by_its_trace_size_and_its_trace_says_so() {
    let store = Arc::new(Memory::new());
    let rules = vec![rule(
        r#"{"Name":"fan","EventPattern":{"source":["loop"]},"Targets":[{"Id":"a","Bus":"default"},{"Id":"b","Bus":"default"}]}"#,
    )];
    let bus = Bus::start(config(rules), store.clone(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    let ids = accepted(
        &bus,
        vec![PutEntry {
            source: Some("loop".into()),
            ..entry("{}")
        }],
    )
    .await;
    let count = || async {
        store
            .events(muon_store::EventQuery {
                limit: 1 << 20,
                ..Default::default()
            })
            .await
            .unwrap()
            .len()
    };
    // Doubling at every hop, it would reach 2^32 events; it stops past 10,000.
    eventually("the fan-out cut", async || {
        !store
            .deliveries(DeliveryStatus::DeadLettered, 1)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let settled = loop {
        let before = count().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if count().await == before {
            break before;
        }
    };
    assert!(settled <= 10_002 + 2, "{settled} events");
    let tree = bus.trace(ids[0]).await.unwrap().unwrap();
    fn any_cut(node: &muon_bus::TraceNode) -> bool {
        node.cut || node.deliveries.iter().any(|(_, c)| c.iter().any(any_cut))
    }
    assert!(
        any_cut(&tree),
        "a trace of {settled} events shows where it is cut"
    );
}
