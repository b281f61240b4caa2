//! A witness of other ledgers' checkpoints: it takes a checkpoint signed by a ledger it
//! witnesses with the consistency proof from the one it holds, countersigns what extends
//! it, refuses a fork (with a critical alert), and answers what it holds. Public: what
//! it accepts must be signed by a key the operator configured (`serve --witness-for`).

use autolog_app::Witnessed;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::params::{query_params, QueryOf};
use super::{typed_body, AppState};
use crate::ApiError;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/witness/checkpoints", post(witness))
        .route("/api/v1/witness/checkpoints/latest", get(latest))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessBody {
    public_key: String,
    checkpoint: Value,
    #[serde(default)]
    consistency: Consistency,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Consistency {
    from: Option<u64>,
    #[serde(default)]
    proof: Vec<String>,
}

/// `POST /api/v1/witness/checkpoints`: 201 with the countersignature; 409 when it does
/// not extend what is held (a fork, an older tree, or a proof from another size).
async fn witness(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Witnessed>), ApiError> {
    let b: WitnessBody = typed_body(body)?;
    let kept = app
        .witness_checkpoint(
            &b.public_key,
            &b.checkpoint,
            b.consistency.from,
            &b.consistency.proof,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(kept)))
}

query_params! {
    /// `GET /api/v1/witness/checkpoints/latest`: of the ledger with this key id.
    LatestParams {
        origin_key_id: String,
    }
}

async fn latest(
    State(app): State<AppState>,
    QueryOf(q): QueryOf<LatestParams>,
) -> Result<Json<Witnessed>, ApiError> {
    Ok(Json(app.witnessed_latest(&q.origin_key_id).await?))
}
