//! Flat row shapes shared by the backends, and their conversion to domain types.
//! A row that does not convert was altered outside Autolog: the error says how.

use autolog_domain::ledger::checkpoint::{Checkpoint, CheckpointLink};
use autolog_domain::ledger::merkle::Hash;
use autolog_domain::{Body, Event, Instant, OccurredAt, Source, Uuid};

/// The `events` columns in the order every backend selects them.
pub const EVENT_COLUMNS: &str =
    "position, event_id, stream, seq, prev_hash, hash, recorded_at_us, \
     occurred_at_us, occurred_zone, occurred_offset_s, actor, source_system, source_event_id, \
     reason, corrects, body_type, body_version, body_data, site";

/// The `events` table's columns, as both backends store them.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub position: i64,
    pub event_id: String,
    pub stream: String,
    pub seq: i64,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    pub recorded_at_us: i64,
    pub occurred_at_us: i64,
    pub occurred_zone: String,
    pub occurred_offset_s: i32,
    pub actor: String,
    pub source_system: String,
    pub source_event_id: String,
    pub reason: Option<String>,
    pub corrects: Option<String>,
    pub body_type: String,
    pub body_version: i64,
    pub body_data: String,
    pub site: Option<String>,
}

fn hash32(name: &str, bytes: &[u8]) -> Result<Hash, String> {
    bytes
        .try_into()
        .map_err(|_| format!("{name} has {} bytes, not 32", bytes.len()))
}

fn count(name: &str, n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("{name} {n} is negative"))
}

impl EventRow {
    pub fn from_event(e: &Event) -> Self {
        EventRow {
            position: e.position as i64,
            event_id: e.event_id.to_string(),
            stream: e.stream.clone(),
            seq: e.seq as i64,
            prev_hash: e.prev_hash.to_vec(),
            hash: e.hash.to_vec(),
            recorded_at_us: e.recorded_at.micros(),
            occurred_at_us: e.occurred_at.instant.micros(),
            occurred_zone: e.occurred_at.zone.clone(),
            occurred_offset_s: e.occurred_at.offset.0,
            actor: e.actor.clone(),
            source_system: e.source.system.clone(),
            source_event_id: e.source.source_event_id.clone(),
            reason: e.reason.clone(),
            corrects: e.corrects.map(|c| c.to_string()),
            body_type: e.body.event_type.clone(),
            body_version: i64::from(e.body.version),
            body_data: e.body.data.to_string(),
            site: e.site.clone(),
        }
    }

    pub fn into_event(self) -> Result<Event, String> {
        let uuid = |name: &str, s: &str| {
            Uuid::parse_str(s).map_err(|e| format!("{name} {s:?} is not a UUID: {e}"))
        };
        Ok(Event {
            event_id: uuid("event_id", &self.event_id)?,
            seq: count("seq", self.seq)?,
            prev_hash: hash32("prev_hash", &self.prev_hash)?,
            hash: hash32("hash", &self.hash)?,
            position: count("position", self.position)?,
            recorded_at: Instant::from_micros(self.recorded_at_us)?,
            occurred_at: OccurredAt::from_parts(
                self.occurred_at_us,
                &self.occurred_zone,
                self.occurred_offset_s,
            )?,
            actor: self.actor,
            site: self.site,
            source: Source {
                system: self.source_system,
                source_event_id: self.source_event_id,
            },
            reason: self.reason,
            corrects: self
                .corrects
                .as_deref()
                .map(|c| uuid("corrects", c))
                .transpose()?,
            body: Body {
                event_type: self.body_type,
                version: u32::try_from(self.body_version)
                    .map_err(|_| format!("body version {} is out of range", self.body_version))?,
                data: serde_json::from_str(&self.body_data)
                    .map_err(|e| format!("body data is not JSON: {e}"))?,
            },
            stream: self.stream,
        })
    }
}

/// The `checkpoints` table's columns.
#[derive(Debug, Clone)]
pub struct CheckpointRow {
    pub tree_size: i64,
    pub root: Vec<u8>,
    pub issued_at_us: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
    /// v2 checkpoints: the number and the previous checkpoint's digest.
    pub sequence: Option<i64>,
    pub previous: Option<Vec<u8>>,
}

impl CheckpointRow {
    pub fn from_checkpoint(c: &Checkpoint) -> Self {
        CheckpointRow {
            tree_size: c.tree_size as i64,
            root: c.root.to_vec(),
            issued_at_us: c.issued_at.micros(),
            key_id: c.key_id.clone(),
            signature: c.signature.to_vec(),
            sequence: c.link.map(|l| l.sequence as i64),
            previous: c.link.map(|l| l.previous.to_vec()),
        }
    }

    pub fn into_checkpoint(self) -> Result<Checkpoint, String> {
        Ok(Checkpoint {
            tree_size: count("tree_size", self.tree_size)?,
            root: hash32("root", &self.root)?,
            issued_at: Instant::from_micros(self.issued_at_us)?,
            key_id: self.key_id,
            signature: self
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| format!("signature has {} bytes, not 64", self.signature.len()))?,
            link: match (self.sequence, self.previous) {
                (None, None) => None,
                (Some(sequence), Some(previous)) => Some(CheckpointLink {
                    sequence: count("sequence", sequence)?,
                    previous: hash32("previous", &previous)?,
                }),
                _ => return Err("sequence and previous must both be set or both empty".into()),
            },
        })
    }
}

/// A webhook-bookkeeping row that does not convert: it was altered outside Autolog.
pub(crate) fn unreadable(table: &str, key: &str, detail: String) -> crate::StoreError {
    crate::StoreError::Backend {
        backend: "store",
        message: format!("{table} row {key}: {detail}"),
    }
}

pub(crate) fn uuid(name: &str, s: &str) -> Result<Uuid, String> {
    Uuid::parse_str(s).map_err(|e| format!("{name} {s:?} is not a UUID: {e}"))
}

pub(crate) fn instant(name: &str, micros: i64) -> Result<Instant, String> {
    Instant::from_micros(micros).map_err(|e| format!("{name}: {e}"))
}

/// The `webhooks` table's columns (the ids as text).
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub webhook_id: String,
    pub url: String,
    pub secret: String,
    pub created_at_us: i64,
    pub created_by: String,
    pub active: bool,
    pub cursor_position: i64,
}

impl WebhookRow {
    pub fn into_webhook(self) -> Result<crate::Webhook, crate::StoreError> {
        let key = self.webhook_id.clone();
        let read = || -> Result<crate::Webhook, String> {
            Ok(crate::Webhook {
                webhook_id: uuid("webhook_id", &self.webhook_id)?,
                created_at: instant("created_at_us", self.created_at_us)?,
                cursor_position: count("cursor_position", self.cursor_position)?,
                url: self.url,
                secret: self.secret,
                created_by: self.created_by,
                active: self.active,
            })
        };
        read().map_err(|d| unreadable("webhooks", &key, d))
    }
}

/// The `webhook_deliveries` table's columns (the ids as text).
#[derive(Debug, Clone)]
pub struct WebhookDeliveryRow {
    pub webhook_id: String,
    pub alert_event_id: String,
    pub position: i64,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at_us: i64,
    pub last_attempt_at_us: Option<i64>,
    pub last_result: Option<String>,
    pub delivered_at_us: Option<i64>,
}

impl WebhookDeliveryRow {
    pub fn into_delivery(self) -> Result<crate::WebhookDelivery, crate::StoreError> {
        let key = format!("({}, {})", self.webhook_id, self.alert_event_id);
        let read = || -> Result<crate::WebhookDelivery, String> {
            Ok(crate::WebhookDelivery {
                webhook_id: uuid("webhook_id", &self.webhook_id)?,
                alert_event_id: uuid("alert_event_id", &self.alert_event_id)?,
                position: count("position", self.position)?,
                status: crate::DeliveryStatus::parse(&self.status).ok_or_else(|| {
                    format!("status {:?} is not pending or delivered", self.status)
                })?,
                attempts: u32::try_from(self.attempts)
                    .map_err(|_| format!("attempts {} is out of range", self.attempts))?,
                next_attempt_at: instant("next_attempt_at_us", self.next_attempt_at_us)?,
                last_attempt_at: self
                    .last_attempt_at_us
                    .map(|t| instant("last_attempt_at_us", t))
                    .transpose()?,
                delivered_at: self
                    .delivered_at_us
                    .map(|t| instant("delivered_at_us", t))
                    .transpose()?,
                last_result: self.last_result,
            })
        };
        read().map_err(|d| unreadable("webhook_deliveries", &key, d))
    }
}

/// The `webhook_delivery_attempts` table's columns read for the log.
#[derive(Debug, Clone)]
pub struct DeliveryAttemptRow {
    pub attempt: i64,
    pub at_us: i64,
    pub ok: bool,
    pub detail: String,
}

impl DeliveryAttemptRow {
    pub fn into_attempt(self) -> Result<crate::DeliveryAttempt, crate::StoreError> {
        let key = format!("attempt {}", self.attempt);
        let read = || -> Result<crate::DeliveryAttempt, String> {
            Ok(crate::DeliveryAttempt {
                attempt: u32::try_from(self.attempt)
                    .map_err(|_| format!("attempt {} is out of range", self.attempt))?,
                at: instant("at_us", self.at_us)?,
                ok: self.ok,
                detail: self.detail,
            })
        };
        read().map_err(|d| unreadable("webhook_delivery_attempts", &key, d))
    }
}
