//! Reference data: crosswalk resolution, registry listings, the alignment report, bulk
//! import and export.

use std::collections::HashMap;

use autolog_app::Principal;
use autolog_app::{AppError, ImportFile, RegistryQuery, MAX_IMPORT_BYTES};
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::params::{query_params, whole, whole_number, QueryOf};
use super::{only_params, path_param, query, AppState, Params, PathParam};
use crate::ApiError;

/// The routes of this area, to be merged into the API router.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reference/resolve", get(resolve))
        .route("/api/v1/reference/alignment", get(alignment))
        .route("/api/v1/reference/export", get(export_reference))
        .route(
            "/api/v1/reference/import",
            post(import_reference).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/api/v1/reference/{registry}", get(list_registry))
}

query_params! {
    /// `GET /api/v1/crosswalks/resolve`: a system's code of a kind (all three required), at
    /// a time and as known at a time.
    ResolveParams {
        system: Option<String>,
        kind: Option<String>,
        code: Option<String>,
        at: Option<String>,
        known_at: Option<String>,
    }
}

async fn resolve(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<ResolveParams>,
) -> Result<Json<Value>, ApiError> {
    let required = |key: &str, value: &Option<String>| -> Result<String, ApiError> {
        value
            .clone()
            .ok_or_else(|| FieldError::required(key).into())
    };
    let (system, kind, code) = (
        required("system", &q.system)?,
        required("kind", &q.kind)?,
        required("code", &q.code)?,
    );
    let canonical = app
        .resolve(
            &system,
            &kind,
            &code,
            q.at.as_deref(),
            q.known_at.as_deref(),
        )
        .await?;
    Ok(Json(
        json!({"system": system, "kind": kind, "code": code, "canonical_id": canonical}),
    ))
}

async fn list_registry(
    State(app): State<AppState>,
    registry: PathParam,
    p: Params,
) -> Result<Json<autolog_app::RegistryPage>, ApiError> {
    let p = query(p)?;
    let mut filters: Vec<(String, String)> = p
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(FILTER_PREFIX)?.to_string(), v.clone())))
        .collect();
    filters.sort();
    let plain: HashMap<String, String> = p
        .iter()
        .filter(|(k, _)| !k.starts_with(FILTER_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    only_params(
        &plain,
        &["valid_at", "known_at", "after", "limit", "filter.<field>"],
    )?;
    let registry = path_param("registry", registry)?;
    let q = RegistryQuery {
        valid_at: p.get("valid_at").cloned(),
        known_at: p.get("known_at").cloned(),
        after: p.get("after").cloned(),
        limit: whole("limit", &p.get("limit").cloned())?,
        filters,
    };
    Ok(Json(app.list_registry(&registry, &q).await?))
}

/// Registry listings take `filter.<field path>=<value>` parameters.
const FILTER_PREFIX: &str = "filter.";

query_params! {
    /// `GET /api/v1/reference/alignment`: what expires within some days.
    AlignmentParams {
        #[serde(default, deserialize_with = "whole_number")]
        horizon_days: Option<u32>,
    }
}

async fn alignment(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<AlignmentParams>,
) -> Result<Json<autolog_app::AlignmentReport>, ApiError> {
    Ok(Json(app.alignment_report(q.horizon_days).await?))
}

query_params! {
    /// `GET /api/v1/reference/export`: JSON (every registry) or CSV (one registry).
    ExportParams {
        format: Option<String>,
        registry: Option<String>,
        known_at: Option<String>,
    }
}

async fn export_reference(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<ExportParams>,
) -> Result<axum::response::Response, ApiError> {
    let known_at = q.known_at.as_deref();
    match q.format.as_deref().unwrap_or("json") {
        "json" => {
            if let Some(r) = &q.registry {
                return Err(FieldError::new(
                    "registry",
                    r,
                    "the JSON export is one document with every registry; registry goes with format=csv",
                )
                .into());
            }
            Ok(Json(app.export_reference(known_at).await?).into_response())
        }
        "csv" => {
            let registry = q.registry.as_deref().ok_or_else(|| {
                FieldError::new(
                    "registry",
                    "(absent)",
                    "is required with format=csv (one registry per file)",
                )
            })?;
            let csv = app.export_reference_csv(registry, known_at).await?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
        }
        other => Err(FieldError::new("format", other, "must be json or csv").into()),
    }
}

query_params! {
    /// `POST /api/v1/reference/import`: one registry (for a list or CSV), a dry run, and
    /// the actor (only the sender).
    ImportParams {
        registry: Option<String>,
        dry_run: Option<String>,
        actor: Option<String>,
    }
}

async fn import_reference(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    QueryOf(q): QueryOf<ImportParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError(AppError::TooLarge(FieldError::new(
                "request",
                format!("more than {MAX_IMPORT_BYTES} bytes"),
                format!("an import body may be at most {MAX_IMPORT_BYTES} bytes; split the import or use autolog reference import"),
            ))))
        }
        Err(rejection) => {
            return Err(FieldError::new("request", "(unreadable)", rejection.body_text()).into())
        }
    };
    let dry_run = match q.dry_run.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(FieldError::new("dry_run", other, "must be true or false").into())
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let name = if content_type.starts_with("text/csv") {
        "request.csv"
    } else if content_type.starts_with("application/json") {
        "request.json"
    } else {
        return Err(FieldError::new(
            "Content-Type",
            content_type,
            "must be application/json (an export document or a list with ?registry=) or text/csv (with ?registry=)",
        )
        .into());
    };
    let file = ImportFile {
        name: name.to_string(),
        content: body.to_vec(),
        registry: q.registry,
    };
    // The import is attributed to who sent it; an `actor` naming anyone else is refused.
    if let Some(given) = &q.actor {
        if *given != principal.actor {
            return Err(ApiError(AppError::Forbidden(FieldError::new(
                "actor",
                given,
                format!(
                    "must be the authenticated sender, {} (or be left out)",
                    principal.actor
                ),
            ))));
        }
    }
    let actor = principal.actor.as_str();
    let report = app
        .import_reference(&[file], actor, dry_run, &|_| {})
        .await?;
    let status = if !report.bad_rows.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else if report.written() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
}
