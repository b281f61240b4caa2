//! The one conformance suite every `Store` backend must pass, and the harness that gives
//! each test a fresh SQLite file or a fresh PostgreSQL database (dropped afterwards).

pub mod cases;
pub mod harness;

pub use harness::{run_on, Backend, Target};
