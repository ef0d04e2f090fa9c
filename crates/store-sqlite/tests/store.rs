//! The SQLite store against the in-memory model, and across a reopen.

use muon_store::{DeliveryStatus, EventQuery, EventRecord, Op, Store, Transaction};
use muon_store_sqlite::Sqlite;
use muon_types::{BusName, EventId};

#[tokio::test]
async fn agrees_with_the_model() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [1, 2, 3] {
        let store = Sqlite::open(&dir.path().join(format!("{seed}.db"))).unwrap();
        muon_store::testing::agrees_with_model(&store, seed, 150).await;
    }
}

fn event(n: i64) -> EventRecord {
    let id = EventId::random();
    EventRecord {
        id,
        bus: BusName::default_bus(),
        ingested_ms: n,
        json: format!("{{\"n\":{n}}}"),
        trace_id: "0".repeat(32),
        parent_span: None,
        replay: None,
    }
}

#[tokio::test]
async fn committed_data_survives_a_reopen_and_concurrent_commits_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/muon.db");
    {
        let store = std::sync::Arc::new(Sqlite::open(&path).unwrap());
        let mut tasks = Vec::new();
        for n in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = Transaction::new();
                tx.push(Op::AppendEvent(event(n)));
                store.commit(tx).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
    let store = Sqlite::open(&path).unwrap();
    let all = store
        .events(EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 200);
    assert!(
        store
            .deliveries(DeliveryStatus::Pending, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_failing_transaction_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(&dir.path().join("muon.db")).unwrap();
    let e = event(1);
    let mut first = Transaction::new();
    first.push(Op::AppendEvent(e.clone()));
    store.commit(first).await.unwrap();
    // The same event ID again violates uniqueness: this transaction fails, a concurrent one
    // committed in the same group does not.
    let mut dup = Transaction::new();
    dup.push(Op::AppendEvent(event(2)))
        .push(Op::AppendEvent(e.clone()));
    let mut ok = Transaction::new();
    ok.push(Op::AppendEvent(event(3)));
    let (a, b) = tokio::join!(store.commit(dup), store.commit(ok));
    assert!(a.is_err(), "duplicate event id accepted");
    b.unwrap();
    let all = store
        .events(EventQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ns: Vec<i64> = all.iter().map(|e| e.ingested_ms).collect();
    assert_eq!(
        ns,
        vec![1, 3],
        "the failed transaction left a partial write"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("muon.db");
    std::fs::write(&path, b"this is not sqlite, just some text that is long enough to matter......................................................").unwrap();
    let Err(err) = Sqlite::open(&path) else {
        panic!("a text file opened as a database")
    };
    assert!(err.to_string().contains("muon.db"), "{err}");
}

#[test]
fn an_emptied_store_is_refused_not_taken_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("muon.db");
    std::fs::write(&path, b"").unwrap();
    let Err(err) = Sqlite::open(&path) else {
        panic!("a zero-byte store opened as a new, empty one")
    };
    let err = err.to_string();
    assert!(
        err.contains("exists but is empty") && err.contains("delete it"),
        "{err}"
    );
    // A path that does not exist is a new store.
    assert!(Sqlite::open(&dir.path().join("new.db")).is_ok());
}

#[tokio::test]
async fn a_damaged_store_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("muon.db");
    {
        let store = Sqlite::open(&path).unwrap();
        for n in 0..200 {
            let mut tx = Transaction::new();
            tx.push(Op::AppendEvent(event(n)));
            store.commit(tx).await.unwrap();
        }
    }
    // Fold the WAL into the file, then scribble over a page in the middle of it.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let _: (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4 * 4096, "{} bytes", bytes.len());
    // Every page but the first (the schema) gets its header and cell pointers overwritten.
    for page in bytes.chunks_mut(4096).skip(1) {
        for b in &mut page[..64] {
            *b = 0x5a;
        }
    }
    std::fs::write(&path, bytes).unwrap();
    let Err(err) = Sqlite::open(&path) else {
        panic!("a damaged store opened")
    };
    assert!(err.to_string().contains("is damaged"), "{err}");
}
