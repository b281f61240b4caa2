//! One SQL text for both backends: the ledger's proofs (Merkle nodes, checkpoints) and the
//! stores beside the ledger (accounts, tokens, sessions, webhooks, the vault, codes, outbox
//! cursors, EPCIS captures) are written here once, against
//! [`SqlDb`], the few operations a backend must provide: run a statement with its values,
//! read rows, and open a transaction. Each backend implements [`SqlDb`] in a few lines of
//! its own driver code; every `impl ... Store for B where B: SqlDb` below then serves it.
//!
//! Statements use `$1`, `$2`, ... placeholders, which both drivers bind by number. Where
//! the dialects differ, the difference is a [`Dialect`] method, written once: bytewise
//! ordering of text (`COLLATE "C"` on PostgreSQL, SQLite's default) and the lock that
//! serialises writers of one table. Identifiers are bound
//! as [`Param::Uuid`]: PostgreSQL stores them as `uuid`, SQLite as their hyphenated text,
//! and a [`SqlRow`] reads either back as that text.

mod access;
mod alert_index;
mod codes;
mod epcis;
mod projections;
mod proofs;
mod signal_index;
mod webhooks;

use std::borrow::Cow;

use async_trait::async_trait;
use autolog_domain::Uuid;

use crate::StoreError;

/// The SQL dialect a backend speaks, for the few places where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `column` ordered bytewise (as Rust orders strings), whatever the database's locale.
    pub fn bytewise(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => column.to_string(),
            Dialect::Postgres => format!("{column} COLLATE \"C\""),
        }
    }

    /// The statement that makes a writing transaction wait for the other writers of
    /// `table` (readers are not blocked). None on SQLite: its writing transactions begin
    /// IMMEDIATE and so already hold the database's one write lock.
    pub fn lock_against_writers(self, table: &str) -> Option<String> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")),
        }
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(bool),
    /// Bound as `uuid` on PostgreSQL, as its hyphenated text on SQLite.
    Uuid(Uuid),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}

impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(Some(v.to_string()))
    }
}

impl From<&String> for Param {
    fn from(v: &String) -> Self {
        Param::Text(Some(v.clone()))
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(Some(v))
    }
}

impl From<Option<&str>> for Param {
    fn from(v: Option<&str>) -> Self {
        Param::Text(v.map(str::to_string))
    }
}

impl From<&[u8]> for Param {
    fn from(v: &[u8]) -> Self {
        Param::Bytes(Some(v.to_vec()))
    }
}

impl From<&Vec<u8>> for Param {
    fn from(v: &Vec<u8>) -> Self {
        Param::Bytes(Some(v.clone()))
    }
}

impl From<Option<Vec<u8>>> for Param {
    fn from(v: Option<Vec<u8>>) -> Self {
        Param::Bytes(v)
    }
}

impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}

impl From<Uuid> for Param {
    fn from(v: Uuid) -> Self {
        Param::Uuid(v)
    }
}

/// One statement and the values of its placeholders, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: Cow<'static, str>,
    pub params: Vec<Param>,
}

impl Statement {
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Statement {
            sql: sql.into(),
            params: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Into<Param>) -> Self {
        self.params.push(value.into());
        self
    }

    /// Appends text to a statement built piece by piece.
    pub fn push(&mut self, sql: &str) {
        self.sql.to_mut().push_str(sql);
    }

    /// Binds `value` to the next placeholder and names it (`$n`).
    pub fn place(&mut self, value: impl Into<Param>) -> String {
        self.params.push(value.into());
        format!("${}", self.params.len())
    }

    /// Binds each of `values` and names their placeholders, separated by commas.
    pub fn places(&mut self, values: &[String]) -> String {
        let places: Vec<String> = values.iter().map(|v| self.place(v)).collect();
        places.join(", ")
    }

    /// Adds the condition `column op value`.
    pub fn and(&mut self, column: &str, op: &str, value: impl Into<Param>) {
        let p = self.place(value);
        self.push(&format!(" AND {column} {op} {p}"));
    }

    /// Adds the condition that `column` is one of `values` (none when there are none).
    pub fn and_one_of(&mut self, column: &str, values: &[String]) {
        if !values.is_empty() {
            let list = self.places(values);
            self.push(&format!(" AND {column} IN ({list})"));
        }
    }
}

/// A row read back, its columns found by name. A column of another type than asked is an
/// error naming the column.
pub trait SqlRow: Send {
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// Text, or a `uuid` column as its hyphenated text.
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn boolean(&self, column: &str) -> Result<bool, StoreError>;
}

/// What the stores beside the ledger need of a backend.
#[async_trait]
pub trait SqlDb: Send + Sync {
    type Row: SqlRow;
    type Tx: SqlTx<Row = Self::Row>;

    fn dialect(&self) -> Dialect;

    /// Runs a read-only statement (it may run on a read-only connection).
    async fn read(&self, statement: Statement) -> Result<Vec<Self::Row>, StoreError>;

    /// Runs a writing statement in a transaction of its own; how many rows it changed.
    async fn write(&self, statement: Statement) -> Result<u64, StoreError>;

    /// Runs a writing statement that returns rows (`RETURNING`) in a transaction of its own.
    async fn write_returning(&self, statement: Statement) -> Result<Vec<Self::Row>, StoreError>;

    /// Opens a writing transaction. Dropped without [`SqlTx::commit`], it rolls back.
    async fn begin(&self) -> Result<Self::Tx, StoreError>;

    /// After a vault record's key and ciphertext were overwritten and committed: removes
    /// the destroyed bytes from the database's files as far as the backend can (an error
    /// says the erasure committed and erasing again finishes the scrub).
    async fn scrub_erased_bytes(&self) -> Result<(), StoreError>;
}

/// A writing transaction of a [`SqlDb`].
#[async_trait]
pub trait SqlTx: Send {
    type Row: SqlRow;

    /// Runs a statement that returns rows.
    async fn rows(&mut self, statement: Statement) -> Result<Vec<Self::Row>, StoreError>;

    /// Runs a statement; how many rows it changed.
    async fn execute(&mut self, statement: Statement) -> Result<u64, StoreError>;

    async fn commit(self) -> Result<(), StoreError>;
}

/// The placeholders `$from`, `$from+1`, ... of one row of a multi-row `VALUES` list.
fn placeholders(from: usize, count: usize) -> String {
    let list: Vec<String> = (from..from + count).map(|n| format!("${n}")).collect();
    format!("({})", list.join(", "))
}

/// `INSERT INTO table (columns) VALUES (...), ...` for `rows` rows of `width` values each,
/// their placeholders numbered in order: the caller binds the values row by row.
fn insert_values(table: &str, columns: &str, width: usize, rows: usize) -> Statement {
    let values: Vec<String> = (0..rows)
        .map(|i| placeholders(1 + width * i, width))
        .collect();
    Statement::new(format!(
        "INSERT INTO {table} ({columns}) VALUES {}",
        values.join(", ")
    ))
}

/// `DELETE FROM table WHERE column IN (...)`, each key bound.
fn delete_keys<'k>(
    table: &str,
    column: &str,
    keys: impl IntoIterator<Item = &'k str>,
) -> Statement {
    let mut delete = Statement::new(format!("DELETE FROM {table} WHERE {column} IN ("));
    let places: Vec<String> = keys.into_iter().map(|key| delete.place(key)).collect();
    delete.push(&places.join(", "));
    delete.push(")");
    delete
}

/// The single row a statement must return, or `None`.
fn first<R>(rows: Vec<R>) -> Option<R> {
    rows.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_and_keyed_deletes_number_their_placeholders_in_order() {
        let insert = insert_values("t", "a, b", 2, 3);
        assert_eq!(
            insert.sql,
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)"
        );
        let delete = delete_keys("t", "k", ["x", "y"]);
        assert_eq!(delete.sql, "DELETE FROM t WHERE k IN ($1, $2)");
        assert_eq!(delete.params, vec![Param::from("x"), Param::from("y")]);
    }

    #[test]
    fn placeholders_number_from_the_given_start() {
        assert_eq!(placeholders(1, 3), "($1, $2, $3)");
        assert_eq!(placeholders(7, 2), "($7, $8)");
    }

    #[test]
    fn conditions_number_their_placeholders_in_order() {
        let mut s = Statement::new("SELECT 1 FROM t WHERE a > $1").bind(3_i64);
        s.and("b", "=", "x");
        s.and_one_of("c", &[]);
        s.and_one_of("d", &["p".to_string(), "q".to_string()]);
        assert_eq!(
            s.sql,
            "SELECT 1 FROM t WHERE a > $1 AND b = $2 AND d IN ($3, $4)"
        );
        assert_eq!(s.params.len(), 4);
    }

    #[test]
    fn bytewise_order_is_written_once_per_dialect() {
        assert_eq!(Dialect::Sqlite.bytewise("person_id"), "person_id");
        assert_eq!(
            Dialect::Postgres.bytewise("person_id"),
            "person_id COLLATE \"C\""
        );
    }

    #[test]
    fn statements_keep_their_values_in_placeholder_order() {
        let id = Uuid::nil();
        let s = Statement::new("SELECT $1, $2, $3")
            .bind(5_i64)
            .bind("x")
            .bind(id);
        assert_eq!(
            s.params,
            vec![
                Param::Int(Some(5)),
                Param::Text(Some("x".into())),
                Param::Uuid(id)
            ]
        );
    }
}
