//! The GS1 EPCIS 2.0 REST binding, mounted under `/epcis`: synchronous capture, the event
//! query with the standard parameters, and the cheap discovery resources. Every answer of
//! these routes carries `GS1-EPCIS-Version` and `GS1-CBV-Version`. Refusals keep Autolog's
//! error shape (`{"error": {"code", "message", "field", "value", "rule"}}`).

use std::collections::HashMap;
use std::sync::Arc;

use autolog_app::{Autolog, Principal, EPCIS_EVENT_TYPES, MAX_EPCIS_BYTES, MAX_EPCIS_EVENTS};
use autolog_domain::FieldError;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::ApiError;

type AppState = Arc<Autolog>;

/// The EPCIS version these routes implement.
pub const EPCIS_VERSION: &str = "2.0.0";
/// The CBV version of the vocabulary and the Event Hash IDs.
pub const CBV_VERSION: &str = "2.0.0";
const JSON_LD: &str = "application/ld+json";

/// The `/epcis` routes (merged into the API's router, behind its authorization).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/epcis", get(top_level).options(discover_top_level))
        .route(
            "/epcis/capture",
            axum::routing::post(capture)
                .options(discover_capture)
                .layer(DefaultBodyLimit::max(MAX_EPCIS_BYTES)),
        )
        .route("/epcis/events", get(events).options(discover_events))
        .route("/epcis/eventTypes", get(event_types))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("gs1-epcis-version"),
            HeaderValue::from_static(EPCIS_VERSION),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("gs1-cbv-version"),
            HeaderValue::from_static(CBV_VERSION),
        ))
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A `204` discovery answer: the methods allowed and the versions supported.
fn discovery(allow: &str, extra: &[(&'static str, String)]) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ALLOW, header_value(allow));
    for (name, value) in [
        ("gs1-epcis-min", EPCIS_VERSION),
        ("gs1-epcis-max", EPCIS_VERSION),
        ("gs1-cbv-min", CBV_VERSION),
        ("gs1-cbv-max", CBV_VERSION),
        ("gs1-epc-format", "Never_Translates"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    for (name, value) in extra {
        headers.insert(HeaderName::from_static(name), header_value(value));
    }
    response
}

async fn discover_top_level() -> Response {
    discovery("OPTIONS, GET", &[])
}

async fn discover_events() -> Response {
    discovery("OPTIONS, GET", &[])
}

async fn discover_capture() -> Response {
    discovery(
        "OPTIONS, POST",
        &[
            ("gs1-epcis-capture-limit", MAX_EPCIS_EVENTS.to_string()),
            (
                "gs1-epcis-capture-file-size-limit",
                MAX_EPCIS_BYTES.to_string(),
            ),
            ("gs1-capture-error-behaviour", "rollback".to_string()),
        ],
    )
}

/// The top-level resources this repository serves.
async fn top_level() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JSON_LD)],
        Json(json!({
            "@context": autolog_app::EPCIS_CONTEXT,
            "type": "Collection",
            "member": ["capture", "events", "eventTypes"],
        })),
    )
}

async fn event_types() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, JSON_LD)],
        Json(json!({
            "@context": autolog_app::EPCIS_CONTEXT,
            "type": "Collection",
            "member": EPCIS_EVENT_TYPES,
        })),
    )
}

/// Checks the capture request's headers: a JSON body, and the `rollback` behaviour (the
/// only one: a document is stored whole or not at all).
fn check_capture_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media != "application/json" && media != JSON_LD {
        return Err(FieldError::new(
            "Content-Type",
            content_type,
            "an EPCIS document is sent as application/json or application/ld+json",
        )
        .into());
    }
    if let Some(v) = headers.get("gs1-capture-error-behaviour") {
        let v = v.to_str().unwrap_or("(unreadable)");
        if v != "rollback" {
            return Err(FieldError::new(
                "GS1-Capture-Error-Behaviour",
                v,
                "only rollback is supported: a document is captured whole or not at all",
            )
            .into());
        }
    }
    if let Some(v) = headers.get("gs1-epcis-version") {
        let v = v.to_str().unwrap_or("(unreadable)");
        if !v.starts_with("2.0") {
            return Err(FieldError::new(
                "GS1-EPCIS-Version",
                v,
                format!("this repository captures EPCIS {EPCIS_VERSION}"),
            )
            .into());
        }
    }
    Ok(())
}

/// Captures one EPCIS document, synchronously: `201` with the capture and each event's
/// hash id (`200` with the first capture when the same document was captured before).
async fn capture(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(autolog_app::epcis_too_large(MAX_EPCIS_BYTES + 1).into())
        }
        Err(rejection) => {
            return Err(FieldError::new("request", "(unreadable)", rejection.body_text()).into())
        }
    };
    check_capture_headers(&headers)?;
    let captured = app.epcis_capture(&principal, &body).await?;
    let status = if captured.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(captured.to_json())).into_response())
}

/// The standard query: an `EPCISQueryDocument`; a `Link` to the next page while there is one.
async fn events(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = params
        .map(|Query(p)| p)
        .map_err(|e| ApiError::from(FieldError::new("query", "(unreadable)", e.body_text())))?;
    let page = app.epcis_query(&principal, &params).await?;
    let mut response = Response::new(Body::from(page.document));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_LD));
    if let Some(token) = &page.next_page_token {
        let mut query: Vec<(String, String)> = params
            .into_iter()
            .filter(|(k, _)| k != "nextPageToken")
            .collect();
        query.sort();
        query.push(("nextPageToken".into(), token.clone()));
        let encoded: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let link = format!("</epcis/events?{}>; rel=\"next\"", encoded.join("&"));
        response
            .headers_mut()
            .insert(header::LINK, header_value(&link));
    }
    Ok(response)
}

/// Percent-encodes a query string component (everything but the unreserved characters).
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
