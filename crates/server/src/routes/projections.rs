//! Reports: reconciliation, retention, turnaround, genealogy both ways.

use autolog_app::Principal;
use autolog_domain::access::Permission;
use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::Value;

use super::{number, only_params, path_param, query, AppState, Params, PathParam};
use crate::{auth, ApiError};

/// The routes of this area, to be merged into the API router.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reconciliation", get(reconciliation))
        .route("/api/v1/turnaround", get(turnaround))
        .route("/api/v1/retention", get(retention))
        .route("/api/v1/genealogy/backward/{unit}", get(genealogy_backward))
        .route("/api/v1/genealogy/forward/{*lot}", get(genealogy_forward))
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
