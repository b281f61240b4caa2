//! Read models and reports folded from the ledger: the chain projection (each chain as it
//! stands now), the alert projection (where each alert is and how it stands), genealogy both ways, the network reconciliation report,
//! retention on the patient's timeline, and turnaround (vein-to-vein and per step).

pub(crate) mod alerts;
pub(crate) mod chains;
pub(crate) mod genealogy;
pub(crate) mod reconciliation;
pub(crate) mod retention;
pub(crate) mod turnaround;
