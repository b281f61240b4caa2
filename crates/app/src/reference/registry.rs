//! The canonical registries: where each one's records live in the ledger, which event
//! registers and which amends a record, and the columns of its CSV form.

use autolog_domain::rules::registration_stream;
use autolog_domain::FieldError;
use serde_json::Value;

/// How one CSV cell maps onto its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// A JSON string.
    Text,
    /// A list of strings, written `a;b;c`.
    List,
    /// A JSON number.
    Number,
    /// Any JSON value (lists of objects such as qualifications), written as compact JSON.
    Json,
}

/// One CSV column: a dotted path into the record (`postal_address.city`) and its cell kind.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub path: &'static str,
    pub cell: Cell,
}

const fn col(path: &'static str, cell: Cell) -> Column {
    Column { path, cell }
}

/// One registry of canonical records.
#[derive(Debug)]
pub struct Registry {
    /// The name used in the API, the CLI and file names (`sites`).
    pub name: &'static str,
    /// Every record's stream starts with this (`site/`).
    pub prefix: &'static str,
    /// The event type that registers a record (for crosswalks: that maps a code).
    pub registration: &'static str,
    /// The event type that changes some attributes of a registered record, if any.
    pub amendment: Option<&'static str>,
    pub columns: &'static [Column],
}

use Cell::{Json, List, Number, Text};

/// Every registry, in the order an import or export handles them (a record's references
/// come before it: sites before the equipment at them).
pub const REGISTRIES: &[Registry] = &[
    Registry {
        name: "sites",
        prefix: "site/",
        registration: "site.registered",
        amendment: Some("site.amended"),
        columns: &[
            col("site_id", Text),
            col("name", Text),
            col("site_types", List),
            col("time_zone", Text),
            col("postal_address.lines", List),
            col("postal_address.city", Text),
            col("postal_address.postal_code", Text),
            col("postal_address.country", Text),
            col("gln", Text),
            col("isbt128_fin", Text),
            col("fda_fei", Text),
            col("status", Text),
            col("valid_from", Text),
            col("valid_to", Text),
        ],
    },
    Registry {
        name: "source_systems",
        prefix: "source-system/",
        registration: "source_system.registered",
        amendment: Some("source_system.amended"),
        columns: &[
            col("system_id", Text),
            col("kind", Text),
            col("owning_site_id", Text),
            col("status", Text),
            col("valid_from", Text),
            col("valid_to", Text),
        ],
    },
    Registry {
        name: "process_steps",
        prefix: "step/",
        registration: "process_step.defined",
        amendment: Some("process_step.amended"),
        columns: &[
            col("step_code", Text),
            col("description", Text),
            col("cbv_biz_step", Text),
            col("status", Text),
            col("valid_from", Text),
            col("valid_to", Text),
        ],
    },
    Registry {
        name: "products",
        prefix: "product/",
        registration: "product.registered",
        amendment: Some("product.amended"),
        columns: &[
            col("product_code", Text),
            col("name", Text),
            col("isbt128_product_code", Text),
            col("process", Json),
            col("storage_temperature.min_celsius", Number),
            col("storage_temperature.max_celsius", Number),
            col("retention_class", Text),
            col("retention_years", Number),
            col("retention_policies", Json),
            col("audit_trail_review_before_release", Json),
            col("status", Text),
            col("valid_from", Text),
            col("valid_to", Text),
        ],
    },
    Registry {
        name: "personnel",
        prefix: "person/",
        registration: "personnel.registered",
        amendment: Some("personnel.amended"),
        columns: &[
            col("person_id", Text),
            col("printed_name", Text),
            col("status", Text),
            col("qualifications", Json),
            col("valid_from", Text),
            col("valid_to", Text),
        ],
    },
    Registry {
        name: "equipment",
        prefix: "equipment/",
        registration: "equipment.registered",
        amendment: Some("equipment.amended"),
        columns: &[
            col("equipment_id", Text),
            col("equipment_type", Text),
            col("site_id", Text),
            col("calibration_valid_until", Text),
            col("status", Text),
            col("valid_from", Text),
            col("valid_to", Text),
        ],
    },
    Registry {
        name: "material_lots",
        prefix: "lot/",
        registration: "material_lot.registered",
        amendment: Some("material_lot.status_changed"),
        columns: &[
            col("material", Text),
            col("supplier", Text),
            col("lot", Text),
            col("expiry", Text),
            col("status", Text),
        ],
    },
    Registry {
        name: "verification_policies",
        prefix: "verification-policy/",
        registration: "verification_policy.defined",
        amendment: Some("verification_policy.amended"),
        columns: &[
            col("policy_id", Text),
            col("step", Text),
            col("verifiers", Number),
            col("qualifying_roles", List),
            col("product_code", Text),
            col("country", Text),
            col("site_id", Text),
            col("status", Text),
            col("valid_from", Text),
            col("valid_to", Text),
        ],
    },
    Registry {
        name: "label_templates",
        prefix: "label-template/",
        registration: "label_template.defined",
        amendment: Some("label_template.amended"),
        columns: &[
            col("template_id", Text),
            col("product_code", Text),
            col("container_kind", Text),
            col("width_mm", Number),
            col("height_mm", Number),
            col("media", Text),
            col("language", Text),
            col("isbt128_product_code", Text),
            col("expiry_hours", Number),
            col("patient_identification", Text),
            col("omitted_lines", List),
            col("status", Text),
            col("valid_from", Text),
            col("valid_to", Text),
        ],
    },
    Registry {
        name: "crosswalks",
        prefix: "crosswalk/",
        registration: "crosswalk.mapped",
        amendment: None,
        columns: &[
            col("system", Text),
            col("kind", Text),
            col("local_code", Text),
            col("canonical_id", Text),
            col("valid_from", Text),
            col("valid_to", Text),
        ],
    },
];

/// The registry of this name; the error lists the names.
pub fn registry(name: &str) -> Result<&'static Registry, FieldError> {
    REGISTRIES.iter().find(|r| r.name == name).ok_or_else(|| {
        let names: Vec<&str> = REGISTRIES.iter().map(|r| r.name).collect();
        FieldError::new(
            "registry",
            name,
            format!("must be one of {}", names.join(", ")),
        )
    })
}

impl Registry {
    pub fn is_crosswalks(&self) -> bool {
        self.registration == "crosswalk.mapped"
    }

    /// The stream a record of this registry lives in (crosswalks: `crosswalk/<system>/<kind>`).
    pub fn stream_of(&self, record: &Value) -> String {
        if self.is_crosswalks() {
            let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or_default();
            autolog_domain::rules::crosswalk_stream(text("system"), text("kind"))
        } else {
            registration_stream(self.registration, record).unwrap_or_default()
        }
    }

    /// The CSV column a payload field path falls under (`postal_address.country`,
    /// `qualifications[0].role` -> `qualifications`); the path itself when none does.
    pub fn column_of(&self, field: &str) -> String {
        self.columns
            .iter()
            .map(|c| c.path)
            .filter(|p| {
                field == *p
                    || field.starts_with(&format!("{p}."))
                    || field.starts_with(&format!("{p}["))
            })
            .max_by_key(|p| p.len())
            .unwrap_or(field)
            .to_string()
    }
}

/// The registry name in a file name: `sites.csv`, `01-sites.csv`, `20_personnel.json`.
pub fn registry_of_file_name(file_name: &str) -> Option<&'static Registry> {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
    let stem = stem.trim_start_matches(|c: char| c.is_ascii_digit());
    let stem = stem.trim_start_matches(['-', '_', '.', ' ']);
    REGISTRIES.iter().find(|r| r.name == stem)
}
