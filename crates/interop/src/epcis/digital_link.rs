//! EPC URIs (pure identity, class and pattern URNs) as canonical GS1 Digital Link URIs,
//! and GS1 Digital Link URIs constrained to their canonical form, as the CBV 2.0 event hash needs.

/// The canonical GS1 Digital Link domain.
const DL_ROOT: &str = "https://id.gs1.org";

/// GS1 mod-10 check digit of the digits in `s` (weights 3,1,3,... from the right).
fn check_digit(s: &str) -> char {
    let mut sum = 0u32;
    for (i, b) in s.bytes().rev().enumerate() {
        let d = u32::from(b - b'0');
        sum += if i % 2 == 0 { d * 3 } else { d };
    }
    let c = (10 - sum % 10) % 10;
    char::from_digit(c, 10).unwrap_or('0')
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is a valid EPC URI component of 1..=max characters (TDS `GS3A3` characters,
/// `%` escapes counted as one character).
fn is_gs3a3(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut count = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let pair = (bytes.get(i + 1), bytes.get(i + 2));
            let ok = match pair {
                (Some(h), Some(l)) => h.is_ascii_hexdigit() && l.is_ascii_hexdigit(),
                _ => false,
            };
            if !ok {
                return false;
            }
            i += 3;
        } else {
            let ok = b.is_ascii_alphanumeric() || b"!')(*+,.:;=_-".contains(&b);
            if !ok {
                return false;
            }
            i += 1;
        }
        count += 1;
    }
    (1..=max).contains(&count)
}

/// Percent-encodes the characters GS1 Digital Link reserves that an EPC URI may carry as is.
fn dl_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '!' => out.push_str("%21"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '*' => out.push_str("%2A"),
            '+' => out.push_str("%2B"),
            ',' => out.push_str("%2C"),
            ':' => out.push_str("%3A"),
            other => out.push(other),
        }
    }
    out
}

/// A company prefix and a digit reference that together have `total` digits
/// (company prefix 6 to 12 digits).
fn prefix_and_ref<'a>(
    prefix: &'a str,
    reference: &'a str,
    total: usize,
) -> Option<(&'a str, &'a str)> {
    let ok = (6..=12).contains(&prefix.len())
        && all_digits(prefix)
        && all_digits(reference)
        && prefix.len() + reference.len() == total;
    ok.then_some((prefix, reference))
}

/// GTIN-14 from company prefix and indicator+item reference (13 digits together).
fn gtin(prefix: &str, item_ref: &str) -> Option<String> {
    let (prefix, item_ref) = prefix_and_ref(prefix, item_ref, 13)?;
    let indicator = item_ref.get(..1)?;
    let body = format!("{indicator}{prefix}{}", item_ref.get(1..)?);
    let check = check_digit(&body);
    Some(format!("{body}{check}"))
}

/// A 13-digit key (GLN, GDTI, GCN base) from company prefix and a reference of 12 digits in all.
fn key13(prefix: &str, reference: &str) -> Option<String> {
    let (prefix, reference) = prefix_and_ref(prefix, reference, 12)?;
    let body = format!("{prefix}{reference}");
    let check = check_digit(&body);
    Some(format!("{body}{check}"))
}

/// The canonical GS1 Digital Link URI of an EPC URN: pure identities (`urn:epc:id:sgtin:...`,
/// sscc, sgln, grai, giai, gsrn, gsrnp, gdti, cpi, sgcn, ginc, gsin, itip, upui, pgln),
/// class URIs (`urn:epc:class:lgtin:...`) and ID patterns naming a class
/// (`urn:epc:idpat:sgtin:0614141.107346.*`). `None` for anything else.
pub fn digital_link(epc_urn: &str) -> Option<String> {
    if let Some(body) = epc_urn.strip_prefix("urn:epc:id:") {
        let (scheme, rest) = body.split_once(':')?;
        return pure_identity(scheme, rest);
    }
    if let Some(rest) = epc_urn.strip_prefix("urn:epc:class:lgtin:") {
        let parts: Vec<&str> = rest.splitn(3, '.').collect();
        let [prefix, item_ref, lot] = parts.as_slice() else {
            return None;
        };
        if !is_gs3a3(lot, 20) {
            return None;
        }
        return Some(format!(
            "{DL_ROOT}/01/{}/10/{}",
            gtin(prefix, item_ref)?,
            dl_encode(lot)
        ));
    }
    if let Some(body) = epc_urn.strip_prefix("urn:epc:idpat:") {
        let (scheme, rest) = body.split_once(':')?;
        return id_pattern(scheme, rest);
    }
    None
}

fn pure_identity(scheme: &str, rest: &str) -> Option<String> {
    let parts: Vec<&str> = rest.split('.').collect();
    match scheme {
        "sgtin" => {
            let (prefix, item_ref, serial) = three(rest)?;
            is_gs3a3(serial, 20).then_some(())?;
            Some(format!(
                "{DL_ROOT}/01/{}/21/{}",
                gtin(prefix, item_ref)?,
                dl_encode(serial)
            ))
        }
        "sscc" => {
            let [prefix, serial_ref] = parts.as_slice() else {
                return None;
            };
            let (prefix, serial_ref) = prefix_and_ref(prefix, serial_ref, 17)?;
            let body = format!("{}{prefix}{}", serial_ref.get(..1)?, serial_ref.get(1..)?);
            Some(format!("{DL_ROOT}/00/{body}{}", check_digit(&body)))
        }
        "sgln" => {
            let (prefix, location_ref, extension) = three(rest)?;
            is_gs3a3(extension, 20).then_some(())?;
            let gln = key13(prefix, location_ref)?;
            if extension == "0" {
                Some(format!("{DL_ROOT}/414/{gln}"))
            } else {
                Some(format!("{DL_ROOT}/414/{gln}/254/{}", dl_encode(extension)))
            }
        }
        "grai" => {
            let (prefix, asset_type, serial) = three(rest)?;
            is_gs3a3(serial, 16).then_some(())?;
            let (prefix, asset_type) = prefix_and_ref(prefix, asset_type, 12)?;
            let body = format!("0{prefix}{asset_type}");
            Some(format!(
                "{DL_ROOT}/8003/{body}{}{}",
                check_digit(&body),
                dl_encode(serial)
            ))
        }
        "giai" => {
            let (prefix, asset_ref) = rest.split_once('.')?;
            let ok = (6..=12).contains(&prefix.len())
                && all_digits(prefix)
                && is_gs3a3(asset_ref, 30 - prefix.len());
            ok.then(|| format!("{DL_ROOT}/8004/{prefix}{}", dl_encode(asset_ref)))
        }
        "gsrn" | "gsrnp" => {
            let [prefix, service_ref] = parts.as_slice() else {
                return None;
            };
            let (prefix, service_ref) = prefix_and_ref(prefix, service_ref, 17)?;
            let body = format!("{prefix}{service_ref}");
            let ai = if scheme == "gsrn" { "8018" } else { "8017" };
            Some(format!("{DL_ROOT}/{ai}/{body}{}", check_digit(&body)))
        }
        "gdti" => {
            let (prefix, doc_type, serial) = three(rest)?;
            is_gs3a3(serial, 17).then_some(())?;
            Some(format!(
                "{DL_ROOT}/253/{}{}",
                key13(prefix, doc_type)?,
                dl_encode(serial)
            ))
        }
        "sgcn" => {
            let (prefix, coupon_ref, serial) = three(rest)?;
            let ok = all_digits(serial) && (1..=12).contains(&serial.len());
            ok.then_some(())?;
            Some(format!(
                "{DL_ROOT}/255/{}{serial}",
                key13(prefix, coupon_ref)?
            ))
        }
        "cpi" => {
            let (head, serial) = rest.rsplit_once('.')?;
            let (prefix, cp_ref) = head.split_once('.')?;
            let ok = (6..=12).contains(&prefix.len())
                && all_digits(prefix)
                && is_gs3a3(cp_ref, 30 - prefix.len())
                && all_digits(serial)
                && (1..=12).contains(&serial.len());
            ok.then(|| {
                format!(
                    "{DL_ROOT}/8010/{}/8011/{serial}",
                    dl_encode(&format!("{prefix}{cp_ref}"))
                )
            })
        }
        "ginc" => {
            let (prefix, consignment_ref) = rest.split_once('.')?;
            let ok = (6..=12).contains(&prefix.len())
                && all_digits(prefix)
                && is_gs3a3(consignment_ref, 30 - prefix.len());
            ok.then(|| format!("{DL_ROOT}/401/{prefix}{}", dl_encode(consignment_ref)))
        }
        "gsin" => {
            let [prefix, shipper_ref] = parts.as_slice() else {
                return None;
            };
            let (prefix, shipper_ref) = prefix_and_ref(prefix, shipper_ref, 16)?;
            let body = format!("{prefix}{shipper_ref}");
            Some(format!("{DL_ROOT}/402/{body}{}", check_digit(&body)))
        }
        "itip" => {
            let fields: Vec<&str> = rest.splitn(5, '.').collect();
            let [prefix, item_ref, piece, total, serial] = fields.as_slice() else {
                return None;
            };
            let ok = piece.len() == 2
                && total.len() == 2
                && all_digits(piece)
                && all_digits(total)
                && is_gs3a3(serial, 20);
            ok.then_some(())?;
            Some(format!(
                "{DL_ROOT}/8006/{}{piece}{total}/21/{}",
                gtin(prefix, item_ref)?,
                dl_encode(serial)
            ))
        }
        "upui" => {
            let (prefix, item_ref, tpx) = three(rest)?;
            is_gs3a3(tpx, 28).then_some(())?;
            Some(format!(
                "{DL_ROOT}/01/{}/235/{}",
                gtin(prefix, item_ref)?,
                dl_encode(tpx)
            ))
        }
        "pgln" => {
            let [prefix, party_ref] = parts.as_slice() else {
                return None;
            };
            Some(format!("{DL_ROOT}/417/{}", key13(prefix, party_ref)?))
        }
        _ => None,
    }
}

/// `prefix.reference.rest` where `rest` may itself contain dots.
fn three(s: &str) -> Option<(&str, &str, &str)> {
    let (prefix, tail) = s.split_once('.')?;
    let (reference, rest) = tail.split_once('.')?;
    Some((prefix, reference, rest))
}

fn id_pattern(scheme: &str, rest: &str) -> Option<String> {
    let fields: Vec<&str> = rest.split('.').collect();
    match (scheme, fields.as_slice()) {
        ("sgtin" | "upui", [prefix, item_ref, "*"]) => {
            Some(format!("{DL_ROOT}/01/{}", gtin(prefix, item_ref)?))
        }
        ("grai", [prefix, asset_type, "*"]) => {
            let (prefix, asset_type) = prefix_and_ref(prefix, asset_type, 12)?;
            let body = format!("0{prefix}{asset_type}");
            Some(format!("{DL_ROOT}/8003/{body}{}", check_digit(&body)))
        }
        ("gdti", [prefix, doc_type, "*"]) => {
            Some(format!("{DL_ROOT}/253/{}", key13(prefix, doc_type)?))
        }
        ("sgcn", [prefix, coupon_ref, "*"]) => {
            Some(format!("{DL_ROOT}/255/{}", key13(prefix, coupon_ref)?))
        }
        ("cpi", [prefix, cp_ref, "*"]) => {
            let ok = (6..=12).contains(&prefix.len()) && all_digits(prefix) && is_gs3a3(cp_ref, 30);
            ok.then(|| format!("{DL_ROOT}/8010/{}", dl_encode(&format!("{prefix}{cp_ref}"))))
        }
        ("itip", [prefix, item_ref, piece, total, "*"]) => {
            let ok = piece.len() == 2 && total.len() == 2 && all_digits(piece) && all_digits(total);
            ok.then_some(())?;
            Some(format!(
                "{DL_ROOT}/8006/{}{piece}{total}",
                gtin(prefix, item_ref)?
            ))
        }
        _ => None,
    }
}

/// Primary-key path segments of a GS1 Digital Link URI, with their short-name aliases.
const PRIMARY_KEYS: &[(&str, &str)] = &[
    ("01", "gtin"),
    ("8006", "itip"),
    ("8010", "cpid"),
    ("414", "gln"),
    ("417", "party"),
    ("8017", "gsrnp"),
    ("8018", "gsrn"),
    ("255", "gcn"),
    ("00", "sscc"),
    ("253", "gdti"),
    ("401", "ginc"),
    ("402", "gsin"),
    ("8003", "grai"),
    ("8004", "giai"),
];

/// Key qualifiers with their short-name aliases.
const QUALIFIERS: &[(&str, &str)] = &[("22", "cpv"), ("10", "lot"), ("21", "ser")];

fn primary_key_ai(segment: &str) -> Option<&'static str> {
    PRIMARY_KEYS
        .iter()
        .find(|(ai, short)| segment == *ai || segment == *short)
        .map(|(ai, _)| *ai)
}

fn qualifier_ai(segment: &str) -> String {
    QUALIFIERS
        .iter()
        .find(|(_, short)| segment == *short)
        .map_or_else(|| segment.to_string(), |(ai, _)| (*ai).to_string())
}

/// Characters a canonical Digital Link value may hold as is (the hash generator's check).
fn is_dl_value(s: &str, max: usize) -> bool {
    s.len() <= max
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'"' | b'\'' | b'-' | b'.' | b';'..=b'?' | b'_')
        })
}

fn fixed_digits(s: &str, len: usize) -> bool {
    s.len() == len && all_digits(s)
}

/// A GS1 Digital Link URI in the constrained canonical form of the CBV 2.0 event hash:
/// domain `https://id.gs1.org`, numeric AIs, GTIN padded to 14 digits, no query string or
/// fragment, no CPV, and only the finest identification level (a serial drops the lot).
/// `None` when `uri` is not a GS1 Digital Link URI this form covers.
pub fn canonical_digital_link(uri: &str) -> Option<String> {
    if !uri.is_ascii() {
        return None;
    }
    let after_scheme = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let without_query = after_scheme.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = without_query.split('/').skip(1).collect();
    let start = segments.iter().position(|s| primary_key_ai(s).is_some())?;
    let ai = primary_key_ai(segments[start])?;
    let mut key = segments.get(start + 1)?.to_string();
    if key.len() < 5 || !key.bytes().take(4).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut qualifiers: Vec<(String, String)> = Vec::new();
    let mut i = start + 2;
    while i + 1 < segments.len() {
        qualifiers.push((qualifier_ai(segments[i]), segments[i + 1].to_string()));
        i += 2;
    }
    if ai == "01" {
        key = match key.len() {
            8 => format!("000000{key}"),
            12 => format!("00{key}"),
            13 => format!("0{key}"),
            _ => key,
        };
    }
    qualifiers.retain(|(q, _)| q != "22");
    if qualifiers.iter().any(|(q, _)| q == "21") {
        qualifiers.retain(|(q, _)| q != "10");
    }
    let valid = match (ai, qualifiers.as_slice()) {
        ("00", []) => fixed_digits(&key, 18),
        ("01", []) => fixed_digits(&key, 14),
        ("01", [(q, v)]) if q == "21" || q == "10" => fixed_digits(&key, 14) && is_dl_value(v, 20),
        ("01", [(q, v)]) if q == "235" => fixed_digits(&key, 14) && is_dl_value(v, 28),
        ("253", []) => key.len() >= 13 && all_digits(&key[..13]) && is_dl_value(&key[13..], 17),
        ("255", []) => key.len() >= 13 && key.len() <= 25 && all_digits(&key),
        ("401", []) | ("8004", []) => is_dl_value(&key, 30),
        ("402", []) => fixed_digits(&key, 17),
        ("414", []) | ("417", []) => fixed_digits(&key, 13),
        ("414", [(q, v)]) if q == "254" => fixed_digits(&key, 13) && is_dl_value(v, 20),
        ("8003", []) => key.len() >= 14 && all_digits(&key[..14]) && is_dl_value(&key[14..], 16),
        ("8006", []) => fixed_digits(&key, 18),
        ("8006", [(q, v)]) if q == "21" || q == "10" => {
            fixed_digits(&key, 18) && is_dl_value(v, 20)
        }
        ("8010", []) => is_cpid(&key),
        ("8010", [(q, v)]) if q == "8011" => is_cpid(&key) && v.len() <= 12 && all_digits(v),
        ("8017", []) | ("8018", []) => fixed_digits(&key, 18),
        _ => false,
    };
    if !valid {
        return None;
    }
    let mut out = format!("{DL_ROOT}/{ai}/{key}");
    for (q, v) in &qualifiers {
        out.push_str(&format!("/{q}/{v}"));
    }
    Some(out)
}

fn is_cpid(s: &str) -> bool {
    s.len() <= 30
        && s.bytes().all(|b| {
            b.is_ascii_digit() || b.is_ascii_uppercase() || matches!(b, b'#' | b'-' | b'/')
        })
}

/// The canonical Digital Link of any identifier the hash meets: an EPC URN or a GS1 Digital
/// Link URI. `None` when `value` is neither.
pub fn canonical_gs1_uri(value: &str) -> Option<String> {
    if value.starts_with("urn:epc:") {
        digital_link(value)
    } else {
        canonical_digital_link(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epc_urns_become_digital_links() {
        let cases = [
            (
                "urn:epc:id:sgtin:0614141.107346.2017",
                "https://id.gs1.org/01/10614141073464/21/2017",
            ),
            (
                "urn:epc:id:sgtin:00000950.01093.Serial",
                "https://id.gs1.org/01/00000095010939/21/Serial",
            ),
            (
                "urn:epc:id:sscc:0614141.1234567890",
                "https://id.gs1.org/00/106141412345678908",
            ),
            (
                "urn:epc:id:sgln:0614141.12345.400",
                "https://id.gs1.org/414/0614141123452/254/400",
            ),
            (
                "urn:epc:id:sgln:0614141.00777.0",
                "https://id.gs1.org/414/0614141007776",
            ),
            (
                "urn:epc:id:grai:4012345.55555.987",
                "https://id.gs1.org/8003/04012345555554987",
            ),
            (
                "urn:epc:id:giai:4000001.111",
                "https://id.gs1.org/8004/4000001111",
            ),
            (
                "urn:epc:id:gsrn:0614141.0000010253",
                "https://id.gs1.org/8018/061414100000102534",
            ),
            (
                "urn:epc:id:gdti:0614141.00001.1618034",
                "https://id.gs1.org/253/06141410000121618034",
            ),
            (
                "urn:epc:id:pgln:4012345.00225",
                "https://id.gs1.org/417/4012345002256",
            ),
            (
                "urn:epc:class:lgtin:4012345.012345.998877",
                "https://id.gs1.org/01/04012345123456/10/998877",
            ),
            (
                "urn:epc:idpat:sgtin:4012345.098765.*",
                "https://id.gs1.org/01/04012345987652",
            ),
            (
                "urn:epc:id:sgtin:0614141.107346.A%2FB(1)",
                "https://id.gs1.org/01/10614141073464/21/A%2FB%281%29",
            ),
        ];
        for (urn, dl) in cases {
            assert_eq!(digital_link(urn).as_deref(), Some(dl), "{urn}");
        }
        assert_eq!(digital_link("urn:epc:id:sgtin:0614141.10734.2017"), None);
        assert_eq!(digital_link("urn:epc:id:sgtin:0614141.107346."), None);
        assert_eq!(digital_link("urn:epc:id:bogus:1.2"), None);
        assert_eq!(digital_link("https://id.gs1.org/01/10614141073464"), None);
    }

    #[test]
    fn digital_links_are_constrained() {
        let cases = [
            (
                "https://id.gs1.de/01/04012345999990/21/XYZ-1234",
                "https://id.gs1.org/01/04012345999990/21/XYZ-1234",
            ),
            (
                "https://example.org/8004/401234599999",
                "https://id.gs1.org/8004/401234599999",
            ),
            (
                "https://example.com/253/4012345000054987",
                "https://id.gs1.org/253/4012345000054987",
            ),
            (
                "https://id.gs1.de/00/040123451111111110",
                "https://id.gs1.org/00/040123451111111110",
            ),
            (
                "http://example.com/gtin/614141123452/lot/ABC/ser/12?x=1",
                "https://id.gs1.org/01/00614141123452/21/12",
            ),
            (
                "https://example.com/01/09521141012345/22/2A/10/L1",
                "https://id.gs1.org/01/09521141012345/10/L1",
            ),
        ];
        for (uri, dl) in cases {
            assert_eq!(canonical_digital_link(uri).as_deref(), Some(dl), "{uri}");
        }
        for other in [
            "https://www.ncbi.nlm.nih.gov/taxonomy/1126011",
            "http://www.opengis.net/def/crs/EPSG/0/27700",
            "http://transaction.acme.com/po/12345678",
            "geo:50.9,6.9",
        ] {
            assert_eq!(canonical_digital_link(other), None, "{other}");
        }
    }
}
