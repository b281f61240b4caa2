//! Autolog's own chain events in the shape of GS1 EPCIS 2.0 ObjectEvents, so that a partner
//! can pull a chain's custody history through the standard query. Pure: the caller looks up
//! the reference data (site GLNs, process steps' CBV bizSteps) first.
//!
//! | Autolog event | action | bizStep | disposition | EPCs | readPoint / bizLocation |
//! |---|---|---|---|---|---|
//! | `chain.collected` | ADD | commissioning | active | the DINs | collection site |
//! | `batch.units_produced` | ADD | commissioning | active | the final units | site |
//! | `custody.handed_off` | OBSERVE | shipping | in_transit | the units | sending site (plus `sourceList`/`destinationList`) |
//! | `custody.received` | OBSERVE | receiving | in_progress | the labels scanned | receiving site |
//! | `chain.step_performed` | OBSERVE | the process step's CBV bizStep | in_progress | the chain's bags and units so far | site |
//! | `chain.released` | OBSERVE | inspecting | conformant | the released units | site |
//! | `chain.bedside_verified` | OBSERVE | inspecting | – | the unit scanned | site |
//! | `chain.administered` | OBSERVE | the step's bizStep (dispensing) | dispensed | the unit | site |
//!
//! EPCs: GS1 units as GS1 Digital Link URIs (`https://id.gs1.org/01/<GTIN>/21/<serial>`,
//! `https://id.gs1.org/00/<SSCC>`); ISBT 128 DINs, final units and COIs as
//! `urn:isbt128:din:<DIN>`, `urn:isbt128:unit:<unit>` and `urn:isbt128:coi:<COI>` (with
//! their check characters; ICCBBA publishes no URI form, so this is Autolog's, kept in
//! [`isbt128_uri`]). Sites: SGLN Digital Link `https://id.gs1.org/414/<GLN>` when the site
//! has a GLN. `eventID` is `urn:uuid:<Autolog event id>`; `eventTime` and
//! `eventTimeZoneOffset` are the event's `occurred_at` in its recorded offset; `recordTime`
//! its `recorded_at`. A superseded event carries an `errorDeclaration` naming its correction.
//! Extension fields (namespace [`AUTOLOG_EPCIS_NS`], prefix `autolog`): `autolog:coi`,
//! `autolog:eventType`, `autolog:site`.

use std::collections::HashMap;

use autolog_domain::identifiers::scan::{parse_scan, Scanned};
use autolog_domain::ledger::time::Offset;
use autolog_domain::{Event, Instant, OccurredAt};
use autolog_store::{EpcRole, EpcisQuery};
use serde_json::{json, Map, Value};

use crate::ledger::read::text;

/// The JSON-LD namespace of Autolog's extension fields in exported events (prefix `autolog`).
pub const AUTOLOG_EPCIS_NS: &str = "https://autolog.dev/epcis/";

/// The Autolog event types exported as EPCIS events.
pub const EXPORTED_EVENT_TYPES: &[&str] = &[
    "chain.collected",
    "batch.units_produced",
    "custody.handed_off",
    "custody.received",
    "chain.step_performed",
    "chain.released",
    "chain.bedside_verified",
    "chain.administered",
];

/// How one event maps: action, bizStep (CBV word), disposition (CBV word), the units it
/// names, its site, and whether that site is also its bizLocation.
type Mapping = (
    &'static str,
    Option<String>,
    Option<&'static str>,
    Vec<String>,
    Option<String>,
    bool,
);

/// Reference data the mapping reads: each site's GLN and each process step's CBV bizStep
/// (`None`: looked up, not there).
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    pub site_gln: HashMap<String, Option<String>>,
    pub step_biz: HashMap<String, Option<String>>,
}

/// What the query filters an exported event on (full CBV URIs, EPCs by role).
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub event_time_us: i64,
    pub record_time_us: i64,
    pub biz_step: Option<String>,
    pub disposition: Option<String>,
    pub read_point: Option<String>,
    pub biz_location: Option<String>,
    pub epcs: Vec<(EpcRole, String)>,
}

/// One chain event as an EPCIS event.
#[derive(Debug, Clone)]
pub(crate) struct Exported {
    pub event: Value,
    pub summary: Summary,
}

/// The correction that superseded an event: its id and when it was recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Superseded {
    pub by: autolog_domain::Uuid,
    pub at: Instant,
}

/// The sites and process steps an event's mapping reads.
pub(crate) fn references(event: &Event) -> (Vec<String>, Vec<String>) {
    let data = &event.body.data;
    let mut sites = Vec::new();
    for field in [
        "collection_site_id",
        "from_site_id",
        "destination_site_id",
        "receiving_site_id",
        "site_id",
    ] {
        let s = text(data, field);
        if !s.is_empty() {
            sites.push(s.to_string());
        }
    }
    if let Some(s) = &event.site {
        sites.push(s.clone());
    }
    let step = text(data, "step_code");
    let steps = if step.is_empty() {
        Vec::new()
    } else {
        vec![step.to_string()]
    };
    (sites, steps)
}

/// The URI of an ISBT 128 identifier: `kind` is `din`, `unit` or `coi`.
pub fn isbt128_uri(kind: &str, id: &str) -> String {
    format!("urn:isbt128:{kind}:{id}")
}

/// The SGLN Digital Link of a site's GLN.
pub fn sgln_uri(gln: &str) -> String {
    format!("https://id.gs1.org/414/{gln}")
}

/// The EPC URI of a unit identifier as Autolog records it (a DIN, a final unit, a GS1
/// element string); `None` when it is none of those.
pub fn unit_uri(unit: &str) -> Option<String> {
    match parse_scan("unit", unit).ok()? {
        Scanned::Din { din, .. } => Some(isbt128_uri("din", &din.to_string())),
        Scanned::Unit(u) => Some(isbt128_uri("unit", &u.to_string())),
        Scanned::Gs1(e) => match (&e.gtin, &e.serial, &e.sscc, &e.lot) {
            (Some(gtin), Some(serial), _, _) => Some(format!(
                "https://id.gs1.org/01/{gtin}/21/{}",
                percent_encode(serial)
            )),
            (_, _, Some(sscc), _) => Some(format!("https://id.gs1.org/00/{sscc}")),
            (Some(gtin), None, None, Some(lot)) => Some(format!(
                "https://id.gs1.org/01/{gtin}/10/{}",
                percent_encode(lot)
            )),
            _ => None,
        },
    }
}

/// Percent-encodes everything but the URI unreserved characters (GS1 Digital Link values).
fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An EPCIS `dateTime` and `eventTimeZoneOffset` for a valid time: milliseconds unless the
/// instant has microseconds, in the recorded offset (whole minutes, as EPCIS requires).
pub(crate) fn epcis_time(occurred: &OccurredAt) -> (String, String) {
    let seconds = occurred.offset.0 - occurred.offset.0 % 60;
    let offset = jiff::tz::Offset::from_seconds(seconds).unwrap_or(jiff::tz::Offset::UTC);
    let local = occurred
        .instant
        .timestamp()
        .to_zoned(jiff::tz::TimeZone::fixed(offset));
    let micros = occurred.instant.micros().rem_euclid(1_000_000);
    let fraction = if micros % 1000 == 0 {
        format!("{:03}", micros / 1000)
    } else {
        format!("{micros:06}")
    };
    let zone = Offset(seconds).to_string();
    (
        format!("{}.{fraction}{zone}", local.strftime("%Y-%m-%dT%H:%M:%S")),
        zone,
    )
}

/// The units a chain holds before `position`: its bags' DINs and its final units.
fn units_before(chain: &[Event], position: u64) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    for e in chain.iter().filter(|e| e.position < position) {
        let field = match e.body.event_type.as_str() {
            "chain.collected" => "dins",
            "batch.units_produced" => "units",
            _ => continue,
        };
        for u in list(&e.body.data, field) {
            if !units.contains(&u) {
                units.push(u);
            }
        }
    }
    units
}

fn list(data: &Value, field: &str) -> Vec<String> {
    data.get(field)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A chain event (stream `coi/<COI>`) as an EPCIS ObjectEvent; `None` for a type that is
/// not exported. `chain` is the chain's events (for the units it holds at that point).
/// How a chain event maps to an EPCIS ObjectEvent: action, bizStep, disposition, the units
/// it names, its site and whether the site is also its business location. `None` for an
/// event type the export leaves out.
fn mapping_of(event: &Event, chain: &[Event], lookups: &Lookups) -> Option<Mapping> {
    let data = &event.body.data;
    let event_type = event.body.event_type.as_str();
    let step_biz = || {
        lookups
            .step_biz
            .get(text(data, "step_code"))
            .cloned()
            .flatten()
    };
    let field_site = |field: &str| {
        let s = text(data, field);
        if s.is_empty() {
            event.site.clone()
        } else {
            Some(s.to_string())
        }
    };
    let mapping: Mapping = match event_type {
        "chain.collected" => (
            "ADD",
            Some("commissioning".into()),
            Some("active"),
            list(data, "dins"),
            field_site("collection_site_id"),
            true,
        ),
        "batch.units_produced" => (
            "ADD",
            Some("commissioning".into()),
            Some("active"),
            list(data, "units"),
            field_site("site_id"),
            true,
        ),
        "custody.handed_off" => (
            "OBSERVE",
            Some("shipping".into()),
            Some("in_transit"),
            list(data, "units"),
            field_site("from_site_id"),
            false,
        ),
        "custody.received" => {
            let scanned = data
                .get("scanned_labels")
                .and_then(Value::as_array)
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|l| l.get("unit").and_then(Value::as_str))
                        .filter_map(|u| parse_scan("unit", u).ok())
                        .map(|s| s.unit_id())
                        .collect()
                })
                .unwrap_or_default();
            (
                "OBSERVE",
                Some("receiving".into()),
                Some("in_progress"),
                scanned,
                field_site("receiving_site_id"),
                true,
            )
        }
        "chain.step_performed" => (
            "OBSERVE",
            step_biz(),
            Some("in_progress"),
            units_before(chain, event.position),
            field_site("site_id"),
            true,
        ),
        "chain.released" => (
            "OBSERVE",
            Some("inspecting".into()),
            Some("conformant"),
            list(data, "units"),
            field_site("site_id"),
            true,
        ),
        "chain.bedside_verified" => (
            "OBSERVE",
            Some("inspecting".into()),
            None,
            parse_scan("unit_scan", text(data, "unit_scan"))
                .map(|s| vec![s.unit_id()])
                .unwrap_or_default(),
            field_site("site_id"),
            true,
        ),
        "chain.administered" => (
            "OBSERVE",
            step_biz().or_else(|| Some("dispensing".into())),
            Some("dispensed"),
            vec![text(data, "unit").to_string()],
            field_site("site_id"),
            true,
        ),
        _ => return None,
    };
    Some(mapping)
}

pub(crate) fn export_chain_event(
    event: &Event,
    chain: &[Event],
    lookups: &Lookups,
    superseded: Option<Superseded>,
) -> Option<Exported> {
    let coi = event.stream.strip_prefix("coi/")?;
    let data = &event.body.data;
    let event_type = event.body.event_type.as_str();
    let (action, biz_step, disposition, units, site, located) = mapping_of(event, chain, lookups)?;
    let mut epcs: Vec<String> = Vec::new();
    for u in &units {
        if let Some(uri) = unit_uri(u) {
            if !epcs.contains(&uri) {
                epcs.push(uri);
            }
        }
    }
    if epcs.is_empty() {
        // An ObjectEvent names at least one object: the chain itself, by its COI.
        epcs.push(isbt128_uri("coi", coi));
    }
    let gln_of = |site: &str| {
        lookups
            .site_gln
            .get(site)
            .cloned()
            .flatten()
            .map(|g| sgln_uri(&g))
    };
    let read_point = site.as_deref().and_then(gln_of);
    let biz_location = if located { read_point.clone() } else { None };
    let (event_time, offset) = epcis_time(&event.occurred_at);
    let mut out = Map::new();
    out.insert("type".into(), json!("ObjectEvent"));
    out.insert(
        "eventID".into(),
        json!(format!("urn:uuid:{}", event.event_id)),
    );
    out.insert("eventTime".into(), json!(event_time));
    out.insert("eventTimeZoneOffset".into(), json!(offset));
    out.insert("recordTime".into(), json!(event.recorded_at.to_string()));
    if let Some(s) = superseded {
        out.insert(
            "errorDeclaration".into(),
            json!({
                "declarationTime": s.at.to_string(),
                "reason": "incorrect_data",
                "correctiveEventIDs": [format!("urn:uuid:{}", s.by)],
            }),
        );
    }
    out.insert("epcList".into(), json!(epcs));
    out.insert("action".into(), json!(action));
    if let Some(b) = &biz_step {
        out.insert("bizStep".into(), json!(b));
    }
    if let Some(d) = disposition {
        out.insert("disposition".into(), json!(d));
    }
    if let Some(r) = &read_point {
        out.insert("readPoint".into(), json!({"id": r}));
    }
    if let Some(l) = &biz_location {
        out.insert("bizLocation".into(), json!({"id": l}));
    }
    if event_type == "custody.handed_off" {
        if let Some(from) = read_point.as_deref() {
            out.insert(
                "sourceList".into(),
                json!([{"type": "location", "source": from}]),
            );
        }
        if let Some(to) = gln_of(text(data, "destination_site_id")) {
            out.insert(
                "destinationList".into(),
                json!([{"type": "location", "destination": to}]),
            );
        }
    }
    out.insert("autolog:coi".into(), json!(coi));
    out.insert("autolog:eventType".into(), json!(event_type));
    if let Some(s) = &site {
        out.insert("autolog:site".into(), json!(s));
    }
    let summary = Summary {
        event_time_us: event.occurred_at.instant.micros(),
        record_time_us: event.recorded_at.micros(),
        biz_step: biz_step
            .as_deref()
            .map(crate::interop::epcis::full_biz_step),
        disposition: disposition.map(crate::interop::epcis::full_disposition),
        read_point: read_point
            .as_deref()
            .map(crate::interop::epcis::location_key),
        biz_location: biz_location
            .as_deref()
            .map(crate::interop::epcis::location_key),
        epcs: epcs
            .iter()
            .flat_map(|e| crate::interop::epcis::with_canonical(e))
            .map(|e| (EpcRole::Epc, e))
            .collect(),
    };
    Some(Exported {
        event: Value::Object(out),
        summary,
    })
}

/// Whether an exported event passes the query's filters (the same filters the store applies
/// to captured events).
pub(crate) fn matches(q: &EpcisQuery, s: &Summary) -> bool {
    let one_of = |values: &[String], v: &Option<String>| {
        values.is_empty() || v.as_ref().is_some_and(|v| values.contains(v))
    };
    (q.event_types.is_empty() || q.event_types.iter().any(|t| t == "ObjectEvent"))
        && q.ge_event_time_us.is_none_or(|t| s.event_time_us >= t)
        && q.lt_event_time_us.is_none_or(|t| s.event_time_us < t)
        && q.ge_record_time_us.is_none_or(|t| s.record_time_us >= t)
        && q.lt_record_time_us.is_none_or(|t| s.record_time_us < t)
        && one_of(&q.biz_steps, &s.biz_step)
        && one_of(&q.dispositions, &s.disposition)
        && one_of(&q.read_points, &s.read_point)
        && one_of(&q.biz_locations, &s.biz_location)
        && (q.match_epc.is_empty()
            || s.epcs
                .iter()
                .any(|(r, e)| r.matched_by_match_epc() && q.match_epc.contains(e)))
        && (q.match_any_epc.is_empty() || s.epcs.iter().any(|(_, e)| q.match_any_epc.contains(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_become_uris() {
        assert_eq!(
            unit_uri("(01)09506000134352(21)S/1").as_deref(),
            Some("https://id.gs1.org/01/09506000134352/21/S%2F1")
        );
        assert_eq!(
            unit_uri("(00)106141411234567897").as_deref(),
            Some("https://id.gs1.org/00/106141411234567897")
        );
        assert_eq!(unit_uri("not a unit"), None);
    }

    #[test]
    fn times_keep_the_recorded_offset() {
        let t = OccurredAt::parse("t", "2026-03-01T09:30:00.250+01:00[Europe/Paris]").expect("t");
        assert_eq!(
            epcis_time(&t),
            ("2026-03-01T09:30:00.250+01:00".into(), "+01:00".into())
        );
        let t = OccurredAt::parse("t", "2026-03-01T09:30:00.000001-05:00[America/New_York]")
            .expect("t");
        assert_eq!(
            epcis_time(&t),
            ("2026-03-01T09:30:00.000001-05:00".into(), "-05:00".into())
        );
    }
}
