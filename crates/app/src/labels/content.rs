//! A label's content from the ledger: the template in force for the product and
//! container, and the facts the chain recorded about the container.

use autolog_domain::catalogue::enrolment::ChainEnrolledV1;
use autolog_domain::catalogue::Payload;
use autolog_domain::identifiers::{Coi, Din, UnitId};
use autolog_domain::labels::content::{self, Common, LabelContent};
use autolog_domain::labels::template::{phrases, Stock};
use autolog_domain::ledger::zone::check_zone;
use autolog_domain::{FieldError, Instant, StreamId};
use jiff::tz::TimeZone;
use serde_json::Value;

use crate::chain::custody::ChainFacts;
use crate::chain::rule_reads::RuleReads;
use crate::ledger::read::text;
use crate::{AppError, Autolog};

/// A label template as in force now, with its version (the number of its events).
pub(crate) struct Template {
    pub template_id: String,
    pub version: u32,
    pub stock: Stock,
    isbt128_product_code: Option<String>,
    expiry_hours: Option<u32>,
    patient_key: bool,
    omitted: Vec<String>,
}

const TEMPLATES: &str = "label-template/";

fn refused(field: &str, value: &str, rule: String) -> AppError {
    AppError::Invalid(FieldError::new(field, value, rule))
}

impl Autolog {
    /// The template named, or the product's one active template for this kind of container.
    pub(crate) async fn label_template(
        &self,
        template_id: Option<&str>,
        product_code: &str,
        kind: &str,
    ) -> Result<Template, AppError> {
        let ids = match template_id.filter(|t| !t.is_empty()) {
            Some(id) => vec![format!("{TEMPLATES}{id}")],
            None => {
                self.store
                    .streams_with_prefix(TEMPLATES, "", 10_000)
                    .await?
            }
        };
        let now = self.now();
        let mut found = Vec::new();
        for stream in ids {
            let events = self.store.stream_events(&stream, Instant::MAX).await?;
            let state =
                autolog_domain::catalogue::stream_state(&stream, &events, now, Instant::MAX);
            if state.events.is_empty() {
                let id = stream.trim_start_matches(TEMPLATES);
                return Err(refused(
                    "template_id",
                    id,
                    "is not a registered label template".into(),
                ));
            }
            let t = &state.state;
            let fits = text(t, "product_code") == product_code && text(t, "container_kind") == kind;
            let active = matches!(text(t, "status"), "" | "active") && in_force(t, now);
            match (template_id.is_some(), fits, active) {
                (true, false, _) => {
                    return Err(refused(
                        "template_id",
                        text(t, "template_id"),
                        format!(
                            "labels {} of product {}, not a {} of product {product_code}",
                            text(t, "container_kind"),
                            text(t, "product_code"),
                            kind.replace('_', " ")
                        ),
                    ))
                }
                (true, true, false) => {
                    return Err(refused(
                        "template_id",
                        text(t, "template_id"),
                        "is not active and in force now".into(),
                    ))
                }
                (_, true, true) => found.push(template_of(t, state.events.len())),
                _ => {}
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(refused("template_id", "", format!("product {product_code} has no active label template for a {}: a reference-data steward registers one (label_template.defined)", kind.replace('_', " ")))),
            n => Err(refused("template_id", "", format!("product {product_code} has {n} active templates for a {}: name one ({})", kind.replace('_', " "), found.iter().map(|t| t.template_id.as_str()).collect::<Vec<_>>().join(", ")))),
        }
    }

    /// The content of the container's label, from what the chain recorded about it.
    pub(crate) async fn label_content(
        &self,
        facts: &ChainFacts,
        enrolment: &ChainEnrolledV1,
        template: &Template,
        (kind, container): (&str, &str),
        reads: &RuleReads,
    ) -> Result<LabelContent, AppError> {
        let coi = Coi::parse("coi", &facts.coi)?;
        let product = &facts.product;
        let storage = product.get("storage_temperature");
        let celsius = |k: &str| {
            storage
                .and_then(|s| s.get(k))
                .and_then(Value::as_f64)
                .unwrap_or_default()
        };
        let common = Common {
            coi: &coi,
            description: text(product, "name"),
            storage_min_celsius: celsius("min_celsius"),
            storage_max_celsius: celsius("max_celsius"),
            patient_key: template
                .patient_key
                .then_some(enrolment.patient_key.as_str()),
            phrases: phrases(&template.stock.language),
            omitted: &template.omitted,
        };
        match kind {
            "collection_bag" => {
                self.bag_content(facts, &common, template, container, reads)
                    .await
            }
            "final_unit" => self.unit_content(facts, &common, container, reads).await,
            _ => self.shipper_content(facts, &common, container, reads).await,
        }
    }

    async fn bag_content(
        &self,
        facts: &ChainFacts,
        common: &Common<'_>,
        template: &Template,
        container: &str,
        reads: &RuleReads,
    ) -> Result<LabelContent, AppError> {
        let din = Din::parse("container", container)?;
        let collection = facts.entries.iter().find_map(|e| match &e.payload {
            Payload::ChainCollected(c) => {
                let at = c
                    .dins
                    .iter()
                    .position(|d| Din::parse("din", d).is_ok_and(|d| d == din))?;
                Some((c, at))
            }
            _ => None,
        });
        let Some((c, at)) = collection else {
            return Err(refused(
                "container",
                container,
                "was not collected on this chain".into(),
            ));
        };
        let site = self.label_site(reads, &c.collection_site_id).await?;
        let collected_at = Instant::parse_rfc3339("ended_at", &c.ended_at)?;
        let expires_at = template.expiry_hours.map(|h| later(collected_at, h));
        let code = template.isbt128_product_code.as_deref().unwrap_or_default();
        let bag = content::Bag {
            din: &din,
            number: u32::try_from(at + 1).unwrap_or(u32::MAX),
            of: u32::try_from(c.dins.len()).unwrap_or(u32::MAX),
            product_code: code,
            collected_at,
            expires_at,
            zone: &site.zone,
            site_name: &site.name,
        };
        Ok(content::bag_label(common, &bag))
    }

    async fn unit_content(
        &self,
        facts: &ChainFacts,
        common: &Common<'_>,
        container: &str,
        reads: &RuleReads,
    ) -> Result<LabelContent, AppError> {
        let unit = UnitId::parse("container", container)?;
        let produced = facts.entries.iter().find_map(|e| match &e.payload {
            Payload::BatchUnitsProduced(p) if p.units.iter().any(|u| u == container) => {
                Some((p, e.occurred_at))
            }
            _ => None,
        });
        let Some((p, produced_at)) = produced else {
            return Err(refused(
                "container",
                container,
                "was not produced on this chain".into(),
            ));
        };
        let expiry = facts.view().unit_expiry.get(container).copied();
        let Some(expires_at) = expiry else {
            return Err(refused("container", container, "has no expiry recorded: a final unit's label carries its expiry (batch.units_produced expires_at)".into()));
        };
        let site = self.label_site(reads, &p.site_id).await?;
        let u = content::Unit {
            unit: &unit,
            produced_at,
            expires_at,
            zone: &site.zone,
            releasing_site: &site.name,
        };
        Ok(content::unit_label(common, &u))
    }

    async fn shipper_content(
        &self,
        facts: &ChainFacts,
        common: &Common<'_>,
        sscc: &str,
        reads: &RuleReads,
    ) -> Result<LabelContent, AppError> {
        let handoff = facts.entries.iter().rev().find_map(|e| match &e.payload {
            Payload::CustodyHandedOff(h) if h.container_id.trim_start_matches("(00)") == sscc => {
                Some(h)
            }
            _ => None,
        });
        let Some(h) = handoff else {
            return Err(refused(
                "container",
                sscc,
                "is the container of no handoff of this chain".into(),
            ));
        };
        let from = self.label_site(reads, &h.from_site_id).await?;
        let to = self.label_site(reads, &h.destination_site_id).await?;
        let s = content::Shipper {
            sscc,
            from_site: &from.name,
            to_site: &to.name,
            to_postal_code: to.postal_code.as_deref(),
        };
        Ok(content::shipper_label(common, &s))
    }

    /// A site's name, zone and postal code, as a label prints them.
    async fn label_site(&self, reads: &RuleReads, site_id: &str) -> Result<LabelSite, AppError> {
        let site = self
            .reference(reads, StreamId::site(site_id).as_ref())
            .await?;
        let zone = check_zone("time_zone", text(&site, "time_zone")).map_err(|e| {
            refused(
                "site_id",
                site_id,
                format!("has no valid time zone: {}", e.rule),
            )
        })?;
        let postal = site
            .get("postal_address")
            .map(|a| text(a, "postal_code").to_string())
            .filter(|c| !c.is_empty());
        Ok(LabelSite {
            name: text(&site, "name").to_string(),
            zone,
            postal_code: postal,
        })
    }
}

struct LabelSite {
    name: String,
    zone: TimeZone,
    postal_code: Option<String>,
}

fn later(at: Instant, hours: u32) -> Instant {
    Instant::from_micros(at.micros() + i64::from(hours) * 3_600_000_000).unwrap_or(at)
}

fn in_force(t: &Value, now: Instant) -> bool {
    let bound = |k: &str| Instant::parse_rfc3339(k, text(t, k)).ok();
    bound("valid_from").is_none_or(|f| f <= now) && bound("valid_to").is_none_or(|to| now < to)
}

fn template_of(t: &Value, version: usize) -> Template {
    let number = |k: &str| {
        t.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    Template {
        template_id: text(t, "template_id").to_string(),
        version: u32::try_from(version).unwrap_or(u32::MAX),
        stock: Stock {
            width_mm: number("width_mm").unwrap_or(100),
            height_mm: number("height_mm").unwrap_or(60),
            media: text(t, "media").to_string(),
            language: text(t, "language").to_string(),
        },
        isbt128_product_code: Some(text(t, "isbt128_product_code").to_string())
            .filter(|c| !c.is_empty()),
        expiry_hours: number("expiry_hours"),
        patient_key: text(t, "patient_identification") == "patient_key",
        omitted: t
            .get("omitted_lines")
            .and_then(Value::as_array)
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}
