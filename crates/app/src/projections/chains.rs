//! The chain projection: each chain as it stands now, in one row of the store, kept from
//! the ledger by a cursor. Lists and work queues read it instead of folding every chain.
//!
//! The projector reads the events after the projection's position, folds again each chain
//! they touch, and writes the new summaries with the new position in one transaction:
//! a crash leaves the projection at its last position, never half-way. A reader first
//! brings the projection up to the ledger's head, so it sees its own writes. An event on a
//! product's stream folds again the chains of that product; one on a process step's
//! stream, every chain (the fold reads both). Questions about the past (`valid_at`,
//! `known_at`) still fold the ledger.

use std::collections::BTreeSet;
use std::sync::Arc;

use autolog_domain::access::{chain_scope, ChainSites, Grant, Permission};
use autolog_domain::chain::summary::ChainSummary;
use autolog_domain::chain::ChainState;
use autolog_domain::identifiers::Coi;
use autolog_domain::ledger::bitemporal::effective_events;
use autolog_domain::ledger::envelope::check_code;
use autolog_domain::{FieldError, StreamId};
use autolog_store::{ChainQuery, ChainScope};

use crate::chain::custody::in_recording_order;
use crate::chain::rule_reads::RuleReads;
use crate::ledger::read::page_limit;
use crate::{AppError, Autolog};

/// A listing of chains, from the projection.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ChainList {
    pub chains: Vec<ChainSummary>,
    /// The last COI of this page when more may follow: pass it as `after`.
    pub next_after: Option<String>,
    /// The ledger position the projection had folded when it answered.
    pub projected_to: u64,
}

/// A chain filter as the API and CLI give it (text, checked here).
#[derive(Debug, Default, Clone)]
pub struct ChainFilter {
    pub site_id: Option<String>,
    pub state: Option<String>,
    pub product_code: Option<String>,
    pub patient_key: Option<String>,
    pub after: Option<String>,
    pub limit: Option<u32>,
}

/// What waits at one site, from the chain projection: each list by COI, at most `limit`
/// chains (`more` says when there are others).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SiteWork {
    pub site_id: String,
    /// Chains this site is to collect: enrolled, not yet collected.
    pub to_collect: WorkList,
    /// Handoffs on their way to this site, awaiting its receipt.
    pub to_receive: WorkList,
    /// Chains whose material is here and still in progress (not administered, in
    /// follow-up or cancelled), without a hold.
    pub in_progress: WorkList,
    /// Chains whose material is here with a hold in force.
    pub on_hold: WorkList,
    /// The ledger position the projection had folded when it answered.
    pub projected_to: u64,
}

/// One list of a site's work.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct WorkList {
    pub chains: Vec<ChainSummary>,
    /// More chains than `limit` wait here.
    pub more: bool,
}

/// The states in which a chain's material still moves through sites.
const IN_PROGRESS: [ChainState; 8] = [
    ChainState::Collected,
    ChainState::InTransit,
    ChainState::ReceivedAtManufacturing,
    ChainState::InManufacturing,
    ChainState::InTesting,
    ChainState::ReleasedForPatient,
    ChainState::ReceivedAtTreatmentCenter,
    ChainState::OnHold,
];

/// How the projections compare with the ledger's fold (`autolog verify`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectionCheck {
    pub chains: u64,
    pub alerts: u64,
    pub signals: u64,
    /// Each chain summary, alert or signal row that differs from the fold, is missing,
    /// or stands for no chain, alert or signal.
    pub differences: Vec<String>,
}

impl ChainFilter {
    fn query(&self, scope: Option<ChainScope>) -> Result<ChainQuery, AppError> {
        for (field, value) in [
            ("site_id", &self.site_id),
            ("product_code", &self.product_code),
            ("patient_key", &self.patient_key),
        ] {
            if let Some(v) = value {
                check_code(field, v)?;
            }
        }
        let state = match &self.state {
            None => None,
            Some(s) => Some(ChainState::parse(s).ok_or_else(|| {
                let names: Vec<&str> = ChainState::ALL.iter().map(|s| s.as_str()).collect();
                FieldError::new("state", s, format!("must be one of {}", names.join(", ")))
            })?),
        };
        let after = match &self.after {
            None => None,
            Some(a) => Some(Coi::parse("after", a)?.to_string()),
        };
        Ok(ChainQuery {
            scope,
            site_id: self.site_id.clone(),
            states: state.into_iter().collect(),
            product_code: self.product_code.clone(),
            patient_key: self.patient_key.clone(),
            after,
            limit: page_limit(self.limit)?,
            ..ChainQuery::default()
        })
    }
}

/// The chains a step of events changes.
#[derive(Default)]
struct Touched {
    cois: BTreeSet<String>,
    /// Every chain of these products.
    products: BTreeSet<String>,
    /// Every chain (a process step changed: every fold reads the steps).
    every: bool,
}

impl Touched {
    /// What the streams written in a step change: their chains, their products' chains,
    /// or (a process step changed) every chain.
    fn of(streams: &BTreeSet<String>) -> Touched {
        let mut touched = Touched::default();
        for stream in streams {
            if let Some(coi) = stream.strip_prefix("coi/") {
                touched.cois.insert(coi.to_string());
            } else if let Some(product) = stream.strip_prefix("product/") {
                touched.products.insert(product.to_string());
            } else if stream.starts_with("step/") {
                touched.every = true;
            }
        }
        touched
    }
}

/// The chains `grants` may read (`None`: every chain).
fn readable(grants: &[Grant]) -> Option<ChainScope> {
    chain_scope(grants, Permission::ReadChains).map(|(treatment, involved)| ChainScope {
        treatment_sites: treatment,
        involved_sites: involved,
    })
}

impl Autolog {
    /// Brings the chain projection up to the ledger's head; the position it reached.
    pub async fn project_chains(&self) -> Result<u64, AppError> {
        let _one_projector = self.projector.lock().await;
        loop {
            let from = self.store.chain_projection_position().await?;
            let (to, streams) = self.streams_after(from).await?;
            if to == from {
                return Ok(from);
            }
            let touched = Touched::of(&streams);
            let cois = match touched.every {
                true => self.every_chain().await?,
                false => self.with_chains_of(touched.cois, &touched.products).await?,
            };
            let reads = Arc::new(RuleReads::default());
            let known_at = self.everything_stored().await?;
            let mut summaries = Vec::with_capacity(cois.len());
            for coi in &cois {
                summaries.extend(self.summarise_chain(coi, known_at, &reads).await?);
            }
            // False when another server moved the position meanwhile: read it again.
            self.store.put_chain_summaries(&summaries, from, to).await?;
        }
    }

    /// Keeps the chain projection up with the ledger in the background: after each append
    /// by this process, and every `interval` (appends by other servers sharing the
    /// database). Readers still catch up themselves; this only takes the wait off them.
    /// A failure is logged and tried again at the next wake-up.
    pub async fn run_projector(self: Arc<Self>, interval: std::time::Duration) {
        loop {
            if let Err(e) = self.project_chains().await {
                tracing::warn!(error = %e, "projecting the chains failed; will retry");
            }
            if let Err(e) = self.project_alerts().await {
                tracing::warn!(error = %e, "projecting the alerts failed; will retry");
            }
            if let Err(e) = self.project_signals().await {
                tracing::warn!(error = %e, "projecting the signals failed; will retry");
            }
            tokio::select! {
                _ = self.to_project.notified() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Drops the chain, alert and signal projections and folds the whole ledger into them
    /// again.
    pub async fn rebuild_projections(&self) -> Result<u64, AppError> {
        self.store.clear_chain_projection().await?;
        self.store.clear_alert_projection().await?;
        self.store.clear_signal_projection().await?;
        self.project_alerts().await?;
        self.project_signals().await?;
        self.project_chains().await
    }

    /// The chains `grants` may read, matching `filter`, by COI; the projection is brought
    /// up to the ledger's head first, so a caller sees its own appends.
    pub async fn chains(
        &self,
        grants: &[Grant],
        filter: &ChainFilter,
    ) -> Result<ChainList, AppError> {
        let query = filter.query(readable(grants))?;
        let projected_to = self.project_chains().await?;
        let chains = self.store.chain_summaries(&query).await?;
        let full = chains.len() == query.limit as usize;
        Ok(ChainList {
            next_after: chains.last().filter(|_| full).map(|c| c.coi.clone()),
            chains,
            projected_to,
        })
    }

    /// One chain's summary as projected (the projection brought up to the ledger's head
    /// first); `None` for an unknown COI. Scope is the caller's to check.
    pub async fn chain_summary(&self, coi: &str) -> Result<Option<ChainSummary>, AppError> {
        let coi = Coi::parse("coi", coi)?.to_string();
        self.project_chains().await?;
        Ok(self.store.chain_summary(&coi).await?)
    }

    /// Chains in each state, network-wide (counts only: for network roles), the
    /// projection brought up to the ledger's head first.
    pub async fn chain_state_counts(&self) -> Result<Vec<(ChainState, u64)>, AppError> {
        self.project_chains().await?;
        Ok(self.store.chain_state_counts().await?)
    }

    /// What waits at `site_id`, among the chains `grants` may read (see [`SiteWork`]).
    pub async fn site_work(
        &self,
        grants: &[Grant],
        site_id: &str,
        limit: Option<u32>,
    ) -> Result<SiteWork, AppError> {
        check_code("site_id", site_id)?;
        let limit = page_limit(limit)?;
        let base = ChainQuery {
            scope: readable(grants),
            // One more than shown: whether there are more.
            limit: limit + 1,
            ..ChainQuery::default()
        };
        let site = Some(site_id.to_string());
        let projected_to = self.project_chains().await?;
        let list = |query: ChainQuery| async move {
            let mut chains = self.store.chain_summaries(&query).await?;
            let more = chains.len() > limit as usize;
            chains.truncate(limit as usize);
            Ok::<_, AppError>(WorkList { chains, more })
        };
        Ok(SiteWork {
            site_id: site_id.to_string(),
            to_collect: list(ChainQuery {
                collection_site_id: site.clone(),
                states: vec![ChainState::Enrolled],
                ..base.clone()
            })
            .await?,
            to_receive: list(ChainQuery {
                handoff_to_site_id: site.clone(),
                ..base.clone()
            })
            .await?,
            in_progress: list(ChainQuery {
                location_site_id: site.clone(),
                states: IN_PROGRESS.to_vec(),
                on_hold: Some(false),
                ..base.clone()
            })
            .await?,
            on_hold: list(ChainQuery {
                location_site_id: site,
                on_hold: Some(true),
                ..base
            })
            .await?,
            projected_to,
        })
    }

    /// Compares every chain's summary with a fold of its stream now.
    pub async fn check_projections(&self) -> Result<ProjectionCheck, AppError> {
        self.project_chains().await?;
        let reads = Arc::new(RuleReads::default());
        let known_at = self.everything_stored().await?;
        let mut check = ProjectionCheck::default();
        let mut projected: BTreeSet<String> = BTreeSet::new();
        for stored in self.summaries_where(ChainQuery::default()).await? {
            let folded = self.summarise_chain(&stored.coi, known_at, &reads).await?;
            if folded.as_ref() != Some(&stored) {
                check.differences.push(format!(
                    "chain {}: projected {stored:?}, folded {folded:?}",
                    stored.coi
                ));
            }
            projected.insert(stored.coi);
        }
        for coi in self.every_chain().await? {
            check.chains += 1;
            if !projected.contains(&coi) {
                check
                    .differences
                    .push(format!("chain {coi}: not projected"));
            }
        }
        let (alerts, differences) = self.check_alert_projection().await?;
        check.alerts = alerts;
        check.differences.extend(differences);
        let (signals, differences) = self.check_signal_projection().await?;
        check.signals = signals;
        check.differences.extend(differences);
        Ok(check)
    }

    /// The chain as recorded by `known_at`: every event in force (not superseded), folded
    /// in recording order. `None` when the stream holds no event.
    async fn summarise_chain(
        &self,
        coi: &str,
        known_at: autolog_domain::Instant,
        reads: &Arc<RuleReads>,
    ) -> Result<Option<ChainSummary>, AppError> {
        let events = self
            .store
            .stream_events(&StreamId::chain(coi), known_at)
            .await?;
        let Some(newest) = events.last() else {
            return Ok(None);
        };
        // Every event in force, whatever its `occurred_at` (as the reconciliation reads).
        let effective = effective_events(&events, autolog_domain::Instant::MAX, known_at);
        let ordered = in_recording_order(&effective, &events);
        let (view, enrolment) = self.chain_fold(coi, &ordered, reads).await?;
        let enrolment = enrolment
            .as_ref()
            .map(|e| (e.patient_key.as_str(), e.product_code.as_str()));
        let sites = ChainSites::of(&events);
        Ok(Some(ChainSummary::of(
            coi,
            &view,
            enrolment,
            &sites,
            newest.position,
        )))
    }

    /// A `known_at` that holds every event stored: the last commit's time, or now if later
    /// (an event is recorded after the previous one even when the clock has not moved on,
    /// so the last commit may be a little ahead of the clock).
    async fn everything_stored(&self) -> Result<autolog_domain::Instant, AppError> {
        let now = self.now();
        let head = self.store.head().await?;
        Ok(head.recorded_at.map_or(now, |last| last.max(now)))
    }

    /// Every projected summary `query` matches (its page size and `after` are set here),
    /// read page by page.
    async fn summaries_where(&self, mut query: ChainQuery) -> Result<Vec<ChainSummary>, AppError> {
        query.limit = crate::ledger::read::MAX_PAGE;
        query.after = None;
        let mut all = Vec::new();
        loop {
            let page = self.store.chain_summaries(&query).await?;
            let full = page.len() == query.limit as usize;
            query.after = page.last().map(|c| c.coi.clone());
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// `cois` and every projected chain of `products`.
    async fn with_chains_of(
        &self,
        mut cois: BTreeSet<String>,
        products: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, AppError> {
        for product in products {
            let of_product = ChainQuery {
                product_code: Some(product.clone()),
                ..ChainQuery::default()
            };
            let summaries = self.summaries_where(of_product).await?;
            cois.extend(summaries.into_iter().map(|c| c.coi));
        }
        Ok(cois)
    }

    /// Every COI with a stream.
    async fn every_chain(&self) -> Result<BTreeSet<String>, AppError> {
        Ok(self
            .all_streams_with_prefix("coi/")
            .await?
            .iter()
            .filter_map(|s| s.strip_prefix("coi/").map(str::to_string))
            .collect())
    }
}
