//! QA release of a patient's batch: every condition listed with its state (met, or unmet
//! and why) before anything can be signed; the signature button is offered only when all
//! are met. Signing is an e-signature: the releaser re-authenticates with their password,
//! the meaning is stated on the button, and the chain page shows the manifestation after.

use std::sync::Arc;

use autolog_app::{AppError, Autolog, ChainAnswer, ReleaseDraft, VerificationNeeded};
use autolog_domain::access::Permission;
use autolog_domain::{FieldError, StreamId};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::json;

use super::page::{coi_large, csrf_field, page, Nav};
use super::steps::{console_event, site_now, verification_fields, Filled};
use super::viewer::{url_encode, viewer, ConsoleError, Viewer};

/// The release conditions as the page lists them: what each says, and which refusals
/// (by the field they name) mean it is not met.
const CONDITIONS: &[(&str, &[&str])] = &[
    ("The batch is this chain's", &["body.data.batch_id"]),
    (
        "The patient it is released to is the batch's source patient",
        &["body.data.intended_patient_key"],
    ),
    (
        "Every release test's latest result passes its specification",
        &["release_tests", "results."],
    ),
    (
        "No deviation is open, and each closed one permits release",
        &["deviations."],
    ),
    (
        "You are a QA releaser qualified at the site, now",
        &["body.data.released_by"],
    ),
    ("The site may hold the product", &["body.data.site_id"]),
    (
        "The units released are the batch's final units",
        &["body.data.units"],
    ),
];

/// What is to be released: the chain's batch, its units, where.
struct Release {
    chain: ChainAnswer,
    batch_id: String,
    units: Vec<String>,
    site_id: String,
    patient_key: String,
    /// A treating physician's signed request for an exceptional release of this batch.
    requested: bool,
    /// The batch's results whose verdict is not a pass (their event ids).
    failing: Vec<String>,
}

/// The data of the chain's events of one type about `batch_id`.
fn about_batch<'a>(
    chain: &'a ChainAnswer,
    event_type: &'a str,
    batch_id: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    chain
        .timeline
        .iter()
        .filter(move |e| e.in_force != Some(false) && e.event["body"]["type"] == event_type)
        .map(|e| &e.event["body"]["data"])
        .filter(move |d| d["batch_id"] == batch_id)
}

fn release_of(chain: ChainAnswer) -> Result<Release, ConsoleError> {
    let Some(batch_id) = chain.final_units.first().map(|u| u.batch_id.clone()) else {
        return Err(FieldError::new(
            "coi",
            &chain.coi,
            "has no batch with final units yet: there is nothing to release",
        )
        .into());
    };
    let units = chain
        .final_units
        .iter()
        .filter(|u| u.batch_id == batch_id)
        .map(|u| u.unit.clone())
        .collect();
    let requested = about_batch(&chain, "chain.exceptional_release_requested", &batch_id)
        .next()
        .is_some();
    let failing = about_batch(&chain, "batch.test_result_evaluated", &batch_id)
        .filter(|d| d["verdict"] != "pass")
        .filter_map(|d| d["result_event_id"].as_str().map(str::to_string))
        .collect();
    Ok(Release {
        requested,
        failing,
        batch_id,
        units,
        site_id: chain.location_site_id.clone().unwrap_or_default(),
        patient_key: chain.patient_key.clone().unwrap_or_default(),
        chain,
    })
}

/// Stands in for the second signer of an exceptional release while the conditions are
/// shown (who signs second is checked when they sign).
const SECOND_SIGNER: &str = "P-SECOND-SIGNER";

/// The conditions not met: of an exceptional release when one was requested.
async fn unmet(
    app: &Autolog,
    viewer: &Viewer,
    r: &Release,
) -> Result<Vec<FieldError>, ConsoleError> {
    let now = site_now(app, &r.site_id).await?;
    let unmet = app
        .release_check(&ReleaseDraft {
            coi: &r.chain.coi,
            batch_id: &r.batch_id,
            intended_patient_key: &r.patient_key,
            site_id: &r.site_id,
            released_by: &viewer.person_id,
            units: &r.units,
            occurred_at: &now,
            exceptional_second: r.requested.then_some(SECOND_SIGNER),
        })
        .await?;
    Ok(unmet
        .into_iter()
        .filter(|f| f.field != "body.data.second_released_by")
        .collect())
}

/// `GET /chains/{coi}/release`.
pub(crate) async fn form(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let release = release_of(app.chain(&coi, None, None).await?)?;
    let unmet = unmet(&app, &viewer, &release).await?;
    let needed = needed(&app, &release).await?;
    let body = render(&viewer, &release, &unmet, needed.as_ref(), None);
    Ok(page(Some(&viewer), "Release", Nav::Chains, body).into_response())
}

fn render(
    viewer: &Viewer,
    r: &Release,
    unmet: &[FieldError],
    needed: Option<&VerificationNeeded>,
    refusal: Option<&FieldError>,
) -> Markup {
    let meaning = format!(
        "I approve the release of batch {} to patient {}",
        r.batch_id, r.patient_key
    );
    let shown: Vec<(&str, Vec<&FieldError>)> = CONDITIONS
        .iter()
        .map(|(what, fields)| {
            let failing = unmet
                .iter()
                .filter(|f| fields.iter().any(|p| f.field.starts_with(p)))
                .collect();
            (*what, failing)
        })
        .collect();
    let other: Vec<&FieldError> = unmet
        .iter()
        .filter(|f| {
            !CONDITIONS
                .iter()
                .any(|(_, fields)| fields.iter().any(|p| f.field.starts_with(p)))
        })
        .collect();
    html! {
        h1 { "Release batch " (r.batch_id) }
        p { "Chain " (coi_large(&r.chain.coi)) ", patient " strong { (r.patient_key) } ", at " (r.site_id) ". "
            a href={ "/chains/" (r.chain.coi) } { "Back to the chain" } }
        @if let Some(f) = refusal {
            p.banner.critical role="alert" { "Not recorded: " (f.field) " " (f.value) ": " (f.rule) }
        }
        h2 { "Conditions" }
        ul.conditions {
            @for (what, failing) in &shown {
                li {
                    @if failing.is_empty() { span.state { "✓ met: " } (what) }
                    @else {
                        strong.state.hold { "✗ not met: " } (what)
                        ul { @for f in failing { li { (f.field) " " (f.value) ": " (f.rule) } } }
                    }
                }
            }
            @for f in &other { li { strong.state.hold { "✗ not met: " } (f.field) " " (f.value) ": " (f.rule) } }
        }
        @if unmet.is_empty() {
            form.card method="post" action={ "/chains/" (r.chain.coi) "/release" } {
                h2 { "Electronic signature" }
                (csrf_field(viewer))
                @if r.requested {
                    p.banner.info { "Exceptional release: a treating physician's signed request accepts the out-of-specification results; a second qualified person signs as well." }
                }
                p { "Signing as " strong { (viewer.person_id) } ". Meaning: " strong { (meaning) } "." }
                label for="secret" { "Your password (re-authentication for this signature)" }
                input #secret name="secret" type="password" required autocomplete="current-password";
                @if r.requested {
                    label for="second_released_by" { "Second QA releaser: person id" }
                    input #second_released_by name="second_released_by" required autocomplete="off";
                    label for="second_secret" { "Second QA releaser: password (their signature)" }
                    input #second_secret name="second_secret" type="password" required autocomplete="off";
                }
                (verification_fields(needed, &Filled::default()))
                p { button type="submit" { "Sign: " (meaning) } }
            }
        } @else {
            p.banner.info { "The release cannot be signed until every condition is met." }
            @if !r.requested && !r.failing.is_empty() && only_results(unmet) {
                p { a href=(request_link(r)) { "A treating physician may request an exceptional release of this batch" } }
            }
        }
    }
}

/// Whether every unmet condition is a release test's result (what a physician's request
/// for an exceptional release can accept).
fn only_results(unmet: &[FieldError]) -> bool {
    unmet
        .iter()
        .all(|f| f.field.starts_with("release_tests.") || f.field.starts_with("results."))
}

/// The physician's request form, filled in with the batch, the patient and the failing
/// results.
fn request_link(r: &Release) -> String {
    format!(
        "/chains/{}/record/exceptional-request?batch_id={}&intended_patient_key={}&site_id={}&result_event_ids={}",
        r.chain.coi,
        url_encode(&r.batch_id),
        url_encode(&r.patient_key),
        url_encode(r.chain.treatment_site_id.as_deref().unwrap_or("")),
        url_encode(&r.failing.join("\n"))
    )
}

/// What a verification policy asks of this release, if anything.
async fn needed(app: &Autolog, r: &Release) -> Result<Option<VerificationNeeded>, ConsoleError> {
    let stream = StreamId::chain(&r.chain.coi);
    Ok(app
        .verification_needed("chain.released", stream.as_ref(), &r.site_id, app.now())
        .await?)
}

/// `POST /chains/{coi}/release`: signs and records the release.
pub(crate) async fn sign(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, form) = Filled::posted(&app, &headers, &uri, &body).await?;
    if !viewer.may(Permission::Record) {
        return Err(AppError::Forbidden(FieldError::new(
            "permission",
            "Record",
            "your roles do not record releases",
        ))
        .into());
    }
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let release = release_of(app.chain(&coi, None, None).await?)?;
    let mut data = json!({
        "signature": {"signer_id": viewer.person_id, "secret": form.get("secret")},
        "batch_id": release.batch_id, "intended_patient_key": release.patient_key,
        "site_id": release.site_id, "released_by": viewer.person_id, "units": release.units,
    });
    if release.requested {
        data["exceptional"] = json!(true);
        data["second_released_by"] = json!(form.get("second_released_by"));
        data["second_signature"] = json!({"signer_id": form.get("second_released_by"), "secret": form.get("second_secret")});
    }
    if let Some(given) = form.verifications() {
        data["verifications"] = given;
    }
    let source = format!("release/{coi}/{}", release.batch_id);
    let event = console_event(
        &app,
        &coi,
        &release.site_id,
        "chain.released",
        &source,
        data,
    )
    .await?;
    let refusal = match app
        .append_json_as(&viewer.principal, event.to_string().as_bytes())
        .await
    {
        Ok(_) => return Ok(Redirect::to(&format!("/chains/{coi}#signatures-h")).into_response()),
        Err(AppError::Invalid(f) | AppError::Forbidden(f)) => f,
        Err(AppError::Unmet(list)) => list
            .into_iter()
            .next()
            .unwrap_or_else(|| FieldError::new("release", "", "refused")),
        Err(e) => return Err(e.into()),
    };
    let unmet = unmet(&app, &viewer, &release).await?;
    let needed = needed(&app, &release).await?;
    let body = render(&viewer, &release, &unmet, needed.as_ref(), Some(&refusal));
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        page(Some(&viewer), "Release", Nav::Chains, body),
    )
        .into_response())
}
