//! Label templates: reference data saying how a product's container is labelled (the label
//! stock, the language, the ISBT 128 product code of a collection, how long a collected bag
//! keeps, whether the patient's pseudonymous key is printed). Stream
//! `label-template/<template id>`; its version is the number of its events.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::labels::content::CONTAINER_KINDS;
use crate::ledger::envelope::check_code as code;
use crate::ledger::event_type::Check;
use crate::reference::{changes_something, interval, one_of, RECORD_STATUSES};

/// Label stocks: on a roll (one label per page, the label's size) or on A4 sheets.
pub const MEDIA: &[&str] = &["roll", "a4_sheet"];

/// How the patient is named on the label's text: by the COI alone, or with the
/// pseudonymous patient key. Names, dates of birth and record numbers never are.
pub const PATIENT_IDENTIFICATION: &[&str] = &["coi_only", "patient_key"];

/// The label stock a label was printed on, as its template said then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stock {
    pub width_mm: u32,
    pub height_mm: u32,
    /// `roll` (a page per label, the label's size) or `a4_sheet`.
    pub media: String,
    pub language: String,
}

/// The lines of text a template may leave off a label; every other line (the container's
/// identifier, "for autologous use only", the product, the expiry, the destination, the
/// COI) is always printed.
pub const OPTIONAL_LINES: &[&str] = &[
    "division",
    "collected",
    "produced",
    "site",
    "storage",
    "from",
];

/// The smallest and largest label Autolog draws, in millimetres.
pub const STOCK_MM: (u32, u32) = (40, 200);

/// `label_template.defined`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelTemplateDefinedV1 {
    pub template_id: String,
    /// The product (its code in the product registry) whose containers it labels.
    pub product_code: String,
    /// `collection_bag`, `final_unit` or `shipper`.
    pub container_kind: String,
    pub width_mm: u32,
    pub height_mm: u32,
    pub media: String,
    /// `en`, `fr` or `de`.
    pub language: String,
    /// For a collection bag: the collection product's ISBT 128 product description code.
    pub isbt128_product_code: Option<String>,
    /// For a collection bag: hours from the end of collection to its expiry.
    pub expiry_hours: Option<u32>,
    pub patient_identification: String,
    /// Lines of text left off the label (of [`OPTIONAL_LINES`]).
    #[serde(default)]
    pub omitted_lines: Vec<String>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for LabelTemplateDefinedV1 {
    fn check(&self) -> Result<(), FieldError> {
        code("template_id", &self.template_id)?;
        code("product_code", &self.product_code)?;
        one_of("container_kind", &self.container_kind, CONTAINER_KINDS)?;
        check_stock("width_mm", self.width_mm)?;
        check_stock("height_mm", self.height_mm)?;
        one_of("media", &self.media, MEDIA)?;
        one_of("language", &self.language, LANGUAGES)?;
        if let Some(c) = &self.isbt128_product_code {
            crate::identifiers::check_product_code("isbt128_product_code", c)?;
        } else if self.container_kind == "collection_bag" {
            return Err(FieldError::new(
                "isbt128_product_code",
                "",
                "is required for a collection bag's template: the collection product's ISBT 128 product description code (a letter and 4 digits)",
            ));
        }
        if let Some(h) = self.expiry_hours {
            check_hours(h)?;
        }
        one_of(
            "patient_identification",
            &self.patient_identification,
            PATIENT_IDENTIFICATION,
        )?;
        check_omitted(&self.omitted_lines)?;
        if let Some(s) = &self.status {
            one_of("status", s, RECORD_STATUSES)?;
        }
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

fn check_omitted(lines: &[String]) -> Result<(), FieldError> {
    for (i, line) in lines.iter().enumerate() {
        if !OPTIONAL_LINES.contains(&line.as_str()) {
            return Err(FieldError::new(
                format!("omitted_lines[{i}]"),
                line,
                format!(
                    "only these lines may be left off a label: {}",
                    OPTIONAL_LINES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// `label_template.amended`: the stock, language, codes, patient naming, status or
/// validity change (the product and container it labels do not: that is another template).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelTemplateAmendedV1 {
    pub width_mm: Option<u32>,
    pub height_mm: Option<u32>,
    pub media: Option<String>,
    pub language: Option<String>,
    pub isbt128_product_code: Option<String>,
    pub expiry_hours: Option<u32>,
    pub patient_identification: Option<String>,
    pub omitted_lines: Option<Vec<String>>,
    pub status: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

impl Check for LabelTemplateAmendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        let changes = [
            self.width_mm.is_some(),
            self.height_mm.is_some(),
            self.media.is_some(),
            self.language.is_some(),
            self.isbt128_product_code.is_some(),
            self.expiry_hours.is_some(),
            self.patient_identification.is_some(),
            self.omitted_lines.is_some(),
            self.status.is_some(),
            self.valid_from.is_some(),
            self.valid_to.is_some(),
        ];
        changes_something(
            &changes,
            "must change at least one attribute of the template",
        )?;
        for (field, mm) in [("width_mm", self.width_mm), ("height_mm", self.height_mm)] {
            if let Some(mm) = mm {
                check_stock(field, mm)?;
            }
        }
        for (field, value, allowed) in [
            ("media", &self.media, MEDIA),
            ("language", &self.language, LANGUAGES),
            (
                "patient_identification",
                &self.patient_identification,
                PATIENT_IDENTIFICATION,
            ),
            ("status", &self.status, RECORD_STATUSES),
        ] {
            if let Some(v) = value {
                one_of(field, v, allowed)?;
            }
        }
        if let Some(c) = &self.isbt128_product_code {
            crate::identifiers::check_product_code("isbt128_product_code", c)?;
        }
        if let Some(h) = self.expiry_hours {
            check_hours(h)?;
        }
        check_omitted(self.omitted_lines.as_deref().unwrap_or(&[]))?;
        interval(self.valid_from.as_deref(), self.valid_to.as_deref())
    }
}

fn check_stock(field: &str, mm: u32) -> Result<(), FieldError> {
    let (min, max) = STOCK_MM;
    if !(min..=max).contains(&mm) {
        return Err(FieldError::new(
            field,
            mm.to_string(),
            format!("a label is {min} to {max} mm on each side"),
        ));
    }
    Ok(())
}

fn check_hours(hours: u32) -> Result<(), FieldError> {
    if !(1..=24 * 30).contains(&hours) {
        return Err(FieldError::new(
            "expiry_hours",
            hours.to_string(),
            "must be 1 to 720 hours after the end of collection",
        ));
    }
    Ok(())
}

/// The languages a label is printed in.
pub const LANGUAGES: &[&str] = &["en", "fr", "de"];

/// The fixed words of a label in one language.
pub struct Phrases {
    pub autologous: &'static str,
    pub expires: &'static str,
    pub collected: &'static str,
    pub collected_at: &'static str,
    pub produced: &'static str,
    pub released_by: &'static str,
    pub store_at: &'static str,
    /// Between the lowest and the highest storage temperature.
    pub to: &'static str,
    pub patient_key: &'static str,
    pub ship_to: &'static str,
    pub ship_from: &'static str,
    bag: &'static str,
    of: &'static str,
}

impl Phrases {
    /// "Bag 1 of 2".
    pub fn bag_of(&self, n: u32, of: u32) -> String {
        format!("{} {n} {} {of}", self.bag, self.of)
    }
}

const ENGLISH: Phrases = Phrases {
    autologous: "FOR AUTOLOGOUS USE ONLY",
    expires: "Expires",
    collected: "Collected",
    collected_at: "Collected at",
    produced: "Produced",
    released_by: "Released by",
    store_at: "Store at",
    to: "to",
    patient_key: "Patient key",
    ship_to: "Ship to",
    ship_from: "From",
    bag: "Bag",
    of: "of",
};

const FRENCH: Phrases = Phrases {
    autologous: "UNIQUEMENT POUR USAGE AUTOLOGUE",
    expires: "Expire le",
    collected: "Prélevé le",
    collected_at: "Prélevé à",
    produced: "Fabriqué le",
    released_by: "Libéré par",
    store_at: "Conserver entre",
    to: "et",
    patient_key: "Clé patient",
    ship_to: "Destinataire",
    ship_from: "Expéditeur",
    bag: "Poche",
    of: "sur",
};

const GERMAN: Phrases = Phrases {
    autologous: "NUR ZUR AUTOLOGEN ANWENDUNG",
    expires: "Verwendbar bis",
    collected: "Entnommen am",
    collected_at: "Entnommen in",
    produced: "Hergestellt am",
    released_by: "Freigegeben durch",
    store_at: "Lagern bei",
    to: "bis",
    patient_key: "Patientenschlüssel",
    ship_to: "Empfänger",
    ship_from: "Absender",
    bag: "Beutel",
    of: "von",
};

/// The phrases of a language (English for any other).
pub fn phrases(language: &str) -> &'static Phrases {
    match language {
        "fr" => &FRENCH,
        "de" => &GERMAN,
        _ => &ENGLISH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::event_type::schema;
    use serde_json::json;

    #[test]
    fn a_template_names_its_stock_and_refuses_what_it_cannot_print() {
        let good = json!({"template_id": "LT-BAG", "product_code": "CART-19",
            "container_kind": "collection_bag", "width_mm": 100, "height_mm": 60,
            "media": "roll", "language": "fr", "isbt128_product_code": "S1001",
            "expiry_hours": 72, "patient_identification": "patient_key"});
        assert!(schema::<LabelTemplateDefinedV1>(&good).is_ok());
        for (field, value, says) in [
            ("width_mm", json!(20), "40 to 200 mm"),
            ("media", json!("napkin"), "roll, a4_sheet"),
            (
                "patient_identification",
                json!("name"),
                "coi_only, patient_key",
            ),
            ("isbt128_product_code", json!("X12"), "letter"),
            (
                "omitted_lines",
                json!(["storage", "expiry"]),
                "only these lines",
            ),
        ] {
            let mut bad = good.clone();
            bad[field] = value;
            let e = schema::<LabelTemplateDefinedV1>(&bad).expect_err(field);
            assert!(e.field.starts_with(field), "{field}: {}", e.field);
            assert!(e.rule.contains(says), "{field}: {}", e.rule);
        }
        let mut bag = good.clone();
        bag.as_object_mut()
            .map(|o| o.remove("isbt128_product_code"));
        let e = schema::<LabelTemplateDefinedV1>(&bag).expect_err("no code");
        assert!(e.rule.contains("collection bag"), "{}", e.rule);
    }
}
