//! The alert inbox: open alerts in the person's scope (critical first), acknowledged or
//! resolved with a note; the live count of open critical alerts in the navigation.

use std::sync::Arc;

use autolog_app::{Alert, AlertStatus, Autolog, ALERT_STATUSES};
use autolog_domain::access::Permission;
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::home::severity_rank;
use super::page::{alert_count, coi_link, critical_banner, csrf_field, page, site, utc, Nav};
use super::session::parse_form;
use super::viewer::{poller, viewer, visible_alerts, ConsoleError, Viewer};
use crate::auth::alert_visible;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct InboxQuery {
    status: Option<String>,
    severity: Option<String>,
}

/// `GET /alerts`: the inbox.
pub(crate) async fn inbox(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<InboxQuery>,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let body = inbox_body(&app, &viewer, &q, None).await?;
    Ok(page(Some(&viewer), "Alerts", Nav::Alerts, body).into_response())
}

/// A refusal of a handling, shown beside the alert's note field.
struct Refused {
    alert_id: String,
    note: String,
    error: FieldError,
}

async fn inbox_body(
    app: &Autolog,
    viewer: &Viewer,
    q: &InboxQuery,
    refused: Option<&Refused>,
) -> Result<Markup, ConsoleError> {
    if !viewer.may(Permission::ReadAlerts) {
        return Err(ConsoleError::App(autolog_app::AppError::Forbidden(
            FieldError::new(
                "permission",
                "ReadAlerts",
                format!("{} holds no role that reads alerts", viewer.principal.actor),
            ),
        )));
    }
    let status = q.status.as_deref().unwrap_or("open");
    if !ALERT_STATUSES.contains(&status) {
        return Err(FieldError::new(
            "status",
            status,
            format!("must be one of {}", ALERT_STATUSES.join(", ")),
        )
        .into());
    }
    // The open ones were read for the page already.
    let mut alerts = match status {
        "open" => viewer.open_alerts.clone(),
        other => visible_alerts(app, &viewer.principal, other).await?,
    };
    if let Some(severity) = q.severity.as_deref().filter(|s| !s.is_empty()) {
        alerts.retain(|a| a.raised.severity == severity);
    }
    alerts.sort_by_key(|a| {
        (
            severity_rank(&a.raised.severity),
            std::cmp::Reverse(a.position),
        )
    });
    let handles = viewer.may(Permission::HandleAlerts);
    Ok(html! {
        h1 { "Alerts" }
        (filter_form(status, q.severity.as_deref()))
        @if let Some(r) = refused {
            p.banner.critical role="alert" {
                "Not recorded: " (r.error.field) " " (r.error.value) " " (r.error.rule)
            }
        }
        @if alerts.is_empty() {
            p.quiet { "No alert matches." }
        } @else {
            (alert_table(&alerts, handles))
            @if handles {
                @for a in alerts.iter().filter(|a| a.status != AlertStatus::Resolved) {
                    (handle_form(viewer, a, refused.filter(|r| r.alert_id == a.raised.alert_id)))
                }
            }
        }
    })
}

fn filter_form(status: &str, severity: Option<&str>) -> Markup {
    html! {
        form.timectl method="get" action="/alerts" {
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    @for s in ALERT_STATUSES {
                        option value=(s) selected[*s == status] { (s) }
                    }
                }
            }
            div {
                label for="severity" { "Severity" }
                select #severity name="severity" {
                    option value="" selected[severity.is_none()] { "any" }
                    @for s in ["critical", "major", "minor"] {
                        option value=(s) selected[severity == Some(s)] { (s) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
    }
}

/// Alerts as a table: severity (word and icon), what, chain, site, raised, status.
pub(crate) fn alert_table(alerts: &[Alert], with_links: bool) -> Markup {
    html! {
        table {
            caption.skip { "Alerts" }
            thead {
                tr {
                    th scope="col" { "Severity" }
                    th scope="col" { "What" }
                    th scope="col" { "Chain" }
                    th scope="col" { "Site" }
                    th scope="col" { "Raised" }
                    th scope="col" { "Status" }
                }
            }
            tbody {
                @for a in alerts {
                    tr #{ "alert-" (a.raised.alert_id) } {
                        td { (severity(&a.raised.severity)) }
                        td {
                            strong { (a.raised.rule) } br;
                            (a.raised.message)
                        }
                        td {
                            @match &a.raised.coi { Some(c) => { (coi_link(c)) }, None => { span.quiet { "—" } } }
                        }
                        td { (site(a.raised.site_id.as_deref())) }
                        td { (utc(&a.raised_at)) }
                        td {
                            (status_words(a))
                            @if with_links && a.status != AlertStatus::Resolved {
                                br; a href={ "#handle-" (a.raised.alert_id) } { "Acknowledge or resolve" }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn severity(s: &str) -> Markup {
    html! {
        @match s {
            "critical" => { strong.state.hold { "⚠ critical" } },
            "major" => { strong.state { "▲ major" } },
            other => { span.state { "• " (other) } },
        }
    }
}

fn status_words(a: &Alert) -> Markup {
    html! {
        @match a.status {
            AlertStatus::Raised => { "open, not acknowledged" },
            AlertStatus::Acknowledged => {
                "acknowledged"
                @if let Some(h) = a.acknowledgements.last() { " by " (h.person_id) }
            },
            AlertStatus::Resolved => {
                "resolved"
                @if let Some(h) = &a.resolution { " by " (h.person_id) ": " (h.note) }
            },
        }
    }
}

fn handle_form(viewer: &Viewer, a: &Alert, refused: Option<&Refused>) -> Markup {
    let id = &a.raised.alert_id;
    let note_id = format!("note-{id}");
    let error_id = format!("note-error-{id}");
    html! {
        form.card #{ "handle-" (id) } method="post" action={ "/alerts/" (id) "/acknowledge" } {
            h3 { (a.raised.rule) " · " (id) }
            (csrf_field(viewer))
            label for=(note_id) { "Note (what you saw or did)" }
            input #(note_id) name="note" required value=(refused.map_or("", |r| r.note.as_str()))
                aria-describedby=[refused.map(|_| error_id.as_str())];
            @if let Some(r) = refused {
                p.field-error #(error_id) { (r.error.field) " " (r.error.value) ": " (r.error.rule) }
            }
            p {
                @if a.status == AlertStatus::Raised {
                    button type="submit" { "Record acknowledgement of " (id) }
                    " "
                }
                button.secondary type="submit" formaction={ "/alerts/" (id) "/resolve" } {
                    "Record resolution of " (id)
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct HandleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

/// `POST /alerts/{id}/acknowledge`.
pub(crate) async fn acknowledge(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(alert_id): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    handle(&app, &headers, &uri, &alert_id, &body, false).await
}

/// `POST /alerts/{id}/resolve`.
pub(crate) async fn resolve(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(alert_id): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    handle(&app, &headers, &uri, &alert_id, &body, true).await
}

/// Records the handling as the signed-in person and goes back to the inbox; a refusal
/// shows the inbox with the rule beside the note, the note kept.
async fn handle(
    app: &Autolog,
    headers: &HeaderMap,
    uri: &Uri,
    alert_id: &str,
    body: &[u8],
    resolve: bool,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(app, headers, uri).await?;
    let form: HandleForm = parse_form(body)?;
    viewer.check_csrf(&form.csrf)?;
    let not_found = || autolog_app::AppError::NotFound {
        what: "alert",
        id: alert_id.to_string(),
    };
    let alert = app.alert(alert_id).await?;
    if !alert_visible(app, &viewer.principal, Permission::HandleAlerts, &alert).await? {
        return Err(not_found().into());
    }
    let request = serde_json::json!({"person_id": viewer.person_id, "note": form.note});
    match app
        .handle_alert_as(
            alert_id,
            resolve,
            request.to_string().as_bytes(),
            Some(&viewer.principal.actor),
        )
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/alerts?status=all#alert-{alert_id}")).into_response()),
        Err(autolog_app::AppError::Invalid(error)) => {
            let refused = Refused {
                alert_id: alert_id.to_string(),
                note: form.note,
                error,
            };
            let body = inbox_body(app, &viewer, &InboxQuery::default(), Some(&refused)).await?;
            let html = page(Some(&viewer), "Alerts", Nav::Alerts, body);
            Ok((StatusCode::BAD_REQUEST, html).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /alerts/count`: the navigation's count of open critical alerts (htmx polls it;
/// the poll does not keep the session alive).
pub(crate) async fn count(State(app): State<Arc<Autolog>>, headers: HeaderMap) -> Response {
    match poller(&app, &headers).await {
        Ok(viewer) => Html(alert_count(viewer.critical_open()).into_string()).into_response(),
        Err(answer) => answer,
    }
}

/// `GET /alerts/banner`: the critical-alert banner every page carries (htmx polls it, so
/// an alert raised while a page is open appears on it).
pub(crate) async fn banner(State(app): State<Arc<Autolog>>, headers: HeaderMap) -> Response {
    match poller(&app, &headers).await {
        Ok(viewer) => Html(critical_banner(&viewer).into_string()).into_response(),
        Err(answer) => answer,
    }
}
