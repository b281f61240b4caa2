//! `autolog ingest` in lanes: each chain's lines in file order, several chains at once.
//! What it records per chain, and the verdict of each line, are those of the same file
//! ingested line by line in file order.

use std::sync::Arc;

use autolog_app::{Autolog, IngestReport};
use autolog_domain::SigningKey;
use serde_json::Value;

async fn ledger(dir: &tempfile::TempDir, name: &str) -> Autolog {
    let store = autolog_store_sqlite::SqliteStore::open(&dir.path().join(name))
        .await
        .expect("store");
    Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[5u8; 32]))
}

/// Each event of a chain as it matters: stream, place in it, source, type, who and when.
/// (Payloads Autolog writes itself name other events' ids and the signing time, which
/// differ from one ingest to the next.)
async fn recorded(app: &Autolog, coi: &str) -> (String, Vec<Value>) {
    let chain = app.chain(coi, None, None).await.expect("chain");
    let events = chain
        .timeline
        .iter()
        .map(|e| {
            let mut kept = serde_json::Map::new();
            for field in ["stream", "seq", "source", "actor", "occurred_at"] {
                kept.insert(field.to_string(), e.event[field].clone());
            }
            kept.insert("type".into(), e.event["body"]["type"].clone());
            Value::Object(kept)
        })
        .collect();
    (chain.state.to_string(), events)
}

fn verdicts(report: &IngestReport) -> (Vec<usize>, usize, usize, usize) {
    (
        report.refused.iter().map(|r| r.line).collect(),
        report.lines,
        report.accepted_lines,
        report.appended_events,
    )
}

#[tokio::test]
async fn lanes_record_what_file_order_records() {
    let sim = autolog_simulate::generate(&autolog_simulate::SimulateOptions::new(24, 11, 0.0))
        .expect("simulate");
    // Two refusals in the middle: a line that is not JSON, and a chain event naming a
    // site that does not exist. Each is refused at its own line in either mode.
    let mut lines = sim.lines.clone();
    let middle = lines.len() / 2;
    let coi = &sim.chains[0].coi;
    let stray = serde_json::json!({
        "stream": format!("coi/{coi}"),
        "occurred_at": "2026-03-02T10:00:00+01:00[Europe/Paris]",
        "actor": "person/P-0005", "site": "NOWHERE",
        "source": {"system": "aph", "source_event_id": "stray-1"},
        "body": {"type": "chain.follow_up_recorded", "version": 1, "data": {}}
    });
    lines.insert(middle, stray.to_string());
    lines.insert(middle, "{not json".to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sim.ndjson");
    std::fs::write(&file, lines.join("\n")).expect("write");

    let in_order = ledger(&dir, "in-order.db").await;
    let by_line = in_order
        .ingest_with_progress(&file, 1, &|_| {})
        .await
        .expect("ingest in file order");
    let in_lanes = ledger(&dir, "in-lanes.db").await;
    let by_lane = in_lanes
        .ingest_with_progress(&file, 8, &|_| {})
        .await
        .expect("ingest in lanes");

    assert_eq!(verdicts(&by_lane), verdicts(&by_line));
    let refused: Vec<usize> = by_line.refused.iter().map(|r| r.line).collect();
    assert_eq!(
        refused,
        vec![middle + 1, middle + 2],
        "{:?}",
        by_line.refused
    );
    assert_eq!(by_line.accepted_lines, lines.len() - 2);
    for chain in &sim.chains {
        assert_eq!(
            recorded(&in_lanes, &chain.coi).await,
            recorded(&in_order, &chain.coi).await,
            "{}",
            chain.coi
        );
    }
    for app in [&in_order, &in_lanes] {
        let verified = app.verify(|_, _| {}).await.expect("verify runs");
        assert!(verified.is_ok(), "{:?}", verified.err());
    }
}
