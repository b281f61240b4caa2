//! A label scanned back after it was applied, and a label voided. A verification is always
//! recorded (it happened); when what was read differs from what was printed, the chain is
//! held and a critical alert raised in the same transaction, as for a custody mismatch.

use autolog_domain::catalogue::chain::ChainHoldPlacedV1;
use autolog_domain::labels::content::Element;
use autolog_domain::labels::verify::{compare, read_scan, MAX_SCANS};
use autolog_domain::labels::{LabelVerifiedV1, LabelVoidedV1};
use autolog_domain::{Event, FieldError, Instant, StreamId, Uuid};
use serde::Serialize;
use serde_json::json;

use super::{printed_by, Label};
use crate::access::accounts::Principal;
use crate::chain::custody::{hold_id_of, hold_placed};
use crate::feeds::alerts::{alert_draft, AlertSpec};
use crate::{AppError, Autolog};

/// A scan-back to compare with the label in force on a container.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    pub coi: String,
    pub container: String,
    pub site_id: String,
    /// Each symbol as the scanner sent it (the 2-D symbol, the bar codes).
    pub scans: Vec<String>,
    pub verified_by: Option<String>,
}

/// One verification of a label, as recorded.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Verification {
    pub event_id: String,
    pub verified_at: String,
    pub label_id: String,
    pub container: String,
    pub site_id: String,
    pub verified_by: String,
    /// `match` or `mismatch`.
    pub outcome: String,
    pub findings: Vec<String>,
    /// What the scans carried, named as the label's structures are.
    pub read: Vec<Element>,
    /// The hold a mismatch placed on the chain (in the answer to the verification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
}

impl Verification {
    pub(crate) fn of(e: &Event, v: LabelVerifiedV1) -> Self {
        Self::recorded(e.event_id, e.occurred_at.instant, v)
    }

    fn recorded(event_id: Uuid, at: Instant, v: LabelVerifiedV1) -> Self {
        Self {
            event_id: event_id.to_string(),
            verified_at: at.to_string(),
            label_id: v.label_id,
            container: v.container,
            site_id: v.site_id,
            verified_by: v.verified_by,
            outcome: v.outcome,
            findings: v.findings,
            read: v.read,
            hold_id: None,
        }
    }
}

impl Autolog {
    /// Compares what was scanned from an applied label with the label in force on the
    /// container and records the verification; a mismatch holds the chain and raises a
    /// critical alert with it.
    pub async fn verify_label(
        &self,
        principal: &Principal,
        request: &VerifyRequest,
    ) -> Result<Verification, AppError> {
        if request.scans.is_empty() || request.scans.len() > MAX_SCANS {
            return Err(AppError::Invalid(FieldError::new(
                "scans",
                request.scans.len().to_string(),
                format!("a verification reads 1 to {MAX_SCANS} symbols of the label"),
            )));
        }
        let label = self.current_label(&request.coi, &request.container).await?;
        let (read, findings) = scanned_findings(&label, &request.scans);
        let payload = LabelVerifiedV1 {
            label_id: label.label_id.clone(),
            container: label.content.container.clone(),
            site_id: request.site_id.clone(),
            verified_by: printed_by(principal, request.verified_by.as_deref())?,
            read,
            outcome: if findings.is_empty() {
                "match"
            } else {
                "mismatch"
            }
            .to_string(),
            findings,
        };
        let stream = StreamId::chain(&label.coi).to_string();
        let draft = self.label_draft(
            principal,
            &stream,
            &request.site_id,
            "label.verified",
            json!(payload),
        )?;
        let mut drafts = vec![draft.clone()];
        let mut hold_id = None;
        if !payload.findings.is_empty() {
            let id = hold_id_of(&draft, &label.coi);
            drafts.push(mismatch_hold(&draft, &label, &payload, &id));
            drafts.push(mismatch_alert(&draft, &label, &payload, &id));
            hold_id = Some(id);
        }
        self.append_label_events(principal, drafts).await?;
        let mut answer = Verification::recorded(draft.event_id, draft.occurred_at.instant, payload);
        answer.hold_id = hold_id;
        Ok(answer)
    }

    /// Voids the label in force on a container (spoiled, destroyed), saying why; it is no
    /// longer in force. (A label voided meanwhile is refused by the chain's rule.)
    pub async fn void_label(
        &self,
        principal: &Principal,
        coi: &str,
        container: &str,
        site_id: &str,
        reason: &str,
        voided_by: Option<&str>,
    ) -> Result<Label, AppError> {
        let label = self.current_label(coi, container).await?;
        let payload = LabelVoidedV1 {
            label_id: label.label_id.clone(),
            site_id: site_id.to_string(),
            voided_by: printed_by(principal, voided_by)?,
            reason: reason.trim().to_string(),
        };
        let stream = StreamId::chain(&label.coi).to_string();
        let draft =
            self.label_draft(principal, &stream, site_id, "label.voided", json!(payload))?;
        self.append_label_events(principal, vec![draft]).await?;
        self.label(coi, &label.label_id).await
    }
}

/// What the scans carried, and every finding against the printed label.
fn scanned_findings(label: &Label, scans: &[String]) -> (Vec<Element>, Vec<String>) {
    let mut read = Vec::new();
    let mut findings = Vec::new();
    for (i, scan) in scans.iter().enumerate() {
        match read_scan(scan) {
            Ok(elements) => read.extend(elements),
            Err(rule) => findings.push(format!("scans[{i}] could not be read: {rule}")),
        }
    }
    findings.extend(compare(&label.content, &read));
    (read, findings)
}

fn mismatch_hold(
    cause: &autolog_domain::EventDraft,
    label: &Label,
    v: &LabelVerifiedV1,
    hold_id: &str,
) -> autolog_domain::EventDraft {
    let hold = ChainHoldPlacedV1 {
        hold_id: hold_id.to_string(),
        rule: "label.mismatch".to_string(),
        findings: v.findings.clone(),
        site_id: Some(v.site_id.clone()),
        caused_by_event_id: Some(cause.event_id.to_string()),
    };
    hold_placed(
        cause,
        cause.stream.clone(),
        format!("hold/{}", label.coi),
        &hold.hold_id,
        &hold.rule,
        json!(hold.findings),
        hold.site_id.as_deref(),
    )
}

fn mismatch_alert(
    cause: &autolog_domain::EventDraft,
    label: &Label,
    v: &LabelVerifiedV1,
    hold_id: &str,
) -> autolog_domain::EventDraft {
    alert_draft(
        cause,
        0,
        AlertSpec {
            severity: "critical",
            rule: "label.mismatch",
            message: format!(
                "The label on {} at {} does not match what was printed ({}); chain {} is on hold {hold_id}: {}",
                v.container,
                v.site_id,
                label.label_id,
                label.coi,
                v.findings.join("; ")
            ),
            coi: Some(label.coi.clone()),
            site_id: Some(v.site_id.clone()),
            evidence: json!({
                "label_id": label.label_id,
                "label_event_id": label.event_id,
                "verification_event_id": cause.event_id.to_string(),
                "findings": v.findings,
            }),
        },
    )
}
