//! Bitemporal reads: which events of a stream count for "the world at valid_at, as we
//! knew it at known_at", and the fold of those events into the stream's state.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::envelope::Event;
use crate::event_type::{self, Fold};
use crate::time::Instant;

/// For each superseded event, the correction that superseded it, counting only
/// corrections recorded at or before `known_at`.
pub fn superseded_by(events: &[Event], known_at: Instant) -> HashMap<Uuid, Uuid> {
    events
        .iter()
        .filter(|e| e.recorded_at <= known_at)
        .filter_map(|e| e.corrects.map(|target| (target, e.event_id)))
        .collect()
}

/// The events that hold at `valid_at` as known at `known_at`: recorded by `known_at`,
/// occurred by `valid_at`, and not superseded by a correction known by `known_at`.
/// Ordered by valid time (`occurred_at`), ties broken by ledger position, so a late
/// event takes its place in valid time.
pub fn effective_events(events: &[Event], valid_at: Instant, known_at: Instant) -> Vec<&Event> {
    let superseded = superseded_by(events, known_at);
    let mut chosen: Vec<&Event> = events
        .iter()
        .filter(|e| e.recorded_at <= known_at)
        .filter(|e| e.occurred_at.instant <= valid_at)
        .filter(|e| !superseded.contains_key(&e.event_id))
        .collect();
    chosen.sort_by_key(|e| (e.occurred_at.instant, e.position));
    chosen
}

/// The state of a stream at (valid_at, known_at): the fold of its effective events.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    pub stream: String,
    pub valid_at: Instant,
    pub known_at: Instant,
    /// Effective event ids, in valid-time order.
    pub events: Vec<Uuid>,
    pub state: Value,
}

impl StreamState {
    pub fn to_json(&self) -> Value {
        json!({
            "stream": self.stream,
            "valid_at": self.valid_at.to_string(),
            "known_at": self.known_at.to_string(),
            "event_count": self.events.len(),
            "events": self.events.iter().map(Uuid::to_string).collect::<Vec<_>>(),
            "state": self.state,
        })
    }
}

pub fn stream_state(
    stream: &str,
    events: &[Event],
    valid_at: Instant,
    known_at: Instant,
) -> StreamState {
    let effective = effective_events(events, valid_at, known_at);
    let mut state = Value::Object(Map::new());
    for event in &effective {
        let fold = event_type::lookup(&event.body.event_type, event.body.version)
            .map(|t| t.fold)
            .unwrap_or(Fold::Merge);
        match fold {
            Fold::Merge => merge_patch(&mut state, &event.body.data),
            Fold::AppendTo(key) => {
                if let Value::Object(o) = &mut state {
                    let entry = o.entry(key.to_string()).or_insert_with(|| json!([]));
                    if let Value::Array(list) = entry {
                        list.push(event.body.data.clone());
                    }
                }
            }
        }
    }
    StreamState {
        stream: stream.to_string(),
        valid_at,
        known_at,
        events: effective.iter().map(|e| e.event_id).collect(),
        state,
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_obj) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (key, value) in patch_obj {
            if value.is_null() {
                t.remove(key);
            } else {
                merge_patch(t.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Body, Source, GENESIS_HASH};
    use crate::time::OccurredAt;

    fn at(micros: i64) -> Instant {
        Instant::from_micros(micros).expect("valid")
    }

    fn event(
        position: u64,
        occurred: i64,
        recorded: i64,
        data: Value,
        corrects: Option<Uuid>,
    ) -> Event {
        Event {
            event_id: Uuid::from_u128(position as u128),
            stream: "site/S".into(),
            seq: position,
            prev_hash: GENESIS_HASH,
            hash: GENESIS_HASH,
            position,
            recorded_at: at(recorded),
            occurred_at: OccurredAt::from_parts(occurred, "Europe/Paris", 3600).expect("valid"),
            actor: "person/P".into(),
            site: None,
            source: Source {
                system: "s".into(),
                source_event_id: position.to_string(),
            },
            reason: corrects.map(|_| "typo".into()),
            corrects,
            body: Body {
                event_type: "site.amended".into(),
                version: 1,
                data,
            },
        }
    }

    #[test]
    fn late_events_take_their_place_in_valid_time() {
        let events = vec![
            event(1, 100, 1000, json!({"name": "A"}), None),
            event(2, 300, 1001, json!({"name": "C"}), None),
            // recorded last, happened in between
            event(3, 200, 1002, json!({"name": "B"}), None),
        ];
        let s = stream_state("site/S", &events, at(250), at(2000));
        assert_eq!(s.state["name"], "B");
        let s = stream_state("site/S", &events, at(250), at(1001));
        assert_eq!(s.state["name"], "A", "before the late event was known");
        let s = stream_state("site/S", &events, at(400), at(2000));
        assert_eq!(s.state["name"], "C");
    }

    #[test]
    fn a_correction_changes_what_we_know_not_what_we_knew() {
        let events = vec![
            event(1, 100, 1000, json!({"name": "Paris Nrod"}), None),
            event(
                2,
                100,
                2000,
                json!({"name": "Paris Nord"}),
                Some(Uuid::from_u128(1)),
            ),
        ];
        let before = stream_state("site/S", &events, at(500), at(1500));
        assert_eq!(before.state["name"], "Paris Nrod");
        let after = stream_state("site/S", &events, at(500), at(2500));
        assert_eq!(after.state["name"], "Paris Nord");
        assert_eq!(after.events, vec![Uuid::from_u128(2)]);
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }
}
