//! Labels at the bench: each container the chain holds, the label in force on it (drawn
//! from its record), a form to print it (a reprint says why) and one to verify the applied
//! label by scanning it back. A verification is always recorded; a mismatch holds the
//! chain and raises a critical alert, shown here as a full-width alert.

use std::sync::Arc;

use autolog_app::labels::{Label, PrintRequest, Verification, VerifyRequest};
use autolog_app::{AppError, Autolog, ChainAnswer};
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::page::{coi_large, csrf_field, page, site, utc, Nav};
use super::steps::Filled;
use super::viewer::{viewer, ConsoleError, Viewer};

/// What the last form did, shown above the containers.
enum Outcome {
    Printed(Box<Label>),
    Verified(Box<Verification>),
    Refused(Vec<FieldError>),
}

/// A container of the chain: its kind, identifier and where it is.
struct Container {
    kind: &'static str,
    id: String,
    custodian: Option<String>,
}

fn containers(chain: &ChainAnswer) -> Vec<Container> {
    let mut all: Vec<Container> = chain
        .units
        .iter()
        .map(|u| Container {
            kind: "Collection bag",
            id: u.din.clone(),
            custodian: u.custodian_site_id.clone(),
        })
        .collect();
    all.extend(chain.final_units.iter().map(|u| Container {
        kind: "Final unit",
        id: u.unit.clone(),
        custodian: u.custodian_site_id.clone(),
    }));
    // A shipper is labelled by its SSCC (read as a print reads it): containers named
    // otherwise have no label here.
    all.extend(chain.shippers.iter().filter_map(|s| {
        let sscc = format!("(00){}", s.container_id.trim_start_matches("(00)"));
        match autolog_app::labels::container_of(&sscc) {
            Ok(("shipper", id)) => Some(Container {
                kind: "Shipper",
                id,
                custodian: s.custodian_site_id.clone(),
            }),
            _ => None,
        }
    }));
    all
}

/// `GET /chains/{coi}/labels`.
pub(crate) async fn form(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    respond(&app, &viewer, &coi, None).await
}

async fn respond(
    app: &Autolog,
    viewer: &Viewer,
    coi: &str,
    outcome: Option<Outcome>,
) -> Result<Response, ConsoleError> {
    let chain = app.chain(coi, None, None).await?;
    let labels = app.labels_of(coi).await?;
    let status = match &outcome {
        Some(Outcome::Refused(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    let body = render(viewer, &chain, &labels, outcome.as_ref());
    Ok((status, page(Some(viewer), "Labels", Nav::Chains, body)).into_response())
}

/// `POST /chains/{coi}/labels/print`.
pub(crate) async fn print(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, filled) = Filled::posted(&app, &headers, &uri, &body).await?;
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let request = PrintRequest {
        coi: coi.clone(),
        container: filled.get("container").to_string(),
        template_id: None,
        site_id: filled.get("site_id").to_string(),
        printer: filled.get("printer").to_string(),
        printed_by: None,
        reprint_reason: Some(filled.get("reprint_reason").to_string()),
    };
    let outcome = match app.print_label(&viewer.principal, &request).await {
        Ok(label) => Outcome::Printed(Box::new(label)),
        Err(e) => Outcome::Refused(refusals(e)?),
    };
    respond(&app, &viewer, &coi, Some(outcome)).await
}

/// `POST /chains/{coi}/labels/verify`: one scan per line, as a scanner types them.
pub(crate) async fn verify(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, filled) = Filled::posted(&app, &headers, &uri, &body).await?;
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let scans: Vec<String> = filled
        .get("scans")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let request = VerifyRequest {
        coi: coi.clone(),
        container: filled.get("container").to_string(),
        site_id: filled.get("site_id").to_string(),
        scans,
        verified_by: None,
    };
    let outcome = match app.verify_label(&viewer.principal, &request).await {
        Ok(v) => Outcome::Verified(Box::new(v)),
        Err(e) => Outcome::Refused(refusals(e)?),
    };
    respond(&app, &viewer, &coi, Some(outcome)).await
}

/// A refusal the form shows; anything else is the console's error page.
fn refusals(e: AppError) -> Result<Vec<FieldError>, ConsoleError> {
    match e {
        AppError::Invalid(f) | AppError::Forbidden(f) => Ok(vec![f]),
        AppError::Unmet(list) => Ok(list),
        AppError::NotFound { what, id } => Ok(vec![FieldError::new(
            "container",
            id,
            format!("has no {what}"),
        )]),
        other => Err(ConsoleError::App(other)),
    }
}

fn render(
    viewer: &Viewer,
    chain: &ChainAnswer,
    labels: &[Label],
    outcome: Option<&Outcome>,
) -> Markup {
    html! {
        h1 { "Labels" }
        p { "Chain " (coi_large(&chain.coi)) ". " a href={ "/chains/" (chain.coi) } { "Back to the chain" } }
        @if let Some(o) = outcome { (outcome_banner(o)) }
        p.quiet { "A label is computed from the ledger and the product's label template, and its printing recorded before it is drawn. Print the PDF, or send the ZPL to a Zebra printer; then scan the applied label to verify it." }
        @let all = containers(chain);
        @if all.is_empty() { p.quiet { "The chain holds no container yet: a collection's bags, a batch's final units and a shipper with an SSCC get labels." } }
        @for c in &all {
            @let current = labels.iter().rev().find(|l| l.content.container == c.id && !l.voided);
            (container_card(viewer, chain, c, current))
        }
        (history(labels))
    }
}

fn outcome_banner(outcome: &Outcome) -> Markup {
    html! {
        @match outcome {
            Outcome::Printed(l) => p.banner.info role="status" { "✓ Label " (l.label_id) " (copy " (l.copy) ") of " span.coi { (l.content.container) } " recorded: print it now." }
            Outcome::Verified(v) if v.outcome == "match" => p.banner.info role="status" { "✓ Label verified: every data structure read matches what was printed for " span.coi { (v.container) } "." }
            Outcome::Verified(v) => div.banner.critical role="alert" {
                p { strong { "Label mismatch on " span.coi { (v.container) } ": the chain is on hold " (v.hold_id.as_deref().unwrap_or("")) "." } " Do not use this container until QA resolves the hold." }
                ul { @for f in &v.findings { li { (f) } } }
            }
            Outcome::Refused(list) => div.banner.critical role="alert" {
                p { "Not recorded:" }
                ul { @for f in list { li { (f.field) " " (f.value) ": " (f.rule) } } }
            }
        }
    }
}

fn container_card(
    viewer: &Viewer,
    chain: &ChainAnswer,
    c: &Container,
    current: Option<&Label>,
) -> Markup {
    let anchor = format!("label-{}", c.id);
    let site_default = c.custodian.clone().unwrap_or_default();
    html! {
        section.card aria-labelledby=(anchor) {
            h2 #(anchor) { (c.kind) " " span.coi { (c.id) } }
            @if let Some(l) = current {
                @let base = format!("/api/v1/chains/{}/labels/{}", chain.coi, c.id);
                p { "Label in force: " (l.label_id) ", copy " (l.copy) ", template " (l.template_id) " v" (l.template_version) ", printed " (utc(&l.printed_at)) " at " (site(Some(&l.site_id))) " by " (l.printed_by) " on " (l.printer) "." }
                img.label-preview src={ (base) "?format=svg" } alt={ "The label in force on " (c.id) ", copy " (l.copy) };
                p { a href={ (base) "?format=pdf" } { "PDF" } " · " a href={ (base) "?format=zpl" } { "ZPL" } }
                (encoded(l))
            } @else {
                p.quiet { "No label printed yet." }
            }
            form method="post" action={ "/chains/" (chain.coi) "/labels/print" } {
                (csrf_field(viewer))
                input type="hidden" name="container" value=(c.id);
                (site_field(&format!("print-site-{}", c.id), &site_default))
                label for={ "printer-" (c.id) } { "Printer" }
                input id={ "printer-" (c.id) } name="printer" required autocomplete="off";
                @if current.is_some() {
                    label for={ "reason-" (c.id) } { "Why print it again" }
                    input id={ "reason-" (c.id) } name="reprint_reason" required autocomplete="off";
                }
                p { button type="submit" { @if current.is_some() { "Reprint the label" } @else { "Print the label" } } }
            }
            @if current.is_some() {
                form method="post" action={ "/chains/" (chain.coi) "/labels/verify" } {
                    (csrf_field(viewer))
                    input type="hidden" name="container" value=(c.id);
                    (site_field(&format!("verify-site-{}", c.id), &site_default))
                    label for={ "scans-" (c.id) } { "Scan the applied label (each symbol on its own line)" }
                    textarea id={ "scans-" (c.id) } name="scans" rows="3" required autocomplete="off" {}
                    p { button type="submit" { "Verify the applied label" } }
                }
            }
        }
    }
}

/// What the label's symbols carry, as recorded: each data structure, and the 2-D message.
fn encoded(l: &Label) -> Markup {
    html! {
        table {
            caption { "Encoded on copy " (l.copy) }
            thead { tr { th scope="col" { "Structure" } th scope="col" { "Data" } } }
            tbody {
                @for e in &l.content.elements { tr { td { (e.name) } td.coi { (e.data) } } }
                tr { td { "2-D symbol" } td.coi.matrix { (l.content.matrix) } }
            }
        }
    }
}

fn site_field(id: &str, value: &str) -> Markup {
    html! {
        label for=(id) { "Site" }
        input id=(id) name="site_id" required autocomplete="off" value=(value);
    }
}

/// Every label printed on the chain, voided ones too, with their verifications.
fn history(labels: &[Label]) -> Markup {
    html! {
        @if !labels.is_empty() {
            table {
                caption { "Every label printed on this chain" }
                thead { tr { th scope="col" { "Container" } th scope="col" { "Copy" } th scope="col" { "Printed" } th scope="col" { "By" } th scope="col" { "Reprint reason" } th scope="col" { "Status" } } }
                tbody {
                    @for l in labels {
                        @let latest = labels.iter().rev().find(|x| x.content.container == l.content.container && !x.voided);
                        tr {
                            td.coi { (l.content.container) }
                            td { (l.copy) }
                            td { (utc(&l.printed_at)) }
                            td { (l.printed_by) }
                            td { (l.reprint_reason.as_deref().unwrap_or("—")) }
                            td { (status(l, latest.is_some_and(|x| x.label_id == l.label_id))) }
                        }
                    }
                }
            }
        }
    }
}

fn status(l: &Label, in_force: bool) -> String {
    let verified = l
        .verifications
        .last()
        .map(|v| format!(", last verification: {}", v.outcome));
    let standing = match (l.voided, in_force) {
        (true, _) => "voided",
        (false, true) => "in force",
        (false, false) => "superseded by a reprint",
    };
    format!("{standing}{}", verified.unwrap_or_default())
}
