//! Operational gauges read at each metrics scrape: how large the ledger is and how far
//! behind it the projection and the outbound feeds are.

use crate::feeds::outbox::NatsOptions;
use crate::{AppError, Autolog};

/// The backlog figures of this moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// Events in the ledger (its head position).
    pub ledger_events: u64,
    /// Events the chain projection has not folded yet.
    pub chain_projection_lag: u64,
    /// Events the NATS feed has not published yet (`None` without a feed).
    pub outbox_lag: Option<u64>,
    /// Webhook deliveries pending.
    pub webhook_pending: u64,
    /// Chains in each state, as projected (never a patient: counts only).
    pub chains_by_state: Vec<(autolog_domain::chain::ChainState, u64)>,
}

impl Autolog {
    /// The backlog now; `nats` names the outbound feed this server publishes, if any.
    pub async fn backlog(&self, nats: Option<&NatsOptions>) -> Result<Backlog, AppError> {
        let head = self.store.head().await?.position;
        let projected = self.store.chain_projection_position().await?;
        let outbox_lag = match nats {
            Some(options) => {
                let published = self
                    .store
                    .outbox_cursor(&options.cursor_name())
                    .await?
                    .unwrap_or(0);
                Some(head.saturating_sub(published))
            }
            None => None,
        };
        Ok(Backlog {
            ledger_events: head,
            chain_projection_lag: head.saturating_sub(projected),
            outbox_lag,
            webhook_pending: self.store.pending_deliveries().await?,
            chains_by_state: self.store.chain_state_counts().await?,
        })
    }

    /// What the append writer has committed since the store was opened.
    pub fn commit_stats(&self) -> autolog_store::CommitStats {
        self.store.commit_stats()
    }
}
