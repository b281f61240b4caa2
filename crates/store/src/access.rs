//! Console access and personal data, kept beside the ledger and never in it: user accounts,
//! site-scoped role grants, API tokens, console sessions and the personal-data vault.

use std::fmt;

use autolog_domain::{FieldError, Instant, Uuid};

use crate::row::{instant, unreadable, uuid};
use crate::StoreError;

/// A console user account, bound to a personnel record. The password is the person's
/// signing secret (existing signing_secrets table), not stored here.
/// Its `Debug` form leaves the TOTP key out.
#[derive(Clone, PartialEq)]
pub struct UserAccount {
    pub person_id: String,
    /// The base32 TOTP key; `None` until enrolled.
    pub totp_secret: Option<String>,
    /// The last accepted RFC 6238 time step, to refuse replays.
    pub totp_last_step: Option<i64>,
    /// Failed sign-in attempts since the last success or unlock.
    pub failed_attempts: u32,
    pub locked_until: Option<Instant>,
    pub disabled_at: Option<Instant>,
    pub created_at: Instant,
    /// Who created it (an actor, as in the ledger's envelope).
    pub created_by: String,
}

impl fmt::Debug for UserAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAccount")
            .field("person_id", &self.person_id)
            .field(
                "totp_secret",
                &self.totp_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("totp_last_step", &self.totp_last_step)
            .field("failed_attempts", &self.failed_attempts)
            .field("locked_until", &self.locked_until)
            .field("disabled_at", &self.disabled_at)
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .finish()
    }
}

/// A role held by a person at one site.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleGrant {
    pub person_id: String,
    pub role: String,
    pub site_id: String,
    pub granted_at: Instant,
    pub granted_by: String,
}

/// An API token of a source system, limited to some sites. Only the SHA-256 of its secret
/// is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub token_id: Uuid,
    /// Lower-case hex of the SHA-256 of the token's secret.
    pub secret_sha256: String,
    pub system_id: String,
    /// The sites the token may act for, in the order given.
    pub sites: Vec<String>,
    pub created_at: Instant,
    pub expires_at: Instant,
    pub revoked_at: Option<Instant>,
    pub created_by: String,
}

/// A console session. Only hashes of the cookie and of the CSRF token are stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Hex of the SHA-256 of the cookie value.
    pub session_sha256: String,
    pub person_id: String,
    /// Hex of the SHA-256 of the session's CSRF token.
    pub csrf_sha256: String,
    pub created_at: Instant,
    pub last_seen_at: Instant,
    /// The absolute end of the session, however active it is.
    pub expires_at: Instant,
}

/// A patient's identifying data, encrypted under a per-patient data key; the data key is
/// wrapped by a master key that is never in the database.
#[derive(Debug, Clone, PartialEq)]
pub struct VaultRecord {
    pub patient_key: String,
    /// Which master key wrapped `wrapped_key`.
    pub master_key_id: String,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// When the personal data was last recorded (a rewrap leaves it unchanged).
    pub updated_at: Instant,
    /// Set once the record is crypto-shredded; its key and ciphertext are then empty.
    pub erased_at: Option<Instant>,
}

/// The `user_accounts` columns in the order both backends select them.
pub const USER_COLUMNS: &str = "person_id, totp_secret, totp_last_step, failed_attempts, \
     locked_until_us, disabled_at_us, created_at_us, created_by";

/// The replay guard both backends run (`$1` person, `$2` step): one statement, so a step
/// is accepted once even when two servers race on one database.
pub const TOTP_STEP_ACCEPT: &str = "UPDATE user_accounts SET totp_last_step = $2 \
     WHERE person_id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)";

/// The failed-attempt count both backends run (`$1` person, `$2` lock_after, `$3`
/// lock_until): one statement, returning the account after the change. Every failure at or
/// past the threshold (re)sets the lock.
pub const FAILED_ATTEMPT_RECORD: &str = "UPDATE user_accounts \
     SET failed_attempts = failed_attempts + 1, \
     locked_until_us = CASE WHEN failed_attempts + 1 >= $2 THEN $3 ELSE locked_until_us END \
     WHERE person_id = $1 RETURNING person_id, totp_secret, totp_last_step, failed_attempts, \
     locked_until_us, disabled_at_us, created_at_us, created_by";

/// The activity mark both backends run (`$1` session hash, `$2` time): it never moves
/// back, so two servers touching one session keep the later time.
pub const SESSION_TOUCH: &str = "UPDATE sessions SET last_seen_at_us = \
     CASE WHEN last_seen_at_us < $2 THEN $2 ELSE last_seen_at_us END \
     WHERE session_sha256 = $1";

/// The vault write both backends run (`$1`..`$5`: patient key, master key id, wrapped
/// key, ciphertext, updated_at): inserts, or replaces a record not yet erased. No row is
/// changed when the record was erased.
pub const VAULT_RECORD_UPSERT: &str = "INSERT INTO vault_records \
     (patient_key, master_key_id, wrapped_key, ciphertext, updated_at_us, erased_at_us) \
     VALUES ($1, $2, $3, $4, $5, NULL) \
     ON CONFLICT (patient_key) DO UPDATE SET master_key_id = excluded.master_key_id, \
     wrapped_key = excluded.wrapped_key, ciphertext = excluded.ciphertext, \
     updated_at_us = excluded.updated_at_us WHERE vault_records.erased_at_us IS NULL";

/// The rewrap of one record both backends run (`$1` patient key, `$2` master key id,
/// `$3` wrapped key); erased records are left alone.
pub const VAULT_KEY_REWRAP: &str = "UPDATE vault_records SET master_key_id = $2, \
     wrapped_key = $3 WHERE patient_key = $1 AND erased_at_us IS NULL";

/// The crypto-shredding both backends run (`$1` patient key, `$2` an empty blob, `$3`
/// erased_at): the key and ciphertext become empty; the first erasure time is kept.
pub const VAULT_RECORD_ERASE: &str = "UPDATE vault_records SET wrapped_key = $2, \
     ciphertext = $2, erased_at_us = COALESCE(erased_at_us, $3) WHERE patient_key = $1";

/// The `vault_records` columns in the order both backends select them.
pub const VAULT_COLUMNS: &str =
    "patient_key, master_key_id, wrapped_key, ciphertext, updated_at_us, erased_at_us";

/// The refusal of a second account for one person.
pub fn duplicate_user(person_id: &str) -> StoreError {
    StoreError::Conflict(FieldError::new(
        "person_id",
        person_id,
        "already has a user account",
    ))
}

/// The refusal of a token id that is already stored.
pub fn duplicate_api_token(token_id: Uuid) -> StoreError {
    StoreError::Rejected(FieldError::new(
        "token_id",
        token_id.to_string(),
        "an API token with this id already exists",
    ))
}

/// The refusal of a session hash that is already stored (the hash itself is not repeated).
pub fn duplicate_session() -> StoreError {
    StoreError::Rejected(FieldError::new(
        "session_sha256",
        "",
        "a session with this hash already exists",
    ))
}

/// The refusal to record personal data again for an erased patient.
pub fn erased_vault_record(patient_key: &str) -> StoreError {
    StoreError::Rejected(
        FieldError::new(
            "patient_key",
            patient_key,
            "was erased (crypto-shredded); its personal data cannot be recorded again",
        )
        .with_code("erased"),
    )
}

/// The refusal of a patient key with no vault record.
pub fn unknown_vault_record(patient_key: &str) -> StoreError {
    StoreError::Rejected(FieldError::new(
        "patient_key",
        patient_key,
        "has no vault record",
    ))
}

/// Checks a vault record before it is put: erasure goes through `erase_vault_record` only.
pub fn check_vault_record(record: &VaultRecord) -> Result<(), StoreError> {
    match record.erased_at {
        Some(erased_at) => Err(StoreError::Rejected(FieldError::new(
            "erased_at",
            erased_at.to_string(),
            "must be empty: a record is erased with erase_vault_record, not put",
        ))),
        None => Ok(()),
    }
}

/// The stored text form of a token's sites: a JSON array of strings.
pub fn encode_sites(sites: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(sites).map_err(|e| StoreError::Backend {
        backend: "store",
        message: format!("cannot encode the token's sites: {e}"),
    })
}

/// The `user_accounts` table's columns.
#[derive(Debug, Clone)]
pub struct UserAccountRow {
    pub person_id: String,
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub failed_attempts: i64,
    pub locked_until_us: Option<i64>,
    pub disabled_at_us: Option<i64>,
    pub created_at_us: i64,
    pub created_by: String,
}

impl UserAccountRow {
    pub fn into_user(self) -> Result<UserAccount, StoreError> {
        let key = self.person_id.clone();
        let read = || -> Result<UserAccount, String> {
            Ok(UserAccount {
                failed_attempts: u32::try_from(self.failed_attempts).map_err(|_| {
                    format!("failed_attempts {} is out of range", self.failed_attempts)
                })?,
                locked_until: self
                    .locked_until_us
                    .map(|t| instant("locked_until_us", t))
                    .transpose()?,
                disabled_at: self
                    .disabled_at_us
                    .map(|t| instant("disabled_at_us", t))
                    .transpose()?,
                created_at: instant("created_at_us", self.created_at_us)?,
                person_id: self.person_id,
                totp_secret: self.totp_secret,
                totp_last_step: self.totp_last_step,
                created_by: self.created_by,
            })
        };
        read().map_err(|d| unreadable("user_accounts", &key, d))
    }
}

/// The `role_grants` table's columns.
#[derive(Debug, Clone)]
pub struct RoleGrantRow {
    pub person_id: String,
    pub role: String,
    pub site_id: String,
    pub granted_at_us: i64,
    pub granted_by: String,
}

impl RoleGrantRow {
    pub fn into_grant(self) -> Result<RoleGrant, StoreError> {
        let key = format!("({}, {}, {})", self.person_id, self.role, self.site_id);
        let granted_at = instant("granted_at_us", self.granted_at_us)
            .map_err(|d| unreadable("role_grants", &key, d))?;
        Ok(RoleGrant {
            person_id: self.person_id,
            role: self.role,
            site_id: self.site_id,
            granted_at,
            granted_by: self.granted_by,
        })
    }
}

/// The `api_tokens` table's columns (the id as text, the sites as a JSON array).
#[derive(Debug, Clone)]
pub struct ApiTokenRow {
    pub token_id: String,
    pub secret_sha256: String,
    pub system_id: String,
    pub sites: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub revoked_at_us: Option<i64>,
    pub created_by: String,
}

impl ApiTokenRow {
    pub fn into_token(self) -> Result<ApiToken, StoreError> {
        let key = self.token_id.clone();
        let read = || -> Result<ApiToken, String> {
            Ok(ApiToken {
                token_id: uuid("token_id", &self.token_id)?,
                sites: serde_json::from_str(&self.sites).map_err(|e| {
                    format!("sites {:?} is not a JSON list of text: {e}", self.sites)
                })?,
                created_at: instant("created_at_us", self.created_at_us)?,
                expires_at: instant("expires_at_us", self.expires_at_us)?,
                revoked_at: self
                    .revoked_at_us
                    .map(|t| instant("revoked_at_us", t))
                    .transpose()?,
                secret_sha256: self.secret_sha256,
                system_id: self.system_id,
                created_by: self.created_by,
            })
        };
        read().map_err(|d| unreadable("api_tokens", &key, d))
    }
}

/// The `sessions` table's columns.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub session_sha256: String,
    pub person_id: String,
    pub csrf_sha256: String,
    pub created_at_us: i64,
    pub last_seen_at_us: i64,
    pub expires_at_us: i64,
}

impl SessionRow {
    pub fn into_session(self) -> Result<Session, StoreError> {
        // Named by its person, not by the hash that finds it.
        let key = format!("of {}", self.person_id);
        let read = || -> Result<Session, String> {
            Ok(Session {
                created_at: instant("created_at_us", self.created_at_us)?,
                last_seen_at: instant("last_seen_at_us", self.last_seen_at_us)?,
                expires_at: instant("expires_at_us", self.expires_at_us)?,
                session_sha256: self.session_sha256,
                person_id: self.person_id,
                csrf_sha256: self.csrf_sha256,
            })
        };
        read().map_err(|d| unreadable("sessions", &key, d))
    }
}

/// The `vault_records` table's columns.
#[derive(Debug, Clone)]
pub struct VaultRecordRow {
    pub patient_key: String,
    pub master_key_id: String,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub updated_at_us: i64,
    pub erased_at_us: Option<i64>,
}

impl VaultRecordRow {
    pub fn into_record(self) -> Result<VaultRecord, StoreError> {
        let key = self.patient_key.clone();
        let read = || -> Result<VaultRecord, String> {
            Ok(VaultRecord {
                updated_at: instant("updated_at_us", self.updated_at_us)?,
                erased_at: self
                    .erased_at_us
                    .map(|t| instant("erased_at_us", t))
                    .transpose()?,
                patient_key: self.patient_key,
                master_key_id: self.master_key_id,
                wrapped_key: self.wrapped_key,
                ciphertext: self.ciphertext,
            })
        };
        read().map_err(|d| unreadable("vault_records", &key, d))
    }
}
