//! Alerts (listed, acknowledged, resolved, streamed as server-sent events) and webhooks.

use std::time::Duration;

use autolog_app::Principal;
use autolog_app::{Alert, AlertList, AlertQuery, AppError, Autolog};
use autolog_domain::access::Permission;
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::params::{query_params, whole_number, NoParams, QueryOf};
use super::{path_param, request_body, AppState, PathParam};
use crate::{auth, ApiError};

/// The routes of this area, to be merged into the API router.
pub(super) fn router() -> Router<AppState> {
    Router::new()
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
}

query_params! {
    /// `GET /api/v1/alerts`: by status, chain and site.
    AlertParams {
        status: Option<String>,
        coi: Option<String>,
        site_id: Option<String>,
    }
}

async fn alerts(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryOf(q): QueryOf<AlertParams>,
) -> Result<Json<AlertList>, ApiError> {
    let all = app
        .alerts(&AlertQuery {
            status: q.status,
            coi: q.coi,
            site_id: q.site_id,
        })
        .await?;
    let mut list = Vec::new();
    for alert in all {
        if auth::alert_visible(&app, &principal, Permission::ReadAlerts, &alert).await? {
            list.push(alert);
        }
    }
    Ok(Json(AlertList {
        count: list.len(),
        alerts: list,
    }))
}

async fn alert(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    alert_id: PathParam,
    _q: QueryOf<NoParams>,
) -> Result<Json<Alert>, ApiError> {
    let alert_id = path_param("alert_id", alert_id)?;
    let alert = app.alert(&alert_id).await?;
    if !auth::alert_visible(&app, &principal, Permission::ReadAlerts, &alert).await? {
        return Err(alert_out_of_scope(&principal, &alert_id));
    }
    Ok(Json(alert))
}

/// An alert outside the caller's scope is answered as one that does not exist (404), so
/// that its existence is not told either.
fn alert_out_of_scope(principal: &Principal, alert_id: &str) -> ApiError {
    tracing::debug!(actor = %principal.actor, alert_id, "alert out of scope answered as not found");
    ApiError(AppError::NotFound {
        what: "alert",
        id: alert_id.to_string(),
    })
}

async fn handle_alert(
    app: &Autolog,
    principal: &Principal,
    alert_id: PathParam,
    body: Result<Bytes, BytesRejection>,
    resolve: bool,
) -> Result<Json<Alert>, ApiError> {
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
) -> Result<Json<Alert>, ApiError> {
    handle_alert(&app, &principal, alert_id, body, false).await
}

async fn resolve_alert(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    alert_id: PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Alert>, ApiError> {
    handle_alert(&app, &principal, alert_id, body, true).await
}

query_params! {
    /// `GET /api/v1/alerts/stream`: from after a ledger position.
    StreamParams {
        #[serde(default, deserialize_with = "whole_number")]
        after: Option<u64>,
    }
}

/// Alerts as server-sent events: first those recorded after `after` (a ledger position,
/// or the `Last-Event-ID` a reconnecting client sends), then each new one as it commits.
/// Each event's id is the alert's ledger position, its type `alert`, its data the alert.
async fn alert_stream(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    QueryOf(q): QueryOf<StreamParams>,
) -> Result<impl IntoResponse, ApiError> {
    let after = match q.after {
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
    live: tokio::sync::broadcast::Receiver<Alert>,
    backlog: std::collections::VecDeque<Alert>,
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
                let position = alert.position;
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

async fn webhooks(
    State(app): State<AppState>,
    _q: QueryOf<NoParams>,
) -> Result<Json<autolog_app::WebhookList>, ApiError> {
    Ok(Json(app.list_webhooks().await?))
}

async fn webhook(
    State(app): State<AppState>,
    webhook_id: PathParam,
    _q: QueryOf<NoParams>,
) -> Result<Json<autolog_app::WebhookDetail>, ApiError> {
    let id = path_param("webhook_id", webhook_id)?;
    Ok(Json(app.webhook(&id).await?))
}

async fn deactivate_webhook(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    webhook_id: PathParam,
) -> Result<Json<autolog_app::WebhookDetail>, ApiError> {
    let id = path_param("webhook_id", webhook_id)?;
    Ok(Json(app.deactivate_webhook(&id, &principal.actor).await?))
}

fn sse_event(alert: &Alert) -> Event {
    let data = serde_json::to_string(alert).unwrap_or_else(|e| {
        tracing::error!("an alert as JSON: {e}");
        String::from("{}")
    });
    Event::default()
        .event("alert")
        .data(data)
        .id(alert.position.to_string())
}
