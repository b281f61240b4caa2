//! The identifiers printed on bags and labels, each with its own check character:
//! ISO/IEC 7064 MOD 37-2 (ISBT 128 DIN and COI), GS1 mod-10 (GLN), and the ISBT 128 FIN.

pub mod compound;
pub mod scan;

use std::fmt;

use crate::error::FieldError;

/// How a refusal of a check character that does not match its identifier begins (its code
/// is `check_character`).
pub(crate) const CHECK_CHARACTER_WRONG: &str = "MOD 37-2 check character is wrong";

/// The MOD 37-2 alphabet: `0-9`, `A-Z`, `*`, with values 0..36.
const MOD37_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

fn mod37_value(c: char) -> Option<u32> {
    MOD37_ALPHABET
        .iter()
        .position(|&a| char::from(a) == c)
        .map(|p| p as u32)
}

/// ISO/IEC 7064 MOD 37-2 check character of `data` (upper-case `0-9A-Z*` only), as
/// ICCBBA ST-001 Appendix A specifies for ISBT 128. `None` if a character is outside the alphabet.
pub fn mod37_2_check(data: &str) -> Option<char> {
    let mut acc = 0u32;
    for c in data.chars() {
        acc = ((acc + mod37_value(c)?) * 2) % 37;
    }
    let check = (38 - acc) % 37;
    Some(char::from(MOD37_ALPHABET[check as usize]))
}

/// Whether `text` (data followed by its check character) passes MOD 37-2.
pub fn mod37_2_valid(text: &str) -> bool {
    let mut chars: Vec<char> = text.chars().collect();
    match chars.pop() {
        Some(k) if !chars.is_empty() => {
            let data: String = chars.into_iter().collect();
            mod37_2_check(&data) == Some(k)
        }
        _ => false,
    }
}

/// GS1 mod-10 check digit of the digits before it (weights 3,1,3,... from the right).
pub fn gs1_check_digit(digits: &str) -> Option<u32> {
    let mut sum = 0u32;
    for (i, c) in digits.chars().rev().enumerate() {
        let d = c.to_digit(10)?;
        sum += if i % 2 == 0 { d * 3 } else { d };
    }
    Some((10 - sum % 10) % 10)
}

/// Whether an all-digit GS1 key (GTIN, GLN, SSCC...) ends in its correct check digit.
pub fn gs1_valid(key: &str) -> bool {
    if key.len() < 2 || !key.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let (body, last) = key.split_at(key.len() - 1);
    gs1_check_digit(body) == last.chars().next().and_then(|c| c.to_digit(10))
}

/// A GS1 Global Location Number: 13 digits, the last a mod-10 check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gln(String);

impl Gln {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        if text.len() != 13 || !text.chars().all(|c| c.is_ascii_digit()) {
            return Err(FieldError::new(field, text, "a GLN is exactly 13 digits"));
        }
        let (body, last) = text.split_at(12);
        let expected = gs1_check_digit(body).unwrap_or(0);
        if last != expected.to_string() {
            return Err(FieldError::new(
                field,
                text,
                format!("GS1 check digit is wrong: expected {expected}, given {last}"),
            ));
        }
        Ok(Gln(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISBT 128 Facility Identification Number: 5 characters, the first `A-N`, `P-Z` or
/// `1-9`, the second and third `A-N`, `P-Z` or `0-9`, the last two digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fin(String);

impl Fin {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        const RULE: &str = "an ISBT 128 FIN is 5 characters: A-N, P-Z or 1-9; then two of A-N, P-Z or 0-9; then two digits (upper case, no letter O)";
        let c: Vec<char> = text.chars().collect();
        let letter = |ch: char| ch.is_ascii_uppercase() && ch != 'O';
        let ok = c.len() == 5
            && (letter(c[0]) || ('1'..='9').contains(&c[0]))
            && c[1..3].iter().all(|&ch| letter(ch) || ch.is_ascii_digit())
            && c[3..5].iter().all(char::is_ascii_digit);
        if ok {
            Ok(Fin(text.to_string()))
        } else {
            Err(FieldError::new(field, text, RULE))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISBT 128 Donation Identification Number (data structure 001): FIN, two-digit
/// year, six-digit sequence; its MOD 37-2 check character K is computed over these 13.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Din {
    din: String,
}

impl Din {
    /// Accepts the 13-character DIN, the DIN followed by K (14), or the barcode data
    /// `=` + DIN + two flag characters; type 3 flags (60-96) must equal 60 + the checksum.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        if let Some(data) = text.strip_prefix('=') {
            if data.len() != 15 || !data.is_ascii() {
                return Err(FieldError::new(field, text, "ISBT 128 DIN barcode data is = followed by 13 DIN characters and 2 flag characters"));
            }
            let (din, flags) = data.split_at(13);
            let parsed = Self::parse_din(field, din)?;
            if let Ok(n) = flags.parse::<u32>() {
                if (60..=96).contains(&n) {
                    let expected = 60 + parsed.checksum();
                    if n != expected {
                        return Err(FieldError::new(
                            field,
                            text,
                            format!("the type 3 flags must be {expected} (60 + the MOD 37-2 checksum), given {flags}"),
                        ));
                    }
                }
            }
            return Ok(parsed);
        }
        if !text.is_ascii() {
            return Err(FieldError::new(
                field,
                text,
                "a DIN holds only the characters 0-9 and A-Z",
            ));
        }
        match text.len() {
            13 => Self::parse_din(field, text),
            14 => {
                let (din, k) = text.split_at(13);
                let parsed = Self::parse_din(field, din)?;
                let expected = parsed.check_character();
                if k != expected.to_string() {
                    return Err(FieldError::new(
                        field,
                        text,
                        format!("{CHECK_CHARACTER_WRONG}: expected {expected}, given {k}"),
                    )
                    .with_code("check_character"));
                }
                Ok(parsed)
            }
            _ => Err(FieldError::new(
                field,
                text,
                "a DIN is 13 characters (FIN, 2-digit year, 6-digit sequence), optionally followed by its check character",
            )),
        }
    }

    fn parse_din(field: &str, din: &str) -> Result<Self, FieldError> {
        if !din.is_ascii() || din.len() != 13 {
            return Err(FieldError::new(field, din, "a DIN is 13 characters"));
        }
        Fin::parse(field, &din[..5]).map_err(|e| {
            FieldError::new(field, din, format!("its first 5 characters: {}", e.rule))
        })?;
        if !din[5..].chars().all(|c| c.is_ascii_digit()) {
            return Err(FieldError::new(
                field,
                din,
                "after the FIN, a DIN has a 2-digit year and a 6-digit sequence number",
            ));
        }
        Ok(Din {
            din: din.to_string(),
        })
    }

    /// The MOD 37-2 checksum value (0..36) over the 13 DIN characters.
    fn checksum(&self) -> u32 {
        self.check_character().to_digit(36).unwrap_or(36)
    }

    pub fn check_character(&self) -> char {
        // A parsed DIN is in the MOD 37-2 alphabet.
        mod37_2_check(&self.din).unwrap_or('?')
    }

    pub fn fin(&self) -> &str {
        &self.din[..5]
    }

    pub fn as_str(&self) -> &str {
        &self.din
    }
}

impl fmt::Display for Din {
    /// The DIN followed by its check character.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.din, self.check_character())
    }
}

/// An ISBT 128 Chain of Identity identifier (data structure 040): `CH` + FIN + 2-digit
/// year + 6 characters `A-Z0-9`; Autolog's canonical text adds the MOD 37-2 check
/// character computed over those 15 characters (see IDENTIFIERS.md: our reading of ST-001).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Coi {
    content: String,
}

impl Coi {
    /// Builds a COI from its parts.
    pub fn new(fin: &Fin, year: u8, sequence: &str) -> Result<Self, FieldError> {
        let content = format!("CH{}{:02}{}", fin.as_str(), year % 100, sequence);
        Self::parse_content("coi", &content)
    }

    /// Accepts the canonical form (16 characters), the eye-readable form with spaces
    /// (`CH A9999 26 000001 *`) and the barcode form (`&/` + the 15 content characters,
    /// with or without K). A wrong K names the expected and the given character.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        if !text.is_ascii() {
            return Err(FieldError::new(
                field,
                text,
                "a COI holds only the characters 0-9, A-Z and *",
            ));
        }
        let compact: String = text.chars().filter(|c| *c != ' ').collect();
        let body = compact.strip_prefix("&/").unwrap_or(&compact);
        match body.len() {
            15 if compact.starts_with("&/") => Self::parse_content(field, body),
            16 => {
                let (content, k) = body.split_at(body.len() - 1);
                let coi = Self::parse_content(field, content)?;
                let expected = coi.check_character();
                if k != expected.to_string() {
                    return Err(FieldError::new(
                        field,
                        text,
                        format!("{CHECK_CHARACTER_WRONG}: expected {expected}, given {k}"),
                    )
                    .with_code("check_character"));
                }
                Ok(coi)
            }
            _ => Err(FieldError::new(
                field,
                text,
                "a COI is CH + FIN (5) + year (2) + sequence (6) + check character, e.g. CHA999926000001*",
            )),
        }
    }

    pub(crate) fn parse_content(field: &str, content: &str) -> Result<Self, FieldError> {
        const RULE: &str = "COI content is CH + FIN (5) + 2-digit year + 6 characters A-Z or 0-9";
        if !content.is_ascii() || content.len() != 15 || !content.starts_with("CH") {
            return Err(FieldError::new(field, content, RULE));
        }
        Fin::parse(field, &content[2..7])
            .map_err(|e| FieldError::new(field, content, format!("its FIN: {}", e.rule)))?;
        let year_ok = content[7..9].chars().all(|c| c.is_ascii_digit());
        let seq_ok = content[9..]
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
        if !year_ok || !seq_ok {
            return Err(FieldError::new(field, content, RULE));
        }
        Ok(Coi {
            content: content.to_string(),
        })
    }

    pub fn check_character(&self) -> char {
        mod37_2_check(&self.content).unwrap_or('?')
    }

    /// The 15 content characters (what the barcode carries after `&/`).
    pub fn content(&self) -> &str {
        &self.content
    }

    /// `CH A9999 26 000001 *`
    pub fn eye_readable(&self) -> String {
        let c = &self.content;
        format!(
            "{} {} {} {} {}",
            &c[..2],
            &c[2..7],
            &c[7..9],
            &c[9..],
            self.check_character()
        )
    }
}

impl fmt::Display for Coi {
    /// The canonical 16-character form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.content, self.check_character())
    }
}

/// A final product unit's identifier: the chain's COI content (15 characters), the
/// product's ISBT 128 product code (a letter and 4 digits, from reference data) and the
/// division (2 characters `A-Z0-9`), with a MOD 37-2 check character over those 22.
/// Canonical text: the 23 characters, e.g. `CHA999926000001S0001A0K`; eye-readable
/// `CH A9999 26 000001 S0001 A0 K`. The COI it carries ties the bag to its patient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnitId {
    coi: Coi,
    product_code: String,
    division: String,
}

impl UnitId {
    pub fn new(coi: &Coi, product_code: &str, division: &str) -> Result<Self, FieldError> {
        let unit = UnitId {
            coi: coi.clone(),
            product_code: product_code.to_string(),
            division: division.to_string(),
        };
        check_product_code("product_code", product_code)?;
        check_division("division", division)?;
        Ok(unit)
    }

    /// Accepts the canonical 23 characters or the eye-readable form with spaces; a wrong
    /// check character names the expected and the given one.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        const RULE: &str = "a unit identifier is the COI content (CH + FIN + year + sequence, 15) + ISBT 128 product code (5) + division (2) + check character, e.g. CHA999926000001S0001A0K";
        let compact: String = text.chars().filter(|c| *c != ' ').collect();
        if !compact.is_ascii() || compact.len() != 23 {
            return Err(FieldError::new(field, text, RULE));
        }
        let (content, k) = compact.split_at(22);
        let coi = Coi::parse_content(field, &content[..15])
            .map_err(|e| FieldError::new(field, text, format!("its COI part: {}", e.rule)))?;
        let unit = UnitId::new(&coi, &content[15..20], &content[20..22])
            .map_err(|e| FieldError::new(field, text, e.rule))?;
        let expected = unit.check_character();
        if k != expected.to_string() {
            return Err(FieldError::new(
                field,
                text,
                format!("{CHECK_CHARACTER_WRONG}: expected {expected}, given {k}"),
            )
            .with_code("check_character"));
        }
        Ok(unit)
    }

    fn content(&self) -> String {
        format!(
            "{}{}{}",
            self.coi.content(),
            self.product_code,
            self.division
        )
    }

    pub fn check_character(&self) -> char {
        mod37_2_check(&self.content()).unwrap_or('?')
    }

    /// The chain this unit belongs to.
    pub fn coi(&self) -> &Coi {
        &self.coi
    }

    pub fn product_code(&self) -> &str {
        &self.product_code
    }

    pub fn division(&self) -> &str {
        &self.division
    }

    /// `CH A9999 26 000001 S0001 A0 K`
    pub fn eye_readable(&self) -> String {
        let c = self.coi.content();
        format!(
            "{} {} {} {} {} {} {}",
            &c[..2],
            &c[2..7],
            &c[7..9],
            &c[9..],
            self.product_code,
            self.division,
            self.check_character()
        )
    }
}

impl fmt::Display for UnitId {
    /// The canonical 23-character form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.content(), self.check_character())
    }
}

/// An ISBT 128 product code as Autolog reads it from reference data: a letter and 4 digits.
pub fn check_product_code(field: &str, code: &str) -> Result<(), FieldError> {
    let mut chars = code.chars();
    let ok = code.len() == 5
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            code,
            "an ISBT 128 product code is a capital letter and 4 digits, e.g. S0001",
        ))
    }
}

fn check_division(field: &str, division: &str) -> Result<(), FieldError> {
    let ok = division.len() == 2
        && division
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            division,
            "a division is 2 characters A-Z or 0-9, e.g. A0",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_identifier_carries_its_coi_and_a_check_character() {
        let coi = Coi::parse("coi", "&/CHA999926000001").expect("coi");
        let unit = UnitId::new(&coi, "S0001", "A0").expect("unit");
        let text = unit.to_string();
        assert_eq!(text.len(), 23);
        assert!(text.starts_with("CHA999926000001S0001A0"));
        assert_eq!(UnitId::parse("unit", &text).expect("round trip"), unit);
        assert_eq!(
            UnitId::parse("unit", &unit.eye_readable()).expect("eye"),
            unit
        );
        assert_eq!(unit.coi(), &coi);
        // Any one character changed is caught.
        for i in 0..23 {
            let mut chars: Vec<char> = text.chars().collect();
            chars[i] = if chars[i] == '7' { '8' } else { '7' };
            let altered: String = chars.into_iter().collect();
            assert!(UnitId::parse("unit", &altered).is_err(), "{altered}");
        }
        assert!(UnitId::new(&coi, "0001S", "A0").is_err());
        assert!(UnitId::new(&coi, "S0001", "a0").is_err());
    }
    use serde_json::Value;

    const VECTORS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/vectors/check-characters.json"
    );

    fn vectors() -> Option<Value> {
        match std::fs::read_to_string(VECTORS) {
            Ok(text) => Some(serde_json::from_str(&text).expect("vectors are JSON")),
            Err(_) => {
                crate::shared_data_absent(std::path::Path::new(VECTORS));
                None
            }
        }
    }

    #[test]
    fn worked_example_from_st_001() {
        assert_eq!(mod37_2_check("G123417654321"), Some('A'));
        assert!(mod37_2_valid("G123417654321A"));
        assert!(!mod37_2_valid("G123417654321B"));
        assert_eq!(mod37_2_check("g123"), None, "upper case only");
    }

    #[test]
    fn mod37_2_matches_the_published_vectors() {
        let Some(v) = vectors() else { return };
        for case in v["mod37_2_din"].as_array().expect("list") {
            let din = case["din"].as_str().expect("din");
            let k = case["k"].as_str().expect("k");
            assert_eq!(
                mod37_2_check(din).map(String::from),
                Some(k.to_string()),
                "{din}"
            );
            let parsed = Din::parse("din", din).expect("valid DIN");
            assert_eq!(parsed.to_string(), format!("{din}{k}"));
            let flags = case["type3_flags"].as_str().expect("flags");
            assert!(
                Din::parse("din", &format!("={din}{flags}")).is_ok(),
                "{din} {flags}"
            );
        }
        for s in v["mod37_2_invalid_with_k"]["strings"]
            .as_array()
            .expect("list")
        {
            let s = s.as_str().expect("string");
            assert!(!mod37_2_valid(s), "{s} must fail");
        }
        for (data, k) in v["mod37_2_generic"].as_object().expect("map") {
            if data == "source" {
                continue;
            }
            assert_eq!(
                mod37_2_check(data).map(String::from).as_deref(),
                k.as_str(),
                "{data}"
            );
        }
        for s in v["isbt128_barcode_data"]["valid"].as_array().expect("list") {
            assert!(Din::parse("din", s.as_str().expect("s")).is_ok(), "{s}");
        }
        for s in v["isbt128_barcode_data"]["invalid"]
            .as_array()
            .expect("list")
        {
            assert!(Din::parse("din", s.as_str().expect("s")).is_err(), "{s}");
        }
    }

    #[test]
    fn gs1_mod10_matches_the_published_vectors() {
        assert!(gs1_valid("24012345678905"));
        let Some(v) = vectors() else { return };
        for s in v["gs1_mod10"]["valid"].as_array().expect("list") {
            assert!(gs1_valid(s.as_str().expect("s")), "{s}");
        }
        for s in v["gs1_mod10"]["invalid"].as_array().expect("list") {
            assert!(!gs1_valid(s.as_str().expect("s")), "{s}");
        }
    }

    #[test]
    fn coi_examples_match_the_autolog_convention() {
        let Some(v) = vectors() else { return };
        for (content, k) in v["coi_autolog_convention"]["examples"]
            .as_object()
            .expect("map")
        {
            let k = k.as_str().expect("k");
            let coi = Coi::parse("coi", &format!("&/{content}")).expect("barcode form");
            assert_eq!(coi.to_string(), format!("{content}{k}"));
        }
    }

    #[test]
    fn coi_accepts_its_three_forms_and_names_a_wrong_check_character() {
        let canonical = Coi::parse("coi", "CHA999926000001*").expect("canonical");
        assert_eq!(canonical.eye_readable(), "CH A9999 26 000001 *");
        assert_eq!(
            Coi::parse("coi", "CH A9999 26 000001 *").expect("eye-readable"),
            canonical
        );
        assert_eq!(
            Coi::parse("coi", "&/CHA999926000001").expect("barcode"),
            canonical
        );
        assert_eq!(
            Coi::parse("coi", "&/CHA999926000001*").expect("barcode with K"),
            canonical
        );
        let e = Coi::parse("coi", "CHA999926000001A").expect_err("wrong K");
        assert_eq!(e.field, "coi");
        assert!(e.rule.contains("expected *, given A"), "{}", e.rule);
        assert!(
            Coi::parse("coi", "CHO999926000001*").is_err(),
            "no letter O in a FIN"
        );
        assert!(Coi::parse("coi", "XXA999926000001*").is_err());
        let fin = Fin::parse("fin", "A9999").expect("fin");
        assert_eq!(Coi::new(&fin, 26, "000001").expect("new"), canonical);
    }

    #[test]
    fn gln_fin_and_din_refusals_name_the_rule() {
        assert!(Gln::parse("gln", "4012345000009").is_ok());
        let e = Gln::parse("gln", "4012345000008").expect_err("bad check digit");
        assert!(e.rule.contains("expected 9, given 8"), "{}", e.rule);
        assert!(Gln::parse("gln", "40123450000").is_err());
        assert!(Fin::parse("fin", "A9999").is_ok());
        assert!(Fin::parse("fin", "O9999").is_err());
        assert!(Fin::parse("fin", "A99X9").is_err());
        assert!(Fin::parse("fin", "é9999").is_err());
        let e = Din::parse("din", "G123417654321B").expect_err("wrong K");
        assert!(e.rule.contains("expected A, given B"), "{}", e.rule);
        let e = Din::parse("din", "=G12341765432171").expect_err("wrong flags");
        assert!(e.rule.contains("must be 70"), "{}", e.rule);
        assert!(Din::parse("din", "=é").is_err());
        assert!(Din::parse("din", "G1234176543é").is_err());
        assert!(
            Din::parse("din", "G12341765432é").is_err(),
            "multi-byte last character"
        );
        assert!(
            Coi::parse("coi", "CHA999926000001é").is_err(),
            "multi-byte check character"
        );
        assert!(Coi::parse("coi", "&/CHA9999260000é").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC{0,24}") {
            let _ = Din::parse("din", &text);
            let _ = Coi::parse("coi", &text);
            let _ = Gln::parse("gln", &text);
            let _ = Fin::parse("fin", &text);
            let _ = mod37_2_valid(&text);
            let _ = gs1_valid(&text);
        }

        #[test]
        fn mod37_2_catches_every_single_substitution(data in "[0-9A-Z*]{1,20}", at in 0usize..21, with in 0usize..37) {
            let k = mod37_2_check(&data).expect("in the alphabet");
            let mut chars: Vec<char> = format!("{data}{k}").chars().collect();
            proptest::prop_assert!(mod37_2_valid(&chars.iter().collect::<String>()));
            let at = at % chars.len();
            let replacement = char::from(MOD37_ALPHABET[with]);
            if chars[at] != replacement {
                chars[at] = replacement;
                proptest::prop_assert!(!mod37_2_valid(&chars.iter().collect::<String>()));
            }
        }
    }
}
