//! HL7 FHIR R5 (5.0.0) views of a chain of identity, and the two resources a treatment
//! center sends in (`Patient`, `Procedure`). Pure mapping: plain ledger data (event
//! payloads, reference records) in, FHIR JSON out; FHIR JSON in, Autolog's fields out.
//! No I/O, no access control (the app and the server do those).
//!
//! Resource ids are derived from Autolog's identifiers, so the same fact always has the
//! same id (see [`id`]); references between resources are relative (`Patient/PK-1`),
//! except inside a [`collection_bundle`], where every entry has a `urn:uuid:` full URL
//! and every reference to an entry points at it.

use autolog_domain::ledger::fields::list as texts;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

mod chain;
mod import;

pub use chain::{chain_resources, referenced, ChainEvent, ChainInput};
pub use import::{
    administration_element, parse_administration, parse_patient, AdministrationImport,
    PatientImport,
};

/// The FHIR version every resource here follows.
pub const FHIR_VERSION: &str = "5.0.0";
/// The media type of FHIR JSON (what every `/fhir` answer carries).
pub const MEDIA_TYPE: &str = "application/fhir+json";

/// Autolog's own naming systems, code systems and extensions live under this base. A
/// deployment that publishes them elsewhere changes this one literal.
macro_rules! autolog_uri {
    ($path:literal) => {
        concat!("https://autolog.example/fhir/", $path)
    };
}

/// Identifier systems, code systems and extension URLs, each in one place.
pub mod system {
    // ISBT 128 (ICCBBA's URI registry, https://www.isbt128.org/uri/).
    /// The Donation Identification Number (data structure 001), the 13 characters.
    pub const DIN: &str = "https://www.isbt128.org/uri/donationidentificationnumber";
    /// ISBT 128 Product Description Codes (e.g. `S0001`).
    pub const PRODUCT_DESCRIPTION_CODE: &str = "https://www.isbt128.org/uri/productdescriptioncode";
    /// A facility's ISBT 128 FIN (ICCBBA names it for the processing facility).
    pub const FIN: &str = "https://www.isbt128.org/uri/processorfin";
    // GS1.
    /// A GS1 Global Location Number (13 digits).
    pub const GLN: &str = "https://www.gs1.org/gln";
    // HL7 FHIR R5 code systems.
    pub const PRODUCT_CATEGORY: &str = "http://hl7.org/fhir/product-category";
    pub const PRODUCT_STATUS: &str = "http://hl7.org/fhir/biologicallyderived-product-status";
    pub const DISPENSE_ORIGIN: &str =
        "http://hl7.org/fhir/biologicallyderivedproductdispense-origin-relationship";
    pub const DISPENSE_PERFORMER_FUNCTION: &str =
        "http://hl7.org/fhir/biologicallyderivedproductdispense-performer-function";
    // HL7 Terminology (THO).
    pub const PARTICIPATION_TYPE: &str =
        "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
    pub const IDENTIFIER_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
    pub const OBSERVATION_VALUE: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
    /// ASTM E1762 signature types (FHIR's Signature.type).
    pub const SIGNATURE_TYPE: &str = "urn:iso-astm:E1762-95:2013";
    pub const UCUM: &str = "http://unitsofmeasure.org";
    /// FHIR's extension for an IANA time zone.
    pub const TIMEZONE_EXTENSION: &str = "http://hl7.org/fhir/StructureDefinition/timezone";
    // Autolog's own.
    /// The COI (ISBT 128 data structure 040) in Autolog's canonical form with its check
    /// character. ICCBBA publishes no URI for it that we could confirm: Autolog names it.
    pub const COI: &str = autolog_uri!("sid/coi");
    /// A final unit identifier (COI content + product code + division + check character).
    pub const FINAL_UNIT: &str = autolog_uri!("sid/final-unit");
    pub const BATCH: &str = autolog_uri!("sid/batch");
    /// The pseudonymous patient key a chain is enrolled with.
    pub const PATIENT_KEY: &str = autolog_uri!("sid/patient-key");
    pub const SITE: &str = autolog_uri!("sid/site");
    pub const PERSON: &str = autolog_uri!("sid/person");
    /// A ledger event (its UUIDv7 `event_id`).
    pub const EVENT: &str = autolog_uri!("sid/event");
    /// The products of the network (reference data), e.g. `CART-19`.
    pub const PRODUCT: &str = autolog_uri!("CodeSystem/product");
    /// The process steps of the network (reference data), e.g. `COLLECT`, `INFUSE`.
    pub const PROCESS_STEP: &str = autolog_uri!("CodeSystem/process-step");
    /// Autolog's event types, e.g. `chain.released`.
    pub const EVENT_TYPE: &str = autolog_uri!("CodeSystem/event-type");
    /// Site types (reference data), e.g. `apheresis_center`.
    pub const SITE_TYPE: &str = autolog_uri!("CodeSystem/site-type");
    /// Personnel qualification roles (reference data), e.g. `qa_releaser`.
    pub const QUALIFICATION_ROLE: &str = autolog_uri!("CodeSystem/qualification-role");
    /// Extensions of a signature manifestation.
    pub const SIGNATURE_MEANING: &str = autolog_uri!("StructureDefinition/signature-meaning");
    pub const SIGNATURE_RECORD_DIGEST: &str =
        autolog_uri!("StructureDefinition/signature-record-digest");
    pub const SIGNATURE_STREAM: &str = autolog_uri!("StructureDefinition/signature-stream");
}

/// Every code system a produced coding may use, and the codes Autolog uses from the
/// external ones (`None`: Autolog's own, or any code of reference data).
pub const CODE_SYSTEMS: &[(&str, Option<&[&str]>)] = &[
    (system::PRODUCT_CATEGORY, Some(&["cells"])),
    (system::PRODUCT_STATUS, Some(&["available", "unavailable"])),
    (system::DISPENSE_ORIGIN, Some(&["autologous"])),
    (
        system::DISPENSE_PERFORMER_FUNCTION,
        Some(&["release", "transport", "receipt"]),
    ),
    (system::PARTICIPATION_TYPE, Some(&["PRF", "VRF", "AUT"])),
    (system::IDENTIFIER_TYPE, Some(&["MR"])),
    (system::OBSERVATION_VALUE, Some(&["PSEUDED"])),
    (
        system::SIGNATURE_TYPE,
        Some(&["1.2.840.10065.1.12.1.1", "1.2.840.10065.1.12.1.5"]),
    ),
    (system::UCUM, Some(&["Cel"])),
    (system::PRODUCT_DESCRIPTION_CODE, None),
    (system::PRODUCT, None),
    (system::PROCESS_STEP, None),
    (system::EVENT_TYPE, None),
    (system::SITE_TYPE, None),
    (system::QUALIFICATION_ROLE, None),
];

/// What the server supports, resource by resource: (type, interactions, documentation).
/// The CapabilityStatement is built from this table, and a test checks it against the
/// routes.
pub const SUPPORTED: &[(&str, &[&str], &str)] = &[
    (
        "BiologicallyDerivedProduct",
        &["read"],
        "Collections (id din-<DIN>), the patient's batch (batch-<batch id>) and final units (unit-<unit identifier without its check character>), with parent links from unit to batch to collections. Chain scope. valid_at and known_at read the product as it stood, as known then.",
    ),
    (
        "BiologicallyDerivedProductDispense",
        &["read"],
        "The release of a final unit to its patient and its issue to the treatment center (id release-<unit>). Chain scope.",
    ),
    (
        "Bundle",
        &["read"],
        "A collection Bundle with every resource of one chain of identity: id chain-<COI without its check character>. Chain scope; valid_at and known_at as for the other reads; purpose as for Patient.",
    ),
    (
        "Location",
        &["read"],
        "A site of the network (id: the site id), with its GLN and address. Any reader of reference data.",
    ),
    (
        "Organization",
        &["read"],
        "A site of the network (id: the site id), with its GLN and ISBT 128 FIN. Any reader of reference data.",
    ),
    (
        "Patient",
        &["read", "create"],
        "Read: the patient by Autolog's pseudonymous patient key (id: the key); identifying data from the personal-data vault only when the caller may read it and states ?purpose=, the read being recorded in the ledger. Create: a treatment center's Patient naming the patient key (identifier system https://autolog.example/fhir/sid/patient-key): its identifying data goes to the vault, never the ledger; the answer is an OperationOutcome.",
    ),
    (
        "Practitioner",
        &["read"],
        "A person of the network (id: the person id), with printed name and qualifications. Any reader of reference data.",
    ),
    (
        "Procedure",
        &["read", "create"],
        "Read: apheresis (id apheresis-<first DIN>) and infusion (id infusion-<unit>). Create: an administration (status completed, code from the process-step code system, subject the patient, used the final unit, performer PRF and VRF, location the site, occurrenceDateTime, identifier the sender's id) becomes chain.administered through the same checks as the native API.",
    ),
    (
        "Provenance",
        &["read"],
        "An electronic signature (id signature-<event id>, signature2-<event id> for the second signature of an exceptional release): signer, printed name, time, meaning and the digest binding it to its record. Chain scope.",
    ),
];

/// The date of this CapabilityStatement's content.
pub const CAPABILITY_DATE: &str = "2026-11-27";

/// The CapabilityStatement of Autolog's FHIR endpoint: exactly what [`SUPPORTED`] lists.
pub fn capability_statement(software_version: &str) -> Value {
    let resources: Vec<Value> = SUPPORTED
        .iter()
        .map(|(resource_type, interactions, documentation)| {
            json!({
                "type": resource_type,
                "documentation": documentation,
                "interaction": interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "versioning": "no-version",
                "readHistory": false,
                "updateCreate": false,
                "conditionalCreate": false,
                "conditionalRead": "not-supported",
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "id": "autolog",
        "name": "AutologFhirServer",
        "title": "Autolog chain of identity: FHIR R5 endpoint",
        "status": "active",
        "experimental": false,
        "date": CAPABILITY_DATE,
        "publisher": "Autolog",
        "description": "The chain of identity of autologous cell therapies as HL7 FHIR R5 resources (read), and the import of a treatment center's Patient and Procedure (administration). JSON only.",
        "kind": "instance",
        "software": {"name": "Autolog", "version": software_version},
        "implementation": {"description": "Autolog ledger, FHIR endpoint under /fhir"},
        "fhirVersion": FHIR_VERSION,
        "format": [MEDIA_TYPE, "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Every interaction but /fhir/metadata needs a console session or an API token (Authorization: Bearer). Reads of chain resources need the chain in the caller's scope; Organization, Location and Practitioner need a reader of reference data. Refusals are OperationOutcomes naming the element.",
            "security": {
                "cors": false,
                "description": "Autolog's sign-in (person id, password, TOTP; session cookie and CSRF token) or a source system's API token, with roles per site (docs/access.md).",
            },
            "resource": resources,
        }],
    })
}

/// One issue of an OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// `fatal | error | warning | information | success`
    pub severity: &'static str,
    /// An issue-type code (`invalid`, `required`, `forbidden`, `not-found`, ...).
    pub code: &'static str,
    pub diagnostics: String,
    /// The element at fault, as a FHIRPath (`Procedure.used`), when there is one.
    pub expression: Option<String>,
}

impl Issue {
    pub fn error(code: &'static str, expression: &str, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: "error",
            code,
            diagnostics: diagnostics.into(),
            expression: (!expression.is_empty()).then(|| expression.to_string()),
        }
    }
}

/// An OperationOutcome with these issues (at least one: an empty list becomes one
/// informational "all ok").
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let mut list: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut issue = json!({"severity": i.severity, "code": i.code});
            if !i.diagnostics.is_empty() {
                issue["diagnostics"] = json!(i.diagnostics);
            }
            if let Some(e) = &i.expression {
                issue["expression"] = json!([e]);
            }
            issue
        })
        .collect();
    if list.is_empty() {
        list.push(
            json!({"severity": "information", "code": "informational", "diagnostics": "all ok"}),
        );
    }
    json!({"resourceType": "OperationOutcome", "issue": list})
}

/// A reference to `Type/id`.
pub fn reference(resource_type: &str, id: &str) -> Value {
    json!({"reference": format!("{resource_type}/{id}")})
}

fn reference_shown(resource_type: &str, id: &str, display: &str) -> Value {
    let mut r = reference(resource_type, id);
    if !display.is_empty() {
        r["display"] = json!(display);
    }
    r
}

fn coding(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut c = json!({"system": system, "code": code});
    if let Some(d) = display.filter(|d| !d.is_empty()) {
        c["display"] = json!(d);
    }
    c
}

fn concept(codings: Vec<Value>, text: Option<&str>) -> Value {
    let mut c = json!({"coding": codings});
    if let Some(t) = text.filter(|t| !t.is_empty()) {
        c["text"] = json!(t);
    }
    c
}

fn identifier(system: &str, value: &str) -> Value {
    json!({"system": system, "value": value})
}

/// A text field of a payload ("" when absent or not text).
fn text<'a>(data: &'a Value, key: &str) -> &'a str {
    data.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A FHIR dateTime from Autolog's text forms: RFC 9557 (`...-05:00[America/New_York]`)
/// loses its bracketed zone (the offset stays); anything else that is not a FHIR
/// dateTime is read as an instant and given in UTC. `None` when unreadable.
pub fn date_time(text: &str) -> Option<String> {
    let plain = match text.find('[') {
        Some(at) if text.ends_with(']') => &text[..at],
        _ => text,
    };
    if is_date_time(plain) {
        return Some(plain.to_string());
    }
    autolog_domain::Instant::parse_rfc3339("time", text)
        .ok()
        .map(|i| i.to_string())
}

/// Whether `text` is a FHIR dateTime with a time (and so a zone), i.e. also a FHIR instant:
/// `YYYY-MM-DDThh:mm:ss(.f{1,9})?(Z|(+|-)hh:mm)`.
pub fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|s| s.len() == r.len() && s.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T')
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start || i - start > 9 {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            digits(i + 1..i + 3) && at(i + 3, b':') && digits(i + 4..i + 6) && i + 6 == b.len()
        }
        _ => false,
    }
}

/// Whether `text` is a FHIR date (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`).
pub fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match b.len() {
        4 => digits(b),
        7 => digits(&b[..4]) && b[4] == b'-' && digits(&b[5..]),
        10 => {
            digits(&b[..4]) && b[4] == b'-' && digits(&b[5..7]) && b[7] == b'-' && digits(&b[8..])
        }
        _ => false,
    }
}

/// Resource ids: `[A-Za-z0-9-.]{1,64}`, derived from Autolog's identifiers.
pub mod id {
    use super::*;

    /// A code (`[A-Za-z0-9._:-*]`) as an id: `.` escapes `.` (`.d`), `_` (`.u`), `:`
    /// (`.c`) and `*` (`.s`); anything else is kept. An id longer than 64 characters
    /// becomes `.h` + 40 hex characters of its SHA-256 (no escaped code starts so), which
    /// cannot be read back.
    pub fn of_code(code: &str) -> String {
        let mut out = String::with_capacity(code.len());
        let mut plain = true;
        for c in code.chars() {
            match c {
                '.' => out.push_str(".d"),
                '_' => out.push_str(".u"),
                ':' => out.push_str(".c"),
                '*' => out.push_str(".s"),
                c if c.is_ascii_alphanumeric() || c == '-' => out.push(c),
                _ => plain = false,
            }
        }
        if !plain || out.is_empty() || out.len() > 64 {
            return hashed(code);
        }
        out
    }

    fn hashed(code: &str) -> String {
        let digest = Sha256::digest(code.as_bytes());
        let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
        format!(".h{hex}")
    }

    /// The code an id stands for (`None`: not an id made by [`of_code`], or a hashed one).
    pub fn to_code(id: &str) -> Option<String> {
        let mut out = String::with_capacity(id.len());
        let mut chars = id.chars();
        while let Some(c) = chars.next() {
            match c {
                '.' => out.push(match chars.next()? {
                    'd' => '.',
                    'u' => '_',
                    'c' => ':',
                    's' => '*',
                    _ => return None,
                }),
                c if c.is_ascii_alphanumeric() || c == '-' => out.push(c),
                _ => return None,
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// The first `n` characters of an ASCII identifier, when it is at least that long and
    /// alphanumeric there (the content without its check character).
    fn content(identifier: &str, n: usize) -> Option<&str> {
        identifier
            .get(..n)
            .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric()))
    }

    fn prefixed(prefix: &str, identifier: &str, n: usize) -> String {
        match content(identifier, n) {
            Some(c) => format!("{prefix}-{c}"),
            None => format!("{prefix}-{}", of_code(identifier)),
        }
    }

    pub fn patient(patient_key: &str) -> String {
        of_code(patient_key)
    }
    pub fn site(site_id: &str) -> String {
        of_code(site_id)
    }
    pub fn person(person_id: &str) -> String {
        of_code(person_id)
    }
    /// A collection's bag, by its DIN (13 characters).
    pub fn collection(din: &str) -> String {
        prefixed("din", din, 13)
    }
    pub fn batch(batch_id: &str) -> String {
        format!("batch-{}", of_code(batch_id))
    }
    /// A final unit, by its identifier without the check character (22).
    pub fn unit(unit: &str) -> String {
        prefixed("unit", unit, 22)
    }
    pub fn release(unit: &str) -> String {
        prefixed("release", unit, 22)
    }
    pub fn apheresis(first_din: &str) -> String {
        prefixed("apheresis", first_din, 13)
    }
    pub fn infusion(unit: &str) -> String {
        prefixed("infusion", unit, 22)
    }
    pub fn signature(event_id: &str, second: bool) -> String {
        let prefix = if second { "signature2" } else { "signature" };
        format!("{prefix}-{}", of_code(event_id))
    }
    /// A chain's Bundle, by its COI without the check character (15).
    pub fn bundle(coi: &str) -> String {
        prefixed("chain", coi, 15)
    }
}

/// What a resource id names in Autolog: where to find its chain or record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A DIN (canonical, with its check character): `din/<DIN>` names its chain.
    Din(String),
    /// A final unit (canonical): `unit/<unit>` names its chain.
    Unit(String),
    /// A batch id: `batch/<id>` names its chain.
    Batch(String),
    /// A ledger event (its id).
    Event(String),
    /// A chain (canonical COI).
    Chain(String),
    PatientKey(String),
    Site(String),
    Person(String),
}

fn din_of(content: &str) -> Option<String> {
    autolog_domain::identifiers::Din::parse("id", content)
        .ok()
        .map(|d| d.to_string())
}

fn with_check(content: &str) -> Option<String> {
    autolog_domain::identifiers::mod37_2_check(content).map(|k| format!("{content}{k}"))
}

fn unit_of(content: &str) -> Option<String> {
    if content.len() != 22 {
        return None;
    }
    let canonical = with_check(content)?;
    autolog_domain::identifiers::UnitId::parse("id", &canonical)
        .ok()
        .map(|u| u.to_string())
}

/// What the id of a resource of this type names (`None`: not an id Autolog makes).
pub fn lookup(resource_type: &str, id: &str) -> Option<Lookup> {
    let after = |prefix: &str| id.strip_prefix(prefix).filter(|r| !r.is_empty());
    match resource_type {
        "Patient" => id::to_code(id).map(Lookup::PatientKey),
        "Organization" | "Location" => id::to_code(id).map(Lookup::Site),
        "Practitioner" => id::to_code(id).map(Lookup::Person),
        "BiologicallyDerivedProduct" => {
            if let Some(d) = after("din-") {
                din_of(d).map(Lookup::Din)
            } else if let Some(u) = after("unit-") {
                unit_of(u).map(Lookup::Unit)
            } else {
                after("batch-").and_then(id::to_code).map(Lookup::Batch)
            }
        }
        "BiologicallyDerivedProductDispense" => {
            after("release-").and_then(unit_of).map(Lookup::Unit)
        }
        "Procedure" => {
            if let Some(d) = after("apheresis-") {
                din_of(d).map(Lookup::Din)
            } else {
                after("infusion-").and_then(unit_of).map(Lookup::Unit)
            }
        }
        "Provenance" => after("signature2-")
            .or_else(|| after("signature-"))
            .and_then(id::to_code)
            .filter(|e| autolog_domain::Uuid::parse_str(e).is_ok())
            .map(Lookup::Event),
        "Bundle" => after("chain-")
            .filter(|c| c.len() == 15)
            .and_then(with_check)
            .and_then(|c| autolog_domain::identifiers::Coi::parse("id", &c).ok())
            .map(|c| Lookup::Chain(c.to_string())),
        _ => None,
    }
}

/// A `urn:uuid:` for `Type/id` (RFC 9562 version 8, from SHA-256): the same resource
/// always gets the same full URL.
pub fn full_url(resource_type: &str, id: &str) -> String {
    let digest = Sha256::digest(format!("autolog-fhir:{resource_type}/{id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("urn:uuid:{}", autolog_domain::Uuid::from_bytes(b))
}

/// A `collection` Bundle of these resources: each entry's full URL is a `urn:uuid:`
/// ([`full_url`]), and every reference to an entry (`Type/id`) is rewritten to it, with
/// the reference's `type`.
pub fn collection_bundle(
    bundle_id: &str,
    identifier: Option<Value>,
    timestamp: &str,
    resources: Vec<Value>,
) -> Value {
    let urls: std::collections::HashMap<String, (String, String)> = resources
        .iter()
        .map(|r| {
            let t = text(r, "resourceType").to_string();
            let i = text(r, "id").to_string();
            (format!("{t}/{i}"), (full_url(&t, &i), t))
        })
        .collect();
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|mut r| {
            rewrite_references(&mut r, &urls);
            let url = full_url(text(&r, "resourceType"), text(&r, "id"));
            json!({"fullUrl": url, "resource": r})
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "collection",
        "timestamp": timestamp,
        "entry": entries,
    });
    if let Some(identifier) = identifier {
        bundle["identifier"] = identifier;
    }
    bundle
}

fn rewrite_references(
    value: &mut Value,
    urls: &std::collections::HashMap<String, (String, String)>,
) {
    match value {
        Value::Object(map) => {
            let target = map
                .get("reference")
                .and_then(Value::as_str)
                .and_then(|r| urls.get(r))
                .cloned();
            if let Some((url, resource_type)) = target {
                map.insert("reference".into(), json!(url));
                map.entry("type").or_insert(json!(resource_type));
            }
            for (_, v) in map.iter_mut() {
                rewrite_references(v, urls);
            }
        }
        Value::Array(list) => {
            for v in list {
                rewrite_references(v, urls);
            }
        }
        _ => {}
    }
}

/// The pseudonymous Patient (identifier: the patient key), with the identifying data
/// given (vault fields: name, given_name, family_name, date_of_birth, mrn, contact), or
/// marked pseudonymized when there is none.
pub fn patient(patient_key: &str, identifying: Option<&Map<String, Value>>) -> Value {
    let mut identifiers = vec![identifier(system::PATIENT_KEY, patient_key)];
    let mut resource = json!({
        "resourceType": "Patient",
        "id": id::patient(patient_key),
    });
    match identifying {
        None => {
            resource["meta"] = json!({"security": [coding(
                system::OBSERVATION_VALUE,
                "PSEUDED",
                Some("pseudonymized"),
            )]});
        }
        Some(fields) => {
            let field = |k: &str| {
                fields
                    .get(k)
                    .and_then(Value::as_str)
                    .filter(|v| !v.trim().is_empty())
            };
            if let Some(mrn) = field("mrn") {
                identifiers.push(json!({
                    "use": "usual",
                    "type": concept(vec![coding(system::IDENTIFIER_TYPE, "MR", Some("Medical record number"))], None),
                    "value": mrn,
                }));
            }
            let mut name = Map::new();
            if let Some(n) = field("name") {
                name.insert("text".into(), json!(n));
            }
            if let Some(f) = field("family_name") {
                name.insert("family".into(), json!(f));
            }
            if let Some(g) = field("given_name") {
                let given: Vec<&str> = g.split_whitespace().collect();
                name.insert("given".into(), json!(given));
            }
            if !name.is_empty() {
                name.insert("use".into(), json!("official"));
                resource["name"] = json!([name]);
            }
            if let Some(d) = field("date_of_birth").filter(|d| is_date(d)) {
                resource["birthDate"] = json!(d);
            }
            if let Some(c) = field("contact") {
                resource["telecom"] = json!([{"system": "other", "value": c}]);
            }
        }
    }
    resource["identifier"] = json!(identifiers);
    resource
}

fn site_name<'a>(site: &'a Value, site_id: &'a str) -> &'a str {
    let name = text(site, "name");
    if name.is_empty() {
        site_id
    } else {
        name
    }
}

fn site_identifiers(site: &Value, site_id: &str, with_fin: bool) -> Vec<Value> {
    let mut ids = vec![identifier(system::SITE, site_id)];
    let gln = text(site, "gln");
    if !gln.is_empty() {
        ids.push(identifier(system::GLN, gln));
    }
    let fin = text(site, "isbt128_fin");
    if with_fin && !fin.is_empty() {
        ids.push(identifier(system::FIN, fin));
    }
    ids
}

fn site_active(site: &Value) -> bool {
    matches!(text(site, "status"), "" | "active")
}

/// A site (reference record `site/<id>`) as an Organization: site id, GLN, ISBT 128 FIN.
pub fn organization(site: &Value) -> Value {
    let site_id = text(site, "site_id");
    let types: Vec<Value> = texts(site, "site_types")
        .iter()
        .map(|t| concept(vec![coding(system::SITE_TYPE, t, None)], None))
        .collect();
    let mut org = json!({
        "resourceType": "Organization",
        "id": id::site(site_id),
        "identifier": site_identifiers(site, site_id, true),
        "active": site_active(site),
        "name": site_name(site, site_id),
    });
    if !types.is_empty() {
        org["type"] = json!(types);
    }
    org
}

/// A site as a Location: site id and GLN, address, time zone, managed by its Organization.
pub fn location(site: &Value) -> Value {
    let site_id = text(site, "site_id");
    let status = match text(site, "status") {
        "" | "active" => "active",
        "suspended" => "suspended",
        _ => "inactive",
    };
    let mut loc = json!({
        "resourceType": "Location",
        "id": id::site(site_id),
        "identifier": site_identifiers(site, site_id, false),
        "status": status,
        "name": site_name(site, site_id),
        "mode": "instance",
        "managingOrganization": reference("Organization", &id::site(site_id)),
    });
    let zone = text(site, "time_zone");
    if !zone.is_empty() {
        loc["extension"] = json!([{"url": system::TIMEZONE_EXTENSION, "valueCode": zone}]);
    }
    if let Some(address) = site.get("postal_address").filter(|a| a.is_object()) {
        let mut a = Map::new();
        let lines: Vec<String> = match address.get("lines") {
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            Some(Value::Array(_)) => texts(address, "lines"),
            _ => Vec::new(),
        };
        if !lines.is_empty() {
            a.insert("line".into(), json!(lines));
        }
        for (from, to) in [
            ("city", "city"),
            ("postal_code", "postalCode"),
            ("country", "country"),
        ] {
            let v = text(address, from);
            if !v.is_empty() {
                a.insert(to.into(), json!(v));
            }
        }
        if !a.is_empty() {
            loc["address"] = Value::Object(a);
        }
    }
    loc
}

/// A person (reference record `person/<id>`) as a Practitioner: person id, printed name,
/// qualifications (role at site, valid period).
pub fn practitioner(person: &Value) -> Value {
    let person_id = text(person, "person_id");
    let mut p = json!({
        "resourceType": "Practitioner",
        "id": id::person(person_id),
        "identifier": [identifier(system::PERSON, person_id)],
        "active": matches!(text(person, "status"), "" | "active"),
    });
    let printed = text(person, "printed_name");
    if !printed.is_empty() {
        p["name"] = json!([{"text": printed}]);
    }
    let qualifications: Vec<Value> = person
        .get("qualifications")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|q| !text(q, "role").is_empty())
        .map(|q| {
            let role = text(q, "role");
            let site = text(q, "site_id");
            let mut qualification = json!({
                "code": concept(
                    vec![coding(system::QUALIFICATION_ROLE, role, None)],
                    Some(&format!("{role} at {site}")),
                ),
            });
            let mut period = Map::new();
            for (from, to) in [("valid_from", "start"), ("valid_until", "end")] {
                if let Some(t) = date_time(text(q, from)) {
                    period.insert(to.into(), json!(t));
                }
            }
            if !period.is_empty() {
                qualification["period"] = Value::Object(period);
            }
            qualification
        })
        .collect();
    if !qualifications.is_empty() {
        p["qualification"] = json!(qualifications);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fhir_ids_and_read_back() {
        for code in ["PK-1", "B_01:x.y", "S-LAX-01", "a*b"] {
            let id = id::of_code(code);
            assert!(id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
            assert_eq!(id::to_code(&id).as_deref(), Some(code), "{id}");
        }
        let long = "X_".repeat(32);
        let id = id::of_code(&long);
        assert!(id.starts_with(".h") && id.len() == 42, "{id}");
        assert_eq!(id::to_code(&id), None);
        assert_eq!(id::to_code("a.x"), None);
        assert_eq!(id::to_code("a/b"), None);
    }

    #[test]
    fn lookups_recompute_check_characters() {
        let din = autolog_domain::identifiers::Din::parse("d", "A999926000001")
            .expect("DIN")
            .to_string();
        assert_eq!(
            lookup("BiologicallyDerivedProduct", &id::collection(&din)),
            Some(Lookup::Din(din.clone()))
        );
        assert_eq!(
            lookup("Procedure", &id::apheresis(&din)),
            Some(Lookup::Din(din))
        );
        let fin = autolog_domain::identifiers::Fin::parse("f", "A9999").expect("FIN");
        let coi = autolog_domain::identifiers::Coi::new(&fin, 26, "000001").expect("COI");
        let unit = autolog_domain::identifiers::UnitId::new(&coi, "S0001", "A0")
            .expect("unit")
            .to_string();
        for (t, i) in [
            ("BiologicallyDerivedProduct", id::unit(&unit)),
            ("BiologicallyDerivedProductDispense", id::release(&unit)),
            ("Procedure", id::infusion(&unit)),
        ] {
            assert_eq!(lookup(t, &i), Some(Lookup::Unit(unit.clone())), "{t}/{i}");
        }
        assert_eq!(
            lookup("Bundle", &id::bundle(&coi.to_string())),
            Some(Lookup::Chain(coi.to_string()))
        );
        assert_eq!(lookup("Bundle", "chain-XX"), None);
        assert_eq!(lookup("Observation", "x"), None);
        assert_eq!(
            lookup("BiologicallyDerivedProduct", &id::batch("B_1")),
            Some(Lookup::Batch("B_1".into()))
        );
        let event = "0190c5a8-3b1c-7d2e-9f00-123456789abc";
        assert_eq!(
            lookup("Provenance", &id::signature(event, true)),
            Some(Lookup::Event(event.into()))
        );
        assert_eq!(lookup("Provenance", "signature-nope"), None);
    }

    #[test]
    fn date_times_lose_their_zone_name_and_keep_their_offset() {
        assert_eq!(
            date_time("2026-11-18T10:02:11.402113-05:00[America/New_York]").as_deref(),
            Some("2026-11-18T10:02:11.402113-05:00")
        );
        assert_eq!(
            date_time("2026-11-18T15:02:11Z").as_deref(),
            Some("2026-11-18T15:02:11Z")
        );
        assert_eq!(date_time("yesterday"), None);
        assert!(!is_date_time("2026-11-18"));
        assert!(!is_date_time("2026-11-18T10:02:11+0500"));
        assert!(is_date("1974-12-25") && is_date("1974") && !is_date("25/12/1974"));
    }

    #[test]
    fn a_bundle_points_every_reference_at_its_entry() {
        let resources = vec![
            patient("PK-1", None),
            json!({"resourceType": "Procedure", "id": "p", "status": "completed",
                   "subject": reference("Patient", "PK-1"),
                   "performer": [{"actor": reference("Practitioner", "elsewhere")}]}),
        ];
        let b = collection_bundle("chain-x", None, "2026-11-27T00:00:00Z", resources);
        let patient_url = b["entry"][0]["fullUrl"].as_str().expect("url");
        assert!(patient_url.starts_with("urn:uuid:"));
        assert_eq!(
            b["entry"][1]["resource"]["subject"],
            json!({"reference": patient_url, "type": "Patient"})
        );
        // A reference to something not in the bundle stays as it was.
        assert_eq!(
            b["entry"][1]["resource"]["performer"][0]["actor"],
            reference("Practitioner", "elsewhere")
        );
        assert_eq!(full_url("Patient", "PK-1"), full_url("Patient", "PK-1"));
        assert_ne!(full_url("Patient", "PK-1"), full_url("Patient", "PK-2"));
    }

    #[test]
    fn the_capability_statement_lists_exactly_the_supported_interactions() {
        let cs = capability_statement("0.1.0");
        let listed: Vec<(String, Vec<String>)> = cs["rest"][0]["resource"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|r| {
                (
                    text(r, "type").to_string(),
                    r["interaction"]
                        .as_array()
                        .expect("interactions")
                        .iter()
                        .map(|i| text(i, "code").to_string())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(listed.len(), SUPPORTED.len());
        assert!(listed
            .iter()
            .any(|(t, i)| t == "Procedure" && i == &["read", "create"]));
        assert_eq!(cs["fhirVersion"], "5.0.0");
    }
}
