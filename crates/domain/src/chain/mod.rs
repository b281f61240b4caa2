//! The chain of identity's state machine: the pure fold of a chain's events (enrolment,
//! custody, steps, release, administration, holds), read in their typed form
//! (`crate::catalogue`), and the rules it checks each new event against.

use std::collections::BTreeMap;

use crate::catalogue::batch::{
    BatchMaterialConsumedV1, BatchTestResultRecordedV1, BatchUnitsProducedV1, DeviationClosedV1,
    DeviationInvestigatedV1, DeviationOpenedV1,
};
use crate::catalogue::chain::{
    ChainHoldPlacedV1, CustodyHandedOffV1, CustodyReceivedV1, SampleReceivedV1,
};
use crate::catalogue::enrolment::{ChainCollectedV1, ChainEnrolledV1};
use crate::catalogue::Payload;
use crate::catalogue::Payload as P;
use serde_json::Value;

use crate::error::FieldError;

use crate::ledger::time::Instant;

mod labels;
pub mod signals;
pub mod summary;

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
    /// Every state, in the order of the glossary.
    pub const ALL: [ChainState; 13] = [
        Self::NotYetEnrolled,
        Self::Enrolled,
        Self::Collected,
        Self::InTransit,
        Self::ReceivedAtManufacturing,
        Self::InManufacturing,
        Self::InTesting,
        Self::ReleasedForPatient,
        Self::ReceivedAtTreatmentCenter,
        Self::Administered,
        Self::InFollowUp,
        Self::OnHold,
        Self::Cancelled,
    ];

    /// The state named `text` (as [`ChainState::as_str`] writes it).
    pub fn parse(text: &str) -> Option<ChainState> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

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

/// One event of a chain as the fold reads it: its payload in typed form, beside the
/// canonical JSON it was read from.
#[derive(Debug, Clone, Copy)]
pub struct ChainEntry<'a> {
    pub event_id: uuid::Uuid,
    pub event_type: &'a str,
    pub data: &'a Value,
    pub payload: &'a Payload,
    pub occurred_at: Instant,
    pub site: Option<&'a str>,
}

/// An owned chain event (stored, or a draft earlier in the same request) with its payload
/// read into its typed form once, for the fold.
#[derive(Debug, Clone)]
pub struct ChainEvent {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub data: Value,
    pub payload: Payload,
    pub occurred_at: Instant,
    pub site: Option<String>,
}

impl ChainEvent {
    /// A recorded event; its payload must read as its type says (it was checked when
    /// recorded: a payload that does not read is named).
    pub fn of_event(e: &crate::Event) -> Result<Self, FieldError> {
        Ok(ChainEvent {
            event_id: e.event_id,
            event_type: e.body.event_type.clone(),
            payload: Payload::read(&e.body.event_type, e.body.version, &e.body.data)?,
            data: e.body.data.clone(),
            occurred_at: e.occurred_at.instant,
            site: e.site.clone(),
        })
    }

    /// A draft, checked already (its payload reads).
    pub fn of_draft(d: &crate::EventDraft) -> Result<Self, FieldError> {
        Ok(ChainEvent {
            event_id: d.event_id,
            event_type: d.body.event_type.clone(),
            payload: Payload::read(&d.body.event_type, d.body.version, &d.body.data)?,
            data: d.body.data.clone(),
            occurred_at: d.occurred_at.instant,
            site: d.site.clone(),
        })
    }

    /// Every event of a list, in order.
    pub fn of_events<'e>(
        events: impl IntoIterator<Item = &'e crate::Event>,
    ) -> Result<Vec<Self>, FieldError> {
        events.into_iter().map(Self::of_event).collect()
    }

    pub fn as_entry(&self) -> ChainEntry<'_> {
        ChainEntry {
            event_id: self.event_id,
            event_type: &self.event_type,
            data: &self.data,
            payload: &self.payload,
            occurred_at: self.occurred_at,
            site: self.site.as_deref(),
        }
    }
}

/// A handoff not yet answered by a receipt.
#[derive(Debug, Clone)]
pub struct OpenHandoff {
    pub handoff_id: String,
    pub event_id: uuid::Uuid,
    /// The handoff as recorded, and in its typed form (the manifest a receipt answers).
    pub data: Value,
    pub handoff: CustodyHandedOffV1,
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
    /// The hold as recorded.
    pub data: Value,
    /// The hold in its typed form: rule, findings, where it was placed (its release is
    /// decided there) and what caused it.
    pub hold: ChainHoldPlacedV1,
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
    /// Every label printed on the chain, by label id.
    pub labels: BTreeMap<String, PrintedLabel>,
}

/// A label printed for one of the chain's containers.
#[derive(Debug, Clone, PartialEq)]
pub struct PrintedLabel {
    pub container: String,
    pub container_kind: String,
    pub copy: u32,
    pub voided: bool,
    pub event_id: uuid::Uuid,
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
            labels: BTreeMap::new(),
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
        match entry.payload {
            P::AnnotationRecorded(_) | P::BatchTestResultEvaluated(_) => Ok(Some(self.state)),
            // Legal holds concern the records, not the material: any state, cancelled too.
            P::ChainLegalHoldPlaced(h) => self.legal_hold_check(true, &h.legal_hold_id),
            P::ChainLegalHoldReleased(h) => self.legal_hold_check(false, &h.legal_hold_id),
            // An expiry extension is a signed decision about a final unit of the chain: it
            // does not move the chain (a held chain's unit may be extended too).
            P::UnitExpiryExtended(x) => {
                let unit = &x.unit;
                if !self.batch_units.values().flatten().any(|u| u == unit) {
                    return Err(Refusal::at(
                        "body.data.unit",
                        format!("{unit} is not a final unit of this chain"),
                    ));
                }
                Ok(Some(self.state))
            }
            // Samples move on their own: a sample shipment does not move the chain.
            P::SampleHandedOff(s) => {
                let id = &s.shipment_id;
                if self.sample_shipments.contains_key(id) {
                    return Err(Refusal::at(
                        "body.data.shipment_id",
                        format!("sample shipment {id} is already on its way"),
                    ));
                }
                Ok(Some(self.state))
            }
            P::SampleReceived(s) => self.sample_receipt_check(s),
            // A review of the records: in any state, a held or cancelled chain's too.
            P::AuditTrailReviewed(_) => Ok(Some(self.state)),
            P::LabelPrinted(l) => self.label_print_check(l).map(Some),
            P::LabelVoided(v) => self.label_check(&v.label_id, true).map(Some),
            P::LabelVerified(v) => self.label_check(&v.label_id, false).map(Some),
            // A return is what happened to the material: recorded on a held chain and on
            // a chain collected again; it does not move the chain on.
            P::CustodyHandedOff(h) if self.is_return(&h.from_site_id, &h.destination_site_id) => {
                let id = &h.handoff_id;
                if self.handoff_ids.iter().any(|used| used == id) {
                    return Err(Refusal::at(
                        "body.data.handoff_id",
                        format!("handoff {id} was already used on this chain"),
                    ));
                }
                Ok(Some(self.state))
            }
            P::CustodyReceived(r) if self.open_handoff.as_ref().is_some_and(|o| o.returning) => {
                self.return_receipt_check(r, entry.occurred_at)
            }
            // The link to the chain that collects the patient again: once.
            P::ChainRecollected(_) => {
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
            P::DeviationOpened(d) => self.deviation_opened_check(d),
            P::DeviationInvestigated(DeviationInvestigatedV1 { deviation_id, .. })
            | P::DeviationClosed(DeviationClosedV1 { deviation_id, .. }) => {
                let id = deviation_id;
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
            P::ChainHoldPlaced(h) => {
                let hold_id = &h.hold_id;
                if self.holds.iter().any(|open| &open.hold_id == hold_id) {
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
            P::ChainHoldReleased(h) => self.hold_release_check(&h.hold_id),
            _ => Ok(None),
        }
    }

    /// A legal hold placed that is not in force, or released that is.
    fn legal_hold_check(&self, placing: bool, id: &str) -> Result<Option<ChainState>, Refusal> {
        let open = self.legal_holds.iter().any(|h| h == id);
        match (placing, open) {
            (true, true) => Err(Refusal::at(
                "body.data.legal_hold_id",
                format!("legal hold {id} is already in force"),
            )),
            (false, false) => Err(Refusal::at(
                "body.data.legal_hold_id",
                format!("legal hold {id} is not in force on this chain"),
            )),
            _ => Ok(Some(self.state)),
        }
    }

    /// A sample receipt answers a shipment on its way: its destination, all its samples.
    fn sample_receipt_check(&self, r: &SampleReceivedV1) -> Result<Option<ChainState>, Refusal> {
        let id = &r.shipment_id;
        let Some(shipment) = self.sample_shipments.get(id) else {
            return Err(Refusal::at(
                "body.data.shipment_id",
                format!("names sample shipment {id}, which is not on its way on this chain"),
            ));
        };
        if r.receiving_site_id != shipment.destination_site_id {
            return Err(Refusal::at(
                "body.data.receiving_site_id",
                format!(
                    "is not the shipment's destination ({})",
                    shipment.destination_site_id
                ),
            ));
        }
        if r.samples != shipment.samples {
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
    fn return_receipt_check(
        &self,
        r: &CustodyReceivedV1,
        occurred_at: Instant,
    ) -> Result<Option<ChainState>, Refusal> {
        use ChainState::*;
        let id = &r.handoff_id;
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
            if occurred_at < handed_off_at {
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
    fn deviation_opened_check(&self, d: &DeviationOpenedV1) -> Result<Option<ChainState>, Refusal> {
        let id = &d.deviation_id;
        if let Some(batch) = &d.batch_id {
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
    fn hold_release_check(&self, hold_id: &str) -> Result<Option<ChainState>, Refusal> {
        use ChainState::*;
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
        self.custody_check(entry)?;
        if fact_on_hold {
            // Checked as in the state the chain resumes; the chain stays on hold.
            self.resuming()
                .step_transition(entry, ctx)
                .map_err(Refusal::of_type)?;
            return Ok(Some(OnHold));
        }
        Ok(None)
    }

    /// Who collects, and the order of handoffs and receipts: one open handoff at a time,
    /// each handoff id once, a receipt answers the open handoff and comes after it.
    fn custody_check(&self, entry: &ChainEntry) -> Result<(), Refusal> {
        match entry.payload {
            P::ChainCollected(c) => {
                if let Some(assigned) = self.collection_site_id.as_deref() {
                    if c.collection_site_id != assigned {
                        return Err(Refusal::at(
                            "body.data.collection_site_id",
                            format!(
                                "is not this chain's collection site ({assigned}): the order decides who collects; the treatment center assigns another site with chain.collection_site_assigned"
                            ),
                        ));
                    }
                }
            }
            P::CustodyHandedOff(h) => {
                if let Some(open) = &self.open_handoff {
                    return Err(Refusal::at(
                        "body.data.handoff_id",
                        format!(
                            "handoff {} is still open: it must be received before the next handoff",
                            open.handoff_id
                        ),
                    ));
                }
                let id = &h.handoff_id;
                if self.handoff_ids.iter().any(|used| used == id) {
                    return Err(Refusal::at(
                        "body.data.handoff_id",
                        format!("handoff {id} was already used on this chain"),
                    ));
                }
            }
            P::CustodyReceived(r) => {
                let id = &r.handoff_id;
                match &self.open_handoff {
                    Some(open) if &open.handoff_id == id => {
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
        Ok(())
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
        match entry.payload {
            P::ChainEnrolled(_) => allowed(&[NotYetEnrolled], Enrolled),
            P::ChainCancelled(_) => {
                if matches!(self.state, Administered | InFollowUp) {
                    Err("an administered chain cannot be cancelled".into())
                } else {
                    allowed(&[self.state], Cancelled)
                }
            }
            P::ChainCollected(_) => allowed(&[Enrolled, Collected], Collected),
            P::ChainCollectionSiteAssigned(_) => allowed(&[Enrolled, Collected], self.state),
            P::CustodyHandedOff(_) => allowed(
                &[Collected, ReceivedAtManufacturing, ReleasedForPatient],
                InTransit,
            ),
            P::CustodyReceived(_) => {
                let to = if self.released {
                    ReceivedAtTreatmentCenter
                } else {
                    ReceivedAtManufacturing
                };
                allowed(&[InTransit], to)
            }
            P::ChainStepPerformed(s) => self.step_performed(&s.step_code, ctx, allowed),
            // Without the process (under the ledger lock) testing looks like manufacturing.
            P::BatchCreated(b) => {
                let id = &b.batch_id;
                if self.batches.iter().any(|known| known == id) {
                    return Err(format!("batch {id} was already created on this chain"));
                }
                allowed(&[ReceivedAtManufacturing, InManufacturing], InManufacturing)
            }
            P::BatchMaterialConsumed(BatchMaterialConsumedV1 { batch_id, .. })
            | P::BatchUnitsProduced(BatchUnitsProducedV1 { batch_id, .. })
            | P::BatchTestResultRecorded(BatchTestResultRecordedV1 { batch_id, .. }) => {
                let id = batch_id;
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
                let result = matches!(entry.payload, P::BatchTestResultRecorded(_));
                // A result that arrives after the release (a sterility culture reads on
                // day 14) is what happened: recorded where the chain is, without moving it.
                if result && self.released {
                    return Ok(self.state);
                }
                let to = if result { InTesting } else { self.state };
                allowed(&[InManufacturing, InTesting], to)
            }
            P::ChainReleased(_) if ctx.biz_steps.is_empty() => {
                allowed(&[InManufacturing, InTesting], ReleasedForPatient)
            }
            P::ChainReleased(_) => allowed(&[InTesting], ReleasedForPatient),
            P::ChainBedsideVerified(_) => {
                allowed(&[ReceivedAtTreatmentCenter], ReceivedAtTreatmentCenter)
            }
            P::ChainExceptionalReleaseRequested(_) => {
                allowed(&[InManufacturing, InTesting], self.state)
            }
            P::ChainAdministered(_) => allowed(&[ReceivedAtTreatmentCenter], Administered),
            P::ChainFollowUpRecorded(_) => allowed(&[Administered, InFollowUp], InFollowUp),
            _ => Ok(self.state),
        }
    }

    /// A process step moves the chain by its CBV bizStep: testing, unpacking at the
    /// treatment center, or manufacturing.
    fn step_performed(
        &self,
        step: &str,
        ctx: &ChainContext,
        allowed: impl Fn(&[ChainState], ChainState) -> Result<ChainState, String>,
    ) -> Result<ChainState, String> {
        use ChainState::*;
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
            Some("inspecting" | "sampling") => allowed(&[InManufacturing, InTesting], InTesting),
            Some("unpacking") => allowed(&[ReceivedAtTreatmentCenter], ReceivedAtTreatmentCenter),
            Some(_) => allowed(&[ReceivedAtManufacturing, InManufacturing], InManufacturing),
        }
    }

    fn apply(&mut self, entry: &ChainEntry, next: ChainState, ctx: &ChainContext) {
        match entry.payload {
            P::ChainEnrolled(e) => self.apply_enrolled(e),
            P::ChainCollectionSiteAssigned(a) => {
                self.collection_site_id = Some(a.collection_site_id.clone());
            }
            P::ChainCollected(c) => self.apply_collected(entry, c, ctx),
            P::CustodyHandedOff(h) => self.apply_handoff(entry, h),
            P::CustodyReceived(r) => self.apply_receipt(entry, r, ctx),
            P::BatchTestResultRecorded(_) if self.state == ChainState::OnHold => {
                self.resume_state = self
                    .resuming()
                    .step_transition(entry, ctx)
                    .unwrap_or(self.resume_state);
            }
            // A step (a QC test on samples at a laboratory, say) does not move custody:
            // only a reconciled receipt does.
            P::ChainReleased(_) => self.released = true,
            P::ChainLegalHoldPlaced(h) => self.legal_holds.push(h.legal_hold_id.clone()),
            P::ChainLegalHoldReleased(h) => self.legal_holds.retain(|id| id != &h.legal_hold_id),
            P::ChainRecollected(r) => self.succeeded_by = Some(r.next_coi.clone()),
            P::SampleHandedOff(s) => {
                self.sample_shipments.insert(
                    s.shipment_id.clone(),
                    SampleShipment {
                        samples: s.samples.clone(),
                        destination_site_id: s.destination_site_id.clone(),
                    },
                );
            }
            P::SampleReceived(s) => {
                if let Some(shipment) = self.sample_shipments.remove(&s.shipment_id) {
                    for sample in shipment.samples {
                        self.sample_sites
                            .insert(sample, s.receiving_site_id.clone());
                    }
                }
            }
            P::UnitExpiryExtended(x) => {
                if let Ok(expiry) = Instant::parse_rfc3339("expires_at", &x.expires_at) {
                    self.unit_expiry.insert(x.unit.clone(), expiry);
                }
            }
            P::ChainBedsideVerified(b) => {
                if let Ok(scanned) = crate::identifiers::scan::parse_scan("unit_scan", &b.unit_scan)
                {
                    self.bedside_verified.push(scanned.unit_id());
                }
            }
            P::BatchCreated(b) => self.batches.push(b.batch_id.clone()),
            P::BatchUnitsProduced(u) => self.apply_units_produced(u),
            P::DeviationOpened(d) => {
                self.deviations.insert(
                    d.deviation_id.clone(),
                    Deviation {
                        batch_id: d.batch_id.clone(),
                        disposition: None,
                        result_event_ids: d.result_event_ids.clone(),
                    },
                );
            }
            P::DeviationClosed(d) => {
                if let Some(open) = self.deviations.get_mut(&d.deviation_id) {
                    open.disposition = Some(d.disposition.clone());
                }
            }
            P::ChainHoldPlaced(h) => self.apply_hold_placed(entry, h),
            P::ChainHoldReleased(h) => self.apply_hold_released(&h.hold_id),
            P::LabelPrinted(l) => self.apply_label_printed(entry.event_id, l),
            P::LabelVoided(v) => self.apply_label_voided(&v.label_id),
            _ => {}
        }
        if let Some(step) = entry.payload.step_code() {
            self.performed
                .entry(step.to_string())
                .or_insert(entry.occurred_at);
        }
        self.state = next;
    }

    fn apply_enrolled(&mut self, e: &ChainEnrolledV1) {
        self.previous_coi = e.previous_coi.clone();
        let treatment = e.treatment_site_id.clone();
        self.collection_site_id = Some(
            e.collection_site_id
                .clone()
                .unwrap_or_else(|| treatment.clone()),
        );
        self.custodian_site_id = Some(treatment);
    }

    fn apply_collected(&mut self, entry: &ChainEntry, c: &ChainCollectedV1, ctx: &ChainContext) {
        let site = &c.collection_site_id;
        self.custodian_site_id = Some(site.clone());
        self.location_site_id = Some(site.clone());
        for din in &c.dins {
            self.unit_sites.insert(din.clone(), Some(site.clone()));
            self.unit_custodians.insert(din.clone(), site.clone());
            if !self.units.contains(din) {
                self.units.push(din.clone());
            }
        }
        if let Some(step) = &ctx.collecting_step {
            let at = Instant::parse_rfc3339("ended_at", &c.ended_at).unwrap_or(entry.occurred_at);
            self.performed.entry(step.clone()).or_insert(at);
        }
    }

    /// A handoff: its units and shipper travel, and it stays open until its receipt.
    fn apply_handoff(&mut self, entry: &ChainEntry, h: &CustodyHandedOffV1) {
        let returning = self.is_return(&h.from_site_id, &h.destination_site_id);
        if returning {
            // The dispute ends with the return: custody of record never passed.
            self.disputed_custody = None;
        }
        self.location_site_id = None;
        for unit in &h.units {
            self.unit_sites.insert(unit.clone(), None);
        }
        self.shippers.insert(
            h.container_id.clone(),
            Shipper {
                handoff_id: h.handoff_id.clone(),
                at_site: None,
                custodian_site_id: self.custodian_site_id.clone(),
            },
        );
        self.handoff_ids.push(h.handoff_id.clone());
        self.open_handoff = Some(OpenHandoff {
            handoff_id: h.handoff_id.clone(),
            event_id: entry.event_id,
            data: entry.data.clone(),
            handoff: h.clone(),
            handed_off_at: entry.occurred_at,
            returning,
        });
    }

    /// A receipt: what the open handoff carried is at the receiving site, which holds
    /// custody of record unless the receipt's reconciliation hold follows.
    fn apply_receipt(&mut self, entry: &ChainEntry, r: &CustodyReceivedV1, ctx: &ChainContext) {
        let receiving = r.receiving_site_id.clone();
        let returned = self.open_handoff.as_ref().is_some_and(|o| o.returning);
        if returned {
            self.resume_state = self.before_shipment();
        }
        let (units, container_id) = self
            .open_handoff
            .as_ref()
            .map(|open| {
                (
                    open.handoff.units.clone(),
                    open.handoff.container_id.clone(),
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

    fn apply_units_produced(&mut self, u: &BatchUnitsProducedV1) {
        let made_at = &u.site_id;
        for unit in &u.units {
            self.unit_sites.insert(unit.clone(), Some(made_at.clone()));
            self.unit_custodians.insert(unit.clone(), made_at.clone());
        }
        let expiry = u
            .expires_at
            .as_deref()
            .and_then(|t| Instant::parse_rfc3339("expires_at", t).ok());
        if let Some(expiry) = expiry {
            for unit in &u.units {
                self.unit_expiry.insert(unit.clone(), expiry);
            }
        }
        for unit in &u.units {
            if !self.units.contains(unit) {
                self.units.push(unit.clone());
            }
        }
        self.batch_units
            .entry(u.batch_id.clone())
            .or_default()
            .extend(u.units.iter().cloned());
    }

    fn apply_hold_placed(&mut self, entry: &ChainEntry, h: &ChainHoldPlacedV1) {
        if self.state != ChainState::OnHold {
            self.resume_state = self.state;
        }
        self.dispute_receipt(h);
        self.holds.push(OpenHold {
            hold_id: h.hold_id.clone(),
            event_id: entry.event_id,
            data: entry.data.clone(),
            hold: h.clone(),
            placed_at: entry.occurred_at,
        });
    }

    fn apply_hold_released(&mut self, id: &str) {
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
    /// Whether a handoff (from, destination) is a return: while custody is disputed (a
    /// receipt failed reconciliation), the material goes from where it is back to the
    /// custodian of record.
    pub fn is_return(&self, from_site_id: &str, destination_site_id: &str) -> bool {
        self.disputed_custody.as_ref().is_some_and(|d| {
            from_site_id == d.receiving_site_id
                && self.custodian_site_id.as_deref() == Some(destination_site_id)
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
    fn dispute_receipt(&mut self, hold: &ChainHoldPlacedV1) {
        if hold.rule != "custody.reconciliation_failed" {
            return;
        }
        let Some(receipt) = self.last_receipt.clone() else {
            return;
        };
        if hold.caused_by_event_id.as_deref() != Some(receipt.event_id.to_string().as_str()) {
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
            hold_id: hold.hold_id.clone(),
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

/// A sample shipment on its way: what was sent, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleShipment {
    pub samples: Vec<String>,
    pub destination_site_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A chain event whose payload is read as recorded ones are.
    fn event(event_type: &str, data: Value) -> ChainEvent {
        ChainEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: event_type.to_string(),
            payload: Payload::read(event_type, 1, &data)
                .unwrap_or_else(|e| panic!("{event_type}: {e}")),
            data,
            occurred_at: Instant::MIN,
            site: None,
        }
    }

    fn enrolled() -> ChainEvent {
        event(
            "chain.enrolled",
            json!({"coi": "CHA999926000001*", "patient_key": "PK-1", "product_code": "CART-19",
                   "treatment_site_id": "S-LAX-01", "coi_source": "autolog"}),
        )
    }

    fn handoff() -> ChainEvent {
        event(
            "custody.handed_off",
            json!({"handoff_id": "H1", "step_code": "SHIP-OUT", "from_site_id": "S-LAX-01",
                   "handed_off_by": "P-0001", "destination_site_id": "S-BOS-01",
                   "courier": "C-1", "units": ["A999926000001"], "unit_count": 1,
                   "container_id": "SH-1", "seal_id": "SEAL-1",
                   "expected_arrival_by": "2026-03-03T09:00:00Z",
                   "temperature_range": {"min_celsius": -196.0, "max_celsius": -150.0}}),
        )
    }

    fn receipt(handoff_id: &str) -> ChainEvent {
        event(
            "custody.received",
            json!({"handoff_id": handoff_id, "step_code": "RECEIVE-MFG",
                   "receiving_site_id": "S-BOS-01", "received_by": "P-0002",
                   "scanned_labels": [{"unit": "=A99992600000100"}],
                   "container_id": "SH-1", "seal_id": "SEAL-1", "seal_intact": true,
                   "temperature_log": {"min_celsius": -190.0, "max_celsius": -160.0}}),
        )
    }

    fn hold_released(hold_id: &str) -> ChainEvent {
        event(
            "chain.hold_released",
            json!({"signature": {}, "hold_id": hold_id, "site_id": "S-BOS-01",
                   "resolved_by": "P-0002", "resolution_reason": "investigated"}),
        )
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
        let events = [
            enrolled(),
            event(
                "chain.collected",
                json!({"collection_site_id": "S-LAX-01", "operator_id": "P-0001",
                       "device_id": "APH-1", "started_at": "2026-03-01T09:00:00Z",
                       "ended_at": "2026-03-01T13:00:00Z", "dins": ["A999926000001"]}),
            ),
            handoff(),
            receipt("H1"),
            event(
                "chain.hold_placed",
                json!({"hold_id": "HOLD-1", "rule": "manual", "findings": ["checked"]}),
            ),
        ];
        let view = ChainView::fold(events.iter().map(ChainEvent::as_entry), &ctx);
        assert_eq!(view.state, ChainState::OnHold);
        assert_eq!(view.resume_state, ChainState::ReceivedAtManufacturing);
        assert_eq!(view.custodian_site_id.as_deref(), Some("S-BOS-01"));
        let mfg = event(
            "chain.step_performed",
            json!({"step_code": "MANUFACTURE", "site_id": "S-BOS-01", "performed_by": "P-0002",
                   "started_at": "2026-03-02T09:00:00Z"}),
        );
        let refused = view.transition(&mfg.as_entry(), &ctx);
        assert!(refused
            .expect_err("on hold")
            .rule
            .contains("on hold (HOLD-1)"));
        let resumed = view
            .transition(&hold_released("HOLD-1").as_entry(), &ctx)
            .expect("open hold");
        assert_eq!(resumed, ChainState::ReceivedAtManufacturing);
        assert!(view
            .transition(&hold_released("HOLD-9").as_entry(), &ctx)
            .expect_err("unknown hold")
            .rule
            .contains("HOLD-9"));
    }

    #[test]
    fn steps_out_of_order_are_refused_with_the_expected_predecessor() {
        let ctx = ChainContext::default();
        let view = ChainView::fold([enrolled().as_entry()], &ctx);
        let administered = event(
            "chain.administered",
            json!({"step_code": "INFUSE", "site_id": "S-LAX-01", "administered_by": "P-0005",
                   "verified_by": "P-0006", "unit": "x"}),
        );
        let rule = view
            .transition(&administered.as_entry(), &ctx)
            .expect_err("out of order")
            .rule;
        assert!(rule.contains("while the chain is enrolled"), "{rule}");
        assert!(rule.contains("received_at_treatment_center"), "{rule}");
        assert!(view
            .transition(&receipt("H1").as_entry(), &ctx)
            .expect_err("no handoff")
            .rule
            .contains("no handoff"));
    }

    #[test]
    fn a_payload_reads_as_its_type_or_names_what_is_missing() {
        let e = Payload::read("custody.received", 1, &json!({"handoff_id": "H1"}))
            .expect_err("incomplete");
        assert_eq!(e.field, "step_code", "{e}");
        let e = Payload::read("chain.teleported", 1, &json!({})).expect_err("unknown");
        assert_eq!(e.field, "type", "{e}");
        assert!(matches!(
            Payload::read("custody.handed_off", 1, &handoff().data),
            Ok(Payload::CustodyHandedOff(h)) if h.handoff_id == "H1"
        ));
    }
}
