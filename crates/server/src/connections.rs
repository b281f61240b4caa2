//! Accepting and serving connections, with the limits a public server needs against slow
//! or greedy clients: a request's head must arrive within `header_read_timeout` (hyper's
//! timer; it also closes a keep-alive connection left idle that long between requests),
//! and one client address holds at most `max_connections_per_client` connections at
//! once (more are closed as soon as they are accepted). A response being streamed (the
//! alert event stream) is not cut: the timeout runs only while a request head is awaited.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::{Extension, Router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::ServiceExt;

/// How long open connections may take to finish once shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The connection limits of [`serve_connections`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections_per_client: usize,
}

/// Connections open per client address.
#[derive(Default)]
struct OpenConnections(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`OpenConnections`], given back when dropped.
struct Slot {
    open: Arc<OpenConnections>,
    client: IpAddr,
}

impl OpenConnections {
    fn take(self: &Arc<Self>, client: IpAddr, max: usize) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            open: Arc::clone(self),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Serves `router` on every connection `listener` accepts, until `shutdown` completes;
/// then lets open connections finish (at most [`SHUTDOWN_GRACE`]).
pub(crate) async fn serve_connections<L>(
    mut listener: L,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    L: Listener<Addr = SocketAddr>,
{
    let open = Arc::new(OpenConnections::default());
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let Some(slot) = open.take(peer.ip(), limits.max_connections_per_client) else {
            tracing::warn!(client = %peer.ip(), "connection refused: too many open from this address");
            drop(io);
            continue;
        };
        let service = router
            .clone()
            .layer(Extension(ConnectInfo(peer)))
            .map_request(|request: hyper::Request<Incoming>| request.map(axum::body::Body::new));
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stopping.changed() => connection.as_mut().graceful_shutdown(),
                }
            }
        });
    }
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while !open.0.lock().map(|o| o.is_empty()).unwrap_or(true)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
