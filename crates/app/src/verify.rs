//! `autolog verify`: recompute every hash, every stream chain, the Merkle tree, each
//! checkpoint's root and signature; name the first event that does not check out.

use std::collections::{BTreeMap, HashMap};

use autolog_domain::checkpoint::Checkpoint;
use autolog_domain::merkle::{leaf_hash, Frontier, Hash, NodeId};
use autolog_domain::{Instant, Uuid, GENESIS_HASH};

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
}

impl VerifyReport {
    pub fn summary_line(&self) -> String {
        format!(
            "ok: {} events, {} streams, tree size {}, root {}, {} checkpoints verified",
            self.events,
            self.streams,
            self.tree_size,
            hex::encode(self.root),
            self.checkpoints
        )
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

fn fail(
    position: Option<i64>,
    event_id: Option<Uuid>,
    stream: Option<&str>,
    problem: String,
) -> VerifyFailure {
    VerifyFailure {
        position,
        event_id,
        stream: stream.map(str::to_string),
        problem,
    }
}

impl Autolog {
    /// Verifies the whole ledger. `progress(done, total)` is called after each chunk.
    /// `Ok(Err(failure))` means the ledger was checked and found altered.
    pub async fn verify(
        &self,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Result<VerifyReport, VerifyFailure>, AppError> {
        let (rows, streams) = self.store.counts().await?;
        let head = self.store.head().await?;
        let public = self.key.verifying_key();

        // Checkpoints first: a bad signature needs no scan to be found.
        let mut by_size: BTreeMap<u64, Vec<Checkpoint>> = BTreeMap::new();
        let mut checkpoint_count = 0u64;
        for (i, cp) in self.store.checkpoints().await?.into_iter().enumerate() {
            let cp = match cp {
                Ok(cp) => cp,
                Err(e) => {
                    return Ok(Err(fail(
                        None,
                        None,
                        None,
                        format!("checkpoint #{} is unreadable: {e}", i + 1),
                    )))
                }
            };
            if let Err(e) = cp.verify_signature(&public) {
                return Ok(Err(fail(
                    None,
                    None,
                    None,
                    format!("forged checkpoint: {e}"),
                )));
            }
            checkpoint_count += 1;
            by_size.entry(cp.tree_size).or_default().push(cp);
        }

        let mut frontier = Frontier::new();
        let mut heads: HashMap<String, (u64, Hash)> = HashMap::new();
        let mut last_recorded: Option<Instant> = None;
        let mut expected_position: i64 = 1;
        loop {
            let chunk = self.store.scan(expected_position - 1, CHUNK).await?;
            if chunk.is_empty() {
                break;
            }
            let mut produced: Vec<(NodeId, Hash)> = Vec::with_capacity(chunk.len() * 2);
            for row in &chunk {
                if row.position != expected_position {
                    return Ok(Err(fail(
                        Some(expected_position),
                        None,
                        None,
                        format!(
                            "no event at position {expected_position} (the next stored row is at {}): a row was deleted or moved",
                            row.position
                        ),
                    )));
                }
                let event = match &row.event {
                    Ok(e) => e,
                    Err(e) => {
                        return Ok(Err(fail(
                            Some(row.position),
                            None,
                            None,
                            format!("row is unreadable: {e}"),
                        )))
                    }
                };
                let at = |problem: String| {
                    Ok(Err(fail(
                        Some(row.position),
                        Some(event.event_id),
                        Some(&event.stream),
                        problem,
                    )))
                };
                if event.compute_hash() != event.hash {
                    return at(format!(
                        "stored hash {} does not match the event's content (hash of canonical bytes is {}): the row was edited",
                        hex::encode(event.hash),
                        hex::encode(event.compute_hash())
                    ));
                }
                let (last_seq, last_hash) = heads
                    .get(&event.stream)
                    .copied()
                    .unwrap_or((0, GENESIS_HASH));
                if event.seq != last_seq + 1 {
                    return at(format!(
                        "seq {} follows seq {last_seq} in its stream: an event of the stream was deleted, duplicated or reordered",
                        event.seq
                    ));
                }
                if event.prev_hash != last_hash {
                    return at(format!(
                        "prev_hash {} is not the hash of the stream's previous event ({}): the chain is broken",
                        hex::encode(event.prev_hash),
                        hex::encode(last_hash)
                    ));
                }
                if last_recorded.is_some_and(|last| event.recorded_at <= last) {
                    return at(format!(
                        "recorded_at {} is not later than the previous event's: transaction time must strictly increase",
                        event.recorded_at
                    ));
                }
                heads.insert(event.stream.clone(), (event.seq, event.hash));
                last_recorded = Some(event.recorded_at);
                produced.extend(frontier.append(leaf_hash(&event.hash)));
                if let Some(cps) = by_size.get(&frontier.size()) {
                    let root = frontier.root();
                    if let Some(cp) = cps.iter().find(|cp| cp.root != root) {
                        return at(format!(
                            "the checkpoint signed at {} for tree size {} has root {}, but the ledger's root at that size is {}: the ledger or the checkpoint was altered",
                            cp.issued_at, cp.tree_size, hex::encode(cp.root), hex::encode(root)
                        ));
                    }
                }
                expected_position += 1;
            }
            if let Err(problem) = self.compare_nodes(&produced).await? {
                return Ok(Err(fail(None, None, None, problem)));
            }
            progress(frontier.size(), rows);
        }

        let tree_size = frontier.size();
        if let Some((&size, _)) = by_size.range(tree_size + 1..).next() {
            return Ok(Err(fail(
                None,
                None,
                None,
                format!("a checkpoint was signed at tree size {size}, but the ledger holds only {tree_size} events: events were deleted"),
            )));
        }
        if head.position != tree_size || head.frontier.root() != frontier.root() {
            return Ok(Err(fail(
                None,
                None,
                None,
                format!(
                    "the ledger head records {} events, but {tree_size} were found: the events table was truncated or the head edited",
                    head.position
                ),
            )));
        }
        if streams != heads.len() as u64 {
            return Ok(Err(fail(
                None,
                None,
                None,
                format!(
                    "{streams} stream heads are stored, but the events form {} streams",
                    heads.len()
                ),
            )));
        }
        Ok(Ok(VerifyReport {
            events: tree_size,
            streams,
            tree_size,
            root: frontier.root(),
            checkpoints: checkpoint_count,
        }))
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
                match stored.get(&index) {
                    Some(s) if *s == hash => {}
                    Some(_) => return Ok(Err(format!("stored Merkle node (level {level}, index {index}) differs from the recomputed one: proofs served from it would be false"))),
                    None => return Ok(Err(format!("Merkle node (level {level}, index {index}) is missing from storage"))),
                }
            }
        }
        Ok(Ok(()))
    }
}
