//! Witnessed checkpoints: a second party keeps each signed checkpoint of a ledger it
//! witnesses, after checking that it extends the one it held (an RFC 9162 consistency
//! proof), and countersigns it. A rewrite of the ledger's tail after a checkpoint then
//! shows as a fork (two roots at one size, or a root that does not extend the held one),
//! which the witness refuses.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Deserialize;

use crate::error::FieldError;
use crate::ledger::checkpoint::{key_id, Checkpoint};
use crate::ledger::envelope::check_code as code;
use crate::ledger::event_type::Check;
use crate::ledger::merkle::{verify_consistency, Hash};

/// How a new checkpoint stands to the one the witness held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// The first checkpoint of this ledger the witness sees.
    First,
    /// The same checkpoint again (tree size and root).
    Same,
    /// A larger tree, proven to extend the held one.
    Extends,
}

/// Why a witness does not countersign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessRefusal {
    #[error("fork: the ledger signed two different roots at tree size {size} ({held} held, {given} given)")]
    Fork {
        size: u64,
        held: String,
        given: String,
    },
    #[error("fork: the tree of size {given_size} does not extend the held tree of size {held_size}: {why}")]
    Inconsistent {
        held_size: u64,
        given_size: u64,
        why: String,
    },
    #[error(
        "the witness holds tree size {held_size}, later than {given_size}: send a newer checkpoint"
    )]
    Older { held_size: u64, given_size: u64 },
    #[error("the witness holds tree size {held_size}: send a consistency proof from it (consistency.from {from:?} given)")]
    ProofFrom { held_size: u64, from: Option<u64> },
}

impl WitnessRefusal {
    /// Whether the refusal shows the ledger was rewritten (an alert), not a request to
    /// send something else.
    pub fn is_fork(&self) -> bool {
        matches!(self, Self::Fork { .. } | Self::Inconsistent { .. })
    }
}

/// Checks `given` against the checkpoint the witness `held`, with the consistency proof
/// from the held tree size (`from`, `proof`).
pub fn check_extension(
    held: Option<&Checkpoint>,
    given: &Checkpoint,
    from: Option<u64>,
    proof: &[Hash],
) -> Result<Extension, WitnessRefusal> {
    let Some(held) = held else {
        return Ok(Extension::First);
    };
    let hex = |h: &Hash| hex::encode(h);
    if given.tree_size == held.tree_size {
        if given.root == held.root {
            return Ok(Extension::Same);
        }
        return Err(WitnessRefusal::Fork {
            size: given.tree_size,
            held: hex(&held.root),
            given: hex(&given.root),
        });
    }
    if given.tree_size < held.tree_size {
        return Err(WitnessRefusal::Older {
            held_size: held.tree_size,
            given_size: given.tree_size,
        });
    }
    if from != Some(held.tree_size) {
        return Err(WitnessRefusal::ProofFrom {
            held_size: held.tree_size,
            from,
        });
    }
    verify_consistency(
        held.tree_size,
        given.tree_size,
        &held.root,
        &given.root,
        proof,
    )
    .map(|()| Extension::Extends)
    .map_err(|e| WitnessRefusal::Inconsistent {
        held_size: held.tree_size,
        given_size: given.tree_size,
        why: e.to_string(),
    })
}

/// The bytes a witness signs: `autolog-witness/v1`, the witnessed ledger's key id and the
/// checkpoint's digest (SHA-256 of its signed text), each line ending in `\n`.
pub fn countersigned_text(origin_key_id: &str, checkpoint: &Checkpoint) -> String {
    format!(
        "autolog-witness/v1\n{origin_key_id}\n{}\n",
        hex::encode(checkpoint.digest())
    )
}

pub fn countersign(witness: &SigningKey, origin_key_id: &str, checkpoint: &Checkpoint) -> [u8; 64] {
    witness
        .sign(countersigned_text(origin_key_id, checkpoint).as_bytes())
        .to_bytes()
}

/// Whether `signature` is the witness's countersignature of `checkpoint`.
pub fn countersignature_verifies(
    witness: &VerifyingKey,
    origin_key_id: &str,
    checkpoint: &Checkpoint,
    signature: &[u8; 64],
) -> bool {
    witness
        .verify(
            countersigned_text(origin_key_id, checkpoint).as_bytes(),
            &Signature::from_bytes(signature),
        )
        .is_ok()
}

/// The origin's key id as a witness names it.
pub fn origin_id(origin: &VerifyingKey) -> String {
    key_id(origin)
}

/// `checkpoint.witnessed`: recorded by Autolog as a witness, in `witness/<origin key id>`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointWitnessedV1 {
    pub origin_key_id: String,
    /// The checkpoint as `GET /api/v1/checkpoints/latest` answers it.
    pub checkpoint: serde_json::Value,
    pub witness_key_id: String,
    /// Hex of the witness's Ed25519 signature over [`countersigned_text`].
    pub countersignature: String,
}

impl Check for CheckpointWitnessedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("origin_key_id", &self.origin_key_id)?;
        code("witness_key_id", &self.witness_key_id)?;
        crate::ledger::checkpoint::checkpoint_from_json(&self.checkpoint)
            .map_err(|e| FieldError::new("checkpoint", "(as sent)", e))?;
        match hex::decode(&self.countersignature) {
            Ok(b) if b.len() == 64 => Ok(()),
            _ => Err(FieldError::new(
                "countersignature",
                &self.countersignature,
                "must be 64 bytes of hex",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::merkle::{leaf_hash, Frontier};
    use crate::ledger::time::Instant;

    fn tree(leaves: u8) -> (Frontier, Vec<Hash>) {
        let mut f = Frontier::new();
        let hashes: Vec<Hash> = (0..leaves).map(|i| leaf_hash(&[i])).collect();
        for h in &hashes {
            f.append(*h);
        }
        (f, hashes)
    }

    #[test]
    fn a_fork_at_one_size_is_refused_and_the_same_checkpoint_is_not() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let at = Instant::from_micros(1_000_000).expect("instant");
        let (f, _) = tree(4);
        let held = Checkpoint::sign(&key, None, 4, f.root(), at);
        let same = Checkpoint::sign(&key, None, 4, f.root(), at);
        assert_eq!(
            check_extension(Some(&held), &same, None, &[]),
            Ok(Extension::Same)
        );
        let forged = Checkpoint::sign(&key, None, 4, [9u8; 32], at);
        let e = check_extension(Some(&held), &forged, None, &[]).expect_err("fork");
        assert!(e.is_fork(), "{e}");
        assert_eq!(
            check_extension(None, &forged, None, &[]),
            Ok(Extension::First)
        );
        let (bigger, _) = tree(6);
        let later = Checkpoint::sign(&key, None, 6, bigger.root(), at);
        let asks = check_extension(Some(&held), &later, None, &[]).expect_err("no proof");
        assert!(!asks.is_fork(), "{asks}");
        let bad =
            check_extension(Some(&held), &later, Some(4), &[[0u8; 32]]).expect_err("bad proof");
        assert!(bad.is_fork(), "{bad}");
        let sig = countersign(&key, "origin", &held);
        assert!(countersignature_verifies(
            &key.verifying_key(),
            "origin",
            &held,
            &sig
        ));
        assert!(!countersignature_verifies(
            &key.verifying_key(),
            "origin",
            &forged,
            &sig
        ));
    }
}
