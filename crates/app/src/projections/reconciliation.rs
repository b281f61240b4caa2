//! Network reconciliation: one pass over every chain for what needs a person's attention
//! (open holds, unanswered handoffs, units on two chains, steps out of order, bad references).

use std::collections::{BTreeMap, HashMap};

use autolog_domain::catalogue::Payload;
use autolog_domain::chain::{ChainContext, ChainView};
use autolog_domain::rules::{references, unregistered};
use autolog_domain::{Event, Instant};
use serde_json::Value;

use crate::chain::rule_reads::RuleReads;
use crate::ledger::read::text;
use crate::{AppError, Autolog};

impl Autolog {
    /// The reconciliation report over all chains, as of now: one list per finding kind.
    pub async fn reconciliation(&self) -> Result<Reconciliation, AppError> {
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
            let mut product = String::new();
            for e in effective
                .iter()
                .filter(|e| e.body.event_type == "chain.enrolled")
            {
                if let Payload::ChainEnrolled(enrolled) = crate::ledger::read::payload_of(e)? {
                    product = enrolled.product_code;
                    break;
                }
            }
            if !contexts.contains_key(&product) {
                let ctx = self.chain_context(&product, &RuleReads::default()).await?;
                contexts.insert(product.clone(), ctx);
            }
            let ctx = contexts.get(&product).cloned().unwrap_or_default();
            // Fold step by step, noting every event the state machine would not accept.
            let mut view = ChainView::default();
            for event in &effective {
                let typed = crate::chain::custody::entry_of(event)?;
                let entry = typed.as_entry();
                let state_before = view.state.as_str();
                if let Err(refusal) = view.advance(&entry, &ctx) {
                    out_of_order.push(StepOutOfOrder {
                        coi: coi.clone(),
                        event_id: event.event_id.to_string(),
                        event_type: event.body.event_type.clone(),
                        state_before: state_before.to_string(),
                        field: refusal.field.to_string(),
                        rule: refusal.rule,
                    });
                }
                note_units(event, &coi, &mut unit_chains);
                self.note_unresolved(event, &coi, &mut registered, &mut unresolved)
                    .await?;
            }
            for hold in &view.holds {
                open_holds.push(HoldOpen {
                    coi: coi.clone(),
                    hold_id: hold.hold_id.clone(),
                    rule: hold.hold.rule.clone(),
                    findings: hold.hold.findings.clone(),
                    site_id: hold.hold.site_id.clone(),
                    placed_at: hold.placed_at.to_string(),
                    event_id: hold.event_id.to_string(),
                });
            }
            if let Some(open) = &view.open_handoff {
                let h = &open.handoff;
                let due = Instant::parse_rfc3339("expected_arrival_by", &h.expected_arrival_by);
                if due.is_ok_and(|d| d < now) {
                    unanswered.push(HandoffUnanswered {
                        coi: coi.clone(),
                        handoff_id: open.handoff_id.clone(),
                        from_site_id: h.from_site_id.clone(),
                        destination_site_id: h.destination_site_id.clone(),
                        handed_off_at: open.handed_off_at.to_string(),
                        expected_arrival_by: h.expected_arrival_by.clone(),
                        event_id: open.event_id.to_string(),
                    });
                }
            }
        }
        let shared_units: Vec<UnitOnSeveralChains> = unit_chains
            .into_iter()
            .filter(|(_, chains)| chains.len() > 1)
            .map(|(unit, chains)| UnitOnSeveralChains { unit, chains })
            .collect();
        let unmapped: Vec<CodeUnmapped> = self
            .store
            .unmapped_codes()
            .await?
            .into_iter()
            .map(|u| CodeUnmapped {
                system: u.system,
                kind: u.kind,
                code: u.code,
                count: u.count,
                last_seen: u.last_seen.to_string(),
            })
            .collect();
        let clean = open_holds.is_empty()
            && unanswered.is_empty()
            && shared_units.is_empty()
            && out_of_order.is_empty()
            && unresolved.is_empty()
            && unmapped.is_empty();
        Ok(Reconciliation {
            as_of: known_at.to_string(),
            chains,
            clean,
            open_holds,
            unanswered_handoffs: unanswered,
            units_on_several_chains: shared_units,
            steps_out_of_order: out_of_order,
            unresolved_references: unresolved,
            unmapped_codes: unmapped,
        })
    }

    /// Events naming a registry record that does not exist (now): a site or person whose
    /// reference data did not resolve.
    async fn note_unresolved(
        &self,
        event: &Event,
        coi: &str,
        registered: &mut HashMap<String, bool>,
        out: &mut Vec<UnresolvedReference>,
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
                out.push(UnresolvedReference {
                    coi: coi.to_string(),
                    event_id: event.event_id.to_string(),
                    event_type: event.body.event_type.clone(),
                    field,
                    value: refusal.value,
                    rule: refusal.rule,
                });
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

/// The network's reconciliation as known at `as_of`: every chain folded again, and what
/// does not add up. `clean` when every list is empty.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Reconciliation {
    pub as_of: String,
    /// How many chains were reconciled.
    pub chains: usize,
    pub clean: bool,
    pub open_holds: Vec<HoldOpen>,
    /// Handoffs past their expected arrival with no receipt.
    pub unanswered_handoffs: Vec<HandoffUnanswered>,
    pub units_on_several_chains: Vec<UnitOnSeveralChains>,
    /// Events the chain's state machine would not accept where they stand.
    pub steps_out_of_order: Vec<StepOutOfOrder>,
    /// Events naming a registry record that does not exist.
    pub unresolved_references: Vec<UnresolvedReference>,
    pub unmapped_codes: Vec<CodeUnmapped>,
}

/// A hold not released (its rule, findings and site as the hold recorded them).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct HoldOpen {
    pub coi: String,
    pub hold_id: String,
    pub rule: String,
    pub findings: Vec<String>,
    pub site_id: Option<String>,
    pub placed_at: String,
    pub event_id: String,
}

/// A handoff past its expected arrival with no receipt.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct HandoffUnanswered {
    pub coi: String,
    pub handoff_id: String,
    pub from_site_id: String,
    pub destination_site_id: String,
    pub handed_off_at: String,
    pub expected_arrival_by: String,
    pub event_id: String,
}

/// A unit identifier that appears on more than one chain.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct UnitOnSeveralChains {
    pub unit: String,
    pub chains: Vec<String>,
}

/// An event the chain's state machine would not accept after the ones before it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct StepOutOfOrder {
    pub coi: String,
    pub event_id: String,
    pub event_type: String,
    pub state_before: String,
    pub field: String,
    pub rule: String,
}

/// An event naming a registry record that does not exist now.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct UnresolvedReference {
    pub coi: String,
    pub event_id: String,
    pub event_type: String,
    pub field: String,
    pub value: String,
    pub rule: String,
}

/// A local code no crosswalk maps, and how often it was sent.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct CodeUnmapped {
    pub system: String,
    pub kind: String,
    pub code: String,
    pub count: u64,
    pub last_seen: String,
}
