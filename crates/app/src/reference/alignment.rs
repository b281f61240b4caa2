//! The alignment report: where the network's reference data does not line up (unmapped
//! codes, expiring crosswalks, bad zones, lapsed qualifications and calibrations, duplicates).

use std::collections::{BTreeMap, HashMap};

use autolog_domain::ledger::bitemporal::effective_events;
use autolog_domain::ledger::zone::check_zone;
use autolog_domain::Instant;
use autolog_domain::StreamId;
use serde_json::{json, Value};

use crate::ledger::read::{instant_field, text};
use crate::reference::registry::REGISTRIES;
use crate::reference::time_discipline::ZONE_DISCREPANCY_PREFIX;
use crate::{AppError, Autolog};

/// Crosswalks ending within this many days are reported as about to expire.
pub const DEFAULT_EXPIRY_HORIZON_DAYS: u32 = 30;

/// Lower case, runs of non-alphanumerics folded to one space: "St. Mary's " = "st mary s".
fn normalised(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a person holds a qualification at `site` (any site when `None`) valid at `at`.
pub(crate) fn qualified(person: &Value, site: Option<&str>, at: Instant) -> bool {
    let list = person.get("qualifications").and_then(Value::as_array);
    list.into_iter().flatten().any(|q| {
        site.is_none_or(|s| text(q, "site_id") == s)
            && instant_field(q, "valid_from").is_none_or(|from| from <= at)
            && instant_field(q, "valid_until").is_some_and(|until| at < until)
    })
}

fn active(record: &Value) -> bool {
    matches!(
        record.get("status").and_then(Value::as_str),
        None | Some("active")
    )
}

impl Autolog {
    /// The alignment report as of now: every finding with what to fix. `horizon_days`
    /// (default 30) is how far ahead a crosswalk's end counts as about to expire.
    pub async fn alignment_report(
        &self,
        horizon_days: Option<u32>,
    ) -> Result<AlignmentReport, AppError> {
        let horizon_days = horizon_days.unwrap_or(DEFAULT_EXPIRY_HORIZON_DAYS);
        if horizon_days > 3660 {
            return Err(AppError::Invalid(autolog_domain::FieldError::new(
                "horizon_days",
                horizon_days.to_string(),
                "must be at most 3660 days",
            )));
        }
        let now = self.now();
        let known_at = self.settled_known_at(None, now).await?;
        let mut records: HashMap<&str, Vec<Value>> = HashMap::new();
        for r in REGISTRIES {
            records.insert(r.name, self.export_records(r, known_at).await?);
        }
        let list = |name: &str| records.get(name).map_or(&[][..], Vec::as_slice);

        // Unmapped codes that still do not resolve, grouped by system and kind.
        let mappings = list("crosswalks");
        let resolves_now = |system: &str, kind: &str, code: &str| {
            mappings.iter().any(|m| {
                text(m, "system") == system
                    && text(m, "kind") == kind
                    && text(m, "local_code") == code
                    && instant_field(m, "valid_from").is_none_or(|f| f <= now)
                    && instant_field(m, "valid_to").is_none_or(|t| now < t)
            })
        };
        let mut unmapped: BTreeMap<(String, String), (u64, Vec<UnmappedCodeSeen>)> =
            BTreeMap::new();
        for u in self.store.unmapped_codes().await? {
            if resolves_now(&u.system, &u.kind, &u.code) {
                continue;
            }
            let entry = unmapped
                .entry((u.system.clone(), u.kind.clone()))
                .or_default();
            entry.0 += u.count;
            entry.1.push(UnmappedCodeSeen {
                code: u.code,
                count: u.count,
                first_seen: u.first_seen.to_string(),
                last_seen: u.last_seen.to_string(),
            });
        }
        let unmapped: Vec<UnmappedGroup> = unmapped
            .into_iter()
            .map(|((system, kind), (count, codes))| UnmappedGroup {
                system,
                kind,
                count,
                codes,
            })
            .collect();

        let horizon = Instant::from_micros(
            now.micros()
                .saturating_add(i64::from(horizon_days) * 86_400_000_000),
        )
        .unwrap_or(Instant::MAX);
        let expiring: Vec<Value> = mappings
            .iter()
            .filter(|m| instant_field(m, "valid_to").is_some_and(|t| now < t && t <= horizon))
            .cloned()
            .collect();

        let sites = list("sites");
        let bad_zones: Vec<SiteZoneProblem> = sites
            .iter()
            .filter_map(|s| {
                let zone = text(s, "time_zone");
                let rule = match check_zone("time_zone", zone) {
                    Ok(_) => return None,
                    Err(e) => e.rule,
                };
                Some(SiteZoneProblem {
                    site_id: text(s, "site_id").to_string(),
                    time_zone: zone.to_string(),
                    rule,
                })
            })
            .collect();

        let personnel = list("personnel");
        let unqualified: Vec<PersonProblem> = personnel
            .iter()
            .filter(|p| active(p) && !qualified(p, None, now))
            .map(|p| PersonProblem {
                person_id: text(p, "person_id").to_string(),
                rule: "holds no qualification valid now at any site".to_string(),
            })
            .collect();
        let acting = self.acting_without_qualification(known_at).await?;

        let uncalibrated: Vec<EquipmentProblem> = list("equipment")
            .iter()
            .filter(|e| active(e))
            .filter_map(|e| {
                let until = instant_field(e, "calibration_valid_until");
                let rule = match until {
                    None => "has no calibration on record".to_string(),
                    Some(u) if u <= now => format!("calibration expired at {u}"),
                    Some(_) => return None,
                };
                Some(EquipmentProblem {
                    equipment_id: text(e, "equipment_id").to_string(),
                    site_id: text(e, "site_id").to_string(),
                    rule,
                })
            })
            .collect();

        let duplicates = likely_duplicates(sites, personnel);
        let discrepancies = self.zone_discrepancies(known_at).await?;
        let problems = unmapped.len()
            + expiring.len()
            + bad_zones.len()
            + unqualified.len()
            + acting.len()
            + uncalibrated.len()
            + duplicates.len()
            + discrepancies.len();
        Ok(AlignmentReport {
            generated_at: now.to_string(),
            known_at: known_at.to_string(),
            expiry_horizon_days: horizon_days,
            problems,
            unmapped_codes: unmapped,
            expiring_crosswalks: expiring,
            sites_without_valid_zone: bad_zones,
            personnel_without_current_qualification: unqualified,
            personnel_acting_without_qualification: acting,
            equipment_past_calibration: uncalibrated,
            likely_duplicates: duplicates,
            time_zone_discrepancies: discrepancies,
            steps_without_verification_policy: steps_without_policy(
                list("products"),
                list("verification_policies"),
                now,
            ),
        })
    }

    /// Events recorded at a site by a person (`actor` `person/<id>`) who held no
    /// qualification at that site at the event's instant, by any version of their record
    /// (a renewal replaces the list, but work done under the old qualification stays
    /// covered). Reads the whole ledger.
    async fn acting_without_qualification(
        &self,
        known_at: Instant,
    ) -> Result<Vec<Value>, AppError> {
        let mut qualifications: HashMap<String, Value> = HashMap::new();
        let mut found = Vec::new();
        let mut after = 0i64;
        loop {
            let rows = self.store.scan(after, 1000).await?;
            let Some(last) = rows.last() else { break };
            after = last.position;
            for event in rows.iter().filter_map(|r| r.event.as_ref().ok()) {
                let (Some(site), Some(person_id)) =
                    (&event.site, event.actor.strip_prefix("person/"))
                else {
                    continue;
                };
                if !qualifications.contains_key(person_id) {
                    let stream = StreamId::person(person_id);
                    let history = self.store.stream_events(&stream, known_at).await?;
                    let every: Vec<Value> = effective_events(&history, Instant::MAX, known_at)
                        .into_iter()
                        .filter_map(|e| e.body.data.get("qualifications"))
                        .filter_map(Value::as_array)
                        .flatten()
                        .cloned()
                        .collect();
                    qualifications.insert(person_id.to_string(), json!({"qualifications": every}));
                }
                let at = event.occurred_at.instant;
                let ok = qualifications
                    .get(person_id)
                    .is_some_and(|p| qualified(p, Some(site), at));
                if !ok {
                    found.push(json!({"person_id": person_id, "site_id": site,
                        "event_id": event.event_id.to_string(), "stream": event.stream,
                        "occurred_at": at.to_string(),
                        "rule": format!("{person_id} held no qualification at {site} valid at that instant")}));
                }
            }
        }
        Ok(found)
    }

    /// The time-zone discrepancies Autolog flagged, by site.
    async fn zone_discrepancies(&self, known_at: Instant) -> Result<Vec<Value>, AppError> {
        let mut found = Vec::new();
        for stream in self
            .all_streams_with_prefix(ZONE_DISCREPANCY_PREFIX)
            .await?
        {
            for event in self.store.stream_events(&stream, known_at).await? {
                found.push(event.body.data.clone());
            }
        }
        Ok(found)
    }
}

/// Two sites with one GLN, or with the same name and address; two people with the same
/// name qualified at the same site.
fn likely_duplicates(sites: &[Value], personnel: &[Value]) -> Vec<Value> {
    let mut found = Vec::new();
    let mut by_gln: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_name_address: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for s in sites {
        let id = text(s, "site_id");
        if let Some(gln) = s.get("gln").and_then(Value::as_str) {
            by_gln.entry(gln).or_default().push(id);
        }
        let address = s.get("postal_address").map(|a| {
            let lines: Vec<&str> = a
                .get("lines")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "{} {} {} {}",
                lines.join(" "),
                text(a, "city"),
                text(a, "postal_code"),
                text(a, "country")
            )
        });
        if let Some(address) = address {
            let key = format!("{} | {}", normalised(text(s, "name")), normalised(&address));
            by_name_address.entry(key).or_default().push(id);
        }
    }
    for (gln, ids) in by_gln.into_iter().filter(|(_, ids)| ids.len() > 1) {
        found
            .push(json!({"registry": "sites", "ids": ids, "rule": format!("share the GLN {gln}")}));
    }
    for (_, ids) in by_name_address.into_iter().filter(|(_, ids)| ids.len() > 1) {
        found.push(json!({"registry": "sites", "ids": ids, "rule": "have the same name and postal address"}));
    }
    let mut by_name_site: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for p in personnel {
        let name = normalised(text(p, "printed_name"));
        let mut sites: Vec<&str> = p
            .get("qualifications")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|q| text(q, "site_id"))
            .collect();
        sites.sort_unstable();
        sites.dedup();
        for site in sites {
            by_name_site
                .entry((name.clone(), site.to_string()))
                .or_default()
                .push(text(p, "person_id"));
        }
    }
    for ((_, site), ids) in by_name_site.into_iter().filter(|(_, ids)| ids.len() > 1) {
        found.push(json!({"registry": "personnel", "ids": ids,
            "rule": format!("have the same printed name and are both qualified at {site}")}));
    }
    found
}

/// The alignment report: every finding in the network's reference data, with what to fix.
/// Records quoted as they are registered (crosswalks, findings that name events) stay
/// JSON documents.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct AlignmentReport {
    pub generated_at: String,
    pub known_at: String,
    pub expiry_horizon_days: u32,
    /// How many findings in all.
    pub problems: usize,
    pub unmapped_codes: Vec<UnmappedGroup>,
    /// Crosswalk mappings whose end falls within the horizon.
    pub expiring_crosswalks: Vec<Value>,
    pub sites_without_valid_zone: Vec<SiteZoneProblem>,
    pub personnel_without_current_qualification: Vec<PersonProblem>,
    pub personnel_acting_without_qualification: Vec<Value>,
    pub equipment_past_calibration: Vec<EquipmentProblem>,
    pub likely_duplicates: Vec<Value>,
    pub time_zone_discrepancies: Vec<Value>,
    /// Each active product's verified steps that no verification policy in force names
    /// (for the product or for every product): they need no verifier anywhere. Listed to
    /// be decided, not counted in `problems`.
    pub steps_without_verification_policy: Vec<StepWithoutPolicy>,
}

/// A product's step that no verification policy names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct StepWithoutPolicy {
    pub product_code: String,
    pub step: String,
}

/// The (product, step) pairs with no verification policy in force now.
fn steps_without_policy(
    products: &[Value],
    policies: &[Value],
    now: Instant,
) -> Vec<StepWithoutPolicy> {
    let in_force: Vec<&Value> = policies
        .iter()
        .filter(|p| {
            active(p)
                && instant_field(p, "valid_from").is_none_or(|f| f <= now)
                && instant_field(p, "valid_to").is_none_or(|t| now < t)
        })
        .collect();
    let mut out = Vec::new();
    for product in products.iter().filter(|p| active(p)) {
        let code = text(product, "product_code");
        for (step, _, _) in autolog_domain::access::verification::VERIFIED_STEPS {
            let named = in_force.iter().any(|p| {
                text(p, "step") == *step
                    && p.get("product_code")
                        .and_then(Value::as_str)
                        .is_none_or(|c| c == code)
            });
            if !named {
                out.push(StepWithoutPolicy {
                    product_code: code.to_string(),
                    step: (*step).to_string(),
                });
            }
        }
    }
    out
}

/// A source system's codes of one kind that no crosswalk maps, with how often each came.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct UnmappedGroup {
    pub system: String,
    pub kind: String,
    pub count: u64,
    pub codes: Vec<UnmappedCodeSeen>,
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct UnmappedCodeSeen {
    pub code: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SiteZoneProblem {
    pub site_id: String,
    pub time_zone: String,
    pub rule: String,
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PersonProblem {
    pub person_id: String,
    pub rule: String,
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct EquipmentProblem {
    pub equipment_id: String,
    pub site_id: String,
    pub rule: String,
}
