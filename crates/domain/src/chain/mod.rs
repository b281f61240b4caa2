//! The chain of identity's custody and state machine: the payloads of chain events after
//! enrolment (handoff, receipt, steps, release, administration, holds) and the pure fold.

pub mod enrolment;
pub use enrolment::COI_SOURCES;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::FieldError;
use crate::ledger::envelope::{check_code as code, check_text};
use crate::ledger::event_type::Check;
use crate::ledger::fields::{list, text};
use crate::ledger::time::Instant;

/// The states of a chain (glossary: enrolled -> collected -> in transit -> ... -> in follow-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainState {
    NotYetEnrolled,
    Enrolled,
    Collected,
    InTransit,
    ReceivedAtManufacturing,
    InManufacturing,
    InTesting,
    ReleasedForPatient,
    ReceivedAtTreatmentCenter,
    Administered,
    InFollowUp,
    OnHold,
    Cancelled,
}

impl ChainState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotYetEnrolled => "not_yet_enrolled",
            Self::Enrolled => "enrolled",
            Self::Collected => "collected",
            Self::InTransit => "in_transit",
            Self::ReceivedAtManufacturing => "received_at_manufacturing",
            Self::InManufacturing => "in_manufacturing",
            Self::InTesting => "in_testing",
            Self::ReleasedForPatient => "released_for_patient",
            Self::ReceivedAtTreatmentCenter => "received_at_treatment_center",
            Self::Administered => "administered",
            Self::InFollowUp => "in_follow_up",
            Self::OnHold => "on_hold",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What the fold needs from reference data: the product's collecting step and the CBV
/// bizStep of each of its steps. Empty (`Default`) under the ledger lock, where only the
/// rules that need no reference data are checked.
#[derive(Debug, Clone, Default)]
pub struct ChainContext {
    pub collecting_step: Option<String>,
    pub biz_steps: BTreeMap<String, String>,
}

/// One event of a chain as the fold reads it.
#[derive(Debug, Clone, Copy)]
pub struct ChainEntry<'a> {
    pub event_id: uuid::Uuid,
    pub event_type: &'a str,
    pub data: &'a Value,
    pub occurred_at: Instant,
    pub site: Option<&'a str>,
}

impl<'a> ChainEntry<'a> {
    pub fn of_event(e: &'a crate::Event) -> Self {
        Self {
            event_id: e.event_id,
            event_type: e.body.event_type.as_str(),
            data: &e.body.data,
            occurred_at: e.occurred_at.instant,
            site: e.site.as_deref(),
        }
    }
}

/// A handoff not yet answered by a receipt.
#[derive(Debug, Clone)]
pub struct OpenHandoff {
    pub handoff_id: String,
    pub event_id: uuid::Uuid,
    pub data: Value,
    pub handed_off_at: Instant,
    /// A return: the material goes back to the custodian of record after its receipt
    /// failed reconciliation (see `ChainView::is_return`).
    pub returning: bool,
}

/// An open hold.
#[derive(Debug, Clone)]
pub struct OpenHold {
    pub hold_id: String,
    pub event_id: uuid::Uuid,
    pub data: Value,
    pub placed_at: Instant,
}

/// The chain as folded from its effective events.
#[derive(Debug, Clone)]
pub struct ChainView {
    pub state: ChainState,
    /// The state to return to when every hold is released.
    pub resume_state: ChainState,
    /// Whether the chain's product was released for the patient (the final-product phase).
    pub released: bool,
    /// The site holding custody of record: it passes with a reconciled receipt, and with
    /// the resolution of a receipt that failed reconciliation (not before).
    pub custodian_site_id: Option<String>,
    /// Where the material physically is: the collection site, then each receiving site
    /// (`None` while in transit). It differs from the custodian while custody is disputed.
    pub location_site_id: Option<String>,
    /// A receipt that failed reconciliation: the material is at the receiving site, but
    /// custody of record stays with the sender until the hold it caused is released.
    pub disputed_custody: Option<DisputedCustody>,
    /// The last receipt applied and the custodian before it (to undo the passing of custody
    /// when the receipt's reconciliation hold follows).
    last_receipt: Option<LastReceipt>,
    /// The site the order names for the collection (the enrolment's collection site, or
    /// its treatment site, until the treatment center assigns another): only it collects.
    pub collection_site_id: Option<String>,
    pub open_handoff: Option<OpenHandoff>,
    /// Every handoff id used, answered or not.
    pub handoff_ids: Vec<String>,
    pub holds: Vec<OpenHold>,
    /// The first instant each step code was performed (for the process windows).
    pub performed: BTreeMap<String, Instant>,
    /// Units (DINs and other unit identifiers) the chain holds.
    pub units: Vec<String>,
    /// Batches created on the chain, in order.
    pub batches: Vec<String>,
    /// Final units of each batch.
    pub batch_units: BTreeMap<String, Vec<String>>,
    /// Deviations by id: the batch they concern and, once closed, the disposition.
    pub deviations: BTreeMap<String, Deviation>,
    /// Final units that passed the bedside check (canonical identifiers).
    pub bedside_verified: Vec<String>,
    /// Legal holds in force (their ids).
    pub legal_holds: Vec<String>,
    /// When each final unit expires (as produced, or as a signed QA decision extended it).
    pub unit_expiry: BTreeMap<String, Instant>,
    /// The chain this one collects again (its enrolment's `previous_coi`).
    pub previous_coi: Option<String>,
    /// The chain that collects this patient again: this episode makes no more progress.
    pub succeeded_by: Option<String>,
    /// Where each container of the chain is (its bags by DIN, its final units): the site
    /// holding it, or `None` while it travels. A handoff moves exactly the units it lists.
    pub unit_sites: BTreeMap<String, Option<String>>,
    /// Who holds custody of record of each container: its collection or production site,
    /// then each receiving site once the receipt reconciles (the sender while disputed).
    pub unit_custodians: BTreeMap<String, String>,
    /// The shippers the chain's handoffs used, by container id.
    pub shippers: BTreeMap<String, Shipper>,
    /// Sample shipments on their way, by shipment id.
    pub sample_shipments: BTreeMap<String, SampleShipment>,
    /// Where each sample is (the laboratory that received it).
    pub sample_sites: BTreeMap<String, String>,
}

/// The last receipt applied: its event, the custodian before it, what it answered.
#[derive(Debug, Clone)]
struct LastReceipt {
    event_id: uuid::Uuid,
    custodian_before: Option<String>,
    units: Vec<String>,
    container_id: String,
}

/// A shipper (a dry shipper, a cool box: the handoff's `container_id`): where it is and
/// who holds custody of record of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipper {
    pub handoff_id: String,
    /// `None` while it travels.
    pub at_site: Option<String>,
    pub custodian_site_id: Option<String>,
}

/// Custody in dispute: a receipt at `receiving_site_id` failed reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputedCustody {
    pub handoff_id: String,
    pub receiving_site_id: String,
    /// What that receipt answered: the units and the shipper whose custody is disputed.
    pub units: Vec<String>,
    pub container_id: String,
    /// The hold whose release passes custody to the receiving site.
    pub hold_id: String,
}

/// What a held chain still records, because it happened: a bag that arrives is received,
/// a test that ran has its result. They are checked as in the state the chain will resume
/// (the receipt must answer the open handoff), and leave the chain on hold. Everything that
/// moves the material on (manufacturing, release, shipment, bedside, administration) waits.
pub const FACTS_ON_HOLD: &[&str] = &["custody.received", "batch.test_result_recorded"];

/// A deviation as the chain knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    pub batch_id: Option<String>,
    pub disposition: Option<String>,
    /// The results it investigates (their event ids).
    pub result_event_ids: Vec<String>,
}

impl Default for ChainView {
    fn default() -> Self {
        Self {
            state: ChainState::NotYetEnrolled,
            resume_state: ChainState::NotYetEnrolled,
            released: false,
            custodian_site_id: None,
            location_site_id: None,
            disputed_custody: None,
            last_receipt: None,
            collection_site_id: None,
            open_handoff: None,
            handoff_ids: Vec::new(),
            holds: Vec::new(),
            performed: BTreeMap::new(),
            units: Vec::new(),
            batches: Vec::new(),
            batch_units: BTreeMap::new(),
            deviations: BTreeMap::new(),
            bedside_verified: Vec::new(),
            legal_holds: Vec::new(),
            unit_expiry: BTreeMap::new(),
            previous_coi: None,
            succeeded_by: None,
            unit_sites: BTreeMap::new(),
            unit_custodians: BTreeMap::new(),
            shippers: BTreeMap::new(),
            sample_shipments: BTreeMap::new(),
            sample_sites: BTreeMap::new(),
        }
    }
}

/// Event types that record something about a chain without moving it (allowed in any
/// state, on hold and cancelled included).
pub const STATE_NEUTRAL: &[&str] = &[
    "annotation.recorded",
    "chain.hold_placed",
    "batch.test_result_evaluated",
];

/// Why the state machine refuses an event: the field to name (`body.type` unless a
/// payload field is at fault) and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub rule: String,
}

impl Refusal {
    fn of_type(rule: impl Into<String>) -> Self {
        Refusal {
            field: "body.type",
            rule: rule.into(),
        }
    }

    fn at(field: &'static str, rule: impl Into<String>) -> Self {
        Refusal {
            field,
            rule: rule.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl ChainView {
    /// Folds a chain's effective events, in order. Events the state machine would refuse
    /// are not expected here (they were refused at append); they are applied leniently.
    pub fn fold<'a>(entries: impl IntoIterator<Item = ChainEntry<'a>>, ctx: &ChainContext) -> Self {
        let mut view = Self::default();
        for entry in entries {
            // Lenient: a stored event the machine would refuse leaves the state as it was.
            let _ = view.advance(&entry, ctx);
        }
        view
    }

    /// Applies one more event; returns the rule it breaks where it stands, if any (the
    /// event is applied all the same, leaving the state as it was: what was recorded was
    /// recorded, and the reconciliation report names it).
    pub fn advance(&mut self, entry: &ChainEntry, ctx: &ChainContext) -> Result<(), Refusal> {
        let (next, verdict) = match self.transition(entry, ctx) {
            Ok(next) => (next, Ok(())),
            Err(refusal) => (self.state, Err(refusal)),
        };
        self.apply(entry, next, ctx);
        verdict
    }

    /// The state an event moves the chain to, or the rule it breaks in the current state.
    pub fn transition(
        &self,
        entry: &ChainEntry,
        ctx: &ChainContext,
    ) -> Result<ChainState, Refusal> {
        if let Some(decided) = self.guard(entry, ctx)? {
            return Ok(decided);
        }
        self.step_transition(entry, ctx).map_err(Refusal::of_type)
    }

    /// The state machine as checked again under the ledger lock, where the fold has no
    /// reference data: there it cannot tell testing from manufacturing (a step's CBV
    /// bizStep is unknown), so that one distinction is left to the check made before the
    /// lock; every other transition is checked exactly.
    pub fn check_locked(&self, entry: &ChainEntry) -> Result<(), Refusal> {
        self.transition(entry, &ChainContext::default()).map(|_| ())
    }

    /// The events that keep the record, decided whatever the chain's progress (a note, a
    /// legal hold, a deviation, a hold and its release, an expiry extension, the link to a
    /// re-collection): `Some` state when `entry` is one of them, `None` otherwise.
    fn record_keeping(&self, entry: &ChainEntry) -> Result<Option<ChainState>, Refusal> {
        use ChainState::*;
        let event_type = entry.event_type;
        let data = entry.data;
        match event_type {
            "annotation.recorded" | "batch.test_result_evaluated" => Ok(Some(self.state)),
            // Legal holds concern the records, not the material: any state, cancelled too.
            "chain.legal_hold_placed" | "chain.legal_hold_released" => {
                self.legal_hold_check(event_type, data)
            }
            // An expiry extension is a signed decision about a final unit of the chain: it
            // does not move the chain (a held chain's unit may be extended too).
            "unit.expiry_extended" => {
                let unit = text(data, "unit");
                if !self.batch_units.values().flatten().any(|u| u == unit) {
                    return Err(Refusal::at(
                        "body.data.unit",
                        format!("{unit} is not a final unit of this chain"),
                    ));
                }
                Ok(Some(self.state))
            }
            // Samples move on their own: a sample shipment does not move the chain.
            "sample.handed_off" => {
                let id = text(data, "shipment_id");
                if self.sample_shipments.contains_key(id) {
                    return Err(Refusal::at(
                        "body.data.shipment_id",
                        format!("sample shipment {id} is already on its way"),
                    ));
                }
                Ok(Some(self.state))
            }
            "sample.received" => self.sample_receipt_check(data),
            // A return is what happened to the material: recorded on a held chain and on
            // a chain collected again; it does not move the chain on.
            "custody.handed_off" if self.is_return(data) => {
                let id = text(data, "handoff_id");
                if self.handoff_ids.iter().any(|h| h == id) {
                    return Err(Refusal::at(
                        "body.data.handoff_id",
                        format!("handoff {id} was already used on this chain"),
                    ));
                }
                Ok(Some(self.state))
            }
            "custody.received" if self.open_handoff.as_ref().is_some_and(|o| o.returning) => {
                self.return_receipt_check(entry)
            }
            // The link to the chain that collects the patient again: once.
            "chain.recollected" => {
                if let Some(next) = &self.succeeded_by {
                    return Err(Refusal::at(
                        "body.data.next_coi",
                        format!("the chain was already collected again as chain {next}"),
                    ));
                }
                if matches!(self.state, Administered | InFollowUp) {
                    return Err(Refusal::of_type(
                        "an administered chain is not collected again: a new treatment is a new enrolment",
                    ));
                }
                Ok(Some(self.state))
            }
            // Deviations are opened, investigated and closed whatever the chain's state.
            "deviation.opened" => self.deviation_opened_check(data),
            "deviation.investigated" | "deviation.closed" => {
                let id = text(data, "deviation_id");
                match self.deviations.get(id) {
                    Some(d) if d.disposition.is_none() => Ok(Some(self.state)),
                    Some(_) => Err(Refusal::at(
                        "body.data.deviation_id",
                        format!("deviation {id} is closed"),
                    )),
                    None => Err(Refusal::at(
                        "body.data.deviation_id",
                        format!("deviation {id} was never opened on this chain"),
                    )),
                }
            }
            "chain.hold_placed" => {
                let hold_id = text(data, "hold_id");
                if self.holds.iter().any(|h| h.hold_id == hold_id) {
                    return Err(Refusal::at(
                        "body.data.hold_id",
                        format!("hold {hold_id} is already open on this chain"),
                    ));
                }
                Ok(Some(if self.state == Cancelled {
                    Cancelled
                } else {
                    OnHold
                }))
            }
            // A hold is released even on a cancelled chain (the material still exists).
            "chain.hold_released" => self.hold_release_check(data),
            _ => Ok(None),
        }
    }

    /// A legal hold placed that is not in force, or released that is.
    fn legal_hold_check(
        &self,
        event_type: &str,
        data: &Value,
    ) -> Result<Option<ChainState>, Refusal> {
        let id = text(data, "legal_hold_id");
        let open = self.legal_holds.iter().any(|h| h == id);
        match (event_type, open) {
            ("chain.legal_hold_placed", true) => Err(Refusal::at(
                "body.data.legal_hold_id",
                format!("legal hold {id} is already in force"),
            )),
            ("chain.legal_hold_released", false) => Err(Refusal::at(
                "body.data.legal_hold_id",
                format!("legal hold {id} is not in force on this chain"),
            )),
            _ => Ok(Some(self.state)),
        }
    }

    /// A sample receipt answers a shipment on its way: its destination, all its samples.
    fn sample_receipt_check(&self, data: &Value) -> Result<Option<ChainState>, Refusal> {
        let id = text(data, "shipment_id");
        let Some(shipment) = self.sample_shipments.get(id) else {
            return Err(Refusal::at(
                "body.data.shipment_id",
                format!("names sample shipment {id}, which is not on its way on this chain"),
            ));
        };
        let receiving = text(data, "receiving_site_id");
        if receiving != shipment.destination_site_id {
            return Err(Refusal::at(
                "body.data.receiving_site_id",
                format!(
                    "is not the shipment's destination ({})",
                    shipment.destination_site_id
                ),
            ));
        }
        let received = list(data, "samples");
        if received != shipment.samples {
            return Err(Refusal::at(
                "body.data.samples",
                format!(
                    "are not the samples shipped ({})",
                    shipment.samples.join(", ")
                ),
            ));
        }
        Ok(Some(self.state))
    }

    /// The receipt of a return answers it, after it.
    fn return_receipt_check(&self, entry: &ChainEntry) -> Result<Option<ChainState>, Refusal> {
        use ChainState::*;
        let data = entry.data;

        let id = text(data, "handoff_id");
        let open = self
            .open_handoff
            .as_ref()
            .map(|o| (o.handoff_id.as_str(), o.handed_off_at));
        if let Some((open_id, handed_off_at)) = open {
            if open_id != id {
                return Err(Refusal::at(
                            "body.data.handoff_id",
                            format!("names handoff {id}, but the open handoff of this chain is the return {open_id}"),
                        ));
            }
            if entry.occurred_at < handed_off_at {
                return Err(Refusal::at(
                    "occurred_at",
                    format!("a receipt cannot come before its handoff ({handed_off_at})"),
                ));
            }
        }
        // Back where it was before the shipment: it may be shipped again once
        // every hold is resolved.
        Ok(Some(if self.state == OnHold {
            OnHold
        } else {
            self.before_shipment()
        }))
    }

    /// A deviation is opened once, about a batch of this chain.
    fn deviation_opened_check(&self, data: &Value) -> Result<Option<ChainState>, Refusal> {
        let id = text(data, "deviation_id");
        if let Some(batch) = data.get("batch_id").and_then(Value::as_str) {
            if !self.batches.iter().any(|b| b == batch) {
                return Err(Refusal::at(
                            "body.data.batch_id",
                            format!("batch {batch} is not a batch of this chain: a deviation names its own chain's batch"),
                        ));
            }
        }
        if self.deviations.contains_key(id) {
            return Err(Refusal::at(
                "body.data.deviation_id",
                format!("deviation {id} was already opened on this chain"),
            ));
        }
        Ok(Some(self.state))
    }

    /// Only an open hold is released; the last one resumes the chain.
    fn hold_release_check(&self, data: &Value) -> Result<Option<ChainState>, Refusal> {
        use ChainState::*;

        let hold_id = text(data, "hold_id");
        if !self.holds.iter().any(|h| h.hold_id == hold_id) {
            return Err(Refusal::at(
                "body.data.hold_id",
                format!(
                    "hold {hold_id} is not open on this chain (open holds: {})",
                    self.open_hold_ids()
                ),
            ));
        }
        Ok(Some(if self.state == Cancelled {
            Cancelled
        } else if self.holds.len() == 1 {
            self.resume_state
        } else {
            OnHold
        }))
    }

    /// The open holds' ids, for a refusal.
    fn open_hold_ids(&self) -> String {
        let ids: Vec<&str> = self.holds.iter().map(|h| h.hold_id.as_str()).collect();
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    }

    /// Decides the events whose outcome does not depend on the process (`Some`), refuses
    /// what no state allows, and leaves the rest to `step_transition` (`None`).
    fn guard(&self, entry: &ChainEntry, ctx: &ChainContext) -> Result<Option<ChainState>, Refusal> {
        use ChainState::*;
        if let Some(decided) = self.record_keeping(entry)? {
            return Ok(Some(decided));
        }
        let event_type = entry.event_type;
        let data = entry.data;
        if self.state == Cancelled {
            return Err(Refusal::of_type(
                "the chain is cancelled: nothing more is recorded on it",
            ));
        }
        // A held chain may still be cancelled (a patient withdraws) and still records what
        // happened (FACTS_ON_HOLD); nothing else moves it.
        // A chain collected again makes no more progress: its episode is closed, what
        // happens to its material (a receipt, a result) is still recorded.
        if let Some(next) = &self.succeeded_by {
            if !FACTS_ON_HOLD.contains(&event_type) && event_type != "chain.cancelled" {
                return Err(Refusal::of_type(format!(
                    "the patient was collected again as chain {next}: this episode makes no more progress (record the new episode on {next})"
                )));
            }
        }
        let fact_on_hold = self.state == OnHold && FACTS_ON_HOLD.contains(&event_type);
        if self.state == OnHold && event_type != "chain.cancelled" && !fact_on_hold {
            return Err(Refusal::of_type(format!(
                "the chain is on hold ({}): no step is accepted until every hold is resolved by a qualified person (what happened meanwhile, a receipt or a test result, is still recorded)",
                self.open_hold_ids()
            )));
        }
        match event_type {
            "chain.collected" => {
                let site = text(data, "collection_site_id");
                if let Some(assigned) = self.collection_site_id.as_deref() {
                    if site != assigned {
                        return Err(Refusal::at(
                            "body.data.collection_site_id",
                            format!(
                                "is not this chain's collection site ({assigned}): the order decides who collects; the treatment center assigns another site with chain.collection_site_assigned"
                            ),
                        ));
                    }
                }
            }
            "custody.handed_off" => {
                if let Some(open) = &self.open_handoff {
                    return Err(Refusal::at(
                        "body.data.handoff_id",
                        format!(
                            "handoff {} is still open: it must be received before the next handoff",
                            open.handoff_id
                        ),
                    ));
                }
                let id = text(data, "handoff_id");
                if self.handoff_ids.iter().any(|h| h == id) {
                    return Err(Refusal::at(
                        "body.data.handoff_id",
                        format!("handoff {id} was already used on this chain"),
                    ));
                }
            }
            "custody.received" => {
                let id = text(data, "handoff_id");
                match &self.open_handoff {
                    Some(open) if open.handoff_id == id => {
                        if entry.occurred_at < open.handed_off_at {
                            return Err(Refusal::at(
                                "occurred_at",
                                format!(
                                    "a receipt cannot come before its handoff ({})",
                                    open.handed_off_at
                                ),
                            ));
                        }
                    }
                    Some(open) => {
                        return Err(Refusal::at(
                            "body.data.handoff_id",
                            format!(
                                "names handoff {id}, but the open handoff of this chain is {}",
                                open.handoff_id
                            ),
                        ))
                    }
                    None => {
                        return Err(Refusal::at(
                            "body.data.handoff_id",
                            format!("names handoff {id}, but no handoff of this chain is open"),
                        ))
                    }
                }
            }
            _ => {}
        }
        if fact_on_hold {
            // Checked as in the state the chain resumes; the chain stays on hold.
            self.resuming()
                .step_transition(entry, ctx)
                .map_err(Refusal::of_type)?;
            return Ok(Some(OnHold));
        }
        Ok(None)
    }

    /// The chain as it will be once its holds are released.
    fn resuming(&self) -> ChainView {
        ChainView {
            state: self.resume_state,
            ..self.clone()
        }
    }

    /// The state a step moves the chain to under the product's process, or the rule it
    /// breaks in the current state.
    fn step_transition(
        &self,
        entry: &ChainEntry,
        ctx: &ChainContext,
    ) -> Result<ChainState, String> {
        use ChainState::*;
        let event_type = entry.event_type;
        let data = entry.data;
        let allowed = |from: &[ChainState], to: ChainState| -> Result<ChainState, String> {
            if from.contains(&self.state) {
                Ok(to)
            } else {
                let names: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
                Err(format!(
                    "is not accepted while the chain is {}; {event_type} follows {}",
                    self.state.as_str(),
                    names.join(" or ")
                ))
            }
        };
        match event_type {
            "chain.enrolled" => allowed(&[NotYetEnrolled], Enrolled),
            "chain.cancelled" => {
                if matches!(self.state, Administered | InFollowUp) {
                    Err("an administered chain cannot be cancelled".into())
                } else {
                    allowed(&[self.state], Cancelled)
                }
            }
            "chain.collected" => allowed(&[Enrolled, Collected], Collected),
            "chain.collection_site_assigned" => allowed(&[Enrolled, Collected], self.state),
            "custody.handed_off" => allowed(
                &[Collected, ReceivedAtManufacturing, ReleasedForPatient],
                InTransit,
            ),
            "custody.received" => {
                let to = if self.released {
                    ReceivedAtTreatmentCenter
                } else {
                    ReceivedAtManufacturing
                };
                allowed(&[InTransit], to)
            }
            "chain.step_performed" => {
                let step = text(data, "step_code");
                match ctx.biz_steps.get(step).map(String::as_str) {
                    // Under the ledger lock, without reference data: any step past receipt.
                    None => allowed(
                        &[
                            ReceivedAtManufacturing,
                            InManufacturing,
                            InTesting,
                            ReceivedAtTreatmentCenter,
                        ],
                        self.state,
                    )
                    .map(|_| {
                        if self.state == ReceivedAtManufacturing {
                            InManufacturing
                        } else {
                            self.state
                        }
                    }),
                    Some("inspecting" | "sampling") => {
                        allowed(&[InManufacturing, InTesting], InTesting)
                    }
                    Some("unpacking") => {
                        allowed(&[ReceivedAtTreatmentCenter], ReceivedAtTreatmentCenter)
                    }
                    Some(_) => {
                        allowed(&[ReceivedAtManufacturing, InManufacturing], InManufacturing)
                    }
                }
            }
            // Without the process (under the ledger lock) testing looks like manufacturing.
            "batch.created" => {
                let id = text(data, "batch_id");
                if self.batches.iter().any(|b| b == id) {
                    return Err(format!("batch {id} was already created on this chain"));
                }
                allowed(&[ReceivedAtManufacturing, InManufacturing], InManufacturing)
            }
            "batch.material_consumed" | "batch.units_produced" | "batch.test_result_recorded" => {
                let id = text(data, "batch_id");
                if !self.batches.iter().any(|b| b == id) {
                    return Err(format!(
                        "names batch {id}, which is not a batch of this chain (batches: {})",
                        if self.batches.is_empty() {
                            "none".to_string()
                        } else {
                            self.batches.join(", ")
                        }
                    ));
                }
                // A result that arrives after the release (a sterility culture reads on
                // day 14) is what happened: recorded where the chain is, without moving it.
                if event_type == "batch.test_result_recorded" && self.released {
                    return Ok(self.state);
                }
                let to = if event_type == "batch.test_result_recorded" {
                    InTesting
                } else {
                    self.state
                };
                allowed(&[InManufacturing, InTesting], to)
            }
            "chain.released" if ctx.biz_steps.is_empty() => {
                allowed(&[InManufacturing, InTesting], ReleasedForPatient)
            }
            "chain.released" => allowed(&[InTesting], ReleasedForPatient),
            "chain.bedside_verified" => {
                allowed(&[ReceivedAtTreatmentCenter], ReceivedAtTreatmentCenter)
            }
            "chain.exceptional_release_requested" => {
                allowed(&[InManufacturing, InTesting], self.state)
            }
            "chain.administered" => allowed(&[ReceivedAtTreatmentCenter], Administered),
            "chain.follow_up_recorded" => allowed(&[Administered, InFollowUp], InFollowUp),
            _ => Ok(self.state),
        }
    }

    fn apply(&mut self, entry: &ChainEntry, next: ChainState, ctx: &ChainContext) {
        let data = entry.data;
        match entry.event_type {
            "chain.enrolled" => self.apply_enrolled(data),
            "chain.collection_site_assigned" => {
                self.collection_site_id = Some(text(data, "collection_site_id").to_string());
            }
            "chain.collected" => self.apply_collected(entry, ctx),
            "custody.handed_off" => self.apply_handoff(entry),
            "custody.received" => self.apply_receipt(entry, ctx),
            "batch.test_result_recorded" if self.state == ChainState::OnHold => {
                self.resume_state = self
                    .resuming()
                    .step_transition(entry, ctx)
                    .unwrap_or(self.resume_state);
            }
            // A step (a QC test on samples at a laboratory, say) does not move custody:
            // only a reconciled receipt does.
            "chain.released" => self.released = true,
            "chain.legal_hold_placed" => self
                .legal_holds
                .push(text(data, "legal_hold_id").to_string()),
            "chain.legal_hold_released" => {
                let id = text(data, "legal_hold_id");
                self.legal_holds.retain(|h| h != id);
            }
            "chain.recollected" => {
                self.succeeded_by = Some(text(data, "next_coi").to_string());
            }
            "sample.handed_off" | "sample.received" => self.apply_samples(entry),
            "unit.expiry_extended" => {
                if let Ok(expiry) = Instant::parse_rfc3339("expires_at", text(data, "expires_at")) {
                    self.unit_expiry
                        .insert(text(data, "unit").to_string(), expiry);
                }
            }
            "chain.bedside_verified" => {
                if let Ok(scanned) =
                    crate::identifiers::scan::parse_scan("unit_scan", text(data, "unit_scan"))
                {
                    self.bedside_verified.push(scanned.unit_id());
                }
            }
            "batch.created" => self.batches.push(text(data, "batch_id").to_string()),
            "batch.units_produced" => self.apply_units_produced(data),
            "deviation.opened" | "deviation.closed" => self.apply_deviation(entry),
            "chain.hold_placed" => self.apply_hold_placed(entry),
            "chain.hold_released" => self.apply_hold_released(data),
            _ => {}
        }
        if let Some(step) = data.get("step_code").and_then(Value::as_str) {
            self.performed
                .entry(step.to_string())
                .or_insert(entry.occurred_at);
        }
        self.state = next;
    }

    fn apply_enrolled(&mut self, data: &Value) {
        self.previous_coi = data
            .get("previous_coi")
            .and_then(Value::as_str)
            .map(str::to_string);
        let treatment = text(data, "treatment_site_id").to_string();
        let collection = text(data, "collection_site_id");
        self.collection_site_id = Some(if collection.is_empty() {
            treatment.clone()
        } else {
            collection.to_string()
        });
        self.custodian_site_id = Some(treatment);
    }

    fn apply_collected(&mut self, entry: &ChainEntry, ctx: &ChainContext) {
        let data = entry.data;
        self.custodian_site_id = Some(text(data, "collection_site_id").to_string());
        self.location_site_id = self.custodian_site_id.clone();
        for din in list(data, "dins") {
            self.unit_sites
                .insert(din.clone(), self.custodian_site_id.clone());
            self.unit_custodians
                .insert(din.clone(), text(data, "collection_site_id").to_string());
            if !self.units.contains(&din) {
                self.units.push(din);
            }
        }
        if let Some(step) = &ctx.collecting_step {
            let at = data
                .get("ended_at")
                .and_then(Value::as_str)
                .and_then(|t| Instant::parse_rfc3339("ended_at", t).ok())
                .unwrap_or(entry.occurred_at);
            self.performed.entry(step.clone()).or_insert(at);
        }
    }

    /// A handoff: its units and shipper travel, and it stays open until its receipt.
    fn apply_handoff(&mut self, entry: &ChainEntry) {
        let data = entry.data;
        let id = text(data, "handoff_id").to_string();
        let returning = self.is_return(data);
        if returning {
            // The dispute ends with the return: custody of record never passed.
            self.disputed_custody = None;
        }
        self.location_site_id = None;
        for unit in list(data, "units") {
            self.unit_sites.insert(unit, None);
        }
        self.shippers.insert(
            text(data, "container_id").to_string(),
            Shipper {
                handoff_id: id.clone(),
                at_site: None,
                custodian_site_id: self.custodian_site_id.clone(),
            },
        );
        self.handoff_ids.push(id.clone());
        self.open_handoff = Some(OpenHandoff {
            handoff_id: id,
            event_id: entry.event_id,
            data: data.clone(),
            handed_off_at: entry.occurred_at,
            returning,
        });
    }

    /// A receipt: what the open handoff carried is at the receiving site, which holds
    /// custody of record unless the receipt's reconciliation hold follows.
    fn apply_receipt(&mut self, entry: &ChainEntry, ctx: &ChainContext) {
        let data = entry.data;
        let receiving = text(data, "receiving_site_id").to_string();
        let returned = self.open_handoff.as_ref().is_some_and(|o| o.returning);
        if returned {
            self.resume_state = self.before_shipment();
        }
        let (units, container_id) = self
            .open_handoff
            .as_ref()
            .map(|open| {
                (
                    list(&open.data, "units"),
                    text(&open.data, "container_id").to_string(),
                )
            })
            .unwrap_or_default();
        for unit in &units {
            self.unit_sites
                .insert(unit.clone(), Some(receiving.clone()));
            self.unit_custodians.insert(unit.clone(), receiving.clone());
        }
        if let Some(shipper) = self.shippers.get_mut(&container_id) {
            shipper.at_site = Some(receiving.clone());
            shipper.custodian_site_id = Some(receiving.clone());
        }
        self.last_receipt = Some(LastReceipt {
            event_id: entry.event_id,
            custodian_before: self.custodian_site_id.clone(),
            units,
            container_id,
        });
        self.open_handoff = None;
        self.location_site_id = Some(receiving.clone());
        self.custodian_site_id = Some(receiving);
        if self.state == ChainState::OnHold && !returned {
            // Received while held: the chain resumes past the receipt.
            self.resume_state = self
                .resuming()
                .step_transition(entry, ctx)
                .unwrap_or(self.resume_state);
        }
    }

    fn apply_samples(&mut self, entry: &ChainEntry) {
        let data = entry.data;
        if entry.event_type == "sample.handed_off" {
            self.sample_shipments.insert(
                text(data, "shipment_id").to_string(),
                SampleShipment {
                    samples: list(data, "samples"),
                    destination_site_id: text(data, "destination_site_id").to_string(),
                },
            );
        } else if let Some(shipment) = self.sample_shipments.remove(text(data, "shipment_id")) {
            for sample in shipment.samples {
                self.sample_sites
                    .insert(sample, text(data, "receiving_site_id").to_string());
            }
        }
    }

    fn apply_units_produced(&mut self, data: &Value) {
        let produced = list(data, "units");
        let made_at = text(data, "site_id").to_string();
        for unit in &produced {
            self.unit_sites.insert(unit.clone(), Some(made_at.clone()));
            self.unit_custodians.insert(unit.clone(), made_at.clone());
        }
        if let Some(expiry) = data
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|t| Instant::parse_rfc3339("expires_at", t).ok())
        {
            for unit in &produced {
                self.unit_expiry.insert(unit.clone(), expiry);
            }
        }
        for unit in &produced {
            if !self.units.contains(unit) {
                self.units.push(unit.clone());
            }
        }
        self.batch_units
            .entry(text(data, "batch_id").to_string())
            .or_default()
            .extend(produced);
    }

    fn apply_deviation(&mut self, entry: &ChainEntry) {
        let data = entry.data;
        let id = text(data, "deviation_id");
        if entry.event_type == "deviation.opened" {
            self.deviations.insert(
                id.to_string(),
                Deviation {
                    batch_id: data
                        .get("batch_id")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    disposition: None,
                    result_event_ids: list(data, "result_event_ids"),
                },
            );
        } else if let Some(d) = self.deviations.get_mut(id) {
            d.disposition = Some(text(data, "disposition").to_string());
        }
    }

    fn apply_hold_placed(&mut self, entry: &ChainEntry) {
        let data = entry.data;
        if self.state != ChainState::OnHold {
            self.resume_state = self.state;
        }
        self.dispute_receipt(data);
        self.holds.push(OpenHold {
            hold_id: text(data, "hold_id").to_string(),
            event_id: entry.event_id,
            data: data.clone(),
            placed_at: entry.occurred_at,
        });
    }

    fn apply_hold_released(&mut self, data: &Value) {
        let id = text(data, "hold_id");
        self.holds.retain(|h| h.hold_id != id);
        // The discrepancy is resolved: custody of record passes to where it is.
        if self
            .disputed_custody
            .as_ref()
            .is_some_and(|d| d.hold_id == id)
        {
            if let Some(disputed) = self.disputed_custody.take() {
                self.set_custodian(
                    &disputed.units,
                    &disputed.container_id,
                    &disputed.receiving_site_id,
                );
                self.custodian_site_id = Some(disputed.receiving_site_id);
            }
        }
    }
}

impl ChainView {
    /// Whether a handoff is a return: while custody is disputed (a receipt failed
    /// reconciliation), the material goes from where it is back to the custodian of record.
    pub fn is_return(&self, handoff: &Value) -> bool {
        self.disputed_custody.as_ref().is_some_and(|d| {
            text(handoff, "from_site_id") == d.receiving_site_id
                && self.custodian_site_id.as_deref() == Some(text(handoff, "destination_site_id"))
        })
    }

    /// Where a chain stands once returned material is back: collected (starting material),
    /// or released for the patient (the final product).
    fn before_shipment(&self) -> ChainState {
        if self.released {
            ChainState::ReleasedForPatient
        } else {
            ChainState::Collected
        }
    }

    /// The first of `units` expired at `at`, with its expiry.
    pub fn expired_unit<'u>(
        &self,
        units: impl IntoIterator<Item = &'u str>,
        at: Instant,
    ) -> Option<(String, Instant)> {
        units.into_iter().find_map(|unit| {
            self.unit_expiry
                .get(unit)
                .filter(|expiry| **expiry <= at)
                .map(|expiry| (unit.to_string(), *expiry))
        })
    }

    /// A hold placed because the last receipt failed reconciliation takes back the custody
    /// that receipt passed: the material is at the receiver, custody stays with the sender
    /// until the hold is released.
    fn dispute_receipt(&mut self, hold: &Value) {
        if text(hold, "rule") != "custody.reconciliation_failed" {
            return;
        }
        let Some(receipt) = self.last_receipt.clone() else {
            return;
        };
        if text(hold, "caused_by_event_id") != receipt.event_id.to_string() {
            return;
        }
        let receiving = self.custodian_site_id.clone().unwrap_or_default();
        let handoff_id = self.handoff_ids.last().cloned().unwrap_or_default();
        if let Some(before) = &receipt.custodian_before {
            self.set_custodian(&receipt.units, &receipt.container_id, before);
        }
        self.custodian_site_id = receipt.custodian_before;
        self.disputed_custody = Some(DisputedCustody {
            handoff_id,
            receiving_site_id: receiving,
            units: receipt.units,
            container_id: receipt.container_id,
            hold_id: text(hold, "hold_id").to_string(),
        });
    }

    /// Custody of record of these units and their shipper passes to `site`.
    fn set_custodian(&mut self, units: &[String], container_id: &str, site: &str) {
        for unit in units {
            self.unit_custodians.insert(unit.clone(), site.to_string());
        }
        if let Some(shipper) = self.shippers.get_mut(container_id) {
            shipper.custodian_site_id = Some(site.to_string());
        }
    }
}

/// Samples of the chain (QC aliquots, retains) sent to a laboratory: units with their own
/// custody, apart from the chain's material. The destination then takes part in the chain.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SampleHandedOffV1 {
    shipment_id: String,
    samples: Vec<String>,
    from_site_id: String,
    destination_site_id: String,
    handed_off_by: String,
}

impl Check for SampleHandedOffV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("shipment_id", &self.shipment_id)?;
        sample_list(&self.samples)?;
        code("from_site_id", &self.from_site_id)?;
        code("destination_site_id", &self.destination_site_id)?;
        code("handed_off_by", &self.handed_off_by)
    }
}

/// Samples received by the laboratory a sample shipment names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SampleReceivedV1 {
    shipment_id: String,
    samples: Vec<String>,
    receiving_site_id: String,
    received_by: String,
}

impl Check for SampleReceivedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("shipment_id", &self.shipment_id)?;
        sample_list(&self.samples)?;
        code("receiving_site_id", &self.receiving_site_id)?;
        code("received_by", &self.received_by)
    }
}

fn sample_list(samples: &[String]) -> Result<(), FieldError> {
    if samples.is_empty() {
        return Err(FieldError::new(
            "samples",
            "[]",
            "lists at least one sample",
        ));
    }
    for (i, sample) in samples.iter().enumerate() {
        code(&format!("samples[{i}]"), sample)?;
        if samples[..i].contains(sample) {
            return Err(FieldError::new(
                format!("samples[{i}]"),
                sample,
                "appears twice",
            ));
        }
    }
    Ok(())
}

/// A sample shipment on its way: what was sent, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleShipment {
    pub samples: Vec<String>,
    pub destination_site_id: String,
}

/// A temperature range in degrees Celsius.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemperatureRange {
    min_celsius: f64,
    max_celsius: f64,
}

fn temperature(field: &str, range: &TemperatureRange) -> Result<(), FieldError> {
    for (name, v) in [
        ("min_celsius", range.min_celsius),
        ("max_celsius", range.max_celsius),
    ] {
        if !(-273.15..=100.0).contains(&v) {
            return Err(FieldError::new(
                format!("{field}.{name}"),
                v.to_string(),
                "must be a temperature between -273.15 and 100 degrees Celsius",
            ));
        }
    }
    if range.min_celsius > range.max_celsius {
        return Err(FieldError::new(
            format!("{field}.max_celsius"),
            range.max_celsius.to_string(),
            format!("must not be below min_celsius ({})", range.min_celsius),
        ));
    }
    Ok(())
}

fn instant(field: &str, value: &str) -> Result<Instant, FieldError> {
    Instant::parse_rfc3339(field, value)
}

/// A unit identifier as a manifest states it: a DIN with its check character, or a GS1
/// element string in parenthesised form, e.g. `(01)09506000134352(21)S1`.
fn unit_id(field: &str, value: &str) -> Result<(), FieldError> {
    let scanned = crate::identifiers::scan::parse_scan(field, value)?;
    let canonical = scanned.unit_id();
    if canonical != value {
        return Err(FieldError::new(
            field,
            value,
            format!("must be given as the unit identifier {canonical}"),
        ));
    }
    Ok(())
}

fn unit_list(field: &str, units: &[String], what: &str) -> Result<(), FieldError> {
    if units.is_empty() {
        return Err(FieldError::new(
            field,
            "[]",
            format!("lists at least one {what}"),
        ));
    }
    for (i, unit) in units.iter().enumerate() {
        let f = format!("{field}[{i}]");
        unit_id(&f, unit)?;
        if units[..i].contains(unit) {
            return Err(FieldError::new(f, unit, "appears twice"));
        }
    }
    Ok(())
}

/// The sender's manifest of a change of hands.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustodyHandedOffV1 {
    handoff_id: String,
    step_code: String,
    from_site_id: String,
    handed_off_by: String,
    destination_site_id: String,
    courier: String,
    units: Vec<String>,
    unit_count: u32,
    container_id: String,
    seal_id: String,
    expected_arrival_by: String,
    temperature_range: TemperatureRange,
}

impl Check for CustodyHandedOffV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("handoff_id", &self.handoff_id)?;
        code("step_code", &self.step_code)?;
        code("from_site_id", &self.from_site_id)?;
        code("handed_off_by", &self.handed_off_by)?;
        code("destination_site_id", &self.destination_site_id)?;
        code("courier", &self.courier)?;
        unit_list("units", &self.units, "unit")?;
        if self.unit_count as usize != self.units.len() {
            return Err(FieldError::new(
                "unit_count",
                self.unit_count.to_string(),
                format!(
                    "must equal the number of units listed ({})",
                    self.units.len()
                ),
            ));
        }
        check_text("container_id", &self.container_id, 64)?;
        check_text("seal_id", &self.seal_id, 64)?;
        instant("expected_arrival_by", &self.expected_arrival_by)?;
        if self.from_site_id == self.destination_site_id {
            return Err(FieldError::new(
                "destination_site_id",
                &self.destination_site_id,
                "must differ from from_site_id: a handoff changes hands between sites",
            ));
        }
        temperature("temperature_range", &self.temperature_range)
    }
}

/// One label as scanned on arrival: the unit's barcode data and, where the label carries
/// one, the COI as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScannedLabel {
    unit: String,
    coi: Option<String>,
}

/// The temperature logger's summary for the leg.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemperatureLog {
    min_celsius: f64,
    max_celsius: f64,
    logger_id: Option<String>,
}

/// The receiver's receipt: what arrived, as scanned.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustodyReceivedV1 {
    handoff_id: String,
    step_code: String,
    receiving_site_id: String,
    received_by: String,
    scanned_labels: Vec<ScannedLabel>,
    container_id: String,
    seal_id: String,
    /// Whether the seal was found intact (required: a missing answer is not an intact seal).
    /// Read by the reconciliation from the payload; any boolean is valid here.
    #[allow(dead_code)]
    seal_intact: bool,
    temperature_log: TemperatureLog,
}

impl Check for CustodyReceivedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("handoff_id", &self.handoff_id)?;
        code("step_code", &self.step_code)?;
        code("receiving_site_id", &self.receiving_site_id)?;
        code("received_by", &self.received_by)?;
        if self.scanned_labels.is_empty() {
            return Err(FieldError::new(
                "scanned_labels",
                "[]",
                "a receipt scans every label that arrived (at least one)",
            ));
        }
        for (i, label) in self.scanned_labels.iter().enumerate() {
            crate::identifiers::scan::parse_scan(
                &format!("scanned_labels[{i}].unit"),
                &label.unit,
            )?;
            if let Some(coi) = &label.coi {
                crate::identifiers::Coi::parse(&format!("scanned_labels[{i}].coi"), coi)?;
            }
        }
        check_text("container_id", &self.container_id, 64)?;
        check_text("seal_id", &self.seal_id, 64)?;
        let log = TemperatureRange {
            min_celsius: self.temperature_log.min_celsius,
            max_celsius: self.temperature_log.max_celsius,
        };
        temperature("temperature_log", &log)?;
        if let Some(id) = &self.temperature_log.logger_id {
            code("temperature_log.logger_id", id)?;
        }
        Ok(())
    }
}

/// A process step performed on the chain's material (manufacturing, testing, thaw).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainStepPerformedV1 {
    step_code: String,
    site_id: String,
    performed_by: String,
    #[serde(default)]
    equipment_ids: Vec<String>,
    started_at: String,
    ended_at: Option<String>,
}

impl Check for ChainStepPerformedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("step_code", &self.step_code)?;
        code("site_id", &self.site_id)?;
        code("performed_by", &self.performed_by)?;
        for (i, e) in self.equipment_ids.iter().enumerate() {
            code(&format!("equipment_ids[{i}]"), e)?;
        }
        let started = instant("started_at", &self.started_at)?;
        if let Some(ended) = &self.ended_at {
            if instant("ended_at", ended)? < started {
                return Err(FieldError::new(
                    "ended_at",
                    ended,
                    format!("must not be earlier than started_at ({started})"),
                ));
            }
        }
        Ok(())
    }
}

/// A batch is released for its patient: the batch, the intended patient (as the QA
/// decision names them) and the final units released.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainReleasedV1 {
    /// The signature as recorded; its binding is checked with the stream it stands in
    /// (`signature::check_manifestation`).
    #[allow(dead_code)]
    signature: Value,
    batch_id: String,
    intended_patient_key: String,
    site_id: String,
    released_by: String,
    units: Vec<String>,
    /// An exceptional release of an out-of-specification product: a treating physician's
    /// signed request, and a second qualified person's signature.
    exceptional: Option<bool>,
    second_released_by: Option<String>,
    #[allow(dead_code)]
    second_signature: Option<Value>,
}

impl Check for ChainReleasedV1 {
    fn check(&self) -> Result<(), FieldError> {
        if self.exceptional == Some(true) {
            match &self.second_released_by {
                None => {
                    return Err(FieldError::new(
                        "second_released_by",
                        "(absent)",
                        "an exceptional release needs a second qualified person's signature",
                    ))
                }
                Some(second) if *second == self.released_by => {
                    return Err(FieldError::new(
                        "second_released_by",
                        second,
                        "must be another person than released_by: two people sign an exceptional release",
                    ))
                }
                Some(second) => code("second_released_by", second)?,
            }
        } else if self.second_released_by.is_some() {
            return Err(FieldError::new(
                "second_released_by",
                self.second_released_by.as_deref().unwrap_or_default(),
                "is given only for an exceptional release (exceptional: true)",
            ));
        }
        code("batch_id", &self.batch_id)?;
        code("intended_patient_key", &self.intended_patient_key)?;
        code("site_id", &self.site_id)?;
        code("released_by", &self.released_by)?;
        unit_list("units", &self.units, "released unit")
    }
}

/// The product is administered to the patient.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainAdministeredV1 {
    step_code: String,
    site_id: String,
    administered_by: String,
    verified_by: String,
    unit: String,
}

impl Check for ChainAdministeredV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("step_code", &self.step_code)?;
        code("site_id", &self.site_id)?;
        code("administered_by", &self.administered_by)?;
        code("verified_by", &self.verified_by)?;
        if self.verified_by == self.administered_by {
            return Err(FieldError::new(
                "verified_by",
                &self.verified_by,
                "must be a second person, not the one administering",
            ));
        }
        unit_id("unit", &self.unit)
    }
}

/// A treating physician's signed request to release an out-of-specification batch to its
/// patient (the first half of an exceptional release).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainExceptionalReleaseRequestedV1 {
    batch_id: String,
    intended_patient_key: String,
    /// The out-of-specification results the physician accepts (their event ids); only
    /// these are waived.
    result_event_ids: Vec<String>,
    site_id: String,
    requested_by: String,
    justification: String,
    #[allow(dead_code)]
    signature: Value,
}

impl Check for ChainExceptionalReleaseRequestedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("batch_id", &self.batch_id)?;
        code("intended_patient_key", &self.intended_patient_key)?;
        if self.result_event_ids.is_empty() {
            return Err(FieldError::new(
                "result_event_ids",
                "[]",
                "names the out-of-specification results the request accepts (at least one)",
            ));
        }
        crate::ledger::fields::uuid_list("result_event_ids", &self.result_event_ids)?;
        code("site_id", &self.site_id)?;
        code("requested_by", &self.requested_by)?;
        check_text("justification", &self.justification, 2000)
    }
}

/// A legal hold: the chain's records are kept past any retention period until released.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainLegalHoldV1 {
    legal_hold_id: String,
    person_id: String,
    reason: String,
}

impl Check for ChainLegalHoldV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("legal_hold_id", &self.legal_hold_id)?;
        code("person_id", &self.person_id)?;
        check_text("reason", &self.reason, 1000)
    }
}

/// The bedside check before infusion: the unit's label as scanned, and the patient's two
/// identifiers as the treatment center holds them (pseudonymous key, COI on the wristband).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainBedsideVerifiedV1 {
    unit_scan: String,
    patient_key: String,
    wristband_coi: String,
    site_id: String,
    verified_by: String,
    /// The patient's identifiers as read at the bedside (wristband, chart): compared with
    /// the personal-data vault by Autolog and removed before the record is written; the
    /// ledger keeps only `identifiers_checked`.
    #[allow(dead_code)]
    patient_identifiers: Option<serde_json::Map<String, Value>>,
    /// Recorded by Autolog: which identifiers matched the vault (names, never values).
    #[serde(default)]
    identifiers_checked: Vec<String>,
}

impl Check for ChainBedsideVerifiedV1 {
    fn check(&self) -> Result<(), FieldError> {
        match crate::identifiers::scan::parse_scan("unit_scan", &self.unit_scan)? {
            crate::identifiers::scan::Scanned::Unit(_) => {}
            _ => return Err(FieldError::new(
                "unit_scan",
                &self.unit_scan,
                "must be a final unit's label (COI, product code, division and check character)",
            )),
        }
        code("patient_key", &self.patient_key)?;
        crate::identifiers::Coi::parse("wristband_coi", &self.wristband_coi)?;
        code("site_id", &self.site_id)?;
        for (i, name) in self.identifiers_checked.iter().enumerate() {
            code(&format!("identifiers_checked[{i}]"), name)?;
        }
        code("verified_by", &self.verified_by)
    }
}

/// A long-term follow-up visit is recorded against the chain (pseudonymous codes only).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainFollowUpRecordedV1 {
    site_id: String,
    recorded_by: String,
    visit_code: String,
    outcome_code: String,
}

impl Check for ChainFollowUpRecordedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("site_id", &self.site_id)?;
        code("recorded_by", &self.recorded_by)?;
        code("visit_code", &self.visit_code)?;
        code("outcome_code", &self.outcome_code)
    }
}

/// Severities of an alert and of the findings behind a hold.
pub const SEVERITIES: &[&str] = &["critical", "major", "minor"];

/// A hold on a chain: no step is accepted until it is released.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainHoldPlacedV1 {
    hold_id: String,
    rule: String,
    findings: Vec<String>,
    site_id: Option<String>,
    caused_by_event_id: Option<String>,
}

impl Check for ChainHoldPlacedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("hold_id", &self.hold_id)?;
        code("rule", &self.rule)?;
        if self.findings.is_empty() {
            return Err(FieldError::new(
                "findings",
                "[]",
                "a hold states at least one finding",
            ));
        }
        for (i, f) in self.findings.iter().enumerate() {
            check_text(&format!("findings[{i}]"), f, 1000)?;
        }
        if let Some(site) = &self.site_id {
            code("site_id", site)?;
        }
        if let Some(id) = &self.caused_by_event_id {
            uuid::Uuid::parse_str(id).map_err(|e| {
                FieldError::new("caused_by_event_id", id, format!("must be a UUID ({e})"))
            })?;
        }
        Ok(())
    }
}

/// A hold is resolved, with a reason, by a qualified person.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainHoldReleasedV1 {
    /// The signature as recorded; its binding is checked with the stream it stands in
    /// (`signature::check_manifestation`).
    #[allow(dead_code)]
    signature: Value,
    hold_id: String,
    site_id: String,
    resolved_by: String,
    resolution_reason: String,
}

impl Check for ChainHoldReleasedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("hold_id", &self.hold_id)?;
        code("site_id", &self.site_id)?;
        code("resolved_by", &self.resolved_by)?;
        check_text("resolution_reason", &self.resolution_reason, 1000)
    }
}

/// An alert raised by Autolog (stream alert/<alert_id>).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRaisedV1 {
    pub alert_id: String,
    /// `critical`, `major` or `minor`.
    pub severity: String,
    /// The rule that raised it, e.g. `custody.reconciliation_failed`.
    pub rule: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coi: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_id: Option<String>,
    /// The event that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// What the rule saw (a record of the cause, shaped per rule).
    pub evidence: Value,
}

impl Check for AlertRaisedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("alert_id", &self.alert_id)?;
        if !SEVERITIES.contains(&self.severity.as_str()) {
            return Err(FieldError::new(
                "severity",
                &self.severity,
                format!("must be one of {}", SEVERITIES.join(", ")),
            ));
        }
        code("rule", &self.rule)?;
        check_text("message", &self.message, 2000)?;
        if let Some(coi) = &self.coi {
            crate::identifiers::Coi::parse("coi", coi)?;
        }
        if let Some(site) = &self.site_id {
            code("site_id", site)?;
        }
        if let Some(id) = &self.event_id {
            uuid::Uuid::parse_str(id)
                .map_err(|e| FieldError::new("event_id", id, format!("must be a UUID ({e})")))?;
        }
        if !self.evidence.is_object() {
            return Err(FieldError::new(
                "evidence",
                crate::error::show(&self.evidence),
                "must be a JSON object",
            ));
        }
        Ok(())
    }
}

/// An alert is acknowledged (seen, being handled) or resolved, by a person.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertHandledV1 {
    pub person_id: String,
    pub note: String,
}

impl Check for AlertHandledV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("person_id", &self.person_id)?;
        check_text("note", &self.note, 1000)
    }
}

/// The treatment center sends the patient to another apheresis center than the order
/// named: from now on only that site may record the chain's collection.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainCollectionSiteAssignedV1 {
    collection_site_id: String,
    reason: String,
}

impl Check for ChainCollectionSiteAssignedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("collection_site_id", &self.collection_site_id)?;
        check_text("reason", &self.reason, 500)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry<'a>(event_type: &'a str, data: &'a Value) -> ChainEntry<'a> {
        ChainEntry {
            event_id: uuid::Uuid::now_v7(),
            event_type,
            data,
            occurred_at: Instant::MIN,
            site: None,
        }
    }

    #[test]
    fn the_chain_moves_through_its_states_and_a_hold_stops_it() {
        let ctx = ChainContext {
            collecting_step: Some("COLLECT".into()),
            biz_steps: [
                ("MANUFACTURE".to_string(), "assembling".to_string()),
                ("QC-TEST".to_string(), "inspecting".to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let enrolled = json!({"treatment_site_id": "S-LAX-01"});
        let collected = json!({"collection_site_id": "S-LAX-01", "dins": ["A999926000001X"]});
        let handoff = json!({"handoff_id": "H1", "step_code": "SHIP-OUT"});
        let receipt = json!({"handoff_id": "H1", "receiving_site_id": "S-BOS-01"});
        let hold = json!({"hold_id": "HOLD-1"});
        let release_hold = json!({"hold_id": "HOLD-1"});
        let mfg = json!({"step_code": "MANUFACTURE", "site_id": "S-BOS-01"});
        let events = [
            entry("chain.enrolled", &enrolled),
            entry("chain.collected", &collected),
            entry("custody.handed_off", &handoff),
            entry("custody.received", &receipt),
            entry("chain.hold_placed", &hold),
        ];
        let view = ChainView::fold(events, &ctx);
        assert_eq!(view.state, ChainState::OnHold);
        assert_eq!(view.resume_state, ChainState::ReceivedAtManufacturing);
        assert_eq!(view.custodian_site_id.as_deref(), Some("S-BOS-01"));
        let refused = view.transition(&entry("chain.step_performed", &mfg), &ctx);
        assert!(refused
            .expect_err("on hold")
            .rule
            .contains("on hold (HOLD-1)"));
        let resumed = view
            .transition(&entry("chain.hold_released", &release_hold), &ctx)
            .expect("open hold");
        assert_eq!(resumed, ChainState::ReceivedAtManufacturing);
        let wrong = json!({"hold_id": "HOLD-9"});
        assert!(view
            .transition(&entry("chain.hold_released", &wrong), &ctx)
            .expect_err("unknown hold")
            .rule
            .contains("HOLD-9"));
    }

    #[test]
    fn steps_out_of_order_are_refused_with_the_expected_predecessor() {
        let ctx = ChainContext::default();
        let enrolled = json!({"treatment_site_id": "S-LAX-01"});
        let view = ChainView::fold([entry("chain.enrolled", &enrolled)], &ctx);
        let administered = json!({"unit": "x"});
        let rule = view
            .transition(&entry("chain.administered", &administered), &ctx)
            .expect_err("out of order")
            .rule;
        assert!(rule.contains("while the chain is enrolled"), "{rule}");
        assert!(rule.contains("received_at_treatment_center"), "{rule}");
        let receipt = json!({"handoff_id": "H1"});
        assert!(view
            .transition(&entry("custody.received", &receipt), &ctx)
            .expect_err("no handoff")
            .rule
            .contains("no handoff"));
    }
}
