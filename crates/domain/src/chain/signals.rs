//! Signals of master data failing: the symptoms a network watches for trends (counted per
//! site, source system, product and week, never per patient). Each is read from a record
//! the ledger already holds: an alert of a counted kind, or a hold placed on a chain.

use serde::Serialize;

use crate::catalogue::chain::AlertRaisedV1;
use crate::catalogue::Payload;

/// How a receipt's finding of a temperature excursion begins. Findings are written once,
/// with this prefix, by the custody reconciliation and kept in the ledger as written: a
/// signal count reads it back.
pub const TEMPERATURE_EXCURSION: &str = "temperature excursion";

/// A kind of signal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// A receipt that did not match its handoff's manifest.
    ReconciliationFailure,
    /// A hold placed on a chain, whatever its cause.
    Hold,
    /// A unit on the wrong chain or in another chain's shipment, a label or wristband that
    /// does not match.
    IdentifierConfusion,
    /// An event recorded with another UTC offset than its site's zone had then.
    TimeZoneDiscrepancy,
    /// A local code that no crosswalk maps (counted beside the ledger).
    UnmappedCode,
    /// One site's record contradicting the network's: a step refused against the chain as
    /// known, a result failing after release, a release's basis corrected.
    CrossSiteInconsistency,
    /// A process window of the product's definition missed.
    WindowBreach,
    /// A shipment's temperature logger outside the manifest's range.
    TemperatureExcursion,
    /// A signature whose signer failed re-authentication.
    FailedSignature,
}

impl Signal {
    /// Every signal, in the order reports list them.
    pub const ALL: [Signal; 9] = [
        Signal::ReconciliationFailure,
        Signal::Hold,
        Signal::IdentifierConfusion,
        Signal::TimeZoneDiscrepancy,
        Signal::UnmappedCode,
        Signal::CrossSiteInconsistency,
        Signal::WindowBreach,
        Signal::TemperatureExcursion,
        Signal::FailedSignature,
    ];

    /// Its name, as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::ReconciliationFailure => "reconciliation_failure",
            Signal::Hold => "hold",
            Signal::IdentifierConfusion => "identifier_confusion",
            Signal::TimeZoneDiscrepancy => "time_zone_discrepancy",
            Signal::UnmappedCode => "unmapped_code",
            Signal::CrossSiteInconsistency => "cross_site_inconsistency",
            Signal::WindowBreach => "window_breach",
            Signal::TemperatureExcursion => "temperature_excursion",
            Signal::FailedSignature => "failed_signature",
        }
    }

    /// The signal named `name`, if any.
    pub fn parse(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The signals an alert counts as, by the rule that raised it (none for the rules that are
/// not symptoms of master data failing: an expired unit, a recalled lot, a witness's
/// fork, repeated access refusals). A refused chain step is identifier confusion when its
/// refusal's code is `check_character` (a misread identifier), otherwise one site's record
/// contradicting the chain as the network knows it; a failed receipt is also a
/// temperature excursion when one of its findings is.
pub fn signals_of_alert(alert: &AlertRaisedV1) -> Vec<Signal> {
    let evidence = |key: &str| alert.evidence.get(key);
    let signal = match alert.rule.as_str() {
        "custody.reconciliation_failed" => Signal::ReconciliationFailure,
        "custody.unit_in_wrong_shipment" | "label.mismatch" | "bedside.mismatch" => {
            Signal::IdentifierConfusion
        }
        "chain.step_refused"
            if evidence("rule_code").and_then(|c| c.as_str()) == Some("check_character") =>
        {
            Signal::IdentifierConfusion
        }
        "chain.step_refused" | "result.failed_after_release" | "decision.basis_corrected" => {
            Signal::CrossSiteInconsistency
        }
        "time_zone.discrepancy" => Signal::TimeZoneDiscrepancy,
        "process.window_breached" => Signal::WindowBreach,
        "signature.reauthentication_failed" => Signal::FailedSignature,
        _ => return Vec::new(),
    };
    let findings = evidence("findings").and_then(|f| f.as_array());
    let excursion = findings.is_some_and(|list| {
        list.iter()
            .filter_map(|f| f.as_str())
            .any(|f| f.starts_with(TEMPERATURE_EXCURSION))
    });
    match excursion {
        true => vec![signal, Signal::TemperatureExcursion],
        false => vec![signal],
    }
}

/// The signals an event records: those of an alert it raises, or a hold it places.
pub fn signals_of(payload: &Payload) -> Vec<Signal> {
    match payload {
        Payload::AlertRaised(alert) => signals_of_alert(alert),
        Payload::ChainHoldPlaced(_) => vec![Signal::Hold],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn alert(rule: &str, evidence: Value) -> AlertRaisedV1 {
        AlertRaisedV1 {
            alert_id: "AL-1".into(),
            severity: "critical".into(),
            rule: rule.into(),
            message: "m".into(),
            coi: None,
            site_id: None,
            event_id: None,
            evidence,
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for signal in Signal::ALL {
            assert_eq!(Signal::parse(signal.as_str()), Some(signal));
            let json = serde_json::to_value(signal).expect("serialises");
            assert_eq!(json, signal.as_str());
        }
        assert_eq!(Signal::parse("holds"), None);
    }

    #[test]
    fn a_failed_receipt_with_an_excursion_is_two_signals() {
        let excursion = format!("{TEMPERATURE_EXCURSION}: the logger recorded 9 to 12 °C");
        let findings = json!({"findings": ["seal S-2 arrived, but S-1 was sent", excursion]});
        assert_eq!(
            signals_of_alert(&alert("custody.reconciliation_failed", findings)),
            vec![Signal::ReconciliationFailure, Signal::TemperatureExcursion]
        );
        let findings = json!({"findings": ["the seal was found broken"]});
        assert_eq!(
            signals_of_alert(&alert("custody.reconciliation_failed", findings)),
            vec![Signal::ReconciliationFailure]
        );
    }

    #[test]
    fn a_refused_step_is_identifier_confusion_only_when_misread() {
        let misread = json!({"rule_code": "check_character", "field": "scanned_labels[0]"});
        assert_eq!(
            signals_of_alert(&alert("chain.step_refused", misread)),
            vec![Signal::IdentifierConfusion]
        );
        for evidence in [
            json!({"rule_code": "invalid"}),
            json!({"rule": "older alert"}),
        ] {
            assert_eq!(
                signals_of_alert(&alert("chain.step_refused", evidence)),
                vec![Signal::CrossSiteInconsistency]
            );
        }
    }

    #[test]
    fn alerts_that_are_not_master_data_symptoms_count_as_none() {
        for rule in [
            "unit.expired",
            "material_lot.recalled_after_use",
            "witness.fork",
            "access.refusals_repeated",
        ] {
            assert!(
                signals_of_alert(&alert(rule, json!({}))).is_empty(),
                "{rule}"
            );
        }
        for (rule, signal) in [
            ("bedside.mismatch", Signal::IdentifierConfusion),
            ("process.window_breached", Signal::WindowBreach),
            ("signature.reauthentication_failed", Signal::FailedSignature),
            ("time_zone.discrepancy", Signal::TimeZoneDiscrepancy),
        ] {
            assert_eq!(signals_of_alert(&alert(rule, json!({}))), vec![signal]);
        }
    }
}
