//! Merkle proofs and signed checkpoints over the whole ledger (RFC 9162 shape):
//! inclusion of one event, consistency between two tree sizes, the latest checkpoint.

use autolog_domain::ledger::checkpoint::{Checkpoint, CheckpointLink};
use autolog_domain::ledger::merkle::{self, Hash};
use autolog_domain::{FieldError, Uuid};

use crate::{AppError, Autolog};

/// Proof that an event is leaf `leaf_index` of the tree of `tree_size` leaves with `root`.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    pub event_id: Uuid,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub event_hash: Hash,
    pub root: Hash,
    pub path: Vec<Hash>,
}

impl serde::Serialize for InclusionProof {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            event_id: &'a Uuid,
            leaf_index: u64,
            tree_size: u64,
            event_hash: String,
            leaf_hash: String,
            root: String,
            path: Vec<String>,
        }
        Shown {
            event_id: &self.event_id,
            leaf_index: self.leaf_index,
            tree_size: self.tree_size,
            event_hash: hex::encode(self.event_hash),
            leaf_hash: hex::encode(merkle::leaf_hash(&self.event_hash)),
            root: hex::encode(self.root),
            path: self.path.iter().map(hex::encode).collect(),
        }
        .serialize(serializer)
    }
}

/// Proof that the tree of `from` leaves is a prefix of the tree of `to` leaves.
#[derive(Debug, Clone)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub from_root: Hash,
    pub to_root: Hash,
    pub proof: Vec<Hash>,
}

impl serde::Serialize for ConsistencyProof {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Shown {
            from: u64,
            to: u64,
            from_root: String,
            to_root: String,
            proof: Vec<String>,
        }
        Shown {
            from: self.from,
            to: self.to,
            from_root: hex::encode(self.from_root),
            to_root: hex::encode(self.to_root),
            proof: self.proof.iter().map(hex::encode).collect(),
        }
        .serialize(serializer)
    }
}

/// A tree larger than the ledger does not exist (yet).
fn no_tree(size: u64, current: u64) -> AppError {
    AppError::NotFound {
        what: "Merkle tree",
        id: format!("of size {size} (the ledger holds {current} events)"),
    }
}

fn integrity(e: merkle::MerkleError) -> AppError {
    AppError::Integrity(format!("stored Merkle tree is incomplete: {e}"))
}

impl Autolog {
    async fn root_at(&self, size: u64) -> Result<Hash, AppError> {
        let nodes = self
            .store
            .merkle_nodes(&merkle::nodes_for_root(size))
            .await?;
        merkle::root(size, &nodes).map_err(integrity)
    }

    /// Inclusion proof for an event in the tree of `tree_size` leaves (default: the whole ledger now).
    pub async fn inclusion_proof(
        &self,
        event_id: &str,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, AppError> {
        let id = Uuid::parse_str(event_id)
            .map_err(|_| FieldError::new("event_id", event_id, "must be a UUID"))?;
        let event = self.store.event(id).await?.ok_or(AppError::NotFound {
            what: "event",
            id: event_id.to_string(),
        })?;
        let current = self.store.head().await?.position;
        let size = tree_size.unwrap_or(current);
        if size > current {
            return Err(no_tree(size, current));
        }
        if size < event.position {
            // The proof asked for does not exist: the event came after that tree.
            return Err(AppError::NotFound {
                what: "inclusion proof",
                id: format!(
                    "of event {event_id} (position {}) in the tree of size {size} (the event \
                     came later)",
                    event.position
                ),
            });
        }
        let index = event.position - 1;
        let needed = merkle::nodes_for_inclusion(index, size).map_err(integrity)?;
        let mut ids = needed;
        ids.extend(merkle::nodes_for_root(size));
        let nodes = self.store.merkle_nodes(&ids).await?;
        Ok(InclusionProof {
            event_id: id,
            leaf_index: index,
            tree_size: size,
            event_hash: event.hash,
            root: merkle::root(size, &nodes).map_err(integrity)?,
            path: merkle::inclusion_proof(index, size, &nodes).map_err(integrity)?,
        })
    }

    /// Consistency proof between tree sizes `from` and `to` (1 <= from <= to <= ledger size).
    pub async fn consistency_proof(
        &self,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, AppError> {
        let current = self.store.head().await?.position;
        if to > current {
            return Err(no_tree(to, current));
        }
        if from == 0 || from > to {
            return Err(AppError::Invalid(FieldError::new(
                "from",
                from.to_string(),
                format!("must be between 1 and to ({to})"),
            )));
        }
        let mut ids = merkle::nodes_for_consistency(from, to).map_err(integrity)?;
        ids.extend(merkle::nodes_for_root(from));
        ids.extend(merkle::nodes_for_root(to));
        let nodes = self.store.merkle_nodes(&ids).await?;
        Ok(ConsistencyProof {
            from,
            to,
            from_root: merkle::root(from, &nodes).map_err(integrity)?,
            to_root: merkle::root(to, &nodes).map_err(integrity)?,
            proof: merkle::consistency_proof(from, to, &nodes).map_err(integrity)?,
        })
    }

    /// Signs and stores a checkpoint of the current tree if it grew since the last one.
    pub async fn checkpoint_if_grown(&self) -> Result<Option<Checkpoint>, AppError> {
        let head = self.store.head().await?;
        let last = self.store.latest_checkpoint().await?;
        if head.position == 0 || last.as_ref().is_some_and(|c| c.tree_size >= head.position) {
            return Ok(None);
        }
        let root = self.root_at(head.position).await?;
        // The number of checkpoints stored: the last one's own, or (after v1 ones, which
        // carry none) their count, read once.
        let count = match &last {
            Some(Checkpoint {
                link: Some(link), ..
            }) => link.sequence,
            Some(_) => self.store.checkpoints().await?.len() as u64,
            None => 0,
        };
        let link = CheckpointLink::after(last.as_ref(), count);
        let checkpoint = Checkpoint::sign(&self.key, Some(link), head.position, root, self.now());
        self.store.add_checkpoint(&checkpoint).await?;
        tracing::info!(tree_size = checkpoint.tree_size, root = %hex::encode(root), "checkpoint signed");
        self.publish_checkpoint(&checkpoint).await;
        Ok(Some(checkpoint))
    }

    pub async fn latest_checkpoint(&self) -> Result<Checkpoint, AppError> {
        self.store
            .latest_checkpoint()
            .await?
            .ok_or(AppError::NotFound {
            what: "checkpoint",
            id: "latest (none signed yet: the ledger is empty or the first checkpoint is pending)"
                .into(),
        })
    }
}
