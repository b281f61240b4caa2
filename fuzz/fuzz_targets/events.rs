//! API request bodies of `POST /api/v1/events` and ingest lines (`autolog_app::parse_request`):
//! one event or a batch. Never a panic; every accepted draft, restated as a request, parses
//! to itself, and its sealed event's canonical bytes (RFC 8785) re-parse to the envelope.
#![no_main]

use autolog_app::parse_request;
use autolog_domain::catalogue::parse_draft;
use autolog_domain::ledger::envelope::canonical_json;
use autolog_domain::{CorrectionTarget, EventDraft, Instant, Placement, GENESIS_HASH};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

/// The server clock of every run: 2030-01-01T00:00:00Z (fixed, so runs repeat).
const NOW_MICROS: i64 = 1_893_456_000_000_000;

/// The append request that states `draft` again.
fn restated(draft: &EventDraft) -> Value {
    let mut o = Map::new();
    o.insert("stream".into(), json!(draft.stream));
    o.insert("occurred_at".into(), json!(draft.occurred_at.to_rfc9557()));
    o.insert("actor".into(), json!(draft.actor));
    if let Some(site) = &draft.site {
        o.insert("site".into(), json!(site));
    }
    o.insert(
        "source".into(),
        json!({"system": draft.source.system, "source_event_id": draft.source.source_event_id}),
    );
    if let Some(reason) = &draft.reason {
        o.insert("reason".into(), json!(reason));
    }
    match &draft.corrects {
        Some(CorrectionTarget::EventId(id)) => {
            o.insert("corrects".into(), json!(id.to_string()));
        }
        Some(CorrectionTarget::Source(s)) => {
            o.insert(
                "corrects".into(),
                json!({"system": s.system, "source_event_id": s.source_event_id}),
            );
        }
        None => {}
    }
    o.insert(
        "body".into(),
        json!({"type": draft.body.event_type, "version": draft.body.version, "data": draft.body.data}),
    );
    Value::Object(o)
}

/// JSON equality where a number is the same number however it is written (`1.0` is `1`),
/// but two different integers are never the same.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i128(), y.as_i128()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

pub fn check(body: &[u8]) {
    let now = Instant::from_micros(NOW_MICROS).expect("a valid instant");
    let Ok((drafts, single)) = parse_request(body, now, 300) else {
        return;
    };
    assert!(!drafts.is_empty());
    assert!(!single || drafts.len() == 1);
    for draft in &drafts {
        let again = parse_draft(&restated(draft), draft.event_id)
            .unwrap_or_else(|e| panic!("{draft:?} restated is refused: {e:?}"));
        assert_eq!(&again, draft);

        let event = draft.seal(Placement {
            seq: 1,
            prev_hash: GENESIS_HASH,
            position: 1,
            recorded_at: now,
            corrects: None,
        });
        let bytes = event.canonical_bytes();
        let reparsed: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("canonical bytes are not JSON: {e}"));
        assert_eq!(
            canonical_json(&reparsed),
            bytes,
            "canonical form is not stable"
        );
        let stored = event.unhashed_json();
        assert!(
            same(&reparsed, &stored),
            "the hashed bytes say something else than the stored envelope:\n{reparsed}\n{stored}"
        );
    }
}

fuzz_target!(|data: &[u8]| check(data));
