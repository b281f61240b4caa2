//! Outside requests parsed once: an append request (one event or a batch) into drafts,
//! a JSON object body, and the size limits every request body meets.

use autolog_domain::catalogue::parse_draft;
use autolog_domain::ledger::json::parse_strict;
use autolog_domain::ledger::zone::check_clock_skew;
use autolog_domain::{EventDraft, FieldError};
use serde_json::{Map, Value};

use crate::ledger::clock::Clock;
use crate::AppError;

/// At most this many events in one request.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// The largest request body accepted, over HTTP and per ingest line (1 MiB).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// By default an event may not have occurred later than the server's clock plus this
/// allowance (`Autolog::with_clock_skew_tolerance` sets another).
pub const MAX_FUTURE_SKEW_SECONDS: i64 = 300;
/// The largest clock-skew tolerance that can be configured (one day).
pub const MAX_CONFIGURABLE_SKEW_SECONDS: i64 = 86_400;

/// Parses a request body: one event object, or an array of them (a batch). `clock` gives
/// the time the events' instants are checked against and their ids.
pub fn parse_request(
    body: &[u8],
    clock: &dyn Clock,
    skew_tolerance_seconds: i64,
) -> Result<(Vec<EventDraft>, bool), AppError> {
    let now = clock.now();
    if body.len() > MAX_REQUEST_BYTES {
        return Err(too_large(body.len()));
    }
    let value: Value = parse_strict(body).map_err(|e| {
        AppError::Invalid(FieldError::new(
            "request",
            format!("line {} column {}", e.line(), e.column()),
            format!("is not well-formed JSON: {e}"),
        ))
    })?;
    let (items, single): (Vec<(String, &Value)>, bool) = match &value {
        Value::Array(list) => {
            if list.is_empty() {
                return Err(AppError::Invalid(FieldError::new(
                    "request",
                    "[]",
                    "a batch must hold at least one event",
                )));
            }
            if list.len() > MAX_BATCH_EVENTS {
                return Err(AppError::TooLarge(FieldError::new(
                    "request",
                    format!("{} events", list.len()),
                    format!("a batch holds at most {MAX_BATCH_EVENTS} events"),
                )));
            }
            (
                list.iter()
                    .enumerate()
                    .map(|(i, v)| (format!("[{i}]"), v))
                    .collect(),
                false,
            )
        }
        Value::Object(_) => (vec![(String::new(), &value)], true),
        other => {
            return Err(AppError::Invalid(FieldError::new(
                "request",
                autolog_domain::error::show(other),
                "must be an event object or an array of event objects",
            )))
        }
    };
    let mut drafts = Vec::with_capacity(items.len());
    for (prefix, item) in items {
        let draft = parse_draft(item, clock.event_id()).map_err(|e| e.under(&prefix))?;
        check_clock_skew(
            "occurred_at",
            draft.occurred_at.instant,
            now,
            skew_tolerance_seconds,
        )
        .map_err(|e| AppError::Invalid(e.under(&prefix)))?;
        drafts.push(draft);
    }
    Ok((drafts, single))
}

/// Parses a request body that must be one JSON object (`what` names it in the refusal).
pub(crate) fn parse_object(body: &[u8], what: &str) -> Result<Map<String, Value>, AppError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(too_large(body.len()));
    }
    let request: Value = parse_strict(body).map_err(|e| {
        AppError::Invalid(FieldError::new(
            "request",
            format!("line {} column {}", e.line(), e.column()),
            format!("is not well-formed JSON: {e}"),
        ))
    })?;
    match request {
        Value::Object(fields) => Ok(fields),
        other => Err(AppError::Invalid(FieldError::new(
            "request",
            autolog_domain::error::show(&other),
            format!("{what} is a JSON object"),
        ))),
    }
}

/// The refusal of a request body over [`MAX_REQUEST_BYTES`].
pub fn too_large(len: usize) -> AppError {
    AppError::TooLarge(FieldError::new(
        "request",
        format!("{len} bytes"),
        format!("a request body may be at most {MAX_REQUEST_BYTES} bytes"),
    ))
}
