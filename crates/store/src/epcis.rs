//! GS1 EPCIS 2.0 events captured through the EPCIS interface, kept beside the ledger (they
//! are partners' observations, not Autolog's facts) and losslessly: each event's JSON text
//! exactly as received, with the fields the standard queries filter on beside it.
//!
//! The SQL both backends run is built here, once, so that the filters mean the same on
//! SQLite and PostgreSQL; each backend binds the values and maps its rows.

use autolog_domain::{FieldError, Instant, Uuid};

use crate::row::{instant, unreadable, uuid};
use crate::StoreError;

/// Where an EPC appears in an event. `MATCH_epc` looks at `epcList` and `childEPCs`;
/// `MATCH_anyEPC` at every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EpcRole {
    /// `epcList` (ObjectEvent, TransactionEvent)
    Epc,
    /// `childEPCs` (AggregationEvent, AssociationEvent)
    Child,
    /// `parentID` (AggregationEvent, TransactionEvent, AssociationEvent)
    Parent,
    /// `inputEPCList` (TransformationEvent)
    Input,
    /// `outputEPCList` (TransformationEvent)
    Output,
}

/// Every role, in their stored order.
pub const EPC_ROLES: &[EpcRole] = &[
    EpcRole::Epc,
    EpcRole::Child,
    EpcRole::Parent,
    EpcRole::Input,
    EpcRole::Output,
];

impl EpcRole {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            EpcRole::Epc => "epc",
            EpcRole::Child => "child",
            EpcRole::Parent => "parent",
            EpcRole::Input => "input",
            EpcRole::Output => "output",
        }
    }

    pub fn parse(text: &str) -> Option<EpcRole> {
        EPC_ROLES.iter().copied().find(|r| r.as_str() == text)
    }

    /// The event field an EPC of this role is listed in.
    pub fn field(self) -> &'static str {
        match self {
            EpcRole::Epc => "epcList",
            EpcRole::Child => "childEPCs",
            EpcRole::Parent => "parentID",
            EpcRole::Input => "inputEPCList",
            EpcRole::Output => "outputEPCList",
        }
    }

    /// Whether `MATCH_epc` looks at this role (it reads `epcList` and `childEPCs`).
    pub fn matched_by_match_epc(self) -> bool {
        matches!(self, EpcRole::Epc | EpcRole::Child)
    }
}

/// One capture request: one EPCISDocument, stored whole or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpcisCapture {
    pub capture_id: Uuid,
    /// The capture's record time (every event of the capture has it as `recordTime`).
    /// [`crate::Store::add_epcis_capture`] sets it under its lock; what the caller gives
    /// is ignored.
    pub received_at: Instant,
    /// Who captured it: the authenticated sender (`person/<id>` or `system/<id>`).
    pub actor: String,
    pub event_count: u32,
    /// Lower-case hex SHA-256 of the document's RFC 8785 canonical JSON: the same
    /// document captured again by the same sender is answered with the first capture.
    pub document_sha256: String,
}

/// One event of a capture, as the store is asked to keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEpcisEvent {
    /// Its position in the document's `eventList`, from 0.
    pub index: u32,
    /// `ObjectEvent`, `AggregationEvent`, ...
    pub event_type: String,
    /// The event's JSON text exactly as received.
    pub raw_json: String,
    /// The `@context` of the document it came in, as JSON text: the namespaces its
    /// extension fields use, for the query document that answers it.
    pub context_json: String,
    /// The sender's `eventID`, if it gave one (not unique: an example may reuse one).
    pub event_id: Option<String>,
    /// The GS1 Event Hash ID (`ni:///sha-256;...?ver=CBV2.0`). Not unique: an error
    /// declaration hashes like the event it declares wrong.
    pub hash_id: String,
    /// `eventTime` in microseconds UTC.
    pub event_time_us: i64,
    /// Full CBV URIs (or the sender's own URIs).
    pub biz_step: Option<String>,
    pub disposition: Option<String>,
    pub read_point: Option<String>,
    pub biz_location: Option<String>,
    pub error_declaration: bool,
    /// Every EPC the event names, with where it names it (pairs repeated are kept once).
    pub epcs: Vec<(EpcRole, String)>,
}

/// A stored EPCIS event, as the query answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEpcisEvent {
    /// The global order of capture, from 1: the keyset of paging.
    pub seq: i64,
    pub capture_id: Uuid,
    pub index: u32,
    pub event_type: String,
    /// The event's JSON text exactly as received.
    pub raw_json: String,
    /// The `@context` of the document it came in, as JSON text.
    pub context_json: String,
    pub event_id: Option<String>,
    pub hash_id: String,
    pub event_time_us: i64,
    pub record_time: Instant,
    pub biz_step: Option<String>,
    pub disposition: Option<String>,
    pub read_point: Option<String>,
    pub biz_location: Option<String>,
    /// Who captured it.
    pub actor: String,
    pub error_declaration: bool,
}

/// What a capture did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOutcome {
    /// The capture stored now, or the first capture of the same document by the same
    /// sender.
    pub capture: EpcisCapture,
    /// Its events, in document order.
    pub events: Vec<StoredEpcisEvent>,
    /// True when the document had been captured before: nothing new was written.
    pub duplicate: bool,
}

/// A filter over stored EPCIS events; every list given (non-empty) must match one of its
/// values. Results come in `seq` order, after `after_seq`, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpcisQuery {
    /// Only events captured by this sender (`None`: by anyone).
    pub actor: Option<String>,
    pub capture_id: Option<Uuid>,
    pub event_types: Vec<String>,
    pub ge_event_time_us: Option<i64>,
    pub lt_event_time_us: Option<i64>,
    pub ge_record_time_us: Option<i64>,
    pub lt_record_time_us: Option<i64>,
    pub biz_steps: Vec<String>,
    pub dispositions: Vec<String>,
    pub read_points: Vec<String>,
    pub biz_locations: Vec<String>,
    /// EPCs named in `epcList` or `childEPCs`.
    pub match_epc: Vec<String>,
    /// EPCs named anywhere (`epcList`, `childEPCs`, `parentID`, `inputEPCList`, `outputEPCList`).
    pub match_any_epc: Vec<String>,
    /// Keyset: only events with `seq` greater than this (0: from the start).
    pub after_seq: i64,
    pub limit: u32,
}

/// A stored EPCIS event as read from its columns, before checking.
#[derive(Debug, Clone)]
pub struct EpcisEventRow {
    pub seq: i64,
    pub capture_id: String,
    pub doc_index: i64,
    pub event_type: String,
    pub raw_json: String,
    pub context_json: String,
    pub event_id: Option<String>,
    pub hash_id: String,
    pub event_time_us: i64,
    pub record_time_us: i64,
    pub biz_step: Option<String>,
    pub disposition: Option<String>,
    pub read_point: Option<String>,
    pub biz_location: Option<String>,
    pub actor: String,
    pub error_declaration: bool,
}

impl EpcisEventRow {
    pub fn into_event(self) -> Result<StoredEpcisEvent, StoreError> {
        let key = self.seq.to_string();
        let bad = |detail: String| unreadable("epcis_events", &key, detail);
        Ok(StoredEpcisEvent {
            capture_id: uuid("capture_id", &self.capture_id).map_err(bad)?,
            index: u32::try_from(self.doc_index)
                .map_err(|_| bad(format!("doc_index {}", self.doc_index)))?,
            record_time: instant("record_time_us", self.record_time_us).map_err(bad)?,
            seq: self.seq,
            event_type: self.event_type,
            raw_json: self.raw_json,
            context_json: self.context_json,
            event_id: self.event_id,
            hash_id: self.hash_id,
            event_time_us: self.event_time_us,
            biz_step: self.biz_step,
            disposition: self.disposition,
            read_point: self.read_point,
            biz_location: self.biz_location,
            actor: self.actor,
            error_declaration: self.error_declaration,
        })
    }
}

/// A stored capture as read from its columns, before checking.
#[derive(Debug, Clone)]
pub struct EpcisCaptureRow {
    pub capture_id: String,
    pub received_at_us: i64,
    pub actor: String,
    pub event_count: i64,
    pub document_sha256: String,
}

impl EpcisCaptureRow {
    pub fn into_capture(self) -> Result<EpcisCapture, StoreError> {
        let key = self.capture_id.clone();
        let bad = |detail: String| unreadable("epcis_captures", &key, detail);
        Ok(EpcisCapture {
            capture_id: uuid("capture_id", &self.capture_id).map_err(bad)?,
            received_at: instant("received_at_us", self.received_at_us).map_err(bad)?,
            event_count: u32::try_from(self.event_count)
                .map_err(|_| bad(format!("event_count {}", self.event_count)))?,
            actor: self.actor,
            document_sha256: self.document_sha256,
        })
    }
}

/// The `epcis_captures` columns both backends select, in this order.
pub(crate) const CAPTURE_COLUMNS: &str =
    "capture_id, received_at_us, actor, event_count, document_sha256";

/// Checks a capture before anything is written: the events are numbered 0, 1, ... in
/// order and their count is the capture's; each event's JSON text and hash id are given.
pub fn check_epcis_capture(
    capture: &EpcisCapture,
    events: &[NewEpcisEvent],
) -> Result<(), StoreError> {
    let refuse = |field: String, value: String, rule: &str| {
        Err(StoreError::Rejected(FieldError::new(field, value, rule)))
    };
    if usize::try_from(capture.event_count).ok() != Some(events.len()) {
        return refuse(
            "event_count".into(),
            capture.event_count.to_string(),
            "must equal the number of events given",
        );
    }
    if capture.actor.is_empty() {
        return refuse(
            "actor".into(),
            String::new(),
            "names who captured the events",
        );
    }
    if capture.document_sha256.len() != 64
        || !capture
            .document_sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return refuse(
            "document_sha256".into(),
            capture.document_sha256.clone(),
            "must be 64 lower-case hex digits",
        );
    }
    for (i, e) in events.iter().enumerate() {
        if usize::try_from(e.index).ok() != Some(i) {
            return refuse(
                format!("events[{i}].index"),
                e.index.to_string(),
                "events are numbered 0, 1, ... in document order",
            );
        }
        if e.raw_json.is_empty() {
            return refuse(
                format!("events[{i}].raw_json"),
                String::new(),
                "is the event's JSON text as received",
            );
        }
        if e.hash_id.is_empty() {
            return refuse(
                format!("events[{i}].hash_id"),
                String::new(),
                "is the event's GS1 Event Hash ID",
            );
        }
        if e.event_type.is_empty() {
            return refuse(
                format!("events[{i}].event_type"),
                String::new(),
                "names the event's type",
            );
        }
    }
    Ok(())
}

/// The EPC rows of an event: each (role, EPC) pair once, in a stable order.
pub fn epcis_epc_rows(event: &NewEpcisEvent) -> Vec<(EpcRole, String)> {
    let mut rows = event.epcs.clone();
    rows.sort();
    rows.dedup();
    rows
}

/// The refusal of a capture id already stored.
pub fn duplicate_capture(capture_id: Uuid) -> StoreError {
    StoreError::Rejected(FieldError::new(
        "capture_id",
        capture_id.to_string(),
        "a capture with this id is already stored",
    ))
}

/// The record time a capture gets: the clock, but never earlier than the last capture's
/// (so that record time never goes back as `seq` goes up).
pub fn capture_record_time(clock: Instant, last: Option<i64>) -> Instant {
    match last.and_then(|l| Instant::from_micros(l).ok()) {
        Some(last) if last > clock => last,
        _ => clock,
    }
}
