//! The `Store` boundary of the ledger: what every backend must do, and the append rules
//! they share (placement, idempotency, corrections, Merkle nodes). No database here.

mod append;
mod row;

use std::collections::HashMap;

use async_trait::async_trait;
use autolog_domain::checkpoint::Checkpoint;
use autolog_domain::merkle::{Frontier, Hash, NodeId};
use autolog_domain::{Event, EventDraft, FieldError, Instant, Uuid};

pub use append::{append_in_tx, AppendPlan, AppendTx, Clock, StreamHead};
pub use row::{CheckpointRow, EventRow, EVENT_COLUMNS};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The batch breaks a ledger rule (e.g. a correction naming an unknown event).
    /// Nothing was written.
    #[error("{0}")]
    Rejected(FieldError),
    /// The backend failed (I/O, connection, constraint backstop). Nothing was written.
    #[error("storage backend ({backend}) failed: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
    /// A stored row cannot be read back as an event: the database was changed outside Autolog.
    #[error("stored row at position {position} is unreadable: {detail}")]
    Corrupt { position: i64, detail: String },
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

#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Appends drafts atomically, in order: all of them with their projection rows, or none.
    /// `clock` is read once the ledger head is locked; `recorded_at` is never earlier than
    /// it and always later than the previous event's.
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

    /// Events matching the query, in `position` order.
    async fn list_events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;

    /// For those of `ids` superseded by a correction recorded by `known_at`: the correction.
    async fn superseded_by(
        &self,
        ids: &[Uuid],
        known_at: Instant,
    ) -> Result<HashMap<Uuid, Uuid>, StoreError>;

    async fn event(&self, id: Uuid) -> Result<Option<Event>, StoreError>;

    async fn head(&self) -> Result<LedgerHead, StoreError>;

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

/// The upsert both backends run to count an unmapped code (`{}` are placeholders).
pub const UNMAPPED_CODE_UPSERT: &str = "INSERT INTO unmapped_codes \
     (system, kind, code, seen_count, first_seen_us, last_seen_us) VALUES ({1}, {2}, {3}, 1, {4}, {4}) \
     ON CONFLICT (system, kind, code) DO UPDATE SET seen_count = unmapped_codes.seen_count + 1, \
     first_seen_us = CASE WHEN excluded.first_seen_us < unmapped_codes.first_seen_us \
       THEN excluded.first_seen_us ELSE unmapped_codes.first_seen_us END, \
     last_seen_us = CASE WHEN excluded.last_seen_us > unmapped_codes.last_seen_us \
       THEN excluded.last_seen_us ELSE unmapped_codes.last_seen_us END";

/// The allocation both backends run (`{}` are placeholders for fin and year).
pub const COI_SEQUENCE_NEXT: &str = "INSERT INTO coi_sequences (fin, year, last_seq) VALUES ({1}, {2}, 1) \
     ON CONFLICT (fin, year) DO UPDATE SET last_seq = coi_sequences.last_seq + 1 RETURNING last_seq";

/// Reads an unmapped code from its stored columns.
pub fn unmapped_code(
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
