//! The inspection dossier's proof part, checked with nothing but the file and the public
//! key: every event's hash recomputed from its JSON (docs/hashing.md), each stream's hash
//! chain from its first event, each event's RFC 9162 inclusion proof against the one
//! checkpoint the dossier carries, and that checkpoint's Ed25519 signature. The first
//! thing that is wrong is named.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ledger::checkpoint::{checkpoint_from_json, key_id};
use crate::ledger::envelope::canonical_json;
use crate::ledger::merkle::{leaf_hash, verify_inclusion, Hash};

/// The dossier format this build writes and reads.
pub const FORMAT: &str = "autolog-dossier/1";

/// What a dossier that verifies proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub events: usize,
    pub streams: usize,
    pub tree_size: u64,
    pub key_id: String,
}

/// Checks a dossier (its JSON) against `key`.
pub fn verify(dossier: &Value, key: &VerifyingKey) -> Result<Verified, String> {
    if dossier.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(format!("format: this is not an {FORMAT} document"));
    }
    let checkpoint = dossier.get("checkpoint").ok_or("checkpoint: missing")?;
    let checkpoint = checkpoint_from_json(checkpoint).map_err(|e| format!("checkpoint: {e}"))?;
    checkpoint
        .verify_signature(key)
        .map_err(|e| format!("checkpoint: {e}"))?;
    let events = dossier
        .get("events")
        .and_then(Value::as_array)
        .ok_or("events: missing or not a list")?;
    let mut last_of_stream: BTreeMap<String, (u64, Hash)> = BTreeMap::new();
    for (i, entry) in events.iter().enumerate() {
        let at = |what: &str| format!("events[{i}]: {what}");
        let event = entry.get("event").ok_or_else(|| at("no event"))?;
        let hash = recorded_hash(event).map_err(|e| at(&e))?;
        chain_link(event, &hash, &mut last_of_stream).map_err(|e| at(&e))?;
        let position = event.get("position").and_then(Value::as_u64).unwrap_or(0);
        let path = hashes(entry.get("inclusion_path")).map_err(|e| at(&e))?;
        let index = position.checked_sub(1).ok_or_else(|| at("position 0"))?;
        verify_inclusion(
            &leaf_hash(&hash),
            index,
            checkpoint.tree_size,
            &path,
            &checkpoint.root,
        )
        .map_err(|e| {
            at(&format!(
                "inclusion proof against the checkpoint (size {}): {e}",
                checkpoint.tree_size
            ))
        })?;
    }
    Ok(Verified {
        events: events.len(),
        streams: last_of_stream.len(),
        tree_size: checkpoint.tree_size,
        key_id: key_id(key),
    })
}

/// The event's hash recomputed from its JSON, which must equal the one it carries.
fn recorded_hash(event: &Value) -> Result<Hash, String> {
    let mut unhashed = event.clone();
    let Some(fields) = unhashed.as_object_mut() else {
        return Err("the event is not a JSON object".into());
    };
    let given = fields
        .remove("hash")
        .and_then(|h| h.as_str().map(str::to_string))
        .ok_or("no hash")?;
    for added_by_reads in ["superseded_by", "occurred_at_display"] {
        fields.remove(added_by_reads);
    }
    let computed: Hash = Sha256::digest(canonical_json(&unhashed)).into();
    if hex::encode(computed) != given {
        return Err(format!(
            "hash {given} is not the SHA-256 of its canonical JSON ({}): the event was altered",
            hex::encode(computed)
        ));
    }
    Ok(computed)
}

/// The event follows the previous one of its stream: the next `seq`, whose hash is its
/// `prev_hash` (the first one's is all zeros).
fn chain_link(
    event: &Value,
    hash: &Hash,
    last: &mut BTreeMap<String, (u64, Hash)>,
) -> Result<(), String> {
    let stream = event
        .get("stream")
        .and_then(Value::as_str)
        .ok_or("no stream")?;
    let seq = event.get("seq").and_then(Value::as_u64).ok_or("no seq")?;
    let prev = event
        .get("prev_hash")
        .and_then(Value::as_str)
        .ok_or("no prev_hash")?;
    let (expected_seq, expected_prev) = match last.get(stream) {
        Some((s, h)) => (s + 1, hex::encode(h)),
        None => (1, hex::encode([0u8; 32])),
    };
    if seq != expected_seq {
        return Err(format!("stream {stream}: seq {seq} where {expected_seq} was due (an event is missing or out of order)"));
    }
    if prev != expected_prev {
        return Err(format!("stream {stream} seq {seq}: prev_hash {prev} is not the previous event's hash {expected_prev}"));
    }
    last.insert(stream.to_string(), (seq, *hash));
    Ok(())
}

fn hashes(list: Option<&Value>) -> Result<Vec<Hash>, String> {
    let list = list.and_then(Value::as_array).ok_or("no inclusion_path")?;
    list.iter()
        .map(|h| {
            let bytes = hex::decode(h.as_str().unwrap_or_default())
                .map_err(|e| format!("inclusion_path: not hex ({e})"))?;
            <Hash>::try_from(bytes.as_slice())
                .map_err(|_| "inclusion_path: a hash is 32 bytes".to_string())
        })
        .collect()
}
