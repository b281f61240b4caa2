//! The routes of the API, version 1. Each handler parses its inputs, calls one app
//! function and returns JSON; errors go through `ApiError`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use autolog_app::{
    too_large, AlertQuery, AppError, Autolog, ImportFile, ListQuery, RegistryQuery,
    MAX_IMPORT_BYTES, MAX_REQUEST_BYTES,
};
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_http::trace::TraceLayer;

use crate::{auth, ApiError, OPENAPI_JSON};
use autolog_app::Principal;
use autolog_domain::access::Permission;
use axum::Extension;

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

pub fn router(app: Arc<Autolog>) -> Router {
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
        .route("/api/v1/reference/resolve", get(resolve))
        .route("/api/v1/chains", post(enrol))
        .route("/api/v1/chains/{coi}", get(chain))
        .route("/api/v1/reconciliation", get(reconciliation))
        .route("/api/v1/turnaround", get(turnaround))
        .route("/api/v1/retention", get(retention))
        .route("/api/v1/genealogy/backward/{unit}", get(genealogy_backward))
        .route("/api/v1/genealogy/forward/{*lot}", get(genealogy_forward))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/stream", get(alert_stream))
        .route("/api/v1/alerts/{alert_id}", get(alert))
        .route(
            "/api/v1/alerts/{alert_id}/acknowledge",
            post(acknowledge_alert),
        )
        .route("/api/v1/alerts/{alert_id}/resolve", post(resolve_alert))
        .route("/api/v1/webhooks", post(register_webhook).get(webhooks))
        .route("/api/v1/webhooks/{webhook_id}", get(webhook))
        .route(
            "/api/v1/webhooks/{webhook_id}/deactivate",
            post(deactivate_webhook),
        )
        .route("/api/v1/reference/alignment", get(alignment))
        .route("/api/v1/reference/export", get(export_reference))
        .route(
            "/api/v1/reference/import",
            post(import_reference).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/api/v1/reference/{registry}", get(list_registry))
        .route(
            "/api/v1/session",
            post(sign_in).get(whoami).delete(sign_out),
        )
        .route("/api/v1/users", get(users).post(create_user))
        .route("/api/v1/users/{person_id}", get(user))
        .route("/api/v1/users/{person_id}/grants", post(grant_role))
        .route("/api/v1/users/{person_id}/grants/revoke", post(revoke_role))
        .route("/api/v1/users/{person_id}/unlock", post(unlock_user))
        .route(
            "/api/v1/users/{person_id}/second-factor",
            post(reset_second_factor),
        )
        .route("/api/v1/tokens", get(tokens).post(issue_token))
        .route("/api/v1/tokens/{token_id}/revoke", post(revoke_token))
        .route(
            "/api/v1/chains/{coi}/personal-data",
            get(read_personal_data).post(record_personal_data),
        )
        .route(
            "/api/v1/chains/{coi}/personal-data/erase",
            post(erase_personal_data),
        )
        .merge(crate::epcis::router())
        .fallback(not_found)
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::auth::authorize,
        ))
        .merge(crate::fhir::router(app.clone()))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(TraceLayer::new_for_http())
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

fn number<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    params
        .get(key)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| FieldError::new(key, v, "must be a non-negative whole number").into())
        })
        .transpose()
}

async fn health(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let head = app.store().head().await.map_err(AppError::from)?;
    Ok(Json(json!({
        "status": "ok",
        "backend": app.backend(),
        "tree_size": head.position,
    })))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

async fn not_found() -> ApiError {
    ApiError(AppError::NotFound {
        what: "route",
        id: "(see /api/openapi.json for the routes)".into(),
    })
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
    Ok((status, Json(result.to_json())))
}

async fn list_events(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(
        &p,
        &["stream", "valid_at", "known_at", "after_position", "limit"],
    )?;
    match p.get("stream") {
        Some(stream) => auth::check_stream(&app, &principal, stream).await?,
        None => auth::check_stream(&app, &principal, "(the whole ledger)").await?,
    }
    let query = ListQuery {
        stream: p.get("stream").cloned(),
        valid_at: p.get("valid_at").cloned(),
        known_at: p.get("known_at").cloned(),
        after_position: number(&p, "after_position")?,
        limit: number(&p, "limit")?,
    };
    Ok(Json(app.list_events(&query).await?))
}

async fn event(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    id: PathParam,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &[])?;
    let id = path_param("event_id", id)?;
    let event = app.event(&id).await?;
    let stream = event["stream"].as_str().unwrap_or("");
    auth::check_stream(&app, &principal, stream).await?;
    Ok(Json(event))
}

async fn stream_state(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    stream: PathParam,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["valid_at", "known_at"])?;
    let stream = path_param("stream", stream)?;
    auth::check_stream(&app, &principal, &stream).await?;
    let state = app
        .stream_state(
            &stream,
            p.get("valid_at").map(String::as_str),
            p.get("known_at").map(String::as_str),
        )
        .await?;
    Ok(Json(state.to_json()))
}

async fn inclusion(
    State(app): State<AppState>,
    id: PathParam,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["tree_size"])?;
    let id = path_param("event_id", id)?;
    let proof = app.inclusion_proof(&id, number(&p, "tree_size")?).await?;
    Ok(Json(proof.to_json()))
}

async fn consistency(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["from", "to"])?;
    let required = |key: &str| -> Result<u64, ApiError> {
        number::<u64>(&p, key)?
            .ok_or_else(|| FieldError::new(key, "(absent)", "is required").into())
    };
    let proof = app
        .consistency_proof(required("from")?, required("to")?)
        .await?;
    Ok(Json(proof.to_json()))
}

async fn latest_checkpoint(
    State(app): State<AppState>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &[])?;
    Ok(Json(app.latest_checkpoint().await?.to_json()))
}

async fn public_key(State(app): State<AppState>) -> Json<Value> {
    let (public_key, key_id) = app.public_key();
    Json(json!({"algorithm": "Ed25519", "public_key": public_key, "key_id": key_id}))
}

async fn resolve(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["system", "kind", "code", "at", "known_at"])?;
    let required = |key: &str| -> Result<&String, ApiError> {
        p.get(key)
            .ok_or_else(|| FieldError::new(key, "(absent)", "is required").into())
    };
    let (system, kind, code) = (required("system")?, required("kind")?, required("code")?);
    let canonical = app
        .resolve(
            system,
            kind,
            code,
            p.get("at").map(String::as_str),
            p.get("known_at").map(String::as_str),
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
) -> Result<Json<Value>, ApiError> {
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
        limit: number(&p, "limit")?,
        filters,
    };
    Ok(Json(app.list_registry(&registry, &q).await?))
}

async fn enrol(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = request_body(body)?;
    let (coi, result) = app.enrol_as(&principal, &body).await?;
    let status = if result.appended() > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut answer = result.to_json();
    answer["coi"] = json!(coi);
    Ok((status, Json(answer)))
}

async fn chain(
    State(app): State<AppState>,
    coi: PathParam,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["valid_at", "known_at"])?;
    let coi = path_param("coi", coi)?;
    let chain = app
        .chain(
            &coi,
            p.get("valid_at").map(String::as_str),
            p.get("known_at").map(String::as_str),
        )
        .await?;
    Ok(Json(chain))
}

async fn reconciliation(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    only_params(&query(p)?, &[])?;
    Ok(Json(app.reconciliation().await?))
}

async fn retention(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["as_of", "within_days"])?;
    Ok(Json(
        app.retention_report(
            p.get("as_of").map(String::as_str),
            number(&p, "within_days")?,
        )
        .await?,
    ))
}

async fn turnaround(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["product_code", "valid_at", "known_at"])?;
    Ok(Json(
        app.turnaround(
            p.get("product_code").map(String::as_str),
            p.get("valid_at").map(String::as_str),
            p.get("known_at").map(String::as_str),
        )
        .await?,
    ))
}

async fn genealogy_backward(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    unit: PathParam,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["valid_at", "known_at"])?;
    let unit = path_param("unit", unit)?;
    let found = app
        .genealogy_backward(
            &unit,
            p.get("valid_at").map(String::as_str),
            p.get("known_at").map(String::as_str),
        )
        .await?;
    let coi = found["coi"].as_str().unwrap_or("");
    auth::check_chain(&app, &principal, Permission::ReadChains, coi).await?;
    Ok(Json(found))
}

async fn genealogy_forward(
    State(app): State<AppState>,
    lot: PathParam,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["valid_at", "known_at"])?;
    let lot = path_param("lot", lot)?;
    Ok(Json(
        app.genealogy_forward(
            &lot,
            p.get("valid_at").map(String::as_str),
            p.get("known_at").map(String::as_str),
        )
        .await?,
    ))
}

async fn alerts(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["status", "coi", "site_id"])?;
    let all = app
        .alerts(&AlertQuery {
            status: p.get("status").cloned(),
            coi: p.get("coi").cloned(),
            site_id: p.get("site_id").cloned(),
        })
        .await?;
    let mut list = Vec::new();
    for alert in all {
        if auth::alert_visible(&app, &principal, Permission::ReadAlerts, &alert).await? {
            list.push(alert);
        }
    }
    Ok(Json(json!({ "count": list.len(), "alerts": list })))
}

async fn alert(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    alert_id: PathParam,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    only_params(&query(p)?, &[])?;
    let alert_id = path_param("alert_id", alert_id)?;
    let alert = app.alert(&alert_id).await?;
    if !auth::alert_visible(&app, &principal, Permission::ReadAlerts, &alert).await? {
        return Err(alert_out_of_scope(&principal, &alert_id));
    }
    Ok(Json(alert))
}

fn alert_out_of_scope(principal: &Principal, alert_id: &str) -> ApiError {
    ApiError(AppError::Forbidden(FieldError::new(
        "alert_id",
        alert_id,
        format!("is not in the scope of {}'s sites", principal.actor),
    )))
}

async fn handle_alert(
    app: &Autolog,
    principal: &Principal,
    alert_id: PathParam,
    body: Result<Bytes, BytesRejection>,
    resolve: bool,
) -> Result<Json<Value>, ApiError> {
    let alert_id = path_param("alert_id", alert_id)?;
    let body = request_body(body)?;
    let alert = app.alert(&alert_id).await?;
    if !auth::alert_visible(app, principal, Permission::HandleAlerts, &alert).await? {
        return Err(alert_out_of_scope(principal, &alert_id));
    }
    let body = autolog_app::attribute_person(principal, &body, "person_id")?;
    Ok(Json(
        app.handle_alert_as(&alert_id, resolve, &body, Some(&principal.actor))
            .await?,
    ))
}

async fn acknowledge_alert(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    alert_id: PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    handle_alert(&app, &principal, alert_id, body, false).await
}

async fn resolve_alert(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    alert_id: PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    handle_alert(&app, &principal, alert_id, body, true).await
}

/// Alerts as server-sent events: first those recorded after `after` (a ledger position,
/// or the `Last-Event-ID` a reconnecting client sends), then each new one as it commits.
/// Each event's id is the alert's ledger position, its type `alert`, its data the alert.
async fn alert_stream(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    p: Params,
) -> Result<impl IntoResponse, ApiError> {
    let p = query(p)?;
    only_params(&p, &["after"])?;
    let after = match number::<u64>(&p, "after")? {
        Some(a) => Some(a),
        None => match headers.get("last-event-id").map(|v| v.to_str()) {
            Some(Ok(text)) => Some(text.parse::<u64>().map_err(|_| {
                ApiError::from(FieldError::new(
                    "Last-Event-ID",
                    text,
                    "must be the position of the last alert received",
                ))
            })?),
            Some(Err(_)) => {
                return Err(FieldError::new(
                    "Last-Event-ID",
                    "(unreadable)",
                    "must be ASCII digits",
                )
                .into())
            }
            None => None,
        },
    };
    // Subscribe first, then read the ledger: nothing committed in between is missed.
    let live = app.subscribe_alerts();
    let cursor = match after {
        Some(after) => after,
        None => app.store().head().await.map_err(AppError::from)?.position,
    };
    let state = AlertFeed {
        app,
        principal,
        live,
        backlog: std::collections::VecDeque::new(),
        cursor,
        sent_up_to: cursor,
        poll: tokio::time::interval(ALERT_POLL),
    };
    let stream = futures_util::stream::unfold(state, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<_, std::convert::Infallible>(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// How often a subscriber's stream reads the ledger for alerts recorded by other servers
/// sharing the database (alerts of this server are pushed at once).
const ALERT_POLL: Duration = Duration::from_secs(2);
/// How many ledger rows one read of the feed covers.
const ALERT_FEED_ROWS: u32 = 1000;

/// One subscriber's feed: alerts of this process as they commit, and the ledger read
/// from the subscriber's position on (a reconnect, and other servers' alerts).
struct AlertFeed {
    app: AppState,
    /// Who subscribed: only alerts in their scope are sent.
    principal: Principal,
    live: tokio::sync::broadcast::Receiver<Value>,
    backlog: std::collections::VecDeque<Value>,
    /// The ledger position read up to.
    cursor: u64,
    /// The highest alert position sent.
    sent_up_to: u64,
    poll: tokio::time::Interval,
}

impl AlertFeed {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(alert) = self.backlog.pop_front() {
                let position = alert["position"].as_u64().unwrap_or(0);
                if position > self.sent_up_to {
                    self.sent_up_to = position;
                    let visible = auth::alert_visible(
                        &self.app,
                        &self.principal,
                        Permission::ReadAlerts,
                        &alert,
                    )
                    .await
                    .unwrap_or(false);
                    if visible {
                        return Some(sse_event(&alert));
                    }
                }
                continue;
            }
            // Catch up with the ledger first (a reconnect's backlog), then wait.
            let head = self
                .app
                .store()
                .head()
                .await
                .map(|h| h.position)
                .unwrap_or(0);
            if self.cursor < head {
                match self.app.alerts_after(self.cursor, ALERT_FEED_ROWS).await {
                    Ok((alerts, last)) => {
                        self.cursor = last.max(self.cursor);
                        self.backlog.extend(alerts);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "alert feed could not read the ledger; retrying");
                    }
                }
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(alert) => self.backlog.push_back(alert),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Missed pushes are read back from the ledger on the next turn.
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.poll.tick() => {
                    // A revoked token, an ended session or a revoked role ends the
                    // stream or narrows it at once, not at the next connection.
                    match self.app.revalidate(&self.principal).await {
                        Ok(principal) => self.principal = principal,
                        Err(_) => return None,
                    }
                }
            }
        }
    }
}

async fn register_webhook(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = request_body(body)?;
    let body = autolog_app::attribute(&principal, &body, "created_by")?;
    Ok((
        StatusCode::CREATED,
        Json(app.register_webhook(&body).await?),
    ))
}

async fn webhooks(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    only_params(&query(p)?, &[])?;
    Ok(Json(app.list_webhooks().await?))
}

async fn webhook(
    State(app): State<AppState>,
    webhook_id: PathParam,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    only_params(&query(p)?, &[])?;
    let id = path_param("webhook_id", webhook_id)?;
    Ok(Json(app.webhook(&id).await?))
}

async fn deactivate_webhook(
    State(app): State<AppState>,
    webhook_id: PathParam,
) -> Result<Json<Value>, ApiError> {
    let id = path_param("webhook_id", webhook_id)?;
    Ok(Json(app.deactivate_webhook(&id).await?))
}

fn sse_event(alert: &Value) -> Event {
    let mut event = Event::default().event("alert").data(alert.to_string());
    if let Some(position) = alert["position"].as_u64() {
        event = event.id(position.to_string());
    }
    event
}

/// Registry listings take `filter.<field path>=<value>` parameters.
const FILTER_PREFIX: &str = "filter.";

async fn alignment(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["horizon_days"])?;
    Ok(Json(
        app.alignment_report(number(&p, "horizon_days")?).await?,
    ))
}

async fn export_reference(
    State(app): State<AppState>,
    p: Params,
) -> Result<axum::response::Response, ApiError> {
    let p = query(p)?;
    only_params(&p, &["format", "registry", "known_at"])?;
    let known_at = p.get("known_at").map(String::as_str);
    match p.get("format").map_or("json", String::as_str) {
        "json" => {
            if let Some(r) = p.get("registry") {
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
            let registry = p.get("registry").ok_or_else(|| {
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

async fn import_reference(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    p: Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let p = query(p)?;
    only_params(&p, &["registry", "dry_run", "actor"])?;
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
    let dry_run = match p.get("dry_run").map(String::as_str) {
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
        registry: p.get("registry").cloned(),
    };
    // The import is attributed to who sent it; an `actor` naming anyone else is refused.
    if let Some(given) = p.get("actor") {
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
    Ok((status, Json(report.to_json())))
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
        None | Some(Value::Null) => Err(FieldError::new(key, "(absent)", "is required").into()),
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

async fn sign_in(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let f = fields(body, &["person_id", "password", "totp"])?;
    let signed_in = app
        .sign_in(
            required(&f, "person_id", false)?,
            required(&f, "password", true)?,
            required(&f, "totp", true)?,
        )
        .await?;
    let cookie = format!(
        "{}={}; HttpOnly; Secure; SameSite=Strict; Path=/",
        auth::SESSION_COOKIE,
        signed_in.session
    );
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(json!({
            "person_id": signed_in.person_id,
            "csrf_token": signed_in.csrf,
            "idle_timeout_seconds": signed_in.idle_timeout.as_secs(),
            "note": "send the csrf_token in the X-CSRF-Token header with every request that changes something",
        })),
    ))
}

async fn whoami(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "actor": principal.actor,
        "grants": principal.grants.iter().map(|g| json!({"role": g.role.as_str(), "site_id": g.site_id})).collect::<Vec<_>>(),
    }))
}

async fn sign_out(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == auth::SESSION_COOKIE)
        .map(|(_, v)| v.to_string());
    if let Some(session) = session {
        app.sign_out(&session).await?;
    }
    let expired = format!(
        "{}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0",
        auth::SESSION_COOKIE
    );
    Ok((
        [(header::SET_COOKIE, expired)],
        Json(json!({"signed_out": true})),
    ))
}

async fn users(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    only_params(&query(p)?, &[])?;
    Ok(Json(app.users().await?))
}

async fn user(State(app): State<AppState>, person_id: PathParam) -> Result<Json<Value>, ApiError> {
    let person_id = path_param("person_id", person_id)?;
    Ok(Json(app.user(&person_id).await?))
}

async fn create_user(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let f = fields(body, &["person_id", "password"])?;
    let created = app
        .create_user(
            required(&f, "person_id", false)?,
            required(&f, "password", true)?,
            &principal.actor,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn grant_role(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    person_id: PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let person_id = path_param("person_id", person_id)?;
    let f = fields(body, &["role", "site_id"])?;
    Ok(Json(
        app.grant_role(
            &person_id,
            required(&f, "role", false)?,
            required(&f, "site_id", false)?,
            &principal.actor,
        )
        .await?,
    ))
}

async fn revoke_role(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    person_id: PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let person_id = path_param("person_id", person_id)?;
    let f = fields(body, &["role", "site_id"])?;
    Ok(Json(
        app.revoke_role(
            &person_id,
            required(&f, "role", false)?,
            required(&f, "site_id", false)?,
            &principal.actor,
        )
        .await?,
    ))
}

async fn unlock_user(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    person_id: PathParam,
) -> Result<Json<Value>, ApiError> {
    let person_id = path_param("person_id", person_id)?;
    Ok(Json(app.unlock_user(&person_id, &principal.actor).await?))
}

async fn reset_second_factor(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    person_id: PathParam,
) -> Result<Json<Value>, ApiError> {
    let person_id = path_param("person_id", person_id)?;
    Ok(Json(
        app.reset_second_factor(&person_id, &principal.actor)
            .await?,
    ))
}

async fn tokens(State(app): State<AppState>, p: Params) -> Result<Json<Value>, ApiError> {
    only_params(&query(p)?, &[])?;
    Ok(Json(app.tokens().await?))
}

async fn issue_token(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let f = fields(body, &["system_id", "sites", "valid_days"])?;
    let sites: Vec<String> = match f.get("sites") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::from(FieldError::new(
                        format!("sites[{i}]"),
                        autolog_domain::error::show(v),
                        "must be a site id",
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(FieldError::new(
                "sites",
                autolog_domain::error::show(other),
                "must be a list of site ids",
            )
            .into())
        }
    };
    let valid_days = match f.get("valid_days") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| {
                    ApiError::from(FieldError::new(
                        "valid_days",
                        autolog_domain::error::show(v),
                        "must be a whole number of days",
                    ))
                })?,
        ),
    };
    let issued = app
        .issue_token(
            required(&f, "system_id", false)?,
            &sites,
            valid_days,
            &principal.actor,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

async fn revoke_token(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    token_id: PathParam,
) -> Result<Json<Value>, ApiError> {
    let token_id = path_param("token_id", token_id)?;
    Ok(Json(app.revoke_token(&token_id, &principal.actor).await?))
}

async fn read_personal_data(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    coi: PathParam,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    let p = query(p)?;
    only_params(&p, &["purpose"])?;
    let coi = path_param("coi", coi)?;
    let patient_key = app.patient_key_of(&coi).await?;
    auth::check_personal_data_scope(&app, &principal, Permission::ReadPersonalData, &patient_key)
        .await?;
    let purpose = p.get("purpose").map(String::as_str);
    Ok(Json(
        app.read_personal_data(&patient_key, &principal.actor, purpose)
            .await?,
    ))
}

async fn record_personal_data(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    coi: PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let coi = path_param("coi", coi)?;
    let body = request_body(body)?;
    let data: Value = serde_json::from_slice(&body).map_err(|e| {
        FieldError::new(
            "request",
            format!("line {} column {}", e.line(), e.column()),
            format!("is not well-formed JSON: {e}"),
        )
    })?;
    let patient_key = app.patient_key_of(&coi).await?;
    auth::check_personal_data_scope(
        &app,
        &principal,
        Permission::RecordPersonalData,
        &patient_key,
    )
    .await?;
    let canonical = autolog_domain::identifiers::Coi::parse("coi", &coi)?.to_string();
    Ok((
        StatusCode::CREATED,
        Json(
            app.record_personal_data_via(Some(&canonical), &patient_key, &data, &principal.actor)
                .await?,
        ),
    ))
}

async fn erase_personal_data(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    coi: PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let coi = path_param("coi", coi)?;
    let f = fields(body, &["reason"])?;
    let reason = required(&f, "reason", false)?;
    Ok(Json(
        app.erase_personal_data(&coi, &principal.actor, reason)
            .await?,
    ))
}
