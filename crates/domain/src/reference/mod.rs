//! Reference-data payloads: the canonical sites, personnel, equipment, material lots,
//! process steps, source systems and crosswalks, each validated field by field.

pub mod crosswalk;

use serde::Deserialize;

use crate::error::FieldError;
use crate::identifiers::{Fin, Gln};
use crate::ledger::envelope::{check_code as code, check_text};
use crate::ledger::event_type::Check;
use crate::ledger::time::Instant;
use crate::reference::crosswalk::{Crosswalk, CODE_KINDS};

/// The kinds of site the network knows (glossary: apheresis center ... treatment center).
pub const SITE_TYPES: &[&str] = &[
    "apheresis_center",
    "manufacturing_site",
    "laboratory",
    "logistics_depot",
    "treatment_center",
];

/// Statuses of a reference record.
pub const RECORD_STATUSES: &[&str] = &["active", "inactive", "retired"];

pub const EQUIPMENT_TYPES: &[&str] = &[
    "apheresis_device",
    "controlled_rate_freezer",
    "bioreactor",
    "cell_processor",
    "centrifuge",
    "incubator",
    "freezer",
    "dry_shipper",
    "temperature_logger",
    "other",
];

pub const LOT_STATUSES: &[&str] = &["released", "quarantined", "recalled"];

/// The GS1 CBV 2.0 standard business steps (the `bizStep` enumeration of the EPCIS 2.0
/// JSON schema) a canonical process step may correspond to.
pub const CBV_BIZ_STEPS: &[&str] = &[
    "accepting",
    "arriving",
    "assembling",
    "collecting",
    "commissioning",
    "consigning",
    "creating_class_instance",
    "cycle_counting",
    "decommissioning",
    "departing",
    "destroying",
    "disassembling",
    "dispensing",
    "encoding",
    "entering_exiting",
    "holding",
    "inspecting",
    "installing",
    "killing",
    "loading",
    "other",
    "packing",
    "picking",
    "receiving",
    "removing",
    "repackaging",
    "repairing",
    "replacing",
    "reserving",
    "retail_selling",
    "sampling",
    "sensor_reporting",
    "shipping",
    "staging_outbound",
    "stock_taking",
    "stocking",
    "storing",
    "transporting",
    "unloading",
    "unpacking",
    "void_shipping",
];

pub const SOURCE_SYSTEM_KINDS: &[&str] = &[
    "apheresis",
    "logistics",
    "mes",
    "lims",
    "qms",
    "treatment",
    "ltfu",
];

/// An amendment changes something: at least one of its attributes is given (`rule` says
/// which may be).
pub(crate) fn changes_something(changes: &[bool], rule: &str) -> Result<(), FieldError> {
    if changes.contains(&true) {
        Ok(())
    } else {
        Err(FieldError::new("", "{}", rule))
    }
}

pub(crate) fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), FieldError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            value,
            format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

pub(crate) fn instant(field: &str, value: &str) -> Result<Instant, FieldError> {
    Instant::parse_rfc3339(field, value)
}

fn date(field: &str, value: &str) -> Result<(), FieldError> {
    value.parse::<jiff::civil::Date>().map(|_| ()).map_err(|e| {
        FieldError::new(
            field,
            value,
            format!("must be a calendar date YYYY-MM-DD ({e})"),
        )
    })
}

pub(crate) fn interval(from: Option<&str>, to: Option<&str>) -> Result<(), FieldError> {
    let from = from.map(|f| instant("valid_from", f)).transpose()?;
    let to_instant = to.map(|t| instant("valid_to", t)).transpose()?;
    if let (Some(f), Some(t), Some(text)) = (from, to_instant, to) {
        if t <= f {
            return Err(FieldError::new(
                "valid_to",
                text,
                format!("must be later than valid_from ({f})"),
            ));
        }
    }
    Ok(())
}

fn site_types(field: &str, types: &[String]) -> Result<(), FieldError> {
    if types.is_empty() {
        return Err(FieldError::new(
            field,
            "[]",
            "must name at least one site type",
        ));
    }
    for (i, t) in types.iter().enumerate() {
        one_of(&format!("{field}[{i}]"), t, SITE_TYPES)?;
    }
    Ok(())
}

/// FDA Establishment Identifier: 7 to 10 digits.
fn fda_fei(field: &str, value: &str) -> Result<(), FieldError> {
    if (7..=10).contains(&value.len()) && value.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            value,
            "an FDA FEI number is 7 to 10 digits",
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostalAddress {
    pub lines: Vec<String>,
    pub city: String,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

impl Check for PostalAddress {
    fn check(&self) -> Result<(), FieldError> {
        if self.lines.is_empty() || self.lines.len() > 4 {
            return Err(FieldError::new(
                "postal_address.lines",
                format!("{:?}", self.lines),
                format!("must hold 1 to 4 lines (found {})", self.lines.len()),
            ));
        }
        for (i, line) in self.lines.iter().enumerate() {
            check_text(&format!("postal_address.lines[{i}]"), line, 200)?;
        }
        check_text("postal_address.city", &self.city, 100)?;
        if let Some(pc) = &self.postal_code {
            check_text("postal_address.postal_code", pc, 20)?;
        }
        if self.country.len() != 2 || !self.country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(FieldError::new(
                "postal_address.country",
                &self.country,
                "must be an ISO 3166-1 alpha-2 code such as FR or US",
            ));
        }
        Ok(())
    }
}

/// The optional site attributes shared by registration and amendment.
fn site_extras(
    address: Option<&PostalAddress>,
    gln: Option<&str>,
    fin: Option<&str>,
    fei: Option<&str>,
    status: Option<&str>,
) -> Result<(), FieldError> {
    if let Some(a) = address {
        a.check()?;
    }
    if let Some(g) = gln {
        Gln::parse("gln", g)?;
    }
    if let Some(f) = fin {
        Fin::parse("isbt128_fin", f)?;
    }
    if let Some(f) = fei {
        fda_fei("fda_fei", f)?;
    }
    if let Some(s) = status {
        one_of("status", s, RECORD_STATUSES)?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteRegisteredV1 {
    pub site_id: String,
    pub name: String,
    pub site_types: Vec<String>,
    pub time_zone: String,
    pub postal_address: Option<PostalAddress>,
    pub gln: Option<String>,
    pub isbt128_fin: Option<String>,
    pub fda_fei: Option<String>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for SiteRegisteredV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("site_id", &self.site_id)?;
        check_text("name", &self.name, 200)?;
        site_types("site_types", &self.site_types)?;
        crate::ledger::zone::check_zone("time_zone", &self.time_zone)?;
        site_extras(
            self.postal_address.as_ref(),
            self.gln.as_deref(),
            self.isbt128_fin.as_deref(),
            self.fda_fei.as_deref(),
            self.status.as_deref(),
        )?;
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteAmendedV1 {
    pub name: Option<String>,
    pub site_types: Option<Vec<String>>,
    pub time_zone: Option<String>,
    pub postal_address: Option<PostalAddress>,
    pub gln: Option<String>,
    pub isbt128_fin: Option<String>,
    pub fda_fei: Option<String>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for SiteAmendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        let changes = [
            self.name.is_some(),
            self.site_types.is_some(),
            self.time_zone.is_some(),
            self.postal_address.is_some(),
            self.gln.is_some(),
            self.isbt128_fin.is_some(),
            self.fda_fei.is_some(),
            self.status.is_some(),
            self.valid_from.is_some(),
            self.valid_to.is_some(),
        ];
        changes_something(&changes, "must change at least one attribute of the site")?;
        if let Some(name) = &self.name {
            check_text("name", name, 200)?;
        }
        if let Some(types) = &self.site_types {
            site_types("site_types", types)?;
        }
        if let Some(zone) = &self.time_zone {
            crate::ledger::zone::check_zone("time_zone", zone)?;
        }
        site_extras(
            self.postal_address.as_ref(),
            self.gln.as_deref(),
            self.isbt128_fin.as_deref(),
            self.fda_fei.as_deref(),
            self.status.as_deref(),
        )?;
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qualification {
    pub site_id: String,
    pub role: String,
    pub valid_from: Option<String>,
    pub valid_until: String,
}

fn qualifications(list: &[Qualification]) -> Result<(), FieldError> {
    for (i, q) in list.iter().enumerate() {
        let at = |f: &str| format!("qualifications[{i}].{f}");
        code(&at("site_id"), &q.site_id)?;
        code(&at("role"), &q.role)?;
        let until = instant(&at("valid_until"), &q.valid_until)?;
        if let Some(from) = &q.valid_from {
            let from_instant = instant(&at("valid_from"), from)?;
            if until <= from_instant {
                return Err(FieldError::new(
                    at("valid_until"),
                    &q.valid_until,
                    format!("must be later than valid_from ({from})"),
                ));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonnelRegisteredV1 {
    pub person_id: String,
    pub printed_name: String,
    pub status: Option<String>,
    #[serde(default)]
    pub qualifications: Vec<Qualification>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for PersonnelRegisteredV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("person_id", &self.person_id)?;
        check_text("printed_name", &self.printed_name, 200)?;
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        qualifications(&self.qualifications)?;
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonnelAmendedV1 {
    pub printed_name: Option<String>,
    pub status: Option<String>,
    pub qualifications: Option<Vec<Qualification>>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for PersonnelAmendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        if self.printed_name.is_none()
            && self.status.is_none()
            && self.qualifications.is_none()
            && self.valid_from.is_none()
            && self.valid_to.is_none()
        {
            return Err(FieldError::new(
                "",
                "{}",
                "must change at least one of printed_name, status, qualifications, valid_from, valid_to",
            ));
        }
        if let Some(n) = &self.printed_name {
            check_text("printed_name", n, 200)?;
        }
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        if let Some(q) = &self.qualifications {
            qualifications(q)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EquipmentRegisteredV1 {
    pub equipment_id: String,
    pub equipment_type: String,
    pub site_id: String,
    pub calibration_valid_until: Option<String>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for EquipmentRegisteredV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("equipment_id", &self.equipment_id)?;
        one_of("equipment_type", &self.equipment_type, EQUIPMENT_TYPES)?;
        code("site_id", &self.site_id)?;
        if let Some(c) = &self.calibration_valid_until {
            instant("calibration_valid_until", c)?;
        }
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

/// Some attributes of registered equipment change (moved to another site, retired...).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EquipmentAmendedV1 {
    pub equipment_type: Option<String>,
    pub site_id: Option<String>,
    pub calibration_valid_until: Option<String>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for EquipmentAmendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        let changes = [
            self.equipment_type.is_some(),
            self.site_id.is_some(),
            self.calibration_valid_until.is_some(),
            self.status.is_some(),
            self.valid_from.is_some(),
            self.valid_to.is_some(),
        ];
        changes_something(
            &changes,
            "must change at least one attribute of the equipment",
        )?;
        if let Some(t) = &self.equipment_type {
            one_of("equipment_type", t, EQUIPMENT_TYPES)?;
        }
        if let Some(site) = &self.site_id {
            code("site_id", site)?;
        }
        if let Some(c) = &self.calibration_valid_until {
            instant("calibration_valid_until", c)?;
        }
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EquipmentCalibratedV1 {
    pub calibration_valid_until: String,
}

impl Check for EquipmentCalibratedV1 {
    fn check(&self) -> Result<(), FieldError> {
        instant("calibration_valid_until", &self.calibration_valid_until).map(|_| ())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterialLotRegisteredV1 {
    pub material: String,
    pub supplier: String,
    pub lot: String,
    pub expiry: String,
    pub status: String,
}

impl Check for MaterialLotRegisteredV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("material", &self.material)?;
        check_text("supplier", &self.supplier, 200)?;
        code("lot", &self.lot)?;
        date("expiry", &self.expiry)?;
        one_of("status", &self.status, LOT_STATUSES)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterialLotStatusChangedV1 {
    pub status: String,
}

impl Check for MaterialLotStatusChangedV1 {
    fn check(&self) -> Result<(), FieldError> {
        one_of("status", &self.status, LOT_STATUSES)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessStepDefinedV1 {
    pub step_code: String,
    pub description: String,
    pub cbv_biz_step: String,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for ProcessStepDefinedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("step_code", &self.step_code)?;
        check_text("description", &self.description, 500)?;
        one_of("cbv_biz_step", &self.cbv_biz_step, CBV_BIZ_STEPS)?;
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

/// A defined step's description, CBV equivalent, status or validity change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessStepAmendedV1 {
    pub description: Option<String>,
    pub cbv_biz_step: Option<String>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for ProcessStepAmendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        let changes = [
            self.description.is_some(),
            self.cbv_biz_step.is_some(),
            self.status.is_some(),
            self.valid_from.is_some(),
            self.valid_to.is_some(),
        ];
        changes_something(&changes, "must change at least one attribute of the step")?;
        if let Some(d) = &self.description {
            check_text("description", d, 500)?;
        }
        if let Some(b) = &self.cbv_biz_step {
            one_of("cbv_biz_step", b, CBV_BIZ_STEPS)?;
        }
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

/// The storage temperature range of a product, in degrees Celsius.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureRange {
    pub min_celsius: f64,
    pub max_celsius: f64,
}

impl Check for TemperatureRange {
    fn check(&self) -> Result<(), FieldError> {
        for (field, value) in [
            ("storage_temperature.min_celsius", self.min_celsius),
            ("storage_temperature.max_celsius", self.max_celsius),
        ] {
            if !(-273.15..=100.0).contains(&value) {
                return Err(FieldError::new(
                    field,
                    value.to_string(),
                    "must be between -273.15 and 100 degrees Celsius",
                ));
            }
        }
        if self.max_celsius <= self.min_celsius {
            return Err(FieldError::new(
                "storage_temperature.max_celsius",
                self.max_celsius.to_string(),
                format!("must be higher than min_celsius ({})", self.min_celsius),
            ));
        }
        Ok(())
    }
}

/// One step of a product's process: a canonical step code and the site types that may perform it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessStep {
    pub step_code: String,
    pub site_types: Vec<String>,
}

/// The longest time allowed from one step to a later one, e.g. collection to
/// cryopreservation at most 48 h (2880 minutes). Computed on instants.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessWindow {
    pub from_step: String,
    pub to_step: String,
    pub max_minutes: u32,
}

/// A release test and its specification: a numeric range (`min`/`max` in `unit`) or an
/// expected qualitative result (e.g. `negative`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseTest {
    pub test_code: String,
    pub description: Option<String>,
    pub method: Option<String>,
    pub unit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub expected: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessDefinition {
    pub steps: Vec<ProcessStep>,
    // Required (possibly empty), so that an amendment's merge replaces each list whole.
    pub windows: Vec<ProcessWindow>,
    pub release_tests: Vec<ReleaseTest>,
}

impl Check for ProcessDefinition {
    fn check(&self) -> Result<(), FieldError> {
        if self.steps.is_empty() {
            return Err(FieldError::new(
                "process.steps",
                "[]",
                "a process must have at least one step",
            ));
        }
        let mut order = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("process.steps[{i}]");
            code(&format!("{at}.step_code"), &step.step_code)?;
            if order.contains(&step.step_code.as_str()) {
                return Err(FieldError::new(
                    format!("{at}.step_code"),
                    &step.step_code,
                    "appears twice in the process; each step appears once",
                ));
            }
            site_types(&format!("{at}.site_types"), &step.site_types)?;
            order.push(step.step_code.as_str());
        }
        let index = |field: String, step: &str| {
            order.iter().position(|s| *s == step).ok_or_else(|| {
                FieldError::new(
                    field,
                    step,
                    format!("is not a step of this process ({})", order.join(", ")),
                )
            })
        };
        for (i, w) in self.windows.iter().enumerate() {
            let at = format!("process.windows[{i}]");
            let from = index(format!("{at}.from_step"), &w.from_step)?;
            let to = index(format!("{at}.to_step"), &w.to_step)?;
            if to <= from {
                return Err(FieldError::new(
                    format!("{at}.to_step"),
                    &w.to_step,
                    format!("must come after {} in the process", w.from_step),
                ));
            }
            if w.max_minutes == 0 {
                return Err(FieldError::new(
                    format!("{at}.max_minutes"),
                    "0",
                    "a window must last at least one minute",
                ));
            }
        }
        let mut tests: Vec<&str> = Vec::new();
        for (i, t) in self.release_tests.iter().enumerate() {
            let at = format!("process.release_tests[{i}]");
            code(&format!("{at}.test_code"), &t.test_code)?;
            if tests.contains(&t.test_code.as_str()) {
                return Err(FieldError::new(
                    format!("{at}.test_code"),
                    &t.test_code,
                    "appears twice; each release test appears once",
                ));
            }
            tests.push(&t.test_code);
            for (name, text) in [("description", &t.description), ("method", &t.method)] {
                if let Some(text) = text {
                    check_text(&format!("{at}.{name}"), text, 500)?;
                }
            }
            if let Some(unit) = &t.unit {
                check_text(&format!("{at}.unit"), unit, 32)?;
            }
            let numeric = t.min.is_some() || t.max.is_some();
            match (&t.expected, numeric) {
                (Some(_), true) | (None, false) => {
                    return Err(FieldError::new(
                        format!("{at}.expected"),
                        t.expected.as_deref().unwrap_or("(absent)"),
                        "a specification is either a range (min and/or max) or an expected result, exactly one",
                    ))
                }
                (Some(expected), false) => check_text(&format!("{at}.expected"), expected, 100)?,
                (None, true) => {
                    if let (Some(min), Some(max)) = (t.min, t.max) {
                        if max < min {
                            return Err(FieldError::new(
                                format!("{at}.max"),
                                max.to_string(),
                                format!("must not be lower than min ({min})"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn retention_years(value: Option<u32>) -> Result<(), FieldError> {
    match value {
        Some(y) if !(1..=100).contains(&y) => Err(FieldError::new(
            "retention_years",
            y.to_string(),
            "must be between 1 and 100 years",
        )),
        _ => Ok(()),
    }
}

/// Events a retention period may run from.
pub const RETENTION_ANCHORS: &[&str] = &["enrolment", "collection", "release", "administration"];

/// A retention policy of a product in one jurisdiction: keep the chain's records for
/// `years` after its `from` event (e.g. US, 15 years after administration).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    pub jurisdiction: String,
    pub years: u32,
    pub from: String,
}

fn retention_policies(list: Option<&[RetentionPolicy]>) -> Result<(), FieldError> {
    for (i, p) in list.unwrap_or_default().iter().enumerate() {
        let at = |f: &str| format!("retention_policies[{i}].{f}");
        code(&at("jurisdiction"), &p.jurisdiction)?;
        if !(1..=100).contains(&p.years) {
            return Err(FieldError::new(
                at("years"),
                p.years.to_string(),
                "must be between 1 and 100 years",
            ));
        }
        one_of(&at("from"), &p.from, RETENTION_ANCHORS)?;
    }
    Ok(())
}

/// A product of the portfolio and its process definition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductRegisteredV1 {
    pub product_code: String,
    pub name: String,
    /// The ISBT 128 product code printed in final unit identifiers (from the licensed
    /// ICCBBA tables, held by the sponsor: never shipped with Autolog).
    pub isbt128_product_code: Option<String>,
    pub process: ProcessDefinition,
    pub storage_temperature: TemperatureRange,
    pub retention_class: String,
    pub retention_years: Option<u32>,
    /// Retention per jurisdiction (a chain keeps the longest that applies to it).
    pub retention_policies: Option<Vec<RetentionPolicy>>,
    /// Whether a batch is released only after a signed review of its chain's audit trail
    /// since its last change (`audit_trail.reviewed`).
    pub audit_trail_review_before_release: Option<bool>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for ProductRegisteredV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("product_code", &self.product_code)?;
        check_text("name", &self.name, 200)?;
        if let Some(c) = &self.isbt128_product_code {
            crate::identifiers::check_product_code("isbt128_product_code", c)?;
        }
        self.process.check()?;
        self.storage_temperature.check()?;
        code("retention_class", &self.retention_class)?;
        retention_years(self.retention_years)?;
        retention_policies(self.retention_policies.as_deref())?;
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductAmendedV1 {
    pub name: Option<String>,
    pub isbt128_product_code: Option<String>,
    pub process: Option<ProcessDefinition>,
    pub storage_temperature: Option<TemperatureRange>,
    pub retention_class: Option<String>,
    pub retention_years: Option<u32>,
    pub retention_policies: Option<Vec<RetentionPolicy>>,
    pub audit_trail_review_before_release: Option<bool>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for ProductAmendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        if let Some(c) = &self.isbt128_product_code {
            crate::identifiers::check_product_code("isbt128_product_code", c)?;
        }
        let changes = [
            self.name.is_some(),
            self.isbt128_product_code.is_some(),
            self.process.is_some(),
            self.storage_temperature.is_some(),
            self.retention_class.is_some(),
            self.retention_years.is_some(),
            self.retention_policies.is_some(),
            self.audit_trail_review_before_release.is_some(),
            self.status.is_some(),
            self.valid_from.is_some(),
            self.valid_to.is_some(),
        ];
        changes_something(
            &changes,
            "must change at least one attribute of the product",
        )?;
        if let Some(n) = &self.name {
            check_text("name", n, 200)?;
        }
        if let Some(p) = &self.process {
            p.check()?;
        }
        if let Some(t) = &self.storage_temperature {
            t.check()?;
        }
        if let Some(c) = &self.retention_class {
            code("retention_class", c)?;
        }
        retention_years(self.retention_years)?;
        retention_policies(self.retention_policies.as_deref())?;
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSystemRegisteredV1 {
    pub system_id: String,
    pub kind: String,
    pub owning_site_id: String,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for SourceSystemRegisteredV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("system_id", &self.system_id)?;
        one_of("kind", &self.kind, SOURCE_SYSTEM_KINDS)?;
        code("owning_site_id", &self.owning_site_id)?;
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

/// A source system changes owner, status or validity (its kind is fixed: a system of
/// another kind is another system).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSystemAmendedV1 {
    pub owning_site_id: Option<String>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for SourceSystemAmendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        let changes = [
            self.owning_site_id.is_some(),
            self.status.is_some(),
            self.valid_from.is_some(),
            self.valid_to.is_some(),
        ];
        if !changes.contains(&true) {
            return Err(FieldError::new(
                "",
                "{}",
                "must change at least one of owning_site_id, status, valid_from, valid_to",
            ));
        }
        if let Some(site) = &self.owning_site_id {
            code("owning_site_id", site)?;
        }
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrosswalkMappedV1 {
    pub system: String,
    pub kind: String,
    pub local_code: String,
    pub canonical_id: String,
    pub valid_from: String,
    pub valid_to: Option<String>,
}

impl CrosswalkMappedV1 {
    pub(crate) fn to_crosswalk(&self) -> Result<Crosswalk, FieldError> {
        Ok(Crosswalk {
            system: self.system.clone(),
            kind: self.kind.clone(),
            local_code: self.local_code.clone(),
            canonical_id: self.canonical_id.clone(),
            valid_from: instant("valid_from", &self.valid_from)?,
            valid_to: self
                .valid_to
                .as_deref()
                .map(|t| instant("valid_to", t))
                .transpose()?,
        })
    }
}

impl Check for CrosswalkMappedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("system", &self.system)?;
        one_of("kind", &self.kind, CODE_KINDS)?;
        self.to_crosswalk()?.check()
    }
}

/// Autolog's own flag on an event whose UTC offset disagrees with its recording site's
/// zone at that instant. The event is kept (its instant is exact); the flag says the
/// sender's clock or zone setting is off.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeZoneDiscrepancyFlaggedV1 {
    pub event_id: String,
    pub stream: String,
    pub site_id: String,
    pub site_zone: String,
    pub instant: String,
    pub recorded_offset: String,
    pub expected_offset: String,
}

impl Check for TimeZoneDiscrepancyFlaggedV1 {
    fn check(&self) -> Result<(), FieldError> {
        crate::Uuid::parse_str(&self.event_id).map_err(|e| {
            FieldError::new("event_id", &self.event_id, format!("must be a UUID ({e})"))
        })?;
        crate::ledger::envelope::check_stream_name("stream", &self.stream)?;
        code("site_id", &self.site_id)?;
        crate::ledger::zone::check_zone("site_zone", &self.site_zone)?;
        instant("instant", &self.instant)?;
        for (field, value) in [
            ("recorded_offset", &self.recorded_offset),
            ("expected_offset", &self.expected_offset),
        ] {
            check_text(field, value, 16)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::catalogue::lookup;
    use serde_json::{json, Value};

    fn refused(event_type: &str, data: Value) -> crate::FieldError {
        lookup(event_type, 1)
            .expect("known type")
            .validate(&data)
            .expect_err("must be refused")
    }

    fn accepted(event_type: &str, data: Value) {
        if let Err(e) = lookup(event_type, 1).expect("known type").validate(&data) {
            panic!("{event_type} refused {data}: {e}");
        }
    }

    fn site() -> Value {
        json!({"site_id": "S-BOS-01", "name": "Boston manufacturing", "site_types": ["manufacturing_site"],
               "time_zone": "America/New_York", "gln": "4012345000009", "isbt128_fin": "A9999", "fda_fei": "3012345678",
               "postal_address": {"lines": ["1 Main St"], "city": "Boston", "postal_code": "02110", "country": "US"},
               "status": "active", "valid_from": "2026-01-01T00:00:00Z"})
    }

    #[test]
    fn a_full_site_registers_and_each_bad_identifier_is_named() {
        accepted("site.registered", site());
        let cases = [
            ("gln", json!("4012345000008"), "expected 9, given 8"),
            ("isbt128_fin", json!("O9999"), "FIN"),
            ("fda_fei", json!("12AB"), "FEI"),
            ("time_zone", json!("Boston"), "IANA"),
            ("status", json!("open"), "active"),
            (
                "valid_to",
                json!("2025-01-01T00:00:00Z"),
                "later than valid_from",
            ),
        ];
        for (field, value, rule) in cases {
            let mut data = site();
            data[field] = value;
            let e = refused("site.registered", data);
            assert_eq!(e.field, field);
            assert!(e.rule.contains(rule), "{field}: {}", e.rule);
        }
        let mut data = site();
        data["postal_address"]["country"] = json!("USA");
        assert_eq!(
            refused("site.registered", data).field,
            "postal_address.country"
        );
    }

    #[test]
    fn the_other_registries_validate_their_fields() {
        accepted(
            "personnel.registered",
            json!({"person_id": "P-0001", "printed_name": "A. Operator",
            "qualifications": [{"site_id": "S-PAR-01", "role": "apheresis_operator", "valid_until": "2027-01-01T00:00:00Z"}]}),
        );
        let e = refused(
            "personnel.registered",
            json!({"person_id": "P-0001", "printed_name": "A. Operator",
            "qualifications": [{"site_id": "S-PAR-01", "role": "apheresis_operator", "valid_until": "2027-01-01"}]}),
        );
        assert_eq!(e.field, "qualifications[0].valid_until");
        accepted(
            "equipment.registered",
            json!({"equipment_id": "CRF-7", "equipment_type": "controlled_rate_freezer", "site_id": "S-BOS-01", "calibration_valid_until": "2026-12-31T23:59:59Z"}),
        );
        assert_eq!(
            refused(
                "equipment.registered",
                json!({"equipment_id": "CRF-7", "equipment_type": "toaster", "site_id": "S-BOS-01"})
            )
            .field,
            "equipment_type"
        );
        accepted(
            "material_lot.registered",
            json!({"material": "LV-CD19", "supplier": "Vector Co", "lot": "L2026-01", "expiry": "2027-06-30", "status": "released"}),
        );
        assert_eq!(refused("material_lot.registered", json!({"material": "LV-CD19", "supplier": "Vector Co", "lot": "L2026-01", "expiry": "2027-02-30", "status": "released"})).field, "expiry");
        assert_eq!(
            refused("material_lot.status_changed", json!({"status": "lost"})).field,
            "status"
        );
        accepted(
            "process_step.defined",
            json!({"step_code": "CRYO", "description": "Cryopreservation", "cbv_biz_step": "storing"}),
        );
        assert_eq!(
            refused(
                "process_step.defined",
                json!({"step_code": "CRYO", "description": "x", "cbv_biz_step": "freezing"})
            )
            .field,
            "cbv_biz_step"
        );
        accepted(
            "source_system.registered",
            json!({"system_id": "mes-bos", "kind": "mes", "owning_site_id": "S-BOS-01"}),
        );
        assert_eq!(
            refused(
                "source_system.registered",
                json!({"system_id": "mes-bos", "kind": "erp", "owning_site_id": "S-BOS-01"})
            )
            .field,
            "kind"
        );
        accepted(
            "crosswalk.mapped",
            json!({"system": "mes-bos", "kind": "site", "local_code": "BOS1", "canonical_id": "S-BOS-01", "valid_from": "2026-01-01T00:00:00Z"}),
        );
        assert_eq!(refused("crosswalk.mapped", json!({"system": "mes-bos", "kind": "site", "local_code": "BOS1", "canonical_id": "S-BOS-01", "valid_from": "2026-01-01T00:00:00"})).field, "valid_from");
        assert_eq!(refused("crosswalk.mapped", json!({"system": "mes-bos", "kind": "site", "local_code": "BOS1", "canonical_id": "S-BOS-01", "valid_from": "2026-01-01T00:00:00Z", "valid_to": "2025-01-01T00:00:00Z"})).field, "valid_to");
    }

    fn product() -> Value {
        json!({"product_code": "CART-19", "name": "Anti-CD19 CAR-T",
            "process": {
                "steps": [
                    {"step_code": "COLLECT", "site_types": ["apheresis_center"]},
                    {"step_code": "CRYO", "site_types": ["manufacturing_site"]},
                    {"step_code": "THAW", "site_types": ["treatment_center"]},
                    {"step_code": "INFUSE", "site_types": ["treatment_center"]}
                ],
                "windows": [
                    {"from_step": "COLLECT", "to_step": "CRYO", "max_minutes": 2880},
                    {"from_step": "THAW", "to_step": "INFUSE", "max_minutes": 30}
                ],
                "release_tests": [
                    {"test_code": "VIABILITY", "unit": "%", "min": 70},
                    {"test_code": "STERILITY", "expected": "negative"}
                ]
            },
            "storage_temperature": {"min_celsius": -196, "max_celsius": -150},
            "retention_class": "ATMP-30Y", "retention_years": 30})
    }

    #[test]
    fn a_missing_list_of_the_process_is_named_itself() {
        for list in ["steps", "windows", "release_tests"] {
            let mut p = product();
            if let Some(process) = p["process"].as_object_mut() {
                process.remove(list);
            }
            let e = crate::catalogue::lookup("product.registered", 1)
                .expect("type")
                .validate(&p)
                .expect_err("refused");
            assert_eq!(e.field, format!("process.{list}"), "{e}");
            assert_eq!(e.rule, "is required");
        }
    }

    #[test]
    fn a_product_process_definition_is_checked_step_by_step() {
        accepted("product.registered", product());
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "process.steps",
                Box::new(|p| p["process"]["steps"] = json!([])),
                "at least one step",
            ),
            (
                "process.steps[1].step_code",
                Box::new(|p| p["process"]["steps"][1]["step_code"] = json!("COLLECT")),
                "twice",
            ),
            (
                "process.steps[0].site_types[0]",
                Box::new(|p| p["process"]["steps"][0]["site_types"] = json!(["hospital"])),
                "one of",
            ),
            (
                "process.windows[0].to_step",
                Box::new(|p| p["process"]["windows"][0]["to_step"] = json!("SHIP")),
                "not a step",
            ),
            (
                "process.windows[1].to_step",
                Box::new(|p| {
                    p["process"]["windows"][1] =
                        json!({"from_step": "INFUSE", "to_step": "THAW", "max_minutes": 30})
                }),
                "after INFUSE",
            ),
            (
                "process.windows[0].max_minutes",
                Box::new(|p| p["process"]["windows"][0]["max_minutes"] = json!(0)),
                "at least one minute",
            ),
            (
                "process.release_tests[1].expected",
                Box::new(|p| p["process"]["release_tests"][1]["min"] = json!(1)),
                "exactly one",
            ),
            (
                "process.release_tests[0].expected",
                Box::new(|p| {
                    p["process"]["release_tests"][0] = json!({"test_code": "VIABILITY"});
                }),
                "exactly one",
            ),
            (
                "process.release_tests[0].max",
                Box::new(|p| p["process"]["release_tests"][0]["max"] = json!(10)),
                "not be lower than min",
            ),
            (
                "storage_temperature.max_celsius",
                Box::new(|p| p["storage_temperature"]["max_celsius"] = json!(-200)),
                "higher than min",
            ),
            (
                "storage_temperature.min_celsius",
                Box::new(|p| p["storage_temperature"]["min_celsius"] = json!(-300)),
                "-273.15",
            ),
            (
                "retention_years",
                Box::new(|p| p["retention_years"] = json!(0)),
                "between 1 and 100",
            ),
            (
                "process.windows",
                Box::new(|p| {
                    p["process"].as_object_mut().expect("obj").remove("windows");
                }),
                "is required",
            ),
        ];
        for (field, edit, rule) in cases {
            let mut data = product();
            edit(&mut data);
            let e = refused("product.registered", data);
            assert_eq!(e.field, field, "{e}");
            assert!(e.rule.contains(rule), "{field}: {}", e.rule);
        }
        accepted("product.amended", json!({"status": "retired"}));
        assert_eq!(refused("product.amended", json!({})).field, "");
        assert_eq!(
            refused(
                "product.amended",
                json!({"process": {"steps": [], "windows": [], "release_tests": []}})
            )
            .field,
            "process.steps"
        );
    }

    #[test]
    fn only_cbv_2_business_steps_are_accepted() {
        for step in [
            "collecting",
            "shipping",
            "receiving",
            "commissioning",
            "inspecting",
            "storing",
            "dispensing",
        ] {
            accepted(
                "process_step.defined",
                json!({"step_code": "S", "description": "d", "cbv_biz_step": step}),
            );
        }
        assert_eq!(
            refused(
                "process_step.defined",
                json!({"step_code": "S", "description": "d", "cbv_biz_step": "transforming"})
            )
            .field,
            "cbv_biz_step"
        );
    }

    #[test]
    fn every_registry_has_status_validity_and_an_amendment() {
        accepted(
            "equipment.amended",
            json!({"site_id": "S-LAX-01", "status": "inactive"}),
        );
        assert_eq!(
            refused("equipment.amended", json!({"equipment_type": "toaster"})).field,
            "equipment_type"
        );
        accepted(
            "process_step.amended",
            json!({"status": "retired", "valid_to": "2027-01-01T00:00:00Z"}),
        );
        assert_eq!(
            refused("process_step.amended", json!({"cbv_biz_step": "freezing"})).field,
            "cbv_biz_step"
        );
        accepted(
            "source_system.amended",
            json!({"owning_site_id": "S-BOS-01"}),
        );
        assert_eq!(
            refused("source_system.amended", json!({"kind": "lims"})).field,
            "kind"
        );
        accepted(
            "personnel.amended",
            json!({"valid_to": "2027-01-01T00:00:00Z"}),
        );
        assert_eq!(
            refused(
                "personnel.registered",
                json!({"person_id": "P-1", "printed_name": "A",
                "valid_from": "2027-01-01T00:00:00Z", "valid_to": "2026-01-01T00:00:00Z"})
            )
            .field,
            "valid_to"
        );
    }
}
