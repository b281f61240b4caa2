//! The `Store` boundary of the ledger: what every backend must do, and the append rules
//! they share (placement, idempotency, corrections, Merkle nodes). No database here.

mod access;
mod append;
mod epcis;
mod group;
mod outbox;
mod row;
pub mod sql;

use std::collections::HashMap;

use async_trait::async_trait;
use autolog_domain::chain::summary::ChainSummary;
use autolog_domain::chain::ChainState;
use autolog_domain::ledger::checkpoint::Checkpoint;
use autolog_domain::ledger::merkle::{Frontier, Hash, NodeId};
use autolog_domain::rules::history::HistoryFilter;
use autolog_domain::{Event, EventDraft, FieldError, Instant, Source, Uuid};

pub use access::{duplicate_user, ApiToken, RoleGrant, Session, UserAccount, VaultRecord};
pub use append::{append_in_tx, AppendPlan, AppendTx, Clock, StreamHead};
pub use epcis::{
    CaptureOutcome, EpcRole, EpcisCapture, EpcisQuery, NewEpcisEvent, StoredEpcisEvent, EPC_ROLES,
};
pub use group::{
    Buckets, CommitQueue, CommitStats, GroupBackend, GroupTx, WriterHealth, MAX_GROUP_EVENTS,
    MAX_GROUP_REQUESTS,
};
pub use row::{CheckpointRow, EventRow, EVENT_COLUMNS};
use row::{DeliveryAttemptRow, WebhookDeliveryRow, WebhookRow};
pub use sql::{Dialect, Param, SqlDb, SqlRow, SqlTx, Statement};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The batch breaks a ledger rule (e.g. a correction naming an unknown event).
    /// Nothing was written.
    #[error("{0}")]
    Rejected(FieldError),
    /// The write would duplicate a stored record that must be unique (a second account
    /// for a person). Nothing was written.
    #[error("{0}")]
    Conflict(FieldError),
    /// The backend failed (I/O, connection, constraint backstop). Nothing was written.
    #[error("storage backend ({backend}) failed: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
    /// The append queue is full: the request was not queued and nothing was written.
    /// Sending it again shortly is safe (its sources make a resend idempotent).
    #[error("storage backend ({backend}) is busy: {queued} append requests are already waiting; retry shortly")]
    Busy {
        backend: &'static str,
        queued: usize,
    },
    /// A stored row cannot be read back as an event: the database was changed outside Autolog.
    #[error("stored row at position {position} is unreadable: {detail}")]
    Corrupt { position: i64, detail: String },
}

/// One stored secret to replace: whose, the value expected, and the new value.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretReplacement {
    pub owner: SecretOwner,
    pub old: String,
    pub new: String,
}

/// The secrets kept beside the ledger that must be usable, hence not hashed.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretOwner {
    /// A person's TOTP secret (`user_accounts.totp_secret`).
    Totp(String),
    /// A webhook's HMAC secret (`webhooks.secret`).
    Webhook(Uuid),
}

/// The result of appending one draft.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendOutcome {
    pub event: Event,
    /// True when an event with the same `source` was already in the ledger: the first
    /// event is returned and nothing new was written.
    pub duplicate: bool,
}

/// The global head of the ledger: the last position, the last `recorded_at` and the
/// right edge of the Merkle tree.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerHead {
    pub position: u64,
    pub recorded_at: Option<Instant>,
    pub frontier: Frontier,
}

/// A filter for event listings. `known_at` and `valid_at` follow the bitemporal rule:
/// events recorded by `known_at` that occurred by `valid_at`.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub stream: Option<String>,
    pub valid_at: Instant,
    pub known_at: Instant,
    pub after_position: u64,
    pub limit: u32,
}

/// One stored row as scanned for verification: read failures are data, not errors.
#[derive(Debug, Clone)]
pub struct ScannedRow {
    pub position: i64,
    pub event: Result<Event, String>,
}

/// Everything a backend stores: the ledger and the side stores beside it. Implemented for
/// every type that implements them all; `Arc<dyn Store>` is what the app holds, and every
/// method is callable on it. On a concrete backend, bring the traits in scope with
/// `use autolog_store::prelude::*`.
pub trait Store:
    LedgerStore
    + ProofStore
    + ProjectionStore
    + CodeStore
    + OutboxStore
    + AccountStore
    + TokenStore
    + SessionStore
    + WebhookStore
    + VaultStore
    + EpcisStore
{
}

impl<T> Store for T where
    T: LedgerStore
        + ProofStore
        + ProjectionStore
        + CodeStore
        + OutboxStore
        + AccountStore
        + TokenStore
        + SessionStore
        + WebhookStore
        + VaultStore
        + EpcisStore
{
}

/// The store traits, to call any store method on an `Arc<dyn Store>`.
pub mod prelude {
    pub use crate::{
        AccountStore, CodeStore, EpcisStore, LedgerStore, OutboxStore, ProjectionStore, ProofStore,
        SessionStore, Store, TokenStore, VaultStore, WebhookStore,
    };
}
/// The ledger proper: appending, reading events and streams, the Merkle tree and its
/// checkpoints.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Appends drafts atomically, in order: all of them with their projection rows, or none.
    /// Concurrent calls share one durable commit ([`CommitQueue`]); each is still all or
    /// nothing, and answered only once its group has committed. `clock` is read when the
    /// call is queued; `recorded_at` is never earlier than it and always later than the
    /// previous event's.
    async fn append(
        &self,
        drafts: &[EventDraft],
        clock: &Clock,
    ) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Every event of a stream recorded at or before `known_at`, in `seq` order.
    async fn stream_events(
        &self,
        stream: &str,
        known_at: Instant,
    ) -> Result<Vec<Event>, StoreError>;

    /// The events of a stream recorded at or before `known_at` that `filter` admits, in
    /// `seq` order. Backends select them in SQL; this default reads the stream and filters.
    async fn stream_events_filtered(
        &self,
        stream: &str,
        known_at: Instant,
        filter: &HistoryFilter,
    ) -> Result<Vec<Event>, StoreError> {
        let mut events = self.stream_events(stream, known_at).await?;
        events.retain(|e| filter.admits(e));
        Ok(events)
    }

    /// The events of several streams recorded at or before `known_at`, by stream, each in
    /// `seq` order (a stream with no event is left out). Backends read them in one query
    /// per chunk; this default reads stream by stream.
    async fn stream_events_many(
        &self,
        streams: &[String],
        known_at: Instant,
    ) -> Result<HashMap<String, Vec<Event>>, StoreError> {
        let mut found = HashMap::new();
        for stream in streams {
            let events = self.stream_events(stream, known_at).await?;
            if !events.is_empty() {
                found.insert(stream.clone(), events);
            }
        }
        Ok(found)
    }

    /// The stored heads of those of `streams` that exist. Backends read them in one query
    /// per chunk; this default reads head by head.
    async fn stream_heads_many(
        &self,
        streams: &[String],
    ) -> Result<HashMap<String, StreamHead>, StoreError> {
        let mut found = HashMap::new();
        for stream in streams {
            if let Some(head) = self.stream_head(stream).await? {
                found.insert(stream.clone(), head);
            }
        }
        Ok(found)
    }

    /// The stored events having any of these sources. Backends read them in one query per
    /// chunk; this default reads source by source.
    async fn events_by_sources(&self, sources: &[Source]) -> Result<Vec<Event>, StoreError> {
        let mut found = Vec::new();
        for source in sources {
            if let Some(event) = self
                .event_by_source(&source.system, &source.source_event_id)
                .await?
            {
                found.push(event);
            }
        }
        Ok(found)
    }

    /// Events matching the query, in `position` order.
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;

    /// For those of `ids` superseded by a correction recorded by `known_at`: the correction.
    async fn superseded_by(
        &self,
        ids: &[Uuid],
        known_at: Instant,
    ) -> Result<HashMap<Uuid, Uuid>, StoreError>;

    async fn event(&self, id: Uuid) -> Result<Option<Event>, StoreError>;

    /// The stored event with this source (a source is unique in the ledger), if any.
    async fn event_by_source(
        &self,
        system: &str,
        source_event_id: &str,
    ) -> Result<Option<Event>, StoreError>;

    async fn head(&self) -> Result<LedgerHead, StoreError>;

    /// Whether appends commit, as the last one (or probe) found; no database round trip.
    fn writer_health(&self) -> WriterHealth;

    /// Commits a small write outside the ledger behind whatever appends are queued, and
    /// answers the writer's health after it: how a failing writer is seen to recover when
    /// no append comes.
    async fn probe_writer(&self) -> WriterHealth;

    /// What the append writer has committed since the store was opened: group sizes and
    /// commit latencies, for metrics.
    fn commit_stats(&self) -> CommitStats;

    /// Up to `limit` rows with position > `after_position`, in stored position order.
    async fn scan(&self, after_position: i64, limit: u32) -> Result<Vec<ScannedRow>, StoreError>;

    /// Up to `limit` stream names starting with `prefix`, after `after` (bytewise order).
    async fn streams_with_prefix(
        &self,
        prefix: &str,
        after: &str,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;

    /// The stored head of one stream (`None` when the stream has no event).
    async fn stream_head(&self, stream: &str) -> Result<Option<StreamHead>, StoreError>;

    /// Every stored stream head (the `streams` projection), by stream name.
    async fn stream_heads(&self) -> Result<Vec<(String, StreamHead)>, StoreError>;

    /// Every stored correction link: (superseded event, correcting event, recorded_at).
    async fn corrections(&self) -> Result<Vec<(Uuid, Uuid, Instant)>, StoreError>;

    /// Number of stored rows and distinct streams.
    async fn counts(&self) -> Result<(u64, u64), StoreError>;
}

/// The ledger's proofs: the stored nodes of its Merkle tree (written by the append, read
/// for inclusion and consistency proofs) and the signed checkpoints of its roots.
#[async_trait]
pub trait ProofStore: Send + Sync {
    /// Stored Merkle nodes among `ids` (absent ones are left out).
    async fn merkle_nodes(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StoreError>;

    /// Stored Merkle nodes of one level with index in `from..=to`, by index.
    async fn merkle_level_range(
        &self,
        level: u8,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Hash)>, StoreError>;

    async fn add_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError>;

    /// Every checkpoint, oldest first; unreadable rows are reported as errors.
    async fn checkpoints(&self) -> Result<Vec<Result<Checkpoint, String>>, StoreError>;
}

/// Read models derived from the ledger, each with the position up to which it has folded
/// the ledger. They hold nothing the ledger does not: each can be dropped and rebuilt.
#[async_trait]
pub trait ProjectionStore: Send + Sync {
    /// The position up to which the chain projection has folded the ledger (0: not yet).
    async fn chain_projection_position(&self) -> Result<u64, StoreError>;

    /// In one transaction: replaces the summaries given (with their sites) and moves the
    /// chain projection's position from `from` to `to`. False, and nothing written, when
    /// the stored position is no longer `from` (another server projected meanwhile).
    async fn put_chain_summaries(
        &self,
        summaries: &[ChainSummary],
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError>;

    /// One chain's summary, if projected.
    async fn chain_summary(&self, coi: &str) -> Result<Option<ChainSummary>, StoreError>;

    /// The summaries matching `query`, by COI (bytewise), after `query.after`.
    async fn chain_summaries(&self, query: &ChainQuery) -> Result<Vec<ChainSummary>, StoreError>;

    /// How many projected chains are in each state (states with none left out).
    async fn chain_state_counts(&self) -> Result<Vec<(ChainState, u64)>, StoreError>;

    /// Drops the chain projection: every summary and its position (folding starts again
    /// from the first event).
    async fn clear_chain_projection(&self) -> Result<(), StoreError>;

    /// The position up to which the alert projection has folded the ledger (0: not yet).
    async fn alert_projection_position(&self) -> Result<u64, StoreError>;

    /// In one transaction: replaces the alerts' rows given and moves the alert
    /// projection's position from `from` to `to`. False, and nothing written, when the
    /// stored position is no longer `from` (another server projected meanwhile).
    async fn put_alert_index(
        &self,
        rows: &[AlertIndexRow],
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError>;

    /// The alerts' rows matching `query`, newest (highest raised position) first.
    async fn alert_index(&self, query: &AlertIndexQuery) -> Result<Vec<AlertIndexRow>, StoreError>;

    /// Drops the alert projection: every row and its position.
    async fn clear_alert_projection(&self) -> Result<(), StoreError>;

    /// The position up to which the signal projection has folded the ledger (0: not yet).
    async fn signal_projection_position(&self) -> Result<u64, StoreError>;

    /// In one transaction: adds the signal rows given (a row already there is kept: an
    /// event's signals never change) and moves the signal projection's position from
    /// `from` to `to`. False, and nothing written, when the stored position is no longer
    /// `from` (another server projected meanwhile).
    async fn put_signal_rows(
        &self,
        rows: &[SignalRow],
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError>;

    /// The signal rows matching `query`, each with its chain's product (from the chain
    /// projection, when projected), by occurrence then event id and signal.
    async fn signal_rows(&self, query: &SignalQuery) -> Result<Vec<SignalHit>, StoreError>;

    /// Drops the signal projection: every row and its position.
    async fn clear_signal_projection(&self) -> Result<(), StoreError>;
}

/// One signal of master data failing, as the signal projection holds it: which event
/// recorded it, what kind it is, when it happened, and where (never a patient).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SignalRow {
    pub event_id: String,
    /// The kind of signal, e.g. `window_breach`.
    pub signal: String,
    /// When the cause happened (µs since the epoch, UTC).
    pub occurred_us: i64,
    pub coi: Option<String>,
    pub site_id: Option<String>,
    /// The source system whose record caused it (`autolog` for Autolog's own).
    pub source_system: String,
}

/// A signal row with its chain's product, as a report reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalHit {
    pub row: SignalRow,
    pub product_code: Option<String>,
}

/// A filter over the signal projection: signals that happened from `from_us` (inclusive)
/// to `to_us` (exclusive), at one site when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalQuery {
    pub from_us: i64,
    pub to_us: i64,
    pub site_id: Option<String>,
}

impl Default for SignalQuery {
    /// Every signal.
    fn default() -> Self {
        SignalQuery {
            from_us: i64::MIN,
            to_us: i64::MAX,
            site_id: None,
        }
    }
}

/// One alert as the alert projection holds it: what a listing filters by, and where it
/// was raised. The alert itself is read from its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertIndexRow {
    pub alert_id: String,
    pub coi: Option<String>,
    pub site_id: Option<String>,
    /// `raised`, `acknowledged` or `resolved`.
    pub status: String,
    pub raised_position: u64,
}

/// A filter over the alert projection; each condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertIndexQuery {
    /// Only alerts in one of these statuses (empty: any).
    pub statuses: Vec<String>,
    pub coi: Option<String>,
    pub site_id: Option<String>,
}

/// A filter over chain summaries; each condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainQuery {
    /// Only chains visible in this scope (`None`: every chain).
    pub scope: Option<ChainScope>,
    /// Only chains this site takes part in.
    pub site_id: Option<String>,
    /// Only chains in one of these states (none given: any state).
    pub states: Vec<ChainState>,
    pub product_code: Option<String>,
    /// Only the chains of this patient (pseudonymous key).
    pub patient_key: Option<String>,
    /// Only chains whose material is at this site.
    pub location_site_id: Option<String>,
    /// Only chains with a handoff on its way to this site.
    pub handoff_to_site_id: Option<String>,
    /// Only chains this site is to collect (or collected).
    pub collection_site_id: Option<String>,
    /// Only chains with (`true`) or without (`false`) a hold in force.
    pub on_hold: Option<bool>,
    /// Keyset: only COIs after this one.
    pub after: Option<String>,
    pub limit: u32,
}

/// The chains a caller may see: those treated at `treatment_sites`, and those that any
/// of `involved_sites` takes part in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainScope {
    pub treatment_sites: Vec<String>,
    pub involved_sites: Vec<String>,
}

/// Beside the ledger: the COI sequence of each issuer and year, and the counts of local
/// codes no crosswalk maps.
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Counts one sighting, at `seen_at`, of a local code that did not resolve through the
    /// crosswalks. Kept outside the ledger: it is an observation for the alignment report.
    async fn record_unmapped_code(
        &self,
        system: &str,
        kind: &str,
        code: &str,
        seen_at: Instant,
    ) -> Result<(), StoreError>;

    /// The next COI sequence number for an issuing FIN and year (from 1), allocated
    /// atomically: no two calls, from any server sharing the store, get the same number,
    /// and a number is never given again.
    async fn next_coi_sequence(&self, fin: &str, year: u16) -> Result<u64, StoreError>;

    /// Every unmapped code seen, ordered by system, kind and code.
    async fn unmapped_codes(&self) -> Result<Vec<UnmappedCode>, StoreError>;

    /// Sightings of unmapped codes per system, kind and week (weeks starting on Monday,
    /// 00:00 UTC) for weeks starting from `from_us` (inclusive) to `to_us` (exclusive),
    /// by week, system and kind.
    async fn unmapped_code_weeks(
        &self,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<UnmappedWeek>, StoreError>;
}

/// How often codes of one kind from one system went unmapped in one week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmappedWeek {
    pub system: String,
    pub kind: String,
    /// The week's Monday, 00:00 UTC (µs since the epoch).
    pub week_start_us: i64,
    pub count: u64,
}

/// Beside the ledger: how far each outbound feed has published.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// The position up to which the outbound feed `name` has published the ledger (its
    /// receiver acknowledged every event at or before it); `None` before its first
    /// publication. A name that [`check_outbox_name`] refuses is [`StoreError::Rejected`].
    async fn outbox_cursor(&self, name: &str) -> Result<Option<u64>, StoreError>;

    /// Moves the cursor of feed `name` to `position`, unless it is already further: it
    /// never moves back, so several servers publishing one feed cannot undo each other's
    /// progress. A bad name or a position beyond `i64::MAX` is [`StoreError::Rejected`] and
    /// nothing is written.
    async fn set_outbox_cursor(&self, name: &str, position: u64) -> Result<(), StoreError>;
}

/// Beside the ledger: console accounts (second factor, failed attempts, role grants) and
/// e-signature secrets.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Sets (or replaces) a person's signing secret, given as its Argon2id PHC string.
    async fn set_signing_secret(
        &self,
        person_id: &str,
        phc: &str,
        at: Instant,
        set_by: &str,
    ) -> Result<(), StoreError>;

    /// A person's signing secret (Argon2id PHC string), if one is set.
    async fn signing_secret(&self, person_id: &str) -> Result<Option<String>, StoreError>;

    /// Creates a console user account. Kept outside the ledger, like everything below: none
    /// of it is hashed into an event. A second account for the same person is
    /// [`StoreError::Rejected`] (field `person_id`) and nothing is written.
    async fn add_user(&self, user: &UserAccount) -> Result<(), StoreError>;

    /// A person's user account, if any.
    async fn user(&self, person_id: &str) -> Result<Option<UserAccount>, StoreError>;

    /// Every user account, by `person_id` (bytewise order).
    async fn users(&self) -> Result<Vec<UserAccount>, StoreError>;

    /// Sets (`Some`) or clears (`None`) a user's TOTP key, and forgets the last accepted
    /// step. False when the person has no account.
    async fn set_totp(&self, person_id: &str, secret: Option<&str>) -> Result<bool, StoreError>;

    /// Accepts a TOTP time step if it is later than the last accepted one (or none was),
    /// in one atomic update: a code is never accepted twice, even by two servers sharing the
    /// store. False when the step is not later, or the person has no account.
    async fn accept_totp_step(&self, person_id: &str, step: i64) -> Result<bool, StoreError>;

    /// Counts one failed sign-in, atomically: `failed_attempts` goes up by one and, once it
    /// is at or past `lock_after`, `locked_until` is set to `lock_until` (each further failure
    /// sets it again). The account after the change; `None` when the person has no account.
    async fn record_failed_attempt(
        &self,
        person_id: &str,
        lock_after: u32,
        lock_until: Instant,
    ) -> Result<Option<UserAccount>, StoreError>;

    /// Sets `failed_attempts` back to 0 (after a successful sign-in); an existing lock stays.
    /// Nothing happens when the person has no account, or none failed (then nothing is
    /// written: a sign-in or signature costs no durable write of its own).
    async fn reset_failed_attempts(&self, person_id: &str) -> Result<(), StoreError>;

    /// Lifts a lock: `failed_attempts` 0, `locked_until` empty. False when the person has no
    /// account.
    async fn unlock_user(&self, person_id: &str) -> Result<bool, StoreError>;

    /// Disables (`Some(at)`) or re-enables (`None`) an account. False when the person has no
    /// account.
    async fn set_user_disabled(
        &self,
        person_id: &str,
        at: Option<Instant>,
    ) -> Result<bool, StoreError>;

    /// Grants a role at a site. False, and nothing written, when the person already holds
    /// that role at that site.
    async fn grant_role(&self, grant: &RoleGrant) -> Result<bool, StoreError>;

    /// Withdraws a role at a site. False when it was not granted.
    async fn revoke_role(
        &self,
        person_id: &str,
        role: &str,
        site_id: &str,
    ) -> Result<bool, StoreError>;

    /// A person's role grants, by role then site (bytewise order).
    async fn role_grants(&self, person_id: &str) -> Result<Vec<RoleGrant>, StoreError>;
}

/// Beside the ledger: the API tokens of source systems (their hashes).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores an API token (its secret only as a SHA-256). A `token_id` already stored is
    /// [`StoreError::Rejected`] (field `token_id`) and nothing is written.
    async fn add_api_token(&self, token: &ApiToken) -> Result<(), StoreError>;

    /// One API token, revoked or not, if stored.
    async fn api_token(&self, token_id: Uuid) -> Result<Option<ApiToken>, StoreError>;

    /// Every API token, revoked or not, by `created_at` then `token_id`.
    async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// Revokes a token at `at`. False when no token has this id or it was already revoked
    /// (its first revocation time is kept).
    async fn revoke_api_token(&self, token_id: Uuid, at: Instant) -> Result<bool, StoreError>;
}

/// Beside the ledger: console sessions (their hashes).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a console session (hashes only). A `session_sha256` already stored is
    /// [`StoreError::Rejected`] (field `session_sha256`); a person without a user account
    /// is refused by the backend's foreign key.
    async fn add_session(&self, session: &Session) -> Result<(), StoreError>;

    /// The session whose cookie hashes to `session_sha256`, if stored (expired or not: the
    /// caller checks `expires_at` and idleness).
    async fn session(&self, session_sha256: &str) -> Result<Option<Session>, StoreError>;

    /// Marks activity on a session: `last_seen_at` becomes `at` unless it is already later.
    /// False when no session has this hash.
    async fn touch_session(&self, session_sha256: &str, at: Instant) -> Result<bool, StoreError>;

    /// Ends (deletes) one session. False when no session has this hash.
    async fn end_session(&self, session_sha256: &str) -> Result<bool, StoreError>;

    /// Ends every session of a person; how many were ended.
    async fn end_sessions_of(&self, person_id: &str) -> Result<u64, StoreError>;
}

/// Beside the ledger: webhook registrations and their deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Registers an outbound webhook. Kept outside the ledger: its secret must never be
    /// hashed into an event. A `webhook_id` already registered is
    /// [`StoreError::Rejected`] (field `webhook_id`) and nothing is written.
    async fn add_webhook(&self, webhook: &Webhook) -> Result<(), StoreError>;

    /// Every registered webhook, active or not, by `created_at` then `webhook_id`.
    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError>;

    /// Stops a webhook (its pending deliveries are no longer due); `at` is recorded the first
    /// time. False when no webhook has this id.
    async fn deactivate_webhook(&self, webhook_id: Uuid, at: Instant) -> Result<bool, StoreError>;

    /// In one transaction: queues a pending delivery, due at `at`, for each
    /// `(alert_event_id, position)` not already queued for this webhook (repeating a call is
    /// harmless), and moves the webhook's `cursor_position` to `new_cursor` unless it is
    /// already further (it never moves back). An unknown webhook is
    /// [`StoreError::Rejected`] (field `webhook_id`) and nothing is written.
    async fn enqueue_deliveries(
        &self,
        webhook_id: Uuid,
        alerts: &[(Uuid, u64)],
        new_cursor: u64,
        at: Instant,
    ) -> Result<(), StoreError>;

    /// Up to `limit` pending deliveries of active webhooks whose `next_attempt_at` is at or
    /// before `now`, by ledger position then webhook id.
    async fn due_deliveries(
        &self,
        now: Instant,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;

    /// In one transaction: appends attempt number `attempts + 1` to the delivery's log and
    /// updates the delivery (attempts, `last_attempt_at` = `at`, `last_result` = `detail`;
    /// when `ok`, status delivered and `delivered_at` = `at`; otherwise `next_attempt_at`).
    /// A failed attempt must say when to retry: `ok == false` with `next_attempt_at == None`
    /// is [`StoreError::Rejected`] (field `next_attempt_at`), as is a delivery that was never
    /// queued (field `alert_event_id`). Nothing is written then.
    async fn record_delivery_attempt(
        &self,
        webhook_id: Uuid,
        alert_event_id: Uuid,
        at: Instant,
        ok: bool,
        detail: &str,
        next_attempt_at: Option<Instant>,
    ) -> Result<(), StoreError>;

    /// Up to `limit` deliveries of one webhook, any status, by ledger position.
    async fn webhook_deliveries(
        &self,
        webhook_id: Uuid,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;

    /// How many deliveries of active webhooks are pending (the webhook backlog).
    async fn pending_deliveries(&self) -> Result<u64, StoreError>;

    /// The attempt log of one delivery, oldest first (empty when unknown).
    async fn delivery_attempts(
        &self,
        webhook_id: Uuid,
        alert_event_id: Uuid,
    ) -> Result<Vec<DeliveryAttempt>, StoreError>;
}

/// Beside the ledger: the patients' identifying data, encrypted, and the secrets sealed
/// with the vault key.
#[async_trait]
pub trait VaultStore: Send + Sync {
    /// Replaces stored secrets in one transaction (sealing them under a vault master key,
    /// or re-sealing them under a new one): each replacement applies only while the stored
    /// value is still `old` (a secret changed meanwhile is left as it is). The replay guard
    /// of a TOTP secret is kept: it is the same secret. Answers how many were replaced.
    async fn replace_secrets(&self, secrets: &[SecretReplacement]) -> Result<u64, StoreError>;

    /// Records a patient's personal data: inserts the record, or replaces the one not yet
    /// erased for the same `patient_key`. A patient whose record was erased is
    /// [`StoreError::Rejected`] (field `patient_key`), as is a record given with `erased_at`
    /// (field `erased_at`); nothing is written then.
    async fn put_vault_record(&self, record: &VaultRecord) -> Result<(), StoreError>;

    /// A patient's vault record, erased or not, if any.
    async fn vault_record(&self, patient_key: &str) -> Result<Option<VaultRecord>, StoreError>;

    /// Every vault record, erased or not, by `patient_key` (bytewise order).
    async fn vault_records(&self) -> Result<Vec<VaultRecord>, StoreError>;

    /// Rewraps data keys under another master key: each `(patient_key, master_key_id,
    /// wrapped_key)` replaces that record's key and master key id (`updated_at` unchanged).
    /// All in one transaction: an unknown or erased `patient_key` anywhere in the list is
    /// [`StoreError::Rejected`] (field `patient_key`) and nothing is written.
    async fn rewrap_vault_keys(&self, keys: &[(String, String, Vec<u8>)])
        -> Result<(), StoreError>;

    /// Crypto-shreds a patient's record: its wrapped key and ciphertext become empty and
    /// `erased_at` is set (the first erasure time is kept when erased again). The destroyed
    /// bytes are also scrubbed from the database's files as far as the backend allows; an
    /// error after the erasure committed says so, and erasing again finishes the scrub.
    /// False when the patient has no record.
    async fn erase_vault_record(&self, patient_key: &str, at: Instant) -> Result<bool, StoreError>;
}

/// Beside the ledger: EPCIS documents as captured, and their events for queries.
#[async_trait]
pub trait EpcisStore: Send + Sync {
    /// Stores one EPCIS capture and its events in one transaction (all of them or none:
    /// the EPCIS `rollback` behaviour). Captures are serialised: each event gets the next
    /// `seq`, and the capture's record time is read from `clock` under the lock (never
    /// earlier than the previous capture's); the `received_at` given is ignored. When the
    /// same sender (`actor`) already captured a document with the same `document_sha256`,
    /// nothing is written and that first capture is answered (`duplicate`). Events are
    /// never deduplicated by their hash id. Bad input (see [`check_epcis_capture`]) and a
    /// `capture_id` already stored are [`StoreError::Rejected`]; nothing is written then.
    async fn add_epcis_capture(
        &self,
        capture: &EpcisCapture,
        events: &[NewEpcisEvent],
        clock: &Clock,
    ) -> Result<CaptureOutcome, StoreError>;

    /// Stored EPCIS events matching the query, in `seq` order (keyset paging).
    async fn epcis_events(&self, query: &EpcisQuery) -> Result<Vec<StoredEpcisEvent>, StoreError>;
}

/// A local code seen but not mapped, with how often and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmappedCode {
    pub system: String,
    pub kind: String,
    pub code: String,
    pub count: u64,
    pub first_seen: Instant,
    pub last_seen: Instant,
}

/// The upsert both backends run to count an unmapped code (`$N` are placeholders).
const UNMAPPED_CODE_UPSERT: &str = "INSERT INTO unmapped_codes \
     (system, kind, code, seen_count, first_seen_us, last_seen_us) VALUES ($1, $2, $3, 1, $4, $4) \
     ON CONFLICT (system, kind, code) DO UPDATE SET seen_count = unmapped_codes.seen_count + 1, \
     first_seen_us = CASE WHEN excluded.first_seen_us < unmapped_codes.first_seen_us \
       THEN excluded.first_seen_us ELSE unmapped_codes.first_seen_us END, \
     last_seen_us = CASE WHEN excluded.last_seen_us > unmapped_codes.last_seen_us \
       THEN excluded.last_seen_us ELSE unmapped_codes.last_seen_us END";

/// The upsert both backends run to count an unmapped code in its week.
const UNMAPPED_WEEK_UPSERT: &str = "INSERT INTO unmapped_code_weeks \
     (system, kind, week_start_us, seen_count) VALUES ($1, $2, $3, 1) \
     ON CONFLICT (system, kind, week_start_us) \
     DO UPDATE SET seen_count = unmapped_code_weeks.seen_count + 1";

/// The upsert both backends run to set a signing secret (`$N` are placeholders).
const SIGNING_SECRET_UPSERT: &str =
    "INSERT INTO signing_secrets (person_id, phc, set_at_us, set_by) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (person_id) DO UPDATE SET phc = excluded.phc, \
     set_at_us = excluded.set_at_us, set_by = excluded.set_by";

/// The allocation both backends run (`$1` fin, `$2` year).
const COI_SEQUENCE_NEXT: &str = "INSERT INTO coi_sequences (fin, year, last_seq) VALUES ($1, $2, 1) \
     ON CONFLICT (fin, year) DO UPDATE SET last_seq = coi_sequences.last_seq + 1 RETURNING last_seq";

/// Reads an unmapped code from its stored columns.
fn unmapped_code(
    system: String,
    kind: String,
    code: String,
    count: i64,
    first_seen_us: i64,
    last_seen_us: i64,
) -> Result<UnmappedCode, StoreError> {
    let corrupt = |detail: String| StoreError::Backend {
        backend: "store",
        message: format!("unmapped_codes row ({system}, {kind}, {code}): {detail}"),
    };
    Ok(UnmappedCode {
        count: u64::try_from(count).map_err(|_| corrupt(format!("negative count {count}")))?,
        first_seen: Instant::from_micros(first_seen_us).map_err(corrupt)?,
        last_seen: Instant::from_micros(last_seen_us).map_err(corrupt)?,
        system,
        kind,
        code,
    })
}

/// A registered webhook: alerts are POSTed to `url`, signed with HMAC-SHA256 under `secret`.
/// Its `Debug` form leaves the secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub webhook_id: Uuid,
    pub url: String,
    /// The HMAC-SHA256 key. Stored beside the ledger, never in it.
    pub secret: String,
    pub created_at: Instant,
    /// Who registered it (an actor, as in the ledger's envelope).
    pub created_by: String,
    /// False once deactivated: its pending deliveries are no longer due.
    pub active: bool,
    /// ledger position up to which alerts were queued for it
    pub cursor_position: u64,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .field("active", &self.active)
            .field("cursor_position", &self.cursor_position)
            .finish()
    }
}

/// Where a delivery stands. Stored as text: `pending` or `delivered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Not yet acknowledged: due again at its `next_attempt_at`.
    Pending,
    /// Acknowledged by the receiver; never sent again.
    Delivered,
}

impl DeliveryStatus {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
        }
    }

    /// Reads the stored text form.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            _ => None,
        }
    }
}

/// One alert queued for one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub webhook_id: Uuid,
    /// The ledger event that raised the alert.
    pub alert_event_id: Uuid,
    /// That event's ledger position.
    pub position: u64,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the delivery is next due (meaningful while pending).
    pub next_attempt_at: Instant,
    pub last_attempt_at: Option<Instant>,
    /// What the last attempt got (status line or error), as the sender reported it.
    pub last_result: Option<String>,
    pub delivered_at: Option<Instant>,
}

/// One entry of a delivery's attempt log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// 1 for the first attempt, then 2, 3, ...
    pub attempt: u32,
    pub at: Instant,
    pub ok: bool,
    pub detail: String,
}

/// The cursor move both backends run when queueing deliveries (`$1` webhook id,
/// `$2` new cursor): the cursor only moves forward.
const WEBHOOK_CURSOR_ADVANCE: &str = "UPDATE webhooks SET cursor_position = \
     CASE WHEN cursor_position < $2 THEN $2 ELSE cursor_position END WHERE webhook_id = $1";

/// The delivery update both backends run for one attempt (`$1` webhook id, `$2` alert
/// event id, `$3` attempt time, `$4` detail, `$5` ok, `$6` next attempt time). Returns
/// the new attempt count, which numbers the attempt's log row.
const DELIVERY_ATTEMPT_UPDATE: &str = "UPDATE webhook_deliveries SET attempts = attempts + 1, \
     last_attempt_at_us = $3, last_result = $4, \
     status = CASE WHEN $5 THEN 'delivered' ELSE status END, \
     delivered_at_us = CASE WHEN $5 THEN COALESCE(delivered_at_us, $3) ELSE delivered_at_us END, \
     next_attempt_at_us = CASE WHEN $5 THEN next_attempt_at_us ELSE $6 END \
     WHERE webhook_id = $1 AND alert_event_id = $2 RETURNING attempts";

/// A ledger position as stored (bigint); one beyond it is refused, naming `field`.
fn stored_position(field: &str, position: u64) -> Result<i64, StoreError> {
    i64::try_from(position).map_err(|_| {
        StoreError::Rejected(FieldError::new(
            field,
            position.to_string(),
            "must be at most 9223372036854775807",
        ))
    })
}

/// The refusal of a webhook id that is already registered.
fn duplicate_webhook(webhook_id: Uuid) -> StoreError {
    StoreError::Rejected(FieldError::new(
        "webhook_id",
        webhook_id.to_string(),
        "a webhook with this id is already registered",
    ))
}

/// The refusal of a webhook id that is not registered.
fn unknown_webhook(webhook_id: Uuid) -> StoreError {
    StoreError::Rejected(FieldError::new(
        "webhook_id",
        webhook_id.to_string(),
        "no webhook with this id is registered",
    ))
}

/// The refusal of an attempt on a delivery that was never queued.
fn unknown_delivery(alert_event_id: Uuid) -> StoreError {
    StoreError::Rejected(FieldError::new(
        "alert_event_id",
        alert_event_id.to_string(),
        "no delivery of this alert is queued for the webhook",
    ))
}

/// Checks an attempt before it is recorded: a failed attempt must say when to retry.
fn check_delivery_attempt(ok: bool, next_attempt_at: Option<Instant>) -> Result<(), StoreError> {
    if !ok && next_attempt_at.is_none() {
        return Err(StoreError::Rejected(FieldError::new(
            "next_attempt_at",
            "",
            "a failed attempt must give the time of the next one",
        )));
    }
    Ok(())
}
