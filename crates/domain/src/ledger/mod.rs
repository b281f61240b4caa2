//! The ledger core: the event envelope and its canonical bytes and hash, instants and zoned
//! valid times, the Merkle log and its proofs, signed checkpoints, bitemporal selection,
//! and what an event type is. It knows no area: no chain, batch or reference-data payload.

pub mod bitemporal;
pub mod checkpoint;
pub mod dossier;
pub mod envelope;
pub mod event_type;
pub mod fields;
pub mod jcs;
pub mod json;
pub mod merkle;
pub mod stream;
pub mod time;
pub mod witness;
pub mod zone;
