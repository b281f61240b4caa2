//! The patient's batch: its creation from one chain's collections, materials consumed,
//! final units, test results with Autolog's verdict, and deviations (payloads and rules).

use serde::Deserialize;
use serde_json::Value;

use crate::error::FieldError;
use crate::identifiers::{Coi, Din, UnitId};
use crate::ledger::envelope::{check_code as code, check_text};
use crate::ledger::event_type::Check;
use crate::ledger::fields::{list, text, uuid_list};

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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchCreatedV1 {
    batch_id: String,
    site_id: String,
    created_by: String,
    source_dins: Vec<String>,
    mes_system: Option<String>,
    mes_batch_number: Option<String>,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchLinkedV1 {
    batch_id: String,
    coi: String,
}

impl Check for BatchLinkedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("batch_id", &self.batch_id)?;
        Coi::parse("coi", &self.coi).map(|_| ())
    }
}

/// A material lot consumed by a batch (viral vector, media, reagents, bags).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchMaterialConsumedV1 {
    batch_id: String,
    material: String,
    lot: String,
    quantity: f64,
    quantity_unit: String,
    site_id: String,
    recorded_by: String,
    step_code: Option<String>,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaterialLotConsumedV1 {
    coi: String,
    batch_id: String,
    event_id: String,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchUnitsProducedV1 {
    batch_id: String,
    site_id: String,
    recorded_by: String,
    units: Vec<String>,
    /// When the units expire (ISBT 128 DS005: a date and time), as an instant with the
    /// manufacturing site's UTC offset, e.g. `2027-03-01T23:59:00-05:00`.
    #[serde(default)]
    expires_at: Option<String>,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnitExpiryExtendedV1 {
    unit: String,
    expires_at: String,
    site_id: String,
    extended_by: String,
    reason: String,
    signature: Value,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnitLinkedV1 {
    unit_id: String,
    coi: String,
    batch_id: String,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchTestResultRecordedV1 {
    batch_id: String,
    unit: Option<String>,
    test_code: String,
    method: String,
    result: Value,
    result_unit: Option<String>,
    site_id: String,
    analyst_id: String,
    sample_id: Option<String>,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchTestResultEvaluatedV1 {
    result_event_id: String,
    batch_id: String,
    test_code: String,
    verdict: String,
    reason: String,
    specification: Value,
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

/// Judges a result against a release test of the product's process (`min`/`max` with a
/// `unit`, or an `expected` text): `(pass, reason)`. A unit that differs from the
/// specification's fails: Autolog does not convert units.
pub fn evaluate(spec: &Value, result: &Value, result_unit: Option<&str>) -> (bool, String) {
    let spec_unit = spec.get("unit").and_then(Value::as_str);
    if let Some(expected) = spec.get("expected").and_then(Value::as_str) {
        return match result.as_str() {
            Some(r) if r.trim().eq_ignore_ascii_case(expected) => {
                (true, format!("{r} is the expected result"))
            }
            Some(r) => (false, format!("{r} is not the expected {expected}")),
            None => (
                false,
                format!(
                    "{} is not a text result; expected {expected}",
                    crate::error::show(result)
                ),
            ),
        };
    }
    let Some(value) = result.as_f64() else {
        return (
            false,
            format!(
                "{} is not a number; the specification is numeric",
                crate::error::show(result)
            ),
        );
    };
    if let (Some(want), got) = (spec_unit, result_unit) {
        if got != Some(want) {
            return (
                false,
                format!(
                    "reported in {}, the specification is in {want}",
                    got.unwrap_or("no unit")
                ),
            );
        }
    }
    let unit = spec_unit.unwrap_or("");
    if let Some(min) = spec.get("min").and_then(Value::as_f64) {
        if value < min {
            return (
                false,
                format!("{value} {unit} is below the minimum {min} {unit}"),
            );
        }
    }
    if let Some(max) = spec.get("max").and_then(Value::as_f64) {
        if value > max {
            return (
                false,
                format!("{value} {unit} is above the maximum {max} {unit}"),
            );
        }
    }
    (true, format!("{value} {unit} is within specification"))
}

/// Dispositions that close a deviation.
pub const DISPOSITIONS: &[&str] = &["release_permitted", "release_not_permitted", "rework"];

/// A QMS deviation opened against a chain (and one of its batches).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviationOpenedV1 {
    deviation_id: String,
    batch_id: Option<String>,
    /// The out-of-specification results this deviation investigates (their event ids).
    #[serde(default)]
    result_event_ids: Vec<String>,
    site_id: String,
    opened_by: String,
    category: String,
    summary: String,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviationInvestigatedV1 {
    deviation_id: String,
    site_id: String,
    investigated_by: String,
    findings: String,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviationClosedV1 {
    /// The signature as recorded; its binding is checked with the stream it stands in
    /// (`signature::check_manifestation`).
    #[allow(dead_code)]
    signature: Value,
    deviation_id: String,
    site_id: String,
    closed_by: String,
    disposition: String,
    rationale: String,
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

/// What a release asks for, as the release conditions read it.
pub struct ReleaseCheck<'a> {
    pub batch_id: &'a str,
    pub intended_patient_key: &'a str,
    pub exceptional: bool,
    /// The product's release test codes; `None` under the ledger lock, where only what a
    /// concurrent event could change is checked again (failing results, deviations).
    pub required_tests: Option<&'a [String]>,
}

/// The release conditions that rest on the chain's own records (results, verdicts,
/// deviations, the physician's request): pure, so that they are checked both before the
/// append and again under the ledger lock. Each unmet one is a `FieldError`.
pub fn release_blockers(
    entries: &[crate::chain::ChainEntry],
    view: &crate::chain::ChainView,
    check: &ReleaseCheck,
) -> Vec<FieldError> {
    let (batch_id, intended) = (check.batch_id, check.intended_patient_key);
    let mut unmet = Vec::new();
    // An exceptional release rests on a treating physician's signed request.
    let requests: Vec<&crate::chain::ChainEntry> = entries
        .iter()
        .filter(|e| {
            e.event_type == "chain.exceptional_release_requested"
                && text(e.data, "batch_id") == batch_id
                && text(e.data, "intended_patient_key") == intended
        })
        .collect();
    if check.exceptional && requests.is_empty() {
        unmet.push(FieldError::new(
            "body.data.exceptional",
            "true",
            format!("needs a treating physician's signed request (chain.exceptional_release_requested) for batch {batch_id} and patient {intended}"),
        ));
    }
    let waived: Vec<String> = if check.exceptional {
        requests
            .iter()
            .flat_map(|e| list(e.data, "result_event_ids"))
            .collect()
    } else {
        Vec::new()
    };
    let investigated: Vec<String> = view
        .deviations
        .values()
        .filter(|d| d.disposition.as_deref() == Some("release_permitted"))
        .flat_map(|d| d.result_event_ids.clone())
        .collect();
    // Results of this batch with their verdicts, in recording order.
    let verdicts: std::collections::HashMap<&str, (&str, &str)> = entries
        .iter()
        .filter(|e| e.event_type == "batch.test_result_evaluated")
        .map(|e| {
            (
                text(e.data, "result_event_id"),
                (text(e.data, "verdict"), text(e.data, "reason")),
            )
        })
        .collect();
    let results: Vec<(String, &str, Option<&str>, &str, &str)> = entries
        .iter()
        .filter(|e| {
            e.event_type == "batch.test_result_recorded" && text(e.data, "batch_id") == batch_id
        })
        .filter_map(|e| {
            let id = e.event_id.to_string();
            let (verdict, reason) = *verdicts.get(id.as_str())?;
            let unit = e.data.get("unit").and_then(Value::as_str);
            Some((id, text(e.data, "test_code"), unit, verdict, reason))
        })
        .collect();
    let mut codes: Vec<String> = match check.required_tests {
        Some(required) => required.to_vec(),
        None => results.iter().map(|r| r.1.to_string()).collect(),
    };
    codes.dedup();
    let mut seen_codes = Vec::new();
    for code in codes {
        if seen_codes.contains(&code) {
            continue;
        }
        seen_codes.push(code.clone());
        let of_test: Vec<_> = results.iter().filter(|r| r.1 == code).collect();
        if of_test.is_empty() {
            if check.required_tests.is_some() {
                unmet.push(FieldError::new(
                    format!("release_tests.{code}"),
                    "(no result)",
                    format!("has no result for batch {batch_id}: every release test must pass"),
                ));
            }
            continue;
        }
        // The latest result for the batch and for each unit tested on its own must pass.
        let mut subjects: Vec<Option<&str>> = Vec::new();
        for r in &of_test {
            if !subjects.contains(&r.2) {
                subjects.push(r.2);
            }
        }
        let mut latest_failed = false;
        for subject in subjects {
            if let Some((id, _, unit, verdict, reason)) =
                of_test.iter().rev().find(|r| r.2 == subject)
            {
                if *verdict != "pass" && !waived.contains(id) {
                    latest_failed = true;
                    let what = unit.map_or("the batch".to_string(), |u| format!("unit {u}"));
                    unmet.push(FieldError::new(
                        format!("release_tests.{code}"),
                        *verdict,
                        format!("the latest result for {what} fails its specification: {reason}"),
                    ));
                }
            }
        }
        // An earlier failure, even followed by a pass, needs an investigation.
        if !latest_failed {
            for (id, _, _, verdict, reason) in &of_test {
                if *verdict != "pass" && !waived.contains(id) && !investigated.contains(id) {
                    unmet.push(FieldError::new(
                        format!("results.{id}"),
                        *verdict,
                        format!("an out-of-specification {code} result ({reason}) needs an investigation: a deviation naming it, closed with release permitted"),
                    ));
                }
            }
        }
    }
    for (id, deviation) in &view.deviations {
        if deviation.batch_id.as_deref().is_some_and(|b| b != batch_id) {
            continue;
        }
        match deviation.disposition.as_deref() {
            None => unmet.push(FieldError::new(
                format!("deviations.{id}"),
                "open",
                "is open: a batch is released only when every deviation is closed with a disposition that permits release",
            )),
            Some("release_permitted") => {}
            Some(other) => unmet.push(FieldError::new(
                format!("deviations.{id}"),
                other,
                "was closed with a disposition that does not permit release",
            )),
        }
    }
    unmet
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn autolog_judges_results_against_the_specification() {
        let viability = json!({"test_code": "VIABILITY", "unit": "%", "min": 70});
        assert!(evaluate(&viability, &json!(85.5), Some("%")).0);
        let (pass, why) = evaluate(&viability, &json!(65), Some("%"));
        assert!(!pass && why.contains("below the minimum 70"), "{why}");
        let (pass, why) = evaluate(&viability, &json!(85), Some("fraction"));
        assert!(!pass && why.contains("reported in fraction"), "{why}");
        let (pass, _) = evaluate(&viability, &json!("high"), Some("%"));
        assert!(!pass);
        let vcn = json!({"test_code": "VCN", "unit": "copies/cell", "max": 5});
        assert!(!evaluate(&vcn, &json!(5.2), Some("copies/cell")).0);
        assert!(evaluate(&vcn, &json!(5), Some("copies/cell")).0);
        let sterility = json!({"test_code": "STERILITY", "expected": "negative"});
        assert!(evaluate(&sterility, &json!("Negative"), None).0);
        assert!(!evaluate(&sterility, &json!("positive"), None).0);
    }
}
