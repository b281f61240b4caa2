//! Verification by scan: an applied label is scanned back (its 2-D symbol, its bar codes)
//! and every data structure read is compared with what the ledger says was printed for
//! that container. Anything read that the label does not carry, or carries otherwise, is
//! a finding; so is a scan that reads nothing identifying the container.

use crate::identifiers::compound::{identify, structures};
use crate::identifiers::scan::{parse_scan, Scanned};
use crate::labels::content::{Element, LabelContent};

/// The most scans one verification reads.
pub const MAX_SCANS: usize = 10;

/// Symbology identifiers a scanner may prefix (ISO/IEC 15424): Code 128 (`]C0`, GS1-128
/// `]C1`) and Data Matrix (`]d1`, GS1 `]d2`).
const ISBT_SYMBOLOGIES: &[&str] = &["]C0", "]d1"];
const GS1_SYMBOLOGIES: &[&str] = &["]C1", "]d2"];

/// The elements one scan carries, named as a label's are; or why it could not be read.
pub fn read_scan(raw: &str) -> Result<Vec<Element>, String> {
    let data = raw.trim_end_matches(['\r', '\n']);
    let (symbology, body) = match data.get(..3) {
        Some(id) if id.starts_with(']') => (Some(id), &data[3..]),
        _ => (None, data),
    };
    let gs1 = symbology.is_some_and(|s| GS1_SYMBOLOGIES.contains(&s))
        || body.starts_with('(')
        || body.starts_with(|c: char| c.is_ascii_digit());
    if let Some(s) =
        symbology.filter(|s| !ISBT_SYMBOLOGIES.contains(s) && !GS1_SYMBOLOGIES.contains(s))
    {
        return Err(format!(
            "symbology identifier {s} is not a Code 128 or Data Matrix one"
        ));
    }
    if gs1 {
        return gs1_elements(data);
    }
    if body.starts_with("=+") {
        return Ok(structures(body)?
            .into_iter()
            .map(|(name, data)| Element {
                name: name.to_string(),
                data,
            })
            .collect());
    }
    let (name, what, len) = identify(body)?;
    if body.chars().count() != len {
        return Err(format!(
            "a {what} is {len} characters with its data identifier, {} were read",
            body.chars().count()
        ));
    }
    Ok(vec![Element {
        name: name.to_string(),
        data: body.to_string(),
    }])
}

fn gs1_elements(data: &str) -> Result<Vec<Element>, String> {
    let elements = match parse_scan("scan", data).map_err(|e| e.rule)? {
        Scanned::Gs1(e) => e,
        _ => return Err("not a GS1 element string".into()),
    };
    let named = [
        ("AI 00", &elements.sscc),
        ("AI 01", &elements.gtin),
        ("AI 10", &elements.lot),
        ("AI 17", &elements.expiry),
        ("AI 21", &elements.serial),
        ("AI 414", &elements.gln),
        ("AI 420", &elements.ship_to_postal_code),
    ];
    Ok(named
        .into_iter()
        .filter_map(|(name, value)| {
            value.as_ref().map(|v| Element {
                name: name.to_string(),
                data: v.clone(),
            })
        })
        .collect())
}

/// What the read elements say against the printed label: a structure the label does not
/// carry, one that differs, nothing identifying the container.
pub fn compare(printed: &LabelContent, read: &[Element]) -> Vec<String> {
    let mut findings = Vec::new();
    for element in read {
        match printed.elements.iter().find(|p| p.name == element.name) {
            None => findings.push(format!(
                "{} {} was read, but the label printed for {} carries no {}",
                element.name, element.data, printed.container, element.name
            )),
            Some(p) if p.data != element.data => findings.push(format!(
                "{} read {}, but the label printed for {} carries {}",
                element.name, element.data, printed.container, p.data
            )),
            Some(_) => {}
        }
    }
    let identifying = identifying_element(&printed.container_kind);
    if !read.iter().any(|e| e.name == identifying) {
        findings.push(format!(
            "no {identifying} was read: the scan does not identify the container {}",
            printed.container
        ));
    }
    findings
}

/// The element that names the container: the DIN of a bag, the COI of a final unit (with
/// its product code), the SSCC of a shipper.
fn identifying_element(kind: &str) -> &'static str {
    match kind {
        "collection_bag" => "DS001",
        "final_unit" => "DS040",
        _ => "AI 00",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_label() -> LabelContent {
        LabelContent {
            container_kind: "final_unit".into(),
            container: "CHA999926000001S0001A0X".into(),
            elements: vec![
                Element {
                    name: "DS040".into(),
                    data: "&/CHA999926000001".into(),
                },
                Element {
                    name: "DS003".into(),
                    data: "=<S00011A0".into(),
                },
            ],
            matrix: "=+02000&/CHA999926000001=<S00011A0".into(),
            linear: vec![],
            text: vec![],
        }
    }

    #[test]
    fn the_printed_label_scanned_back_matches() {
        let read = read_scan("]d1=+02000&/CHA999926000001=<S00011A0\r\n").expect("reads");
        assert!(compare(&unit_label(), &read).is_empty());
    }

    #[test]
    fn another_patients_coi_is_a_finding() {
        let read = read_scan("=+02000&/CHA999926000002=<S00011A0").expect("reads");
        let findings = compare(&unit_label(), &read);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].contains("DS040 read &/CHA999926000002"),
            "{findings:?}"
        );
    }

    #[test]
    fn a_product_code_alone_does_not_identify_the_unit() {
        let read = read_scan("]C0=<S00011A0").expect("reads");
        let findings = compare(&unit_label(), &read);
        assert!(findings[0].contains("no DS040 was read"), "{findings:?}");
    }

    #[test]
    fn a_shippers_gs1_symbol_is_read_by_element() {
        let read = read_scan("]d2001061414123456789081012345\u{1d}42075013").expect("reads");
        let names: Vec<&str> = read.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["AI 00", "AI 10", "AI 420"]);
        assert!(read_scan("]X9abc").is_err());
        assert!(read_scan("=<S0001")
            .expect_err("short")
            .contains("10 characters"));
    }
}
