//! Reads on a blocking thread over rusqlite connections of their own (the ledger scan
//! behind `verify`, the projector and rebuilds, a stream's events, the shared stores'
//! reads), and the statement helpers the ledger's writer (`writer.rs`) runs too.
//!
//! sqlx-sqlite runs each connection on a worker thread and hands every row to the async
//! runtime through a channel: one thread wake-up per row, which is most of what a scan of
//! the ledger costs. Here a chunk of rows is read in one call on one thread, with the
//! statement prepared once per connection, and the chunk crosses to the runtime once.
//! The connections are read-only; WAL lets them read beside the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autolog_domain::Event;
use autolog_store::sql::{Param, Statement};
use autolog_store::{EventRow, ScannedRow, StoreError, EVENT_COLUMNS};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, ToSql};

use crate::BACKEND;

/// Idle connections kept for the next read (more may be open while reads overlap).
const IDLE: usize = 2;

/// Read-only connections to the database file, opened when needed and kept when idle.
#[derive(Clone)]
pub(crate) struct BulkReader {
    path: Arc<PathBuf>,
    /// `None` once closed: a read that ends then closes its connection.
    idle: Arc<Mutex<Option<Vec<Connection>>>>,
}

pub(crate) fn bulk_error(e: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: e.to_string(),
    }
}

impl BulkReader {
    pub(crate) fn new(path: &Path) -> Self {
        BulkReader {
            path: Arc::new(path.to_path_buf()),
            idle: Arc::new(Mutex::new(Some(Vec::new()))),
        }
    }

    /// The events after `after_position` in position order, at most `limit`.
    pub(crate) async fn scan(
        &self,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<ScannedRow>, StoreError> {
        self.on_thread(move |c| scan(c, after_position, limit))
            .await
    }

    /// Runs a read-only statement of the shared stores.
    pub(crate) async fn read(&self, statement: Statement) -> Result<Vec<ReadRow>, StoreError> {
        self.on_thread(move |c| read(c, &statement)).await
    }

    /// The events `statement` selects (its columns are [`EVENT_COLUMNS`]).
    pub(crate) async fn events(&self, statement: Statement) -> Result<Vec<Event>, StoreError> {
        self.on_thread(move |c| read_events(c, &statement)).await?
    }

    /// Runs `read` in one call on a blocking thread: the answer crosses to the runtime once.
    async fn on_thread<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.clone();
        tokio::task::spawn_blocking(move || reader.with_connection(read))
            .await
            .map_err(|e| StoreError::Backend {
                backend: BACKEND,
                message: format!("the reading thread failed: {e}"),
            })?
    }

    /// Runs `read` on an idle connection (or a new one), and keeps it for the next read.
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let idle = match self.idle.lock() {
            Ok(mut idle) => idle.as_mut().and_then(Vec::pop),
            Err(_) => None,
        };
        let connection = match idle {
            Some(c) => c,
            None => self.open().map_err(bulk_error)?,
        };
        let answer = read(&connection).map_err(bulk_error)?;
        if let Ok(mut guard) = self.idle.lock() {
            if let Some(idle) = guard.as_mut().filter(|idle| idle.len() < IDLE) {
                idle.push(connection);
            }
        }
        Ok(answer)
    }

    /// Closes the idle connections (a read under way closes its own when it ends).
    pub(crate) fn close(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            *idle = None;
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(self.path.as_ref(), flags)?;
        connection.busy_timeout(Duration::from_secs(30))?;
        Ok(connection)
    }
}

fn scan(c: &Connection, after_position: i64, limit: u32) -> rusqlite::Result<Vec<ScannedRow>> {
    let mut statement = c.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
    ))?;
    let rows = statement.query_map((after_position, i64::from(limit)), |row| {
        Ok(match event_row(row) {
            Ok(raw) => ScannedRow {
                position: raw.position,
                event: raw.into_event(),
            },
            Err(e) => ScannedRow {
                position: row.get(0).unwrap_or(-1),
                event: Err(format!("row does not have the expected columns: {e}")),
            },
        })
    })?;
    rows.collect()
}

/// A row of [`EVENT_COLUMNS`], by column number.
fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        position: row.get(0)?,
        event_id: row.get(1)?,
        stream: row.get(2)?,
        seq: row.get(3)?,
        prev_hash: row.get(4)?,
        hash: row.get(5)?,
        recorded_at_us: row.get(6)?,
        occurred_at_us: row.get(7)?,
        occurred_zone: row.get(8)?,
        occurred_offset_s: row.get(9)?,
        actor: row.get(10)?,
        source_system: row.get(11)?,
        source_event_id: row.get(12)?,
        reason: row.get(13)?,
        corrects: row.get(14)?,
        body_type: row.get(15)?,
        body_version: row.get(16)?,
        body_data: row.get(17)?,
        site: row.get(18)?,
    })
}

/// A row the shared stores read: the statement's column names and the row's values.
pub struct ReadRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl ReadRow {
    /// The value of `column`, or an error naming it.
    pub(crate) fn value(&self, column: &str) -> Result<&Value, StoreError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| StoreError::Backend {
                backend: BACKEND,
                message: format!("no column named {column:?} in the row read"),
            })
    }
}

/// `statement` with its `$n` placeholders bound by number, as sqlx binds them.
pub(crate) fn read(c: &Connection, statement: &Statement) -> rusqlite::Result<Vec<ReadRow>> {
    let mut prepared = c.prepare_cached(&statement.sql)?;
    bind(&mut prepared, &statement.params)?;
    let columns: Arc<[String]> = prepared
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let width = columns.len();
    let mut rows = prepared.raw_query();
    let mut read = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..width)
            .map(|i| row.get::<_, Value>(i))
            .collect::<rusqlite::Result<Vec<Value>>>()?;
        read.push(ReadRow {
            columns: columns.clone(),
            values,
        });
    }
    Ok(read)
}

/// Binds `$n` placeholders by their number, as sqlx binds them, and `?` ones in order.
fn bind(prepared: &mut rusqlite::CachedStatement<'_>, params: &[Param]) -> rusqlite::Result<()> {
    for index in 1..=prepared.parameter_count() {
        let number = match prepared.parameter_name(index) {
            None => Some(index),
            Some(name) => name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()),
        };
        let param = number
            .and_then(|n| params.get(n.checked_sub(1)?))
            .ok_or(rusqlite::Error::InvalidParameterCount(index, params.len()))?;
        prepared.raw_bind_parameter(index, SqliteParam(param))?;
    }
    Ok(())
}

/// Events read by `statement` (it selects [`EVENT_COLUMNS`]); a row that does not convert
/// is corrupt, named by its position.
pub(crate) fn read_events(
    c: &Connection,
    statement: &Statement,
) -> rusqlite::Result<Result<Vec<Event>, StoreError>> {
    let mut prepared = c.prepare_cached(&statement.sql)?;
    bind(&mut prepared, &statement.params)?;
    let mut rows = prepared.raw_query();
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let raw = event_row(row)?;
        let position = raw.position;
        match raw.into_event() {
            Ok(event) => found.push(event),
            Err(detail) => return Ok(Err(StoreError::Corrupt { position, detail })),
        }
    }
    Ok(Ok(found))
}

/// Runs a statement that writes; the rows it changed.
pub(crate) fn execute(c: &Connection, statement: &Statement) -> rusqlite::Result<usize> {
    let mut prepared = c.prepare_cached(&statement.sql)?;
    bind(&mut prepared, &statement.params)?;
    prepared.raw_execute()
}

/// A [`Param`] as SQLite stores it: identifiers as their hyphenated text, booleans as 0/1.
struct SqliteParam<'a>(&'a Param);

impl ToSql for SqliteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self.0 {
            Param::Int(v) => v.map_or(ToSqlOutput::Borrowed(ValueRef::Null), |v| v.into()),
            Param::Text(v) => v
                .as_deref()
                .map_or(ToSqlOutput::Borrowed(ValueRef::Null), |v| {
                    ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes()))
                }),
            Param::Bytes(v) => v
                .as_deref()
                .map_or(ToSqlOutput::Borrowed(ValueRef::Null), |v| {
                    ToSqlOutput::Borrowed(ValueRef::Blob(v))
                }),
            Param::Bool(v) => i64::from(*v).into(),
            Param::Uuid(v) => ToSqlOutput::Owned(Value::Text(v.to_string())),
        })
    }
}
