//! The Merkle tree's nodes and the signed checkpoints, for every [`SqlDb`] backend.

use std::collections::HashMap;

use async_trait::async_trait;
use autolog_domain::ledger::checkpoint::Checkpoint;
use autolog_domain::ledger::merkle::{Hash, NodeId};

use super::{SqlDb, SqlRow, Statement};
use crate::{CheckpointRow, ProofStore, StoreError};

const CHECKPOINT_COLUMNS: &str =
    "id, tree_size, root, issued_at_us, key_id, signature, sequence, previous";

fn node_hash(r: &impl SqlRow) -> Result<Hash, StoreError> {
    let bytes = r.bytes("hash")?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt {
            position: 0,
            detail: format!("merkle node has {} bytes, not 32", bytes.len()),
        })
}

/// A checkpoint row, or what is wrong with it.
fn checkpoint(r: &impl SqlRow) -> Result<Result<Checkpoint, String>, StoreError> {
    let row = CheckpointRow {
        tree_size: r.int("tree_size")?,
        root: r.bytes("root")?,
        issued_at_us: r.int("issued_at_us")?,
        key_id: r.text("key_id")?,
        signature: r.bytes("signature")?,
        sequence: r.opt_int("sequence")?,
        previous: r.opt_bytes("previous")?,
    };
    Ok(row.into_checkpoint())
}

#[async_trait]
impl<B: SqlDb> ProofStore for B {
    async fn merkle_nodes(&self, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>, StoreError> {
        let mut found = HashMap::new();
        for id in ids {
            let select =
                Statement::new("SELECT hash FROM merkle_nodes WHERE level = $1 AND idx = $2")
                    .bind(i64::from(id.level))
                    .bind(id.index as i64);
            if let Some(row) = self.read(select).await?.first() {
                found.insert(*id, node_hash(row)?);
            }
        }
        Ok(found)
    }

    async fn merkle_level_range(
        &self,
        level: u8,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Hash)>, StoreError> {
        let select = Statement::new(
            "SELECT idx, hash FROM merkle_nodes WHERE level = $1 AND idx BETWEEN $2 AND $3 \
             ORDER BY idx",
        )
        .bind(i64::from(level))
        .bind(from as i64)
        .bind(to as i64);
        self.read(select)
            .await?
            .iter()
            .map(|row| Ok((row.int("idx")? as u64, node_hash(row)?)))
            .collect()
    }

    async fn add_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        let r = CheckpointRow::from_checkpoint(c);
        let insert = Statement::new(
            "INSERT INTO checkpoints (tree_size, root, issued_at_us, key_id, signature, \
             sequence, previous) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.tree_size)
        .bind(&r.root)
        .bind(r.issued_at_us)
        .bind(r.key_id)
        .bind(&r.signature)
        .bind(r.sequence)
        .bind(r.previous);
        self.write(insert).await.map(drop)
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY id DESC LIMIT 1"
        ));
        let Some(row) = self.read(select).await?.into_iter().next() else {
            return Ok(None);
        };
        let id = row.int("id")?;
        checkpoint(&row)?
            .map(Some)
            .map_err(|detail| StoreError::Corrupt {
                position: id,
                detail: format!("checkpoint {id}: {detail}"),
            })
    }

    async fn checkpoints(&self) -> Result<Vec<Result<Checkpoint, String>>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints ORDER BY id"
        ));
        self.read(select).await?.iter().map(checkpoint).collect()
    }
}
