//! Bitemporal reads: which events of a stream count for "the world at valid_at, as we
//! knew it at known_at". The fold of those events by type is `crate::catalogue::stream_state`.

use std::collections::HashMap;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ledger::envelope::Event;
use crate::ledger::time::Instant;

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
