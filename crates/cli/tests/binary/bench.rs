//! The bench is a command, not a test: this only checks that a tiny run works end to end
//! and prints the table and the JSON the documentation describes (seconds, on SQLite).

use std::process::Command;

use serde_json::Value;

use crate::common::BIN;

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
        "without Argon2id (estimate)",
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
        // Re-authentication reported apart: without it, never slower.
        let without = ingest["events_per_second_without_argon2id"].as_f64();
        let with = ingest["events_per_second"].as_f64();
        assert!(without >= with && with.is_some(), "{mode}: {ingest}");
        assert!(ingest["argon2id_seconds"].as_f64().is_some(), "{ingest}");
    }
    // The simulation's signed releases are re-authenticated: Argon2id ran.
    let batched = &scale["ingest"]["batched_in_process"];
    assert!(
        batched["argon2id_computations"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{batched}"
    );
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

/// Kills the bench if the test stops early, so that no run is left behind.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bench stopped with Ctrl-C (SIGINT) drops the temporary database it made on the
/// PostgreSQL server, rather than leaving it behind.
#[cfg(unix)]
#[tokio::test]
async fn an_interrupted_bench_drops_its_temporary_database_on_postgres() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let Some(server) = autolog_store_postgres::testing::test_server_url() else {
        eprintln!("skipped on PostgreSQL: AUTOLOG_TEST_POSTGRES_URL is not set");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(BIN)
        .args(["bench", "--database-url", &server, "--patients", "3000"])
        .env("AUTOLOG_LOG", "warn")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start autolog bench");
    let mut child = Running(child);
    let stderr = child.0.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut name = None;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("a line of progress");
        if let Some(rest) = line.strip_prefix("bench: temporary database ") {
            name = rest.split_whitespace().next().map(str::to_string);
        }
        let ingesting = line.contains("batched ingest");
        seen.push(line);
        if ingesting {
            break;
        }
    }
    let name = name.unwrap_or_else(|| panic!("no temporary database named:\n{}", seen.join("\n")));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&server)
        .await
        .expect("connect to the test server");
    let exists = |name: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            )
            .bind(name)
            .fetch_one(&pool)
            .await
            .expect("query pg_database")
        }
    };
    assert!(
        exists(name.clone()).await,
        "{name} exists while the bench runs"
    );
    let interrupted = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    // The rest of the progress, so that the bench never blocks on a full pipe.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.0.wait().expect("the bench exits");
    assert!(!status.success(), "an interrupted bench reports failure");
    assert!(
        !exists(name.clone()).await,
        "{name} was left on the server:\n{}",
        rest.join("\n")
    );
    pool.close().await;
}
