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
}

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
        }
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
