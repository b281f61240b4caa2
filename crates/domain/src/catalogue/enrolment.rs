//! The payloads that open a chain and bind its first units: the enrolment (the COI
//! issued or accepted), its cancellation, the apheresis collection with one DIN per bag,
//! and the DIN's link to its COI (recorded by Autolog).

use serde::Deserialize;

use crate::error::FieldError;
use crate::ledger::envelope::{check_code as code, check_text};
use crate::ledger::event_type::Check;
use crate::reference::{instant, one_of};

/// How a COI came to be: issued by Autolog, or assigned upstream (e.g. a manufacturer's
/// ordering portal) and accepted after its format and uniqueness were checked.
pub const COI_SOURCES: &[&str] = &["autolog", "upstream"];

/// A patient enrolled for a product at a treatment center, under a pseudonymous key, and
/// the COI that joins everything about this patient's therapy from now on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainEnrolledV1 {
    pub coi: String,
    pub patient_key: String,
    pub product_code: String,
    pub treatment_site_id: String,
    /// The apheresis center the order sends the patient to (default: the treatment site).
    pub collection_site_id: Option<String>,
    pub coi_source: String,
    pub upstream_system: Option<String>,
    /// A re-collection: the chain of the same patient and product whose episode this one
    /// takes over (after a failed manufacture, a returned shipment), and why.
    #[serde(default)]
    pub previous_coi: Option<String>,
    #[serde(default)]
    pub recollection_reason: Option<String>,
}

/// Why a patient is collected again under a new COI linked to the first.
pub const RECOLLECTION_REASONS: &[&str] = &[
    "manufacturing_failure",
    "out_of_specification",
    "shipment_returned",
    "insufficient_collection",
    "product_damaged",
];

/// A chain re-collected: recorded by Autolog on the earlier chain with the new chain's
/// enrolment, so that the link is in both chains.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainRecollectedV1 {
    pub next_coi: String,
    pub recollection_reason: String,
}

impl Check for ChainRecollectedV1 {
    fn check(&self) -> Result<(), FieldError> {
        crate::identifiers::Coi::parse("next_coi", &self.next_coi)?;
        one_of(
            "recollection_reason",
            &self.recollection_reason,
            RECOLLECTION_REASONS,
        )
    }
}

impl Check for ChainEnrolledV1 {
    fn check(&self) -> Result<(), FieldError> {
        match (&self.previous_coi, &self.recollection_reason) {
            (Some(previous), Some(reason)) => {
                crate::identifiers::Coi::parse("previous_coi", previous)?;
                one_of("recollection_reason", reason, RECOLLECTION_REASONS)?;
            }
            (Some(_), None) => {
                return Err(FieldError::new(
                    "recollection_reason",
                    "(absent)",
                    format!(
                        "is required with previous_coi: one of {}",
                        RECOLLECTION_REASONS.join(", ")
                    ),
                ))
            }
            (None, Some(reason)) => {
                return Err(FieldError::new(
                    "previous_coi",
                    "(absent)",
                    format!("is required with recollection_reason {reason}: the chain this one collects again"),
                ))
            }
            (None, None) => {}
        }
        let coi = crate::identifiers::Coi::parse("coi", &self.coi)?;
        if coi.to_string() != self.coi {
            return Err(FieldError::new(
                "coi",
                &self.coi,
                format!("must be given in its canonical form, {coi}"),
            ));
        }
        // A pseudonymous key: a code, so that a name or a date of birth does not fit.
        code("patient_key", &self.patient_key)?;
        code("product_code", &self.product_code)?;
        code("treatment_site_id", &self.treatment_site_id)?;
        if let Some(site) = &self.collection_site_id {
            code("collection_site_id", site)?;
        }
        one_of("coi_source", &self.coi_source, COI_SOURCES)?;
        match (self.coi_source.as_str(), &self.upstream_system) {
            ("upstream", None) => Err(FieldError::new(
                "upstream_system",
                "(absent)",
                "names the system that assigned an upstream COI",
            )),
            ("autolog", Some(s)) => Err(FieldError::new(
                "upstream_system",
                s,
                "is given only for a COI assigned upstream",
            )),
            (_, Some(s)) => code("upstream_system", s),
            _ => Ok(()),
        }
    }
}

/// An enrolment is cancelled. The COI stays issued: it is never given again.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainCancelledV1 {
    pub cancellation_reason: String,
}

impl Check for ChainCancelledV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_text("cancellation_reason", &self.cancellation_reason, 500)
    }
}

/// The apheresis collection of a chain: where, by whom, with which device, when, and one
/// ISBT 128 DIN (with its check character) per collected bag.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainCollectedV1 {
    pub collection_site_id: String,
    pub operator_id: String,
    pub device_id: String,
    pub started_at: String,
    pub ended_at: String,
    pub dins: Vec<String>,
    /// The people who verified the step, as its verification policy asks: given as
    /// `[{verifier_id, secret}]`, recorded as their manifestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifications: Option<Vec<serde_json::Value>>,
}

impl Check for ChainCollectedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("collection_site_id", &self.collection_site_id)?;
        code("operator_id", &self.operator_id)?;
        code("device_id", &self.device_id)?;
        let started = instant("started_at", &self.started_at)?;
        let ended = instant("ended_at", &self.ended_at)?;
        if ended <= started {
            return Err(FieldError::new(
                "ended_at",
                &self.ended_at,
                format!("must be later than started_at ({started})"),
            ));
        }
        if self.dins.is_empty() {
            return Err(FieldError::new(
                "dins",
                "[]",
                "a collection yields at least one bag, each with its DIN",
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        for (i, text) in self.dins.iter().enumerate() {
            let field = format!("dins[{i}]");
            let din = crate::identifiers::Din::parse(&field, text)?;
            let canonical = din.to_string();
            if canonical != *text {
                return Err(FieldError::new(
                    field,
                    text,
                    format!("must be given as the DIN with its check character, {canonical}"),
                ));
            }
            if seen.contains(&canonical) {
                return Err(FieldError::new(
                    field,
                    text,
                    "appears twice: one DIN per bag",
                ));
            }
            seen.push(canonical);
        }
        Ok(())
    }
}

/// Recorded by Autolog with a collection: a DIN belongs to this COI, forever
/// (stream `din/<DIN>`, opened once).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinLinkedV1 {
    pub din: String,
    pub coi: String,
}

impl Check for DinLinkedV1 {
    fn check(&self) -> Result<(), FieldError> {
        crate::identifiers::Din::parse("din", &self.din)?;
        crate::identifiers::Coi::parse("coi", &self.coi).map(|_| ())
    }
}
