//! Administration, for administrators (a grant at `*` that manages access): accounts
//! (created with their TOTP key shown once, as text and a QR code drawn here), roles
//! granted and revoked per site, unlocking, a new second factor; source systems' API
//! tokens issued (shown once) and revoked. Every change is the app's, recorded in the
//! ledger as through the API.

use std::sync::Arc;

use autolog_app::{AppError, Autolog};
use autolog_domain::access::{Permission, ROLES};
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{csrf_field, page, utc, Nav};
use super::session::parse_form;
use super::viewer::{refused, url_encode, viewer, ConsoleError, Viewer};

/// The administrator signed in on this request, or a 403 page (recorded).
async fn administrator(
    app: &Autolog,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Viewer, ConsoleError> {
    let viewer = viewer(app, headers, uri).await?;
    if viewer.may_everywhere(Permission::ManageAccess) {
        return Ok(viewer);
    }
    let refusal = FieldError::new(
        "permission",
        "ManageAccess",
        format!(
            "{} holds no role with this permission network-wide (a grant at *)",
            viewer.principal.actor
        ),
    );
    Err(refused(app, &viewer, "GET /admin", refusal).await)
}

/// `GET /admin`: accounts and tokens.
pub(crate) async fn index(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = administrator(&app, &headers, &uri).await?;
    let body = index_body(&app, &viewer, None).await?;
    Ok(page(Some(&viewer), "Administration", Nav::Admin, body).into_response())
}

/// What a form did, shown at the top of the page it leads back to.
enum Outcome {
    /// A refusal, with what was typed kept.
    Refused(FieldError),
    /// A secret shown this once (a TOTP key or an API token), with what it is for.
    Secret(Markup),
}

async fn index_body(
    app: &Autolog,
    viewer: &Viewer,
    outcome: Option<Outcome>,
) -> Result<Markup, ConsoleError> {
    let users = app.users().await?;
    let tokens = app.tokens().await?;
    Ok(html! {
        h1 { "Administration" }
        (outcome_markup(outcome))
        section aria-labelledby="accounts-h" {
            h2 #accounts-h { "Accounts (" (users.count) ")" }
            table {
                caption.skip { "Accounts" }
                thead { tr {
                    th scope="col" { "Person" } th scope="col" { "Roles" } th scope="col" { "Second factor" }
                    th scope="col" { "Locked until" } th scope="col" { "Created" }
                } }
                tbody {
                    @for u in &users.users {
                        tr {
                            td { a href={ "/admin/users/" (url_encode(&u.person_id)) } { (u.person_id) } }
                            td { (u.grants.iter().map(|g| format!("{} at {}", g.role, g.site_id)).collect::<Vec<_>>().join(", ")) }
                            td { @if u.second_factor { "enrolled" } @else { "none" } }
                            td { @match &u.locked_until { Some(t) => { "locked until " (utc(t)) }, None => { "not locked" } } }
                            td { (utc(&u.created_at)) " by " (u.created_by) }
                        }
                    }
                }
            }
            (create_form(viewer))
        }
        section aria-labelledby="tokens-h" {
            h2 #tokens-h { "Source systems' API tokens (" (tokens.count) ")" }
            table {
                caption.skip { "API tokens" }
                thead { tr {
                    th scope="col" { "Token" } th scope="col" { "System" } th scope="col" { "Sites" }
                    th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { "Revoke" }
                } }
                tbody {
                    @for t in &tokens.tokens {
                        tr {
                            td.coi { (t.token_id) }
                            td { (t.system_id) }
                            td { (t.sites.join(", ")) }
                            td { (utc(&t.expires_at)) }
                            td { (t.state) }
                            td {
                                @if t.state == "active" {
                                    form method="post" action={ "/admin/tokens/" (t.token_id) "/revoke" } {
                                        (csrf_field(viewer))
                                        button.secondary type="submit" { "Revoke token of " (t.system_id) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (issue_form(viewer))
        }
    })
}

fn outcome_markup(outcome: Option<Outcome>) -> Markup {
    html! {
        @match outcome {
            Some(Outcome::Refused(f)) => {
                p.banner.critical role="alert" { "Not recorded: " (f.field) " " (f.value) ": " (f.rule) }
            },
            Some(Outcome::Secret(m)) => { div.banner.info role="status" { (m) } },
            None => {},
        }
    }
}

fn create_form(viewer: &Viewer) -> Markup {
    html! {
        form.card method="post" action="/admin/users" {
            h3 { "Create an account" }
            (csrf_field(viewer))
            label for="new-person" { "Person id (registered in the personnel registry)" }
            input #new-person name="person_id" required autocomplete="off";
            label for="new-password" { "Initial password (at least 12 characters; also their signing secret)" }
            input #new-password name="password" type="password" required minlength="12" autocomplete="new-password";
            p { button type="submit" { "Create the account (its TOTP key is shown once)" } }
        }
    }
}

fn issue_form(viewer: &Viewer) -> Markup {
    html! {
        form.card method="post" action="/admin/tokens" {
            h3 { "Issue an API token" }
            (csrf_field(viewer))
            label for="system" { "Source system id (registered)" }
            input #system name="system_id" required autocomplete="off";
            label for="sites" { "Sites (comma-separated; empty: the system's owning site)" }
            input #sites name="sites" autocomplete="off";
            label for="days" { "Valid for days (empty: 90)" }
            input #days name="valid_days" inputmode="numeric" pattern="[0-9]*" autocomplete="off";
            p { button type="submit" { "Issue the token (shown once)" } }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    person_id: String,
    #[serde(default)]
    password: String,
}

/// `POST /admin/users`: creates the account and shows its TOTP key once.
pub(crate) async fn create(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let viewer = administrator(&app, &headers, &uri).await?;
    let f: CreateForm = parse_form(&body)?;
    viewer.check_csrf(&f.csrf)?;
    let person = f.person_id.trim();
    let outcome = match app
        .create_user(person, &f.password, &viewer.principal.actor)
        .await
    {
        Ok(created) => Outcome::Secret(totp_shown(&created.person_id, &created.totp_secret)),
        Err(e) => Outcome::Refused(refusal(e)?),
    };
    answer(&app, &viewer, outcome).await
}

/// The index with the outcome on top; a refusal answers 400.
async fn answer(
    app: &Autolog,
    viewer: &Viewer,
    outcome: Outcome,
) -> Result<Response, ConsoleError> {
    let status = match outcome {
        Outcome::Refused(_) => StatusCode::BAD_REQUEST,
        Outcome::Secret(_) => StatusCode::OK,
    };
    let body = index_body(app, viewer, Some(outcome)).await?;
    Ok((
        status,
        page(Some(viewer), "Administration", Nav::Admin, body),
    )
        .into_response())
}

/// A refusal the form can show (invalid input, a conflict, an unknown record); anything
/// else is the page's error.
fn refusal(e: AppError) -> Result<FieldError, ConsoleError> {
    match e {
        AppError::Invalid(f) | AppError::Conflict(f) => Ok(f),
        AppError::NotFound { what, id } => Ok(FieldError::new(what, id, "is not known")),
        other => Err(other.into()),
    }
}

/// A TOTP key shown once: as text, and as a QR code of its `otpauth://` URI.
fn totp_shown(person_id: &str, key: &str) -> Markup {
    let uri = format!(
        "otpauth://totp/Autolog:{person_id}?secret={key}&issuer=Autolog&algorithm=SHA1&digits=6&period=30"
    );
    let svg = qrcode::QrCode::new(uri.as_bytes()).ok().map(|code| {
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build()
    });
    html! {
        h2 { "Second factor of " (person_id) ": shown this once" }
        p { "Scan the code with the authenticator app, or type the key. Autolog keeps it sealed and never shows it again." }
        @if let Some(svg) = svg {
            img.qr src={ "data:image/svg+xml," (url_encode(&svg)) }
                alt={ "QR code of the TOTP key of " (person_id) } width="200" height="200";
        }
        p { "Key: " code.coi { (key) } }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct IssueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    system_id: String,
    #[serde(default)]
    sites: String,
    #[serde(default)]
    valid_days: String,
}

/// `POST /admin/tokens`: issues a token and shows it once.
pub(crate) async fn issue(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let viewer = administrator(&app, &headers, &uri).await?;
    let f: IssueForm = parse_form(&body)?;
    viewer.check_csrf(&f.csrf)?;
    let sites: Vec<String> = f
        .sites
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let days = match f.valid_days.trim() {
        "" => None,
        d => match d.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                let f = FieldError::new("valid_days", d, "must be a whole number of days");
                return answer(&app, &viewer, Outcome::Refused(f)).await;
            }
        },
    };
    let outcome = match app
        .issue_token(f.system_id.trim(), &sites, days, &viewer.principal.actor)
        .await
    {
        Ok(t) => Outcome::Secret(html! {
            h2 { "API token of " (t.system_id) ": shown this once" }
            p { "Give it to the system's operator over a secure channel. Only its hash is kept." }
            p { "Token: " code.coi { (t.token) } }
            p { "Sites: " (t.sites.join(", ")) "; expires " (utc(&t.expires_at)) }
        }),
        Err(e) => Outcome::Refused(refusal(e)?),
    };
    answer(&app, &viewer, outcome).await
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/tokens/{token_id}/revoke`.
pub(crate) async fn revoke_token(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(token_id): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let viewer = administrator(&app, &headers, &uri).await?;
    let f: CsrfForm = parse_form(&body)?;
    viewer.check_csrf(&f.csrf)?;
    match app.revoke_token(&token_id, &viewer.principal.actor).await {
        Ok(_) => Ok(Redirect::to("/admin#tokens-h").into_response()),
        Err(e) => answer(&app, &viewer, Outcome::Refused(refusal(e)?)).await,
    }
}

/// `GET /admin/users/{person_id}`: one account, its roles and what can be done to it.
pub(crate) async fn user(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(person_id): Path<String>,
) -> Result<Response, ConsoleError> {
    let viewer = administrator(&app, &headers, &uri).await?;
    let body = user_body(&app, &viewer, &person_id, None).await?;
    Ok(page(Some(&viewer), &person_id, Nav::Admin, body).into_response())
}

async fn user_body(
    app: &Autolog,
    viewer: &Viewer,
    person_id: &str,
    outcome: Option<Outcome>,
) -> Result<Markup, ConsoleError> {
    let u = app.user(person_id).await?;
    let base = format!("/admin/users/{}", url_encode(&u.person_id));
    Ok(html! {
        h1 { "Account " (u.person_id) }
        p { a href="/admin" { "All accounts" } }
        (outcome_markup(outcome))
        dl.facts {
            dt { "Created" } dd { (utc(&u.created_at)) " by " (u.created_by) }
            dt { "Second factor" } dd { @if u.second_factor { "enrolled" } @else { "none" } }
            dt { "Failed attempts in a row" } dd { (u.failed_attempts) }
            dt { "Locked" } dd { @match &u.locked_until { Some(t) => { "until " (utc(t)) }, None => { "no" } } }
        }
        h2 { "Roles" }
        @if u.grants.is_empty() { p.quiet { "No role." } }
        table {
            caption.skip { "Roles" }
            thead { tr { th scope="col" { "Role" } th scope="col" { "Site" } th scope="col" { "Granted" } th scope="col" { "Revoke" } } }
            tbody {
                @for g in &u.grants {
                    tr {
                        td { (g.role) } td { (g.site_id) } td { (utc(&g.granted_at)) " by " (g.granted_by) }
                        td {
                            form method="post" action={ (base) "/revoke" } {
                                (csrf_field(viewer))
                                input type="hidden" name="role" value=(g.role);
                                input type="hidden" name="site_id" value=(g.site_id);
                                button.secondary type="submit" { "Revoke " (g.role) " at " (g.site_id) }
                            }
                        }
                    }
                }
            }
        }
        form.card method="post" action={ (base) "/grant" } {
            h3 { "Grant a role" }
            (csrf_field(viewer))
            label for="role" { "Role" }
            select #role name="role" required {
                @for r in ROLES { option value=(r.as_str()) { (r.as_str()) } }
            }
            label for="site_id" { "Site (a site id, or * for every site)" }
            input #site_id name="site_id" required autocomplete="off";
            p { button type="submit" { "Record the grant" } }
        }
        form.card method="post" action={ (base) "/unlock" } {
            h3 { "Unlock" }
            (csrf_field(viewer))
            p { button type="submit" { "Unlock " (u.person_id) } }
        }
        form.card method="post" action={ (base) "/second-factor" } {
            h3 { "New second factor (a lost phone)" }
            (csrf_field(viewer))
            p { button type="submit" { "Replace the TOTP key of " (u.person_id) " (shown once)" } }
        }
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct GrantForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    site_id: String,
}

/// What an account form asks for.
#[derive(Debug, Clone, Copy)]
enum AccountChange {
    Grant,
    Revoke,
    Unlock,
    SecondFactor,
}

/// Records the account change as the administrator; back to the account page, showing a
/// new TOTP key once, or the refusal.
async fn change(
    app: &Autolog,
    headers: &HeaderMap,
    uri: &Uri,
    person_id: &str,
    body: &[u8],
    what: AccountChange,
) -> Result<Response, ConsoleError> {
    let viewer = administrator(app, headers, uri).await?;
    let f: GrantForm = parse_form(body)?;
    viewer.check_csrf(&f.csrf)?;
    let actor = viewer.principal.actor.as_str();
    let (role, site) = (f.role.trim(), f.site_id.trim());
    let done: Result<Option<Markup>, AppError> = match what {
        AccountChange::Grant => app
            .grant_role(person_id, role, site, actor)
            .await
            .map(|_| None),
        AccountChange::Revoke => app
            .revoke_role(person_id, role, site, actor)
            .await
            .map(|_| None),
        AccountChange::Unlock => app.unlock_user(person_id, actor).await.map(|_| None),
        AccountChange::SecondFactor => app
            .reset_second_factor(person_id, actor)
            .await
            .map(|r| Some(totp_shown(&r.person_id, &r.totp_secret))),
    };
    let (status, outcome) = match done {
        Ok(None) => {
            let to = format!("/admin/users/{}", url_encode(person_id));
            return Ok(Redirect::to(&to).into_response());
        }
        Ok(Some(secret)) => (StatusCode::OK, Outcome::Secret(secret)),
        Err(e) => (StatusCode::BAD_REQUEST, Outcome::Refused(refusal(e)?)),
    };
    let body = user_body(app, &viewer, person_id, Some(outcome)).await?;
    Ok((status, page(Some(&viewer), person_id, Nav::Admin, body)).into_response())
}

/// `POST /admin/users/{person_id}/{action}`: `grant`, `revoke`, `unlock` or
/// `second-factor`.
pub(crate) async fn account_action(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path((person_id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let what = match action.as_str() {
        "grant" => AccountChange::Grant,
        "revoke" => AccountChange::Revoke,
        "unlock" => AccountChange::Unlock,
        "second-factor" => AccountChange::SecondFactor,
        _ => {
            return Err(AppError::NotFound {
                what: "account action",
                id: action,
            }
            .into())
        }
    };
    change(&app, &headers, &uri, &person_id, &body, what).await
}
