//! GS1 EPCIS 2.0 capture bodies (`POST /epcis/capture`): `autolog_app::parse_capture`
//! (UTF-8, JSON, `autolog_interop::epcis::parse_document`, each event's text as received),
//! and the CBV 2.0 pre-hash of any JSON as an event (`pre_hash`, `event_hash_id`). Never a
//! panic; a captured event's text re-reads as the event checked, and its hash id is the
//! hash of its pre-hash string.
#![no_main]

use autolog_app::parse_capture;
use autolog_interop::epcis::{event_hash_id, hash_id_of_pre_hash, parse_document, pre_hash};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(capture) = parse_capture(data) {
        assert_eq!(capture.events.len(), capture.document.events.len());
        assert_eq!(capture.document_sha256.len(), 64);
        for (stored, event) in capture.events.iter().zip(&capture.document.events) {
            let reread: Value =
                serde_json::from_str(&stored.raw_json).expect("stored text is JSON");
            assert_eq!(reread, event.raw);
            assert_eq!(stored.hash_id, event.hash_id);
        }
    }

    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let context = value.get("@context").cloned().unwrap_or(Value::Null);
    // Whatever the document rules say, the pre-hash of any event-like JSON never panics.
    let mut candidates = vec![&value];
    let list = value
        .pointer("/epcisBody/eventList")
        .or_else(|| value.pointer("/epcisBody/queryResults/resultsBody/eventList"));
    if let Some(Value::Array(events)) = list {
        candidates.extend(events.iter());
    }
    for event in candidates {
        if let Ok(text) = pre_hash(event, &context) {
            let id = event_hash_id(event, &context).expect("pre_hash succeeded");
            assert_eq!(id, hash_id_of_pre_hash(&text));
        }
    }
    if let Ok(document) = parse_document(&value) {
        for event in &document.events {
            assert!(
                event.hash_id.starts_with("ni:///sha-256;"),
                "{}",
                event.hash_id
            );
        }
    }
});
