//! Sessions, users, role grants, API tokens and the personal-data vault.

use autolog_app::{Autolog, Principal};
use autolog_domain::access::Permission;
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::params::{query_params, NoParams, QueryOf};
use super::{fields, path_param, request_body, required, AppState, PathParam};
use crate::{auth, ApiError};

/// The routes of this area, to be merged into the API router.
pub(super) fn router() -> Router<AppState> {
    Router::new()
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
}

async fn sign_in(
    State(app): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let f = fields(body, &["person_id", "password", "totp"])?;
    // Failed sign-ins are throttled per account and client address.
    let client = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let signed_in = app
        .sign_in(
            required(&f, "person_id", false)?,
            required(&f, "password", true)?,
            required(&f, "totp", true)?,
            client,
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

async fn users(
    State(app): State<AppState>,
    _q: QueryOf<NoParams>,
) -> Result<Json<autolog_app::UserList>, ApiError> {
    Ok(Json(app.users().await?))
}

async fn user(
    State(app): State<AppState>,
    person_id: PathParam,
) -> Result<Json<autolog_app::UserInfo>, ApiError> {
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
) -> Result<Json<autolog_app::RoleChange>, ApiError> {
    change_role(&app, &principal, person_id, body, true).await
}

async fn revoke_role(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    person_id: PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<autolog_app::RoleChange>, ApiError> {
    change_role(&app, &principal, person_id, body, false).await
}

/// Grants (`grant`) or revokes a role at a site: the body is `{role, site_id}`.
async fn change_role(
    app: &Autolog,
    principal: &Principal,
    person_id: PathParam,
    body: Result<Bytes, BytesRejection>,
    grant: bool,
) -> Result<Json<autolog_app::RoleChange>, ApiError> {
    let person_id = path_param("person_id", person_id)?;
    let f = fields(body, &["role", "site_id"])?;
    let role = required(&f, "role", false)?;
    let site_id = required(&f, "site_id", false)?;
    let answer = if grant {
        app.grant_role(&person_id, role, site_id, &principal.actor)
            .await?
    } else {
        app.revoke_role(&person_id, role, site_id, &principal.actor)
            .await?
    };
    Ok(Json(answer))
}

async fn unlock_user(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    person_id: PathParam,
) -> Result<Json<autolog_app::UserUnlocked>, ApiError> {
    let person_id = path_param("person_id", person_id)?;
    Ok(Json(app.unlock_user(&person_id, &principal.actor).await?))
}

async fn reset_second_factor(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    person_id: PathParam,
) -> Result<Json<autolog_app::SecondFactorReset>, ApiError> {
    let person_id = path_param("person_id", person_id)?;
    Ok(Json(
        app.reset_second_factor(&person_id, &principal.actor)
            .await?,
    ))
}

async fn tokens(
    State(app): State<AppState>,
    _q: QueryOf<NoParams>,
) -> Result<Json<autolog_app::TokenList>, ApiError> {
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
) -> Result<Json<autolog_app::TokenRevoked>, ApiError> {
    let token_id = path_param("token_id", token_id)?;
    Ok(Json(app.revoke_token(&token_id, &principal.actor).await?))
}

query_params! {
    /// Why identifying data is read: a coded purpose, and a reason in words.
    ReadReason {
        purpose: Option<String>,
        reason: Option<String>,
    }
}

async fn read_personal_data(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    coi: PathParam,
    QueryOf(q): QueryOf<ReadReason>,
) -> Result<Json<autolog_app::PersonalData>, ApiError> {
    let coi = path_param("coi", coi)?;
    let patient_key = app.patient_key_of(&coi).await?;
    auth::check_personal_data_scope(&app, &principal, Permission::ReadPersonalData, &patient_key)
        .await?;
    Ok(Json(
        app.read_personal_data_for(
            &patient_key,
            &principal.actor,
            q.purpose.as_deref(),
            q.reason.as_deref(),
        )
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
) -> Result<Json<autolog_app::PersonalDataErased>, ApiError> {
    let coi = path_param("coi", coi)?;
    let f = fields(body, &["reason"])?;
    let reason = required(&f, "reason", false)?;
    Ok(Json(
        app.erase_personal_data(&coi, &principal.actor, reason)
            .await?,
    ))
}
