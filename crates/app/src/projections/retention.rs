//! Retention on the patient's timeline: each chain's records are kept for the longest
//! policy that applies to it (product x jurisdiction), from its own dates; legal holds suspend.

use std::collections::BTreeSet;

use autolog_domain::catalogue::Payload;
use autolog_domain::ledger::bitemporal::effective_events;
use autolog_domain::StreamId;
use autolog_domain::{Event, FieldError, Instant};
use serde_json::{json, Value};

use crate::ledger::read::{parse_time, text};
use crate::{AppError, Autolog};

/// EU member states (ISO 3166-1 alpha-2): a site in one of them puts a chain under the
/// jurisdiction `EU` as well as its country's own.
const EU_MEMBERS: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// The jurisdictions a country puts a chain under.
fn jurisdictions_of(country: &str) -> Vec<String> {
    let mut j = vec![country.to_string()];
    if EU_MEMBERS.contains(&country) {
        j.push("EU".to_string());
    }
    j
}

/// `years` calendar years after `from` (in UTC; 29 February falls back to 28).
fn years_after(from: Instant, years: u32) -> Option<Instant> {
    let ts = from.timestamp().to_zoned(jiff::tz::TimeZone::UTC);
    let later = ts
        .checked_add(jiff::Span::new().years(i64::from(years)))
        .ok()?;
    Instant::from_micros(later.timestamp().as_microsecond()).ok()
}

impl Autolog {
    /// The retention report as of `as_of` (default now): for each chain, the policies that
    /// apply (its product's, in the jurisdictions of every site it passed through), the
    /// date each runs from and to, the date its records may be released for erasure (the
    /// latest), and its status. `within_days` keeps only chains due by then. Expiry never
    /// deletes ledger events: it releases personal data for erasure.
    pub async fn retention_report(
        &self,
        as_of: Option<&str>,
        within_days: Option<u32>,
    ) -> Result<Retention, AppError> {
        let now = self.now();
        let as_of = parse_time("as_of", as_of, now)?;
        if within_days.is_some_and(|d| d > 36_600) {
            return Err(AppError::Invalid(FieldError::new(
                "within_days",
                within_days.unwrap_or_default().to_string(),
                "must be at most 36600 days",
            )));
        }
        let horizon = within_days.map(|d| {
            Instant::from_micros(as_of.micros().saturating_add(i64::from(d) * 86_400_000_000))
                .unwrap_or(Instant::MAX)
        });
        let known_at = self.settled_known_at(None, now).await?;
        let mut chains = Vec::new();
        for stream in self.all_streams_with_prefix("coi/").await? {
            let events = self.store.stream_events(&stream, known_at).await?;
            let effective = effective_events(&events, Instant::MAX, known_at);
            let Some(enrolment) = effective
                .iter()
                .find(|e| e.body.event_type == "chain.enrolled")
            else {
                continue;
            };
            let product_code = text(&enrolment.body.data, "product_code").to_string();
            let product = self
                .current_state(&StreamId::product(&product_code))
                .await?;
            // The chain's anchors: the first of each kind of event.
            let first = |kind: &str| {
                effective
                    .iter()
                    .find(|e| e.body.event_type == kind)
                    .map(|e| e.occurred_at.instant)
            };
            let anchor = |from: &str| match from {
                "enrolment" => Some(enrolment.occurred_at.instant),
                "collection" => first("chain.collected"),
                "release" => first("chain.released"),
                "administration" => first("chain.administered"),
                _ => None,
            };
            let jurisdictions = self.jurisdictions_of_chain(&effective).await?;
            let mut applied = Vec::new();
            let mut due: Option<Instant> = None;
            let mut pending = false;
            let policies = product
                .get("retention_policies")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for policy in &policies {
                let jurisdiction = text(policy, "jurisdiction");
                if !jurisdictions.contains(jurisdiction) {
                    continue;
                }
                let years = policy.get("years").and_then(Value::as_u64).unwrap_or(0);
                let from = text(policy, "from");
                let anchored = anchor(from);
                let until =
                    anchored.and_then(|a| years_after(a, u32::try_from(years).unwrap_or(u32::MAX)));
                if until.is_none() {
                    pending = true;
                }
                if let Some(u) = until {
                    due = Some(due.map_or(u, |d| d.max(u)));
                }
                applied.push(PolicyApplied {
                    jurisdiction: jurisdiction.to_string(),
                    years,
                    from: from.to_string(),
                    from_at: anchored.map(|a| a.to_string()),
                    until: until.map(|u| u.to_string()),
                });
            }
            let legal_holds = open_legal_holds(&effective)?;
            // A period that has not started yet (no administration) keeps the chain.
            let status = if !legal_holds.is_empty() {
                RetentionStatus::SuspendedByLegalHold
            } else if applied.is_empty() {
                RetentionStatus::NoPolicy
            } else if pending {
                RetentionStatus::RetainedUntilAnchor
            } else if due.is_some_and(|d| d <= as_of) {
                RetentionStatus::DueForErasure
            } else {
                RetentionStatus::Retained
            };
            let releasable_at = if pending || !legal_holds.is_empty() {
                None
            } else {
                due
            };
            if let Some(h) = horizon {
                if releasable_at.is_none_or(|d| d > h) {
                    continue;
                }
            }
            chains.push(ChainRetention {
                coi: stream.trim_start_matches("coi/").to_string(),
                product_code,
                jurisdictions,
                policies: applied,
                legal_holds,
                releasable_at: releasable_at.map(|d| d.to_string()),
                status,
            });
        }
        // Soonest releasable first; those with no date last.
        chains.sort_by(|a, b| {
            let key = |c: &ChainRetention| c.releasable_at.clone().unwrap_or_else(|| "~".into());
            key(a).cmp(&key(b))
        });
        Ok(Retention {
            as_of: as_of.to_string(),
            within_days,
            chains,
            note: RETENTION_NOTE,
        })
    }

    /// Why each of these chains' records may not be erased yet (none when every one is due
    /// for erasure): the refusals an erasure request answers with.
    pub(crate) async fn retention_refusals(
        &self,
        chains: &[String],
    ) -> Result<Vec<FieldError>, AppError> {
        let report = self.retention_report(None, None).await?;
        Ok(chains
            .iter()
            .filter_map(|chain| {
                let entry = report.chains.iter().find(|c| c.coi == *chain);
                retention_refusal(chain, entry)
            })
            .collect())
    }

    /// The jurisdictions of every site the chain passed through (by the site's country).
    async fn jurisdictions_of_chain(
        &self,
        effective: &[&Event],
    ) -> Result<BTreeSet<String>, AppError> {
        let mut sites: BTreeSet<String> = BTreeSet::new();
        for e in effective {
            for key in [
                "treatment_site_id",
                "collection_site_id",
                "receiving_site_id",
                "from_site_id",
                "site_id",
            ] {
                if let Some(s) = e.body.data.get(key).and_then(Value::as_str) {
                    sites.insert(s.to_string());
                }
            }
        }
        let mut jurisdictions: BTreeSet<String> = BTreeSet::new();
        for site in &sites {
            let record = self.current_state(&StreamId::site(site)).await?;
            let country = record
                .get("postal_address")
                .and_then(|a| a.get("country"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if !country.is_empty() {
                jurisdictions.extend(jurisdictions_of(country));
            }
        }
        Ok(jurisdictions)
    }
}

/// The legal holds in force on a chain (placed and not released).
fn open_legal_holds(effective: &[&Event]) -> Result<Vec<String>, AppError> {
    let mut open: Vec<String> = Vec::new();
    for e in effective {
        match crate::ledger::read::payload_of(e)? {
            Payload::ChainLegalHoldPlaced(h) => open.push(h.legal_hold_id),
            Payload::ChainLegalHoldReleased(h) => open.retain(|id| *id != h.legal_hold_id),
            _ => {}
        }
    }
    Ok(open)
}

const RETENTION_NOTE: &str =
    "expiry never deletes ledger events; it releases the patient's personal data for erasure";

/// The retention of each chain's records as of a moment (optionally only those releasable
/// within some days), soonest releasable first.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Retention {
    pub as_of: String,
    pub within_days: Option<u32>,
    pub chains: Vec<ChainRetention>,
    pub note: &'static str,
}

/// One chain: the jurisdictions it passed through, the policies that apply, and when its
/// patient's personal data may be erased.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ChainRetention {
    pub coi: String,
    pub product_code: String,
    pub jurisdictions: BTreeSet<String>,
    pub policies: Vec<PolicyApplied>,
    pub legal_holds: Vec<String>,
    pub releasable_at: Option<String>,
    pub status: RetentionStatus,
}

/// A retention policy of the product that applies to the chain.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PolicyApplied {
    pub jurisdiction: String,
    pub years: u64,
    /// What the period counts from (`enrolment`, `collection`, `release`, `administration`).
    pub from: String,
    pub from_at: Option<String>,
    pub until: Option<String>,
}

/// Where a chain's retention stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetentionStatus {
    /// A legal hold is in force: nothing is released.
    SuspendedByLegalHold,
    /// No policy of the product applies where the chain went.
    NoPolicy,
    /// A period has not started yet (its anchor, e.g. the administration, is to come).
    RetainedUntilAnchor,
    DueForErasure,
    Retained,
}

fn retention_refusal(coi: &str, entry: Option<&ChainRetention>) -> Option<FieldError> {
    let field = "coi";
    let Some(entry) = entry else {
        return Some(FieldError::new(
            field,
            coi,
            "has no retention assessment (no enrolment): its records are kept",
        ));
    };
    let rule = match entry.status {
        RetentionStatus::DueForErasure => return None,
        RetentionStatus::SuspendedByLegalHold => format!(
            "is under legal hold {}: its records are retained until the hold is released",
            json!(entry.legal_holds)
        ),
        RetentionStatus::Retained => format!(
            "its records are retained until {}",
            entry
                .releasable_at
                .as_deref()
                .unwrap_or("its retention period ends")
        ),
        RetentionStatus::RetainedUntilAnchor => {
            let policies: Vec<String> = entry
                .policies
                .iter()
                .map(|p| format!("{} years from {} ({})", p.years, p.from, p.jurisdiction))
                .collect();
            format!(
                "its retention period has not started: its records are retained until {}",
                policies.join(" and ")
            )
        }
        RetentionStatus::NoPolicy => format!(
            "no retention policy of product {} applies in its jurisdictions: its records are \
             kept until one does",
            entry.product_code
        ),
    };
    Some(FieldError::new(field, coi, rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_refusals_name_the_date() {
        let entry = ChainRetention {
            coi: "C".into(),
            product_code: "CART-19".into(),
            jurisdictions: Default::default(),
            policies: Vec::new(),
            legal_holds: Vec::new(),
            releasable_at: Some("2056-01-01T00:00:00Z".into()),
            status: RetentionStatus::Retained,
        };
        let r = retention_refusal("C", Some(&entry)).expect("refused");
        assert!(r.rule.contains("2056-01-01"), "{r}");
        let due = ChainRetention {
            status: RetentionStatus::DueForErasure,
            ..entry
        };
        assert!(retention_refusal("C", Some(&due)).is_none());
    }
}
