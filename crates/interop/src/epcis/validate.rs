//! The EPCIS 2.0 document rules of the GS1 JSON schema (required members per event type,
//! enumerations, formats, closed shapes, namespaced user extensions), first violation reported.

use std::collections::BTreeSet;

use autolog_domain::error::show;
use autolog_domain::FieldError;
use serde_json::{Map, Value};

use super::hash::event_hash_id;
use super::syntax::{is_hex_binary, is_time_zone_offset, is_uom, is_uri, is_version, DateTime};
use super::vocab::{expand_biz_step, expand_disposition, Vocabulary};
use super::{EpcisDocument, EpcisEvent, EVENT_TYPES};

type Check = Result<(), FieldError>;

/// Namespace prefixes the standard EPCIS 2.0 JSON-LD context declares.
const STANDARD_PREFIXES: &[&str] = &[
    "epcis", "cbv", "cbvmda", "gs1", "rdfs", "owl", "xsd", "dcterms",
];

const EXTENSION_RULE: &str = "unknown field: a user extension needs a namespace prefix declared in @context (ns:name) or a full URI";

/// Members every event may have.
const COMMON_EVENT_MEMBERS: &[&str] = &[
    "@context",
    "type",
    "eventTime",
    "recordTime",
    "eventTimeZoneOffset",
    "eventID",
    "certificationInfo",
    "errorDeclaration",
];

fn members_of(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "ObjectEvent" => &[
            "action",
            "epcList",
            "quantityList",
            "bizStep",
            "disposition",
            "persistentDisposition",
            "readPoint",
            "bizLocation",
            "bizTransactionList",
            "sourceList",
            "destinationList",
            "sensorElementList",
            "ilmd",
        ],
        "AggregationEvent" | "AssociationEvent" => &[
            "parentID",
            "childEPCs",
            "childQuantityList",
            "action",
            "bizStep",
            "disposition",
            "readPoint",
            "bizLocation",
            "bizTransactionList",
            "sourceList",
            "destinationList",
            "sensorElementList",
        ],
        "TransactionEvent" => &[
            "bizTransactionList",
            "parentID",
            "epcList",
            "quantityList",
            "action",
            "bizStep",
            "disposition",
            "readPoint",
            "bizLocation",
            "sourceList",
            "destinationList",
            "sensorElementList",
        ],
        "TransformationEvent" => &[
            "inputEPCList",
            "inputQuantityList",
            "outputEPCList",
            "outputQuantityList",
            "transformationID",
            "bizStep",
            "disposition",
            "persistentDisposition",
            "readPoint",
            "bizLocation",
            "bizTransactionList",
            "sourceList",
            "destinationList",
            "sensorElementList",
            "ilmd",
        ],
        _ => &[],
    }
}

/// `a.b`, or `b` at the root.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn at(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

fn refuse(path: &str, value: &Value, rule: &str) -> FieldError {
    FieldError::new(path, show(value), rule)
}

fn required(path: &str) -> FieldError {
    FieldError::new(path, "", "is required")
}

/// What the rules need to know from the enclosing document.
struct Scope {
    /// Namespace prefixes declared in `@context` (and the standard ones).
    prefixes: BTreeSet<String>,
}

impl Scope {
    fn with_context(&self, context: Option<&Value>) -> Scope {
        let mut prefixes = self.prefixes.clone();
        if let Some(context) = context {
            prefixes.extend(declared_prefixes(context));
        }
        Scope { prefixes }
    }

    /// A user extension key: `ns:name` with `ns` declared, or a full URI.
    fn is_extension(&self, key: &str) -> bool {
        if !is_uri(key) {
            return false;
        }
        let prefix = key.split(':').next().unwrap_or_default();
        self.prefixes.contains(prefix)
            || key.starts_with("http://")
            || key.starts_with("https://")
            || key.starts_with("urn:")
    }

    /// Every key of `object` is in `allowed` or a user extension.
    fn known_keys(&self, path: &str, object: &Map<String, Value>, allowed: &[&str]) -> Check {
        for (key, value) in object {
            if !allowed.contains(&key.as_str()) && !self.is_extension(key) {
                return Err(refuse(&join(path, key), value, EXTENSION_RULE));
            }
        }
        Ok(())
    }
}

/// The keys of the objects of a `@context` (a string, an object or a list of both).
fn declared_prefixes(context: &Value) -> Vec<String> {
    let entries: Vec<&Value> = match context {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    entries
        .into_iter()
        .filter_map(Value::as_object)
        .flat_map(|object| object.keys().cloned())
        .collect()
}

fn object<'a>(
    path: &str,
    value: &'a Value,
    what: &str,
) -> Result<&'a Map<String, Value>, FieldError> {
    value
        .as_object()
        .ok_or_else(|| refuse(path, value, &format!("must be {what} (a JSON object)")))
}

fn array<'a>(path: &str, value: &'a Value) -> Result<&'a Vec<Value>, FieldError> {
    value
        .as_array()
        .ok_or_else(|| refuse(path, value, "must be a JSON array"))
}

fn string<'a>(path: &str, value: &'a Value) -> Result<&'a str, FieldError> {
    value
        .as_str()
        .ok_or_else(|| refuse(path, value, "must be a string"))
}

fn uri(path: &str, value: &Value) -> Check {
    match value.as_str() {
        Some(s) if is_uri(s) => Ok(()),
        _ => Err(refuse(path, value, "must be a URI (scheme:...)")),
    }
}

fn date_time(path: &str, value: &Value) -> Check {
    match value.as_str() {
        Some(s) if DateTime::parse(s).is_some() => Ok(()),
        _ => Err(refuse(
            path,
            value,
            "must be an RFC 3339 date-time with an offset (2026-07-22T06:45:00+02:00)",
        )),
    }
}

fn number(path: &str, value: &Value) -> Check {
    if value.is_number() {
        Ok(())
    } else {
        Err(refuse(path, value, "must be a number"))
    }
}

fn optional(
    object: &Map<String, Value>,
    path: &str,
    key: &str,
    check: fn(&str, &Value) -> Check,
) -> Check {
    match object.get(key) {
        Some(value) => check(&join(path, key), value),
        None => Ok(()),
    }
}

fn uri_list(path: &str, value: &Value, unique: bool) -> Check {
    let items = array(path, value)?;
    // A set, not a scan of the items before: a list may hold hundreds of thousands.
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        uri(&at(path, i), item)?;
        if unique && !seen.insert(item.to_string()) {
            return Err(refuse(
                &at(path, i),
                item,
                "must not repeat an identifier of the list",
            ));
        }
    }
    Ok(())
}

fn non_empty_array(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// A value of a CBV/GS1 vocabulary: a standard bare word, or a URI outside the namespace
/// whose terms must be written as bare words.
fn vocabulary_value(path: &str, value: &Value, vocabulary: Vocabulary) -> Check {
    let Some(s) = value.as_str() else {
        return Err(refuse(path, value, "must be a string"));
    };
    if vocabulary.is_standard_word(s) {
        return Ok(());
    }
    let (what, example) = match vocabulary {
        Vocabulary::BizStep => ("a CBV business step", "shipping"),
        Vocabulary::Disposition => ("a CBV disposition", "in_transit"),
        Vocabulary::BizTransactionType => ("a CBV business transaction type", "po"),
        Vocabulary::SourceDestType => ("a CBV source/destination type", "owning_party"),
        Vocabulary::ErrorReason => ("a CBV error reason", "incorrect_data"),
        Vocabulary::Component => ("a CBV component", "latitude"),
        Vocabulary::MeasurementType => ("a GS1 measurement type", "Temperature"),
        Vocabulary::SensorAlertType => ("a GS1 sensor alert type", "ALARM_CONDITION"),
    };
    if !is_uri(s) {
        return Err(refuse(
            path,
            value,
            &format!(
                "must be {what}: a standard bare word (such as {example}) or a URI; \
                 a non-standard word needs a URI"
            ),
        ));
    }
    let gs1_web_vocabulary = matches!(
        vocabulary,
        Vocabulary::MeasurementType | Vocabulary::SensorAlertType
    );
    let reserved: &[&str] = if gs1_web_vocabulary {
        &[
            "http://gs1.org/voc/",
            "https://gs1.org/voc/",
            "http://www.gs1.org/voc/",
            "https://www.gs1.org/voc/",
        ]
    } else {
        &[
            "urn:epcglobal:cbv",
            "http://ns.gs1.org/cbv/",
            "https://ns.gs1.org/cbv/",
        ]
    };
    if reserved.iter().any(|r| s.starts_with(r)) {
        return Err(refuse(
            path,
            value,
            &format!("must be {what}: standard terms are written as bare words in EPCIS 2.0 JSON"),
        ));
    }
    Ok(())
}

fn context(path: &str, value: &Value) -> Check {
    match value {
        Value::String(_) => uri(path, value),
        Value::Object(_) => Ok(()),
        Value::Array(items) => {
            let mut seen_contexts = std::collections::HashSet::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(_) => uri(&at(path, i), item)?,
                    Value::Object(_) => {}
                    other => {
                        return Err(refuse(
                            &at(path, i),
                            other,
                            "must be a context URI or object",
                        ))
                    }
                }
                if !seen_contexts.insert(item.to_string()) {
                    return Err(refuse(
                        &at(path, i),
                        item,
                        "must not repeat a context entry",
                    ));
                }
            }
            Ok(())
        }
        other => Err(refuse(
            path,
            other,
            "must be a context URI, object or list of them",
        )),
    }
}

/// Checks a whole document and reads its events.
pub(super) fn document(doc: &Value) -> Result<EpcisDocument, FieldError> {
    let root = object("", doc, "an EPCIS document")?;
    let document_type = match root.get("type") {
        Some(Value::String(t)) if t == "EPCISDocument" || t == "EPCISQueryDocument" => t.clone(),
        Some(other) => {
            return Err(refuse(
                "type",
                other,
                "must be EPCISDocument or EPCISQueryDocument",
            ))
        }
        None => return Err(required("type")),
    };
    let doc_context = root.get("@context").ok_or_else(|| required("@context"))?;
    context("@context", doc_context)?;
    let mut prefixes: BTreeSet<String> =
        STANDARD_PREFIXES.iter().map(|p| (*p).to_string()).collect();
    prefixes.extend(declared_prefixes(doc_context));
    let scope = Scope { prefixes };

    let query = document_type == "EPCISQueryDocument";
    if !query {
        for key in ["schemaVersion", "creationDate", "epcisBody"] {
            if !root.contains_key(key) {
                return Err(required(key));
            }
        }
        scope.known_keys(
            "",
            root,
            &[
                "@context",
                "id",
                "type",
                "schemaVersion",
                "creationDate",
                "instanceIdentifier",
                "sender",
                "receiver",
                "epcisHeader",
                "epcisBody",
            ],
        )?;
    } else {
        if !root.contains_key("epcisBody") {
            return Err(required("epcisBody"));
        }
        scope.known_keys(
            "",
            root,
            &[
                "@context",
                "id",
                "type",
                "schemaVersion",
                "creationDate",
                "epcisBody",
            ],
        )?;
    }
    optional(root, "", "id", uri)?;
    optional(root, "", "schemaVersion", |path, v| match v.as_str() {
        Some(s) if is_version(s) => Ok(()),
        _ => Err(refuse(path, v, "must be a version such as 2.0")),
    })?;
    optional(root, "", "creationDate", date_time)?;
    for key in ["instanceIdentifier", "sender", "receiver"] {
        if let Some(v) = root.get(key) {
            string(key, v)?;
        }
    }
    if let Some(header) = root.get("epcisHeader") {
        epcis_header(&scope, "epcisHeader", header)?;
    }

    let body = root.get("epcisBody").ok_or_else(|| required("epcisBody"))?;
    let body = object("epcisBody", body, "the document body")?;
    let (list_path, event_list) = if query {
        scope.known_keys("epcisBody", body, &["queryResults"])?;
        let results = body
            .get("queryResults")
            .ok_or_else(|| required("epcisBody.queryResults"))?;
        let results = object("epcisBody.queryResults", results, "the query results")?;
        scope.known_keys(
            "epcisBody.queryResults",
            results,
            &["queryName", "subscriptionID", "resultsBody"],
        )?;
        let name = results
            .get("queryName")
            .ok_or_else(|| required("epcisBody.queryResults.queryName"))?;
        string("epcisBody.queryResults.queryName", name)?;
        if let Some(id) = results.get("subscriptionID") {
            string("epcisBody.queryResults.subscriptionID", id)?;
        }
        let path = "epcisBody.queryResults.resultsBody";
        let results_body = results.get("resultsBody").ok_or_else(|| required(path))?;
        let results_body = object(path, results_body, "the results body")?;
        scope.known_keys(path, results_body, &["eventList", "vocabularyList"])?;
        if let Some(vocabularies) = results_body.get("vocabularyList") {
            vocabulary_list(&join(path, "vocabularyList"), vocabularies)?;
        }
        let list_path = join(path, "eventList");
        let list = results_body
            .get("eventList")
            .ok_or_else(|| required(&list_path))?;
        (list_path, list)
    } else {
        scope.known_keys("epcisBody", body, &["eventList"])?;
        let list_path = "epcisBody.eventList".to_string();
        let list = body.get("eventList").ok_or_else(|| required(&list_path))?;
        (list_path, list)
    };

    let items = array(&list_path, event_list)?;
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let path = at(&list_path, index);
        events.push(event(&scope, &path, index, item, doc_context)?);
    }
    Ok(EpcisDocument {
        document_type,
        context: doc_context.clone(),
        schema_version: root
            .get("schemaVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        creation_date: root
            .get("creationDate")
            .and_then(Value::as_str)
            .map(str::to_string),
        events,
    })
}

fn epcis_header(scope: &Scope, path: &str, value: &Value) -> Check {
    let header = object(path, value, "the document header")?;
    scope.known_keys(path, header, &["epcisMasterData"])?;
    if let Some(master) = header.get("epcisMasterData") {
        let master_path = join(path, "epcisMasterData");
        let master = object(&master_path, master, "master data")?;
        if let Some(list) = master.get("vocabularyList") {
            vocabulary_list(&join(&master_path, "vocabularyList"), list)?;
        }
    }
    Ok(())
}

fn vocabulary_list(path: &str, value: &Value) -> Check {
    for (i, vocabulary) in array(path, value)?.iter().enumerate() {
        let path = at(path, i);
        let vocabulary = object(&path, vocabulary, "a vocabulary")?;
        let kind = vocabulary
            .get("type")
            .ok_or_else(|| required(&join(&path, "type")))?;
        uri(&join(&path, "type"), kind)?;
        let Some(elements) = vocabulary.get("vocabularyElementList") else {
            continue;
        };
        let elements_path = join(&path, "vocabularyElementList");
        for (j, element) in array(&elements_path, elements)?.iter().enumerate() {
            let path = at(&elements_path, j);
            let element = object(&path, element, "a vocabulary element")?;
            let id = element
                .get("id")
                .ok_or_else(|| required(&join(&path, "id")))?;
            uri(&join(&path, "id"), id)?;
            if let Some(attributes) = element.get("attributes") {
                let attributes_path = join(&path, "attributes");
                for (k, attribute) in array(&attributes_path, attributes)?.iter().enumerate() {
                    let path = at(&attributes_path, k);
                    let attribute = object(&path, attribute, "an attribute")?;
                    let id = attribute
                        .get("id")
                        .ok_or_else(|| required(&join(&path, "id")))?;
                    uri(&join(&path, "id"), id)?;
                    if let Some(v) = attribute.get("attribute") {
                        if !(v.is_number() || v.is_string() || v.is_object()) {
                            return Err(refuse(
                                &join(&path, "attribute"),
                                v,
                                "must be a number, a string or an object",
                            ));
                        }
                    }
                }
            }
            if let Some(children) = element.get("children") {
                uri_list(&join(&path, "children"), children, false)?;
            }
        }
    }
    Ok(())
}

/// Checks one event and reads it.
fn event(
    scope: &Scope,
    path: &str,
    index: usize,
    value: &Value,
    doc_context: &Value,
) -> Result<EpcisEvent, FieldError> {
    let ev = object(path, value, "an EPCIS event")?;
    let event_type = match ev.get("type") {
        Some(Value::String(t)) if EVENT_TYPES.contains(&t.as_str()) => t.clone(),
        Some(other) => {
            return Err(refuse(
                &join(path, "type"),
                other,
                "must be ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent or AssociationEvent",
            ))
        }
        None => return Err(required(&join(path, "type"))),
    };
    if let Some(own) = ev.get("@context") {
        context(&join(path, "@context"), own)?;
    }
    let scope = scope.with_context(ev.get("@context"));

    // Required members first, in the order a reader would look for them.
    let event_time = ev
        .get("eventTime")
        .ok_or_else(|| required(&join(path, "eventTime")))?;
    date_time(&join(path, "eventTime"), event_time)?;
    let offset = ev
        .get("eventTimeZoneOffset")
        .ok_or_else(|| required(&join(path, "eventTimeZoneOffset")))?;
    match offset.as_str() {
        Some(s) if is_time_zone_offset(s) => {}
        _ => {
            return Err(refuse(
                &join(path, "eventTimeZoneOffset"),
                offset,
                "must be an offset from -13:59 to +14:00 written ±hh:mm",
            ))
        }
    }
    let needs_action = event_type != "TransformationEvent";
    if needs_action && !ev.contains_key("action") {
        return Err(required(&join(path, "action")));
    }
    if event_type == "TransactionEvent" && !ev.contains_key("bizTransactionList") {
        return Err(required(&join(path, "bizTransactionList")));
    }
    if event_type == "AssociationEvent" && !ev.contains_key("parentID") {
        return Err(required(&join(path, "parentID")));
    }

    let allowed: Vec<&str> = COMMON_EVENT_MEMBERS
        .iter()
        .chain(members_of(&event_type))
        .copied()
        .collect();
    scope.known_keys(path, ev, &allowed)?;

    // Common members.
    optional(ev, path, "recordTime", date_time)?;
    optional(ev, path, "eventID", uri)?;
    if let Some(info) = ev.get("certificationInfo") {
        let info_path = join(path, "certificationInfo");
        match info {
            Value::Array(_) => uri_list(&info_path, info, false)?,
            other => uri(&info_path, other)?,
        }
    }
    if let Some(declaration) = ev.get("errorDeclaration") {
        error_declaration(&scope, &join(path, "errorDeclaration"), declaration)?;
    }

    event_members(&scope, path, ev, &event_type)?;
    event_requirements(path, ev, &event_type)?;
    read_event(path, index, event_type, value, ev, doc_context)
}

/// Each member of the event type, checked by its own rule.
fn event_members(
    scope: &Scope,
    path: &str,
    ev: &Map<String, Value>,
    event_type: &str,
) -> Result<(), FieldError> {
    for (key, member) in ev {
        let member_path = join(path, key);
        match key.as_str() {
            "action" => match member.as_str() {
                Some("ADD" | "OBSERVE" | "DELETE") => {}
                _ => {
                    return Err(refuse(
                        &member_path,
                        member,
                        "must be ADD, OBSERVE or DELETE",
                    ))
                }
            },
            "epcList" | "inputEPCList" | "outputEPCList" => {
                let unique = event_type != "TransactionEvent";
                uri_list(&member_path, member, unique)?;
            }
            "childEPCs" => uri_list(&member_path, member, false)?,
            "parentID" | "transformationID" => uri(&member_path, member)?,
            "quantityList" | "childQuantityList" | "inputQuantityList" | "outputQuantityList" => {
                quantity_list(&member_path, member)?;
            }
            "bizStep" => vocabulary_value(&member_path, member, Vocabulary::BizStep)?,
            "disposition" => vocabulary_value(&member_path, member, Vocabulary::Disposition)?,
            "persistentDisposition" => persistent_disposition(&member_path, member)?,
            "readPoint" | "bizLocation" => location(scope, &member_path, member)?,
            "bizTransactionList" => {
                biz_transaction_list(&member_path, member, event_type == "TransactionEvent")?;
            }
            "sourceList" => party_list(&member_path, member, "source")?,
            "destinationList" => party_list(&member_path, member, "destination")?,
            "sensorElementList" => sensor_element_list(scope, &member_path, member)?,
            "ilmd" => ilmd(scope, &member_path, member)?,
            _ => {}
        }
    }

    Ok(())
}

/// What an event must say, per type: what it is about (EPCs, quantities, children, inputs
/// and outputs), and ilmd only when an object is added.
fn event_requirements(
    path: &str,
    ev: &Map<String, Value>,
    event_type: &str,
) -> Result<(), FieldError> {
    let has = |key: &str| non_empty_array(ev.get(key));
    let action = ev.get("action").and_then(Value::as_str);
    let deleting = action == Some("DELETE");
    match event_type {
        "ObjectEvent" => {
            let sensor_reading = has("sensorElementList") && ev.contains_key("readPoint");
            if !ev.contains_key("epcList") && !has("quantityList") && !sensor_reading {
                return Err(FieldError::new(
                    join(path, "epcList"),
                    "",
                    "an ObjectEvent needs epcList, a non-empty quantityList, or a sensorElementList with a readPoint",
                ));
            }
            if let Some(ilmd) = ev.get("ilmd") {
                if action != Some("ADD") {
                    return Err(refuse(
                        &join(path, "ilmd"),
                        ilmd,
                        "ilmd is only allowed in an ObjectEvent whose action is ADD",
                    ));
                }
            }
        }
        "AggregationEvent" | "AssociationEvent" => {
            if !has("childEPCs") && !has("childQuantityList") && !deleting {
                return Err(FieldError::new(
                    join(path, "childEPCs"),
                    "",
                    "needs a non-empty childEPCs or childQuantityList (unless action is DELETE)",
                ));
            }
        }
        "TransactionEvent" => {
            if !ev.contains_key("epcList") && !has("quantityList") && !deleting {
                return Err(FieldError::new(
                    join(path, "epcList"),
                    "",
                    "a TransactionEvent needs epcList or a non-empty quantityList (unless action is DELETE)",
                ));
            }
        }
        _ => {
            let inputs = has("inputEPCList") || has("inputQuantityList");
            let outputs = has("outputEPCList") || has("outputQuantityList");
            let named = ev.contains_key("transformationID");
            if !(inputs && outputs) && !((inputs || outputs) && named) {
                return Err(FieldError::new(
                    join(path, "inputEPCList"),
                    "",
                    "a TransformationEvent needs inputs and outputs (EPC or quantity lists), or one of them and a transformationID",
                ));
            }
        }
    }

    Ok(())
}

fn read_event(
    path: &str,
    index: usize,
    event_type: String,
    raw: &Value,
    ev: &Map<String, Value>,
    doc_context: &Value,
) -> Result<EpcisEvent, FieldError> {
    let text = |key: &str| ev.get(key).and_then(Value::as_str).map(str::to_string);
    let id_of = |key: &str| {
        ev.get(key)
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let event_time = text("eventTime").unwrap_or_default();
    let instant = DateTime::parse(&event_time).ok_or_else(|| {
        FieldError::new(
            join(path, "eventTime"),
            event_time.clone(),
            "must be an RFC 3339 date-time",
        )
    })?;
    let hash_id = event_hash_id(raw, doc_context).map_err(|e| e.under(path))?;

    let mut epcs: Vec<String> = Vec::new();
    let mut add = |value: &Value| {
        if let Some(s) = value.as_str() {
            if !epcs.iter().any(|e| e == s) {
                epcs.push(s.to_string());
            }
        }
    };
    for key in [
        "epcList",
        "childEPCs",
        "parentID",
        "inputEPCList",
        "outputEPCList",
    ] {
        match ev.get(key) {
            Some(Value::Array(items)) => items.iter().for_each(&mut add),
            Some(single) => add(single),
            None => {}
        }
    }
    for key in [
        "quantityList",
        "childQuantityList",
        "inputQuantityList",
        "outputQuantityList",
    ] {
        if let Some(Value::Array(items)) = ev.get(key) {
            for item in items {
                if let Some(class) = item.get("epcClass") {
                    add(class);
                }
            }
        }
    }

    Ok(EpcisEvent {
        index,
        event_type,
        raw: raw.clone(),
        hash_id,
        event_time,
        event_time_utc_micros: instant.utc_micros(),
        event_time_zone_offset: text("eventTimeZoneOffset").unwrap_or_default(),
        action: text("action"),
        biz_step: text("bizStep").map(|s| expand_biz_step(&s)),
        disposition: text("disposition").map(|s| expand_disposition(&s)),
        read_point: id_of("readPoint"),
        biz_location: id_of("bizLocation"),
        epcs,
        event_id: text("eventID"),
        error_declaration: ev.contains_key("errorDeclaration"),
    })
}

fn quantity_list(path: &str, value: &Value) -> Check {
    for (i, element) in array(path, value)?.iter().enumerate() {
        let path = at(path, i);
        let element = object(&path, element, "a quantity element")?;
        for (key, member) in element {
            let member_path = join(&path, key);
            match key.as_str() {
                "epcClass" => uri(&member_path, member)?,
                "quantity" => number(&member_path, member)?,
                "uom" => match member.as_str() {
                    Some(s) if is_uom(s) => {}
                    _ => {
                        return Err(refuse(
                            &member_path,
                            member,
                            "must be a UN/ECE Rec. 20 unit code (2 or 3 capitals or digits)",
                        ))
                    }
                },
                _ => {
                    return Err(refuse(
                        &member_path,
                        member,
                        "unknown field: a quantity element has only epcClass, quantity and uom",
                    ))
                }
            }
        }
        if !element.contains_key("epcClass") {
            return Err(required(&join(&path, "epcClass")));
        }
    }
    Ok(())
}

fn persistent_disposition(path: &str, value: &Value) -> Check {
    let pd = object(path, value, "a persistent disposition")?;
    for (key, member) in pd {
        let member_path = join(path, key);
        if key != "set" && key != "unset" {
            return Err(refuse(
                &member_path,
                member,
                "unknown field: persistentDisposition has only set and unset",
            ));
        }
        let items = array(&member_path, member)?;
        if items.is_empty() {
            return Err(refuse(
                &member_path,
                member,
                "must list at least one disposition",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            vocabulary_value(&at(&member_path, i), item, Vocabulary::Disposition)?;
            if !seen.insert(item.to_string()) {
                return Err(refuse(
                    &at(&member_path, i),
                    item,
                    "must not repeat a disposition",
                ));
            }
        }
    }
    if pd.is_empty() {
        return Err(required(&join(path, "set")));
    }
    Ok(())
}

fn location(scope: &Scope, path: &str, value: &Value) -> Check {
    let location = object(path, value, "a location with an id")?;
    let id = location
        .get("id")
        .ok_or_else(|| required(&join(path, "id")))?;
    uri(&join(path, "id"), id)?;
    scope.known_keys(path, location, &["id"])
}

fn biz_transaction_list(path: &str, value: &Value, at_least_one: bool) -> Check {
    let items = array(path, value)?;
    if at_least_one && items.is_empty() {
        return Err(refuse(
            path,
            value,
            "must list at least one business transaction",
        ));
    }
    for (i, item) in items.iter().enumerate() {
        let path = at(path, i);
        let entry = object(&path, item, "a business transaction")?;
        for (key, member) in entry {
            let member_path = join(&path, key);
            match key.as_str() {
                "type" => vocabulary_value(&member_path, member, Vocabulary::BizTransactionType)?,
                "bizTransaction" => uri(&member_path, member)?,
                _ => {
                    return Err(refuse(
                        &member_path,
                        member,
                        "unknown field: a business transaction has only type and bizTransaction",
                    ))
                }
            }
        }
        if !entry.contains_key("bizTransaction") {
            return Err(required(&join(&path, "bizTransaction")));
        }
    }
    Ok(())
}

/// `sourceList` / `destinationList` entries: `{type, source}` / `{type, destination}`.
fn party_list(path: &str, value: &Value, name: &str) -> Check {
    for (i, item) in array(path, value)?.iter().enumerate() {
        let path = at(path, i);
        let entry = object(&path, item, &format!("a {name}"))?;
        for (key, member) in entry {
            let member_path = join(&path, key);
            if key == "type" {
                vocabulary_value(&member_path, member, Vocabulary::SourceDestType)?;
            } else if key == name {
                uri(&member_path, member)?;
            } else {
                return Err(refuse(
                    &member_path,
                    member,
                    &format!("unknown field: a {name} has only type and {name}"),
                ));
            }
        }
        for key in ["type", name] {
            if !entry.contains_key(key) {
                return Err(required(&join(&path, key)));
            }
        }
    }
    Ok(())
}

fn error_declaration(scope: &Scope, path: &str, value: &Value) -> Check {
    let declaration = object(path, value, "an error declaration")?;
    scope.known_keys(
        path,
        declaration,
        &["declarationTime", "reason", "correctiveEventIDs"],
    )?;
    let time = declaration
        .get("declarationTime")
        .ok_or_else(|| required(&join(path, "declarationTime")))?;
    date_time(&join(path, "declarationTime"), time)?;
    if let Some(reason) = declaration.get("reason") {
        vocabulary_value(&join(path, "reason"), reason, Vocabulary::ErrorReason)?;
    }
    if let Some(ids) = declaration.get("correctiveEventIDs") {
        uri_list(&join(path, "correctiveEventIDs"), ids, false)?;
    }
    Ok(())
}

fn ilmd(scope: &Scope, path: &str, value: &Value) -> Check {
    let ilmd = object(path, value, "instance/lot master data")?;
    for (key, member) in ilmd {
        if !scope.is_extension(key) {
            return Err(refuse(
                &join(path, key),
                member,
                "ILMD fields must be namespaced: a prefix declared in @context (ns:name) or a full URI",
            ));
        }
    }
    Ok(())
}

const SENSOR_METADATA_MEMBERS: &[&str] = &[
    "time",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "startTime",
    "endTime",
    "dataProcessingMethod",
    "bizRules",
];

const SENSOR_REPORT_MEMBERS: &[&str] = &[
    "type",
    "exception",
    "deviceID",
    "deviceMetadata",
    "rawData",
    "dataProcessingMethod",
    "bizRules",
    "time",
    "microorganism",
    "chemicalSubstance",
    "coordinateReferenceSystem",
    "value",
    "component",
    "stringValue",
    "booleanValue",
    "hexBinaryValue",
    "uriValue",
    "minValue",
    "maxValue",
    "meanValue",
    "sDev",
    "percRank",
    "percValue",
    "uom",
];

fn sensor_element_list(scope: &Scope, path: &str, value: &Value) -> Check {
    for (i, item) in array(path, value)?.iter().enumerate() {
        let path = at(path, i);
        let element = object(&path, item, "a sensor element")?;
        scope.known_keys(&path, element, &["sensorMetadata", "sensorReport"])?;
        if let Some(metadata) = element.get("sensorMetadata") {
            sensor_metadata(scope, &join(&path, "sensorMetadata"), metadata)?;
        }
        let reports_path = join(&path, "sensorReport");
        let reports = element
            .get("sensorReport")
            .ok_or_else(|| required(&reports_path))?;
        let reports_list = array(&reports_path, reports)?;
        if reports_list.is_empty() {
            return Err(refuse(
                &reports_path,
                reports,
                "must list at least one sensor report",
            ));
        }
        for (j, report) in reports_list.iter().enumerate() {
            sensor_report(scope, &at(&reports_path, j), report)?;
        }
    }
    Ok(())
}

fn sensor_metadata(scope: &Scope, path: &str, value: &Value) -> Check {
    let metadata = object(path, value, "sensor metadata")?;
    scope.known_keys(path, metadata, SENSOR_METADATA_MEMBERS)?;
    for (key, member) in metadata {
        let member_path = join(path, key);
        match key.as_str() {
            "time" | "startTime" | "endTime" => date_time(&member_path, member)?,
            "deviceID" | "deviceMetadata" | "rawData" | "dataProcessingMethod" | "bizRules" => {
                uri(&member_path, member)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn sensor_report(scope: &Scope, path: &str, value: &Value) -> Check {
    let report = object(path, value, "a sensor report")?;
    scope.known_keys(path, report, SENSOR_REPORT_MEMBERS)?;
    let kind = report
        .get("type")
        .ok_or_else(|| required(&join(path, "type")))?;
    vocabulary_value(&join(path, "type"), kind, Vocabulary::MeasurementType)?;
    for (key, member) in report {
        let member_path = join(path, key);
        match key.as_str() {
            "exception" => vocabulary_value(&member_path, member, Vocabulary::SensorAlertType)?,
            "component" => vocabulary_value(&member_path, member, Vocabulary::Component)?,
            "time" => date_time(&member_path, member)?,
            "deviceID"
            | "deviceMetadata"
            | "rawData"
            | "dataProcessingMethod"
            | "bizRules"
            | "microorganism"
            | "chemicalSubstance"
            | "coordinateReferenceSystem"
            | "uriValue" => {
                uri(&member_path, member)?;
            }
            "value" | "minValue" | "maxValue" | "meanValue" | "sDev" | "percRank" | "percValue" => {
                number(&member_path, member)?;
            }
            "stringValue" | "uom" => {
                string(&member_path, member)?;
            }
            "booleanValue" if !member.is_boolean() => {
                return Err(refuse(&member_path, member, "must be true or false"));
            }
            "hexBinaryValue" => match member.as_str() {
                Some(s) if is_hex_binary(s) => {}
                _ => return Err(refuse(&member_path, member, "must be hexadecimal digits")),
            },
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(events: Value) -> Value {
        json!({
            "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
                         {"ex": "https://ns.example.com/epcis/"}],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2026-07-22T10:30:00Z",
            "epcisBody": {"eventList": events}
        })
    }

    fn shipping() -> Value {
        json!({
            "type": "ObjectEvent",
            "eventTime": "2026-07-22T06:45:00+02:00",
            "eventTimeZoneOffset": "+02:00",
            "epcList": ["urn:epc:id:sscc:0614141.1234567890"],
            "action": "OBSERVE",
            "bizStep": "shipping",
            "disposition": "in_transit",
            "readPoint": {"id": "urn:epc:id:sgln:0614141.12345.400"},
            "ex:temperatureBand": "2-8C"
        })
    }

    fn refusal(events: Value) -> FieldError {
        document(&doc(events)).expect_err("must be refused")
    }

    #[test]
    fn a_shipping_event_is_read() {
        let d = document(&doc(json!([shipping()]))).expect("valid");
        let e = &d.events[0];
        assert_eq!(e.index, 0);
        assert_eq!(e.event_type, "ObjectEvent");
        assert_eq!(
            e.biz_step.as_deref(),
            Some("https://ref.gs1.org/cbv/BizStep-shipping")
        );
        assert_eq!(
            e.disposition.as_deref(),
            Some("https://ref.gs1.org/cbv/Disp-in_transit")
        );
        assert_eq!(
            e.read_point.as_deref(),
            Some("urn:epc:id:sgln:0614141.12345.400")
        );
        assert_eq!(e.epcs, vec!["urn:epc:id:sscc:0614141.1234567890"]);
        assert_eq!(e.event_time_utc_micros, 1_784_695_500_000_000);
        assert!(e.hash_id.starts_with("ni:///sha-256;") && e.hash_id.ends_with("?ver=CBV2.0"));
        assert_eq!(e.raw, shipping());
        assert!(!e.error_declaration);
    }

    #[test]
    fn refusals_name_the_field() {
        let mut bad = shipping();
        bad["action"] = json!("CREATE");
        assert_eq!(
            refusal(json!([shipping(), bad])).field,
            "epcisBody.eventList[1].action"
        );

        let mut bad = shipping();
        bad["bizStep"] = json!("transforming");
        assert_eq!(
            refusal(json!([bad])).field,
            "epcisBody.eventList[0].bizStep"
        );

        let mut bad = shipping();
        bad["bizStep"] = json!("urn:epcglobal:cbv:bizstep:shipping");
        assert_eq!(
            refusal(json!([bad])).field,
            "epcisBody.eventList[0].bizStep"
        );

        let mut ok = shipping();
        ok["bizStep"] = json!("https://example.com/steps/thawing");
        assert!(document(&doc(json!([ok]))).is_ok());

        let mut bad = shipping();
        bad["temperature"] = json!(5);
        assert_eq!(
            refusal(json!([bad])).field,
            "epcisBody.eventList[0].temperature"
        );

        let mut bad = shipping();
        bad["undeclared:temperature"] = json!(5);
        assert_eq!(
            refusal(json!([bad])).field,
            "epcisBody.eventList[0].undeclared:temperature"
        );

        let mut ok = shipping();
        ok["https://ns.example.com/epcis/temperature"] = json!(5);
        assert!(document(&doc(json!([ok]))).is_ok());

        let mut bad = shipping();
        bad["eventTimeZoneOffset"] = json!("+2:00");
        assert_eq!(
            refusal(json!([bad])).field,
            "epcisBody.eventList[0].eventTimeZoneOffset"
        );

        let mut bad = shipping();
        bad.as_object_mut().expect("object").remove("epcList");
        assert_eq!(
            refusal(json!([bad])).field,
            "epcisBody.eventList[0].epcList"
        );

        let mut bad = shipping();
        bad["ilmd"] = json!({"ex:lot": "L1"});
        assert_eq!(refusal(json!([bad])).field, "epcisBody.eventList[0].ilmd");

        let mut bad = shipping();
        bad["sourceList"] = json!([{"type": "place", "source": "urn:epc:id:sgln:0614141.12345.0"}]);
        assert_eq!(
            refusal(json!([bad])).field,
            "epcisBody.eventList[0].sourceList[0].type"
        );
    }

    #[test]
    fn document_rules() {
        let mut d = doc(json!([shipping()]));
        d.as_object_mut().expect("object").remove("@context");
        assert_eq!(document(&d).expect_err("no context").field, "@context");

        let mut d = doc(json!([shipping()]));
        d["creationDate"] = json!("yesterday");
        assert_eq!(document(&d).expect_err("bad date").field, "creationDate");

        let mut d = doc(json!([shipping()]));
        d["type"] = json!("ObjectEvent");
        assert_eq!(document(&d).expect_err("not a document").field, "type");
    }

    #[test]
    fn event_types_have_their_own_requirements() {
        let aggregation = json!({
            "type": "AggregationEvent",
            "eventTime": "2026-07-22T06:45:00Z",
            "eventTimeZoneOffset": "+00:00",
            "parentID": "urn:epc:id:sscc:0614141.1234567890",
            "action": "ADD"
        });
        assert_eq!(
            refusal(json!([aggregation])).field,
            "epcisBody.eventList[0].childEPCs"
        );

        let transformation = json!({
            "type": "TransformationEvent",
            "eventTime": "2026-07-22T06:45:00Z",
            "eventTimeZoneOffset": "+00:00",
            "inputEPCList": ["urn:epc:id:sgtin:0614141.107346.2017"]
        });
        assert_eq!(
            refusal(json!([transformation])).field,
            "epcisBody.eventList[0].inputEPCList"
        );

        let transaction = json!({
            "type": "TransactionEvent",
            "eventTime": "2026-07-22T06:45:00Z",
            "eventTimeZoneOffset": "+00:00",
            "action": "ADD",
            "epcList": []
        });
        assert_eq!(
            refusal(json!([transaction])).field,
            "epcisBody.eventList[0].bizTransactionList"
        );
    }

    #[test]
    fn nested_shapes_are_checked() {
        let with = |key: &str, value: Value| {
            let mut event = shipping();
            event[key] = value;
            document(&doc(json!([event])))
        };
        let field =
            |result: Result<EpcisDocument, FieldError>| result.expect_err("must be refused").field;
        assert!(with("certificationInfo", json!("https://cert.example.org/ABC")).is_ok());
        assert!(with("certificationInfo", json!(["https://cert.example.org/ABC"])).is_ok());
        assert_eq!(
            field(with("certificationInfo", json!({"agency": "x"}))),
            "epcisBody.eventList[0].certificationInfo"
        );
        assert_eq!(
            field(with("persistentDisposition", json!({"set": []}))),
            "epcisBody.eventList[0].persistentDisposition.set"
        );
        assert_eq!(
            field(with("persistentDisposition", json!({"keep": ["active"]}))),
            "epcisBody.eventList[0].persistentDisposition.keep"
        );
        assert!(with(
            "persistentDisposition",
            json!({"set": ["completeness_verified"]})
        )
        .is_ok());
        assert_eq!(
            field(with(
                "errorDeclaration",
                json!({"reason": "incorrect_data"})
            )),
            "epcisBody.eventList[0].errorDeclaration.declarationTime"
        );
        assert_eq!(
            field(with(
                "errorDeclaration",
                json!({"declarationTime": "2026-07-23T08:00:00Z", "reason": "typo"})
            )),
            "epcisBody.eventList[0].errorDeclaration.reason"
        );
        let declared = with(
            "errorDeclaration",
            json!({"declarationTime": "2026-07-23T08:00:00Z", "reason": "incorrect_data",
                   "ex:ticket": "Q-17"}),
        )
        .expect("valid");
        assert!(declared.events[0].error_declaration);
        let sensor = |report: Value| json!([{"sensorReport": [report]}]);
        assert!(with(
            "sensorElementList",
            sensor(json!({"type": "Temperature", "value": 4.5, "uom": "CEL"}))
        )
        .is_ok());
        assert!(with(
            "sensorElementList",
            sensor(json!({"type": "https://example.com/voc/Turbidity", "value": 1}))
        )
        .is_ok());
        assert_eq!(
            field(with("sensorElementList", sensor(json!({"value": 4.5})))),
            "epcisBody.eventList[0].sensorElementList[0].sensorReport[0].type"
        );
        assert_eq!(
            field(with("sensorElementList", sensor(json!({"type": "Warmth"})))),
            "epcisBody.eventList[0].sensorElementList[0].sensorReport[0].type"
        );
        assert_eq!(
            field(with(
                "sensorElementList",
                sensor(json!({"type": "Temperature", "value": "4.5"}))
            )),
            "epcisBody.eventList[0].sensorElementList[0].sensorReport[0].value"
        );
        assert_eq!(
            field(with(
                "sensorElementList",
                sensor(json!({"type": "Temperature", "hexBinaryValue": "xyz"}))
            )),
            "epcisBody.eventList[0].sensorElementList[0].sensorReport[0].hexBinaryValue"
        );
        assert_eq!(
            field(with("sensorElementList", json!([{"sensorReport": []}]))),
            "epcisBody.eventList[0].sensorElementList[0].sensorReport"
        );
        assert_eq!(
            field(with(
                "sensorElementList",
                json!([{"sensorMetadata": {"time": "noon"}, "sensorReport": [{"type": "Mass"}]}])
            )),
            "epcisBody.eventList[0].sensorElementList[0].sensorMetadata.time"
        );
        assert_eq!(
            field(with(
                "quantityList",
                json!([{"epcClass": "urn:epc:class:lgtin:4012345.012345.998877", "quantity": 2, "uom": "kg"}])
            )),
            "epcisBody.eventList[0].quantityList[0].uom"
        );
    }
}
