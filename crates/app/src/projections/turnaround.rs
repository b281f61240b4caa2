//! Turnaround: vein-to-vein time and time per step, per chain and aggregated per product
//! and site (median, 90th percentile), as of any moment. Durations are on instants.

use std::collections::BTreeMap;

use autolog_domain::catalogue::Payload;
use autolog_domain::chain::ChainContext;
use autolog_domain::ledger::bitemporal::effective_events;
use autolog_domain::{Event, Instant};

use crate::chain::rule_reads::RuleReads;
use crate::ledger::read::{parse_time, payload_of};
use crate::{AppError, Autolog};

/// One step of a chain as it happened: first time performed, where.
#[derive(Debug, Clone)]
struct Performed {
    step_code: String,
    at: Instant,
    site_id: String,
}

fn hours(from: Instant, to: Instant) -> f64 {
    (to.micros() - from.micros()) as f64 / 3_600_000_000.0
}

/// How long something took over many chains, in hours rounded to 0.01: median and 90th
/// percentile (nearest rank), least and most; only the count when there is nothing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_hours: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_hours: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_hours: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_hours: Option<f64>,
}

/// Median and 90th percentile (nearest rank) of a list, in hours, rounded to 0.01.
pub fn summary(values: &[f64]) -> Summary {
    if values.is_empty() {
        return Summary {
            count: 0,
            median_hours: None,
            p90_hours: None,
            min_hours: None,
            max_hours: None,
        };
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    // Nearest rank: the smallest value with at least 90 % of the values at or below it.
    let rank = ((0.9 * n as f64).ceil() as usize).clamp(1, n);
    let round = |v: f64| (v * 100.0).round() / 100.0;
    Summary {
        count: n,
        median_hours: Some(round(median)),
        p90_hours: Some(round(sorted[rank - 1])),
        min_hours: Some(round(sorted[0])),
        max_hours: Some(round(sorted[n - 1])),
    }
}

/// Turnaround as of a moment: per chain, and aggregated.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Turnaround {
    pub valid_at: String,
    pub known_at: String,
    pub chains: Vec<ChainTurnaround>,
    /// Vein-to-vein time per product code.
    pub by_product: BTreeMap<String, ProductTurnaround>,
    pub vein_to_vein_by_treatment_site: Vec<SiteTurnaround>,
    pub by_step_and_site: Vec<StepTurnaround>,
}

/// One chain: its vein-to-vein time (once administered) and each step's time.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ChainTurnaround {
    pub coi: String,
    pub product_code: String,
    pub vein_to_vein_hours: Option<f64>,
    pub steps: Vec<StepTaken>,
}

/// A step the first time it was performed, and the hours since the step before it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct StepTaken {
    pub step_code: String,
    pub site_id: String,
    pub at: String,
    pub hours_since_previous: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ProductTurnaround {
    pub vein_to_vein: Summary,
}

/// Vein-to-vein time of a product at one treatment center.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct SiteTurnaround {
    #[serde(flatten)]
    pub summary: Summary,
    pub product_code: String,
    pub treatment_site_id: String,
}

/// The time a step took at one site.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct StepTurnaround {
    #[serde(flatten)]
    pub summary: Summary,
    pub step_code: String,
    pub site_id: String,
}

impl Autolog {
    /// Turnaround as of (`valid_at`, `known_at`), optionally for one product: per chain the
    /// vein-to-vein time (collection start to administration) and the time each step took
    /// since the step before it; aggregated per product and per step and site.
    pub async fn turnaround(
        &self,
        product_code: Option<&str>,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<Turnaround, AppError> {
        if let Some(code) = product_code {
            autolog_domain::ledger::envelope::check_code("product_code", code)?;
        }
        let now = self.now();
        let valid_at = parse_time("valid_at", valid_at, now)?;
        let known_at = self.settled_known_at(known_at, now).await?;
        let mut chains = Vec::new();
        let mut vein_to_vein: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut vein_to_vein_by_site: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        let mut per_step: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        let mut contexts = BTreeMap::new();
        for stream in self.all_streams_with_prefix("coi/").await? {
            let events = self.store.stream_events(&stream, known_at).await?;
            let effective = effective_events(&events, valid_at, known_at)
                .into_iter()
                .map(|e| Ok((e, payload_of(e)?)))
                .collect::<Result<Vec<_>, AppError>>()?;
            let Some(enrolment) = effective.iter().find_map(|(_, p)| match p {
                Payload::ChainEnrolled(enrolled) => Some(enrolled.clone()),
                _ => None,
            }) else {
                continue;
            };
            let product = enrolment.product_code.clone();
            if product_code.is_some_and(|p| p != product) {
                continue;
            }
            if !contexts.contains_key(&product) {
                let ctx = self.chain_context(&product, &RuleReads::default()).await?;
                contexts.insert(product.clone(), ctx);
            }
            let ctx = contexts.get(&product).cloned().unwrap_or_default();
            let (mut performed, collection_start, administered) = steps_performed(&effective, &ctx);
            performed.sort_by_key(|p| p.at);
            let mut steps = Vec::new();
            let mut previous = collection_start;
            for p in &performed {
                let took = previous.map(|from| hours(from, p.at));
                if let Some(h) = took {
                    per_step
                        .entry((p.step_code.clone(), p.site_id.clone()))
                        .or_default()
                        .push(h);
                }
                steps.push(StepTaken {
                    step_code: p.step_code.clone(),
                    site_id: p.site_id.clone(),
                    at: p.at.to_string(),
                    hours_since_previous: took.map(|h| (h * 100.0).round() / 100.0),
                });
                previous = Some(p.at);
            }
            let v2v = match (collection_start, administered) {
                (Some(from), Some(to)) => {
                    let h = hours(from, to);
                    vein_to_vein.entry(product.clone()).or_default().push(h);
                    vein_to_vein_by_site
                        .entry((product.clone(), enrolment.treatment_site_id.clone()))
                        .or_default()
                        .push(h);
                    Some((h * 100.0).round() / 100.0)
                }
                _ => None,
            };
            chains.push(ChainTurnaround {
                coi: stream.trim_start_matches("coi/").to_string(),
                product_code: product,
                vein_to_vein_hours: v2v,
                steps,
            });
        }
        let by_product = vein_to_vein
            .iter()
            .map(|(p, v)| {
                let vein_to_vein = summary(v);
                (p.clone(), ProductTurnaround { vein_to_vein })
            })
            .collect();
        let by_treatment_site = vein_to_vein_by_site
            .iter()
            .map(|((product, site), v)| SiteTurnaround {
                summary: summary(v),
                product_code: product.clone(),
                treatment_site_id: site.clone(),
            })
            .collect();
        let by_step = per_step
            .iter()
            .map(|((step, site), v)| StepTurnaround {
                summary: summary(v),
                step_code: step.clone(),
                site_id: site.clone(),
            })
            .collect();
        Ok(Turnaround {
            valid_at: valid_at.to_string(),
            known_at: known_at.to_string(),
            chains,
            by_product,
            vein_to_vein_by_treatment_site: by_treatment_site,
            by_step_and_site: by_step,
        })
    }
}

/// Each step the first time it was performed (its code, site and instant), the start of
/// the first collection and the first administration, in valid time.
fn steps_performed(
    effective: &[(&Event, Payload)],
    ctx: &ChainContext,
) -> (Vec<Performed>, Option<Instant>, Option<Instant>) {
    let mut performed: Vec<Performed> = Vec::new();
    let mut collection_start: Option<Instant> = None;
    let mut administered: Option<Instant> = None;
    for (e, payload) in effective {
        let occurred = e.occurred_at.instant;
        let (step, site, at) = match payload {
            Payload::ChainCollected(c) => {
                let parse = |field: &str, text: &str| Instant::parse_rfc3339(field, text).ok();
                let started = parse("started_at", &c.started_at).unwrap_or(occurred);
                collection_start = Some(collection_start.map_or(started, |s| s.min(started)));
                (
                    ctx.collecting_step.clone().unwrap_or_default(),
                    c.collection_site_id.clone(),
                    parse("ended_at", &c.ended_at).unwrap_or(occurred),
                )
            }
            Payload::CustodyHandedOff(h) => (h.step_code.clone(), h.from_site_id.clone(), occurred),
            Payload::CustodyReceived(r) => {
                (r.step_code.clone(), r.receiving_site_id.clone(), occurred)
            }
            Payload::ChainStepPerformed(p) => (p.step_code.clone(), p.site_id.clone(), occurred),
            Payload::ChainAdministered(a) => {
                administered.get_or_insert(occurred);
                (a.step_code.clone(), a.site_id.clone(), occurred)
            }
            _ => continue,
        };
        if step.is_empty() || performed.iter().any(|p| p.step_code == step) {
            continue;
        }
        performed.push(Performed {
            step_code: step,
            at,
            site_id: site,
        });
    }
    (performed, collection_start, administered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_90th_percentile_by_nearest_rank() {
        let s = summary(&[10.0, 20.0, 30.0, 40.0]);
        assert_eq!(s.median_hours, Some(25.0));
        assert_eq!(s.p90_hours, Some(40.0));
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = summary(&values);
        assert_eq!(s.median_hours, Some(5.5));
        assert_eq!(s.p90_hours, Some(9.0));
        assert_eq!(summary(&[]).count, 0);
        assert_eq!(
            serde_json::to_value(summary(&[])).expect("json"),
            serde_json::json!({"count": 0}),
            "nothing but the count when there is nothing"
        );
        assert_eq!(summary(&[3.0]).p90_hours, Some(3.0));
    }
}
