//! The append rules every backend shares, run inside the backend's transaction once it
//! holds the ledger head lock: idempotency, placement, corrections, Merkle nodes.

use std::collections::HashMap;

use async_trait::async_trait;
use autolog_domain::ledger::merkle::{leaf_hash, Hash, NodeId};
use autolog_domain::rules;
use autolog_domain::rules::history::{history_filter, record_filter, HistoryFilter};
use autolog_domain::{
    CorrectionTarget, EventDraft, FieldError, Placement, Source, Uuid, GENESIS_HASH,
};
use autolog_domain::{Event, Instant};

use crate::{AppendOutcome, LedgerHead, StoreError};

/// The last event of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHead {
    pub last_seq: u64,
    pub last_hash: Hash,
}

/// What one append writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct AppendPlan {
    /// New events, in position order.
    pub events: Vec<Event>,
    /// Merkle nodes completed by the new leaves.
    pub nodes: Vec<(NodeId, Hash)>,
    /// The new head of every stream touched.
    pub stream_heads: Vec<(String, StreamHead)>,
    /// (superseded event, correcting event, recorded_at) pairs.
    pub corrections: Vec<(Uuid, Uuid, Instant)>,
    /// The new global head; `None` when nothing new is written.
    pub head: Option<LedgerHead>,
}

/// The reads and the write a backend offers inside its append transaction.
#[async_trait]
pub trait AppendTx: Send {
    /// Locks the global ledger head for the rest of the transaction and reads it.
    async fn lock_head(&mut self) -> Result<LedgerHead, StoreError>;
    /// The stored events having any of these sources (one query per chunk, not per event).
    async fn find_by_sources(&mut self, sources: &[&Source]) -> Result<Vec<Event>, StoreError>;
    /// The stored heads of those of these streams that exist.
    async fn stream_heads_of(
        &mut self,
        streams: &[&str],
    ) -> Result<HashMap<String, StreamHead>, StoreError>;
    /// The events of a stream that `filter` admits, in seq order (for rules that depend on
    /// the stream's history: [`history_filter`] says which events a draft's rules read).
    async fn stream_history(
        &mut self,
        stream: &str,
        filter: &HistoryFilter,
    ) -> Result<Vec<Event>, StoreError>;
    /// Every event of each of `streams`, by stream, each in seq order (a stream with no
    /// event is left out): one query per chunk, so a batch of a hundred chains reads their
    /// histories at once under the lock, not one by one.
    async fn whole_histories(
        &mut self,
        streams: &[&str],
    ) -> Result<HashMap<String, Vec<Event>>, StoreError>;
    /// The stream of an event, and the correction that superseded it, if any.
    async fn event_stream(
        &mut self,
        id: Uuid,
    ) -> Result<Option<(String, Option<Uuid>)>, StoreError>;
    async fn write(&mut self, plan: &AppendPlan) -> Result<(), StoreError>;
}

/// The writer's clock. `recorded_at` is `max(clock, previous + 1 µs)`, read under the
/// ledger lock, so it follows commit order even when a writer waited for the lock or
/// clocks differ between servers. `Store::append` reads the caller's clock when it queues
/// the request (see [`crate::CommitQueue`]): at most one group's commit earlier.
pub type Clock = dyn Fn() -> Instant + Send + Sync;

/// Runs one append inside the backend's open transaction. The caller commits on `Ok`
/// and rolls back on `Err`, so a refused batch writes nothing.
pub async fn append_in_tx<T: AppendTx + ?Sized>(
    tx: &mut T,
    drafts: &[EventDraft],
    clock: &Clock,
) -> Result<Vec<AppendOutcome>, StoreError> {
    let mut head = tx.lock_head().await?;
    let now = clock();
    // Everything the batch needs from storage, read in a few queries up front.
    let mut sources: Vec<&Source> = drafts.iter().map(|d| &d.source).collect();
    sources.sort_by(|a, b| (&a.system, &a.source_event_id).cmp(&(&b.system, &b.source_event_id)));
    sources.dedup();
    let stored: HashMap<Source, Event> = tx
        .find_by_sources(&sources)
        .await?
        .into_iter()
        .map(|e| (e.source.clone(), e))
        .collect();
    // Registry records the drafts refer to must exist: read their heads with the others.
    let references: Vec<Vec<(String, String)>> = drafts.iter().map(rules::references).collect();
    let mut streams: Vec<&str> = drafts.iter().map(|d| d.stream.as_str()).collect();
    streams.extend(references.iter().flatten().map(|(_, s)| s.as_str()));
    streams.sort_unstable();
    streams.dedup();
    let stored_heads = tx.stream_heads_of(&streams).await?;
    let mut plan = AppendPlan::default();
    let mut outcomes: Vec<AppendOutcome> = Vec::with_capacity(drafts.len());
    let mut batch_sources: HashMap<&Source, usize> = HashMap::new();
    let mut stream_heads: HashMap<String, StreamHead> = HashMap::new();
    // Histories of the streams whose rules need them, by stream and filter: the stored
    // events the filter admits, then every event of this batch in that stream (the checks
    // filter those themselves).
    let mut histories: HashMap<String, HashMap<HistoryFilter, Vec<Event>>> = HashMap::new();
    // Correction targets seen so far (stored or new in this batch): id -> (stream, superseded_by).
    let mut targets: HashMap<Uuid, (String, Option<Uuid>)> = HashMap::new();
    // The stored streams whose rules read every event (chains, alerts), read together.
    let mut whole: Vec<&str> = drafts
        .iter()
        .filter(|d| rules::needs_history(&d.body.event_type, &d.stream))
        .filter(|d| {
            stored_heads.contains_key(&d.stream) && history_filter(d) == HistoryFilter::all()
        })
        .map(|d| d.stream.as_str())
        .collect();
    whole.sort_unstable();
    whole.dedup();
    if !whole.is_empty() {
        let mut read = tx.whole_histories(&whole).await?;
        for stream in whole {
            let events = read.remove(stream).unwrap_or_default();
            histories
                .entry(stream.to_string())
                .or_default()
                .insert(HistoryFilter::all(), events);
        }
    }

    for (i, draft) in drafts.iter().enumerate() {
        if let Some(&first) = batch_sources.get(&draft.source) {
            let event = outcomes[first].event.clone();
            outcomes.push(AppendOutcome {
                event,
                duplicate: true,
            });
            continue;
        }
        if let Some(existing) = stored.get(&draft.source) {
            batch_sources.insert(&draft.source, outcomes.len());
            outcomes.push(AppendOutcome {
                event: existing.clone(),
                duplicate: true,
            });
            continue;
        }
        let corrects = match &draft.corrects {
            None => None,
            Some(target) => {
                let id = resolve_target(tx, &batch_sources, &outcomes, target).await?;
                let found = match targets.get(&id) {
                    Some(found) => Some(found.clone()),
                    None => tx.event_stream(id).await?,
                };
                check_correction(draft, id, found)
                    .map_err(|e| StoreError::Rejected(e.under(&format!("[{i}]"))))?;
                Some(id)
            }
        };

        for (field, stream) in &references[i] {
            if !stored_heads.contains_key(stream) && !stream_heads.contains_key(stream) {
                return Err(StoreError::Rejected(
                    rules::unregistered(field, stream).under(&format!("[{i}]")),
                ));
            }
        }
        // Reference conditions that a concurrent request could change between the rules
        // and the commit: a lot's status, read again under the lock.
        if let Some(lot) = rules::consumed_lot(draft) {
            if stored_heads.contains_key(&lot) {
                let events = tx.stream_history(&lot, &record_filter(&lot)).await?;
                rules::check_lot_released(draft, &lot, &events)
                    .map_err(|e| StoreError::Rejected(e.under(&format!("[{i}]"))))?;
            }
        }

        if rules::needs_history(&draft.body.event_type, &draft.stream) {
            let filter = history_filter(draft);
            let cached = histories
                .get(&draft.stream)
                .is_some_and(|by_filter| by_filter.contains_key(&filter));
            if !cached {
                // A stream with no stored head has no stored history: no need to read it.
                let mut history = if stored_heads.contains_key(&draft.stream) {
                    tx.stream_history(&draft.stream, &filter).await?
                } else {
                    Vec::new()
                };
                history.extend(
                    plan.events
                        .iter()
                        .filter(|e| e.stream == draft.stream)
                        .cloned(),
                );
                histories
                    .entry(draft.stream.clone())
                    .or_default()
                    .insert(filter.clone(), history);
            }
            let prior = histories
                .get(&draft.stream)
                .and_then(|by_filter| by_filter.get(&filter))
                .map_or(&[][..], Vec::as_slice);
            rules::check_against_stream(draft, corrects, prior)
                .map_err(|e| StoreError::Rejected(e.under(&format!("[{i}]"))))?;
        }

        let stream_head = stream_heads
            .get(&draft.stream)
            .or_else(|| stored_heads.get(&draft.stream))
            .copied();
        let position = head.position + 1;
        let recorded_at = match head.recorded_at {
            Some(last) if last >= now => last.next(),
            _ => now,
        };
        let place = Placement {
            seq: stream_head.map_or(1, |h| h.last_seq + 1),
            prev_hash: stream_head.map_or(GENESIS_HASH, |h| h.last_hash),
            position,
            recorded_at,
            corrects,
        };
        let event = draft.seal(place);
        plan.nodes
            .extend(head.frontier.append(leaf_hash(&event.hash)));
        head.position = position;
        head.recorded_at = Some(recorded_at);
        stream_heads.insert(
            draft.stream.clone(),
            StreamHead {
                last_seq: event.seq,
                last_hash: event.hash,
            },
        );
        if let Some(target) = corrects {
            plan.corrections.push((target, event.event_id, recorded_at));
            targets.insert(target, (event.stream.clone(), Some(event.event_id)));
        }
        targets.insert(event.event_id, (event.stream.clone(), None));
        for history in histories
            .get_mut(&event.stream)
            .into_iter()
            .flat_map(|h| h.values_mut())
        {
            history.push(event.clone());
        }
        batch_sources.insert(&draft.source, outcomes.len());
        plan.events.push(event.clone());
        outcomes.push(AppendOutcome {
            event,
            duplicate: false,
        });
    }

    if !plan.events.is_empty() {
        plan.stream_heads = stream_heads.into_iter().collect();
        plan.stream_heads.sort_by(|a, b| a.0.cmp(&b.0));
        plan.head = Some(head);
        tx.write(&plan).await?;
    }
    Ok(outcomes)
}

/// Turns a correction target given by source into the event id it names. A source that
/// names no event is a refusal; a storage failure stays a storage failure.
async fn resolve_target<T: AppendTx + ?Sized>(
    tx: &mut T,
    batch_sources: &HashMap<&Source, usize>,
    outcomes: &[AppendOutcome],
    target: &CorrectionTarget,
) -> Result<Uuid, StoreError> {
    let source = match target {
        CorrectionTarget::EventId(id) => return Ok(*id),
        CorrectionTarget::Source(source) => source,
    };
    if let Some(&i) = batch_sources.get(source) {
        return Ok(outcomes[i].event.event_id);
    }
    match tx.find_by_sources(&[source]).await?.first() {
        Some(event) => Ok(event.event_id),
        None => Err(StoreError::Rejected(
            FieldError::new(
                "corrects",
                target.to_string(),
                "names no event in the ledger (no event has this source)",
            )
            .under(&format!("[{}]", outcomes.len())),
        )),
    }
}

/// A correction must name an event of the same stream that no correction has yet superseded.
fn check_correction(
    draft: &EventDraft,
    target: Uuid,
    found: Option<(String, Option<Uuid>)>,
) -> Result<(), FieldError> {
    match found {
        None => Err(FieldError::new(
            "corrects",
            target.to_string(),
            "names no event in the ledger",
        )),
        Some((stream, _)) if stream != draft.stream => Err(FieldError::new(
            "corrects",
            target.to_string(),
            format!(
                "names an event of stream {stream}; a correction must be in the same stream ({})",
                draft.stream
            ),
        )),
        Some((_, Some(by))) => Err(FieldError::new(
            "corrects",
            target.to_string(),
            format!("was already superseded by {by}; correct that event instead"),
        )),
        Some(_) => Ok(()),
    }
}
