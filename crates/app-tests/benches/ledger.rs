//! Ledger benchmarks: append throughput (one stream / many streams, batches of 1 and 100)
//! and verify throughput, on SQLite and (with AUTOLOG_BENCH_POSTGRES_URL) PostgreSQL, each
//! beside a baseline of plain inserts of the same rows into the same database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as Clock};

use autolog_app::Autolog;
use autolog_domain::{Event, EventDraft, Instant, SigningKey};
use autolog_store::Store;
use autolog_store_conformance::cases::draft;
use autolog_store_postgres::testing::TestDatabase;
use autolog_store_postgres::PostgresStore;
use autolog_store_sqlite::SqliteStore;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

static SOURCE: AtomicU64 = AtomicU64::new(0);

fn drafts(n: usize, many_streams: bool) -> Vec<EventDraft> {
    (0..n)
        .map(|_| {
            let id = SOURCE.fetch_add(1, Ordering::Relaxed);
            let stream = if many_streams {
                format!("note/p{}", id % 1000)
            } else {
                "note/one".to_string()
            };
            draft(&stream, "bench", &id.to_string(), 1_772_323_200_000_000)
        })
        .collect()
}

enum Backend {
    /// The temporary directory is held so that it outlives the store.
    Sqlite(Arc<SqliteStore>, #[allow(dead_code)] tempfile::TempDir),
    Postgres(Arc<PostgresStore>, TestDatabase),
}

impl Backend {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(s, _) => s.clone(),
            Backend::Postgres(s, _) => s.clone(),
        }
    }

    async fn baseline(&self, events: &[Event]) {
        match self {
            Backend::Sqlite(s, _) => s.plain_insert_baseline(events).await.expect("baseline"),
            Backend::Postgres(s, _) => s.plain_insert_baseline(events).await.expect("baseline"),
        }
    }
}

async fn backends() -> Vec<(&'static str, Backend)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(&dir.path().join("bench.db"))
        .await
        .expect("sqlite");
    let mut all = vec![("sqlite", Backend::Sqlite(Arc::new(sqlite), dir))];
    match std::env::var("AUTOLOG_BENCH_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let db = TestDatabase::create(&url).await;
            let pg = PostgresStore::connect(&db.url).await.expect("postgres");
            all.push(("postgres", Backend::Postgres(Arc::new(pg), db)));
        }
        _ => eprintln!("PostgreSQL benchmarks skipped: set AUTOLOG_BENCH_POSTGRES_URL to run them"),
    }
    all
}

/// Plain rows shaped like ledger events, with positions that do not collide.
fn baseline_rows(n: usize) -> Vec<Event> {
    static POSITION: AtomicU64 = AtomicU64::new(1);
    drafts(n, true)
        .iter()
        .map(|d| {
            let position = POSITION.fetch_add(1, Ordering::Relaxed);
            d.seal(autolog_domain::Placement {
                seq: 1,
                prev_hash: autolog_domain::GENESIS_HASH,
                position,
                recorded_at: Instant::now(),
                corrects: None,
            })
        })
        .collect()
}

fn ledger(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let all = rt.block_on(backends());
    for (name, backend) in &all {
        let store = backend.store();
        let mut group = c.benchmark_group(format!("append/{name}"));
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(5));
        for batch in [1usize, 100] {
            group.throughput(Throughput::Elements(batch as u64));
            for (label, many) in [("one_stream", false), ("many_streams", true)] {
                group.bench_with_input(BenchmarkId::new(label, batch), &batch, |b, &batch| {
                    b.iter_custom(|iters| {
                        let work: Vec<Vec<EventDraft>> =
                            (0..iters).map(|_| drafts(batch, many)).collect();
                        rt.block_on(async {
                            let start = Clock::now();
                            for d in &work {
                                store.append(d, &Instant::now).await.expect("append");
                            }
                            start.elapsed()
                        })
                    })
                });
            }
            group.bench_with_input(
                BenchmarkId::new("baseline_plain_insert", batch),
                &batch,
                |b, &batch| {
                    b.iter_custom(|iters| {
                        let work: Vec<Vec<Event>> =
                            (0..iters).map(|_| baseline_rows(batch)).collect();
                        rt.block_on(async {
                            let start = Clock::now();
                            for rows in &work {
                                backend.baseline(rows).await;
                            }
                            start.elapsed()
                        })
                    })
                },
            );
        }
        group.finish();

        let app = Autolog::from_parts(store.clone(), SigningKey::from_bytes(&[1u8; 32]));
        let (events, _) = rt.block_on(store.counts()).expect("counts");
        let mut group = c.benchmark_group(format!("verify/{name}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(10));
        group.throughput(Throughput::Elements(events));
        group.bench_function(BenchmarkId::new("whole_ledger", events), |b| {
            b.iter(|| {
                let report = rt.block_on(app.verify(|_, _| {})).expect("verify");
                assert!(report.is_ok(), "the benchmark ledger verifies");
            })
        });
        group.finish();
    }
    for (_, backend) in all {
        if let Backend::Postgres(_, db) = backend {
            rt.block_on(db.drop_database());
        }
    }
}

criterion_group!(benches, ledger);
criterion_main!(benches);
