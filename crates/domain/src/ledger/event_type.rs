//! What an event type is: its name, version, how its payloads fold, and the check of a
//! payload against its typed schema. The catalogue of every type is `crate::catalogue`.

use serde::de::DeserializeOwned;
use serde_json::Value;

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
    pub(crate) validate: fn(&Value) -> Result<(), FieldError>,
}

impl EventType {
    /// Checks a payload against this type's schema; the error's field is relative to
    /// the payload (`body.data` is prefixed by the caller).
    pub fn validate(&self, data: &Value) -> Result<(), FieldError> {
        (self.validate)(data)
    }
}

/// Validates a payload by deserialising it into its typed form (unknown fields refused)
/// and checking its rules; a refusal names the path inside the payload, e.g.
/// `site_types[0]`.
pub(crate) fn schema<T: DeserializeOwned + Check>(data: &Value) -> Result<(), FieldError> {
    typed::<T>(data)?.check()
}

/// Reads a payload into its typed form (its shape: fields, types, unknown fields refused);
/// a refusal names the path inside the payload.
pub(crate) fn typed<T: DeserializeOwned>(data: &Value) -> Result<T, FieldError> {
    if !data.is_object() {
        return Err(FieldError::new(
            "",
            crate::error::show(data),
            "must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(data).map_err(|e| {
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
        let message = e.inner().to_string();
        // serde names a missing field at its parent: name the field itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        if let Some(name) = missing {
            let path = if field.is_empty() {
                name.to_string()
            } else {
                format!("{field}.{name}")
            };
            return FieldError::required(path);
        }
        let shown = value.map_or_else(|| "(absent)".to_string(), crate::error::show);
        FieldError::new(field, shown, message)
    })
}

/// Rules a payload must meet beyond its shape.
pub(crate) trait Check {
    fn check(&self) -> Result<(), FieldError>;
}
