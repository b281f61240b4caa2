//! Sign-in and sign-out. Sign-in is the API's (person id, password, a TOTP code; the same
//! lockout, throttling and idle timeout); every failure reads the same, whichever part was
//! wrong. The sign-in form carries a token of its own (a cookie set with the form), so that
//! another site cannot sign a browser in to an account of its choosing.

use std::net::SocketAddr;
use std::sync::Arc;

use autolog_app::{AppError, Autolog};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{page, Nav};
use super::viewer::{is_local_path, viewer, ConsoleError, CSRF_COOKIE};
use crate::auth::{cookie, SESSION_COOKIE};

/// The cookie holding the sign-in form's own token.
const SIGN_IN_COOKIE: &str = "autolog_sign_in";

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// `GET /sign-in`: the form, with a fresh form token.
pub(crate) async fn form(Query(q): Query<SignInQuery>) -> Result<Response, ConsoleError> {
    let token = random_token()?;
    let notice = q.signed_out.is_some().then_some("You are signed out.");
    let body = sign_in_form(&token, q.next.as_deref(), "", notice, None);
    Ok(with_form_token(&token, StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    person_id: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    form_token: String,
}

/// `POST /sign-in`: signs in and goes on to `next` (or home); a refusal shows the form
/// again with the person id kept and the reason, never which part was wrong.
pub(crate) async fn sign_in(
    State(app): State<Arc<Autolog>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let f: SignInForm = parse_form(&body)?;
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    let next = f.next.as_deref().filter(|n| is_local_path(n));
    if expected.is_empty() || expected != f.form_token {
        let token = random_token()?;
        let body = sign_in_form(
            &token,
            next,
            &f.person_id,
            None,
            Some("The sign-in form had expired. Enter your details again."),
        );
        return Ok(with_form_token(&token, StatusCode::FORBIDDEN, body));
    }
    let client = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let refusal = match app
        .sign_in(f.person_id.trim(), &f.password, &f.totp, client)
        .await
    {
        Ok(signed_in) => {
            let to = next.unwrap_or("/").to_string();
            let mut response = Redirect::to(&to).into_response();
            let headers = response.headers_mut();
            for c in [
                session_cookie(SESSION_COOKIE, &signed_in.session),
                session_cookie(CSRF_COOKIE, &signed_in.csrf),
                expired_cookie(SIGN_IN_COOKIE),
            ] {
                if let Ok(value) = c.parse() {
                    headers.append(header::SET_COOKIE, value);
                }
            }
            return Ok(response);
        }
        Err(e @ (AppError::Unauthenticated(_) | AppError::RateLimited(_))) => e,
        Err(e) => return Err(e.into()),
    };
    let status = crate::error::status_of(&refusal).0;
    let message = match &refusal {
        AppError::RateLimited(f) => format!("Sign-in refused: {}.", f.rule),
        other => other.to_string(),
    };
    let token = random_token()?;
    let body = sign_in_form(&token, next, &f.person_id, None, Some(&message));
    Ok(with_form_token(&token, status, body))
}

/// `POST /sign-out`: ends the session and clears its cookies.
pub(crate) async fn sign_out(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let form: CsrfOnly = parse_form(&body)?;
    viewer.check_csrf(&form.csrf)?;
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        app.sign_out(&session).await?;
    }
    let mut response = Redirect::to("/sign-in?signed_out=1").into_response();
    for c in [expired_cookie(SESSION_COOKIE), expired_cookie(CSRF_COOKIE)] {
        if let Ok(value) = c.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// A form that carries only the CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default, rename = "csrf")]
    pub csrf: String,
}

/// Reads a URL-encoded form; a form that cannot be read is refused naming why.
pub(crate) fn parse_form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ConsoleError> {
    serde_urlencoded::from_bytes(body).map_err(|e| {
        ConsoleError::from(autolog_domain::FieldError::new(
            "form",
            "(unreadable)",
            format!("is not a form this page sends: {e}"),
        ))
    })
}

fn sign_in_form(
    token: &str,
    next: Option<&str>,
    person_id: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Markup {
    html! {
        h1 { "Sign in" }
        @if let Some(notice) = notice {
            p.banner.info role="status" { (notice) }
        }
        @if let Some(error) = error {
            p.banner.critical #sign-in-error role="alert" { (error) }
        }
        form method="post" action="/sign-in" aria-describedby=[error.map(|_| "sign-in-error")] {
            input type="hidden" name="form_token" value=(token);
            @if let Some(next) = next {
                input type="hidden" name="next" value=(next);
            }
            label for="person_id" { "Person id" }
            input #person_id name="person_id" autocomplete="username" required
                value=(person_id) autofocus[person_id.is_empty()];
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="current-password" required
                autofocus[!person_id.is_empty()];
            label for="totp" { "Code from your authenticator app" }
            input #totp name="totp" inputmode="numeric" autocomplete="one-time-code"
                pattern="[0-9]{6}" maxlength="6" required aria-describedby="totp-hint";
            p.field-hint #totp-hint { "Six digits; a new code every 30 seconds." }
            p { button type="submit" { "Sign in" } }
        }
        p.quiet {
            "After 15 minutes without activity you are signed out. "
            "Repeated failures lock the account; an administrator can unlock it."
        }
    }
}

/// The answer with the form, and the form token's cookie.
fn with_form_token(token: &str, status: StatusCode, body: Markup) -> Response {
    let html = page(None, "Sign in", Nav::None, body);
    let cookie = format!(
        "{SIGN_IN_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/sign-in; Max-Age=3600"
    );
    (status, [(header::SET_COOKIE, cookie)], html).into_response()
}

fn session_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; HttpOnly; Secure; SameSite=Strict; Path=/")
}

fn expired_cookie(name: &str) -> String {
    let path = if name == SIGN_IN_COOKIE {
        "/sign-in"
    } else {
        "/"
    };
    format!("{name}=; HttpOnly; Secure; SameSite=Strict; Path={path}; Max-Age=0")
}

fn random_token() -> Result<String, ConsoleError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| ConsoleError::App(AppError::Config(format!("no randomness: {e}"))))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
