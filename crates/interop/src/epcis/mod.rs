//! GS1 EPCIS 2.0 in JSON/JSON-LD: the document rules of the GS1 JSON schema, the events a
//! document carries (each as received, with its CBV 2.0 Event Hash ID), and EPC Digital Links.

mod digital_link;
mod hash;
mod syntax;
mod validate;
mod vocab;

use serde::Serialize;
use serde_json::Value;

use autolog_domain::FieldError;

pub use digital_link::{canonical_digital_link, canonical_gs1_uri, digital_link};
pub use hash::{event_hash_id, hash_id_of_pre_hash, pre_hash, HASH_VERSION};
pub use syntax::{canonical_number, is_uri, DateTime};
pub use vocab::{
    expand_biz_step, expand_biz_transaction_type, expand_disposition, expand_error_reason,
    expand_source_dest_type, Vocabulary,
};

/// The five EPCIS 2.0 event types.
pub const EVENT_TYPES: &[&str] = &[
    "ObjectEvent",
    "AggregationEvent",
    "TransactionEvent",
    "TransformationEvent",
    "AssociationEvent",
];

/// A checked EPCIS document: its header fields and its events in document order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpcisDocument {
    /// `EPCISDocument`, or `EPCISQueryDocument` for a query's output.
    pub document_type: String,
    /// The document's `@context`, as received (namespace prefixes of user extensions).
    pub context: Value,
    pub schema_version: Option<String>,
    /// `creationDate` as received.
    pub creation_date: Option<String>,
    pub events: Vec<EpcisEvent>,
}

/// One event of a document, as received, with what Autolog reads from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpcisEvent {
    /// Position in the document's `eventList`, from 0.
    pub index: usize,
    /// `ObjectEvent`, `AggregationEvent`, `TransactionEvent`, `TransformationEvent` or `AssociationEvent`.
    pub event_type: String,
    /// The event exactly as received.
    pub raw: Value,
    /// CBV 2.0 Event Hash ID, `ni:///sha-256;<hex>?ver=CBV2.0`. An error declaration has the
    /// hash of the event it corrects: never deduplicate on it alone.
    pub hash_id: String,
    /// `eventTime` as received (RFC 3339).
    pub event_time: String,
    /// `eventTime` in microseconds since the Unix epoch, UTC.
    pub event_time_utc_micros: i64,
    /// `eventTimeZoneOffset` as received (`+01:00`).
    pub event_time_zone_offset: String,
    /// `action` (ADD, OBSERVE, DELETE) when the event has one.
    pub action: Option<String>,
    /// `bizStep` expanded to its full CBV URI (`https://ref.gs1.org/cbv/BizStep-shipping`).
    pub biz_step: Option<String>,
    /// `disposition` expanded to its full CBV URI (`https://ref.gs1.org/cbv/Disp-in_transit`).
    pub disposition: Option<String>,
    /// `readPoint.id` as received.
    pub read_point: Option<String>,
    /// `bizLocation.id` as received.
    pub biz_location: Option<String>,
    /// Every EPC the event names, as given and once each: epcList, childEPCs, parentID,
    /// inputEPCList, outputEPCList, then the epcClass of every quantity list.
    pub epcs: Vec<String>,
    /// `eventID` as received, when given.
    pub event_id: Option<String>,
    /// Whether the event carries an `errorDeclaration` (it retracts or corrects an earlier one).
    pub error_declaration: bool,
}

/// Checks an EPCIS 2.0 document (JSON/JSON-LD) against the rules of the GS1 EPCIS JSON schema
/// and reads its events. The first violation is returned with its JSON path
/// (`epcisBody.eventList[1].action`), the value and the rule.
pub fn parse_document(doc: &Value) -> Result<EpcisDocument, FieldError> {
    validate::document(doc)
}
