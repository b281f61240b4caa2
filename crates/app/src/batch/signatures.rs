//! Electronic signatures at the moment of signing: the signer re-authenticates with two
//! components (person id and signing secret, Argon2id), and Autolog records the manifestation.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use autolog_domain::access::signature::{record_digest, signatures_of, SIGNATURE_KEYS};
use autolog_domain::ledger::zone::{check_zone, local_time};
use autolog_domain::StreamId;
use autolog_domain::{EventDraft, FieldError};
use serde_json::{json, Map, Value};

use crate::ledger::read::text;
use crate::{AppError, Autolog};

/// An Argon2id hash of a random secret nobody knows, verified when a person has no secret.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Zb9CKdH+0M8ZLL8ZyHfwZN6wmJz1OrBjxjBvqvbbNrA";

/// The shortest signing secret accepted.
pub const MIN_SECRET_CHARS: usize = 12;

/// What a signed record means, stated by Autolog from the record (a signer cannot say
/// one thing and sign another).
fn meaning(event_type: &str, key: &str, data: &Value) -> String {
    let exceptional = data.get("exceptional").and_then(Value::as_bool) == Some(true);
    match event_type {
        "chain.released" if key == "second_signature" => format!(
            "second approval of the exceptional release of batch {} to patient {}",
            text(data, "batch_id"),
            text(data, "intended_patient_key")
        ),
        "chain.released" if exceptional => format!(
            "approved for exceptional release (out of specification) of batch {} to patient {}",
            text(data, "batch_id"),
            text(data, "intended_patient_key")
        ),
        "chain.exceptional_release_requested" => format!(
            "requests exceptional release of out-of-specification batch {} for patient {}",
            text(data, "batch_id"),
            text(data, "intended_patient_key")
        ),
        "chain.released" => format!(
            "approved for release of batch {} to patient {}",
            text(data, "batch_id"),
            text(data, "intended_patient_key")
        ),
        "audit_trail.reviewed" => format!(
            "audit trail of the chain reviewed ({} changes, the last {}): {}",
            data.get("changes_reviewed")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            text(data, "last_change_event_id"),
            text(data, "findings")
        ),
        "chain.hold_released" => format!(
            "hold {} resolved: {}",
            text(data, "hold_id"),
            text(data, "resolution_reason")
        ),
        "deviation.closed" => format!(
            "deviation {} closed with disposition {}",
            text(data, "deviation_id"),
            text(data, "disposition")
        ),
        other => format!("signed {other}"),
    }
}

/// Words a password is commonly built on (NIST SP 800-63B 5.1.1.2: refuse commonly used
/// and context-specific values); a secret that is one of them, give or take digits and
/// symbols around it, is refused.
const COMMON_BASES: &[&str] = &[
    "password",
    "passw0rd",
    "p@ssword",
    "p@ssw0rd",
    "qwerty",
    "qwertyuiop",
    "azerty",
    "letmein",
    "welcome",
    "admin",
    "administrator",
    "iloveyou",
    "monkey",
    "dragon",
    "football",
    "baseball",
    "soccer",
    "sunshine",
    "princess",
    "superman",
    "batman",
    "trustno1",
    "changeme",
    "master",
    "shadow",
    "secret",
    "default",
    "login",
    "abc",
    "autolog",
    "hospital",
    "patient",
    "apheresis",
];

/// Keyboard and alphabet runs: a secret that is a piece of one (either way) is refused.
const RUNS: &[&str] = &[
    "01234567890123456789",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiopasdfghjklzxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "zaq12wsxcde34rfvbgt56yhnmju78ik,lo9",
];

/// Why a new secret (a password, also the signing secret) is refused, if it is: shorter
/// than [`MIN_SECRET_CHARS`], blank, of fewer than four different characters, one short
/// piece repeated, a keyboard or alphabet run, without letters, a common password base
/// with digits or symbols around it, or built on the person's own id.
pub(crate) fn check_new_secret(person_id: &str, secret: &str) -> Result<(), String> {
    if secret.chars().count() < MIN_SECRET_CHARS {
        return Err(format!("must be at least {MIN_SECRET_CHARS} characters"));
    }
    if secret.trim().is_empty() {
        return Err("must not be blank".into());
    }
    let lower = secret.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let distinct: std::collections::BTreeSet<&char> = chars.iter().collect();
    let repeated = (1..=chars.len() / 2).any(|n| {
        chars.len().checked_rem(n) == Some(0) && chars.chunks(n).all(|c| c == &chars[..n])
    });
    if distinct.len() < 4 || repeated {
        return Err("is too repetitive: use a passphrase of several words".into());
    }
    let reversed: String = lower.chars().rev().collect();
    if RUNS
        .iter()
        .any(|run| run.contains(&lower) || run.contains(&reversed))
    {
        return Err("is a keyboard or alphabet sequence: use a passphrase of several words".into());
    }
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    let core_repeated = COMMON_BASES.iter().any(|base| {
        !core.is_empty()
            && core.len() % base.len() == 0
            && core == base.repeat(core.len() / base.len())
    });
    if core.is_empty() {
        return Err("must contain letters: use a passphrase of several words".into());
    }
    if core_repeated {
        return Err("is a commonly used password: use a passphrase of several words".into());
    }
    if lower.contains(&person_id.to_lowercase()) {
        return Err("must not contain the person id".into());
    }
    Ok(())
}

/// The Argon2id salt of a signing secret: 16 bytes of SHA-256 over the id of the
/// `signing_secret.set` event that records it and the person. Unique as the event id is
/// (a UUIDv7: time and 74 random bits), which is all a salt must be; derived rather than
/// drawn, so that the event can name the stored hash and stay reproducible under a fixed
/// clock (the golden files).
fn signing_salt(event_id: autolog_domain::Uuid, person_id: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"autolog-signing-salt\0")
        .chain_update(event_id.as_bytes())
        .chain_update(person_id.as_bytes())
        .finalize();
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&digest[..16]);
    salt
}

impl Autolog {
    /// Re-authenticates one signer: `given` must be `{signer_id, secret}`, the signer the
    /// person the record names in `field`, and the secret theirs. Returns the signer's id.
    async fn reauthenticate(
        &self,
        prefix: &str,
        key: &str,
        field: &str,
        given: &Value,
        data: &Value,
        event_type: &str,
    ) -> Result<String, AppError> {
        let refuse = |name: &str, value: &str, rule: String| {
            AppError::Invalid(FieldError::new(
                format!("{prefix}body.data.{key}{name}"),
                value,
                rule,
            ))
        };
        let Value::Object(given) = given else {
            // Never echo it: it may be a secret sent in the wrong shape.
            return Err(refuse(
                "",
                "(not shown)",
                "must be {\"signer_id\", \"secret\"}: the signer re-authenticates to sign".into(),
            ));
        };
        for name in given.keys() {
            if name != "signer_id" && name != "secret" {
                return Err(refuse(
                    &format!(".{name}"),
                    "(given)",
                    "is not given by a signer: sign with signer_id and secret, Autolog records name, time, meaning and binding".into(),
                ));
            }
        }
        let signer = given.get("signer_id").and_then(Value::as_str).unwrap_or("");
        let secret = given.get("secret").and_then(Value::as_str).unwrap_or("");
        if signer.is_empty() || secret.is_empty() {
            return Err(refuse(
                "",
                "(incomplete)",
                "needs both components: signer_id and secret".into(),
            ));
        }
        let named = text(data, field);
        if signer != named {
            return Err(refuse(
                ".signer_id",
                signer,
                format!("must be the person the record names as {field} ({named})"),
            ));
        }
        let verified =
            self.password_matches(signer, secret).await? && self.not_locked_out(signer).await?;
        if !verified {
            self.count_failed_attempt(signer).await;
            tracing::warn!(person_id = %signer, event_type = %event_type, "signature re-authentication failed");
            return Err(refuse(
                ".secret",
                "(not shown)",
                format!("re-authentication failed for {signer}: the signature is not given"),
            ));
        }
        // A successful re-authentication ends a run of failures, as a sign-in does.
        self.store.reset_failed_attempts(signer).await?;
        Ok(signer.to_string())
    }

    /// Whether `secret` is the person's password (their signing secret, Argon2id). Without
    /// a secret on file it verifies against a fixed hash all the same (and fails), so that
    /// the answer takes as long whether or not the person has an account. The hash runs on
    /// a blocking thread: it takes milliseconds of CPU, which the async workers keep for
    /// other requests; at most one check per core runs at once, the others wait their turn.
    pub(crate) async fn password_matches(
        &self,
        person_id: &str,
        secret: &str,
    ) -> Result<bool, AppError> {
        let phc = self.store.signing_secret(person_id).await?;
        let secret = zeroize::Zeroizing::new(secret.to_string());
        self.on_argon2_thread(move || {
            let checked = phc.clone().unwrap_or_else(|| DUMMY_PHC.to_string());
            PasswordHash::new(&checked).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(secret.as_bytes(), &hash)
                    .is_ok()
            }) && phc.is_some()
        })
        .await
    }

    /// Runs Argon2id work on a blocking thread, at most one per core at once (the others
    /// wait their turn): it takes milliseconds of CPU and 19 MiB that the async workers
    /// keep for other requests.
    async fn on_argon2_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let _slot = self
            .password_checks
            .acquire()
            .await
            .map_err(|e| AppError::Storage(format!("the password work did not start: {e}")))?;
        let done = self.password_work.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let answer = work();
            done.add(started.elapsed());
            answer
        })
        .await
        .map_err(|e| AppError::Storage(format!("the password work did not complete: {e}")))
    }

    /// The Argon2id work this instance has done (sign-ins, e-signatures, secrets set): how
    /// many computations and how long they ran, for the bench's figures with and without
    /// re-authentication.
    pub fn password_work(&self) -> PasswordWork {
        self.password_work.get()
    }

    /// The Argon2id hash (PHC string) of a new secret, with a random salt, computed on a
    /// blocking thread and within the same one-per-core limit as the checks.
    /// Argon2id of `secret` with the salt of [`signing_salt`].
    async fn hash_password(&self, secret: &str, salt: [u8; 16]) -> Result<String, AppError> {
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| AppError::Config(format!("salt: {e}")))?;
        let secret = zeroize::Zeroizing::new(secret.to_string());
        self.on_argon2_thread(move || {
            Argon2::default()
                .hash_password(secret.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| AppError::Config(format!("Argon2id: {e}")))
        })
        .await?
    }

    /// Records a failed re-authentication as an alert (who, on what record; never the
    /// secret), in its own transaction: repeated failures are a signal to act on.
    async fn record_failed_signature(&self, cause: &EventDraft, given: &Value) {
        let signer = given.get("signer_id").and_then(Value::as_str).unwrap_or("");
        let mut unique = cause.clone();
        unique.source.source_event_id = format!(
            "{}#reauth/{}",
            cause.source.source_event_id,
            self.new_event_id()
        );
        let alert = crate::feeds::alerts::alert_draft(
            &unique,
            0,
            crate::feeds::alerts::AlertSpec {
                severity: "major",
                rule: "signature.reauthentication_failed",
                message: format!(
                    "Re-authentication of {signer} failed while signing a {} on {}",
                    cause.body.event_type, cause.stream
                ),
                coi: cause.stream.strip_prefix("coi/").map(str::to_string),
                site_id: cause.site.clone(),
                evidence: json!({"signer_id": signer, "event_type": cause.body.event_type, "stream": cause.stream}),
            },
        );
        self.record_alert(alert).await;
    }

    /// Sets a registered person's signing secret (stored as an Argon2id hash, beside the
    /// ledger). Until the access-control issue lands, whoever runs this is trusted.
    pub async fn set_signing_secret(
        &self,
        person_id: &str,
        secret: &str,
        set_by: &str,
    ) -> Result<(), AppError> {
        let person = self.current_state(&StreamId::person(person_id)).await?;
        if text(&person, "person_id").is_empty() {
            return Err(AppError::Invalid(FieldError::new(
                "person_id",
                person_id,
                "is not a registered person",
            )));
        }
        if let Err(rule) = check_new_secret(person_id, secret) {
            return Err(AppError::Invalid(FieldError::new(
                "secret",
                "(not shown)",
                rule,
            )));
        }
        autolog_domain::ledger::envelope::check_actor("set_by", set_by)?;
        let event_id = self.new_event_id();
        let phc = self
            .hash_password(secret, signing_salt(event_id, person_id))
            .await?;
        // The audit trail first: who set whose secret, when (never the secret; the hash of
        // its stored PHC, so that verify can tell a replaced one).
        let now = self.now();
        let record = EventDraft {
            event_id,
            stream: StreamId::person(person_id).into(),
            occurred_at: autolog_domain::OccurredAt::from_parts(now.micros(), "UTC", 0)
                .map_err(AppError::Config)?,
            actor: set_by.to_string(),
            site: None,
            source: autolog_domain::Source {
                system: "autolog".to_string(),
                source_event_id: format!("signing-secret/{person_id}/{}", self.new_event_id()),
            },
            reason: None,
            corrects: None,
            body: autolog_domain::Body {
                event_type: "signing_secret.set".to_string(),
                version: 1,
                data: json!({"person_id": person_id, "set_by": set_by,
                             "phc_sha256": crate::ledger::read::sha256_hex(&phc)}),
            },
        };
        self.store.append(&[record], &self.store_clock()).await?;
        self.note_appended();
        self.store
            .set_signing_secret(person_id, &phc, now, set_by)
            .await?;
        tracing::info!(person_id = %person_id, "signing secret set");
        Ok(())
    }

    /// Turns each signed event's `signature: {signer_id, secret}` into the manifestation
    /// the ledger keeps, after re-authenticating the signer, on the parsed events (so no
    /// spelling of the key escapes it). Any other shape of a signature on a signed record
    /// (a manifestation sent as is, a bare string) is refused: only Autolog writes one.
    /// The secret never goes further.
    pub(crate) async fn sign_drafts(
        &self,
        drafts: &mut [EventDraft],
        single: bool,
    ) -> Result<(), AppError> {
        for (i, draft) in drafts.iter_mut().enumerate() {
            let prefix = if single {
                String::new()
            } else {
                format!("[{i}].")
            };
            let event_type = draft.body.event_type.clone();
            let stream = draft.stream.clone();
            // The event as sent, without its signature blocks, to name it in an alert.
            let mut cause = draft.clone();
            if let Some(map) = cause.body.data.as_object_mut() {
                for key in SIGNATURE_KEYS {
                    map.remove(*key);
                }
            }
            let data = &mut draft.body.data;
            let needed = signatures_of(&event_type, data);
            // Verify every signature given first, then record the manifestations: the
            // digest covers the record without any signature.
            let mut verified: Vec<(&str, String)> = Vec::new();
            for (key, field) in &needed {
                let Some(given) = data.get(*key).cloned() else {
                    continue; // the payload's rules name a missing signature
                };
                let signer = match self
                    .reauthenticate(&prefix, key, field, &given, data, &event_type)
                    .await
                {
                    Ok(signer) => signer,
                    Err(AppError::Invalid(e)) if e.field.ends_with(".secret") => {
                        self.record_failed_signature(&cause, &given).await;
                        return Err(AppError::Invalid(e));
                    }
                    Err(other) => return Err(other),
                };
                verified.push((key, signer));
            }
            if verified.is_empty() {
                continue;
            }
            if let Some(map) = data.as_object_mut() {
                for key in SIGNATURE_KEYS {
                    map.remove(*key);
                }
            }
            let digest = record_digest(&stream, &event_type, data);
            let now = self.now();
            let site = text(data, "site_id");
            let zone = text(
                &self.current_state(&StreamId::site(site)).await?,
                "time_zone",
            )
            .to_string();
            // The site's local time with its zone; UTC when the site has none.
            let signed_at = match check_zone("zone", &zone).or_else(|_| check_zone("zone", "UTC")) {
                Ok(tz) => local_time(now, &tz),
                Err(_) => now.to_string(),
            };
            for (key, signer) in verified {
                let person = self.current_state(&StreamId::person(&signer)).await?;
                let mut manifestation = Map::new();
                manifestation.insert("signer_id".into(), json!(signer));
                manifestation.insert("printed_name".into(), person["printed_name"].clone());
                manifestation.insert("signed_at".into(), json!(signed_at));
                manifestation.insert("meaning".into(), json!(meaning(&event_type, key, data)));
                manifestation.insert("stream".into(), json!(stream));
                manifestation.insert("record_digest".into(), json!(digest));
                data[key] = Value::Object(manifestation);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_secrets_that_are_common_repetitive_or_personal_are_refused() {
        for refused in [
            "short",
            "            ",
            "aaaaaaaaaaaa",
            "abababababab",
            "abcabcabcabc",
            "123456789012",
            "210987654321",
            "abcdefghijklmnop",
            "qwertyuiopasdf",
            "Password2026!",
            "P@ssw0rd12345",
            "passwordpassword",
            "1234567890!!",
            "welcome-1234567",
            "P-0001-my-secret",
        ] {
            assert!(
                check_new_secret("P-0001", refused).is_err(),
                "{refused:?} was accepted"
            );
        }
        for accepted in [
            "correct horse battery staple",
            "sim-0123456789abcdef-01234567",
            "Vexillology Lane 17, flat B",
            "password manager keeps this",
        ] {
            assert_eq!(check_new_secret("P-0001", accepted), Ok(()), "{accepted:?}");
        }
    }

    #[test]
    fn the_stand_in_hash_is_a_real_argon2id_hash() {
        let hash = PasswordHash::new(DUMMY_PHC).expect("parses");
        assert!(Argon2::default()
            .verify_password(b"anything", &hash)
            .is_err());
    }
}

/// Argon2id computations and the seconds they ran.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PasswordWork {
    pub computations: u64,
    pub seconds: f64,
}

/// The running count behind [`Autolog::password_work`].
#[derive(Debug, Default)]
pub(crate) struct PasswordWorkDone {
    computations: std::sync::atomic::AtomicU64,
    nanos: std::sync::atomic::AtomicU64,
}

impl PasswordWorkDone {
    fn add(&self, took: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.computations.fetch_add(1, Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(nanos, Relaxed);
    }

    fn get(&self) -> PasswordWork {
        use std::sync::atomic::Ordering::Relaxed;
        PasswordWork {
            computations: self.computations.load(Relaxed),
            seconds: self.nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}
