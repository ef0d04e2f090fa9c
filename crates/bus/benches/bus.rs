//! `cargo bench -p muon-bus --bench bus`: durable ingest and publish-to-delivery latency.
//!
//! - ingest: PutEvents with batches of 10 (~1 KB events) from concurrent publishers, each
//!   event matching one rule with one target (so its delivery is committed too, and later
//!   marked delivered), on the SQLite store in WAL mode with `synchronous=FULL`, next to the
//!   in-memory store (the ceiling) in the same run;
//! - the store alone: transactions of 10 such events appended from 64 tasks (what the writer
//!   can take without the bus);
//! - latency: one publisher putting one event at a time; from the call to `put_events` to the
//!   moment the target's dispatch starts, p50/p99.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use muon_bus::{Bus, Config, DeliveryError, Dispatch, Message, PutEntry};
use muon_manifest::{Rule, TargetKind};
use muon_store::{BoxFuture, Memory, Store};

// The allocator the muon binary ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Counts deliveries; optionally records when the first dispatch of each event began.
#[derive(Default)]
struct Sink {
    delivered: AtomicU64,
    started: Mutex<Option<tokio::sync::mpsc::UnboundedSender<Instant>>>,
}

impl Dispatch for Sink {
    fn deliver(&self, _: &TargetKind, _: Message) -> BoxFuture<'static, Result<(), DeliveryError>> {
        if let Some(tx) = &*self.started.lock().unwrap() {
            let _ = tx.send(Instant::now());
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        Box::pin(std::future::ready(Ok(())))
    }
}

fn detail() -> String {
    // ~1 KB: an order with a few items and an address.
    let items: Vec<String> = (0..8)
        .map(|i| format!(r#"{{"sku":"sku-{i:04}","qty":{},"price":{}.99,"name":"Item number {i} with a long name"}}"#, i + 1, 10 + i))
        .collect();
    format!(
        r#"{{"order_id":"ord_0123456789abcdef","customer":"ada@example.com","total":123.45,"items":[{}],"address":{{"street":"1 Main Street","city":"Springfield","zip":"12345","country":"US"}}}}"#,
        items.join(",")
    )
}

fn rule() -> Rule {
    Rule::from_api_json(
        r#"{"Name":"orders","EventPattern":{"source":["shop"],"detail-type":["OrderPlaced"]},"Targets":[{"Function":"sink"}]}"#,
    )
    .unwrap()
}

async fn start(store: Arc<dyn Store>, sink: Arc<Sink>) -> Bus {
    Bus::start(
        Config {
            rules: vec![rule()],
            ..Default::default()
        },
        store,
        sink,
    )
    .await
    .unwrap()
}

async fn ingest(store: Arc<dyn Store>, publishers: usize, duration: Duration) -> f64 {
    let sink = Arc::new(Sink::default());
    let bus = start(store, sink.clone()).await;
    let detail = detail();
    let entries: Vec<PutEntry> = (0..10)
        .map(|_| PutEntry {
            source: Some("shop".into()),
            detail_type: Some("OrderPlaced".into()),
            detail: Some(detail.clone()),
            ..Default::default()
        })
        .collect();
    let accepted = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..publishers {
        let bus = bus.clone();
        let entries = entries.clone();
        let accepted = accepted.clone();
        tasks.push(tokio::spawn(async move {
            while begin.elapsed() < duration {
                let results = bus.put_events(entries.clone(), None).await.unwrap();
                accepted.fetch_add(results.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    accepted.load(Ordering::Relaxed) as f64 / begin.elapsed().as_secs_f64()
}

async fn latency(store: Arc<dyn Store>, n: usize) -> (Duration, Duration) {
    let sink = Arc::new(Sink::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    *sink.started.lock().unwrap() = Some(tx);
    let bus = start(store, sink).await;
    let entry = PutEntry {
        source: Some("shop".into()),
        detail_type: Some("OrderPlaced".into()),
        detail: Some(detail()),
        ..Default::default()
    };
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let begin = Instant::now();
        bus.put_events(vec![entry.clone()], None).await.unwrap();
        let started = rx.recv().await.unwrap();
        if i >= 100 {
            samples.push(started.duration_since(begin));
        }
    }
    samples.sort();
    (samples[n / 2], samples[n * 99 / 100])
}

/// The store alone: transactions of 10 events appended from `publishers` tasks.
async fn raw_store(store: Arc<dyn Store>, publishers: usize, duration: Duration) -> f64 {
    let json = format!("{{\"detail\":{}}}", detail());
    let count = Arc::new(AtomicU64::new(0));
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..publishers {
        let store = store.clone();
        let json = json.clone();
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            while begin.elapsed() < duration {
                let mut tx = muon_store::Transaction::new();
                for _ in 0..10 {
                    tx.push(muon_store::Op::AppendEvent(muon_store::EventRecord {
                        id: muon_types::EventId::from_u128(uuid::Uuid::now_v7().as_u128()),
                        bus: muon_types::BusName::default_bus(),
                        ingested_ms: 0,
                        json: json.clone(),
                        trace_id: "0".repeat(32),
                        parent_span: None,
                        replay: None,
                    }));
                }
                store.commit(tx).await.unwrap();
                count.fetch_add(10, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / begin.elapsed().as_secs_f64()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let seconds: u64 = std::env::var("BUS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        println!("~{} byte events, batches of 10, 1 matching rule with 1 target", detail().len());
        {
            let store = Arc::new(muon_store_sqlite::Sqlite::open(&dir.path().join("raw.db")).unwrap());
            let raw = raw_store(store, 64, Duration::from_secs(seconds)).await;
            println!("store alone, 64 publishers: sqlite {raw:.0} events/s");
        }
        let only_sqlite = std::env::var("BUS_BENCH_ONLY_SQLITE").is_ok();
        for publishers in [16, 64] {
            let memory = if only_sqlite {
                f64::NAN
            } else {
                ingest(Arc::new(Memory::new()), publishers, Duration::from_secs(seconds)).await
            };
            let path = dir.path().join(format!("ingest-{publishers}.db"));
            let sqlite = ingest(
                Arc::new(muon_store_sqlite::Sqlite::open(&path).unwrap()),
                publishers,
                Duration::from_secs(seconds),
            )
            .await;
            println!(
                "ingest, {publishers} publishers: sqlite {:.0} events/s, memory {:.0} events/s (sqlite = {:.2} of memory)",
                sqlite,
                memory,
                sqlite / memory
            );
        }
        let store = Arc::new(muon_store_sqlite::Sqlite::open(&dir.path().join("latency.db")).unwrap());
        let (p50, p99) = latency(store, 2000).await;
        let (m50, m99) = latency(Arc::new(Memory::new()), 2000).await;
        println!(
            "publish -> dispatch start: sqlite p50 {:.2} ms, p99 {:.2} ms; memory p50 {:.3} ms, p99 {:.3} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            m50.as_secs_f64() * 1e3,
            m99.as_secs_f64() * 1e3
        );
    });
}
