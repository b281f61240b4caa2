//! The personal-data vault: a patient's identifying data, outside the ledger, encrypted under
//! a per-patient data key wrapped by a master key that never enters the database.

// Cryptography: XChaCha20-Poly1305 (random 24-byte nonces) for both layers.
// - `ciphertext` = `01 || nonce || AEAD(data key, JSON object,
//   aad = "autolog-vault-data-v1\0" || patient_key)`;
// - `wrapped_key` = `01 || nonce || AEAD(master key, data key,
//   aad = "autolog-vault-key-v1\0" || master_key_id || "\0" || patient_key)`.
// Binding the patient key (and the master key id) as associated data means a record copied
// onto another patient's row, or relabelled with another key id, no longer opens. Erasure
// destroys the wrapped data key and the ciphertext (crypto-shredding); the ledger only ever
// holds who recorded, read or erased which fields of which patient, and why.

use std::collections::BTreeMap;
use std::fmt;

use autolog_domain::identifiers::Coi;
use autolog_domain::ledger::bitemporal::effective_events;
use autolog_domain::StreamId;
use autolog_domain::{EventDraft, FieldError, Instant};
use autolog_store::{StoreError, VaultRecord};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::ledger::read::text;
use crate::{AppError, Autolog};

/// The identifying fields the vault holds: (name, at most this many characters, a name?).
/// Names are compared case- and whitespace-insensitively at the bedside, the rest exactly.
pub const PERSONAL_DATA_FIELDS: &[(&str, usize, bool)] = &[
    ("name", 200, true),
    ("given_name", 200, true),
    ("family_name", 200, true),
    ("date_of_birth", 10, false),
    ("mrn", 64, false),
    ("contact", 500, false),
];

/// The purpose recorded for a bedside identity check.
pub const BEDSIDE_PURPOSE: &str = "PATSFTY";

/// The stream of the vault's own events (master key rotations).
pub const VAULT_STREAM: &str = "vault/master-key";

/// The format version byte that starts every ciphertext and wrapped key.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const DATA_AAD: &[u8] = b"autolog-vault-data-v1\0";
const WRAP_AAD: &[u8] = b"autolog-vault-key-v1\0";
/// How many times a rotation lists the records (the later times to catch records another
/// instance wrote under the old key during it).
const ROTATION_PASSES: usize = 3;

/// A 32-byte vault master key. Its id (first 16 hex characters of the SHA-256 of the key)
/// is what the database and the ledger name; the key itself is never stored by Autolog,
/// never printed (`Debug` shows the id) and is wiped from memory when dropped.
#[derive(Clone)]
pub struct VaultKey {
    bytes: Zeroizing<[u8; 32]>,
    id: String,
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKey").field("id", &self.id).finish()
    }
}

impl VaultKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let id = hex::encode(&digest[..8]);
        VaultKey {
            bytes: Zeroizing::new(bytes),
            id,
        }
    }

    /// A new random key.
    pub fn generate() -> Result<Self, AppError> {
        Ok(VaultKey::from_bytes(random::<32>()?))
    }

    /// Parses 64 hex characters (surrounding whitespace ignored). The error never repeats
    /// the text.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let text = Zeroizing::new(text.trim().to_string());
        let bytes = Zeroizing::new(
            hex::decode(text.as_bytes())
                .map_err(|_| "is not 64 hex characters (a 32-byte key)".to_string())?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("holds {} bytes; a vault master key has 32", bytes.len()))?;
        Ok(VaultKey::from_bytes(key))
    }

    /// Parses a key file's contents: exactly 32 raw bytes, or 64 hex characters (a trailing
    /// newline allowed).
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, String> {
        if let Ok(raw) = <[u8; 32]>::try_from(contents) {
            if !raw.iter().all(u8::is_ascii_hexdigit) {
                return Ok(VaultKey::from_bytes(raw));
            }
        }
        let text = std::str::from_utf8(contents)
            .map_err(|_| "holds neither 32 raw bytes nor 64 hex characters".to_string())?;
        VaultKey::from_hex(text)
    }

    /// The key id: the first 16 hex characters of the SHA-256 of the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as 64 hex characters (to write it to a key file).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.bytes.as_slice()))
    }

    pub(crate) fn cipher(&self) -> Result<XChaCha20Poly1305, AppError> {
        XChaCha20Poly1305::new_from_slice(self.bytes.as_slice())
            .map_err(|_| AppError::Config("the vault master key is not 32 bytes".into()))
    }
}

/// The vault's state in a running instance: the master key (none until configured), and the
/// lock that keeps this process's writes out of a rotation.
#[derive(Default)]
pub(crate) struct Vault {
    key: std::sync::RwLock<Option<VaultKey>>,
    writes: tokio::sync::Mutex<()>,
}

fn random<const N: usize>() -> Result<[u8; N], AppError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::Config(format!("no randomness for the vault: {e}")))?;
    Ok(bytes)
}

/// `01 || nonce || AEAD(key, msg, aad)`.
pub(crate) fn seal(
    cipher: &XChaCha20Poly1305,
    msg: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, AppError> {
    let nonce = random::<NONCE_LEN>()?;
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg, aad })
        .map_err(|_| AppError::Integrity("vault encryption failed".into()))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] wrote; `None` when the bytes are not that (wrong key, wrong
/// associated data, altered bytes, unknown format).
pub(crate) fn open(
    cipher: &XChaCha20Poly1305,
    sealed: &[u8],
    aad: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let (&version, rest) = sealed.split_first()?;
    if version != FORMAT_V1 || rest.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = rest.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
        .map(Zeroizing::new)
}

fn wrap_aad(master_key_id: &str, patient_key: &str) -> Vec<u8> {
    [
        WRAP_AAD,
        master_key_id.as_bytes(),
        b"\0",
        patient_key.as_bytes(),
    ]
    .concat()
}

fn data_aad(patient_key: &str) -> Vec<u8> {
    [DATA_AAD, patient_key.as_bytes()].concat()
}

/// Wraps a data key under the master key, bound to the patient and the key id.
fn wrap_key(
    master: &VaultKey,
    patient_key: &str,
    data_key: &[u8; 32],
) -> Result<Vec<u8>, AppError> {
    seal(
        &master.cipher()?,
        data_key,
        &wrap_aad(master.id(), patient_key),
    )
}

/// Unwraps a record's data key with the master key (whose id the record must name).
fn unwrap_key(master: &VaultKey, record: &VaultRecord) -> Result<Zeroizing<[u8; 32]>, AppError> {
    let opened = open(
        &master.cipher()?,
        &record.wrapped_key,
        &wrap_aad(&record.master_key_id, &record.patient_key),
    )
    .ok_or_else(|| {
        AppError::Integrity(format!(
            "the vault record of patient {} cannot be unwrapped with master key {}: it was \
             altered, or moved from another patient",
            record.patient_key,
            master.id()
        ))
    })?;
    let key: [u8; 32] = opened.as_slice().try_into().map_err(|_| {
        AppError::Integrity(format!(
            "the vault record of patient {} holds a data key of {} bytes",
            record.patient_key,
            opened.len()
        ))
    })?;
    Ok(Zeroizing::new(key))
}

/// Refuses a patient key that is not a code (the ledger's rule for `patient_key`).
fn check_patient_key(patient_key: &str) -> Result<(), AppError> {
    let ok = !patient_key.is_empty()
        && patient_key.len() <= 64
        && patient_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AppError::Invalid(FieldError::new(
            "patient_key",
            patient_key,
            "must be a pseudonymous code of 1-64 letters, digits or . _ : -",
        )))
    }
}

/// The payload of a `personal_data.read`: who read which fields of whose record, why.
fn read_event(
    patient_key: &str,
    actor: &str,
    purpose: &str,
    reason: Option<&str>,
    fields: &[&String],
) -> Value {
    let mut data =
        json!({"patient_key": patient_key, "by": actor, "purpose": purpose, "fields": fields});
    if let Some(reason) = reason {
        data["reason"] = json!(reason);
    }
    data
}

/// A free text recorded in the ledger (purpose, reason): required, not blank, bounded.
fn check_purpose(field: &str, value: Option<&str>) -> Result<String, AppError> {
    let Some(value) = value else {
        return Err(AppError::Invalid(FieldError::new(
            field,
            "(absent)",
            "is required: say why (it is recorded in the ledger; never put patient identifiers in it)",
        )));
    };
    if value.trim().is_empty() {
        return Err(AppError::Invalid(FieldError::new(
            field,
            value,
            "must not be blank: say why (it is recorded in the ledger)",
        )));
    }
    if value.chars().count() > 500 {
        return Err(AppError::Invalid(FieldError::new(
            field,
            "(withheld)",
            "must be at most 500 characters",
        )));
    }
    Ok(value.trim().to_string())
}

/// Checks identifying data: a non-empty object of known fields, each a non-blank string of
/// bounded length (`date_of_birth` a calendar date, YYYY-MM-DD). Refusals name the field
/// and never repeat its value.
fn check_personal_data(data: &Value) -> Result<BTreeMap<String, String>, AppError> {
    const WITHHELD: &str = "(withheld)";
    let Some(object) = data.as_object() else {
        return Err(AppError::Invalid(FieldError::new(
            "data",
            WITHHELD,
            "must be a JSON object of identifying fields",
        )));
    };
    if object.is_empty() {
        return Err(AppError::Invalid(FieldError::new(
            "data",
            "{}",
            format!("must hold at least one of {}", field_names()),
        )));
    }
    let mut fields = BTreeMap::new();
    for (name, value) in object {
        let Some((_, max, _)) = PERSONAL_DATA_FIELDS.iter().find(|(f, _, _)| f == name) else {
            return Err(AppError::Invalid(FieldError::new(
                format!("data.{name}"),
                WITHHELD,
                format!(
                    "is not an identifying field the vault holds; fields are {}",
                    field_names()
                ),
            )));
        };
        let Some(text) = value.as_str() else {
            return Err(AppError::Invalid(FieldError::new(
                format!("data.{name}"),
                WITHHELD,
                "must be a string",
            )));
        };
        if text.trim().is_empty() {
            return Err(AppError::Invalid(FieldError::new(
                format!("data.{name}"),
                WITHHELD,
                "must not be blank",
            )));
        }
        if text.chars().count() > *max {
            return Err(AppError::Invalid(FieldError::new(
                format!("data.{name}"),
                WITHHELD,
                format!("must be at most {max} characters"),
            )));
        }
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(AppError::Invalid(FieldError::new(
                format!("data.{name}"),
                WITHHELD,
                "must not hold control characters",
            )));
        }
        if name == "date_of_birth" && !is_calendar_date(text) {
            return Err(AppError::Invalid(FieldError::new(
                format!("data.{name}"),
                WITHHELD,
                "must be a calendar date, YYYY-MM-DD",
            )));
        }
        fields.insert(name.clone(), text.to_string());
    }
    Ok(fields)
}

/// Checks identifying data (a personal-data body's `data`, a bedside check's presented
/// identifiers, an imported FHIR Patient's fields) as the vault does. Pure (public for the
/// fuzz targets).
#[doc(hidden)]
pub fn check_personal_data_fields(data: &Value) -> Result<(), AppError> {
    check_personal_data(data).map(|_| ())
}

fn is_calendar_date(text: &str) -> bool {
    text.len() == 10 && text.parse::<jiff::civil::Date>().is_ok()
}

fn field_names() -> String {
    PERSONAL_DATA_FIELDS
        .iter()
        .map(|(f, _, _)| *f)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A name as compared at the bedside: lower case, runs of whitespace as one space.
fn normalised_name(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether a presented value matches the recorded one (names loosely, the rest exactly).
fn field_matches(name: &str, presented: &str, recorded: &str) -> bool {
    let is_name = PERSONAL_DATA_FIELDS
        .iter()
        .any(|(f, _, n)| *f == name && *n);
    if is_name {
        normalised_name(presented) == normalised_name(recorded)
    } else {
        presented == recorded
    }
}

fn gone(patient_key: &str, erased_at: Instant) -> AppError {
    AppError::Gone(FieldError::new(
        "patient_key",
        patient_key,
        format!("its personal data was erased (crypto-shredded) at {erased_at}"),
    ))
}

fn not_recorded(patient_key: &str) -> AppError {
    AppError::NotFound {
        what: "personal data of patient",
        id: patient_key.to_string(),
    }
}

/// The store's refusal of a put for an erased patient, as the app says it.
fn erased_refusal(e: StoreError) -> AppError {
    match e {
        StoreError::Rejected(f) if f.code == "erased" => AppError::Gone(f),
        other => other.into(),
    }
}

impl Autolog {
    /// Sets the vault master key this instance encrypts and reads personal data with.
    pub fn with_vault_key(self, key: VaultKey) -> Self {
        self.set_vault_key(key);
        self
    }

    /// The id of the configured vault master key, if any.
    /// Refuses an instance whose keys are not the database's: checkpoints signed by
    /// another key (its own would break `verify` from then on), or personal data wrapped
    /// under another vault master key (it could read none of it, and would wrap new data
    /// under a key the other servers lack). Both ids are named. Servers sharing a database
    /// share the key file and the vault key.
    pub async fn check_keys_match_database(&self) -> Result<(), AppError> {
        let (_, own_signing) = self.public_key();
        if let Some(checkpoint) = self.store.latest_checkpoint().await? {
            if checkpoint.key_id != own_signing {
                return Err(AppError::Config(format!(
                    "the database's checkpoints are signed by key {}, but this instance's signing key is {own_signing}: servers sharing a database share the key file (checkpoint-signing-key.ed25519)",
                    checkpoint.key_id
                )));
            }
        }
        let Some(own_vault) = self.vault_key_id() else {
            return Ok(());
        };
        let records = self.store.vault_records().await?;
        let other = records
            .iter()
            .filter(|r| r.erased_at.is_none())
            .map(|r| r.master_key_id.as_str())
            .find(|id| *id != own_vault);
        if let Some(theirs) = other {
            return Err(AppError::Config(format!(
                "personal data in the database is wrapped under vault key {theirs}, but this instance's vault key is {own_vault}: servers sharing a database share the vault master key"
            )));
        }
        match self
            .secret_key_ids()
            .await?
            .into_iter()
            .find(|id| *id != own_vault)
        {
            Some(theirs) => Err(AppError::Config(format!(
                "secrets in the database (TOTP, webhooks) are sealed under vault key {theirs}, but this instance's vault key is {own_vault}: servers sharing a database share the vault master key"
            ))),
            None => Ok(()),
        }
    }

    pub fn vault_key_id(&self) -> Option<String> {
        self.vault
            .key
            .read()
            .ok()
            .and_then(|k| k.as_ref().map(|k| k.id().to_string()))
    }

    fn set_vault_key(&self, key: VaultKey) {
        match self.vault.key.write() {
            Ok(mut slot) => *slot = Some(key),
            Err(poisoned) => *poisoned.into_inner() = Some(key),
        }
    }

    /// The configured master key, or a configuration error saying how to give one.
    pub(crate) fn vault_key(&self) -> Result<VaultKey, AppError> {
        let slot = match self.vault.key.read() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        slot.clone().ok_or_else(|| {
            AppError::Config(
                "no vault master key is configured: give --vault-key-file FILE (env \
                 AUTOLOG_VAULT_KEY_FILE; 32 raw bytes or 64 hex characters) or \
                 AUTOLOG_VAULT_KEY (64 hex characters)"
                    .into(),
            )
        })
    }

    /// A record's data key, if the record is wrapped under `master` (a record under another
    /// key is a configuration error naming both key ids, never the keys).
    fn data_key_of(
        &self,
        master: &VaultKey,
        record: &VaultRecord,
    ) -> Result<Zeroizing<[u8; 32]>, AppError> {
        if record.master_key_id != master.id() {
            return Err(AppError::Config(format!(
                "the vault record of patient {} is wrapped under master key {}, but this \
                 instance's vault master key is {}: configure key {} (or finish its rotation)",
                record.patient_key,
                record.master_key_id,
                master.id(),
                record.master_key_id
            )));
        }
        unwrap_key(master, record)
    }

    /// The patient's record, readable: unknown is not found, erased is gone.
    async fn live_vault_record(&self, patient_key: &str) -> Result<VaultRecord, AppError> {
        let record = self
            .store
            .vault_record(patient_key)
            .await?
            .ok_or_else(|| not_recorded(patient_key))?;
        if let Some(at) = record.erased_at {
            return Err(gone(patient_key, at));
        }
        Ok(record)
    }

    /// Decrypts a record with the configured master key.
    fn decrypt(&self, record: &VaultRecord) -> Result<BTreeMap<String, String>, AppError> {
        let master = self.vault_key()?;
        let data_key = self.data_key_of(&master, record)?;
        let cipher = XChaCha20Poly1305::new_from_slice(data_key.as_slice())
            .map_err(|_| AppError::Integrity("a vault data key is not 32 bytes".into()))?;
        let plain =
            open(&cipher, &record.ciphertext, &data_aad(&record.patient_key)).ok_or_else(|| {
                AppError::Integrity(format!(
                    "the personal data of patient {} cannot be decrypted: it was altered, or \
                 moved from another patient",
                    record.patient_key
                ))
            })?;
        serde_json::from_slice(&plain).map_err(|_| {
            AppError::Integrity(format!(
                "the personal data of patient {} is not the JSON object Autolog wrote",
                record.patient_key
            ))
        })
    }

    /// Records (or replaces) a patient's identifying data: `data` is an object of known
    /// fields ([`PERSONAL_DATA_FIELDS`]), each a non-blank string; unknown fields are refused
    /// by name. The data is encrypted under the patient's data key (kept when the patient
    /// already has one), and `personal_data.recorded` (field names only, never values) is
    /// appended to `patient/<patient_key>`. An erased patient is gone for good.
    pub async fn record_personal_data(
        &self,
        patient_key: &str,
        data: &Value,
        actor: &str,
    ) -> Result<PersonalDataRecorded, AppError> {
        self.record_personal_data_via(None, patient_key, data, actor)
            .await
    }

    /// As `record_personal_data`, through chain `coi` (recorded with it): later reads and
    /// replacements are allowed only to senders in the scope of a chain it was recorded
    /// through.
    pub async fn record_personal_data_via(
        &self,
        coi: Option<&str>,
        patient_key: &str,
        data: &Value,
        actor: &str,
    ) -> Result<PersonalDataRecorded, AppError> {
        check_patient_key(patient_key)?;
        autolog_domain::ledger::envelope::check_actor("actor", actor)?;
        let fields = check_personal_data(data)?;
        let master = self.vault_key()?;
        let _writing = self.vault.writes.lock().await;
        let existing = self.store.vault_record(patient_key).await?;
        let data_key = match &existing {
            Some(record) => match record.erased_at {
                Some(at) => return Err(gone(patient_key, at)),
                // The same data key: a rotation that listed the record before this write
                // rewraps a key that still opens the new ciphertext.
                None => self.data_key_of(&master, record)?,
            },
            None => Zeroizing::new(random::<32>()?),
        };
        let plain = Zeroizing::new(
            serde_json::to_vec(&fields)
                .map_err(|e| AppError::Integrity(format!("personal data as JSON: {e}")))?,
        );
        let cipher = XChaCha20Poly1305::new_from_slice(data_key.as_slice())
            .map_err(|_| AppError::Integrity("a vault data key is not 32 bytes".into()))?;
        let now = self.now();
        let record = VaultRecord {
            patient_key: patient_key.to_string(),
            master_key_id: master.id().to_string(),
            wrapped_key: wrap_key(&master, patient_key, &data_key)?,
            ciphertext: seal(&cipher, &plain, &data_aad(patient_key))?,
            updated_at: now,
            erased_at: None,
        };
        self.store
            .put_vault_record(&record)
            .await
            .map_err(erased_refusal)?;
        let names: Vec<&String> = fields.keys().collect();
        self.record_audit_event(
            &StreamId::patient(patient_key),
            "personal_data.recorded",
            {
                let mut audit = json!({"patient_key": patient_key, "by": actor, "fields": names});
                if let Some(coi) = coi {
                    audit["coi"] = json!(coi);
                }
                audit
            },
            actor,
        )
        .await?;
        tracing::info!(patient_key = %patient_key, fields = names.len(), "personal data recorded");
        Ok(PersonalDataRecorded {
            patient_key: patient_key.to_string(),
            fields: names.into_iter().cloned().collect(),
            master_key_id: master.id().to_string(),
            updated_at: now.to_string(),
            replaced: existing.is_some(),
        })
    }

    /// Reads a patient's identifying data. The purpose is required; the read (who, which
    /// patient, why, which fields) is recorded as `personal_data.read` before the data is
    /// returned. The purpose is hashed into the ledger for good: it must never hold patient
    /// identifiers.
    pub async fn read_personal_data(
        &self,
        patient_key: &str,
        actor: &str,
        purpose: Option<&str>,
    ) -> Result<PersonalData, AppError> {
        self.read_personal_data_for(patient_key, actor, purpose, None)
            .await
    }

    /// [`Autolog::read_personal_data`] with an optional coded reason besides the purpose:
    /// an HL7 v3 ActConsentInformationAccessOverrideReason code (OVRER for an emergency,
    /// ...), recorded with the read. Free text is never taken.
    pub async fn read_personal_data_for(
        &self,
        patient_key: &str,
        actor: &str,
        purpose: Option<&str>,
        reason: Option<&str>,
    ) -> Result<PersonalData, AppError> {
        check_patient_key(patient_key)?;
        if let Some(code) = reason {
            autolog_domain::access::check_access_override_reason("reason", code)?;
        }
        autolog_domain::ledger::envelope::check_actor("actor", actor)?;
        let purpose = match purpose {
            Some(code) => {
                autolog_domain::access::check_purpose_of_use("purpose", code)?;
                code.to_string()
            }
            None => {
                return Err(AppError::Invalid(FieldError::new(
                    "purpose",
                    "(absent)",
                    "is required: an HL7 v3 PurposeOfUse code such as TREAT (it is recorded in the ledger)",
                )))
            }
        };
        let record = self.live_vault_record(patient_key).await?;
        let fields = self.decrypt(&record)?;
        let names: Vec<&String> = fields.keys().collect();
        self.record_audit_event(
            &StreamId::patient(patient_key),
            "personal_data.read",
            read_event(patient_key, actor, &purpose, reason, &names),
            actor,
        )
        .await?;
        tracing::info!(patient_key = %patient_key, "personal data read");
        Ok(PersonalData {
            patient_key: patient_key.to_string(),
            data: fields,
            updated_at: record.updated_at.to_string(),
            purpose,
            reason: reason.map(str::to_string),
        })
    }

    /// The bedside check: compares the identifiers presented (same field names as recorded)
    /// with the vault's, names case- and whitespace-insensitively, the rest exactly, and
    /// returns the names of the fields that do not match (empty: every presented field
    /// matches; a field the vault lacks does not match). Recorded as a `personal_data.read`
    /// with the purpose "bedside identity check" before answering.
    pub async fn personal_data_matches(
        &self,
        patient_key: &str,
        presented: &Value,
        actor: &str,
    ) -> Result<Vec<String>, AppError> {
        check_patient_key(patient_key)?;
        autolog_domain::ledger::envelope::check_actor("actor", actor)?;
        let presented = check_personal_data(presented)?;
        let record = self.live_vault_record(patient_key).await?;
        let recorded = self.decrypt(&record)?;
        let mismatches: Vec<String> = presented
            .iter()
            .filter(|(name, value)| {
                recorded
                    .get(*name)
                    .is_none_or(|r| !field_matches(name, value, r))
            })
            .map(|(name, _)| name.clone())
            .collect();
        let names: Vec<&String> = presented.keys().collect();
        self.record_audit_event(
            &StreamId::patient(patient_key),
            "personal_data.read",
            json!({"patient_key": patient_key, "by": actor, "purpose": BEDSIDE_PURPOSE, "fields": names}),
            actor,
        )
        .await?;
        tracing::info!(
            patient_key = %patient_key,
            mismatches = mismatches.len(),
            "bedside identity check against the vault"
        );
        Ok(mismatches)
    }

    /// The chains a patient's identifying data was recorded through (their COIs).
    pub async fn personal_data_chains(&self, patient_key: &str) -> Result<Vec<String>, AppError> {
        let events = self
            .store
            .stream_events(&StreamId::patient(patient_key), Instant::MAX)
            .await?;
        let mut cois: Vec<String> = events
            .iter()
            .filter(|e| e.body.event_type == "personal_data.recorded")
            .filter_map(|e| e.body.data.get("coi").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        cois.sort();
        cois.dedup();
        Ok(cois)
    }

    /// Crypto-shreds the personal data of the patient of chain `coi`, once retention allows
    /// it: every chain of that patient must be due for erasure (past its retention period,
    /// no legal hold); otherwise refused, naming the date until which the records are kept.
    /// The patient's data key and ciphertext are destroyed (`erase_vault_record`) and
    /// `personal_data.erased` is recorded with the reason. No ledger event changes: the
    /// chain stays, pseudonymous, and verifies. Erasing again finishes a scrub that failed.
    pub async fn erase_personal_data(
        &self,
        coi: &str,
        actor: &str,
        reason: &str,
    ) -> Result<PersonalDataErased, AppError> {
        autolog_domain::ledger::envelope::check_actor("actor", actor)?;
        let reason = check_purpose("reason", Some(reason))?;
        let coi = Coi::parse("coi", coi)?.to_string();
        let patient_key = self
            .patient_of_chain(&coi)
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "chain",
                id: coi.clone(),
            })?;
        // Every chain of this patient: the personal data serves them all.
        let mut chains = Vec::new();
        for stream in self.all_streams_with_prefix("coi/").await? {
            let other = stream.trim_start_matches("coi/");
            if other == coi || self.patient_of_chain(other).await?.as_deref() == Some(&patient_key)
            {
                chains.push(other.to_string());
            }
        }
        let unmet = self.retention_refusals(&chains).await?;
        if !unmet.is_empty() {
            return Err(AppError::Unmet(unmet));
        }
        let now = self.now();
        let _writing = self.vault.writes.lock().await;
        let existing = self
            .store
            .vault_record(&patient_key)
            .await?
            .ok_or_else(|| not_recorded(&patient_key))?;
        if !self.store.erase_vault_record(&patient_key, now).await? {
            return Err(not_recorded(&patient_key));
        }
        let stream = StreamId::patient(&patient_key);
        let already_recorded = self
            .store
            .stream_events(&stream, Instant::MAX)
            .await?
            .iter()
            .any(|e| e.body.event_type == "personal_data.erased");
        if !already_recorded {
            self.record_audit_event(
                &stream,
                "personal_data.erased",
                json!({"patient_key": patient_key, "by": actor, "purpose": reason}),
                actor,
            )
            .await?;
        }
        tracing::info!(patient_key = %patient_key, coi = %coi, "personal data erased (crypto-shredded)");
        Ok(PersonalDataErased {
            coi,
            patient_key,
            chains,
            erased_at: existing.erased_at.unwrap_or(now).to_string(),
            already_erased: existing.erased_at.is_some(),
            note: "the data key and ciphertext are destroyed; the ledger is unchanged and verifies",
        })
    }

    /// The patient key of a chain, from its `chain.enrolled` event (as known now).
    async fn patient_of_chain(&self, coi: &str) -> Result<Option<String>, AppError> {
        let known_at = self.settled_known_at(None, self.now()).await?;
        let events = self
            .store
            .stream_events(&StreamId::chain(coi), known_at)
            .await?;
        let effective = effective_events(&events, Instant::MAX, known_at);
        Ok(effective
            .iter()
            .find(|e| e.body.event_type == "chain.enrolled")
            .map(|e| text(&e.body.data, "patient_key").to_string())
            .filter(|k| !k.is_empty()))
    }

    /// Refuses free text on a chain (the envelope's `reason`, a note, a finding, a
    /// rationale...) that contains one of the identifying values the vault holds for the
    /// chain's patient: the ledger keeps text forever, beyond erasure. The refusal names the
    /// field, never the value. The comparison discloses nothing, so it records no read.
    pub(crate) async fn check_free_text(
        &self,
        drafts: &[EventDraft],
        single: bool,
    ) -> Result<(), AppError> {
        if self.vault_key_id().is_none() {
            return Ok(());
        }
        let mut values_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, draft) in drafts.iter().enumerate() {
            let Some(coi) = draft.stream.strip_prefix("coi/") else {
                continue;
            };
            let texts = free_texts(draft);
            if texts.is_empty() {
                continue;
            }
            if !values_of.contains_key(coi) {
                let values = self.identifying_values(coi).await?;
                values_of.insert(coi.to_string(), values);
            }
            let values = values_of.get(coi).map(Vec::as_slice).unwrap_or_default();
            for (field, text) in texts {
                let text = text.to_lowercase();
                if values.iter().any(|v| text.contains(v.as_str())) {
                    let prefix = if single {
                        String::new()
                    } else {
                        format!("[{i}].")
                    };
                    return Err(AppError::Invalid(FieldError::new(
                        format!("{prefix}{field}"),
                        "(withheld)",
                        "contains identifying data of the chain's patient: free text is kept in the ledger forever; refer to the patient by the chain's COI",
                    )));
                }
            }
        }
        Ok(())
    }

    /// The identifying values (lowercase, four characters or more) the vault holds for the
    /// patient of a chain; none when there is no record or it was erased.
    async fn identifying_values(&self, coi: &str) -> Result<Vec<String>, AppError> {
        let Some(patient_key) = self.patient_of_chain(coi).await? else {
            return Ok(Vec::new());
        };
        let Some(record) = self.store.vault_record(&patient_key).await? else {
            return Ok(Vec::new());
        };
        if record.erased_at.is_some() {
            return Ok(Vec::new());
        }
        Ok(self
            .decrypt(&record)?
            .values()
            .map(|v| v.trim().to_lowercase())
            .filter(|v| v.chars().count() >= 4)
            .collect())
    }

    /// Re-wraps every patient's data key (records not erased) under `new_key`, in one store
    /// transaction, then uses `new_key` and records `vault.master_key_rotated` (key ids and
    /// count only). Nothing is rewrapped when any record cannot be unwrapped with the current
    /// key. Other instances sharing the database must then be given the new key.
    pub async fn rotate_vault_key(
        &self,
        new_key: VaultKey,
        actor: &str,
    ) -> Result<VaultKeyRotated, AppError> {
        autolog_domain::ledger::envelope::check_actor("actor", actor)?;
        let current = self.vault_key()?;
        if current.id() == new_key.id() {
            return Err(AppError::Invalid(FieldError::new(
                "new_key",
                new_key.id(),
                "is the current vault master key: rotate to a different key",
            )));
        }
        let _writing = self.vault.writes.lock().await;
        // Every record first, strictly: any record that the current key cannot unwrap
        // refuses the rotation, and nothing is written. (Records already under the new key,
        // from a rotation whose instance stopped before switching, are left as they are.)
        let records = self.store.vault_records().await?;
        let erased = records.iter().filter(|r| r.erased_at.is_some()).count() as u64;
        let mut keys = Vec::new();
        for record in records.iter().filter(|r| r.erased_at.is_none()) {
            if record.master_key_id == new_key.id() {
                continue;
            }
            let data_key = self.data_key_of(&current, record)?;
            keys.push((
                record.patient_key.clone(),
                new_key.id().to_string(),
                wrap_key(&new_key, &record.patient_key, &data_key)?,
            ));
        }
        // The secrets sealed at rest (TOTP, webhooks) first: a rotation stopped after them
        // is finished by running it again, which leaves what is under the new key.
        let secrets = self.reseal_secrets(&current, &new_key).await?;
        if !keys.is_empty() {
            self.store.rewrap_vault_keys(&keys).await?;
        }
        let mut rewrapped = keys.len() as u64;
        self.set_vault_key(new_key.clone());
        // Then, best effort, records another instance wrote under the current key meanwhile.
        for _ in 1..ROTATION_PASSES {
            let late = match self.rewrap_late_records(&current, &new_key).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "vault rotation: records written during it were not rewrapped");
                    break;
                }
            };
            if late == 0 {
                break;
            }
            rewrapped += late;
        }
        self.record_audit_event(
            VAULT_STREAM,
            "vault.master_key_rotated",
            json!({"from_key_id": current.id(), "to_key_id": new_key.id(), "records": rewrapped, "by": actor}),
            actor,
        )
        .await?;
        tracing::info!(
            from_key_id = %current.id(),
            to_key_id = %new_key.id(),
            records = rewrapped,
            secrets,
            "vault master key rotated"
        );
        Ok(VaultKeyRotated {
            from_key_id: current.id().to_string(),
            to_key_id: new_key.id().to_string(),
            records: rewrapped,
            secrets_resealed: secrets,
            erased_records_skipped: erased,
        })
    }

    /// Rewraps the records still under `from` (written by another instance during a
    /// rotation) under `to`; how many.
    async fn rewrap_late_records(&self, from: &VaultKey, to: &VaultKey) -> Result<u64, AppError> {
        let mut keys = Vec::new();
        for record in self.store.vault_records().await? {
            if record.erased_at.is_none() && record.master_key_id == from.id() {
                let data_key = self.data_key_of(from, &record)?;
                let wrapped = wrap_key(to, &record.patient_key, &data_key)?;
                keys.push((record.patient_key, to.id().to_string(), wrapped));
            }
        }
        if !keys.is_empty() {
            self.store.rewrap_vault_keys(&keys).await?;
        }
        Ok(keys.len() as u64)
    }
}

/// Why retention keeps a chain's records (`None`: due for erasure).
/// Payload fields of chain events that take free text.
const FREE_TEXT_FIELDS: &[&str] = &[
    "text",
    "reason",
    "note",
    "summary",
    "rationale",
    "justification",
    "findings",
    "detail",
    "description",
    "message",
    "cancellation_reason",
    "resolution_reason",
];

/// The free texts of a draft: its `reason`, and the payload's free-text fields (a text or
/// a list of texts), with the field each is in.
fn free_texts(draft: &EventDraft) -> Vec<(String, &str)> {
    let mut texts: Vec<(String, &str)> = Vec::new();
    if let Some(reason) = draft.reason.as_deref() {
        texts.push(("reason".to_string(), reason));
    }
    for field in FREE_TEXT_FIELDS {
        match draft.body.data.get(*field) {
            Some(Value::String(text)) => texts.push((format!("body.data.{field}"), text.as_str())),
            Some(Value::Array(list)) => {
                for (i, item) in list.iter().enumerate() {
                    if let Some(text) = item.as_str() {
                        texts.push((format!("body.data.{field}[{i}]"), text));
                    }
                }
            }
            _ => {}
        }
    }
    texts
}

/// A patient's identifying data recorded (or replaced): the field names, never the values.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PersonalDataRecorded {
    pub patient_key: String,
    pub fields: Vec<String>,
    pub master_key_id: String,
    pub updated_at: String,
    /// Whether an earlier record of the patient was replaced.
    pub replaced: bool,
}

/// A patient's identifying data as read (the read is in the ledger before this answer).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PersonalData {
    pub patient_key: String,
    pub data: BTreeMap<String, String>,
    pub updated_at: String,
    /// The HL7 v3 PurposeOfUse code recorded with the read.
    pub purpose: String,
    /// The override reason recorded with the read, if one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A patient's identifying data crypto-shredded.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PersonalDataErased {
    pub coi: String,
    pub patient_key: String,
    /// Every chain of the patient (each was due for erasure).
    pub chains: Vec<String>,
    pub erased_at: String,
    /// Whether an earlier erasure had already destroyed the data.
    pub already_erased: bool,
    pub note: &'static str,
}

/// A vault master key rotation.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct VaultKeyRotated {
    pub from_key_id: String,
    pub to_key_id: String,
    /// Patients' data keys rewrapped under the new key.
    pub records: u64,
    /// Secrets sealed at rest (TOTP, webhook secrets) resealed.
    pub secrets_resealed: u64,
    pub erased_records_skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(master: &VaultKey, patient_key: &str, data_key: &[u8; 32]) -> VaultRecord {
        VaultRecord {
            patient_key: patient_key.into(),
            master_key_id: master.id().into(),
            wrapped_key: wrap_key(master, patient_key, data_key).expect("wrap"),
            ciphertext: Vec::new(),
            updated_at: Instant::now(),
            erased_at: None,
        }
    }

    #[test]
    fn key_ids_are_the_first_16_hex_of_the_sha256() {
        let key = VaultKey::from_bytes([1u8; 32]);
        let expected = hex::encode(Sha256::digest([1u8; 32]));
        assert_eq!(key.id(), &expected[..16]);
        assert!(!format!("{key:?}").contains(&hex::encode([1u8; 32])));
        let hex_text = format!("{}\n", hex::encode([1u8; 32]));
        assert_eq!(
            VaultKey::from_file_contents(hex_text.as_bytes())
                .expect("hex")
                .id(),
            key.id()
        );
        assert_eq!(
            VaultKey::from_file_contents(&[1u8; 32]).expect("raw").id(),
            key.id()
        );
        assert!(VaultKey::from_file_contents(b"short").is_err());
        let e = VaultKey::from_hex("zz").expect_err("not hex");
        assert!(!e.contains("zz"));
    }

    #[test]
    fn a_wrapped_key_opens_only_with_its_master_key_and_for_its_patient() {
        let old = VaultKey::from_bytes([1u8; 32]);
        let new = VaultKey::from_bytes([2u8; 32]);
        let data_key = [9u8; 32];
        let r = record(&old, "PK-1", &data_key);
        assert_eq!(*unwrap_key(&old, &r).expect("unwrap"), data_key);
        // Rewrapped under the new key: the old key no longer opens it, whatever id it names.
        let rewrapped = record(&new, "PK-1", &data_key);
        assert_eq!(*unwrap_key(&new, &rewrapped).expect("unwrap"), data_key);
        assert!(unwrap_key(&old, &rewrapped).is_err());
        let mut relabelled = rewrapped.clone();
        relabelled.master_key_id = old.id().into();
        assert!(unwrap_key(&old, &relabelled).is_err());
        // Moved to another patient: refused.
        let mut moved = r.clone();
        moved.patient_key = "PK-2".into();
        assert!(unwrap_key(&old, &moved).is_err());
    }

    #[test]
    fn data_sealed_for_one_patient_does_not_open_for_another() {
        let cipher = XChaCha20Poly1305::new_from_slice(&[3u8; 32]).expect("key");
        let sealed = seal(&cipher, b"{\"name\":\"x\"}", &data_aad("PK-1")).expect("seal");
        assert!(open(&cipher, &sealed, &data_aad("PK-1")).is_some());
        assert!(open(&cipher, &sealed, &data_aad("PK-2")).is_none());
        let mut altered = sealed.clone();
        if let Some(b) = altered.last_mut() {
            *b ^= 1;
        }
        assert!(open(&cipher, &altered, &data_aad("PK-1")).is_none());
        assert!(open(&cipher, &[], &data_aad("PK-1")).is_none());
    }

    #[test]
    fn personal_data_is_checked_without_repeating_values() {
        let e = check_personal_data(&json!({"name": "Ada Lovelace", "blood_type": "O+"}))
            .expect_err("unknown field");
        let text = e.to_string();
        assert!(text.contains("data.blood_type"), "{text}");
        assert!(!text.contains("O+"), "{text}");
        assert!(check_personal_data(&json!({"date_of_birth": "1815-02-30"})).is_err());
        assert!(check_personal_data(&json!({"name": "  "})).is_err());
        assert!(check_personal_data(&json!({})).is_err());
        assert!(check_personal_data(&json!({"mrn": 12})).is_err());
        let ok = check_personal_data(&json!({"name": "Ada", "date_of_birth": "1815-12-10"}))
            .expect("valid");
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn names_match_loosely_and_the_rest_exactly() {
        assert!(field_matches("name", " ada   LOVELACE ", "Ada Lovelace"));
        assert!(!field_matches("name", "Ada Byron", "Ada Lovelace"));
        assert!(field_matches("date_of_birth", "1815-12-10", "1815-12-10"));
        assert!(!field_matches("mrn", "mrn-1", "MRN-1"));
    }
}
