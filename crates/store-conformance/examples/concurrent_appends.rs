//! One event per request, from 1, 8 and 32 concurrent clients: events per second, and
//! commits per second (on PostgreSQL from `pg_stat_database`; on SQLite count the fsyncs
//! of the WAL from outside, e.g. `strace -f -c -e trace=fsync,fdatasync`).
//!
//! ```text
//! cargo run --release -p autolog-store-conformance --example concurrent_appends -- sqlite 1,8,32 3
//! AUTOLOG_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run --release -p autolog-store-conformance --example concurrent_appends -- postgres 1,8,32 3
//! ```
//!
//! Arguments: backend (`sqlite` or `postgres`), client counts, seconds per run. Each run
//! starts from an empty ledger; clients append to their own streams.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as Clock};

use autolog_domain::Instant;
use autolog_store::Store;
use autolog_store_conformance::cases::{draft, T0};
use autolog_store_postgres::testing::TestDatabase;
use autolog_store_postgres::PostgresStore;
use autolog_store_sqlite::SqliteStore;
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;

static SOURCE: AtomicU64 = AtomicU64::new(0);

/// Committed transactions in one database so far (stats are flushed when sessions end).
async fn pg_commits(server_url: &str, name: &str) -> i64 {
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(server_url)
        .await
        .expect("connect to the PostgreSQL server");
    let row = sqlx::query("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&admin)
        .await
        .expect("pg_stat_database");
    let commits: i64 = row.try_get(0).expect("xact_commit");
    admin.close().await;
    commits
}

/// Appends one event per request from `clients` tasks for `secs`; returns the requests done.
async fn run(store: Arc<dyn Store>, clients: usize, secs: u64) -> (u64, Duration) {
    let start = Clock::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Clock::now() < deadline {
                let id = SOURCE.fetch_add(1, Ordering::Relaxed);
                let d = draft(&format!("note/c{c}"), "bench", &id.to_string(), T0);
                store.append(&[d], &Instant::now).await.expect("append");
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("client");
    }
    (total, start.elapsed())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let backend = args.get(1).map_or("sqlite", String::as_str).to_string();
    let clients: Vec<usize> = args
        .get(2)
        .map_or("1,8,32", String::as_str)
        .split(',')
        .map(|c| c.parse().map_err(|e| format!("client count {c}: {e}")))
        .collect::<Result<_, _>>()?;
    let secs: u64 = match args.get(3) {
        Some(s) => s.parse().map_err(|e| format!("seconds {s}: {e}"))?,
        None => 3,
    };
    for &n in &clients {
        match backend.as_str() {
            "sqlite" => {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = SqliteStore::open(&dir.path().join("bench.db"))
                    .await
                    .expect("sqlite");
                let store = Arc::new(store);
                let (requests, took) = run(store.clone(), n, secs).await;
                store.close().await;
                let s = took.as_secs_f64();
                println!(
                    "sqlite clients={n:>2} requests={requests:>6} events/s={:>8.0}",
                    requests as f64 / s
                );
            }
            "postgres" => {
                let url = std::env::var("AUTOLOG_BENCH_POSTGRES_URL")
                    .map_err(|_| "set AUTOLOG_BENCH_POSTGRES_URL".to_string())?;
                let db = TestDatabase::create(&url).await;
                let store = PostgresStore::connect(&db.url).await.expect("postgres");
                // Migrations and connection set-up commit too: count from here.
                drop(store);
                tokio::time::sleep(Duration::from_millis(700)).await;
                let before = pg_commits(&url, &db.name).await;
                let store = Arc::new(PostgresStore::connect(&db.url).await.expect("postgres"));
                let (requests, took) = run(store.clone(), n, secs).await;
                drop(store);
                // Sessions flush their statistics when they end.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let commits = pg_commits(&url, &db.name).await - before;
                let s = took.as_secs_f64();
                println!(
                    "postgres clients={n:>2} requests={requests:>6} events/s={:>8.0} commits={commits:>6} commits/s={:>7.0}",
                    requests as f64 / s,
                    commits as f64 / s
                );
                db.drop_database().await;
            }
            other => return Err(format!("unknown backend {other}: sqlite or postgres")),
        }
    }
    Ok(())
}
