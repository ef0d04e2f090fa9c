//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`.
//!
//! Design decision: one writer thread owns the write connection. Callers send it
//! [`Transaction`]s; it takes every transaction waiting in its queue, applies them all in one
//! SQLite transaction and commits them with one fsync (group commit), and only then answers
//! each caller. If one of them fails, the group is rolled back and its transactions are
//! committed one by one, so a bad transaction fails alone. Under load many callers share one disk sync,
//! which is what makes durable ingest fast. Reads use a second connection on the blocking pool;
//! WAL lets them run while the writer writes.
//!
//! It must never answer a commit before SQLite's COMMIT returned.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use muon_store::{
    ArchiveRecord, BoxFuture, Delivery, DeliveryStatus, Error, EventQuery, EventRecord,
    ExecutionQuery, ExecutionRecord, HistoryRecord, KeyRecord, Op, Result, RuleRecord,
    StateMachineRecord, StepRecord, Store, Transaction,
};
use muon_types::{ArchiveName, BusName, DeliveryId, EventId, RuleName};
use rusqlite::{Connection, OptionalExtension, Row, params};

/// The most transactions one group commit takes.
const MAX_GROUP: usize = 1024;

// `seq` columns are plain rowids (no AUTOINCREMENT, which writes `sqlite_sequence` on every
// insert): they only order rows, and a rowid is reused only after the newest row is deleted.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    bus TEXT NOT NULL,
    ingested_ms INTEGER NOT NULL,
    json TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    parent_span TEXT,
    replay TEXT
);
CREATE INDEX IF NOT EXISTS events_by_bus_time ON events (bus, ingested_ms);
CREATE INDEX IF NOT EXISTS events_by_parent ON events (parent_span) WHERE parent_span IS NOT NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    bus TEXT NOT NULL,
    rule TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    error_code TEXT,
    error_message TEXT,
    exhausted TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (status, seq);
CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries (event);
CREATE TABLE IF NOT EXISTS rules (
    bus TEXT NOT NULL,
    name TEXT NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (bus, name)
);
CREATE TABLE IF NOT EXISTS archives (
    name TEXT PRIMARY KEY,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state_machines (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    seq INTEGER PRIMARY KEY,
    arn TEXT NOT NULL UNIQUE,
    machine TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    stop_ms INTEGER,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    cause TEXT,
    definition TEXT NOT NULL,
    info TEXT NOT NULL,
    resumes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS executions_by_status ON executions (status, seq);
CREATE INDEX IF NOT EXISTS executions_by_machine ON executions (machine, seq);
CREATE TABLE IF NOT EXISTS steps (
    execution TEXT NOT NULL REFERENCES executions (arn),
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    input TEXT NOT NULL,
    PRIMARY KEY (execution, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    execution TEXT NOT NULL,
    id INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (execution, id)
) WITHOUT ROWID;
";

struct Job {
    tx: Transaction,
    done: oneshot::Sender<Result<()>>,
}

/// An open SQLite store. Dropping it stops the writer once its queue is drained.
pub struct Sqlite {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Job>>,
    reader: Arc<Mutex<Connection>>,
    /// Why the writer's last group failed, until one succeeds again.
    write_error: Arc<Mutex<Option<String>>>,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

/// A failed commit: a broken constraint is a [`Error::Conflict`], anything else the backend's.
fn commit_error(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => Error::Conflict(e.to_string()),
        _ => backend(e),
    }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let open = || {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A step of an execution that does not exist is refused.
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok::<_, rusqlite::Error>(conn)
    };
    open().map_err(|e| {
        Error::Backend(format!(
            "cannot open {} (is it a muon database?): {e}",
            path.display()
        ))
    })
}

/// Columns added since a table was first made, added to stores made before them.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has = |table: &str, column: &str| -> rusqlite::Result<bool> {
        let mut statement = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let names: Vec<String> = statement
            .query_map([], |row| row.get::<_, String>(1))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(names.iter().any(|n| n == column))
    };
    if !has("executions", "resumes")? {
        conn.execute_batch("ALTER TABLE executions ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

/// SQLite's `quick_check` (every page and index structurally sound), so damage is found at
/// start rather than when a query happens to read it.
fn check_integrity(conn: &Connection, path: &Path) -> Result<()> {
    let damaged = |what: String| {
        Error::Backend(format!(
            "{} is damaged ({what}). Stop muon, keep a copy of the file, and restore the store \
             from a backup; `sqlite3 {} .recover` may save what is still readable. To start over \
             with an empty store, move it aside.",
            path.display(),
            path.display()
        ))
    };
    let mut statement = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| damaged(e.to_string()))?;
    let problems: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(damaged(format!("quick_check: {}", problems.join("; ")))),
    }
}

impl Sqlite {
    /// Open (creating if needed) the database at `path`, and start its writer thread. A file
    /// that exists but is empty, or that fails SQLite's `quick_check`, is refused with how to
    /// recover.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        // SQLite takes an empty file for a new database: a store that was truncated (or whose
        // disk lost it) would come back empty and answer 404 for every acknowledged event.
        if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            return Err(Error::Backend(format!(
                "{} exists but is empty: the store it held is gone (truncated, or lost by its \
                 disk). Restore it from a backup; to start over with an empty store, delete it \
                 (and any {}-wal and {}-shm beside it).",
                path.display(),
                path.display(),
                path.display()
            )));
        }
        let writer = open_connection(path)?;
        check_integrity(&writer, path)?;
        writer.execute_batch(SCHEMA).map_err(|e| {
            Error::Backend(format!(
                "{} is not a muon database or is damaged: {e}",
                path.display()
            ))
        })?;
        migrate(&writer).map_err(|e| {
            Error::Backend(format!("cannot bring {} up to date: {e}", path.display()))
        })?;
        let reader = open_connection(path)?;
        let (send, receive) = mpsc::channel();
        let write_error = Arc::new(Mutex::new(None));
        let health = write_error.clone();
        std::thread::Builder::new()
            .name("muon-store-writer".into())
            .spawn(move || write_loop(writer, receive, &health))
            .map_err(backend)?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: Mutex::new(send),
            reader: Arc::new(Mutex::new(reader)),
            write_error,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> BoxFuture<'_, Result<T>> {
        let reader = self.reader.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let conn = reader.lock().map_err(|_| Error::Closed)?;
                f(&conn).map_err(backend)
            })
            .await
            .map_err(backend)?
        })
    }
}

fn write_loop(mut conn: Connection, jobs: mpsc::Receiver<Job>, health: &Mutex<Option<String>>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let results = commit_group(&mut conn, &group);
        // A commit that went through says the store writes again; one that failed for the
        // backend's sake (not a conflict in the data) says it does not.
        let failed = results.iter().find_map(|r| match r {
            Err(Error::Backend(e)) => Some(e.clone()),
            _ => None,
        });
        if let Ok(mut state) = health.lock() {
            if results.iter().any(Result::is_ok) {
                *state = None;
            } else if let Some(e) = failed {
                *state = Some(e);
            }
        }
        for (job, result) in group.into_iter().zip(results) {
            let _ = job.done.send(result);
        }
    }
}

/// Commit every job of `group` in one transaction. If one of them fails, the transaction is
/// rolled back and each job is committed on its own, so a bad job fails alone.
fn commit_group(conn: &mut Connection, group: &[Job]) -> Vec<Result<()>> {
    match commit_jobs(conn, group) {
        Ok(()) => group.iter().map(|_| Ok(())).collect(),
        Err(e) if group.len() == 1 => vec![Err(commit_error(e))],
        Err(_) => group
            .iter()
            .map(|job| {
                commit_jobs(conn, std::slice::from_ref(job)).map_err(|e| {
                    tracing::error!("store commit failed: {e}");
                    commit_error(e)
                })
            })
            .collect(),
    }
}

fn commit_jobs(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut hot = Hot::default();
        for job in jobs {
            for op in &job.tx.ops {
                apply(&tx, &mut hot, op)?;
            }
        }
    }
    tx.commit()
}

/// The statements of the ops a group holds by the thousand (events and deliveries), prepared
/// once per group: looking each up in the statement cache hashes and compares its SQL text.
#[derive(Default)]
struct Hot<'c> {
    event: Option<rusqlite::CachedStatement<'c>>,
    delivery: Option<rusqlite::CachedStatement<'c>>,
}

fn statement<'c, 's>(
    conn: &'c Connection,
    slot: &'s mut Option<rusqlite::CachedStatement<'c>>,
    sql: &str,
) -> rusqlite::Result<&'s mut rusqlite::CachedStatement<'c>> {
    if slot.is_none() {
        *slot = Some(conn.prepare_cached(sql)?);
    }
    Ok(slot.as_mut().expect("just prepared"))
}

fn apply<'c>(conn: &'c Connection, hot: &mut Hot<'c>, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::AppendEvent(e) => {
            statement(
                conn,
                &mut hot.event,
                "INSERT INTO events (id, bus, ingested_ms, json, trace_id, parent_span, replay)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                e.id.to_string(),
                e.bus.as_str(),
                e.ingested_ms,
                e.json,
                e.trace_id,
                e.parent_span,
                e.replay
            ])?;
        }
        Op::PutDelivery(d) => {
            let (code, message) = match &d.error {
                Some((c, m)) => (Some(c.as_str()), Some(m.as_str())),
                None => (None, None),
            };
            statement(
                conn,
                &mut hot.delivery,
                "INSERT INTO deliveries (id, event, bus, rule, target, status, attempts,
                     created_ms, due_ms, error_code, error_message, exhausted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO UPDATE SET event = ?2, bus = ?3, rule = ?4, target = ?5,
                     status = ?6, attempts = ?7, created_ms = ?8, due_ms = ?9,
                     error_code = ?10, error_message = ?11, exhausted = ?12",
            )?
            .execute(params![
                d.id.to_string(),
                d.event.to_string(),
                d.bus.as_str(),
                d.rule.as_str(),
                d.target,
                d.status.as_str(),
                d.attempts,
                d.created_ms,
                d.due_ms,
                code,
                message,
                d.exhausted
            ])?;
        }
        Op::PutRule(r) => {
            conn.prepare_cached(
                "INSERT INTO rules (bus, name, json) VALUES (?1, ?2, ?3)
                 ON CONFLICT (bus, name) DO UPDATE SET json = ?3",
            )?
            .execute(params![r.bus.as_str(), r.name.as_str(), r.json])?;
        }
        Op::DeleteRule { bus, name } => {
            conn.prepare_cached("DELETE FROM rules WHERE bus = ?1 AND name = ?2")?
                .execute(params![bus.as_str(), name.as_str()])?;
        }
        Op::PutArchive(a) => {
            conn.prepare_cached(
                "INSERT INTO archives (name, json) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET json = ?2",
            )?
            .execute(params![a.name.as_str(), a.json])?;
        }
        Op::DeleteArchive { name } => {
            conn.prepare_cached("DELETE FROM archives WHERE name = ?1")?
                .execute(params![name.as_str()])?;
        }
        Op::SetResumes { execution, resumes } => {
            conn.prepare_cached("UPDATE executions SET resumes = ?2 WHERE arn = ?1")?
                .execute(params![execution, resumes])?;
        }
        Op::ClearResumes => {
            conn.prepare_cached(
                "UPDATE executions SET resumes = 0 WHERE status = 'RUNNING' AND resumes != 0",
            )?
            .execute([])?;
        }
        Op::PutKey(k) => {
            conn.prepare_cached(
                "INSERT INTO api_keys (id, json) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET json = ?2",
            )?
            .execute(params![k.id, k.json])?;
        }
        Op::Prune { before_ms } => {
            conn.prepare_cached(
                "CREATE TEMP TABLE IF NOT EXISTS pruned (id TEXT PRIMARY KEY) WITHOUT ROWID",
            )?
            .execute([])?;
            conn.prepare_cached(
                "INSERT INTO pruned SELECT id FROM events WHERE ingested_ms < ?1
                 AND id NOT IN (SELECT event FROM deliveries WHERE status <> 'delivered')",
            )?
            .execute([before_ms])?;
            conn.prepare_cached("DELETE FROM deliveries WHERE event IN (SELECT id FROM pruned)")?
                .execute([])?;
            conn.prepare_cached("DELETE FROM events WHERE id IN (SELECT id FROM pruned)")?
                .execute([])?;
            conn.prepare_cached("DELETE FROM pruned")?.execute([])?;
        }
        Op::PutStateMachine(m) => {
            conn.prepare_cached(
                "INSERT INTO state_machines (name, kind, definition, created_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET kind = ?2, definition = ?3, created_ms = ?4",
            )?
            .execute(params![m.name, m.kind, m.definition, m.created_ms])?;
        }
        Op::DeleteStateMachine { name } => {
            conn.prepare_cached("DELETE FROM state_machines WHERE name = ?1")?
                .execute([name])?;
        }
        Op::StartExecution {
            execution: e,
            history,
        } => {
            conn.prepare_cached(
                "INSERT INTO executions (arn, machine, name, status, start_ms, stop_ms, input,
                     output, error, cause, definition, info, resumes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                e.arn,
                e.machine,
                e.name,
                e.status,
                e.start_ms,
                e.stop_ms,
                e.input,
                e.output,
                e.error,
                e.cause,
                e.definition,
                e.info,
                e.resumes
            ])?;
            append_history(conn, &e.arn, history)?;
        }
        Op::Step {
            execution,
            step,
            history,
            end,
        } => {
            conn.prepare_cached(
                "INSERT INTO steps (execution, seq, at_ms, input) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![execution, step.seq as i64, step.at_ms, step.input])?;
            append_history(conn, execution, history)?;
            if let Some(end) = end {
                conn.prepare_cached(
                    "UPDATE executions SET status = ?2, stop_ms = ?3, output = ?4, error = ?5,
                         cause = ?6 WHERE arn = ?1",
                )?
                .execute(params![
                    execution,
                    end.status,
                    end.stop_ms,
                    end.output,
                    end.error,
                    end.cause
                ])?;
            }
        }
    }
    Ok(())
}

fn append_history(
    conn: &Connection,
    execution: &str,
    history: &[HistoryRecord],
) -> rusqlite::Result<()> {
    let mut insert =
        conn.prepare_cached("INSERT INTO history (execution, id, json) VALUES (?1, ?2, ?3)")?;
    for h in history {
        insert.execute(params![execution, h.id as i64, h.json])?;
    }
    Ok(())
}

const EXECUTION_COLUMNS: &str = "arn, machine, name, status, start_ms, stop_ms, input, output, error, cause, definition, info, resumes";

fn execution_row(row: &Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        arn: row.get(0)?,
        machine: row.get(1)?,
        name: row.get(2)?,
        status: row.get(3)?,
        start_ms: row.get(4)?,
        stop_ms: row.get(5)?,
        input: row.get(6)?,
        output: row.get(7)?,
        error: row.get(8)?,
        cause: row.get(9)?,
        definition: row.get(10)?,
        info: row.get(11)?,
        resumes: row.get(12)?,
    })
}

/// A column that must parse as `T`; a value that does not is reported as corruption.
fn column<T: std::str::FromStr>(row: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text: String = row.get(i)?;
    text.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unexpected value {text:?}").into(),
        )
    })
}

const EVENT_COLUMNS: &str = "id, bus, ingested_ms, json, trace_id, parent_span, replay";

fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        id: column::<EventId>(row, 0)?,
        bus: column::<BusName>(row, 1)?,
        ingested_ms: row.get(2)?,
        json: row.get(3)?,
        trace_id: row.get(4)?,
        parent_span: row.get(5)?,
        replay: row.get(6)?,
    })
}

const DELIVERY_COLUMNS: &str = "id, event, bus, rule, target, status, attempts, created_ms, due_ms, error_code, error_message, exhausted";

fn delivery_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = row.get(5)?;
    let code: Option<String> = row.get(9)?;
    let message: Option<String> = row.get(10)?;
    Ok(Delivery {
        id: column::<DeliveryId>(row, 0)?,
        event: column::<EventId>(row, 1)?,
        bus: column::<BusName>(row, 2)?,
        rule: column::<RuleName>(row, 3)?,
        target: row.get(4)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Text,
                format!("unknown status {status:?}").into(),
            )
        })?,
        attempts: row.get(6)?,
        created_ms: row.get(7)?,
        due_ms: row.get(8)?,
        error: code.map(|c| (c, message.unwrap_or_default())),
        exhausted: row.get(11)?,
    })
}

impl Store for Sqlite {
    fn commit(&self, tx: Transaction) -> BoxFuture<'_, Result<()>> {
        let (done, answer) = oneshot::channel();
        let sent = self
            .writer
            .lock()
            .map_err(|_| Error::Closed)
            .and_then(|w| w.send(Job { tx, done }).map_err(|_| Error::Closed));
        Box::pin(async move {
            sent?;
            answer.await.map_err(|_| Error::Closed)?
        })
    }

    fn write_error(&self) -> Option<String> {
        self.write_error.lock().ok()?.clone()
    }

    fn event(&self, id: EventId) -> BoxFuture<'_, Result<Option<EventRecord>>> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))?
                .query_row([id.to_string()], event_row)
                .optional()
        })
    }

    fn events(&self, q: EventQuery) -> BoxFuture<'_, Result<Vec<EventRecord>>> {
        self.read(move |conn| {
            let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1");
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            if let Some(bus) = &q.bus {
                args.push(Box::new(bus.as_str().to_string()));
                sql += &format!(" AND bus = ?{}", args.len());
            }
            if let Some(t) = q.from_ms {
                args.push(Box::new(t));
                sql += &format!(" AND ingested_ms >= ?{}", args.len());
            }
            if let Some(t) = q.to_ms {
                args.push(Box::new(t));
                sql += &format!(" AND ingested_ms < ?{}", args.len());
            }
            if let Some(span) = &q.parent_span {
                args.push(Box::new(span.clone()));
                sql += &format!(" AND parent_span = ?{}", args.len());
            }
            if let Some(after) = q.after {
                // An event that is gone (pruned) leaves nothing after it, as in the model.
                args.push(Box::new(after.to_string()));
                sql += &format!(
                    " AND seq > COALESCE((SELECT seq FROM events WHERE id = ?{}), 9223372036854775807)",
                    args.len()
                );
            }
            args.push(Box::new(q.limit as i64));
            sql += &format!(" ORDER BY seq LIMIT ?{}", args.len());
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query_map(
                rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())),
                event_row,
            )?;
            rows.collect()
        })
    }

    fn delivery(&self, id: DeliveryId) -> BoxFuture<'_, Result<Option<Delivery>>> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
            ))?
            .query_row([id.to_string()], delivery_row)
            .optional()
        })
    }

    fn deliveries(
        &self,
        status: DeliveryStatus,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Delivery>>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![status.as_str(), limit as i64], delivery_row)?;
            rows.collect()
        })
    }

    fn deliveries_of(&self, event: EventId) -> BoxFuture<'_, Result<Vec<Delivery>>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event = ?1 ORDER BY seq"
            ))?;
            let rows = statement.query_map([event.to_string()], delivery_row)?;
            rows.collect()
        })
    }

    fn rules(&self) -> BoxFuture<'_, Result<Vec<RuleRecord>>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached("SELECT bus, name, json FROM rules")?;
            let rows = statement.query_map([], |row| {
                Ok(RuleRecord {
                    bus: column::<BusName>(row, 0)?,
                    name: column::<RuleName>(row, 1)?,
                    json: row.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    fn archives(&self) -> BoxFuture<'_, Result<Vec<ArchiveRecord>>> {
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT name, json FROM archives ORDER BY name")?;
            let rows = statement.query_map([], |row| {
                Ok(ArchiveRecord {
                    name: column::<ArchiveName>(row, 0)?,
                    json: row.get(1)?,
                })
            })?;
            rows.collect()
        })
    }

    fn keys(&self) -> BoxFuture<'_, Result<Vec<KeyRecord>>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached("SELECT id, json FROM api_keys ORDER BY id")?;
            let rows = statement.query_map([], |row| {
                Ok(KeyRecord {
                    id: row.get(0)?,
                    json: row.get(1)?,
                })
            })?;
            rows.collect()
        })
    }

    fn state_machines(&self) -> BoxFuture<'_, Result<Vec<StateMachineRecord>>> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT name, kind, definition, created_ms FROM state_machines ORDER BY name",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(StateMachineRecord {
                    name: row.get(0)?,
                    kind: row.get(1)?,
                    definition: row.get(2)?,
                    created_ms: row.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    fn execution(&self, arn: &str) -> BoxFuture<'_, Result<Option<ExecutionRecord>>> {
        let arn = arn.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions WHERE arn = ?1"
            ))?
            .query_row([arn], execution_row)
            .optional()
        })
    }

    fn executions(&self, q: ExecutionQuery) -> BoxFuture<'_, Result<Vec<ExecutionRecord>>> {
        self.read(move |conn| {
            let mut sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE 1 = 1");
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            if let Some(machine) = &q.machine {
                args.push(Box::new(machine.clone()));
                sql += &format!(" AND machine = ?{}", args.len());
            }
            if let Some(status) = &q.status {
                args.push(Box::new(status.clone()));
                sql += &format!(" AND status = ?{}", args.len());
            }
            args.push(Box::new(q.limit as i64));
            sql += &format!(" ORDER BY seq DESC LIMIT ?{}", args.len());
            let mut statement = conn.prepare_cached(&sql)?;
            let rows = statement.query_map(
                rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())),
                execution_row,
            )?;
            rows.collect()
        })
    }

    fn steps(&self, arn: &str) -> BoxFuture<'_, Result<Vec<StepRecord>>> {
        let arn = arn.to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT seq, at_ms, input FROM steps WHERE execution = ?1 ORDER BY seq",
            )?;
            let rows = statement.query_map([arn], |row| {
                Ok(StepRecord {
                    seq: row.get::<_, i64>(0)? as u64,
                    at_ms: row.get(1)?,
                    input: row.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    fn history(
        &self,
        arn: &str,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<HistoryRecord>>> {
        let arn = arn.to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, json FROM history WHERE execution = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let rows = statement.query_map(params![arn, after as i64, limit as i64], |row| {
                Ok(HistoryRecord {
                    id: row.get::<_, i64>(0)? as u64,
                    json: row.get(1)?,
                })
            })?;
            rows.collect()
        })
    }
}
