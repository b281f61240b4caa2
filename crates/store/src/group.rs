//! Group commit: concurrent appends share one transaction and one durable commit.
//!
//! `Store::append` hands its drafts to a [`CommitQueue`]; one writer task per store takes
//! every request waiting (up to [`MAX_GROUP_REQUESTS`] requests or [`MAX_GROUP_EVENTS`]
//! drafts), opens one transaction that holds the ledger lock, runs each request through
//! [`append_in_tx`] inside its own savepoint (rolled back when the request is refused or
//! fails, so it writes nothing and the others are unaffected), commits once, and only then
//! answers every request. A request alone in the queue starts at once: no timer, no wait.
//!
//! What holds, group or not:
//! - each request is all-or-nothing (its savepoint);
//! - requests are placed in the order they were queued, one after the other under the
//!   lock, so positions stay gap-free and `recorded_at` strictly increasing, and a request
//!   sees the events of the requests before it in its group (a source sent twice in one
//!   group is a duplicate answering the first);
//! - every answer, acceptance or refusal, is sent after the group's COMMIT returned: an
//!   acknowledged write is durable, and a refusal never rests on a write that was lost;
//! - a failed COMMIT (or a transaction that became unusable) fails every request of the
//!   group with the backend's error.
//!
//! The queue also keeps the writer's health: [`WriterHealth::Failing`] from a group that
//! could not commit, or had a request fail on a backend error (a full disk, a lost
//! connection), until a later group or a [`CommitQueue::probe`] writes cleanly. The backend's pool hands the writer a fresh connection
//! after such a failure, so the writer recovers by itself once the cause is gone.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use autolog_domain::{EventDraft, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::{append_in_tx, AppendOutcome, AppendTx, Clock, StoreError};

/// At most this many requests share one commit.
pub const MAX_GROUP_REQUESTS: usize = 256;
/// At most this many requests wait for the writer (four full groups); one more is refused
/// at once as busy instead of queuing without bound while the database cannot keep up.
pub const MAX_QUEUED_REQUESTS: usize = 4 * MAX_GROUP_REQUESTS;
/// A group takes no further request once it holds this many drafts (a single larger
/// request still runs, alone).
pub const MAX_GROUP_EVENTS: usize = 2_000;

/// The savepoint each request of a group runs in. Released or rolled back before the
/// next request starts, so one name serves them all.
const SAVEPOINT: &str = "SAVEPOINT autolog_request";
const RELEASE: &str = "RELEASE SAVEPOINT autolog_request";
const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT autolog_request";

/// A backend's group transaction: the append reads and writes, plus plain statements for
/// the savepoints.
#[async_trait]
pub trait GroupTx: AppendTx {
    /// Runs one statement without parameters (`SAVEPOINT ...`, `RELEASE ...`, ...).
    async fn execute(&mut self, sql: &'static str) -> Result<(), StoreError>;
}

/// How a backend opens and commits a group's transaction.
#[async_trait]
pub trait GroupBackend: Send + Sync + 'static {
    type Tx: GroupTx + 'static;
    /// Begins a transaction holding the ledger lock until it ends.
    async fn begin(&self) -> Result<Self::Tx, StoreError>;
    /// Commits; returns once the commit is durable.
    async fn commit(&self, tx: Self::Tx) -> Result<(), StoreError>;
    /// Statements that write and remove about 64 KiB outside the ledger: run in a
    /// transaction of their own and committed, they show whether a write can commit now.
    const PROBE: &'static [&'static str];
    /// Whether the transaction's calls block the thread (a synchronous driver): each group
    /// then runs whole on a blocking thread, one hand-off per group.
    const BLOCKING: bool = false;
}

/// Whether the writer can commit, as its last group or probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterHealth {
    /// The last group or probe committed (or nothing was tried yet).
    Writing,
    /// The last group or probe could not commit; `since` is when the first of the
    /// failures in a row happened, `error` the latest backend message.
    Failing { since: Instant, error: String },
}

impl WriterHealth {
    pub fn is_writing(&self) -> bool {
        matches!(self, WriterHealth::Writing)
    }
}

/// A histogram kept by the writer: the count in each bucket (the last one unbounded), the
/// sum and the number of observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    /// The upper bound of each bucket but the last (which has none).
    pub bounds: &'static [f64],
    /// Observations per bucket (not cumulative): one more than `bounds`.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Buckets {
    fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.counts.get_mut(bucket) {
            *count += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

/// Group sizes in events: powers of two up to [`MAX_GROUP_EVENTS`].
const GROUP_SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
];

/// Commit latencies in seconds: from half a millisecond to about four seconds.
const COMMIT_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
    4.096,
];

/// What the writer has done since it started: groups committed and failed, and the size
/// (events written, refused requests' not counted) and latency (from the group's first statement to its durable commit) of each
/// committed group.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitStats {
    pub failed_groups: u64,
    pub group_events: Buckets,
    pub commit_seconds: Buckets,
}

impl Default for CommitStats {
    fn default() -> Self {
        CommitStats {
            failed_groups: 0,
            group_events: Buckets::new(GROUP_SIZES),
            commit_seconds: Buckets::new(COMMIT_SECONDS),
        }
    }
}

/// Shared between the queue (which reads it) and its writer task (which adds to it).
#[derive(Clone, Default)]
struct StatsCell(Arc<Mutex<CommitStats>>);

impl StatsCell {
    fn get(&self) -> CommitStats {
        match self.0.lock() {
            Ok(stats) => stats.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn add(&self, events: usize, took: std::time::Duration, committed: bool) {
        let mut stats = match self.0.lock() {
            Ok(stats) => stats,
            Err(poisoned) => poisoned.into_inner(),
        };
        if committed {
            stats.group_events.observe(events as f64);
            stats.commit_seconds.observe(took.as_secs_f64());
        } else {
            stats.failed_groups += 1;
        }
    }
}

/// Shared between the queue (which reads it) and its writer task (which sets it).
#[derive(Clone)]
struct HealthCell(Arc<Mutex<WriterHealth>>);

impl HealthCell {
    fn get(&self) -> WriterHealth {
        match self.0.lock() {
            Ok(health) => health.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, committed: Result<(), &StoreError>) {
        let mut health = match self.0.lock() {
            Ok(health) => health,
            Err(poisoned) => poisoned.into_inner(),
        };
        *health = match (committed, &*health) {
            (Ok(()), _) => WriterHealth::Writing,
            (Err(e), WriterHealth::Failing { since, .. }) => WriterHealth::Failing {
                since: *since,
                error: e.to_string(),
            },
            (Err(e), WriterHealth::Writing) => {
                tracing::error!(error = %e, "the append writer cannot commit");
                WriterHealth::Failing {
                    since: Instant::now(),
                    error: e.to_string(),
                }
            }
        };
    }
}

type Answer = Result<Vec<AppendOutcome>, StoreError>;

struct Request {
    /// A probe carries no drafts and runs alone: [`GroupBackend::PROBE`], committed.
    probe: bool,
    drafts: Vec<EventDraft>,
    /// The caller's span (its HTTP request id, say): the writer runs the request in it.
    span: tracing::Span,
    /// The caller's clock, read when the request was queued.
    now: Instant,
    reply: oneshot::Sender<Answer>,
}

/// The queue in front of a store's single appending task.
pub struct CommitQueue {
    backend: &'static str,
    requests: mpsc::Sender<Request>,
    capacity: usize,
    health: HealthCell,
    stats: StatsCell,
}

impl CommitQueue {
    /// Starts the writer task on the current Tokio runtime. It ends when the queue is
    /// dropped, once the requests already queued are answered.
    pub fn start<B: GroupBackend>(backend_name: &'static str, backend: B) -> CommitQueue {
        Self::with_capacity(backend_name, backend, MAX_QUEUED_REQUESTS)
    }

    /// [`CommitQueue::start`] with room for `capacity` waiting requests (at least one).
    pub fn with_capacity<B: GroupBackend>(
        backend_name: &'static str,
        backend: B,
        capacity: usize,
    ) -> CommitQueue {
        let capacity = capacity.max(1);
        let (requests, queued) = mpsc::channel(capacity);
        let health = HealthCell(Arc::new(Mutex::new(WriterHealth::Writing)));
        let stats = StatsCell::default();
        tokio::spawn(write_groups(backend, queued, health.clone(), stats.clone()));
        CommitQueue {
            backend: backend_name,
            requests,
            capacity,
            health,
            stats,
        }
    }

    /// The writer's health as its last group or probe left it.
    pub fn health(&self) -> WriterHealth {
        self.health.get()
    }

    /// What the writer has committed so far (probes not counted).
    pub fn stats(&self) -> CommitStats {
        self.stats.get()
    }

    /// Writes and removes a little outside the ledger in a transaction of its own, behind
    /// whatever is queued, and answers the writer's health after it.
    pub async fn probe(&self) -> WriterHealth {
        match self.send(true, &[], &Instant::now).await {
            Ok(_) => WriterHealth::Writing,
            // Failed (the writer recorded it) or busy (the queue is full: unchanged).
            Err(_) => self.health(),
        }
    }

    /// Appends `drafts` as one all-or-nothing request, in a group with whatever else is
    /// waiting. `clock` is read now, when the request is queued: `recorded_at` is never
    /// earlier than it, and always later than the previous event's.
    pub async fn append(&self, drafts: &[EventDraft], clock: &Clock) -> Answer {
        self.send(false, drafts, clock).await
    }

    async fn send(&self, probe: bool, drafts: &[EventDraft], clock: &Clock) -> Answer {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            probe,
            drafts: drafts.to_vec(),
            span: tracing::Span::current(),
            now: clock(),
            reply,
        };
        match self.requests.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(StoreError::Busy {
                    backend: self.backend,
                    queued: self.capacity,
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(self.stopped()),
        }
        // The sender is dropped unanswered only if the writer task stopped (its runtime
        // shut down): the request may or may not have been committed.
        answer.await.unwrap_or_else(|_| Err(self.stopped()))
    }

    fn stopped(&self) -> StoreError {
        StoreError::Backend {
            backend: self.backend,
            message: "the append writer stopped before answering (the request may or may not \
                      have been committed: resend it, sources make that safe)"
                .into(),
        }
    }
}

/// The writer task: one group after the other, until the queue is dropped.
async fn write_groups<B: GroupBackend>(
    backend: B,
    mut queued: mpsc::Receiver<Request>,
    health: HealthCell,
    stats: StatsCell,
) {
    let backend = Arc::new(backend);
    let mut carried: Option<Request> = None;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => match queued.recv().await {
                Some(request) => request,
                None => return,
            },
        };
        if first.probe {
            let committed = on_writer(&backend, |backend| async move {
                commit_probe(backend.as_ref()).await
            })
            .await
            .and_then(|committed| committed);
            health.set(committed.as_ref().map(|_| ()));
            let _ = first.reply.send(committed.map(|()| Vec::new()));
            continue;
        }
        let mut events = first.drafts.len();
        let mut group = vec![first];
        while group.len() < MAX_GROUP_REQUESTS && events < MAX_GROUP_EVENTS {
            let Ok(request) = queued.try_recv() else {
                break;
            };
            if request.probe || events + request.drafts.len() > MAX_GROUP_EVENTS {
                carried = Some(request);
                break;
            }
            events += request.drafts.len();
            group.push(request);
        }
        let started = std::time::Instant::now();
        let (group, answers, committed) = run_group(&backend, group).await;
        // The events of the requests that were written (a refused request's savepoint
        // rolled its own back).
        let written = group
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| answer.is_ok())
            .map(|(request, _)| request.drafts.len())
            .sum();
        stats.add(written, started.elapsed(), committed.is_ok());
        // A request can fail alone on a backend error (SQLite refuses the statement that
        // needs a page the full disk cannot give, and its savepoint rolls it back): that
        // too is a writer that cannot write. Refusals and busy answers are not.
        let failure = committed.err().or_else(|| {
            answers.iter().find_map(|a| match a {
                Err(e @ StoreError::Backend { .. }) => Some(e.clone()),
                _ => None,
            })
        });
        health.set(failure.as_ref().map_or(Ok(()), Err));
        for (request, answer) in group.into_iter().zip(answers) {
            // A caller that went away no longer wants its answer.
            let _ = request.reply.send(answer);
        }
    }
}

/// Runs `work` on the backend: on the writer task, or, for a backend whose calls block,
/// whole on a blocking thread (one hand-off). `Err` only when that thread failed.
async fn on_writer<B, T, W, F>(backend: &Arc<B>, work: W) -> Result<T, StoreError>
where
    B: GroupBackend,
    T: Send + 'static,
    W: FnOnce(Arc<B>) -> F + Send + 'static,
    F: std::future::Future<Output = T>,
{
    if !B::BLOCKING {
        return Ok(work(backend.clone()).await);
    }
    let backend = backend.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(work(backend)))
        .await
        .map_err(|e| StoreError::Backend {
            backend: "writer",
            message: format!("the writing thread failed: {e}"),
        })
}

/// Runs one group (see [`commit_group`]) where the backend's calls belong; the group is
/// handed back with its answers (none when the thread failed: its callers are told the
/// writer stopped).
async fn run_group<B: GroupBackend>(
    backend: &Arc<B>,
    group: Vec<Request>,
) -> (Vec<Request>, Vec<Answer>, Result<(), StoreError>) {
    let n = group.len();
    let ran = on_writer(backend, move |backend| async move {
        let (answers, committed) = commit_group(backend.as_ref(), &group).await;
        (group, answers, committed)
    })
    .await;
    ran.unwrap_or_else(|e| (Vec::new(), fail_all(n, &e), Err(e)))
}

/// Runs one group in one transaction; one answer per request, in order, and whether the
/// group's transaction committed.
async fn commit_group<B: GroupBackend>(
    backend: &B,
    group: &[Request],
) -> (Vec<Answer>, Result<(), StoreError>) {
    let mut tx = match backend.begin().await {
        Ok(tx) => tx,
        Err(e) => return (fail_all(group.len(), &e), Err(e)),
    };
    let mut answers = Vec::with_capacity(group.len());
    for request in group {
        match run_request(&mut tx, request).await {
            Ok(answer) => answers.push(answer),
            // Dropping the transaction rolls it back: nothing of the group is written.
            Err(e) => return (fail_all(group.len(), &e), Err(e)),
        }
    }
    match backend.commit(tx).await {
        Ok(()) => (answers, Ok(())),
        Err(e) => (fail_all(group.len(), &e), Err(e)),
    }
}

/// Runs the backend's probe statements in a transaction of their own and commits it.
async fn commit_probe<B: GroupBackend>(backend: &B) -> Result<(), StoreError> {
    let mut tx = backend.begin().await?;
    for statement in B::PROBE {
        tx.execute(statement).await?;
    }
    backend.commit(tx).await
}

/// Runs one request inside its savepoint. The outer error means the group's transaction
/// is no longer usable; the inner one is this request's own refusal or failure, rolled back.
async fn run_request<T: GroupTx>(tx: &mut T, request: &Request) -> Result<Answer, StoreError> {
    tx.execute(SAVEPOINT).await?;
    let now = request.now;
    let appended = append_in_tx(tx, &request.drafts, &move || now)
        .instrument(request.span.clone())
        .await;
    match appended {
        Ok(outcomes) => {
            request.span.in_scope(|| {
                tracing::debug!(
                    events = outcomes.len(),
                    first_position = outcomes.first().map(|o| o.event.position),
                    "request placed in its group"
                )
            });
            tx.execute(RELEASE).await?;
            Ok(Ok(outcomes))
        }
        Err(e) => {
            tx.execute(ROLLBACK_TO).await?;
            tx.execute(RELEASE).await?;
            Ok(Err(e))
        }
    }
}

fn fail_all(n: usize, e: &StoreError) -> Vec<Answer> {
    (0..n).map(|_| Err(e.clone())).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use autolog_domain::ledger::merkle::Frontier;
    use autolog_domain::rules::history::HistoryFilter;
    use autolog_domain::{Body, CorrectionTarget, Event, OccurredAt, Source, Uuid};
    use tokio::sync::Semaphore;

    use super::*;

    #[test]
    fn buckets_count_each_observation_once_in_its_bucket() {
        let mut b = Buckets::new(&[1.0, 4.0]);
        for v in [0.5, 1.0, 3.0, 4.0, 9.0] {
            b.observe(v);
        }
        assert_eq!(b.counts, vec![2, 2, 1], "at most 1, at most 4, beyond");
        assert_eq!((b.count, b.sum), (5, 17.5));
        let mut stats = StatsCell::default();
        stats.add(3, Duration::from_millis(3), true);
        stats.add(7, Duration::from_millis(1), false);
        let seen = stats.get();
        assert_eq!(
            seen.group_events.count, 1,
            "a failed group is not a committed size"
        );
        assert_eq!(seen.failed_groups, 1);
        assert_eq!(seen.commit_seconds.counts.iter().sum::<u64>(), 1);
        stats = StatsCell::default();
        assert_eq!(stats.get(), CommitStats::default());
    }
    use crate::{AppendPlan, LedgerHead, StreamHead};

    /// What the fake backend saw.
    #[derive(Default)]
    struct Log {
        begins: AtomicUsize,
        commits: AtomicUsize,
        statements: Mutex<Vec<&'static str>>,
    }

    /// An empty ledger that forgets what is written.
    struct FakeTx(Arc<Log>);

    #[async_trait]
    impl AppendTx for FakeTx {
        async fn lock_head(&mut self) -> Result<LedgerHead, StoreError> {
            Ok(LedgerHead {
                position: 0,
                recorded_at: None,
                frontier: Frontier::new(),
            })
        }
        async fn find_by_sources(&mut self, _: &[&Source]) -> Result<Vec<Event>, StoreError> {
            Ok(Vec::new())
        }
        async fn stream_heads_of(
            &mut self,
            _: &[&str],
        ) -> Result<HashMap<String, StreamHead>, StoreError> {
            Ok(HashMap::new())
        }
        async fn whole_histories(
            &mut self,
            _: &[&str],
        ) -> Result<HashMap<String, Vec<Event>>, StoreError> {
            Ok(HashMap::new())
        }
        async fn stream_history(
            &mut self,
            _: &str,
            _: &HistoryFilter,
        ) -> Result<Vec<Event>, StoreError> {
            Ok(Vec::new())
        }
        async fn event_stream(
            &mut self,
            _: Uuid,
        ) -> Result<Option<(String, Option<Uuid>)>, StoreError> {
            Ok(None)
        }
        async fn write(&mut self, _: &AppendPlan) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[async_trait]
    impl GroupTx for FakeTx {
        async fn execute(&mut self, sql: &'static str) -> Result<(), StoreError> {
            if let Ok(mut statements) = self.0.statements.lock() {
                statements.push(sql);
            }
            Ok(())
        }
    }

    /// Begins only when the gate lets it; commits after a pause, or fails to.
    struct FakeBackend {
        log: Arc<Log>,
        gate: Arc<Semaphore>,
        fail_commit: bool,
    }

    #[async_trait]
    impl GroupBackend for FakeBackend {
        type Tx = FakeTx;
        async fn begin(&self) -> Result<FakeTx, StoreError> {
            self.log.begins.fetch_add(1, Ordering::SeqCst);
            if let Ok(permit) = self.gate.acquire().await {
                permit.forget();
            }
            Ok(FakeTx(self.log.clone()))
        }
        const PROBE: &'static [&'static str] = &["PROBE"];
        async fn commit(&self, _: FakeTx) -> Result<(), StoreError> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.fail_commit {
                return Err(StoreError::Backend {
                    backend: "fake",
                    message: "disk full".into(),
                });
            }
            self.log.commits.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn draft(id: &str, refused: bool) -> EventDraft {
        EventDraft {
            event_id: Uuid::now_v7(),
            stream: "note/1".into(),
            occurred_at: OccurredAt::from_parts(1_772_323_200_000_000, "Europe/Paris", 3600)
                .expect("valid"),
            actor: "system/test".into(),
            site: None,
            source: Source {
                system: "test".into(),
                source_event_id: id.into(),
            },
            reason: None,
            corrects: refused.then(|| CorrectionTarget::EventId(Uuid::now_v7())),
            body: Body::new("annotation.recorded", 1, serde_json::json!({"text": id})),
        }
    }

    /// Holds the first group at BEGIN, queues `n` more requests behind it, then opens.
    async fn burst(fail_commit: bool, n: usize) -> (Arc<Log>, Vec<(bool, Answer)>, CommitStats) {
        let log = Arc::new(Log::default());
        let gate = Arc::new(Semaphore::new(0));
        let queue = Arc::new(CommitQueue::start(
            "fake",
            FakeBackend {
                log: log.clone(),
                gate: gate.clone(),
                fail_commit,
            },
        ));
        let send = |i: usize, refused: bool| {
            let queue = queue.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let answer = queue
                    .append(&[draft(&i.to_string(), refused)], &Instant::now)
                    .await;
                // Answered only once the group's commit returned.
                if answer.is_ok() {
                    assert!(log.commits.load(Ordering::SeqCst) >= 1);
                }
                (refused, answer)
            })
        };
        let mut tasks = vec![send(0, false)];
        while log.begins.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        tasks.extend((1..=n).map(|i| send(i, i % 4 == 0)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.add_permits(1_000);
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.expect("task"));
        }
        (log, answers, queue.stats())
    }

    #[tokio::test]
    async fn requests_waiting_together_share_one_commit() {
        let (log, answers, stats) = burst(false, 10).await;
        assert_eq!(
            log.begins.load(Ordering::SeqCst),
            2,
            "the first alone, then the rest"
        );
        assert_eq!(log.commits.load(Ordering::SeqCst), 2);
        for (refused, answer) in &answers {
            match answer {
                Ok(out) => assert!(!refused && out.len() == 1),
                Err(StoreError::Rejected(f)) => assert!(refused, "{f}"),
                Err(e) => panic!("{e}"),
            }
        }
        let statements = log.statements.lock().map(|s| s.clone()).unwrap_or_default();
        let refusals = answers.iter().filter(|(r, _)| *r).count();
        assert_eq!(refusals, 2);
        assert_eq!(
            statements.iter().filter(|s| **s == ROLLBACK_TO).count(),
            refusals
        );
        assert_eq!(statements.iter().filter(|s| **s == SAVEPOINT).count(), 11);
        assert_eq!(statements.iter().filter(|s| **s == RELEASE).count(), 11);
        // Two groups committed: 1 event, then 10 requests of which 2 were refused.
        assert_eq!(stats.group_events.count, 2);
        assert_eq!(
            stats.group_events.sum, 9.0,
            "refused requests' events are not counted"
        );
        assert_eq!(stats.failed_groups, 0);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_request_of_the_group() {
        let (log, answers, stats) = burst(true, 5).await;
        assert_eq!((stats.failed_groups, stats.group_events.count), (2, 0));
        assert_eq!(log.begins.load(Ordering::SeqCst), 2);
        for (_, answer) in answers {
            match answer {
                Err(StoreError::Backend { message, .. }) => assert_eq!(message, "disk full"),
                other => panic!("expected the commit's failure, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_failed_commit_marks_the_writer_failing_until_a_probe_commits() {
        let log = Arc::new(Log::default());
        let gate = Arc::new(Semaphore::new(1_000));
        let failing = CommitQueue::start(
            "fake",
            FakeBackend {
                log: log.clone(),
                gate: gate.clone(),
                fail_commit: true,
            },
        );
        assert_eq!(failing.health(), WriterHealth::Writing, "nothing tried yet");
        assert!(failing
            .append(&[draft("1", false)], &Instant::now)
            .await
            .is_err());
        let WriterHealth::Failing { since, error } = failing.health() else {
            panic!("a failed commit leaves the writer failing");
        };
        assert!(error.contains("disk full"), "{error}");
        let again = failing.probe().await;
        assert_eq!(
            again,
            WriterHealth::Failing {
                since,
                error: error.clone()
            },
            "a failed probe keeps when the failures began"
        );
        let statements = log.statements.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(statements.iter().filter(|s| **s == "PROBE").count(), 1);

        let healthy = CommitQueue::start(
            "fake",
            FakeBackend {
                log,
                gate,
                fail_commit: false,
            },
        );
        assert_eq!(healthy.probe().await, WriterHealth::Writing);
    }

    /// With the writer held at BEGIN and the queue full, one more request is refused at
    /// once as busy (nothing queued); the ones already queued are answered once it opens.
    #[tokio::test]
    async fn a_full_queue_refuses_the_next_request_as_busy_and_keeps_the_others() {
        let log = Arc::new(Log::default());
        let gate = Arc::new(Semaphore::new(0));
        let queue = Arc::new(CommitQueue::with_capacity(
            "fake",
            FakeBackend {
                log: log.clone(),
                gate: gate.clone(),
                fail_commit: false,
            },
            2,
        ));
        let send = |i: usize| {
            let queue = queue.clone();
            tokio::spawn(async move {
                queue
                    .append(&[draft(&i.to_string(), false)], &Instant::now)
                    .await
            })
        };
        // The first is taken by the writer, which waits at BEGIN; two more fill the queue.
        let first = send(0);
        while log.begins.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let waiting = [send(1), send(2)];
        while queue.requests.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        match queue.append(&[draft("3", false)], &Instant::now).await {
            Err(StoreError::Busy { backend, queued }) => {
                assert_eq!((backend, queued), ("fake", 2));
            }
            other => panic!("expected busy, got {other:?}"),
        }
        gate.add_permits(1_000);
        assert!(first.await.expect("task").is_ok());
        for task in waiting {
            assert!(
                task.await.expect("task").is_ok(),
                "a queued request is answered"
            );
        }
        let statements = log.statements.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(
            statements.iter().filter(|s| **s == SAVEPOINT).count(),
            3,
            "the refused request never reached the writer"
        );
    }
}
