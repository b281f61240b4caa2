//! Accounts, API tokens, sessions and the vault, for every [`SqlDb`] backend.

use async_trait::async_trait;
use autolog_domain::{Instant, Uuid};

use super::{first, SqlDb, SqlRow, SqlTx, Statement};
use crate::access::{
    check_vault_record, duplicate_api_token, duplicate_session, duplicate_user, encode_sites,
    erased_vault_record, unknown_vault_record, ApiTokenRow, RoleGrantRow, SessionRow,
    UserAccountRow, VaultRecordRow, FAILED_ATTEMPT_RECORD, SESSION_TOUCH, TOTP_STEP_ACCEPT,
    USER_COLUMNS, VAULT_COLUMNS, VAULT_KEY_REWRAP, VAULT_RECORD_ERASE, VAULT_RECORD_UPSERT,
};
use crate::{
    AccountStore, ApiToken, RoleGrant, SecretOwner, SecretReplacement, Session, SessionStore,
    StoreError, TokenStore, UserAccount, VaultRecord, VaultStore, SIGNING_SECRET_UPSERT,
};

/// The `api_tokens` columns in the order they are written and read.
const TOKEN_COLUMNS: &str = "token_id, secret_sha256, system_id, sites, created_at_us, \
     expires_at_us, revoked_at_us, created_by";

/// The `sessions` columns in the order they are written and read.
const SESSION_COLUMNS: &str =
    "session_sha256, person_id, csrf_sha256, created_at_us, last_seen_at_us, expires_at_us";

fn user(r: &impl SqlRow) -> Result<UserAccount, StoreError> {
    UserAccountRow {
        person_id: r.text("person_id")?,
        totp_secret: r.opt_text("totp_secret")?,
        totp_last_step: r.opt_int("totp_last_step")?,
        failed_attempts: r.int("failed_attempts")?,
        locked_until_us: r.opt_int("locked_until_us")?,
        disabled_at_us: r.opt_int("disabled_at_us")?,
        created_at_us: r.int("created_at_us")?,
        created_by: r.text("created_by")?,
    }
    .into_user()
}

fn grant(r: &impl SqlRow) -> Result<RoleGrant, StoreError> {
    RoleGrantRow {
        person_id: r.text("person_id")?,
        role: r.text("role")?,
        site_id: r.text("site_id")?,
        granted_at_us: r.int("granted_at_us")?,
        granted_by: r.text("granted_by")?,
    }
    .into_grant()
}

fn token(r: &impl SqlRow) -> Result<ApiToken, StoreError> {
    ApiTokenRow {
        token_id: r.text("token_id")?,
        secret_sha256: r.text("secret_sha256")?,
        system_id: r.text("system_id")?,
        sites: r.text("sites")?,
        created_at_us: r.int("created_at_us")?,
        expires_at_us: r.int("expires_at_us")?,
        revoked_at_us: r.opt_int("revoked_at_us")?,
        created_by: r.text("created_by")?,
    }
    .into_token()
}

fn session(r: &impl SqlRow) -> Result<Session, StoreError> {
    SessionRow {
        session_sha256: r.text("session_sha256")?,
        person_id: r.text("person_id")?,
        csrf_sha256: r.text("csrf_sha256")?,
        created_at_us: r.int("created_at_us")?,
        last_seen_at_us: r.int("last_seen_at_us")?,
        expires_at_us: r.int("expires_at_us")?,
    }
    .into_session()
}

fn vault_record(r: &impl SqlRow) -> Result<VaultRecord, StoreError> {
    VaultRecordRow {
        patient_key: r.text("patient_key")?,
        master_key_id: r.text("master_key_id")?,
        wrapped_key: r.bytes("wrapped_key")?,
        ciphertext: r.bytes("ciphertext")?,
        updated_at_us: r.int("updated_at_us")?,
        erased_at_us: r.opt_int("erased_at_us")?,
    }
    .into_record()
}

#[async_trait]
impl<B: SqlDb> AccountStore for B {
    async fn set_signing_secret(
        &self,
        person_id: &str,
        phc: &str,
        at: Instant,
        set_by: &str,
    ) -> Result<(), StoreError> {
        let upsert = Statement::new(SIGNING_SECRET_UPSERT)
            .bind(person_id)
            .bind(phc)
            .bind(at.micros())
            .bind(set_by);
        self.write(upsert).await.map(drop)
    }

    async fn signing_secret(&self, person_id: &str) -> Result<Option<String>, StoreError> {
        let select =
            Statement::new("SELECT phc FROM signing_secrets WHERE person_id = $1").bind(person_id);
        first(self.read(select).await?)
            .map(|r| r.text("phc"))
            .transpose()
    }

    async fn add_user(&self, u: &UserAccount) -> Result<(), StoreError> {
        let insert = Statement::new(format!(
            "INSERT INTO user_accounts ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (person_id) DO NOTHING"
        ))
        .bind(&u.person_id)
        .bind(u.totp_secret.as_deref())
        .bind(u.totp_last_step)
        .bind(i64::from(u.failed_attempts))
        .bind(u.locked_until.map(Instant::micros))
        .bind(u.disabled_at.map(Instant::micros))
        .bind(u.created_at.micros())
        .bind(&u.created_by);
        match self.write(insert).await? {
            0 => Err(duplicate_user(&u.person_id)),
            _ => Ok(()),
        }
    }

    async fn user(&self, person_id: &str) -> Result<Option<UserAccount>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {USER_COLUMNS} FROM user_accounts WHERE person_id = $1"
        ))
        .bind(person_id);
        first(self.read(select).await?)
            .as_ref()
            .map(user)
            .transpose()
    }

    async fn users(&self) -> Result<Vec<UserAccount>, StoreError> {
        let order = self.dialect().bytewise("person_id");
        let select = Statement::new(format!(
            "SELECT {USER_COLUMNS} FROM user_accounts ORDER BY {order}"
        ));
        self.read(select).await?.iter().map(user).collect()
    }

    async fn set_totp(&self, person_id: &str, secret: Option<&str>) -> Result<bool, StoreError> {
        let update = Statement::new(
            "UPDATE user_accounts SET totp_secret = $1, totp_last_step = NULL WHERE person_id = $2",
        )
        .bind(secret)
        .bind(person_id);
        Ok(self.write(update).await? > 0)
    }

    async fn accept_totp_step(&self, person_id: &str, step: i64) -> Result<bool, StoreError> {
        let update = Statement::new(TOTP_STEP_ACCEPT).bind(person_id).bind(step);
        Ok(self.write(update).await? > 0)
    }

    async fn record_failed_attempt(
        &self,
        person_id: &str,
        lock_after: u32,
        lock_until: Instant,
    ) -> Result<Option<UserAccount>, StoreError> {
        let update = Statement::new(FAILED_ATTEMPT_RECORD)
            .bind(person_id)
            .bind(i64::from(lock_after))
            .bind(lock_until.micros());
        first(self.write_returning(update).await?)
            .as_ref()
            .map(user)
            .transpose()
    }

    async fn reset_failed_attempts(&self, person_id: &str) -> Result<(), StoreError> {
        let update = Statement::new(
            "UPDATE user_accounts SET failed_attempts = 0 \
             WHERE person_id = $1 AND failed_attempts <> 0",
        )
        .bind(person_id);
        self.write(update).await.map(drop)
    }

    async fn unlock_user(&self, person_id: &str) -> Result<bool, StoreError> {
        let update = Statement::new(
            "UPDATE user_accounts SET failed_attempts = 0, locked_until_us = NULL \
             WHERE person_id = $1",
        )
        .bind(person_id);
        Ok(self.write(update).await? > 0)
    }

    async fn set_user_disabled(
        &self,
        person_id: &str,
        at: Option<Instant>,
    ) -> Result<bool, StoreError> {
        let update =
            Statement::new("UPDATE user_accounts SET disabled_at_us = $1 WHERE person_id = $2")
                .bind(at.map(Instant::micros))
                .bind(person_id);
        Ok(self.write(update).await? > 0)
    }

    async fn grant_role(&self, g: &RoleGrant) -> Result<bool, StoreError> {
        let insert = Statement::new(
            "INSERT INTO role_grants (person_id, role, site_id, granted_at_us, granted_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (person_id, role, site_id) DO NOTHING",
        )
        .bind(&g.person_id)
        .bind(&g.role)
        .bind(&g.site_id)
        .bind(g.granted_at.micros())
        .bind(&g.granted_by);
        Ok(self.write(insert).await? > 0)
    }

    async fn revoke_role(
        &self,
        person_id: &str,
        role: &str,
        site_id: &str,
    ) -> Result<bool, StoreError> {
        let delete = Statement::new(
            "DELETE FROM role_grants WHERE person_id = $1 AND role = $2 AND site_id = $3",
        )
        .bind(person_id)
        .bind(role)
        .bind(site_id);
        Ok(self.write(delete).await? > 0)
    }

    async fn role_grants(&self, person_id: &str) -> Result<Vec<RoleGrant>, StoreError> {
        let d = self.dialect();
        let select = Statement::new(format!(
            "SELECT person_id, role, site_id, granted_at_us, granted_by FROM role_grants \
             WHERE person_id = $1 ORDER BY {}, {}",
            d.bytewise("role"),
            d.bytewise("site_id")
        ))
        .bind(person_id);
        self.read(select).await?.iter().map(grant).collect()
    }
}

#[async_trait]
impl<B: SqlDb> TokenStore for B {
    async fn add_api_token(&self, t: &ApiToken) -> Result<(), StoreError> {
        let insert = Statement::new(format!(
            "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (token_id) DO NOTHING"
        ))
        .bind(t.token_id)
        .bind(&t.secret_sha256)
        .bind(&t.system_id)
        .bind(encode_sites(&t.sites)?)
        .bind(t.created_at.micros())
        .bind(t.expires_at.micros())
        .bind(t.revoked_at.map(Instant::micros))
        .bind(&t.created_by);
        match self.write(insert).await? {
            0 => Err(duplicate_api_token(t.token_id)),
            _ => Ok(()),
        }
    }

    async fn api_token(&self, token_id: Uuid) -> Result<Option<ApiToken>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_id = $1"
        ))
        .bind(token_id);
        first(self.read(select).await?)
            .as_ref()
            .map(token)
            .transpose()
    }

    async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at_us, token_id"
        ));
        self.read(select).await?.iter().map(token).collect()
    }

    async fn revoke_api_token(&self, token_id: Uuid, at: Instant) -> Result<bool, StoreError> {
        let update = Statement::new(
            "UPDATE api_tokens SET revoked_at_us = $1 \
             WHERE token_id = $2 AND revoked_at_us IS NULL",
        )
        .bind(at.micros())
        .bind(token_id);
        Ok(self.write(update).await? > 0)
    }
}

#[async_trait]
impl<B: SqlDb> SessionStore for B {
    async fn add_session(&self, s: &Session) -> Result<(), StoreError> {
        let insert = Statement::new(format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (session_sha256) DO NOTHING"
        ))
        .bind(&s.session_sha256)
        .bind(&s.person_id)
        .bind(&s.csrf_sha256)
        .bind(s.created_at.micros())
        .bind(s.last_seen_at.micros())
        .bind(s.expires_at.micros());
        match self.write(insert).await? {
            0 => Err(duplicate_session()),
            _ => Ok(()),
        }
    }

    async fn session(&self, session_sha256: &str) -> Result<Option<Session>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_sha256 = $1"
        ))
        .bind(session_sha256);
        first(self.read(select).await?)
            .as_ref()
            .map(session)
            .transpose()
    }

    async fn touch_session(&self, session_sha256: &str, at: Instant) -> Result<bool, StoreError> {
        let update = Statement::new(SESSION_TOUCH)
            .bind(session_sha256)
            .bind(at.micros());
        Ok(self.write(update).await? > 0)
    }

    async fn end_session(&self, session_sha256: &str) -> Result<bool, StoreError> {
        let delete =
            Statement::new("DELETE FROM sessions WHERE session_sha256 = $1").bind(session_sha256);
        Ok(self.write(delete).await? > 0)
    }

    async fn end_sessions_of(&self, person_id: &str) -> Result<u64, StoreError> {
        let delete = Statement::new("DELETE FROM sessions WHERE person_id = $1").bind(person_id);
        self.write(delete).await
    }
}

#[async_trait]
impl<B: SqlDb> VaultStore for B {
    async fn replace_secrets(&self, secrets: &[SecretReplacement]) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let mut replaced = 0;
        for secret in secrets {
            let update = match &secret.owner {
                SecretOwner::Totp(person_id) => Statement::new(
                    "UPDATE user_accounts SET totp_secret = $1 \
                     WHERE person_id = $2 AND totp_secret = $3",
                )
                .bind(&secret.new)
                .bind(person_id),
                SecretOwner::Webhook(webhook_id) => Statement::new(
                    "UPDATE webhooks SET secret = $1 WHERE webhook_id = $2 AND secret = $3",
                )
                .bind(&secret.new)
                .bind(*webhook_id),
            };
            replaced += tx.execute(update.bind(&secret.old)).await?;
        }
        tx.commit().await?;
        Ok(replaced)
    }

    async fn put_vault_record(&self, record: &VaultRecord) -> Result<(), StoreError> {
        check_vault_record(record)?;
        let upsert = Statement::new(VAULT_RECORD_UPSERT)
            .bind(&record.patient_key)
            .bind(&record.master_key_id)
            .bind(&record.wrapped_key)
            .bind(&record.ciphertext)
            .bind(record.updated_at.micros());
        match self.write(upsert).await? {
            0 => Err(erased_vault_record(&record.patient_key)),
            _ => Ok(()),
        }
    }

    async fn vault_record(&self, patient_key: &str) -> Result<Option<VaultRecord>, StoreError> {
        let select = Statement::new(format!(
            "SELECT {VAULT_COLUMNS} FROM vault_records WHERE patient_key = $1"
        ))
        .bind(patient_key);
        first(self.read(select).await?)
            .as_ref()
            .map(vault_record)
            .transpose()
    }

    async fn vault_records(&self) -> Result<Vec<VaultRecord>, StoreError> {
        let order = self.dialect().bytewise("patient_key");
        let select = Statement::new(format!(
            "SELECT {VAULT_COLUMNS} FROM vault_records ORDER BY {order}"
        ));
        self.read(select).await?.iter().map(vault_record).collect()
    }

    async fn rewrap_vault_keys(
        &self,
        keys: &[(String, String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for (patient_key, master_key_id, wrapped_key) in keys {
            let rewrap = Statement::new(VAULT_KEY_REWRAP)
                .bind(patient_key)
                .bind(master_key_id)
                .bind(wrapped_key);
            if tx.execute(rewrap).await? == 0 {
                // Dropping the transaction rolls back the keys already rewrapped.
                let known =
                    Statement::new("SELECT 1 AS known FROM vault_records WHERE patient_key = $1")
                        .bind(patient_key);
                return Err(match tx.rows(known).await?.is_empty() {
                    false => erased_vault_record(patient_key),
                    true => unknown_vault_record(patient_key),
                });
            }
        }
        tx.commit().await
    }

    async fn erase_vault_record(&self, patient_key: &str, at: Instant) -> Result<bool, StoreError> {
        let erase = Statement::new(VAULT_RECORD_ERASE)
            .bind(patient_key)
            .bind(Vec::<u8>::new().as_slice())
            .bind(at.micros());
        if self.write(erase).await? == 0 {
            return Ok(false);
        }
        self.scrub_erased_bytes().await?;
        Ok(true)
    }
}
