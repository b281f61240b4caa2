//! Every request gets an id (`x-request-id`): the client's when it sends a plain one, else a
//! new UUIDv7. The id names the request's tracing span, which the app and the store's
//! writer run in, and comes back in the answer's `x-request-id`. The span carries the
//! method, the path (never the query string, which may hold free text) and the id.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::Span;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A client's request id is kept only when it is 1-64 letters, digits or `-_.:`.
const MAX_CLIENT_ID: usize = 64;

/// New ids: UUIDv7 (time-ordered).
#[derive(Clone, Copy, Default)]
pub struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&autolog_domain::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Drops a client's request id that is not a plain token, so that a new one is made and
/// no free text reaches the logs through it.
pub async fn drop_unplain_id(mut request: Request, next: Next) -> Response {
    let plain = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .map(|v| is_plain(v.as_bytes()));
    if plain == Some(false) {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    next.run(request).await
}

fn is_plain(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The span of one HTTP request.
pub fn request_span<B>(request: &axum::http::Request<B>) -> Span {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_client_ids_are_kept() {
        assert!(is_plain(b"0192f1c3-0000-7000-8000-000000000000"));
        assert!(is_plain(b"courier.batch-7:12"));
        assert!(!is_plain(b""));
        assert!(!is_plain(b"Jane Doe 1970-01-01"));
        assert!(!is_plain(&[b'a'; 65]));
    }
}
