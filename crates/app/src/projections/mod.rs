//! Read models and reports folded from the ledger: the chain projection (each chain as it
//! stands now), the alert projection (where each alert is and how it stands), genealogy
//! both ways, the network reconciliation report, retention on the patient's timeline,
//! turnaround (vein-to-vein and per step), and the signal projection (symptoms of master
//! data failing, counted per week).

pub(crate) mod alerts;
pub(crate) mod chains;
pub(crate) mod genealogy;
pub(crate) mod reconciliation;
pub(crate) mod retention;
pub(crate) mod signals;
pub(crate) mod turnaround;

use std::collections::BTreeSet;

use autolog_domain::Event;

use crate::{AppError, Autolog};

/// Events read per page of a projector step.
const PAGE_EVENTS: u32 = 1_000;

/// Events a projector folds per step (one transaction): enough that a chain whose events
/// are spread through a long stretch of the ledger is folded once, not once per page.
const STEP_EVENTS: u64 = 50_000;

impl Autolog {
    /// Calls `each` on every event of up to [`STEP_EVENTS`] events after ledger position
    /// `from`, in ledger order; the position of the last event read (`from` when none
    /// follows): what one step of a projector folds.
    pub(crate) async fn fold_step(
        &self,
        from: u64,
        mut each: impl FnMut(&Event) -> Result<(), AppError>,
    ) -> Result<u64, AppError> {
        let mut to = from;
        while to - from < STEP_EVENTS {
            let rows = self
                .store
                .scan(i64::try_from(to).unwrap_or(i64::MAX), PAGE_EVENTS)
                .await?;
            let Some(last) = rows.last() else { break };
            to = u64::try_from(last.position).unwrap_or(to);
            for row in &rows {
                each(row.event.as_ref().map_err(|detail| {
                    AppError::Integrity(format!(
                        "stored row at position {} is unreadable: {detail}",
                        row.position
                    ))
                })?)?;
            }
        }
        Ok(to)
    }

    /// The streams written by up to [`STEP_EVENTS`] events after ledger position `from`,
    /// each once, and the position of the last event read: what one step of a projector
    /// that folds whole streams folds again.
    pub(crate) async fn streams_after(
        &self,
        from: u64,
    ) -> Result<(u64, BTreeSet<String>), AppError> {
        let mut streams = BTreeSet::new();
        let to = self
            .fold_step(from, |event| {
                if !streams.contains(&event.stream) {
                    streams.insert(event.stream.clone());
                }
                Ok(())
            })
            .await?;
        Ok((to, streams))
    }
}
