//! The domain's integration tests, in one binary (one link): the published hash vectors,
//! and the layout of every crate's areas.

mod hash_vectors;
mod layout;
