//! The ledger's writer on SQLite: group commits (`autolog_store::CommitQueue`) on one
//! rusqlite connection, each group run whole on a blocking thread, so that a group of
//! requests costs one hand-off between the runtime and the database thread instead of one
//! per statement (sqlx-sqlite sends every statement and every row through a channel to its
//! worker thread). BEGIN IMMEDIATE holds the database's write lock (the ledger lock) until
//! COMMIT, which returns once the WAL is synced (`synchronous = FULL`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use autolog_domain::ledger::merkle::Frontier;
use autolog_domain::rules::history::HistoryFilter;
use autolog_domain::{Event, Instant, Source, Uuid};
use autolog_store::sql::{SqlRow, Statement};
use autolog_store::{
    AppendPlan, AppendTx, EventRow, GroupBackend, GroupTx, LedgerHead, StoreError, StreamHead,
};
use rusqlite::{Connection, OpenFlags};

use crate::bulk::{bulk_error, execute, read, read_events};
use crate::queries::{self, ROWS_PER_STATEMENT};
use crate::sql::Row;
use crate::BACKEND;

/// The writer connection while idle, with the size cap (pages, 0: none) applied to it.
#[derive(Default)]
struct Idle {
    connection: Option<(Connection, u32)>,
    closed: bool,
}

/// Opens and keeps the writer connection; begins and commits group transactions on it.
#[derive(Clone)]
pub(crate) struct LedgerWriter {
    path: Arc<PathBuf>,
    /// The size cap for disk-full drills (`SqliteStore::cap_size_at_current`).
    page_cap: Arc<AtomicU32>,
    idle: Arc<Mutex<Idle>>,
}

fn closed() -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: "the store is closed".into(),
    }
}

/// `PRAGMA max_page_count` for a cap (0: SQLite's default, no cap).
fn apply_cap(connection: &Connection, pages: u32) -> rusqlite::Result<()> {
    let pages = if pages == 0 { 4_294_967_294 } else { pages };
    connection.execute_batch(&format!("PRAGMA max_page_count = {pages}"))
}

impl LedgerWriter {
    pub(crate) fn new(path: &Path, page_cap: Arc<AtomicU32>) -> Self {
        LedgerWriter {
            path: Arc::new(path.to_path_buf()),
            page_cap,
            idle: Arc::new(Mutex::new(Idle::default())),
        }
    }

    /// Closes the idle connection; a transaction under way closes its own when it ends.
    pub(crate) fn close(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.connection = None;
            idle.closed = true;
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(self.path.as_ref(), flags)?;
        connection.busy_timeout(Duration::from_secs(30))?;
        // As on every connection of the store (the file is in WAL mode since it was made).
        connection.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
        )?;
        Ok(connection)
    }

    /// The idle connection (or a new one), with the current size cap applied.
    fn take(&self) -> Result<Connection, StoreError> {
        let kept = match self.idle.lock() {
            Ok(mut idle) => {
                if idle.closed {
                    return Err(closed());
                }
                idle.connection.take()
            }
            Err(_) => None,
        };
        let (connection, applied) = match kept {
            Some(kept) => kept,
            None => (self.open().map_err(bulk_error)?, u32::MAX),
        };
        let cap = self.page_cap.load(Ordering::Acquire);
        if applied != cap {
            apply_cap(&connection, cap).map_err(bulk_error)?;
        }
        Ok(connection)
    }

    /// Keeps `connection` for the next transaction, unless it is still in one (SQLite
    /// ended it by itself on a full disk and the rollback found nothing) or the store closed.
    fn give_back(&self, connection: Connection) {
        if !connection.is_autocommit() {
            tracing::warn!("the writer connection lost its transaction; opening a fresh one");
            return;
        }
        let cap = self.page_cap.load(Ordering::Acquire);
        if let Ok(mut idle) = self.idle.lock() {
            if !idle.closed {
                idle.connection = Some((connection, cap));
            }
        }
    }

    /// The benchmark's baseline: `rows` inserted into a plain table without the ledger's
    /// rules, many rows per statement, in one transaction, on the writer's connection.
    pub(crate) async fn plain_insert(&self, rows: Vec<EventRow>) -> Result<(), StoreError> {
        let writer = self.clone();
        tokio::task::spawn_blocking(move || {
            let connection = writer.take()?;
            let inserted = plain_insert(&connection, &rows).map_err(bulk_error);
            if inserted.is_err() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            writer.give_back(connection);
            inserted
        })
        .await
        .map_err(|e| StoreError::Backend {
            backend: BACKEND,
            message: format!("the writing thread failed: {e}"),
        })?
    }
}

fn plain_insert(connection: &Connection, rows: &[EventRow]) -> rusqlite::Result<()> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS bench_plain_events AS SELECT * FROM events WHERE 0; \
         BEGIN IMMEDIATE;",
    )?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        execute(
            connection,
            &queries::insert_events("bench_plain_events", chunk),
        )?;
    }
    connection.execute_batch("COMMIT")
}

/// A group's transaction: the writer connection, in BEGIN IMMEDIATE until committed (or,
/// dropped, rolled back).
pub(crate) struct WriterTx {
    connection: Option<Connection>,
    writer: LedgerWriter,
}

impl Drop for WriterTx {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.execute_batch("ROLLBACK");
            self.writer.give_back(connection);
        }
    }
}

impl WriterTx {
    fn connection(&self) -> Result<&Connection, StoreError> {
        self.connection.as_ref().ok_or_else(closed)
    }

    fn rows(&self, statement: &Statement) -> Result<Vec<Row>, StoreError> {
        let rows = read(self.connection()?, statement).map_err(bulk_error)?;
        Ok(rows.into_iter().map(Row::Read).collect())
    }

    fn events(&self, statement: &Statement) -> Result<Vec<Event>, StoreError> {
        read_events(self.connection()?, statement).map_err(bulk_error)?
    }

    fn run(&self, statement: &Statement) -> Result<(), StoreError> {
        execute(self.connection()?, statement)
            .map(drop)
            .map_err(bulk_error)
    }
}

fn corrupt(position: i64, detail: String) -> StoreError {
    StoreError::Corrupt { position, detail }
}

/// The ledger head from its row.
pub(crate) fn ledger_head(row: &Row) -> Result<LedgerHead, StoreError> {
    let position = row.int("position")?;
    Ok(LedgerHead {
        position: u64::try_from(position).map_err(|_| corrupt(position, "negative head".into()))?,
        recorded_at: row
            .opt_int("recorded_at_us")?
            .map(Instant::from_micros)
            .transpose()
            .map_err(|e| corrupt(position, e))?,
        frontier: Frontier::from_bytes(&row.bytes("frontier")?)
            .map_err(|e| corrupt(position, format!("ledger head frontier: {e}")))?,
    })
}

/// A `streams` row: the stream and its head.
pub(crate) fn stream_head(row: &Row) -> Result<(String, StreamHead), StoreError> {
    let hash = row.bytes("last_hash")?;
    let seq = row.int("last_seq")?;
    let head = StreamHead {
        last_seq: u64::try_from(seq).map_err(|_| corrupt(0, format!("stream head seq {seq}")))?,
        last_hash: hash.as_slice().try_into().map_err(|_| {
            corrupt(
                0,
                format!("stream head hash has {} bytes, not 32", hash.len()),
            )
        })?,
    };
    Ok((row.text("stream")?, head))
}

#[async_trait]
impl AppendTx for WriterTx {
    async fn lock_head(&mut self) -> Result<LedgerHead, StoreError> {
        // BEGIN IMMEDIATE already holds the database's write lock.
        let rows = self.rows(&Statement::new(queries::LEDGER_HEAD))?;
        let row = rows
            .first()
            .ok_or_else(|| corrupt(0, "no ledger head row".into()))?;
        ledger_head(row)
    }

    async fn find_by_sources(&mut self, sources: &[&Source]) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        for chunk in sources.chunks(ROWS_PER_STATEMENT) {
            found.extend(self.events(&queries::sources(chunk))?);
        }
        Ok(found)
    }

    async fn stream_heads_of(
        &mut self,
        streams: &[&str],
    ) -> Result<HashMap<String, StreamHead>, StoreError> {
        let mut found = HashMap::new();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            for row in self.rows(&queries::heads(chunk))? {
                let (stream, head) = stream_head(&row)?;
                found.insert(stream, head);
            }
        }
        Ok(found)
    }

    async fn whole_histories(
        &mut self,
        streams: &[&str],
    ) -> Result<HashMap<String, Vec<Event>>, StoreError> {
        let mut found: HashMap<String, Vec<Event>> = HashMap::new();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            for event in self.events(&queries::streams(chunk, None))? {
                found.entry(event.stream.clone()).or_default().push(event);
            }
        }
        Ok(found)
    }

    async fn stream_history(
        &mut self,
        stream: &str,
        filter: &HistoryFilter,
    ) -> Result<Vec<Event>, StoreError> {
        let mut events = self.events(&queries::history(stream, filter, None))?;
        events.retain(|e| filter.admits(e));
        Ok(events)
    }

    async fn event_stream(
        &mut self,
        id: Uuid,
    ) -> Result<Option<(String, Option<Uuid>)>, StoreError> {
        let rows = self.rows(&queries::event_stream(id))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let by = row.opt_text("correcting_event_id")?;
        Ok(Some((
            row.text("stream")?,
            by.and_then(|b| Uuid::parse_str(&b).ok()),
        )))
    }

    async fn write(&mut self, plan: &AppendPlan) -> Result<(), StoreError> {
        let rows: Vec<EventRow> = plan.events.iter().map(EventRow::from_event).collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            self.run(&queries::insert_events("events", chunk))?;
        }
        for chunk in plan.stream_heads.chunks(ROWS_PER_STATEMENT) {
            self.run(&queries::upsert_heads(chunk))?;
        }
        for chunk in plan.corrections.chunks(ROWS_PER_STATEMENT) {
            self.run(&queries::insert_corrections(chunk))?;
        }
        for chunk in plan.nodes.chunks(ROWS_PER_STATEMENT) {
            self.run(&queries::insert_nodes(chunk))?;
        }
        if let Some(head) = &plan.head {
            self.run(&queries::set_head(head))?;
        }
        Ok(())
    }
}

#[async_trait]
impl GroupTx for WriterTx {
    async fn execute(&mut self, sql: &'static str) -> Result<(), StoreError> {
        self.connection()?.execute_batch(sql).map_err(bulk_error)
    }
}

#[async_trait]
impl GroupBackend for LedgerWriter {
    type Tx = WriterTx;

    async fn begin(&self) -> Result<WriterTx, StoreError> {
        let connection = self.take()?;
        if let Err(e) = connection.execute_batch("BEGIN IMMEDIATE") {
            self.give_back(connection);
            return Err(bulk_error(e));
        }
        Ok(WriterTx {
            connection: Some(connection),
            writer: self.clone(),
        })
    }

    async fn commit(&self, mut tx: WriterTx) -> Result<(), StoreError> {
        let Some(connection) = tx.connection.take() else {
            return Err(closed());
        };
        let committed = connection.execute_batch("COMMIT").map_err(bulk_error);
        if committed.is_err() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        self.give_back(connection);
        committed
    }

    const PROBE: &'static [&'static str] = &[
        "INSERT INTO writer_probe (filler) VALUES (zeroblob(65536))",
        "DELETE FROM writer_probe",
    ];

    /// rusqlite's calls block: each group runs whole on a blocking thread.
    const BLOCKING: bool = true;
}
