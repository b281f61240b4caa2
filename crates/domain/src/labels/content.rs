//! What a label carries, built from the ledger's facts: the data structures encoded (in
//! the 2-D symbol and the linear bar codes) and the eye-readable text, per container. The
//! codes carry identifiers only, never a name, a date of birth or a record number (21 CFR
//! 1271.290(c)); the text names the patient only as the template allows (the
//! pseudonymous key, or the COI alone).

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::identifiers::{Coi, Din, UnitId};
use crate::labels::isbt::{self, Dated};
use crate::labels::template::Phrases;
use crate::ledger::time::Instant;

/// The containers Autolog labels.
pub const CONTAINER_KINDS: &[&str] = &["collection_bag", "final_unit", "shipper"];

/// A label's content, as recorded in `label.printed` and drawn by every output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelContent {
    /// `collection_bag`, `final_unit` or `shipper`.
    pub container_kind: String,
    /// The container's identifier: its DIN (with K), final unit id or SSCC.
    pub container: String,
    /// Every data structure (ISBT 128) or element (GS1) encoded, named.
    pub elements: Vec<Element>,
    /// What the 2-D symbol carries: a DS023 compound message, or for a shipper a GS1
    /// element string in parenthesised form (FNC1 where the symbol needs it).
    pub matrix: String,
    /// What each linear bar code carries (Code 128; GS1-128 parenthesised), in order.
    pub linear: Vec<String>,
    /// The eye-readable text, top to bottom.
    pub text: Vec<TextLine>,
}

/// One data structure or element: `DS001`..`DS040`, or `AI 00`, `AI 10`, `AI 420`; its
/// data with its data identifier (ISBT 128) or without the AI (GS1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Element {
    pub name: String,
    pub data: String,
}

impl Element {
    fn new(name: &str, data: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            data: data.into(),
        }
    }
}

/// A line of eye-readable text; `boxed` is a keyboard check character printed in a box
/// after it (ST-001 §7.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TextLine {
    /// What the line says: `din`, `coi`, `unit`, `autologous`, `product`, `date`, ...
    pub role: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boxed: Option<char>,
    /// Printed larger and bold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strong: bool,
}

impl TextLine {
    fn plain(role: &str, text: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            text: text.into(),
            boxed: None,
            strong: false,
        }
    }

    fn strong(role: &str, text: impl Into<String>) -> Self {
        Self {
            strong: true,
            ..Self::plain(role, text)
        }
    }

    fn with_check(role: &str, (text, k): (String, char)) -> Self {
        Self {
            boxed: Some(k),
            strong: true,
            ..Self::plain(role, text)
        }
    }
}

/// What every label of a chain's product says in words.
pub struct Common<'a> {
    pub coi: &'a Coi,
    /// The product's name (its description).
    pub description: &'a str,
    pub storage_min_celsius: f64,
    pub storage_max_celsius: f64,
    /// The pseudonymous patient key, when the template prints it.
    pub patient_key: Option<&'a str>,
    pub phrases: &'a Phrases,
    /// Lines the template leaves off (of `template::OPTIONAL_LINES`).
    pub omitted: &'a [String],
}

impl Common<'_> {
    fn storage(&self) -> String {
        format!(
            "{} {} °C {} {} °C",
            self.phrases.store_at,
            self.storage_min_celsius,
            self.phrases.to,
            self.storage_max_celsius
        )
    }

    /// The lines printed: the template's omissions left off.
    fn printed(&self, mut text: Vec<TextLine>) -> Vec<TextLine> {
        text.retain(|l| !self.omitted.contains(&l.role));
        text
    }

    fn patient_lines(&self, text: &mut Vec<TextLine>) {
        text.push(TextLine::with_check("coi", isbt::coi_text(self.coi)));
        if let Some(key) = self.patient_key {
            text.push(TextLine::plain(
                "patient",
                format!("{}: {key}", self.phrases.patient_key),
            ));
        }
    }
}

/// A collection bag: its DIN and the collection, sent to the manufacturer (ST-018).
pub struct Bag<'a> {
    pub din: &'a Din,
    /// This bag's number in its collection, and how many bags it has (DS032).
    pub number: u32,
    pub of: u32,
    /// The collection product's ISBT 128 product description code (5 characters).
    pub product_code: &'a str,
    pub collected_at: Instant,
    pub expires_at: Option<Instant>,
    /// The collection site's zone and name.
    pub zone: &'a TimeZone,
    pub site_name: &'a str,
}

/// The label of a collection bag.
pub fn bag_label(common: &Common, bag: &Bag) -> LabelContent {
    let mut structures = vec![
        Element::new("DS001", isbt::din(bag.din)),
        Element::new(
            "DS003",
            isbt::product_code(bag.product_code, isbt::AUTOLOGOUS_ONLY, "99"),
        ),
        Element::new("DS032", isbt::divisions(bag.number)),
        Element::new(
            "DS031",
            isbt::flexible_date(Dated::Collection, bag.collected_at, bag.zone),
        ),
    ];
    if let Some(at) = bag.expires_at {
        structures.push(Element::new("DS005", isbt::expiry(at, bag.zone)));
    }
    structures.push(Element::new("DS040", isbt::coi(common.coi)));
    let p = common.phrases;
    let mut text = vec![
        TextLine::with_check("din", isbt::din_text(bag.din)),
        TextLine::strong("autologous", p.autologous),
        TextLine::plain(
            "product",
            format!("{} ({})", common.description, bag.product_code),
        ),
        TextLine::plain("division", p.bag_of(bag.number, bag.of)),
        TextLine::plain(
            "collected",
            format!(
                "{} {} ({})",
                p.collected,
                isbt::date_text(bag.collected_at, bag.zone),
                isbt::utc_text(bag.collected_at)
            ),
        ),
    ];
    if let Some(at) = bag.expires_at {
        text.push(expiry_line(p, at, bag.zone));
    }
    text.push(TextLine::plain(
        "site",
        format!("{} {}", p.collected_at, bag.site_name),
    ));
    text.push(TextLine::plain("storage", common.storage()));
    common.patient_lines(&mut text);
    isbt_label(
        "collection_bag",
        bag.din.to_string(),
        structures,
        common.printed(text),
    )
}

/// A final product unit: released for its patient from the manufacturing site.
pub struct Unit<'a> {
    pub unit: &'a UnitId,
    pub produced_at: Instant,
    pub expires_at: Instant,
    pub zone: &'a TimeZone,
    /// The releasing establishment's name.
    pub releasing_site: &'a str,
}

/// The label of a final product unit.
pub fn unit_label(common: &Common, unit: &Unit) -> LabelContent {
    let u = unit.unit;
    let structures = vec![
        Element::new("DS040", isbt::coi(common.coi)),
        Element::new(
            "DS003",
            isbt::product_code(u.product_code(), isbt::AUTOLOGOUS_ONLY, u.division()),
        ),
        Element::new("DS005", isbt::expiry(unit.expires_at, unit.zone)),
        Element::new(
            "DS031",
            isbt::flexible_date(Dated::Production, unit.produced_at, unit.zone),
        ),
    ];
    let p = common.phrases;
    let mut text = vec![
        TextLine::with_check("unit", isbt::unit_text(u)),
        TextLine::strong("autologous", p.autologous),
        TextLine::plain(
            "product",
            format!(
                "{} ({}{}{})",
                common.description,
                u.product_code(),
                isbt::AUTOLOGOUS_ONLY,
                u.division()
            ),
        ),
        expiry_line(p, unit.expires_at, unit.zone),
        TextLine::plain(
            "produced",
            format!(
                "{} {}",
                p.produced,
                isbt::date_text(unit.produced_at, unit.zone)
            ),
        ),
        TextLine::plain("site", format!("{} {}", p.released_by, unit.releasing_site)),
        TextLine::plain("storage", common.storage()),
    ];
    common.patient_lines(&mut text);
    isbt_label(
        "final_unit",
        u.to_string(),
        structures,
        common.printed(text),
    )
}

fn expiry_line(p: &Phrases, at: Instant, zone: &TimeZone) -> TextLine {
    TextLine::strong(
        "expiry",
        format!(
            "{} {} ({})",
            p.expires,
            isbt::date_text(at, zone),
            isbt::utc_text(at)
        ),
    )
}

/// One DS023 message in the 2-D symbol; the identifying structure (DIN, or COI) and the
/// product code in linear bar codes.
fn isbt_label(
    kind: &str,
    container: String,
    elements: Vec<Element>,
    text: Vec<TextLine>,
) -> LabelContent {
    let all: Vec<String> = elements.iter().map(|e| e.data.clone()).collect();
    let linear = elements
        .iter()
        .filter(|e| matches!(e.name.as_str(), "DS001" | "DS040" | "DS003"))
        .map(|e| e.data.clone())
        .collect();
    LabelContent {
        container_kind: kind.to_string(),
        container,
        elements,
        matrix: isbt::compound(&all),
        linear,
        text,
    }
}

/// A shipper: its SSCC, the chain it carries and where it goes.
pub struct Shipper<'a> {
    /// 18 digits, check digit verified.
    pub sscc: &'a str,
    pub from_site: &'a str,
    pub to_site: &'a str,
    /// The destination's postal code, for (420).
    pub to_postal_code: Option<&'a str>,
}

/// The label of a shipper: GS1-128 SSCC (00) and a GS1 DataMatrix (00)(10)(420) as the
/// courier's EPCIS events name them; (10) is the chain's COI.
pub fn shipper_label(common: &Common, s: &Shipper) -> LabelContent {
    let mut elements = vec![
        Element::new("AI 00", s.sscc),
        Element::new("AI 10", common.coi.to_string()),
    ];
    if let Some(code) = s.to_postal_code {
        elements.push(Element::new("AI 420", code));
    }
    let matrix = elements
        .iter()
        .map(|e| format!("({}){}", e.name.trim_start_matches("AI "), e.data))
        .collect::<String>();
    let p = common.phrases;
    let mut text = vec![
        TextLine::strong("sscc", format!("(00) {}", s.sscc)),
        TextLine::strong("autologous", p.autologous),
        TextLine::plain("product", common.description),
        TextLine::plain("to", format!("{} {}", p.ship_to, s.to_site)),
        TextLine::plain("from", format!("{} {}", p.ship_from, s.from_site)),
        TextLine::plain("storage", common.storage()),
    ];
    common.patient_lines(&mut text);
    LabelContent {
        container_kind: "shipper".to_string(),
        container: s.sscc.to_string(),
        elements,
        matrix,
        linear: vec![format!("(00){}", s.sscc)],
        text: common.printed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::template::phrases;

    fn common<'a>(coi: &'a Coi, key: Option<&'a str>) -> Common<'a> {
        Common {
            coi,
            description: "Autologous anti-CD19 CAR-T cells",
            storage_min_celsius: -196.0,
            storage_max_celsius: -150.0,
            patient_key: key,
            phrases: phrases("en"),
            omitted: &[],
        }
    }

    fn at(text: &str) -> Instant {
        Instant::parse_rfc3339("at", text).expect("valid")
    }

    /// Golden text of a collection bag, from ST-001's worked DIN (K = A).
    #[test]
    fn a_collection_bag_label_says_what_the_standard_asks() {
        let coi = Coi::parse("coi", "CHA999926000001*").expect("valid");
        let din = Din::parse("din", "G123417654321").expect("valid");
        let zone = TimeZone::get("Europe/Paris").expect("zone");
        let bag = Bag {
            din: &din,
            number: 1,
            of: 2,
            product_code: "S1001",
            collected_at: at("2026-03-02T09:30:00Z"),
            expires_at: Some(at("2026-03-05T09:30:00Z")),
            zone: &zone,
            site_name: "Paris Apheresis",
        };
        let label = bag_label(&common(&coi, Some("PK-1")), &bag);
        assert_eq!(
            label.matrix,
            "=+06000=G12341765432170=<S1001199=,000001=(1002202603021030&>0260641030&/CHA999926000001"
        );
        assert_eq!(
            label.linear,
            vec!["=G12341765432170", "=<S1001199", "&/CHA999926000001"]
        );
        let lines: Vec<(&str, &str, Option<char>)> = label
            .text
            .iter()
            .map(|l| (l.role.as_str(), l.text.as_str(), l.boxed))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("din", "G1234 17 654321", Some('A')),
                ("autologous", "FOR AUTOLOGOUS USE ONLY", None),
                ("product", "Autologous anti-CD19 CAR-T cells (S1001)", None),
                ("division", "Bag 1 of 2", None),
                (
                    "collected",
                    "Collected 02 MAR 2026 10:30 CET (02 MAR 2026 09:30 UTC)",
                    None
                ),
                (
                    "expiry",
                    "Expires 05 MAR 2026 10:30 CET (05 MAR 2026 09:30 UTC)",
                    None
                ),
                ("site", "Collected at Paris Apheresis", None),
                ("storage", "Store at -196 °C to -150 °C", None),
                ("coi", "CH A9999 26 000001", Some(coi.check_character())),
                ("patient", "Patient key: PK-1", None),
            ]
        );
        assert_eq!(label.container, "G123417654321A");
    }

    #[test]
    fn a_final_unit_label_carries_the_coi_and_never_a_name() {
        let coi = Coi::parse("coi", "CHA999926000001*").expect("valid");
        let unit = UnitId::new(&coi, "S0001", "A0").expect("valid");
        let zone = TimeZone::get("America/New_York").expect("zone");
        let u = Unit {
            unit: &unit,
            produced_at: at("2026-04-01T16:00:00Z"),
            expires_at: at("2027-04-01T16:00:00Z"),
            zone: &zone,
            releasing_site: "Newark Manufacturing",
        };
        let label = unit_label(&common(&coi, None), &u);
        assert_eq!(
            label.matrix,
            "=+04000&/CHA999926000001=<S00011A0&>0270911200=(1003202604011200"
        );
        assert_eq!(
            lines(&label),
            vec![
                (
                    "unit",
                    "CH A9999 26 000001 S0001 A0",
                    Some(unit.check_character())
                ),
                ("autologous", "FOR AUTOLOGOUS USE ONLY", None),
                (
                    "product",
                    "Autologous anti-CD19 CAR-T cells (S00011A0)",
                    None
                ),
                (
                    "expiry",
                    "Expires 01 APR 2027 12:00 EDT (01 APR 2027 16:00 UTC)",
                    None
                ),
                ("produced", "Produced 01 APR 2026 12:00 EDT", None),
                ("site", "Released by Newark Manufacturing", None),
                ("storage", "Store at -196 °C to -150 °C", None),
                ("coi", "CH A9999 26 000001", Some('*')),
            ]
        );
        let read = crate::identifiers::compound::parse_compound(&label.matrix).expect("reads");
        let back = read.unit().expect("a unit").expect("valid");
        assert_eq!(back, unit);
    }

    #[test]
    fn a_shipper_label_names_sscc_chain_and_destination() {
        let coi = Coi::parse("coi", "CHA999926000001*").expect("valid");
        let s = Shipper {
            sscc: "106141412345678908",
            from_site: "Newark Manufacturing",
            to_site: "Paris Hospital",
            to_postal_code: Some("75013"),
        };
        let omitted = vec!["storage".to_string(), "from".to_string()];
        let mut french = common(&coi, None);
        french.phrases = phrases("fr");
        french.omitted = &omitted;
        let label = shipper_label(&french, &s);
        assert_eq!(
            label.matrix,
            format!("(00)106141412345678908(10){coi}(420)75013")
        );
        assert_eq!(label.linear, vec!["(00)106141412345678908"]);
        assert_eq!(
            lines(&label),
            vec![
                ("sscc", "(00) 106141412345678908", None),
                ("autologous", "UNIQUEMENT POUR USAGE AUTOLOGUE", None),
                ("product", "Autologous anti-CD19 CAR-T cells", None),
                ("to", "Destinataire Paris Hospital", None),
                ("coi", "CH A9999 26 000001", Some('*')),
            ]
        );
    }

    fn lines(label: &LabelContent) -> Vec<(&str, &str, Option<char>)> {
        label
            .text
            .iter()
            .map(|l| (l.role.as_str(), l.text.as_str(), l.boxed))
            .collect()
    }
}
