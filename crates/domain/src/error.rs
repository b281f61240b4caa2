//! The one shape of a refusal: which field, what value, which rule.
//! Every layer reports bad input with it, so a user always learns what to fix.

use serde::Serialize;

/// A refused value: the field (a JSON path such as `events[2].source.system`),
/// the offending value (shortened when long) and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {rule} (got {value})")]
pub struct FieldError {
    pub field: String,
    pub value: String,
    pub rule: String,
    /// The kind of rule, stable and machine-readable (one of [`CODES`]): what a program
    /// decides on, never the rule's words, which are for people and may be reworded.
    pub code: &'static str,
}

/// Every [`FieldError::code`], with what it means (documented in the OpenAPI document's
/// `Error` schema as `rule_code`).
pub const CODES: &[(&str, &str)] = &[
    ("invalid", "the value breaks the rule the message states"),
    ("required", "the field is absent and must be given"),
    ("unknown", "a field or parameter the request does not take"),
    ("repeated", "a field or parameter given more than once"),
    (
        "not_registered",
        "names a registry record that does not exist",
    ),
    (
        "already_registered",
        "the record it registers exists already",
    ),
    (
        "check_character",
        "an identifier's check character does not match it: a character was misread or mistyped",
    ),
    (
        "erased",
        "the patient's identifying data were erased and cannot be recorded again",
    ),
];

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: shorten(value.into()),
            rule: rule.into(),
            code: "invalid",
        }
    }

    /// An absent field that must be given.
    pub fn required(field: impl Into<String>) -> Self {
        Self::new(field, "(absent)", "is required").with_code("required")
    }

    /// The same refusal, of another kind (one of [`CODES`]).
    pub fn with_code(mut self, code: &'static str) -> Self {
        debug_assert!(CODES.iter().any(|(c, _)| *c == code), "{code}");
        self.code = code;
        self
    }

    /// Prefixes the field path, e.g. `source.system` under `events[1]`.
    pub fn under(mut self, prefix: &str) -> Self {
        if prefix.is_empty() {
            return self;
        }
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else if self.field.starts_with('[') {
            format!("{prefix}{}", self.field)
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// Values are echoed back in errors; keep them readable and bounded.
fn shorten(value: String) -> String {
    const MAX: usize = 120;
    if value.chars().count() <= MAX {
        return value;
    }
    let cut: String = value.chars().take(MAX).collect();
    format!("{cut}...")
}

/// Renders a JSON value for an error message.
pub fn show(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}
