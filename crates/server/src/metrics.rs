//! Metrics in the Prometheus/OpenMetrics text format: request latency per route and status,
//! refusals per route and rule code, the append writer's group sizes and commit latencies,
//! the ledger's size, the backlogs (projection, outbound feed, webhooks), and the signals
//! of master data failing per signal, site, source system and product (never per patient). Served only on a listen address of its
//! own (`--metrics-listen`, typically loopback or a monitoring network), never on the
//! API's: the figures say nothing about a patient, but they are not for the API's callers.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use autolog_app::Buckets;
use autolog_app::{Autolog, NatsOptions, SignalTally};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::error::RuleCode;

/// A request's labels: its method, its route as the router matched it (never the path
/// itself, which may carry a COI or a DIN), and the status answered.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

type RequestSeconds = Family<HttpLabels, Histogram, fn() -> Histogram>;

/// A refused request's labels: its matched route and the kind of rule it broke.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    route: String,
    rule_code: &'static str,
}

/// A signal's labels (empty text where it has no site, source system or product).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabels {
    signal: &'static str,
    site_id: String,
    source_system: String,
    product_code: String,
}

/// A chain state, as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// Request latencies from 1 ms to about 16 s.
fn request_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The server's metrics: its registry and what the scrape sets.
pub struct Metrics {
    registry: Registry,
    requests: RequestSeconds,
    refusals: Family<RefusalLabels, Counter>,
    signals: Arc<Mutex<Vec<SignalTally>>>,
    ledger_events: Gauge,
    projection_lag: Gauge,
    outbox_lag: Gauge,
    webhook_pending: Gauge,
    chains: Family<StateLabel, Gauge>,
    app: Arc<Autolog>,
    nats: Option<NatsOptions>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of a server on `app`; `nats` is the outbound feed it publishes, if any.
    pub fn new(app: Arc<Autolog>, nats: Option<NatsOptions>) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("autolog");
        let requests = RequestSeconds::new_with_constructor(request_seconds);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method, matched route and status",
            requests.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "Requests refused for their content, by matched route and rule code (check_character: a misread identifier; not_registered: an unknown record)",
            refusals.clone(),
        );
        let signals = Arc::new(Mutex::new(Vec::new()));
        registry.register_collector(Box::new(SignalCounters(signals.clone())));
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let ledger_events = gauge(&mut registry, "ledger_events", "Events in the ledger");
        let projection_lag = gauge(
            &mut registry,
            "chain_projection_lag_events",
            "Ledger events the chain projection has not folded yet",
        );
        let outbox_lag = gauge(
            &mut registry,
            "outbox_lag_events",
            "Ledger events the NATS feed has not published yet (0 without a feed)",
        );
        let webhook_pending = gauge(
            &mut registry,
            "webhook_pending_deliveries",
            "Webhook deliveries waiting to be sent or retried",
        );
        let chains = Family::<StateLabel, Gauge>::default();
        registry.register(
            "chains",
            "Chains in each state, from the chain projection",
            chains.clone(),
        );
        registry.register_collector(Box::new(WriterStats(app.clone())));
        Arc::new(Metrics {
            registry,
            requests,
            refusals,
            signals,
            ledger_events,
            projection_lag,
            outbox_lag,
            webhook_pending,
            chains,
            app,
            nats,
        })
    }

    /// Counts one answered request (and its refusal, when it broke a rule).
    fn observe(&self, labels: HttpLabels, seconds: f64, refused: Option<RuleCode>) {
        if let Some(RuleCode(rule_code)) = refused {
            let route = labels.route.clone();
            self.refusals
                .get_or_create(&RefusalLabels { route, rule_code })
                .inc();
        }
        self.requests.get_or_create(&labels).observe(seconds);
    }

    /// The metrics now, in the text format.
    pub async fn scrape(&self) -> Result<String, autolog_app::AppError> {
        let backlog = self.app.backlog(self.nats.as_ref()).await?;
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.ledger_events.set(as_i64(backlog.ledger_events));
        self.projection_lag
            .set(as_i64(backlog.chain_projection_lag));
        self.outbox_lag.set(as_i64(backlog.outbox_lag.unwrap_or(0)));
        self.webhook_pending.set(as_i64(backlog.webhook_pending));
        // Every state, so that a state no chain is in any more reads 0, not its last count.
        for state in autolog_domain::chain::ChainState::ALL {
            let count = backlog
                .chains_by_state
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.chains
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(as_i64(count));
        }
        let tallies = self.app.signal_totals().await?;
        if let Ok(mut signals) = self.signals.lock() {
            *signals = tallies;
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| autolog_app::AppError::Config(format!("metrics encoding failed: {e}")))?;
        Ok(text)
    }
}

/// The append writer's statistics, read from the store at each scrape.
struct WriterStats(Arc<Autolog>);

impl fmt::Debug for WriterStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriterStats")
    }
}

fn encode_buckets(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    buckets: &Buckets,
) -> Result<(), fmt::Error> {
    let bounds = buckets.bounds.iter().copied().chain([f64::MAX]);
    let pairs: Vec<(f64, u64)> = bounds.zip(buckets.counts.iter().copied()).collect();
    encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(buckets.sum, buckets.count, &pairs, None)
}

impl Collector for WriterStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.0.commit_stats();
        encode_buckets(
            &mut encoder,
            "append_group_events",
            "Events in each committed append group (group commit)",
            &stats.group_events,
        )?;
        encode_buckets(
            &mut encoder,
            "append_commit_seconds",
            "Time from an append group's first statement to its durable commit",
            &stats.commit_seconds,
        )?;
        let mut failed = encoder.encode_descriptor(
            "append_failed_groups",
            "Append groups that could not commit",
            None,
            MetricType::Counter,
        )?;
        failed.encode_counter::<NoLabelSet, _, u64>(&stats.failed_groups, None)
    }
}

/// The signals counted from the ledger, as of the scrape that read them.
struct SignalCounters(Arc<Mutex<Vec<SignalTally>>>);

impl fmt::Debug for SignalCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignalCounters")
    }
}

impl Collector for SignalCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "signals",
            "Signals of master data failing, from the ledger, by signal, site, source system and product (the weekly trend: GET /api/v1/signals)",
            None,
            MetricType::Counter,
        )?;
        let tallies = self.0.lock().map_err(|_| fmt::Error)?;
        for t in tallies.iter() {
            let labels = SignalLabels {
                signal: t.signal.as_str(),
                site_id: t.site_id.clone().unwrap_or_default(),
                source_system: t.source_system.clone().unwrap_or_default(),
                product_code: t.product_code.clone().unwrap_or_default(),
            };
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&t.count, None)?;
        }
        Ok(())
    }
}

/// Middleware: times every request of the API's router by its matched route.
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Any token is a method to HTTP: the label takes only the standard ones, so that a
    // client cannot make a series per invented method.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "TRACE"
        | "CONNECT") => m.to_string(),
        _ => "OTHER".to_string(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let labels = HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    let refused = response.extensions().get::<RuleCode>().copied();
    metrics.observe(labels, started.elapsed().as_secs_f64(), refused);
    response
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.scrape().await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics scrape failed");
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
    }
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(metrics_text))
        .with_state(metrics);
    axum::serve(listener, router).await
}
