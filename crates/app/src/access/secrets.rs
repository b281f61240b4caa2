//! Secrets at rest: the TOTP secrets of accounts and the HMAC secrets of webhooks must be
//! usable (not hashed), so they are sealed under the vault master key (XChaCha20-Poly1305,
//! bound to their owner and the key's id) before they reach the database. Someone with the
//! database files alone cannot compute a person's codes or sign as Autolog to a receiver.
//!
//! Stored form: `sealed:v1:<master key id>:<hex of the sealed bytes>`. A value without the
//! prefix is a secret stored in clear before sealing existed (or with no vault key
//! configured); [`Autolog::seal_clear_secrets`] seals those at start, and a rotation of
//! the master key re-seals every secret under the new key.

use autolog_store::{SecretOwner, SecretReplacement};
use zeroize::Zeroizing;

use crate::access::vault::{open, seal, VaultKey};
use crate::{AppError, Autolog};

const PREFIX: &str = "sealed:v1:";
const AAD: &[u8] = b"autolog-secret-v1\0";

fn aad(owner: &SecretOwner, key_id: &str) -> Vec<u8> {
    let owner = match owner {
        SecretOwner::Totp(person_id) => format!("totp\0{person_id}"),
        SecretOwner::Webhook(id) => format!("webhook\0{id}"),
    };
    [AAD, owner.as_bytes(), b"\0", key_id.as_bytes()].concat()
}

fn describe(owner: &SecretOwner) -> String {
    match owner {
        SecretOwner::Totp(person_id) => format!("the TOTP secret of {person_id}"),
        SecretOwner::Webhook(id) => format!("the secret of webhook {id}"),
    }
}

/// The master key id a stored secret was sealed under, if it is sealed.
fn sealed_key_id(stored: &str) -> Option<&str> {
    stored
        .strip_prefix(PREFIX)?
        .split_once(':')
        .map(|(id, _)| id)
}

/// Seals `clear` for `owner` under `key`.
fn seal_with(key: &VaultKey, owner: &SecretOwner, clear: &str) -> Result<String, AppError> {
    let sealed = seal(&key.cipher()?, clear.as_bytes(), &aad(owner, key.id()))?;
    Ok(format!("{PREFIX}{}:{}", key.id(), hex::encode(sealed)))
}

/// Opens a stored secret with `key`; a clear (legacy) value is returned as it is.
fn open_with(
    key: Option<&VaultKey>,
    owner: &SecretOwner,
    stored: &str,
) -> Result<Zeroizing<String>, AppError> {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        return Ok(Zeroizing::new(stored.to_string()));
    };
    let (key_id, sealed) = rest.split_once(':').unwrap_or((rest, ""));
    let key = key.ok_or_else(|| {
        AppError::Config(format!(
            "{} is sealed under vault master key {key_id}, and no vault master key is configured",
            describe(owner)
        ))
    })?;
    if key.id() != key_id {
        return Err(AppError::Integrity(format!(
            "{} is sealed under vault master key {key_id}, not this server's {}: give the \
             server that key, or finish the rotation that was under way",
            describe(owner),
            key.id()
        )));
    }
    let opened = hex::decode(sealed)
        .ok()
        .and_then(|bytes| open(&key.cipher().ok()?, &bytes, &aad(owner, key_id)))
        .ok_or_else(|| {
            AppError::Integrity(format!(
                "{} cannot be opened with vault master key {key_id}: it was altered, or moved \
                 from another owner",
                describe(owner)
            ))
        })?;
    String::from_utf8(opened.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| AppError::Integrity(format!("{} is not text once opened", describe(owner))))
}

impl Autolog {
    /// The form in which a new secret is stored: sealed under the vault master key, or in
    /// clear (with a warning) when none is configured.
    pub(crate) fn seal_secret(&self, owner: &SecretOwner, clear: &str) -> Result<String, AppError> {
        match self.vault_key() {
            Ok(key) => seal_with(&key, owner, clear),
            Err(_) => {
                tracing::warn!(
                    "no vault master key is configured: a secret is stored in clear; configure \
                     one and restart to seal it"
                );
                Ok(clear.to_string())
            }
        }
    }

    /// A stored secret, opened.
    pub(crate) fn open_secret(
        &self,
        owner: &SecretOwner,
        stored: &str,
    ) -> Result<Zeroizing<String>, AppError> {
        open_with(self.vault_key().ok().as_ref(), owner, stored)
    }

    /// Every stored secret with its owner.
    async fn stored_secrets(&self) -> Result<Vec<(SecretOwner, String)>, AppError> {
        let mut secrets = Vec::new();
        for user in self.store.users().await? {
            if let Some(secret) = user.totp_secret {
                secrets.push((SecretOwner::Totp(user.person_id), secret));
            }
        }
        for webhook in self.store.webhooks().await? {
            secrets.push((SecretOwner::Webhook(webhook.webhook_id), webhook.secret));
        }
        Ok(secrets)
    }

    /// Seals every secret still stored in clear under the vault master key (none without
    /// one), in one transaction; how many. `serve` runs it at start.
    pub async fn seal_clear_secrets(&self) -> Result<u64, AppError> {
        let Ok(key) = self.vault_key() else {
            return Ok(0);
        };
        let mut replacements = Vec::new();
        for (owner, stored) in self.stored_secrets().await? {
            if sealed_key_id(&stored).is_none() {
                let new = seal_with(&key, &owner, &stored)?;
                replacements.push(SecretReplacement {
                    owner,
                    old: stored,
                    new,
                });
            }
        }
        if replacements.is_empty() {
            return Ok(0);
        }
        let sealed = self.store.replace_secrets(&replacements).await?;
        tracing::info!(
            secrets = sealed,
            "secrets stored in clear sealed under the vault master key"
        );
        Ok(sealed)
    }

    /// Re-seals every secret sealed under `from` (or in clear) under `to`, in one
    /// transaction; secrets already under `to` (a rotation that stopped half-way) are left.
    /// Nothing is written when any secret cannot be opened with `from`.
    pub(crate) async fn reseal_secrets(
        &self,
        from: &VaultKey,
        to: &VaultKey,
    ) -> Result<u64, AppError> {
        let mut replacements = Vec::new();
        for (owner, stored) in self.stored_secrets().await? {
            if sealed_key_id(&stored) == Some(to.id()) {
                continue;
            }
            let clear = open_with(Some(from), &owner, &stored)?;
            let new = seal_with(to, &owner, &clear)?;
            replacements.push(SecretReplacement {
                owner,
                old: stored,
                new,
            });
        }
        if replacements.is_empty() {
            return Ok(0);
        }
        Ok(self.store.replace_secrets(&replacements).await?)
    }

    /// The master key ids the stored secrets are sealed under (start-up check).
    pub(crate) async fn secret_key_ids(&self) -> Result<Vec<String>, AppError> {
        let mut ids: Vec<String> = self
            .stored_secrets()
            .await?
            .iter()
            .filter_map(|(_, stored)| sealed_key_id(stored).map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_owner_and_key() {
        let key = VaultKey::from_bytes([7u8; 32]);
        let other = VaultKey::from_bytes([8u8; 32]);
        let alice = SecretOwner::Totp("P-0001".into());
        let bob = SecretOwner::Totp("P-0002".into());
        let stored = seal_with(&key, &alice, "JBSWY3DPEHPK3PXP").expect("seal");
        assert!(
            stored.starts_with(&format!("sealed:v1:{}:", key.id())),
            "{stored}"
        );
        assert!(!stored.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            open_with(Some(&key), &alice, &stored)
                .expect("open")
                .as_str(),
            "JBSWY3DPEHPK3PXP"
        );
        let moved = open_with(Some(&key), &bob, &stored).expect_err("another owner");
        assert!(
            moved.to_string().contains("moved from another owner"),
            "{moved}"
        );
        let wrong = open_with(Some(&other), &alice, &stored).expect_err("another key");
        assert!(wrong.to_string().contains(key.id()), "{wrong}");
        assert!(wrong.to_string().contains(other.id()), "{wrong}");
        let none = open_with(None, &alice, &stored).expect_err("no key");
        assert!(none.to_string().contains("no vault master key"), "{none}");
        let mut altered = stored.clone();
        altered.pop();
        altered.push(if stored.ends_with('0') { '1' } else { '0' });
        assert!(open_with(Some(&key), &alice, &altered).is_err());
        assert_eq!(
            open_with(Some(&key), &alice, "CLEARLEGACY")
                .expect("clear")
                .as_str(),
            "CLEARLEGACY"
        );
    }
}
