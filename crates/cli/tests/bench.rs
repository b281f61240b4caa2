//! The bench is a command, not a test: this only checks that a tiny run works end to end
//! and prints the table and the JSON the documentation describes (seconds, on SQLite).

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_autolog");

#[test]
fn a_tiny_bench_prints_the_table_and_writes_the_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json_path = dir.path().join("bench.json");
    let out = Command::new(BIN)
        .args([
            "bench",
            "--backend",
            "sqlite",
            "--patients",
            "20",
            "--seed",
            "3",
            "--http-clients",
            "2",
            "--sample-secs",
            "5",
            "--json",
        ])
        .arg(&json_path)
        .env_remove("AUTOLOG_DATABASE_URL")
        .current_dir(dir.path())
        .output()
        .expect("run autolog bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "autolog bench failed:\n{stdout}\n{stderr}"
    );
    for row in [
        "batched, in process",
        "one per request, in process",
        "one per request, HTTP",
        "limit: plain insert, batched",
        "limit: plain insert, 1 row per tx",
        "chain(coi) as of now",
        "chain(coi) as known at a past moment",
        "genealogy forward",
        "reconciliation",
        "verify, whole ledger",
        "peak RSS",
    ] {
        assert!(
            stdout.contains(row),
            "the table has no row {row:?}:\n{stdout}"
        );
    }

    let report: Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("the JSON file")).expect("JSON");
    assert_eq!(report["backend"], "sqlite");
    let scale = &report["scales"][0];
    assert_eq!(scale["patients"], 20);
    for mode in [
        "batched_in_process",
        "per_request_in_process",
        "per_request_http",
    ] {
        let ingest = &scale["ingest"][mode];
        assert!(
            ingest["events"].as_u64().is_some_and(|n| n > 0),
            "{mode} appended nothing: {ingest}"
        );
        assert_eq!(ingest["refused_requests"], 0, "{mode}: {ingest}");
        assert!(scale["ratio_to_limit"][mode]
            .as_f64()
            .is_some_and(|r| r > 0.0));
    }
    // The batched ingest loads the whole simulation, every event of it.
    assert_eq!(
        scale["ingest"]["batched_in_process"]["whole_simulation"],
        true
    );
    for limit in [
        "plain_insert_batched",
        "plain_insert_one_row_per_transaction",
    ] {
        assert!(scale["limit"][limit]["rows_per_second"]
            .as_f64()
            .is_some_and(|r| r > 0.0));
    }
    for read in ["as_of_now", "as_known_at_past"] {
        let c = &scale["chain_reconstruction"][read];
        assert!(c["samples"].as_u64().is_some_and(|n| n > 0), "{c}");
        assert!(c["p50_ms"].as_f64().is_some() && c["p99_ms"].as_f64().is_some());
    }
    assert_eq!(scale["verify"]["ok"], true);
    assert!(scale["genealogy_forward"]["batches"]
        .as_u64()
        .is_some_and(|n| n > 0));
    assert!(scale["reconciliation"]["ms"].as_f64().is_some());
    assert!(scale["peak_rss_bytes"].as_u64().is_some_and(|n| n > 0));
    assert!(scale["database_bytes_per_event"]
        .as_f64()
        .is_some_and(|n| n > 0.0));
}
