//! `cargo bench -p muon-flow --bench flow`: workflow throughput and latency.
//!
//! - Express: executions of a chain of 100 Pass states, in memory, on one core (a
//!   current-thread runtime), next to the interpreter alone (`asl::Execution::start` on the
//!   same definition, no engine) measured in the same run;
//! - durable Standard transitions on SQLite (WAL, `synchronous=FULL`): 64 concurrent
//!   executions of 10 Task states each, every task answered at once, so every task result is a
//!   committed step (the store groups concurrent steps into shared disk syncs);
//! - a 3-step durable workflow end to end (start, three tasks, end; four commits), one at a
//!   time: p50 and p99.
//!
//! A state entered counts as one transition, as Step Functions bills them. The bench uses the
//! allocator the muon binary ships with (mimalloc).

use std::sync::Arc;
use std::time::{Duration, Instant};

use muon_asl::{Definition, Execution, ExecutionInfo};
use muon_flow::{
    Answer, Config, Dispatch, DispatchError, Flows, FunctionCall, HttpCall, Kind, StartRequest,
    Workflow,
};
use muon_store::{BoxFuture, Store};
use serde_json::{Value, json};

// The allocator the muon binary ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every function answers `{}` at once.
struct Instant0;

impl Dispatch for Instant0 {
    fn function(&self, _: FunctionCall) -> BoxFuture<'static, Result<Answer, DispatchError>> {
        Box::pin(std::future::ready(Ok(Answer {
            status: 200,
            headers: Vec::new(),
            body: b"{}".to_vec(),
            invocation: None,
        })))
    }
    fn put_events(&self, _: Value) -> BoxFuture<'static, Result<Value, DispatchError>> {
        Box::pin(std::future::ready(Ok(json!({ "FailedEntryCount": 0 }))))
    }
    fn http(&self, _: HttpCall) -> BoxFuture<'static, Result<Answer, DispatchError>> {
        Box::pin(std::future::ready(Err(DispatchError::new("x", "y"))))
    }
}

fn chain(kind: &str, n: usize) -> String {
    let mut states = serde_json::Map::new();
    for i in 0..n {
        let mut s = match kind {
            "Pass" => json!({ "Type": "Pass" }),
            _ => json!({ "Type": "Task", "Resource": "muon:function:noop", "ResultPath": null }),
        };
        if i + 1 == n {
            s["End"] = json!(true);
        } else {
            s["Next"] = json!(format!("S{}", i + 1));
        }
        states.insert(format!("S{i}"), s);
    }
    json!({ "StartAt": "S0", "States": states }).to_string()
}

fn workflows() -> Vec<Workflow> {
    vec![
        Workflow {
            name: "pass100".into(),
            definition: chain("Pass", 100),
            kind: Kind::Express,
        },
        Workflow {
            name: "tasks10".into(),
            definition: chain("Task", 10),
            kind: Kind::Standard,
        },
        Workflow {
            name: "tasks3".into(),
            definition: chain("Task", 3),
            kind: Kind::Standard,
        },
    ]
}

async fn engine(store: Arc<dyn Store>) -> Flows {
    Flows::start(
        Config {
            workflows: workflows(),
            ..Config::default()
        },
        store,
        Arc::new(Instant0),
    )
    .await
    .unwrap()
}

fn start(machine: &str) -> StartRequest {
    StartRequest {
        machine: machine.into(),
        name: None,
        input: Some(r#"{"order":{"id":"o-1","total":42.5,"items":[1,2,3]}}"#.into()),
    }
}

fn interpreter_alone(seconds: f64) -> f64 {
    let def = Arc::new(Definition::parse(&chain("Pass", 100)).unwrap());
    let input: Value =
        serde_json::from_str(r#"{"order":{"id":"o-1","total":42.5,"items":[1,2,3]}}"#).unwrap();
    let info = ExecutionInfo {
        execution_arn: "arn:aws:states:local:0:execution:pass100:x".into(),
        name: "x".into(),
        state_machine_arn: "arn:aws:states:local:0:stateMachine:pass100".into(),
        state_machine_name: "pass100".into(),
        role_arn: "arn:aws:iam::0:role/x".into(),
        region: "local".into(),
        redrive_count: 0,
        seed: 7,
        token_secret: 0,
        max_duration_ms: None,
    };
    let began = Instant::now();
    let mut runs = 0u64;
    while began.elapsed().as_secs_f64() < seconds {
        let (exe, _) = Execution::start(def.clone(), info.clone(), input.clone(), 0);
        assert!(matches!(exe.status(), muon_asl::Status::Succeeded { .. }));
        runs += 1;
    }
    runs as f64 * 100.0 / began.elapsed().as_secs_f64()
}

fn main() {
    let seconds = 3.0;
    // `cargo bench -p muon-flow --bench flow -- express` runs only the Express part.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    // Express, one core.
    if only.as_deref() == Some("durable") {
        return durable(seconds);
    }
    let alone = interpreter_alone(seconds);
    let one_core = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let express = one_core.block_on(async {
        let flows = engine(Arc::new(muon_store::Memory::new())).await;
        let began = Instant::now();
        let mut runs = 0u64;
        while began.elapsed().as_secs_f64() < seconds {
            let d = flows.start_sync(start("pass100")).await.unwrap();
            assert_eq!(d.status, "SUCCEEDED");
            runs += 1;
        }
        runs as f64 * 100.0 / began.elapsed().as_secs_f64()
    });
    println!("Express, chain of 100 Pass states, one core:");
    println!("  engine      {express:>9.0} transitions/s");
    println!(
        "  interpreter {alone:>9.0} transitions/s  (asl alone; the engine reaches {:.0}%)",
        100.0 * express / alone
    );

    if only.as_deref() == Some("express") {
        return;
    }
    durable(seconds);
}

fn durable(seconds: f64) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store: Arc<dyn Store> =
            Arc::new(muon_store_sqlite::Sqlite::open(&dir.path().join("bench.db")).unwrap());
        let flows = engine(store).await;
        // Durable transitions: 64 executions in flight at all times, 10 tasks each.
        let began = Instant::now();
        let workers: Vec<_> = (0..64)
            .map(|_| {
                let flows = flows.clone();
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while began.elapsed().as_secs_f64() < seconds {
                        let d = flows.start_sync(start("tasks10")).await.unwrap();
                        assert_eq!(d.status, "SUCCEEDED");
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let mut executions = 0u64;
        for w in workers {
            executions += w.await.unwrap();
        }
        let elapsed = began.elapsed().as_secs_f64();
        println!("Standard (durable, SQLite), 64 concurrent executions of 10 Task states:");
        println!(
            "  {:>9.0} transitions/s  ({:.0} executions/s, each task result one committed step)",
            executions as f64 * 10.0 / elapsed,
            executions as f64 / elapsed
        );
        // A 3-step workflow end to end, one at a time.
        let mut latencies = Vec::new();
        let began = Instant::now();
        while began.elapsed().as_secs_f64() < seconds || latencies.len() < 100 {
            let t = Instant::now();
            let d = flows.start_sync(start("tasks3")).await.unwrap();
            assert_eq!(d.status, "SUCCEEDED");
            latencies.push(t.elapsed());
        }
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "3-step durable workflow end to end, sequential ({} runs):",
            latencies.len()
        );
        println!("  p50 {:.2} ms, p99 {:.2} ms", ms(at(0.5)), ms(at(0.99)));
    });
}
