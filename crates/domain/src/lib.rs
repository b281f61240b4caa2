//! Autolog's domain: the event envelope, its canonical bytes and hash, the Merkle log,
//! checkpoints, bitemporal folds and time rules. Pure functions and types: no I/O, no async, no SQL.

pub mod access;
pub mod batch;
pub mod bitemporal;
pub mod chain;
pub mod checkpoint;
pub mod crosswalk;
pub mod envelope;
pub mod error;
pub mod event_type;
pub mod history;
pub mod identifiers;
pub mod merkle;
pub mod reference;
pub mod rules;
pub mod scan;
pub mod signature;
pub mod time;
pub mod zone;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use envelope::{Body, CorrectionTarget, Event, EventDraft, Placement, Source, GENESIS_HASH};
pub use error::FieldError;
pub use time::{Instant, OccurredAt};
pub use uuid::Uuid;
