//! The GS1 CBV 2.0 Event Hash ID: the canonical pre-hash string of an EPCIS event and its
//! `ni:///sha-256;<hex>?ver=CBV2.0` digest, as the newest reference generation computes them.

use std::collections::BTreeMap;

use autolog_domain::error::show;
use autolog_domain::FieldError;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::digital_link::canonical_gs1_uri;
use super::syntax::{canonical_number, DateTime};
use super::vocab::{web_vocabulary, Vocabulary};

/// The CBV version this module implements, as written in the hash ID.
pub const HASH_VERSION: &str = "CBV2.0";

/// One node of the neutral tree the pre-hash is computed from: a name, a text value and
/// children (JSON arrays become repeated nodes of the same name, as XML elements would).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    name: String,
    value: String,
    children: Vec<Node>,
}

impl Node {
    fn leaf(name: &str, value: String) -> Node {
        Node {
            name: name.to_string(),
            value,
            children: Vec::new(),
        }
    }
}

/// The CBV property order: each field and, for structured fields, the order of its members.
#[derive(Debug, Clone, Copy)]
enum Order {
    /// A simple value.
    Leaf,
    /// Members in this order.
    Fields(&'static [(&'static str, Order)]),
    /// `bizTransactionList` / `sourceList` / `destinationList` entries: `type` then the value.
    TypedPairs,
}

const QUANTITY_ELEMENT: &[(&str, Order)] = &[
    ("epcClass", Order::Leaf),
    ("quantity", Order::Leaf),
    ("uom", Order::Leaf),
];
const QUANTITY_LIST: &[(&str, Order)] = &[("quantityElement", Order::Fields(QUANTITY_ELEMENT))];
const EPC_LIST: &[(&str, Order)] = &[("epc", Order::Leaf)];
const ID_ONLY: &[(&str, Order)] = &[("id", Order::Leaf)];
const PERSISTENT_DISPOSITION: &[(&str, Order)] = &[("set", Order::Leaf), ("unset", Order::Leaf)];
const SENSOR_METADATA: &[(&str, Order)] = &[
    ("time", Order::Leaf),
    ("startTime", Order::Leaf),
    ("endTime", Order::Leaf),
    ("deviceID", Order::Leaf),
    ("deviceMetadata", Order::Leaf),
    ("rawData", Order::Leaf),
    ("dataProcessingMethod", Order::Leaf),
    ("bizRules", Order::Leaf),
];
const SENSOR_REPORT: &[(&str, Order)] = &[
    ("type", Order::Leaf),
    ("exception", Order::Leaf),
    ("deviceID", Order::Leaf),
    ("deviceMetadata", Order::Leaf),
    ("rawData", Order::Leaf),
    ("dataProcessingMethod", Order::Leaf),
    ("time", Order::Leaf),
    ("microorganism", Order::Leaf),
    ("chemicalSubstance", Order::Leaf),
    ("value", Order::Leaf),
    ("component", Order::Leaf),
    ("stringValue", Order::Leaf),
    ("booleanValue", Order::Leaf),
    ("hexBinaryValue", Order::Leaf),
    ("uriValue", Order::Leaf),
    ("minValue", Order::Leaf),
    ("maxValue", Order::Leaf),
    ("meanValue", Order::Leaf),
    ("sDev", Order::Leaf),
    ("percRank", Order::Leaf),
    ("percValue", Order::Leaf),
    ("uom", Order::Leaf),
    ("coordinateReferenceSystem", Order::Leaf),
];
const SENSOR_ELEMENT: &[(&str, Order)] = &[
    ("sensorMetadata", Order::Fields(SENSOR_METADATA)),
    ("sensorReport", Order::Fields(SENSOR_REPORT)),
];
const SENSOR_ELEMENT_LIST: &[(&str, Order)] = &[("sensorElement", Order::Fields(SENSOR_ELEMENT))];

/// The event-level CBV 2.0 property order (the newest generation: no certificationInfo,
/// epcList before parentID).
const PROPERTY_ORDER: &[(&str, Order)] = &[
    ("eventTime", Order::Leaf),
    ("eventTimeZoneOffset", Order::Leaf),
    ("epcList", Order::Fields(EPC_LIST)),
    ("parentID", Order::Leaf),
    ("inputEPCList", Order::Fields(EPC_LIST)),
    ("childEPCs", Order::Fields(EPC_LIST)),
    ("quantityList", Order::Fields(QUANTITY_LIST)),
    ("childQuantityList", Order::Fields(QUANTITY_LIST)),
    ("inputQuantityList", Order::Fields(QUANTITY_LIST)),
    ("outputEPCList", Order::Fields(EPC_LIST)),
    ("outputQuantityList", Order::Fields(QUANTITY_LIST)),
    ("action", Order::Leaf),
    ("transformationID", Order::Leaf),
    ("bizStep", Order::Leaf),
    ("disposition", Order::Leaf),
    (
        "persistentDisposition",
        Order::Fields(PERSISTENT_DISPOSITION),
    ),
    ("readPoint", Order::Fields(ID_ONLY)),
    ("bizLocation", Order::Fields(ID_ONLY)),
    ("bizTransactionList", Order::TypedPairs),
    ("sourceList", Order::TypedPairs),
    ("destinationList", Order::TypedPairs),
    ("sensorElementList", Order::Fields(SENSOR_ELEMENT_LIST)),
];

/// Event members that never enter the hash.
const EXCLUDED: &[&str] = &[
    "recordTime",
    "eventID",
    "type",
    "errorDeclaration",
    "certificationInfo",
    "@context",
];

/// Keys dropped wherever they appear (comments are not part of the fact).
const COMMENTS: &[&str] = &["comment", "rdfs:comment", "#text"];

/// Namespace prefixes known without a declaration, as the reference generator has them.
/// `cbvmda` lacks the trailing colon of the EPCIS context there, and the hashes carry it so.
const WELL_KNOWN_NAMESPACES: &[(&str, &str)] = &[
    ("gs1", "https://ref.gs1.org/voc/"),
    ("cbv", "https://ref.gs1.org/cbv/"),
    ("epcis", "https://ref.gs1.org/epcis/"),
    ("cbvmda", "urn:epcglobal:cbv:mda"),
];

/// Prefix -> namespace URI, from the well-known prefixes and the `@context` objects
/// (`gs1` always means `https://ref.gs1.org/voc/`).
struct Namespaces(BTreeMap<String, String>);

impl Namespaces {
    fn from_contexts(contexts: &[&Value]) -> Namespaces {
        let mut map: BTreeMap<String, String> = WELL_KNOWN_NAMESPACES
            .iter()
            .map(|(p, u)| ((*p).to_string(), (*u).to_string()))
            .collect();
        for context in contexts {
            let entries: Vec<&Value> = match context {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for entry in entries {
                if let Value::Object(object) = entry {
                    for (prefix, uri) in object {
                        if let Value::String(uri) = uri {
                            map.insert(prefix.clone(), uri.clone());
                        }
                    }
                }
            }
        }
        map.insert("gs1".into(), "https://ref.gs1.org/voc/".into());
        Namespaces(map)
    }

    /// `ext1:foo` -> `{http://example.com/ext1/}foo` when `ext1` is declared.
    fn key(&self, key: &str) -> String {
        match key.split_once(':') {
            Some((prefix, local)) => match self.0.get(prefix) {
                Some(uri) => format!("{{{uri}}}{local}"),
                None => key.to_string(),
            },
            None => key.to_string(),
        }
    }

    /// `gs1:Temperature` -> `https://ref.gs1.org/voc/Temperature`: only GS1 vocabulary CURIEs
    /// are expanded in values; user-namespace CURIEs stay as written.
    fn value(&self, value: &str) -> String {
        if let Some((prefix, local)) = value.split_once(':') {
            if let Some(uri) = self.0.get(prefix) {
                if uri.starts_with("https://ref.gs1.org") || uri.starts_with("https://gs1.org") {
                    return format!("{uri}{local}");
                }
            }
        }
        value.to_string()
    }
}

/// Which vocabulary a bare word at this place belongs to (the JSON-LD context's `@vocab`s).
fn vocabulary_at(parent: &str, key: &str) -> Option<Vocabulary> {
    match (parent, key) {
        ("event", "bizStep") => Some(Vocabulary::BizStep),
        ("event", "disposition") | ("persistentDisposition", "set" | "unset") => {
            Some(Vocabulary::Disposition)
        }
        ("bizTransactionList", "type") => Some(Vocabulary::BizTransactionType),
        ("sourceList" | "destinationList", "type") => Some(Vocabulary::SourceDestType),
        ("errorDeclaration", "reason") => Some(Vocabulary::ErrorReason),
        ("sensorReport", "type") => Some(Vocabulary::MeasurementType),
        ("sensorReport", "exception") => Some(Vocabulary::SensorAlertType),
        ("sensorReport", "component") => Some(Vocabulary::Component),
        _ => None,
    }
}

/// Text of a JSON scalar: strings with GS1 CURIEs or bare vocabulary words expanded,
/// booleans as `true`/`false`, numbers as written.
fn scalar_text(value: &Value, vocabulary: Option<Vocabulary>, ns: &Namespaces) -> String {
    match value {
        Value::String(s) => match vocabulary {
            Some(vocabulary) if !s.contains(':') => vocabulary.expand(s),
            _ => ns.value(s),
        },
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        // Arrays and objects are handled by the caller.
        Value::Array(_) | Value::Object(_) => String::new(),
    }
}

/// The nodes one JSON member becomes: one per array item, else one.
fn member_nodes(parent: &str, key: &str, value: &Value, ns: &Namespaces) -> Vec<Node> {
    let name = ns.key(key);
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| value_node(parent, key, &name, item, ns))
            .collect(),
        other => vec![value_node(parent, key, &name, other, ns)],
    }
}

fn value_node(parent: &str, key: &str, name: &str, value: &Value, ns: &Namespaces) -> Node {
    match value {
        Value::Object(object) => Node {
            name: name.to_string(),
            value: String::new(),
            children: object_children(key, object, ns),
        },
        Value::Array(items) => Node {
            name: name.to_string(),
            value: String::new(),
            children: items
                .iter()
                .map(|item| value_node(key, "", "", item, ns))
                .collect(),
        },
        scalar => Node::leaf(name, scalar_text(scalar, vocabulary_at(parent, key), ns)),
    }
}

/// The children of a JSON object; `context` names the object (`event`, `sensorReport`,
/// or the list an entry sits in) for the vocabulary of its bare words.
fn object_children(
    context: &str,
    object: &serde_json::Map<String, Value>,
    ns: &Namespaces,
) -> Vec<Node> {
    let mut children = Vec::new();
    for (key, value) in object {
        if COMMENTS.contains(&key.as_str()) {
            continue;
        }
        children.extend(member_nodes(context, key, value, ns));
    }
    children
}

/// Brings the JSON shape to the XML one the property order speaks of: `xyzList` arrays
/// become one `xyzList` node of `xyz` entries, `childEPCs` a node of `epc` entries,
/// input/output EPCs `epc`, quantity entries `quantityElement`. Applied at every level.
fn correct_structure(node: Node) -> Node {
    let Node {
        name,
        value,
        children,
    } = node;
    let mut kept: Vec<Node> = Vec::new();
    let mut lists: Vec<Node> = Vec::new();
    let mut child_epcs: Vec<Node> = Vec::new();
    for child in children {
        if child.name.ends_with("List") {
            let entry_name = child.name[..child.name.len() - 4].to_string();
            let entry = Node {
                name: entry_name,
                value: child.value,
                children: child.children,
            };
            match lists.iter_mut().find(|l| l.name == child.name) {
                Some(list) => list.children.push(entry),
                None => lists.push(Node {
                    name: child.name,
                    value: String::new(),
                    children: vec![entry],
                }),
            }
        } else if child.name == "childEPCs" {
            child_epcs.push(Node::leaf("epc", child.value));
        } else {
            kept.push(child);
        }
    }
    kept.extend(lists);
    if !child_epcs.is_empty() {
        kept.push(Node {
            name: "childEPCs".into(),
            value: String::new(),
            children: child_epcs,
        });
    }
    let children: Vec<Node> = kept.into_iter().map(correct_structure).collect();
    let name = match name.as_str() {
        "inputEPC" | "outputEPC" => "epc".to_string(),
        "inputQuantity" | "outputQuantity" | "childQuantity" => "quantityElement".to_string(),
        "quantity" if !children.is_empty() => "quantityElement".to_string(),
        _ => name,
    };
    Node {
        name,
        value,
        children,
    }
}

/// A value in canonical form: CBV 1.x URNs to web vocabulary, numbers canonical, EPC URNs
/// and Digital Link URIs to canonical Digital Link.
fn canonical_value(text: &str) -> String {
    let text = web_vocabulary(text);
    let text = canonical_number(&text).unwrap_or(text);
    canonical_gs1_uri(&text).unwrap_or(text)
}

/// A standard field's value: instants (names holding `time`, not `offset`) in the hash form,
/// everything else through [`canonical_value`].
fn standard_value(name: &str, text: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.contains("time") && !lower.contains("offset") {
        match DateTime::parse(text) {
            Some(instant) => instant.utc_millis_text(),
            None => text.to_string(),
        }
    } else {
        canonical_value(text)
    }
}

/// Serialises the members of `children` named in `order`, in that order; equal names sorted.
/// Members fully consumed are removed; what is left (user extensions) stays for later.
fn ordered(children: &mut Vec<Node>, order: &[(&str, Order)]) -> String {
    let mut out = String::new();
    for (field, sub_order) in order {
        let mut values: Vec<String> = Vec::new();
        let mut i = 0;
        while i < children.len() {
            if children[i].name != *field {
                i += 1;
                continue;
            }
            let text = member_text(&mut children[i], *sub_order);
            if !text.is_empty() {
                values.push(text);
            }
            if children[i].children.is_empty() {
                children.remove(i);
            } else {
                i += 1;
            }
        }
        values.sort();
        out.push_str(&values.concat());
    }
    out
}

fn member_text(node: &mut Node, order: Order) -> String {
    let nested = match order {
        Order::Leaf => String::new(),
        Order::Fields(fields) => ordered(&mut node.children, fields),
        Order::TypedPairs => {
            let text = typed_pairs(&node.children);
            node.children.clear();
            text
        }
    };
    let value = node.value.trim();
    let value = if value.is_empty() {
        String::new()
    } else {
        standard_value(&node.name, value)
    };
    if value.is_empty() && nested.is_empty() {
        return String::new();
    }
    // CBV 2.0 has no `sensorElementList` wrapper in the pre-hash.
    let name = if node.name == "sensorElementList" {
        ""
    } else {
        node.name.as_str()
    };
    let equals = if value.is_empty() { "" } else { "=" };
    format!("{name}{equals}{value}{nested}")
}

/// `type=<type><name>=<value>` per entry, entries sorted.
fn typed_pairs(entries: &[Node]) -> String {
    let mut texts: Vec<String> = entries
        .iter()
        .map(|entry| {
            let mut text = String::new();
            for member in entry.children.iter().filter(|m| m.name == "type") {
                text.push_str(&format!("type={}", canonical_value(member.value.trim())));
            }
            for member in entry.children.iter().filter(|m| m.name == entry.name) {
                text.push_str(&format!(
                    "{}={}",
                    entry.name,
                    canonical_value(member.value.trim())
                ));
            }
            text
        })
        .collect();
    texts.sort();
    texts.concat()
}

/// Anything not in the property order: `name=value` and nested members, sorted.
fn generic(nodes: &[Node]) -> String {
    let mut texts: Vec<String> = nodes
        .iter()
        .map(|node| {
            let value = node.value.trim();
            let value = if value.is_empty() {
                String::new()
            } else {
                format!("={}", canonical_value(value))
            };
            format!("{}{value}{}", node.name, generic(&node.children))
        })
        .collect();
    let keeps_order = nodes
        .iter()
        .any(|n| matches!(n.name.as_str(), "bizTransaction" | "source" | "destination"));
    if !keeps_order {
        texts.sort();
    }
    texts.concat()
}

fn is_user_extension(name: &str) -> bool {
    name.contains('{') && name.contains("/}")
}

/// CBV 2.0: user extensions inside standard fields, prefixed by the path of field names,
/// nested fields first, then this level's own extensions.
fn field_extensions(children: &[Node], order: &[(&str, Order)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (field, sub_order) in order {
        let Order::Fields(sub_fields) = sub_order else {
            continue;
        };
        for child in children.iter().filter(|c| c.name == *field) {
            let inner = field_extensions(&child.children, sub_fields);
            if !inner.is_empty() {
                parts.push(format!("{}{inner}", display_name(field)));
            }
        }
    }
    let direct: Vec<Node> = children
        .iter()
        .filter(|c| is_user_extension(&c.name))
        .cloned()
        .collect();
    if !direct.is_empty() {
        parts.push(generic(&direct));
    }
    parts.concat()
}

fn display_name(field: &str) -> &str {
    if field == "sensorElementList" {
        ""
    } else {
        field
    }
}

/// The canonical CBV 2.0 pre-hash string of one EPCIS event (`context`: the document's
/// `@context`, for the namespace prefixes its user extensions use).
///
/// It is `eventType=<type>`, then the standard fields in the CBV property order (`key=value`
/// pairs, no separators; repeated entries sorted), then ILMD, then user extensions found
/// inside standard fields (prefixed by their field name), then event-level user extensions.
/// Values are canonical: instants in UTC with 3 decimals (half-up), numbers without padding,
/// CBV bare words and GS1 CURIEs as full URIs, EPC URNs and Digital Link URIs as canonical
/// `https://id.gs1.org/...` links. `recordTime`, `eventID`, `errorDeclaration`,
/// `certificationInfo` and comments are left out, so an error declaration hashes like the
/// event it corrects.
pub fn pre_hash(event: &Value, context: &Value) -> Result<String, FieldError> {
    let Value::Object(object) = event else {
        return Err(FieldError::new(
            "",
            show(event),
            "an EPCIS event is a JSON object",
        ));
    };
    let event_type = match object.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(other) => {
            return Err(FieldError::new(
                "type",
                show(other),
                "must be an event type",
            ))
        }
        None => return Err(FieldError::new("type", "", "is required")),
    };
    match object.get("eventTime") {
        Some(Value::String(t)) if DateTime::parse(t).is_some() => {}
        Some(other) => {
            return Err(FieldError::new(
                "eventTime",
                show(other),
                "must be an RFC 3339 date-time with an offset",
            ))
        }
        None => return Err(FieldError::new("eventTime", "", "is required")),
    }
    let mut contexts = vec![context];
    if let Some(own) = object.get("@context") {
        contexts.push(own);
    }
    let ns = Namespaces::from_contexts(&contexts);
    let root = correct_structure(Node {
        name: event_type.clone(),
        value: String::new(),
        children: object_children("event", object, &ns),
    });
    let mut children = root.children;

    let standard = ordered(&mut children, PROPERTY_ORDER);

    // ILMD, then extensions inside standard fields, then event-level extensions.
    let (ilmd, mut rest): (Vec<Node>, Vec<Node>) =
        children.into_iter().partition(|c| c.name == "ilmd");
    let ilmd_text = generic(&ilmd);
    let mut field_parts: Vec<String> = Vec::new();
    for (field, sub_order) in PROPERTY_ORDER {
        let Order::Fields(sub_fields) = sub_order else {
            continue;
        };
        let mut i = 0;
        while i < rest.len() {
            if rest[i].name != *field {
                i += 1;
                continue;
            }
            let inner = field_extensions(&rest[i].children, sub_fields);
            if inner.is_empty() {
                i += 1;
            } else {
                field_parts.push(format!("{}{inner}", display_name(field)));
                rest.remove(i);
            }
        }
    }
    rest.retain(|c| !EXCLUDED.contains(&c.name.as_str()));
    let event_extensions = generic(&rest);

    Ok(format!(
        "eventType={event_type}{standard}{ilmd_text}{}{event_extensions}",
        field_parts.concat()
    ))
}

/// The Event Hash ID `ni:///sha-256;<lowercase hex>?ver=CBV2.0` of one EPCIS event.
pub fn event_hash_id(event: &Value, context: &Value) -> Result<String, FieldError> {
    let pre = pre_hash(event, context)?;
    Ok(hash_id_of_pre_hash(&pre))
}

/// The hash ID of a pre-hash string.
pub fn hash_id_of_pre_hash(pre_hash: &str) -> String {
    let digest = Sha256::digest(pre_hash.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("ni:///sha-256;{hex}?ver={HASH_VERSION}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Value {
        json!(["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
               {"example": "https://ns.example.com/epcis/"}])
    }

    fn reference_event() -> Value {
        json!({
            "type": "ObjectEvent",
            "eventTime": "2020-03-04T11:00:30.000+01:00",
            "eventTimeZoneOffset": "+01:00",
            "recordTime": "2020-03-04T11:00:30.999+01:00",
            "epcList": ["urn:epc:id:sscc:4012345.0000000333",
                        "urn:epc:id:sscc:4012345.0000000111",
                        "urn:epc:id:sscc:4012345.0000000222"],
            "action": "OBSERVE",
            "bizStep": "departing",
            "readPoint": {"id": "urn:epc:id:sgln:4012345.00011.987"},
            "example:myField1": {"example:mySubField1": "2", "example:mySubField2": "5"},
            "example:myField2": "0",
            "example:myField3": {"example:mySubField3": ["3", "1"]}
        })
    }

    #[test]
    fn the_reference_event_of_the_cbv_hash_section() {
        let pre = pre_hash(&reference_event(), &context()).expect("hashable");
        assert_eq!(
            pre,
            "eventType=ObjectEventeventTime=2020-03-04T10:00:30.000ZeventTimeZoneOffset=+01:00\
             epcListepc=https://id.gs1.org/00/040123450000001112\
             epc=https://id.gs1.org/00/040123450000002225\
             epc=https://id.gs1.org/00/040123450000003338action=OBSERVE\
             bizStep=https://ref.gs1.org/cbv/BizStep-departing\
             readPointid=https://id.gs1.org/414/4012345000115/254/987\
             {https://ns.example.com/epcis/}myField1{https://ns.example.com/epcis/}mySubField1=2\
             {https://ns.example.com/epcis/}mySubField2=5{https://ns.example.com/epcis/}myField2=0\
             {https://ns.example.com/epcis/}myField3{https://ns.example.com/epcis/}mySubField3=1\
             {https://ns.example.com/epcis/}mySubField3=3"
        );
        assert_eq!(
            event_hash_id(&reference_event(), &context()).expect("hashable"),
            "ni:///sha-256;6ae96341e0acc6d7a261364751f60e68278a81cdf51da0abb6b4e617014e39d7?ver=CBV2.0"
        );
    }

    #[test]
    fn an_error_declaration_hashes_like_the_event_it_corrects() {
        let original = reference_event();
        let mut declaration = original.clone();
        declaration["errorDeclaration"] = json!({
            "declarationTime": "2020-03-05T09:00:00Z",
            "reason": "incorrect_data",
            "correctiveEventIDs": ["urn:uuid:404d95fc-9457-4a51-bd6a-0bba133845a8"]
        });
        declaration["eventID"] = json!("urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8");
        declaration["recordTime"] = json!("2020-03-05T09:00:01Z");
        assert_eq!(
            event_hash_id(&original, &context()).expect("hashable"),
            event_hash_id(&declaration, &context()).expect("hashable")
        );
    }

    #[test]
    fn syntax_does_not_change_the_hash() {
        let a = reference_event();
        let mut b = reference_event();
        // Same instant in another zone and precision, EPCs reordered and as Digital Links,
        // the bizStep as a full URI.
        b["eventTime"] = json!("2020-03-04T04:00:30.0000-06:00");
        b["epcList"] = json!([
            "https://id.gs1.org/00/040123450000002225",
            "urn:epc:id:sscc:4012345.0000000111",
            "https://example.com/sscc/040123450000003338?x=y"
        ]);
        b["bizStep"] = json!("urn:epcglobal:cbv:bizstep:departing");
        b["comment"] = json!("checked by hand");
        assert_eq!(
            event_hash_id(&a, &context()).expect("hashable"),
            event_hash_id(&b, &context()).expect("hashable")
        );
        let mut c = reference_event();
        c["example:myField2"] = json!("1");
        assert_ne!(
            event_hash_id(&a, &context()).expect("hashable"),
            event_hash_id(&c, &context()).expect("hashable")
        );
    }

    #[test]
    fn an_event_without_type_or_time_has_no_hash() {
        let err = pre_hash(&json!({"eventTime": "2020-03-04T11:00:30Z"}), &context())
            .expect_err("no type");
        assert_eq!(err.field, "type");
        let err = pre_hash(
            &json!({"type": "ObjectEvent", "eventTime": "yesterday"}),
            &context(),
        )
        .expect_err("bad time");
        assert_eq!(err.field, "eventTime");
    }
}
