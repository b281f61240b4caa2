//! Labels: what a bag, a final unit and a shipper carry (ISBT 128 and GS1 data structures
//! and eye-readable text), the templates that say how a product's containers are
//! labelled, and the ledger's record of every label: printed (what was encoded, by whom,
//! where, on which printer, the how-manieth copy), voided, and verified by scanning it
//! back after it was applied.

pub mod content;
pub mod isbt;
pub mod template;
pub mod verify;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::labels::content::LabelContent;
use crate::ledger::envelope::{check_code as code, check_text};
use crate::ledger::event_type::Check;
use crate::reference::one_of;

/// What a label verification found.
pub const OUTCOMES: &[&str] = &["match", "mismatch"];

/// `label.printed`: a label of one of the chain's containers was printed (in the chain's
/// stream). Autolog computes its content from the ledger; a reprint says why.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelPrintedV1 {
    pub label_id: String,
    pub template_id: String,
    pub template_version: u32,
    pub site_id: String,
    pub printed_by: String,
    pub printer: String,
    /// 1 for the first label of the container, 2 for its first reprint...
    pub copy: u32,
    pub reprint_reason: Option<String>,
    pub stock: template::Stock,
    pub content: LabelContent,
}

impl Check for LabelPrintedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("label_id", &self.label_id)?;
        code("template_id", &self.template_id)?;
        code("site_id", &self.site_id)?;
        code("printed_by", &self.printed_by)?;
        check_text("printer", &self.printer, 200)?;
        one_of(
            "content.container_kind",
            &self.content.container_kind,
            content::CONTAINER_KINDS,
        )?;
        match (self.copy, &self.reprint_reason) {
            (0, _) => Err(FieldError::new("copy", "0", "copies are counted from 1")),
            (1, Some(_)) => Err(FieldError::new(
                "reprint_reason",
                "(given)",
                "only a reprint (copy 2 or later) gives a reason",
            )),
            (1, None) => Ok(()),
            (_, None) => Err(FieldError::new(
                "reprint_reason",
                "",
                "a reprint says why the label is printed again",
            )),
            (_, Some(reason)) => check_text("reprint_reason", reason, 1000),
        }
    }
}

/// `label.voided`: a printed label is withdrawn (spoiled, wrong stock, destroyed) and why.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelVoidedV1 {
    pub label_id: String,
    pub site_id: String,
    pub voided_by: String,
    pub reason: String,
}

impl Check for LabelVoidedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("label_id", &self.label_id)?;
        code("site_id", &self.site_id)?;
        code("voided_by", &self.voided_by)?;
        check_text("reason", &self.reason, 1000)
    }
}

/// `label.verified`: an applied label was scanned back and every data structure read
/// compared with what the ledger says was printed (a mismatch holds the chain).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelVerifiedV1 {
    pub label_id: String,
    pub container: String,
    pub site_id: String,
    pub verified_by: String,
    /// The data structures and elements read, named as printed ones are.
    pub read: Vec<content::Element>,
    pub outcome: String,
    pub findings: Vec<String>,
}

impl Check for LabelVerifiedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("label_id", &self.label_id)?;
        code("site_id", &self.site_id)?;
        code("verified_by", &self.verified_by)?;
        one_of("outcome", &self.outcome, OUTCOMES)?;
        if (self.outcome == "match") != self.findings.is_empty() {
            return Err(FieldError::new(
                "findings",
                self.findings.len().to_string(),
                "a match has no finding, a mismatch at least one",
            ));
        }
        for (i, f) in self.findings.iter().enumerate() {
            check_text(&format!("findings[{i}]"), f, 1000)?;
        }
        Ok(())
    }
}
