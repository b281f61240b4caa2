//! Electronic signatures (21 CFR Part 11 / EU Annex 11) as the ledger holds them: who
//! signed, when, what it means, bound by a digest to the one record it signs.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::FieldError;

/// Event types that must be signed, and the payload field naming the person who signs.
pub const SIGNED_TYPES: &[(&str, &str)] = &[
    ("chain.released", "released_by"),
    ("chain.hold_released", "resolved_by"),
    ("deviation.closed", "closed_by"),
    ("chain.exceptional_release_requested", "requested_by"),
    ("unit.expiry_extended", "extended_by"),
    ("audit_trail.reviewed", "reviewed_by"),
];

/// The payload keys that hold signatures.
pub const SIGNATURE_KEYS: &[&str] = &["signature", "second_signature"];

/// The signatures a record needs, as (payload key, signer field): one for each signed
/// type, and a second one for an exceptional release (a second qualified person).
pub fn signatures_of(event_type: &str, data: &Value) -> Vec<(&'static str, &'static str)> {
    let mut needed = Vec::new();
    if let Some(field) = signer_field(event_type) {
        needed.push(("signature", field));
    }
    if event_type == "chain.released"
        && data.get("exceptional").and_then(Value::as_bool) == Some(true)
    {
        needed.push(("second_signature", "second_released_by"));
    }
    needed
}

/// The signer field of a signed event type.
pub fn signer_field(event_type: &str) -> Option<&'static str> {
    SIGNED_TYPES
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, f)| *f)
}

/// SHA-256 (hex) of the RFC 8785 canonical JSON of `{stream, type, data}`, the data
/// without its signature: a signature names the record it signs, so it cannot be copied.
pub fn record_digest(stream: &str, event_type: &str, data: &Value) -> String {
    let mut unsigned = data.clone();
    if let Some(map) = unsigned.as_object_mut() {
        for key in SIGNATURE_KEYS {
            map.remove(*key);
        }
    }
    let record = json!({"stream": stream, "type": event_type, "data": unsigned});
    let bytes = serde_json_canonicalizer::to_vec(&record).unwrap_or_default();
    hex_lower(&Sha256::digest(bytes))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The audit record of a signing secret set or reset (never the secret).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSecretSetV1 {
    pub person_id: String,
    pub set_by: String,
    /// SHA-256 (hex) of the stored Argon2id PHC string (salted: it reveals nothing of the
    /// secret), so that `verify` can tell a stored hash replaced outside Autolog.
    #[serde(default)]
    phc_sha256: Option<String>,
}

impl crate::ledger::event_type::Check for SigningSecretSetV1 {
    fn check(&self) -> Result<(), FieldError> {
        crate::ledger::envelope::check_code("person_id", &self.person_id)?;
        if let Some(digest) = &self.phc_sha256 {
            crate::access::check_sha256_hex("phc_sha256", digest)?;
        }
        crate::ledger::envelope::check_actor("set_by", &self.set_by)
    }
}

/// The fields of a signature manifestation as the ledger holds it.
pub const MANIFESTATION_FIELDS: &[&str] = &[
    "signer_id",
    "printed_name",
    "signed_at",
    "meaning",
    "stream",
    "record_digest",
];

/// Checks a signed event's manifestations (one per signature it needs): every field
/// present, the signer is the person the record names, it names this stream, and its
/// digest is this record's.
pub fn check_manifestation(stream: &str, event_type: &str, data: &Value) -> Result<(), FieldError> {
    for (key, signer_field) in signatures_of(event_type, data) {
        check_one(stream, event_type, data, key, signer_field)?;
    }
    Ok(())
}

fn check_one(
    stream: &str,
    event_type: &str,
    data: &Value,
    key: &str,
    signer_field: &str,
) -> Result<(), FieldError> {
    let Some(signature) = data.get(key).and_then(Value::as_object) else {
        return Err(FieldError::new(
            format!("body.data.{key}"),
            "(absent)",
            format!("{event_type} is an electronically signed record: sign it by re-authenticating (signer_id and secret)"),
        ));
    };
    for name in signature.keys() {
        if !MANIFESTATION_FIELDS.contains(&name.as_str()) {
            return Err(FieldError::new(
                format!("body.data.{key}.{name}"),
                "(given)",
                "is not part of a signature as recorded; a signer gives signer_id and secret, Autolog records the rest",
            ));
        }
    }
    let field = |name: &str| signature.get(name).and_then(Value::as_str).unwrap_or("");
    for name in MANIFESTATION_FIELDS {
        if field(name).is_empty() {
            return Err(FieldError::new(
                format!("body.data.{key}.{name}"),
                "(absent)",
                "is required in a signature as recorded (a signer gives signer_id and secret; Autolog records the rest)",
            ));
        }
    }
    let named = data.get(signer_field).and_then(Value::as_str).unwrap_or("");
    if field("signer_id") != named {
        return Err(FieldError::new(
            format!("body.data.{key}.signer_id"),
            field("signer_id"),
            format!("must be the person the record names as {signer_field} ({named})"),
        ));
    }
    crate::ledger::time::OccurredAt::parse(
        &format!("body.data.{key}.signed_at"),
        field("signed_at"),
    )?;
    if field("stream") != stream {
        return Err(FieldError::new(
            format!("body.data.{key}.stream"),
            field("stream"),
            format!("signs another record (stream {stream} here): a signature cannot be copied"),
        ));
    }
    let digest = record_digest(stream, event_type, data);
    if field("record_digest") != digest {
        return Err(FieldError::new(
            format!("body.data.{key}.record_digest"),
            field("record_digest"),
            "does not match this record: a signature cannot be copied to another record or survive a change",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(stream: &str, data: Value) -> Value {
        let mut d = data;
        let digest = record_digest(stream, "deviation.closed", &d);
        d["signature"] = json!({
            "signer_id": "P-0008", "printed_name": "Samuel Osei",
            "signed_at": "2026-11-20T10:00:00-05:00[America/New_York]",
            "meaning": "deviation DEV-1 closed: release_permitted",
            "stream": stream, "record_digest": digest,
        });
        d
    }

    #[test]
    fn a_signature_binds_to_its_record_and_signer() {
        let data = json!({"deviation_id": "DEV-1", "closed_by": "P-0008", "disposition": "release_permitted"});
        let good = signed("coi/A", data.clone());
        assert_eq!(
            check_manifestation("coi/A", "deviation.closed", &good),
            Ok(())
        );
        // Copied to another chain's record: refused.
        let e = check_manifestation("coi/B", "deviation.closed", &good).expect_err("copied");
        assert_eq!(e.field, "body.data.signature.stream");
        // The record changed after signing: refused.
        let mut changed = good.clone();
        changed["disposition"] = json!("rework");
        let e = check_manifestation("coi/A", "deviation.closed", &changed).expect_err("changed");
        assert_eq!(e.field, "body.data.signature.record_digest");
        // Someone else's signature: refused.
        let mut other = good.clone();
        other["closed_by"] = json!("P-0002");
        let e = check_manifestation("coi/A", "deviation.closed", &other).expect_err("signer");
        assert!(
            e.field.ends_with("signer_id") || e.field.ends_with("record_digest"),
            "{e}"
        );
        // A secret never stands in the ledger.
        let mut with_secret = good.clone();
        with_secret["signature"]["secret"] = json!("hunter2");
        let e = check_manifestation("coi/A", "deviation.closed", &with_secret).expect_err("secret");
        assert_eq!(e.field, "body.data.signature.secret");
        let e = check_manifestation("coi/A", "deviation.closed", &data).expect_err("unsigned");
        assert_eq!(e.field, "body.data.signature");
    }
}
