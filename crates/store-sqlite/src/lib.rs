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
use autolog_domain::rules::history::HistoryFilter;
use autolog_domain::{Event, EventDraft, Instant, Source, Uuid};
use autolog_store::prelude::*;
use autolog_store::sql::Statement;
use autolog_store::{
    AppendOutcome, Clock, EventQuery, EventRow, LedgerHead, ScannedRow, StoreError, StreamHead,
    EVENT_COLUMNS,
};
use autolog_store::{CommitQueue, WriterHealth};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

use queries::ROWS_PER_STATEMENT;

mod bulk;
mod queries;
mod sql;
mod writer;

const BACKEND: &str = "sqlite";

fn backend_error(e: sqlx::Error) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: e.to_string(),
    }
}

/// The ledger in one SQLite file.
pub struct SqliteStore {
    /// One connection for the side stores' writes (accounts, webhooks, projections...),
    /// and the migrations: each write begins IMMEDIATE.
    writer: SqlitePool,
    readers: SqlitePool,
    /// The ledger scan's connections (`bulk`).
    bulk: bulk::BulkReader,
    /// The ledger's writer connection (rusqlite): group commits run whole on it.
    ledger: writer::LedgerWriter,
    /// Appends, in groups sharing one transaction and one commit on `ledger`.
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
        let ledger = writer::LedgerWriter::new(path, page_cap.clone());
        let appends = CommitQueue::start(BACKEND, ledger.clone());
        Ok(SqliteStore {
            writer,
            readers,
            bulk: bulk::BulkReader::new(path),
            ledger,
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
        self.ledger.close();
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
        let rows: Vec<EventRow> = events.iter().map(EventRow::from_event).collect();
        self.ledger.plain_insert(rows).await
    }
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
        let select = queries::history(stream, filter, Some(known_at.micros()));
        let mut events = self.bulk.events(select).await?;
        events.retain(|e| filter.admits(e));
        Ok(events)
    }

    async fn stream_events_many(
        &self,
        streams: &[String],
        known_at: Instant,
    ) -> Result<HashMap<String, Vec<Event>>, StoreError> {
        let mut found: HashMap<String, Vec<Event>> = HashMap::new();
        let streams: Vec<&str> = streams.iter().map(String::as_str).collect();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            let select = queries::streams(chunk, Some(known_at.micros()));
            for event in self.bulk.events(select).await? {
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
        let streams: Vec<&str> = streams.iter().map(String::as_str).collect();
        for chunk in streams.chunks(ROWS_PER_STATEMENT) {
            for row in self.bulk.read(queries::heads(chunk)).await? {
                let (stream, head) = writer::stream_head(&sql::Row::Read(row))?;
                found.insert(stream, head);
            }
        }
        Ok(found)
    }

    async fn events_by_sources(&self, sources: &[Source]) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        let sources: Vec<&Source> = sources.iter().collect();
        for chunk in sources.chunks(ROWS_PER_STATEMENT) {
            let mut select = queries::sources(chunk);
            select.push(" ORDER BY position");
            found.extend(self.bulk.events(select).await?);
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
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE event_id = $1");
        let select = Statement::new(sql).bind(id.to_string());
        Ok(self.bulk.events(select).await?.into_iter().next())
    }

    async fn event_by_source(
        &self,
        system: &str,
        source_event_id: &str,
    ) -> Result<Option<Event>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE source_system = $1 AND source_event_id = $2"
        );
        let select = Statement::new(sql).bind(system).bind(source_event_id);
        Ok(self.bulk.events(select).await?.into_iter().next())
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
        let rows = self.bulk.read(Statement::new(queries::LEDGER_HEAD)).await?;
        let row = rows.into_iter().next().ok_or_else(|| StoreError::Corrupt {
            position: 0,
            detail: "no ledger head row".into(),
        })?;
        writer::ledger_head(&sql::Row::Read(row))
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
        let rows = self.bulk.read(queries::heads(&[stream])).await?;
        rows.into_iter()
            .next()
            .map(|row| writer::stream_head(&sql::Row::Read(row)).map(|(_, head)| head))
            .transpose()
    }

    async fn stream_heads(&self) -> Result<Vec<(String, StreamHead)>, StoreError> {
        let select =
            Statement::new("SELECT stream, last_seq, last_hash FROM streams ORDER BY stream");
        let rows = self.bulk.read(select).await?;
        rows.into_iter()
            .map(|row| writer::stream_head(&sql::Row::Read(row)))
            .collect()
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
