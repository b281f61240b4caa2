//! Network reconciliation: one pass over every chain for what needs a person's attention
//! (open holds, unanswered handoffs, units on two chains, steps out of order, bad references).

use std::collections::{BTreeMap, HashMap};

use autolog_domain::chain::{ChainContext, ChainEntry, ChainView};
use autolog_domain::rules::{references, unregistered};
use autolog_domain::{Event, Instant};
use serde_json::{json, Value};

use crate::chain::rule_reads::RuleReads;
use crate::ledger::read::{instant_field, text};
use crate::{AppError, Autolog};

impl Autolog {
    /// The reconciliation report over all chains, as of now: one list per finding kind.
    pub async fn reconciliation(&self) -> Result<Value, AppError> {
        let now = self.now();
        let known_at = self.settled_known_at(None, now).await?;
        let mut contexts: HashMap<String, ChainContext> = HashMap::new();
        let mut open_holds = Vec::new();
        let mut unanswered = Vec::new();
        let mut out_of_order = Vec::new();
        let mut unresolved = Vec::new();
        // unit -> chains it appears on (collected, shipped or scanned)
        let mut unit_chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut registered: HashMap<String, bool> = HashMap::new();
        let streams = self.all_streams_with_prefix("coi/").await?;
        let chains = streams.len();
        for stream in &streams {
            let coi = stream.trim_start_matches("coi/").to_string();
            let events = self.store.stream_events(stream, known_at).await?;
            let effective = autolog_domain::ledger::bitemporal::effective_events(
                &events,
                Instant::MAX,
                known_at,
            );
            let effective = crate::chain::custody::in_recording_order(&effective, &events);
            let product = effective
                .iter()
                .find(|e| e.body.event_type == "chain.enrolled")
                .map(|e| text(&e.body.data, "product_code").to_string())
                .unwrap_or_default();
            if !contexts.contains_key(&product) {
                let enrolment = json!({ "product_code": product });
                let ctx = self
                    .chain_context(&enrolment, &RuleReads::default())
                    .await?;
                contexts.insert(product.clone(), ctx);
            }
            let ctx = contexts.get(&product).cloned().unwrap_or_default();
            // Fold step by step, noting every event the state machine would not accept.
            let mut view = ChainView::default();
            for event in &effective {
                let entry = ChainEntry::of_event(event);
                let state_before = view.state.as_str();
                if let Err(refusal) = view.advance(&entry, &ctx) {
                    out_of_order.push(json!({
                        "coi": coi,
                        "event_id": event.event_id.to_string(),
                        "event_type": event.body.event_type,
                        "state_before": state_before,
                        "field": refusal.field,
                        "rule": refusal.rule,
                    }));
                }
                note_units(event, &coi, &mut unit_chains);
                self.note_unresolved(event, &coi, &mut registered, &mut unresolved)
                    .await?;
            }
            for hold in &view.holds {
                open_holds.push(json!({
                    "coi": coi,
                    "hold_id": hold.hold_id,
                    "rule": hold.data["rule"],
                    "findings": hold.data["findings"],
                    "site_id": hold.data["site_id"],
                    "placed_at": hold.placed_at.to_string(),
                    "event_id": hold.event_id.to_string(),
                }));
            }
            if let Some(handoff) = &view.open_handoff {
                let due = instant_field(&handoff.data, "expected_arrival_by");
                if due.is_some_and(|d| d < now) {
                    unanswered.push(json!({
                        "coi": coi,
                        "handoff_id": handoff.handoff_id,
                        "from_site_id": handoff.data["from_site_id"],
                        "destination_site_id": handoff.data["destination_site_id"],
                        "handed_off_at": handoff.handed_off_at.to_string(),
                        "expected_arrival_by": handoff.data["expected_arrival_by"],
                        "event_id": handoff.event_id.to_string(),
                    }));
                }
            }
        }
        let shared_units: Vec<Value> = unit_chains
            .into_iter()
            .filter(|(_, chains)| chains.len() > 1)
            .map(|(unit, chains)| json!({"unit": unit, "chains": chains}))
            .collect();
        let unmapped: Vec<Value> = self
            .store
            .unmapped_codes()
            .await?
            .into_iter()
            .map(|u| {
                json!({
                    "system": u.system, "kind": u.kind, "code": u.code, "count": u.count,
                    "last_seen": u.last_seen.to_string(),
                })
            })
            .collect();
        let clean = open_holds.is_empty()
            && unanswered.is_empty()
            && shared_units.is_empty()
            && out_of_order.is_empty()
            && unresolved.is_empty()
            && unmapped.is_empty();
        Ok(json!({
            "as_of": known_at.to_string(),
            "chains": chains,
            "clean": clean,
            "open_holds": open_holds,
            "unanswered_handoffs": unanswered,
            "units_on_several_chains": shared_units,
            "steps_out_of_order": out_of_order,
            "unresolved_references": unresolved,
            "unmapped_codes": unmapped,
        }))
    }

    /// Events naming a registry record that does not exist (now): a site or person whose
    /// reference data did not resolve.
    async fn note_unresolved(
        &self,
        event: &Event,
        coi: &str,
        registered: &mut HashMap<String, bool>,
        out: &mut Vec<Value>,
    ) -> Result<(), AppError> {
        let draft = autolog_domain::EventDraft {
            event_id: event.event_id,
            stream: event.stream.clone(),
            occurred_at: event.occurred_at.clone(),
            actor: event.actor.clone(),
            site: event.site.clone(),
            source: event.source.clone(),
            reason: None,
            corrects: None,
            body: event.body.clone(),
        };
        for (field, stream) in references(&draft) {
            if !registered.contains_key(&stream) {
                let exists = self.store.stream_head(&stream).await?.is_some();
                registered.insert(stream.clone(), exists);
            }
            if registered.get(&stream) == Some(&false) {
                let refusal = unregistered(&field, &stream);
                out.push(json!({
                    "coi": coi,
                    "event_id": event.event_id.to_string(),
                    "event_type": event.body.event_type,
                    "field": field,
                    "value": refusal.value,
                    "rule": refusal.rule,
                }));
            }
        }
        Ok(())
    }
}

/// Records on which chains each unit identifier appears.
fn note_units(event: &Event, coi: &str, out: &mut BTreeMap<String, Vec<String>>) {
    let data = &event.body.data;
    let mut units: Vec<String> = Vec::new();
    for key in ["dins", "units"] {
        for u in data
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(u) = u.as_str() {
                units.push(u.to_string());
            }
        }
    }
    if event.body.event_type == "custody.received" {
        let labels = data.get("scanned_labels").and_then(Value::as_array);
        for label in labels.into_iter().flatten() {
            if let Ok(s) =
                autolog_domain::identifiers::scan::parse_scan("unit", text(label, "unit"))
            {
                units.push(s.unit_id());
            }
        }
    }
    for unit in units {
        let chains = out.entry(unit).or_default();
        if !chains.iter().any(|c| c == coi) {
            chains.push(coi.to_string());
        }
    }
}
