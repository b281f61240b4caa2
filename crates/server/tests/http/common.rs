//! What every HTTP test needs: a real server on a random loopback port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use autolog_app::Autolog;
use autolog_server::{serve, ServeOptions};

/// Serves `app` with `options` on a random loopback port until the test ends.
pub async fn serve_with(app: Arc<Autolog>, options: ServeOptions) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, app, options, std::future::pending()));
    addr
}

/// Serves `app` as the tests need it: no checkpoint during a test (its set-up events come
/// first), webhooks polled every `webhook_interval`, no rate limit.
pub async fn serve_on_loopback(app: Arc<Autolog>, webhook_interval: Duration) -> SocketAddr {
    let options = ServeOptions {
        checkpoint_interval: Duration::from_secs(3600),
        webhook_interval,
        rate_limit: None,
        ..ServeOptions::default()
    };
    serve_with(app, options).await
}
