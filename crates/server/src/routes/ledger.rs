//! The ledger's routes: health, the OpenAPI document, appending and listing events, a
//! stream as of any moment, proofs, checkpoints and the public key.

use autolog_app::Principal;
use autolog_app::WriterHealth;
use autolog_app::{AppError, Autolog, ListQuery};
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::params::{query_params, whole, AsOf, NoParams, QueryOf};
use super::{path_param, request_body, AppState, PathParam};
use crate::{auth, ApiError};

/// The routes of this area, to be merged into the API router.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health))
        .route("/api/openapi.json", get(openapi))
        .route("/api/v1/events", post(append).get(list_events))
        .route("/api/v1/events/{event_id}", get(event))
        .route("/api/v1/streams/{*stream}", get(stream_state))
        .route("/api/v1/proofs/inclusion/{event_id}", get(inclusion))
        .route("/api/v1/proofs/consistency", get(consistency))
        .route("/api/v1/checkpoints/latest", get(latest_checkpoint))
        .route("/api/v1/key", get(public_key))
        .route("/api/v1/audit-trail", get(audit_trail))
}

query_params! {
    /// `GET /api/v1/audit-trail`: of one chain, in a window of recording time, by one
    /// actor, at one site.
    AuditTrailParams {
        coi: Option<String>,
        from: Option<String>,
        to: Option<String>,
        actor: Option<String>,
        site_id: Option<String>,
    }
}

/// Every value changed after first entry, and a chain's reviews (docs/dossier.md).
async fn audit_trail(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<AuditTrailParams>,
) -> Result<Json<autolog_app::audit_trail::AuditTrail>, ApiError> {
    let query = autolog_app::audit_trail::AuditTrailQuery {
        coi: q.coi,
        from: q.from,
        to: q.to,
        actor: q.actor,
        site_id: q.site_id,
    };
    Ok(Json(app.audit_trail(&query).await?))
}

/// Whether the server answers, its store reads and its writer can commit: 200 `ok`, or
/// 503 `failing` while appends cannot commit (a full disk, say), with when that began.
/// A failing writer is probed on each call, so the answer turns back to 200 once space
/// returns even when no append came. The ledger's size and the writer's error are told to
/// signed-in callers only: to anyone else the size would say how fast the network enrols
/// and treats, and the error may name paths.
async fn health(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let head = app.store().head().await.map_err(AppError::from)?;
    let mut writer = app.store().writer_health();
    if !writer.is_writing() {
        writer = app.store().probe_writer().await;
    }
    let signed_in = auth::authenticate(&app, &headers).await.is_ok();
    let (status, mut answer) = match &writer {
        WriterHealth::Writing => (
            StatusCode::OK,
            json!({"status": "ok", "backend": app.backend(), "writer": {"state": "writing"}}),
        ),
        WriterHealth::Failing { since, error } => {
            let mut writer = json!({"state": "failing", "since": since.to_string()});
            if signed_in {
                writer["error"] = json!(error);
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "failing", "backend": app.backend(), "writer": writer}),
            )
        }
    };
    if signed_in {
        answer["tree_size"] = json!(head.position);
    }
    Ok((status, Json(answer)))
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
}

async fn append(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = request_body(body)?;
    let result = app.append_json_as(&principal, &body).await?;
    let status = if result.appended() > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(result)))
}

query_params! {
    /// `GET /api/v1/events`: one stream or the whole ledger, as of a time, a page.
    ListParams {
        stream: Option<String>,
        valid_at: Option<String>,
        known_at: Option<String>,
        // Read after the stream's scope is checked: a caller out of scope learns nothing.
        after_position: Option<String>,
        limit: Option<String>,
    }
}

async fn list_events(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryOf(q): QueryOf<ListParams>,
) -> Result<Json<autolog_app::EventPage>, ApiError> {
    let scope = q.stream.as_deref().unwrap_or("(the whole ledger)");
    auth::check_stream(&app, &principal, scope).await?;
    let query = ListQuery {
        stream: q.stream,
        valid_at: q.valid_at,
        known_at: q.known_at,
        after_position: whole("after_position", &q.after_position)?,
        limit: whole("limit", &q.limit)?,
    };
    Ok(Json(app.list_events(&query).await?))
}

async fn event(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    id: PathParam,
    _q: QueryOf<NoParams>,
) -> Result<Json<autolog_app::PresentedEvent>, ApiError> {
    let id = path_param("event_id", id)?;
    let event = readable_event(&app, &principal, &id).await?;
    Ok(Json(event))
}

/// An event the caller may read; one outside its scope is answered as one that does not
/// exist (404), so that an out-of-scope caller learns nothing of it, not even that it is.
async fn readable_event(
    app: &Autolog,
    principal: &Principal,
    id: &str,
) -> Result<autolog_app::PresentedEvent, ApiError> {
    let event = app.event(id).await?;
    let stream = event.event["stream"].as_str().unwrap_or("");
    if auth::check_stream(app, principal, stream).await.is_err() {
        return Err(ApiError(AppError::NotFound {
            what: "event",
            id: id.to_string(),
        }));
    }
    Ok(event)
}

async fn stream_state(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    stream: PathParam,
    QueryOf(q): QueryOf<AsOf>,
) -> Result<Json<autolog_domain::catalogue::StreamState>, ApiError> {
    let stream = path_param("stream", stream)?;
    auth::check_stream(&app, &principal, &stream).await?;
    let state = app
        .stream_state(&stream, q.valid_at.as_deref(), q.known_at.as_deref())
        .await?;
    Ok(Json(state))
}

async fn inclusion(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    id: PathParam,
    QueryOf(q): QueryOf<InclusionParams>,
) -> Result<Json<autolog_app::InclusionProof>, ApiError> {
    let id = path_param("event_id", id)?;
    readable_event(&app, &principal, &id).await?;
    let proof = app
        .inclusion_proof(&id, whole("tree_size", &q.tree_size)?)
        .await?;
    Ok(Json(proof))
}

query_params! {
    /// `GET /api/v1/proofs/inclusion/{event_id}`: against a tree of this size (default: now).
    InclusionParams {
        // Read once the event is known to be readable.
        tree_size: Option<String>,
    }
}

query_params! {
    /// `GET /api/v1/proofs/consistency`: between two tree sizes (both required).
    ConsistencyParams {
        from: Option<String>,
        to: Option<String>,
    }
}

async fn consistency(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<ConsistencyParams>,
) -> Result<Json<autolog_app::ConsistencyProof>, ApiError> {
    // Each read in turn, as documented: from, then to.
    let required = |key: &str, value: &Option<String>| -> Result<u64, ApiError> {
        whole::<u64>(key, value)?.ok_or_else(|| FieldError::required(key).into())
    };
    let from = required("from", &q.from)?;
    let proof = app.consistency_proof(from, required("to", &q.to)?).await?;
    Ok(Json(proof))
}

async fn latest_checkpoint(
    State(app): State<AppState>,
    _q: QueryOf<NoParams>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.latest_checkpoint().await?.to_json()))
}

async fn public_key(State(app): State<AppState>) -> Json<Value> {
    let (public_key, key_id) = app.public_key();
    Json(json!({"algorithm": "Ed25519", "public_key": public_key, "key_id": key_id}))
}
