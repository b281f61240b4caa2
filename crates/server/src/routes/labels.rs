//! Labels: printed from the ledger (the print is recorded first), drawn again from that
//! record as PDF, SVG or ZPL, voided, and verified by scanning them back.

use autolog_app::labels::{Label, LabelList, PrintRequest, Verification, VerifyRequest};
use autolog_app::Principal;
use autolog_domain::FieldError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::params::QueryOf;
use super::{path_param, typed_body, AppState, PathParam};
use crate::ApiError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/chains/{coi}/labels", post(print).get(labels))
        .route("/api/v1/chains/{coi}/labels/{container}", get(label))
        .route("/api/v1/chains/{coi}/labels/{container}/void", post(void))
        .route("/api/v1/labels/verify", post(verify))
}

/// `POST /api/v1/chains/{coi}/labels`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrintBody {
    container: String,
    template_id: Option<String>,
    site_id: String,
    printer: String,
    printed_by: Option<String>,
    reprint_reason: Option<String>,
}

async fn print(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    coi: PathParam,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Label>), ApiError> {
    let coi = path_param("coi", coi)?;
    let b: PrintBody = typed_body(body)?;
    let request = PrintRequest {
        coi,
        container: b.container,
        template_id: b.template_id,
        site_id: b.site_id,
        printer: b.printer,
        printed_by: b.printed_by,
        reprint_reason: b.reprint_reason,
    };
    Ok((
        StatusCode::CREATED,
        Json(app.print_label(&principal, &request).await?),
    ))
}

async fn labels(State(app): State<AppState>, coi: PathParam) -> Result<Json<LabelList>, ApiError> {
    let coi = path_param("coi", coi)?;
    Ok(Json(LabelList {
        labels: app.labels_of(&coi).await?,
    }))
}

super::params::query_params! {
    /// `GET /api/v1/chains/{coi}/labels/{container}`: `json` (the record), `pdf`, `svg`
    /// or `zpl`.
    FormatParams {
        format: Option<String>,
    }
}

/// The label in force on a container, drawn from its record.
async fn label(
    State(app): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    QueryOf(q): QueryOf<FormatParams>,
) -> Result<Response, ApiError> {
    let Path((coi, container)) =
        path.map_err(|e| FieldError::new("container", "(unreadable)", e.body_text()))?;
    let format = q.format.unwrap_or_else(|| "json".to_string());
    let label = app.current_label(&coi, &container).await?;
    if format == "json" {
        return Ok(Json(label).into_response());
    }
    let (content_type, bytes) = autolog_app::labels::draw(&label, &format)?;
    let file = format!("{}-{}.{format}", label.content.container, label.copy);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{file}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /api/v1/chains/{coi}/labels/{container}/void`: the label in force on it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoidBody {
    site_id: String,
    reason: String,
    voided_by: Option<String>,
}

async fn void(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Label>, ApiError> {
    let Path((coi, container)) =
        path.map_err(|e| FieldError::new("container", "(unreadable)", e.body_text()))?;
    let b: VoidBody = typed_body(body)?;
    let label = app
        .void_label(
            &principal,
            &coi,
            &container,
            &b.site_id,
            &b.reason,
            b.voided_by.as_deref(),
        )
        .await?;
    Ok(Json(label))
}

/// `POST /api/v1/labels/verify`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    coi: String,
    container: String,
    site_id: String,
    scans: Vec<String>,
    verified_by: Option<String>,
}

/// Records the verification; its answer says `match` or `mismatch` (the chain then on
/// hold, with the hold's id). Either way the verification is recorded: 201.
async fn verify(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Verification>), ApiError> {
    let b: VerifyBody = typed_body(body)?;
    let request = VerifyRequest {
        coi: b.coi,
        container: b.container,
        site_id: b.site_id,
        scans: b.scans,
        verified_by: b.verified_by,
    };
    Ok((
        StatusCode::CREATED,
        Json(app.verify_label(&principal, &request).await?),
    ))
}
