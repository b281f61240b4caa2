//! The event envelope: parsing an append request into a draft, sealing a draft into a
//! ledger event, and the canonical bytes (RFC 8785) whose SHA-256 is the event's hash.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::FieldError;
use crate::ledger::jcs::{self, ObjectWriter};
use crate::ledger::merkle::Hash;
use crate::ledger::time::{Instant, OccurredAt};

/// `prev_hash` of the first event of every stream.
pub const GENESIS_HASH: Hash = [0u8; 32];

/// Who sent the fact, and the sender's own id for it: the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    pub system: String,
    pub source_event_id: String,
}

/// The typed, versioned payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Body {
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u32,
    pub data: Value,
}

impl Body {
    /// A payload of `event_type` at `version`.
    pub fn new(event_type: impl Into<String>, version: u32, data: Value) -> Self {
        Body {
            event_type: event_type.into(),
            version,
            data,
        }
    }
}

/// The event a correction supersedes: by Autolog's event id, or by the sender's own
/// source id (what a source system knows). The ledger records the resolved event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorrectionTarget {
    EventId(Uuid),
    Source(Source),
}

impl std::fmt::Display for CorrectionTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorrectionTarget::EventId(id) => write!(f, "{id}"),
            CorrectionTarget::Source(s) => write!(f, "{}/{}", s.system, s.source_event_id),
        }
    }
}

/// A validated append request, before the ledger gives it a place.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub event_id: Uuid,
    pub stream: String,
    pub occurred_at: OccurredAt,
    pub actor: String,
    /// The canonical id of the site where the event happened (the recording site), if any.
    pub site: Option<String>,
    pub source: Source,
    pub reason: Option<String>,
    /// The event this one corrects (supersedes), in the same stream.
    pub corrects: Option<CorrectionTarget>,
    pub body: Body,
}

/// An event as recorded in the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: Uuid,
    pub stream: String,
    pub seq: u64,
    pub prev_hash: Hash,
    pub hash: Hash,
    pub position: u64,
    pub recorded_at: Instant,
    pub occurred_at: OccurredAt,
    pub actor: String,
    /// The recording site's canonical id, if the event names one.
    pub site: Option<String>,
    pub source: Source,
    pub reason: Option<String>,
    pub corrects: Option<Uuid>,
    pub body: Body,
}

/// Where the ledger places a draft: assigned inside the append transaction.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub seq: u64,
    pub prev_hash: Hash,
    pub position: u64,
    pub recorded_at: Instant,
    /// The resolved event id of the correction target, if the draft is a correction.
    pub corrects: Option<Uuid>,
}

impl EventDraft {
    /// Gives the draft its place in the ledger and computes its hash.
    pub fn seal(&self, place: Placement) -> Event {
        let mut event = Event {
            event_id: self.event_id,
            stream: self.stream.clone(),
            seq: place.seq,
            prev_hash: place.prev_hash,
            hash: [0u8; 32],
            position: place.position,
            recorded_at: place.recorded_at,
            occurred_at: self.occurred_at.clone(),
            actor: self.actor.clone(),
            site: self.site.clone(),
            source: self.source.clone(),
            reason: self.reason.clone(),
            corrects: place.corrects,
            body: self.body.clone(),
        };
        event.hash = event.compute_hash();
        event
    }
}

impl Event {
    /// The envelope as JSON without `hash`: the input of the canonical bytes.
    /// Absent optional fields (`site`, `reason`, `corrects`) are omitted, never `null`.
    pub fn unhashed_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("event_id".into(), json!(self.event_id.to_string()));
        o.insert("stream".into(), json!(self.stream));
        o.insert("seq".into(), json!(self.seq));
        o.insert("prev_hash".into(), json!(hex::encode(self.prev_hash)));
        o.insert("position".into(), json!(self.position));
        o.insert("recorded_at".into(), json!(self.recorded_at.to_string()));
        o.insert(
            "occurred_at".into(),
            json!({
                "instant": self.occurred_at.instant.to_string(),
                "zone": self.occurred_at.zone,
                "offset": self.occurred_at.offset.to_string(),
            }),
        );
        o.insert("actor".into(), json!(self.actor));
        if let Some(site) = &self.site {
            o.insert("site".into(), json!(site));
        }
        o.insert(
            "source".into(),
            json!({"system": self.source.system, "source_event_id": self.source.source_event_id}),
        );
        if let Some(reason) = &self.reason {
            o.insert("reason".into(), json!(reason));
        }
        if let Some(corrects) = &self.corrects {
            o.insert("corrects".into(), json!(corrects.to_string()));
        }
        o.insert(
            "body".into(),
            json!({"type": self.body.event_type, "version": self.body.version, "data": self.body.data}),
        );
        Value::Object(o)
    }

    /// The full envelope as JSON, `hash` included: what the API returns.
    pub fn to_json(&self) -> Value {
        let mut v = self.unhashed_json();
        if let Value::Object(o) = &mut v {
            o.insert("hash".into(), json!(hex::encode(self.hash)));
        }
        v
    }

    /// RFC 8785 canonical bytes of the envelope without its hash: the members of
    /// [`Event::unhashed_json`] (a test holds the two equal for any event), written from
    /// the event in place, without building that JSON value or copying the payload.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_canonical(&mut out);
        out
    }

    /// Appends the canonical bytes to `out`: the members in RFC 8785 order (their names
    /// are ASCII, so byte order), the payload by [`jcs::write_value`].
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        let mut o = ObjectWriter::begin(out);
        o.string("actor", &self.actor);
        let mut body = ObjectWriter::begin(o.name("body"));
        jcs::write_value(body.name("data"), &self.body.data);
        body.string("type", &self.body.event_type);
        jcs::write_u64(body.name("version"), u64::from(self.body.version));
        body.end();
        if let Some(corrects) = &self.corrects {
            o.string("corrects", &corrects.to_string());
        }
        o.string("event_id", &self.event_id.to_string());
        let mut occurred = ObjectWriter::begin(o.name("occurred_at"));
        occurred.string("instant", &self.occurred_at.instant.to_string());
        occurred.string("offset", &self.occurred_at.offset.to_string());
        occurred.string("zone", &self.occurred_at.zone);
        occurred.end();
        jcs::write_u64(o.name("position"), self.position);
        o.string("prev_hash", &hex::encode(self.prev_hash));
        if let Some(reason) = &self.reason {
            o.string("reason", reason);
        }
        o.string("recorded_at", &self.recorded_at.to_string());
        jcs::write_u64(o.name("seq"), self.seq);
        if let Some(site) = &self.site {
            o.string("site", site);
        }
        let mut source = ObjectWriter::begin(o.name("source"));
        source.string("source_event_id", &self.source.source_event_id);
        source.string("system", &self.source.system);
        source.end();
        o.string("stream", &self.stream);
        o.end();
    }

    /// SHA-256 of the canonical bytes.
    pub fn compute_hash(&self) -> Hash {
        Sha256::digest(self.canonical_bytes()).into()
    }
}

/// RFC 8785 (JSON Canonicalization Scheme) serialisation of a JSON value (or of what
/// serialises as one).
pub fn canonical_json(value: &impl Serialize) -> Vec<u8> {
    // What is given here always canonicalises: JSON values and the envelope's own fields,
    // whose numbers are finite by construction.
    serde_json_canonicalizer::to_vec(value).unwrap_or_default()
}

/// A canonical id or code (site id, person id, step code...): 1-64 letters, digits or `._:-`.
pub fn check_code(field: &str, value: &str) -> Result<(), FieldError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            value,
            "must be a code of 1-64 letters, digits or . _ : -",
        ))
    }
}

/// A free text: not blank, at most `max` characters.
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, value, "must not be blank"));
    }
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            value,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn is_code_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-' | '*')
}

/// A stream name: segments of letters, digits and `._:-*`, joined by `/`,
/// at most 200 characters, e.g. `site/S-PAR-01` or `coi/CHA999926000001*`.
pub fn check_stream_name(field: &str, name: &str) -> Result<(), FieldError> {
    const RULE: &str = "must be 1-200 characters: segments of letters, digits and . _ : - * joined by / (no empty, . or .. segment), e.g. site/S-PAR-01";
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.split('/').all(|seg| {
            !seg.is_empty() && seg != "." && seg != ".." && seg.chars().all(is_code_char)
        });
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, name, RULE))
    }
}

/// An actor is a person or a source system, by pseudonymous id: `person/<id>` or `system/<id>`.
pub fn check_actor(field: &str, actor: &str) -> Result<(), FieldError> {
    const RULE: &str =
        "must be person/<id> or system/<id> (a pseudonymous id of letters, digits and . _ : -)";
    let ok = match actor.split_once('/') {
        Some(("person" | "system", id)) => {
            !id.is_empty() && id.len() <= 100 && id.chars().all(is_code_char)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, actor, RULE))
    }
}
