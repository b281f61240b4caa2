//! The chain of identity: enrolment and COI issuance, the chain as of any moment (`enrol`),
//! each step against reference data and the chain's state, receipts reconciled against
//! their handoff (`custody`), and what a request's rules read, read together (`rule_reads`).

pub(crate) mod custody;
pub(crate) mod enrol;
pub(crate) mod rule_reads;
