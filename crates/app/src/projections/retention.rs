//! Retention on the patient's timeline: each chain's records are kept for the longest
//! policy that applies to it (product x jurisdiction), from its own dates; legal holds suspend.

use std::collections::BTreeSet;

use autolog_domain::ledger::bitemporal::effective_events;
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
    ) -> Result<Value, AppError> {
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
                .current_state(&format!("product/{product_code}"))
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
                applied.push(json!({
                    "jurisdiction": jurisdiction,
                    "years": years,
                    "from": from,
                    "from_at": anchored.map(|a| a.to_string()),
                    "until": until.map(|u| u.to_string()),
                }));
            }
            let legal_holds = open_legal_holds(&effective);
            // A period that has not started yet (no administration) keeps the chain.
            let status = if !legal_holds.is_empty() {
                "suspended_by_legal_hold"
            } else if applied.is_empty() {
                "no_policy"
            } else if pending {
                "retained_until_anchor"
            } else if due.is_some_and(|d| d <= as_of) {
                "due_for_erasure"
            } else {
                "retained"
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
            chains.push(json!({
                "coi": stream.trim_start_matches("coi/"),
                "product_code": product_code,
                "jurisdictions": jurisdictions,
                "policies": applied,
                "legal_holds": legal_holds,
                "releasable_at": releasable_at.map(|d| d.to_string()),
                "status": status,
            }));
        }
        chains.sort_by(|a, b| {
            a["releasable_at"]
                .as_str()
                .unwrap_or("~")
                .cmp(b["releasable_at"].as_str().unwrap_or("~"))
        });
        Ok(json!({
            "as_of": as_of.to_string(),
            "within_days": within_days,
            "chains": chains,
            "note": "expiry never deletes ledger events; it releases the patient's personal data for erasure",
        }))
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
            let record = self.current_state(&format!("site/{site}")).await?;
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
fn open_legal_holds(effective: &[&Event]) -> Vec<String> {
    let mut open: Vec<String> = Vec::new();
    for e in effective {
        let id = text(&e.body.data, "legal_hold_id").to_string();
        match e.body.event_type.as_str() {
            "chain.legal_hold_placed" => open.push(id),
            "chain.legal_hold_released" => open.retain(|h| *h != id),
            _ => {}
        }
    }
    open
}
