//! The ledger as the app reads it: outside requests parsed once (`request`), streams and
//! events as of any moment (`read`), inclusion and consistency proofs and checkpoints
//! (`proofs`), the independent verification of the whole ledger (`verify`), side tables
//! included (`side_tables`), and reference records' current states kept while their
//! stream's head is unchanged (`state_cache`).

pub(crate) mod clock;
pub(crate) mod derived;
pub(crate) mod proofs;
pub(crate) mod read;
pub(crate) mod request;
pub(crate) mod side_tables;
pub(crate) mod state_cache;
pub(crate) mod verify;
