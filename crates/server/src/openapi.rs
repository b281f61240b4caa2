//! The OpenAPI 3.1 document served at `/api/openapi.json`: the description written by hand
//! (`openapi.json`: paths, operations, parameters, prose) completed once, at first use,
//! with the lists the code decides: event types, field-error codes, registries, code kinds,
//! roles, purposes of use and override reasons, alert statuses, and the EPCIS query's
//! vocabularies; and the schemas of the typed answers (a chain, an event page, alerts,
//! genealogy, reconciliation), generated from their Rust types with `schemars`. Those
//! schemas are not in the file: they are generated here from the very constants the server
//! checks against and the types it serialises, so the document cannot drift from them.

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
            for missing in answers(&mut doc) {
                tracing::error!("the OpenAPI document has no JSON answer at {missing}");
            }
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
            "ChainState",
            one_of(
                "A state of a chain of identity",
                autolog_domain::chain::ChainState::ALL
                    .iter()
                    .map(|s| s.as_str()),
            ),
        ),
        (
            "AlertFilter",
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

/// The schema of a type, as the generator places it (a reference to its definition).
fn schema<T: schemars::JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

type SchemaOf = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// The operations whose answer is a typed value: path, method, status and the type.
const ANSWERS: &[(&str, &str, &str, SchemaOf)] = {
    use autolog_app as app;
    &[
        ("/api/v1/chains", "get", "200", schema::<app::ChainList>),
        (
            "/api/v1/sites/{site_id}/work",
            "get",
            "200",
            schema::<app::SiteWork>,
        ),
        (
            "/api/v1/chains/{coi}",
            "get",
            "200",
            schema::<app::ChainAnswer>,
        ),
        ("/api/v1/events", "get", "200", schema::<app::EventPage>),
        (
            "/api/v1/events/{event_id}",
            "get",
            "200",
            schema::<app::PresentedEvent>,
        ),
        ("/api/v1/alerts", "get", "200", schema::<app::AlertList>),
        (
            "/api/v1/alerts/{alert_id}",
            "get",
            "200",
            schema::<app::Alert>,
        ),
        (
            "/api/v1/alerts/{alert_id}/acknowledge",
            "post",
            "200",
            schema::<app::Alert>,
        ),
        (
            "/api/v1/alerts/{alert_id}/resolve",
            "post",
            "200",
            schema::<app::Alert>,
        ),
        (
            "/api/v1/genealogy/backward/{unit}",
            "get",
            "200",
            schema::<app::BackwardGenealogy>,
        ),
        (
            "/api/v1/genealogy/forward/{lot}",
            "get",
            "200",
            schema::<app::ForwardGenealogy>,
        ),
        (
            "/api/v1/reconciliation",
            "get",
            "200",
            schema::<app::Reconciliation>,
        ),
        (
            "/api/v1/turnaround",
            "get",
            "200",
            schema::<app::Turnaround>,
        ),
        ("/api/v1/retention", "get", "200", schema::<app::Retention>),
        ("/api/v1/signals", "get", "200", schema::<app::SignalReport>),
        (
            "/api/v1/reference/alignment",
            "get",
            "200",
            schema::<app::AlignmentReport>,
        ),
        (
            "/api/v1/reference/{registry}",
            "get",
            "200",
            schema::<app::RegistryPage>,
        ),
        ("/api/v1/users", "get", "200", schema::<app::UserList>),
        ("/api/v1/users", "post", "201", schema::<app::UserCreated>),
        (
            "/api/v1/users/{person_id}",
            "get",
            "200",
            schema::<app::UserInfo>,
        ),
        (
            "/api/v1/users/{person_id}/grants",
            "post",
            "200",
            schema::<app::RoleChange>,
        ),
        (
            "/api/v1/users/{person_id}/grants/revoke",
            "post",
            "200",
            schema::<app::RoleChange>,
        ),
        (
            "/api/v1/users/{person_id}/unlock",
            "post",
            "200",
            schema::<app::UserUnlocked>,
        ),
        (
            "/api/v1/users/{person_id}/second-factor",
            "post",
            "200",
            schema::<app::SecondFactorReset>,
        ),
        ("/api/v1/tokens", "get", "200", schema::<app::TokenList>),
        ("/api/v1/tokens", "post", "201", schema::<app::TokenIssued>),
        (
            "/api/v1/tokens/{token_id}/revoke",
            "post",
            "200",
            schema::<app::TokenRevoked>,
        ),
        (
            "/api/v1/chains/{coi}/personal-data",
            "get",
            "200",
            schema::<app::PersonalData>,
        ),
        (
            "/api/v1/chains/{coi}/personal-data",
            "post",
            "201",
            schema::<app::PersonalDataRecorded>,
        ),
        (
            "/api/v1/chains/{coi}/personal-data/erase",
            "post",
            "200",
            schema::<app::PersonalDataErased>,
        ),
        (
            "/api/v1/chains/{coi}/labels",
            "get",
            "200",
            schema::<app::labels::LabelList>,
        ),
        (
            "/api/v1/chains/{coi}/labels",
            "post",
            "201",
            schema::<app::labels::Label>,
        ),
        (
            "/api/v1/chains/{coi}/labels/{container}",
            "get",
            "200",
            schema::<app::labels::Label>,
        ),
        (
            "/api/v1/chains/{coi}/labels/{container}/void",
            "post",
            "200",
            schema::<app::labels::Label>,
        ),
        (
            "/api/v1/labels/verify",
            "post",
            "201",
            schema::<app::labels::Verification>,
        ),
        (
            "/api/v1/witness/checkpoints",
            "post",
            "201",
            schema::<app::Witnessed>,
        ),
        (
            "/api/v1/witness/checkpoints/latest",
            "get",
            "200",
            schema::<app::Witnessed>,
        ),
        (
            "/api/v1/audit-trail",
            "get",
            "200",
            schema::<app::audit_trail::AuditTrail>,
        ),
        ("/api/v1/webhooks", "get", "200", schema::<app::WebhookList>),
        (
            "/api/v1/webhooks",
            "post",
            "201",
            schema::<app::WebhookRegistered>,
        ),
        (
            "/api/v1/webhooks/{webhook_id}",
            "get",
            "200",
            schema::<app::WebhookDetail>,
        ),
        (
            "/api/v1/webhooks/{webhook_id}/deactivate",
            "post",
            "200",
            schema::<app::WebhookDetail>,
        ),
    ]
};

/// Sets the answer of each operation of `ANSWERS` to its type's schema, generated from the
/// type as it serialises; the types' schemas join `components/schemas`. Returns what went
/// wrong (none: a test): an answer the written document lacks, a schema name taken.
fn answers(doc: &mut Value) -> Vec<String> {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    settings.contract = schemars::generate::Contract::Serialize;
    let mut generator = settings.into_generator();
    let mut missing = Vec::new();
    for (path, method, status, schema_of) in ANSWERS {
        let pointer = format!(
            "/paths/{}/{method}/responses/{status}/content/application~1json/schema",
            path.replace('~', "~0").replace('/', "~1")
        );
        let schema = schema_of(&mut generator).to_value();
        match doc.pointer_mut(&pointer) {
            Some(slot) => *slot = schema,
            None => missing.push(pointer),
        }
    }
    let definitions = generator.take_definitions(true);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in definitions {
            // A type's schema never replaces one the document already has.
            if schemas.contains_key(&name) {
                missing.push(format!("/components/schemas/{name} (declared twice)"));
                continue;
            }
            schemas.insert(name, schema);
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_typed_answer_has_its_place_in_the_written_document() {
        let mut doc: Value = serde_json::from_str(WRITTEN).expect("openapi.json is JSON");
        complete(&mut doc);
        assert_eq!(answers(&mut doc), Vec::<String>::new());
    }
}
