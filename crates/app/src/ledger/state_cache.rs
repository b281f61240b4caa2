//! Current states of reference records (sites, people, source systems, process steps,
//! products and their process definitions, equipment, label templates, verification
//! policies), each kept with the head of the stream it was folded from: served again while
//! the stream's head (its last sequence number and hash) is unchanged, folded again from
//! the store once it moved. The head is read from the store on every use, so a record
//! changed by another server sharing the database is never served stale.

use std::collections::HashMap;
use std::sync::Mutex;

use autolog_domain::ledger::merkle::Hash;
use autolog_domain::Event;
use autolog_store::StreamHead;
use serde_json::Value;

/// States kept at most; the cache starts again empty when it would hold more (a network's
/// registries are a few thousand records).
const CAPACITY: usize = 20_000;

/// The streams whose states are cached: registry records that change seldom. Chains,
/// lots, units, DINs, batches, alerts and patients grow with use and are read afresh.
const CACHED_PREFIXES: &[&str] = &[
    "site/",
    "person/",
    "source-system/",
    "step/",
    "product/",
    "equipment/",
    "label-template/",
    "verification-policy/",
];

/// Whether `stream`'s current state is cached.
pub(crate) fn cacheable(stream: &str) -> bool {
    CACHED_PREFIXES.iter().any(|p| stream.starts_with(p))
}

/// A state and the head it was folded at.
#[derive(Debug)]
struct Cached {
    seq: u64,
    hash: Hash,
    state: Value,
}

/// The cache: one entry per stream.
#[derive(Debug, Default)]
pub(crate) struct StateCache {
    entries: Mutex<HashMap<String, Cached>>,
}

impl StateCache {
    /// `stream`'s state, if it was folded at `head`.
    pub(crate) fn get(&self, stream: &str, head: &StreamHead) -> Option<Value> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let cached = entries.get(stream)?;
        (cached.seq == head.last_seq && cached.hash == head.last_hash).then(|| cached.state.clone())
    }

    /// Keeps `state`, folded from `events` (the whole stream as read), under the head of
    /// its last event: the events read may be newer than a head read before them, and a
    /// state is only ever served for the head it was folded at.
    pub(crate) fn keep(&self, stream: &str, events: &[Event], state: &Value) {
        let Some(last) = events.last() else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(stream) {
            entries.clear();
        }
        let cached = Cached {
            seq: last.seq,
            hash: last.hash,
            state: state.clone(),
        };
        entries.insert(stream.to_string(), cached);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autolog_domain::{Body, OccurredAt, Source, Uuid};
    use serde_json::json;

    fn event(stream: &str, seq: u64, hash: u8) -> Event {
        Event {
            event_id: Uuid::nil(),
            stream: stream.into(),
            seq,
            prev_hash: [0; 32],
            hash: [hash; 32],
            position: seq,
            recorded_at: autolog_domain::Instant::from_micros(0).expect("epoch"),
            occurred_at: OccurredAt::from_parts(0, "UTC", 0).expect("epoch"),
            actor: "person/P-1".into(),
            site: None,
            source: Source {
                system: "s".into(),
                source_event_id: format!("{seq}"),
            },
            reason: None,
            corrects: None,
            body: Body::new("site.registered", 1, json!({})),
        }
    }

    fn head(seq: u64, hash: u8) -> StreamHead {
        StreamHead {
            last_seq: seq,
            last_hash: [hash; 32],
        }
    }

    #[test]
    fn a_state_is_served_only_at_the_head_it_was_folded_at() {
        let cache = StateCache::default();
        let events = [event("site/S-1", 1, 1), event("site/S-1", 2, 2)];
        cache.keep("site/S-1", &events, &json!({"name": "Paris"}));
        assert_eq!(
            cache.get("site/S-1", &head(2, 2)),
            Some(json!({"name": "Paris"}))
        );
        assert_eq!(
            cache.get("site/S-1", &head(3, 3)),
            None,
            "the stream moved on"
        );
        assert_eq!(cache.get("site/S-1", &head(2, 9)), None, "another history");
        assert_eq!(cache.get("site/S-2", &head(2, 2)), None);
        cache.keep("site/S-3", &[], &json!({}));
        assert_eq!(
            cache.get("site/S-3", &head(0, 0)),
            None,
            "nothing kept for no event"
        );
    }

    #[test]
    fn only_registry_records_are_cached() {
        for stream in ["site/S-1", "product/CART-19", "step/COLLECT", "person/P-1"] {
            assert!(cacheable(stream), "{stream}");
        }
        for stream in [
            "coi/CHA999926000001K",
            "lot/LV/1",
            "unit/X",
            "alert/AL-1",
            "din/A",
        ] {
            assert!(!cacheable(stream), "{stream}");
        }
    }
}
