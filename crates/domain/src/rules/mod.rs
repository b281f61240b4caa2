//! Rules that depend on what a stream already holds, checked inside the append
//! transaction (under the ledger lock): a registration opens its own stream, and a
//! crosswalk mapping never overlaps another mapping of the same code.

pub mod history;

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;

use crate::error::FieldError;
use crate::ledger::envelope::{Event, EventDraft};
use crate::ledger::stream::StreamId;
use crate::ledger::time::Instant;
use crate::reference::crosswalk::{Crosswalk, Crosswalks};

/// The stream a registering event must open, given its payload; `None` for other types.
pub fn registration_stream(event_type: &str, data: &Value) -> Option<String> {
    let field = |name: &str| {
        data.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some(match event_type {
        "site.registered" => StreamId::site(field("site_id")).into(),
        "personnel.registered" => StreamId::person(field("person_id")).into(),
        "equipment.registered" => StreamId::equipment(field("equipment_id")).into(),
        "material_lot.registered" => StreamId::lot(field("material"), field("lot")).into(),
        "process_step.defined" => StreamId::process_step(field("step_code")).into(),
        "product.registered" => StreamId::product(field("product_code")).into(),
        "chain.enrolled" => StreamId::chain(field("coi")).into(),
        "din.linked" => StreamId::din(field("din")).into(),
        "alert.raised" => StreamId::alert(field("alert_id")).into(),
        "batch.linked" => StreamId::batch(field("batch_id")).into(),
        "unit.linked" => StreamId::unit(field("unit_id")).into(),
        "source_system.registered" => StreamId::source_system(field("system_id")).into(),
        "verification_policy.defined" => StreamId::verification_policy(field("policy_id")).into(),
        "label_template.defined" => StreamId::label_template(field("template_id")).into(),
        _ => return None,
    })
}

/// The stream that holds every crosswalk of one source system and kind.
pub fn crosswalk_stream(system: &str, kind: &str) -> String {
    crate::ledger::stream::StreamId::crosswalk(system, kind).into()
}

/// For an amending event type, the registration it amends and the stream prefix it lives under.
/// An amendment of a registry record (a status change, a calibration, an amended field)
/// takes effect in valid time after the record exists: one dated before the registration
/// would be read as in force from a time the record was not, and is refused naming both
/// times. (Notes and Autolog's own records on the stream are not amendments.)
fn check_not_before_registration(
    draft: &EventDraft,
    registration: &str,
    prior: &[Event],
) -> Result<(), FieldError> {
    let amends = amended_registration(&draft.body.event_type)
        .is_some_and(|(registered, _)| registered == registration);
    if !amends {
        return Ok(());
    }
    let Some(registered) = prior.iter().find(|e| e.body.event_type == registration) else {
        return Ok(());
    };
    if draft.occurred_at.instant < registered.occurred_at.instant {
        return Err(FieldError::new(
            "occurred_at",
            draft.occurred_at.instant.to_string(),
            format!(
                "is before the record's registration ({}): an amendment takes effect once the record exists",
                registered.occurred_at.instant
            ),
        ));
    }
    Ok(())
}

pub fn amended_registration(event_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match event_type {
        "site.amended" => ("site.registered", "site/"),
        "personnel.amended" => ("personnel.registered", "person/"),
        "equipment.calibrated" | "equipment.amended" => ("equipment.registered", "equipment/"),
        "process_step.amended" => ("process_step.defined", "step/"),
        "source_system.amended" => ("source_system.registered", "source-system/"),
        "verification_policy.amended" => ("verification_policy.defined", "verification-policy/"),
        "label_template.amended" => ("label_template.defined", "label-template/"),
        "material_lot.status_changed" => ("material_lot.registered", "lot/"),
        "product.amended" => ("product.registered", "product/"),
        "chain.cancelled" => ("chain.enrolled", "coi/"),
        "alert.acknowledged" | "alert.resolved" => ("alert.raised", "alert/"),
        _ => return None,
    })
}

/// The registry stream a canonical id of a crosswalk kind lives in; `None` for
/// materials, which are known through their lots (`lot/<material>/<lot>`).
pub fn canonical_stream(kind: &str, canonical_id: &str) -> Option<String> {
    let prefix = match kind {
        "site" => "site",
        "person" => "person",
        "process_step" => "step",
        "equipment" => "equipment",
        "product" => "product",
        "batch" => "batch",
        _ => return None,
    };
    Some(format!("{prefix}/{canonical_id}"))
}

/// The registry records an event refers to, as `(field, stream)` pairs: each must be
/// registered (before, or earlier in the same batch) for the event to be accepted.
pub fn references(draft: &EventDraft) -> Vec<(String, String)> {
    let data = &draft.body.data;
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    let mut refs = Vec::new();
    if let Some(site) = &draft.site {
        refs.push(("site".to_string(), format!("site/{site}")));
    }
    let mut push = |field: String, stream: Option<String>| {
        if let Some(stream) = stream {
            refs.push((format!("body.data.{field}"), stream));
        }
    };
    match draft.body.event_type.as_str() {
        "equipment.registered" => push(
            "site_id".into(),
            text(data, "site_id").map(|s| format!("site/{s}")),
        ),
        "source_system.registered" => push(
            "owning_site_id".into(),
            text(data, "owning_site_id").map(|s| format!("site/{s}")),
        ),
        "personnel.registered" | "personnel.amended" => {
            let list = data.get("qualifications").and_then(Value::as_array);
            for (i, q) in list.into_iter().flatten().enumerate() {
                push(
                    format!("qualifications[{i}].site_id"),
                    text(q, "site_id").map(|s| format!("site/{s}")),
                );
            }
        }
        "product.registered" | "product.amended" => {
            let steps = data
                .get("process")
                .and_then(|p| p.get("steps"))
                .and_then(Value::as_array);
            for (i, step) in steps.into_iter().flatten().enumerate() {
                push(
                    format!("process.steps[{i}].step_code"),
                    text(step, "step_code").map(|s| format!("step/{s}")),
                );
            }
        }
        "chain.collected" => {
            push(
                "collection_site_id".into(),
                text(data, "collection_site_id").map(|s| format!("site/{s}")),
            );
            push(
                "operator_id".into(),
                text(data, "operator_id").map(|p| format!("person/{p}")),
            );
            push(
                "device_id".into(),
                text(data, "device_id").map(|e| format!("equipment/{e}")),
            );
        }
        "chain.enrolled" => {
            push(
                "product_code".into(),
                text(data, "product_code").map(|p| format!("product/{p}")),
            );
            push(
                "treatment_site_id".into(),
                text(data, "treatment_site_id").map(|s| format!("site/{s}")),
            );
        }
        "custody.handed_off"
        | "custody.received"
        | "chain.step_performed"
        | "chain.released"
        | "chain.exceptional_release_requested"
        | "chain.administered"
        | "chain.bedside_verified"
        | "chain.legal_hold_placed"
        | "chain.legal_hold_released"
        | "chain.follow_up_recorded"
        | "chain.hold_released"
        | "alert.acknowledged"
        | "alert.resolved"
        | "batch.created"
        | "batch.material_consumed"
        | "batch.units_produced"
        | "batch.test_result_recorded"
        | "deviation.opened"
        | "deviation.investigated"
        | "deviation.closed" => {
            if let (Some(material), Some(lot)) = (text(data, "material"), text(data, "lot")) {
                push("lot".into(), Some(format!("lot/{material}/{lot}")));
            }
            for (field, prefix) in CHAIN_REFERENCES {
                push(
                    (*field).into(),
                    text(data, field).map(|v| format!("{prefix}{v}")),
                );
            }
            let equipment = data.get("equipment_ids").and_then(Value::as_array);
            for (i, e) in equipment.into_iter().flatten().enumerate() {
                push(
                    format!("equipment_ids[{i}]"),
                    e.as_str().map(|e| format!("equipment/{e}")),
                );
            }
        }
        "crosswalk.mapped" => {
            push(
                "system".into(),
                text(data, "system").map(|s| format!("source-system/{s}")),
            );
            if let (Some(kind), Some(id)) = (text(data, "kind"), text(data, "canonical_id")) {
                push("canonical_id".into(), canonical_stream(&kind, &id));
            }
        }
        _ => {}
    }
    refs
}

/// The payload fields of chain and alert events that name a registry record, and the
/// registry each names (a field absent from a payload is skipped).
const CHAIN_REFERENCES: &[(&str, &str)] = &[
    ("step_code", "step/"),
    ("site_id", "site/"),
    ("from_site_id", "site/"),
    ("collection_site_id", "site/"),
    ("destination_site_id", "site/"),
    ("receiving_site_id", "site/"),
    ("handed_off_by", "person/"),
    ("received_by", "person/"),
    ("performed_by", "person/"),
    ("released_by", "person/"),
    ("second_released_by", "person/"),
    ("requested_by", "person/"),
    ("administered_by", "person/"),
    ("verified_by", "person/"),
    ("recorded_by", "person/"),
    ("resolved_by", "person/"),
    ("person_id", "person/"),
    ("created_by", "person/"),
    ("analyst_id", "person/"),
    ("opened_by", "person/"),
    ("investigated_by", "person/"),
    ("closed_by", "person/"),
    ("reviewed_by", "person/"),
];

/// Event types that are recorded on a chain (stream `coi/<COI>`) only.
pub const CHAIN_EVENT_TYPES: &[&str] = &[
    "chain.enrolled",
    "chain.cancelled",
    "chain.collection_site_assigned",
    "chain.collected",
    "custody.handed_off",
    "custody.received",
    "chain.step_performed",
    "chain.released",
    "chain.exceptional_release_requested",
    "chain.administered",
    "chain.bedside_verified",
    "chain.legal_hold_placed",
    "chain.legal_hold_released",
    "chain.follow_up_recorded",
    "chain.hold_placed",
    "chain.hold_released",
    "batch.created",
    "batch.material_consumed",
    "batch.units_produced",
    "batch.test_result_recorded",
    "batch.test_result_evaluated",
    "deviation.opened",
    "deviation.investigated",
    "deviation.closed",
    "unit.expiry_extended",
    "chain.recollected",
    "sample.handed_off",
    "sample.received",
    "label.printed",
    "label.voided",
    "label.verified",
    "audit_trail.reviewed",
];

/// The lot a consumption uses (`lot/<material>/<lot>`), whose status is checked again
/// under the ledger lock.
pub fn consumed_lot(draft: &EventDraft) -> Option<String> {
    if draft.body.event_type != "batch.material_consumed" {
        return None;
    }
    let data = &draft.body.data;
    let field = |name: &str| data.get(name).and_then(Value::as_str);
    Some(format!("lot/{}/{}", field("material")?, field("lot")?))
}

/// Under the ledger lock: the consumed lot was released at the consumption's own time, as
/// the ledger holds it now (a recall committed while the request's rules ran is seen).
pub fn check_lot_released(
    draft: &EventDraft,
    lot_stream: &str,
    lot: &[Event],
) -> Result<(), FieldError> {
    let state = crate::catalogue::record_at(lot_stream, lot, draft.occurred_at.instant);
    let status = state.get("status").and_then(Value::as_str).unwrap_or("");
    if status == "released" {
        return Ok(());
    }
    let lot_id = draft
        .body
        .data
        .get("lot")
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(FieldError::new(
        "body.data.lot",
        lot_id,
        format!("lot {lot_id} is {status} at the consumption's time (checked under the ledger lock): only a released lot may be used"),
    ))
}

/// The refusal of a reference to a record that is not registered.
pub fn unregistered(field: &str, stream: &str) -> FieldError {
    let (registry, id) = stream.split_once('/').unwrap_or(("record", stream));
    FieldError::new(
        field,
        id,
        format!("is not a registered {registry} ({stream} does not exist); register it first"),
    )
    .with_code("not_registered")
}

/// The registry stream prefixes and the event that registers a record in each.
pub const REGISTRY_STREAMS: &[(&str, &str)] = &[
    ("site/", "site.registered"),
    ("person/", "personnel.registered"),
    ("equipment/", "equipment.registered"),
    ("lot/", "material_lot.registered"),
    ("step/", "process_step.defined"),
    ("product/", "product.registered"),
    ("source-system/", "source_system.registered"),
    ("verification-policy/", "verification_policy.defined"),
    ("label-template/", "label_template.defined"),
    ("coi/", "chain.enrolled"),
    ("din/", "din.linked"),
    ("alert/", "alert.raised"),
    ("batch/", "batch.linked"),
    ("unit/", "unit.linked"),
];

/// The registration a stream of a registry needs before any other event; `None` for
/// streams that are not registry records.
pub fn registration_of_stream(stream: &str) -> Option<&'static str> {
    REGISTRY_STREAMS
        .iter()
        .find(|(prefix, _)| stream.starts_with(prefix))
        .map(|(_, registration)| *registration)
}

/// Whether a draft is checked against its stream's history.
pub fn needs_history(event_type: &str, stream: &str) -> bool {
    event_type == "crosswalk.mapped"
        || registration_stream(event_type, &Value::Null).is_some()
        || amended_registration(event_type).is_some()
        || registration_of_stream(stream).is_some()
        || stream.starts_with("crosswalk/")
}

/// Checks a draft against the events its stream already holds (those of this batch
/// included). `corrects` is the resolved event the draft supersedes, if any.
pub fn check_against_stream(
    draft: &EventDraft,
    corrects: Option<Uuid>,
    prior: &[Event],
) -> Result<(), FieldError> {
    let event_type = draft.body.event_type.as_str();
    if let Some(expected) = registration_stream(event_type, &draft.body.data) {
        if draft.stream != expected {
            return Err(FieldError::new(
                "stream",
                &draft.stream,
                format!("a {event_type} event belongs in stream {expected}"),
            ));
        }
        let already = prior
            .iter()
            .find(|e| e.body.event_type == event_type && Some(e.event_id) != corrects);
        if let (Some(existing), None) = (already, corrects) {
            return Err(FieldError::new(
                "stream",
                &draft.stream,
                format!(
                    "is already registered by event {}; send an amendment, or a correction naming that event",
                    existing.event_id
                ),
            )
            .with_code("already_registered"));
        }
    }
    if let Some((_, prefix)) = amended_registration(event_type) {
        if !draft.stream.starts_with(prefix) {
            return Err(FieldError::new(
                "stream",
                &draft.stream,
                format!("a {event_type} event belongs in a {prefix}<id> stream"),
            ));
        }
    }
    // A registry record's stream starts with its registration: anything else (an
    // amendment, an annotation) waits for it, so that a stream there is a registered record.
    if let Some(registration) = registration_of_stream(&draft.stream) {
        if event_type != registration {
            let superseded: HashSet<Uuid> = prior.iter().filter_map(|e| e.corrects).collect();
            let registered = prior.iter().any(|e| {
                e.body.event_type == registration
                    && !superseded.contains(&e.event_id)
                    && Some(e.event_id) != corrects
            });
            if !registered {
                return Err(FieldError::new(
                    "stream",
                    &draft.stream,
                    format!(
                        "has no {registration} event: register the record before amending it or recording anything on it"
                    ),
                ));
            }
            check_not_before_registration(draft, registration, prior)?;
        }
    }
    if draft.stream.starts_with("crosswalk/") && event_type != "crosswalk.mapped" {
        return Err(FieldError::new(
            "stream",
            &draft.stream,
            format!("holds crosswalk.mapped events only, not {event_type}"),
        ));
    }
    if event_type == "crosswalk.mapped" {
        check_crosswalk(draft, corrects, prior)?;
    }
    if CHAIN_EVENT_TYPES.contains(&event_type) && !draft.stream.starts_with("coi/") {
        return Err(FieldError::new(
            "stream",
            &draft.stream,
            format!("a {event_type} event belongs in the stream coi/<COI> of its chain"),
        ));
    }
    if draft.stream.starts_with("alert/")
        && matches!(event_type, "alert.resolved" | "alert.acknowledged")
        && corrects.is_none()
    {
        let superseded: HashSet<Uuid> = prior.iter().filter_map(|e| e.corrects).collect();
        if prior
            .iter()
            .any(|e| e.body.event_type == "alert.resolved" && !superseded.contains(&e.event_id))
        {
            return Err(FieldError::new(
                "stream",
                &draft.stream,
                "the alert is already resolved: it is resolved once",
            ));
        }
    }
    if !crate::access::signature::signatures_of(event_type, &draft.body.data).is_empty() {
        crate::access::signature::check_manifestation(&draft.stream, event_type, &draft.body.data)?;
    }
    if draft.stream.starts_with("coi/") {
        match corrects {
            None => check_chain_state(draft, prior)?,
            Some(target) => check_chain_correction(draft, target, prior)?,
        }
    }
    Ok(())
}

/// Chain events a correction may restate, and the payload fields it must keep. Custody,
/// release, administration, holds and cancellation are never corrected: what happened
/// next is recorded instead (a hold, a deviation), so that a correction cannot undo a
/// hold or hide a mismatch.
const CORRECTABLE_ON_A_CHAIN: &[(&str, &[&str])] = &[
    ("chain.enrolled", &["coi", "product_code"]),
    ("chain.collected", &["dins"]),
    ("chain.step_performed", &[]),
    ("chain.follow_up_recorded", &[]),
    ("annotation.recorded", &[]),
    // Laboratories amend results, at any time, the original kept (a correction carries
    // its reason); the batch and the test it is a result of stay.
    ("batch.test_result_recorded", &["batch_id", "test_code"]),
    ("batch.material_consumed", &["batch_id"]),
    ("deviation.opened", &["deviation_id", "batch_id"]),
];

fn check_chain_correction(
    draft: &EventDraft,
    target: Uuid,
    prior: &[Event],
) -> Result<(), FieldError> {
    let Some(corrected) = prior.iter().find(|e| e.event_id == target) else {
        return Ok(()); // the store's correction rules name a missing target
    };
    let event_type = corrected.body.event_type.as_str();
    if corrected.actor == crate::rules::AUTOLOG_ACTOR {
        return Err(FieldError::new(
            "corrects",
            target.to_string(),
            format!("names a {event_type} that Autolog recorded: it is not corrected (a hold is released with chain.hold_released)"),
        ));
    }
    let Some((_, kept)) = CORRECTABLE_ON_A_CHAIN
        .iter()
        .find(|(t, _)| *t == event_type)
    else {
        return Err(FieldError::new(
            "corrects",
            target.to_string(),
            format!("names a {event_type}: custody, release, administration, hold and cancellation records are not corrected; record what happened next instead"),
        ));
    };
    if draft.body.event_type != event_type {
        return Err(FieldError::new(
            "body.type",
            &draft.body.event_type,
            format!("a correction restates the same fact: it must be a {event_type}"),
        ));
    }
    // Once material has been collected, the chain's patient and treatment center are
    // fixed: a release and a bedside check rest on them.
    let collected = prior.iter().any(|e| e.body.event_type == "chain.collected");
    let fixed_after_collection: &[&str] = if event_type == "chain.enrolled" && collected {
        &["patient_key", "treatment_site_id"]
    } else {
        &[]
    };
    for field in kept.iter().chain(fixed_after_collection) {
        if draft.body.data.get(field) != corrected.body.data.get(field) {
            return Err(FieldError::new(
                format!("body.data.{field}"),
                draft
                    .body
                    .data
                    .get(field)
                    .map_or_else(|| "(absent)".to_string(), crate::error::show),
                format!(
                    "is master data of the chain and cannot be corrected (it was {})",
                    corrected
                        .body
                        .data
                        .get(field)
                        .map_or_else(|| "(absent)".to_string(), crate::error::show)
                ),
            ));
        }
    }
    Ok(())
}

/// The actor of the events Autolog records itself.
pub const AUTOLOG_ACTOR: &str = "system/autolog";

/// The source system of the events Autolog records itself (alerts, holds, audit records).
pub const AUTOLOG_SOURCE_SYSTEM: &str = "autolog";

/// The value a chain refusal names: the field's, or the event type.
pub fn refused_value(draft: &EventDraft, field: &str) -> String {
    match field {
        "occurred_at" => draft.occurred_at.instant.to_string(),
        "body.type" => draft.body.event_type.clone(),
        other => other
            .strip_prefix("body.data.")
            .and_then(|f| draft.body.data.get(f))
            .map_or_else(|| "(absent)".to_string(), crate::error::show),
    }
}

/// The state-machine rules that need no reference data, checked under the ledger lock so
/// that two concurrent requests cannot both pass them: no step on a held or cancelled
/// chain, one receipt per handoff, one open handoff at a time.
fn check_chain_state(draft: &EventDraft, prior: &[Event]) -> Result<(), FieldError> {
    use crate::chain::{ChainContext, ChainEvent, ChainView};
    let superseded: HashSet<Uuid> = prior.iter().filter_map(|e| e.corrects).collect();
    let ctx = ChainContext::default();
    let events = ChainEvent::of_events(prior.iter().filter(|e| !superseded.contains(&e.event_id)))?;
    let view = ChainView::fold(events.iter().map(ChainEvent::as_entry), &ctx);
    let this = ChainEvent::of_draft(draft)?;
    view.check_locked(&this.as_entry()).map_err(|refusal| {
        let value = refused_value(draft, refusal.field);
        FieldError::new(refusal.field, value, refusal.rule)
    })?;
    // A release: what a concurrent event could have changed since the conditions were
    // checked (a failing result, a deviation) is checked again here.
    if draft.body.event_type == "chain.released" {
        let entries: Vec<_> = events.iter().map(ChainEvent::as_entry).collect();
        let data = &draft.body.data;
        let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default();
        let blockers = crate::batch::release_blockers(
            &entries,
            &view,
            &crate::batch::ReleaseCheck {
                batch_id: text("batch_id"),
                intended_patient_key: text("intended_patient_key"),
                exceptional: data.get("exceptional").and_then(Value::as_bool) == Some(true),
                required_tests: None,
            },
        );
        if let Some(first) = blockers.into_iter().next() {
            return Err(first);
        }
    }
    Ok(())
}

/// The crosswalk a `crosswalk.mapped` payload states.
pub fn crosswalk_of(data: &Value) -> Result<Crosswalk, FieldError> {
    let text = |name: &str| data.get(name).and_then(Value::as_str);
    let instant = |name: &str| -> Result<Option<Instant>, FieldError> {
        text(name)
            .map(|t| Instant::parse_rfc3339(name, t))
            .transpose()
    };
    Ok(Crosswalk {
        system: text("system").unwrap_or_default().to_string(),
        kind: text("kind").unwrap_or_default().to_string(),
        local_code: text("local_code").unwrap_or_default().to_string(),
        canonical_id: text("canonical_id").unwrap_or_default().to_string(),
        valid_from: instant("valid_from")?.unwrap_or(Instant::MIN),
        valid_to: instant("valid_to")?,
    })
}

fn check_crosswalk(
    draft: &EventDraft,
    corrects: Option<Uuid>,
    prior: &[Event],
) -> Result<(), FieldError> {
    let new = crosswalk_of(&draft.body.data).map_err(|e| e.under("body.data"))?;
    let expected = crosswalk_stream(&new.system, &new.kind);
    if draft.stream != expected {
        return Err(FieldError::new(
            "stream",
            &draft.stream,
            format!("a crosswalk.mapped event belongs in stream {expected}"),
        ));
    }
    // The mappings in force now: not superseded, and not the one this draft corrects.
    // Every prior event is known now (committed, or earlier in this batch).
    let superseded: HashSet<Uuid> = prior.iter().filter_map(|e| e.corrects).collect();
    let mut table = Crosswalks::new();
    // Only mappings of the same local code can overlap: skip the others before parsing.
    let same_code = |e: &&Event| {
        e.body.data.get("local_code").and_then(Value::as_str) == Some(new.local_code.as_str())
    };
    for event in prior
        .iter()
        .filter(|e| e.body.event_type == "crosswalk.mapped")
        .filter(same_code)
        .filter(|e| !superseded.contains(&e.event_id) && Some(e.event_id) != corrects)
    {
        if let Ok(existing) = crosswalk_of(&event.body.data) {
            let _ = table.add(existing);
        }
    }
    table.add(new).map(|_| ()).map_err(|e| e.under("body.data"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::parse_draft;
    use crate::ledger::envelope::{Placement, GENESIS_HASH};
    use serde_json::json;

    fn draft(stream: &str, id: &str, event_type: &str, data: Value) -> EventDraft {
        parse_draft(
            &json!({
                "stream": stream,
                "occurred_at": "2026-03-02T09:00:00+01:00[Europe/Paris]",
                "actor": "person/P-0001",
                "source": {"system": "qms", "source_event_id": id},
                "body": {"type": event_type, "version": 1, "data": data}
            }),
            Uuid::now_v7(),
        )
        .expect("valid draft")
    }

    fn sealed(d: &EventDraft, seq: u64) -> Event {
        d.seal(Placement {
            seq,
            prev_hash: GENESIS_HASH,
            position: seq,
            recorded_at: Instant::from_micros(1_772_323_200_000_000 + seq as i64).expect("instant"),
            corrects: None,
        })
    }

    fn site(id: &str) -> Value {
        json!({"site_id": id, "name": "Paris", "site_types": ["apheresis_center"], "time_zone": "Europe/Paris"})
    }

    fn mapping(code: &str, canonical: &str, from: &str, to: Option<&str>) -> Value {
        let mut v = json!({"system": "mes-bos", "kind": "site", "local_code": code, "canonical_id": canonical, "valid_from": from});
        if let Some(to) = to {
            v["valid_to"] = json!(to);
        }
        v
    }

    /// A chain's stored events, as the store hands them to the rules under the lock.
    fn chain_so_far(steps: &[(&str, Value)]) -> Vec<Event> {
        let coi = "coi/CHA999926000001*";
        steps
            .iter()
            .enumerate()
            .map(|(i, (t, data))| {
                sealed(&draft(coi, &format!("s{i}"), t, data.clone()), i as u64 + 1)
            })
            .collect()
    }

    #[test]
    fn the_chain_guard_holds_under_the_lock_without_reference_data() {
        let coi = "coi/CHA999926000001*";
        let din = "A999926123456";
        let din = format!(
            "{din}{}",
            crate::identifiers::mod37_2_check(din).expect("check")
        );
        let enrolled = json!({"coi": "CHA999926000001*", "patient_key": "PK-1", "product_code": "CART-19",
            "treatment_site_id": "S-LAX-01", "coi_source": "autolog"});
        let collected = json!({"collection_site_id": "S-LAX-01", "operator_id": "P-0005", "device_id": "APH-LAX-01",
            "started_at": "2026-03-01T08:00:00Z", "ended_at": "2026-03-01T12:00:00Z", "dins": [din]});
        let hold = json!({"hold_id": "HOLD-1", "rule": "custody.reconciliation_failed", "findings": ["seal"]});
        let prior = chain_so_far(&[
            ("chain.enrolled", enrolled),
            ("chain.collected", collected),
            ("chain.hold_placed", hold),
        ]);
        let step = draft(
            coi,
            "n1",
            "chain.step_performed",
            json!({"step_code": "MANUFACTURE", "site_id": "S-BOS-01",
            "performed_by": "P-0002", "started_at": "2026-03-02T08:00:00Z"}),
        );
        let e = check_against_stream(&step, None, &prior).expect_err("held");
        assert_eq!(e.field, "body.type");
        assert!(e.rule.contains("on hold (HOLD-1)"), "{e}");
        let release = |id: &str| {
            let mut data = json!({"hold_id": id, "site_id": "S-BOS-01",
                "resolved_by": "P-0008", "resolution_reason": "checked"});
            let digest = crate::access::signature::record_digest(coi, "chain.hold_released", &data);
            data["signature"] = json!({"signer_id": "P-0008", "printed_name": "Samuel Osei",
                "signed_at": "2026-03-02T10:00:00-05:00[America/New_York]", "meaning": "hold resolved",
                "stream": coi, "record_digest": digest});
            draft(coi, &format!("r-{id}"), "chain.hold_released", data)
        };
        assert_eq!(
            check_against_stream(&release("HOLD-1"), None, &prior),
            Ok(())
        );
        let e = check_against_stream(&release("HOLD-2"), None, &prior).expect_err("not open");
        assert_eq!(e.field, "body.data.hold_id");
        // Autolog's own hold is never superseded by a correction.
        let mut undo = draft(
            coi,
            "undo",
            "annotation.recorded",
            json!({"text": "never mind"}),
        );
        undo.actor = "person/P-0002".into();
        let mut autolog_hold = prior.clone();
        autolog_hold[2].actor = AUTOLOG_ACTOR.to_string();
        let e = check_against_stream(&undo, Some(autolog_hold[2].event_id), &autolog_hold)
            .expect_err("Autolog's hold");
        assert_eq!(e.field, "corrects");
        // Nor is a hold placed by a person corrected away: holds are released, not corrected.
        let e = check_against_stream(&undo, Some(prior[2].event_id), &prior).expect_err("a hold");
        assert!(e.rule.contains("not corrected"), "{e}");
    }

    #[test]
    fn a_release_is_stopped_under_the_lock_by_a_deviation_or_failure_that_raced_it() {
        let enrolled = json!({"coi": "CHA999926000001*", "patient_key": "PK-1", "product_code": "CART-19",
            "treatment_site_id": "S-LAX-01", "coi_source": "autolog"});
        let din = "A999926123456";
        let din = format!(
            "{din}{}",
            crate::identifiers::mod37_2_check(din).expect("check")
        );
        let batch = json!({"batch_id": "B-1", "site_id": "S-BOS-01", "created_by": "P-0002", "source_dins": [din]});
        let deviation = json!({"deviation_id": "DEV-9", "batch_id": "B-1", "site_id": "S-BOS-01",
            "opened_by": "P-0002", "category": "process", "summary": "late"});
        let prior = chain_so_far(&[
            ("chain.enrolled", enrolled),
            ("batch.created", batch),
            ("deviation.opened", deviation),
        ]);
        // What check_chain_state runs under the lock for a release.
        let events = crate::chain::ChainEvent::of_events(&prior).expect("typed");
        let entries: Vec<crate::chain::ChainEntry> = events
            .iter()
            .map(crate::chain::ChainEvent::as_entry)
            .collect();
        let view = crate::chain::ChainView::fold(entries.iter().copied(), &Default::default());
        let blockers = crate::batch::release_blockers(
            &entries,
            &view,
            &crate::batch::ReleaseCheck {
                batch_id: "B-1",
                intended_patient_key: "PK-1",
                exceptional: false,
                required_tests: None,
            },
        );
        assert_eq!(blockers.len(), 1, "{blockers:?}");
        assert_eq!(blockers[0].field, "deviations.DEV-9");
        // Another batch's deviation does not block B-1.
        let none = crate::batch::release_blockers(
            &entries,
            &view,
            &crate::batch::ReleaseCheck {
                batch_id: "B-2",
                intended_patient_key: "PK-1",
                exceptional: false,
                required_tests: None,
            },
        );
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn a_registration_opens_its_own_stream_once() {
        let first = draft("site/S-1", "r1", "site.registered", site("S-1"));
        assert_eq!(check_against_stream(&first, None, &[]), Ok(()));
        let wrong = draft("site/S-2", "r2", "site.registered", site("S-1"));
        let e = check_against_stream(&wrong, None, &[]).expect_err("wrong stream");
        assert!(e.rule.contains("site/S-1"), "{e}");
        let prior = vec![sealed(&first, 1)];
        let again = draft("site/S-1", "r3", "site.registered", site("S-1"));
        let e = check_against_stream(&again, None, &prior).expect_err("registered twice");
        assert!(e.rule.contains("already registered"), "{e}");
        assert_eq!(
            check_against_stream(&again, Some(prior[0].event_id), &prior),
            Ok(()),
            "a correction restates it"
        );
    }

    #[test]
    fn crosswalk_mappings_of_one_code_never_overlap() {
        let stream = crosswalk_stream("mes-bos", "site");
        let first = draft(
            &stream,
            "m1",
            "crosswalk.mapped",
            mapping(
                "BOS1",
                "S-BOS-01",
                "2026-01-01T00:00:00Z",
                Some("2026-07-01T00:00:00Z"),
            ),
        );
        assert_eq!(check_against_stream(&first, None, &[]), Ok(()));
        let prior = vec![sealed(&first, 1)];
        let overlapping = draft(
            &stream,
            "m2",
            "crosswalk.mapped",
            mapping("BOS1", "S-BOS-02", "2026-06-01T00:00:00Z", None),
        );
        let e = check_against_stream(&overlapping, None, &prior).expect_err("overlap");
        assert!(e.rule.contains("S-BOS-01"), "{e}");
        let next = draft(
            &stream,
            "m3",
            "crosswalk.mapped",
            mapping("BOS1", "S-BOS-02", "2026-07-01T00:00:00Z", None),
        );
        assert_eq!(check_against_stream(&next, None, &prior), Ok(()));
        assert_eq!(
            check_against_stream(&overlapping, Some(prior[0].event_id), &prior),
            Ok(()),
            "a correction replaces the mapping"
        );
        let other_code = draft(
            &stream,
            "m4",
            "crosswalk.mapped",
            mapping("BOS2", "S-BOS-02", "2026-01-01T00:00:00Z", None),
        );
        assert_eq!(check_against_stream(&other_code, None, &prior), Ok(()));
        let misplaced = draft(
            "crosswalk/lims/site",
            "m5",
            "crosswalk.mapped",
            mapping("BOS1", "S-BOS-02", "2026-08-01T00:00:00Z", None),
        );
        assert_eq!(
            check_against_stream(&misplaced, None, &prior)
                .expect_err("stream")
                .field,
            "stream"
        );
    }

    #[test]
    fn an_amendment_needs_its_registration() {
        let amend = draft("site/S-1", "a1", "site.amended", json!({"name": "New"}));
        let e = check_against_stream(&amend, None, &[]).expect_err("no registration");
        assert_eq!(e.field, "stream");
        assert!(e.rule.contains("site.registered"), "{e}");
        let reg = sealed(&draft("site/S-1", "r1", "site.registered", site("S-1")), 1);
        assert_eq!(
            check_against_stream(&amend, None, std::slice::from_ref(&reg)),
            Ok(())
        );
        let misplaced = draft("person/S-1", "a2", "site.amended", json!({"name": "New"}));
        assert!(
            check_against_stream(&misplaced, None, std::slice::from_ref(&reg))
                .expect_err("wrong stream")
                .rule
                .contains("site/<id>")
        );
        // An amendment cannot stand in for the registration it would supersede.
        assert!(check_against_stream(&amend, Some(reg.event_id), &[reg]).is_err());
    }

    #[test]
    fn references_name_the_records_an_event_relies_on() {
        let mut d = draft(
            "crosswalk/mes-bos/person",
            "m1",
            "crosswalk.mapped",
            json!({"system": "mes-bos", "kind": "person", "local_code": "dk", "canonical_id": "P-1", "valid_from": "2026-01-01T00:00:00Z"}),
        );
        d.site = Some("S-BOS-01".into());
        assert_eq!(
            references(&d),
            vec![
                ("site".to_string(), "site/S-BOS-01".to_string()),
                (
                    "body.data.system".to_string(),
                    "source-system/mes-bos".to_string()
                ),
                (
                    "body.data.canonical_id".to_string(),
                    "person/P-1".to_string()
                ),
            ]
        );
        let person = draft(
            "person/P-1",
            "p1",
            "personnel.registered",
            json!({"person_id": "P-1", "printed_name": "A", "qualifications": [
                {"site_id": "S-A", "role": "r", "valid_until": "2027-01-01T00:00:00Z"},
                {"site_id": "S-B", "role": "r", "valid_until": "2027-01-01T00:00:00Z"}]}),
        );
        let streams: Vec<String> = references(&person).into_iter().map(|(_, s)| s).collect();
        assert_eq!(streams, vec!["site/S-A", "site/S-B"]);
        let e = unregistered("body.data.site_id", "site/S-X");
        assert_eq!(
            (e.field.as_str(), e.value.as_str()),
            ("body.data.site_id", "S-X")
        );
        assert!(e.rule.contains("not a registered site"));
    }
}
