//! Labels printed from the ledger: a container's label is computed from what the chain
//! records (its DIN and collection, its produced unit, its shipper's handoff) and the
//! product's label template, and recorded as `label.printed` before anyone prints it. A
//! label is drawn again from that record only, so what a printer prints is what the
//! ledger says was printed.

mod content;
mod verify;

use std::sync::Arc;

use autolog_domain::identifiers::scan::{parse_scan, Scanned};
use autolog_domain::identifiers::Coi;
use autolog_domain::labels::content::LabelContent;
use autolog_domain::labels::template::Stock;
use autolog_domain::labels::LabelPrintedV1;
use autolog_domain::{Body, Event, EventDraft, FieldError, Instant, OccurredAt, Source, StreamId};
use serde::Serialize;
use serde_json::json;

pub use verify::{Verification, VerifyRequest};

use crate::access::accounts::{authorize_drafts, Principal, CONSOLE_SOURCE};
use crate::chain::rule_reads::RuleReads;
use crate::{AppError, Autolog};

/// What a print asks for.
#[derive(Debug, Clone, Default)]
pub struct PrintRequest {
    pub coi: String,
    /// The container as scanned or typed: a DIN, a final unit's identifier, an SSCC.
    pub container: String,
    /// The template; the product's one active template for the container when absent.
    pub template_id: Option<String>,
    pub site_id: String,
    pub printer: String,
    /// Who prints: the signed-in person; a source system names its operator.
    pub printed_by: Option<String>,
    pub reprint_reason: Option<String>,
}

/// Every label of a chain (`GET /api/v1/chains/{coi}/labels`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LabelList {
    pub labels: Vec<Label>,
}

/// A label as the ledger recorded it, with what happened to it since.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Label {
    pub label_id: String,
    pub coi: String,
    pub event_id: String,
    /// When it was printed (RFC 3339, UTC).
    pub printed_at: String,
    pub copy: u32,
    pub voided: bool,
    pub template_id: String,
    pub template_version: u32,
    pub site_id: String,
    pub printed_by: String,
    pub printer: String,
    pub reprint_reason: Option<String>,
    pub stock: Stock,
    pub content: LabelContent,
    /// Every scan-back of this label, in order.
    pub verifications: Vec<Verification>,
}

impl Autolog {
    /// Computes the container's label from the ledger and records `label.printed`; the
    /// answer is the label to draw. Refused (nothing recorded) when the chain does not
    /// hold the container, is on hold, or no template applies.
    pub async fn print_label(
        &self,
        principal: &Principal,
        request: &PrintRequest,
    ) -> Result<Label, AppError> {
        let coi = Coi::parse("coi", &request.coi)?.to_string();
        let stream = StreamId::chain(&coi).to_string();
        let reads = Arc::new(RuleReads::default());
        let facts = self.chain_facts(&stream, &reads).await?;
        let Some(enrolment) = facts.enrolment.clone() else {
            return Err(AppError::NotFound {
                what: "chain",
                id: coi,
            });
        };
        let view = facts.view();
        let (kind, container) = container_of(&request.container)?;
        if !view.holds_container(kind, &container) {
            return Err(AppError::Invalid(FieldError::new(
                "container",
                &request.container,
                format!("is not a {} chain {coi} holds: a label is printed only for the chain's own containers (a DIN it collected, a unit it produced, a shipper one of its handoffs used)", kind.replace('_', " ")),
            )));
        }
        let template = self
            .label_template(
                request.template_id.as_deref(),
                &enrolment.product_code,
                kind,
            )
            .await?;
        let content = self
            .label_content(&facts, &enrolment, &template, (kind, &container), &reads)
            .await?;
        let payload = self.printed_payload(
            principal,
            request,
            &template,
            view.next_copy(&container),
            content,
        )?;
        let draft = self.label_draft(
            principal,
            &stream,
            &request.site_id,
            "label.printed",
            json!(payload),
        )?;
        self.append_label_events(principal, vec![draft]).await?;
        self.label(&coi, &payload.label_id).await
    }

    /// The `label.printed` of a print: refused, before anything is recorded, when the
    /// template's stock cannot carry the content or a reprint gives no reason.
    fn printed_payload(
        &self,
        principal: &Principal,
        request: &PrintRequest,
        template: &content::Template,
        copy: u32,
        content: LabelContent,
    ) -> Result<LabelPrintedV1, AppError> {
        autolog_interop::labels::layout(&content, &template.stock).map_err(|e| {
            AppError::Invalid(FieldError::new(
                "template_id",
                &template.template_id,
                e.to_string(),
            ))
        })?;
        let reprint_reason = request
            .reprint_reason
            .clone()
            .filter(|r| !r.trim().is_empty());
        if copy > 1 && reprint_reason.is_none() {
            return Err(AppError::Invalid(FieldError::new(
                "reprint_reason",
                "",
                format!(
                    "{} already has {} label(s): a reprint says why (damaged, unreadable, lost)",
                    content.container,
                    copy - 1
                ),
            )));
        }
        Ok(LabelPrintedV1 {
            label_id: format!("LBL-{}", self.new_event_id().simple()),
            template_id: template.template_id.clone(),
            template_version: template.version,
            site_id: request.site_id.clone(),
            printed_by: printed_by(principal, request.printed_by.as_deref())?,
            printer: request.printer.clone(),
            copy,
            reprint_reason,
            stock: template.stock.clone(),
            content,
        })
    }

    /// Every label printed on a chain, oldest first, with its voiding and verifications.
    pub async fn labels_of(&self, coi: &str) -> Result<Vec<Label>, AppError> {
        let coi = Coi::parse("coi", coi)?.to_string();
        let events = self.chain_events(&coi, Instant::MAX).await?;
        Ok(labels_from(&coi, &events))
    }

    /// One label of a chain, by its id.
    pub async fn label(&self, coi: &str, label_id: &str) -> Result<Label, AppError> {
        self.labels_of(coi)
            .await?
            .into_iter()
            .find(|l| l.label_id == label_id)
            .ok_or_else(|| AppError::NotFound {
                what: "label",
                id: label_id.to_string(),
            })
    }

    /// The label in force on a container (the last printed and not voided). A text that
    /// names no container names no label: not found, as an unknown container is.
    pub async fn current_label(&self, coi: &str, container: &str) -> Result<Label, AppError> {
        let labels = self.labels_of(coi).await?;
        let canonical = container_of(container)
            .map(|(_, c)| c)
            .unwrap_or_else(|_| container.to_string());
        labels
            .into_iter()
            .rev()
            .find(|l| l.content.container == canonical && !l.voided)
            .ok_or(AppError::NotFound {
                what: "label in force for container",
                id: canonical,
            })
    }

    /// An event Autolog records on a chain for a label, attributed to the principal.
    fn label_draft(
        &self,
        principal: &Principal,
        stream: &str,
        site_id: &str,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<EventDraft, AppError> {
        let now = self.now();
        let system = principal.system_id().unwrap_or(CONSOLE_SOURCE).to_string();
        let draft = EventDraft {
            event_id: self.new_event_id(),
            stream: stream.to_string(),
            occurred_at: OccurredAt::from_parts(now.micros(), "UTC", 0)
                .map_err(AppError::Config)?,
            actor: principal.actor.clone(),
            site: Some(site_id.to_string()),
            source: Source {
                system,
                source_event_id: format!("{event_type}/{}", self.new_event_id()),
            },
            reason: None,
            corrects: None,
            body: Body::new(event_type, 1, data),
        };
        autolog_domain::catalogue::lookup(event_type, 1)?
            .validate(&draft.body.data)
            .map_err(|e| e.under("body.data"))?;
        Ok(draft)
    }

    /// Checks the principal may record the first draft (role at its site, scope on the
    /// chain) and appends every draft in one transaction; alerts among them are pushed.
    async fn append_label_events(
        &self,
        principal: &Principal,
        drafts: Vec<EventDraft>,
    ) -> Result<(), AppError> {
        let first = drafts.first().cloned().into_iter().collect::<Vec<_>>();
        authorize_drafts(principal, &first, true, CONSOLE_SOURCE)?;
        self.authorize_in_scope(principal, &first, true).await?;
        let outcomes = self.store.append(&drafts, &self.store_clock()).await?;
        self.note_appended();
        let fresh: Vec<&Event> = outcomes
            .iter()
            .filter(|o| !o.duplicate)
            .map(|o| &o.event)
            .collect();
        self.publish_alerts(&fresh);
        Ok(())
    }
}

/// A label drawn from its record: `pdf`, `svg` or `zpl`; its media type and bytes.
pub fn draw(label: &Label, format: &str) -> Result<(&'static str, Vec<u8>), AppError> {
    use autolog_interop::labels as draw;
    let scene = draw::layout(&label.content, &label.stock).map_err(|e| {
        AppError::Invalid(FieldError::new(
            "container",
            &label.content.container,
            e.to_string(),
        ))
    })?;
    let title = format!(
        "Label {} of {} (copy {})",
        label.label_id, label.content.container, label.copy
    );
    Ok(match format {
        "pdf" => ("application/pdf", draw::pdf(&scene, &title)),
        "svg" => ("image/svg+xml", draw::svg(&scene, &title).into_bytes()),
        "zpl" => ("application/zpl", draw::zpl(&scene).into_bytes()),
        other => {
            return Err(AppError::Invalid(FieldError::new(
                "format",
                other,
                "must be one of json, pdf, svg, zpl",
            )))
        }
    })
}

/// The container a print or a scan names: its kind and canonical identifier (a DIN with
/// its check character, a final unit's identifier, an SSCC's 18 digits).
pub fn container_of(text: &str) -> Result<(&'static str, String), AppError> {
    let scanned = parse_scan("container", text.trim())?;
    match &scanned {
        Scanned::Din { .. } => Ok(("collection_bag", scanned.unit_id())),
        Scanned::Unit(unit) => Ok(("final_unit", unit.to_string())),
        Scanned::Gs1(e) => match &e.sscc {
            Some(sscc) => Ok(("shipper", sscc.clone())),
            None => Err(AppError::Invalid(FieldError::new(
                "container",
                text,
                "names no container Autolog labels: a DIN (bag), a final unit's identifier, or an SSCC as (00) and 18 digits (shipper)",
            ))),
        },
    }
}

/// Who printed: the signed-in person (a different `printed_by` is refused); a source
/// system names the person at the printer.
fn printed_by(principal: &Principal, given: Option<&str>) -> Result<String, AppError> {
    match (principal.person_id(), given.filter(|g| !g.is_empty())) {
        (Some(me), None) => Ok(me.to_string()),
        (Some(me), Some(other)) if other == me => Ok(me.to_string()),
        (Some(me), Some(other)) => Err(AppError::Forbidden(FieldError::new(
            "printed_by",
            other,
            format!("must be the signed-in person, {me}"),
        ))),
        (None, Some(person)) => Ok(person.to_string()),
        (None, None) => Err(AppError::Invalid(FieldError::required("printed_by"))),
    }
}

/// The labels recorded in a chain's events, with their voids and verifications.
fn labels_from(coi: &str, events: &[Event]) -> Vec<Label> {
    use autolog_domain::catalogue::Payload;
    let mut labels: Vec<Label> = Vec::new();
    for e in events {
        let Ok(payload) = Payload::read(&e.body.event_type, e.body.version, &e.body.data) else {
            continue;
        };
        match payload {
            Payload::LabelPrinted(p) => labels.push(Label {
                label_id: p.label_id,
                coi: coi.to_string(),
                event_id: e.event_id.to_string(),
                printed_at: e.occurred_at.instant.to_string(),
                copy: p.copy,
                voided: false,
                template_id: p.template_id,
                template_version: p.template_version,
                site_id: p.site_id,
                printed_by: p.printed_by,
                printer: p.printer,
                reprint_reason: p.reprint_reason,
                stock: p.stock,
                content: p.content,
                verifications: Vec::new(),
            }),
            Payload::LabelVoided(v) => {
                if let Some(l) = labels.iter_mut().find(|l| l.label_id == v.label_id) {
                    l.voided = true;
                }
            }
            Payload::LabelVerified(v) => {
                if let Some(l) = labels.iter_mut().find(|l| l.label_id == v.label_id) {
                    l.verifications.push(Verification::of(e, v));
                }
            }
            _ => {}
        }
    }
    labels
}
