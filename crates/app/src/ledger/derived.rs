//! Events Autolog records because of another event (an alert, a hold, a link, a zone
//! flag), in the transaction of their cause: their ids and source ids derive from the
//! cause's, so a resent request records nothing twice and an ingest is repeatable.

use autolog_domain::rules::AUTOLOG_ACTOR;
use autolog_domain::{Body, EventDraft, Source, Uuid};
use serde_json::Value;

/// The draft of an event Autolog records because of `cause`: at the cause's time, by
/// `system/autolog`, with the given source id (unique, derived from the cause's).
pub(crate) fn derived_draft(
    cause: &EventDraft,
    stream: impl Into<String>,
    source_event_id: String,
    event_type: &str,
    data: Value,
) -> EventDraft {
    EventDraft {
        event_id: derived_event_id(cause.event_id, &source_event_id),
        stream: stream.into(),
        occurred_at: cause.occurred_at.clone(),
        actor: AUTOLOG_ACTOR.to_string(),
        site: None,
        source: Source {
            system: autolog_domain::rules::AUTOLOG_SOURCE_SYSTEM.to_string(),
            source_event_id,
        },
        reason: None,
        corrects: None,
        body: Body::new(event_type, 1, data),
    }
}

/// The id of an event Autolog records because of another (an alert, a hold, a link): a
/// UUIDv7 with the cause's time and bits from SHA-256 of the cause's id and the derived
/// event's own source id, which is unique, so the id is too, and repeatable.
pub(crate) fn derived_event_id(cause: Uuid, source_event_id: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(cause.as_bytes())
        .chain_update(source_event_id.as_bytes())
        .finalize();
    let millis = cause
        .get_timestamp()
        .map(|t| {
            let (seconds, nanos) = t.to_unix();
            seconds * 1000 + u64::from(nanos / 1_000_000)
        })
        .unwrap_or(0);
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::clock::{Clock, ManualClock};
    use autolog_domain::Instant;

    #[test]
    fn a_derived_id_is_repeatable_distinct_per_source_and_keeps_the_cause_time() {
        let cause = ManualClock::new(Instant::from_micros(1_900_000_000_000_000).expect("valid"))
            .event_id();
        let a = derived_event_id(cause, "alert/AL-1");
        assert_eq!(a, derived_event_id(cause, "alert/AL-1"));
        assert_ne!(a, derived_event_id(cause, "alert/AL-2"));
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_timestamp(), cause.get_timestamp());
    }
}
