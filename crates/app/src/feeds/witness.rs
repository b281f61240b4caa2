//! Checkpoints witnessed outside the database. As an origin: each checkpoint signed is
//! appended to a file in a directory the operator chooses and/or sent to a witness URL
//! with the consistency proof from the checkpoint the witness holds. As a witness: a
//! checkpoint of a ledger this instance witnesses is checked (its signature, and that it
//! extends the one held) before it is countersigned and kept in this instance's own ledger
//! (`witness/<origin key id>`); a fork is refused with a critical alert.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use autolog_domain::ledger::checkpoint::{checkpoint_from_json, key_id, Checkpoint};
use autolog_domain::ledger::merkle::Hash;
use autolog_domain::ledger::witness::{check_extension, countersign, Extension, WitnessRefusal};
use autolog_domain::{Body, EventDraft, FieldError, OccurredAt, Source, StreamId, VerifyingKey};
use serde::Serialize;
use serde_json::{json, Value};

use crate::feeds::alerts::{alert_draft, AlertSpec};
use crate::reference::time_discipline::AUTOLOG_ACTOR;
use crate::{AppError, Autolog};

/// Where this instance's checkpoints go, and whose it witnesses.
#[derive(Debug, Clone, Default)]
pub struct WitnessSettings {
    /// Each checkpoint signed is appended, one JSON line, to `<dir>/checkpoints.jsonl`.
    pub dir: Option<PathBuf>,
    /// Each checkpoint signed is sent to the Autolog (or compatible) witness at this base URL.
    pub url: Option<String>,
    /// The public keys of the ledgers this instance witnesses.
    pub origins: Vec<VerifyingKey>,
}

/// The file in a witness directory.
pub const WITNESS_FILE: &str = "checkpoints.jsonl";

/// A checkpoint a witness keeps, countersigned.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Witnessed {
    pub origin_key_id: String,
    pub witness_key_id: String,
    /// The checkpoint as the origin signed it (`GET /api/v1/checkpoints/latest`'s form).
    pub checkpoint: Value,
    /// Hex of the witness's Ed25519 signature over `autolog-witness/v1`, the origin's
    /// key id and the checkpoint's digest, each line ending in `\n`.
    pub countersignature: String,
}

impl Autolog {
    /// Sets where checkpoints go and which ledgers this instance witnesses.
    pub fn set_witnessing(&self, settings: WitnessSettings) {
        if let Ok(mut held) = self.witnessing.write() {
            *held = settings;
        }
    }

    fn witnessing(&self) -> WitnessSettings {
        self.witnessing
            .read()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    /// Sends a checkpoint just signed to the directory and the witness configured. A
    /// failure is logged; the checkpoint stays in the ledger either way.
    pub(crate) async fn publish_checkpoint(&self, checkpoint: &Checkpoint) {
        let settings = self.witnessing();
        if let Some(dir) = &settings.dir {
            if let Err(e) = append_line(dir, &checkpoint.to_json()) {
                tracing::error!(dir = %dir.display(), "a checkpoint could not be written to the witness directory: {e}");
            }
        }
        if let Some(url) = &settings.url {
            if let Err(e) = self.send_to_witness(url, checkpoint).await {
                tracing::error!(witness = %url, tree_size = checkpoint.tree_size, "the witness did not countersign: {e}");
            }
        }
    }

    async fn send_to_witness(&self, url: &str, checkpoint: &Checkpoint) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let (public_key, my_id) = self.public_key();
        let base = url.trim_end_matches('/');
        let held = client
            .get(format!(
                "{base}/api/v1/witness/checkpoints/latest?origin_key_id={my_id}"
            ))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let from = if held.status().is_success() {
            let held: Value = held.json().await.map_err(|e| e.to_string())?;
            held["checkpoint"]["tree_size"].as_u64()
        } else {
            None
        };
        let proof = match from {
            Some(m) if m < checkpoint.tree_size => self
                .consistency_proof(m, checkpoint.tree_size)
                .await
                .map_err(|e| e.to_string())?
                .proof
                .iter()
                .map(hex::encode)
                .collect(),
            _ => Vec::new(),
        };
        let body = json!({"public_key": public_key, "checkpoint": checkpoint.to_json(),
                          "consistency": {"from": from, "proof": proof}});
        let answer = client
            .post(format!("{base}/api/v1/witness/checkpoints"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if answer.status().is_success() {
            return Ok(());
        }
        Err(format!(
            "{}: {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        ))
    }

    /// As a witness: checks a checkpoint of a ledger this instance witnesses and keeps it
    /// countersigned. `from` and `proof`: the consistency proof from the tree size held.
    pub async fn witness_checkpoint(
        &self,
        public_key: &str,
        checkpoint: &Value,
        from: Option<u64>,
        proof: &[String],
    ) -> Result<Witnessed, AppError> {
        let origin = self.witnessed_origin(public_key)?;
        let given = checkpoint_from_json(checkpoint)
            .map_err(|e| AppError::Invalid(FieldError::new("checkpoint", "(as sent)", e)))?;
        given.verify_signature(&origin).map_err(|e| {
            AppError::Invalid(FieldError::new(
                "checkpoint.signature",
                "(as sent)",
                e.to_string(),
            ))
        })?;
        let proof = hashes(proof)?;
        let origin_id = key_id(&origin);
        let held = self.held_checkpoint(&origin_id).await?;
        match check_extension(held.as_ref().map(|(c, _)| c), &given, from, &proof) {
            Ok(Extension::Same) => Ok(held
                .map(|(_, w)| w)
                .unwrap_or_else(|| self.countersigned(&origin_id, &given))),
            Ok(_) => self.keep_witnessed(&origin_id, &given).await,
            Err(refusal) => Err(self
                .refuse_checkpoint(&origin_id, &given, held.as_ref().map(|(c, _)| c), refusal)
                .await),
        }
    }

    /// The last checkpoint this instance countersigned for a ledger.
    pub async fn witnessed_latest(&self, origin_key_id: &str) -> Result<Witnessed, AppError> {
        self.held_checkpoint(origin_key_id)
            .await?
            .map(|(_, w)| w)
            .ok_or(AppError::NotFound {
                what: "witnessed checkpoint of ledger",
                id: origin_key_id.to_string(),
            })
    }

    fn witnessed_origin(&self, public_key: &str) -> Result<VerifyingKey, AppError> {
        let origins = self.witnessing().origins;
        origins
            .into_iter()
            .find(|k| hex::encode(k.as_bytes()) == public_key.trim())
            .ok_or_else(|| {
                AppError::Forbidden(FieldError::new(
                    "public_key",
                    public_key,
                    "is not the key of a ledger this instance witnesses (serve --witness-for)",
                ))
            })
    }

    async fn held_checkpoint(
        &self,
        origin_id: &str,
    ) -> Result<Option<(Checkpoint, Witnessed)>, AppError> {
        let events = self
            .store
            .stream_events(
                StreamId::witness(origin_id).as_ref(),
                autolog_domain::Instant::MAX,
            )
            .await?;
        let Some(last) = events.last() else {
            return Ok(None);
        };
        let witnessed: Witnessed = serde_json::from_value(last.body.data.clone()).map_err(|e| {
            AppError::Integrity(format!("a witnessed checkpoint is not as recorded: {e}"))
        })?;
        let checkpoint =
            checkpoint_from_json(&witnessed.checkpoint).map_err(AppError::Integrity)?;
        Ok(Some((checkpoint, witnessed)))
    }

    fn countersigned(&self, origin_id: &str, checkpoint: &Checkpoint) -> Witnessed {
        Witnessed {
            origin_key_id: origin_id.to_string(),
            witness_key_id: self.public_key().1,
            checkpoint: checkpoint.to_json(),
            countersignature: hex::encode(countersign(&self.key, origin_id, checkpoint)),
        }
    }

    async fn keep_witnessed(
        &self,
        origin_id: &str,
        checkpoint: &Checkpoint,
    ) -> Result<Witnessed, AppError> {
        let witnessed = self.countersigned(origin_id, checkpoint);
        let data =
            serde_json::to_value(&witnessed).map_err(|e| AppError::Integrity(e.to_string()))?;
        self.record_audit_event(
            StreamId::witness(origin_id).as_ref(),
            "checkpoint.witnessed",
            data,
            AUTOLOG_ACTOR,
        )
        .await?;
        Ok(witnessed)
    }

    /// A refusal, with a critical alert when it shows a fork.
    async fn refuse_checkpoint(
        &self,
        origin_id: &str,
        given: &Checkpoint,
        held: Option<&Checkpoint>,
        refusal: WitnessRefusal,
    ) -> AppError {
        if let Some(cause) = refusal
            .is_fork()
            .then(|| self.refused_witness_draft(origin_id, given))
            .flatten()
        {
            self.record_alert(alert_draft(
                &cause,
                0,
                AlertSpec {
                    severity: "critical",
                    rule: "witness.fork",
                    message: format!("The ledger with key {origin_id} signed a checkpoint that does not extend the one this witness holds: {refusal}"),
                    coi: None,
                    site_id: None,
                    evidence: json!({"origin_key_id": origin_id, "given": given.to_json(),
                                     "held": held.map(Checkpoint::to_json)}),
                },
            ))
            .await;
        }
        AppError::Conflict(FieldError::new(
            "checkpoint",
            given.tree_size.to_string(),
            refusal.to_string(),
        ))
    }

    /// What the refused checkpoint would have been recorded as: the alert's cause.
    fn refused_witness_draft(&self, origin_id: &str, given: &Checkpoint) -> Option<EventDraft> {
        let now = self.now();
        Some(EventDraft {
            event_id: self.new_event_id(),
            stream: StreamId::witness(origin_id).to_string(),
            occurred_at: OccurredAt::from_parts(now.micros(), "UTC", 0).ok()?,
            actor: AUTOLOG_ACTOR.to_string(),
            site: None,
            source: Source {
                system: autolog_domain::rules::AUTOLOG_SOURCE_SYSTEM.to_string(),
                source_event_id: format!(
                    "witness/{origin_id}/{}/{}",
                    given.tree_size,
                    hex::encode(given.root)
                ),
            },
            reason: None,
            corrects: None,
            body: Body::new("checkpoint.witnessed", 1, given.to_json()),
        })
    }
}

fn append_line(dir: &std::path::Path, value: &Value) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(WITNESS_FILE))?;
    file.write_all(format!("{value}\n").as_bytes())?;
    file.sync_data()
}

fn hashes(list: &[String]) -> Result<Vec<Hash>, AppError> {
    list.iter()
        .enumerate()
        .map(|(i, h)| {
            hex::decode(h)
                .ok()
                .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
                .ok_or_else(|| {
                    AppError::Invalid(FieldError::new(
                        format!("consistency.proof[{i}]"),
                        h,
                        "must be 32 bytes of hex",
                    ))
                })
        })
        .collect()
}
