//! The app's use cases against real stores, in one test binary (one link of the whole tree
//! instead of one per file).

mod alignment;
mod chains;
mod golden;
mod ingest;
mod integration_examples;
mod journeys;
mod projections;
mod resolve;
mod side_tables;
mod trusted;
mod vault;
