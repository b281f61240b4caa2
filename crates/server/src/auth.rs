//! Authentication and authorization of every request, in one place: who is asking (API
//! token or console session + CSRF), and what each route needs (permission, site scope).

use std::sync::Arc;

use autolog_app::{AppError, Autolog, Principal};
use autolog_domain::access::{
    allowed_at, allowed_everywhere, allowed_somewhere, chain_in_scope, Permission,
};
use autolog_domain::FieldError;
use std::collections::HashMap;

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::RequestExt;

use crate::ApiError;

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "autolog_session";
/// The header a console request carries its CSRF token in (unsafe methods).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a route needs of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the API description, the public key, sign-in).
    Public,
    /// Any authenticated person or system.
    SignedIn,
    /// The permission at some site (the handler narrows further where needed).
    Somewhere(Permission),
    /// The permission network-wide (a grant at `*`).
    Everywhere(Permission),
    /// The permission for the chain named by the route's `{coi}`.
    Chain(Permission),
    /// The permission at the site named by the route's `{site_id}`.
    Site(Permission),
}

use Access::*;
use Permission::*;

/// Every route and what it needs. A route missing here is refused (a test checks that
/// every route of the router is listed).
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/api/openapi.json", Public),
    ("GET", "/api/v1/key", Public),
    // A witness of other ledgers: what it takes must be signed by a key it witnesses.
    ("POST", "/api/v1/witness/checkpoints", Public),
    ("GET", "/api/v1/witness/checkpoints/latest", Public),
    // GS1 EPCIS 2.0 (crates/server/src/epcis.rs): captured events are shown to their sender
    // and to network-wide ledger readers, chain events to those whose scope holds the chain.
    ("GET", "/epcis", SignedIn),
    ("OPTIONS", "/epcis", SignedIn),
    ("POST", "/epcis/capture", Somewhere(Record)),
    ("OPTIONS", "/epcis/capture", SignedIn),
    ("GET", "/epcis/events", SignedIn),
    ("OPTIONS", "/epcis/events", SignedIn),
    ("GET", "/epcis/eventTypes", SignedIn),
    ("POST", "/api/v1/session", Public),
    ("GET", "/api/v1/session", SignedIn),
    ("DELETE", "/api/v1/session", SignedIn),
    ("POST", "/api/v1/events", Somewhere(Record)),
    ("GET", "/api/v1/events", SignedIn),
    ("GET", "/api/v1/events/{event_id}", SignedIn),
    ("GET", "/api/v1/streams/{*stream}", SignedIn),
    (
        "GET",
        "/api/v1/proofs/inclusion/{event_id}",
        Somewhere(ReadChains),
    ),
    ("GET", "/api/v1/proofs/consistency", Somewhere(ReadChains)),
    ("GET", "/api/v1/checkpoints/latest", Somewhere(ReadChains)),
    ("GET", "/api/v1/reference/resolve", Somewhere(ReadReference)),
    (
        "GET",
        "/api/v1/reference/alignment",
        Somewhere(ReadReference),
    ),
    ("GET", "/api/v1/reference/export", Somewhere(ReadReference)),
    (
        "POST",
        "/api/v1/reference/import",
        Everywhere(ImportReference),
    ),
    (
        "GET",
        "/api/v1/reference/{registry}",
        Somewhere(ReadReference),
    ),
    ("POST", "/api/v1/chains", Somewhere(Record)),
    // The listing narrows itself to the chains in the caller's scope.
    ("GET", "/api/v1/chains", Somewhere(ReadChains)),
    // So does a site's work (among the chains in scope).
    ("GET", "/api/v1/sites/{site_id}/work", Site(ReadChains)),
    ("GET", "/api/v1/chains/{coi}", Chain(ReadChains)),
    ("GET", "/api/v1/chains/{coi}/dossier", Chain(ReadChains)),
    // The audit trail across the network: the audit view.
    ("GET", "/api/v1/audit-trail", Everywhere(ReadLedger)),
    // Labels: printed and voided by those who record on the chain, read by its readers;
    // a verification names its chain in the body (the app checks scope and role).
    ("POST", "/api/v1/chains/{coi}/labels", Chain(Record)),
    ("GET", "/api/v1/chains/{coi}/labels", Chain(ReadChains)),
    (
        "GET",
        "/api/v1/chains/{coi}/labels/{container}",
        Chain(ReadChains),
    ),
    (
        "POST",
        "/api/v1/chains/{coi}/labels/{container}/void",
        Chain(Record),
    ),
    ("POST", "/api/v1/labels/verify", Somewhere(Record)),
    (
        "GET",
        "/api/v1/chains/{coi}/personal-data",
        Chain(ReadPersonalData),
    ),
    (
        "POST",
        "/api/v1/chains/{coi}/personal-data",
        Chain(RecordPersonalData),
    ),
    (
        "POST",
        "/api/v1/chains/{coi}/personal-data/erase",
        Chain(ErasePersonalData),
    ),
    ("GET", "/api/v1/reconciliation", Everywhere(ReadReports)),
    ("GET", "/api/v1/turnaround", Everywhere(ReadReports)),
    ("GET", "/api/v1/signals", Everywhere(ReadReports)),
    ("GET", "/api/v1/retention", Everywhere(ReadReports)),
    (
        "GET",
        "/api/v1/genealogy/backward/{unit}",
        Somewhere(ReadChains),
    ),
    (
        "GET",
        "/api/v1/genealogy/forward/{*lot}",
        Everywhere(ReadChains),
    ),
    ("GET", "/api/v1/alerts", Somewhere(ReadAlerts)),
    ("GET", "/api/v1/alerts/stream", Somewhere(ReadAlerts)),
    ("GET", "/api/v1/alerts/{alert_id}", Somewhere(ReadAlerts)),
    (
        "POST",
        "/api/v1/alerts/{alert_id}/acknowledge",
        Somewhere(HandleAlerts),
    ),
    (
        "POST",
        "/api/v1/alerts/{alert_id}/resolve",
        Somewhere(HandleAlerts),
    ),
    ("POST", "/api/v1/webhooks", Everywhere(ManageWebhooks)),
    ("GET", "/api/v1/webhooks", Everywhere(ManageWebhooks)),
    (
        "GET",
        "/api/v1/webhooks/{webhook_id}",
        Everywhere(ManageWebhooks),
    ),
    (
        "POST",
        "/api/v1/webhooks/{webhook_id}/deactivate",
        Everywhere(ManageWebhooks),
    ),
    ("GET", "/api/v1/users", Everywhere(ManageAccess)),
    ("POST", "/api/v1/users", Everywhere(ManageAccess)),
    ("GET", "/api/v1/users/{person_id}", Everywhere(ManageAccess)),
    (
        "POST",
        "/api/v1/users/{person_id}/grants",
        Everywhere(ManageAccess),
    ),
    (
        "POST",
        "/api/v1/users/{person_id}/grants/revoke",
        Everywhere(ManageAccess),
    ),
    (
        "POST",
        "/api/v1/users/{person_id}/unlock",
        Everywhere(ManageAccess),
    ),
    (
        "POST",
        "/api/v1/users/{person_id}/second-factor",
        Everywhere(ManageAccess),
    ),
    ("GET", "/api/v1/tokens", Everywhere(ManageAccess)),
    ("POST", "/api/v1/tokens", Everywhere(ManageAccess)),
    (
        "POST",
        "/api/v1/tokens/{token_id}/revoke",
        Everywhere(ManageAccess),
    ),
    // HL7 FHIR R5 (crates/server/src/fhir.rs): a chain's resources are read by those whose
    // scope holds the chain (checked by the handler once the id names it); imports go the
    // native API's way (the vault's scope, append_json_as).
    ("GET", "/fhir/metadata", Public),
    ("GET", "/fhir/Bundle/{id}", Somewhere(ReadChains)),
    ("GET", "/fhir/Patient/{id}", Somewhere(ReadChains)),
    ("POST", "/fhir/Patient", Somewhere(RecordPersonalData)),
    ("GET", "/fhir/Procedure/{id}", Somewhere(ReadChains)),
    ("POST", "/fhir/Procedure", Somewhere(Record)),
    (
        "GET",
        "/fhir/BiologicallyDerivedProduct/{id}",
        Somewhere(ReadChains),
    ),
    (
        "GET",
        "/fhir/BiologicallyDerivedProductDispense/{id}",
        Somewhere(ReadChains),
    ),
    ("GET", "/fhir/Provenance/{id}", Somewhere(ReadChains)),
    ("GET", "/fhir/Organization/{id}", Somewhere(ReadReference)),
    ("GET", "/fhir/Location/{id}", Somewhere(ReadReference)),
    ("GET", "/fhir/Practitioner/{id}", Somewhere(ReadReference)),
];

/// What a route needs, by method and matched path (HEAD as GET, which answers it).
pub fn access_of(method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, a)| *a)
}

/// A method the route does not have: 405 with `Allow` listing the methods it has (from
/// the access table, so a method without an access rule is never run), before any
/// authentication. `None` when the method has a rule, or the route has no rule at all
/// (then `check` refuses it: fail closed).
fn method_not_allowed(request: &Request) -> Option<Response> {
    let path = request.extensions().get::<MatchedPath>()?.as_str();
    let method = request.method();
    if access_of(method, path).is_some() {
        return None;
    }
    let mut allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|(_, p, _)| *p == path)
        .map(|(m, _, _)| *m)
        .collect();
    if allowed.is_empty() {
        return None;
    }
    if allowed.contains(&"GET") {
        allowed.push("HEAD");
    }
    allowed.sort_unstable();
    allowed.dedup();
    let allow = allowed.join(", ");
    let body = serde_json::json!({"error": {
        "code": "method_not_allowed",
        "message": format!("{path} does not take {method}; it takes {allow}"),
        "field": "method",
        "value": method.as_str(),
        "rule": format!("must be one of {allow}"),
    }});
    Some(
        (
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, allow)],
            axum::Json(body),
        )
            .into_response(),
    )
}

fn forbidden(field: &str, value: &str, rule: String) -> ApiError {
    ApiError(AppError::Forbidden(FieldError::new(field, value, rule)))
}

/// The cookie's value in a `Cookie` header, if sent.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The token of an `Authorization: Bearer <token>` header; the scheme's name is
/// case-insensitive (RFC 9110 section 11.1).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Who is asking: a bearer token (source systems) or a session cookie (people).
pub async fn authenticate(app: &Autolog, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Some(token) = bearer_token(value.to_str().unwrap_or("")) else {
            return Err(ApiError(AppError::Unauthenticated(
                "the Authorization header must be `Bearer <API token>`".into(),
            )));
        };
        return Ok(app.authenticate_token(token).await?);
    }
    if let Some(session) = cookie(headers, SESSION_COOKIE) {
        return Ok(app.authenticate_session(&session).await?);
    }
    Err(ApiError(AppError::Unauthenticated(
        "sign in (POST /api/v1/session) or send `Authorization: Bearer <API token>`".into(),
    )))
}

/// The middleware: finds what the route needs, authenticates, checks the CSRF token of a
/// console request that changes something, checks the permission and, for a chain's
/// route, that the chain is in the caller's scope. The principal goes to the handler.
pub async fn authorize(
    State(app): State<Arc<Autolog>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(refusal) = method_not_allowed(&request) {
        return refusal;
    }
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    let target = refusal_target(&mut request).await;
    let mut actor = None;
    let (response, recorded) = match check(&app, &mut request, &mut actor).await {
        Ok(()) => autolog_app::tracking_refusals(next.run(request)).await,
        Err(e) => (e.into_response(), false),
    };
    // A refusal for scope or role by a signed-in sender goes to the sender's own access
    // audit, unless the app recorded it already (a refused write knows its event type).
    if let (Some(actor), Some(refusal), false) =
        (actor, response.extensions().get::<FieldError>(), recorded)
    {
        app.record_refused_request(&actor, read, &target, refusal)
            .await;
    }
    response
}

/// What a refused request aimed at, as the access audit keeps it: the method, the route's
/// pattern (never the path as sent, which may carry any text) and the chain when the route
/// names one that parses as a COI.
async fn refusal_target(request: &mut Request) -> String {
    let method = request.method().clone();
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        return format!("{method} (no route)");
    };
    let coi = request
        .extract_parts::<Path<HashMap<String, String>>>()
        .await
        .ok()
        .and_then(|Path(params)| params.get("coi").cloned())
        .filter(|coi| autolog_domain::identifiers::Coi::parse("coi", coi).is_ok());
    match coi {
        Some(coi) => format!("{method} {route} coi/{coi}"),
        None => format!("{method} {route}"),
    }
}

async fn check(
    app: &Autolog,
    request: &mut Request,
    actor: &mut Option<String>,
) -> Result<(), ApiError> {
    let method = request.method().clone();
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
    else {
        // No route matched: the fallback answers 404.
        return Ok(());
    };
    let Some(access) = access_of(&method, &path) else {
        // Fail closed: a method and route with no access rule is refused.
        return Err(ApiError(AppError::Forbidden(FieldError::new(
            "method",
            method.as_str(),
            format!("{path} has no access rule for this method"),
        ))));
    };
    if access == Public {
        return Ok(());
    }
    let principal = authenticate(app, request.headers()).await?;
    *actor = Some(principal.actor.clone());
    let unsafe_method = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && principal.person_id().is_some() {
        let csrf = request
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !principal.csrf_matches(csrf) {
            return Err(forbidden(
                "X-CSRF-Token",
                if csrf.is_empty() {
                    "(absent)"
                } else {
                    "(wrong)"
                },
                "a console request that changes something must carry the session's CSRF token"
                    .into(),
            ));
        }
    }
    match access {
        Public | SignedIn => {}
        Somewhere(permission) => {
            if !allowed_somewhere(&principal.grants, permission) {
                return Err(refused(&principal, permission, "at any site"));
            }
        }
        Everywhere(permission) => {
            if !allowed_everywhere(&principal.grants, permission) {
                return Err(refused(
                    &principal,
                    permission,
                    "network-wide (a grant at *)",
                ));
            }
        }
        Chain(permission) => {
            // The route's `{coi}` as the handler will see it (percent-decoded).
            let coi = request
                .extract_parts::<Path<HashMap<String, String>>>()
                .await
                .ok()
                .and_then(|Path(params)| params.get("coi").cloned())
                .unwrap_or_default();
            check_chain(app, &principal, permission, &coi).await?;
        }
        Site(permission) => {
            let site = request
                .extract_parts::<Path<HashMap<String, String>>>()
                .await
                .ok()
                .and_then(|Path(params)| params.get("site_id").cloned())
                .unwrap_or_default();
            if !allowed_at(&principal.grants, permission, &site) {
                return Err(refused(&principal, permission, &format!("at site {site}")));
            }
        }
    }
    request.extensions_mut().insert(principal);
    Ok(())
}

fn refused(principal: &Principal, permission: Permission, where_: &str) -> ApiError {
    forbidden(
        "permission",
        &format!("{permission:?}"),
        format!(
            "{} holds no role with this permission {where_}",
            principal.actor
        ),
    )
}

/// Whether the chain is in the principal's scope for `permission`; an unknown chain
/// passes here and the handler answers 404.
pub async fn check_chain(
    app: &Autolog,
    principal: &Principal,
    permission: Permission,
    coi: &str,
) -> Result<(), ApiError> {
    if !allowed_somewhere(&principal.grants, permission) {
        return Err(refused(principal, permission, "at any site"));
    }
    let canonical = autolog_domain::identifiers::Coi::parse("coi", coi)
        .map(|c| c.to_string())
        .unwrap_or_else(|_| coi.to_string());
    if let Some(sites) = app.chain_sites(&canonical).await? {
        if !chain_in_scope(&principal.grants, permission, &sites) {
            return Err(forbidden(
                "coi",
                coi,
                format!(
                    "is not in the scope of {}'s sites for {permission:?}",
                    principal.actor
                ),
            ));
        }
    }
    Ok(())
}

/// A patient's identifying data is bound to the chains it was recorded through: a
/// sender needs one of them in scope (a chain enrolled elsewhere with the same patient
/// key does not open it).
pub async fn check_personal_data_scope(
    app: &Autolog,
    principal: &Principal,
    permission: Permission,
    patient_key: &str,
) -> Result<(), ApiError> {
    let through = app.personal_data_chains(patient_key).await?;
    if through.is_empty() {
        return Ok(());
    }
    for coi in &through {
        if let Some(sites) = app.chain_sites(coi).await? {
            if chain_in_scope(&principal.grants, permission, &sites) {
                return Ok(());
            }
        }
    }
    Err(forbidden(
        "patient_key",
        patient_key,
        format!(
            "this patient's identifying data was recorded through chains outside the scope of {}",
            principal.actor
        ),
    ))
}

/// Whether a stream's records are readable: a chain's by its scope, reference data by
/// any reader of reference data, anything else (access audit, links, alerts) by a
/// network-wide ledger reader.
pub async fn check_stream(
    app: &Autolog,
    principal: &Principal,
    stream: &str,
) -> Result<(), ApiError> {
    if let Some(coi) = stream.strip_prefix("coi/") {
        return check_chain(app, principal, ReadChains, coi).await;
    }
    // Registries (sites, personnel, equipment, ...) and crosswalks: reference data. The
    // links (DINs, units, batches), alerts and the personal-data audit (`patient/`) are
    // read through their chains, or in the ledger view by a network-wide reader.
    let reference = autolog_domain::rules::REGISTRY_STREAMS
        .iter()
        .filter(|(prefix, _)| !matches!(*prefix, "coi/" | "din/" | "alert/" | "batch/" | "unit/"))
        .any(|(prefix, _)| stream.starts_with(prefix))
        || stream.starts_with("crosswalk/");
    if reference && allowed_somewhere(&principal.grants, ReadReference) {
        return Ok(());
    }
    if allowed_everywhere(&principal.grants, ReadLedger) {
        return Ok(());
    }
    Err(forbidden(
        "stream",
        stream,
        format!("is not readable by {}", principal.actor),
    ))
}

/// Whether an alert (as the API shows it) is visible: by its chain's scope, else by
/// its site, else network-wide.
pub async fn alert_visible(
    app: &Autolog,
    principal: &Principal,
    permission: Permission,
    alert: &autolog_app::Alert,
) -> Result<bool, ApiError> {
    if allowed_everywhere(&principal.grants, permission) {
        return Ok(true);
    }
    if let Some(coi) = &alert.raised.coi {
        if let Some(sites) = app.chain_sites(coi).await? {
            return Ok(chain_in_scope(&principal.grants, permission, &sites));
        }
    }
    if let Some(site) = &alert.raised.site_id {
        return Ok(allowed_at(&principal.grants, permission, site));
    }
    Ok(false)
}

#[cfg(test)]
mod bearer_tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer alt_1"), Some("alt_1"));
        assert_eq!(bearer_token("bearer alt_1"), Some("alt_1"));
        assert_eq!(bearer_token("BEARER  alt_1 "), Some("alt_1"));
        assert_eq!(bearer_token("Basic dXNlcg=="), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer  "), None);
    }
}
