//! Reports folded from the ledger: genealogy both ways, the network reconciliation report,
//! retention on the patient's timeline, and turnaround (vein-to-vein and per step).

pub(crate) mod genealogy;
pub(crate) mod reconciliation;
pub(crate) mod retention;
pub(crate) mod turnaround;
