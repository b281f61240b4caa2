//! Autolog's HTTP server: the API (thin axum routes that parse, call the app layer and map
//! its errors to JSON answers with status codes) and the console (server-rendered HTML for
//! people, `console/`). The only crate that knows about HTTP.
#![forbid(unsafe_code)]

mod auth;
mod connections;
mod console;
mod epcis;
mod error;
mod fhir;
mod hardening;
mod metrics;
mod openapi;
mod request_id;
mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use autolog_app::Autolog;
pub use autolog_app::NatsOptions;
use tokio::net::TcpListener;

pub use auth::{access_of, Access, CSRF_HEADER, ROUTES, SESSION_COOKIE};
pub use error::ApiError;
pub use hardening::{RateLimit, TlsFiles};
pub use request_id::REQUEST_ID_HEADER;
pub use routes::router;

/// The OpenAPI 3.1 description served at `/api/openapi.json` (`openapi.rs`).
pub use openapi::document as openapi_document;

/// How often the background projector looks for appends by other servers sharing the
/// database (it also wakes after each append by this one).
const PROJECTOR_INTERVAL: Duration = Duration::from_secs(2);

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How often a checkpoint is signed when the ledger has grown.
    pub checkpoint_interval: Duration,
    /// How often the webhook worker looks for due deliveries (it also wakes on each alert).
    pub webhook_interval: Duration,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Requests allowed per client address; `None` turns the limit off.
    pub rate_limit: Option<RateLimit>,
    /// Publish every committed event to NATS JetStream (at least once, in position order).
    pub nats: Option<NatsOptions>,
    /// A request's head must arrive within this; a keep-alive connection idle this long
    /// between requests is closed too.
    pub header_read_timeout: Duration,
    /// Connections one client address may hold open at once; more are closed at once.
    pub max_connections_per_client: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            checkpoint_interval: Duration::from_secs(10),
            webhook_interval: Duration::from_secs(2),
            tls: None,
            rate_limit: Some(RateLimit::default()),
            nats: None,
            header_read_timeout: Duration::from_secs(30),
            max_connections_per_client: 512,
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, signing checkpoints in the
/// background; a last checkpoint is signed on the way out. It refuses to start when the
/// database's signing or vault key is not the instance's (naming both ids). Every answer carries the
/// security headers, each client address is rate limited, and with `options.tls` the API
/// is served over TLS only: the certificate and key are read first, and a file that cannot
/// be used is an error naming it before any connection is accepted. With `options.nats`,
/// every committed event is published to NATS JetStream from the ledger (the outbox) by a
/// background task that retries while NATS is down and never holds up an append.
pub async fn serve(
    listener: TcpListener,
    app: Arc<Autolog>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_metrics(listener, None, app, options, shutdown).await
}

/// [`serve`], and `GET /metrics` (Prometheus/OpenMetrics text: request latency per route
/// and status, append group sizes and commit latencies, ledger size and backlogs) on
/// `metrics_listener`, apart from the API and without its sign-in.
pub async fn serve_with_metrics(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    app: Arc<Autolog>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    app.check_keys_match_database()
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    // Secrets stored in clear by an earlier version, or before a vault key was configured.
    app.seal_clear_secrets()
        .await
        .map_err(|e| std::io::Error::other(format!("cannot seal stored secrets: {e}")))?;
    if let Some(nats) = &options.nats {
        nats.check()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    }
    let tls = match &options.tls {
        Some(files) => Some(files.server_config().await?),
        None => None,
    };
    let limiter = options
        .rate_limit
        .map(hardening::RateLimiter::new)
        .transpose()?;
    let metrics = metrics::Metrics::new(app.clone(), options.nats.clone());
    let metrics_server = metrics_listener
        .map(|listener| tokio::spawn(metrics::serve_metrics(listener, metrics.clone())));
    let service = hardening::harden(router(app.clone(), metrics), tls.is_some(), limiter);
    let limits = connections::Limits {
        header_read_timeout: options.header_read_timeout,
        max_connections_per_client: options.max_connections_per_client.max(1),
    };
    let listener = match tls {
        Some(config) => Listening::Tls(hardening::TlsListener::new(listener, config)?),
        None => Listening::Plain(listener),
    };
    let checkpointer = tokio::spawn(checkpoint_loop(app.clone(), options.checkpoint_interval));
    let webhooks = tokio::spawn(app.clone().run_webhook_worker(options.webhook_interval));
    let projector = tokio::spawn(app.clone().run_projector(PROJECTOR_INTERVAL));
    let publisher = options
        .nats
        .clone()
        .map(|nats| tokio::spawn(app.clone().run_nats_publisher(nats)));
    match listener {
        Listening::Tls(listener) => {
            connections::serve_connections(listener, service, limits, shutdown).await
        }
        Listening::Plain(listener) => {
            connections::serve_connections(listener, service, limits, shutdown).await
        }
    }
    checkpointer.abort();
    webhooks.abort();
    projector.abort();
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    if let Some(publisher) = publisher {
        publisher.abort();
    }
    app.flush_access_refusals(true).await;
    if let Err(e) = app.checkpoint_if_grown().await {
        tracing::warn!(error = %e, "final checkpoint failed");
    }
    Ok(())
}

enum Listening {
    Plain(TcpListener),
    Tls(hardening::TlsListener),
}

async fn checkpoint_loop(app: Arc<Autolog>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        app.flush_access_refusals(false).await;
        if let Err(e) = app.checkpoint_if_grown().await {
            tracing::warn!(error = %e, "checkpoint failed; will retry");
        }
    }
}

#[cfg(test)]
mod openapi_tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    fn document() -> Value {
        serde_json::from_str(super::openapi::document()).expect("the document is JSON")
    }

    /// The document describes exactly the operations of the access table (which a router
    /// test holds equal to the router): no route undocumented, no documented route missing.
    #[test]
    fn the_document_describes_exactly_the_routes() {
        let doc = document();
        let methods = ["get", "post", "put", "delete", "patch", "options", "head"];
        let mut documented = BTreeSet::new();
        for (path, operations) in doc["paths"].as_object().expect("paths") {
            for method in operations.as_object().expect("operations").keys() {
                if methods.contains(&method.as_str()) {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<(String, String)> = crate::auth::ROUTES
            .iter()
            .map(|(method, path, _)| (method.to_string(), path.replace("{*", "{")))
            .collect();
        assert_eq!(documented, routed);
    }

    /// Every `$ref` of the served document names a schema it holds: the generated ones
    /// (event types, codes, registries, vocabularies) are where the written paths point.
    #[test]
    fn every_reference_of_the_document_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 50, "the document refers to its schemas");
        for r in refs {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} resolves");
        }
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["EventType"]["enum"].as_array().map(Vec::len),
            Some(autolog_domain::catalogue::EVENT_TYPES.len())
        );
        let biz = schemas["EpcisBizSteps"]["pattern"]
            .as_str()
            .expect("pattern");
        assert!(
            biz.contains("|accepting|") || biz.contains("(?:accepting|"),
            "{biz}"
        );
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
