//! Raw barcode data as scanned at a receipt or at the bedside, parsed into the identifier it
//! carries: an ISBT 128 DIN (flags checked) or a GS1 element string (check digits, dates checked).

use std::fmt;

use crate::error::FieldError;
use crate::identifiers::{gs1_check_digit, Din, Fin};

/// ASCII 29, the group separator a scanner sends for FNC1 between GS1 elements.
const GS: char = '\u{1d}';

/// The MOD 37-2 alphabet, indexed by checksum value (type 3 flags are 60 + that index).
const MOD37_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";

/// Longest value of the variable-length AIs read here: (10) lot and (21) serial.
const VARIABLE_MAX: usize = 20;

const ACCEPTED: &str = "expected an ISBT 128 DIN (barcode data such as =A99991712345600, or the \
     eye-readable DIN followed by its check character) or a GS1 element string (such as \
     (01)09506000134352(10)ABC(21)S1, or 010950600013435210ABC<GS>21S1 as scanned), optionally after \
     a symbology identifier (]C0 for a DIN; ]C1, ]d2, ]Q3 or ]e0 for GS1), or a final unit's \
     identifier (COI content, product code, division and check character, e.g. CHA999926000001S0001A0K), \
     or an ISBT 128 compound message (=+ and five digits, then its data structures) carrying one of these";

const SUPPORTED_AIS: &str =
    "Autolog reads (00) SSCC, (01) GTIN, (10) lot, (17) expiry, (21) serial, (414) GLN and (420) ship-to postal code";

const CSET82: &str = "!\"%&'()*+,-./0-9:;<=>?A-Z_a-z";

/// What one scan carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned {
    /// ISBT 128 Donation Identification Number data structure `=` + 13 chars + 2 flag chars
    /// (`flags` is empty when the eye-readable DIN with its check character was read).
    Din { din: Din, flags: String },
    /// GS1 element string
    Gs1(Gs1Elements),
    /// A final product unit's identifier (it carries the chain's COI).
    Unit(crate::identifiers::UnitId),
}

/// The GS1 elements Autolog reads; each is present at most once in a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gs1Elements {
    /// (01) GTIN, 14 digits, check digit verified.
    pub gtin: Option<String>,
    /// (10) batch or lot number, 1 to 20 characters.
    pub lot: Option<String>,
    /// (17) expiry date, YYMMDD as scanned (DD may be 00: the end of the month).
    pub expiry: Option<String>,
    /// (21) serial number, 1 to 20 characters.
    pub serial: Option<String>,
    /// (00) SSCC, 18 digits, check digit verified.
    pub sscc: Option<String>,
    /// (414) GLN, 13 digits, check digit verified.
    pub gln: Option<String>,
    /// (420) ship-to postal code, 1 to 20 characters.
    pub ship_to_postal_code: Option<String>,
}

impl Scanned {
    /// The unit identifier used in Autolog: a DIN's canonical text (13 characters and its
    /// check character K); for GS1 with GTIN and serial `(01)<gtin>(21)<serial>`; otherwise
    /// with an SSCC `(00)<sscc>`; otherwise the whole element string in parenthesised form.
    pub fn unit_id(&self) -> String {
        match self {
            Scanned::Din { din, .. } => din.to_string(),
            Scanned::Unit(unit) => unit.to_string(),
            Scanned::Gs1(elements) => match (&elements.gtin, &elements.serial, &elements.sscc) {
                (Some(gtin), Some(serial), _) => format!("(01){gtin}(21){serial}"),
                (_, _, Some(sscc)) => format!("(00){sscc}"),
                _ => elements.to_string(),
            },
        }
    }
}

impl fmt::Display for Gs1Elements {
    /// The parenthesised (human-readable) element string, AIs in the order (00), (01), (10),
    /// (17), (21), (414).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ai in Ai::ALL {
            if let Some(value) = self.get(ai) {
                write!(f, "({}){value}", ai.code())?;
            }
        }
        Ok(())
    }
}

impl Gs1Elements {
    fn get(&self, ai: Ai) -> &Option<String> {
        match ai {
            Ai::Sscc => &self.sscc,
            Ai::Gtin => &self.gtin,
            Ai::Lot => &self.lot,
            Ai::Expiry => &self.expiry,
            Ai::Serial => &self.serial,
            Ai::Gln => &self.gln,
            Ai::ShipTo => &self.ship_to_postal_code,
        }
    }

    fn slot(&mut self, ai: Ai) -> &mut Option<String> {
        match ai {
            Ai::Sscc => &mut self.sscc,
            Ai::Gtin => &mut self.gtin,
            Ai::Lot => &mut self.lot,
            Ai::Expiry => &mut self.expiry,
            Ai::Serial => &mut self.serial,
            Ai::Gln => &mut self.gln,
            Ai::ShipTo => &mut self.ship_to_postal_code,
        }
    }
}

/// Parses one scan. `field` names the input in errors; an error's value is the scanned data
/// with control characters shown as `<GS>`, `<CR>`... A trailing CR/LF (the Enter a
/// keyboard-wedge scanner sends) is ignored.
///
/// Accepted: ISBT 128 DIN barcode data `=` + DIN + flags (optionally after `]C0`); the
/// eye-readable DIN followed by its check character; a GS1 element string as scanned (FNC1 as
/// `<GS>`, optionally after `]C1`, `]d2`, `]Q3` or `]e0`) or in parenthesised form. Without a
/// symbology identifier, 13 or 14 characters shaped like a DIN are read as a DIN.
pub fn parse_scan(field: &str, raw: &str) -> Result<Scanned, FieldError> {
    let data: Vec<char> = raw.trim_end_matches(['\r', '\n']).chars().collect();
    dispatch(&data).map_err(|r| FieldError::new(field, show(raw), r.rule).with_code(r.code))
}

/// Why a scan was refused: the rule it breaks, and the kind of rule (a
/// [`FieldError::code`]: `check_character` when a character was misread).
struct Refusal {
    rule: String,
    code: &'static str,
}

impl From<String> for Refusal {
    fn from(rule: String) -> Self {
        Refusal {
            rule,
            code: "invalid",
        }
    }
}

impl From<FieldError> for Refusal {
    fn from(e: FieldError) -> Self {
        Refusal {
            rule: e.rule,
            code: e.code,
        }
    }
}

impl Refusal {
    /// A check character that does not match what was read.
    fn misread(rule: String) -> Self {
        Refusal {
            rule: format!("{rule}: a character was misread"),
            code: "check_character",
        }
    }
}

fn dispatch(data: &[char]) -> Result<Scanned, Refusal> {
    let Some(&first) = data.first() else {
        return Err(format!("nothing was scanned: {ACCEPTED}").into());
    };
    if first == ']' {
        let id: String = data.iter().take(3).collect();
        let rest = data.get(3..).unwrap_or_default();
        return match id.as_str() {
            "]C0" if rest.first() == Some(&'=') => parse_din_barcode(data, 3),
            "]C0" => Err(format!(
                "after the symbology identifier ]C0 (Code 128) Autolog expects ISBT 128 DIN data beginning with =: {ACCEPTED}"
            ).into()),
            "]C1" | "]d2" | "]Q3" | "]e0" if rest.is_empty() => Err(format!(
                "nothing follows the GS1 symbology identifier {id}: {ACCEPTED}"
            ).into()),
            "]C1" | "]d2" | "]Q3" | "]e0" if rest.first() == Some(&'(') => {
                parse_bracketed(data, 3).map(Scanned::Gs1).map_err(Refusal::from)
            }
            "]C1" | "]d2" | "]Q3" | "]e0" => parse_element_string(data, 3).map(Scanned::Gs1).map_err(Refusal::from),
            _ => Err(format!(
                "symbology identifier {} is not one Autolog reads: {ACCEPTED}",
                show(&id)
            ).into()),
        };
    }
    // A final product unit's identifier (COI content + product code + division + K).
    let compact: String = data.iter().filter(|c| **c != ' ').collect();
    if compact.starts_with("CH") && compact.len() == 23 {
        return crate::identifiers::UnitId::parse("unit", &compact)
            .map(Scanned::Unit)
            .map_err(Refusal::from);
    }
    match first {
        '=' if data.get(1) == Some(&'+') => parse_compound_scan(data),
        '=' => parse_din_barcode(data, 0),
        '(' => parse_bracketed(data, 0)
            .map(Scanned::Gs1)
            .map_err(Refusal::from),
        GS => parse_element_string(data, 0)
            .map(Scanned::Gs1)
            .map_err(Refusal::from),
        c if c.is_ascii_uppercase() && matches!(data.len(), 13 | 14) => parse_din_text(data),
        c if c.is_ascii_digit() => {
            if matches!(data.len(), 13 | 14) && din_shape_error(&data[..13]).is_none() {
                parse_din_text(data)
            } else {
                parse_element_string(data, 0)
                    .map(Scanned::Gs1)
                    .map_err(Refusal::from)
            }
        }
        _ => Err(format!("not recognised: {ACCEPTED}").into()),
    }
}

// ---------------------------------------------------------------------------------------
// ISBT 128 DIN

/// `data[start]` is `=`: the DIN barcode data structure, `=` + 13 DIN characters + 2 flags.
/// An ISBT 128 compound message (DS023): the DIN it carries (a bag's label), else the final
/// unit its chain of identity and product code name.
fn parse_compound_scan(data: &[char]) -> Result<Scanned, Refusal> {
    let text: String = data.iter().collect();
    let found = crate::identifiers::compound::parse_compound(&text)
        .map_err(|e| format!("ISBT 128 compound message: {e}"))?;
    if let Some(din) = &found.din {
        let chars: Vec<char> = din.chars().collect();
        return parse_din_barcode(&chars, 0);
    }
    match found.unit() {
        Some(unit) => unit.map(Scanned::Unit).map_err(|e| Refusal {
            rule: format!("ISBT 128 compound message: {}", e.rule),
            code: e.code,
        }),
        None => Err(String::from("this ISBT 128 compound message carries neither a DIN nor a chain of identity with its product code").into()),
    }
}

fn parse_din_barcode(data: &[char], start: usize) -> Result<Scanned, Refusal> {
    let body = data.get(start + 1..).unwrap_or_default();
    if let Some(&c) = body.first() {
        if !c.is_ascii_alphanumeric() {
            return Err(format!(
                "ISBT 128 data identifier ={} is not a DIN's (a DIN's data identifier is = followed by its first character: A-N, P-Z or 1-9): {ACCEPTED}",
                show_bare(c)
            ).into());
        }
    }
    if body.len() != 15 {
        return Err(format!(
            "ISBT 128 DIN barcode data is = followed by 13 DIN characters and 2 flag characters; {} characters follow the =",
            body.len()
        ).into());
    }
    let (din_chars, flag_chars) = body.split_at(13);
    if let Some(problem) = din_shape_error(din_chars) {
        return Err(with_offset(problem, start + 1).into());
    }
    let din_text: String = din_chars.iter().collect();
    let din =
        Din::parse("din", &din_text).map_err(|e| format!("the DIN {din_text}: {}", e.rule))?;
    let flags: String = flag_chars.iter().collect();
    const FLAG_RULE: &str = "ISBT 128 DIN flag characters are two digits: 00 (no check), 01-59 (process control flags) or 60-96 (60 + the MOD 37-2 checksum of the DIN)";
    let value = match flags.parse::<u32>() {
        Ok(n) if flags.chars().all(|c| c.is_ascii_digit()) && n <= 96 => n,
        _ => {
            return Err(format!(
                "flag characters {} at character {}: {FLAG_RULE}",
                flag_chars.iter().map(|&c| show_bare(c)).collect::<String>(),
                start + 15
            )
            .into())
        }
    };
    if value >= 60 {
        let declared = MOD37_ALPHABET
            .get((value - 60) as usize)
            .map(|&b| char::from(b))
            .unwrap_or('?');
        let computed = din.check_character();
        if declared != computed {
            return Err(Refusal::misread(format!(
                "flag characters {flags} declare check character {declared} but the DIN {din_text} computes {computed}"
            )));
        }
    }
    Ok(Scanned::Din { din, flags })
}

/// The eye-readable DIN: 13 characters followed by the check character K.
fn parse_din_text(data: &[char]) -> Result<Scanned, Refusal> {
    let din_chars = &data[..data.len().min(13)];
    if let Some(problem) = din_shape_error(din_chars) {
        return Err(problem.into());
    }
    let din_text: String = din_chars.iter().collect();
    let Some(&given) = data.get(13) else {
        return Err(format!(
            "the DIN {din_text} was read without its check character: scan its barcode, or add the check character printed after it so that a misread can be caught"
        ).into());
    };
    let din =
        Din::parse("din", &din_text).map_err(|e| format!("the DIN {din_text}: {}", e.rule))?;
    let computed = din.check_character();
    if given != computed {
        return Err(Refusal::misread(format!(
            "the DIN {din_text} computes check character {computed} but {} was given",
            show_bare(given)
        )));
    }
    Ok(Scanned::Din {
        din,
        flags: String::new(),
    })
}

/// Names the first character of 13 that cannot be part of a DIN (positions 1-based within
/// `din`), or `None` when the shape is right: FIN (5), 2-digit year, 6-digit sequence.
fn din_shape_error(din: &[char]) -> Option<String> {
    if din.len() != 13 {
        return Some(format!(
            "a DIN is 13 characters (FIN 5, year 2 digits, sequence 6 digits); {} were read",
            din.len()
        ));
    }
    let fin: String = din[..5].iter().collect();
    if Fin::parse("fin", &fin).is_err() {
        let letter = |c: char| c.is_ascii_uppercase() && c != 'O';
        let bad = din[..5].iter().enumerate().find(|&(i, &c)| match i {
            0 => !(letter(c) || ('1'..='9').contains(&c)),
            1 | 2 => !(letter(c) || c.is_ascii_digit()),
            _ => !c.is_ascii_digit(),
        });
        let (i, c) = bad.map(|(i, &c)| (i, c)).unwrap_or((0, din[0]));
        return Some(format!(
            "character {} is {}, which cannot stand there in a DIN's FIN (A-N, P-Z or 1-9; then two of A-N, P-Z or 0-9; then two digits; upper case, no letter O)",
            i + 1,
            show_char(c)
        ));
    }
    din[5..]
        .iter()
        .position(|c| !c.is_ascii_digit())
        .map(|i| {
            format!(
                "character {} is {}, but after its FIN a DIN has a 2-digit year and a 6-digit sequence number",
                i + 6,
                show_char(din[i + 5])
            )
        })
}

/// Shifts the "character N" of a DIN-relative message to a position in the scanned data.
fn with_offset(problem: String, offset: usize) -> String {
    if let Some(rest) = problem.strip_prefix("character ") {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<usize>() {
            return format!("character {}{}", n + offset, &rest[digits.len()..]);
        }
    }
    problem
}

// ---------------------------------------------------------------------------------------
// GS1

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ai {
    Sscc,
    Gtin,
    Lot,
    Expiry,
    Serial,
    Gln,
    ShipTo,
}

impl Ai {
    const ALL: [Ai; 7] = [
        Ai::Sscc,
        Ai::Gtin,
        Ai::Lot,
        Ai::Expiry,
        Ai::Serial,
        Ai::Gln,
        Ai::ShipTo,
    ];

    fn code(self) -> &'static str {
        match self {
            Ai::Sscc => "00",
            Ai::Gtin => "01",
            Ai::Lot => "10",
            Ai::Expiry => "17",
            Ai::Serial => "21",
            Ai::Gln => "414",
            Ai::ShipTo => "420",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Ai::Sscc => "(00) SSCC",
            Ai::Gtin => "(01) GTIN",
            Ai::Lot => "(10) lot",
            Ai::Expiry => "(17) expiry",
            Ai::Serial => "(21) serial",
            Ai::Gln => "(414) GLN",
            Ai::ShipTo => "(420) ship-to postal code",
        }
    }

    /// Digits of a fixed-length AI's value; `None` for the variable-length ones.
    fn fixed_len(self) -> Option<usize> {
        match self {
            Ai::Sscc => Some(18),
            Ai::Gtin => Some(14),
            Ai::Expiry => Some(6),
            Ai::Gln => Some(13),
            Ai::Lot | Ai::Serial | Ai::ShipTo => None,
        }
    }

    fn has_check_digit(self) -> bool {
        matches!(self, Ai::Sscc | Ai::Gtin | Ai::Gln)
    }

    fn index(self) -> usize {
        Ai::ALL.iter().position(|&a| a == self).unwrap_or(0)
    }
}

/// The GS1 AI encodable character set 82.
fn in_cset82(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!\"%&'()*+,-./:;<=>?_".contains(c)
}

/// Collects elements and remembers where each AI was seen (to refuse a repeated AI).
struct Collector {
    elements: Gs1Elements,
    seen_at: [Option<usize>; 7],
}

impl Collector {
    fn new() -> Self {
        Collector {
            elements: Gs1Elements::default(),
            seen_at: [None; 7],
        }
    }

    /// Validates one value cut from the data and stores it. `ai_at` and `value_at` are the
    /// 1-based positions in the scanned data of the AI and of its value's first character.
    fn store(
        &mut self,
        ai: Ai,
        value: &[char],
        ai_at: usize,
        value_at: usize,
    ) -> Result<(), String> {
        let label = ai.label();
        if let Some(first) = self.seen_at[ai.index()] {
            return Err(format!(
                "{label} appears twice (at characters {first} and {ai_at}); a scan carries each application identifier once"
            ));
        }
        match ai.fixed_len() {
            Some(n) => {
                if let Some(i) = value.iter().position(|c| !c.is_ascii_digit()) {
                    return Err(format!(
                        "{label} is {n} digits, but character {} is {}",
                        value_at + i,
                        show_char(value[i])
                    ));
                }
                if value.len() < n {
                    return Err(format!(
                        "{label} is {n} digits, but the field starting at character {value_at} ends after {}: the data is truncated",
                        value.len()
                    ));
                }
                if value.len() > n {
                    return Err(format!(
                        "{label} is {n} digits, but {} were given from character {value_at}",
                        value.len()
                    ));
                }
            }
            None => {
                if let Some(i) = value.iter().position(|&c| !in_cset82(c)) {
                    return Err(format!(
                        "{label}: character {} is {}, outside the GS1 character set 82 ({CSET82})",
                        value_at + i,
                        show_char(value[i])
                    ));
                }
                if value.is_empty() {
                    return Err(format!(
                        "{label} is empty at character {value_at}: it holds 1 to {VARIABLE_MAX} characters"
                    ));
                }
                if value.len() > VARIABLE_MAX {
                    return Err(format!(
                        "{label} holds at most {VARIABLE_MAX} characters, but {} follow from character {value_at} (is the <GS> separator after it missing?)",
                        value.len()
                    ));
                }
            }
        }
        let text: String = value.iter().collect();
        if ai.has_check_digit() {
            check_digit(label, &text)?;
        }
        if ai == Ai::Expiry {
            check_date(label, &text)?;
        }
        self.seen_at[ai.index()] = Some(ai_at);
        *self.elements.slot(ai) = Some(text);
        Ok(())
    }
}

/// `key` is all digits (already checked); its last is the GS1 mod-10 check digit.
fn check_digit(label: &str, key: &str) -> Result<(), String> {
    let (body, last) = key.split_at(key.len().saturating_sub(1));
    let computed = gs1_check_digit(body);
    let given = last.chars().next().and_then(|c| c.to_digit(10));
    match (computed, given) {
        (Some(computed), Some(given)) if computed == given => Ok(()),
        (Some(computed), Some(given)) => Err(format!(
            "{label} {key}: check digit {given} does not match the computed {computed}; a character was misread"
        )),
        _ => Err(format!("{label} {key} is not all digits")),
    }
}

/// YYMMDD: month 01-12, day 00 (end of month) up to the month's last day.
fn check_date(label: &str, date: &str) -> Result<(), String> {
    let number =
        |range: std::ops::Range<usize>| date.get(range).and_then(|s| s.parse::<u32>().ok());
    let (Some(yy), Some(mm), Some(dd)) = (number(0..2), number(2..4), number(4..6)) else {
        return Err(format!("{label} {date} is not a date YYMMDD"));
    };
    if !(1..=12).contains(&mm) {
        return Err(format!(
            "{label} {date} is not a date YYMMDD: month {mm:02} is not 01-12"
        ));
    }
    let last_day = match mm {
        2 if yy % 4 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if dd > last_day {
        return Err(format!(
            "{label} {date} is not a date YYMMDD: month {mm:02} has no day {dd:02} (day 00 means the month's last day)"
        ));
    }
    Ok(())
}

/// Looks up the AI beginning at `data[i]`.
fn read_ai(data: &[char], i: usize) -> Result<Ai, String> {
    let digits: String = data[i..]
        .iter()
        .take(4)
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if digits.is_empty() {
        return Err(format!(
            "an application identifier (digits) was expected at character {}, but it is {}",
            i + 1,
            show_char(data[i])
        ));
    }
    Ai::ALL
        .into_iter()
        .find(|ai| digits.starts_with(ai.code()))
        .ok_or_else(|| {
            format!(
                "unknown or unsupported application identifier at character {}: the data there begins {digits}; {SUPPORTED_AIS}",
                i + 1
            )
        })
}

/// The element string as a scanner sends it: AI, value, `<GS>` after variable-length values.
fn parse_element_string(data: &[char], start: usize) -> Result<Gs1Elements, String> {
    let mut i = start;
    if data.get(i) == Some(&GS) {
        i += 1; // FNC1 in first position, sent as <GS> by some scanners
    }
    if i >= data.len() {
        return Err(format!("no GS1 data follows: {ACCEPTED}"));
    }
    let mut collector = Collector::new();
    while i < data.len() {
        if data[i] == GS {
            return Err(format!(
                "unexpected <GS> at character {}: an application identifier was expected (two separators in a row?)",
                i + 1
            ));
        }
        let ai = read_ai(data, i)?;
        let ai_at = i + 1;
        let value_start = i + ai.code().len();
        let mut end = value_start;
        while end < data.len()
            && data[end] != GS
            && ai.fixed_len().is_none_or(|n| end - value_start < n)
        {
            end += 1;
        }
        collector.store(ai, &data[value_start..end], ai_at, value_start + 1)?;
        i = end;
        if data.get(i) == Some(&GS) {
            i += 1;
        }
    }
    Ok(collector.elements)
}

/// Whether `data[j..]` begins `(` + 2 to 4 digits + `)`.
fn at_bracketed_ai(data: &[char], j: usize) -> bool {
    if data.get(j) != Some(&'(') {
        return false;
    }
    let digits = data[j + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    (2..=4).contains(&digits) && data.get(j + 1 + digits) == Some(&')')
}

/// The human-readable form `(01)09506000134352(10)ABC`: a value runs up to the next `(AI)`.
fn parse_bracketed(data: &[char], start: usize) -> Result<Gs1Elements, String> {
    let mut collector = Collector::new();
    let mut i = start;
    while i < data.len() {
        if !at_bracketed_ai(data, i) {
            return Err(format!(
                "an application identifier in parentheses, such as (01), was expected at character {}",
                i + 1
            ));
        }
        let digits: String = data[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let ai = Ai::ALL
            .into_iter()
            .find(|ai| ai.code() == digits)
            .ok_or_else(|| {
                format!(
                    "unknown or unsupported application identifier ({digits}) at character {}; {SUPPORTED_AIS}",
                    i + 1
                )
            })?;
        let value_start = i + digits.len() + 2;
        let end = (value_start..data.len())
            .find(|&j| at_bracketed_ai(data, j))
            .unwrap_or(data.len());
        collector.store(ai, &data[value_start..end], i + 1, value_start + 1)?;
        i = end;
    }
    Ok(collector.elements)
}

// ---------------------------------------------------------------------------------------
// Showing scanned data in errors

fn control_name(c: char) -> Option<String> {
    Some(match c {
        GS => "<GS>".to_string(),
        '\u{1e}' => "<RS>".to_string(),
        '\u{04}' => "<EOT>".to_string(),
        '\r' => "<CR>".to_string(),
        '\n' => "<LF>".to_string(),
        '\t' => "<TAB>".to_string(),
        c if c.is_control() => format!("<U+{:04X}>", u32::from(c)),
        _ => return None,
    })
}

/// The scanned data with control characters made visible.
fn show(raw: &str) -> String {
    raw.chars()
        .map(|c| control_name(c).unwrap_or_else(|| c.to_string()))
        .collect()
}

/// One character, visible: `<GS>` or the character itself.
fn show_bare(c: char) -> String {
    control_name(c).unwrap_or_else(|| c.to_string())
}

/// One character for a sentence: `<GS>`, `a space` or `'x'`.
fn show_char(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        c => control_name(c).unwrap_or_else(|| format!("'{c}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifiers::mod37_2_check;
    use proptest::prelude::*;

    fn ok(raw: &str) -> Scanned {
        match parse_scan("scan", raw) {
            Ok(s) => s,
            Err(e) => panic!("{raw:?} must parse: {e}"),
        }
    }

    fn refused(raw: &str) -> FieldError {
        match parse_scan("scan", raw) {
            Ok(s) => panic!("{raw:?} must be refused, parsed as {s:?}"),
            Err(e) => {
                assert_eq!(e.field, "scan");
                e
            }
        }
    }

    fn gs1(raw: &str) -> Gs1Elements {
        match ok(raw) {
            Scanned::Gs1(e) => e,
            other => panic!("{raw:?} is not GS1: {other:?}"),
        }
    }

    fn din_of(scanned: &Scanned) -> (String, String) {
        match scanned {
            Scanned::Din { din, flags } => (din.as_str().to_string(), flags.clone()),
            other => panic!("not a DIN: {other:?}"),
        }
    }

    #[test]
    fn din_barcode_with_flags_00_is_not_checked() {
        let scanned = ok("=A99991712345600");
        assert_eq!(
            din_of(&scanned),
            ("A999917123456".to_string(), "00".to_string())
        );
        let k = mod37_2_check("A999917123456").expect("in the alphabet");
        assert_eq!(scanned.unit_id(), format!("A999917123456{k}"));
        assert_eq!(ok("]C0=A99991712345600"), scanned, "symbology identifier");
        assert_eq!(ok("=A99991712345600\r\n"), scanned, "scanner's Enter");
        assert_eq!(
            din_of(&ok("=A99991712345612")).1,
            "12",
            "process control flags"
        );
    }

    #[test]
    fn din_type_3_flags_match_the_identifiers_md_vector() {
        let scanned = ok("=G12341765432170");
        assert_eq!(
            din_of(&scanned),
            ("G123417654321".to_string(), "70".to_string())
        );
        assert_eq!(scanned.unit_id(), "G123417654321A");
        assert_eq!(ok("]C0=G12341765432170"), scanned);
    }

    #[test]
    fn a_wrong_type_3_flag_is_a_misread() {
        let e = refused("=G12341765432171");
        assert_eq!(e.value, "=G12341765432171");
        assert_eq!(
            e.rule,
            "flag characters 71 declare check character B but the DIN G123417654321 computes A: a character was misread"
        );
        // One DIN character misread (the last 1 read as 2), flags as printed.
        let e = refused("=G12341765432270");
        assert!(
            e.rule.starts_with(
                "flag characters 70 declare check character A but the DIN G123417654322 computes"
            ),
            "{}",
            e.rule
        );
        assert!(refused("=G12341765432197").rule.contains("two digits"));
        assert!(refused("=G123417654321AB").rule.contains("two digits"));
    }

    #[test]
    fn din_barcode_shape_errors_name_the_character() {
        let e = refused("=G1234176543O170");
        assert!(e.rule.contains("character 13 is 'O'"), "{}", e.rule);
        let e = refused("=O12341765432170");
        assert!(e.rule.contains("character 2 is 'O'"), "{}", e.rule);
        assert!(refused("=G123417654321")
            .rule
            .contains("13 DIN characters and 2 flag"));
        assert!(refused("=<E0001000").rule.contains("not a DIN's"));
        assert!(refused("]C0(01)09506000134352").rule.contains("]C0"));
    }

    #[test]
    fn eye_readable_din_needs_its_check_character() {
        let scanned = ok("G123417654321A");
        assert_eq!(
            din_of(&scanned),
            ("G123417654321".to_string(), String::new())
        );
        assert_eq!(scanned.unit_id(), "G123417654321A");
        let e = refused("G123417654321B");
        assert_eq!(e.value, "G123417654321B");
        assert_eq!(
            e.rule,
            "the DIN G123417654321 computes check character A but B was given: a character was misread"
        );
        assert_eq!(e.code, "check_character", "a misread, for programs");
        let missing = refused("G123417654321");
        assert!(missing.rule.contains("without its check character"));
        assert_eq!(missing.code, "invalid", "nothing was misread yet");
        let unit = refused("CHA999926000001S0001A0Y");
        assert_eq!(unit.code, "check_character", "{unit}");
        assert!(refused("G12341765432lA")
            .rule
            .contains("character 13 is 'l'"));
        // A FIN may begin with a digit.
        let k = mod37_2_check("1234517123456").expect("in the alphabet");
        assert_eq!(din_of(&ok(&format!("1234517123456{k}"))).0, "1234517123456");
    }

    #[test]
    fn gs1_with_separators_reads_every_ai() {
        let e = gs1("]d2010950600013435210ABC-1/2\u{1d}17271231\u{1d}21S1\u{1d}4144012345000009");
        assert_eq!(
            e,
            Gs1Elements {
                gtin: Some("09506000134352".into()),
                lot: Some("ABC-1/2".into()),
                expiry: Some("271231".into()),
                serial: Some("S1".into()),
                sscc: None,
                gln: Some("4012345000009".into()),
                ship_to_postal_code: None,
            }
        );
        let e = gs1("]C100106141411234567897\u{1d}");
        assert_eq!(e.sscc.as_deref(), Some("106141411234567897"));
        // Fixed-length fields need no separator; a GS after one is tolerated, and so is
        // FNC1 in first position sent as <GS>.
        let plain = gs1("]Q3010950600013435217271200");
        assert_eq!(plain.expiry.as_deref(), Some("271200"), "day 00 is allowed");
        assert_eq!(gs1("]e00109506000134352\u{1d}17271200"), plain);
        assert_eq!(gs1("\u{1d}0109506000134352\u{1d}17271200"), plain);
        assert_eq!(
            gs1("010950600013435217271200"),
            plain,
            "no symbology identifier"
        );
    }

    #[test]
    fn gs1_parenthesised_form() {
        let e = gs1("(01)09506000134352(10)ABC(17)271231(21)S1");
        assert_eq!(e.gtin.as_deref(), Some("09506000134352"));
        assert_eq!(e.lot.as_deref(), Some("ABC"));
        assert_eq!(e.expiry.as_deref(), Some("271231"));
        assert_eq!(e.serial.as_deref(), Some("S1"));
        assert_eq!(
            e,
            gs1("]d20109506000134352\u{1d}10ABC\u{1d}17271231\u{1d}21S1")
        );
        assert_eq!(e.to_string(), "(01)09506000134352(10)ABC(17)271231(21)S1");
        assert_eq!(
            gs1("(10)A(B)C").lot.as_deref(),
            Some("A(B)C"),
            "a ( in a lot"
        );
        assert_eq!(
            gs1("]C1(414)4012345000009").gln.as_deref(),
            Some("4012345000009")
        );
        assert!(refused("(01)0950600013435(21)S1")
            .rule
            .contains("truncated"));
        assert!(refused("(01)095060001343520(21)S1")
            .rule
            .contains("15 were given"));
        assert!(refused("(99)ABC").rule.contains("(99)"));
    }

    #[test]
    fn a_wrong_check_digit_names_the_ai_the_value_and_the_digit() {
        let e = refused("(01)09506000134353");
        assert_eq!(e.value, "(01)09506000134353");
        assert_eq!(
            e.rule,
            "(01) GTIN 09506000134353: check digit 3 does not match the computed 2; a character was misread"
        );
        let e = refused("]C100106141411234567896");
        assert!(
            e.rule
                .starts_with("(00) SSCC 106141411234567896: check digit 6"),
            "{}",
            e.rule
        );
        let e = refused("]C14144012345000008");
        assert!(
            e.rule.starts_with("(414) GLN 4012345000008: check digit 8"),
            "{}",
            e.rule
        );
    }

    #[test]
    fn unknown_ai_truncation_and_bad_characters_are_named() {
        let e = refused("]C1010950600013435299X");
        assert!(
            e.rule
                .contains("unknown or unsupported application identifier at character 20"),
            "{}",
            e.rule
        );
        let e = refused("]C101095060001");
        assert!(e.rule.contains("(01) GTIN is 14 digits"), "{}", e.rule);
        assert!(e.rule.contains("truncated"), "{}", e.rule);
        let e = refused("]C1010950600\u{1d}10A");
        assert!(e.rule.contains("truncated"), "{}", e.rule);
        assert_eq!(e.value, "]C1010950600<GS>10A", "GS shown");
        let e = refused("]C110\u{1d}21S1");
        assert!(
            e.rule.contains("(10) lot is empty at character 6"),
            "{}",
            e.rule
        );
        let e = refused("]C110");
        assert!(e.rule.contains("(10) lot is empty"), "{}", e.rule);
        let e = refused("]C110AB#C");
        assert!(
            e.rule.contains("(10) lot: character 8 is '#'"),
            "{}",
            e.rule
        );
        let e = refused("]C121S 1");
        assert!(e.rule.contains("character 7 is a space"), "{}", e.rule);
        let e = refused("]C110ABCDEFGHIJKLMNOPQRSTU");
        assert!(e.rule.contains("at most 20"), "{}", e.rule);
        let e = refused("]C110A\u{1d}10B");
        assert!(
            e.rule
                .contains("(10) lot appears twice (at characters 4 and 8)"),
            "{}",
            e.rule
        );
        let e = refused("]C110A\u{1d}\u{1d}21B");
        assert!(
            e.rule.contains("unexpected <GS> at character 8"),
            "{}",
            e.rule
        );
        let e = refused("]C101095060001343A2");
        assert!(e.rule.contains("character 18 is 'A'"), "{}", e.rule);
    }

    #[test]
    fn bad_expiry_dates_are_refused() {
        assert!(refused("]C117271331")
            .rule
            .contains("month 13 is not 01-12"));
        assert!(refused("]C117270230")
            .rule
            .contains("month 02 has no day 30"));
        assert!(refused("]C117270432").rule.contains("no day 32"));
        assert!(refused("]C117250229").rule.contains("no day 29"));
        assert_eq!(gs1("]C117280229").expiry.as_deref(), Some("280229"));
        assert!(refused("]C11727123").rule.contains("truncated"));
    }

    #[test]
    fn empty_or_unrecognised_input_lists_the_accepted_forms() {
        let e = refused("");
        assert!(e.rule.starts_with("nothing was scanned"), "{}", e.rule);
        assert!(e.rule.contains("=A99991712345600"), "{}", e.rule);
        assert!(refused("hello").rule.contains("not recognised"));
        assert!(refused("]E0=A99991712345600").rule.contains("]E0"));
        assert!(refused("]C1").rule.contains("nothing follows"));
        assert!(refused("\u{4}").value.contains("<EOT>"));
    }

    #[test]
    fn unit_id_forms() {
        assert_eq!(ok("=G12341765432170").unit_id(), "G123417654321A");
        assert_eq!(
            ok("]d2010950600013435210ABC\u{1d}21S1").unit_id(),
            "(01)09506000134352(21)S1"
        );
        assert_eq!(
            ok("]C100106141411234567897").unit_id(),
            "(00)106141411234567897"
        );
        assert_eq!(
            ok("(01)09506000134352(17)271231(10)ABC").unit_id(),
            "(01)09506000134352(10)ABC(17)271231"
        );
        assert_eq!(ok("(414)4012345000009").unit_id(), "(414)4012345000009");
    }

    fn with_type_3_flags(din: &str) -> String {
        let k = mod37_2_check(din).expect("in the alphabet");
        let index = MOD37_ALPHABET
            .iter()
            .position(|&b| char::from(b) == k)
            .expect("K is in the alphabet");
        format!("={din}{}", 60 + index)
    }

    proptest! {
        #[test]
        fn type_3_flags_catch_every_single_substitution(
            din in "[A-NP-Z1-9][A-NP-Z0-9]{2}[0-9]{2}[0-9]{8}",
            at in 0usize..13,
            with in proptest::char::any(),
        ) {
            let data = with_type_3_flags(&din);
            let parsed = parse_scan("scan", &data);
            prop_assert!(
                matches!(&parsed, Ok(Scanned::Din { din: d, flags }) if d.as_str() == din && *flags == data[14..]),
                "{data}: {parsed:?}"
            );
            let mut chars: Vec<char> = din.chars().collect();
            if chars[at] != with {
                chars[at] = with;
                let changed: String = chars.iter().collect();
                let misread = format!("={changed}{}", &data[14..]);
                let result = parse_scan("scan", &misread);
                // Never silently the same unit: a single substitution changes the checksum.
                prop_assert!(result.is_err(), "{misread:?} parsed as {result:?}");
            }
        }

        #[test]
        fn parse_scan_never_panics(raw in "(\\]C1|\\]C0|\\(|=)?[ -~\u{1d}é]{0,40}") {
            let _ = parse_scan("scan", &raw);
        }
    }
}

#[cfg(test)]
mod compound_tests {
    use super::*;

    #[test]
    fn a_compound_message_scans_as_the_din_or_the_unit_it_carries() {
        let bag = parse_scan("scan", "=+03000=G12341765432170=<S0001AA0&>0261231159\r\n")
            .expect("a bag's compound label");
        assert_eq!(bag.unit_id(), "G123417654321A");
        let unit = parse_scan("scan", "=+02000&/CHA999926000001=<S0001AA0").expect("a unit's");
        assert!(matches!(unit, Scanned::Unit(_)), "{unit:?}");
        let refused = parse_scan("scan", "=+01000&>0261231159").expect_err("nothing to use");
        assert!(refused.rule.contains("neither a DIN"), "{}", refused.rule);
        // The DIN inside is checked as any DIN: wrong flags are refused.
        assert!(parse_scan("scan", "=+01000=G12341765432199").is_err());
    }
}
