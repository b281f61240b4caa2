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
use autolog_domain::ledger::checkpoint::Checkpoint;
use autolog_domain::ledger::merkle::{Frontier, Hash, NodeId};
use autolog_domain::rules::history::HistoryFilter;
use autolog_domain::{Event, EventDraft, Instant, Source, Uuid};
use autolog_store::prelude::*;
use autolog_store::{
    check_delivery_attempt, check_vault_record, duplicate_api_token, duplicate_session,
    duplicate_user, duplicate_webhook, encode_sites, erased_vault_record, stored_position,
    unknown_delivery, unknown_vault_record, unknown_webhook, unmapped_code, ApiToken, ApiTokenRow,
    AppendOutcome, AppendPlan, AppendTx, CheckpointRow, Clock, DeliveryAttempt, DeliveryAttemptRow,
    DeliveryStatus, EventQuery, EventRow, LedgerHead, RoleGrant, RoleGrantRow, ScannedRow,
    SecretOwner, SecretReplacement, Session, SessionRow, StoreError, StreamHead, UnmappedCode,
    UserAccount, UserAccountRow, VaultRecord, VaultRecordRow, Webhook, WebhookDelivery,
    WebhookDeliveryRow, WebhookRow, COI_SEQUENCE_NEXT, DELIVERY_ATTEMPT_UPDATE, EVENT_COLUMNS,
    FAILED_ATTEMPT_RECORD, SESSION_TOUCH, SIGNING_SECRET_UPSERT, TOTP_STEP_ACCEPT,
    UNMAPPED_CODE_UPSERT, USER_COLUMNS, VAULT_COLUMNS, VAULT_KEY_REWRAP, VAULT_RECORD_ERASE,
    VAULT_RECORD_UPSERT, WEBHOOK_CURSOR_ADVANCE,
};
use autolog_store::{CommitQueue, GroupBackend, GroupTx, WriterHealth};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

mod epcis;

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
        let rows = sqlx::query(&sql)
            .bind(stream)
            .bind(known_at.micros())
            .fetch_all(&self.readers)
            .await
            .map_err(backend_error)?;
        to_events(&rows)
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
        let rows = sqlx::query(&sql)
            .bind(q.after_position as i64)
            .bind(q.known_at.micros())
            .bind(q.valid_at.micros())
            .bind(q.stream.as_deref())
            .bind(q.stream.as_deref())
            .bind(i64::from(q.limit))
            .fetch_all(&self.readers)
            .await
            .map_err(backend_error)?;
        to_events(&rows)
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

    async fn head(&self) -> Result<LedgerHead, StoreError> {
        let row =
            sqlx::query("SELECT position, recorded_at_us, frontier FROM ledger_head WHERE id = 1")
                .fetch_one(&self.readers)
                .await
                .map_err(backend_error)?;
        read_head(&row)
    }

    async fn merkle_nodes(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let mut conn = self.readers.acquire().await.map_err(backend_error)?;
        let mut found = HashMap::new();
        for id in ids {
            let row = sqlx::query("SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?")
                .bind(i64::from(id.level))
                .bind(id.index as i64)
                .fetch_optional(&mut *conn)
                .await
                .map_err(backend_error)?;
            if let Some(row) = row {
                let hash: Vec<u8> = row.try_get(0).map_err(backend_error)?;
                found.insert(*id, hash32(&hash, "merkle node")?);
            }
        }
        Ok(found)
    }

    async fn merkle_level_range(
        &self,
        level: u8,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Hash)>, StoreError> {
        let rows = sqlx::query(
            "SELECT idx, hash FROM merkle_nodes WHERE level = ? AND idx BETWEEN ? AND ? ORDER BY idx",
        )
        .bind(i64::from(level))
        .bind(from as i64)
        .bind(to as i64)
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|row| {
                let idx: i64 = row.try_get(0).map_err(backend_error)?;
                let hash: Vec<u8> = row.try_get(1).map_err(backend_error)?;
                Ok((idx as u64, hash32(&hash, "merkle node")?))
            })
            .collect()
    }

    async fn add_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        let r = CheckpointRow::from_checkpoint(c);
        sqlx::query(
            "INSERT INTO checkpoints (tree_size, root, issued_at_us, key_id, signature, sequence, previous) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.tree_size)
        .bind(r.root)
        .bind(r.issued_at_us)
        .bind(r.key_id)
        .bind(r.signature)
        .bind(r.sequence)
        .bind(r.previous)
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        Ok(())
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tree_size, root, issued_at_us, key_id, signature, sequence, previous FROM checkpoints ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.readers)
        .await
        .map_err(backend_error)?;
        row.as_ref()
            .map(|r| {
                let id: i64 = r.try_get("id").map_err(backend_error)?;
                checkpoint_row(r)
                    .map_err(backend_error)?
                    .into_checkpoint()
                    .map_err(|detail| StoreError::Corrupt {
                        position: id,
                        detail: format!("checkpoint {id}: {detail}"),
                    })
            })
            .transpose()
    }

    async fn checkpoints(&self) -> Result<Vec<Result<Checkpoint, String>>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tree_size, root, issued_at_us, key_id, signature, sequence, previous FROM checkpoints ORDER BY id",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| Ok(checkpoint_row(r).map_err(backend_error)?.into_checkpoint()))
            .collect()
    }

    async fn scan(&self, after_position: i64, limit: u32) -> Result<Vec<ScannedRow>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(after_position)
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(backend_error)?;
        Ok(rows
            .iter()
            .map(|row| match event_row(row) {
                Ok(raw) => ScannedRow {
                    position: raw.position,
                    event: raw.into_event(),
                },
                Err(e) => ScannedRow {
                    position: row.try_get("position").unwrap_or(-1),
                    event: Err(format!("row does not have the expected columns: {e}")),
                },
            })
            .collect())
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

#[async_trait]
impl CodeStore for SqliteStore {
    async fn record_unmapped_code(
        &self,
        system: &str,
        kind: &str,
        code: &str,
        seen_at: Instant,
    ) -> Result<(), StoreError> {
        sqlx::query(UNMAPPED_CODE_UPSERT)
            .bind(system)
            .bind(kind)
            .bind(code)
            .bind(seen_at.micros())
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn next_coi_sequence(&self, fin: &str, year: u16) -> Result<u64, StoreError> {
        let row = sqlx::query(COI_SEQUENCE_NEXT)
            .bind(fin)
            .bind(i64::from(year))
            .fetch_one(&self.writer)
            .await
            .map_err(backend_error)?;
        let last: i64 = row.try_get(0).map_err(backend_error)?;
        u64::try_from(last).map_err(|_| StoreError::Backend {
            backend: BACKEND,
            message: format!("coi_sequences ({fin}, {year}) holds a negative number {last}"),
        })
    }

    async fn unmapped_codes(&self) -> Result<Vec<UnmappedCode>, StoreError> {
        let rows = sqlx::query(
            "SELECT system, kind, code, seen_count, first_seen_us, last_seen_us FROM unmapped_codes ORDER BY system, kind, code",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                unmapped_code(
                    r.try_get("system").map_err(backend_error)?,
                    r.try_get("kind").map_err(backend_error)?,
                    r.try_get("code").map_err(backend_error)?,
                    r.try_get("seen_count").map_err(backend_error)?,
                    r.try_get("first_seen_us").map_err(backend_error)?,
                    r.try_get("last_seen_us").map_err(backend_error)?,
                )
            })
            .collect()
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn outbox_cursor(&self, name: &str) -> Result<Option<u64>, StoreError> {
        autolog_store::check_outbox_name(name)?;
        let row = sqlx::query("SELECT position FROM outbox_cursors WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.readers)
            .await
            .map_err(backend_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let position: i64 = row.try_get(0).map_err(backend_error)?;
        u64::try_from(position)
            .map(Some)
            .map_err(|_| StoreError::Backend {
                backend: BACKEND,
                message: format!("outbox_cursors ({name}) holds a negative position {position}"),
            })
    }

    async fn set_outbox_cursor(&self, name: &str, position: u64) -> Result<(), StoreError> {
        autolog_store::check_outbox_name(name)?;
        let stored = stored_position("position", position)?;
        sqlx::query(autolog_store::OUTBOX_CURSOR_ADVANCE)
            .bind(name)
            .bind(stored)
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn set_signing_secret(
        &self,
        person_id: &str,
        phc: &str,
        at: Instant,
        set_by: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(SIGNING_SECRET_UPSERT)
            .bind(person_id)
            .bind(phc)
            .bind(at.micros())
            .bind(set_by)
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn signing_secret(&self, person_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT phc FROM signing_secrets WHERE person_id = ?1")
            .bind(person_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(backend_error)?;
        row.map(|r| r.try_get::<String, _>(0).map_err(backend_error))
            .transpose()
    }

    async fn add_user(&self, user: &UserAccount) -> Result<(), StoreError> {
        let done = sqlx::query(&format!(
            "INSERT INTO user_accounts ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (person_id) DO NOTHING"
        ))
        .bind(&user.person_id)
        .bind(user.totp_secret.as_deref())
        .bind(user.totp_last_step)
        .bind(i64::from(user.failed_attempts))
        .bind(user.locked_until.map(Instant::micros))
        .bind(user.disabled_at.map(Instant::micros))
        .bind(user.created_at.micros())
        .bind(&user.created_by)
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            return Err(duplicate_user(&user.person_id));
        }
        Ok(())
    }

    async fn user(&self, person_id: &str) -> Result<Option<UserAccount>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM user_accounts WHERE person_id = ?"
        ))
        .bind(person_id)
        .fetch_optional(&self.readers)
        .await
        .map_err(backend_error)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn users(&self) -> Result<Vec<UserAccount>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM user_accounts ORDER BY person_id"
        ))
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter().map(user_row).collect()
    }

    async fn set_totp(&self, person_id: &str, secret: Option<&str>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_accounts SET totp_secret = ?, totp_last_step = NULL WHERE person_id = ?",
        )
        .bind(secret)
        .bind(person_id)
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn accept_totp_step(&self, person_id: &str, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(TOTP_STEP_ACCEPT)
            .bind(person_id)
            .bind(step)
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_failed_attempt(
        &self,
        person_id: &str,
        lock_after: u32,
        lock_until: Instant,
    ) -> Result<Option<UserAccount>, StoreError> {
        let row = sqlx::query(FAILED_ATTEMPT_RECORD)
            .bind(person_id)
            .bind(i64::from(lock_after))
            .bind(lock_until.micros())
            .fetch_optional(&self.writer)
            .await
            .map_err(backend_error)?;
        row.as_ref().map(user_row).transpose()
    }

    async fn reset_failed_attempts(&self, person_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE user_accounts SET failed_attempts = 0 WHERE person_id = ? AND failed_attempts <> 0")
            .bind(person_id)
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn unlock_user(&self, person_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE user_accounts SET failed_attempts = 0, locked_until_us = NULL \
             WHERE person_id = ?",
        )
        .bind(person_id)
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_user_disabled(
        &self,
        person_id: &str,
        at: Option<Instant>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE user_accounts SET disabled_at_us = ? WHERE person_id = ?")
            .bind(at.map(Instant::micros))
            .bind(person_id)
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn grant_role(&self, grant: &RoleGrant) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO role_grants (person_id, role, site_id, granted_at_us, granted_by) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (person_id, role, site_id) DO NOTHING",
        )
        .bind(&grant.person_id)
        .bind(&grant.role)
        .bind(&grant.site_id)
        .bind(grant.granted_at.micros())
        .bind(&grant.granted_by)
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_role(
        &self,
        person_id: &str,
        role: &str,
        site_id: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM role_grants WHERE person_id = ? AND role = ? AND site_id = ?")
                .bind(person_id)
                .bind(role)
                .bind(site_id)
                .execute(&self.writer)
                .await
                .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn role_grants(&self, person_id: &str) -> Result<Vec<RoleGrant>, StoreError> {
        let rows = sqlx::query(
            "SELECT person_id, role, site_id, granted_at_us, granted_by FROM role_grants \
             WHERE person_id = ? ORDER BY role, site_id",
        )
        .bind(person_id)
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                RoleGrantRow {
                    person_id: r.try_get("person_id").map_err(backend_error)?,
                    role: r.try_get("role").map_err(backend_error)?,
                    site_id: r.try_get("site_id").map_err(backend_error)?,
                    granted_at_us: r.try_get("granted_at_us").map_err(backend_error)?,
                    granted_by: r.try_get("granted_by").map_err(backend_error)?,
                }
                .into_grant()
            })
            .collect()
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn add_api_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        let done = sqlx::query(&format!(
            "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (token_id) DO NOTHING"
        ))
        .bind(token.token_id.to_string())
        .bind(&token.secret_sha256)
        .bind(&token.system_id)
        .bind(encode_sites(&token.sites)?)
        .bind(token.created_at.micros())
        .bind(token.expires_at.micros())
        .bind(token.revoked_at.map(Instant::micros))
        .bind(&token.created_by)
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            return Err(duplicate_api_token(token.token_id));
        }
        Ok(())
    }

    async fn api_token(&self, token_id: Uuid) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_id = ?"
        ))
        .bind(token_id.to_string())
        .fetch_optional(&self.readers)
        .await
        .map_err(backend_error)?;
        row.as_ref().map(token_row).transpose()
    }

    async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at_us, token_id"
        ))
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter().map(token_row).collect()
    }

    async fn revoke_api_token(&self, token_id: Uuid, at: Instant) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at_us = ? WHERE token_id = ? AND revoked_at_us IS NULL",
        )
        .bind(at.micros())
        .bind(token_id.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn add_session(&self, session: &Session) -> Result<(), StoreError> {
        let done = sqlx::query(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (session_sha256) DO NOTHING"
        ))
        .bind(&session.session_sha256)
        .bind(&session.person_id)
        .bind(&session.csrf_sha256)
        .bind(session.created_at.micros())
        .bind(session.last_seen_at.micros())
        .bind(session.expires_at.micros())
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            return Err(duplicate_session());
        }
        Ok(())
    }

    async fn session(&self, session_sha256: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_sha256 = ?"
        ))
        .bind(session_sha256)
        .fetch_optional(&self.readers)
        .await
        .map_err(backend_error)?;
        row.as_ref().map(session_row).transpose()
    }

    async fn touch_session(&self, session_sha256: &str, at: Instant) -> Result<bool, StoreError> {
        let done = sqlx::query(SESSION_TOUCH)
            .bind(session_sha256)
            .bind(at.micros())
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn end_session(&self, session_sha256: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE session_sha256 = ?")
            .bind(session_sha256)
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn end_sessions_of(&self, person_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE person_id = ?")
            .bind(person_id)
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn add_webhook(&self, w: &Webhook) -> Result<(), StoreError> {
        let cursor = stored_position("cursor_position", w.cursor_position)?;
        let done = sqlx::query(
            "INSERT INTO webhooks (webhook_id, url, secret, created_at_us, created_by, active, \
             deactivated_at_us, cursor_position) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (webhook_id) DO NOTHING",
        )
        .bind(w.webhook_id.to_string())
        .bind(&w.url)
        .bind(&w.secret)
        .bind(w.created_at.micros())
        .bind(&w.created_by)
        .bind(w.active)
        .bind((!w.active).then(|| w.created_at.micros()))
        .bind(cursor)
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            return Err(duplicate_webhook(w.webhook_id));
        }
        Ok(())
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let rows = sqlx::query(
            "SELECT webhook_id, url, secret, created_at_us, created_by, active, cursor_position \
             FROM webhooks ORDER BY created_at_us, webhook_id",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                WebhookRow {
                    webhook_id: r.try_get("webhook_id").map_err(backend_error)?,
                    url: r.try_get("url").map_err(backend_error)?,
                    secret: r.try_get("secret").map_err(backend_error)?,
                    created_at_us: r.try_get("created_at_us").map_err(backend_error)?,
                    created_by: r.try_get("created_by").map_err(backend_error)?,
                    active: r.try_get("active").map_err(backend_error)?,
                    cursor_position: r.try_get("cursor_position").map_err(backend_error)?,
                }
                .into_webhook()
            })
            .collect()
    }

    async fn deactivate_webhook(&self, webhook_id: Uuid, at: Instant) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET active = 0, deactivated_at_us = COALESCE(deactivated_at_us, ?) \
             WHERE webhook_id = ?",
        )
        .bind(at.micros())
        .bind(webhook_id.to_string())
        .execute(&self.writer)
        .await
        .map_err(backend_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn enqueue_deliveries(
        &self,
        webhook_id: Uuid,
        alerts: &[(Uuid, u64)],
        new_cursor: u64,
        at: Instant,
    ) -> Result<(), StoreError> {
        let new_cursor = stored_position("new_cursor", new_cursor)?;
        let alerts = alerts
            .iter()
            .enumerate()
            .map(|(i, (id, position))| {
                Ok((
                    id.to_string(),
                    stored_position(&format!("alerts[{i}].position"), *position)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend_error)?;
        let moved = sqlx::query(WEBHOOK_CURSOR_ADVANCE)
            .bind(webhook_id.to_string())
            .bind(new_cursor)
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        if moved.rows_affected() == 0 {
            return Err(unknown_webhook(webhook_id));
        }
        for chunk in alerts.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO webhook_deliveries (webhook_id, alert_event_id, position, status, \
                 attempts, next_attempt_at_us) ",
            );
            qb.push_values(chunk, |mut b, (alert, position)| {
                b.push_bind(webhook_id.to_string());
                b.push_bind(alert.clone());
                b.push_bind(*position);
                b.push_bind(DeliveryStatus::Pending.as_str());
                b.push_bind(0_i64);
                b.push_bind(at.micros());
            });
            qb.push(" ON CONFLICT (webhook_id, alert_event_id) DO NOTHING");
            qb.build().execute(&mut *tx).await.map_err(backend_error)?;
        }
        tx.commit().await.map_err(backend_error)
    }

    async fn due_deliveries(
        &self,
        now: Instant,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d \
             JOIN webhooks w ON w.webhook_id = d.webhook_id \
             WHERE w.active = 1 AND d.status = 'pending' AND d.next_attempt_at_us <= ? \
             ORDER BY d.position, d.webhook_id LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(now.micros())
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(backend_error)?;
        rows.iter().map(delivery_row).collect()
    }

    async fn record_delivery_attempt(
        &self,
        webhook_id: Uuid,
        alert_event_id: Uuid,
        at: Instant,
        ok: bool,
        detail: &str,
        next_attempt_at: Option<Instant>,
    ) -> Result<(), StoreError> {
        check_delivery_attempt(ok, next_attempt_at)?;
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend_error)?;
        let row = sqlx::query(DELIVERY_ATTEMPT_UPDATE)
            .bind(webhook_id.to_string())
            .bind(alert_event_id.to_string())
            .bind(at.micros())
            .bind(detail)
            .bind(ok)
            .bind(next_attempt_at.map(Instant::micros))
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend_error)?;
        let Some(row) = row else {
            return Err(unknown_delivery(alert_event_id));
        };
        let attempt: i64 = row.try_get(0).map_err(backend_error)?;
        sqlx::query(
            "INSERT INTO webhook_delivery_attempts \
             (webhook_id, alert_event_id, attempt, at_us, ok, detail) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(webhook_id.to_string())
        .bind(alert_event_id.to_string())
        .bind(attempt)
        .bind(at.micros())
        .bind(ok)
        .bind(detail)
        .execute(&mut *tx)
        .await
        .map_err(backend_error)?;
        tx.commit().await.map_err(backend_error)
    }

    async fn webhook_deliveries(
        &self,
        webhook_id: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.webhook_id = ? \
             ORDER BY d.position, d.alert_event_id LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(webhook_id.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(backend_error)?;
        rows.iter().map(delivery_row).collect()
    }

    async fn delivery_attempts(
        &self,
        webhook_id: Uuid,
        alert_event_id: Uuid,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT attempt, at_us, ok, detail FROM webhook_delivery_attempts \
             WHERE webhook_id = ? AND alert_event_id = ? ORDER BY attempt",
        )
        .bind(webhook_id.to_string())
        .bind(alert_event_id.to_string())
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter()
            .map(|r| {
                DeliveryAttemptRow {
                    attempt: r.try_get("attempt").map_err(backend_error)?,
                    at_us: r.try_get("at_us").map_err(backend_error)?,
                    ok: r.try_get("ok").map_err(backend_error)?,
                    detail: r.try_get("detail").map_err(backend_error)?,
                }
                .into_attempt()
            })
            .collect()
    }
}

#[async_trait]
impl VaultStore for SqliteStore {
    async fn replace_secrets(&self, secrets: &[SecretReplacement]) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await.map_err(backend_error)?;
        let mut replaced = 0;
        for secret in secrets {
            let (sql, owner) = match &secret.owner {
                SecretOwner::Totp(person_id) => (
                    "UPDATE user_accounts SET totp_secret = ?1 WHERE person_id = ?2 AND totp_secret = ?3",
                    person_id.clone(),
                ),
                SecretOwner::Webhook(webhook_id) => (
                    "UPDATE webhooks SET secret = ?1 WHERE webhook_id = ?2 AND secret = ?3",
                    webhook_id.to_string(),
                ),
            };
            let done = sqlx::query(sql)
                .bind(&secret.new)
                .bind(owner)
                .bind(&secret.old)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
            replaced += done.rows_affected();
        }
        tx.commit().await.map_err(backend_error)?;
        Ok(replaced)
    }

    async fn put_vault_record(&self, record: &VaultRecord) -> Result<(), StoreError> {
        check_vault_record(record)?;
        let done = sqlx::query(VAULT_RECORD_UPSERT)
            .bind(&record.patient_key)
            .bind(&record.master_key_id)
            .bind(&record.wrapped_key)
            .bind(&record.ciphertext)
            .bind(record.updated_at.micros())
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            return Err(erased_vault_record(&record.patient_key));
        }
        Ok(())
    }

    async fn vault_record(&self, patient_key: &str) -> Result<Option<VaultRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {VAULT_COLUMNS} FROM vault_records WHERE patient_key = ?"
        ))
        .bind(patient_key)
        .fetch_optional(&self.readers)
        .await
        .map_err(backend_error)?;
        row.as_ref().map(vault_row).transpose()
    }

    async fn vault_records(&self) -> Result<Vec<VaultRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {VAULT_COLUMNS} FROM vault_records ORDER BY patient_key"
        ))
        .fetch_all(&self.readers)
        .await
        .map_err(backend_error)?;
        rows.iter().map(vault_row).collect()
    }

    async fn rewrap_vault_keys(
        &self,
        keys: &[(String, String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend_error)?;
        for (patient_key, master_key_id, wrapped_key) in keys {
            let done = sqlx::query(VAULT_KEY_REWRAP)
                .bind(patient_key)
                .bind(master_key_id)
                .bind(wrapped_key)
                .execute(&mut *tx)
                .await
                .map_err(backend_error)?;
            if done.rows_affected() == 0 {
                // Dropping the transaction rolls back the keys already rewrapped.
                let known = sqlx::query("SELECT 1 FROM vault_records WHERE patient_key = ?")
                    .bind(patient_key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend_error)?;
                return Err(match known {
                    Some(_) => erased_vault_record(patient_key),
                    None => unknown_vault_record(patient_key),
                });
            }
        }
        tx.commit().await.map_err(backend_error)
    }

    async fn erase_vault_record(&self, patient_key: &str, at: Instant) -> Result<bool, StoreError> {
        let done = sqlx::query(VAULT_RECORD_ERASE)
            .bind(patient_key)
            .bind(Vec::<u8>::new())
            .bind(at.micros())
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // The update above committed, but the destroyed bytes may still be in the files:
        // in the main file, the old cell's space in its page (zeroed because every
        // connection runs with secure_delete = ON, see `open`), and in the WAL, the frames
        // written before this change. A TRUNCATE checkpoint copies every frame into the main
        // file and empties the WAL, so those frames are gone too. It waits (busy timeout)
        // for readers on older snapshots; if it still cannot finish, say so: erasing again
        // runs it again.
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.writer)
            .await
            .map_err(|e| StoreError::Backend {
                backend: BACKEND,
                message: format!(
                    "the vault record was erased, but the WAL checkpoint that scrubs it from \
                     the files failed (erase again to finish): {e}"
                ),
            })?;
        let busy: i64 = row.try_get(0).map_err(backend_error)?;
        if busy != 0 {
            return Err(StoreError::Backend {
                backend: BACKEND,
                message: "the vault record was erased, but the WAL checkpoint that scrubs it \
                          from the files could not finish while readers were busy (erase \
                          again to finish)"
                    .into(),
            });
        }
        Ok(true)
    }
}

#[async_trait]
impl EpcisStore for SqliteStore {
    async fn add_epcis_capture(
        &self,
        capture: &autolog_store::EpcisCapture,
        events: &[autolog_store::NewEpcisEvent],
        clock: &Clock,
    ) -> Result<autolog_store::CaptureOutcome, StoreError> {
        epcis::add_capture(&self.writer, capture, events, clock).await
    }

    async fn epcis_events(
        &self,
        query: &autolog_store::EpcisQuery,
    ) -> Result<Vec<autolog_store::StoredEpcisEvent>, StoreError> {
        epcis::query(&self.readers, query).await
    }
}

/// The `api_tokens` columns in the order they are written and read.
const TOKEN_COLUMNS: &str = "token_id, secret_sha256, system_id, sites, created_at_us, \
     expires_at_us, revoked_at_us, created_by";

/// The `sessions` columns in the order they are written and read.
const SESSION_COLUMNS: &str =
    "session_sha256, person_id, csrf_sha256, created_at_us, last_seen_at_us, expires_at_us";

fn user_row(r: &SqliteRow) -> Result<UserAccount, StoreError> {
    UserAccountRow {
        person_id: r.try_get("person_id").map_err(backend_error)?,
        totp_secret: r.try_get("totp_secret").map_err(backend_error)?,
        totp_last_step: r.try_get("totp_last_step").map_err(backend_error)?,
        failed_attempts: r.try_get("failed_attempts").map_err(backend_error)?,
        locked_until_us: r.try_get("locked_until_us").map_err(backend_error)?,
        disabled_at_us: r.try_get("disabled_at_us").map_err(backend_error)?,
        created_at_us: r.try_get("created_at_us").map_err(backend_error)?,
        created_by: r.try_get("created_by").map_err(backend_error)?,
    }
    .into_user()
}

fn token_row(r: &SqliteRow) -> Result<ApiToken, StoreError> {
    ApiTokenRow {
        token_id: r.try_get("token_id").map_err(backend_error)?,
        secret_sha256: r.try_get("secret_sha256").map_err(backend_error)?,
        system_id: r.try_get("system_id").map_err(backend_error)?,
        sites: r.try_get("sites").map_err(backend_error)?,
        created_at_us: r.try_get("created_at_us").map_err(backend_error)?,
        expires_at_us: r.try_get("expires_at_us").map_err(backend_error)?,
        revoked_at_us: r.try_get("revoked_at_us").map_err(backend_error)?,
        created_by: r.try_get("created_by").map_err(backend_error)?,
    }
    .into_token()
}

fn session_row(r: &SqliteRow) -> Result<Session, StoreError> {
    SessionRow {
        session_sha256: r.try_get("session_sha256").map_err(backend_error)?,
        person_id: r.try_get("person_id").map_err(backend_error)?,
        csrf_sha256: r.try_get("csrf_sha256").map_err(backend_error)?,
        created_at_us: r.try_get("created_at_us").map_err(backend_error)?,
        last_seen_at_us: r.try_get("last_seen_at_us").map_err(backend_error)?,
        expires_at_us: r.try_get("expires_at_us").map_err(backend_error)?,
    }
    .into_session()
}

fn vault_row(r: &SqliteRow) -> Result<VaultRecord, StoreError> {
    VaultRecordRow {
        patient_key: r.try_get("patient_key").map_err(backend_error)?,
        master_key_id: r.try_get("master_key_id").map_err(backend_error)?,
        wrapped_key: r.try_get("wrapped_key").map_err(backend_error)?,
        ciphertext: r.try_get("ciphertext").map_err(backend_error)?,
        updated_at_us: r.try_get("updated_at_us").map_err(backend_error)?,
        erased_at_us: r.try_get("erased_at_us").map_err(backend_error)?,
    }
    .into_record()
}

/// The `webhook_deliveries` columns, read from the table aliased `d`.
const DELIVERY_COLUMNS: &str = "d.webhook_id AS webhook_id, d.alert_event_id AS alert_event_id, \
     d.position AS position, d.status AS status, d.attempts AS attempts, \
     d.next_attempt_at_us AS next_attempt_at_us, d.last_attempt_at_us AS last_attempt_at_us, \
     d.last_result AS last_result, d.delivered_at_us AS delivered_at_us";

fn delivery_row(r: &SqliteRow) -> Result<WebhookDelivery, StoreError> {
    WebhookDeliveryRow {
        webhook_id: r.try_get("webhook_id").map_err(backend_error)?,
        alert_event_id: r.try_get("alert_event_id").map_err(backend_error)?,
        position: r.try_get("position").map_err(backend_error)?,
        status: r.try_get("status").map_err(backend_error)?,
        attempts: r.try_get("attempts").map_err(backend_error)?,
        next_attempt_at_us: r.try_get("next_attempt_at_us").map_err(backend_error)?,
        last_attempt_at_us: r.try_get("last_attempt_at_us").map_err(backend_error)?,
        last_result: r.try_get("last_result").map_err(backend_error)?,
        delivered_at_us: r.try_get("delivered_at_us").map_err(backend_error)?,
    }
    .into_delivery()
}

fn checkpoint_row(r: &SqliteRow) -> Result<CheckpointRow, sqlx::Error> {
    Ok(CheckpointRow {
        tree_size: r.try_get("tree_size")?,
        root: r.try_get("root")?,
        issued_at_us: r.try_get("issued_at_us")?,
        key_id: r.try_get("key_id")?,
        signature: r.try_get("signature")?,
        sequence: r.try_get("sequence")?,
        previous: r.try_get("previous")?,
    })
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
