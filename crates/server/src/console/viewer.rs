//! Who is looking: the signed-in person behind a console request, and the console's
//! answer when there is none (back to the sign-in page) or when the app refuses.

use autolog_app::{AppError, Autolog, Principal};
use autolog_domain::access::{allowed_everywhere, allowed_somewhere, Permission};
use autolog_domain::FieldError;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Redirect, Response};

use crate::auth::{alert_visible, cookie, SESSION_COOKIE};

/// The cookie holding the session's CSRF token, for the forms the console renders.
pub(crate) const CSRF_COOKIE: &str = "autolog_csrf";
/// The hidden form field carrying it back.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// The signed-in person a page is rendered for.
pub(crate) struct Viewer {
    pub principal: Principal,
    pub person_id: String,
    /// The session's CSRF token (empty when the session was opened through the API,
    /// which keeps no token in a cookie: forms then ask to sign in again).
    pub csrf: String,
    /// The open alerts the person may see, newest first (read once per request: every
    /// page counts the critical ones; home and the inbox list them).
    pub open_alerts: Vec<autolog_app::Alert>,
}

impl Viewer {
    /// How many open critical alerts the person may see, shown on every page.
    pub fn critical_open(&self) -> usize {
        self.open_alerts
            .iter()
            .filter(|a| a.raised.severity == "critical")
            .count()
    }

    pub fn may(&self, permission: Permission) -> bool {
        allowed_somewhere(&self.principal.grants, permission)
    }

    pub fn may_everywhere(&self, permission: Permission) -> bool {
        allowed_everywhere(&self.principal.grants, permission)
    }

    /// Refuses a form whose CSRF token is not the session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), ConsoleError> {
        if self.principal.csrf_matches(sent) {
            return Ok(());
        }
        Err(ConsoleError::App(AppError::Forbidden(FieldError::new(
            CSRF_FIELD,
            if sent.is_empty() { "(absent)" } else { "(wrong)" },
            "a form that changes something must carry this session's token: reload the page, or sign in again",
        ))))
    }
}

/// The person signed in on this request, or the way to the sign-in page (coming back to
/// `uri` after it). The request counts as the person's activity (it extends the session's
/// idle window).
pub(crate) async fn viewer(
    app: &Autolog,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Viewer, ConsoleError> {
    signed_in(app, headers, uri, true).await
}

/// [`viewer`] for what a page asks by itself (htmx polls): the idle window is not extended,
/// and without a live session the page is sent to sign in (`HX-Redirect`).
pub(crate) async fn poller(app: &Autolog, headers: &HeaderMap) -> Result<Viewer, Response> {
    let uri = Uri::from_static("/");
    signed_in(app, headers, &uri, false)
        .await
        .map_err(|e| match e {
            ConsoleError::SignIn { .. } => (
                [("hx-redirect", "/sign-in")],
                axum::http::StatusCode::UNAUTHORIZED,
            )
                .into_response(),
            other => other.into_response(),
        })
}

async fn signed_in(
    app: &Autolog,
    headers: &HeaderMap,
    uri: &Uri,
    activity: bool,
) -> Result<Viewer, ConsoleError> {
    let back = || ConsoleError::SignIn {
        next: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    };
    let Some(session) = cookie(headers, SESSION_COOKIE) else {
        return Err(back());
    };
    let principal = if activity {
        app.authenticate_session(&session).await
    } else {
        app.peek_session(&session).await
    };
    let principal = match principal {
        Ok(p) => p,
        Err(AppError::Unauthenticated(_)) => return Err(back()),
        Err(e) => return Err(e.into()),
    };
    let Some(person_id) = principal.person_id().map(str::to_string) else {
        return Err(back());
    };
    let csrf = cookie(headers, CSRF_COOKIE)
        .filter(|c| principal.csrf_matches(c))
        .unwrap_or_default();
    let open_alerts = if allowed_somewhere(&principal.grants, Permission::ReadAlerts) {
        visible_alerts(app, &principal, "open").await?
    } else {
        Vec::new()
    };
    Ok(Viewer {
        principal,
        person_id,
        csrf,
        open_alerts,
    })
}

/// The alerts with `status` that `principal` may see, newest first.
pub(crate) async fn visible_alerts(
    app: &Autolog,
    principal: &Principal,
    status: &str,
) -> Result<Vec<autolog_app::Alert>, ConsoleError> {
    let all = app
        .alerts(&autolog_app::AlertQuery {
            status: Some(status.to_string()),
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    for alert in all {
        if alert_visible(app, principal, Permission::ReadAlerts, &alert).await? {
            out.push(alert);
        }
    }
    Ok(out)
}

/// What a console request can end in besides its page.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// No live session: to the sign-in page, then back to `next`.
    SignIn { next: String },
    /// The app refused or failed: a page saying why, with the API's status code.
    App(AppError),
}

impl From<AppError> for ConsoleError {
    fn from(e: AppError) -> Self {
        ConsoleError::App(e)
    }
}

impl From<FieldError> for ConsoleError {
    fn from(e: FieldError) -> Self {
        ConsoleError::App(AppError::Invalid(e))
    }
}

impl From<crate::ApiError> for ConsoleError {
    fn from(e: crate::ApiError) -> Self {
        ConsoleError::App(e.0)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignIn { next } => Redirect::to(&sign_in_path(&next)).into_response(),
            ConsoleError::App(e) => {
                let (status, _) = crate::error::status_of(&e);
                if status.is_server_error() {
                    tracing::error!(error = %e, "console request failed");
                }
                let mut response = (status, super::page::error_page(status, &e)).into_response();
                if let AppError::Forbidden(f) = e {
                    response.extensions_mut().insert(f);
                }
                response
            }
        }
    }
}

/// The sign-in page, coming back to `next` (a path of this site only).
pub(crate) fn sign_in_path(next: &str) -> String {
    if next == "/" || !is_local_path(next) {
        return "/sign-in".into();
    }
    let encoded: String = url_encode(next);
    format!("/sign-in?next={encoded}")
}

/// A path on this site: `/…` but not `//…` (another host) nor with a backslash.
pub(crate) fn is_local_path(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//") && !path.contains('\\')
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A 403 refusal of a page, recorded in the person's access audit as the API records its own.
pub(crate) async fn refused(
    app: &Autolog,
    viewer: &Viewer,
    target: &str,
    refusal: FieldError,
) -> ConsoleError {
    app.record_refused_request(&viewer.principal.actor, true, target, &refusal)
        .await;
    ConsoleError::App(AppError::Forbidden(refusal))
}
