//! Finding a chain (by COI, DIN, unit identifier or patient key, typed or scanned), the
//! list of chains in scope, and the chain page as it stood at any valid time and as
//! Autolog knew it at any known time. The identifying data of the patient is shown only
//! on request, with a coded purpose, and the read is recorded as the API records it.

use std::sync::Arc;

use autolog_app::{AppError, Autolog, ChainFilter};
use autolog_domain::access::{Permission, PURPOSES_OF_USE};
use autolog_domain::identifiers::scan::{parse_scan, Scanned};
use autolog_domain::identifiers::{Coi, Din};
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::chain_view::{chain_body, AsOfShown, Extras};
use super::page::{chain_table, page, Nav};
use super::session::parse_form;
use super::viewer::{refused, url_encode, viewer, ConsoleError, Viewer};
use crate::auth::{check_chain, check_personal_data_scope};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FindQuery {
    q: Option<String>,
    site_id: Option<String>,
    state: Option<String>,
    product_code: Option<String>,
    after: Option<String>,
}

/// `GET /chains`: with `q`, finds the chain it names and opens it; otherwise lists the
/// chains in scope by site, state and product, a page at a time.
pub(crate) async fn find(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<FindQuery>,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let wanted = q.q.as_deref().map(str::trim).unwrap_or("");
    let mut refusal = None;
    let mut found = None;
    if !wanted.is_empty() {
        match resolve(&app, &viewer, wanted).await {
            Ok(Found::Chain(coi)) => {
                return Ok(Redirect::to(&format!("/chains/{coi}")).into_response())
            }
            Ok(Found::Patient(list)) => found = Some(list),
            Err(ConsoleError::App(AppError::Invalid(f))) => refusal = Some(f),
            Err(ConsoleError::App(AppError::NotFound { what, id })) => {
                refusal = Some(FieldError::new(
                    "q",
                    wanted,
                    format!("names no {what} recorded ({id})"),
                ))
            }
            Err(e) => return Err(e),
        }
    }
    let list = match found {
        Some(list) => list,
        None => {
            let filter = ChainFilter {
                site_id: q.site_id.clone().filter(|s| !s.is_empty()),
                state: q.state.clone().filter(|s| !s.is_empty()),
                product_code: q.product_code.clone().filter(|s| !s.is_empty()),
                after: q.after.clone().filter(|s| !s.is_empty()),
                limit: Some(100),
                ..ChainFilter::default()
            };
            app.chains(&viewer.principal.grants, &filter).await?
        }
    };
    let status = if refusal.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 { "Chains" }
        @if viewer.may(autolog_domain::access::Permission::Record) {
            p { a.button href="/enrol" { "Enrol a patient" } }
        }
        (find_form(wanted, refusal.as_ref()))
        (filter_form(&q))
        @if list.chains.is_empty() {
            p.quiet { "No chain in your scope matches." }
        } @else {
            (chain_table("Chains", &list.chains))
        }
        @if let Some(next) = &list.next_after {
            p { a href=(next_page(&q, next)) { "Next page" } }
        }
    };
    Ok((status, page(Some(&viewer), "Chains", Nav::Chains, body)).into_response())
}

fn next_page(q: &FindQuery, after: &str) -> String {
    let mut query = format!("/chains?after={}", url_encode(after));
    for (name, value) in [
        ("site_id", &q.site_id),
        ("state", &q.state),
        ("product_code", &q.product_code),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            query.push_str(&format!("&{name}={}", url_encode(v)));
        }
    }
    query
}

/// What a search found: one chain, or a patient's chains.
enum Found {
    Chain(String),
    Patient(autolog_app::ChainList),
}

/// Reads the search as a COI, then as scanned or typed barcode data (a DIN or a final
/// unit's identifier, found through its link to the chain), then as a patient key. A
/// chain outside the person's scope is refused as on its own page.
async fn resolve(app: &Autolog, viewer: &Viewer, wanted: &str) -> Result<Found, ConsoleError> {
    if let Ok(coi) = Coi::parse("q", wanted) {
        return Ok(Found::Chain(coi.to_string()));
    }
    let unit = match parse_scan("q", wanted) {
        Ok(Scanned::Din { din, .. }) => Some(din.to_string()),
        Ok(Scanned::Unit(unit)) => Some(unit.to_string()),
        Ok(Scanned::Gs1(_)) => {
            return Err(FieldError::new(
                "q",
                wanted,
                "is a GS1 element string (a shipper or a product): scan the bag's DIN, the unit's identifier or the COI",
            )
            .into())
        }
        Err(_) => Din::parse("q", wanted).ok().map(|d| d.to_string()),
    };
    if let Some(unit) = unit {
        let found = app.genealogy_backward(&unit, None, None).await?;
        if let Err(e) =
            check_chain(app, &viewer.principal, Permission::ReadChains, &found.coi).await
        {
            return Err(refused(app, viewer, "GET /chains?q (a unit)", forbidden_of(e)).await);
        }
        return Ok(Found::Chain(found.coi));
    }
    if autolog_domain::ledger::envelope::check_code("q", wanted).is_err() {
        return Err(FieldError::new(
            "q",
            wanted,
            "is not a COI, a DIN, a final unit's identifier or a patient key",
        )
        .into());
    }
    let list = app
        .chains(
            &viewer.principal.grants,
            &ChainFilter {
                patient_key: Some(wanted.to_string()),
                ..ChainFilter::default()
            },
        )
        .await?;
    match list.chains.as_slice() {
        [] => Err(FieldError::new(
            "q",
            wanted,
            "is not a COI, a DIN or a unit identifier, and no chain in your scope has this patient key",
        )
        .into()),
        [one] => Ok(Found::Chain(one.coi.clone())),
        _ => Ok(Found::Patient(list)),
    }
}

fn forbidden_of(e: crate::ApiError) -> FieldError {
    match e.0 {
        AppError::Forbidden(f) => f,
        other => FieldError::new("coi", "(unknown)", other.to_string()),
    }
}

fn find_form(wanted: &str, refusal: Option<&FieldError>) -> Markup {
    html! {
        form method="get" action="/chains" {
            label for="q" { "Find a chain" }
            p.field-hint #q-hint {
                "Scan or type a COI, a DIN, a final unit's identifier or a patient key, then Enter."
            }
            input #q name="q" value=(wanted) autocomplete="off" autofocus
                aria-describedby={ "q-hint" @if refusal.is_some() { " q-error" } }
                aria-invalid=[refusal.map(|_| "true")];
            @if let Some(f) = refusal {
                p.field-error #q-error role="alert" { (f.value) " " (f.rule) }
            }
            " " button type="submit" { "Find" }
        }
    }
}

fn filter_form(q: &FindQuery) -> Markup {
    let states = autolog_domain::chain::ChainState::ALL;
    let chosen = q.state.as_deref().unwrap_or("");
    html! {
        form.timectl method="get" action="/chains" {
            div {
                label for="site_id" { "Site" }
                input #site_id name="site_id" value=(q.site_id.as_deref().unwrap_or("")) size="12";
            }
            div {
                label for="state" { "State" }
                select #state name="state" {
                    option value="" selected[chosen.is_empty()] { "any" }
                    @for s in states {
                        option value=(s.as_str()) selected[chosen == s.as_str()] { (s.as_str().replace('_', " ")) }
                    }
                }
            }
            div {
                label for="product_code" { "Product" }
                input #product_code name="product_code" value=(q.product_code.as_deref().unwrap_or("")) size="12";
            }
            button type="submit" { "List" }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AsOfQuery {
    valid_at: Option<String>,
    known_at: Option<String>,
}

/// `GET /chains/{coi}`: the chain page, as of the asked valid and known times.
pub(crate) async fn page_of_chain(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
    Query(q): Query<AsOfQuery>,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let coi = in_scope(&app, &viewer, &coi).await?;
    let body = render_chain(&app, &viewer, &coi, &q, None).await?;
    Ok(page(Some(&viewer), &coi, Nav::Chains, body).into_response())
}

/// The canonical COI, once the chain is known to be in the person's scope (a refusal is
/// recorded in their access audit).
pub(crate) async fn in_scope(
    app: &Autolog,
    viewer: &Viewer,
    coi: &str,
) -> Result<String, ConsoleError> {
    let canonical = Coi::parse("coi", coi)?.to_string();
    if let Err(e) = check_chain(app, &viewer.principal, Permission::ReadChains, &canonical).await {
        let target = format!("GET /chains/{{coi}} coi/{canonical}");
        return Err(refused(app, viewer, &target, forbidden_of(e)).await);
    }
    Ok(canonical)
}

async fn render_chain(
    app: &Autolog,
    viewer: &Viewer,
    coi: &str,
    q: &AsOfQuery,
    identity: Option<Markup>,
) -> Result<Markup, ConsoleError> {
    let valid_at = q
        .valid_at
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let known_at = q
        .known_at
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let (chain, time_error) = match app.chain(coi, valid_at, known_at).await {
        Ok(chain) => (chain, None),
        Err(AppError::Invalid(f)) if f.field == "valid_at" || f.field == "known_at" => {
            (app.chain(coi, None, None).await?, Some(f))
        }
        Err(e) => return Err(e.into()),
    };
    let as_of = AsOfShown {
        valid_at: valid_at
            .filter(|_| time_error.is_none())
            .map(str::to_string),
        known_at: known_at
            .filter(|_| time_error.is_none())
            .map(str::to_string),
        error: time_error,
    };
    // What was corrected after the known time shown: from the chain as known now.
    let now = if as_of.known_at.is_some() {
        Some(app.chain(coi, valid_at, None).await?)
    } else {
        None
    };
    let alerts = if viewer.may(Permission::ReadAlerts) {
        app.alerts(&autolog_app::AlertQuery {
            status: Some("all".into()),
            coi: Some(coi.to_string()),
            ..Default::default()
        })
        .await?
    } else {
        Vec::new()
    };
    let genealogy = match chain.final_units.first() {
        Some(unit) => Some(
            app.genealogy_backward(
                &unit.unit,
                as_of.valid_at.as_deref(),
                as_of.known_at.as_deref(),
            )
            .await?,
        ),
        None => None,
    };
    let extras = Extras {
        now: now.as_ref(),
        alerts: &alerts,
        genealogy: genealogy.as_ref(),
        identity,
    };
    Ok(chain_body(viewer, &chain, &as_of, extras))
}

#[derive(Debug, Deserialize)]
pub(crate) struct IdentityForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    purpose: String,
}

/// `POST /chains/{coi}/identity`: the patient's identifying data, read with a coded
/// purpose (recorded in the ledger before it is shown), on this answer only.
pub(crate) async fn identity(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(coi): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let form: IdentityForm = parse_form(&body)?;
    viewer.check_csrf(&form.csrf)?;
    let coi = in_scope(&app, &viewer, &coi).await?;
    let patient_key = app.patient_key_of(&coi).await?;
    if let Err(e) = check_personal_data_scope(
        &app,
        &viewer.principal,
        Permission::ReadPersonalData,
        &patient_key,
    )
    .await
    {
        return Err(refused(
            &app,
            &viewer,
            "POST /chains/{coi}/identity",
            forbidden_of(e),
        )
        .await);
    }
    if !viewer.may(Permission::ReadPersonalData) {
        let f = FieldError::new(
            "permission",
            "ReadPersonalData",
            format!(
                "{} holds no role that reads identifying data",
                viewer.principal.actor
            ),
        );
        return Err(refused(&app, &viewer, "POST /chains/{coi}/identity", f).await);
    }
    let purpose = Some(form.purpose.as_str()).filter(|p| !p.is_empty());
    let shown = match app
        .read_personal_data_for(&patient_key, &viewer.principal.actor, purpose, None)
        .await
    {
        Ok(data) => html! {
            section #identity aria-labelledby="identity-h" {
                h2 #identity-h { "Identifying data (read for " (data.purpose) ", recorded)" }
                dl.facts {
                    @for (k, v) in &data.data { dt { (k) } dd { (v) } }
                }
                p.quiet { "This read is in the ledger. The data leaves the page when you leave it." }
            }
        },
        Err(AppError::Invalid(f)) => html! {
            p.banner.critical role="alert" { "Not read: " (f.field) " " (f.value) " " (f.rule) }
        },
        Err(e) => return Err(e.into()),
    };
    let body = render_chain(&app, &viewer, &coi, &AsOfQuery::default(), Some(shown)).await?;
    Ok(page(Some(&viewer), &coi, Nav::Chains, body).into_response())
}

/// The form asking for the patient's identifying data with a purpose.
pub(crate) fn identity_form(viewer: &Viewer, coi: &str) -> Markup {
    html! {
        form.card method="post" action={ "/chains/" (coi) "/identity" } {
            h3 { "Identifying data" }
            (super::page::csrf_field(viewer))
            label for="purpose" { "Purpose of this read (recorded)" }
            select #purpose name="purpose" required {
                option value="" { "choose a purpose" }
                @for (code, meaning) in PURPOSES_OF_USE {
                    option value=(code) { (code) " · " (meaning) }
                }
            }
            p { button type="submit" { "Read identifying data (recorded)" } }
        }
    }
}

/// `GET /chains/{coi}/identity` has nothing to show: back to the chain.
pub(crate) async fn identity_get(Path(coi): Path<String>) -> Redirect {
    Redirect::to(&format!("/chains/{}", url_encode(&coi)))
}
