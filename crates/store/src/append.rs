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
    let head = tx.lock_head().await?;
    let now = clock();
    let known = Known::read(tx, drafts).await?;
    let mut batch = Batch::new(head, &known);
    batch.read_whole_histories(tx, drafts, &known).await?;
    for (i, draft) in drafts.iter().enumerate() {
        if batch.is_duplicate(draft, &known) {
            continue;
        }
        let corrects = batch.correction(tx, i, draft).await?;
        batch.check_references(i, &known)?;
        check_lot_under_lock(tx, i, draft, &known).await?;
        batch
            .check_stream_rules(tx, i, draft, corrects, &known)
            .await?;
        batch.place(draft, corrects, now, &known);
    }
    batch.write(tx).await
}

/// What the batch needs from storage, read in a few queries up front.
struct Known {
    /// Stored events with the drafts' sources (resent requests).
    stored: HashMap<Source, Event>,
    /// The registry records each draft refers to: (field, stream).
    references: Vec<Vec<(String, String)>>,
    /// The stored heads of the drafts' streams and of the records they refer to.
    stored_heads: HashMap<String, StreamHead>,
}

impl Known {
    async fn read<T: AppendTx + ?Sized>(
        tx: &mut T,
        drafts: &[EventDraft],
    ) -> Result<Self, StoreError> {
        let mut sources: Vec<&Source> = drafts.iter().map(|d| &d.source).collect();
        sources
            .sort_by(|a, b| (&a.system, &a.source_event_id).cmp(&(&b.system, &b.source_event_id)));
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
        Ok(Known {
            stored,
            references,
            stored_heads,
        })
    }
}

/// The batch as it is placed, event by event.
struct Batch<'d> {
    head: LedgerHead,
    plan: AppendPlan,
    outcomes: Vec<AppendOutcome>,
    /// Each source already answered in this batch: the index of its outcome.
    batch_sources: HashMap<&'d Source, usize>,
    /// The heads of the streams this batch wrote to.
    stream_heads: HashMap<String, StreamHead>,
    /// Histories of the streams whose rules need them, by stream and filter: the stored
    /// events the filter admits, then every event of this batch in that stream (the checks
    /// filter those themselves).
    histories: HashMap<String, HashMap<HistoryFilter, Vec<Event>>>,
    /// Correction targets seen so far (stored or new in this batch): id -> (stream,
    /// superseded_by).
    targets: HashMap<Uuid, (String, Option<Uuid>)>,
}

impl<'d> Batch<'d> {
    fn new(head: LedgerHead, known: &Known) -> Self {
        Batch {
            head,
            plan: AppendPlan::default(),
            outcomes: Vec::with_capacity(known.references.len()),
            batch_sources: HashMap::new(),
            stream_heads: HashMap::new(),
            histories: HashMap::new(),
            targets: HashMap::new(),
        }
    }

    /// The stored streams whose rules read every event (chains, alerts), read together.
    async fn read_whole_histories<T: AppendTx + ?Sized>(
        &mut self,
        tx: &mut T,
        drafts: &[EventDraft],
        known: &Known,
    ) -> Result<(), StoreError> {
        let mut whole: Vec<&str> = drafts
            .iter()
            .filter(|d| rules::needs_history(&d.body.event_type, &d.stream))
            .filter(|d| {
                known.stored_heads.contains_key(&d.stream)
                    && history_filter(d) == HistoryFilter::all()
            })
            .map(|d| d.stream.as_str())
            .collect();
        whole.sort_unstable();
        whole.dedup();
        if whole.is_empty() {
            return Ok(());
        }
        let mut read = tx.whole_histories(&whole).await?;
        for stream in whole {
            let events = read.remove(stream).unwrap_or_default();
            self.histories
                .entry(stream.to_string())
                .or_default()
                .insert(HistoryFilter::all(), events);
        }
        Ok(())
    }

    /// A draft whose source was answered before (stored, or earlier in this batch) is a
    /// duplicate: its outcome is that event, and nothing is written.
    fn is_duplicate(&mut self, draft: &'d EventDraft, known: &Known) -> bool {
        if let Some(&first) = self.batch_sources.get(&draft.source) {
            let event = self.outcomes[first].event.clone();
            self.outcomes.push(AppendOutcome {
                event,
                duplicate: true,
            });
            return true;
        }
        if let Some(existing) = known.stored.get(&draft.source) {
            self.batch_sources
                .insert(&draft.source, self.outcomes.len());
            self.outcomes.push(AppendOutcome {
                event: existing.clone(),
                duplicate: true,
            });
            return true;
        }
        false
    }

    /// The event a correction supersedes: of the same stream, not superseded yet.
    async fn correction<T: AppendTx + ?Sized>(
        &self,
        tx: &mut T,
        i: usize,
        draft: &EventDraft,
    ) -> Result<Option<Uuid>, StoreError> {
        let Some(target) = &draft.corrects else {
            return Ok(None);
        };
        let id = resolve_target(tx, &self.batch_sources, &self.outcomes, target).await?;
        let found = match self.targets.get(&id) {
            Some(found) => Some(found.clone()),
            None => tx.event_stream(id).await?,
        };
        check_correction(draft, id, found)
            .map_err(|e| StoreError::Rejected(e.under(&format!("[{i}]"))))?;
        Ok(Some(id))
    }

    /// Every record the draft refers to is stored or registered earlier in this batch.
    fn check_references(&self, i: usize, known: &Known) -> Result<(), StoreError> {
        for (field, stream) in &known.references[i] {
            if !known.stored_heads.contains_key(stream) && !self.stream_heads.contains_key(stream) {
                return Err(StoreError::Rejected(
                    rules::unregistered(field, stream).under(&format!("[{i}]")),
                ));
            }
        }
        Ok(())
    }

    /// The stream's own rules, against its history (stored, then this batch's events).
    async fn check_stream_rules<T: AppendTx + ?Sized>(
        &mut self,
        tx: &mut T,
        i: usize,
        draft: &EventDraft,
        corrects: Option<Uuid>,
        known: &Known,
    ) -> Result<(), StoreError> {
        if !rules::needs_history(&draft.body.event_type, &draft.stream) {
            return Ok(());
        }
        let filter = history_filter(draft);
        let cached = self
            .histories
            .get(&draft.stream)
            .is_some_and(|by_filter| by_filter.contains_key(&filter));
        if !cached {
            // A stream with no stored head has no stored history: no need to read it.
            let mut history = if known.stored_heads.contains_key(&draft.stream) {
                tx.stream_history(&draft.stream, &filter).await?
            } else {
                Vec::new()
            };
            history.extend(
                self.plan
                    .events
                    .iter()
                    .filter(|e| e.stream == draft.stream)
                    .cloned(),
            );
            self.histories
                .entry(draft.stream.clone())
                .or_default()
                .insert(filter.clone(), history);
        }
        let prior = self
            .histories
            .get(&draft.stream)
            .and_then(|by_filter| by_filter.get(&filter))
            .map_or(&[][..], Vec::as_slice);
        rules::check_against_stream(draft, corrects, prior)
            .map_err(|e| StoreError::Rejected(e.under(&format!("[{i}]"))))
    }

    /// Seals the draft at the next position and records what later drafts must see.
    fn place(
        &mut self,
        draft: &'d EventDraft,
        corrects: Option<Uuid>,
        now: Instant,
        known: &Known,
    ) {
        let stream_head = self
            .stream_heads
            .get(&draft.stream)
            .or_else(|| known.stored_heads.get(&draft.stream))
            .copied();
        let position = self.head.position + 1;
        let recorded_at = match self.head.recorded_at {
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
        self.plan
            .nodes
            .extend(self.head.frontier.append(leaf_hash(&event.hash)));
        self.head.position = position;
        self.head.recorded_at = Some(recorded_at);
        self.stream_heads.insert(
            draft.stream.clone(),
            StreamHead {
                last_seq: event.seq,
                last_hash: event.hash,
            },
        );
        if let Some(target) = corrects {
            self.plan
                .corrections
                .push((target, event.event_id, recorded_at));
            self.targets
                .insert(target, (event.stream.clone(), Some(event.event_id)));
        }
        self.targets
            .insert(event.event_id, (event.stream.clone(), None));
        for history in self
            .histories
            .get_mut(&event.stream)
            .into_iter()
            .flat_map(|h| h.values_mut())
        {
            history.push(event.clone());
        }
        self.batch_sources
            .insert(&draft.source, self.outcomes.len());
        self.plan.events.push(event.clone());
        self.outcomes.push(AppendOutcome {
            event,
            duplicate: false,
        });
    }

    /// Writes what the batch placed (nothing when every draft was a duplicate).
    async fn write<T: AppendTx + ?Sized>(
        mut self,
        tx: &mut T,
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        if !self.plan.events.is_empty() {
            self.plan.stream_heads = self.stream_heads.into_iter().collect();
            self.plan.stream_heads.sort_by(|a, b| a.0.cmp(&b.0));
            self.plan.head = Some(self.head);
            tx.write(&self.plan).await?;
        }
        Ok(self.outcomes)
    }
}

/// Reference conditions that a concurrent request could change between the rules and the
/// commit: a lot's status, read again under the lock.
async fn check_lot_under_lock<T: AppendTx + ?Sized>(
    tx: &mut T,
    i: usize,
    draft: &EventDraft,
    known: &Known,
) -> Result<(), StoreError> {
    if let Some(lot) = rules::consumed_lot(draft) {
        if known.stored_heads.contains_key(&lot) {
            let events = tx.stream_history(&lot, &record_filter(&lot)).await?;
            rules::check_lot_released(draft, &lot, &events)
                .map_err(|e| StoreError::Rejected(e.under(&format!("[{i}]"))))?;
        }
    }
    Ok(())
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
