//! Autolog's HTTP API: thin axum routes that parse, call the app layer and map its errors
//! to JSON answers with status codes. The only crate that knows about JSON-over-HTTP.
#![forbid(unsafe_code)]

mod error;
mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use autolog_app::Autolog;
use tokio::net::TcpListener;

pub use error::ApiError;
pub use routes::router;

/// The OpenAPI 3.1 description served at `/api/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How often a checkpoint is signed when the ledger has grown.
    pub checkpoint_interval: Duration,
    /// How often the webhook worker looks for due deliveries (it also wakes on each alert).
    pub webhook_interval: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            checkpoint_interval: Duration::from_secs(10),
            webhook_interval: Duration::from_secs(2),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, signing checkpoints in the
/// background; a last checkpoint is signed on the way out.
pub async fn serve(
    listener: TcpListener,
    app: Arc<Autolog>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let checkpointer = tokio::spawn(checkpoint_loop(app.clone(), options.checkpoint_interval));
    let webhooks = tokio::spawn(app.clone().run_webhook_worker(options.webhook_interval));
    let result = axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    checkpointer.abort();
    webhooks.abort();
    if let Err(e) = app.checkpoint_if_grown().await {
        tracing::warn!(error = %e, "final checkpoint failed");
    }
    result
}

async fn checkpoint_loop(app: Arc<Autolog>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = app.checkpoint_if_grown().await {
            tracing::warn!(error = %e, "checkpoint failed; will retry");
        }
    }
}
