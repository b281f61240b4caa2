//! Reading and checking fields of a JSON payload, shared by the areas' folds and checks.

use serde_json::Value;

use crate::error::FieldError;

/// A list of texts of a payload (empty when absent).
pub fn list(data: &Value, name: &str) -> Vec<String> {
    data.get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// A list of event ids (UUIDs).
pub(crate) fn uuid_list(field: &str, ids: &[String]) -> Result<(), FieldError> {
    for (i, id) in ids.iter().enumerate() {
        crate::Uuid::parse_str(id).map_err(|e| {
            FieldError::new(
                format!("{field}[{i}]"),
                id,
                format!("must be an event id (UUID): {e}"),
            )
        })?;
    }
    Ok(())
}
