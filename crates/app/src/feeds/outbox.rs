//! The outbound feed to NATS JetStream: every committed event published, in ledger
//! position order, at least once, from the ledger itself as the outbox.
//!
//! Every event has a gap-free `position` committed atomically with it, and positions
//! commit in order (placement is serialised), so "the events after position p" is a
//! complete, stable answer at any moment: the publisher reads them, publishes each one to
//! `<prefix>.events.<event type>` and waits for JetStream's acknowledgement before the
//! next, then records how far it got (`Store::set_outbox_cursor`).
//!
//! Where to start after a start, a crash or a lost connection: the position of the
//! stream's last message when that message is this ledger's (its `Nats-Msg-Id` is the id
//! of the ledger's event at its `Autolog-Position`), else the stored cursor. Each publish
//! then expects the stream's last sequence to be the one the previous publish got
//! (`Nats-Expected-Last-Sequence`): when another server sharing the database published
//! meanwhile, JetStream refuses, and the publisher starts over from the stream's tail. So
//! the stream holds each event once and in position order, even after the duplicate window;
//! `Nats-Msg-Id` (the event id) makes a re-publish after a lost acknowledgement harmless.
//! When the stream's tail is not this ledger's (the stream is shared with other
//! publishers), the publisher falls back to the cursor and `Nats-Msg-Id` de-duplication
//! alone: at least once, each event once within the duplicate window.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use autolog_domain::{Event, FieldError, Uuid};

use crate::{AppError, Autolog};

/// The subject prefix when none is given: events go to `autolog.events.<type>`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "autolog";
/// The JetStream stream name when none is given.
pub const DEFAULT_STREAM_NAME: &str = "AUTOLOG";
/// How often the publisher looks for new events when no append of this process woke it
/// (events appended by another server sharing the database).
pub const NATS_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The header carrying the event's ledger position.
pub const POSITION_HEADER: &str = "Autolog-Position";
/// The header carrying the event's Autolog stream (e.g. `coi/...`).
pub const STREAM_HEADER: &str = "Autolog-Stream";
/// The header carrying the event's type (also the end of its subject).
pub const EVENT_TYPE_HEADER: &str = "Autolog-Event-Type";
/// JetStream's de-duplication header: the event id.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// How many events one pass reads (and publishes before the cursor is stored).
const BATCH: u32 = 500;
/// The longest wait between two attempts while NATS is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where and how to publish: `autolog serve --nats-url URL [--nats-subject-prefix P]
/// [--nats-stream S]`.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// The NATS server(s): `nats://host:port` (or `tls://`), several separated by commas.
    pub url: String,
    /// The first subject tokens: events go to `<prefix>.events.<event type>`.
    pub subject_prefix: String,
    /// The JetStream stream, created (subjects `<prefix>.>`) when absent.
    pub stream_name: String,
}

impl std::fmt::Debug for NatsOptions {
    // The URL may carry credentials (nats://user:password@host): never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("url", &"(not shown)")
            .field("subject_prefix", &self.subject_prefix)
            .field("stream_name", &self.stream_name)
            .finish()
    }
}

impl NatsOptions {
    /// Options for `url` with the default prefix and stream name.
    pub fn new(url: &str) -> Self {
        NatsOptions {
            url: url.to_string(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_string(),
            stream_name: DEFAULT_STREAM_NAME.to_string(),
        }
    }

    /// Checks the URL, prefix and stream name before anything is started.
    pub fn check(&self) -> Result<(), AppError> {
        let servers: Vec<&str> = self.url.split(',').map(str::trim).collect();
        if servers.iter().any(|s| s.is_empty())
            || servers
                .iter()
                .any(|s| s.parse::<async_nats::ServerAddr>().is_err())
        {
            return Err(AppError::Invalid(FieldError::new(
                "nats_url",
                "(not shown: it may carry credentials)",
                "must be one or more NATS server addresses (nats://host:port or tls://host:port), separated by commas",
            )));
        }
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let prefix = &self.subject_prefix;
        if prefix.is_empty() || prefix.len() > 100 || !prefix.split('.').all(token_ok) {
            return Err(AppError::Invalid(FieldError::new(
                "nats_subject_prefix",
                prefix,
                "must be 1-100 characters: tokens of letters, digits, _ and - joined by . (no wildcards)",
            )));
        }
        let name = &self.stream_name;
        if name.len() > 64 || !token_ok(name) {
            return Err(AppError::Invalid(FieldError::new(
                "nats_stream",
                name,
                "must be 1-64 letters, digits, _ and -",
            )));
        }
        Ok(())
    }

    /// The name of this feed's cursor in the store.
    pub fn cursor_name(&self) -> String {
        format!("nats/{}/{}", self.stream_name, self.subject_prefix)
    }

    /// The subject of an event of this type: `<prefix>.events.<event type>`, any character
    /// a subject cannot carry replaced by `_`.
    pub fn subject(&self, event_type: &str) -> String {
        let tokens: Vec<String> = event_type
            .split('.')
            .map(|t| {
                let t: String = t
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                if t.is_empty() {
                    "_".to_string()
                } else {
                    t
                }
            })
            .collect();
        format!("{}.events.{}", self.subject_prefix, tokens.join("."))
    }

    /// Every subject of the feed: the stream's subject filter.
    pub fn subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }
}

/// What the publisher knows of the stream between two resynchronisations.
struct Feed {
    js: jetstream::Context,
    /// The position of the last event known to be in the stream (or acknowledged).
    after: u64,
    /// The stream's last sequence, when its tail is this ledger's: each publish expects it.
    expect_last: Option<u64>,
}

/// Why a pass stopped.
enum PassError {
    /// Another publisher (a server sharing the database) advanced the stream: resync now.
    Raced,
    /// Anything else: logged, resync after a backoff.
    Failed(String),
}

impl From<AppError> for PassError {
    fn from(e: AppError) -> Self {
        PassError::Failed(e.to_string())
    }
}

impl From<autolog_store::StoreError> for PassError {
    fn from(e: autolog_store::StoreError) -> Self {
        PassError::Failed(e.to_string())
    }
}

/// The wait after the `failures`th failure in a row: 200 ms, 400 ms, ... at most 30 s.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(8);
    (NATS_POLL_INTERVAL * (1u32 << exp)).min(MAX_BACKOFF)
}

impl Autolog {
    /// Publishes every committed event to NATS JetStream until the task is dropped (see
    /// the module documentation). Never fails: while NATS is unreachable or refuses, it
    /// logs (no payloads, no URL) and retries with backoff. Appends never wait for it.
    pub async fn run_nats_publisher(self: Arc<Self>, options: NatsOptions) {
        let mut client: Option<async_nats::Client> = None;
        let mut feed: Option<Feed> = None;
        let mut failures: u32 = 0;
        loop {
            let outcome = match feed.as_mut() {
                Some(f) => self.publish_pending(&options, f).await,
                None => match self.open_feed(&options, &mut client).await {
                    Ok(f) => {
                        tracing::info!(
                            stream = %options.stream_name,
                            after_position = f.after,
                            checked = f.expect_last.is_some(),
                            "NATS publisher resumes"
                        );
                        feed = Some(f);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match outcome {
                Ok(published) => {
                    failures = 0;
                    if published == 0 {
                        // A wake-up that came while publishing is kept by `Notify`.
                        tokio::select! {
                            _ = self.appended.notified() => {}
                            _ = tokio::time::sleep(NATS_POLL_INTERVAL) => {}
                        }
                    }
                }
                Err(PassError::Raced) => {
                    tracing::debug!(
                        stream = %options.stream_name,
                        "another publisher advanced the NATS stream; resuming from its tail"
                    );
                    feed = None;
                }
                Err(PassError::Failed(e)) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(failures);
                    tracing::warn!(
                        stream = %options.stream_name,
                        failures,
                        retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "NATS publication failed ({e}); will retry"
                    );
                    feed = None;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Connects (once; the client reconnects by itself), makes sure the stream exists, and
    /// works out where to resume.
    async fn open_feed(
        &self,
        options: &NatsOptions,
        client: &mut Option<async_nats::Client>,
    ) -> Result<Feed, PassError> {
        let connected = match client {
            Some(c) => c.clone(),
            None => {
                let c = async_nats::ConnectOptions::new()
                    .name("autolog")
                    .connect(options.url.as_str())
                    .await
                    .map_err(|e| PassError::Failed(format!("cannot connect to NATS: {e}")))?;
                *client = Some(c.clone());
                c
            }
        };
        let js = jetstream::new(connected);
        let mut stream = js
            .get_or_create_stream(stream::Config {
                name: options.stream_name.clone(),
                subjects: vec![options.subjects()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                PassError::Failed(format!(
                    "cannot find or create JetStream stream {}: {e}",
                    options.stream_name
                ))
            })?;
        let state = stream
            .info()
            .await
            .map_err(|e| PassError::Failed(format!("cannot read the stream's state: {e}")))?
            .state
            .clone();
        let cursor_name = options.cursor_name();
        let stored = self.store.outbox_cursor(&cursor_name).await?.unwrap_or(0);
        if state.messages == 0 {
            // Empty (new, or purged): the stored cursor says what was published before.
            return Ok(Feed {
                js,
                after: stored,
                expect_last: Some(state.last_sequence),
            });
        }
        let tail = match stream.get_raw_message(state.last_sequence).await {
            Ok(message) => self.ledger_position_of(&message.headers).await?,
            Err(e) => {
                tracing::debug!(stream = %options.stream_name, "cannot read the stream's last message: {e}");
                None
            }
        };
        match tail {
            Some(position) => {
                if position > stored {
                    // Published, but the cursor was not stored (a crash, another server).
                    self.store.set_outbox_cursor(&cursor_name, position).await?;
                }
                Ok(Feed {
                    js,
                    after: position,
                    expect_last: Some(state.last_sequence),
                })
            }
            None => {
                tracing::warn!(
                    stream = %options.stream_name,
                    last_sequence = state.last_sequence,
                    "the NATS stream's last message is not one of this ledger's events; \
                     publishing from the stored cursor with de-duplication only"
                );
                Ok(Feed {
                    js,
                    after: stored,
                    expect_last: None,
                })
            }
        }
    }

    /// The ledger position of a published message, if it is one of this ledger's events:
    /// its `Nats-Msg-Id` is the id of the event at its `Autolog-Position`.
    async fn ledger_position_of(
        &self,
        headers: &async_nats::HeaderMap,
    ) -> Result<Option<u64>, PassError> {
        // By name as sent: a received `Nats-Msg-Id` is one of the client's standard header
        // names, which a lookup by string does not find.
        let text = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.to_string() == name)
                .and_then(|(_, values)| values.first())
                .map(|v| v.as_str().to_string())
        };
        let (Some(id), Some(position)) = (text(MSG_ID_HEADER), text(POSITION_HEADER)) else {
            return Ok(None);
        };
        let (Ok(id), Ok(position)) = (Uuid::parse_str(&id), position.parse::<u64>()) else {
            return Ok(None);
        };
        Ok(self
            .store
            .event(id)
            .await?
            .filter(|e| e.position == position)
            .map(|e| e.position))
    }

    /// Publishes the events after `feed.after`, at most one batch, each acknowledged before
    /// the next; stores the cursor. How many were published.
    async fn publish_pending(
        &self,
        options: &NatsOptions,
        feed: &mut Feed,
    ) -> Result<usize, PassError> {
        let after = i64::try_from(feed.after).unwrap_or(i64::MAX);
        let rows = self.store.scan(after, BATCH).await?;
        let start = feed.after;
        let mut outcome = Ok(rows.len());
        for row in rows {
            let event = match row.event {
                Ok(e) => e,
                Err(detail) => {
                    // Never skipped: the feed waits until the row reads (verify reports it).
                    outcome = Err(PassError::Failed(format!(
                        "the ledger row at position {} is unreadable ({detail}); the feed stops before it",
                        row.position
                    )));
                    break;
                }
            };
            if event.position != feed.after + 1 {
                outcome = Err(PassError::Failed(format!(
                    "expected position {} next, read {}",
                    feed.after + 1,
                    event.position
                )));
                break;
            }
            if let Err(e) = self.publish_one(options, feed, &event).await {
                outcome = Err(e);
                break;
            }
        }
        if feed.after > start {
            self.store
                .set_outbox_cursor(&options.cursor_name(), feed.after)
                .await?;
            tracing::debug!(
                stream = %options.stream_name,
                position = feed.after,
                "published to NATS"
            );
        }
        outcome
    }

    async fn publish_one(
        &self,
        options: &NatsOptions,
        feed: &mut Feed,
        event: &Event,
    ) -> Result<(), PassError> {
        let body = serde_json::to_vec(&event.to_json())
            .map_err(|e| PassError::Failed(format!("cannot serialise an event: {e}")))?;
        let mut publish = PublishMessage::build()
            .payload(body.into())
            .message_id(event.event_id.to_string())
            .header(POSITION_HEADER, event.position.to_string().as_str())
            .header(STREAM_HEADER, event.stream.as_str())
            .header(EVENT_TYPE_HEADER, event.body.event_type.as_str())
            .header("Content-Type", "application/json");
        if let Some(last) = feed.expect_last {
            publish = publish.expected_last_sequence(last);
        }
        let subject = options.subject(&event.body.event_type);
        let sent = feed.js.send_publish(subject, publish).await;
        let ack = match sent {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        match ack {
            Ok(ack) => {
                if feed.expect_last.is_some() {
                    feed.expect_last = Some(ack.sequence);
                }
                feed.after = event.position;
                Ok(())
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(PassError::Raced),
            Err(e) => Err(PassError::Failed(format!(
                "event {} at position {} not acknowledged: {e}",
                event.event_id, event.position
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_event_type() {
        let o = NatsOptions::new("nats://127.0.0.1:4222");
        assert_eq!(o.subject("chain.released"), "autolog.events.chain.released");
        assert_eq!(o.subject("alert.raised"), "autolog.events.alert.raised");
        assert_eq!(o.subject("odd type.*.>"), "autolog.events.odd_type._._");
        assert_eq!(o.subject("a..b"), "autolog.events.a._.b");
        assert_eq!(o.subjects(), "autolog.>");
        assert_eq!(o.cursor_name(), "nats/AUTOLOG/autolog");
    }

    #[test]
    fn options_are_checked() {
        assert!(NatsOptions::new("nats://127.0.0.1:4222").check().is_ok());
        assert!(NatsOptions::new("nats://a:4222, nats://b:4222")
            .check()
            .is_ok());
        assert!(NatsOptions::new("").check().is_err());
        let mut o = NatsOptions::new("nats://127.0.0.1:4222");
        o.subject_prefix = "acme.autolog".into();
        assert!(o.check().is_ok());
        for bad in ["", "a.*", "a.>", "a..b", "a b", ".a"] {
            o.subject_prefix = bad.into();
            assert!(o.check().is_err(), "prefix {bad:?}");
        }
        o.subject_prefix = "autolog".into();
        for bad in ["", "A.B", "A B", "A/B", "A*"] {
            o.stream_name = bad.into();
            assert!(o.check().is_err(), "stream {bad:?}");
        }
    }

    #[test]
    fn the_url_is_never_shown() {
        let o = NatsOptions::new("nats://user:secret@127.0.0.1:4222");
        assert!(!format!("{o:?}").contains("secret"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
