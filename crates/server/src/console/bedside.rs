//! At the bedside (a tablet: 44 px targets): scan the unit's label and the patient's
//! wristband; Autolog compares both with the chain (the unit is this patient's, released to
//! them, at their treatment center; the wristband carries this chain's COI). A mismatch is
//! a full-screen hard stop, with the critical alert the app raises; administration is
//! offered only after a passed check, and records a second person as verifier.

use std::sync::Arc;

use autolog_app::{AppError, Autolog, ChainAnswer, VerificationNeeded};
use autolog_domain::access::Permission;
use autolog_domain::{FieldError, StreamId};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::{json, Value};

use super::page::{coi_large, csrf_field, page, Nav};
use super::steps::{console_event, verification_fields, Filled};
use super::viewer::{viewer, ConsoleError, Viewer};

/// The units of the chain that passed a bedside check, as the timeline records them.
fn checked_units(chain: &ChainAnswer) -> Vec<String> {
    chain
        .timeline
        .iter()
        .filter(|e| {
            e.in_force != Some(false) && e.event["body"]["type"] == "chain.bedside_verified"
        })
        .filter_map(|e| e.event["body"]["data"]["unit_scan"].as_str())
        .filter_map(|scan| autolog_domain::identifiers::scan::parse_scan("unit_scan", scan).ok())
        .map(|s| s.unit_id())
        .collect()
}

/// `GET /chains/{coi}/bedside`.
pub(crate) async fn form(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let chain = app.chain(&coi, None, None).await?;
    let needed = needed(&app, &chain).await?;
    let body = render(&viewer, &chain, &needed, None);
    Ok(page(Some(&viewer), "Bedside check", Nav::Chains, body).into_response())
}

/// What verification policies ask of the bedside check and of the administration here.
struct Needed {
    check: Option<VerificationNeeded>,
    administration: Option<VerificationNeeded>,
}

async fn needed(app: &Autolog, chain: &ChainAnswer) -> Result<Needed, ConsoleError> {
    let site = chain.treatment_site_id.clone().unwrap_or_default();
    let stream = StreamId::chain(&chain.coi);
    let of = |event_type: &'static str| {
        let (stream, site) = (stream.clone(), site.clone());
        async move {
            app.verification_needed(event_type, stream.as_ref(), &site, app.now())
                .await
        }
    };
    Ok(Needed {
        check: of("chain.bedside_verified").await?,
        administration: of("chain.administered").await?,
    })
}

fn render(
    viewer: &Viewer,
    chain: &ChainAnswer,
    needed: &Needed,
    refusal: Option<&FieldError>,
) -> Markup {
    let checked = checked_units(chain);
    let administered = chain.state == "administered" || chain.state == "in_follow_up";
    html! {
        div.bedside {
            h1 { "Bedside check" }
            p { "Chain " (coi_large(&chain.coi)) " · patient key " strong { (chain.patient_key.as_deref().unwrap_or("—")) } ". "
                a href={ "/chains/" (chain.coi) } { "Back to the chain" } }
            @if let Some(f) = refusal {
                p.banner.critical role="alert" { "Not recorded: " (f.field) " " (f.value) ": " (f.rule) }
            }
            @for unit in &checked {
                p.banner.info role="status" { "✓ Bedside check passed for unit " span.coi { (unit) } "." }
            }
            @if administered {
                p.banner.info { "Administered." }
            } @else if checked.is_empty() {
                form.card method="post" action={ "/chains/" (chain.coi) "/bedside" } {
                    (csrf_field(viewer))
                    input type="hidden" name="idempotency_key" value=(autolog_domain::Uuid::now_v7().to_string());
                    label for="unit_scan" { "Scan the unit's label" }
                    input #unit_scan name="unit_scan" required autocomplete="off" autofocus;
                    label for="wristband" { "Scan the patient's wristband" }
                    input #wristband name="wristband" required autocomplete="off";
                    @if viewer.may(Permission::ReadPersonalData) {
                        (identifier_fields())
                    }
                    (verification_fields(needed.check.as_ref(), &Filled::default()))
                    p { button type="submit" { "Check the unit against this patient" } }
                }
            } @else {
                form.card method="post" action={ "/chains/" (chain.coi) "/administer" } {
                    h2 { "Administration" }
                    (csrf_field(viewer))
                    label for="unit" { "Unit" }
                    select #unit name="unit" { @for u in &checked { option value=(u) { (u) } } }
                    label for="verified_by" { "Second person who verified at the bedside (person id)" }
                    input #verified_by name="verified_by" required autocomplete="off";
                    (verification_fields(needed.administration.as_ref(), &Filled::default()))
                    p { button type="submit" { "Record the administration to patient " (chain.patient_key.as_deref().unwrap_or("")) } }
                }
            }
        }
    }
}

/// The patient's identifiers as read from the wristband or chart, for roles that may read
/// identifying data: compared with the vault by Autolog, never recorded (the ledger keeps
/// which ones matched, not their values).
const IDENTIFIERS: &[(&str, &str)] = &[
    ("family_name", "Family name"),
    ("given_name", "Given name"),
    ("date_of_birth", "Date of birth (YYYY-MM-DD)"),
    ("mrn", "Medical record number"),
];

fn identifier_fields() -> Markup {
    html! {
        fieldset {
            legend { "The patient's identifiers, as on the wristband (optional; compared with the vault, not recorded)" }
            @for (name, label) in IDENTIFIERS {
                @let id = format!("id_{name}");
                label for=(id) { (label) }
                input #(id) name=(id) autocomplete="off";
            }
        }
    }
}

/// The identifiers typed in, by the vault's field names (`None`: none typed).
fn identifiers_given(filled: &Filled) -> Option<Value> {
    let given: serde_json::Map<String, Value> = IDENTIFIERS
        .iter()
        .filter_map(|(name, _)| {
            let value = filled.get(&format!("id_{name}"));
            (!value.is_empty()).then(|| ((*name).to_string(), json!(value)))
        })
        .collect();
    (!given.is_empty()).then_some(Value::Object(given))
}

/// Whether a refusal is only of verifications (too few verifiers), not of what was scanned.
fn only_verifications(reasons: &[FieldError]) -> bool {
    reasons.iter().all(|f| f.field.contains("verifications"))
}

/// The hard stop: the whole screen says not to infuse, and why.
fn hard_stop(chain: &ChainAnswer, reasons: &[FieldError]) -> Markup {
    // `body.data.patient_identifiers.family_name` is shown as `family_name`.
    let what = |f: &FieldError| f.field.rsplit('.').next().unwrap_or("").to_string();
    html! {
        div.hardstop role="alert" {
            h1 { "STOP: DO NOT INFUSE" }
            p { "What was scanned or read does not match this patient's chain " span.coi { (chain.coi) } "." }
            ul { @for f in reasons { li { (what(f)) ": " (f.rule) } } }
            p { "Nothing was recorded as checked. A critical alert (bedside.mismatch) was raised for QA and the treating team." }
            p { a href={ "/chains/" (chain.coi) "/bedside" } { "Start the check again" } }
        }
    }
}

/// `POST /chains/{coi}/bedside`: records the check; a mismatch is the hard stop.
pub(crate) async fn check(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, form) = Filled::posted(&app, &headers, &uri, &body).await?;
    let verifications = form.verifications();
    let identifiers = identifiers_given(&form);
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let chain = app.chain(&coi, None, None).await?;
    let site = chain.treatment_site_id.clone().unwrap_or_default();
    let mut data = json!({
        "unit_scan": form.get("unit_scan"), "patient_key": chain.patient_key,
        "wristband_coi": wristband_coi(form.get("wristband")), "site_id": site,
        "verified_by": viewer.person_id,
    });
    if let Some(given) = verifications {
        data["verifications"] = given;
    }
    if let Some(given) = identifiers {
        data["patient_identifiers"] = given;
    }
    let event = console_event(
        &app,
        &coi,
        &site,
        "chain.bedside_verified",
        &format!("bedside/{}", form.get("idempotency_key")),
        data,
    )
    .await?;
    match app
        .append_json_as(&viewer.principal, event.to_string().as_bytes())
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/chains/{coi}/bedside")).into_response()),
        // Verifiers missing is not a mismatch: the check is not done yet, nothing stops.
        Err(AppError::Unmet(reasons)) if only_verifications(&reasons) => {
            let needed = needed(&app, &chain).await?;
            let body = render(&viewer, &chain, &needed, reasons.first());
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(Some(&viewer), "Bedside check", Nav::Chains, body),
            )
                .into_response())
        }
        Err(AppError::Unmet(reasons)) => {
            let body = hard_stop(&chain, &reasons);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(Some(&viewer), "STOP: do not infuse", Nav::Chains, body),
            )
                .into_response())
        }
        Err(AppError::Invalid(f)) => {
            let needed = needed(&app, &chain).await?;
            let body = render(&viewer, &chain, &needed, Some(&f));
            Ok((
                StatusCode::BAD_REQUEST,
                page(Some(&viewer), "Bedside check", Nav::Chains, body),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The COI a wristband's scan carries (its barcode or eye-readable form), as typed if it
/// cannot be read (the app refuses it naming the field).
fn wristband_coi(scan: &str) -> String {
    autolog_domain::identifiers::Coi::parse("wristband", scan)
        .map(|c| c.to_string())
        .unwrap_or_else(|_| scan.to_string())
}

/// `POST /chains/{coi}/administer`: only a unit that passed the bedside check.
pub(crate) async fn administer(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, form) = Filled::posted(&app, &headers, &uri, &body).await?;
    let verifications = form.verifications();
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let chain = app.chain(&coi, None, None).await?;
    let site = chain.treatment_site_id.clone().unwrap_or_default();
    let mut data = json!({
        "step_code": "INFUSE", "site_id": site, "administered_by": viewer.person_id,
        "verified_by": form.get("verified_by"), "unit": form.get("unit"),
    });
    if let Some(given) = verifications {
        data["verifications"] = given;
    }
    let event = console_event(
        &app,
        &coi,
        &site,
        "chain.administered",
        &format!("administer/{coi}/{}", form.get("unit")),
        data,
    )
    .await?;
    match app
        .append_json_as(&viewer.principal, event.to_string().as_bytes())
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/chains/{coi}#timeline-h")).into_response()),
        Err(AppError::Unmet(list)) if !list.is_empty() => {
            let needed = needed(&app, &chain).await?;
            let body = render(&viewer, &chain, &needed, list.first());
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(Some(&viewer), "Bedside check", Nav::Chains, body),
            )
                .into_response())
        }
        Err(AppError::Invalid(f) | AppError::Forbidden(f)) => {
            let needed = needed(&app, &chain).await?;
            let body = render(&viewer, &chain, &needed, Some(&f));
            Ok((
                StatusCode::BAD_REQUEST,
                page(Some(&viewer), "Bedside check", Nav::Chains, body),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}
