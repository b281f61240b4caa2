//! Outbound webhooks: every alert POSTed to each registered receiver, signed with
//! HMAC-SHA256, retried with backoff until delivered, every attempt in a delivery log.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use autolog_domain::{FieldError, Instant, Uuid};
use autolog_store::{Webhook, WebhookDelivery};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::{AppError, Autolog};

/// The header carrying the signature: `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Autolog-Signature";
/// The header carrying the alert's ledger position (receivers deduplicate on it).
pub const DELIVERY_ID_HEADER: &str = "X-Autolog-Delivery";
/// The longest wait between two attempts of one delivery.
pub const MAX_BACKOFF_SECONDS: i64 = 3600;
/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many due deliveries one pass attempts (a hanging receiver delays the others by at
/// most this many attempt timeouts).
const DUE_BATCH: u32 = 20;
/// How many ledger rows the worker reads per pass when looking for new alerts.
const SCAN_BATCH: u32 = 1000;

/// The wait after the `attempts`th failure: 2, 4, 8 ... seconds, at most an hour.
pub fn backoff_seconds(attempts: u32) -> i64 {
    let exp = attempts.clamp(1, 12);
    (1_i64 << exp).min(MAX_BACKOFF_SECONDS)
}

/// The signature header's value for a body under a secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// A registered webhook as answered (never its secret).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct WebhookInfo {
    pub webhook_id: String,
    pub url: String,
    pub created_at: String,
    pub created_by: String,
    pub active: bool,
    /// The ledger position up to which alerts were queued for it.
    pub cursor_position: u64,
}

impl From<&Webhook> for WebhookInfo {
    fn from(w: &Webhook) -> Self {
        WebhookInfo {
            webhook_id: w.webhook_id.to_string(),
            url: w.url.clone(),
            created_at: w.created_at.to_string(),
            created_by: w.created_by.clone(),
            active: w.active,
            cursor_position: w.cursor_position,
        }
    }
}

/// A webhook just registered, with its secret: shown this once.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct WebhookRegistered {
    #[serde(flatten)]
    pub webhook: WebhookInfo,
    pub secret: String,
    /// The header that carries each delivery's signature.
    pub signature_header: &'static str,
}

/// Every registered webhook.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookInfo>,
}

/// One webhook with its deliveries.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct WebhookDetail {
    #[serde(flatten)]
    pub webhook: WebhookInfo,
    pub deliveries: Vec<DeliveryInfo>,
}

/// One alert's delivery to a webhook, with each attempt.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct DeliveryInfo {
    pub alert_event_id: String,
    pub position: u64,
    pub status: &'static str,
    pub attempts: u32,
    pub next_attempt_at: String,
    pub last_attempt_at: Option<String>,
    pub last_result: Option<String>,
    pub delivered_at: Option<String>,
    pub log: Vec<AttemptInfo>,
}

/// One attempt to deliver an alert.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct AttemptInfo {
    pub attempt: u32,
    pub at: String,
    pub ok: bool,
    pub detail: String,
}

fn delivery_info(d: &WebhookDelivery, log: Vec<AttemptInfo>) -> DeliveryInfo {
    DeliveryInfo {
        alert_event_id: d.alert_event_id.to_string(),
        position: d.position,
        status: d.status.as_str(),
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at.to_string(),
        last_attempt_at: d.last_attempt_at.map(|t| t.to_string()),
        last_result: d.last_result.clone(),
        delivered_at: d.delivered_at.map(|t| t.to_string()),
        log,
    }
}

fn parse_webhook_id(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|e| {
        AppError::Invalid(FieldError::new(
            "webhook_id",
            id,
            format!("must be a UUID ({e})"),
        ))
    })
}

/// Whether a webhook may be sent to `ip`: public unicast addresses only, unless the
/// operator allows private receivers (an on-premises network). Loopback, private,
/// shared (CGNAT), link-local (cloud metadata at 169.254.169.254 among them), unique
/// local, documentation, unspecified, broadcast and multicast addresses are refused, so
/// that a registered URL cannot make Autolog call into its own network (SSRF).
pub fn receiver_address_allowed(ip: IpAddr, private_allowed: bool) -> bool {
    if ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    if private_allowed {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => receiver_address_allowed(IpAddr::V4(v4), false),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || first == 0x2001 && v6.segments()[1] == 0x0db8)
            }
        },
    }
}

/// The address a URL names literally (`http://10.0.0.8/`), if it names one.
fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// The name resolver of the webhook client: only the addresses a webhook may be sent to,
/// checked when each connection is made (so a name that resolves differently later, or a
/// redirect, cannot reach a refused address).
struct ReceiverResolver {
    private_allowed: bool,
}

impl reqwest::dns::Resolve for ReceiverResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let private_allowed = self.private_allowed;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| receiver_address_allowed(a.ip(), private_allowed))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{host} resolves to no address a webhook may be sent to").into(),
                );
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client webhooks are delivered with: receivers' names resolved through
/// [`ReceiverResolver`], redirects not followed (a receiver answers, it does not forward).
pub fn webhook_client(private_allowed: bool) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(ReceiverResolver { private_allowed }))
        .build()
}

impl Autolog {
    /// Lets webhooks go to loopback and private addresses (an on-premises receiver;
    /// `serve --allow-private-webhooks`). Off by default.
    pub fn with_private_webhook_receivers(mut self, allowed: bool) -> Self {
        self.private_webhook_receivers = allowed;
        self
    }

    /// Refuses a receiver URL whose host is, or resolves to, an address webhooks may not
    /// go to (naming it), or that does not resolve at all.
    async fn check_receiver(&self, url: &url::Url) -> Result<(), AppError> {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(443);
        let refuse = |rule: String| {
            Err(AppError::Invalid(FieldError::new(
                "url",
                url.as_str(),
                rule,
            )))
        };
        let addresses: Vec<IpAddr> = match literal_ip(url) {
            Some(ip) => vec![ip],
            None => match tokio::net::lookup_host((host, port)).await {
                Ok(found) => found.map(|a| a.ip()).collect(),
                Err(e) => return refuse(format!("has a host that does not resolve ({e})")),
            },
        };
        if let Some(ip) = addresses
            .iter()
            .find(|ip| !receiver_address_allowed(**ip, self.private_webhook_receivers))
        {
            return refuse(format!(
                "reaches {ip}, a loopback, private, link-local or otherwise internal address: webhooks go to public receivers (an operator allows private ones with --allow-private-webhooks)"
            ));
        }
        if addresses.is_empty() {
            return refuse("has a host that resolves to no address".to_string());
        }
        Ok(())
    }

    /// At delivery: a receiver given as an IP address the settings no longer allow (a name
    /// is checked by the client's resolver when it connects).
    fn receiver_refusal(&self, url: &str) -> Option<String> {
        let ip = literal_ip(&url::Url::parse(url).ok()?)?;
        (!receiver_address_allowed(ip, self.private_webhook_receivers))
            .then(|| format!("{ip} is not an address webhooks may be sent to"))
    }

    /// Registers a webhook from `{"url", "created_by", "secret"?}`. Only alerts recorded
    /// from now on are sent to it. The answer holds the secret (generated when not given):
    /// it is shown this once.
    pub async fn register_webhook(&self, body: &[u8]) -> Result<WebhookRegistered, AppError> {
        let request = crate::ledger::request::parse_object(body, "a webhook registration")?;
        for key in request.keys() {
            if !["url", "secret", "created_by"].contains(&key.as_str()) {
                return Err(AppError::Invalid(FieldError::new(
                    key,
                    autolog_domain::error::show(&request[key]),
                    "is not a field of a webhook registration; fields are url, secret, created_by",
                )));
            }
        }
        let field = |name: &str| request.get(name).and_then(Value::as_str);
        let url = field("url").ok_or_else(|| AppError::Invalid(FieldError::required("url")))?;
        let parsed = url::Url::parse(url).map_err(|e| {
            AppError::Invalid(FieldError::new("url", url, format!("is not a URL ({e})")))
        })?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(AppError::Invalid(FieldError::new(
                "url",
                "(a URL with credentials, not shown)",
                "must not carry credentials: receivers authenticate Autolog by the signature header",
            )));
        }
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.host_str().is_none()
            || url.len() > 2000
        {
            return Err(AppError::Invalid(FieldError::new(
                "url",
                url,
                "must be an https:// or http:// URL with a host, at most 2000 characters",
            )));
        }
        self.check_receiver(&parsed).await?;
        let created_by = field("created_by").unwrap_or("");
        autolog_domain::ledger::envelope::check_actor("created_by", created_by)?;
        let secret = match field("secret") {
            Some(s) if s.len() >= 16 && s.len() <= 256 => s.to_string(),
            Some(s) => {
                return Err(AppError::Invalid(FieldError::new(
                    "secret",
                    format!("({} characters)", s.len()),
                    "must be 16 to 256 characters (or leave it out and one is generated)",
                )))
            }
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .map_err(|e| AppError::Config(format!("no randomness for a secret: {e}")))?;
                hex::encode(bytes)
            }
        };
        let head = self.store.head().await?;
        let webhook_id = self.new_event_id();
        let webhook = Webhook {
            webhook_id,
            url: url.to_string(),
            // Sealed under the vault master key: the database alone cannot sign as Autolog.
            secret: self.seal_secret(&autolog_store::SecretOwner::Webhook(webhook_id), &secret)?,
            created_at: self.now(),
            created_by: created_by.to_string(),
            active: true,
            cursor_position: head.position,
        };
        self.store.add_webhook(&webhook).await?;
        // What verify holds the webhooks table to (never the secret).
        self.record_audit_event(
            &format!("webhook/{webhook_id}"),
            "webhook.registered",
            json!({"webhook_id": webhook_id.to_string(), "url": webhook.url,
                   "from_position": head.position, "changed_by": created_by}),
            created_by,
        )
        .await?;
        tracing::info!(webhook_id = %webhook.webhook_id, "webhook registered");
        Ok(WebhookRegistered {
            webhook: WebhookInfo::from(&webhook),
            secret,
            signature_header: SIGNATURE_HEADER,
        })
    }

    /// Every registered webhook (never their secrets).
    pub async fn list_webhooks(&self) -> Result<WebhookList, AppError> {
        let webhooks = self
            .store
            .webhooks()
            .await?
            .iter()
            .map(WebhookInfo::from)
            .collect();
        Ok(WebhookList { webhooks })
    }

    /// Stops sending to a webhook (recorded, by `actor`); what it was sent stays in its log.
    pub async fn deactivate_webhook(
        &self,
        webhook_id: &str,
        actor: &str,
    ) -> Result<WebhookDetail, AppError> {
        let id = parse_webhook_id(webhook_id)?;
        autolog_domain::ledger::envelope::check_actor("actor", actor)?;
        let was_active = self
            .store
            .webhooks()
            .await?
            .iter()
            .any(|w| w.webhook_id == id && w.active);
        if !self.store.deactivate_webhook(id, self.now()).await? {
            return Err(AppError::NotFound {
                what: "webhook",
                id: webhook_id.to_string(),
            });
        }
        if was_active {
            self.record_audit_event(
                &format!("webhook/{id}"),
                "webhook.deactivated",
                json!({"webhook_id": id.to_string(), "changed_by": actor}),
                actor,
            )
            .await?;
        }
        self.webhook(webhook_id).await
    }

    /// One webhook with its deliveries (most recent 1000) and each delivery's attempt log.
    pub async fn webhook(&self, webhook_id: &str) -> Result<WebhookDetail, AppError> {
        let id = parse_webhook_id(webhook_id)?;
        let Some(webhook) = self
            .store
            .webhooks()
            .await?
            .into_iter()
            .find(|w| w.webhook_id == id)
        else {
            return Err(AppError::NotFound {
                what: "webhook",
                id: webhook_id.to_string(),
            });
        };
        let mut deliveries = Vec::new();
        for d in self.store.webhook_deliveries(id, 1000).await? {
            let log = self
                .store
                .delivery_attempts(id, d.alert_event_id)
                .await?
                .into_iter()
                .map(|a| AttemptInfo {
                    attempt: a.attempt,
                    at: a.at.to_string(),
                    ok: a.ok,
                    detail: a.detail,
                })
                .collect();
            deliveries.push(delivery_info(&d, log));
        }
        Ok(WebhookDetail {
            webhook: WebhookInfo::from(&webhook),
            deliveries,
        })
    }

    /// Queues the alerts recorded since each active webhook's cursor. Returns how many
    /// deliveries were queued.
    async fn queue_new_alerts(&self) -> Result<usize, AppError> {
        let mut queued = 0;
        for webhook in self
            .store
            .webhooks()
            .await?
            .into_iter()
            .filter(|w| w.active)
        {
            let mut cursor = webhook.cursor_position;
            loop {
                let after = i64::try_from(cursor).unwrap_or(i64::MAX);
                let rows = self.store.scan(after, SCAN_BATCH).await?;
                let Some(last) = rows.last().map(|r| r.position) else {
                    break;
                };
                let alerts: Vec<(Uuid, u64)> = rows
                    .iter()
                    .filter_map(|r| r.event.as_ref().ok())
                    .filter(|e| e.body.event_type == "alert.raised")
                    .map(|e| (e.event_id, e.position))
                    .collect();
                let new_cursor = u64::try_from(last).unwrap_or(cursor);
                self.store
                    .enqueue_deliveries(webhook.webhook_id, &alerts, new_cursor, self.now())
                    .await?;
                queued += alerts.len();
                cursor = new_cursor;
                if rows.len() < SCAN_BATCH as usize {
                    break;
                }
            }
        }
        Ok(queued)
    }

    /// One pass of the delivery worker: queue new alerts, then attempt every due delivery
    /// once. Returns (attempted, delivered).
    pub async fn deliver_webhooks_once(
        &self,
        client: &reqwest::Client,
    ) -> Result<(usize, usize), AppError> {
        self.queue_new_alerts().await?;
        let webhooks = self.store.webhooks().await?;
        let due = self.store.due_deliveries(self.now(), DUE_BATCH).await?;
        let mut delivered = 0;
        for d in &due {
            let Some(webhook) = webhooks.iter().find(|w| w.webhook_id == d.webhook_id) else {
                continue;
            };
            let body = match self.store.event(d.alert_event_id).await? {
                Some(event) => {
                    let stream = self
                        .store
                        .stream_events(&event.stream, Instant::MAX)
                        .await?;
                    let alert = crate::feeds::alerts::Alert::of(&event, &stream)?;
                    serde_json::to_string(&alert)
                        .map_err(|e| AppError::Integrity(format!("an alert as JSON: {e}")))?
                }
                None => continue,
            };
            let secret = match self.open_secret(
                &autolog_store::SecretOwner::Webhook(webhook.webhook_id),
                &webhook.secret,
            ) {
                Ok(secret) => secret,
                Err(e) => {
                    tracing::error!(error = %e, webhook_id = %webhook.webhook_id, "a webhook's secret cannot be opened: not delivered");
                    continue;
                }
            };
            let outcome = match self.receiver_refusal(&webhook.url) {
                Some(refusal) => Err(refusal),
                None => client
                    .post(&webhook.url)
                    .timeout(ATTEMPT_TIMEOUT)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, signature(&secret, body.as_bytes()))
                    .header(DELIVERY_ID_HEADER, d.position.to_string())
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string()),
            };
            let (ok, detail) = match outcome {
                Ok(response) if response.status().is_success() => {
                    (true, format!("HTTP {}", response.status().as_u16()))
                }
                Ok(response) => (false, format!("HTTP {}", response.status().as_u16())),
                Err(e) => (false, format!("not delivered: {e}")),
            };
            let now = self.now();
            let retry = (!ok).then(|| {
                let wait = backoff_seconds(d.attempts + 1) * 1_000_000;
                Instant::from_micros(now.micros().saturating_add(wait)).unwrap_or(now)
            });
            self.store
                .record_delivery_attempt(d.webhook_id, d.alert_event_id, now, ok, &detail, retry)
                .await?;
            if ok {
                delivered += 1;
            } else {
                tracing::warn!(
                    webhook_id = %d.webhook_id,
                    position = d.position,
                    attempts = d.attempts + 1,
                    "webhook delivery failed ({detail}); will retry"
                );
            }
        }
        Ok((due.len(), delivered))
    }

    /// Runs the delivery worker until the task is dropped: a pass every `every`, and at
    /// once when an alert is recorded by this process.
    pub async fn run_webhook_worker(self: Arc<Self>, every: Duration) {
        let client = match webhook_client(self.private_webhook_receivers) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("webhook worker cannot start its HTTP client: {e}");
                return;
            }
        };
        let mut alerts = self.subscribe_alerts();
        loop {
            if let Err(e) = self.deliver_webhooks_once(&client).await {
                tracing::warn!(error = %e, "webhook delivery pass failed; will retry");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = alerts.recv() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_go_to_public_addresses_only_unless_private_ones_are_allowed() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.7",
            "::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ];
        for text in refused {
            let ip: IpAddr = text.parse().expect("an address");
            assert!(!receiver_address_allowed(ip, false), "{text} was allowed");
        }
        for text in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            assert!(receiver_address_allowed(ip, false), "{text} was refused");
        }
        for text in ["127.0.0.1", "10.1.2.3", "fd12::1"] {
            let ip: IpAddr = text.parse().expect("an address");
            assert!(
                receiver_address_allowed(ip, true),
                "{text} with private allowed"
            );
        }
        for text in ["0.0.0.0", "224.0.0.1"] {
            let ip: IpAddr = text.parse().expect("an address");
            assert!(
                !receiver_address_allowed(ip, true),
                "{text} is never a receiver"
            );
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_seconds(1), 2);
        assert_eq!(backoff_seconds(2), 4);
        assert_eq!(backoff_seconds(5), 32);
        assert_eq!(backoff_seconds(40), MAX_BACKOFF_SECONDS);
    }

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
