//! The tables beside the ledger that grant power (accounts, role grants, API tokens,
//! signing secrets, webhooks) held to the ledger events that made them: `verify` gathers
//! what those events state while it scans, then reads the tables, so that a row injected or
//! edited outside Autolog (an administrator grant, a token un-revoked or extended, a signing
//! secret replaced, a webhook added or its cursor moved past alerts) is a named failure.
//!
//! What a row must match: an account its `user.created`; a person's grants exactly the
//! grants and revocations of `user.role_granted` / `user.role_revoked`; a token its
//! `api_token.issued` (system, sites, expiry, and the secret's hash where the event has
//! it) and `api_token.revoked` when revoked; a signing secret the hash named by the last
//! `signing_secret.set` of the person (where it names one); a webhook its
//! `webhook.registered` (URL, who) and `webhook.deactivated` when it is inactive, with every
//! alert between the position it started after and its cursor queued for it.

use autolog_domain::ledger::fields::list as strings;
use std::collections::{BTreeMap, BTreeSet};

use autolog_domain::{Event, Uuid};
use autolog_store::UserAccount;
use serde_json::Value;

use crate::ledger::read::{sha256_hex, text};
use crate::{AppError, Autolog};

/// What an issued token's event says.
#[derive(Debug, Clone, Default)]
struct TokenFact {
    system_id: String,
    sites: Vec<String>,
    expires_at: String,
    secret_sha256: Option<String>,
    revoked: bool,
}

/// What a webhook's events say.
#[derive(Debug, Clone, Default)]
struct WebhookFact {
    url: String,
    created_by: String,
    from_position: u64,
    deactivated: bool,
}

/// The facts of the access events, gathered in ledger order.
#[derive(Debug, Default)]
pub(crate) struct AccessFacts {
    accounts: BTreeSet<String>,
    grants: BTreeMap<String, BTreeSet<(String, String)>>,
    tokens: BTreeMap<Uuid, TokenFact>,
    /// The last `signing_secret.set` of each person: the PHC's hash, if it names one.
    signing: BTreeMap<String, Option<String>>,
    webhooks: BTreeMap<Uuid, WebhookFact>,
    /// Every alert raised: its position and event id.
    alerts: Vec<(u64, Uuid)>,
}

fn optional(data: &Value, field: &str) -> Option<String> {
    data.get(field).and_then(Value::as_str).map(str::to_string)
}

impl AccessFacts {
    /// Takes one event, in ledger order.
    pub(crate) fn observe(&mut self, event: &Event) {
        let data = &event.body.data;
        let person = || text(data, "person_id").to_string();
        let grant = || {
            (
                text(data, "role").to_string(),
                text(data, "site_id").to_string(),
            )
        };
        let id = |field: &str| Uuid::parse_str(text(data, field)).ok();
        match event.body.event_type.as_str() {
            "user.created" => {
                self.accounts.insert(person());
            }
            "user.role_granted" => {
                self.grants.entry(person()).or_default().insert(grant());
            }
            "user.role_revoked" => {
                self.grants.entry(person()).or_default().remove(&grant());
            }
            "api_token.issued" => {
                if let Some(token_id) = id("token_id") {
                    self.tokens.insert(
                        token_id,
                        TokenFact {
                            system_id: text(data, "system_id").to_string(),
                            sites: strings(data, "sites"),
                            expires_at: text(data, "expires_at").to_string(),
                            secret_sha256: optional(data, "secret_sha256"),
                            revoked: false,
                        },
                    );
                }
            }
            "api_token.revoked" => {
                if let Some(fact) = id("token_id").and_then(|t| self.tokens.get_mut(&t)) {
                    fact.revoked = true;
                }
            }
            "signing_secret.set" => {
                self.signing.insert(person(), optional(data, "phc_sha256"));
            }
            "webhook.registered" => {
                if let Some(webhook_id) = id("webhook_id") {
                    self.webhooks.insert(
                        webhook_id,
                        WebhookFact {
                            url: text(data, "url").to_string(),
                            created_by: text(data, "changed_by").to_string(),
                            from_position: data
                                .get("from_position")
                                .and_then(Value::as_u64)
                                .unwrap_or(0),
                            deactivated: false,
                        },
                    );
                }
            }
            "webhook.deactivated" => {
                if let Some(fact) = id("webhook_id").and_then(|w| self.webhooks.get_mut(&w)) {
                    fact.deactivated = true;
                }
            }
            "alert.raised" => self.alerts.push((event.position, event.event_id)),
            _ => {}
        }
    }
}

impl Autolog {
    /// Reads the side tables and holds them to `facts`: the first row that no event
    /// accounts for, or an event whose row is missing, as a sentence naming both.
    pub(crate) async fn compare_side_tables(
        &self,
        facts: &AccessFacts,
        head: u64,
    ) -> Result<Result<(), String>, AppError> {
        let users = self.store.users().await?;
        let checks = [
            self.compare_accounts_and_grants(facts, &users).await?,
            self.compare_tokens(facts).await?,
            self.compare_signing_secrets(facts, &users).await?,
            self.compare_webhooks(facts, head).await?,
        ];
        Ok(checks.into_iter().collect())
    }

    async fn compare_accounts_and_grants(
        &self,
        facts: &AccessFacts,
        users: &[UserAccount],
    ) -> Result<Result<(), String>, AppError> {
        if let Some(user) = users
            .iter()
            .find(|u| !facts.accounts.contains(&u.person_id))
        {
            return Ok(Err(format!(
                "user_accounts holds an account for {} that no user.created event made: the table was edited",
                user.person_id
            )));
        }
        let people: BTreeSet<&String> = users
            .iter()
            .map(|u| &u.person_id)
            .chain(facts.grants.keys())
            .collect();
        let none = BTreeSet::new();
        for person in people {
            let stored: BTreeSet<(String, String)> = self
                .store
                .role_grants(person)
                .await?
                .into_iter()
                .map(|g| (g.role, g.site_id))
                .collect();
            let recorded = facts.grants.get(person).unwrap_or(&none);
            if let Some((role, site)) = stored.difference(recorded).next() {
                return Ok(Err(format!(
                    "role_grants gives {person} {role} at {site}, which no user.role_granted event gave (or a user.role_revoked took back): the table was edited"
                )));
            }
            if let Some((role, site)) = recorded.difference(&stored).next() {
                return Ok(Err(format!(
                    "the ledger grants {person} {role} at {site}, but role_grants lacks it: the table was edited"
                )));
            }
        }
        Ok(Ok(()))
    }

    async fn compare_tokens(&self, facts: &AccessFacts) -> Result<Result<(), String>, AppError> {
        let stored = self.store.api_tokens().await?;
        for token in &stored {
            let id = token.token_id;
            let Some(fact) = facts.tokens.get(&id) else {
                return Ok(Err(format!(
                    "api_tokens holds token {id} that no api_token.issued event issued: the table was edited"
                )));
            };
            let differs = if fact.system_id != token.system_id {
                Some("system")
            } else if fact.sites != token.sites {
                Some("sites")
            } else if fact.expires_at != token.expires_at.to_string() {
                Some("expiry")
            } else if fact
                .secret_sha256
                .as_ref()
                .is_some_and(|s| *s != token.secret_sha256)
            {
                Some("secret")
            } else if fact.revoked != token.revoked_at.is_some() {
                Some("revocation")
            } else {
                None
            };
            if let Some(what) = differs {
                return Ok(Err(format!(
                    "api_tokens row of token {id} has another {what} than its api_token events: the table was edited"
                )));
            }
        }
        let ids: BTreeSet<Uuid> = stored.iter().map(|t| t.token_id).collect();
        if let Some(missing) = facts.tokens.keys().find(|id| !ids.contains(id)) {
            return Ok(Err(format!(
                "token {missing} was issued in the ledger but its api_tokens row is missing: the table was edited"
            )));
        }
        Ok(Ok(()))
    }

    async fn compare_signing_secrets(
        &self,
        facts: &AccessFacts,
        users: &[UserAccount],
    ) -> Result<Result<(), String>, AppError> {
        let people: BTreeSet<&String> = users
            .iter()
            .map(|u| &u.person_id)
            .chain(facts.signing.keys())
            .collect();
        for person in people {
            let stored = self.store.signing_secret(person).await?;
            match (facts.signing.get(person), stored) {
                (None, Some(_)) => {
                    return Ok(Err(format!(
                        "signing_secrets holds a secret for {person} that no signing_secret.set event set: the table was edited"
                    )))
                }
                (Some(Some(digest)), Some(phc)) if sha256_hex(&phc) != *digest => {
                    return Ok(Err(format!(
                        "the signing secret stored for {person} is not the one its last signing_secret.set event names: the table was edited"
                    )))
                }
                (Some(Some(_)), None) => {
                    return Ok(Err(format!(
                        "the ledger set a signing secret for {person}, but signing_secrets lacks it: the table was edited"
                    )))
                }
                _ => {}
            }
        }
        Ok(Ok(()))
    }

    async fn compare_webhooks(
        &self,
        facts: &AccessFacts,
        head: u64,
    ) -> Result<Result<(), String>, AppError> {
        for webhook in self.store.webhooks().await? {
            let id = webhook.webhook_id;
            let Some(fact) = facts.webhooks.get(&id) else {
                return Ok(Err(format!(
                    "webhooks holds webhook {id} that no webhook.registered event registered: the table was edited"
                )));
            };
            if fact.url != webhook.url || fact.created_by != webhook.created_by {
                return Ok(Err(format!(
                    "webhook {id} has another URL or registrant than its webhook.registered event: the table was edited"
                )));
            }
            if webhook.active && fact.deactivated {
                return Ok(Err(format!(
                    "webhook {id} is active, but a webhook.deactivated event stopped it: the table was edited"
                )));
            }
            if webhook.cursor_position > head || webhook.cursor_position < fact.from_position {
                return Ok(Err(format!(
                    "webhook {id}'s cursor {} lies outside its alerts (from position {} to the head {head}): the table was edited",
                    webhook.cursor_position, fact.from_position
                )));
            }
            let queued: BTreeSet<Uuid> = self
                .store
                .webhook_deliveries(id, u32::MAX)
                .await?
                .into_iter()
                .map(|d| d.alert_event_id)
                .collect();
            let skipped = facts.alerts.iter().find(|(position, alert)| {
                *position > fact.from_position
                    && *position <= webhook.cursor_position
                    && !queued.contains(alert)
            });
            if let Some((position, alert)) = skipped {
                return Ok(Err(format!(
                    "webhook {id}'s cursor {} is past the alert {alert} at position {position}, which was never queued for it: the cursor was moved",
                    webhook.cursor_position
                )));
            }
        }
        Ok(Ok(()))
    }
}
