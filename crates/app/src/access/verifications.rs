//! N-person verification: a step a verification policy names (collection, custody handoff
//! and receipt, final labelling, release, bedside check, administration) is recorded only
//! with the verifiers its policy asks for. Each verifier re-authenticates (person id and
//! password, as a signer does), holds a qualifying role at the step's site, and is a
//! different person from the others and from the person recording the step. The ledger
//! keeps each verification's manifestation (who, printed name, when at the site, the role,
//! what it means, bound by a digest to the record), never a secret.

use autolog_domain::access::signature::record_digest;
use autolog_domain::access::verification::{
    most_specific, verified_step, Policy, StepPlace, VERIFICATIONS_KEY,
};
use autolog_domain::access::Role;
use autolog_domain::ledger::zone::{check_zone, local_time};
use autolog_domain::{EventDraft, FieldError, Instant, StreamId};
use serde_json::{json, Map, Value};

use crate::ledger::read::text;
use crate::{AppError, Autolog};

/// What the policy in force asks of one step.
struct Required {
    policy: Policy,
    site_id: String,
}

/// What a verification policy asks of a step, for a form to ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationNeeded {
    pub policy_id: String,
    pub verifiers: u8,
    pub qualifying_roles: Vec<&'static str>,
}

/// One verification as sent: who, and their secret.
struct Given {
    verifier_id: String,
    secret: String,
}

impl Autolog {
    /// Checks the verifications of every draft recording a verified step against the
    /// policy in force where and when it happens, and replaces each `{verifier_id, secret}`
    /// with its manifestation. A step short of its verifiers is refused (unmet, naming
    /// the policy, how many and which roles); nothing is written.
    pub(crate) async fn verify_drafts(
        &self,
        drafts: &mut [EventDraft],
        single: bool,
    ) -> Result<(), AppError> {
        let mut policies: Option<Vec<(String, Vec<autolog_domain::Event>)>> = None;
        for (i, draft) in drafts.iter_mut().enumerate() {
            let Some((step, site_field)) = verified_step(&draft.body.event_type) else {
                continue;
            };
            if policies.is_none() {
                policies = Some(self.policy_streams().await?);
            }
            let streams = policies.as_deref().unwrap_or_default();
            let prefix = if single {
                String::new()
            } else {
                format!("[{i}].")
            };
            let site_id = text(&draft.body.data, site_field).to_string();
            let at = draft.occurred_at.instant;
            let required = self
                .required(step, &draft.stream, &site_id, at, streams)
                .await?;
            let given = given(&draft.body.data, &prefix)?;
            if let Some(required) = &required {
                check_count(required, given.len(), &prefix)?;
            }
            if given.is_empty() {
                continue;
            }
            let site = text(&draft.body.data, site_field).to_string();
            let verified = self
                .check_verifiers(draft, &given, required.as_ref(), &site, &prefix)
                .await?;
            self.record_verifications(draft, step, &site, verified)
                .await?;
        }
        Ok(())
    }

    /// Every verification policy's events (one read per request that needs them).
    async fn policy_streams(&self) -> Result<Vec<(String, Vec<autolog_domain::Event>)>, AppError> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .store
                .streams_with_prefix("verification-policy/", &after, 1000)
                .await?;
            let full = page.len() == 1000;
            for stream in page {
                let events = self.store.stream_events(&stream, Instant::MAX).await?;
                after.clone_from(&stream);
                out.push((stream, events));
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// The policy in force for a step recorded on `stream` at `site_id` at valid time
    /// `at`, if any.
    async fn required(
        &self,
        step: &str,
        stream: &str,
        site_id: &str,
        at: Instant,
        streams: &[(String, Vec<autolog_domain::Event>)],
    ) -> Result<Option<Required>, AppError> {
        if streams.is_empty() {
            return Ok(None);
        }
        let in_force: Vec<Policy> = streams
            .iter()
            .filter_map(|(stream, events)| {
                let state =
                    autolog_domain::catalogue::stream_state(stream, events, at, Instant::MAX).state;
                policy_in_force(&state, at)
            })
            .collect();
        let site = self.current_state(&StreamId::site(site_id)).await?;
        let product = if stream.starts_with("coi/") {
            let chain = self.current_state(stream).await?;
            Some(text(&chain, "product_code").to_string()).filter(|p| !p.is_empty())
        } else {
            None
        };
        let place = StepPlace {
            step,
            product_code: product.as_deref(),
            site_id,
            country: site["postal_address"]["country"].as_str(),
        };
        Ok(most_specific(&in_force, &place).map(|policy| Required {
            policy: policy.clone(),
            site_id: site_id.to_string(),
        }))
    }

    /// What verification a step recorded by `event_type` on `stream` at `site_id` would
    /// need at `at` (for a form to ask for it): `None` when no policy names it.
    pub async fn verification_needed(
        &self,
        event_type: &str,
        stream: &str,
        site_id: &str,
        at: Instant,
    ) -> Result<Option<VerificationNeeded>, AppError> {
        let Some((step, _)) = verified_step(event_type) else {
            return Ok(None);
        };
        let streams = self.policy_streams().await?;
        let required = self.required(step, stream, site_id, at, &streams).await?;
        Ok(required.map(|r| VerificationNeeded {
            policy_id: r.policy.policy_id.clone(),
            verifiers: r.policy.verifiers,
            qualifying_roles: r
                .policy
                .qualifying_roles
                .iter()
                .map(|r| r.as_str())
                .collect(),
        }))
    }

    /// Re-authenticates each verifier and checks their role at the site and that each is
    /// someone else; the verified people with the role that qualified each.
    async fn check_verifiers(
        &self,
        draft: &EventDraft,
        given: &[Given],
        required: Option<&Required>,
        site: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Role)>, AppError> {
        let recorder = draft.actor.strip_prefix("person/").unwrap_or("");
        let mut verified: Vec<(String, Role)> = Vec::new();
        for (k, g) in given.iter().enumerate() {
            let field = format!("{prefix}body.data.{VERIFICATIONS_KEY}[{k}]");
            let refuse = |name: &str, value: &str, rule: String| {
                AppError::Invalid(FieldError::new(format!("{field}{name}"), value, rule))
            };
            if g.verifier_id == recorder {
                return Err(refuse(
                    ".verifier_id",
                    &g.verifier_id,
                    "is the person recording the step: a verifier is someone else".into(),
                ));
            }
            if verified.iter().any(|(v, _)| *v == g.verifier_id) {
                return Err(refuse(
                    ".verifier_id",
                    &g.verifier_id,
                    "verifies this step twice: each verifier is a different person".into(),
                ));
            }
            let ok = self.password_matches(&g.verifier_id, &g.secret).await?
                && self.not_locked_out(&g.verifier_id).await?;
            if !ok {
                self.count_failed_attempt(&g.verifier_id).await;
                return Err(refuse(
                    ".secret",
                    "(not shown)",
                    format!(
                        "re-authentication failed for {}: the verification is not given",
                        g.verifier_id
                    ),
                ));
            }
            self.store.reset_failed_attempts(&g.verifier_id).await?;
            let role = self.qualifying_role(&g.verifier_id, required, site).await?;
            let Some(role) = role else {
                let roles = required.map(|r| role_names(&r.policy)).unwrap_or_default();
                return Err(refuse(
                    ".verifier_id",
                    &g.verifier_id,
                    format!("holds none of the roles that qualify a verifier at {site} ({roles})"),
                ));
            };
            verified.push((g.verifier_id.clone(), role));
        }
        Ok(verified)
    }

    /// A role of the person, granted at the site (or `*`), that the policy accepts; without
    /// a policy, any role that may record at the site.
    async fn qualifying_role(
        &self,
        person_id: &str,
        required: Option<&Required>,
        site: &str,
    ) -> Result<Option<Role>, AppError> {
        let grants = self.grants_of(person_id).await?;
        Ok(grants
            .iter()
            .filter(|g| g.covers(site))
            .map(|g| g.role)
            .find(|role| match required {
                Some(r) => r.policy.qualifying_roles.contains(role),
                None => role.allows(autolog_domain::access::Permission::Record),
            }))
    }

    /// Replaces what was sent with the manifestations: who, printed name, when (the site's
    /// local time), the role, what the verification means, the record's digest.
    async fn record_verifications(
        &self,
        draft: &mut EventDraft,
        step: &str,
        site: &str,
        verified: Vec<(String, Role)>,
    ) -> Result<(), AppError> {
        let data = &mut draft.body.data;
        if let Some(map) = data.as_object_mut() {
            map.remove(VERIFICATIONS_KEY);
        }
        let digest = record_digest(&draft.stream, &draft.body.event_type, data);
        let zone = text(
            &self.current_state(&StreamId::site(site)).await?,
            "time_zone",
        )
        .to_string();
        let now = self.now();
        let verified_at = match check_zone("zone", &zone).or_else(|_| check_zone("zone", "UTC")) {
            Ok(tz) => local_time(now, &tz),
            Err(_) => now.to_string(),
        };
        let mut manifestations = Vec::new();
        for (person_id, role) in verified {
            let person = self.current_state(&StreamId::person(&person_id)).await?;
            let mut m = Map::new();
            m.insert("verifier_id".into(), json!(person_id));
            m.insert("printed_name".into(), person["printed_name"].clone());
            m.insert("role".into(), json!(role.as_str()));
            m.insert("verified_at".into(), json!(verified_at));
            m.insert(
                "meaning".into(),
                json!(format!(
                    "verified the {} recorded in {} at {site}",
                    step.replace('_', " "),
                    draft.stream
                )),
            );
            m.insert("record_digest".into(), json!(digest));
            manifestations.push(Value::Object(m));
        }
        data[VERIFICATIONS_KEY] = Value::Array(manifestations);
        Ok(())
    }
}

/// The policy a registry record states, if it is in force at `at` (active, within its
/// validity).
fn policy_in_force(state: &Value, at: Instant) -> Option<Policy> {
    let active = matches!(
        state.get("status").and_then(Value::as_str),
        None | Some("active")
    );
    let within = |key: &str, before: bool| {
        state.get(key).and_then(Value::as_str).is_none_or(|t| {
            Instant::parse_rfc3339(key, t)
                .is_ok_and(|bound| if before { bound <= at } else { at < bound })
        })
    };
    if !active || !within("valid_from", true) || !within("valid_to", false) {
        return None;
    }
    let opt = |key: &str| state.get(key).and_then(Value::as_str).map(str::to_string);
    Some(Policy {
        policy_id: opt("policy_id")?,
        step: opt("step")?,
        verifiers: u8::try_from(state.get("verifiers")?.as_u64()?).ok()?,
        qualifying_roles: state
            .get("qualifying_roles")
            .and_then(Value::as_array)
            .map(|roles| {
                roles
                    .iter()
                    .filter_map(|r| Role::parse("role", r.as_str()?).ok())
                    .collect()
            })
            .unwrap_or_default(),
        product_code: opt("product_code"),
        country: opt("country"),
        site_id: opt("site_id"),
    })
}

fn role_names(policy: &Policy) -> String {
    policy
        .qualifying_roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verifications sent: a list of `{verifier_id, secret}` (absent: none).
fn given(data: &Value, prefix: &str) -> Result<Vec<Given>, AppError> {
    let field = format!("{prefix}body.data.{VERIFICATIONS_KEY}");
    let refuse =
        |name: String, rule: &str| AppError::Invalid(FieldError::new(name, "(not shown)", rule));
    let Some(list) = data.get(VERIFICATIONS_KEY) else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(refuse(
            field,
            "must be a list of {\"verifier_id\", \"secret\"}",
        ));
    };
    let mut out = Vec::new();
    for (k, item) in list.iter().enumerate() {
        let Some(object) = item.as_object() else {
            return Err(refuse(
                format!("{field}[{k}]"),
                "must be {\"verifier_id\", \"secret\"}: the verifier re-authenticates",
            ));
        };
        if let Some(other) = object
            .keys()
            .find(|key| *key != "verifier_id" && *key != "secret")
        {
            return Err(refuse(
                format!("{field}[{k}].{other}"),
                "is not given by a verifier: give verifier_id and secret, Autolog records the rest",
            ));
        }
        let get = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (verifier_id, secret) = (get("verifier_id"), get("secret"));
        if verifier_id.is_empty() || secret.is_empty() {
            return Err(refuse(
                format!("{field}[{k}]"),
                "needs both verifier_id and secret",
            ));
        }
        out.push(Given {
            verifier_id,
            secret,
        });
    }
    Ok(out)
}

/// Refuses a step with fewer verifications than its policy asks.
fn check_count(required: &Required, given: usize, prefix: &str) -> Result<(), AppError> {
    let needed = usize::from(required.policy.verifiers);
    if given >= needed {
        return Ok(());
    }
    Err(AppError::Unmet(vec![FieldError::new(
        format!("{prefix}body.data.{VERIFICATIONS_KEY}"),
        format!("{given} given"),
        format!(
            "verification policy {} asks {needed} verifier(s) for this {} at {}, each holding one of {} there and each a different person from the one recording it",
            required.policy.policy_id,
            required.policy.step.replace('_', " "),
            required.site_id,
            role_names(&required.policy),
        ),
    )]))
}
