//! One chain of identity as FHIR resources: the patient, the sites and people it involves,
//! its products (collections, batch, final units), apheresis and infusion, the release
//! and issue of each unit, and the electronic signatures on its records.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::{
    coding, concept, date_time, id, identifier, location, organization, patient, practitioner,
    reference, reference_shown, system, text, texts,
};

/// One event of the chain, as the mapping reads it.
#[derive(Debug, Clone)]
pub struct ChainEvent {
    pub event_id: String,
    pub event_type: String,
    /// When it happened, RFC 9557 (`...-05:00[America/New_York]`).
    pub occurred_at: String,
    pub data: Value,
}

/// What one chain's resources are made from.
#[derive(Debug, Clone, Copy)]
pub struct ChainInput<'a> {
    /// The canonical COI (with its check character).
    pub coi: &'a str,
    /// The `chain.enrolled` payload.
    pub enrolment: &'a Value,
    /// The chain's state (`ChainState::as_str`), e.g. `on_hold`, `cancelled`.
    pub state: &'a str,
    /// The chain's effective events, in valid-time order.
    pub events: &'a [ChainEvent],
    /// The product record (reference data), or `Null`.
    pub product: &'a Value,
    /// The process step records of the product's steps, by step code.
    pub steps: &'a BTreeMap<String, Value>,
    /// The site records [`referenced`] names, by site id (unregistered ones absent).
    pub sites: &'a BTreeMap<String, Value>,
    /// The personnel records [`referenced`] names, by person id.
    pub people: &'a BTreeMap<String, Value>,
    /// The patient's identifying data (vault fields), when the caller may read it.
    pub identifying: Option<&'a Map<String, Value>>,
}

/// The event types whose records are signed, and whether the signer verifies (QA) or
/// authors (the physician's request).
const SIGNED: &[(&str, bool)] = &[
    ("chain.released", true),
    ("chain.hold_released", true),
    ("deviation.closed", true),
    ("chain.exceptional_release_requested", false),
];

const SITE_FIELDS: &[&str] = &[
    "treatment_site_id",
    "collection_site_id",
    "site_id",
    "from_site_id",
    "destination_site_id",
    "receiving_site_id",
];

const PERSON_FIELDS: &[&str] = &[
    "operator_id",
    "created_by",
    "recorded_by",
    "released_by",
    "second_released_by",
    "handed_off_by",
    "received_by",
    "administered_by",
    "verified_by",
    "resolved_by",
    "closed_by",
    "requested_by",
];

/// The event types the resources are made from.
const MAPPED: &[&str] = &[
    "chain.collected",
    "batch.created",
    "batch.units_produced",
    "chain.released",
    "custody.handed_off",
    "custody.received",
    "chain.administered",
    "chain.hold_released",
    "deviation.closed",
    "chain.exceptional_release_requested",
];

/// The site ids and person ids a chain's resources refer to (load these records).
pub fn referenced(
    enrolment: &Value,
    events: &[ChainEvent],
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut sites = BTreeSet::new();
    let mut people = BTreeSet::new();
    let treatment = text(enrolment, "treatment_site_id");
    if !treatment.is_empty() {
        sites.insert(treatment.to_string());
    }
    for e in events
        .iter()
        .filter(|e| MAPPED.contains(&e.event_type.as_str()))
    {
        for field in SITE_FIELDS {
            let v = text(&e.data, field);
            if !v.is_empty() {
                sites.insert(v.to_string());
            }
        }
        for field in PERSON_FIELDS {
            let v = text(&e.data, field);
            if !v.is_empty() {
                people.insert(v.to_string());
            }
        }
        for key in ["signature", "second_signature"] {
            let signer = e.data.get(key).map_or("", |s| text(s, "signer_id"));
            if !signer.is_empty() {
                people.insert(signer.to_string());
            }
        }
    }
    (sites, people)
}

/// The chain's events of one type.
fn events_of<'a>(
    events: &'a [ChainEvent],
    event_type: &'a str,
) -> impl Iterator<Item = &'a ChainEvent> + 'a {
    events.iter().filter(move |e| e.event_type == event_type)
}

/// The first `n` characters of an identifier (its content without the check character).
fn content(identifier: &str, n: usize) -> &str {
    identifier.get(..n).unwrap_or(identifier)
}

fn celsius(v: f64) -> Value {
    json!({"value": v, "unit": "°C", "system": system::UCUM, "code": "Cel"})
}

/// A temperature range (`min_celsius`, `max_celsius`) as a FHIR Range.
fn temperature(range: &Value) -> Option<Value> {
    let low = range.get("min_celsius")?.as_f64()?;
    let high = range.get("max_celsius")?.as_f64()?;
    Some(json!({"low": celsius(low), "high": celsius(high)}))
}

fn product_status(available: bool) -> Value {
    if available {
        coding(system::PRODUCT_STATUS, "available", Some("Available"))
    } else {
        coding(system::PRODUCT_STATUS, "unavailable", Some("Unavailable"))
    }
}

fn cells() -> Value {
    coding(system::PRODUCT_CATEGORY, "cells", Some("Cells"))
}

struct Refs<'a> {
    input: &'a ChainInput<'a>,
}

impl Refs<'_> {
    fn site(&self, resource_type: &str, site_id: &str) -> Value {
        match self.input.sites.get(site_id) {
            Some(site) => {
                let name = text(site, "name");
                reference_shown(resource_type, &id::site(site_id), name)
            }
            None => json!({"identifier": identifier(system::SITE, site_id), "display": site_id}),
        }
    }

    fn organization(&self, site_id: &str) -> Value {
        self.site("Organization", site_id)
    }

    fn location(&self, site_id: &str) -> Value {
        self.site("Location", site_id)
    }

    fn person(&self, person_id: &str) -> Value {
        match self.input.people.get(person_id) {
            Some(p) => reference_shown(
                "Practitioner",
                &id::person(person_id),
                text(p, "printed_name"),
            ),
            None => {
                json!({"identifier": identifier(system::PERSON, person_id), "display": person_id})
            }
        }
    }

    /// A process step as a CodeableConcept (Autolog's step code and description).
    fn step(&self, step_code: &str) -> Value {
        let description = self
            .input
            .steps
            .get(step_code)
            .map_or("", |s| text(s, "description"));
        concept(
            vec![coding(system::PROCESS_STEP, step_code, Some(description))],
            Some(description),
        )
    }

    /// The product as a CodeableConcept: its ISBT 128 product description code (from the
    /// unit identifier, or the product record) and Autolog's product code.
    fn product_code(&self, isbt128: &str) -> Option<Value> {
        let product = self.input.product;
        let code = text(product, "product_code");
        let name = text(product, "name");
        let isbt128 = if isbt128.is_empty() {
            text(product, "isbt128_product_code")
        } else {
            isbt128
        };
        let mut codings = Vec::new();
        if !isbt128.is_empty() {
            codings.push(coding(system::PRODUCT_DESCRIPTION_CODE, isbt128, None));
        }
        if !code.is_empty() {
            codings.push(coding(system::PRODUCT, code, Some(name)));
        }
        (!codings.is_empty()).then(|| concept(codings, Some(name)))
    }
}

/// Every resource of one chain, each with its id: Patient, Organization and Location for
/// each site, Practitioner for each person, BiologicallyDerivedProduct for each collection
/// (DIN), the batch and each final unit, Procedure for each apheresis and infusion,
/// BiologicallyDerivedProductDispense for each released unit, Provenance for each
/// signature.
pub fn chain_resources(input: &ChainInput) -> Vec<Value> {
    let mut bundle = Bundle::new(input);
    bundle.collections();
    bundle.batches();
    bundle.dispenses();
    bundle.infusions();
    bundle.signatures();
    bundle.out
}

/// The resources of one chain as they are built, and what later resources refer to.
struct Bundle<'a> {
    input: &'a ChainInput<'a>,
    refs: Refs<'a>,
    events: &'a [ChainEvent],
    held: bool,
    cancelled: bool,
    coi_identifier: Value,
    patient_ref: Value,
    out: Vec<Value>,
    /// Every product resource's id (the targets of a chain-wide signature).
    products: Vec<String>,
    /// Apheresis and infusion procedures, added after the products and dispenses.
    procedures: Vec<Value>,
    /// DINs collected on the chain.
    collected: BTreeSet<String>,
    batch_ids: BTreeSet<String>,
    /// Each released unit and the index of its (last) release event.
    released: BTreeMap<String, usize>,
    administered: BTreeSet<String>,
    /// The dispenses of each release event.
    dispenses: BTreeMap<String, Vec<String>>,
}

impl<'a> Bundle<'a> {
    /// The patient, each site (Organization and Location) and each person.
    fn new(input: &'a ChainInput<'a>) -> Self {
        let patient_key = text(input.enrolment, "patient_key");
        let mut out = vec![patient(patient_key, input.identifying)];
        for site in input.sites.values() {
            out.push(organization(site));
            out.push(location(site));
        }
        for person in input.people.values() {
            out.push(practitioner(person));
        }
        let events = input.events;
        let mut released = BTreeMap::new();
        for (i, r) in events.iter().enumerate() {
            if r.event_type == "chain.released" {
                for unit in texts(&r.data, "units") {
                    released.insert(unit, i);
                }
            }
        }
        Bundle {
            input,
            refs: Refs { input },
            events,
            held: input.state == "on_hold",
            cancelled: input.state == "cancelled",
            coi_identifier: identifier(system::COI, input.coi),
            patient_ref: reference("Patient", &id::patient(patient_key)),
            out,
            products: Vec::new(),
            procedures: Vec::new(),
            collected: BTreeSet::new(),
            batch_ids: BTreeSet::new(),
            released,
            administered: events_of(events, "chain.administered")
                .map(|a| text(&a.data, "unit").to_string())
                .collect(),
            dispenses: BTreeMap::new(),
        }
    }

    /// Collections: one product per bag (DIN), one apheresis procedure per collection.
    fn collections(&mut self) {
        let Bundle {
            input,
            events,
            held,
            cancelled,
            ref refs,
            ref coi_identifier,
            ref patient_ref,
            ref mut out,
            ref mut collected,
            ref mut products,
            ref mut procedures,
            ..
        } = *self;
        let consumed: BTreeSet<String> = events_of(events, "batch.created")
            .flat_map(|b| texts(&b.data, "source_dins"))
            .collect();
        let collecting_step = input
            .product
            .get("process")
            .and_then(|p| p.get("steps"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|s| text(s, "step_code"))
            .find(|code| {
                input
                    .steps
                    .get(*code)
                    .is_some_and(|s| text(s, "cbv_biz_step") == "collecting")
            });
        for c in events_of(events, "chain.collected") {
            let data = &c.data;
            let dins = texts(data, "dins");
            let Some(first) = dins.first() else {
                continue;
            };
            let site = text(data, "collection_site_id");
            let operator = text(data, "operator_id");
            let start = date_time(text(data, "started_at"));
            let end = date_time(text(data, "ended_at"));
            let when = match (&start, &end) {
                (Some(s), Some(e)) => ("Period", json!({"start": s, "end": e})),
                (Some(s), None) => ("Period", json!({"start": s})),
                _ => (
                    "DateTime",
                    json!(date_time(&c.occurred_at).unwrap_or_default()),
                ),
            };
            for din in &dins {
                collected.insert(din.clone());
                let bag_id = id::collection(din);
                let din13 = content(din, 13);
                let mut bag = json!({
                    "resourceType": "BiologicallyDerivedProduct",
                    "id": bag_id,
                    "productCategory": cells(),
                    "identifier": [identifier(system::DIN, din13), coi_identifier.clone()],
                    "biologicalSourceEvent": identifier(system::DIN, din13),
                    "processingFacility": [refs.organization(site)],
                    "productStatus": product_status(!consumed.contains(din) && !held && !cancelled),
                    "collection": {
                        "collector": refs.person(operator),
                        "source": patient_ref.clone(),
                    },
                });
                bag["collection"][format!("collected{}", when.0)] = when.1.clone();
                // The starting material's storage: the range its shipment was declared at.
                if let Some(range) = events_of(events, "custody.handed_off")
                    .find(|h| texts(&h.data, "units").contains(din))
                    .and_then(|h| h.data.get("temperature_range"))
                    .and_then(temperature)
                {
                    bag["storageTempRequirements"] = range;
                }
                products.push(bag_id);
                out.push(bag);
            }
            let mut procedure = json!({
                "resourceType": "Procedure",
                "id": id::apheresis(first),
                "identifier": dins.iter().map(|d| identifier(system::DIN, content(d, 13))).collect::<Vec<_>>(),
                "status": "completed",
                "subject": patient_ref.clone(),
                "performer": [{"actor": refs.person(operator)}],
                "location": refs.location(site),
            });
            procedure[format!("occurrence{}", when.0)] = when.1;
            if let Some(step) = collecting_step {
                procedure["code"] = refs.step(step);
            }
            procedures.push(procedure);
        }
    }

    /// The batch (the patient's intermediate) and its final units.
    fn batches(&mut self) {
        let Bundle {
            input,
            events,
            held,
            cancelled,
            ref refs,
            ref coi_identifier,
            ref mut out,
            ref mut products,
            ref mut collected,
            ref mut batch_ids,
            ref mut released,
            ref mut administered,
            ..
        } = *self;
        for b in events_of(events, "batch.created") {
            let data = &b.data;
            let batch_id = text(data, "batch_id");
            let site = text(data, "site_id");
            let sources = texts(data, "source_dins");
            let units: Vec<String> = events_of(events, "batch.units_produced")
                .filter(|u| text(&u.data, "batch_id") == batch_id)
                .flat_map(|u| texts(&u.data, "units"))
                .collect();
            let batch_resource_id = id::batch(batch_id);
            let mut batch = json!({
                "resourceType": "BiologicallyDerivedProduct",
                "id": batch_resource_id,
                "productCategory": cells(),
                "identifier": [identifier(system::BATCH, batch_id), coi_identifier.clone()],
                "processingFacility": [refs.organization(site)],
                "productStatus": product_status(units.is_empty() && !held && !cancelled),
            });
            let parents: Vec<Value> = sources
                .iter()
                .filter(|d| collected.contains(*d))
                .map(|d| reference("BiologicallyDerivedProduct", &id::collection(d)))
                .collect();
            if !parents.is_empty() {
                batch["parent"] = json!(parents);
            }
            let source_event = sources
                .first()
                .map(|d| identifier(system::DIN, content(d, 13)));
            if let Some(source) = &source_event {
                batch["biologicalSourceEvent"] = source.clone();
            }
            if let Some(code) = refs.product_code("") {
                batch["productCode"] = code;
            }
            batch_ids.insert(batch_id.to_string());
            products.push(batch_resource_id.clone());
            out.push(batch);
            for unit in &units {
                let unit_id = id::unit(unit);
                let available = released.contains_key(unit)
                    && !administered.contains(unit)
                    && !held
                    && !cancelled;
                let mut resource = json!({
                    "resourceType": "BiologicallyDerivedProduct",
                    "id": unit_id,
                    "productCategory": cells(),
                    "identifier": [identifier(system::FINAL_UNIT, unit), coi_identifier.clone()],
                    "parent": [reference("BiologicallyDerivedProduct", &batch_resource_id)],
                    "processingFacility": [refs.organization(site)],
                    "productStatus": product_status(available),
                });
                if let Some(code) = refs.product_code(unit.get(15..20).unwrap_or_default()) {
                    resource["productCode"] = code;
                }
                if let Some(division) = unit.get(20..22) {
                    resource["division"] = json!(division);
                }
                if let Some(source) = &source_event {
                    resource["biologicalSourceEvent"] = source.clone();
                }
                if let Some(range) = input
                    .product
                    .get("storage_temperature")
                    .and_then(temperature)
                {
                    resource["storageTempRequirements"] = range;
                }
                products.push(unit_id);
                out.push(resource);
            }
        }
    }

    /// Release to the patient and issue to the treatment center, per released unit.
    fn dispenses(&mut self) {
        let Bundle {
            input,
            events,
            cancelled,
            ref refs,
            ref patient_ref,
            ref mut out,
            ref mut released,
            ref mut administered,
            ref mut dispenses,
            ..
        } = *self;
        for (at, r) in events.iter().enumerate() {
            if r.event_type != "chain.released" {
                continue;
            }
            let data = &r.data;
            for unit in texts(data, "units") {
                if released.get(&unit) != Some(&at) {
                    continue; // a later release names it again
                }
                let handoff = events[at..].iter().find(|h| {
                    h.event_type == "custody.handed_off" && texts(&h.data, "units").contains(&unit)
                });
                let receipt = handoff.and_then(|h| {
                    let handoff_id = text(&h.data, "handoff_id");
                    events_of(events, "custody.received")
                        .find(|x| text(&x.data, "handoff_id") == handoff_id)
                });
                let function = |code: &str, display: &str| {
                    concept(
                        vec![coding(
                            system::DISPENSE_PERFORMER_FUNCTION,
                            code,
                            Some(display),
                        )],
                        None,
                    )
                };
                let mut performers = vec![json!({
                    "function": function("release", "Release"),
                    "actor": refs.person(text(data, "released_by")),
                })];
                let second = text(data, "second_released_by");
                if !second.is_empty() {
                    performers.push(json!({
                        "function": function("release", "Release"),
                        "actor": refs.person(second),
                    }));
                }
                let status = if handoff.is_some() || administered.contains(&unit) {
                    "issued"
                } else if cancelled {
                    "unfulfilled"
                } else {
                    "allocated"
                };
                let destination = handoff
                    .map(|h| text(&h.data, "destination_site_id"))
                    .unwrap_or_else(|| text(input.enrolment, "treatment_site_id"));
                let dispense_id = id::release(&unit);
                let mut dispense = json!({
                    "resourceType": "BiologicallyDerivedProductDispense",
                    "id": dispense_id,
                    "identifier": [identifier(system::EVENT, &r.event_id)],
                    "status": status,
                    "originRelationshipType": concept(
                        vec![coding(system::DISPENSE_ORIGIN, "autologous", Some("Autologous"))],
                        None,
                    ),
                    "product": reference("BiologicallyDerivedProduct", &id::unit(&unit)),
                    "patient": patient_ref.clone(),
                    "location": refs.location(text(data, "site_id")),
                    "destination": refs.location(destination),
                });
                if let Some(prepared) = date_time(&r.occurred_at) {
                    dispense["preparedDate"] = json!(prepared);
                }
                if let Some(h) = handoff {
                    performers.push(json!({
                        "function": function("transport", "Transport"),
                        "actor": refs.person(text(&h.data, "handed_off_by")),
                    }));
                    if let Some(handed) = date_time(&h.occurred_at) {
                        dispense["whenHandedOver"] = json!(handed);
                    }
                }
                if let Some(x) = receipt {
                    performers.push(json!({
                        "function": function("receipt", "Receipt"),
                        "actor": refs.person(text(&x.data, "received_by")),
                    }));
                }
                dispense["performer"] = json!(performers);
                if data.get("exceptional").and_then(Value::as_bool) == Some(true) {
                    dispense["note"] = json!([{"text": "Exceptional release of an out-of-specification product: requested by a treating physician and signed by two qualified persons."}]);
                }
                dispenses
                    .entry(r.event_id.clone())
                    .or_default()
                    .push(dispense_id);
                out.push(dispense);
            }
        }
    }

    /// Infusions, then every procedure (apheresis and infusion) in order.
    fn infusions(&mut self) {
        let Bundle {
            events,
            ref refs,
            ref patient_ref,
            ref mut out,
            ref mut procedures,
            ..
        } = *self;
        for a in events_of(events, "chain.administered") {
            let data = &a.data;
            let unit = text(data, "unit");
            let function = |code: &str, display: &str| {
                concept(
                    vec![coding(system::PARTICIPATION_TYPE, code, Some(display))],
                    None,
                )
            };
            let mut procedure = json!({
                "resourceType": "Procedure",
                "id": id::infusion(unit),
                "identifier": [identifier(system::EVENT, &a.event_id)],
                "status": "completed",
                "code": refs.step(text(data, "step_code")),
                "subject": patient_ref.clone(),
                "performer": [
                    {"function": function("PRF", "performer"), "actor": refs.person(text(data, "administered_by"))},
                    {"function": function("VRF", "verifier"), "actor": refs.person(text(data, "verified_by"))},
                ],
                "location": refs.location(text(data, "site_id")),
                "used": [{"reference": reference("BiologicallyDerivedProduct", &id::unit(unit))}],
            });
            if let Some(at) = date_time(&a.occurred_at) {
                procedure["occurrenceDateTime"] = json!(at);
            }
            procedures.push(procedure);
        }
        out.append(procedures);
    }

    /// A Provenance for each signature.
    fn signatures(&mut self) {
        let Bundle {
            input,
            events,
            ref refs,
            ref patient_ref,
            ref mut out,
            ref mut products,
            ref mut batch_ids,
            ref mut dispenses,
            ..
        } = *self;
        let all_products: Vec<Value> = products
            .iter()
            .map(|p| reference("BiologicallyDerivedProduct", p))
            .collect();
        for e in events {
            let Some((_, verifies)) = SIGNED.iter().find(|(t, _)| *t == e.event_type) else {
                continue;
            };
            let data = &e.data;
            let batch = text(data, "batch_id");
            let batch_ref = batch_ids
                .contains(batch)
                .then(|| reference("BiologicallyDerivedProduct", &id::batch(batch)));
            let mut targets: Vec<Value> = match e.event_type.as_str() {
                "chain.released" => dispenses
                    .get(&e.event_id)
                    .into_iter()
                    .flatten()
                    .map(|d| reference("BiologicallyDerivedProductDispense", d))
                    .chain(batch_ref.clone())
                    .collect(),
                "chain.exceptional_release_requested" => batch_ref.clone().into_iter().collect(),
                "deviation.closed" if batch_ref.is_some() => {
                    batch_ref.clone().into_iter().collect()
                }
                _ => all_products.clone(),
            };
            if targets.is_empty() {
                targets.push(patient_ref.clone());
            }
            for (key, second) in [("signature", false), ("second_signature", true)] {
                let Some(signature) = data.get(key).filter(|s| s.is_object()) else {
                    continue;
                };
                let signer = text(signature, "signer_id");
                let printed = text(signature, "printed_name");
                let meaning = text(signature, "meaning");
                let stream = text(signature, "stream");
                let mut who = refs.person(signer);
                if !printed.is_empty() {
                    who["display"] = json!(printed);
                }
                let (agent_type, sig_code, sig_display) = if *verifies {
                    ("VRF", "1.2.840.10065.1.12.1.5", "Verification Signature")
                } else {
                    ("AUT", "1.2.840.10065.1.12.1.1", "Author's Signature")
                };
                let mut extensions = Vec::new();
                for (url, value) in [
                    (system::SIGNATURE_MEANING, meaning),
                    (
                        system::SIGNATURE_RECORD_DIGEST,
                        text(signature, "record_digest"),
                    ),
                    (system::SIGNATURE_STREAM, stream),
                ] {
                    if !value.is_empty() {
                        extensions.push(json!({"url": url, "valueString": value}));
                    }
                }
                let mut sig = json!({
                    "type": [coding(system::SIGNATURE_TYPE, sig_code, Some(sig_display))],
                    "who": who.clone(),
                });
                let signed_at = date_time(text(signature, "signed_at"));
                if let Some(at) = &signed_at {
                    sig["when"] = json!(at);
                }
                if !extensions.is_empty() {
                    sig["extension"] = json!(extensions);
                }
                let mut provenance = json!({
                    "resourceType": "Provenance",
                    "id": id::signature(&e.event_id, second),
                    "target": targets,
                    "patient": patient_ref.clone(),
                    "activity": concept(
                        vec![coding(system::EVENT_TYPE, &e.event_type, None)],
                        Some(meaning),
                    ),
                    "agent": [{
                        "type": concept(vec![coding(
                            system::PARTICIPATION_TYPE,
                            agent_type,
                            Some(if *verifies { "verifier" } else { "author" }),
                        )], None),
                        "who": who,
                    }],
                    "entity": [{
                        "role": "source",
                        "what": {
                            "identifier": identifier(system::EVENT, &e.event_id),
                            "display": format!("{} {} in {}", e.event_type, e.event_id, if stream.is_empty() { input.coi } else { stream }),
                        },
                    }],
                    "signature": [sig],
                });
                if let Some(at) = date_time(&e.occurred_at) {
                    provenance["occurredDateTime"] = json!(at);
                }
                if let Some(at) = signed_at {
                    provenance["recorded"] = json!(at);
                }
                let site = text(data, "site_id");
                if !site.is_empty() {
                    provenance["location"] = refs.location(site);
                }
                out.push(provenance);
            }
        }
    }
}
