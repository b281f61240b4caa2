//! Enrolment: the treating physician's order opens the patient's chain and Autolog issues
//! its COI, shown large with its check character boxed. The patient is named only by a
//! pseudonymous key; identifying data go to the vault, never through this form.

use std::sync::Arc;

use autolog_app::{AppError, Autolog};
use autolog_domain::access::EVERY_SITE;
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::json;

use super::page::{coi_large, csrf_field, page, Nav};
use super::steps::{site_now, Filled};
use super::viewer::{viewer, ConsoleError, Viewer};

/// The person's first site (where an order is usually given), if any.
fn home_site(viewer: &Viewer) -> String {
    viewer
        .principal
        .grants
        .iter()
        .map(|g| g.site_id.clone())
        .find(|s| s != EVERY_SITE)
        .unwrap_or_default()
}

/// `GET /enrol`.
pub(crate) async fn form(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let mut filled = Filled::default();
    filled.pairs.push((
        "idempotency_key".into(),
        autolog_domain::Uuid::now_v7().to_string(),
    ));
    filled
        .pairs
        .push(("treatment_site_id".into(), home_site(&viewer)));
    Ok(page(
        Some(&viewer),
        "Enrol a patient",
        Nav::Chains,
        render(&viewer, &filled, None),
    )
    .into_response())
}

fn render(viewer: &Viewer, filled: &Filled, refusal: Option<&FieldError>) -> Markup {
    let field = |name: &str, label: &str, hint: &str| {
        let hint_id = format!("{name}-hint");
        html! {
            label for=(name) { (label) }
            input #(name) name=(name) value=(filled.get(name)) autocomplete="off" aria-describedby=(hint_id);
            p.field-hint #(hint_id) { (hint) }
        }
    };
    html! {
        h1 { "Enrol a patient (the treating physician's order)" }
        @if let Some(f) = refusal {
            p.banner.critical role="alert" { "Not recorded: " (f.field) " " (f.value) ": " (f.rule) }
        }
        form.card method="post" action="/enrol" {
            (csrf_field(viewer))
            input type="hidden" name="idempotency_key" value=(filled.get("idempotency_key"));
            (field("patient_key", "Patient key", "The patient's pseudonymous key: never a name, date of birth or MRN."))
            (field("product_code", "Product", "The product code, e.g. CART-19."))
            (field("treatment_site_id", "Treatment site", "Where the patient is treated."))
            (field("collection_site_id", "Collection site (optional)", "Where the cells are collected, if not the treatment site."))
            p { button type="submit" { "Record the order and issue the COI" } }
        }
    }
}

/// `POST /enrol`: records the order; the answer shows the COI issued.
pub(crate) async fn enrol(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let (viewer, filled) = Filled::posted(&app, &headers, &uri, &body).await?;
    let site = filled.get("treatment_site_id").to_string();
    let refused = |f: FieldError| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(
                Some(&viewer),
                "Enrol a patient",
                Nav::Chains,
                render(&viewer, &filled, Some(&f)),
            ),
        )
            .into_response()
    };
    let now = match site_now(&app, &site).await {
        Ok(now) => now,
        Err(f) => {
            return Ok(refused(FieldError::new(
                "treatment_site_id",
                site.clone(),
                f.rule,
            )))
        }
    };
    let mut order = json!({
        "occurred_at": now, "site": site,
        "source": {"system": "console", "source_event_id": format!("enrol/{}", filled.get("idempotency_key"))},
        "patient_key": filled.get("patient_key"), "product_code": filled.get("product_code"),
        "treatment_site_id": site,
    });
    if !filled.get("collection_site_id").is_empty() {
        order["collection_site_id"] = json!(filled.get("collection_site_id"));
    }
    match app
        .enrol_as(&viewer.principal, order.to_string().as_bytes())
        .await
    {
        Ok((coi, _)) => {
            let body = html! {
                h1 { "Chain of identity issued" }
                p.coi-issued { (coi_large(&coi)) }
                p { "Write it on every label as printed from the ledger; the boxed character is its check character." }
                p { a.button href={ "/chains/" (coi) } { "Open the chain" } }
            };
            Ok((
                StatusCode::CREATED,
                page(Some(&viewer), "COI issued", Nav::Chains, body),
            )
                .into_response())
        }
        Err(AppError::Invalid(f) | AppError::Forbidden(f) | AppError::Conflict(f)) => {
            Ok(refused(f))
        }
        Err(e) => Err(e.into()),
    }
}
