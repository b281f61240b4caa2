//! Bitemporal reads: a stream's state at (valid_at, known_at), and event listings
//! filtered the same way, each event marked with the correction that superseded it.

use std::collections::HashMap;

use autolog_domain::catalogue::{stream_state, StreamState};
use autolog_domain::ledger::envelope::check_stream_name;
use autolog_domain::ledger::zone::{check_zone, local_time};
use autolog_domain::StreamId;
use autolog_domain::{Event, FieldError, Instant, Uuid};
use autolog_store::EventQuery;
use serde_json::Value;

use crate::ledger::state_cache::cacheable;
use crate::{AppError, Autolog};

/// The most events one listing page returns.
pub const MAX_PAGE: u32 = 1000;

/// An event listing request, as given by a user (times as text, defaults applied here).
#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    pub stream: Option<String>,
    pub valid_at: Option<String>,
    pub known_at: Option<String>,
    pub after_position: Option<u64>,
    pub limit: Option<u32>,
}

/// Parses an optional `valid_at` / `known_at`; absent means now.
pub(crate) fn parse_time(
    field: &str,
    text: Option<&str>,
    now: Instant,
) -> Result<Instant, FieldError> {
    match text {
        None => Ok(now),
        Some(t) => Instant::parse_rfc3339(field, t),
    }
}

/// A text field of a JSON record ("" when absent or not text).
pub(crate) fn text<'a>(record: &'a Value, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// An RFC 3339 instant field of a JSON record (`None` when absent or unreadable).
pub(crate) fn instant_field(record: &Value, key: &str) -> Option<Instant> {
    record
        .get(key)
        .and_then(Value::as_str)
        .and_then(|t| Instant::parse_rfc3339(key, t).ok())
}

/// A recorded event's payload in its typed form: it was checked when recorded, so one
/// that does not read is a ledger changed outside Autolog.
pub(crate) fn payload_of(event: &Event) -> Result<autolog_domain::catalogue::Payload, AppError> {
    autolog_domain::catalogue::Payload::read(
        &event.body.event_type,
        event.body.version,
        &event.body.data,
    )
    .map_err(|f| unreadable(event, &f))
}

/// The integrity error of a recorded event whose payload does not read as its type says.
pub(crate) fn unreadable(event: &Event, error: &FieldError) -> AppError {
    AppError::Integrity(format!(
        "event {} ({}) does not read as recorded: {error}",
        event.event_id, event.body.event_type
    ))
}

/// A page size: default 100, between 1 and [`MAX_PAGE`].
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, AppError> {
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AppError::Invalid(FieldError::new(
            "limit",
            limit.to_string(),
            format!("must be between 1 and {MAX_PAGE}"),
        )));
    }
    Ok(limit)
}

impl Autolog {
    /// The transaction time a read uses: the one asked for (default now), but never later
    /// than the last committed event's `recorded_at`. Every event recorded by then is
    /// committed (placement is serialised), so the same read always gives the same answer.
    pub(crate) async fn settled_known_at(
        &self,
        requested: Option<&str>,
        now: Instant,
    ) -> Result<Instant, AppError> {
        let requested = parse_time("known_at", requested, now)?;
        let head = self.store.head().await?;
        Ok(match head.recorded_at {
            Some(last) if last < requested => last,
            _ => requested,
        })
    }

    /// The stream as it was in the world at `valid_at`, as Autolog knew it at `known_at`
    /// (both default to now). A stream with no event known at `known_at` is not found.
    pub async fn stream_state(
        &self,
        stream: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
    ) -> Result<StreamState, AppError> {
        check_stream_name("stream", stream)?;
        let now = self.now();
        let valid_at = parse_time("valid_at", valid_at, now)?;
        let known_at = self.settled_known_at(known_at, now).await?;
        let events = self.store.stream_events(stream, known_at).await?;
        if events.is_empty() {
            return Err(AppError::NotFound {
                what: "stream",
                id: format!("{stream} (as known at {known_at})"),
            });
        }
        Ok(stream_state(stream, &events, valid_at, known_at))
    }

    /// Events recorded by `known_at` that occurred by `valid_at`, in ledger order, each
    /// with `superseded_by` when a correction known by `known_at` replaced it.
    pub async fn list_events(&self, q: &ListQuery) -> Result<EventPage, AppError> {
        let now = self.now();
        if let Some(stream) = &q.stream {
            check_stream_name("stream", stream)?;
        }
        let limit = page_limit(q.limit)?;
        let after_position = q.after_position.unwrap_or(0);
        if after_position > i64::MAX as u64 {
            return Err(AppError::Invalid(FieldError::new(
                "after_position",
                after_position.to_string(),
                format!("must be at most {}", i64::MAX),
            )));
        }
        let query = EventQuery {
            stream: q.stream.clone(),
            valid_at: parse_time("valid_at", q.valid_at.as_deref(), now)?,
            known_at: self.settled_known_at(q.known_at.as_deref(), now).await?,
            after_position,
            limit,
        };
        let events = self.store.list_events(&query).await?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let superseded = self.store.superseded_by(&ids, query.known_at).await?;
        let next = if events.len() == limit as usize {
            events.last().map(|e| e.position)
        } else {
            None
        };
        let mut items = self.presented(&events).await?;
        for item in items.iter_mut() {
            item.superseded_by = superseded.get(&item.event_id).copied();
        }
        Ok(EventPage {
            valid_at: query.valid_at.to_string(),
            known_at: query.known_at.to_string(),
            events: items,
            next_after_position: next,
        })
    }

    /// One event by id.
    pub async fn event(&self, id: &str) -> Result<PresentedEvent, AppError> {
        let uuid =
            Uuid::parse_str(id).map_err(|_| FieldError::new("event_id", id, "must be a UUID"))?;
        let event = self.store.event(uuid).await?.ok_or(AppError::NotFound {
            what: "event",
            id: id.to_string(),
        })?;
        let mut presented = self.presented(std::slice::from_ref(&event)).await?;
        presented.pop().ok_or(AppError::NotFound {
            what: "event",
            id: id.to_string(),
        })
    }

    /// A site's IANA time zone as last recorded (`None` for an unknown site).
    pub(crate) async fn site_time_zone(&self, site: &str) -> Result<Option<String>, AppError> {
        let state = self.current_state(&StreamId::site(site)).await?;
        Ok(state
            .get("time_zone")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// A stream's state after all its events, as known now: a registry record as it
    /// stands (an empty object when the stream has no event).
    pub(crate) async fn current_state(&self, stream: &str) -> Result<Value, AppError> {
        let cached = cacheable(stream);
        if cached {
            if let Some(head) = self.store.stream_head(stream).await? {
                if let Some(state) = self.states.get(stream, &head) {
                    return Ok(state);
                }
            }
        }
        let events = self.store.stream_events(stream, Instant::MAX).await?;
        let state = stream_state(stream, &events, Instant::MAX, Instant::MAX).state;
        if cached {
            self.states.keep(stream, &events, &state);
        }
        Ok(state)
    }

    /// Every stream name under a prefix, in bytewise order, read page by page.
    pub(crate) async fn all_streams_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<String>, AppError> {
        let mut all: Vec<String> = Vec::new();
        loop {
            let after = all.last().cloned().unwrap_or_default();
            let page = self
                .store
                .streams_with_prefix(prefix, &after, MAX_PAGE)
                .await?;
            let full = page.len() == MAX_PAGE as usize;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Events as the API shows them: the envelope, plus `occurred_at_display` (not hashed)
    /// with the instant in UTC, in the zone it was recorded in and, when the event names
    /// its recording site, in that site's zone.
    pub(crate) async fn presented(
        &self,
        events: &[Event],
    ) -> Result<Vec<PresentedEvent>, AppError> {
        let mut site_zones: HashMap<String, Option<String>> = HashMap::new();
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let instant = e.occurred_at.instant;
            let mut display = TimeDisplay {
                utc: instant.to_string(),
                local: check_zone("zone", &e.occurred_at.zone)
                    .ok()
                    .map(|zone| local_time(instant, &zone)),
                site_zone: None,
                site_local: None,
            };
            if let Some(site) = &e.site {
                if !site_zones.contains_key(site) {
                    let zone = self.site_time_zone(site).await?;
                    site_zones.insert(site.clone(), zone);
                }
                if let Some(Some(name)) = site_zones.get(site) {
                    if let Ok(zone) = check_zone("time_zone", name) {
                        display.site_zone = Some(name.clone());
                        display.site_local = Some(local_time(instant, &zone));
                    }
                }
            }
            out.push(PresentedEvent {
                event_id: e.event_id,
                event: e.to_json(),
                occurred_at_display: display,
                superseded_by: None,
                in_force: None,
            });
        }
        Ok(out)
    }
}

/// Lower-case hex of the SHA-256 of a text: how the ledger and the tables beside it name
/// a secret or a refused value without keeping it (token and session hashes, `phc_sha256`,
/// `value_sha256`).
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A page of events as of (valid_at, known_at).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct EventPage {
    pub valid_at: String,
    pub known_at: String,
    pub events: Vec<PresentedEvent>,
    /// The position to ask from for the next page (`None` on the last page).
    pub next_after_position: Option<u64>,
}

/// An event as the API shows it: the envelope as stored (a ledger document), with its
/// instant shown in UTC and local time (not hashed) and, where asked, what superseded it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct PresentedEvent {
    #[serde(skip)]
    pub event_id: Uuid,
    /// The event as recorded: envelope, payload, hashes, position.
    #[serde(flatten)]
    pub event: Value,
    pub occurred_at_display: TimeDisplay,
    /// The correction that superseded this event, when one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Uuid>,
    /// In a chain's timeline: whether the event is in force (not superseded, occurred by
    /// the chain's valid time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_force: Option<bool>,
}

/// An event's instant in UTC, in the zone it was recorded in, and in its site's zone.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct TimeDisplay {
    pub utc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_local: Option<String>,
}
