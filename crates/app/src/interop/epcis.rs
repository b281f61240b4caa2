//! GS1 EPCIS 2.0 capture and query (the REST binding's `/epcis/capture` and `/epcis/events`).
//!
//! **Capture** is synchronous: the document is checked whole against the EPCIS 2.0 rules
//! (`autolog_interop::epcis::parse_document`), then stored in one transaction (the standard's
//! `rollback` behaviour: all events or none) and answered `201` with the capture id and each
//! event's GS1 Event Hash ID; the standard's asynchronous `202` + capture job is not needed
//! when the answer is final. Each event is kept losslessly, its JSON text exactly as
//! received. The same document (SHA-256 of its RFC 8785 canonical JSON) captured again by the
//! same sender is stored once and answered with the first capture. The sender's own `id` and
//! `eventID`s are not used for this: documents in the wild (GS1's own examples) reuse them.
//! Events are never deduplicated by their hash id (an error declaration hashes like the
//! event it declares wrong).
//!
//! **Query** answers an `EPCISQueryDocument` with the captured events (each exactly as
//! received) and Autolog's own chain events as EPCIS events (see `epcis_export`), filtered
//! by the standard parameters and paged with an opaque keyset `nextPageToken`: the captured
//! events first (in capture order), then the chain events (in ledger order). Captured events
//! are visible to their sender and to network-wide ledger readers (a grant at `*` that reads
//! the ledger); chain events to those whose scope holds the chain.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use autolog_domain::access::{allowed_everywhere, chain_in_scope, Permission};
use autolog_domain::identifiers::Coi;
use autolog_domain::StreamId;
use autolog_domain::{Event, FieldError, Instant};
use autolog_interop::epcis::{parse_document, EpcisEvent};
use autolog_store::{
    EpcRole, EpcisCapture, EpcisQuery, EventQuery, NewEpcisEvent, StoredEpcisEvent, EPC_ROLES,
};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::interop::epcis_export::{
    export_chain_event, matches, references, Lookups, Superseded, AUTOLOG_EPCIS_NS,
    EXPORTED_EVENT_TYPES,
};
use crate::ledger::read::text;
use crate::{AppError, Autolog, Principal};

/// The largest EPCIS document the capture interface takes (16 MiB).
pub const MAX_EPCIS_BYTES: usize = 16 * 1024 * 1024;
/// The most events one capture may hold.
pub const MAX_EPCIS_EVENTS: usize = 10_000;
/// Events per query page unless `perPage` says otherwise.
pub const EPCIS_DEFAULT_PER_PAGE: u32 = 30;
/// The largest `perPage`.
pub const EPCIS_MAX_PER_PAGE: u32 = 500;
/// The standard EPCIS 2.0 JSON-LD context.
pub const EPCIS_CONTEXT: &str = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld";
/// The five standard event types (`GET /epcis/eventTypes`).
pub const EPCIS_EVENT_TYPES: &[&str] = autolog_interop::epcis::EVENT_TYPES;
/// The query parameters `GET /epcis/events` takes: the standard ones Autolog implements,
/// then Autolog's own (`autologEvents`: `captured`, `chain` or `all`, the default;
/// `autologCOI`: only that chain's events).
pub const EPCIS_QUERY_PARAMETERS: &[&str] = &[
    "eventType",
    "GE_eventTime",
    "LT_eventTime",
    "GE_recordTime",
    "LT_recordTime",
    "EQ_bizStep",
    "EQ_disposition",
    "EQ_readPoint",
    "EQ_bizLocation",
    "MATCH_epc",
    "MATCH_anyEPC",
    "perPage",
    "nextPageToken",
    "autologEvents",
    "autologCOI",
];
/// Ledger events looked at, at most, to fill one page of chain events: a query with
/// selective filters over a large ledger answers a shorter page and a `nextPageToken`
/// instead of scanning it all.
const LEDGER_SCAN_BUDGET: usize = 5_000;
const LEDGER_BATCH: u32 = 500;

/// What a capture did.
#[derive(Debug, Clone)]
pub struct EpcisCaptured {
    pub capture: EpcisCapture,
    pub events: Vec<StoredEpcisEvent>,
    /// True when the same sender had captured the same document before: nothing new was
    /// written and this is that first capture.
    pub duplicate: bool,
    /// What each event that Autolog's EPCIS profile maps to the chain became: recorded
    /// (with the alerts its reconciliation raised), refused, or unmapped.
    pub chain: Vec<Value>,
}

impl EpcisCaptured {
    /// The answer: the capture (in the shape of the standard's capture job) and each
    /// event's sender `eventID` (if any) and GS1 Event Hash ID, in document order.
    pub fn to_json(&self) -> Value {
        let recorded = self.capture.received_at.to_string();
        json!({
            "captureID": self.capture.capture_id.to_string(),
            "createdAt": recorded,
            "finishedAt": recorded,
            "running": false,
            "success": true,
            "captureErrorBehaviour": "rollback",
            "errors": [],
            "duplicate": self.duplicate,
            "eventCount": self.capture.event_count,
            "chain": self.chain,
            "events": self.events.iter().map(|e| json!({
                "index": e.index,
                "type": e.event_type,
                "eventID": e.event_id,
                "hashID": e.hash_id,
                "recordTime": e.record_time.to_string(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// One page of a query: the `EPCISQueryDocument` as JSON text (captured events exactly as
/// received) and the token of the next page, if there is one.
#[derive(Debug, Clone)]
pub struct EpcisQueryPage {
    pub document: String,
    pub next_page_token: Option<String>,
    pub event_count: usize,
}

fn invalid(
    field: impl Into<String>,
    value: impl Into<String>,
    rule: impl Into<String>,
) -> AppError {
    AppError::Invalid(FieldError::new(field, value, rule))
}

/// The refusal of a document over [`MAX_EPCIS_BYTES`].
pub fn epcis_too_large(len: usize) -> AppError {
    AppError::TooLarge(FieldError::new(
        "request",
        format!("{len} bytes"),
        format!(
            "an EPCIS document may be at most {MAX_EPCIS_BYTES} bytes; split it into several captures"
        ),
    ))
}

/// A CBV bizStep as a full URI: a CBV word (`shipping`) or CBV 1.x URN becomes its CBV 2.0
/// web URI; any other URI is kept.
pub fn full_biz_step(value: &str) -> String {
    autolog_interop::epcis::expand_biz_step(value)
}

/// A CBV disposition as a full URI (as [`full_biz_step`]).
pub fn full_disposition(value: &str) -> String {
    autolog_interop::epcis::expand_disposition(value)
}

/// An identifier as given, plus its canonical GS1 Digital Link when it has one (an EPC URN
/// and its Digital Link match each other).
pub(crate) fn with_canonical(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    if let Some(c) = autolog_interop::epcis::canonical_gs1_uri(value) {
        if c != value {
            out.push(c);
        }
    }
    out
}

/// A read point or business location as stored and compared: its canonical GS1 Digital
/// Link when it has one (an SGLN URN and its Digital Link are the same place), else as given.
pub(crate) fn location_key(value: &str) -> String {
    autolog_interop::epcis::canonical_gs1_uri(value).unwrap_or_else(|| value.to_string())
}

/// Every EPC an event names, with its role, as given and in canonical Digital Link form.
fn epcs_of(raw: &Value) -> Vec<(EpcRole, String)> {
    let mut out = Vec::new();
    for role in EPC_ROLES {
        let values: Vec<&str> = match raw.get(role.field()) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        for v in values {
            for form in with_canonical(v) {
                out.push((*role, form));
            }
        }
    }
    out
}

/// A member of a JSON object given as raw text, itself as raw text (`None` when absent).
fn member<'a>(object: &'a RawValue, key: &str) -> Result<Option<&'a RawValue>, AppError> {
    let map: HashMap<String, &'a RawValue> = serde_json::from_str(object.get())
        .map_err(|e| invalid("request", "(body)", format!("{e}")))?;
    Ok(map.get(key).copied())
}

/// Each event's JSON text as received, in document order; each must read back as the event
/// the rules checked (an object naming a member twice does not).
fn raw_events(text: &str, parsed: &[EpcisEvent]) -> Result<Vec<String>, AppError> {
    let unreadable = |e: serde_json::Error| invalid("request", "(body)", format!("{e}"));
    let root: &RawValue = serde_json::from_str(text).map_err(unreadable)?;
    let Some(body) = member(root, "epcisBody")? else {
        return Err(invalid(
            "epcisBody",
            "(absent)",
            "an EPCIS document has a body",
        ));
    };
    let (path, list) = match member(body, "eventList")? {
        Some(list) => ("epcisBody.eventList", Some(list)),
        None => {
            let results = member(body, "queryResults")?;
            let inner = match results {
                Some(r) => member(r, "resultsBody")?,
                None => None,
            };
            let list = match inner {
                Some(i) => member(i, "eventList")?,
                None => None,
            };
            ("epcisBody.queryResults.resultsBody.eventList", list)
        }
    };
    let Some(list) = list else {
        return Err(invalid(
            "epcisBody.eventList",
            "(absent)",
            "an EPCIS document lists its events",
        ));
    };
    let list: Vec<&RawValue> = serde_json::from_str(list.get()).map_err(unreadable)?;
    if list.len() != parsed.len() {
        return Err(invalid(
            path,
            format!("{} events", list.len()),
            format!("the rules read {} events", parsed.len()),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, (raw, event)) in list.iter().zip(parsed).enumerate() {
        let reread: Value = serde_json::from_str(raw.get()).map_err(unreadable)?;
        if reread != event.raw {
            return Err(invalid(
                format!("{path}[{i}]"),
                "(event)",
                "names a member twice: each key of a JSON object must be unique",
            ));
        }
        out.push(raw.get().to_string());
    }
    Ok(out)
}

/// Where a query page starts: after a captured event, or after a ledger position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Captured(i64),
    Chain(u64),
}

/// The query's parameters, checked.
#[derive(Debug)]
struct Params {
    filter: EpcisQuery,
    per_page: u32,
    chain: bool,
    coi: Option<String>,
    start: Cursor,
    fingerprint: String,
}

fn pipe_list(name: &str, value: &str) -> Result<Vec<String>, AppError> {
    let items: Vec<String> = value.split('|').map(|v| v.trim().to_string()).collect();
    if items.iter().any(String::is_empty) {
        return Err(invalid(
            name,
            value,
            "lists values separated by | (none of them empty)",
        ));
    }
    Ok(items)
}

fn uri_list(name: &str, value: &str) -> Result<Vec<String>, AppError> {
    let mut out = Vec::new();
    for item in pipe_list(name, value)? {
        if !autolog_interop::epcis::is_uri(&item) {
            return Err(invalid(
                name,
                &item,
                "must be a URI (or URIs separated by |)",
            ));
        }
        for form in with_canonical(&item) {
            if !out.contains(&form) {
                out.push(form);
            }
        }
    }
    Ok(out)
}

fn vocabulary_list(
    name: &str,
    value: &str,
    words: &[&str],
    expand: fn(&str) -> String,
    what: &str,
) -> Result<Vec<String>, AppError> {
    let mut out = Vec::new();
    for item in pipe_list(name, value)? {
        if !item.contains(':') && !words.contains(&item.as_str()) {
            return Err(invalid(
                name,
                &item,
                format!(
                    "is not a CBV 2.0 {what}: give a CBV word (e.g. {}) or a URI",
                    words.first().copied().unwrap_or("")
                ),
            ));
        }
        if item.contains(':') && !autolog_interop::epcis::is_uri(&item) {
            return Err(invalid(name, &item, "must be a CBV word or a URI"));
        }
        out.push(expand(&item));
    }
    Ok(out)
}

fn time_param(name: &str, value: &str) -> Result<i64, AppError> {
    // A `+` in a query string reads as a space: put the offset's sign back.
    let fixed = value.replace(' ', "+");
    Instant::parse_rfc3339(name, &fixed)
        .map(Instant::micros)
        .map_err(AppError::Invalid)
}

/// A token: version, phase, cursor and the fingerprint of the filters it pages through.
fn encode_token(cursor: Cursor, fingerprint: &str) -> String {
    let text = match cursor {
        Cursor::Captured(seq) => format!("1|c|{seq}|{fingerprint}"),
        Cursor::Chain(position) => format!("1|l|{position}|{fingerprint}"),
    };
    data_encoding::BASE64URL_NOPAD.encode(text.as_bytes())
}

fn decode_token(token: &str, fingerprint: &str) -> Result<Cursor, AppError> {
    let bad = |rule: &str| invalid("nextPageToken", token, rule);
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(token.as_bytes())
        .map_err(|_| bad("is not a token this server gave"))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("is not a token this server gave"))?;
    let parts: Vec<&str> = text.split('|').collect();
    let cursor = match parts.as_slice() {
        ["1", "c", n, _] => n.parse().ok().map(Cursor::Captured),
        ["1", "l", n, _] => n.parse().ok().map(Cursor::Chain),
        _ => None,
    }
    .ok_or_else(|| bad("is not a token this server gave"))?;
    if parts.get(3) != Some(&fingerprint) {
        return Err(bad(
            "belongs to a query with other parameters: send the same parameters with it",
        ));
    }
    Ok(cursor)
}

impl Params {
    fn parse(params: &HashMap<String, String>) -> Result<Params, AppError> {
        use autolog_interop::epcis::Vocabulary;
        let mut filter = EpcisQuery::default();
        let mut per_page = EPCIS_DEFAULT_PER_PAGE;
        let mut events = "all".to_string();
        let mut coi = None;
        let mut token = None;
        // Sorted, so that the fingerprint does not depend on the order sent.
        let sorted: BTreeMap<&String, &String> = params.iter().collect();
        for (name, value) in &sorted {
            let (name, value) = (name.as_str(), value.as_str());
            match name {
                "eventType" => {
                    let types = pipe_list(name, value)?;
                    if let Some(bad) = types
                        .iter()
                        .find(|t| !EPCIS_EVENT_TYPES.contains(&t.as_str()))
                    {
                        return Err(invalid(
                            name,
                            bad,
                            format!("must be one of {}", EPCIS_EVENT_TYPES.join(", ")),
                        ));
                    }
                    filter.event_types = types;
                }
                "GE_eventTime" => filter.ge_event_time_us = Some(time_param(name, value)?),
                "LT_eventTime" => filter.lt_event_time_us = Some(time_param(name, value)?),
                "GE_recordTime" => filter.ge_record_time_us = Some(time_param(name, value)?),
                "LT_recordTime" => filter.lt_record_time_us = Some(time_param(name, value)?),
                "EQ_bizStep" => {
                    filter.biz_steps = vocabulary_list(
                        name,
                        value,
                        Vocabulary::BizStep.words(),
                        full_biz_step,
                        "business step",
                    )?
                }
                "EQ_disposition" => {
                    filter.dispositions = vocabulary_list(
                        name,
                        value,
                        Vocabulary::Disposition.words(),
                        full_disposition,
                        "disposition",
                    )?
                }
                "EQ_readPoint" => filter.read_points = uri_list(name, value)?,
                "EQ_bizLocation" => filter.biz_locations = uri_list(name, value)?,
                "MATCH_epc" => filter.match_epc = uri_list(name, value)?,
                "MATCH_anyEPC" => filter.match_any_epc = uri_list(name, value)?,
                "perPage" => {
                    per_page = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=EPCIS_MAX_PER_PAGE).contains(n))
                        .ok_or_else(|| {
                            invalid(
                                name,
                                value,
                                format!("must be a whole number from 1 to {EPCIS_MAX_PER_PAGE}"),
                            )
                        })?;
                }
                "nextPageToken" => token = Some(value.to_string()),
                "autologEvents" => {
                    if !matches!(value, "captured" | "chain" | "all") {
                        return Err(invalid(name, value, "must be captured, chain or all"));
                    }
                    events = value.to_string();
                }
                "autologCOI" => {
                    let parsed = Coi::parse(name, value)?;
                    coi = Some(parsed.to_string());
                }
                _ => {
                    return Err(invalid(
                        name,
                        value,
                        format!(
                            "is not a query parameter Autolog implements; parameters are {}",
                            EPCIS_QUERY_PARAMETERS.join(", ")
                        ),
                    ))
                }
            }
        }
        if coi.is_some() && events == "captured" {
            return Err(invalid(
                "autologEvents",
                events,
                "autologCOI selects a chain's own events: leave autologEvents out or give chain",
            ));
        }
        let captured = coi.is_none() && events != "chain";
        let chain = events != "captured";
        let mut hasher = Sha256::new();
        for (name, value) in &sorted {
            if name.as_str() != "nextPageToken" && name.as_str() != "perPage" {
                hasher.update(format!("{name}={value}\n").as_bytes());
            }
        }
        let fingerprint = hex::encode(&hasher.finalize()[..8]);
        let first = if captured {
            Cursor::Captured(0)
        } else {
            Cursor::Chain(0)
        };
        let start = match token {
            Some(t) => decode_token(&t, &fingerprint)?,
            None => first,
        };
        Ok(Params {
            filter,
            per_page,
            chain,
            coi,
            start,
            fingerprint,
        })
    }
}

/// The `@context` of a query document: the EPCIS context, then every other context and
/// namespace prefix the answered events' documents declared (the first declaration of a
/// prefix wins), and Autolog's own prefix when chain events are in it.
fn merged_context<'a>(contexts: impl Iterator<Item = &'a str>, autolog: bool) -> Value {
    fn add(v: Value, urls: &mut Vec<String>, prefixes: &mut serde_json::Map<String, Value>) {
        match v {
            Value::String(u) if !urls.contains(&u) => urls.push(u),
            Value::Array(items) => {
                for item in items {
                    add(item, urls, prefixes);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    prefixes.entry(k).or_insert(v);
                }
            }
            _ => {}
        }
    }
    let mut urls = vec![EPCIS_CONTEXT.to_string()];
    let mut prefixes = serde_json::Map::new();
    if autolog {
        prefixes.insert("autolog".into(), json!(AUTOLOG_EPCIS_NS));
    }
    for c in contexts {
        if let Ok(v) = serde_json::from_str::<Value>(c) {
            add(v, &mut urls, &mut prefixes);
        }
    }
    let mut out: Vec<Value> = urls.into_iter().map(Value::String).collect();
    if !prefixes.is_empty() {
        out.push(Value::Object(prefixes));
    }
    Value::Array(out)
}

/// An EPCIS capture body, checked and cut into the events to store.
#[doc(hidden)]
#[derive(Debug)]
pub struct ParsedCapture {
    pub document: autolog_interop::epcis::EpcisDocument,
    /// Each event as stored: its JSON text exactly as received, and what the query reads.
    pub events: Vec<NewEpcisEvent>,
    /// SHA-256 of the document's RFC 8785 canonical form (same document, same sender: once).
    pub document_sha256: String,
}

/// Parses and checks an EPCIS capture body (`POST /epcis/capture`): UTF-8 JSON, a valid
/// EPCIS 2.0 document of at most [`MAX_EPCIS_EVENTS`] events, each event's text as
/// received. Pure: everything `epcis_capture` does before it stores (public for the fuzz
/// targets).
#[doc(hidden)]
pub fn parse_capture(body: &[u8]) -> Result<ParsedCapture, AppError> {
    if body.len() > MAX_EPCIS_BYTES {
        return Err(epcis_too_large(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        invalid(
            "request",
            format!("byte {}", e.valid_up_to()),
            "is not UTF-8 text",
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        invalid(
            "request",
            format!("line {} column {}", e.line(), e.column()),
            format!("is not well-formed JSON: {e}"),
        )
    })?;
    let document = parse_document(&value)?;
    if document.events.len() > MAX_EPCIS_EVENTS {
        return Err(AppError::TooLarge(FieldError::new(
            "epcisBody.eventList",
            format!("{} events", document.events.len()),
            format!(
                "a capture may hold at most {MAX_EPCIS_EVENTS} events; split it into several captures"
            ),
        )));
    }
    let raws = raw_events(text, &document.events)?;
    let context_json = value
        .get("@context")
        .map(Value::to_string)
        .unwrap_or_else(|| "null".into());
    let canonical = serde_json_canonicalizer::to_vec(&value)
        .map_err(|e| invalid("request", "(body)", format!("cannot be canonicalised: {e}")))?;
    let document_sha256 = hex::encode(Sha256::digest(&canonical));
    let events: Vec<NewEpcisEvent> = document
        .events
        .iter()
        .zip(raws)
        .enumerate()
        .map(|(i, (e, raw_json))| NewEpcisEvent {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            event_type: e.event_type.clone(),
            raw_json,
            context_json: context_json.clone(),
            event_id: e.event_id.clone(),
            hash_id: e.hash_id.clone(),
            event_time_us: e.event_time_utc_micros,
            biz_step: e.biz_step.clone(),
            disposition: e.disposition.clone(),
            read_point: e.read_point.as_deref().map(location_key),
            biz_location: e.biz_location.as_deref().map(location_key),
            error_declaration: e.error_declaration,
            epcs: epcs_of(&e.raw),
        })
        .collect();
    Ok(ParsedCapture {
        document,
        events,
        document_sha256,
    })
}

/// Checks the query parameters of `GET /epcis/events` as `epcis_query` does, without
/// running the query. Pure (public for the fuzz targets).
#[doc(hidden)]
pub fn check_epcis_query(params: &HashMap<String, String>) -> Result<(), AppError> {
    Params::parse(params).map(|_| ())
}

impl Autolog {
    /// Captures an EPCIS 2.0 document (JSON or JSON-LD) sent by `principal`: checked whole,
    /// stored whole (or not at all), each event exactly as received. A refusal names the
    /// event and field (`epcisBody.eventList[1].action`) and writes nothing.
    #[tracing::instrument(skip_all, fields(actor = %principal.actor, bytes = body.len()))]
    pub async fn epcis_capture(
        &self,
        principal: &Principal,
        body: &[u8],
    ) -> Result<EpcisCaptured, AppError> {
        let ParsedCapture {
            document,
            events,
            document_sha256,
        } = parse_capture(body)?;
        let capture = EpcisCapture {
            capture_id: self.new_event_id(),
            received_at: self.now(),
            actor: principal.actor.clone(),
            event_count: u32::try_from(events.len()).unwrap_or(u32::MAX),
            document_sha256,
        };
        let outcome = self
            .store
            .add_epcis_capture(&capture, &events, &self.store_clock())
            .await?;
        tracing::info!(
            capture_id = %outcome.capture.capture_id,
            events = outcome.events.len(),
            duplicate = outcome.duplicate,
            "EPCIS document captured"
        );
        // Run for a resend too: a mapped event's source id comes from its Event Hash ID, so
        // what was recorded is answered as a duplicate, and what was refused before (a
        // receipt that arrived before its shipment) is applied now.
        let stored: Vec<(&EpcisEvent, &StoredEpcisEvent)> =
            document.events.iter().zip(&outcome.events).collect();
        let chain = self
            .epcis_events_captured(principal, &outcome.capture, &stored)
            .await;
        Ok(EpcisCaptured {
            capture: outcome.capture,
            events: outcome.events,
            duplicate: outcome.duplicate,
            chain,
        })
    }

    /// Where captured EPCIS events meet the chain (`epcis_chain.rs`): called in the
    /// capture's request, once its events are stored (committed), with every event it
    /// stored, in document order, also for a resend of a document captured before. Each
    /// mapped event is recorded with a source id derived from its Event Hash ID, so a
    /// resend is a duplicate, never a second record; a refusal is reported per event, the
    /// capture stays stored.
    pub(crate) async fn epcis_events_captured(
        &self,
        principal: &Principal,
        capture: &EpcisCapture,
        events: &[(&EpcisEvent, &StoredEpcisEvent)],
    ) -> Vec<Value> {
        let outcomes = self.epcis_to_chain(principal, events).await;
        if !outcomes.is_empty() {
            tracing::info!(capture_id = %capture.capture_id, mapped = outcomes.len(), "EPCIS events met the chain");
        }
        outcomes
    }

    /// One page of the standard query over captured events and Autolog's chain events.
    /// An unknown parameter or a bad value is refused naming it.
    pub async fn epcis_query(
        &self,
        principal: &Principal,
        params: &HashMap<String, String>,
    ) -> Result<EpcisQueryPage, AppError> {
        let p = Params::parse(params)?;
        if let Some(coi) = &p.coi {
            match self.chain_sites(coi).await? {
                None => {
                    return Err(AppError::NotFound {
                        what: "chain",
                        id: coi.clone(),
                    })
                }
                Some(sites) => {
                    if !chain_in_scope(&principal.grants, Permission::ReadChains, &sites) {
                        return Err(AppError::Forbidden(FieldError::new(
                            "autologCOI",
                            coi,
                            format!("is not in the scope of {}'s sites", principal.actor),
                        )));
                    }
                }
            }
        }
        let network = allowed_everywhere(&principal.grants, Permission::ReadLedger);
        let now = self.now();
        let per_page = p.per_page as usize;
        let mut texts: Vec<String> = Vec::new();
        let mut contexts: Vec<String> = Vec::new();
        let mut exported_any = false;
        let mut next = None;
        let mut cursor = Some(p.start);
        while let Some(c) = cursor.take() {
            let remaining = per_page.saturating_sub(texts.len());
            if remaining == 0 {
                next = Some(c);
                break;
            }
            match c {
                Cursor::Captured(after) => {
                    let q = EpcisQuery {
                        actor: (!network).then(|| principal.actor.clone()),
                        after_seq: after,
                        limit: u32::try_from(remaining + 1).unwrap_or(u32::MAX),
                        ..p.filter.clone()
                    };
                    let rows = self.store.epcis_events(&q).await?;
                    let more = rows.len() > remaining;
                    let mut last = after;
                    for row in rows.into_iter().take(remaining) {
                        last = row.seq;
                        texts.push(row.raw_json);
                        contexts.push(row.context_json);
                    }
                    cursor = if more {
                        Some(Cursor::Captured(last))
                    } else if p.chain {
                        Some(Cursor::Chain(0))
                    } else {
                        None
                    };
                }
                Cursor::Chain(after) => {
                    let (events, resume) = self
                        .chain_page(principal, &p, after, remaining, now)
                        .await?;
                    exported_any |= !events.is_empty();
                    texts.extend(events.iter().map(Value::to_string));
                    next = resume;
                }
            }
        }
        let context = merged_context(contexts.iter().map(String::as_str), exported_any);
        let creation = serde_json::to_string(&now.to_string()).unwrap_or_default();
        let document = format!(
            "{{\"@context\":{context},\"type\":\"EPCISQueryDocument\",\"schemaVersion\":\"2.0\",\
             \"creationDate\":{creation},\"epcisBody\":{{\"queryResults\":{{\
             \"queryName\":\"SimpleEventQuery\",\"resultsBody\":{{\"eventList\":[{}]}}}}}}}}",
            texts.join(",")
        );
        Ok(EpcisQueryPage {
            document,
            next_page_token: next.map(|c| encode_token(c, &p.fingerprint)),
            event_count: texts.len(),
        })
    }

    /// Up to `wanted` chain events after ledger position `after` that pass the filters and
    /// the caller's scope, as EPCIS events; and where the next page starts, if anywhere.
    async fn chain_page(
        &self,
        principal: &Principal,
        p: &Params,
        after: u64,
        wanted: usize,
        now: Instant,
    ) -> Result<(Vec<Value>, Option<Cursor>), AppError> {
        let mut out = Vec::new();
        let mut position = after;
        let mut scanned = 0usize;
        let mut in_scope: HashMap<String, bool> = HashMap::new();
        let mut chains: HashMap<String, Vec<Event>> = HashMap::new();
        let mut lookups = Lookups::default();
        loop {
            let batch = self
                .store
                .list_events(&EventQuery {
                    stream: p.coi.as_ref().map(|c| StreamId::chain(c).into()),
                    valid_at: Instant::MAX,
                    known_at: now,
                    after_position: position,
                    limit: LEDGER_BATCH,
                })
                .await?;
            let exhausted = batch.len() < LEDGER_BATCH as usize;
            scanned += batch.len();
            let candidates: Vec<autolog_domain::Uuid> = batch
                .iter()
                .filter(|e| exported(e))
                .map(|e| e.event_id)
                .collect();
            let superseded = if candidates.is_empty() {
                HashMap::new()
            } else {
                self.store.superseded_by(&candidates, now).await?
            };
            for event in &batch {
                position = event.position;
                if !exported(event) {
                    continue;
                }
                let coi = event.stream.trim_start_matches("coi/").to_string();
                let visible = match in_scope.get(&coi) {
                    Some(v) => *v,
                    None => {
                        let v = match self.chain_sites(&coi).await? {
                            Some(sites) => {
                                chain_in_scope(&principal.grants, Permission::ReadChains, &sites)
                            }
                            None => false,
                        };
                        in_scope.insert(coi.clone(), v);
                        v
                    }
                };
                if !visible {
                    continue;
                }
                if !chains.contains_key(&coi) {
                    let events = self.store.stream_events(&event.stream, now).await?;
                    chains.insert(coi.clone(), events);
                }
                let chain = chains.get(&coi).map(Vec::as_slice).unwrap_or_default();
                self.look_up(event, &mut lookups).await?;
                let correction = superseded.get(&event.event_id).map(|by| Superseded {
                    by: *by,
                    at: chain
                        .iter()
                        .find(|e| e.event_id == *by)
                        .map_or(now, |e| e.recorded_at),
                });
                let Some(x) = export_chain_event(event, chain, &lookups, correction) else {
                    continue;
                };
                if matches(&p.filter, &x.summary) {
                    out.push(x.event);
                    if out.len() >= wanted {
                        return Ok((out, Some(Cursor::Chain(position))));
                    }
                }
            }
            if exhausted {
                return Ok((out, None));
            }
            if scanned >= LEDGER_SCAN_BUDGET {
                return Ok((out, Some(Cursor::Chain(position))));
            }
        }
    }

    /// Reads the GLNs and CBV bizSteps an event's mapping needs, once per query.
    async fn look_up(&self, event: &Event, lookups: &mut Lookups) -> Result<(), AppError> {
        let (sites, steps) = references(event);
        for site in sites {
            if let Entry::Vacant(slot) = lookups.site_gln.entry(site) {
                let state = self.current_state(&StreamId::site(slot.key())).await?;
                let gln = Some(text(&state, "gln").to_string()).filter(|g| !g.is_empty());
                slot.insert(gln);
            }
        }
        for step in steps {
            if let Entry::Vacant(slot) = lookups.step_biz.entry(step) {
                let state = self
                    .current_state(&StreamId::process_step(slot.key()))
                    .await?;
                let biz = Some(text(&state, "cbv_biz_step").to_string()).filter(|b| !b.is_empty());
                slot.insert(biz);
            }
        }
        Ok(())
    }
}

/// Whether a ledger event is a chain event exported as an EPCIS event.
fn exported(event: &Event) -> bool {
    event.stream.starts_with("coi/")
        && EXPORTED_EVENT_TYPES.contains(&event.body.event_type.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_are_checked_and_normalised() {
        let p = Params::parse(&params(&[
            ("EQ_bizStep", "shipping|urn:epcglobal:cbv:bizstep:receiving"),
            ("EQ_disposition", "in_transit"),
            ("GE_eventTime", "2026-03-01T00:00:00 01:00"),
            ("MATCH_epc", "urn:epc:id:sgtin:0614141.107346.2017"),
            ("perPage", "2"),
        ]))
        .expect("valid");
        assert_eq!(
            p.filter.biz_steps,
            vec![
                "https://ref.gs1.org/cbv/BizStep-shipping",
                "https://ref.gs1.org/cbv/BizStep-receiving"
            ]
        );
        assert_eq!(
            p.filter.dispositions,
            vec!["https://ref.gs1.org/cbv/Disp-in_transit"]
        );
        assert_eq!(p.filter.ge_event_time_us, Some(1_772_319_600_000_000));
        assert_eq!(
            p.filter.match_epc,
            vec![
                "urn:epc:id:sgtin:0614141.107346.2017",
                "https://id.gs1.org/01/10614141073464/21/2017"
            ]
        );
        assert_eq!(p.per_page, 2);
        assert_eq!(p.start, Cursor::Captured(0));

        for (name, value) in [
            ("EQ_bizStep", "transforming"),
            ("EQ_disposition", "in_transport"),
            ("eventType", "QuantityEvent"),
            ("GE_eventTime", "22-07-2026"),
            ("perPage", "0"),
            ("perPage", "501"),
            ("MATCH_epc", "not a uri"),
            ("nextPageToken", "garbage"),
            ("autologEvents", "some"),
            ("autologCOI", "CH123"),
            ("EQ_action", "ADD"),
        ] {
            match Params::parse(&params(&[(name, value)])) {
                Err(AppError::Invalid(f)) => assert_eq!(f.field, name, "{name}={value}: {f}"),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_token_pages_only_the_query_it_came_from() {
        let first = Params::parse(&params(&[("EQ_bizStep", "shipping")])).expect("valid");
        let token = encode_token(Cursor::Captured(7), &first.fingerprint);
        let again = Params::parse(&params(&[
            ("EQ_bizStep", "shipping"),
            ("nextPageToken", &token),
            ("perPage", "5"),
        ]))
        .expect("same query");
        assert_eq!(again.start, Cursor::Captured(7));
        match Params::parse(&params(&[
            ("EQ_bizStep", "receiving"),
            ("nextPageToken", &token),
        ])) {
            Err(AppError::Invalid(f)) => assert_eq!(f.field, "nextPageToken"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_context_gathers_every_documents_namespaces() {
        let c = merged_context(
            [
                r#"["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",{"example":"http://ns.example.com/epcis/"}]"#,
                r#"["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",{"example":"http://other/","ext":"http://ext/"}]"#,
            ]
            .into_iter(),
            true,
        );
        assert_eq!(
            c,
            json!([EPCIS_CONTEXT, {"autolog": AUTOLOG_EPCIS_NS, "example": "http://ns.example.com/epcis/", "ext": "http://ext/"}])
        );
    }
}
