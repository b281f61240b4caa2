//! The patient's batch: created only from its own chain's collections, materials checked
//! against their lot status, final units tied to the chain, results judged, release gated.

use autolog_domain::batch::evaluate;
use autolog_domain::catalogue::batch::{
    BatchCreatedV1, BatchMaterialConsumedV1, BatchTestResultRecordedV1, BatchUnitsProducedV1,
};
use autolog_domain::catalogue::chain::{ChainBedsideVerifiedV1, ChainReleasedV1};
use autolog_domain::catalogue::Payload;
use autolog_domain::chain::ChainView;
use autolog_domain::identifiers::UnitId;
use autolog_domain::StreamId;
use autolog_domain::{EventDraft, FieldError, Instant};
use serde_json::{json, Value};

use crate::chain::custody::{filter_role, own_draft, ChainFacts, Refuse, StepError};
use crate::feeds::alerts::{alert_draft, AlertSpec};
use crate::ledger::read::text;
use crate::reference::alignment::qualified;
use crate::{AppError, Autolog};

/// The release tests of a chain's product.
fn release_tests(facts: &ChainFacts) -> Vec<Value> {
    facts
        .product
        .get("process")
        .and_then(|p| p.get("release_tests"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

impl Autolog {
    /// The major alert for a consumption of a lot that was released at the consumption's
    /// time but is recalled as known now (a late entry), naming the batch and the recall.
    fn recalled_since(
        draft: &EventDraft,
        facts: &ChainFacts,
        lot_now: &Value,
        (material, lot, batch_id): (&str, &str, &str),
    ) -> Option<EventDraft> {
        if text(lot_now, "status") != "recalled" {
            return None;
        }
        Some(alert_draft(
            draft,
            0,
            AlertSpec {
                severity: "major",
                rule: "material_lot.recalled_after_use",
                message: format!(
                    "Batch {batch_id} of chain {} used lot {lot} of {material}, released then and recalled since",
                    facts.coi
                ),
                coi: Some(facts.coi.clone()),
                site_id: draft.site.clone(),
                evidence: json!({"material": material, "lot": lot, "batch_id": batch_id,
                                 "consumption_event_id": draft.event_id.to_string()}),
            },
        ))
    }

    /// The rules of batch events beyond who, where and with what: a batch from this
    /// chain's collections only; lots released and in date; final units carrying this
    /// chain's COI and product code; results judged. Returns what Autolog records with
    /// them (batch, unit and lot links, the MES crosswalk, verdicts).
    pub(crate) async fn batch_rules(
        &self,
        facts: &ChainFacts,
        view: &ChainView,
        draft: &EventDraft,
        payload: &Payload,
        refuse: Refuse<'_>,
    ) -> Result<Vec<EventDraft>, StepError> {
        match payload {
            Payload::BatchCreated(b) => {
                self.batch_created_rules(facts, view, draft, b, refuse)
                    .await
            }
            Payload::BatchMaterialConsumed(c) => {
                self.consumption_rules(facts, draft, c, refuse).await
            }
            Payload::BatchUnitsProduced(u) => {
                self.units_produced_rules(facts, draft, u, refuse).await
            }
            Payload::BatchTestResultRecorded(r) => {
                self.result_rules(facts, view, draft, r, refuse).await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// A batch is created where the bags are, from this chain's bags the site holds, under a new id (linked to its MES number).
    async fn batch_created_rules(
        &self,
        facts: &ChainFacts,
        view: &ChainView,
        draft: &EventDraft,
        b: &BatchCreatedV1,
        refuse: Refuse<'_>,
    ) -> Result<Vec<EventDraft>, StepError> {
        let batch_id = b.batch_id.as_str();
        let custodian = view.custodian_site_id.as_deref().unwrap_or_default();
        let mut recorded = Vec::new();

        let site = b.site_id.as_str();
        if site != custodian {
            return Err(refuse(
                "site_id",
                site,
                format!("is not where the chain's material is ({custodian})"),
            ));
        }
        for (i, din) in b.source_dins.iter().enumerate() {
            let owner = text(
                &self.reference(&facts.reads, &StreamId::din(din)).await?,
                "coi",
            )
            .to_string();
            let rule = if owner.is_empty() {
                Some(
                    "belongs to no chain: a batch is made only from collections of its patient"
                        .to_string(),
                )
            } else if owner != facts.coi {
                Some(format!(
                            "belongs to chain {owner}, not {}: a batch is made from one patient's collections only",
                            facts.coi
                        ))
            } else {
                None
            };
            // A batch is made only from bags the manufacturing site holds: a bag
            // kept back at the apheresis center (a partial shipment) is not there.
            let rule = rule.or_else(|| match view.unit_sites.get(din.as_str()) {
                        Some(Some(at)) if at != site => Some(format!(
                            "is at {at}, not at {site}: a batch is made only from bags the site holds"
                        )),
                        Some(None) => Some(format!(
                            "is still in transit, not at {site}: a batch is made only from bags the site holds"
                        )),
                        _ => None,
                    });
            if let Some(rule) = rule {
                return Err(refuse(&format!("source_dins[{i}]"), din, rule));
            }
        }
        let existing = self
            .reference(&facts.reads, &StreamId::batch(batch_id))
            .await?;
        if !text(&existing, "coi").is_empty() {
            return Err(refuse(
                "batch_id",
                batch_id,
                format!(
                    "already belongs to chain {}: a batch id is used once",
                    text(&existing, "coi")
                ),
            ));
        }
        recorded.push(own_draft(
            draft,
            StreamId::batch(batch_id),
            "batch-link".to_string(),
            "batch.linked",
            json!({"batch_id": batch_id, "coi": facts.coi}),
        ));
        if let (Some(system), Some(number)) = (&b.mes_system, &b.mes_batch_number) {
            recorded.push(own_draft(
                draft,
                autolog_domain::rules::crosswalk_stream(system, "batch"),
                "mes-batch".to_string(),
                "crosswalk.mapped",
                json!({"system": system, "kind": "batch", "local_code": number,
                               "canonical_id": batch_id,
                               "valid_from": draft.occurred_at.instant.to_string()}),
            ));
        }
        Ok(recorded)
    }

    /// A material is consumed from a lot released and unexpired at the consumption's own time.
    async fn consumption_rules(
        &self,
        facts: &ChainFacts,
        draft: &EventDraft,
        c: &BatchMaterialConsumedV1,
        refuse: Refuse<'_>,
    ) -> Result<Vec<EventDraft>, StepError> {
        let batch_id = c.batch_id.as_str();
        let mut recorded = Vec::new();

        let (material, lot) = (c.material.as_str(), c.lot.as_str());
        // Judged at the consumption's own time: a late entry dated before a
        // recall used a released lot.
        let stream = StreamId::lot(material, lot);
        let events = self.record_events(&stream).await?;
        let record =
            autolog_domain::catalogue::record_at(&stream, &events, draft.occurred_at.instant);
        let status = text(&record, "status");
        if status != "released" {
            return Err(refuse(
                "lot",
                lot,
                format!("lot {lot} of {material} is {status}: only a released lot may be used"),
            ));
        }
        let expiry = text(&record, "expiry");
        // The expiry date is a calendar date at the site: compare the local date.
        let zone = text(
            &self
                .reference(&facts.reads, &StreamId::site(&c.site_id))
                .await?,
            "time_zone",
        )
        .to_string();
        let day = match autolog_domain::ledger::zone::check_zone("time_zone", &zone) {
            Ok(tz) => autolog_domain::ledger::zone::local_time(draft.occurred_at.instant, &tz),
            Err(_) => draft.occurred_at.instant.to_string(),
        };
        if !expiry.is_empty() && day.get(..10).is_some_and(|d| d > expiry) {
            return Err(refuse(
                "lot",
                lot,
                format!("lot {lot} of {material} expired on {expiry}"),
            ));
        }
        // A late entry: released when used, recalled since. Recorded (it is what
        // happened), and the recall reaches this patient's batch at once.
        let lot_now = autolog_domain::catalogue::record_at(&stream, &events, Instant::MAX);
        recorded.extend(Self::recalled_since(
            draft,
            facts,
            &lot_now,
            (material, lot, batch_id),
        ));
        recorded.push(own_draft(
            draft,
            stream,
            "lot-use".to_string(),
            "material_lot.consumed",
            json!({"coi": facts.coi, "batch_id": batch_id, "event_id": draft.event_id.to_string()}),
        ));
        Ok(recorded)
    }

    /// Final units carry this chain's COI and the product's code, each used once.
    async fn units_produced_rules(
        &self,
        facts: &ChainFacts,
        draft: &EventDraft,
        u: &BatchUnitsProducedV1,
        refuse: Refuse<'_>,
    ) -> Result<Vec<EventDraft>, StepError> {
        let batch_id = u.batch_id.as_str();
        let mut recorded = Vec::new();

        let product_code = text(&facts.product, "isbt128_product_code");
        for (i, unit_text) in u.units.iter().enumerate() {
            let field = format!("units[{i}]");
            let unit =
                UnitId::parse(&field, unit_text).map_err(|e| refuse(&field, unit_text, e.rule))?;
            if unit.coi().to_string() != facts.coi {
                return Err(refuse(
                    &field,
                    unit_text,
                    format!(
                        "carries COI {}, not this chain's {}: a unit belongs to its patient",
                        unit.coi(),
                        facts.coi
                    ),
                ));
            }
            if product_code.is_empty() || unit.product_code() != product_code {
                return Err(refuse(
                    &field,
                    unit_text,
                    format!(
                        "carries product code {}, but product {} has {} in reference data",
                        unit.product_code(),
                        facts.product_code(),
                        if product_code.is_empty() {
                            "none"
                        } else {
                            product_code
                        }
                    ),
                ));
            }
            let link = self
                .reference(&facts.reads, &StreamId::unit(unit_text))
                .await?;
            if !text(&link, "coi").is_empty() {
                return Err(refuse(
                    &field,
                    unit_text,
                    "was already produced: a unit identifier is used once".to_string(),
                ));
            }
            recorded.push(own_draft(
                draft,
                StreamId::unit(unit_text),
                format!("unit-link/{i}"),
                "unit.linked",
                json!({"unit_id": unit_text, "coi": facts.coi, "batch_id": batch_id}),
            ));
        }
        Ok(recorded)
    }

    /// A result is of a release test of the product (and of a final unit of the batch), and is judged against its specification.
    async fn result_rules(
        &self,
        facts: &ChainFacts,
        view: &ChainView,
        draft: &EventDraft,
        r: &BatchTestResultRecordedV1,
        refuse: Refuse<'_>,
    ) -> Result<Vec<EventDraft>, StepError> {
        let batch_id = r.batch_id.as_str();
        let mut recorded = Vec::new();

        let test_code = r.test_code.as_str();
        let tests = release_tests(facts);
        let Some(spec) = tests.iter().find(|t| text(t, "test_code") == test_code) else {
            let known: Vec<&str> = tests.iter().map(|t| text(t, "test_code")).collect();
            return Err(refuse(
                "test_code",
                test_code,
                format!(
                    "is not a release test of product {} (tests: {})",
                    facts.product_code(),
                    known.join(", ")
                ),
            ));
        };
        if let Some(unit) = &r.unit {
            let produced = view.batch_units.get(batch_id).cloned().unwrap_or_default();
            if !produced.iter().any(|u| u == unit) {
                return Err(refuse(
                    "unit",
                    unit,
                    format!("is not a final unit of batch {batch_id}"),
                ));
            }
        }
        let (pass, reason) = evaluate(spec, &r.result, r.result_unit.as_deref());
        recorded.push(own_draft(
            draft,
            draft.stream.clone(),
            "verdict".to_string(),
            "batch.test_result_evaluated",
            json!({
                "result_event_id": draft.event_id.to_string(),
                "batch_id": batch_id,
                "test_code": test_code,
                "verdict": if pass { "pass" } else { "fail" },
                "reason": reason,
                "specification": spec,
            }),
        ));
        Ok(recorded)
    }

    /// Every condition a patient-specific release does not meet (empty: it may be
    /// released): the batch is this chain's; the chain's patient is the intended patient;
    /// every release test's latest result passes; no deviation is open, and each closed
    /// one permits release; the releaser is a qa_releaser at the site then; the site holds
    /// the product; the released units are the batch's.
    pub(crate) async fn release_conditions(
        &self,
        facts: &ChainFacts,
        view: &ChainView,
        draft: &EventDraft,
        r: &ChainReleasedV1,
    ) -> Result<Vec<FieldError>, AppError> {
        let at = draft.occurred_at.instant;
        let batch_id = r.batch_id.as_str();
        let mut unmet = Vec::new();
        if !view.batches.iter().any(|b| b == batch_id) {
            unmet.push(FieldError::new(
                "body.data.batch_id",
                batch_id,
                format!(
                    "is not a batch of chain {} (batches: {})",
                    facts.coi,
                    view.batches.join(", ")
                ),
            ));
        }
        let intended = r.intended_patient_key.as_str();
        let source = facts.patient_key();
        if intended != source {
            unmet.push(FieldError::new(
                "body.data.intended_patient_key",
                intended,
                format!(
                    "is not the batch's source patient: batch {batch_id} was made from the collections of chain {}, whose patient is another",
                    facts.coi
                ),
            ));
        }
        let exceptional = r.exceptional == Some(true);
        let tests = release_tests(facts);
        if tests.is_empty() {
            unmet.push(FieldError::new(
                "release_tests",
                facts.product_code(),
                "the product's process defines no release test: nothing shows the batch meets its specification",
            ));
        }
        let required: Vec<String> = tests
            .iter()
            .map(|t| text(t, "test_code").to_string())
            .collect();
        let entries: Vec<autolog_domain::chain::ChainEntry> = facts
            .entries
            .iter()
            .map(autolog_domain::chain::ChainEvent::as_entry)
            .collect();
        unmet.extend(autolog_domain::batch::release_blockers(
            &entries,
            view,
            &autolog_domain::batch::ReleaseCheck {
                batch_id,
                intended_patient_key: intended,
                exceptional,
                required_tests: Some(&required),
            },
        ));
        let site = r.site_id.as_str();
        let releaser_id = r.released_by.as_str();
        let releaser = self
            .reference(&facts.reads, &StreamId::person(releaser_id))
            .await?;
        let only_qa = filter_role(&releaser, "qa_releaser");
        // Qualified when the release is dated and now, when it is signed.
        if !qualified(&only_qa, Some(site), at) || !qualified(&only_qa, Some(site), self.now()) {
            unmet.push(FieldError::new(
                "body.data.released_by",
                releaser_id,
                format!("holds no qualification as qa_releaser at {site} valid at {at}"),
            ));
        }
        if exceptional {
            let second_id = r.second_released_by.as_deref().unwrap_or_default();
            let second = self
                .reference(&facts.reads, &StreamId::person(second_id))
                .await?;
            let second_qa = filter_role(&second, "qa_releaser");
            if !qualified(&second_qa, Some(site), at) {
                unmet.push(FieldError::new(
                    "body.data.second_released_by",
                    second_id,
                    format!("holds no qualification as qa_releaser at {site} valid at {at}: the second signature must be qualified too"),
                ));
            }
        }
        let chain_stream = StreamId::chain(&facts.coi);
        if let Some(unreviewed) = self
            .audit_review_condition(chain_stream.as_ref(), &facts.product)
            .await?
        {
            unmet.push(unreviewed);
        }
        let custodian = view.custodian_site_id.as_deref().unwrap_or_default();
        if site != custodian {
            unmet.push(FieldError::new(
                "body.data.site_id",
                site,
                format!("is not where the product is: the chain's custodian is {custodian}"),
            ));
        }
        let produced = view.batch_units.get(batch_id).cloned().unwrap_or_default();
        for (i, unit) in r.units.iter().enumerate() {
            if !produced.contains(unit) {
                unmet.push(FieldError::new(
                    format!("body.data.units[{i}]"),
                    unit,
                    format!("is not a final unit of batch {batch_id}"),
                ));
            }
            // A unit past its expiry is not released for a patient, as it is not shipped.
            if let Some((_, expiry)) = view.expired_unit([unit.as_str()], at) {
                unmet.push(FieldError::new(
                    format!("body.data.units[{i}]"),
                    unit,
                    format!(
                        "expired at {expiry}: a unit past its expiry is not released; only a signed QA decision (unit.expiry_extended) extends it"
                    ),
                ));
            }
        }
        Ok(unmet)
    }

    /// The bedside check against the personal-data vault: identifiers read at the bedside
    /// (`patient_identifiers`) are compared with the patient's record and removed from the
    /// draft, which keeps only the names of those checked (`identifiers_checked`). Any
    /// mismatch is a hard stop with a critical alert; the values are never written or echoed.
    pub(crate) async fn check_bedside_identifiers(
        &self,
        drafts: &mut [EventDraft],
        single: bool,
    ) -> Result<(), AppError> {
        for (i, draft) in drafts.iter_mut().enumerate() {
            if draft.body.event_type != "chain.bedside_verified" {
                continue;
            }
            let prefix = if single {
                String::new()
            } else {
                format!("[{i}].")
            };
            let Some(data) = draft.body.data.as_object_mut() else {
                continue;
            };
            if data.contains_key("identifiers_checked") {
                return Err(AppError::Invalid(FieldError::new(
                    format!("{prefix}body.data.identifiers_checked"),
                    "(given)",
                    "is recorded by Autolog after comparing patient_identifiers with the vault",
                )));
            }
            let Some(presented) = data.remove("patient_identifiers") else {
                continue;
            };
            let patient_key = text(&draft.body.data, "patient_key").to_string();
            // Compared with the chain's own patient only: a check naming another patient
            // is refused by the chain's rules, and never compares (no guessing another
            // patient's identifiers through the bedside check).
            let chain_patient = match draft.stream.strip_prefix("coi/") {
                Some(coi) => self.patient_key_of(coi).await.ok(),
                None => None,
            };
            if chain_patient.as_deref() != Some(patient_key.as_str()) {
                continue;
            }
            let field = |name: &str| format!("{prefix}body.data.patient_identifiers.{name}");
            let mismatches = match self
                .personal_data_matches(&patient_key, &presented, &draft.actor)
                .await
            {
                Ok(m) => m,
                Err(AppError::Invalid(e)) => {
                    return Err(AppError::Invalid(FieldError::new(
                        field(e.field.trim_start_matches("data.")),
                        e.value,
                        e.rule,
                    )))
                }
                Err(AppError::NotFound { .. }) | Err(AppError::Gone(_)) => {
                    vec![String::new()]
                }
                Err(other) => return Err(other),
            };
            if !mismatches.is_empty() {
                let unmet: Vec<FieldError> = mismatches
                    .iter()
                    .map(|name| {
                        if name.is_empty() {
                            FieldError::new(
                                field("").trim_end_matches('.'),
                                "(not shown)",
                                format!("the vault holds no identifying data for patient {patient_key} to compare with: confirm the patient's identity before infusing"),
                            )
                        } else {
                            FieldError::new(
                                field(name),
                                "(not shown)",
                                "does not match the patient's identifying data in the vault: do not infuse",
                            )
                        }
                    })
                    .collect();
                if let Some(first) = unmet.first() {
                    self.record_refusal_alert(draft, first).await;
                }
                return Err(AppError::Unmet(unmet));
            }
            let names: Vec<String> = presented
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            draft.body.data["identifiers_checked"] = json!(names);
        }
        Ok(())
    }

    /// Every mismatch of a bedside check (empty: the unit may be given to this patient):
    /// the scanned unit belongs to this chain, the wristband's COI is this chain's, the
    /// patient key is the chain's patient, the unit was released for this patient and
    /// received here, at the patient's treatment center.
    pub(crate) async fn bedside_conditions(
        &self,
        facts: &ChainFacts,
        view: &ChainView,
        b: &ChainBedsideVerifiedV1,
    ) -> Result<Vec<FieldError>, AppError> {
        let mut unmet = Vec::new();
        let scan = b.unit_scan.as_str();
        let unit = autolog_domain::identifiers::scan::parse_scan("unit_scan", scan)
            .map(|s| s.unit_id())
            .unwrap_or_default();
        let owner = text(
            &self.reference(&facts.reads, &StreamId::unit(&unit)).await?,
            "coi",
        )
        .to_string();
        if owner != facts.coi {
            unmet.push(FieldError::new(
                "body.data.unit_scan",
                scan,
                if owner.is_empty() {
                    format!("unit {unit} is not a unit Autolog knows: do not infuse")
                } else {
                    format!("unit {unit} belongs to chain {owner}, not to this patient's chain {}: do not infuse", facts.coi)
                },
            ));
        }
        let wristband = autolog_domain::identifiers::Coi::parse("wristband_coi", &b.wristband_coi)
            .map(|c| c.to_string())
            .unwrap_or_default();
        if wristband != facts.coi {
            unmet.push(FieldError::new(
                "body.data.wristband_coi",
                &b.wristband_coi,
                format!("is not this chain's COI {}: the patient in front of you is not this chain's patient", facts.coi),
            ));
        }
        let patient = b.patient_key.as_str();
        if patient != facts.patient_key() {
            unmet.push(FieldError::new(
                "body.data.patient_key",
                patient,
                format!("is not the patient of chain {}", facts.coi),
            ));
        }
        let released_to_patient = facts.entries.iter().any(|e| {
            matches!(&e.payload, Payload::ChainReleased(r)
                if r.intended_patient_key == patient && r.units.contains(&unit))
        });
        if !released_to_patient {
            unmet.push(FieldError::new(
                "body.data.unit_scan",
                scan,
                format!("unit {unit} was not released for patient {patient}"),
            ));
        }
        let site = b.site_id.as_str();
        let treatment = facts.treatment_site();
        let custodian = view.custodian_site_id.as_deref().unwrap_or_default();
        if site != treatment || custodian != treatment {
            unmet.push(FieldError::new(
                "body.data.site_id",
                site,
                format!("the product is to be given at {treatment} (it is at {custodian})"),
            ));
        }
        Ok(unmet)
    }
}

/// A release as it would be checked now, for a form to show before anything is signed.
#[derive(Debug, Clone)]
pub struct ReleaseDraft<'a> {
    pub coi: &'a str,
    pub batch_id: &'a str,
    pub intended_patient_key: &'a str,
    pub site_id: &'a str,
    pub released_by: &'a str,
    pub units: &'a [String],
    /// The site's local time now, RFC 9557: the release's valid time.
    pub occurred_at: &'a str,
    /// An exceptional release, with the second person who signs it.
    pub exceptional_second: Option<&'a str>,
}

impl Autolog {
    /// Every condition the release would not meet if it were signed now (empty: it may be
    /// released), as the append would refuse it; nothing is written and nobody signs.
    pub async fn release_check(
        &self,
        release: &ReleaseDraft<'_>,
    ) -> Result<Vec<FieldError>, AppError> {
        let request = json!({
            "stream": StreamId::chain(release.coi).to_string(),
            "occurred_at": release.occurred_at,
            "actor": format!("person/{}", release.released_by),
            "site": release.site_id,
            "source": {"system": "console", "source_event_id": format!("release-check/{}", self.new_event_id())},
            "body": {"type": "chain.released", "version": 1, "data": {
                "signature": {}, "batch_id": release.batch_id,
                "intended_patient_key": release.intended_patient_key, "site_id": release.site_id,
                "released_by": release.released_by, "units": release.units,
            }},
        });
        let mut request = request;
        if let Some(second) = release.exceptional_second {
            let data = &mut request["body"]["data"];
            data["exceptional"] = json!(true);
            data["second_released_by"] = json!(second);
            data["second_signature"] = json!({});
        }
        let (drafts, _) = crate::ledger::request::parse_request(
            request.to_string().as_bytes(),
            self.clock.as_ref(),
            self.clock_skew_tolerance_seconds,
        )?;
        match self.chain_step_rules(&drafts).await {
            Ok(_) => Ok(Vec::new()),
            Err(StepError::Unmet { conditions, .. }) => Ok(conditions),
            Err(StepError::Refused { error, .. } | StepError::Expired { error, .. }) => {
                Ok(vec![error])
            }
            Err(StepError::Failed(e)) => Err(e),
        }
    }
}
