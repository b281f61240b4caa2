//! The published hash test vectors (docs/vectors/event-hashes.json): this code must seal
//! exactly these events, and the outside-verifier recipe in docs/hashing.md must reproduce
//! every hash from the JSON alone. `AUTOLOG_WRITE_VECTORS=1` rewrites the file.

use autolog_domain::ledger::envelope::canonical_json;
use autolog_domain::{Body, Event, Instant, OccurredAt, Source, Uuid, GENESIS_HASH};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/vectors/event-hashes.json"
);

fn occurred(text: &str) -> OccurredAt {
    OccurredAt::parse("occurred_at", text).expect("valid time")
}

fn seal(mut e: Event) -> Event {
    e.hash = e.compute_hash();
    e
}

fn events() -> Vec<(&'static str, Event)> {
    let first = seal(Event {
        event_id: Uuid::parse_str("019a7f3e-1c00-7000-8000-000000000001").expect("uuid"),
        stream: "site/S-PAR-01".into(),
        seq: 1,
        prev_hash: GENESIS_HASH,
        hash: GENESIS_HASH,
        position: 1,
        recorded_at: Instant::parse_rfc3339("t", "2026-03-02T08:00:05.123456Z").expect("t"),
        occurred_at: occurred("2026-03-02T09:00:00+01:00[Europe/Paris]"),
        actor: "person/P-0001".into(),
        site: None,
        source: Source {
            system: "qms-global".into(),
            source_event_id: "SITE-0001".into(),
        },
        reason: None,
        corrects: None,
        body: Body {
            event_type: "site.registered".into(),
            version: 1,
            data: json!({"site_id": "S-PAR-01", "name": "Paris apheresis center", "site_types": ["apheresis_center"], "time_zone": "Europe/Paris"}),
        },
    });
    let second = seal(Event {
        event_id: Uuid::parse_str("019a7f3e-1c00-7000-8000-000000000002").expect("uuid"),
        seq: 2,
        prev_hash: first.hash,
        position: 3,
        recorded_at: Instant::parse_rfc3339("t", "2026-06-01T07:00:00Z").expect("t"),
        occurred_at: occurred("2026-04-15T09:00:00+02:00[Europe/Paris]"),
        actor: "person/P-0003".into(),
        site: None,
        source: Source {
            system: "qms-global".into(),
            source_event_id: "SITE-0001-A1".into(),
        },
        reason: Some("late entry: accréditation « laboratoire » d'avril\nfiled in June".into()),
        body: Body {
            event_type: "site.amended".into(),
            version: 1,
            data: json!({"site_types": ["apheresis_center", "laboratory"]}),
        },
        ..first.clone()
    });
    let third = seal(Event {
        event_id: Uuid::parse_str("019a7f3e-1c00-7000-8000-000000000003").expect("uuid"),
        stream: "site/S-SEA-01".into(),
        seq: 2,
        prev_hash: [0xab; 32],
        position: 7,
        recorded_at: Instant::parse_rfc3339("t", "2026-06-02T16:30:00.5Z").expect("t"),
        occurred_at: occurred("2026-03-03T10:00:00-08:00[America/Los_Angeles]"),
        actor: "person/P-0002".into(),
        site: None,
        source: Source {
            system: "qms-global".into(),
            source_event_id: "SITE-0003-C1".into(),
        },
        reason: Some("site name misspelt at registration".into()),
        corrects: Some(Uuid::parse_str("019a7f3e-1c00-7000-8000-0000000000a3").expect("uuid")),
        body: Body {
            event_type: "site.registered".into(),
            version: 1,
            data: json!({"site_id": "S-SEA-01", "name": "Pacific treatment center", "site_types": ["treatment_center"], "time_zone": "America/Los_Angeles"}),
        },
        ..first.clone()
    });
    let numbers = seal(Event {
        event_id: Uuid::parse_str("019a7f3e-1c00-7000-8000-000000000004").expect("uuid"),
        stream: "coi/example".into(),
        position: 12,
        occurred_at: occurred("2026-10-25T01:30:00+00:00[Europe/London]"),
        source: Source { system: "lims-bos".into(), source_event_id: "R-\u{1F9EC}-1".into() },
        body: Body {
            event_type: "example.measured".into(),
            version: 2,
            data: serde_json::from_str(r#"{"zeta": [1.0, -0.0, 1e21, 1e-7, 123456789012, 0.1, -80.5], "alpha": {"b": "tab\there", "a": "\u0001"}, "é": true, "A": null}"#).expect("json"),
        },
        ..first.clone()
    });
    let at_site = seal(Event {
        event_id: Uuid::parse_str("019a7f3e-1c00-7000-8000-000000000005").expect("uuid"),
        stream: "site/S-BOS-01".into(),
        position: 13,
        occurred_at: occurred("2026-03-09T20:00:00+01:00[Europe/Paris]"),
        site: Some("S-BOS-01".into()),
        source: Source {
            system: "mes-bos".into(),
            source_event_id: "N-1".into(),
        },
        body: Body::new(
            "annotation.recorded",
            1,
            json!({"text": "freezer door alarm"}),
        ),
        ..first.clone()
    });
    vec![
        ("the first event of a stream: prev_hash is 64 zeros, no reason, no corrects", first),
        ("a later event of the same stream (a late entry): prev_hash links, reason with non-ASCII and a newline", second),
        ("a correction: corrects names the superseded event, with a reason; a negative UTC offset", third),
        ("JCS edge cases in the payload: number forms, key order by UTF-16 code units, escapes, null, non-BMP characters. Hashing does not depend on the type catalogue, so this type need not exist", numbers),
        ("an event naming its recording site (the optional `site` member, omitted when absent)", at_site),
    ]
}

fn build() -> Value {
    let vectors: Vec<Value> = events()
        .into_iter()
        .map(|(description, e)| {
            json!({
                "description": description,
                "event": e.to_json(),
                "canonical_bytes": String::from_utf8(e.canonical_bytes()).expect("utf8"),
                "sha256": hex::encode(e.hash),
            })
        })
        .collect();
    json!({
        "about": "Autolog event hash vectors. For each: take `event`, remove the `hash` member (and `superseded_by` and `occurred_at_display`, which the API adds on reads and which are not part of the event), serialise with RFC 8785 (JCS) to UTF-8 `canonical_bytes`, and SHA-256 them: the lowercase hex digest is `sha256` and equals `event.hash`. See docs/hashing.md.",
        "vectors": vectors,
    })
}

#[test]
fn published_vectors_match_this_code_and_the_outside_recipe() {
    let expected = build();
    if std::env::var_os("AUTOLOG_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&expected).expect("json") + "\n";
        std::fs::write(VECTORS, text).expect("write vectors");
    }
    let text = std::fs::read_to_string(VECTORS)
        .expect("docs/vectors/event-hashes.json is in the repository");
    let published: Value = serde_json::from_str(&text).expect("vectors are JSON");
    assert_eq!(
        published, expected,
        "this code seals the published vectors exactly"
    );

    // The outside verifier's recipe, from the JSON alone.
    for v in published["vectors"].as_array().expect("vectors") {
        let mut event = v["event"].clone();
        let hash = event
            .as_object_mut()
            .expect("object")
            .remove("hash")
            .expect("hash member");
        let canonical = canonical_json(&event);
        assert_eq!(
            std::str::from_utf8(&canonical).expect("utf8"),
            v["canonical_bytes"].as_str().expect("string")
        );
        let digest = hex::encode(Sha256::digest(&canonical));
        assert_eq!(digest, v["sha256"].as_str().expect("hex"));
        assert_eq!(Value::String(digest), hash);
    }
}

mod borrowed_and_built_bytes {
    //! The hash is computed from the event in place (`Event::canonical_bytes`); the API
    //! shows `Event::unhashed_json`. Both must give the same canonical bytes for any event:
    //! optional members present or not, any text (escapes, non-ASCII, astral characters),
    //! nested payloads with numbers.

    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9/._:-]{1,20}",
            any::<String>(),
            Just("quote \" backslash \\ tab \t nul \u{0} €𝄞".to_string()),
        ]
    }

    fn payload() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn event() -> impl Strategy<Value = Event> {
        (
            (
                text(),
                any::<u64>(),
                any::<u64>(),
                any::<u128>(),
                any::<[u8; 32]>(),
            ),
            (
                proptest::option::of(text()),
                proptest::option::of(text()),
                proptest::option::of(any::<u128>()),
            ),
            (text(), text(), text(), text(), any::<u32>(), payload()),
            0i64..4_000_000_000_000_000,
        )
            .prop_map(
                |(
                    (stream, seq, position, id, prev_hash),
                    (site, reason, corrects),
                    (actor, system, source_event_id, event_type, version, data),
                    micros,
                )| {
                    let at = Instant::from_micros(micros).expect("in range");
                    Event {
                        event_id: Uuid::from_u128(id),
                        stream,
                        seq,
                        prev_hash,
                        hash: GENESIS_HASH,
                        position,
                        recorded_at: at,
                        occurred_at: occurred("2026-03-02T09:00:00+01:00[Europe/Paris]"),
                        actor,
                        site,
                        source: Source {
                            system,
                            source_event_id,
                        },
                        reason,
                        corrects: corrects.map(Uuid::from_u128),
                        body: Body {
                            event_type,
                            version,
                            data,
                        },
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn the_hashed_bytes_are_those_of_the_shown_envelope(e in event()) {
            prop_assert_eq!(e.canonical_bytes(), canonical_json(&e.unhashed_json()));
        }
    }
}
