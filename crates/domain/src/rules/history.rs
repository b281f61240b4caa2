//! Which of a stream's events a check or a read needs, so that long streams (a material
//! lot's consumptions, a source system's batch crosswalk) are not read whole each time.

use serde_json::Value;

use crate::ledger::envelope::{Event, EventDraft};
use crate::rules::{amended_registration, registration_of_stream, registration_stream};

/// Every event type that amends a registry record (see [`amended_registration`]).
pub const AMENDMENT_TYPES: &[&str] = &[
    "site.amended",
    "personnel.amended",
    "equipment.calibrated",
    "equipment.amended",
    "process_step.amended",
    "source_system.amended",
    "verification_policy.amended",
    "label_template.amended",
    "material_lot.status_changed",
    "product.amended",
    "chain.cancelled",
    "alert.acknowledged",
    "alert.resolved",
];

/// A subset of a stream's events: those of `types` (every type when `None`) whose payload's
/// `local_code` is `local_code` (any when `None`), and always every correction (an event
/// with `corrects`), since a correction may supersede an event of the subset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HistoryFilter {
    pub types: Option<Vec<String>>,
    pub local_code: Option<String>,
}

impl HistoryFilter {
    /// Every event of the stream.
    pub fn all() -> Self {
        Self::default()
    }

    /// Whether `event` belongs to the subset (backends select the same rows in SQL).
    pub fn admits(&self, event: &Event) -> bool {
        if event.corrects.is_some() {
            return true;
        }
        let type_ok = self
            .types
            .as_ref()
            .is_none_or(|types| types.contains(&event.body.event_type));
        let code_ok = self.local_code.as_ref().is_none_or(|code| {
            event.body.data.get("local_code").and_then(Value::as_str) == Some(code.as_str())
        });
        type_ok && code_ok
    }
}

/// The events that make a registry record what it is: its registration and amendments
/// (and corrections), without what is recorded on it in use, such as a lot's
/// `material_lot.consumed` events. Every event for a stream that is not a registry record.
pub fn record_filter(stream: &str) -> HistoryFilter {
    let Some(registration) = registration_of_stream(stream) else {
        return HistoryFilter::all();
    };
    let mut types = vec![registration.to_string()];
    types.extend(
        AMENDMENT_TYPES
            .iter()
            .filter(|t| amended_registration(t).is_some_and(|(r, _)| r == registration))
            .map(|t| t.to_string()),
    );
    HistoryFilter {
        types: Some(types),
        local_code: None,
    }
}

/// The part of its stream's history that [`crate::rules::check_against_stream`] reads for
/// `draft`: running the check on the events this filter admits (in seq order) gives the
/// same verdict as on the whole stream.
///
/// - A chain (`coi/`) or an alert (`alert/`): every event (the state machines fold all).
/// - A registry record: its registration (whether it is registered), and the draft's own
///   type if that is a registering type (whether it is registered already). What is recorded
///   on a record in use (a lot's consumptions) is left out: that is what grows.
/// - A `crosswalk.mapped`: the mappings of the same local code (only those can overlap);
///   every event when the draft states no local code as text.
/// - Otherwise: the events of the draft's own type.
///
/// Corrections are always admitted ([`HistoryFilter::admits`]): they say what is superseded.
pub fn history_filter(draft: &EventDraft) -> HistoryFilter {
    let stream = draft.stream.as_str();
    let event_type = draft.body.event_type.as_str();
    if stream.starts_with("coi/") || stream.starts_with("alert/") {
        return HistoryFilter::all();
    }
    // Before the crosswalk case: on a registry record, the registration check runs first
    // (a crosswalk.mapped there is refused whatever the stream holds, once registered).
    if let Some(registration) = registration_of_stream(stream) {
        let mut types = vec![registration.to_string()];
        if event_type != registration && registration_stream(event_type, &draft.body.data).is_some()
        {
            types.push(event_type.to_string());
        }
        return HistoryFilter {
            types: Some(types),
            local_code: None,
        };
    }
    if event_type == "crosswalk.mapped" {
        return match draft.body.data.get("local_code").and_then(Value::as_str) {
            Some(code) => HistoryFilter {
                types: Some(vec![event_type.to_string()]),
                local_code: Some(code.to_string()),
            },
            None => HistoryFilter::all(),
        };
    }
    HistoryFilter {
        types: Some(vec![event_type.to_string()]),
        local_code: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::EVENT_TYPES;

    #[test]
    fn every_amendment_type_of_the_catalogue_is_listed() {
        let amendments: Vec<&str> = EVENT_TYPES
            .iter()
            .map(|t| t.name)
            .filter(|name| amended_registration(name).is_some())
            .collect();
        for name in &amendments {
            assert!(AMENDMENT_TYPES.contains(name), "{name} missing");
        }
        for name in AMENDMENT_TYPES {
            assert!(
                amended_registration(name).is_some(),
                "{name} amends nothing"
            );
        }
    }

    #[test]
    fn a_lot_record_leaves_its_consumptions_out() {
        let filter = record_filter("lot/LV-CD19/LV19-2026-014");
        let types = filter.types.unwrap_or_default();
        assert!(types.contains(&"material_lot.registered".to_string()));
        assert!(types.contains(&"material_lot.status_changed".to_string()));
        assert!(!types.contains(&"material_lot.consumed".to_string()));
        assert_eq!(record_filter("coi/X"), record_filter("coi/Y"));
        assert_eq!(record_filter("crosswalk/mes/batch"), HistoryFilter::all());
    }

    use crate::ledger::envelope::{Body, Placement, Source, GENESIS_HASH};
    use crate::ledger::time::{Instant, OccurredAt};
    use crate::rules::check_against_stream;
    use proptest::prelude::*;
    use serde_json::json;
    use uuid::Uuid;

    const STREAMS: &[&str] = &[
        "lot/M/L1",
        "site/S-1",
        "crosswalk/mes-bos/site",
        "note/N-1",
        "alert/A-1",
    ];
    const TYPES: &[&str] = &[
        "material_lot.registered",
        "material_lot.status_changed",
        "material_lot.consumed",
        "site.registered",
        "site.amended",
        "crosswalk.mapped",
        "annotation.recorded",
        "alert.raised",
        "alert.resolved",
    ];

    /// One generated event: type, local code (3 = none), validity start and length in
    /// months (length 0 = open-ended), and, for a correction, which earlier event it names.
    type Spec = (usize, u8, u8, u8, Option<usize>);

    fn data(code: u8, from: u8, len: u8) -> Value {
        let month = |m: u8| {
            format!(
                "{}-{:02}-01T00:00:00Z",
                2026 + i32::from(m / 12),
                m % 12 + 1
            )
        };
        let mut data = json!({"material": "M", "lot": "L1", "site_id": "S-1", "alert_id": "A-1",
            "system": "mes-bos", "kind": "site", "canonical_id": format!("S-{from}"),
            "valid_from": month(from)});
        if code < 3 {
            data["local_code"] = json!(format!("C{code}"));
        }
        if len > 0 {
            data["valid_to"] = json!(month(from + len));
        }
        data
    }

    fn draft(stream: &str, n: usize, (t, code, from, len, _): Spec) -> EventDraft {
        EventDraft {
            event_id: Uuid::now_v7(),
            stream: stream.to_string(),
            occurred_at: OccurredAt::from_parts(1_772_323_200_000_000, "Europe/Paris", 3600)
                .expect("valid"),
            actor: "person/P-1".into(),
            site: None,
            source: Source {
                system: "qms".into(),
                source_event_id: format!("e{n}"),
            },
            reason: None,
            corrects: None,
            body: Body {
                event_type: TYPES[t % TYPES.len()].to_string(),
                version: 1,
                data: data(code, from, len),
            },
        }
    }

    /// A stream's history as the store would hold it: corrections name earlier events.
    fn history(stream: &str, specs: &[Spec]) -> Vec<Event> {
        let mut events: Vec<Event> = Vec::new();
        for (n, spec) in specs.iter().enumerate() {
            let corrects = spec.4.filter(|_| n > 0).map(|i| events[i % n].event_id);
            let seq = n as u64 + 1;
            events.push(draft(stream, n, *spec).seal(Placement {
                seq,
                prev_hash: GENESIS_HASH,
                position: seq,
                recorded_at:
                    Instant::from_micros(1_772_323_200_000_000 + seq as i64).expect("instant"),
                corrects,
            }));
        }
        events
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0..TYPES.len(),
            0u8..4,
            0u8..12,
            0u8..4,
            proptest::option::weighted(0.25, 0usize..64),
        )
    }

    /// The verdict on the whole history and on the filtered history agree.
    fn assert_same_verdict(
        stream: &str,
        prior: &[Event],
        new: &EventDraft,
        corrects: Option<Uuid>,
    ) {
        let filter = history_filter(new);
        let filtered: Vec<Event> = prior.iter().filter(|e| filter.admits(e)).cloned().collect();
        assert_eq!(
            check_against_stream(new, corrects, &filtered),
            check_against_stream(new, corrects, prior),
            "{stream}: {} with {filter:?}",
            new.body.event_type
        );
    }

    proptest! {
        #[test]
        fn the_filtered_history_gives_the_same_verdict(
            stream in 0..STREAMS.len(),
            specs in proptest::collection::vec(spec(), 0..24),
            new in spec(),
        ) {
            let stream = STREAMS[stream];
            let prior = history(stream, &specs);
            let d = draft(stream, specs.len(), new);
            // A correction names a prior event (or, rarely, one the stream does not hold).
            let corrects = match new.4 {
                None => None,
                Some(i) if prior.is_empty() || i % 8 == 7 => Some(Uuid::now_v7()),
                Some(i) => Some(prior[i % prior.len()].event_id),
            };
            assert_same_verdict(stream, &prior, &d, corrects);
        }
    }

    fn mapped(code: u8, from: u8, len: u8) -> Spec {
        (5, code, from, len, None)
    }

    #[test]
    fn a_correction_that_changes_the_local_code_is_seen_under_both_codes() {
        let stream = "crosswalk/mes-bos/site";
        // C0 from month 0 to 6; corrected to C1 from month 0, open-ended.
        let mut specs = vec![mapped(0, 0, 6)];
        for n in 0..40 {
            specs.push(mapped(2, (n % 12) as u8, 0));
        }
        specs.push((5, 1, 0, 0, Some(0)));
        let prior = history(stream, &specs);
        let filter = history_filter(&draft(stream, 99, mapped(0, 2, 0)));
        assert_eq!(
            filter,
            HistoryFilter {
                types: Some(vec!["crosswalk.mapped".into()]),
                local_code: Some("C0".into())
            }
        );
        for (code, from, corrects) in [
            (0, 2, None),
            (1, 3, None),
            (1, 3, Some(prior[41].event_id)),
            (0, 8, None),
        ] {
            let d = draft(stream, 99, mapped(code, from, 0));
            assert_same_verdict(stream, &prior, &d, corrects);
        }
        // C0 is free again (its only mapping was corrected into C1); C1 is taken.
        let free = draft(stream, 99, mapped(0, 2, 0));
        assert_eq!(check_against_stream(&free, None, &prior), Ok(()));
        let taken = draft(stream, 99, mapped(1, 3, 0));
        assert!(check_against_stream(&taken, None, &prior).is_err());
    }

    #[test]
    fn a_lot_reads_its_registration_not_its_consumptions() {
        let consumed = draft("lot/M/L1", 1, (2, 3, 0, 0, None));
        assert_eq!(
            history_filter(&consumed),
            HistoryFilter {
                types: Some(vec!["material_lot.registered".into()]),
                local_code: None
            }
        );
        let again = draft("lot/M/L1", 1, (0, 3, 0, 0, None));
        assert_eq!(
            history_filter(&again).types,
            Some(vec!["material_lot.registered".into()])
        );
        assert_eq!(
            history_filter(&draft("alert/A-1", 1, (8, 3, 0, 0, None))),
            HistoryFilter::all()
        );
        let no_code = draft("crosswalk/mes-bos/site", 1, (5, 3, 0, 0, None));
        assert_eq!(history_filter(&no_code), HistoryFilter::all());
    }
}
