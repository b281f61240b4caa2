//! Query strings read once into typed parameters: [`QueryOf<T>`] is an extractor whose `T`
//! names the parameters an endpoint takes (declared with [`query_params!`]). A parameter
//! the endpoint does not take, one given twice, and a value of the wrong form are refused
//! before the handler runs, each naming the parameter, the value and the rule.

use autolog_domain::FieldError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::ApiError;

/// The parameters of one endpoint's query string.
pub(crate) trait QueryParams: DeserializeOwned {
    /// Every parameter the endpoint takes, as documented.
    const NAMES: &'static [&'static str];
}

/// Declares a struct of query parameters and the names it takes (its fields').
macro_rules! query_params {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            $($(#[$fdoc])* pub(crate) $field: $ty,)*
        }

        impl $crate::routes::params::QueryParams for $name {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];
        }
    };
}
pub(crate) use query_params;

query_params! {
    /// An endpoint that takes no parameter.
    NoParams {}
}

query_params! {
    /// A reconstruction as it stood (`valid_at`) and as it was known (`known_at`).
    AsOf {
        valid_at: Option<String>,
        known_at: Option<String>,
    }
}

/// The typed parameters of a request's query string.
pub(crate) struct QueryOf<T>(pub T);

impl<T: QueryParams, S: Send + Sync> FromRequestParts<S> for QueryOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default();
        parse::<T>(raw).map(QueryOf).map_err(ApiError::from)
    }
}

/// Reads a query string into `T`: known names only, each at most once, each value of its
/// field's form.
pub(crate) fn parse<T: QueryParams>(raw: &str) -> Result<T, FieldError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|e| FieldError::new("query", "(unreadable)", e.to_string()))?;
    let mut map = Map::new();
    for (key, value) in pairs {
        if !T::NAMES.contains(&key.as_str()) {
            let rule = if T::NAMES.is_empty() {
                "is not a parameter of this endpoint (it takes none)".to_string()
            } else {
                format!(
                    "is not a parameter of this endpoint; parameters are {}",
                    T::NAMES.join(", ")
                )
            };
            return Err(FieldError::new(key, value, rule).with_code("unknown"));
        }
        if map.contains_key(&key) {
            return Err(FieldError::new(
                key,
                value,
                "is given more than once; give each parameter once",
            )
            .with_code("repeated"));
        }
        map.insert(key, Value::String(value));
    }
    serde_path_to_error::deserialize(Value::Object(map.clone())).map_err(|e| {
        let field = e.path().to_string();
        let value = map
            .get(&field)
            .and_then(Value::as_str)
            .unwrap_or("(absent)")
            .to_string();
        FieldError::new(field, value, e.into_inner().to_string())
    })
}

/// The rule a whole-number parameter breaks.
const WHOLE_NUMBER: &str = "must be a non-negative whole number";

/// A whole number given as text, read where the handler reads it (after the checks that
/// come first, such as scope): `None` when absent, the field's rule when it is not one.
pub(crate) fn whole<N: std::str::FromStr>(
    field: &str,
    value: &Option<String>,
) -> Result<Option<N>, FieldError> {
    value
        .as_deref()
        .map(|v| {
            v.parse::<N>()
                .map_err(|_| FieldError::new(field, v, WHOLE_NUMBER))
        })
        .transpose()
}

/// A whole number given as text (`within_days=30`): the field's rule when it is not one.
pub(crate) fn whole_number<'de, D, N>(deserializer: D) -> Result<Option<N>, D::Error>
where
    D: Deserializer<'de>,
    N: std::str::FromStr,
{
    let text: Option<String> = Option::deserialize(deserializer)?;
    text.map(|t| {
        t.parse::<N>()
            .map_err(|_| serde::de::Error::custom(WHOLE_NUMBER))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    query_params! {
        Report {
            as_of: Option<String>,
            #[serde(default, deserialize_with = "whole_number")]
            within_days: Option<u32>,
        }
    }

    #[test]
    fn known_parameters_are_read_by_their_type() {
        let r: Report = parse("as_of=2026-12-01T00:00:00Z&within_days=30").expect("read");
        assert_eq!(r.as_of.as_deref(), Some("2026-12-01T00:00:00Z"));
        assert_eq!(r.within_days, Some(30));
        let none: Report = parse("").expect("no parameter");
        assert!(none.as_of.is_none() && none.within_days.is_none());
    }

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_refused_by_name() {
        let e = parse::<Report>("colour=red").expect_err("unknown");
        assert_eq!((e.field.as_str(), e.value.as_str()), ("colour", "red"));
        assert_eq!(e.code, "unknown");
        assert!(e.rule.contains("as_of, within_days"), "{e}");
        let e = parse::<Report>("as_of=a&as_of=b").expect_err("twice");
        assert_eq!((e.field.as_str(), e.value.as_str()), ("as_of", "b"));
        assert_eq!(e.code, "repeated");
        let e = parse::<Report>("within_days=soon").expect_err("not a number");
        assert_eq!(
            (e.field.as_str(), e.value.as_str(), e.rule.as_str()),
            ("within_days", "soon", "must be a non-negative whole number")
        );
        let e = parse::<NoParams>("x=1").expect_err("takes none");
        assert!(e.rule.contains("takes none"), "{e}");
    }
}
