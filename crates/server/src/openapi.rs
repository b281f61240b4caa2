//! The OpenAPI 3.1 document served at `/api/openapi.json`: the description written by hand
//! (`openapi.json`: paths, operations, parameters, prose) completed once, at first use,
//! with the lists the code decides: event types, field-error codes, registries, code kinds,
//! roles, purposes of use and override reasons, alert statuses, and the EPCIS query's
//! vocabularies. Those schemas are not in the file: they are generated here from the very
//! constants the server checks against, so the document cannot drift from them.

use std::sync::OnceLock;

use serde_json::{json, Value};

/// The description written by hand, without the generated schemas.
const WRITTEN: &str = include_str!("../openapi.json");

static DOCUMENT: OnceLock<String> = OnceLock::new();

/// The document as served.
pub fn document() -> &'static str {
    DOCUMENT.get_or_init(|| match serde_json::from_str::<Value>(WRITTEN) {
        Ok(mut doc) => {
            complete(&mut doc);
            doc.to_string()
        }
        // A test reads the document: this is a build that was never tested.
        Err(e) => {
            tracing::error!("openapi.json is not JSON: {e}");
            WRITTEN.to_string()
        }
    })
}

/// A string schema that is one of `values`.
fn one_of<'a>(description: &str, values: impl IntoIterator<Item = &'a str>) -> Value {
    let values: Vec<&str> = values.into_iter().collect();
    json!({"type": "string", "description": description, "enum": values})
}

/// A list of `items` separated by `|` (the EPCIS query's form), each one of the words or,
/// when `uris`, a URI.
fn list_of(description: &str, words: &[&str], uris: bool) -> Value {
    const URI: &str = r"[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9._~!$&'()*+,;=:@/?\[\]-]|%[0-9A-Fa-f]{2})*(?:#(?:[A-Za-z0-9._~!$&'()*+,;=:@/?\[\]-]|%[0-9A-Fa-f]{2})*)?";
    let mut alternatives: Vec<&str> = words.to_vec();
    if uris {
        alternatives.push(URI);
    }
    let item = alternatives.join("|");
    json!({
        "type": "string",
        "description": description,
        "pattern": format!("^(?:{item})(?:\\|(?:{item}))*$"),
    })
}

/// Installs the generated schemas under `components/schemas`.
fn complete(doc: &mut Value) {
    use autolog_domain::access::{ACCESS_OVERRIDE_REASONS, PURPOSES_OF_USE, ROLES};
    use autolog_interop::epcis::{Vocabulary, EVENT_TYPES as EPCIS_EVENT_TYPES};
    let generated = [
        (
            "EventType",
            one_of(
                "An event type of the catalogue (GET /api/v1/events lists their versions)",
                autolog_domain::catalogue::EVENT_TYPES
                    .iter()
                    .map(|t| t.name),
            ),
        ),
        (
            "RuleCode",
            one_of(
                "The kind of rule a field breaks, stable for machines",
                autolog_domain::error::CODES.iter().map(|(code, _)| *code),
            ),
        ),
        (
            "Registry",
            one_of(
                "A reference-data registry",
                autolog_app::REGISTRIES.iter().map(|r| r.name),
            ),
        ),
        (
            "CodeKind",
            one_of(
                "The kind of record a local code stands for",
                autolog_domain::reference::crosswalk::CODE_KINDS
                    .iter()
                    .copied(),
            ),
        ),
        (
            "Role",
            one_of(
                "A role a person holds at a site",
                ROLES.iter().map(|r| r.as_str()),
            ),
        ),
        (
            "PurposeOfUse",
            one_of(
                "An HL7 v3 PurposeOfUse code: why identifying data is read (recorded)",
                PURPOSES_OF_USE.iter().map(|(code, _)| *code),
            ),
        ),
        (
            "OverrideReason",
            one_of(
                "An HL7 v3 ActConsentInformationAccessOverrideReason code",
                ACCESS_OVERRIDE_REASONS.iter().map(|(code, _)| *code),
            ),
        ),
        (
            "AlertStatus",
            one_of(
                "open (default: not resolved), unacknowledged, resolved or all",
                autolog_app::ALERT_STATUSES.iter().copied(),
            ),
        ),
        (
            "EpcisEventTypes",
            list_of("EPCIS event types separated by |", EPCIS_EVENT_TYPES, false),
        ),
        (
            "EpcisBizSteps",
            list_of(
                "CBV 2.0 business steps (words or URIs) separated by |",
                Vocabulary::BizStep.words(),
                true,
            ),
        ),
        (
            "EpcisDispositions",
            list_of(
                "CBV 2.0 dispositions (words or URIs) separated by |",
                Vocabulary::Disposition.words(),
                true,
            ),
        ),
    ];
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in generated {
            schemas.insert(name.to_string(), schema);
        }
    }
}
