//! Maps the app layer's errors to HTTP: status code plus a JSON body that names the
//! field, the value and the rule, so that a sender can fix its request.

use autolog_app::AppError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answer: `{"error": {"code", "message", "field", "value", "rule", "rule_code"}}`.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl From<autolog_domain::FieldError> for ApiError {
    fn from(e: autolog_domain::FieldError) -> Self {
        ApiError(AppError::Invalid(e))
    }
}

/// The kind of rule a refused request broke ([`autolog_domain::FieldError::code`]), kept on
/// the answer for the metrics' count of refusals (`autolog_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleCode(pub &'static str);

/// The rule code of an error that names a field (the first unmet condition's).
fn rule_code_of(error: &AppError) -> Option<&'static str> {
    match error {
        AppError::Invalid(f)
        | AppError::TooLarge(f)
        | AppError::Forbidden(f)
        | AppError::RateLimited(f)
        | AppError::Gone(f)
        | AppError::Conflict(f) => Some(f.code),
        AppError::Unmet(conditions) => conditions.first().map(|f| f.code),
        _ => None,
    }
}

/// The status code and error code of an app error, for the API's answer and the console's page.
pub(crate) fn status_of(error: &AppError) -> (StatusCode, &'static str) {
    match error {
        AppError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        AppError::Unmet(_) => (StatusCode::UNPROCESSABLE_ENTITY, "conditions_unmet"),
        AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        AppError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
        AppError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        AppError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        AppError::Gone(_) => (StatusCode::GONE, "gone"),
        AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        AppError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
        AppError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        AppError::Config(_) => (StatusCode::INTERNAL_SERVER_ERROR, "configuration"),
        AppError::Integrity(_) => (StatusCode::INTERNAL_SERVER_ERROR, "integrity"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_of(&self.0);
        let mut body = json!({"code": code, "message": self.0.to_string()});
        if let AppError::Invalid(f)
        | AppError::TooLarge(f)
        | AppError::Forbidden(f)
        | AppError::RateLimited(f)
        | AppError::Gone(f)
        | AppError::Conflict(f) = &self.0
        {
            body["field"] = json!(f.field);
            body["value"] = json!(f.value);
            body["rule"] = json!(f.rule);
            body["rule_code"] = json!(f.code);
        }
        if let AppError::Unmet(conditions) = &self.0 {
            let list: Vec<_> = conditions
                .iter()
                .map(|f| json!({"field": f.field, "value": f.value, "rule": f.rule, "rule_code": f.code}))
                .collect();
            if let Some(first) = conditions.first() {
                body["field"] = json!(first.field);
                body["value"] = json!(first.value);
                body["rule"] = json!(first.rule);
                body["rule_code"] = json!(first.code);
            }
            body["unmet"] = json!(list);
        }
        if let AppError::Busy(_) = &self.0 {
            tracing::warn!(error = %self.0, "request refused: busy");
            let retry = [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)];
            return (status, retry, Json(json!({ "error": body }))).into_response();
        }
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        }
        let mut response = (status, Json(json!({ "error": body }))).into_response();
        if let Some(code) = rule_code_of(&self.0) {
            response.extensions_mut().insert(RuleCode(code));
        }
        if let AppError::Forbidden(f) = self.0 {
            // For the access audit (`auth::authorize`): what was refused and why.
            response.extensions_mut().insert(f);
        }
        response
    }
}

/// When a busy store is worth asking again (`Retry-After`, seconds).
const RETRY_AFTER_SECONDS: &str = "1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_store_answers_503_with_retry_after() {
        let busy = autolog_store::StoreError::Busy {
            backend: "sqlite",
            queued: 1024,
        };
        let response = ApiError(AppError::from(busy)).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }
}
