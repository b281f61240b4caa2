//! The HL7 FHIR R5 endpoint under `/fhir`: reads of a chain's resources (scoped like the
//! chain), of sites and people (reference data), a chain's Bundle, the CapabilityStatement
//! (public), and the import of a treatment center's Patient and Procedure. Every answer is
//! `application/fhir+json`; every refusal, the access checks' included, an OperationOutcome.

use std::collections::HashMap;
use std::sync::Arc;

use autolog_app::interop::fhir::{self as f, ImportError, Issue, PersonalRead};
use autolog_app::{AppError, Autolog, Principal};
use autolog_domain::access::{allowed_somewhere, Permission};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::Value;

use crate::auth;

type AppState = Arc<Autolog>;
type Params = Result<Query<HashMap<String, String>>, QueryRejection>;
type PathParam = Result<Path<String>, PathRejection>;

/// The largest error body the OperationOutcome layer reads (Autolog's error answers are small).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The `/fhir` routes, with their own access check (the same middleware as the rest of
/// the API) wrapped by a layer that turns any Autolog error answer into an OperationOutcome.
pub fn router(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/Bundle/{id}", get(read_bundle))
        .route("/fhir/Patient", post(create_patient))
        .route("/fhir/Patient/{id}", get(read_patient))
        .route("/fhir/Procedure", post(create_procedure))
        .route("/fhir/Procedure/{id}", get(read_procedure))
        .route("/fhir/BiologicallyDerivedProduct/{id}", get(read_product))
        .route(
            "/fhir/BiologicallyDerivedProductDispense/{id}",
            get(read_dispense),
        )
        .route("/fhir/Provenance/{id}", get(read_provenance))
        .route("/fhir/Organization/{id}", get(read_organization))
        .route("/fhir/Location/{id}", get(read_location))
        .route("/fhir/Practitioner/{id}", get(read_practitioner))
        .route_layer(axum::middleware::from_fn_with_state(app, auth::authorize))
        .route_layer(axum::middleware::map_response(as_operation_outcome))
}

/// A FHIR answer.
fn fhir(status: StatusCode, resource: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, f::MEDIA_TYPE)],
        resource.to_string(),
    )
        .into_response()
}

/// A refusal: its HTTP status and issues.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    issues: Vec<Issue>,
}

impl Refusal {
    fn new(
        status: StatusCode,
        code: &'static str,
        expression: &str,
        rule: impl Into<String>,
    ) -> Self {
        Refusal {
            status,
            issues: vec![Issue::error(code, expression, rule)],
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        fhir(self.status, &f::operation_outcome(&self.issues))
    }
}

/// The status and issue code of each kind of refusal.
fn kind(error: &AppError) -> (StatusCode, &'static str) {
    match error {
        AppError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
        AppError::Unmet(_) => (StatusCode::UNPROCESSABLE_ENTITY, "business-rule"),
        AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-costly"),
        AppError::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found"),
        AppError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "login"),
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        AppError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "throttled"),
        AppError::Gone(_) => (StatusCode::GONE, "deleted"),
        AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        AppError::Storage(_) | AppError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "transient"),
        AppError::Config(_) | AppError::Integrity(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "exception")
        }
    }
}

fn described(f: &autolog_domain::FieldError) -> String {
    format!("{} {}: {}", f.field, f.value, f.rule)
}

/// An Autolog error as a refusal; `element` names the FHIR element it is about (an
/// import's). A refused import's rule is a business rule (422) where the native API
/// would say 400.
fn refusal(error: AppError, element: &str) -> Refusal {
    let (mut status, mut code) = kind(&error);
    if !element.is_empty() && matches!(error, AppError::Invalid(_)) {
        (status, code) = (StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
    }
    if status.is_server_error() {
        tracing::error!(error = %error, "FHIR request failed");
    }
    let issues = match &error {
        AppError::Unmet(list) => list
            .iter()
            .map(|f| Issue::error(code, element, described(f)))
            .collect(),
        AppError::Invalid(f)
        | AppError::TooLarge(f)
        | AppError::Forbidden(f)
        | AppError::RateLimited(f)
        | AppError::Gone(f)
        | AppError::Conflict(f) => vec![Issue::error(code, element, described(f))],
        other => vec![Issue::error(code, element, other.to_string())],
    };
    Refusal { status, issues }
}

impl From<AppError> for Refusal {
    fn from(error: AppError) -> Self {
        refusal(error, "")
    }
}

impl From<ImportError> for Refusal {
    fn from(error: ImportError) -> Self {
        match error {
            ImportError::Unprocessable(issues) => Refusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                issues,
            },
            ImportError::Refused { error, element } => refusal(error, element),
        }
    }
}

/// Turns Autolog's JSON error answers (from the access check, or any layer inside) into
/// OperationOutcomes; FHIR answers pass as they are.
async fn as_operation_outcome(response: Response) -> Response {
    let status = response.status();
    let json_error = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || !json_error {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let error = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("error").cloned())
        .unwrap_or(Value::Null);
    let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default();
    let code = match text("code") {
        "unauthenticated" => "login",
        "forbidden" => "forbidden",
        "not_found" => "not-found",
        "conflict" => "conflict",
        "too_large" => "too-costly",
        "rate_limited" => "throttled",
        "gone" => "deleted",
        "conditions_unmet" => "business-rule",
        "storage_unavailable" => "transient",
        "invalid_request" => "invalid",
        _ => "exception",
    };
    let diagnostics = if text("rule").is_empty() {
        text("message").to_string()
    } else {
        format!("{} {}: {}", text("field"), text("value"), text("rule"))
    };
    let outcome = f::operation_outcome(&[Issue::error(code, "", diagnostics)]);
    let mut parts = parts;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(f::MEDIA_TYPE),
    );
    Response::from_parts(parts, Body::from(outcome.to_string()))
}

fn query(params: Params, allowed: &[&str]) -> Result<HashMap<String, String>, Refusal> {
    let params = params.map(|Query(p)| p).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "",
            format!("the query string: {}", e.body_text()),
        )
    })?;
    for (key, value) in &params {
        if !allowed.contains(&key.as_str()) {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "not-supported",
                "",
                format!(
                    "{key}={value} is not a parameter of this interaction; parameters are {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    match params.get("_format").map(String::as_str) {
        None | Some("json" | "application/json" | "application/fhir+json") => Ok(params),
        Some(other) => Err(Refusal::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-supported",
            "",
            format!(
                "_format={other}: Autolog answers FHIR JSON only (json, application/fhir+json)"
            ),
        )),
    }
}

fn path_id(param: PathParam) -> Result<String, Refusal> {
    param.map(|Path(p)| p).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "",
            format!("the id: {}", e.body_text()),
        )
    })
}

/// A chain read's parameters.
const CHAIN_PARAMS: &[&str] = &["valid_at", "known_at", "_format", "_pretty"];
/// A Patient read's parameters (also a Bundle's): `purpose` asks for identifying data.
const PATIENT_PARAMS: &[&str] = &["valid_at", "known_at", "purpose", "_format", "_pretty"];

/// Refuses unless one of the chains is in the principal's scope for `permission` (the
/// first refusal is the answer).
async fn in_scope(
    app: &Autolog,
    principal: &Principal,
    permission: Permission,
    chains: &[String],
) -> Result<(), Refusal> {
    let mut first = None;
    for coi in chains {
        match auth::check_chain(app, principal, permission, coi).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(match first {
        Some(e) => refusal(e.0, ""),
        None => AppError::NotFound {
            what: "chain",
            id: "(none)".into(),
        }
        .into(),
    })
}

/// Whether this read may carry identifying data: a purpose is stated, and the caller may
/// read the patient's identifying data through one of the chains (and the chains it was
/// recorded through). Otherwise the Patient is pseudonymous.
async fn personal_read<'a>(
    app: &Autolog,
    principal: &'a Principal,
    chains: &[String],
    patient_key: &str,
    purpose: Option<&'a String>,
) -> Option<PersonalRead<'a>> {
    let purpose = purpose?;
    if !allowed_somewhere(&principal.grants, Permission::ReadPersonalData) {
        return None;
    }
    in_scope(app, principal, Permission::ReadPersonalData, chains)
        .await
        .ok()?;
    auth::check_personal_data_scope(app, principal, Permission::ReadPersonalData, patient_key)
        .await
        .ok()?;
    Some(PersonalRead {
        actor: &principal.actor,
        purpose: purpose.as_str(),
    })
}

async fn metadata(p: Params) -> Response {
    match query(p, &["_format", "_pretty", "mode"]) {
        Ok(_) => fhir(
            StatusCode::OK,
            &f::capability_statement(env!("CARGO_PKG_VERSION")),
        ),
        Err(r) => r.into_response(),
    }
}

/// A read of a chain's resource (not a Patient): found, scoped, rendered as of the time asked.
async fn chain_read(
    app: &Autolog,
    principal: &Principal,
    resource_type: &str,
    id: PathParam,
    p: Params,
) -> Result<Response, Refusal> {
    let p = query(p, CHAIN_PARAMS)?;
    let id = path_id(id)?;
    let chains = app.fhir_chains_of(resource_type, &id).await?;
    in_scope(app, principal, Permission::ReadChains, &chains).await?;
    let resource = app
        .fhir_read(
            resource_type,
            &id,
            p.get("valid_at").map(String::as_str),
            p.get("known_at").map(String::as_str),
            None,
        )
        .await?;
    Ok(fhir(StatusCode::OK, &resource))
}

macro_rules! chain_reader {
    ($name:ident, $type:literal) => {
        async fn $name(
            State(app): State<AppState>,
            Extension(principal): Extension<Principal>,
            id: PathParam,
            p: Params,
        ) -> Response {
            chain_read(&app, &principal, $type, id, p)
                .await
                .unwrap_or_else(IntoResponse::into_response)
        }
    };
}

chain_reader!(read_product, "BiologicallyDerivedProduct");
chain_reader!(read_dispense, "BiologicallyDerivedProductDispense");
chain_reader!(read_procedure, "Procedure");
chain_reader!(read_provenance, "Provenance");

async fn reference_read(app: &Autolog, resource_type: &str, id: PathParam, p: Params) -> Response {
    let answer = async {
        query(p, &["_format", "_pretty"])?;
        let id = path_id(id)?;
        Ok::<_, Refusal>(app.fhir_reference_read(resource_type, &id).await?)
    };
    match answer.await {
        Ok(resource) => fhir(StatusCode::OK, &resource),
        Err(r) => r.into_response(),
    }
}

async fn read_organization(State(app): State<AppState>, id: PathParam, p: Params) -> Response {
    reference_read(&app, "Organization", id, p).await
}

async fn read_location(State(app): State<AppState>, id: PathParam, p: Params) -> Response {
    reference_read(&app, "Location", id, p).await
}

async fn read_practitioner(State(app): State<AppState>, id: PathParam, p: Params) -> Response {
    reference_read(&app, "Practitioner", id, p).await
}

async fn read_patient(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    id: PathParam,
    p: Params,
) -> Response {
    let answer = async {
        let p = query(p, PATIENT_PARAMS)?;
        let id = path_id(id)?;
        let chains = app.fhir_chains_of("Patient", &id).await?;
        in_scope(&app, &principal, Permission::ReadChains, &chains).await?;
        let key = match f::lookup("Patient", &id) {
            Some(f::Lookup::PatientKey(k)) => k,
            _ => String::new(),
        };
        let personal = personal_read(&app, &principal, &chains, &key, p.get("purpose")).await;
        Ok::<_, Refusal>(app.fhir_read("Patient", &id, None, None, personal).await?)
    };
    match answer.await {
        Ok(resource) => fhir(StatusCode::OK, &resource),
        Err(r) => r.into_response(),
    }
}

async fn read_bundle(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    id: PathParam,
    p: Params,
) -> Response {
    let answer = async {
        let p = query(p, PATIENT_PARAMS)?;
        let id = path_id(id)?;
        let chains = app.fhir_chains_of("Bundle", &id).await?;
        in_scope(&app, &principal, Permission::ReadChains, &chains).await?;
        let key = match chains.first() {
            Some(coi) => app.patient_key_of(coi).await?,
            None => String::new(),
        };
        let personal = personal_read(&app, &principal, &chains, &key, p.get("purpose")).await;
        Ok::<_, Refusal>(
            app.fhir_bundle(
                &id,
                p.get("valid_at").map(String::as_str),
                p.get("known_at").map(String::as_str),
                personal,
            )
            .await?,
        )
    };
    match answer.await {
        Ok(bundle) => fhir(StatusCode::OK, &bundle),
        Err(r) => r.into_response(),
    }
}

/// A created resource's body as JSON: FHIR JSON (or plain JSON), refused with an
/// OperationOutcome when it is neither, too large or malformed.
fn resource_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(f::MEDIA_TYPE);
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != f::MEDIA_TYPE && media != "application/json" {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "",
            format!(
                "Content-Type {content_type}: send {} (or application/json)",
                f::MEDIA_TYPE
            ),
        ));
    }
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(refusal(
                autolog_app::too_large(autolog_app::MAX_REQUEST_BYTES + 1),
                "",
            ))
        }
        Err(rejection) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "structure",
                "",
                rejection.body_text(),
            ))
        }
    };
    serde_json::from_slice(&body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "structure",
            "",
            format!(
                "the body is not well-formed JSON (line {} column {}): {e}",
                e.line(),
                e.column()
            ),
        )
    })
}

fn created(status_new: bool, location: String, resource: &Value) -> Response {
    let status = if status_new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = fhir(status, resource);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn create_patient(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    p: Params,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = async {
        query(p, &["_format", "_pretty"])?;
        let resource = resource_body(&headers, body)?;
        Ok::<_, Refusal>(app.fhir_import_patient(&principal, &resource).await?)
    };
    match answer.await {
        Ok((outcome, new, id)) => created(new, format!("/fhir/Patient/{id}"), &outcome),
        Err(r) => r.into_response(),
    }
}

async fn create_procedure(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    p: Params,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = async {
        query(p, &["_format", "_pretty"])?;
        let resource = resource_body(&headers, body)?;
        Ok::<_, Refusal>(
            app.fhir_import_administration(&principal, &resource)
                .await?,
        )
    };
    match answer.await {
        Ok((procedure, new)) => {
            let id = procedure["id"].as_str().unwrap_or_default();
            created(new, format!("/fhir/Procedure/{id}"), &procedure)
        }
        Err(r) => r.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_of_imports_name_their_element() {
        let r = refusal(
            AppError::Invalid(autolog_domain::FieldError::new("Procedure.used", "x", "no")),
            "Procedure.used",
        );
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.issues[0].expression.as_deref(), Some("Procedure.used"));
        let r = refusal(
            AppError::NotFound {
                what: "chain",
                id: "x".into(),
            },
            "",
        );
        assert_eq!(
            (r.status, r.issues[0].code),
            (StatusCode::NOT_FOUND, "not-found")
        );
        assert_eq!(json!(r.issues[0].expression), Value::Null);
    }
}
