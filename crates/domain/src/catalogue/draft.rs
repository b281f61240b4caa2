//! Parsing one append request (outside JSON) into an [`EventDraft`]: the envelope's
//! fields, and the body against the catalogue. Every refusal names field, value and rule.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::catalogue as event_type;
use crate::error::{show, FieldError};
use crate::ledger::envelope::{
    check_actor, check_code, check_stream_name, check_text, is_code_char, Body, CorrectionTarget,
    EventDraft, Source,
};
use crate::ledger::time::OccurredAt;

const EVENT_FIELDS: &[&str] = &[
    "stream",
    "occurred_at",
    "actor",
    "site",
    "source",
    "reason",
    "corrects",
    "body",
];
const LEDGER_FIELDS: &[&str] = &[
    "event_id",
    "seq",
    "prev_hash",
    "hash",
    "position",
    "recorded_at",
];

/// Parses one append request (a JSON object) into a draft. Every refusal names the
/// field, the value and the rule; `event_id` is the id the ledger will give the event.
pub fn parse_draft(value: &Value, event_id: Uuid) -> Result<EventDraft, FieldError> {
    let Value::Object(obj) = value else {
        return Err(FieldError::new(
            "",
            show(value),
            "an event must be a JSON object",
        ));
    };
    for key in obj.keys() {
        if LEDGER_FIELDS.contains(&key.as_str()) {
            return Err(FieldError::new(
                key,
                show(&obj[key]),
                "is assigned by the ledger and must not be sent",
            ));
        }
        if !EVENT_FIELDS.contains(&key.as_str()) {
            return Err(FieldError::new(
                key,
                show(&obj[key]),
                format!(
                    "is not a field of an event; fields are {}",
                    EVENT_FIELDS.join(", ")
                ),
            ));
        }
    }
    let stream = required_str(obj, "stream")?;
    check_stream_name("stream", stream)?;
    let occurred_text = required_str(obj, "occurred_at")?;
    let occurred_at = OccurredAt::parse("occurred_at", occurred_text)?;
    let actor = required_str(obj, "actor")?;
    check_actor("actor", actor)?;
    let site = optional_str(obj, "site")?;
    if let Some(site) = site {
        check_code("site", site)?;
    }
    let source = parse_source(obj.get("source"))?;
    let reason = optional_str(obj, "reason")?;
    if let Some(reason) = reason {
        check_text("reason", reason, 2000)?;
    }
    let corrects = parse_correction_target(obj.get("corrects"))?;
    if corrects.is_some() && reason.is_none() {
        return Err(FieldError::new(
            "reason",
            "(absent)",
            "a correction must give the reason for the correction",
        ));
    }
    let body = parse_body(obj.get("body"))?;
    Ok(EventDraft {
        event_id,
        stream: stream.to_string(),
        occurred_at,
        actor: actor.to_string(),
        site: site.map(str::to_string),
        source,
        reason: reason.map(str::to_string),
        corrects,
        body,
    })
}

fn required_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, FieldError> {
    match obj.get(key) {
        None => Err(FieldError::required(key)),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(FieldError::new(key, show(other), "must be a string")),
    }
}

fn optional_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, FieldError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(FieldError::new(key, show(other), "must be a string")),
    }
}

fn parse_correction_target(value: Option<&Value>) -> Result<Option<CorrectionTarget>, FieldError> {
    const RULE: &str = "must be the event_id (a UUID) of the corrected event, or its source as {\"system\", \"source_event_id\"}";
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Uuid::parse_str(text)
            .map(|id| Some(CorrectionTarget::EventId(id)))
            .map_err(|_| FieldError::new("corrects", text, RULE)),
        Some(Value::Object(_)) => {
            parse_source_at("corrects", value).map(|s| Some(CorrectionTarget::Source(s)))
        }
        Some(other) => Err(FieldError::new("corrects", show(other), RULE)),
    }
}

fn parse_source(value: Option<&Value>) -> Result<Source, FieldError> {
    parse_source_at("source", value)
}

/// Parses a `{system, source_event_id}` object found at `field`.
fn parse_source_at(field: &str, value: Option<&Value>) -> Result<Source, FieldError> {
    let obj = match value {
        None => return Err(FieldError::required(field)),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(FieldError::new(
                field,
                show(other),
                "must be an object with system and source_event_id",
            ))
        }
    };
    for key in obj.keys() {
        if key != "system" && key != "source_event_id" {
            return Err(FieldError::new(
                format!("{field}.{key}"),
                show(&obj[key]),
                format!("is not a field of {field}; fields are system, source_event_id"),
            ));
        }
    }
    let system = required_str(obj, "system").map_err(|e| e.under(field))?;
    if system.is_empty() || system.len() > 100 || !system.chars().all(is_code_char) {
        return Err(FieldError::new(
            format!("{field}.system"),
            system,
            "must be 1-100 letters, digits or . _ : - (the source system's id)",
        ));
    }
    let source_event_id = required_str(obj, "source_event_id").map_err(|e| e.under(field))?;
    // An identifier, never free text: it is hashed into the ledger for good.
    let id_ok = !source_event_id.is_empty()
        && source_event_id.len() <= 200
        && source_event_id
            .chars()
            .all(|c| is_code_char(c) || c == '/' || c == '#');
    if !id_ok {
        return Err(FieldError::new(
            format!("{field}.source_event_id"),
            source_event_id,
            "must be the sender's id for the fact: 1-200 letters, digits or . _ : - * / # (no spaces or free text)",
        ));
    }
    Ok(Source {
        system: system.to_string(),
        source_event_id: source_event_id.to_string(),
    })
}

fn parse_body(value: Option<&Value>) -> Result<Body, FieldError> {
    let obj = match value {
        None => return Err(FieldError::required("body")),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(FieldError::new(
                "body",
                show(other),
                "must be an object with type, version and data",
            ))
        }
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "type" | "version" | "data") {
            return Err(FieldError::new(
                format!("body.{key}"),
                show(&obj[key]),
                "is not a field of body; fields are type, version, data",
            ));
        }
    }
    let type_name = required_str(obj, "type").map_err(|e| e.under("body"))?;
    let version = match obj.get("version") {
        None => return Err(FieldError::required("body.version")),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                FieldError::new("body.version", show(v), "must be a positive whole number")
            })?,
    };
    let event_type = event_type::lookup(type_name, version).map_err(|e| e.under("body"))?;
    if event_type::RECORDED_BY_AUTOLOG.contains(&type_name) {
        return Err(FieldError::new(
            "body.type",
            type_name,
            "is recorded by Autolog itself and cannot be sent",
        ));
    }
    let data = match obj.get("data") {
        None => return Err(FieldError::required("body.data")),
        Some(d) => d,
    };
    event_type
        .validate(data)
        .map_err(|e| e.under("body.data"))?;
    check_values("body.data", data)?;
    Ok(Body {
        event_type: type_name.to_string(),
        version,
        data: data.clone(),
    })
}

/// The largest integer every JSON reader holds exactly (2^53 - 1, I-JSON, RFC 7493).
const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// Refuses an integer that an IEEE 754 double cannot hold exactly. The canonical bytes
/// (RFC 8785) write every number as a double: 9007199254740993 would be hashed as
/// 9007199254740992, and the stored value could then be changed without changing the hash.
/// What every payload value must be, whatever its type's schema: whole numbers within
/// I-JSON's exact range, and text (values and names) without U+0000, which PostgreSQL's
/// JSON cannot hold and no record needs.
fn check_values(field: &str, value: &Value) -> Result<(), FieldError> {
    match value {
        Value::String(text) if text.contains('\0') => Err(FieldError::new(
            field,
            text.replace('\0', "<U+0000>"),
            "must not contain the NUL character (U+0000)",
        )),
        Value::Number(n) => {
            let exact = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => u <= MAX_EXACT_INTEGER,
                (None, Some(i)) => i.unsigned_abs() <= MAX_EXACT_INTEGER,
                (None, None) => true, // a double already
            };
            if exact {
                Ok(())
            } else {
                Err(FieldError::new(
                    field,
                    n.to_string(),
                    format!("a whole number must lie between -{MAX_EXACT_INTEGER} and {MAX_EXACT_INTEGER} (I-JSON: it is hashed as an IEEE 754 double); send a larger one as text"),
                ))
            }
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_values(&format!("{field}[{i}]"), v)),
        Value::Object(fields) => fields.iter().try_for_each(|(k, v)| {
            if k.contains('\0') {
                return Err(FieldError::new(
                    format!("{field}.{}", k.replace('\0', "<U+0000>")),
                    "(a field name)",
                    "a field name must not contain the NUL character (U+0000)",
                ));
            }
            check_values(&format!("{field}.{k}"), v)
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::envelope::{canonical_json, Placement, GENESIS_HASH};
    use crate::ledger::time::Instant;
    use serde_json::json;

    fn request() -> Value {
        json!({
            "stream": "site/S-PAR-01",
            "occurred_at": "2026-03-01T09:30:00+01:00[Europe/Paris]",
            "actor": "person/P-0001",
            "source": {"system": "qms-eu", "source_event_id": "site-1"},
            "body": {"type": "site.registered", "version": 1,
                     "data": {"site_id": "S-PAR-01", "name": "Paris apheresis",
                              "site_types": ["apheresis_center"], "time_zone": "Europe/Paris"}}
        })
    }

    fn field_error(mut req: Value, edit: impl FnOnce(&mut Map<String, Value>)) -> FieldError {
        if let Value::Object(o) = &mut req {
            edit(o);
        }
        parse_draft(&req, Uuid::nil()).expect_err("must be refused")
    }

    #[test]
    fn integers_a_double_cannot_hold_are_refused() {
        // Found by fuzzing: 2^53 + 1 was accepted, stored as sent and hashed as 2^53.
        let mut req = json!({
            "stream": "site/S-PAR-01",
            "occurred_at": "2026-03-01T09:30:00+01:00[Europe/Paris]",
            "actor": "person/P-0001",
            "source": {"system": "qms-eu", "source_event_id": "note-1"},
            "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "x"}}
        });
        let draft = parse_draft(&req, Uuid::nil()).expect("valid");
        assert_eq!(draft.body.data, json!({"text": "x"}));
        for (big, ok) in [
            (json!(9_007_199_254_740_991u64), true),
            (json!(-9_007_199_254_740_991i64), true),
            (json!(1.5e300), true),
            (json!(9_007_199_254_740_993u64), false),
            (json!(-9_007_199_254_740_993i64), false),
            (json!(u64::MAX), false),
        ] {
            let mut data = Map::new();
            data.insert("n".into(), json!([big.clone()]));
            assert_eq!(
                check_values("body.data", &Value::Object(data)).is_ok(),
                ok,
                "{big}"
            );
        }
        let result = |n: Value| {
            json!({"type": "batch.test_result_recorded", "version": 1, "data": {
                "batch_id": "B-1", "test_code": "VIABILITY", "method": "flow cytometry",
                "result": n, "result_unit": "%", "site_id": "S-FRA-01", "analyst_id": "P-0003"}})
        };
        req["stream"] = json!("coi/CHA999926000001*");
        req["body"] = result(json!(9_007_199_254_740_991u64));
        parse_draft(&req, Uuid::nil()).expect("the largest exact integer");
        req["body"] = result(json!(9_007_199_254_740_993u64));
        let e = parse_draft(&req, Uuid::nil()).expect_err("2^53 + 1");
        assert_eq!(e.field, "body.data.result");
        assert_eq!(e.value, "9007199254740993");
    }

    #[test]
    fn the_nul_character_is_refused_in_payload_text_and_names() {
        let mut req = json!({
            "stream": "site/S-PAR-01",
            "occurred_at": "2026-03-01T09:30:00+01:00[Europe/Paris]",
            "actor": "person/P-0001",
            "source": {"system": "qms-eu", "source_event_id": "note-1"},
            "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "a\u{0}b"}}
        });
        let e = parse_draft(&req, Uuid::nil()).expect_err("NUL in a value");
        assert_eq!(e.field, "body.data.text");
        assert_eq!(e.value, "a<U+0000>b");
        assert!(e.rule.contains("U+0000"), "{}", e.rule);
        let e = check_values("body.data", &json!({"text": "ok", "tags": ["x", "y\u{0}"]}))
            .expect_err("NUL in a list");
        assert_eq!(e.field, "body.data.tags[1]");
        let mut data = Map::new();
        data.insert("te\0xt".into(), json!("x"));
        let e = check_values("body.data", &Value::Object(data)).expect_err("NUL in a name");
        assert_eq!(e.field, "body.data.te<U+0000>xt");
        // Other control characters are text like any other.
        req["body"]["data"] = json!({"text": "line 1\nline 2\ttab"});
        parse_draft(&req, Uuid::nil()).expect("a newline and a tab are fine");
    }

    #[test]
    fn a_valid_request_parses() {
        let d = parse_draft(&request(), Uuid::nil()).expect("valid");
        assert_eq!(d.stream, "site/S-PAR-01");
        assert_eq!(d.occurred_at.zone, "Europe/Paris");
        assert_eq!(d.body.event_type, "site.registered");
    }

    #[test]
    fn each_bad_field_is_named() {
        type Edit = Box<dyn FnOnce(&mut Map<String, Value>)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "stream",
                Box::new(|o| {
                    o.remove("stream");
                }),
            ),
            (
                "stream",
                Box::new(|o| {
                    o.insert("stream".into(), json!("a//b"));
                }),
            ),
            (
                "occurred_at",
                Box::new(|o| {
                    o.insert("occurred_at".into(), json!("2026-03-01T09:30:00"));
                }),
            ),
            (
                "actor",
                Box::new(|o| {
                    o.insert("actor".into(), json!("Jane Doe"));
                }),
            ),
            (
                "source.system",
                Box::new(|o| {
                    o.insert(
                        "source".into(),
                        json!({"system": "", "source_event_id": "x"}),
                    );
                }),
            ),
            (
                "source.source_event_id",
                Box::new(|o| {
                    o.insert("source".into(), json!({"system": "a"}));
                }),
            ),
            (
                "colour",
                Box::new(|o| {
                    o.insert("colour".into(), json!("red"));
                }),
            ),
            (
                "hash",
                Box::new(|o| {
                    o.insert("hash".into(), json!("00"));
                }),
            ),
            (
                "body.type",
                Box::new(|o| {
                    o["body"]["type"] = json!("site.demolished");
                }),
            ),
            (
                "body.version",
                Box::new(|o| {
                    o["body"]["version"] = json!(0);
                }),
            ),
            (
                "body.data.time_zone",
                Box::new(|o| {
                    o["body"]["data"]["time_zone"] = json!("CET+1");
                }),
            ),
            (
                "reason",
                Box::new(|o| {
                    o.insert("corrects".into(), json!(Uuid::nil().to_string()));
                }),
            ),
            (
                "corrects",
                Box::new(|o| {
                    o.insert("corrects".into(), json!("yesterday"));
                    o.insert("reason".into(), json!("typo"));
                }),
            ),
            (
                "corrects.source_event_id",
                Box::new(|o| {
                    o.insert("corrects".into(), json!({"system": "qms"}));
                    o.insert("reason".into(), json!("typo"));
                }),
            ),
        ];
        for (field, edit) in cases {
            let e = field_error(request(), edit);
            assert_eq!(e.field, field, "{e}");
            assert!(!e.rule.is_empty());
        }
    }

    #[test]
    fn hash_covers_every_field_but_itself() {
        let draft = parse_draft(&request(), Uuid::nil()).expect("valid");
        let place = Placement {
            seq: 1,
            prev_hash: GENESIS_HASH,
            position: 1,
            recorded_at: Instant::from_micros(1_772_353_800_000_000).expect("valid"),
            corrects: None,
        };
        let event = draft.seal(place);
        assert_eq!(event.hash, event.compute_hash());
        let mut other = event.clone();
        other.prev_hash[0] = 1;
        assert_ne!(other.compute_hash(), event.hash, "prev_hash is covered");
        let mut other = event.clone();
        other.position = 2;
        assert_ne!(other.compute_hash(), event.hash, "position is covered");
        let mut other = event.clone();
        other.reason = Some("x".into());
        assert_ne!(other.compute_hash(), event.hash, "reason is covered");
        let mut other = event.clone();
        other.hash = [9; 32];
        assert_eq!(
            other.compute_hash(),
            event.hash,
            "hash itself is not covered"
        );
    }

    #[test]
    fn canonical_bytes_sort_keys_and_have_no_whitespace() {
        let v = json!({"b": 1, "a": {"d": 2.50, "c": "é"}});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).expect("utf8"),
            r#"{"a":{"c":"é","d":2.5},"b":1}"#
        );
    }
}
