//! `autolog verify`: recompute every hash, every stream chain, the Merkle tree, each
//! checkpoint's root and signature, the projections, and the side tables that grant power
//! (`side_tables`); name the first thing that is wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use autolog_domain::ledger::checkpoint::{check_checkpoint_chain, Checkpoint};
use autolog_domain::ledger::merkle::{leaf_hash, Frontier, Hash, NodeId};
use autolog_domain::Event;
use autolog_domain::{Instant, Uuid, GENESIS_HASH};
use autolog_store::{ScannedRow, StreamHead};
use sha2::{Digest, Sha256};

use crate::ledger::side_tables::AccessFacts;
use crate::{AppError, Autolog};

const CHUNK: u32 = 2000;

/// A clean ledger's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub events: u64,
    pub streams: u64,
    pub tree_size: u64,
    pub root: Hash,
    pub checkpoints: u64,
    /// Set when the ledger grew while it was verified: what was left for a later run.
    pub note: Option<String>,
}

impl VerifyReport {
    pub fn summary_line(&self) -> String {
        let mut line = format!(
            "ok: {} events, {} streams, tree size {}, root {}, {} checkpoints verified",
            self.events,
            self.streams,
            self.tree_size,
            hex::encode(self.root),
            self.checkpoints
        );
        if let Some(note) = &self.note {
            line.push_str(&format!(" ({note})"));
        }
        line
    }
}

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    pub position: Option<i64>,
    pub event_id: Option<Uuid>,
    pub stream: Option<String>,
    pub problem: String,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TAMPERED")?;
        if let Some(p) = self.position {
            write!(f, " at position {p}")?;
        }
        if let Some(id) = self.event_id {
            write!(f, ", event {id}")?;
        }
        if let Some(s) = &self.stream {
            write!(f, " (stream {s})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

fn fail(problem: String) -> VerifyFailure {
    VerifyFailure {
        position: None,
        event_id: None,
        stream: None,
        problem,
    }
}

/// A numbered trusted checkpoint must be stored as it was kept: fewer checkpoints, or
/// another one under its number, means checkpoints were deleted or the list rewritten.
fn kept_checkpoint_missing(kept: &Checkpoint, stored: &[Checkpoint]) -> Option<VerifyFailure> {
    let link = kept.link?;
    let at = usize::try_from(link.sequence).ok()?.checked_sub(1)?;
    match stored.get(at) {
        Some(cp) if cp == kept => None,
        Some(_) => Some(fail(format!(
            "the stored checkpoint #{} is not the trusted one: the checkpoints were rewritten",
            link.sequence
        ))),
        None => Some(fail(format!(
            "the trusted checkpoint is #{}, but only {} checkpoints are stored: checkpoints were deleted",
            link.sequence,
            stored.len()
        ))),
    }
}

/// What the scan of the events recomputed.
struct Recomputed {
    frontier: Frontier,
    heads: BTreeMap<String, StreamHead>,
    corrections: BTreeSet<(Uuid, Uuid, Instant)>,
    last_recorded: Option<Instant>,
    /// What the access events state, for the side tables.
    access: AccessFacts,
}

/// The scan's running state: what it recomputed so far and the position it expects next.
struct Scan<'a> {
    r: Recomputed,
    expected: i64,
    checkpoints: &'a BTreeMap<u64, Vec<Checkpoint>>,
}

impl Scan<'_> {
    /// Checks one row (its content hash `computed` beforehand) against what came before it
    /// and adds it to the tree; the Merkle nodes it completes go to `produced`.
    fn check(
        &mut self,
        row: &ScannedRow,
        computed: Option<Hash>,
        produced: &mut Vec<(NodeId, Hash)>,
    ) -> Result<(), VerifyFailure> {
        if row.position != self.expected {
            return Err(VerifyFailure {
                position: Some(self.expected),
                ..fail(format!(
                    "no event at position {} (the next stored row is at {}): a row was deleted or moved",
                    self.expected, row.position
                ))
            });
        }
        let event = match &row.event {
            Ok(e) => e,
            Err(e) => {
                return Err(VerifyFailure {
                    position: Some(row.position),
                    ..fail(format!("row is unreadable: {e}"))
                })
            }
        };
        let computed = computed.unwrap_or_else(|| event.compute_hash());
        let at = |problem: String| VerifyFailure {
            position: Some(row.position),
            event_id: Some(event.event_id),
            stream: Some(event.stream.clone()),
            problem,
        };
        if computed != event.hash {
            return Err(at(format!(
                "stored hash {} does not match the event's content (its canonical bytes hash to {}): the row was edited",
                hex::encode(event.hash),
                hex::encode(computed)
            )));
        }
        self.follow_stream(event).map_err(at)?;
        if let Some(target) = event.corrects {
            self.r
                .corrections
                .insert((target, event.event_id, event.recorded_at));
        }
        self.r.last_recorded = Some(event.recorded_at);
        self.r.access.observe(event);
        produced.extend(self.r.frontier.append(leaf_hash(&event.hash)));
        self.expected += 1;
        self.checkpoint_roots().map_err(at)
    }

    /// The event follows its stream's previous one and every event recorded before it.
    fn follow_stream(&mut self, event: &Event) -> Result<(), String> {
        let previous = self.r.heads.get(&event.stream).copied();
        let (last_seq, last_hash) =
            previous.map_or((0, GENESIS_HASH), |h| (h.last_seq, h.last_hash));
        if event.seq != last_seq + 1 {
            return Err(format!(
                "seq {} follows seq {last_seq} in its stream: an event of the stream was deleted, duplicated or reordered",
                event.seq
            ));
        }
        if event.prev_hash != last_hash {
            return Err(format!(
                "prev_hash {} is not the hash of the stream's previous event ({}): the chain is broken",
                hex::encode(event.prev_hash),
                hex::encode(last_hash)
            ));
        }
        if self
            .r
            .last_recorded
            .is_some_and(|last| event.recorded_at <= last)
        {
            return Err(format!(
                "recorded_at {} is not later than the previous event's: transaction time must strictly increase",
                event.recorded_at
            ));
        }
        let head = StreamHead {
            last_seq: event.seq,
            last_hash: event.hash,
        };
        match self.r.heads.get_mut(&event.stream) {
            Some(h) => *h = head,
            None => {
                self.r.heads.insert(event.stream.clone(), head);
            }
        }
        Ok(())
    }

    /// Every checkpoint signed at the tree's size now has the tree's root.
    fn checkpoint_roots(&self) -> Result<(), String> {
        let Some(cps) = self.checkpoints.get(&self.r.frontier.size()) else {
            return Ok(());
        };
        let root = self.r.frontier.root();
        match cps.iter().find(|cp| cp.root != root) {
            None => Ok(()),
            Some(cp) => Err(format!(
                "the checkpoint signed at {} for tree size {} has root {}, but the ledger's root at that size is {}: the ledger or the checkpoint was altered",
                cp.issued_at, cp.tree_size, hex::encode(cp.root), hex::encode(root)
            )),
        }
    }
}

/// Each readable row's content hash, computed on both cores; the rows come back with them.
fn hash_rows(rows: Vec<ScannedRow>) -> (Vec<ScannedRow>, Vec<Option<Hash>>) {
    fn hash_all(rows: &[ScannedRow]) -> Vec<Option<Hash>> {
        let mut buffer = Vec::with_capacity(4096);
        rows.iter()
            .map(|row| {
                row.event.as_ref().ok().map(|event| {
                    buffer.clear();
                    event.write_canonical(&mut buffer);
                    Sha256::digest(&buffer).into()
                })
            })
            .collect()
    }
    let (first, second) = rows.split_at(rows.len() / 2);
    let hashes = std::thread::scope(|s| {
        let other = s.spawn(|| hash_all(second));
        let mut hashes = hash_all(first);
        match other.join() {
            Ok(rest) => hashes.extend(rest),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        hashes
    });
    (rows, hashes)
}

fn join_error(e: tokio::task::JoinError) -> AppError {
    AppError::Integrity(format!("a verification task failed: {e}"))
}

impl Autolog {
    /// Verifies the ledger as of the head read at the start (events appended meanwhile are
    /// left for the next run). `progress(done, total)` is called after each chunk.
    /// `Ok(Err(failure))` means the ledger was checked and found altered.
    pub async fn verify(
        &self,
        progress: impl FnMut(u64, u64),
    ) -> Result<Result<VerifyReport, VerifyFailure>, AppError> {
        self.verify_against(None, progress).await
    }

    /// [`Autolog::verify`], and against a checkpoint kept outside the database (`trusted`:
    /// the checkpoint and the public key it must be signed with). The ledger must hold at
    /// least its tree size and have its root at that size: a ledger cut short, wiped, or
    /// rewritten and re-signed with the data directory's key fails, which the checkpoints
    /// stored beside the data cannot show.
    pub async fn verify_against(
        &self,
        trusted: Option<(&Checkpoint, &autolog_domain::VerifyingKey)>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Result<VerifyReport, VerifyFailure>, AppError> {
        // Checkpoints before the head: every checkpoint read then covers committed events.
        let checkpoints = self.store.checkpoints().await?;
        let head = self.store.head().await?;
        let public = self.key.verifying_key();
        let mut trusted_size = None;
        if let Some((checkpoint, key)) = trusted {
            if let Err(e) = checkpoint.verify_signature(key) {
                return Err(AppError::Config(format!(
                    "the trusted checkpoint does not verify with the trusted key: {e}"
                )));
            }
            if checkpoint.tree_size > head.position {
                return Ok(Err(fail(format!(
                    "the trusted checkpoint was signed at tree size {}, but the ledger holds only {} events: events were removed or the ledger was replaced",
                    checkpoint.tree_size, head.position
                ))));
            }
            trusted_size = Some(checkpoint.tree_size);
        }

        let mut by_size: BTreeMap<u64, Vec<Checkpoint>> = BTreeMap::new();
        let mut stored: Vec<Checkpoint> = Vec::new();
        let mut checkpoint_count = 0u64;
        for (i, cp) in checkpoints.into_iter().enumerate() {
            let cp = match cp {
                Ok(cp) => cp,
                Err(e) => {
                    return Ok(Err(fail(format!(
                        "checkpoint #{} is unreadable: {e}",
                        i + 1
                    ))))
                }
            };
            if let Err(e) = cp.verify_signature(&public) {
                return Ok(Err(fail(format!("forged checkpoint: {e}"))));
            }
            checkpoint_count += 1;
            stored.push(cp.clone());
            by_size.entry(cp.tree_size).or_default().push(cp);
        }
        if let Err(problem) = check_checkpoint_chain(&stored) {
            return Ok(Err(fail(problem)));
        }
        if let Some(failure) = trusted.and_then(|(kept, _)| kept_checkpoint_missing(kept, &stored))
        {
            return Ok(Err(failure));
        }
        if let Some((checkpoint, _)) = trusted {
            // Its root is compared at its size like every stored checkpoint's.
            by_size
                .entry(checkpoint.tree_size)
                .or_default()
                .push(checkpoint.clone());
        }

        let recomputed = match self
            .scan_events(head.position, &by_size, &mut progress)
            .await?
        {
            Ok(r) => r,
            Err(failure) => return Ok(Err(failure)),
        };
        let tree_size = recomputed.frontier.size();
        if tree_size != head.position {
            return Ok(Err(VerifyFailure {
                position: Some(tree_size as i64 + 1),
                ..fail(format!(
                    "the ledger head records {} events, but the events end at position {tree_size}: events were deleted",
                    head.position
                ))
            }));
        }
        if let Some((&size, _)) = by_size.range(tree_size + 1..).next() {
            return Ok(Err(fail(format!(
                "a checkpoint was signed at tree size {size}, but the ledger holds only {tree_size} events: events were deleted"
            ))));
        }
        if head.frontier.root() != recomputed.frontier.root() {
            return Ok(Err(fail(
                "the ledger head's Merkle frontier does not match the events: the head row was edited".into(),
            )));
        }
        if let Some(last) = head.recorded_at {
            if tree_size > 0 && recomputed.last_recorded != Some(last) {
                return Ok(Err(fail(format!(
                    "the ledger head's recorded_at {last} is not the last event's: the head row was edited"
                ))));
            }
        }

        // Projections: compared only if nothing was appended meanwhile (they move with appends).
        let stored_heads = self.store.stream_heads().await?;
        let stored_corrections = self.store.corrections().await?;
        let head_now = self.store.head().await?;
        let mut note = None;
        if head_now.position == head.position {
            if let Err(failure) = self
                .compare_projections(&recomputed, stored_heads, stored_corrections)
                .await?
            {
                return Ok(Err(failure));
            }
            if let Err(problem) = self
                .compare_side_tables(&recomputed.access, tree_size)
                .await?
            {
                return Ok(Err(fail(problem)));
            }
        } else {
            note = Some(format!(
                "the ledger grew to {} events during verification; the first {tree_size} were verified, projections not compared",
                head_now.position
            ));
        }
        if let Some(size) = trusted_size {
            let checked = format!("consistent with the trusted checkpoint at tree size {size}");
            note = Some(match note {
                Some(n) => format!("{n}; {checked}"),
                None => checked,
            });
        }
        Ok(Ok(VerifyReport {
            events: tree_size,
            streams: recomputed.heads.len() as u64,
            tree_size,
            root: recomputed.frontier.root(),
            checkpoints: checkpoint_count,
            note,
        }))
    }

    /// Scans events 1..=`up_to` in position order, checking each and rebuilding the tree.
    /// The next chunk is read while this one is checked, and each chunk's hashes are
    /// computed on both cores: the scan runs at the pace of reading and hashing.
    async fn scan_events(
        &self,
        up_to: u64,
        checkpoints: &BTreeMap<u64, Vec<Checkpoint>>,
        progress: &mut impl FnMut(u64, u64),
    ) -> Result<Result<Recomputed, VerifyFailure>, AppError> {
        let mut scan = Scan {
            r: Recomputed {
                frontier: Frontier::new(),
                heads: BTreeMap::new(),
                corrections: BTreeSet::new(),
                last_recorded: None,
                access: AccessFacts::default(),
            },
            expected: 1,
            checkpoints,
        };
        let mut next = Some(self.read_chunk(0));
        while let Some(reading) = next.take() {
            let chunk = reading.await.map_err(join_error)??;
            let last = chunk.last().map_or(0, |row| row.position);
            if chunk.len() as u32 == CHUNK && (last as u64) < up_to {
                next = Some(self.read_chunk(last));
            }
            let chunk: Vec<ScannedRow> = chunk
                .into_iter()
                .take_while(|row| row.position as u64 <= up_to)
                .collect();
            let (chunk, hashes) = tokio::task::spawn_blocking(move || hash_rows(chunk))
                .await
                .map_err(join_error)?;
            let mut produced: Vec<(NodeId, Hash)> = Vec::with_capacity(chunk.len() * 2);
            for (row, computed) in chunk.iter().zip(hashes) {
                if let Err(failure) = scan.check(row, computed, &mut produced) {
                    return Ok(Err(failure));
                }
            }
            if let Err(problem) = self.compare_nodes(&produced).await? {
                return Ok(Err(fail(problem)));
            }
            progress(scan.r.frontier.size(), up_to);
        }
        Ok(Ok(scan.r))
    }

    /// Reads the chunk after `after` in a task of its own, so that it is read (and its
    /// rows decoded) while the caller checks the one before.
    fn read_chunk(
        &self,
        after: i64,
    ) -> tokio::task::JoinHandle<Result<Vec<ScannedRow>, autolog_store::StoreError>> {
        let store = self.store.clone();
        tokio::spawn(async move { store.scan(after, CHUNK).await })
    }

    /// The stream heads and correction links must be exactly what the events say.
    async fn compare_projections(
        &self,
        recomputed: &Recomputed,
        stored_heads: Vec<(String, StreamHead)>,
        stored_corrections: Vec<(Uuid, Uuid, Instant)>,
    ) -> Result<Result<(), VerifyFailure>, AppError> {
        let stored: BTreeMap<String, StreamHead> = stored_heads.into_iter().collect();
        for (stream, head) in &recomputed.heads {
            match stored.get(stream) {
                Some(s) if s == head => {}
                Some(s) => {
                    return Ok(Err(VerifyFailure {
                        stream: Some(stream.clone()),
                        ..fail(format!(
                            "the stored stream head (seq {}, hash {}) is not the stream's last event (seq {}, hash {}): the streams table was edited",
                            s.last_seq, hex::encode(s.last_hash), head.last_seq, hex::encode(head.last_hash)
                        ))
                    }))
                }
                None => {
                    return Ok(Err(VerifyFailure {
                        stream: Some(stream.clone()),
                        ..fail("the stream has events but no stored stream head: the streams table was edited".into())
                    }))
                }
            }
        }
        if let Some(extra) = stored.keys().find(|s| !recomputed.heads.contains_key(*s)) {
            return Ok(Err(VerifyFailure {
                stream: Some(extra.clone()),
                ..fail("a stream head is stored for a stream without events: the streams table was edited".into())
            }));
        }
        let stored: BTreeSet<(Uuid, Uuid, Instant)> = stored_corrections.into_iter().collect();
        if let Some(missing) = recomputed.corrections.difference(&stored).next() {
            return Ok(Err(VerifyFailure {
                event_id: Some(missing.1),
                ..fail(format!("the correction of {} by {} is missing from the corrections table: it was edited", missing.0, missing.1))
            }));
        }
        if let Some(extra) = stored.difference(&recomputed.corrections).next() {
            return Ok(Err(fail(format!(
                "the corrections table says {} was superseded by {} at {}, but no such correction event exists: it was edited",
                extra.0, extra.1, extra.2
            ))));
        }
        let beyond = self
            .store
            .scan(recomputed.frontier.size() as i64, 1)
            .await?;
        if let Some(row) = beyond.first() {
            return Ok(Err(VerifyFailure {
                position: Some(row.position),
                ..fail("a row lies beyond the ledger head: it was inserted outside Autolog".into())
            }));
        }
        Ok(Ok(()))
    }

    /// Compares recomputed Merkle nodes with the stored ones, level by level.
    async fn compare_nodes(
        &self,
        produced: &[(NodeId, Hash)],
    ) -> Result<Result<(), String>, AppError> {
        let mut by_level: BTreeMap<u8, Vec<(u64, Hash)>> = BTreeMap::new();
        for (id, hash) in produced {
            by_level
                .entry(id.level)
                .or_default()
                .push((id.index, *hash));
        }
        for (level, expected) in by_level {
            let (Some(first), Some(last)) = (expected.first(), expected.last()) else {
                continue;
            };
            let stored: HashMap<u64, Hash> = self
                .store
                .merkle_level_range(level, first.0, last.0)
                .await?
                .into_iter()
                .collect();
            for (index, hash) in expected {
                let leaves = 1u64 << level;
                let span = || {
                    format!(
                        "positions {} to {}",
                        index * leaves + 1,
                        (index + 1) * leaves
                    )
                };
                match stored.get(&index) {
                    Some(s) if *s == hash => {}
                    Some(_) => return Ok(Err(format!("stored Merkle node (level {level}, index {index}; {}) differs from the recomputed one: proofs served from it would be false", span()))),
                    None => return Ok(Err(format!("Merkle node (level {level}, index {index}; {}) is missing from storage", span()))),
                }
            }
        }
        Ok(Ok(()))
    }
}
