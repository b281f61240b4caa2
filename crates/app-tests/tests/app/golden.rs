//! Behaviour held to the byte: the example network and a seeded simulation, ingested on a
//! fresh SQLite ledger with a clock that stands still, give the same event hashes, the same
//! Merkle root and the same answers (chains, reconciliation, genealogy, alerts, a refusal)
//! as the golden files in `tests/golden`. A refactoring that changes any of them changes
//! what Autolog records or answers.
//!
//! After a deliberate change of behaviour, rewrite the files with
//! `AUTOLOG_GOLDEN_BLESS=1 cargo test -p autolog-app-tests golden` and review their diff.

use std::path::PathBuf;
use std::sync::Arc;

use autolog_app::{AlertQuery, Autolog, ManualClock};
use autolog_domain::catalogue::Payload;
use autolog_domain::{Instant, SigningKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// 2026-11-20T00:00:00Z: after every simulated journey and example instant.
const CLOCK_START_MICROS: i64 = 1_795_132_800_000_000;

/// A ledger on a clock that stands still until the test moves it, a second before each
/// request: the events of a request are recorded one microsecond apart (the store never
/// goes back), whatever the number of clock reads, and every read during a request sees
/// the requests before it.
async fn ledger(dir: &tempfile::TempDir) -> (Autolog, Arc<ManualClock>) {
    let store = autolog_store_sqlite::SqliteStore::open(&dir.path().join("golden.db"))
        .await
        .expect("store");
    let start = Instant::from_micros(CLOCK_START_MICROS).expect("valid");
    let clock = Arc::new(ManualClock::new(start));
    let app = Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[11u8; 32]))
        .with_clock(clock.clone())
        .with_coi_issuer("A9999")
        .expect("FIN");
    (app, clock)
}

/// The ledger's size, Merkle root and a digest of every event hash in position order.
async fn fingerprint(app: &Autolog) -> Value {
    let head = app.store().head().await.expect("head");
    let mut digest = Sha256::new();
    let mut after = 0;
    let mut scanned = 0;
    loop {
        let rows = app.store().scan(after, 500).await.expect("scan");
        let Some(last) = rows.last() else { break };
        after = last.position;
        for row in &rows {
            let event = row.event.as_ref().expect("stored event");
            digest.update(event.hash);
            // Every recorded payload reads in its typed form, as its type says.
            let typed = Payload::read(&event.body.event_type, event.body.version, &event.body.data)
                .unwrap_or_else(|e| panic!("event {} does not read typed: {e}", event.event_id));
            assert_eq!(typed.event_type(), event.body.event_type);
            scanned += 1;
        }
    }
    assert_eq!(scanned, head.position, "one row per position");
    json!({
        "events": head.position,
        "merkle_root": hex::encode(head.frontier.root()),
        "event_hashes_sha256": hex::encode(digest.finalize()),
    })
}

/// A fixed set of answers, asked an hour after the last event was recorded: the first
/// chains, reconciliation, every alert, the forward genealogy of the first lot, and the
/// refusal of a note on a chain that does not exist.
async fn answers(app: &Autolog, clock: &ManualClock) -> Value {
    clock.advance_seconds(3600);
    let mut answers = Map::new();
    let chains = app
        .store()
        .streams_with_prefix("coi/", "", 3)
        .await
        .expect("chains");
    for stream in chains {
        let coi = stream.trim_start_matches("coi/");
        let chain = app.chain(coi, None, None).await.expect("chain");
        answers.insert(format!("chain {coi}"), json!(chain));
    }
    let reconciliation =
        serde_json::to_value(app.reconciliation().await.expect("reconciliation")).expect("json");
    answers.insert("reconciliation".into(), reconciliation);
    let all = AlertQuery {
        status: Some("all".into()),
        ..AlertQuery::default()
    };
    answers.insert(
        "alerts".into(),
        json!(app.alerts(&all).await.expect("alerts")),
    );
    let lots = app
        .store()
        .streams_with_prefix("lot/", "", 1)
        .await
        .expect("lots");
    if let Some(lot) = lots.first() {
        let lot = lot.trim_start_matches("lot/");
        let forward = app
            .genealogy_forward(lot, None, None)
            .await
            .expect("genealogy");
        answers.insert(format!("genealogy_forward {lot}"), json!(forward));
    }
    let refused = json!({
        "stream": "coi/A99993000000001",
        "occurred_at": "2026-11-10T12:30:00-05:00[America/New_York]",
        "actor": "person/P-0002", "site": "S-BOS-01",
        "source": {"system": "golden", "source_event_id": "refused-1"},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "no such chain"}},
    });
    let refusal = match app.append_json(refused.to_string().as_bytes()).await {
        Ok(result) => format!("accepted: {:?}", result.outcomes.len()),
        Err(e) => e.to_string(),
    };
    answers.insert("refusal".into(), json!(refusal));
    Value::Object(answers)
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.json"))
}

/// Compares with the golden file, or writes it under AUTOLOG_GOLDEN_BLESS=1.
fn check(name: &str, actual: &Value) {
    let path = golden_path(name);
    let text = serde_json::to_string_pretty(actual).expect("JSON") + "\n";
    if std::env::var("AUTOLOG_GOLDEN_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &text).expect("write the golden file");
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (write it with AUTOLOG_GOLDEN_BLESS=1)",
            path.display()
        )
    });
    let golden: Value = serde_json::from_str(&golden).expect("golden JSON");
    let fingerprint = golden.as_object().expect("an object").keys();
    for key in fingerprint.filter(|k| *k != "answers") {
        assert_eq!(
            actual[key],
            golden[key],
            "{name}: {key} differs from {}",
            path.display()
        );
    }
    for (question, expected) in golden["answers"].as_object().expect("answers") {
        let answer = &actual["answers"][question];
        assert_eq!(answer, expected, "{name}: the answer to {question} differs");
    }
    assert_eq!(actual, &golden, "{name}: differs from {}", path.display());
}

#[tokio::test]
async fn the_example_network_is_recorded_and_answered_as_the_golden_file_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, clock) = ledger(&dir).await;
    autolog_test_support::import_examples(&app).await;
    clock.advance_seconds(1);
    autolog_test_support::enrol_at_los_angeles(&app, "PK-GOLDEN-1", "enrol-golden").await;
    let mut actual = fingerprint(&app).await;
    actual["answers"] = answers(&app, &clock).await;
    check("examples", &actual);
}

#[tokio::test]
async fn a_seeded_simulation_is_recorded_and_answered_as_the_golden_file_says() {
    let sim = autolog_simulate::generate(&autolog_simulate::SimulateOptions::new(12, 2026, 0.25))
        .expect("simulate");
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, clock) = ledger(&dir).await;
    let mut report = autolog_app::IngestReport::default();
    for (i, line) in sim.lines.iter().enumerate() {
        clock.advance_seconds(1);
        app.ingest_line(i + 1, line, &mut report)
            .await
            .expect("ingest");
    }
    let faults: Vec<usize> = sim.faults.iter().map(|f| f.line).collect();
    for refused in &report.refused {
        assert!(
            faults.contains(&refused.line),
            "line {} refused: {}",
            refused.line,
            refused.reason
        );
    }
    let mut actual = fingerprint(&app).await;
    actual["ingest"] = json!({
        "accepted_lines": report.accepted_lines,
        "appended_events": report.appended_events,
        "alerts": report.alerts,
        "refused_lines": report.refused.iter().map(|r| r.line).collect::<Vec<_>>(),
    });
    actual["answers"] = answers(&app, &clock).await;
    check("simulation", &actual);
}
