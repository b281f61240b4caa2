//! The chain of identity: enrolment (the COI issued), the chains a caller may see (from
//! the chain projection), and a chain as of any moment.

use autolog_app::Principal;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::params::{query_params, whole_number, AsOf, QueryOf};
use super::{path_param, request_body, AppState, PathParam};
use crate::ApiError;

/// The routes of this area, to be merged into the API router.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/chains", post(enrol).get(chains))
        .route("/api/v1/chains/{coi}", get(chain))
        .route("/api/v1/chains/{coi}/dossier", get(dossier))
        .route("/api/v1/sites/{site_id}/work", get(site_work))
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
    Ok((status, Json(Enrolled { coi, result })))
}

query_params! {
    /// `GET /api/v1/chains`: by site, state and product, a page by COI.
    ChainParams {
        site_id: Option<String>,
        state: Option<String>,
        product_code: Option<String>,
        patient_key: Option<String>,
        after: Option<String>,
        #[serde(default, deserialize_with = "whole_number")]
        limit: Option<u32>,
    }
}

async fn chains(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryOf(q): QueryOf<ChainParams>,
) -> Result<Json<autolog_app::ChainList>, ApiError> {
    let filter = autolog_app::ChainFilter {
        site_id: q.site_id,
        state: q.state,
        product_code: q.product_code,
        patient_key: q.patient_key,
        after: q.after,
        limit: q.limit,
    };
    Ok(Json(app.chains(&principal.grants, &filter).await?))
}

query_params! {
    /// `GET /api/v1/sites/{site_id}/work`: at most `limit` chains in each list.
    WorkParams {
        #[serde(default, deserialize_with = "whole_number")]
        limit: Option<u32>,
    }
}

async fn site_work(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    site_id: PathParam,
    QueryOf(q): QueryOf<WorkParams>,
) -> Result<Json<autolog_app::SiteWork>, ApiError> {
    let site_id = path_param("site_id", site_id)?;
    Ok(Json(
        app.site_work(&principal.grants, &site_id, q.limit).await?,
    ))
}

async fn chain(
    State(app): State<AppState>,
    coi: PathParam,
    QueryOf(q): QueryOf<AsOf>,
) -> Result<Json<autolog_app::ChainAnswer>, ApiError> {
    let coi = path_param("coi", coi)?;
    let chain = app
        .chain(&coi, q.valid_at.as_deref(), q.known_at.as_deref())
        .await?;
    Ok(Json(chain))
}

query_params! {
    /// `GET /api/v1/chains/{coi}/dossier`: as of a valid and a known time; JSON or PDF.
    DossierParams {
        valid_at: Option<String>,
        known_at: Option<String>,
        format: Option<String>,
    }
}

/// The chain's inspection dossier (docs/dossier.md): JSON, or the PDF/A-3b report with
/// the JSON embedded.
async fn dossier(
    State(app): State<AppState>,
    coi: PathParam,
    QueryOf(q): QueryOf<DossierParams>,
) -> Result<axum::response::Response, ApiError> {
    let coi = path_param("coi", coi)?;
    let (valid_at, known_at) = (q.valid_at.as_deref(), q.known_at.as_deref());
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(app.dossier(&coi, valid_at, known_at).await?).into_response()),
        "pdf" => {
            let pdf = app.dossier_pdf(&coi, valid_at, known_at).await?;
            Ok(([(axum::http::header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
        }
        other => {
            Err(autolog_domain::FieldError::new("format", other, "must be json or pdf").into())
        }
    }
}

/// An enrolment's answer: the COI issued, beside what the append recorded.
#[derive(serde::Serialize)]
struct Enrolled {
    coi: String,
    #[serde(flatten)]
    result: autolog_app::AppendResult,
}
