//! The routes of the API, version 1. Each handler parses its inputs, calls one app
//! function and returns JSON; errors go through `ApiError`.

use std::collections::HashMap;
use std::sync::Arc;

use autolog_app::{too_large, AppError, Autolog, MAX_REQUEST_BYTES};
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query};
use axum::http::StatusCode;
use axum::Router;
use serde_json::Value;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::request_id::{drop_unplain_id, request_span, NewRequestId, REQUEST_ID_HEADER};
use crate::ApiError;

const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static(REQUEST_ID_HEADER);

mod access;
mod chain;
mod feeds;
mod labels;
mod ledger;
pub(crate) mod params;
mod projections;
mod reference;
mod witness;

type AppState = Arc<Autolog>;

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

type PathParam = Result<Path<String>, PathRejection>;

/// The query parameters, or a JSON refusal when the query string cannot be read.
fn query(params: Params) -> Result<HashMap<String, String>, ApiError> {
    params
        .map(|Query(p)| p)
        .map_err(|e| FieldError::new("query", "(unreadable)", e.body_text()).into())
}

/// A path parameter, or a JSON refusal when it cannot be read (e.g. bad percent-encoding).
fn path_param(name: &str, param: PathParam) -> Result<String, ApiError> {
    param
        .map(|Path(p)| p)
        .map_err(|e| FieldError::new(name, "(unreadable)", e.body_text()).into())
}

pub fn router(app: Arc<Autolog>, metrics: Arc<crate::metrics::Metrics>) -> Router {
    Router::new()
        .merge(ledger::router())
        .merge(reference::router())
        .merge(chain::router())
        .merge(projections::router())
        .merge(feeds::router())
        .merge(labels::router())
        .merge(witness::router())
        .merge(access::router())
        .merge(crate::epcis::router())
        .fallback(not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::auth::authorize,
        ))
        .merge(crate::fhir::router(app.clone()))
        .merge(crate::console::router())
        // Every route's latency by its matched route and status (metrics.rs).
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::record,
        ))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        // Outermost last: a plain id is kept or a new one made, the request's span named
        // by it, and the id returned in the answer.
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .layer(axum::middleware::from_fn(drop_unplain_id))
        .with_state(app)
}

/// An event request's body, or the refusal of one too large or unreadable.
fn request_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    match body {
        Ok(b) => Ok(b),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(too_large(MAX_REQUEST_BYTES + 1).into())
        }
        Err(rejection) => {
            Err(FieldError::new("request", "(unreadable)", rejection.body_text()).into())
        }
    }
}

/// A JSON body read into `T`: unknown fields refused, a wrong one named with its path.
fn typed_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = request_body(body)?;
    let mut reader = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            "request".to_string()
        } else {
            field
        };
        FieldError::new(field, "(as sent)", e.into_inner().to_string()).into()
    })
}

/// Refuses query parameters the endpoint does not know, naming them.
fn only_params(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    for (key, value) in params {
        if !allowed.contains(&key.as_str()) {
            let rule = if allowed.is_empty() {
                "is not a parameter of this endpoint (it takes none)".to_string()
            } else {
                format!(
                    "is not a parameter of this endpoint; parameters are {}",
                    allowed.join(", ")
                )
            };
            return Err(FieldError::new(key, value, rule).into());
        }
    }
    Ok(())
}

/// A path no route has: JSON under the API's prefixes, the console's page elsewhere.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path();
    let api = ["/api/", "/epcis", "/fhir", "/healthz"]
        .iter()
        .any(|prefix| path.starts_with(prefix));
    if !api {
        return crate::console::not_found_page();
    }
    ApiError(AppError::NotFound {
        what: "route",
        id: "(see /api/openapi.json for the routes)".into(),
    })
    .into_response()
}

/// A small JSON object request with only the given fields, all strings or (where
/// named in `lists`) lists of strings.
fn fields(
    body: Result<Bytes, BytesRejection>,
    allowed: &[&str],
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let body = request_body(body)?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        FieldError::new(
            "request",
            format!("line {} column {}", e.line(), e.column()),
            format!("is not well-formed JSON: {e}"),
        )
    })?;
    let Value::Object(object) = value else {
        return Err(FieldError::new("request", "(not an object)", "must be a JSON object").into());
    };
    for key in object.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(FieldError::new(
                key,
                "(given)",
                format!("is not a field here; fields are {}", allowed.join(", ")),
            )
            .into());
        }
    }
    Ok(object)
}

/// A required string field; secrets are never echoed in the refusal.
fn required<'a>(
    object: &'a serde_json::Map<String, Value>,
    key: &str,
    secret: bool,
) -> Result<&'a str, ApiError> {
    match object.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        None | Some(Value::Null) => Err(FieldError::required(key).into()),
        Some(other) => Err(FieldError::new(
            key,
            if secret {
                "(not shown)".to_string()
            } else {
                autolog_domain::error::show(other)
            },
            "must be a non-empty string",
        )
        .into()),
    }
}
