//! Reports: reconciliation, retention, turnaround, signals, genealogy both ways.

use autolog_app::Principal;
use autolog_domain::access::Permission;
use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};

use super::params::{query_params, whole_number, AsOf, NoParams, QueryOf};
use super::{path_param, AppState, PathParam};
use crate::{auth, ApiError};

/// The routes of this area, to be merged into the API router.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reconciliation", get(reconciliation))
        .route("/api/v1/turnaround", get(turnaround))
        .route("/api/v1/retention", get(retention))
        .route("/api/v1/signals", get(signals))
        .route("/api/v1/genealogy/backward/{unit}", get(genealogy_backward))
        .route("/api/v1/genealogy/forward/{*lot}", get(genealogy_forward))
}

async fn reconciliation(
    State(app): State<AppState>,
    _q: QueryOf<NoParams>,
) -> Result<Json<autolog_app::Reconciliation>, ApiError> {
    Ok(Json(app.reconciliation().await?))
}

query_params! {
    /// `GET /api/v1/retention`: as of an instant, only chains releasable within some days.
    RetentionParams {
        as_of: Option<String>,
        #[serde(default, deserialize_with = "whole_number")]
        within_days: Option<u32>,
    }
}

async fn retention(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<RetentionParams>,
) -> Result<Json<autolog_app::Retention>, ApiError> {
    Ok(Json(
        app.retention_report(q.as_of.as_deref(), q.within_days)
            .await?,
    ))
}

query_params! {
    /// `GET /api/v1/turnaround`: one product or all, as it stood and as it was known.
    TurnaroundParams {
        product_code: Option<String>,
        valid_at: Option<String>,
        known_at: Option<String>,
    }
}

async fn turnaround(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<TurnaroundParams>,
) -> Result<Json<autolog_app::Turnaround>, ApiError> {
    Ok(Json(
        app.turnaround(
            q.product_code.as_deref(),
            q.valid_at.as_deref(),
            q.known_at.as_deref(),
        )
        .await?,
    ))
}

query_params! {
    /// `GET /api/v1/signals`: the weeks from `from` to `to` (dates or instants), one site.
    SignalParams {
        from: Option<String>,
        to: Option<String>,
        site_id: Option<String>,
    }
}

async fn signals(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<SignalParams>,
) -> Result<Json<autolog_app::SignalReport>, ApiError> {
    Ok(Json(
        app.signals(q.from.as_deref(), q.to.as_deref(), q.site_id.as_deref())
            .await?,
    ))
}

async fn genealogy_backward(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    unit: PathParam,
    QueryOf(q): QueryOf<AsOf>,
) -> Result<Json<autolog_app::BackwardGenealogy>, ApiError> {
    let unit = path_param("unit", unit)?;
    let found = app
        .genealogy_backward(&unit, q.valid_at.as_deref(), q.known_at.as_deref())
        .await?;
    auth::check_chain(&app, &principal, Permission::ReadChains, &found.coi).await?;
    Ok(Json(found))
}

async fn genealogy_forward(
    State(app): State<AppState>,
    lot: PathParam,
    QueryOf(q): QueryOf<AsOf>,
) -> Result<Json<autolog_app::ForwardGenealogy>, ApiError> {
    let lot = path_param("lot", lot)?;
    Ok(Json(
        app.genealogy_forward(&lot, q.valid_at.as_deref(), q.known_at.as_deref())
            .await?,
    ))
}
