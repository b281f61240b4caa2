//! The patient's batch payloads: its creation from one chain's collections, materials
//! consumed, final units, test results with Autolog's verdict, and deviations. The batch
//! rules (`crate::batch`) read them in this typed form.

use serde::Deserialize;
use serde_json::Value;

use crate::error::FieldError;
use crate::identifiers::{Coi, Din, UnitId};
use crate::ledger::envelope::{check_code as code, check_text};
use crate::ledger::event_type::Check;
use crate::ledger::fields::uuid_list;

fn canonical_din(field: &str, text: &str) -> Result<(), FieldError> {
    let din = Din::parse(field, text)?;
    if din.to_string() != text {
        return Err(FieldError::new(
            field,
            text,
            format!("must be given as the DIN with its check character, {din}"),
        ));
    }
    Ok(())
}

fn canonical_unit(field: &str, text: &str) -> Result<(), FieldError> {
    let unit = UnitId::parse(field, text)?;
    if unit.to_string() != text {
        return Err(FieldError::new(
            field,
            text,
            format!("must be given in its canonical form, {unit}"),
        ));
    }
    Ok(())
}

/// A batch is created from collections (DINs) of the chain it is recorded on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCreatedV1 {
    pub batch_id: String,
    pub site_id: String,
    pub created_by: String,
    pub source_dins: Vec<String>,
    pub mes_system: Option<String>,
    pub mes_batch_number: Option<String>,
}

impl Check for BatchCreatedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("batch_id", &self.batch_id)?;
        code("site_id", &self.site_id)?;
        code("created_by", &self.created_by)?;
        if self.source_dins.is_empty() {
            return Err(FieldError::new(
                "source_dins",
                "[]",
                "a batch is made from at least one collection of its patient (its DINs)",
            ));
        }
        for (i, din) in self.source_dins.iter().enumerate() {
            let field = format!("source_dins[{i}]");
            canonical_din(&field, din)?;
            if self.source_dins[..i].contains(din) {
                return Err(FieldError::new(field, din, "appears twice"));
            }
        }
        match (&self.mes_system, &self.mes_batch_number) {
            (Some(system), Some(number)) => {
                code("mes_system", system)?;
                code("mes_batch_number", number)
            }
            (None, None) => Ok(()),
            (Some(_), None) => Err(FieldError::new(
                "mes_batch_number",
                "(absent)",
                "is required with mes_system: the MES's own batch number",
            )),
            (None, Some(_)) => Err(FieldError::new(
                "mes_system",
                "(absent)",
                "is required with mes_batch_number: the MES that numbered the batch",
            )),
        }
    }
}

/// Recorded by Autolog: a batch id belongs to one chain, forever (stream batch/<id>).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchLinkedV1 {
    pub batch_id: String,
    pub coi: String,
}

impl Check for BatchLinkedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("batch_id", &self.batch_id)?;
        Coi::parse("coi", &self.coi).map(|_| ())
    }
}

/// A material lot consumed by a batch (viral vector, media, reagents, bags).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchMaterialConsumedV1 {
    pub batch_id: String,
    pub material: String,
    pub lot: String,
    pub quantity: f64,
    pub quantity_unit: String,
    pub site_id: String,
    pub recorded_by: String,
    pub step_code: Option<String>,
}

impl Check for BatchMaterialConsumedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("batch_id", &self.batch_id)?;
        code("material", &self.material)?;
        code("lot", &self.lot)?;
        if !(self.quantity.is_finite() && self.quantity > 0.0) {
            return Err(FieldError::new(
                "quantity",
                self.quantity.to_string(),
                "must be a positive number",
            ));
        }
        code("quantity_unit", &self.quantity_unit)?;
        code("site_id", &self.site_id)?;
        code("recorded_by", &self.recorded_by)?;
        if let Some(s) = &self.step_code {
            code("step_code", s)?;
        }
        Ok(())
    }
}

/// Recorded by Autolog in the lot's stream: this lot went into this chain's batch (the
/// forward genealogy of a lot reads it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterialLotConsumedV1 {
    pub coi: String,
    pub batch_id: String,
    pub event_id: String,
}

impl Check for MaterialLotConsumedV1 {
    fn check(&self) -> Result<(), FieldError> {
        Coi::parse("coi", &self.coi)?;
        code("batch_id", &self.batch_id)?;
        crate::Uuid::parse_str(&self.event_id)
            .map(|_| ())
            .map_err(|e| {
                FieldError::new("event_id", &self.event_id, format!("must be a UUID ({e})"))
            })
    }
}

/// The final units a batch yields, each with its own identifier carrying the COI.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchUnitsProducedV1 {
    pub batch_id: String,
    pub site_id: String,
    pub recorded_by: String,
    pub units: Vec<String>,
    /// When the units expire (ISBT 128 DS005: a date and time), as an instant with the
    /// manufacturing site's UTC offset, e.g. `2027-03-01T23:59:00-05:00`.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The people who verified the step, as its verification policy asks: given as
    /// `[{verifier_id, secret}]`, recorded as their manifestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifications: Option<Vec<serde_json::Value>>,
}

impl Check for BatchUnitsProducedV1 {
    fn check(&self) -> Result<(), FieldError> {
        if let Some(at) = &self.expires_at {
            crate::ledger::time::Instant::parse_rfc3339("expires_at", at)?;
        }
        code("batch_id", &self.batch_id)?;
        code("site_id", &self.site_id)?;
        code("recorded_by", &self.recorded_by)?;
        if self.units.is_empty() {
            return Err(FieldError::new(
                "units",
                "[]",
                "lists at least one final unit",
            ));
        }
        for (i, unit) in self.units.iter().enumerate() {
            let field = format!("units[{i}]");
            canonical_unit(&field, unit)?;
            if self.units[..i].contains(unit) {
                return Err(FieldError::new(field, unit, "appears twice"));
            }
        }
        Ok(())
    }
}

/// A final unit's expiry extended: only by a signed QA decision, with its reason.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitExpiryExtendedV1 {
    pub unit: String,
    pub expires_at: String,
    pub site_id: String,
    pub extended_by: String,
    pub reason: String,
    pub signature: Value,
}

impl Check for UnitExpiryExtendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        canonical_unit("unit", &self.unit)?;
        crate::ledger::time::Instant::parse_rfc3339("expires_at", &self.expires_at)?;
        code("site_id", &self.site_id)?;
        code("extended_by", &self.extended_by)?;
        check_text("reason", &self.reason, 2_000)?;
        if !self.signature.is_object() {
            return Err(FieldError::new(
                "signature",
                crate::error::show(&self.signature),
                "must be the signature object",
            ));
        }
        Ok(())
    }
}

/// Recorded by Autolog: a final unit belongs to one chain and batch, forever (unit/<id>).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitLinkedV1 {
    pub unit_id: String,
    pub coi: String,
    pub batch_id: String,
}

impl Check for UnitLinkedV1 {
    fn check(&self) -> Result<(), FieldError> {
        canonical_unit("unit_id", &self.unit_id)?;
        Coi::parse("coi", &self.coi)?;
        code("batch_id", &self.batch_id)
    }
}

/// A LIMS result for a batch (or one of its units). The sender states what was measured;
/// Autolog judges it against the product's specification.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchTestResultRecordedV1 {
    pub batch_id: String,
    pub unit: Option<String>,
    pub test_code: String,
    pub method: String,
    pub result: Value,
    pub result_unit: Option<String>,
    pub site_id: String,
    pub analyst_id: String,
    pub sample_id: Option<String>,
}

impl Check for BatchTestResultRecordedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("batch_id", &self.batch_id)?;
        if let Some(u) = &self.unit {
            canonical_unit("unit", u)?;
        }
        code("test_code", &self.test_code)?;
        check_text("method", &self.method, 200)?;
        match &self.result {
            Value::Number(n) if n.as_f64().is_some_and(f64::is_finite) => {}
            Value::String(s) => check_text("result", s, 200)?,
            other => {
                return Err(FieldError::new(
                    "result",
                    crate::error::show(other),
                    "must be a number or a text result such as negative",
                ))
            }
        }
        if let Some(u) = &self.result_unit {
            check_text("result_unit", u, 32)?;
        }
        code("site_id", &self.site_id)?;
        code("analyst_id", &self.analyst_id)?;
        if let Some(s) = &self.sample_id {
            code("sample_id", s)?;
        }
        Ok(())
    }
}

/// Verdicts Autolog gives a test result.
pub const VERDICTS: &[&str] = &["pass", "fail"];

/// Recorded by Autolog with each result: the verdict against the specification in force.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchTestResultEvaluatedV1 {
    pub result_event_id: String,
    pub batch_id: String,
    pub test_code: String,
    pub verdict: String,
    pub reason: String,
    pub specification: Value,
}

impl Check for BatchTestResultEvaluatedV1 {
    fn check(&self) -> Result<(), FieldError> {
        crate::Uuid::parse_str(&self.result_event_id).map_err(|e| {
            FieldError::new(
                "result_event_id",
                &self.result_event_id,
                format!("must be a UUID ({e})"),
            )
        })?;
        code("batch_id", &self.batch_id)?;
        code("test_code", &self.test_code)?;
        if !VERDICTS.contains(&self.verdict.as_str()) {
            return Err(FieldError::new(
                "verdict",
                &self.verdict,
                "must be pass or fail",
            ));
        }
        check_text("reason", &self.reason, 500)?;
        if !self.specification.is_object() {
            return Err(FieldError::new(
                "specification",
                crate::error::show(&self.specification),
                "must be the release test of the product's process",
            ));
        }
        Ok(())
    }
}

/// Dispositions that close a deviation.
pub const DISPOSITIONS: &[&str] = &["release_permitted", "release_not_permitted", "rework"];

/// A QMS deviation opened against a chain (and one of its batches).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviationOpenedV1 {
    pub deviation_id: String,
    pub batch_id: Option<String>,
    /// The out-of-specification results this deviation investigates (their event ids).
    #[serde(default)]
    pub result_event_ids: Vec<String>,
    pub site_id: String,
    pub opened_by: String,
    pub category: String,
    pub summary: String,
}

impl Check for DeviationOpenedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("deviation_id", &self.deviation_id)?;
        if let Some(b) = &self.batch_id {
            code("batch_id", b)?;
        }
        uuid_list("result_event_ids", &self.result_event_ids)?;
        code("site_id", &self.site_id)?;
        code("opened_by", &self.opened_by)?;
        code("category", &self.category)?;
        check_text("summary", &self.summary, 2000)
    }
}

/// An investigation step of a deviation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviationInvestigatedV1 {
    pub deviation_id: String,
    pub site_id: String,
    pub investigated_by: String,
    pub findings: String,
}

impl Check for DeviationInvestigatedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("deviation_id", &self.deviation_id)?;
        code("site_id", &self.site_id)?;
        code("investigated_by", &self.investigated_by)?;
        check_text("findings", &self.findings, 4000)
    }
}

/// A deviation closed with a disposition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviationClosedV1 {
    /// The signature as recorded; its binding is checked with the stream it stands in
    /// (`signature::check_manifestation`).
    pub signature: Value,
    pub deviation_id: String,
    pub site_id: String,
    pub closed_by: String,
    pub disposition: String,
    pub rationale: String,
}

impl Check for DeviationClosedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("deviation_id", &self.deviation_id)?;
        code("site_id", &self.site_id)?;
        code("closed_by", &self.closed_by)?;
        if !DISPOSITIONS.contains(&self.disposition.as_str()) {
            return Err(FieldError::new(
                "disposition",
                &self.disposition,
                format!("must be one of {}", DISPOSITIONS.join(", ")),
            ));
        }
        check_text("rationale", &self.rationale, 2000)
    }
}
