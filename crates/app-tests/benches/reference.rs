//! Reference-data benchmarks on SQLite: bulk import of a generated network (rows per
//! second, one transaction), crosswalk resolution latency, the alignment report, and
//! chain reads (`trace`) and network reconciliation on a ledger of 104,000 chain events.

use std::sync::Arc;
use std::time::{Duration, Instant as Clock};

use autolog_app::{Autolog, ImportFile};
use autolog_domain::SigningKey;
use autolog_store_sqlite::SqliteStore;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

const ZONES: &[&str] = &[
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Los_Angeles",
    "Europe/Berlin",
];

/// A network of `sites` sites, one source system, two people and two crosswalks per site.
fn network(sites: usize) -> (Value, usize) {
    let site_records: Vec<Value> = (0..sites)
        .map(|i| {
            json!({"site_id": format!("S-{i:05}"), "name": format!("Site {i}"),
                   "site_types": ["treatment_center"], "time_zone": ZONES[i % ZONES.len()]})
        })
        .collect();
    let people: Vec<Value> = (0..2 * sites)
        .map(|i| {
            json!({"person_id": format!("P-{i:06}"), "printed_name": format!("Person {i}"),
                   "qualifications": [{"site_id": format!("S-{:05}", i / 2), "role": "nurse",
                                       "valid_until": "2030-01-01T00:00:00Z"}]})
        })
        .collect();
    let crosswalks: Vec<Value> = (0..sites)
        .flat_map(|i| {
            [
                json!({"system": "emr", "kind": "site", "local_code": format!("L{i}"),
                       "canonical_id": format!("S-{i:05}"), "valid_from": "2026-01-01T00:00:00Z"}),
                json!({"system": "emr", "kind": "person", "local_code": format!("N{i}"),
                       "canonical_id": format!("P-{:06}", 2 * i), "valid_from": "2026-01-01T00:00:00Z"}),
            ]
        })
        .collect();
    let rows = 1 + site_records.len() + people.len() + crosswalks.len();
    let doc = json!({
        "format": "autolog-reference/v1",
        "sites": site_records,
        "source_systems": [{"system_id": "emr", "kind": "treatment", "owning_site_id": "S-00000"}],
        "personnel": people,
        "crosswalks": crosswalks,
    });
    (doc, rows)
}

async fn fresh(dir: &tempfile::TempDir, name: &str) -> Autolog {
    let store = SqliteStore::open(&dir.path().join(name))
        .await
        .expect("store");
    Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[5u8; 32]))
}

fn reference(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let sites = 1000;
    let (doc, rows) = network(sites);
    let file = ImportFile {
        name: "network.json".into(),
        content: doc.to_string().into_bytes(),
        registry: None,
    };

    let mut group = c.benchmark_group("reference/sqlite");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(BenchmarkId::new("import_rows", rows), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let app = rt.block_on(fresh(&dir, &format!("i{i}.db")));
                let start = Clock::now();
                let report = rt
                    .block_on(app.import_reference(
                        std::slice::from_ref(&file),
                        "system/bench",
                        false,
                        &|_| {},
                    ))
                    .expect("import");
                total += start.elapsed();
                assert!(report.bad_rows.is_empty() && report.appended_events == rows);
            }
            total
        })
    });
    group.finish();

    let dir = tempfile::tempdir().expect("tempdir");
    let app = rt.block_on(fresh(&dir, "network.db"));
    rt.block_on(app.import_reference(std::slice::from_ref(&file), "system/bench", false, &|_| {}))
        .expect("import");
    let mut group = c.benchmark_group("reference/sqlite");
    group.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    group.bench_function("resolve", |b| {
        b.iter(|| {
            n = (n + 1) % sites;
            rt.block_on(app.resolve("emr", "site", &format!("L{n}"), None, None))
                .expect("mapped")
        })
    });
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("alignment_report", rows), |b| {
        b.iter(|| rt.block_on(app.alignment_report(None)).expect("report"))
    });
    group.bench_function(BenchmarkId::new("export_json", rows), |b| {
        b.iter(|| rt.block_on(app.export_reference(None)).expect("export"))
    });
    group.finish();
}

/// Chain reads on a ledger of `chains` chains of 52 events each (enrolment, 51 notes).
fn chains(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let app = rt.block_on(fresh(&dir, "chains.db"));
    let examples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reference");
    let mut paths: Vec<_> = std::fs::read_dir(examples)
        .expect("examples")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    let files: Vec<ImportFile> = paths
        .iter()
        .map(|p| ImportFile {
            name: p.display().to_string(),
            content: std::fs::read(p).expect("read"),
            registry: None,
        })
        .collect();
    rt.block_on(app.import_reference(&files, "system/bench", false, &|_| {}))
        .expect("import");
    let chains = 2000;
    let mut cois = Vec::new();
    let mut mid = Vec::new();
    for i in 0..chains {
        let coi = autolog_domain::identifiers::Coi::parse("coi", &format!("&/CHA99992{:07}", i))
            .expect("coi")
            .to_string();
        let mut batch = vec![json!({
            "stream": format!("coi/{coi}"), "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]",
            "actor": "person/P-0005", "source": {"system": "bench", "source_event_id": format!("e{i}")},
            "body": {"type": "chain.enrolled", "version": 1, "data": {"coi": coi, "patient_key": format!("PK-{i}"),
                "product_code": "CART-19", "treatment_site_id": "S-LAX-01", "coi_source": "upstream", "upstream_system": "emr-lax"}}
        })];
        for n in 0..51 {
            batch.push(json!({
                "stream": format!("coi/{coi}"), "occurred_at": "2026-11-03T09:00:00-08:00[America/Los_Angeles]",
                "actor": "person/P-0005", "site": "S-LAX-01", "source": {"system": "bench", "source_event_id": format!("n{i}-{n}")},
                "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "step recorded"}}
            }));
        }
        let result = rt
            .block_on(app.append_json(Value::Array(batch).to_string().as_bytes()))
            .expect("append");
        // A moment when half of each chain was known: the enrolment and 25 notes.
        if let Some(o) = result.outcomes.get(25) {
            mid.push(o.event.recorded_at.to_string());
        }
        cois.push(coi);
    }
    let events = chains * 52;
    let mut group = c.benchmark_group("chain/sqlite");
    group.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    group.bench_function(BenchmarkId::new("trace_now", events), |b| {
        b.iter(|| {
            n = (n + 7) % chains;
            rt.block_on(app.chain(&cois[n], None, None)).expect("chain")
        })
    });
    group.bench_function(BenchmarkId::new("trace_as_of_past", events), |b| {
        b.iter(|| {
            n = (n + 7) % chains;
            let chain = json!(rt
                .block_on(app.chain(&cois[n], None, Some(&mid[n])))
                .expect("chain"));
            assert_eq!(chain["timeline"].as_array().map(Vec::len), Some(26));
            chain
        })
    });
    group.finish();
    // Network reconciliation folds every chain: one pass over all 104,000 events.
    let mut group = c.benchmark_group("reconciliation/sqlite");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function(BenchmarkId::new("all_chains", events), |b| {
        b.iter(|| {
            let report = rt.block_on(app.reconciliation()).expect("report");
            assert_eq!(report.chains, chains);
            report
        })
    });
    group.finish();
}

criterion_group!(benches, reference, chains);
criterion_main!(benches);
