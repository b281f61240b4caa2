//! Real server processes: SIGKILL in the middle of concurrent appends, restart, and find every
//! acknowledged event present and `verify` passing; and two servers writing to one database.
//! The writer is a person with an account created with the CLI before the server starts,
//! signed in over HTTP.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{command, Server};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use serde_json::{json, Value};

/// The person who writes: registered, given an account and every role before the server starts.
const PERSON: &str = "P-0001";

/// Registers the writer in the (empty) ledger and gives them an account with every role,
/// as an operator would with the CLI; the TOTP secret.
fn set_up_account(data_dir: &Path, target: &Target) -> String {
    crate::common::register_and_create_account(data_dir, target, PERSON)
}

/// The events and streams `verify` counts, from its `ok: N events, M streams, ...` line.
fn verified_counts(data_dir: &Path, target: &Target) -> (u64, u64) {
    let verify = command(data_dir, target)
        .arg("verify")
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert_eq!(verify.status.code(), Some(0), "verify: {text}");
    let number = |word: &str| -> u64 {
        text.split(',')
            .find_map(|part| {
                part.trim()
                    .trim_start_matches("ok:")
                    .trim()
                    .strip_suffix(word)
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {word} count in {text:?}"))
    };
    (number("events"), number("streams"))
}

async fn sign_in(base: &str, totp_secret: &str) -> reqwest::Client {
    crate::common::sign_in(base, PERSON, totp_secret).await
}

/// Starts a server; concurrent writers go well past any rate limit, so none is set: these
/// tests are about durability.
async fn start(data_dir: &Path, target: &Target) -> Server {
    crate::common::start_server(data_dir, target, &["--rate-limit-per-second", "0"]).await
}

fn event(writer: usize, i: usize) -> Value {
    json!({
        "stream": format!("note/crash-{}", writer % 3),
        "occurred_at": "2026-03-02T09:00:00+01:00[Europe/Paris]",
        "actor": format!("person/{PERSON}"),
        "source": {"system": "console", "source_event_id": format!("w{writer}-{i}")},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": format!("writer {writer} event {i}")}}
    })
}

async fn kill_during_appends(target: Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = set_up_account(dir.path(), &target);
    let mut server = start(dir.path(), &target).await;
    let base = server.base.clone();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Signed in once: the session outlives the kill (it is in the database).
    let client = sign_in(&base, &secret).await;
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
    // Kill once a good number of appends has been acknowledged, while writers are still going
    // (no timing is asserted: on a slow machine this just waits longer).
    for _ in 0..6000 {
        if acknowledged.lock().expect("lock").len() >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
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

    let mut server = start(dir.path(), &target).await;
    let base = server.base.clone();
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
    server.kill();
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
    let secret = set_up_account(dir.path(), &target);
    // What the account set-up recorded (the person's registration, account and grants).
    let (setup_events, setup_streams) = verified_counts(dir.path(), &target);
    let mut first = start(dir.path(), &target).await;
    let mut second = start(dir.path(), &target).await;
    let (base_a, base_b) = (first.base.clone(), second.base.clone());
    // One sign-in: the session is in the shared database, so it works on both servers.
    let client = sign_in(&base_a, &secret).await;
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
    assert_eq!(health["tree_size"], setup_events + 240, "{health}");
    for id in all.iter().step_by(7) {
        let r = client
            .get(format!("{base_a}/api/v1/events/{id}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), reqwest::StatusCode::OK);
    }
    first.kill();
    second.kill();
    let verify = command(dir.path(), &target)
        .arg("verify")
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert_eq!(verify.status.code(), Some(0), "verify: {text}");
    assert!(
        text.starts_with(&format!(
            "ok: {} events, {} streams",
            setup_events + 240,
            setup_streams + 3
        )),
        "{text}"
    );
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
