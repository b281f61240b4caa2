//! The outbound feed to NATS JetStream, in process: `serve` with `ServeOptions::nats`
//! publishes every committed event (alerts included) once, in ledger position order, with
//! its headers; a consumer can resume from a stream sequence; a restart publishes what was
//! appended while stopped; appends go on while NATS is unreachable, and what they wrote is
//! published once it is back. Skipped when no NATS server listens (failed with
//! AUTOLOG_REQUIRE_NATS=1).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autolog_app::{
    Autolog, NatsOptions, EVENT_TYPE_HEADER, MSG_ID_HEADER, POSITION_HEADER, STREAM_HEADER,
};
use autolog_domain::SigningKey;
use autolog_server::{serve, ServeOptions};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use autolog_test_support::nats::{
    async_nats, connect, delete_stream, nats_or_skip, read_feed, unique_feed, wait_for_messages,
    FeedMessage,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn note(stream: &str, id: &str) -> Value {
    json!({
        "stream": stream,
        "occurred_at": "2026-03-02T09:00:00+01:00[Europe/Paris]",
        "actor": "person/P-0001",
        "source": {"system": "nats-test", "source_event_id": id},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": id}}
    })
}

/// A running `serve`, stopped (gracefully) by `stop`.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("serve task")
            .expect("serve stops cleanly");
    }
}

async fn start(app: &Arc<Autolog>, nats: NatsOptions) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let options = ServeOptions {
        checkpoint_interval: Duration::from_secs(3600),
        rate_limit: None,
        nats: Some(nats),
        ..ServeOptions::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app.clone(), options, async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

async fn append(app: &Autolog, event: &Value) {
    app.append_json(event.to_string().as_bytes())
        .await
        .unwrap_or_else(|e| panic!("append {event}: {e}"));
}

/// Checks the whole stream against the ledger: every committed event exactly once, the
/// stream sequence equal to the position (the stream was made for this ledger), the
/// subject, headers and body of each, and each Autolog stream's events in `seq` order.
async fn assert_feed_is_the_ledger(app: &Autolog, nats: &NatsOptions, messages: &[FeedMessage]) {
    let ledger = app.store().scan(0, 100_000).await.expect("scan");
    assert_eq!(
        messages.len(),
        ledger.len(),
        "one message per committed event"
    );
    let mut next_seq: BTreeMap<String, u64> = BTreeMap::new();
    for (row, m) in ledger.iter().zip(messages) {
        let event = row.event.as_ref().expect("readable event");
        assert_eq!(m.position(), event.position, "in position order");
        assert_eq!(m.stream_sequence, event.position, "no gap, no duplicate");
        assert_eq!(m.header("Nats-Msg-Id"), event.event_id.to_string());
        assert_eq!(m.header("Autolog-Stream"), event.stream);
        assert_eq!(m.header("Autolog-Event-Type"), event.body.event_type);
        assert_eq!(
            m.subject,
            format!("{}.events.{}", nats.subject_prefix, event.body.event_type)
        );
        assert_eq!(m.body, event.to_json(), "the event as the API shows it");
        let expected = next_seq.entry(event.stream.clone()).or_insert(1);
        assert_eq!(event.seq, *expected, "{} in seq order", event.stream);
        *expected += 1;
    }
}

async fn feed_story(target: Target) {
    let Some(url) = nats_or_skip("nats feed") else {
        return;
    };
    let (prefix, stream) = unique_feed("inprocess");
    let mut nats = NatsOptions::new(&url);
    nats.subject_prefix = prefix;
    nats.stream_name = stream.clone();

    let store = target.open().await;
    let app = Arc::new(Autolog::from_parts(
        store,
        SigningKey::from_bytes(&[42u8; 32]),
    ));
    // What the ledger holds before the first start is published too.
    autolog_test_support::import_examples(&app).await;
    let running = start(&app, nats.clone()).await;

    // Two writers, two Autolog streams, concurrently.
    let mut writers = Vec::new();
    for w in 0..2 {
        let app = app.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..30 {
                append(&app, &note(&format!("note/nats-{w}"), &format!("w{w}-{i}"))).await;
            }
        }));
    }
    // An alert is an event too: a clock in the wrong zone at a Paris site raises one.
    let mut wrong_zone = note("note/nats-0", "wrong-zone");
    wrong_zone["site"] = json!("S-PAR-01");
    wrong_zone["occurred_at"] = json!("2026-03-02T09:00:00+00:00[UTC]");
    append(&app, &wrong_zone).await;
    for w in writers {
        w.await.expect("writer");
    }

    let head = app.store().head().await.expect("head").position;
    assert_eq!(
        wait_for_messages(&url, &stream, head, WAIT).await,
        head,
        "every committed event published"
    );
    let messages = read_feed(&url, &stream, 1).await;
    assert_feed_is_the_ledger(&app, &nats, &messages).await;
    assert!(
        messages.iter().any(|m| m.subject
            == format!("{}.events.alert.raised", nats.subject_prefix)
            && m.body["body"]["data"]["rule"] == "time_zone.discrepancy"),
        "the alert is published"
    );

    // A subscriber resumes from a stream sequence (here the sequence is the position).
    let from = head / 2;
    let rest = read_feed(&url, &stream, from).await;
    assert_eq!(rest.len() as u64, head - from + 1);
    assert_eq!(rest[0].position(), from);
    assert_eq!(rest.last().map(FeedMessage::position), Some(head));

    // The cursor is stored after each acknowledged batch.
    let deadline = std::time::Instant::now() + WAIT;
    let cursor = loop {
        let cursor = app
            .store()
            .outbox_cursor(&nats.cursor_name())
            .await
            .expect("cursor");
        if cursor == Some(head) || std::time::Instant::now() > deadline {
            break cursor;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(cursor, Some(head));
    // Stopped: appends while stopped are published after a restart.
    running.stop().await;
    for i in 0..5 {
        append(&app, &note("note/nats-1", &format!("stopped-{i}"))).await;
    }
    let running = start(&app, nats.clone()).await;
    let head = app.store().head().await.expect("head").position;
    assert_eq!(wait_for_messages(&url, &stream, head, WAIT).await, head);
    running.stop().await;

    // NATS unreachable: appends are not held up, and nothing is lost.
    let mut down = nats.clone();
    down.url = "nats://127.0.0.1:1".to_string();
    let running = start(&app, down).await;
    for i in 0..5 {
        append(&app, &note("note/nats-0", &format!("down-{i}"))).await;
    }
    running.stop().await;
    let running = start(&app, nats.clone()).await;
    let head = app.store().head().await.expect("head").position;
    assert_eq!(wait_for_messages(&url, &stream, head, WAIT).await, head);
    running.stop().await;
    let messages = read_feed(&url, &stream, 1).await;
    assert_feed_is_the_ledger(&app, &nats, &messages).await;
    eprintln!("{} events published once, in order", messages.len());
    delete_stream(&url, &stream).await;
}

/// A previous run published the first events and died before storing its cursor; the
/// restart comes after the stream's duplicate window, so `Nats-Msg-Id` de-duplication can
/// no longer help: resuming from the stream's tail publishes each event once all the same.
/// Then another publisher's message lands at the tail: the publisher goes on from its
/// stored cursor, with de-duplication only.
async fn resume_story(target: Target) {
    let Some(url) = nats_or_skip("nats resume") else {
        return;
    };
    let (prefix, stream) = unique_feed("resume");
    let mut nats = NatsOptions::new(&url);
    nats.subject_prefix = prefix.clone();
    nats.stream_name = stream.clone();
    let app = Arc::new(Autolog::from_parts(
        target.open().await,
        SigningKey::from_bytes(&[42u8; 32]),
    ));
    autolog_test_support::import_examples(&app).await;

    let js = connect(&url).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("{prefix}.>")],
        duplicate_window: Duration::from_millis(300),
        ..Default::default()
    })
    .await
    .expect("create the stream");
    let ledger = app.store().scan(0, 40).await.expect("scan");
    for row in &ledger {
        let event = row.event.as_ref().expect("readable");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MSG_ID_HEADER, event.event_id.to_string().as_str());
        headers.insert(POSITION_HEADER, event.position.to_string().as_str());
        headers.insert(STREAM_HEADER, event.stream.as_str());
        headers.insert(EVENT_TYPE_HEADER, event.body.event_type.as_str());
        js.publish_with_headers(
            nats.subject(&event.body.event_type),
            headers,
            event.to_json().to_string().into(),
        )
        .await
        .expect("publish")
        .await
        .expect("ack");
    }
    assert_eq!(
        app.store()
            .outbox_cursor(&nats.cursor_name())
            .await
            .expect("cursor"),
        None
    );
    // Past the duplicate window.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let running = start(&app, nats.clone()).await;
    let head = app.store().head().await.expect("head").position;
    assert_eq!(wait_for_messages(&url, &stream, head, WAIT).await, head);
    running.stop().await;
    let messages = read_feed(&url, &stream, 1).await;
    assert_feed_is_the_ledger(&app, &nats, &messages).await;

    // A message that is not this ledger's at the tail: publication goes on after it.
    js.publish(format!("{prefix}.other"), "not an event".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let running = start(&app, nats.clone()).await;
    for i in 0..3 {
        append(&app, &note("note/nats-0", &format!("after-foreign-{i}"))).await;
    }
    let head = app.store().head().await.expect("head").position;
    assert_eq!(
        wait_for_messages(&url, &stream, head + 1, WAIT).await,
        head + 1
    );
    running.stop().await;
    let messages = read_feed(&url, &stream, 1).await;
    let positions: Vec<u64> = messages.iter().map(FeedMessage::position).collect();
    let expected: Vec<u64> = (1..=head - 3).chain([0]).chain(head - 2..=head).collect();
    assert_eq!(
        positions, expected,
        "each event once, the foreign message kept"
    );
    delete_stream(&url, &stream).await;
}

/// A NATS server of the test's own (`nats-server -js` on a free port), stopped when dropped.
struct OwnNats {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnNats {
    /// Starts it; `None` when there is no `nats-server` to start.
    fn start(port: u16, dir: &std::path::Path) -> Option<OwnNats> {
        // Debian installs it in /usr/sbin, which is not on every PATH.
        let child = ["nats-server", "/usr/sbin/nats-server"]
            .iter()
            .find_map(|program| {
                std::process::Command::new(program)
                    .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                    .arg(dir)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .ok()
            })?;
        let nats = OwnNats {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(nats);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not start on port {port}");
    }

    /// Stops it as an operator would (SIGTERM: JetStream flushes its files), and waits.
    fn stop(mut self) -> (u16, std::path::PathBuf) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        (self.port, self.dir.clone())
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// NATS goes down while `serve` publishes: appends go on, and once NATS is back the
/// publisher (retrying with backoff) publishes what was committed meanwhile, each event once.
async fn outage_story(target: Target) {
    if nats_or_skip("nats outage").is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(own) = OwnNats::start(port, dir.path()) else {
        if std::env::var("AUTOLOG_REQUIRE_NATS").is_ok_and(|v| v == "1") {
            panic!("nats outage: cannot run nats-server and AUTOLOG_REQUIRE_NATS=1");
        }
        eprintln!("skipped nats outage: cannot run nats-server");
        return;
    };
    let url = format!("nats://127.0.0.1:{port}");
    let (prefix, stream) = unique_feed("outage");
    let mut nats = NatsOptions::new(&url);
    nats.subject_prefix = prefix;
    nats.stream_name = stream.clone();
    let app = Arc::new(Autolog::from_parts(
        target.open().await,
        SigningKey::from_bytes(&[42u8; 32]),
    ));
    autolog_test_support::ensure_person(&app, "P-0001").await;
    let running = start(&app, nats.clone()).await;
    for i in 0..10 {
        append(&app, &note("note/outage", &format!("before-{i}"))).await;
    }
    let head = app.store().head().await.expect("head").position;
    assert_eq!(wait_for_messages(&url, &stream, head, WAIT).await, head);

    let (port, data) = own.stop();
    for i in 0..10 {
        append(&app, &note("note/outage", &format!("during-{i}"))).await;
    }
    let _own = OwnNats::start(port, &data).expect("nats-server restarts");
    let head = app.store().head().await.expect("head").position;
    assert_eq!(wait_for_messages(&url, &stream, head, WAIT).await, head);
    running.stop().await;
    let messages = read_feed(&url, &stream, 1).await;
    assert_feed_is_the_ledger(&app, &nats, &messages).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publication_resumes_after_a_nats_outage_on_sqlite() {
    run_on(Backend::Sqlite, "nats_outage", outage_story).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_after_the_duplicate_window_publishes_each_event_once_on_sqlite() {
    run_on(Backend::Sqlite, "nats_resume", resume_story).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_after_the_duplicate_window_publishes_each_event_once_on_postgres() {
    run_on(Backend::Postgres, "nats_resume", resume_story).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_is_published_once_in_order_on_sqlite() {
    run_on(Backend::Sqlite, "nats_feed", feed_story).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_is_published_once_in_order_on_postgres() {
    run_on(Backend::Postgres, "nats_feed", feed_story).await;
}
