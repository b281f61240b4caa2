//! Where EPCIS meets the chain: a source system's shipping and receiving ObjectEvents
//! (Autolog's EPCIS profile, docs/integration.md) become the chain's custody handoffs and
//! receipts, through the same rules and reconciliation as the native API.

use autolog_domain::StreamId;
use autolog_interop::epcis::EpcisEvent;
use autolog_store::StoredEpcisEvent;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::ledger::read::text;
use crate::{AppError, Autolog, Principal};

use crate::AUTOLOG_EPCIS_NS as AUTOLOG_EPCIS_NAMESPACE;

/// EPCs of ISBT 128 labels: `urn:isbt128:din:<DIN>`, `urn:isbt128:unit:<final unit>` (as
/// Autolog exports them), or `urn:isbt128:<label data as scanned>`.
pub const ISBT128_EPC_PREFIX: &str = "urn:isbt128:";

const SHIPPING: &str = "https://ref.gs1.org/cbv/BizStep-shipping";
const RECEIVING: &str = "https://ref.gs1.org/cbv/BizStep-receiving";

/// Why an EPCIS event could not become a chain event: what did not map.
struct Unmapped(Vec<Value>);

/// A user extension of the event, by its local name (`autolog:sealID`, or the full URI).
fn extension<'a>(raw: &'a Value, name: &str) -> Option<&'a Value> {
    let object = raw.as_object()?;
    object
        .get(&format!("autolog:{name}"))
        .or_else(|| object.get(&format!("{AUTOLOG_EPCIS_NAMESPACE}{name}")))
}

fn extension_text<'a>(raw: &'a Value, name: &str) -> Option<&'a str> {
    extension(raw, name).and_then(Value::as_str)
}

/// The GLN a location id names (`https://id.gs1.org/414/<GLN>[/254/<ext>]` or an SGLN URN).
fn gln_of(id: &str) -> Option<String> {
    let link = if id.starts_with("urn:epc:id:sgln:") {
        autolog_interop::epcis::digital_link(id)?
    } else {
        id.to_string()
    };
    let rest = link.split("/414/").nth(1)?;
    let gln: String = rest.split('/').next()?.to_string();
    (gln.len() == 13 && gln.chars().all(|c| c.is_ascii_digit())).then_some(gln)
}

/// The label data an EPC carries, if it names a unit: ISBT 128 data after
/// `urn:isbt128:`, or a GS1 serialised item (SGTIN) as an element string.
fn label_of(epc: &str) -> Option<String> {
    if let Some(data) = epc.strip_prefix(ISBT128_EPC_PREFIX) {
        let data = data
            .strip_prefix("din:")
            .or_else(|| data.strip_prefix("unit:"))
            .unwrap_or(data);
        return Some(data.to_string());
    }
    let link = if epc.starts_with("urn:epc:id:") {
        autolog_interop::epcis::digital_link(epc)?
    } else {
        epc.to_string()
    };
    let rest = link.split("/01/").nth(1)?;
    let mut parts = rest.split('/');
    let gtin = parts.next()?;
    (parts.next()? == "21").then_some(())?;
    let serial = parts.next()?;
    Some(format!("(01){gtin}(21){serial}"))
}

/// Whether an EPC is a logistic unit (SSCC): the shipping container.
fn is_sscc(epc: &str) -> bool {
    epc.starts_with("urn:epc:id:sscc:") || epc.contains("id.gs1.org/00/")
}

/// The last segment of a business transaction id, as Autolog's handoff id.
fn handoff_of(raw: &Value) -> Option<String> {
    let list = raw.get("bizTransactionList")?.as_array()?;
    let entry = list
        .iter()
        .find(|t| {
            let kind = text(t, "type");
            kind.ends_with("bol") || kind.ends_with("desadv")
        })
        .or_else(|| list.first())?;
    let value = entry.get("bizTransaction")?.as_str()?;
    let id = value.rsplit([':', '/']).next()?.to_string();
    (!id.is_empty()).then_some(id)
}

/// The lowest and highest temperature (°C) the event's sensor reports give.
fn temperature_span(raw: &Value) -> Option<(f64, f64)> {
    let mut span: Option<(f64, f64)> = None;
    for element in raw.get("sensorElementList")?.as_array()? {
        for report in element
            .get("sensorReport")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let kind = text(report, "type");
            if !kind.ends_with("Temperature") {
                continue;
            }
            let convert = |v: f64| match text(report, "uom") {
                "FAH" => (v - 32.0) * 5.0 / 9.0,
                "KEL" => v - 273.15,
                _ => v,
            };
            for key in ["value", "minValue", "maxValue"] {
                if let Some(v) = report.get(key).and_then(Value::as_f64) {
                    let v = convert(v);
                    span = Some(match span {
                        None => (v, v),
                        Some((lo, hi)) => (lo.min(v), hi.max(v)),
                    });
                }
            }
        }
    }
    span
}

/// The sensor's device id, as a code (its last segment).
fn logger_of(raw: &Value) -> Option<String> {
    let element = raw.get("sensorElementList")?.as_array()?.first()?;
    let device = element.get("sensorMetadata")?.get("deviceID")?.as_str()?;
    device.rsplit([':', '/']).next().map(str::to_string)
}

impl Autolog {
    /// Every captured event that Autolog's EPCIS profile maps to the chain, recorded
    /// through the same path as the native API (attributed to the sender); one outcome
    /// per such event: recorded (with the alerts its reconciliation raised), refused
    /// (with the rule), or unmapped (with each identifier that did not map, also counted
    /// for the alignment report). Other events are stored only.
    pub(crate) async fn epcis_to_chain(
        &self,
        principal: &Principal,
        events: &[(&EpcisEvent, &StoredEpcisEvent)],
    ) -> Vec<Value> {
        let mut outcomes = Vec::new();
        for (event, _) in events {
            let request = match self.custody_request(principal, event).await {
                Ok(None) => continue,
                Ok(Some(request)) => request,
                Err(Unmapped(list)) => {
                    outcomes.push(
                        json!({"index": event.index, "status": "unmapped", "unmapped": list}),
                    );
                    continue;
                }
            };
            let body = request.to_string();
            let outcome = match self
                .append_json_via(principal, body.as_bytes(), "epcis")
                .await
            {
                Ok(result) => {
                    let answer = serde_json::to_value(&result).unwrap_or(Value::Null);
                    json!({
                        "index": event.index,
                        "status": if result.appended() > 0 { "recorded" } else { "duplicate" },
                        "stream": request["stream"],
                        "event_type": request["body"]["type"],
                        "event": answer.get("event").cloned().unwrap_or(Value::Null),
                        "alerts": answer.get("alerts").cloned().unwrap_or(json!([])),
                    })
                }
                // A chain outside the sender's scope is not named in the answer.
                Err(e @ AppError::Forbidden(_)) => json!({
                    "index": event.index,
                    "status": "refused",
                    "event_type": request["body"]["type"],
                    "error": crate::interop::epcis_chain::refusal_json(&e),
                }),
                Err(e) => json!({
                    "index": event.index,
                    "status": "refused",
                    "stream": request["stream"],
                    "event_type": request["body"]["type"],
                    "error": crate::interop::epcis_chain::refusal_json(&e),
                }),
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    /// The native request an EPCIS event stands for, or `None` when the profile does not
    /// map it (not an ObjectEvent of shipping or receiving, or an error declaration).
    async fn custody_request(
        &self,
        principal: &Principal,
        event: &EpcisEvent,
    ) -> Result<Option<Value>, Unmapped> {
        if event.event_type != "ObjectEvent" || event.error_declaration {
            return Ok(None);
        }
        let shipping = match event.biz_step.as_deref() {
            Some(SHIPPING) => true,
            Some(RECEIVING) => false,
            _ => return Ok(None),
        };
        let CustodyFields {
            system,
            site,
            handoff,
            step,
            person,
            seal,
            container,
            labels,
        } = self.custody_fields(principal, event, shipping).await?;
        // Which chain: the one whose units these are (a receipt: the one awaiting this
        // handoff, if the units belong to several).
        let coi = if shipping {
            self.chain_of_labels(&labels, &handoff).await
        } else {
            // A receipt answers a handoff: the chain that shipped under it (even when none
            // of its own units arrived, a full swap), else the units' chain.
            match self.chain_of_shipment(principal, &handoff).await {
                Some(coi) => Some(coi),
                None => self.chain_of_labels(&labels, &handoff).await,
            }
        };
        let Some(coi) = coi else {
            for label in &labels {
                self.count_unmapped(&system, "epc", label).await;
            }
            return Err(Unmapped(vec![
                json!({"field": "epcList", "rule": "none of the units belongs to a chain Autolog knows"}),
            ]));
        };
        let zone = self.site_zone(&site).await;
        let occurred_at = match local_time(event.event_time_utc_micros, &zone) {
            Some(t) => t,
            None => {
                return Err(Unmapped(vec![
                    json!({"field": "eventTime", "rule": "cannot be placed in the site's time zone"}),
                ]))
            }
        };
        // From the Event Hash ID: the same event resent maps to the same record, and two
        // events that differ never share one (senders do reuse their own eventIDs).
        let source_event_id = format!(
            "epcis-{}",
            &hex::encode(Sha256::digest(event.hash_id.as_bytes()))[..32]
        );
        let mut data = Map::new();
        data.insert("handoff_id".into(), json!(handoff));
        data.insert("step_code".into(), json!(step));
        data.insert("container_id".into(), json!(container));
        data.insert("seal_id".into(), json!(seal));
        let event_type = if shipping {
            let (destination, range, arrival) = self.shipment_terms(&system, &event.raw).await?;
            data.insert("from_site_id".into(), json!(site));
            data.insert("handed_off_by".into(), json!(person));
            data.insert("destination_site_id".into(), json!(destination));
            data.insert("courier".into(), json!(system));
            data.insert("units".into(), json!(self.unit_ids(&labels)));
            data.insert("unit_count".into(), json!(labels.len()));
            data.insert("expected_arrival_by".into(), json!(arrival));
            data.insert("temperature_range".into(), range);
            "custody.handed_off"
        } else {
            data.insert("receiving_site_id".into(), json!(site));
            data.insert("received_by".into(), json!(person));
            data.insert(
                "scanned_labels".into(),
                json!(labels
                    .iter()
                    .map(|l| json!({"unit": l}))
                    .collect::<Vec<_>>()),
            );
            receiving_data(&event.raw, &mut data)?;
            "custody.received"
        };
        Ok(Some(json!({
            "stream": StreamId::chain(&coi),
            "occurred_at": occurred_at,
            "actor": principal.actor,
            "site": site,
            "source": {"system": system, "source_event_id": source_event_id},
            "body": {"type": event_type, "version": 1, "data": data},
        })))
    }

    /// What every custody event needs, mapped through the sender's crosswalks: the site,
    /// the units and container, the handoff, the step, the person and the seal. Every
    /// missing field and unmapped code is named at once.
    async fn custody_fields(
        &self,
        principal: &Principal,
        event: &EpcisEvent,
        shipping: bool,
    ) -> Result<CustodyFields, Unmapped> {
        let raw = &event.raw;
        let system = principal.system_id().unwrap_or("epcis").to_string();
        let mut unmapped = Vec::new();
        // A field that is missing, or (`code`: the kind and the code as sent) a code the
        // sender's crosswalk does not map: the answer names the system, the kind and the
        // code, so that the sender's steward knows what to map.
        let mut missing = |field: &str, code: Option<(&str, &str)>, rule: &str| {
            let mut entry = json!({"field": field, "rule": rule});
            if let Some((kind, code)) = code {
                entry["system"] = json!(system);
                entry["kind"] = json!(kind);
                entry["code"] = json!(code);
            }
            unmapped.push(entry);
        };

        // Where: the business location (else the read point) is this event's site.
        let location = event
            .biz_location
            .clone()
            .or_else(|| event.read_point.clone())
            .unwrap_or_default();
        let site = self.site_of_location(&system, &location).await;
        if site.is_none() {
            missing(
                "bizLocation.id",
                (!location.is_empty()).then_some(("site", location.as_str())),
                "names no site: give a site's GLN (SGLN) or map it in the system's site crosswalk",
            );
        }

        // What: the units (ISBT 128 labels or GS1 serialised items) and the container.
        let mut labels = Vec::new();
        let mut container = extension_text(raw, "containerID").map(str::to_string);
        for epc in raw
            .get("epcList")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if is_sscc(epc) {
                container.get_or_insert_with(|| epc.to_string());
                continue;
            }
            match label_of(epc) {
                // An ISBT 128 label is kept as read, even unreadable: the chain's own rules
                // then refuse it naming the misread character, as the native API does.
                Some(label) => labels.push(label),
                None => {
                    self.count_unmapped(&system, "epc", epc).await;
                    missing("epcList", Some(("epc", epc)), &format!("{epc} names no unit Autolog knows the form of (urn:isbt128:<label>, or a GS1 SGTIN): the event is not applied, so that no unit is left out"));
                }
            }
        }
        if labels.is_empty() {
            missing("epcList", None, "names no unit");
        }
        let handoff = handoff_of(raw);
        if handoff.is_none() {
            missing(
                "bizTransactionList",
                None,
                "needs the shipment's business transaction (bol or desadv): it is the handoff id",
            );
        }
        let step_code = extension_text(raw, "stepCode");
        let step = match step_code {
            Some(code) => self.mapped(&system, "process_step", code).await,
            None => None,
        };
        if step.is_none() {
            missing(
                "autolog:stepCode",
                step_code.map(|c| ("process_step", c)),
                "needs the system's process step code, mapped in its crosswalk",
            );
        }
        let person_field = if shipping {
            "handedOffBy"
        } else {
            "receivedBy"
        };
        let person_code = extension_text(raw, person_field);
        let person = match person_code {
            Some(code) => self.mapped(&system, "person", code).await,
            None => None,
        };
        if person.is_none() {
            missing(
                &format!("autolog:{person_field}"),
                person_code.map(|c| ("person", c)),
                "needs the person's code in the system, mapped in its person crosswalk",
            );
        }
        let seal = extension_text(raw, "sealID").map(str::to_string);
        if seal.is_none() {
            missing("autolog:sealID", None, "is required for a custody change");
        }
        if container.is_none() {
            missing(
                "epcList",
                None,
                "needs the shipping container (an SSCC) or autolog:containerID",
            );
        }
        let (Some(site), Some(handoff), Some(step), Some(person), Some(seal), Some(container)) =
            (site, handoff, step, person, seal, container)
        else {
            return Err(Unmapped(unmapped));
        };
        if !unmapped.is_empty() {
            return Err(Unmapped(unmapped));
        }
        Ok(CustodyFields {
            system,
            site,
            handoff,
            step,
            person,
            seal,
            container,
            labels,
        })
    }

    /// A shipment's own terms: its destination, temperature range and expected arrival.
    async fn shipment_terms(
        &self,
        system: &str,
        raw: &Value,
    ) -> Result<(String, Value, String), Unmapped> {
        let destination = match raw
            .get("destinationList")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|d| text(d, "type").ends_with("location"))
            .map(|d| text(d, "destination").to_string())
        {
            Some(id) => self.site_of_location(system, &id).await,
            None => None,
        };
        let range = extension(raw, "temperatureRange").cloned();
        let arrival = extension_text(raw, "expectedArrivalBy").map(str::to_string);
        let (Some(destination), Some(range), Some(arrival)) = (destination, range, arrival) else {
            return Err(Unmapped(vec![
                json!({"field": "destinationList / autolog:temperatureRange / autolog:expectedArrivalBy", "rule": "a shipment names its destination (a location: a site's GLN or mapped code), the allowed temperature range and the expected arrival"}),
            ]));
        };
        Ok((destination, range, arrival))
    }

    /// The canonical unit ids of labels as scanned.
    fn unit_ids(&self, labels: &[String]) -> Vec<String> {
        labels
            .iter()
            .filter_map(|l| autolog_domain::identifiers::scan::parse_scan("epc", l).ok())
            .map(|s| s.unit_id())
            .collect()
    }

    /// The chain a shipment under `handoff` was recorded on, from the sender's own EPCIS
    /// shipping events of the last 90 days (bounded read), if its handoff is still open.
    async fn chain_of_shipment(&self, principal: &Principal, handoff: &str) -> Option<String> {
        const SCAN_BUDGET: usize = 10_000;
        let since = self.now().micros() - 90 * 24 * 3600 * 1_000_000;
        let mut query = autolog_store::EpcisQuery {
            actor: Some(principal.actor.clone()),
            capture_id: None,
            event_types: vec!["ObjectEvent".into()],
            ge_event_time_us: None,
            lt_event_time_us: None,
            ge_record_time_us: Some(since),
            lt_record_time_us: None,
            biz_steps: vec![SHIPPING.into()],
            dispositions: Vec::new(),
            read_points: Vec::new(),
            biz_locations: Vec::new(),
            match_epc: Vec::new(),
            match_any_epc: Vec::new(),
            after_seq: 0,
            limit: 500,
        };
        let mut scanned = 0;
        let mut found: Option<Vec<String>> = None;
        while scanned < SCAN_BUDGET {
            let page = self.store.epcis_events(&query).await.ok()?;
            let Some(last) = page.last() else { break };
            query.after_seq = last.seq;
            scanned += page.len();
            for stored in &page {
                let Ok(raw) = serde_json::from_str::<Value>(&stored.raw_json) else {
                    continue;
                };
                if handoff_of(&raw).as_deref() == Some(handoff) {
                    // The latest shipment under this id wins.
                    found = Some(
                        raw.get("epcList")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .filter_map(label_of)
                            .collect(),
                    );
                }
            }
        }
        let labels = found?;
        let coi = self.chain_of_labels(&labels, handoff).await?;
        let chain = self.chain_as_of(&coi, None, None).await.ok()?;
        answers_handoff(&chain.view, handoff).then_some(coi)
    }

    /// The chain the labels' units belong to; for a receipt, preferably the one whose
    /// open handoff is `handoff`.
    async fn chain_of_labels(&self, labels: &[String], handoff: &str) -> Option<String> {
        let mut first = None;
        for label in labels {
            let Ok(scanned) = autolog_domain::identifiers::scan::parse_scan("epc", label) else {
                continue;
            };
            let unit = scanned.unit_id();
            let mut coi = String::new();
            for prefix in ["unit", "din"] {
                if let Ok(state) = self.current_state(&format!("{prefix}/{unit}")).await {
                    let c = text(&state, "coi");
                    if !c.is_empty() {
                        coi = c.to_string();
                        break;
                    }
                }
            }
            if coi.is_empty() {
                continue;
            }
            if let Ok(chain) = self.chain_as_of(&coi, None, None).await {
                if answers_handoff(&chain.view, handoff) {
                    return Some(coi);
                }
            }
            first.get_or_insert(coi);
        }
        first
    }

    /// A location id's site: the site with that GLN, else the system's site crosswalk.
    async fn site_of_location(&self, system: &str, id: &str) -> Option<String> {
        if id.is_empty() {
            return None;
        }
        if let Some(gln) = gln_of(id) {
            if let Ok(streams) = self.all_streams_with_prefix("site/").await {
                for stream in streams {
                    if let Ok(site) = self.current_state(&stream).await {
                        if text(&site, "gln") == gln {
                            return Some(text(&site, "site_id").to_string());
                        }
                    }
                }
            }
        }
        // Counted once, by the crosswalk lookup itself.
        self.mapped(system, "site", id).await
    }

    /// A local code's canonical id through the system's crosswalk (unmapped codes are
    /// counted for the alignment report by `resolve`).
    async fn mapped(&self, system: &str, kind: &str, code: &str) -> Option<String> {
        self.resolve(system, kind, code, None, None).await.ok()
    }

    async fn count_unmapped(&self, system: &str, kind: &str, code: &str) {
        let registered = matches!(
            self.store
                .stream_head(&StreamId::source_system(system))
                .await,
            Ok(Some(_))
        );
        if registered && code.len() <= 200 {
            if let Err(e) = self
                .store
                .record_unmapped_code(system, kind, code, self.now())
                .await
            {
                tracing::warn!(error = %e, system, kind, "could not count an unmapped EPCIS identifier");
            }
        }
    }

    async fn site_zone(&self, site: &str) -> String {
        match self.site_time_zone(site).await {
            Ok(zone) => zone.unwrap_or_default(),
            Err(_) => "UTC".to_string(),
        }
    }
}

/// An instant (µs UTC) as RFC 9557 text in a zone (the form a request sends).
fn local_time(micros: i64, zone: &str) -> Option<String> {
    let ts = jiff::Timestamp::from_microsecond(micros).ok()?;
    let tz = jiff::tz::TimeZone::get(zone).ok()?;
    Some(ts.to_zoned(tz).to_string())
}

/// A refusal as the API shows it (field, value, rule; every unmet condition).
/// Whether the chain's open handoff is `handoff`.
fn answers_handoff(chain: &autolog_domain::chain::ChainView, handoff: &str) -> bool {
    chain
        .open_handoff
        .as_ref()
        .is_some_and(|h| h.handoff_id == handoff)
}

pub(crate) fn refusal_json(e: &AppError) -> Value {
    match e {
        AppError::Invalid(f)
        | AppError::Forbidden(f)
        | AppError::Conflict(f)
        | AppError::TooLarge(f)
        | AppError::Gone(f)
        | AppError::RateLimited(f) => {
            json!({"message": e.to_string(), "field": f.field, "value": f.value, "rule": f.rule})
        }
        AppError::Unmet(list) => json!({
            "message": e.to_string(),
            "unmet": list.iter().map(|f| json!({"field": f.field, "value": f.value, "rule": f.rule})).collect::<Vec<_>>(),
        }),
        other => json!({"message": other.to_string()}),
    }
}

/// The mapped fields of a custody event.
struct CustodyFields {
    system: String,
    site: String,
    handoff: String,
    step: String,
    person: String,
    seal: String,
    container: String,
    labels: Vec<String>,
}

/// A receipt's own fields: the leg's temperatures and whether the seal was intact.
fn receiving_data(raw: &Value, data: &mut Map<String, Value>) -> Result<(), Unmapped> {
    let Some((lo, hi)) = temperature_span(raw) else {
        return Err(Unmapped(vec![
            json!({"field": "sensorElementList", "rule": "a receipt reports the leg's temperatures (sensorReport of type Temperature)"}),
        ]));
    };
    let Some(intact) = extension(raw, "sealIntact").and_then(Value::as_bool) else {
        return Err(Unmapped(vec![
            json!({"field": "autolog:sealIntact", "rule": "a receipt says whether the seal was found intact (true or false)"}),
        ]));
    };
    let mut log = json!({"min_celsius": lo, "max_celsius": hi});
    if let Some(logger) = logger_of(raw) {
        log["logger_id"] = json!(logger);
    }
    data.insert("seal_intact".into(), json!(intact));
    data.insert("temperature_log".into(), log);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_units_and_containers_are_read_from_their_epcis_forms() {
        assert_eq!(
            gln_of("https://id.gs1.org/414/0614141000029").as_deref(),
            Some("0614141000029")
        );
        assert_eq!(
            gln_of("https://id.gs1.org/414/0614141000029/254/7").as_deref(),
            Some("0614141000029")
        );
        assert_eq!(gln_of("urn:example:warehouse"), None);
        assert_eq!(
            label_of("urn:isbt128:=A99992600000100").as_deref(),
            Some("=A99992600000100")
        );
        assert_eq!(
            label_of("urn:isbt128:din:A999926000001K").as_deref(),
            Some("A999926000001K")
        );
        assert_eq!(
            label_of("https://id.gs1.org/01/09506000134352/21/S1").as_deref(),
            Some("(01)09506000134352(21)S1")
        );
        assert!(is_sscc("https://id.gs1.org/00/106141412345678908"));
        assert!(!is_sscc("urn:isbt128:=A99992600000100"));
        let raw = json!({"bizTransactionList": [{"type": "bol", "bizTransaction": "urn:epcglobal:cbv:bt:0614141000012:HO-17"}]});
        assert_eq!(handoff_of(&raw).as_deref(), Some("HO-17"));
    }

    #[test]
    fn temperatures_come_from_the_sensor_reports_in_celsius() {
        let raw = json!({"sensorElementList": [{
        "sensorMetadata": {"deviceID": "urn:epc:id:giai:4000001.111"},
        "sensorReport": [
            {"type": "gs1:MT-Temperature", "value": -150.0, "uom": "CEL"},
            {"type": "gs1:MT-Temperature", "minValue": -160.5, "maxValue": -140.0, "uom": "CEL"},
            {"type": "gs1:MT-Humidity", "value": 40.0, "uom": "A93"}
        ]}]});
        assert_eq!(temperature_span(&raw), Some((-160.5, -140.0)));
        assert_eq!(logger_of(&raw).as_deref(), Some("4000001.111"));
    }
}
