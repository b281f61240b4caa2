//! Chain steps checked against reference data and the chain's state (who, where, with
//! what, in which order), and custody receipts reconciled against their handoff at once.

use autolog_domain::ledger::fields::list as string_list;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use autolog_domain::catalogue::chain::{
    ChainAdministeredV1, ChainExceptionalReleaseRequestedV1, CustodyHandedOffV1, CustodyReceivedV1,
};
use autolog_domain::catalogue::enrolment::ChainEnrolledV1;
use autolog_domain::catalogue::Payload;
use autolog_domain::chain::signals::TEMPERATURE_EXCURSION;
use autolog_domain::chain::{ChainContext, ChainEvent, ChainState, ChainView};
use autolog_domain::identifiers::scan::{parse_scan, Scanned};
use autolog_domain::rules::{refused_value, CHAIN_EVENT_TYPES};
use autolog_domain::StreamId;
use autolog_domain::{CorrectionTarget, Event, EventDraft, FieldError, Instant, Source, Uuid};
use serde_json::{json, Value};

use crate::chain::rule_reads::RuleReads;
use crate::feeds::alerts::{alert_draft, short_digest, AlertSpec};
use crate::ledger::derived::derived_draft;
use crate::ledger::read::{instant_field, text};
use crate::reference::alignment::qualified;
use crate::{AppError, Autolog};

/// How a rule refuses a step: the field (under `body.data.`), the value and the rule.
pub(crate) type Refuse<'a> = &'a (dyn Fn(&str, &str, String) -> StepError + Sync);

/// Why a chain step was not accepted: a rule it broke (the request's event `index`), or a
/// failure to read what the rule needs.
#[derive(Debug)]
pub(crate) enum StepError {
    Refused {
        index: usize,
        error: FieldError,
    },
    /// A final unit past its expiry would move on (shipped, checked at the bedside,
    /// administered): a hard stop, raised as a critical alert.
    Expired {
        index: usize,
        error: FieldError,
    },
    /// A release refused: every condition it does not meet.
    Unmet {
        index: usize,
        conditions: Vec<FieldError>,
    },
    Failed(AppError),
}

impl From<AppError> for StepError {
    fn from(e: AppError) -> Self {
        StepError::Failed(e)
    }
}

impl From<autolog_store::StoreError> for StepError {
    fn from(e: autolog_store::StoreError) -> Self {
        StepError::Failed(e.into())
    }
}

/// An event Autolog records because of the request's event `cause` (appended right after it).
#[derive(Debug)]
pub(crate) struct Recorded {
    pub cause: usize,
    pub draft: EventDraft,
}

/// The role a person must hold at the site for these event types (otherwise any current
/// qualification at the site will do).
const REQUIRED_ROLES: &[(&str, &str)] = &[
    ("chain.released", "qa_releaser"),
    ("chain.hold_released", "qa_releaser"),
    ("deviation.closed", "qa_releaser"),
    ("unit.expiry_extended", "qa_releaser"),
    (
        "chain.exceptional_release_requested",
        "treatment_center_physician",
    ),
];

/// The CBV bizStep the step of each event type must have (`step_performed` takes any other).
const BIZ_STEP_OF: &[(&str, &str)] = &[
    ("custody.handed_off", "shipping"),
    ("custody.received", "receiving"),
    ("chain.administered", "dispensing"),
];

/// A stored chain event read for the fold: its payload must read in its typed form (it
/// was checked when recorded), else the ledger was changed outside Autolog.
pub(crate) fn entry_of(e: &Event) -> Result<ChainEvent, AppError> {
    ChainEvent::of_event(e).map_err(|f| crate::ledger::read::unreadable(e, &f))
}

/// A checked draft read for the fold.
pub(crate) fn entry_of_draft(d: &EventDraft) -> Result<ChainEvent, AppError> {
    Ok(ChainEvent::of_draft(d)?)
}

/// What a chain's checks need: its events so far, its enrolment and its product.
pub(crate) struct ChainFacts {
    pub(crate) coi: String,
    pub(crate) entries: Vec<ChainEvent>,
    /// The enrolment in force (`None`: not enrolled, its events are the store's to refuse).
    pub(crate) enrolment: Option<ChainEnrolledV1>,
    pub(crate) product: Value,
    pub(crate) ctx: ChainContext,
    /// The reference records the request's rules read, shared by its chains.
    pub(crate) reads: Arc<RuleReads>,
}

impl ChainFacts {
    /// The patient's treatment center (empty only for a chain not enrolled, whose events
    /// no rule reads).
    pub(crate) fn treatment_site(&self) -> &str {
        self.enrolment
            .as_ref()
            .map_or("", |e| e.treatment_site_id.as_str())
    }

    /// The patient's pseudonymous key (empty only for a chain not enrolled).
    pub(crate) fn patient_key(&self) -> &str {
        self.enrolment
            .as_ref()
            .map_or("", |e| e.patient_key.as_str())
    }

    /// The product the chain was enrolled for (empty only for a chain not enrolled).
    pub(crate) fn product_code(&self) -> &str {
        self.enrolment
            .as_ref()
            .map_or("", |e| e.product_code.as_str())
    }

    pub(crate) fn view(&self) -> ChainView {
        ChainView::fold(self.entries.iter().map(ChainEvent::as_entry), &self.ctx)
    }

    fn process_steps(&self) -> Vec<Value> {
        self.product
            .get("process")
            .and_then(|p| p.get("steps"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

/// Chain events in the order the state machine checked them: recording order, a
/// correction taking the place of the event it restates. (Valid-time order would put a
/// late-recorded receipt before the hold that was already on the chain when it arrived.)
pub(crate) fn in_recording_order<'a>(chosen: &[&'a Event], all: &[Event]) -> Vec<&'a Event> {
    let by_id: std::collections::HashMap<Uuid, &Event> =
        all.iter().map(|e| (e.event_id, e)).collect();
    let place = |e: &Event| {
        let mut current = e;
        // Follow corrections back to the original fact (bounded by the chain's length).
        for _ in 0..all.len() {
            match current.corrects.and_then(|id| by_id.get(&id)) {
                Some(original) => current = original,
                None => break,
            }
        }
        (current.position, e.position)
    };
    let mut ordered = chosen.to_vec();
    ordered.sort_by_key(|e| place(e));
    ordered
}

/// The effective (not superseded) events of a stored chain, in recording order.
fn effective(events: &[Event]) -> Result<Vec<ChainEvent>, AppError> {
    let superseded: std::collections::HashSet<Uuid> =
        events.iter().filter_map(|e| e.corrects).collect();
    let chosen: Vec<&Event> = events
        .iter()
        .filter(|e| !superseded.contains(&e.event_id))
        .collect();
    in_recording_order(&chosen, events)
        .into_iter()
        .map(entry_of)
        .collect()
}

/// Whether a draft is a chain event, checked by the chain's rules.
fn is_chain_event(draft: &EventDraft) -> bool {
    draft.stream.starts_with("coi/") && CHAIN_EVENT_TYPES.contains(&draft.body.event_type.as_str())
}

/// The enrolment of a chain's effective events (`None` when not enrolled).
fn enrolment_of(entries: &[ChainEvent]) -> Option<ChainEnrolledV1> {
    entries.iter().find_map(|e| match &e.payload {
        Payload::ChainEnrolled(enrolled) => Some(enrolled.clone()),
        _ => None,
    })
}

/// The payload fields of a chain event that name a person whose qualification its rules
/// check (the releasers' are among the release conditions, `Autolog::release_conditions`).
fn person_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "chain.collected" => &["operator_id"],
        "custody.handed_off" => &["handed_off_by"],
        "custody.received" => &["received_by"],
        "chain.step_performed" => &["performed_by"],
        "chain.administered" => &["administered_by", "verified_by"],
        "chain.bedside_verified" => &["verified_by"],
        "chain.exceptional_release_requested" => &["requested_by"],
        "chain.follow_up_recorded" => &["recorded_by"],
        "chain.hold_released" => &["resolved_by"],
        "audit_trail.reviewed" => &["reviewed_by"],
        "chain.released" => &["released_by", "second_released_by"],
        "batch.created" => &["created_by"],
        "batch.material_consumed" | "batch.units_produced" => &["recorded_by"],
        "batch.test_result_recorded" => &["analyst_id"],
        "deviation.opened" => &["opened_by"],
        "deviation.investigated" => &["investigated_by"],
        "deviation.closed" => &["closed_by"],
        "unit.expiry_extended" => &["extended_by"],
        "sample.handed_off" => &["handed_off_by"],
        "sample.received" => &["received_by"],
        _ => &[],
    }
}

/// The registry records a chain event names, which its rules read: those the store
/// checks exist, plus its DINs, units and batch.
pub(crate) fn records_named(draft: &EventDraft) -> Vec<String> {
    let data = &draft.body.data;
    // A lot's record is read without its consumptions (`Autolog::record_state`): reading
    // its whole stream here would cost what the filtered read saves.
    let mut streams: Vec<String> = autolog_domain::rules::references(draft)
        .into_iter()
        .map(|(_, stream)| stream)
        .filter(|stream| !stream.starts_with("lot/"))
        .collect();
    for key in [
        "site_id",
        "from_site_id",
        "receiving_site_id",
        "collection_site_id",
    ] {
        let site = text(data, key);
        if !site.is_empty() {
            streams.push(StreamId::site(site).into());
        }
    }
    for key in person_fields(&draft.body.event_type) {
        let person = text(data, key);
        if !person.is_empty() {
            streams.push(StreamId::person(person).into());
        }
    }
    if let Some(person) = draft.actor.strip_prefix("person/") {
        streams.push(StreamId::person(person).into());
    }
    for din in string_list(data, "dins")
        .into_iter()
        .chain(string_list(data, "source_dins"))
    {
        streams.push(StreamId::din(&din).into());
    }
    for id in string_list(data, "equipment_ids") {
        streams.push(StreamId::equipment(&id).into());
    }
    for unit in string_list(data, "units") {
        streams.push(StreamId::unit(&unit).into());
    }
    let batch = text(data, "batch_id");
    if !batch.is_empty() && draft.body.event_type == "batch.created" {
        streams.push(StreamId::batch(batch).into());
    }
    streams
}

impl Autolog {
    /// Loads what the checks of a chain need: stored events, enrolment, product, and the
    /// step taxonomy (CBV bizStep of each of the product's steps).
    pub(crate) async fn chain_facts(
        &self,
        stream: &str,
        reads: &Arc<RuleReads>,
    ) -> Result<ChainFacts, AppError> {
        let events = self.store.stream_events(stream, Instant::MAX).await?;
        self.chain_facts_of(stream, &events, reads).await
    }

    /// What the checks of a chain need, from its stored events (already read).
    async fn chain_facts_of(
        &self,
        stream: &str,
        events: &[Event],
        reads: &Arc<RuleReads>,
    ) -> Result<ChainFacts, AppError> {
        let coi = stream.trim_start_matches("coi/").to_string();
        let entries = effective(events)?;
        let enrolment = enrolment_of(&entries);
        self.facts_for(coi, entries, enrolment, reads).await
    }

    async fn facts_for(
        &self,
        coi: String,
        entries: Vec<ChainEvent>,
        enrolment: Option<ChainEnrolledV1>,
        reads: &Arc<RuleReads>,
    ) -> Result<ChainFacts, AppError> {
        let product_code = enrolment.as_ref().map(|e| e.product_code.as_str());
        let (ctx, product) = self.context_and_product(product_code, reads).await?;
        Ok(ChainFacts {
            coi,
            entries,
            enrolment,
            product,
            ctx,
            reads: reads.clone(),
        })
    }

    /// The fold's context for a chain enrolled for a product: its collecting step and the
    /// CBV bizStep of each of its steps. `reads` may be shared by many chains (a report
    /// over every chain reads each product and step once).
    pub(crate) async fn chain_context(
        &self,
        product_code: &str,
        reads: &RuleReads,
    ) -> Result<ChainContext, AppError> {
        let code = Some(product_code).filter(|c| !c.is_empty());
        Ok(self.context_and_product(code, reads).await?.0)
    }

    async fn context_and_product(
        &self,
        product_code: Option<&str>,
        reads: &RuleReads,
    ) -> Result<(ChainContext, Value), AppError> {
        let product_code = product_code.unwrap_or_default().to_string();
        let product = if product_code.is_empty() {
            Value::Null
        } else {
            self.reference(reads, &StreamId::product(&product_code))
                .await?
        };
        let mut ctx = ChainContext::default();
        let steps = product
            .get("process")
            .and_then(|p| p.get("steps"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let step_streams: Vec<String> = steps
            .iter()
            .map(|step| StreamId::process_step(text(step, "step_code")).into())
            .collect();
        // Every step definition of the product in one read.
        self.prefetch(reads, step_streams).await?;
        for step in &steps {
            let code = text(step, "step_code");
            let definition = self.reference(reads, &StreamId::process_step(code)).await?;
            let biz = text(&definition, "cbv_biz_step").to_string();
            if biz == "collecting" && ctx.collecting_step.is_none() {
                ctx.collecting_step = Some(code.to_string());
            }
            ctx.biz_steps.insert(code.to_string(), biz);
        }
        Ok((ctx, product))
    }

    /// The chain as folded now, with reference data (for reads and reports).
    pub(crate) async fn chain_view_of(
        &self,
        coi: &str,
        events: &[&Event],
    ) -> Result<ChainView, AppError> {
        let reads = Arc::new(RuleReads::default());
        Ok(self.chain_fold(coi, events, &reads).await?.0)
    }

    /// The chain folded from `events` (in recording order), and its enrolment, reading
    /// reference data through `reads` (which many chains may share).
    pub(crate) async fn chain_fold(
        &self,
        coi: &str,
        events: &[&Event],
        reads: &Arc<RuleReads>,
    ) -> Result<(ChainView, Option<ChainEnrolledV1>), AppError> {
        let entries: Vec<ChainEvent> = events
            .iter()
            .map(|e| entry_of(e))
            .collect::<Result<_, _>>()?;
        let enrolment = enrolment_of(&entries);
        let facts = self
            .facts_for(coi.to_string(), entries, enrolment.clone(), reads)
            .await?;
        Ok((facts.view(), enrolment))
    }

    /// Checks each chain event of a request against the chain's state and reference data,
    /// in order (earlier events of the request count), and returns the events Autolog
    /// records with them in the same transaction: DIN links, holds and alerts.
    pub(crate) async fn chain_step_rules(
        &self,
        drafts: &[EventDraft],
    ) -> Result<Vec<Recorded>, StepError> {
        let mut extra = Vec::new();
        let reads = Arc::new(RuleReads::default());
        let (resent, mut chains) = self.load_chains(drafts, &reads).await?;
        // DINs linked earlier in this request, to the COI they were linked to.
        let mut linked_here: HashMap<String, String> = HashMap::new();
        for (index, draft) in drafts.iter().enumerate() {
            let event_type = draft.body.event_type.as_str();
            if !is_chain_event(draft) {
                continue;
            }
            // A resent event is answered as a duplicate by the store: no rule applies again.
            if resent.contains(&draft.source) {
                continue;
            }
            if !chains.contains_key(&draft.stream) {
                let facts = self.chain_facts(&draft.stream, &reads).await?;
                chains.insert(draft.stream.clone(), facts);
            }
            let Some(facts) = chains.get_mut(&draft.stream) else {
                continue;
            };
            let this = entry_of_draft(draft)?;
            if let (Payload::ChainEnrolled(enrolled), None) = (&this.payload, &draft.corrects) {
                let refreshed = self
                    .facts_for(
                        facts.coi.clone(),
                        Vec::new(),
                        Some(enrolled.clone()),
                        &reads,
                    )
                    .await?;
                *facts = refreshed;
            } else if facts.enrolment.is_none() {
                continue; // not enrolled: the store refuses it, naming the rule
            }
            let refuse = |field: &str, value: &str, rule: String| StepError::Refused {
                index,
                error: FieldError::new(format!("body.data.{field}"), value, rule),
            };
            let view = facts.view();
            // A correction restates a fact in place: the state machine is not asked again
            // (the store limits what may be corrected), but who, where and with what are.
            if draft.corrects.is_some() {
                let recorded = self
                    .correction_rules(facts, &view, draft, &this.payload, &refuse)
                    .await?;
                extra.extend(recorded.into_iter().map(|draft| Recorded {
                    cause: index,
                    draft,
                }));
                continue;
            }
            if let Some(error) = expired_unit(&view, draft, &this.payload) {
                return Err(StepError::Expired { index, error });
            }
            if event_type == "chain.released" || event_type == "chain.bedside_verified" {
                let mut unmet = Vec::new();
                if let Err(refusal) = view.transition(&this.as_entry(), &facts.ctx) {
                    unmet.push(FieldError::new(
                        refusal.field,
                        refused_value(draft, refusal.field),
                        refusal.rule,
                    ));
                }
                match &this.payload {
                    Payload::ChainReleased(r) => {
                        unmet.extend(self.release_conditions(facts, &view, draft, r).await?);
                    }
                    Payload::ChainBedsideVerified(b) => {
                        unmet.extend(self.bedside_conditions(facts, &view, b).await?);
                    }
                    _ => {}
                }
                if !unmet.is_empty() {
                    return Err(StepError::Unmet {
                        index,
                        conditions: unmet,
                    });
                }
            } else if let Err(refusal) = view.transition(&this.as_entry(), &facts.ctx) {
                return Err(StepError::Refused {
                    index,
                    error: FieldError::new(
                        refusal.field,
                        refused_value(draft, refusal.field),
                        refusal.rule,
                    ),
                });
            }
            if event_type == "chain.collected" {
                for (j, din) in string_list(&draft.body.data, "dins").iter().enumerate() {
                    if let Some(owner) = linked_here.get(din) {
                        return Err(refuse(
                            &format!("dins[{j}]"),
                            din,
                            format!("is collected for chain {owner} earlier in this request: a DIN belongs to one COI, forever"),
                        ));
                    }
                }
            }
            let site_id = self.step_reference_rules(facts, draft, &refuse).await?;
            let mut recorded = self
                .custody_unit_rules(facts, &view, draft, &this.payload, &site_id, &refuse)
                .await?;
            recorded.extend(
                self.batch_rules(facts, &view, draft, &this.payload, &refuse)
                    .await?,
            );
            recorded.extend(late_failure(facts, &view, draft, &recorded));
            recorded.extend(expired_on_arrival(facts, &view, draft));
            recorded.extend(
                self.payload_rules(facts, &view, draft, &this.payload, &reads, index)
                    .await?,
            );
            recorded.extend(window_breaches(facts, &view, draft, &this.payload));
            facts.entries.push(this);
            for r in &recorded {
                if r.body.event_type == "din.linked" {
                    linked_here.insert(text(&r.body.data, "din").to_string(), facts.coi.clone());
                }
            }
            // Holds Autolog places count for the next events of the request, on this chain
            // and on the others it involves (loaded now if the request did not touch them yet).
            for r in recorded.iter().filter(|r| r.stream.starts_with("coi/")) {
                if !chains.contains_key(&r.stream) {
                    let other = self.chain_facts(&r.stream, &reads).await?;
                    chains.insert(r.stream.clone(), other);
                }
                if let Some(chain) = chains.get_mut(&r.stream) {
                    chain.entries.push(entry_of_draft(r)?);
                }
            }
            extra.extend(recorded.into_iter().map(|draft| Recorded {
                cause: index,
                draft,
            }));
        }
        Ok(extra)
    }

    /// What one kind of event's own rules record beside it: a re-collection's link to the
    /// chain it collects again, a receipt's reconciliation holds and alerts; a review of
    /// the audit trail is checked against the trail as it stands.
    async fn payload_rules(
        &self,
        facts: &ChainFacts,
        view: &ChainView,
        draft: &EventDraft,
        payload: &Payload,
        reads: &Arc<RuleReads>,
        index: usize,
    ) -> Result<Vec<EventDraft>, StepError> {
        match payload {
            Payload::ChainEnrolled(enrolled) => {
                self.recollection_link(facts, draft, enrolled, reads, index)
                    .await
            }
            Payload::AuditTrailReviewed(r) => {
                self.audit_review_check(&draft.stream, r)
                    .await
                    .map_err(|error| StepError::Refused { index, error })?;
                Ok(Vec::new())
            }
            Payload::CustodyReceived(r) => {
                let (holds, alerts) = self.reconcile_receipt(facts, view, draft, r).await?;
                Ok(holds.into_iter().chain(alerts).collect())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// A correction restates a fact in place: the state machine is not asked again (the
    /// store limits what may be corrected), but who, where and with what are; an amended
    /// result is judged again; a corrected basis of a signed decision holds the chain.
    async fn correction_rules(
        &self,
        facts: &ChainFacts,
        view: &ChainView,
        draft: &EventDraft,
        payload: &Payload,
        refuse: Refuse<'_>,
    ) -> Result<Vec<EventDraft>, StepError> {
        // What the correction restates was checked when it happened: who, where and with
        // what are checked again, not the custody of its units.
        self.step_reference_rules(facts, draft, refuse).await?;
        let target = match &draft.corrects {
            Some(CorrectionTarget::EventId(id)) => Some(*id),
            Some(CorrectionTarget::Source(source)) => self
                .store
                .event_by_source(&source.system, &source.source_event_id)
                .await
                .map_err(AppError::from)?
                .map(|e| e.event_id),
            None => None,
        };
        let mut recorded = target
            .map(|t| decision_basis_corrected(facts, view, draft, t))
            .unwrap_or_default();
        if let Payload::BatchTestResultRecorded(_) = payload {
            recorded.extend(
                self.batch_rules(facts, view, draft, payload, refuse)
                    .await?,
            );
        }
        Ok(recorded)
    }

    /// Everything the rules of a request read first, in a few queries whatever its size:
    /// which of its chain events were sent before (the store answers them as duplicates),
    /// the histories of its chains, their products with their steps, and the registry
    /// records its events name (sites, people, equipment, DINs, units, batches).
    async fn load_chains(
        &self,
        drafts: &[EventDraft],
        reads: &Arc<RuleReads>,
    ) -> Result<(HashSet<Source>, HashMap<String, ChainFacts>), AppError> {
        let chain_drafts: Vec<&EventDraft> = drafts.iter().filter(|d| is_chain_event(d)).collect();
        if chain_drafts.is_empty() {
            return Ok((HashSet::new(), HashMap::new()));
        }
        let mut sources: Vec<Source> = chain_drafts.iter().map(|d| d.source.clone()).collect();
        sources
            .sort_by(|a, b| (&a.system, &a.source_event_id).cmp(&(&b.system, &b.source_event_id)));
        sources.dedup();
        let resent: HashSet<Source> = self
            .store
            .events_by_sources(&sources)
            .await?
            .into_iter()
            .map(|e| e.source)
            .collect();
        let fresh: Vec<&EventDraft> = chain_drafts
            .into_iter()
            .filter(|d| !resent.contains(&d.source))
            .collect();
        let mut streams: Vec<String> = fresh.iter().map(|d| d.stream.clone()).collect();
        streams.sort_unstable();
        streams.dedup();
        let mut histories = self
            .store
            .stream_events_many(&streams, Instant::MAX)
            .await?;
        let mut entries: HashMap<String, Vec<ChainEvent>> = HashMap::new();
        for s in &streams {
            let events = histories.remove(s).unwrap_or_default();
            entries.insert(s.clone(), effective(&events)?);
        }
        // Products of the chains (as enrolled, or being enrolled by this request) and the
        // records the events name, in one read.
        let mut wanted: Vec<String> = Vec::new();
        for list in entries.values() {
            if let Some(enrolled) = enrolment_of(list) {
                wanted.push(StreamId::product(&enrolled.product_code).into());
            }
        }
        for draft in &fresh {
            wanted.extend(records_named(draft));
        }
        self.prefetch(reads, wanted).await?;
        let mut chains = HashMap::new();
        for stream in streams {
            let list = entries.remove(&stream).unwrap_or_default();
            let coi = stream.trim_start_matches("coi/").to_string();
            let enrolment = enrolment_of(&list);
            let facts = self.facts_for(coi, list, enrolment, reads).await?;
            chains.insert(stream, facts);
        }
        Ok((resent, chains))
    }

    /// The reference-data rules of one chain event: the step belongs to the product's
    /// process and the site's type may perform it; the person is qualified at the site
    /// then; equipment is at the site and calibrated. Returns the performing site.
    async fn step_reference_rules(
        &self,
        facts: &ChainFacts,
        draft: &EventDraft,
        refuse: Refuse<'_>,
    ) -> Result<String, StepError> {
        let site_id = self.step_site_rules(facts, draft, refuse).await?;
        let person_at = match draft.body.event_type.as_str() {
            "chain.collected" => {
                instant_field(&draft.body.data, "started_at").unwrap_or(draft.occurred_at.instant)
            }
            _ => draft.occurred_at.instant,
        };
        self.people_rules(facts, draft, &site_id, person_at, refuse)
            .await?;
        self.equipment_rules(draft, &site_id, person_at, refuse)
            .await?;
        Ok(site_id)
    }

    /// The step belongs to the product's process, fits the event, and the performing
    /// site's type may perform it. Returns the performing site.
    async fn step_site_rules(
        &self,
        facts: &ChainFacts,
        draft: &EventDraft,
        refuse: Refuse<'_>,
    ) -> Result<String, StepError> {
        let data = &draft.body.data;
        let event_type = draft.body.event_type.as_str();
        let product_code = facts.product_code();
        // The step and the site that performs it.
        let (step_field, site_field) = match event_type {
            "chain.collected" => ("", "collection_site_id"),
            "custody.handed_off" => ("step_code", "from_site_id"),
            "custody.received" => ("step_code", "receiving_site_id"),
            "chain.step_performed" | "chain.administered" => ("step_code", "site_id"),
            "batch.material_consumed" => ("step_code", "site_id"),
            "sample.handed_off" => ("", "from_site_id"),
            "sample.received" => ("", "receiving_site_id"),
            _ => ("", "site_id"),
        };
        let site_id = text(data, site_field);
        let step_code = match event_type {
            "chain.collected" => match &facts.ctx.collecting_step {
                Some(step) => step.clone(),
                None => {
                    return Err(refuse(
                        "collection_site_id",
                        site_id,
                        format!("product {product_code}'s process has no step whose CBV bizStep is collecting"),
                    ))
                }
            },
            _ => text(data, step_field).to_string(),
        };
        if !step_code.is_empty() {
            let Some(biz) = facts.ctx.biz_steps.get(&step_code) else {
                let steps: Vec<String> = facts
                    .process_steps()
                    .iter()
                    .map(|s| text(s, "step_code").to_string())
                    .collect();
                return Err(refuse(
                    step_field,
                    &step_code,
                    format!(
                        "is not a step of product {product_code}'s process (steps: {})",
                        steps.join(", ")
                    ),
                ));
            };
            let wanted = BIZ_STEP_OF.iter().find(|(t, _)| *t == event_type);
            let fits = match wanted {
                Some((_, want)) => biz == want,
                None if event_type == "chain.step_performed" => !matches!(
                    biz.as_str(),
                    "shipping" | "receiving" | "dispensing" | "collecting" | "commissioning"
                ),
                None => true,
            };
            if !fits {
                let rule = match wanted {
                    Some((_, want)) => format!(
                        "is a {biz} step; a {event_type} event performs a {want} step of the process"
                    ),
                    None => format!(
                        "is a {biz} step, recorded by its own event type (collection, handoff, receipt or administration), not as chain.step_performed"
                    ),
                };
                return Err(refuse(step_field, &step_code, rule));
            }
            let allowed_types: Vec<String> = facts
                .process_steps()
                .iter()
                .find(|s| text(s, "step_code") == step_code)
                .map(|s| string_list(s, "site_types"))
                .unwrap_or_default();
            let site = self
                .reference(&facts.reads, &StreamId::site(site_id))
                .await?;
            let site_types = string_list(&site, "site_types");
            if text(&site, "site_id").is_empty() {
                return Err(refuse(
                    site_field,
                    site_id,
                    "is not a registered site: name a canonical site id, or a local code the sender's crosswalk maps".to_string(),
                ));
            }
            if !site_types.iter().any(|t| allowed_types.contains(t)) {
                return Err(refuse(
                    site_field,
                    site_id,
                    format!(
                        "is a {} and may not perform step {step_code} of {product_code} (allowed: {})",
                        site_types.join(", "),
                        allowed_types.join(", ")
                    ),
                ));
            }
        }
        Ok(site_id.to_string())
    }

    /// The people: qualified at the site at the time (with a role, where one is needed);
    /// a signer also now.
    async fn people_rules(
        &self,
        facts: &ChainFacts,
        draft: &EventDraft,
        site_id: &str,
        person_at: Instant,
        refuse: Refuse<'_>,
    ) -> Result<(), StepError> {
        let data = &draft.body.data;
        let event_type = draft.body.event_type.as_str();
        // The people: qualified at the site at the time (with a role, where one is needed).
        let role = REQUIRED_ROLES
            .iter()
            .find(|(t, _)| *t == event_type)
            .map(|(_, r)| *r);
        // The releaser's qualification is one of the release conditions, listed with the
        // others when the release is refused.
        let person_fields: &[&str] = match event_type {
            "chain.released" => &[],
            other => person_fields(other),
        };
        for field in person_fields {
            let person_id = text(data, field);
            let person = self
                .reference(&facts.reads, &StreamId::person(person_id))
                .await?;
            let ok = match role {
                None => qualified(&person, Some(site_id), person_at),
                Some(role) => {
                    let only_role = filter_role(&person, role);
                    qualified(&only_role, Some(site_id), person_at)
                }
            };
            if !ok {
                let what = role.map_or(String::new(), |r| format!(" as {r}"));
                return Err(refuse(
                    field,
                    person_id,
                    format!("holds no qualification{what} at {site_id} valid at {person_at}"),
                ));
            }
            // A signer signs now: qualified now too, whatever time the record states.
            if autolog_domain::access::signature::signer_field(event_type) == Some(*field) {
                let now = self.now();
                let only_role = role.map_or_else(|| person.clone(), |r| filter_role(&person, r));
                if !qualified(&only_role, Some(site_id), now) {
                    let what = role.map_or(String::new(), |r| format!(" as {r}"));
                    return Err(refuse(
                        field,
                        person_id,
                        format!(
                            "holds no qualification{what} at {site_id} now ({now}), when signing"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Equipment: registered, of the wanted type, at this site, active and in calibration
    /// at the step's time.
    async fn equipment_rules(
        &self,
        draft: &EventDraft,
        site_id: &str,
        person_at: Instant,
        refuse: Refuse<'_>,
    ) -> Result<(), StepError> {
        let data = &draft.body.data;
        let event_type = draft.body.event_type.as_str();
        // Equipment: at this site and in calibration.
        let equipment: Vec<(String, String, Option<&str>)> = match event_type {
            "chain.collected" => vec![(
                "device_id".to_string(),
                text(data, "device_id").to_string(),
                Some("apheresis_device"),
            )],
            "chain.step_performed" => string_list(data, "equipment_ids")
                .into_iter()
                .enumerate()
                .map(|(i, id)| (format!("equipment_ids[{i}]"), id, None))
                .collect(),
            _ => Vec::new(),
        };
        for (field, id, wanted_type) in &equipment {
            // As the device stood at the step's time: the calibration then in force.
            let device = self
                .record_state_at(&StreamId::equipment(id), person_at)
                .await?;
            let kind = text(&device, "equipment_type");
            let rule = if kind.is_empty() {
                Some(match wanted_type {
                    Some(wanted) => format!("is not registered equipment (an {wanted} is needed)"),
                    None => "is not registered equipment".to_string(),
                })
            } else if wanted_type.is_some_and(|w| w != kind) {
                Some(format!(
                    "is a {kind}, not an {}",
                    wanted_type.unwrap_or_default()
                ))
            } else if text(&device, "site_id") != site_id {
                Some(format!(
                    "is at {}, not at {site_id}",
                    text(&device, "site_id")
                ))
            } else if text(&device, "status") == "retired" || text(&device, "status") == "inactive"
            {
                Some(format!("is {}", text(&device, "status")))
            } else if instant_field(&device, "calibration_valid_until")
                .is_none_or(|u| person_at >= u)
            {
                Some(format!(
                    "is not in calibration at {person_at} (calibration valid until {})",
                    device
                        .get("calibration_valid_until")
                        .and_then(Value::as_str)
                        .unwrap_or("never")
                ))
            } else {
                None
            };
            if let Some(rule) = rule {
                return Err(refuse(field, id, rule));
            }
        }
        Ok(())
    }

    /// Custody and units: DINs belong to one COI, a handoff leaves from the custodian with
    /// the chain's units, a release and an administration name what the chain holds.
    async fn custody_unit_rules(
        &self,
        facts: &ChainFacts,
        view: &ChainView,
        draft: &EventDraft,
        payload: &Payload,
        site_id: &str,
        refuse: Refuse<'_>,
    ) -> Result<Vec<EventDraft>, StepError> {
        let mut recorded = Vec::new();
        let treatment_site = facts.treatment_site();
        match payload {
            Payload::ChainCollected(c) => {
                // Each DIN belongs to one COI, forever.
                for (j, din) in c.dins.iter().enumerate() {
                    let link = self.reference(&facts.reads, &StreamId::din(din)).await?;
                    let owner = text(&link, "coi");
                    if !owner.is_empty() || view.units.contains(din) {
                        let rule = if owner.is_empty() || owner == facts.coi {
                            "was already collected for this chain".to_string()
                        } else {
                            format!(
                                "already belongs to chain {owner}: a DIN belongs to one COI, forever"
                            )
                        };
                        return Err(refuse(&format!("dins[{j}]"), din, rule));
                    }
                    recorded.push(own_draft(
                        draft,
                        StreamId::din(din),
                        format!("din-link/{j}"),
                        "din.linked",
                        json!({"din": din, "coi": facts.coi}),
                    ));
                }
            }
            Payload::CustodyHandedOff(h) => handoff_rules(facts, view, draft, h, site_id, refuse)?,
            Payload::ChainAdministered(a) => administration_rules(facts, view, a, site_id, refuse)?,
            Payload::ChainExceptionalReleaseRequested(r) => {
                if site_id != treatment_site {
                    return Err(refuse(
                        "site_id",
                        site_id,
                        format!("the request comes from the patient's treatment center ({treatment_site})"),
                    ));
                }
                exceptional_request_rules(facts, view, r, refuse)?;
            }
            Payload::ChainHoldReleased(h) => {
                // Released where it was placed: the hold's site decides on its material.
                let hold_id = &h.hold_id;
                let hold_site = view
                    .holds
                    .iter()
                    .find(|open| &open.hold_id == hold_id)
                    .and_then(|open| open.hold.site_id.as_deref());
                if let Some(hold_site) = hold_site.filter(|s| *s != site_id) {
                    return Err(refuse(
                        "site_id",
                        site_id,
                        format!("hold {hold_id} was placed at {hold_site}: it is released there, by a qa_releaser of that site"),
                    ));
                }
            }
            _ => {}
        }
        Ok(recorded)
    }

    /// Reconciles a receipt against the open handoff of its chain: units and their chain,
    /// the COI on each label, count, container, seal, temperature, arrival time and
    /// receiving site. Returns the holds (this chain, and any chain whose unit arrived in
    /// this shipment) and their alerts; nothing when everything matches.
    async fn reconcile_receipt(
        &self,
        facts: &ChainFacts,
        view: &ChainView,
        receipt: &EventDraft,
        r: &CustodyReceivedV1,
    ) -> Result<(Vec<EventDraft>, Vec<EventDraft>), AppError> {
        let Some(handoff) = &view.open_handoff else {
            return Ok((Vec::new(), Vec::new()));
        };
        let manifest = &handoff.handoff;
        let mut findings: Vec<String> = Vec::new();
        let (receiving, destination) = (&r.receiving_site_id, &manifest.destination_site_id);
        if receiving != destination {
            findings.push(format!(
                "received at {receiving}, but the handoff's destination is {destination}"
            ));
        }
        let (scanned, other_chains) = self.label_findings(facts, manifest, r).await?;
        findings.extend(scanned);
        findings.extend(shipment_findings(manifest, r, receipt.occurred_at.instant));
        if findings.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        Ok(reconciliation_holds(
            facts,
            handoff,
            receipt,
            &findings,
            &other_chains,
        ))
    }

    /// What the scanned labels say against the manifest: unreadable or doubled scans,
    /// another chain's unit (returned with its chain), a unit not on the manifest or not
    /// scanned, a label's COI, the count.
    async fn label_findings(
        &self,
        facts: &ChainFacts,
        manifest: &CustodyHandedOffV1,
        r: &CustodyReceivedV1,
    ) -> Result<(Vec<String>, Vec<(String, String)>), AppError> {
        let mut findings: Vec<String> = Vec::new();
        let mut other_chains: Vec<(String, String)> = Vec::new();
        let mut scanned: Vec<String> = Vec::new();
        for (i, label) in r.scanned_labels.iter().enumerate() {
            let field = format!("scanned_labels[{i}].unit");
            let (unit, registry) = match parse_scan(&field, &label.unit) {
                Ok(s @ Scanned::Din { .. }) => (s.unit_id(), "din"),
                Ok(s @ Scanned::Unit(_)) => (s.unit_id(), "unit"),
                Ok(s) => (s.unit_id(), ""),
                Err(e) => {
                    findings.push(format!("{field} {}: {}", e.value, e.rule));
                    continue;
                }
            };
            if scanned.contains(&unit) {
                findings.push(format!("unit {unit} was scanned twice"));
                continue;
            }
            scanned.push(unit.clone());
            let owner = if registry.is_empty() {
                String::new()
            } else {
                text(
                    &self
                        .reference(&facts.reads, &format!("{registry}/{unit}"))
                        .await?,
                    "coi",
                )
                .to_string()
            };
            if !owner.is_empty() && owner != facts.coi {
                findings.push(format!(
                    "unit {unit} belongs to chain {owner}, not to this chain: a unit of another patient arrived in this shipment"
                ));
                if !other_chains.iter().any(|(c, _)| *c == owner) {
                    other_chains.push((owner.clone(), unit.clone()));
                }
            } else if !manifest.units.contains(&unit) {
                findings.push(format!(
                    "unit {unit} arrived but is not on the handoff's manifest"
                ));
            }
            if let Some(label_coi) = &label.coi {
                let read = autolog_domain::identifiers::Coi::parse("coi", label_coi)
                    .map(|c| c.to_string())
                    .unwrap_or_else(|_| label_coi.to_string());
                if read != facts.coi {
                    findings.push(format!(
                        "the label of unit {unit} carries COI {read}, not this chain's {}",
                        facts.coi
                    ));
                }
            }
        }
        for unit in &manifest.units {
            if !scanned.contains(unit) {
                findings.push(format!(
                    "unit {unit} is on the manifest but was not scanned on arrival"
                ));
            }
        }
        let count = u64::from(manifest.unit_count);
        let labels = r.scanned_labels.len() as u64;
        if labels != count {
            findings.push(format!(
                "{labels} labels scanned, but the handoff declared {count} units"
            ));
        }
        Ok((findings, other_chains))
    }
}

/// What the shipper says against the manifest: container, seal, temperature, arrival time.
fn shipment_findings(
    manifest: &CustodyHandedOffV1,
    r: &CustodyReceivedV1,
    arrived_at: Instant,
) -> Vec<String> {
    let mut findings: Vec<String> = Vec::new();
    for (sent, got, what) in [
        (&manifest.container_id, &r.container_id, "container"),
        (&manifest.seal_id, &r.seal_id, "seal"),
    ] {
        if sent != got {
            findings.push(format!("{what} {got} arrived, but {sent} was sent"));
        }
    }
    if !r.seal_intact {
        findings.push("the seal was found broken".to_string());
    }
    let range = &manifest.temperature_range;
    let (min, max) = (range.min_celsius, range.max_celsius);
    let (low, high) = (r.temperature_log.min_celsius, r.temperature_log.max_celsius);
    if low < min || high > max {
        findings.push(format!(
                "{TEMPERATURE_EXCURSION}: the logger recorded {low} to {high} °C, the required range is {min} to {max} °C"
            ));
    }
    let expected = Instant::parse_rfc3339("expected_arrival_by", &manifest.expected_arrival_by);
    if let Ok(expected) = expected {
        if arrived_at > expected {
            findings.push(format!(
                "late arrival: received at {arrived_at}, expected by {expected}"
            ));
        }
    }
    findings
}

/// The holds and alerts of a receipt that failed reconciliation: this chain's, and those of
/// every chain whose unit arrived in this shipment.
fn reconciliation_holds(
    facts: &ChainFacts,
    handoff: &autolog_domain::chain::OpenHandoff,
    receipt: &EventDraft,
    findings: &[String],
    other_chains: &[(String, String)],
) -> (Vec<EventDraft>, Vec<EventDraft>) {
    let manifest = &handoff.data;
    let receiving = text(&receipt.body.data, "receiving_site_id");
    let mut holds = Vec::new();
    let mut alerts = Vec::new();
    let handoff_id = text(manifest, "handoff_id");
    let evidence = json!({
        "handoff_id": handoff_id,
        "handoff_event_id": handoff.event_id.to_string(),
        "receipt_event_id": receipt.event_id.to_string(),
        "findings": findings,
    });
    let hold_id = hold_id_of(receipt, &facts.coi);
    holds.push(hold_placed(
        receipt,
        receipt.stream.clone(),
        format!("hold/{}", facts.coi),
        &hold_id,
        "custody.reconciliation_failed",
        json!(findings),
        Some(receiving),
    ));
    alerts.push(alert_draft(
            receipt,
            0,
            AlertSpec {
                severity: "critical",
                rule: "custody.reconciliation_failed",
                message: format!(
                    "Receipt of handoff {handoff_id} at {receiving} does not match its manifest; chain {} is on hold {hold_id}: {}",
                    facts.coi,
                    findings.join("; ")
                ),
                coi: Some(facts.coi.clone()),
                site_id: Some(receiving.to_string()),
                evidence: evidence.clone(),
            },
        ));
    for (n, (owner, unit)) in other_chains.iter().enumerate() {
        let other_hold = hold_id_of(receipt, owner);
        let finding = format!(
                "unit {unit} of this chain arrived at {receiving} in the shipment of chain {} (handoff {handoff_id})",
                facts.coi
            );
        holds.push(hold_placed(
            receipt,
            StreamId::chain(owner),
            format!("hold/{owner}"),
            &other_hold,
            "custody.unit_in_wrong_shipment",
            json!([finding]),
            Some(receiving),
        ));
        alerts.push(alert_draft(
                receipt,
                n + 1,
                AlertSpec {
                    severity: "critical",
                    rule: "custody.unit_in_wrong_shipment",
                    message: format!(
                        "Unit {unit} of chain {owner} arrived in the shipment of chain {}; chain {owner} is on hold {other_hold}",
                        facts.coi
                    ),
                    coi: Some(owner.clone()),
                    site_id: Some(receiving.to_string()),
                    evidence: evidence.clone(),
                },
            ));
    }
    (holds, alerts)
}

impl Autolog {
    /// A re-collection's enrolment names the chain it collects again: the same patient and
    /// product, not administered, not collected again already. Autolog records the link
    /// on that chain in the same transaction (`chain.recollected`), which closes its
    /// episode: the link is in both chains, and their DINs stay theirs.
    async fn recollection_link(
        &self,
        facts: &ChainFacts,
        draft: &EventDraft,
        enrolled: &ChainEnrolledV1,
        reads: &Arc<RuleReads>,
        index: usize,
    ) -> Result<Vec<EventDraft>, StepError> {
        let Some(previous) = enrolled.previous_coi.as_deref() else {
            return Ok(Vec::new());
        };
        let refuse = |rule: String| StepError::Refused {
            index,
            error: FieldError::new("body.data.previous_coi", previous, rule),
        };
        if previous == facts.coi {
            return Err(refuse("names this chain itself".into()));
        }
        let earlier = self.chain_facts(&StreamId::chain(previous), reads).await?;
        let Some(before) = &earlier.enrolment else {
            return Err(refuse(
                "names no chain: a re-collection links to the chain it collects again".into(),
            ));
        };
        for (field, was, is) in [
            ("patient_key", &before.patient_key, &enrolled.patient_key),
            ("product_code", &before.product_code, &enrolled.product_code),
        ] {
            if was != is {
                return Err(refuse(format!(
                    "is a chain of another {field} ({was}, not {is}): a re-collection is of the same patient and product"
                )));
            }
        }
        let view = earlier.view();
        if let Some(next) = &view.succeeded_by {
            return Err(refuse(format!(
                "was already collected again as chain {next}"
            )));
        }
        if matches!(
            view.state,
            ChainState::Administered | ChainState::InFollowUp
        ) {
            return Err(refuse(
                "was administered: a new treatment is a new enrolment, not a re-collection".into(),
            ));
        }
        Ok(vec![own_draft(
            draft,
            StreamId::chain(previous),
            "recollected".to_string(),
            "chain.recollected",
            json!({"next_coi": facts.coi, "recollection_reason": enrolled.recollection_reason.as_deref().unwrap_or_default()}),
        )])
    }
}

/// The final units an event moves on: a handoff's manifest, the unit checked at the
/// bedside, the unit administered.
fn units_moved(payload: &Payload) -> Vec<String> {
    match payload {
        Payload::CustodyHandedOff(h) => h.units.clone(),
        Payload::ChainAdministered(a) => vec![a.unit.clone()],
        Payload::ChainBedsideVerified(b) => parse_scan("unit_scan", &b.unit_scan)
            .map(|s| vec![s.unit_id()])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The refusal of moving on a final unit past its expiry (the event's own time).
fn expired_unit(view: &ChainView, draft: &EventDraft, payload: &Payload) -> Option<FieldError> {
    let units = units_moved(payload);
    let (unit, expiry) =
        view.expired_unit(units.iter().map(String::as_str), draft.occurred_at.instant)?;
    let field = match draft.body.event_type.as_str() {
        "custody.handed_off" => "body.data.units",
        "chain.bedside_verified" => "body.data.unit_scan",
        _ => "body.data.unit",
    };
    Some(FieldError::new(
        field,
        unit,
        format!(
            "expired at {expiry}: a unit past its expiry is not shipped, checked at the bedside or administered; only a signed QA decision (unit.expiry_extended) extends it"
        ),
    ))
}

/// A shipment that arrives with a final unit past its expiry: the receipt is what
/// happened and is recorded; the chain is held with a critical alert.
fn expired_on_arrival(facts: &ChainFacts, view: &ChainView, draft: &EventDraft) -> Vec<EventDraft> {
    if draft.body.event_type != "custody.received" {
        return Vec::new();
    }
    let Some(handoff) = &view.open_handoff else {
        return Vec::new();
    };
    let units = &handoff.handoff.units;
    let Some((unit, expiry)) =
        view.expired_unit(units.iter().map(String::as_str), draft.occurred_at.instant)
    else {
        return Vec::new();
    };
    let finding = format!("unit {unit} arrived after its expiry ({expiry})");
    let hold_id = hold_id_of(draft, "expired");
    let site = text(&draft.body.data, "receiving_site_id").to_string();
    vec![
        hold_placed(
            draft,
            draft.stream.clone(),
            format!("expiry-hold/{}", facts.coi),
            &hold_id,
            "unit.expired",
            json!([finding]),
            Some(&site),
        ),
        alert_draft(
            draft,
            7,
            AlertSpec {
                severity: "critical",
                rule: "unit.expired",
                message: format!("On chain {}, {finding}: on hold {hold_id}", facts.coi),
                coi: Some(facts.coi.clone()),
                site_id: Some(site),
                evidence: json!({"unit": unit, "expired_at": expiry.to_string()}),
            },
        ),
    ]
}

/// A result recorded after the release that fails its specification: one critical alert
/// and, before administration, a hold until QA decides (the release did not see it).
fn late_failure(
    facts: &ChainFacts,
    view: &ChainView,
    draft: &EventDraft,
    recorded: &[EventDraft],
) -> Vec<EventDraft> {
    if !view.released || draft.body.event_type != "batch.test_result_recorded" {
        return Vec::new();
    }
    let failed = recorded.iter().any(|r| {
        r.body.event_type == "batch.test_result_evaluated"
            && text(&r.body.data, "verdict") == "fail"
    });
    if !failed {
        return Vec::new();
    }
    let test = text(&draft.body.data, "test_code");
    let finding = format!("result of {test} recorded after the release is out of specification");
    let administered = matches!(
        view.state,
        ChainState::Administered | ChainState::InFollowUp
    );
    let mut out = Vec::new();
    if !administered {
        out.push(hold_placed(
            draft,
            draft.stream.clone(),
            format!("hold/{}", facts.coi),
            &hold_id_of(draft, &facts.coi),
            "result.failed_after_release",
            json!([finding]),
            draft.site.as_deref(),
        ));
    }
    out.push(alert_draft(
        draft,
        0,
        AlertSpec {
            severity: "critical",
            rule: "result.failed_after_release",
            message: format!("On chain {}, {finding}", facts.coi),
            coi: Some(facts.coi.clone()),
            site_id: draft.site.clone(),
            evidence: json!({"result_event_id": draft.event_id.to_string(), "test_code": test}),
        },
    ));
    out
}

/// The signed decisions a correction can undermine: what they relied on was on the chain
/// before them.
const DECISIONS: &[&str] = &[
    "chain.released",
    "chain.exceptional_release_requested",
    "chain.hold_released",
];

/// A correction of a fact a signed decision relied on (a result before the release, a
/// step before an exceptional-release request): one critical alert to the roles that sign
/// it and, before administration, a hold until QA decides again. The correction itself is
/// recorded (laboratories amend results; the original is kept, superseded).
fn decision_basis_corrected(
    facts: &ChainFacts,
    view: &ChainView,
    draft: &EventDraft,
    target: Uuid,
) -> Vec<EventDraft> {
    let Some(at) = facts.entries.iter().position(|e| e.event_id == target) else {
        return Vec::new();
    };
    let Some(decision) = facts.entries[at + 1..]
        .iter()
        .find(|e| DECISIONS.contains(&e.event_type.as_str()))
    else {
        return Vec::new();
    };
    let corrected = &facts.entries[at];
    let decided_at = decision.site.clone();
    let administered = matches!(
        view.state,
        ChainState::Administered | ChainState::InFollowUp
    );
    let finding = format!(
        "{} {} was corrected ({}) after {} relied on it",
        corrected.event_type,
        target,
        draft.reason.as_deref().unwrap_or("no reason given"),
        decision.event_type
    );
    let mut recorded = Vec::new();
    let hold_id = hold_id_of(draft, &facts.coi);
    if !administered {
        recorded.push(hold_placed(
            draft,
            draft.stream.clone(),
            format!("hold/{}", facts.coi),
            &hold_id,
            "decision.basis_corrected",
            json!([finding]),
            decided_at.as_deref(),
        ));
    }
    recorded.push(alert_draft(
        draft,
        0,
        AlertSpec {
            severity: "critical",
            rule: "decision.basis_corrected",
            message: if administered {
                format!(
                    "On chain {} (administered), {finding}: review the decision",
                    facts.coi
                )
            } else {
                format!(
                    "On chain {}, {finding}: the chain is on hold {hold_id} until QA decides again",
                    facts.coi
                )
            },
            coi: Some(facts.coi.clone()),
            site_id: decided_at,
            evidence: json!({
                "corrected_event_id": target.to_string(),
                "correction_event_id": draft.event_id.to_string(),
                "decision_event_id": decision.event_id.to_string(),
                "decision": decision.event_type,
            }),
        },
    ));
    recorded
}

/// Alerts for the process windows an event closes too late (the event is accepted: what
/// happened is recorded, and the breach is raised at once).
fn window_breaches(
    facts: &ChainFacts,
    view: &ChainView,
    draft: &EventDraft,
    payload: &Payload,
) -> Vec<EventDraft> {
    let step = match payload {
        Payload::ChainCollected(_) => facts.ctx.collecting_step.clone().unwrap_or_default(),
        other => other.step_code().unwrap_or_default().to_string(),
    };
    if step.is_empty() || view.performed.contains_key(&step) {
        return Vec::new(); // the window closes at the first time a step is performed
    }
    let at = draft.occurred_at.instant;
    let windows = facts
        .product
        .get("process")
        .and_then(|p| p.get("windows"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut alerts = Vec::new();
    for (n, window) in windows.iter().enumerate() {
        if text(window, "to_step") != step {
            continue;
        }
        let from_step = text(window, "from_step");
        let Some(from) = view.performed.get(from_step) else {
            continue;
        };
        let max_minutes = window
            .get("max_minutes")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MAX);
        let elapsed_minutes = (at.micros() - from.micros()) / 60_000_000;
        if elapsed_minutes > max_minutes {
            alerts.push(alert_draft(
                draft,
                100 + n,
                AlertSpec {
                    severity: "major",
                    rule: "process.window_breached",
                    message: format!(
                        "Step {step} of chain {} came {elapsed_minutes} minutes after {from_step}; the process allows at most {max_minutes}",
                        facts.coi
                    ),
                    coi: Some(facts.coi.clone()),
                    site_id: draft.site.clone(),
                    evidence: json!({
                        "from_step": from_step,
                        "to_step": step,
                        "from": from.to_string(),
                        "to": at.to_string(),
                        "max_minutes": max_minutes,
                        "elapsed_minutes": elapsed_minutes,
                    }),
                },
            ));
        }
    }
    alerts
}

/// A person record with only the qualifications of one role.
pub(crate) fn filter_role(person: &Value, role: &str) -> Value {
    let mut only = person.clone();
    if let Some(list) = only.get_mut("qualifications").and_then(Value::as_array_mut) {
        list.retain(|q| text(q, "role") == role);
    }
    only
}

/// The id of a hold `cause` places (on the chain or for the `tag` given): derived from the
/// cause's source, so a resent cause places no second hold.
pub(crate) fn hold_id_of(cause: &EventDraft, tag: &str) -> String {
    format!(
        "HOLD-{}",
        short_digest(&[&cause.source.system, &cause.source.source_event_id, tag])
    )
}

/// The `chain.hold_placed` Autolog records on `stream` because of `cause`.
pub(crate) fn hold_placed(
    cause: &EventDraft,
    stream: impl Into<String>,
    what: String,
    hold_id: &str,
    rule: &str,
    findings: Value,
    site: Option<&str>,
) -> EventDraft {
    own_draft(
        cause,
        stream,
        what,
        "chain.hold_placed",
        json!({"hold_id": hold_id, "rule": rule, "findings": findings, "site_id": site,
               "caused_by_event_id": cause.event_id.to_string()}),
    )
}

/// An event Autolog records because of `cause`, in the same transaction, with a source id
/// derived from the cause's (a resent request yields the same id, so nothing is doubled).
pub(crate) fn own_draft(
    cause: &EventDraft,
    stream: impl Into<String>,
    what: String,
    event_type: &str,
    data: Value,
) -> EventDraft {
    let source_event_id = format!(
        "{what}/{}",
        short_digest(&[&cause.source.system, &cause.source.source_event_id])
    );
    derived_draft(cause, stream, source_event_id, event_type, data)
}

/// A handoff leaves from the custodian (or, a return, from where disputed material is)
/// with the chain's own units; after release only for the patient's treatment center.
fn handoff_rules(
    facts: &ChainFacts,
    view: &ChainView,
    draft: &EventDraft,
    h: &CustodyHandedOffV1,
    site_id: &str,
    refuse: Refuse<'_>,
) -> Result<(), StepError> {
    let custodian = view.custodian_site_id.as_deref().unwrap_or_default();
    let treatment_site = facts.treatment_site();
    let at = draft.occurred_at.instant;

    // A return leaves from where the material is (custody disputed) for the
    // custodian of record: `ChainView::is_return`.
    let returning = view.is_return(&h.from_site_id, &h.destination_site_id);
    if custodian != site_id && !returning {
        return Err(refuse(
            "from_site_id",
            site_id,
            format!("is not the chain's custodian: the material is at {custodian}"),
        ));
    }
    for (i, unit) in h.units.iter().enumerate() {
        if !view.units.contains(unit) {
            return Err(refuse(
                &format!("units[{i}]"),
                unit,
                format!(
                    "is not a unit of chain {} (its units: {})",
                    facts.coi,
                    view.units.join(", ")
                ),
            ));
        }
    }
    // The released product goes to this patient's treatment center, nowhere else.
    let destination = &h.destination_site_id;
    if view.released && destination != treatment_site {
        return Err(refuse(
                        "destination_site_id",
                        destination,
                        format!(
                            "is not the patient's treatment center: the product released for chain {} goes to {treatment_site}",
                            facts.coi
                        ),
                    ));
    }
    let expected = Instant::parse_rfc3339("expected_arrival_by", &h.expected_arrival_by).ok();
    if expected.is_some_and(|e| e <= at) {
        return Err(refuse(
            "expected_arrival_by",
            &h.expected_arrival_by,
            format!("must be later than the handoff ({at})"),
        ));
    }
    Ok(())
}

/// An administration happens where the patient's product is, with a unit released for
/// this patient that passed the bedside check.
fn administration_rules(
    facts: &ChainFacts,
    view: &ChainView,
    a: &ChainAdministeredV1,
    site_id: &str,
    refuse: Refuse<'_>,
) -> Result<(), StepError> {
    let custodian = view.custodian_site_id.as_deref().unwrap_or_default();
    let treatment_site = facts.treatment_site();

    if site_id != treatment_site || custodian != treatment_site {
        return Err(refuse(
                        "site_id",
                        site_id,
                        format!(
                            "is not where the patient's product is: chain {} is enrolled at {treatment_site} and its custodian is {custodian}",
                            facts.coi
                        ),
                    ));
    }
    let unit = &a.unit;
    let released: Vec<&String> = facts
        .entries
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::ChainReleased(r) => Some(&r.units),
            _ => None,
        })
        .flatten()
        .collect();
    if !view.bedside_verified.iter().any(|u| u == unit) {
        return Err(refuse(
            "unit",
            unit,
            "has not passed the bedside check for this patient: verify it before infusion"
                .to_string(),
        ));
    }
    if !released.contains(&unit) {
        let names: Vec<&str> = released.iter().map(|u| u.as_str()).collect();
        return Err(refuse(
            "unit",
            unit,
            format!(
                "is not a unit released for this patient (released: {})",
                names.join(", ")
            ),
        ));
    }
    Ok(())
}

/// A physician's request for an exceptional release names a batch of this chain, this
/// chain's patient, and only failing results of that batch already known.
fn exceptional_request_rules(
    facts: &ChainFacts,
    view: &ChainView,
    r: &ChainExceptionalReleaseRequestedV1,
    refuse: Refuse<'_>,
) -> Result<(), StepError> {
    let batch = &r.batch_id;
    if !view.batches.contains(batch) {
        return Err(refuse(
            "batch_id",
            batch,
            format!("is not a batch of chain {}", facts.coi),
        ));
    }
    let intended = &r.intended_patient_key;
    if intended != facts.patient_key() {
        return Err(refuse(
            "intended_patient_key",
            intended,
            format!("is not the patient of chain {}", facts.coi),
        ));
    }
    for (i, id) in r.result_event_ids.iter().enumerate() {
        let failing = facts.entries.iter().any(|e| {
            matches!(&e.payload, Payload::BatchTestResultEvaluated(v)
                if &v.result_event_id == id && &v.batch_id == batch && v.verdict == "fail")
        });
        if !failing {
            return Err(refuse(
                &format!("result_event_ids[{i}]"),
                id,
                format!("is not a failing result of batch {batch}"),
            ));
        }
    }
    Ok(())
}
