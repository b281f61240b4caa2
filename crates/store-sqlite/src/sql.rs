//! The driver side of the shared stores beside the ledger ([`autolog_store::sql`]): how
//! SQLite runs a [`Statement`], binds a [`Param`] and reads a column. Reads go to the
//! read-only connections, writes to the one writer, transactions begin IMMEDIATE.

use async_trait::async_trait;
use autolog_store::sql::{Dialect, Param, SqlDb, SqlRow, SqlTx, Statement};
use autolog_store::StoreError;
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row as _, Sqlite, Transaction};

use rusqlite::types::Value;

use crate::bulk::ReadRow;
use crate::{backend_error, SqliteStore, BACKEND};

/// A row read by the shared stores: from the writer (sqlx) or from a bulk read (rusqlite).
pub enum Row {
    Driver(SqliteRow),
    Read(ReadRow),
}

impl Row {
    fn get<T>(&self, column: &str, from_value: fn(&Value) -> Option<T>) -> Result<T, StoreError>
    where
        T: for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        match self {
            Row::Driver(row) => row.try_get(column).map_err(backend_error),
            Row::Read(row) => {
                let value = row.value(column)?;
                from_value(value).ok_or_else(|| StoreError::Backend {
                    backend: BACKEND,
                    message: format!(
                        "column {column:?} holds {}, not the type asked for",
                        value.data_type()
                    ),
                })
            }
        }
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Blob(b) => Some(b.clone()),
        Value::Text(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// `None` for NULL, else `Some` of what `inner` reads (a wrong type is still an error).
fn optional<T>(v: &Value, inner: fn(&Value) -> Option<T>) -> Option<Option<T>> {
    match v {
        Value::Null => Some(None),
        other => inner(other).map(Some),
    }
}

impl SqlRow for Row {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.get(column, int)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(column, |v| optional(v, int))
    }

    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.get(column, text)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.get(column, |v| optional(v, text))
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.get(column, bytes)
    }

    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(column, |v| optional(v, bytes))
    }

    fn boolean(&self, column: &str) -> Result<bool, StoreError> {
        self.get(column, |v| int(v).map(|i| i != 0))
    }
}

/// A statement on its way to the driver.
type Prepared<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

fn bind(query: Prepared<'_>, param: Param) -> Prepared<'_> {
    match param {
        Param::Int(v) => query.bind(v),
        Param::Text(v) => query.bind(v),
        Param::Bytes(v) => query.bind(v),
        Param::Bool(v) => query.bind(v),
        Param::Uuid(v) => query.bind(v.to_string()),
    }
}

fn prepare(statement: &Statement) -> Prepared<'_> {
    statement
        .params
        .iter()
        .cloned()
        .fold(sqlx::query(&statement.sql), bind)
}

fn rows(rows: Vec<SqliteRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Driver).collect()
}

/// A writing transaction on the writer connection.
pub struct Tx(Transaction<'static, Sqlite>);

#[async_trait]
impl SqlTx for Tx {
    type Row = Row;

    async fn rows(&mut self, statement: Statement) -> Result<Vec<Row>, StoreError> {
        let found = prepare(&statement)
            .fetch_all(&mut *self.0)
            .await
            .map_err(backend_error)?;
        Ok(rows(found))
    }

    async fn execute(&mut self, statement: Statement) -> Result<u64, StoreError> {
        let done = prepare(&statement)
            .execute(&mut *self.0)
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected())
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await.map_err(backend_error)
    }
}

#[async_trait]
impl SqlDb for SqliteStore {
    type Row = Row;
    type Tx = Tx;

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    /// On the bulk reader: the rows cross to the runtime once, not one by one.
    async fn read(&self, statement: Statement) -> Result<Vec<Row>, StoreError> {
        let found = self.bulk.read(statement).await?;
        Ok(found.into_iter().map(Row::Read).collect())
    }

    async fn write(&self, statement: Statement) -> Result<u64, StoreError> {
        let done = prepare(&statement)
            .execute(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected())
    }

    async fn write_returning(&self, statement: Statement) -> Result<Vec<Row>, StoreError> {
        let found = prepare(&statement)
            .fetch_all(&self.writer)
            .await
            .map_err(backend_error)?;
        Ok(rows(found))
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        let tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend_error)?;
        Ok(Tx(tx))
    }

    /// The destroyed bytes may still be in the files: in the main file, the old cell's
    /// space in its page (zeroed because every connection runs with secure_delete = ON,
    /// see `open`), and in the WAL, the frames written before the change. A TRUNCATE
    /// checkpoint copies every frame into the main file and empties the WAL, so those
    /// frames are gone too. It waits (busy timeout) for readers on older snapshots; if it
    /// still cannot finish, it says so: erasing again runs it again.
    async fn scrub_erased_bytes(&self) -> Result<(), StoreError> {
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
        Ok(())
    }
}
