//! Electronic signatures at the moment of signing: the signer re-authenticates with two
//! components (person id and signing secret, Argon2id), and Autolog records the manifestation.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use autolog_domain::signature::{record_digest, signer_field};
use autolog_domain::zone::{check_zone, local_time};
use autolog_domain::{FieldError, Instant};
use serde_json::{json, Map, Value};

use crate::read::text;
use crate::{AppError, Autolog};

/// The shortest signing secret accepted.
pub const MIN_SECRET_CHARS: usize = 12;

/// What a signed record means, stated by Autolog from the record (a signer cannot say
/// one thing and sign another).
fn meaning(event_type: &str, data: &Value) -> String {
    match event_type {
        "chain.released" => format!(
            "approved for release of batch {} to patient {}",
            text(data, "batch_id"),
            text(data, "intended_patient_key")
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

impl Autolog {
    /// Sets a registered person's signing secret (stored as an Argon2id hash, beside the
    /// ledger). Until the access-control issue lands, whoever runs this is trusted.
    pub async fn set_signing_secret(
        &self,
        person_id: &str,
        secret: &str,
        set_by: &str,
    ) -> Result<(), AppError> {
        let person = self.current_state(&format!("person/{person_id}")).await?;
        if text(&person, "person_id").is_empty() {
            return Err(AppError::Invalid(FieldError::new(
                "person_id",
                person_id,
                "is not a registered person",
            )));
        }
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(AppError::Invalid(FieldError::new(
                "secret",
                "(not shown)",
                format!("must be at least {MIN_SECRET_CHARS} characters"),
            )));
        }
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|e| AppError::Config(format!("no randomness for a salt: {e}")))?;
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| AppError::Config(format!("salt: {e}")))?;
        let phc = Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map_err(|e| AppError::Config(format!("Argon2id: {e}")))?
            .to_string();
        self.store
            .set_signing_secret(person_id, &phc, Instant::now(), set_by)
            .await?;
        tracing::info!(person_id = %person_id, "signing secret set");
        Ok(())
    }

    /// Turns each signed event's `signature: {signer_id, secret}` into the manifestation
    /// the ledger keeps, after re-authenticating the signer. Returns the request body to
    /// append (unchanged when nothing is signed). The secret never goes further.
    pub(crate) async fn sign_request(&self, body: &[u8]) -> Result<Option<Vec<u8>>, AppError> {
        // Cheap test first: most requests sign nothing.
        if !body.windows(11).any(|w| w == b"\"signature\"") {
            return Ok(None);
        }
        let Ok(mut request) = serde_json::from_slice::<Value>(body) else {
            return Ok(None); // the parser names what is wrong with it
        };
        let single = request.is_object();
        let events: Vec<&mut Value> = match &mut request {
            Value::Array(list) => list.iter_mut().collect(),
            v @ Value::Object(_) => vec![v],
            _ => return Ok(None),
        };
        for (i, event) in events.into_iter().enumerate() {
            let prefix = if single {
                String::new()
            } else {
                format!("[{i}].")
            };
            let event_type = event
                .pointer("/body/type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let stream = text(event, "stream").to_string();
            let Some(data) = event.pointer_mut("/body/data") else {
                continue;
            };
            let Some(given) = data.get("signature").cloned() else {
                continue;
            };
            let Some(field) = signer_field(&event_type) else {
                continue; // the payload's rules refuse a stray signature
            };
            let refuse = |name: &str, value: &str, rule: String| {
                AppError::Invalid(FieldError::new(
                    format!("{prefix}body.data.signature{name}"),
                    value,
                    rule,
                ))
            };
            let Value::Object(given) = given else {
                return Err(refuse(
                    "",
                    &autolog_domain::error::show(&given),
                    "must be {\"signer_id\", \"secret\"}: the signer re-authenticates to sign"
                        .into(),
                ));
            };
            for key in given.keys() {
                if key != "signer_id" && key != "secret" {
                    return Err(refuse(
                        &format!(".{key}"),
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
            let named = text(data, field).to_string();
            if signer != named {
                return Err(refuse(
                    ".signer_id",
                    signer,
                    format!("must be the person the record names as {field} ({named})"),
                ));
            }
            let phc = self.store.signing_secret(signer).await?;
            let verified = phc.as_deref().is_some_and(|phc| {
                PasswordHash::new(phc).is_ok_and(|hash| {
                    Argon2::default()
                        .verify_password(secret.as_bytes(), &hash)
                        .is_ok()
                })
            });
            if !verified {
                tracing::warn!(person_id = %signer, event_type = %event_type, "signature re-authentication failed");
                return Err(refuse(
                    ".secret",
                    "(not shown)",
                    format!("re-authentication failed for {signer}: the signature is not given"),
                ));
            }
            let person = self.current_state(&format!("person/{signer}")).await?;
            let now = Instant::now();
            let site = text(data, "site_id");
            let zone = text(
                &self.current_state(&format!("site/{site}")).await?,
                "time_zone",
            )
            .to_string();
            // The site's local time with its zone; UTC when the site has none.
            let signed_at = match check_zone("zone", &zone).or_else(|_| check_zone("zone", "UTC")) {
                Ok(tz) => local_time(now, &tz),
                Err(_) => now.to_string(),
            };
            if let Some(map) = data.as_object_mut() {
                map.remove("signature");
            }
            let digest = record_digest(&stream, &event_type, data);
            let mut manifestation = Map::new();
            manifestation.insert("signer_id".into(), json!(signer));
            manifestation.insert("printed_name".into(), person["printed_name"].clone());
            manifestation.insert("signed_at".into(), json!(signed_at));
            manifestation.insert("meaning".into(), json!(meaning(&event_type, data)));
            manifestation.insert("stream".into(), json!(stream));
            manifestation.insert("record_digest".into(), json!(digest));
            data["signature"] = Value::Object(manifestation);
        }
        Ok(Some(request.to_string().into_bytes()))
    }
}
