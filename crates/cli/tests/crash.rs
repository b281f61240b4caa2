//! Real server processes: SIGKILL in the middle of concurrent appends, restart, and find every
//! acknowledged event present and `verify` passing; and two servers writing to one database.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autolog_store_conformance::harness::{run_on, Backend, Target};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_autolog");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn command(data_dir: &Path, target: &Target) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir").arg(data_dir).env("AUTOLOG_LOG", "warn");
    match target.database_url() {
        Some(url) => c.arg("--database-url").arg(url),
        None => c.env_remove("AUTOLOG_DATABASE_URL"),
    };
    c
}

async fn start(data_dir: &Path, target: &Target) -> (Child, String) {
    let port = free_port();
    let mut child = command(data_dir, target)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start autolog serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("autolog serve did not become healthy at {base}");
}

fn event(writer: usize, i: usize) -> Value {
    json!({
        "stream": format!("coi/crash-{}", writer % 3),
        "occurred_at": "2026-03-02T09:00:00+01:00[Europe/Paris]",
        "actor": "system/crash-test",
        "source": {"system": "crash-test", "source_event_id": format!("w{writer}-{i}")},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": format!("writer {writer} event {i}")}}
    })
}

async fn kill_during_appends(target: Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, base) = start(dir.path(), &target).await;
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let mut writers = Vec::new();
    for w in 0..6 {
        let (client, base, acknowledged, stop) = (
            client.clone(),
            base.clone(),
            acknowledged.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            // Bounded: at most 400 requests per writer, and it stops at the first failure.
            for i in 0..400 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = if i % 5 == 4 {
                    json!([event(w, i), event(w, i + 10_000)])
                } else {
                    event(w, i)
                };
                let sent = client
                    .post(format!("{base}/api/v1/events"))
                    .json(&body)
                    .send()
                    .await;
                let Ok(answer) = sent else { break };
                if !answer.status().is_success() {
                    break;
                }
                let Ok(v) = answer.json::<Value>().await else {
                    break;
                };
                let mut ids = acknowledged.lock().expect("lock");
                match v.get("results") {
                    Some(results) => {
                        ids.extend(
                            results.as_array().into_iter().flatten().filter_map(|r| {
                                r["event"]["event_id"].as_str().map(str::to_string)
                            }),
                        )
                    }
                    None => ids.extend(v["event"]["event_id"].as_str().map(str::to_string)),
                }
            }
        }));
    }
    // Kill once a good number of appends has been acknowledged, while writers are still going.
    for _ in 0..600 {
        if acknowledged.lock().expect("lock").len() >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().expect("SIGKILL the server");
    server.wait().expect("reap");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 150,
        "the writers got {} acknowledgements before the kill",
        acknowledged.len()
    );

    let (mut server, base) = start(dir.path(), &target).await;
    for id in &acknowledged {
        let r = client
            .get(format!("{base}/api/v1/events/{id}"))
            .send()
            .await
            .expect("request");
        assert_eq!(
            r.status(),
            reqwest::StatusCode::OK,
            "acknowledged event {id} survived the kill"
        );
    }
    server.kill().expect("stop");
    server.wait().expect("reap");
    let verify = command(dir.path(), &target)
        .arg("verify")
        .output()
        .expect("verify");
    assert_eq!(
        verify.status.code(),
        Some(0),
        "verify after the crash: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_sigkill_on_sqlite() {
    run_on(Backend::Sqlite, "crash", kill_during_appends).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_appends_survive_sigkill_on_postgres() {
    run_on(Backend::Postgres, "crash", kill_during_appends).await;
}

/// Two server processes on one database, written to concurrently: every acknowledged
/// event is stored once, and the ledger verifies (positions and per-stream seqs gap-free).
async fn two_servers_share_one_database(target: Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut first, base_a) = start(dir.path(), &target).await;
    let (mut second, base_b) = start(dir.path(), &target).await;
    let client = reqwest::Client::new();
    let mut writers = Vec::new();
    for w in 0..6 {
        let base = if w % 2 == 0 {
            base_a.clone()
        } else {
            base_b.clone()
        };
        let client = client.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..40 {
                let answer = client
                    .post(format!("{base}/api/v1/events"))
                    .json(&event(w, i))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(answer.status(), reqwest::StatusCode::CREATED);
                let v: Value = answer.json().await.expect("json");
                acknowledged.push(v["event"]["event_id"].as_str().expect("id").to_string());
            }
            acknowledged
        }));
    }
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.expect("writer"));
    }
    let health: Value = client
        .get(format!("{base_b}/healthz"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(health["tree_size"], 240);
    for id in all.iter().step_by(7) {
        let r = client
            .get(format!("{base_a}/api/v1/events/{id}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
    for server in [&mut first, &mut second] {
        server.kill().expect("stop");
        server.wait().expect("reap");
    }
    let verify = command(dir.path(), &target)
        .arg("verify")
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert_eq!(verify.status.code(), Some(0), "verify: {text}");
    assert!(text.starts_with("ok: 240 events, 3 streams"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_sqlite_file() {
    run_on(
        Backend::Sqlite,
        "two_servers",
        two_servers_share_one_database,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_postgres_database() {
    run_on(
        Backend::Postgres,
        "two_servers",
        two_servers_share_one_database,
    )
    .await;
}
