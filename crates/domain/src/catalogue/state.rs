//! A stream's state at (valid_at, known_at): its effective events folded by each type's
//! [`Fold`] rule (reference-data records and generic stream reads).

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::catalogue as event_type;
use crate::ledger::bitemporal::{effective_events, merge_patch};
use crate::ledger::envelope::Event;
use crate::ledger::event_type::Fold;
use crate::ledger::time::Instant;

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

impl serde::Serialize for StreamState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            stream: &'a str,
            valid_at: Instant,
            known_at: Instant,
            event_count: usize,
            events: &'a [Uuid],
            state: &'a Value,
        }
        Shown {
            stream: &self.stream,
            valid_at: self.valid_at,
            known_at: self.known_at,
            event_count: self.events.len(),
            events: &self.events,
            state: &self.state,
        }
        .serialize(serializer)
    }
}

/// A registry record as it stood at `at` in valid time, as known now: its registration
/// (and the corrections restating it) counts from the start of time, since it names the
/// record whenever it was imported; amendments, status changes and calibrations count from
/// their own time. How a late entry is judged (a lot recalled after a consumption's time
/// was released then), before the append and again under the ledger lock.
pub fn record_at(stream: &str, events: &[Event], at: Instant) -> Value {
    let registration = events
        .iter()
        .find(|e| e.seq == 1)
        .map(|e| e.body.event_type.as_str());
    let clamped: Vec<Event> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if Some(e.body.event_type.as_str()) == registration {
                e.occurred_at.instant = Instant::MIN;
            }
            e
        })
        .collect();
    stream_state(stream, &clamped, at, Instant::MAX).state
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::envelope::{Body, Source, GENESIS_HASH};
    use crate::ledger::time::OccurredAt;

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
            body: Body::new("site.amended", 1, data),
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
