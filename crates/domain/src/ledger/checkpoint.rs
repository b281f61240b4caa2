//! Signed checkpoints: the ledger's Merkle tree size and root at a moment, signed with
//! the instance's Ed25519 key so that anyone holding the public key can check them.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::ledger::merkle::Hash;
use crate::ledger::time::Instant;

/// A signed statement "the ledger had `tree_size` events with Merkle root `root` at `issued_at`".
/// Checkpoints since v2 are numbered and name the one before them (`link`), so that a
/// checkpoint deleted from the middle of the list breaks the chain that `verify` follows;
/// v1 checkpoints (signed before) have no link and still verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub tree_size: u64,
    pub root: Hash,
    pub issued_at: Instant,
    pub key_id: String,
    pub signature: [u8; 64],
    pub link: Option<CheckpointLink>,
}

/// Where a v2 checkpoint stands in the list: its number (1 for the first checkpoint ever
/// signed, v1 ones included) and the digest of the checkpoint before it (all zeros for
/// the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointLink {
    pub sequence: u64,
    pub previous: Hash,
}

impl CheckpointLink {
    /// The link of the checkpoint that follows `previous`, the `count`th one stored (v1
    /// checkpoints have no number of their own: their place in the list is it).
    pub fn after(previous: Option<&Checkpoint>, count: u64) -> CheckpointLink {
        CheckpointLink {
            sequence: count + 1,
            previous: previous.map_or([0u8; 32], Checkpoint::digest),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("checkpoint at tree size {tree_size} was signed by key {found}, but this instance's key is {expected} (servers sharing a database must share the key file)")]
    WrongKey {
        tree_size: u64,
        expected: String,
        found: String,
    },
    #[error("checkpoint at tree size {tree_size}: the Ed25519 signature does not verify")]
    BadSignature { tree_size: u64 },
}

/// A short, stable name for a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

impl Checkpoint {
    /// The exact bytes that are signed, one field a line, each followed by `\n`: v1
    /// `autolog-checkpoint/v1`, tree size, root (hex), issued_at; v2
    /// `autolog-checkpoint/v2`, sequence, tree size, root, issued_at, previous (hex).
    pub fn signed_text(
        link: Option<&CheckpointLink>,
        tree_size: u64,
        root: &Hash,
        issued_at: Instant,
    ) -> String {
        match link {
            None => format!(
                "autolog-checkpoint/v1\n{tree_size}\n{}\n{issued_at}\n",
                hex::encode(root)
            ),
            Some(link) => format!(
                "autolog-checkpoint/v2\n{}\n{tree_size}\n{}\n{issued_at}\n{}\n",
                link.sequence,
                hex::encode(root),
                hex::encode(link.previous)
            ),
        }
    }

    fn own_signed_text(&self) -> String {
        Self::signed_text(
            self.link.as_ref(),
            self.tree_size,
            &self.root,
            self.issued_at,
        )
    }

    /// What the next checkpoint names as its previous one: SHA-256 of the signed text.
    pub fn digest(&self) -> Hash {
        Sha256::digest(self.own_signed_text().as_bytes()).into()
    }

    pub fn sign(
        key: &SigningKey,
        link: Option<CheckpointLink>,
        tree_size: u64,
        root: Hash,
        issued_at: Instant,
    ) -> Self {
        let text = Self::signed_text(link.as_ref(), tree_size, &root, issued_at);
        Checkpoint {
            tree_size,
            root,
            issued_at,
            key_id: key_id(&key.verifying_key()),
            signature: key.sign(text.as_bytes()).to_bytes(),
            link,
        }
    }

    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let expected = key_id(key);
        if expected != self.key_id {
            return Err(CheckpointError::WrongKey {
                tree_size: self.tree_size,
                expected,
                found: self.key_id.clone(),
            });
        }
        let text = self.own_signed_text();
        key.verify(text.as_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| CheckpointError::BadSignature {
                tree_size: self.tree_size,
            })
    }

    pub fn to_json(&self) -> Value {
        let mut answer = json!({
            "tree_size": self.tree_size,
            "root": hex::encode(self.root),
            "issued_at": self.issued_at.to_string(),
            "key_id": self.key_id,
            "signature": hex::encode(self.signature),
            "signed_text": self.own_signed_text(),
        });
        if let Some(link) = &self.link {
            answer["sequence"] = json!(link.sequence);
            answer["previous"] = json!(hex::encode(link.previous));
        }
        answer
    }
}

/// Checks the list of stored checkpoints, oldest first: numbered from 1 without a gap,
/// each v2 checkpoint naming the digest of the one before it, none after a v2 one without
/// a number, tree sizes and times never going back. Names the first checkpoint (1-based)
/// that breaks it and how.
pub fn check_checkpoint_chain(list: &[Checkpoint]) -> Result<(), String> {
    let mut previous: Option<&Checkpoint> = None;
    for (i, cp) in list.iter().enumerate() {
        let n = i as u64 + 1;
        match (&cp.link, previous.and_then(|p| p.link)) {
            (Some(link), _) => {
                if link.sequence != n {
                    return Err(format!(
                        "checkpoint #{n} is numbered {}: a checkpoint before it was deleted or inserted",
                        link.sequence
                    ));
                }
                let expected = previous.map_or([0u8; 32], Checkpoint::digest);
                if link.previous != expected {
                    return Err(format!(
                        "checkpoint #{n} names a previous checkpoint that is not the one stored before it: a checkpoint was deleted, replaced or reordered"
                    ));
                }
            }
            (None, Some(_)) => {
                return Err(format!(
                    "checkpoint #{n} carries no number after numbered ones: it was inserted"
                ))
            }
            (None, None) => {}
        }
        if let Some(p) = previous {
            if cp.tree_size < p.tree_size || cp.issued_at < p.issued_at {
                return Err(format!(
                    "checkpoint #{n} (tree size {}, {}) goes back from the one before it (tree size {}, {})",
                    cp.tree_size, cp.issued_at, p.tree_size, p.issued_at
                ));
            }
        }
        previous = Some(cp);
    }
    Ok(())
}

/// Reads a checkpoint as [`Checkpoint::to_json`] writes it (what `GET
/// /api/v1/checkpoints/latest` answers), to check a ledger against one kept elsewhere.
/// The signature is not checked here: that needs the key it was signed with.
pub fn checkpoint_from_json(value: &Value) -> Result<Checkpoint, String> {
    let text = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{name} is missing or not text"))
    };
    let bytes = |name: &str, len: usize| -> Result<Vec<u8>, String> {
        let decoded = hex::decode(text(name)?).map_err(|e| format!("{name} is not hex: {e}"))?;
        if decoded.len() == len {
            Ok(decoded)
        } else {
            Err(format!("{name} must be {len} bytes of hex"))
        }
    };
    let tree_size = value
        .get("tree_size")
        .and_then(Value::as_u64)
        .ok_or("tree_size is missing or not a whole number")?;
    let mut root = [0u8; 32];
    root.copy_from_slice(&bytes("root", 32)?);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&bytes("signature", 64)?);
    let issued_at =
        Instant::parse_rfc3339("issued_at", text("issued_at")?).map_err(|e| e.to_string())?;
    let link = match value.get("sequence") {
        None => None,
        Some(sequence) => {
            let sequence = sequence.as_u64().ok_or("sequence is not a whole number")?;
            let mut previous = [0u8; 32];
            previous.copy_from_slice(&bytes("previous", 32)?);
            Some(CheckpointLink { sequence, previous })
        }
    };
    Ok(Checkpoint {
        tree_size,
        root,
        issued_at,
        key_id: text("key_id")?.to_string(),
        signature,
        link,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_from_its_json() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let at = Instant::from_micros(1_700_000_000_000_000).expect("valid");
        let cp = Checkpoint::sign(&key, None, 5, [3u8; 32], at);
        let back = checkpoint_from_json(&cp.to_json()).expect("reads");
        assert_eq!(back, cp);
        let next = Checkpoint::sign(
            &key,
            Some(CheckpointLink::after(Some(&cp), 1)),
            9,
            [4u8; 32],
            at,
        );
        let back = checkpoint_from_json(&next.to_json()).expect("reads");
        assert_eq!(back, next);
        assert_eq!(
            back.link.map(|l| (l.sequence, l.previous)),
            Some((2, cp.digest()))
        );
        assert_eq!(back.verify_signature(&key.verifying_key()), Ok(()));
        assert!(checkpoint_from_json(&json!({"tree_size": 5})).is_err());
    }

    fn chain(n: u64) -> Vec<Checkpoint> {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let mut list: Vec<Checkpoint> = Vec::new();
        for i in 0..n {
            let at = Instant::from_micros(1_700_000_000_000_000 + i as i64).expect("valid");
            // Two v1 checkpoints first, as a ledger signed before v2 has.
            let link = (i >= 2).then(|| CheckpointLink::after(list.last(), i));
            list.push(Checkpoint::sign(
                &key,
                link,
                10 * (i + 1),
                [i as u8; 32],
                at,
            ));
        }
        list
    }

    #[test]
    fn the_checkpoint_chain_shows_a_deleted_inserted_or_reordered_checkpoint() {
        let list = chain(6);
        assert_eq!(check_checkpoint_chain(&list), Ok(()));
        let mut middle = list.clone();
        middle.remove(3);
        let e = check_checkpoint_chain(&middle).expect_err("deleted");
        assert!(e.starts_with("checkpoint #4 is numbered 5"), "{e}");
        let mut first_v2 = list.clone();
        first_v2.remove(1);
        assert!(
            check_checkpoint_chain(&first_v2).is_err(),
            "a v1 one deleted"
        );
        let mut swapped = list.clone();
        swapped.swap(3, 4);
        assert!(check_checkpoint_chain(&swapped).is_err());
        let mut unnumbered = list.clone();
        unnumbered.push(Checkpoint {
            link: None,
            ..list[5].clone()
        });
        let e = check_checkpoint_chain(&unnumbered).expect_err("inserted");
        assert!(e.contains("no number"), "{e}");
        // The tail alone cannot be told from a shorter list: a kept checkpoint shows it.
        assert_eq!(check_checkpoint_chain(&list[..4]), Ok(()));
    }

    #[test]
    fn signatures_verify_and_forgeries_do_not() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let at = Instant::from_micros(1_700_000_000_000_000).expect("valid");
        let cp = Checkpoint::sign(&key, None, 5, [3u8; 32], at);
        assert_eq!(cp.verify_signature(&key.verifying_key()), Ok(()));
        let linked = Checkpoint::sign(
            &key,
            Some(CheckpointLink::after(Some(&cp), 1)),
            5,
            [3u8; 32],
            at,
        );
        let mut renumbered = linked.clone();
        renumbered.link = Some(CheckpointLink::after(Some(&cp), 2));
        assert_eq!(
            renumbered.verify_signature(&key.verifying_key()),
            Err(CheckpointError::BadSignature { tree_size: 5 }),
            "the number and the link are signed"
        );

        let mut forged = cp.clone();
        forged.tree_size = 6;
        assert_eq!(
            forged.verify_signature(&key.verifying_key()),
            Err(CheckpointError::BadSignature { tree_size: 6 })
        );
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert!(matches!(
            cp.verify_signature(&other.verifying_key()),
            Err(CheckpointError::WrongKey { .. })
        ));
    }
}
