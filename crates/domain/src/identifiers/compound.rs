//! ISBT 128 compound messages (data structure 023, ST-001 §2.4): one 2-D symbol carrying
//! several data structures, each with its data identifier, after a header `=+aabbb`
//! (`aa` structures follow; `bbb` the message type, 000 when undefined). Read for what a
//! scan needs of a label: the bag's DIN, or the final unit (its COI, product code and
//! division). Each structure's identifier and length are checked; one not read here
//! (dates, divisions) is stepped over by its length.

use crate::identifiers::{Coi, UnitId};
use crate::FieldError;

/// What a compound message carries that a scan uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compound {
    /// DS001 as scanned: `=` + 13 DIN characters + 2 flag characters.
    pub din: Option<String>,
    /// DS040 as scanned: `&/` + 15 COI characters.
    pub coi: Option<String>,
    /// DS003's content: `αooootds` (product description code, donation type, division).
    pub product_code: Option<String>,
}

impl Compound {
    /// The final unit the message names: its COI with the product code's first five
    /// characters and its division (the last two).
    pub fn unit(&self) -> Option<Result<UnitId, FieldError>> {
        let (coi, product) = (self.coi.as_deref()?, self.product_code.as_deref()?);
        Some((|| {
            let coi = Coi::parse("coi", coi)?;
            let (code, division) = (
                product.get(..5).unwrap_or(""),
                product.get(6..8).unwrap_or(""),
            );
            UnitId::new(&coi, code, division).map_err(|mut e| {
                e.rule = format!("its product code {product}: {}", e.rule);
                e
            })
        })())
    }
}

/// The structures a compound message may hold, by data identifier: (identifier, name,
/// what it is, its length with the identifier). A DIN's identifier is `=` and its first
/// character.
const STRUCTURES: &[(&str, &str, &str, usize)] = &[
    ("=<", "DS003", "product code (DS003)", 10),
    ("&>", "DS005", "expiration date and time (DS005)", 12),
    ("&*", "DS007", "collection date and time (DS007)", 12),
    ("&}", "DS009", "production date and time (DS009)", 12),
    ("=(", "DS031", "flexible date and time (DS031)", 18),
    ("=,", "DS032", "product divisions (DS032)", 8),
    ("&/", "DS040", "chain of identity identifier (DS040)", 17),
];

/// Reads `=+aabbb` and the structures after it.
pub fn parse_compound(text: &str) -> Result<Compound, String> {
    let mut found = Compound::default();
    for (name, structure) in structures(text)? {
        match name {
            "DS003" => found.product_code = Some(structure[2..].to_string()),
            "DS040" => found.coi = Some(structure),
            "DS001" => found.din = Some(structure),
            _ => {}
        }
    }
    Ok(found)
}

/// Every structure of a compound message, in order: its name (`DS001`...) and the
/// structure with its data identifier. Each identifier and length is checked.
pub fn structures(text: &str) -> Result<Vec<(&'static str, String)>, String> {
    let Some(rest) = text.strip_prefix("=+") else {
        return Err("a compound message begins with =+".into());
    };
    let header = rest
        .get(..5)
        .filter(|h| h.chars().all(|c| c.is_ascii_digit()));
    let Some(header) = header else {
        return Err("a compound message's header is =+ and five digits (the number of structures, then the message type)".into());
    };
    let count: usize = header[..2].parse().unwrap_or(0);
    if count == 0 {
        return Err("the compound message's header announces no structure".into());
    }
    let mut body = &rest[5..];
    let mut found = Vec::with_capacity(count);
    for n in 1..=count {
        let (name, what, len) =
            identify(body).map_err(|e| format!("structure {n} of {count}: {e}"))?;
        let Some(structure) = body.get(..len) else {
            return Err(format!("structure {n} of {count} ({what}) is cut short: {len} characters expected, {} left", body.len()));
        };
        found.push((name, structure.to_string()));
        body = &body[len..];
    }
    if !body.is_empty() {
        return Err(format!(
            "{} characters follow the {count} structures the header announces",
            body.chars().count()
        ));
    }
    Ok(found)
}

/// The structure at the start of `body`: its name, what it is and its length.
pub fn identify(body: &str) -> Result<(&'static str, &'static str, usize), String> {
    let id = body
        .get(..2)
        .ok_or("nothing where a structure was announced")?;
    if let Some((_, name, what, len)) = STRUCTURES.iter().find(|(i, _, _, _)| *i == id) {
        return Ok((name, what, *len));
    }
    let mut chars = id.chars();
    match (chars.next(), chars.next()) {
        (Some('='), Some(c)) if c.is_ascii_alphanumeric() && c != 'O' && c != '0' => {
            Ok(("DS001", "donation identification number (DS001)", 16))
        }
        _ => Err(format!(
            "data identifier {id} is not one Autolog reads in a compound message"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compound_message_gives_its_din_coi_and_product() {
        let bag = parse_compound("=+03000=G12341765432170=<S0001AA0&>0261231159").expect("reads");
        assert_eq!(bag.din.as_deref(), Some("=G12341765432170"));
        assert_eq!(bag.product_code.as_deref(), Some("S0001AA0"));
        let unit = parse_compound("=+02000&/CHA999926000001=<S0001AA0").expect("reads");
        let id = unit.unit().expect("a unit").expect("valid");
        assert!(id.to_string().starts_with("CHA999926000001S0001A0"), "{id}");
    }

    #[test]
    fn a_malformed_compound_message_is_refused_saying_where() {
        for (text, says) in [
            ("=+0", "five digits"),
            ("=+00000", "no structure"),
            ("=+02000=G12341765432170", "structure 2 of 2"),
            ("=+01000=<S0001", "cut short"),
            ("=+01000=G12341765432170X", "1 characters follow"),
            ("=+01000%%abc", "not one Autolog reads"),
        ] {
            let error = parse_compound(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
