//! The embedded SQLite backend: one file in the data directory, WAL with synchronous=FULL,
//! appends through one writer connection that begins with BEGIN IMMEDIATE. Concurrent
//! appends share that transaction and its commit (group commit, `autolog_store::CommitQueue`).

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use autolog_domain::ledger::merkle::{Frontier, Hash};
use autolog_domain::rules::history::HistoryFilter;
use autolog_domain::{Event, EventDraft, Instant, Source, Uuid};
use autolog_store::prelude::*;
use autolog_store::sql::Statement;
use autolog_store::{
    AppendOutcome, AppendPlan, AppendTx, Clock, EventQuery, EventRow, LedgerHead, ScannedRow,
    StoreError, StreamHead, EVENT_COLUMNS,
};
use autolog_store::{CommitQueue, GroupBackend, GroupTx, WriterHealth};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

mod bulk;
mod sql;

const BACKEND: &str = "sqlite";

fn backend_error(e: sqlx::Error) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: e.to_string(),
    }
}

/// The ledger in one SQLite file.
pub struct SqliteStore {
    /// One connection: every append is serialised here, and begins IMMEDIATE.
    writer: SqlitePool,
    readers: SqlitePool,
    /// The ledger scan's connections (`bulk`).
    bulk: bulk::BulkReader,
    /// Appends, in groups sharing one transaction and one commit on `writer`.
    appends: CommitQueue,
    /// The size cap of [`SqliteStore::cap_size_at_current`], in pages (0: none).
    page_cap: Arc<AtomicU32>,
}

/// The database file, created (or narrowed) to owner-only permissions (0600) before SQLite
/// opens it: it holds the ledger, accounts, token hashes and the vault's ciphertext.
/// SQLite gives its `-wal` and `-shm` files the database file's permissions.
#[cfg(unix)]
fn owner_only_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |e: std::io::Error| StoreError::Backend {
        backend: BACKEND,
        message: format!("cannot make {} owner-only: {e}", path.display()),
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)
                .map_err(failed)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(failed)?;
                tracing::info!(path = %path.display(), "database file narrowed to owner-only (0600)");
            }
            Ok(())
        }
        Err(e) => Err(failed(e)),
    }
}

#[cfg(not(unix))]
fn owner_only_file(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        owner_only_file(path)?;
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(backend_error)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // Deleted or overwritten content is zeroed in its page instead of left in free
            // space, so an erased vault record's bytes do not linger in the file (see
            // `erase_vault_record`). Set on every connection, readers included.
            .pragma("secure_delete", "ON");
        let page_cap = Arc::new(AtomicU32::new(0));
        let cap = page_cap.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // A connection whose transaction SQLite ended by itself (on SQLITE_FULL or an
            // I/O error the ROLLBACK then finds nothing to roll back) is still counted in a
            // transaction by sqlx, and every later BEGIN on it failed until restart. Such a
            // connection is closed when handed back; the next write opens a fresh one.
            .after_release(|conn, _| Box::pin(async move { writer_reusable(conn).await }))
            .after_connect(move |conn, _| {
                let cap = cap.clone();
                Box::pin(async move { apply_page_cap(conn, cap.load(Ordering::Acquire)).await })
            })
            .connect_with(options.clone())
            .await
            .map_err(backend_error)?;
        sqlx::migrate!("./migrations")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend {
                backend: BACKEND,
                message: format!("migration failed: {e}"),
            })?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(backend_error)?;
        let appends = CommitQueue::start(
            BACKEND,
            SqliteGroups {
                writer: writer.clone(),
            },
        );
        Ok(SqliteStore {
            writer,
            readers,
            bulk: bulk::BulkReader::new(path),
            appends,
            page_cap,
        })
    }

    /// Caps the database at its current size in pages (`PRAGMA max_page_count`), on the
    /// writer connection and every one opened after it: a write that needs one more page
    /// then fails with "database or disk is full", as on a full disk. For disk-full drills
    /// and tests; [`SqliteStore::lift_size_cap`] lifts it.
    pub async fn cap_size_at_current(&self) -> Result<u32, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(backend_error)?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut *conn)
            .await
            .map_err(backend_error)?;
        let pages = u32::try_from(pages).unwrap_or(u32::MAX);
        self.page_cap.store(pages, Ordering::Release);
        apply_page_cap(&mut conn, pages)
            .await
            .map_err(backend_error)?;
        Ok(pages)
    }

    /// Lifts the cap of [`SqliteStore::cap_size_at_current`].
    pub async fn lift_size_cap(&self) -> Result<(), StoreError> {
        self.page_cap.store(0, Ordering::Release);
        let mut conn = self.writer.acquire().await.map_err(backend_error)?;
        apply_page_cap(&mut conn, 0).await.map_err(backend_error)
    }

    /// Closes every connection and waits until they are closed. The last one to close
    /// checkpoints the WAL and removes the -wal and -shm files.
    pub async fn close(&self) {
        self.bulk.close();
        self.readers.close().await;
        self.writer.close().await;
    }
}

/// Whether a writer connection handed back to its pool may serve the next write: not when
/// it still counts itself in a transaction once its queued rollback has run.
async fn writer_reusable(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    // The ping runs after the rollback queued by the dropped transaction.
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("the writer connection lost its transaction; opening a fresh one");
        return Ok(false);
    }
    Ok(true)
}

/// Sets `PRAGMA max_page_count` to `pages`, or back to SQLite's default when 0.
async fn apply_page_cap(conn: &mut sqlx::SqliteConnection, pages: u32) -> Result<(), sqlx::Error> {
    let pages = if pages == 0 { 4_294_967_294 } else { pages };
    sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Benchmark baseline: the same rows written as plain inserts into a table without the
/// ledger's rules (no lock, no hash, no Merkle nodes), one transaction per call, many rows
/// per statement as the ledger writes them. The ledger's overhead is reported as a ratio against this.
impl SqliteStore {
    pub async fn plain_insert_baseline(&self, events: &[Event]) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_plain_events AS SELECT * FROM events WHERE 0",
        )
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        let mut tx = self.writer.begin().await.map_err(backend_error)?;
        let rows: Vec<EventRow> = events.iter().map(EventRow::from_event).collect();
        insert_event_rows(&mut tx, "bench_plain_events", &rows).await?;
        tx.commit().await.map_err(backend_error)
    }
}

/// Rows per multi-row statement: well under both engines' limits on bound parameters.
const ROWS_PER_STATEMENT: usize = 500;

/// Inserts event rows into `table` (`events`, or the benchmark's baseline table), many rows
/// per statement.
async fn insert_event_rows(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    rows: &[EventRow],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut qb = QueryBuilder::<Sqlite>::new(format!("INSERT INTO {table} ({EVENT_COLUMNS}) "));
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.position);
            b.push_bind(r.event_id.clone());
            b.push_bind(r.stream.clone());
            b.push_bind(r.seq);
            b.push_bind(r.prev_hash.clone());
            b.push_bind(r.hash.clone());
            b.push_bind(r.recorded_at_us);
            b.push_bind(r.occurred_at_us);
            b.push_bind(r.occurred_zone.clone());
            b.push_bind(r.occurred_offset_s);
            b.push_bind(r.actor.clone());
            b.push_bind(r.source_system.clone());
            b.push_bind(r.source_event_id.clone());
            b.push_bind(r.reason.clone());
            b.push_bind(r.corrects.clone());
            b.push_bind(r.body_type.clone());
            b.push_bind(r.body_version);
            b.push_bind(r.body_data.clone());
            b.push_bind(r.site.clone());
        });
        qb.build()
            .execute(&mut *conn)
            .await
            .map_err(backend_error)?;
    }
    Ok(())
}

/// A `streams` row: the stream and its head.
fn stream_head_row(row: &SqliteRow) -> Result<(String, StreamHead), StoreError> {
    let stream: String = row.try_get("stream").map_err(backend_error)?;
    let seq: i64 = row.try_get("last_seq").map_err(backend_error)?;
    let hash: Vec<u8> = row.try_get("last_hash").map_err(backend_error)?;
    let head = StreamHead {
        last_seq: seq as u64,
        last_hash: hash32(&hash, "stream head hash")?,
    };
    Ok((stream, head))
}

fn event_row(row: &SqliteRow) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        stream: row.try_get("stream")?,
        seq: row.try_get("seq")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        recorded_at_us: row.try_get("recorded_at_us")?,
        occurred_at_us: row.try_get("occurred_at_us")?,
        occurred_zone: row.try_get("occurred_zone")?,
        occurred_offset_s: row.try_get("occurred_offset_s")?,
        actor: row.try_get("actor")?,
        source_system: row.try_get("source_system")?,
        source_event_id: row.try_get("source_event_id")?,
        reason: row.try_get("reason")?,
        corrects: row.try_get("corrects")?,
        body_type: row.try_get("body_type")?,
        body_version: row.try_get("body_version")?,
        body_data: row.try_get("body_data")?,
        site: row.try_get("site")?,
    })
}

fn to_event(row: &SqliteRow) -> Result<Event, StoreError> {
    let raw = event_row(row).map_err(backend_error)?;
    let position = raw.position;
    raw.into_event()
        .map_err(|detail| StoreError::Corrupt { position, detail })
}

fn to_events(rows: &[SqliteRow]) -> Result<Vec<Event>, StoreError> {
    rows.iter().map(to_event).collect()
}

fn hash32(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt {
        position: 0,
        detail: format!("{what} has {} bytes, not 32", bytes.len()),
    })
}

fn read_head(row: &SqliteRow) -> Result<LedgerHead, StoreError> {
    let position: i64 = row.try_get("position").map_err(backend_error)?;
    let recorded: Option<i64> = row.try_get("recorded_at_us").map_err(backend_error)?;
    let frontier: Vec<u8> = row.try_get("frontier").map_err(backend_error)?;
    let corrupt = |detail: String| StoreError::Corrupt { position, detail };
    Ok(LedgerHead {
        position: u64::try_from(position).map_err(|_| corrupt("negative head".into()))?,
        recorded_at: recorded
            .map(Instant::from_micros)
            .transpose()
            .map_err(corrupt)?,
        frontier: Frontier::from_bytes(&frontier)
            .map_err(|e| corrupt(format!("ledger head frontier: {e}")))?,
    })
}

/// A filtered read of one stream ([`HistoryFilter`]), in seq order, `recorded_at_us` bounded
/// by `known_at` if given: the corrections (partial index `events_stream_corrections`),
/// then the admitted types (`events_stream_type`) or, for the crosswalk mappings of one
/// local code, that code (`events_crosswalk_code`: the expression and the literal
/// `body_type` term are repeated exactly, or SQLite would not use the partial index). A
/// local code with other types is not selected here: callers filter with `admits` too.
fn history_query(
    stream: &str,
    filter: &HistoryFilter,
    known_at: Option<i64>,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::new("");
    // Without INDEXED BY, SQLite reads the whole stream through (stream, seq) to skip a
    // sort (EXPLAIN QUERY PLAN shows it for `body_type IN (...)`, with or without ANALYZE).
    let part = |qb: &mut QueryBuilder<'static, Sqlite>, index: &str| {
        qb.push(format!(
            "SELECT {EVENT_COLUMNS} FROM events {index} WHERE stream = "
        ));
        qb.push_bind(stream.to_string());
        if let Some(known_at) = known_at {
            qb.push(" AND recorded_at_us <= ");
            qb.push_bind(known_at);
        }
    };
    let Some(types) = &filter.types else {
        part(&mut qb, "");
        qb.push(" ORDER BY seq");
        return qb;
    };
    part(&mut qb, "INDEXED BY events_stream_corrections");
    qb.push(" AND corrects IS NOT NULL UNION ALL ");
    match (&filter.local_code, types.as_slice()) {
        (Some(code), [only]) if only == "crosswalk.mapped" => {
            part(&mut qb, "INDEXED BY events_crosswalk_code");
            qb.push(
                " AND corrects IS NULL AND body_type = 'crosswalk.mapped' \
                 AND json_extract(body_data, '$.local_code') = ",
            );
            qb.push_bind(code.clone());
        }
        (_, []) => {
            part(&mut qb, "");
            qb.push(" AND 0");
        }
        _ => {
            part(&mut qb, "INDEXED BY events_stream_type");
            qb.push(" AND corrects IS NULL AND body_type IN (");
            let mut names = qb.separated(", ");
            for t in types {
                names.push_bind(t.clone());
            }
            qb.push(")");
        }
    }
    qb.push(" ORDER BY seq");
    qb
}

/// The events having any of `sources` (one chunk), then `tail` (an ORDER BY or nothing).
fn sources_query<'a>(
    sources: impl IntoIterator<Item = &'a Source>,
    tail: &str,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE (source_system, source_event_id) IN (VALUES "
    ));
    let mut tuples = qb.separated(", ");
    for source in sources {
        tuples.push("(");
        tuples.push_bind_unseparated(source.system.clone());
        tuples.push_unseparated(", ");
        tuples.push_bind_unseparated(source.source_event_id.clone());
        tuples.push_unseparated(")");
    }
    qb.push(")");
    qb.push(tail.to_string());
    qb
}

/// The stored heads of `streams` (one chunk).
fn heads_query<'a>(streams: impl IntoIterator<Item = &'a str>) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT stream, last_seq, last_hash FROM streams WHERE stream IN (",
    );
    let mut names = qb.separated(", ");
    for stream in streams {
        names.push_bind(stream.to_string());
    }
    qb.push(")");
    qb
}

/// Every event of `streams` (one chunk), recorded by `known_at` when given, by stream and seq.
fn streams_query<'a>(
    streams: impl IntoIterator<Item = &'a str>,
    known_at: Option<i64>,
) -> QueryBuilder<'static, Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream IN ("
    ));
    let mut names = qb.separated(", ");
    for stream in streams {
        names.push_bind(stream.to_string());
    }
    qb.push(")");
    if let Some(known_at) = known_at {
        qb.push(" AND recorded_at_us <= ");
        qb.push_bind(known_at);
    }
    qb.push(" ORDER BY stream, seq");
    qb
}

struct SqliteAppend<'c> {
    tx: Transaction<'c, Sqlite>,
}

#[async_trait]
impl AppendTx for SqliteAppend<'_> {
    async fn lock_head(&mut self) -> Result<LedgerHead, StoreError> {
        // BEGIN IMMEDIATE already holds the database's write lock.
        let row =
            sqlx::query("SELECT position, recorded_at_us, frontier FROM ledger_head WHERE id = 1")
                .fetch_one(&mut *self.tx)
                .await
                .map_err(backend_error)?;
        read_head(&row)
    }

    async fn find_by_sources(&mut self, sources: &[&Source]) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        for chunk in sources.chunks(ROWS_PER_STATEMENT) {
            let rows = sources_query(chunk.iter().copied(), "")
                .build()
                .fetch_all(&mut *self.tx)
                .await
                .map_err(backend_error)?;
            found.extend(to_events(&rows)?);
        }
        Ok(found)
    }

    async fn stream_heads_of(
        &mut self,
        streams: &[&str],
    ) -> Result<HashMap<String, StreamHead>, StoreError> {
        let mut found = HashMap::new();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            let rows = heads_query(chunk.iter().copied())
                .build()
                .fetch_all(&mut *self.tx)
                .await
                .map_err(backend_error)?;
            for row in &rows {
                let (stream, head) = stream_head_row(row)?;
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
            let rows = streams_query(chunk.iter().copied(), None)
                .build()
                .fetch_all(&mut *self.tx)
                .await
                .map_err(backend_error)?;
            for event in to_events(&rows)? {
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
        let rows = history_query(stream, filter, None)
            .build()
            .fetch_all(&mut *self.tx)
            .await
            .map_err(backend_error)?;
        let mut events = to_events(&rows)?;
        events.retain(|e| filter.admits(e));
        Ok(events)
    }

    async fn event_stream(
        &mut self,
        id: Uuid,
    ) -> Result<Option<(String, Option<Uuid>)>, StoreError> {
        let row = sqlx::query(
            "SELECT e.stream, c.correcting_event_id FROM events e \
             LEFT JOIN corrections c ON c.superseded_event_id = e.event_id WHERE e.event_id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(backend_error)?;
        match row {
            None => Ok(None),
            Some(row) => {
                let stream: String = row.try_get("stream").map_err(backend_error)?;
                let by: Option<String> =
                    row.try_get("correcting_event_id").map_err(backend_error)?;
                Ok(Some((stream, by.and_then(|b| Uuid::parse_str(&b).ok()))))
            }
        }
    }

    async fn write(&mut self, plan: &AppendPlan) -> Result<(), StoreError> {
        let rows: Vec<EventRow> = plan.events.iter().map(EventRow::from_event).collect();
        insert_event_rows(&mut self.tx, "events", &rows).await?;
        for chunk in plan.stream_heads.chunks(ROWS_PER_STATEMENT) {
            let mut qb =
                QueryBuilder::<Sqlite>::new("INSERT INTO streams (stream, last_seq, last_hash) ");
            qb.push_values(chunk, |mut b, (stream, head)| {
                b.push_bind(stream.clone());
                b.push_bind(head.last_seq as i64);
                b.push_bind(head.last_hash.to_vec());
            });
            qb.push(" ON CONFLICT (stream) DO UPDATE SET last_seq = excluded.last_seq, last_hash = excluded.last_hash");
            qb.build()
                .execute(&mut *self.tx)
                .await
                .map_err(backend_error)?;
        }
        for chunk in plan.corrections.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO corrections (superseded_event_id, correcting_event_id, recorded_at_us) ",
            );
            qb.push_values(chunk, |mut b, (superseded, by, at)| {
                b.push_bind(superseded.to_string());
                b.push_bind(by.to_string());
                b.push_bind(at.micros());
            });
            qb.build()
                .execute(&mut *self.tx)
                .await
                .map_err(backend_error)?;
        }
        for chunk in plan.nodes.chunks(ROWS_PER_STATEMENT) {
            let mut qb =
                QueryBuilder::<Sqlite>::new("INSERT INTO merkle_nodes (level, idx, hash) ");
            qb.push_values(chunk, |mut b, (id, hash)| {
                b.push_bind(i32::from(id.level));
                b.push_bind(id.index as i64);
                b.push_bind(hash.to_vec());
            });
            qb.build()
                .execute(&mut *self.tx)
                .await
                .map_err(backend_error)?;
        }
        if let Some(head) = &plan.head {
            sqlx::query(
                "UPDATE ledger_head SET position = ?, recorded_at_us = ?, frontier = ? WHERE id = 1",
            )
            .bind(head.position as i64)
            .bind(head.recorded_at.map(Instant::micros))
            .bind(head.frontier.to_bytes())
            .execute(&mut *self.tx)
            .await
            .map_err(backend_error)?;
        }
        Ok(())
    }
}

#[async_trait]
impl GroupTx for SqliteAppend<'static> {
    async fn execute(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql)
            .execute(&mut *self.tx)
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

/// Group transactions on the writer connection: BEGIN IMMEDIATE holds the database's write
/// lock (the ledger lock) until COMMIT, which returns once the WAL is synced (FULL).
struct SqliteGroups {
    writer: SqlitePool,
}

#[async_trait]
impl GroupBackend for SqliteGroups {
    type Tx = SqliteAppend<'static>;

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        let tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend_error)?;
        Ok(SqliteAppend { tx })
    }

    async fn commit(&self, tx: Self::Tx) -> Result<(), StoreError> {
        tx.tx.commit().await.map_err(backend_error)
    }

    const PROBE: &'static [&'static str] = &[
        "INSERT INTO writer_probe (filler) VALUES (zeroblob(65536))",
        "DELETE FROM writer_probe",
    ];
}

#[async_trait]
impl LedgerStore for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn append(
        &self,
        drafts: &[EventDraft],
        clock: &Clock,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        self.appends.append(drafts, clock).await
    }

    async fn stream_events(
        &self,
        stream: &str,
        known_at: Instant,
    ) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream = ? AND recorded_at_us <= ? ORDER BY seq"
        );
        let select = Statement::new(sql).bind(stream).bind(known_at.micros());
        self.bulk.events(select).await
    }

    async fn stream_events_filtered(
        &self,
        stream: &str,
        known_at: Instant,
        filter: &HistoryFilter,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = history_query(stream, filter, Some(known_at.micros()))
            .build()
            .fetch_all(&self.readers)
            .await
            .map_err(backend_error)?;
        let mut events = to_events(&rows)?;
        events.retain(|e| filter.admits(e));
        Ok(events)
    }

    async fn stream_events_many(
        &self,
        streams: &[String],
        known_at: Instant,
    ) -> Result<HashMap<String, Vec<Event>>, StoreError> {
        let mut found: HashMap<String, Vec<Event>> = HashMap::new();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            let rows = streams_query(chunk.iter().map(String::as_str), Some(known_at.micros()))
                .build()
                .fetch_all(&self.readers)
                .await
                .map_err(backend_error)?;
            for event in to_events(&rows)? {
                found.entry(event.stream.clone()).or_default().push(event);
            }
        }
        Ok(found)
    }

    async fn stream_heads_many(
        &self,
        streams: &[String],
    ) -> Result<HashMap<String, StreamHead>, StoreError> {
        let mut found = HashMap::new();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            let rows = heads_query(chunk.iter().map(String::as_str))
                .build()
                .fetch_all(&self.readers)
                .await
                .map_err(backend_error)?;
            for row in &rows {
                let (stream, head) = stream_head_row(row)?;
                found.insert(stream, head);
            }
        }
        Ok(found)
    }

    async fn events_by_sources(&self, sources: &[Source]) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        for chunk in sources.chunks(ROWS_PER_STATEMENT) {
            let rows = sources_query(chunk, " ORDER BY position")
                .build()
                .fetch_all(&self.readers)
                .await
                .map_err(backend_error)?;
            found.extend(to_events(&rows)?);
        }
        Ok(found)
    }

    async fn list_events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? AND recorded_at_us <= ? \
             AND occurred_at_us <= ? AND (? IS NULL OR stream = ?) ORDER BY position LIMIT ?"
        );
        let select = Statement::new(sql)
            .bind(q.after_position as i64)
            .bind(q.known_at.micros())
            .bind(q.valid_at.micros())
            .bind(q.stream.as_deref())
            .bind(q.stream.as_deref())
            .bind(i64::from(q.limit));
        self.bulk.events(select).await
    }

    async fn superseded_by(
        &self,
        ids: &[Uuid],
        known_at: Instant,
    ) -> Result<HashMap<Uuid, Uuid>, StoreError> {
        let mut found = HashMap::new();
        for id in ids {
            let row = sqlx::query(
                "SELECT correcting_event_id FROM corrections WHERE superseded_event_id = ? AND recorded_at_us <= ?",
            )
            .bind(id.to_string())
            .bind(known_at.micros())
            .fetch_optional(&self.readers)
            .await
            .map_err(backend_error)?;
            if let Some(row) = row {
                let by: String = row.try_get(0).map_err(backend_error)?;
                if let Ok(by) = Uuid::parse_str(&by) {
                    found.insert(*id, by);
                }
            }
        }
        Ok(found)
    }

    async fn event(&self, id: Uuid) -> Result<Option<Event>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.readers)
            .await
            .map_err(backend_error)?;
        row.as_ref().map(to_event).transpose()
    }

    async fn event_by_source(
        &self,
        system: &str,
        source_event_id: &str,
    ) -> Result<Option<Event>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE source_system = ? AND source_event_id = ?"
        );
        let row = sqlx::query(&sql)
            .bind(system)
            .bind(source_event_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(backend_error)?;
        row.as_ref().map(to_event).transpose()
    }

    fn writer_health(&self) -> WriterHealth {
        self.appends.health()
    }

    async fn probe_writer(&self) -> WriterHealth {
        self.appends.probe().await
    }

    fn commit_stats(&self) -> autolog_store::CommitStats {
        self.appends.stats()
    }

    async fn head(&self) -> Result<LedgerHead, StoreError> {
        let row =
            sqlx::query("SELECT position, recorded_at_us, frontier FROM ledger_head WHERE id = 1")
                .fetch_one(&self.readers)
                .await
                .map_err(backend_error)?;
        read_head(&row)
    }

    async fn scan(&self, after_position: i64, limit: u32) -> Result<Vec<ScannedRow>, StoreError> {
        self.bulk.scan(after_position, limit).await
    }

    async fn streams_with_prefix(
        &self,
        prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT stream FROM streams WHERE substr(stream, 1, length(?1)) = ?1 AND stream > ?2 ORDER BY stream LIMIT ?3")
            .bind(prefix)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(backend_error)?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).map_err(backend_error))
            .collect()
    }

    async fn stream_head(&self, stream: &str) -> Result<Option<StreamHead>, StoreError> {
        let row = sqlx::query("SELECT stream, last_seq, last_hash FROM streams WHERE stream = ?")
            .bind(stream)
            .fetch_optional(&self.readers)
            .await
            .map_err(backend_error)?;
        row.as_ref()
            .map(|r| stream_head_row(r).map(|(_, head)| head))
            .transpose()
    }

    async fn stream_heads(&self) -> Result<Vec<(String, StreamHead)>, StoreError> {
        let rows = sqlx::query("SELECT stream, last_seq, last_hash FROM streams ORDER BY stream")
            .fetch_all(&self.readers)
            .await
            .map_err(backend_error)?;
        rows.iter().map(stream_head_row).collect()
    }

    async fn corrections(&self) -> Result<Vec<(Uuid, Uuid, Instant)>, StoreError> {
        let rows = sqlx::query(
            "SELECT superseded_event_id, correcting_event_id, recorded_at_us FROM corrections",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|row| {
                let corrupt = |detail: String| StoreError::Corrupt {
                    position: 0,
                    detail,
                };
                let superseded: String = row.try_get(0).map_err(backend_error)?;
                let by: String = row.try_get(1).map_err(backend_error)?;
                let at: i64 = row.try_get(2).map_err(backend_error)?;
                Ok((
                    Uuid::parse_str(&superseded)
                        .map_err(|e| corrupt(format!("corrections row {superseded}: {e}")))?,
                    Uuid::parse_str(&by)
                        .map_err(|e| corrupt(format!("corrections row {by}: {e}")))?,
                    Instant::from_micros(at).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    async fn counts(&self) -> Result<(u64, u64), StoreError> {
        let row =
            sqlx::query("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM streams)")
                .fetch_one(&self.readers)
                .await
                .map_err(backend_error)?;
        let events: i64 = row.try_get(0).map_err(backend_error)?;
        let streams: i64 = row.try_get(1).map_err(backend_error)?;
        Ok((events as u64, streams as u64))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[tokio::test]
    async fn the_database_files_are_owner_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("autolog.db");
        let store = SqliteStore::open(&path).await.expect("open");
        assert_eq!(mode(&path), 0o600);
        let wal = dir.path().join("autolog.db-wal");
        assert!(wal.exists(), "WAL mode");
        assert_eq!(mode(&wal), 0o600, "SQLite gives the WAL the file's mode");
        store.close().await;
        // A file left readable by others is narrowed when opened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let store = SqliteStore::open(&path).await.expect("reopen");
        assert_eq!(mode(&path), 0o600);
        store.close().await;
    }
}
