//! The patient's batch rules: Autolog's verdict on a test result against the product's
//! specification, and the release conditions that rest on the chain's own records. The
//! batch's payloads are in `crate::catalogue::batch`.

use serde_json::Value;

use crate::error::FieldError;

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
    use crate::catalogue::Payload as P;
    // An exceptional release rests on a treating physician's signed request.
    let requests: Vec<&crate::catalogue::chain::ChainExceptionalReleaseRequestedV1> = entries
        .iter()
        .filter_map(|e| match e.payload {
            P::ChainExceptionalReleaseRequested(r)
                if r.batch_id == batch_id && r.intended_patient_key == intended =>
            {
                Some(r)
            }
            _ => None,
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
            .flat_map(|r| r.result_event_ids.iter().cloned())
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
        .filter_map(|e| match e.payload {
            P::BatchTestResultEvaluated(v) => Some((
                v.result_event_id.as_str(),
                (v.verdict.as_str(), v.reason.as_str()),
            )),
            _ => None,
        })
        .collect();
    let results: Vec<(String, &str, Option<&str>, &str, &str)> = entries
        .iter()
        .filter_map(|e| match e.payload {
            P::BatchTestResultRecorded(r) if r.batch_id == batch_id => {
                let id = e.event_id.to_string();
                let (verdict, reason) = *verdicts.get(id.as_str())?;
                Some((id, r.test_code.as_str(), r.unit.as_deref(), verdict, reason))
            }
            _ => None,
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
