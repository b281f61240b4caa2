//! The outbox on real server processes (`autolog serve --nats-url ...`): concurrent appends
//! while the server is SIGKILLed at random moments and restarted, once while it cannot
//! reach NATS at all (so it dies with events committed and never published), then two
//! servers on one database publishing together. At the end JetStream holds every committed
//! event exactly once, in ledger position order (so each stream in `seq` order), and every
//! acknowledged event is among them. Skipped when no NATS server listens (failed with
//! AUTOLOG_REQUIRE_NATS=1).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{command, Server};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use autolog_test_support::nats::{
    delete_stream, message_count, nats_or_skip, read_feed, unique_feed, wait_for_messages,
};
use serde_json::{json, Value};

/// The person who writes: registered, given an account and every role before the server starts.
const PERSON: &str = "P-0001";
/// Where no NATS server listens.
const NOWHERE: &str = "nats://127.0.0.1:1";

/// The feed every server of the test publishes to.
#[derive(Clone)]
struct Feed {
    prefix: String,
    stream: String,
}

/// Registers the writer in the (empty) ledger and gives them an account with every role;
/// the TOTP secret.
fn set_up_account(data_dir: &Path, target: &Target) -> String {
    crate::common::register_and_create_account(data_dir, target, PERSON)
}

/// Starts a server publishing to `nats_url`, on a port the OS picks, with no rate limit.
async fn start(data_dir: &Path, target: &Target, nats_url: &str, feed: &Feed) -> Server {
    let args = [
        "--rate-limit-per-second",
        "0",
        "--nats-url",
        nats_url,
        "--nats-subject-prefix",
        &feed.prefix,
        "--nats-stream",
        &feed.stream,
    ];
    crate::common::start_server(data_dir, target, &args).await
}

fn event(round: usize, writer: usize, i: usize) -> Value {
    json!({
        "stream": format!("note/outbox-{}", writer % 2),
        "occurred_at": "2026-03-02T09:00:00+01:00[Europe/Paris]",
        "actor": format!("person/{PERSON}"),
        "source": {"system": "console", "source_event_id": format!("r{round}-w{writer}-{i}")},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": format!("round {round} writer {writer} event {i}")}}
    })
}

/// A number below `n` that differs from run to run (where the kill lands; nothing about
/// timing is asserted).
fn jitter(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    (nanos / 1000) % n.max(1)
}

/// Four writers, spread over `bases`, each sending single events and pairs until `stop`
/// or the first failure (the kill); every acknowledged event id goes to `acknowledged`.
fn spawn_writers(
    round: usize,
    bases: &[String],
    client: &reqwest::Client,
    acknowledged: &Arc<Mutex<Vec<String>>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|w| {
            let (client, base, acknowledged, stop) = (
                client.clone(),
                bases[w % bases.len()].clone(),
                acknowledged.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                for i in 0..300 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let body = if i % 4 == 3 {
                        json!([event(round, w, i), event(round, w, i + 10_000)])
                    } else {
                        event(round, w, i)
                    };
                    let Ok(answer) = client
                        .post(format!("{base}/api/v1/events"))
                        .json(&body)
                        .send()
                        .await
                    else {
                        break;
                    };
                    if !answer.status().is_success() {
                        break;
                    }
                    let Ok(v) = answer.json::<Value>().await else {
                        break;
                    };
                    let mut ids = acknowledged.lock().expect("lock");
                    match v.get("results") {
                        Some(results) => {
                            ids.extend(results.as_array().into_iter().flatten().filter_map(|r| {
                                r["event"]["event_id"].as_str().map(str::to_string)
                            }))
                        }
                        None => ids.extend(v["event"]["event_id"].as_str().map(str::to_string)),
                    }
                }
            })
        })
        .collect()
}

/// Waits until `more` further events are acknowledged (bounded), then a moment more.
async fn wait_for_acks(acknowledged: &Arc<Mutex<Vec<String>>>, more: usize) {
    let target = acknowledged.lock().expect("lock").len() + more;
    for _ in 0..3000 {
        if acknowledged.lock().expect("lock").len() >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(jitter(30))).await;
}

async fn stop_writers(stop: &Arc<AtomicBool>, writers: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    stop.store(false, Ordering::Relaxed);
}

async fn killed_between_commit_and_publish(target: Target) {
    let Some(url) = nats_or_skip("outbox under SIGKILL") else {
        return;
    };
    let (prefix, stream) = unique_feed("outbox");
    let feed = Feed { prefix, stream };
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = set_up_account(dir.path(), &target);
    // The ledger, read directly: for SQLite the file in the data directory the servers use.
    let store = match target.database_url() {
        Some(_) => target.open().await,
        None => Target::Sqlite(dir.path().join("autolog.db")).open().await,
    };
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));

    // Round 0: NATS cannot be reached; the server dies with committed, unpublished events.
    let mut server = start(dir.path(), &target, NOWHERE, &feed).await;
    // Signed in once: the session outlives every kill (it is in the database).
    let client = autolog_test_support::sign_in_http(&server.base, PERSON, &secret)
        .await
        .client_builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");
    let writers = spawn_writers(0, &[server.base.clone()], &client, &acknowledged, &stop);
    wait_for_acks(&acknowledged, 30).await;
    server.kill();
    stop_writers(&stop, writers).await;
    assert!(
        !acknowledged.lock().expect("lock").is_empty(),
        "events were acknowledged before the first kill"
    );
    assert_eq!(
        message_count(&url, &feed.stream).await,
        0,
        "nothing could be published in round 0"
    );

    // Rounds 1-3: killed at a random moment while writing and publishing.
    for round in 1..=3 {
        let mut server = start(dir.path(), &target, &url, &feed).await;
        let writers = spawn_writers(round, &[server.base.clone()], &client, &acknowledged, &stop);
        wait_for_acks(&acknowledged, 20 + jitter(60) as usize).await;
        server.kill();
        stop_writers(&stop, writers).await;
        // Where the kill landed (told, not asserted): committed beyond published means
        // between commit and publication.
        eprintln!(
            "round {round}: killed with {} events committed, {} published",
            store.head().await.expect("head").position,
            message_count(&url, &feed.stream).await
        );
    }

    // Two servers on one database publish together; one is killed while both write.
    let mut first = start(dir.path(), &target, &url, &feed).await;
    let second = start(dir.path(), &target, &url, &feed).await;
    let bases = [first.base.clone(), second.base.clone()];
    let writers = spawn_writers(4, &bases, &client, &acknowledged, &stop);
    wait_for_acks(&acknowledged, 40 + jitter(40) as usize).await;
    first.kill();
    stop_writers(&stop, writers).await;

    // The survivor publishes the rest.
    let head = store.head().await.expect("head").position;
    assert_eq!(
        wait_for_messages(&url, &feed.stream, head, Duration::from_secs(120)).await,
        head,
        "every committed event published"
    );
    drop(second);

    let ledger: Vec<_> = store
        .scan(0, 100_000)
        .await
        .expect("scan")
        .into_iter()
        .map(|r| r.event.expect("readable event"))
        .collect();
    assert_eq!(ledger.len() as u64, head);
    let messages = read_feed(&url, &feed.stream, 1).await;
    assert_eq!(
        messages.len(),
        ledger.len(),
        "each committed event exactly once"
    );
    let mut next_seq: BTreeMap<&str, u64> = BTreeMap::new();
    for (event, m) in ledger.iter().zip(&messages) {
        assert_eq!(m.position(), event.position, "in position order");
        assert_eq!(m.stream_sequence, event.position, "no gap, no duplicate");
        assert_eq!(m.header("Nats-Msg-Id"), event.event_id.to_string());
        assert_eq!(m.header("Autolog-Stream"), event.stream);
        assert_eq!(m.body, event.to_json());
        let expected = next_seq.entry(&event.stream).or_insert(1);
        assert_eq!(event.seq, *expected, "{} in seq order", event.stream);
        *expected += 1;
    }
    let published: HashSet<&str> = messages.iter().map(|m| m.header("Nats-Msg-Id")).collect();
    let acknowledged = acknowledged.lock().expect("lock").clone();
    for id in &acknowledged {
        assert!(
            published.contains(id.as_str()),
            "acknowledged {id} published"
        );
    }
    eprintln!(
        "{} committed events ({} acknowledged) published once, in order",
        messages.len(),
        acknowledged.len()
    );
    let verify = command(dir.path(), &target)
        .arg("verify")
        .output()
        .expect("verify");
    assert_eq!(
        verify.status.code(),
        Some(0),
        "verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    delete_stream(&url, &feed.stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outbox_survives_sigkill_on_sqlite() {
    run_on(Backend::Sqlite, "outbox", killed_between_commit_and_publish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_outbox_survives_sigkill_on_postgres() {
    run_on(
        Backend::Postgres,
        "outbox",
        killed_between_commit_and_publish,
    )
    .await;
}
