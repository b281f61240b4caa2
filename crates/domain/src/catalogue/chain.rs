//! The chain of identity's payloads: custody (handoffs, receipts, samples), steps,
//! release, bedside verification and administration, holds and legal holds, alerts. The
//! chain's rules and fold (`crate::chain`) read them in this typed form.

use serde::Deserialize;
use serde_json::Value;

use crate::error::FieldError;
use crate::ledger::envelope::{check_code as code, check_text};
use crate::ledger::event_type::Check;
use crate::ledger::time::Instant;

/// Samples of the chain (QC aliquots, retains) sent to a laboratory: units with their own
/// custody, apart from the chain's material. The destination then takes part in the chain.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleHandedOffV1 {
    pub shipment_id: String,
    pub samples: Vec<String>,
    pub from_site_id: String,
    pub destination_site_id: String,
    pub handed_off_by: String,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleReceivedV1 {
    pub shipment_id: String,
    pub samples: Vec<String>,
    pub receiving_site_id: String,
    pub received_by: String,
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

/// A temperature range in degrees Celsius.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureRange {
    pub min_celsius: f64,
    pub max_celsius: f64,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyHandedOffV1 {
    pub handoff_id: String,
    pub step_code: String,
    pub from_site_id: String,
    pub handed_off_by: String,
    pub destination_site_id: String,
    pub courier: String,
    pub units: Vec<String>,
    pub unit_count: u32,
    pub container_id: String,
    pub seal_id: String,
    pub expected_arrival_by: String,
    pub temperature_range: TemperatureRange,
    /// The people who verified the step, as its verification policy asks: given as
    /// `[{verifier_id, secret}]`, recorded as their manifestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifications: Option<Vec<serde_json::Value>>,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannedLabel {
    pub unit: String,
    pub coi: Option<String>,
}

/// The temperature logger's summary for the leg.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureLog {
    pub min_celsius: f64,
    pub max_celsius: f64,
    pub logger_id: Option<String>,
}

/// The receiver's receipt: what arrived, as scanned.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodyReceivedV1 {
    pub handoff_id: String,
    pub step_code: String,
    pub receiving_site_id: String,
    pub received_by: String,
    pub scanned_labels: Vec<ScannedLabel>,
    pub container_id: String,
    pub seal_id: String,
    /// Whether the seal was found intact (required: a missing answer is not an intact seal).
    /// Read by the reconciliation from the payload; any boolean is valid here.
    pub seal_intact: bool,
    pub temperature_log: TemperatureLog,
    /// The people who verified the step, as its verification policy asks: given as
    /// `[{verifier_id, secret}]`, recorded as their manifestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifications: Option<Vec<serde_json::Value>>,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainStepPerformedV1 {
    pub step_code: String,
    pub site_id: String,
    pub performed_by: String,
    #[serde(default)]
    pub equipment_ids: Vec<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainReleasedV1 {
    /// The signature as recorded; its binding is checked with the stream it stands in
    /// (`signature::check_manifestation`).
    pub signature: Value,
    pub batch_id: String,
    pub intended_patient_key: String,
    pub site_id: String,
    pub released_by: String,
    pub units: Vec<String>,
    /// An exceptional release of an out-of-specification product: a treating physician's
    /// signed request, and a second qualified person's signature.
    pub exceptional: Option<bool>,
    pub second_released_by: Option<String>,
    pub second_signature: Option<Value>,
    /// The people who verified the step, as its verification policy asks: given as
    /// `[{verifier_id, secret}]`, recorded as their manifestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifications: Option<Vec<serde_json::Value>>,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainAdministeredV1 {
    pub step_code: String,
    pub site_id: String,
    pub administered_by: String,
    pub verified_by: String,
    pub unit: String,
    /// The people who verified the step, as its verification policy asks: given as
    /// `[{verifier_id, secret}]`, recorded as their manifestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifications: Option<Vec<serde_json::Value>>,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainExceptionalReleaseRequestedV1 {
    pub batch_id: String,
    pub intended_patient_key: String,
    /// The out-of-specification results the physician accepts (their event ids); only
    /// these are waived.
    pub result_event_ids: Vec<String>,
    pub site_id: String,
    pub requested_by: String,
    pub justification: String,
    pub signature: Value,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainLegalHoldV1 {
    pub legal_hold_id: String,
    pub person_id: String,
    pub reason: String,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainBedsideVerifiedV1 {
    pub unit_scan: String,
    pub patient_key: String,
    pub wristband_coi: String,
    pub site_id: String,
    pub verified_by: String,
    /// The patient's identifiers as read at the bedside (wristband, chart): compared with
    /// the personal-data vault by Autolog and removed before the record is written; the
    /// ledger keeps only `identifiers_checked`.
    pub patient_identifiers: Option<serde_json::Map<String, Value>>,
    /// Recorded by Autolog: which identifiers matched the vault (names, never values).
    #[serde(default)]
    pub identifiers_checked: Vec<String>,
    /// The people who verified the step, as its verification policy asks: given as
    /// `[{verifier_id, secret}]`, recorded as their manifestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifications: Option<Vec<serde_json::Value>>,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainFollowUpRecordedV1 {
    pub site_id: String,
    pub recorded_by: String,
    pub visit_code: String,
    pub outcome_code: String,
}

impl Check for ChainFollowUpRecordedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("site_id", &self.site_id)?;
        code("recorded_by", &self.recorded_by)?;
        code("visit_code", &self.visit_code)?;
        code("outcome_code", &self.outcome_code)
    }
}

/// A QA reviewer's signed review of the chain's audit trail (every value changed after
/// first entry, with who, when and why): how many changes it covered, the last one, and
/// what the reviewer found. Autolog checks the count and the last change against the
/// ledger when it is recorded.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditTrailReviewedV1 {
    pub review_id: String,
    pub site_id: String,
    pub reviewed_by: String,
    pub changes_reviewed: u32,
    /// The event id of the last change reviewed (absent: the chain had none).
    pub last_change_event_id: Option<String>,
    pub findings: String,
    /// The signature as recorded (`signature::check_manifestation`).
    pub signature: Value,
}

impl Check for AuditTrailReviewedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("review_id", &self.review_id)?;
        code("site_id", &self.site_id)?;
        code("reviewed_by", &self.reviewed_by)?;
        if let Some(id) = &self.last_change_event_id {
            uuid::Uuid::parse_str(id).map_err(|e| {
                FieldError::new("last_change_event_id", id, format!("must be a UUID ({e})"))
            })?;
        }
        check_text("findings", &self.findings, 4000)
    }
}

/// Severities of an alert and of the findings behind a hold.
pub const SEVERITIES: &[&str] = &["critical", "major", "minor"];

/// A hold on a chain: no step is accepted until it is released.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHoldPlacedV1 {
    pub hold_id: String,
    pub rule: String,
    pub findings: Vec<String>,
    pub site_id: Option<String>,
    pub caused_by_event_id: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainHoldReleasedV1 {
    /// The signature as recorded; its binding is checked with the stream it stands in
    /// (`signature::check_manifestation`).
    pub signature: Value,
    pub hold_id: String,
    pub site_id: String,
    pub resolved_by: String,
    pub resolution_reason: String,
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
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainCollectionSiteAssignedV1 {
    pub collection_site_id: String,
    pub reason: String,
}

impl Check for ChainCollectionSiteAssignedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("collection_site_id", &self.collection_site_id)?;
        check_text("reason", &self.reason, 500)
    }
}
