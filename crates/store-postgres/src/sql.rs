//! The driver side of the shared stores beside the ledger ([`autolog_store::sql`]): how
//! PostgreSQL runs a [`Statement`], binds a [`Param`] and reads a column. Reads and writes
//! share the pool; identifiers are bound and read as the `uuid` type.

use async_trait::async_trait;
use autolog_domain::Uuid;
use autolog_store::sql::{Dialect, Param, SqlDb, SqlRow, SqlTx, Statement};
use autolog_store::StoreError;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Column as _, Postgres, Row as _, Transaction, TypeInfo as _};

use crate::{backend_error, PostgresStore, BACKEND};

/// A row read by the shared stores.
pub struct Row(PgRow);

impl Row {
    fn get<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    {
        self.0.try_get(column).map_err(backend_error)
    }

    /// Whether `column` is of the `uuid` type (read as its hyphenated text).
    fn is_uuid(&self, column: &str) -> Result<bool, StoreError> {
        let found = self.0.try_column(column).map_err(backend_error)?;
        Ok(found.type_info().name() == "UUID")
    }
}

impl SqlRow for Row {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.get(column)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.get(column)
    }

    fn text(&self, column: &str) -> Result<String, StoreError> {
        if self.is_uuid(column)? {
            return self.get::<Uuid>(column).map(|id| id.to_string());
        }
        self.get(column)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        if self.is_uuid(column)? {
            return self
                .get::<Option<Uuid>>(column)
                .map(|id| id.map(|id| id.to_string()));
        }
        self.get(column)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.get(column)
    }

    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(column)
    }

    fn boolean(&self, column: &str) -> Result<bool, StoreError> {
        self.get(column)
    }
}

/// A statement on its way to the driver.
type Prepared<'q> = Query<'q, Postgres, PgArguments>;

fn bind(query: Prepared<'_>, param: Param) -> Prepared<'_> {
    match param {
        Param::Int(v) => query.bind(v),
        Param::Text(v) => query.bind(v),
        Param::Bytes(v) => query.bind(v),
        Param::Bool(v) => query.bind(v),
        Param::Uuid(v) => query.bind(v),
    }
}

fn prepare(statement: &Statement) -> Prepared<'_> {
    statement
        .params
        .iter()
        .cloned()
        .fold(sqlx::query(&statement.sql), bind)
}

fn rows(rows: Vec<PgRow>) -> Vec<Row> {
    rows.into_iter().map(Row).collect()
}

/// A writing transaction on the writer connection.
pub struct Tx(Transaction<'static, Postgres>);

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
impl SqlDb for PostgresStore {
    type Row = Row;
    type Tx = Tx;

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn read(&self, statement: Statement) -> Result<Vec<Row>, StoreError> {
        let found = prepare(&statement)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(rows(found))
    }

    async fn write(&self, statement: Statement) -> Result<u64, StoreError> {
        let done = prepare(&statement)
            .execute(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(done.rows_affected())
    }

    async fn write_returning(&self, statement: Statement) -> Result<Vec<Row>, StoreError> {
        let found = prepare(&statement)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_error)?;
        Ok(rows(found))
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        let tx = self.pool.begin().await.map_err(backend_error)?;
        Ok(Tx(tx))
    }

    /// Under MVCC the old row version, with the key and ciphertext, is still in the
    /// table's heap file. The erasure must not be undone by anyone reading the files, so
    /// the table is rewritten now, outside any transaction (VACUUM refuses to run inside
    /// one; the pool hands out a connection with none open). Plain `VACUUM vault_records`
    /// is not enough: it frees the dead version's space but does not zero it, and the
    /// wrapped key was found intact in the page afterwards. `VACUUM FULL` writes the live
    /// rows into new files and removes the old ones (it locks the table while it runs,
    /// which is short: one row per patient). What no SQL can reach remains: WAL segments
    /// until the server recycles them, and backups. On failure it says so: erasing again
    /// runs it again.
    async fn scrub_erased_bytes(&self) -> Result<(), StoreError> {
        sqlx::raw_sql("VACUUM FULL vault_records")
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::Backend {
                backend: BACKEND,
                message: format!(
                    "the vault record was erased, but VACUUM FULL vault_records, which scrubs \
                     it from the table's files, failed (erase again to finish): {e}"
                ),
            })?;
        Ok(())
    }
}
