//! Signed checkpoints: the ledger's Merkle tree size and root at a moment, signed with
//! the instance's Ed25519 key so that anyone holding the public key can check them.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::ledger::merkle::Hash;
use crate::ledger::time::Instant;

/// A signed statement "the ledger had `tree_size` events with Merkle root `root` at `issued_at`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub tree_size: u64,
    pub root: Hash,
    pub issued_at: Instant,
    pub key_id: String,
    pub signature: [u8; 64],
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
    /// The exact bytes that are signed, one field a line:
    /// `autolog-checkpoint/v1`, tree size, root (hex), issued_at, each followed by `\n`.
    pub fn signed_text(tree_size: u64, root: &Hash, issued_at: Instant) -> String {
        format!(
            "autolog-checkpoint/v1\n{tree_size}\n{}\n{issued_at}\n",
            hex::encode(root)
        )
    }

    pub fn sign(key: &SigningKey, tree_size: u64, root: Hash, issued_at: Instant) -> Self {
        let text = Self::signed_text(tree_size, &root, issued_at);
        Checkpoint {
            tree_size,
            root,
            issued_at,
            key_id: key_id(&key.verifying_key()),
            signature: key.sign(text.as_bytes()).to_bytes(),
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
        let text = Self::signed_text(self.tree_size, &self.root, self.issued_at);
        key.verify(text.as_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| CheckpointError::BadSignature {
                tree_size: self.tree_size,
            })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "tree_size": self.tree_size,
            "root": hex::encode(self.root),
            "issued_at": self.issued_at.to_string(),
            "key_id": self.key_id,
            "signature": hex::encode(self.signature),
            "signed_text": Self::signed_text(self.tree_size, &self.root, self.issued_at),
        })
    }
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
    Ok(Checkpoint {
        tree_size,
        root,
        issued_at,
        key_id: text("key_id")?.to_string(),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_from_its_json() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let at = Instant::from_micros(1_700_000_000_000_000).expect("valid");
        let cp = Checkpoint::sign(&key, 5, [3u8; 32], at);
        let back = checkpoint_from_json(&cp.to_json()).expect("reads");
        assert_eq!(back, cp);
        assert!(checkpoint_from_json(&json!({"tree_size": 5})).is_err());
    }

    #[test]
    fn signatures_verify_and_forgeries_do_not() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let at = Instant::from_micros(1_700_000_000_000_000).expect("valid");
        let cp = Checkpoint::sign(&key, 5, [3u8; 32], at);
        assert_eq!(cp.verify_signature(&key.verifying_key()), Ok(()));

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
