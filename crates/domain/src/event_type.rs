//! The catalogue of event types the ledger accepts, each with a version and a payload
//! schema. Later capabilities add their types here; an unknown type or version is refused.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::envelope::check_text;
use crate::error::FieldError;

/// How a type's payloads combine when a stream's state is folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// JSON merge patch (RFC 7386) of the payload into the state: later values win,
    /// `null` removes a key.
    Merge,
    /// The payload is appended to the list held under this key of the state.
    AppendTo(&'static str),
}

/// One accepted `(type, version)` pair.
#[derive(Debug, Clone, Copy)]
pub struct EventType {
    pub name: &'static str,
    pub version: u32,
    pub description: &'static str,
    pub fold: Fold,
    validate: fn(&Value) -> Result<(), FieldError>,
}

impl EventType {
    /// Checks a payload against this type's schema; the error's field is relative to
    /// the payload (`body.data` is prefixed by the caller).
    pub fn validate(&self, data: &Value) -> Result<(), FieldError> {
        (self.validate)(data)
    }
}

/// Every event type this build accepts.
pub const EVENT_TYPES: &[EventType] = &[
    EventType {
        name: "annotation.recorded",
        version: 1,
        description: "A free-text note attached to any stream (who noticed what, and why).",
        fold: Fold::AppendTo("annotations"),
        validate: schema::<AnnotationRecordedV1>,
    },
    EventType {
        name: "site.registered",
        version: 1,
        description: "A canonical site enters the network: id, name, types and IANA time zone.",
        fold: Fold::Merge,
        validate: schema::<SiteRegisteredV1>,
    },
    EventType {
        name: "site.amended",
        version: 1,
        description: "Some attributes of a registered site change.",
        fold: Fold::Merge,
        validate: schema::<SiteAmendedV1>,
    },
];

/// Looks up a type; the error says which types or versions exist.
pub fn lookup(name: &str, version: u32) -> Result<&'static EventType, FieldError> {
    let same_name: Vec<&EventType> = EVENT_TYPES.iter().filter(|t| t.name == name).collect();
    if same_name.is_empty() {
        let known: Vec<&str> = EVENT_TYPES.iter().map(|t| t.name).collect();
        return Err(FieldError::new(
            "type",
            name,
            format!(
                "is not a known event type; known types: {}",
                known.join(", ")
            ),
        ));
    }
    same_name
        .iter()
        .find(|t| t.version == version)
        .copied()
        .ok_or_else(|| {
            let versions: Vec<String> = same_name.iter().map(|t| t.version.to_string()).collect();
            FieldError::new(
                "version",
                version.to_string(),
                format!("{name} has versions {} only", versions.join(", ")),
            )
        })
}

/// Validates a payload by deserialising it into its typed form (unknown fields refused);
/// a refusal names the path inside the payload, e.g. `site_types[0]`.
fn schema<T: DeserializeOwned + Check>(data: &Value) -> Result<(), FieldError> {
    if !data.is_object() {
        return Err(FieldError::new(
            "",
            crate::error::show(data),
            "must be a JSON object",
        ));
    }
    let typed: T = serde_path_to_error::deserialize(data).map_err(|e| {
        let mut field = String::new();
        let mut value = Some(data);
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    field.push_str(&format!("[{index}]"));
                    value = value.and_then(|v| v.get(index));
                }
                serde_path_to_error::Segment::Map { key } => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                    value = value.and_then(|v| v.get(key));
                }
                _ => {}
            }
        }
        let shown = value.map_or_else(|| "(absent)".to_string(), crate::error::show);
        FieldError::new(field, shown, e.inner().to_string())
    })?;
    typed.check()
}

/// Rules a payload must meet beyond its shape.
trait Check {
    fn check(&self) -> Result<(), FieldError>;
}

fn iana_zone(field: &str, zone: &str) -> Result<(), FieldError> {
    crate::zone::check_zone(field, zone).map(|_| ())
}

/// The kinds of site the network knows (glossary: apheresis center ... treatment center).
pub const SITE_TYPES: &[&str] = &[
    "apheresis_center",
    "manufacturing_site",
    "laboratory",
    "logistics_depot",
    "treatment_center",
];

fn site_types(field: &str, types: &[String]) -> Result<(), FieldError> {
    if types.is_empty() {
        return Err(FieldError::new(
            field,
            "[]",
            "must name at least one site type",
        ));
    }
    for (i, t) in types.iter().enumerate() {
        if !SITE_TYPES.contains(&t.as_str()) {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                t,
                format!("must be one of {}", SITE_TYPES.join(", ")),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnotationRecordedV1 {
    text: String,
}

impl Check for AnnotationRecordedV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_text("text", &self.text, 4000)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteRegisteredV1 {
    site_id: String,
    name: String,
    site_types: Vec<String>,
    time_zone: String,
}

impl Check for SiteRegisteredV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_text("site_id", &self.site_id, 64)?;
        check_text("name", &self.name, 200)?;
        site_types("site_types", &self.site_types)?;
        iana_zone("time_zone", &self.time_zone)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteAmendedV1 {
    name: Option<String>,
    site_types: Option<Vec<String>>,
    time_zone: Option<String>,
}

impl Check for SiteAmendedV1 {
    fn check(&self) -> Result<(), FieldError> {
        if self.name.is_none() && self.site_types.is_none() && self.time_zone.is_none() {
            return Err(FieldError::new(
                "",
                "{}",
                "must change at least one of name, site_types, time_zone",
            ));
        }
        if let Some(name) = &self.name {
            check_text("name", name, 200)?;
        }
        if let Some(types) = &self.site_types {
            site_types("site_types", types)?;
        }
        if let Some(zone) = &self.time_zone {
            iana_zone("time_zone", zone)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_type_and_version_are_named() {
        let e = lookup("site.demolished", 1).expect_err("unknown");
        assert_eq!(e.field, "type");
        assert!(e.rule.contains("site.registered"));
        let e = lookup("site.registered", 7).expect_err("unknown version");
        assert_eq!(e.field, "version");
        assert_eq!(e.value, "7");
    }

    #[test]
    fn site_registered_checks_its_payload() {
        let t = lookup("site.registered", 1).expect("known");
        let good = json!({"site_id":"S-1","name":"Paris","site_types":["apheresis_center"],"time_zone":"Europe/Paris"});
        assert!(t.validate(&good).is_ok());
        let e = t
            .validate(&json!({"site_id":"S-1","name":"Paris","site_types":["spaceport"],"time_zone":"Europe/Paris"}))
            .expect_err("bad type");
        assert_eq!(e.field, "site_types[0]");
        let e = t
            .validate(&json!({"site_id":"S-1","name":"Paris","site_types":["laboratory"],"time_zone":"Paris"}))
            .expect_err("bad zone");
        assert_eq!(e.field, "time_zone");
        let e = t
            .validate(&json!({"site_id":"S-1","name":"Paris","site_types":["laboratory"],"time_zone":"Europe/Paris","colour":"red"}))
            .expect_err("unknown field");
        assert!(e.rule.contains("unknown field `colour`"), "{}", e.rule);
        let e = t
            .validate(&json!({"site_id":"S-1","name":"Paris","site_types":["laboratory", 7],"time_zone":"Europe/Paris"}))
            .expect_err("wrong type");
        assert_eq!((e.field.as_str(), e.value.as_str()), ("site_types[1]", "7"));
        assert!(e.rule.contains("expected a string"), "{}", e.rule);
        let e = t
            .validate(
                &json!({"site_id":"S-1","site_types":["laboratory"],"time_zone":"Europe/Paris"}),
            )
            .expect_err("missing");
        assert!(e.rule.contains("missing field `name`"), "{}", e.rule);
        assert!(t.validate(&json!([1, 2])).is_err());
    }

    #[test]
    fn amendments_must_change_something() {
        let t = lookup("site.amended", 1).expect("known");
        assert!(t.validate(&json!({})).is_err());
        assert!(t.validate(&json!({"name": "Paris Nord"})).is_ok());
    }
}
