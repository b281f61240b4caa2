//! Transport hardening for the HTTP server: TLS (rustls, ring provider) from PEM files,
//! security headers on every answer, and a token-bucket rate limit per client address.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower_http::set_header::SetResponseHeaderLayer;

/// The PEM files `serve` reads to answer over TLS (HTTPS) instead of plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files and checks that they make a usable certificate and key; the error
    /// names the file at fault. `serve` does the same before it accepts a connection.
    pub async fn check(&self) -> io::Result<()> {
        self.server_config().await.map(|_| ())
    }

    pub(crate) async fn server_config(&self) -> io::Result<Arc<rustls::ServerConfig>> {
        let cert_pem = read_pem(&self.cert, "certificate").await?;
        let key_pem = read_pem(&self.key, "private key").await?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                invalid(format!(
                    "TLS certificate file {} is not valid PEM ({e})",
                    self.cert.display()
                ))
            })?;
        if chain.is_empty() {
            return Err(invalid(format!(
                "TLS certificate file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                self.cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            invalid(match e {
                pem::Error::NoItemsFound => format!(
                    "TLS private key file {} holds no PEM private key (-----BEGIN PRIVATE KEY-----, or RSA or EC PRIVATE KEY)",
                    self.key.display()
                ),
                e => format!(
                    "TLS private key file {} is not valid PEM ({e})",
                    self.key.display()
                ),
            })
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| io::Error::other(format!("TLS protocol versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                invalid(format!(
                    "TLS certificate file {} and private key file {} are not a usable pair ({e})",
                    self.cert.display(),
                    self.key.display()
                ))
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

async fn read_pem(path: &Path, what: &str) -> io::Result<Vec<u8>> {
    tokio::fs::read(path).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("TLS {what} file {} cannot be read ({e})", path.display()),
        )
    })
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many TLS handshakes may be under way at once; accepting waits beyond that.
const MAX_HANDSHAKES: usize = 512;

/// A listener whose connections have completed their TLS handshake. Handshakes run in
/// their own tasks (with a timeout), so a slow client does not hold up the others.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub(crate) fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), sender));
        Ok(TlsListener {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (it only does when aborted): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(e) => {
                accept_error(e).await;
                continue;
            }
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
            drop(permit);
            match handshake {
                Ok(Ok(tls)) => {
                    // Fails only once the server has stopped; the connection is then dropped.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
}

/// As axum does for plain TCP: a connection that failed before it was accepted is
/// skipped; anything else (such as too many open files) is logged and retried after 1 s.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The security headers every answer carries; HSTS only when serving TLS. `Cache-Control:
/// no-store` is set unless a route chose its own.
fn security_headers(router: Router, tls: bool) -> Router {
    let hsts = tls.then(|| HeaderValue::from_static("max-age=31536000"));
    router
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        // The console sets its own (its files only); everything else may load nothing.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            hsts,
        ))
}

/// Wraps the API in the rate limit (when there is one) and then the security headers, so
/// that a refusal for too many requests carries the headers too.
pub(crate) fn harden(router: Router, tls: bool, limiter: Option<Arc<RateLimiter>>) -> Router {
    let router = match limiter {
        Some(limiter) => router.layer(axum::middleware::from_fn_with_state(limiter, rate_limit)),
        None => router,
    };
    security_headers(router, tls)
}

/// A token bucket per client address: `per_second` tokens a second flow into a bucket that
/// holds at most `burst`; each request takes one, and a request finding none is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second allowed to one client address (at least 1).
    pub per_second: u32,
    /// Requests one client address may send at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 50,
            burst: 100,
        }
    }
}

/// How often buckets that have filled up again (the same as no bucket) are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// The buckets of [`RateLimit`], keyed by client address (an IPv6 client by its /64, the
/// block one subscriber usually holds).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    by_client: HashMap<IpAddr, Bucket>,
    pruned_at: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> io::Result<Arc<Self>> {
        if limit.per_second == 0 || limit.burst == 0 {
            return Err(invalid(format!(
                "rate limit of {} requests per second with bursts of {}: both must be at least 1",
                limit.per_second, limit.burst
            )));
        }
        Ok(Arc::new(RateLimiter {
            limit,
            buckets: Mutex::new(Buckets {
                by_client: HashMap::new(),
                pruned_at: Instant::now(),
            }),
        }))
    }

    /// Takes a token from `client`'s bucket, or says how long until one is there.
    fn take(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(self.limit.per_second);
        let burst = f64::from(self.limit.burst);
        let refill = |b: &Bucket| {
            (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate).min(burst)
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(buckets.pruned_at) >= PRUNE_EVERY {
            buckets.by_client.retain(|_, b| refill(b) < burst);
            buckets.pruned_at = now;
        }
        let bucket = buckets
            .by_client
            .entry(client_key(client))
            .or_insert(Bucket {
                tokens: burst,
                at: now,
            });
        let tokens = refill(bucket);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / rate))
        }
    }
}

/// The key of a client's bucket: an IPv4 address (also when mapped into IPv6), or the /64
/// network of an IPv6 address.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    // Without the peer's address (a router served without connect info) nothing is limited.
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    match limiter.take(peer.ip(), Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many_requests(limiter.limit, peer.ip(), wait),
    }
}

/// 429 in the API's error shape, with `Retry-After` in whole seconds (at least 1).
fn too_many_requests(limit: RateLimit, client: IpAddr, wait: Duration) -> Response {
    let retry_after = wait.as_secs_f64().ceil().max(1.0) as u64;
    let rule = format!(
        "requests per second: at most {} per client address, in bursts of up to {}; retry after {retry_after} s",
        limit.per_second, limit.burst
    );
    let body = json!({"error": {
        "code": "rate_limited",
        "message": format!("too many requests: {rule}"),
        "field": "request",
        "value": client.to_string(),
        "rule": rule,
    }});
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 2,
            burst: 3,
        })
        .expect("limit");
        let client: IpAddr = [192, 0, 2, 1].into();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take(client, start), Ok(()));
        }
        let wait = limiter.take(client, start).expect_err("over the burst");
        assert_eq!(wait, Duration::from_millis(500));
        // Another client has its own bucket.
        assert_eq!(limiter.take([192, 0, 2, 2].into(), start), Ok(()));
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.take(client, later), Ok(()));
        assert!(limiter.take(client, later).is_err());
    }

    #[test]
    fn full_buckets_are_pruned() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1,
            burst: 1,
        })
        .expect("limit");
        let start = Instant::now();
        assert_eq!(limiter.take([192, 0, 2, 1].into(), start), Ok(()));
        assert_eq!(
            limiter.take([192, 0, 2, 2].into(), start + PRUNE_EVERY),
            Ok(())
        );
        let buckets = limiter.buckets.lock().expect("lock");
        assert_eq!(buckets.by_client.len(), 1);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(
            client_key("2001:db8:1:2::".parse().expect("ip")),
            client_key(a)
        );
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().expect("ip")),
            IpAddr::from([192, 0, 2, 1])
        );
        assert_ne!(
            client_key("2001:db8:1:3::1".parse().expect("ip")),
            client_key(a)
        );
    }

    #[test]
    fn a_limit_of_zero_is_refused() {
        assert!(RateLimiter::new(RateLimit {
            per_second: 0,
            burst: 1
        })
        .is_err());
    }
}
