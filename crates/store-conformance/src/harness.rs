//! Test targets: a fresh SQLite file in a temporary directory, or a fresh PostgreSQL
//! database on the server named by AUTOLOG_TEST_POSTGRES_URL, dropped after the test.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use autolog_store::{Store, StoreError};
use autolog_store_postgres::testing::{test_server_url, DiskFullDrill, TestDatabase};
use autolog_store_postgres::PostgresStore;
use autolog_store_sqlite::SqliteStore;

/// Where a test's ledger lives. Open it as often as needed: several opens of one target
/// behave like several server processes sharing one database.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    pub async fn open(&self) -> Arc<dyn Store> {
        match self {
            Target::Sqlite(path) => Arc::new(
                SqliteStore::open(path)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open SQLite store {}: {e}", path.display())),
            ),
            Target::Postgres(url) => Arc::new(
                PostgresStore::connect(url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open PostgreSQL store: {e}")),
            ),
        }
    }

    /// Opens the store with a way to make its disk full and free it again.
    pub async fn open_with_disk_drill(&self) -> (Arc<dyn Store>, DiskDrill) {
        match self {
            Target::Sqlite(path) => {
                let store = Arc::new(SqliteStore::open(path).await.unwrap_or_else(|e| {
                    panic!("cannot open SQLite store {}: {e}", path.display())
                }));
                (store.clone(), DiskDrill::Sqlite(store))
            }
            Target::Postgres(url) => {
                let store = self.open().await;
                let drill = DiskFullDrill::install(url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot install the disk-full drill: {e}"));
                (store, DiskDrill::Postgres(drill))
            }
        }
    }

    /// Runs `sql` on the database directly, as someone holding the database files (or a
    /// superuser) would: on PostgreSQL with triggers off (`session_replication_role =
    /// replica`), so that even the append-only tables can be edited. For tamper tests.
    pub async fn tamper(&self, sql: &str) {
        use sqlx::{Connection, Executor};
        match self {
            Target::Sqlite(path) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
                conn.execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("tamper {sql}: {e}"));
                let _ = conn.close().await;
            }
            Target::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect: {e}"));
                conn.execute("SET session_replication_role = replica")
                    .await
                    .unwrap_or_else(|e| panic!("triggers off: {e}"));
                conn.execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("tamper {sql}: {e}"));
                let _ = conn.close().await;
            }
        }
    }

    /// The `--database-url` for this target, if it is PostgreSQL.
    pub fn database_url(&self) -> Option<String> {
        match self {
            Target::Sqlite(_) => None,
            Target::Postgres(url) => Some(url.clone()),
        }
    }
}

/// Makes a store's disk full, as the store sees it, and frees it again: SQLite capped at
/// its current size in pages, PostgreSQL failing its commits with disk_full.
pub enum DiskDrill {
    Sqlite(Arc<SqliteStore>),
    Postgres(DiskFullDrill),
}

impl DiskDrill {
    pub async fn fill(&self) {
        match self {
            DiskDrill::Sqlite(store) => store.cap_size_at_current().await.map(|_| ()),
            DiskDrill::Postgres(drill) => drill.fill().await.map_err(|e| StoreError::Backend {
                backend: "postgres",
                message: e.to_string(),
            }),
        }
        .unwrap_or_else(|e| panic!("cannot fill the disk: {e}"));
    }

    pub async fn free(&self) {
        match self {
            DiskDrill::Sqlite(store) => store.lift_size_cap().await,
            DiskDrill::Postgres(drill) => drill.free().await.map_err(|e| StoreError::Backend {
                backend: "postgres",
                message: e.to_string(),
            }),
        }
        .unwrap_or_else(|e| panic!("cannot free the disk: {e}"));
    }
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `case` against a fresh target of `backend`; cleans up even when the case panics,
/// then re-raises the panic. PostgreSQL cases print a skip line and return when
/// AUTOLOG_TEST_POSTGRES_URL is not set.
pub async fn run_on<F, Fut>(backend: Backend, name: &str, case: F)
where
    F: FnOnce(Target) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let target = Target::Sqlite(dir.path().join("autolog.db"));
            let result = tokio::spawn(case(target)).await;
            drop(dir);
            rethrow(result);
        }
        Backend::Postgres => {
            let Some(server) = test_server_url() else {
                eprintln!("skipped {name} on PostgreSQL: AUTOLOG_TEST_POSTGRES_URL is not set");
                return;
            };
            let db = TestDatabase::create(&server).await;
            let result = tokio::spawn(case(Target::Postgres(db.url.clone()))).await;
            db.drop_database().await;
            rethrow(result);
        }
    }
}

fn rethrow(result: Result<(), tokio::task::JoinError>) {
    match result {
        Ok(()) => {}
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("test task failed: {e}"),
    }
}
