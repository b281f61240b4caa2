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

/// How a test's instance is set up (`Default`: an empty ledger, the system clock, default
/// access settings, public webhook receivers only, webhooks polled every hour).
pub struct Setup {
    /// Import the example network's reference data (`examples/reference`), with the COI
    /// issuer `A9999` and a vault key.
    pub examples: bool,
    pub clock: Option<Arc<dyn autolog_app::Clock>>,
    pub access: autolog_app::AccessSettings,
    /// Let webhooks go to loopback receivers (the tests' own).
    pub private_webhooks: bool,
    pub webhook_interval: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            examples: false,
            clock: None,
            access: autolog_app::AccessSettings::default(),
            private_webhooks: false,
            webhook_interval: Duration::from_secs(3600),
        }
    }
}

impl Setup {
    /// The example network (reference data, COI issuer, vault key).
    pub fn examples() -> Self {
        Setup {
            examples: true,
            ..Setup::default()
        }
    }
}

/// The instance a test talks to: the app (for set-up and checks in process) and the base
/// URL of the real server serving it.
pub struct Spawned {
    pub app: Arc<Autolog>,
    pub base: String,
}

/// The one way HTTP tests start an instance: a store on `target`, set up as `setup` says
/// (the clock first, so that the set-up events follow it), served on a loopback port.
pub async fn spawn_app(
    target: &autolog_store_conformance::harness::Target,
    setup: Setup,
) -> Spawned {
    let store = target.open().await;
    let mut app = Autolog::from_parts(store, autolog_domain::SigningKey::from_bytes(&[42u8; 32]));
    if let Some(clock) = setup.clock {
        app = app.with_clock(clock);
    }
    app = app
        .with_access_settings(setup.access)
        .with_private_webhook_receivers(setup.private_webhooks);
    if setup.examples {
        app = app
            .with_coi_issuer("A9999")
            .expect("FIN")
            .with_vault_key(autolog_app::VaultKey::from_bytes([7u8; 32]));
        autolog_test_support::import_examples(&app).await;
    }
    let app = Arc::new(app);
    let addr = serve_on_loopback(app.clone(), setup.webhook_interval).await;
    Spawned {
        app,
        base: format!("http://{addr}"),
    }
}
