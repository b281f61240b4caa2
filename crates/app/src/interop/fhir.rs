//! HL7 FHIR R5 views of the ledger, and the import of a treatment center's `Patient` and
//! `Procedure`: gathers a chain (as of any moment), its reference data and, when the
//! caller may read it, the vault's identifying data, and hands them to
//! `autolog_interop::fhir` to map. Imports go through the same paths as the native API:
//! identifying data to the vault, an administration through `append_json_as`.

use std::collections::BTreeMap;

use autolog_domain::access::{chain_in_scope, Permission};
use autolog_domain::identifiers::Coi;
use autolog_domain::StreamId;
use autolog_domain::{FieldError, Instant};
use serde_json::{json, Map, Value};

pub use autolog_interop::fhir::*;

use crate::ledger::read::text;
use crate::{AppError, Autolog, Principal};

/// A read of the patient's identifying data: who reads it and why (recorded in the ledger
/// as `personal_data.read` before anything is answered).
#[derive(Debug, Clone, Copy)]
pub struct PersonalRead<'a> {
    pub actor: &'a str,
    pub purpose: &'a str,
}

/// Why an imported resource was not recorded.
#[derive(Debug)]
pub enum ImportError {
    /// The resource is not one Autolog can record: every element at fault.
    Unprocessable(Vec<Issue>),
    /// Autolog refused what it became (or could not read what it needs): the error, and
    /// the element of the resource it is about (empty: the resource as a whole).
    Refused {
        error: AppError,
        element: &'static str,
    },
}

impl From<AppError> for ImportError {
    fn from(error: AppError) -> Self {
        ImportError::Refused { error, element: "" }
    }
}

fn unprocessable(code: &'static str, expression: &str, rule: impl Into<String>) -> ImportError {
    ImportError::Unprocessable(vec![Issue::error(code, expression, rule)])
}

fn not_found(resource_type: &str, id: &str) -> AppError {
    AppError::NotFound {
        what: "FHIR resource",
        id: format!("{resource_type}/{id}"),
    }
}

/// The element of a Patient a vault field comes from.
fn patient_element(field: &str) -> &'static str {
    match field {
        "name" | "given_name" | "family_name" => "Patient.name",
        "date_of_birth" => "Patient.birthDate",
        "contact" => "Patient.telecom",
        "mrn" | "patient_key" => "Patient.identifier",
        _ => "Patient",
    }
}

impl Autolog {
    /// The chain a link stream (`din/`, `unit/`, `batch/`) ties its identifier to.
    async fn linked_chain(&self, stream: &str) -> Result<Option<String>, AppError> {
        let events = self.store.stream_events(stream, Instant::MAX).await?;
        Ok(events
            .first()
            .map(|e| text(&e.body.data, "coi").to_string())
            .filter(|c| !c.is_empty()))
    }

    /// Every chain enrolled with this patient key (reads each chain's enrolment, as
    /// erasure does; a chain's Bundle is the cheap way to a patient).
    pub async fn fhir_patient_chains(&self, patient_key: &str) -> Result<Vec<String>, AppError> {
        let mut found = Vec::new();
        for stream in self.all_streams_with_prefix("coi/").await? {
            let events = self.store.stream_events(&stream, Instant::MAX).await?;
            let enrolled = events.iter().any(|e| {
                e.body.event_type == "chain.enrolled"
                    && text(&e.body.data, "patient_key") == patient_key
            });
            if enrolled {
                found.push(stream.trim_start_matches("coi/").to_string());
            }
        }
        Ok(found)
    }

    /// The chains (canonical COIs) a FHIR resource of a chain belongs to, from its id:
    /// one for a product, dispense, procedure, signature or Bundle; every chain enrolled
    /// with the key for a Patient. `NotFound` when the id names nothing Autolog holds.
    pub async fn fhir_chains_of(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Vec<String>, AppError> {
        let missing = || not_found(resource_type, id);
        let coi = match lookup(resource_type, id).ok_or_else(missing)? {
            Lookup::Din(din) => self.linked_chain(&StreamId::din(&din)).await?,
            Lookup::Unit(unit) => self.linked_chain(&StreamId::unit(&unit)).await?,
            Lookup::Batch(batch) => self.linked_chain(&StreamId::batch(&batch)).await?,
            Lookup::Event(event_id) => {
                let uuid = autolog_domain::Uuid::parse_str(&event_id).map_err(|_| missing())?;
                self.store
                    .event(uuid)
                    .await?
                    .and_then(|e| e.stream.strip_prefix("coi/").map(str::to_string))
            }
            Lookup::Chain(coi) => {
                let events = self
                    .store
                    .stream_events(&StreamId::chain(&coi), Instant::MAX)
                    .await?;
                (!events.is_empty()).then_some(coi)
            }
            Lookup::PatientKey(key) => {
                let chains = self.fhir_patient_chains(&key).await?;
                return if chains.is_empty() {
                    Err(missing())
                } else {
                    Ok(chains)
                };
            }
            Lookup::Site(_) | Lookup::Person(_) => None,
        };
        coi.map(|c| vec![c]).ok_or_else(missing)
    }

    /// The patient's identifying data for a FHIR answer: `None` when the vault holds none
    /// (no master key, no record, erased); otherwise read through the vault, which records
    /// the read with its purpose first.
    async fn fhir_identifying(
        &self,
        patient_key: &str,
        read: PersonalRead<'_>,
    ) -> Result<Option<Map<String, Value>>, AppError> {
        if self.vault_key_id().is_none() {
            return Ok(None);
        }
        match self.store.vault_record(patient_key).await? {
            Some(record) if record.erased_at.is_none() => {}
            _ => return Ok(None),
        }
        let answer = self
            .read_personal_data(patient_key, read.actor, Some(read.purpose))
            .await?;
        Ok(Some(
            answer
                .data
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ))
    }

    /// Every resource of a chain as it stood at `valid_at`, as known at `known_at`
    /// (defaults: now; `known_at` capped at the last commit), and the `known_at` used.
    async fn fhir_chain_resources(
        &self,
        coi: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
        personal: Option<PersonalRead<'_>>,
    ) -> Result<(String, Vec<Value>, Instant), AppError> {
        let crate::chain::enrol::ChainAsOf {
            coi,
            known_at,
            effective,
            enrolment,
            view,
            ..
        } = self.chain_as_of(coi, valid_at, known_at).await?;
        let chain_events: Vec<ChainEvent> = effective
            .iter()
            .map(|e| ChainEvent {
                event_id: e.event_id.to_string(),
                event_type: e.body.event_type.clone(),
                occurred_at: e.occurred_at.to_rfc9557(),
                data: e.body.data.clone(),
            })
            .collect();
        let product_code = text(&enrolment, "product_code");
        let product = if product_code.is_empty() {
            Value::Null
        } else {
            self.current_state(&StreamId::product(product_code)).await?
        };
        let mut steps = BTreeMap::new();
        let step_codes: Vec<String> = product
            .get("process")
            .and_then(|p| p.get("steps"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|s| text(s, "step_code").to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for code in step_codes {
            let step = self.current_state(&StreamId::process_step(&code)).await?;
            steps.insert(code, step);
        }
        let (site_ids, person_ids) = referenced(&enrolment, &chain_events);
        let mut sites = BTreeMap::new();
        for site_id in site_ids {
            let mut site = self.current_state(&StreamId::site(&site_id)).await?;
            if let Some(record) = site.as_object_mut().filter(|r| !r.is_empty()) {
                record
                    .entry("site_id")
                    .or_insert_with(|| json!(site_id.clone()));
                sites.insert(site_id, site);
            }
        }
        let mut people = BTreeMap::new();
        for person_id in person_ids {
            let mut person = self.current_state(&StreamId::person(&person_id)).await?;
            if let Some(record) = person.as_object_mut().filter(|r| !r.is_empty()) {
                record
                    .entry("person_id")
                    .or_insert_with(|| json!(person_id.clone()));
                people.insert(person_id, person);
            }
        }
        let identifying = match personal {
            Some(read) => {
                self.fhir_identifying(text(&enrolment, "patient_key"), read)
                    .await?
            }
            None => None,
        };
        let resources = chain_resources(&ChainInput {
            coi: &coi,
            enrolment: &enrolment,
            state: view.state.as_str(),
            events: &chain_events,
            product: &product,
            steps: &steps,
            sites: &sites,
            people: &people,
            identifying: identifying.as_ref(),
        });
        Ok((coi, resources, known_at))
    }

    /// One resource of a chain (`BiologicallyDerivedProduct`, `...Dispense`, `Procedure`,
    /// `Provenance`) as of (`valid_at`, `known_at`), or a `Patient` (identifying data only
    /// with `personal`; the read is recorded first).
    pub async fn fhir_read(
        &self,
        resource_type: &str,
        id: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
        personal: Option<PersonalRead<'_>>,
    ) -> Result<Value, AppError> {
        if let Some(Lookup::PatientKey(key)) = lookup(resource_type, id) {
            if resource_type == "Patient" {
                if self.fhir_patient_chains(&key).await?.is_empty() {
                    return Err(not_found(resource_type, id));
                }
                let identifying = match personal {
                    Some(read) => self.fhir_identifying(&key, read).await?,
                    None => None,
                };
                return Ok(patient(&key, identifying.as_ref()));
            }
        }
        let chains = self.fhir_chains_of(resource_type, id).await?;
        let Some(coi) = chains.first() else {
            return Err(not_found(resource_type, id));
        };
        let (_, resources, _) = self
            .fhir_chain_resources(coi, valid_at, known_at, None)
            .await?;
        resources
            .into_iter()
            .find(|r| r["resourceType"] == resource_type && r["id"] == id)
            .ok_or_else(|| not_found(resource_type, id))
    }

    /// A chain's `collection` Bundle (id `chain-<COI content>`): every resource of the
    /// chain as of (`valid_at`, `known_at`), stamped with the `known_at` used.
    pub async fn fhir_bundle(
        &self,
        id: &str,
        valid_at: Option<&str>,
        known_at: Option<&str>,
        personal: Option<PersonalRead<'_>>,
    ) -> Result<Value, AppError> {
        let Some(Lookup::Chain(coi)) = lookup("Bundle", id) else {
            return Err(not_found("Bundle", id));
        };
        let (coi, resources, known_at) = self
            .fhir_chain_resources(&coi, valid_at, known_at, personal)
            .await?;
        Ok(collection_bundle(
            id,
            Some(json!({"system": system::COI, "value": coi})),
            &known_at.to_string(),
            resources,
        ))
    }

    /// A site (`Organization`, `Location`) or a person (`Practitioner`) as recorded now.
    pub async fn fhir_reference_read(
        &self,
        resource_type: &str,
        id: &str,
    ) -> Result<Value, AppError> {
        let (stream, key, code) = match lookup(resource_type, id) {
            Some(Lookup::Site(site)) => (StreamId::site(&site), "site_id", site),
            Some(Lookup::Person(person)) => (StreamId::person(&person), "person_id", person),
            _ => return Err(not_found(resource_type, id)),
        };
        let mut record = self.current_state(&stream).await?;
        let Some(fields) = record.as_object_mut().filter(|r| !r.is_empty()) else {
            return Err(not_found(resource_type, id));
        };
        fields.entry(key).or_insert_with(|| json!(code));
        Ok(match resource_type {
            "Organization" => organization(&record),
            "Location" => location(&record),
            _ => practitioner(&record),
        })
    }

    /// Whether one of these chains is in the principal's scope for `permission`.
    async fn any_in_scope(
        &self,
        principal: &Principal,
        permission: Permission,
        chains: &[String],
    ) -> Result<Option<String>, AppError> {
        for coi in chains {
            if let Some(sites) = self.chain_sites(coi).await? {
                if chain_in_scope(&principal.grants, permission, &sites) {
                    return Ok(Some(coi.clone()));
                }
            }
        }
        Ok(None)
    }

    /// Imports a treatment center's Patient: its identifying data goes to the vault for
    /// the patient key it names (never to the ledger), through a chain of that patient in
    /// the sender's scope (the one it names, if it names one). Returns an informational
    /// OperationOutcome (field names only), whether the patient was new to the vault, and
    /// the Patient's id.
    pub async fn fhir_import_patient(
        &self,
        principal: &Principal,
        resource: &Value,
    ) -> Result<(Value, bool, String), ImportError> {
        let import = parse_patient(resource).map_err(ImportError::Unprocessable)?;
        let key = import.patient_key.as_str();
        let chains = self.fhir_patient_chains(key).await?;
        if chains.is_empty() {
            return Err(unprocessable(
                "not-found",
                "Patient.identifier",
                format!("no chain is enrolled with patient key {key}: Autolog keeps identifying data only for an enrolled patient"),
            ));
        }
        let candidates = match &import.coi {
            Some(given) => {
                let coi = Coi::parse("coi", given)
                    .map(|c| c.to_string())
                    .map_err(|e| {
                        unprocessable(
                            "value",
                            "Patient.identifier",
                            format!("the COI {given}: {}", e.rule),
                        )
                    })?;
                if !chains.contains(&coi) {
                    return Err(unprocessable(
                        "business-rule",
                        "Patient.identifier",
                        format!("names chain {coi}, which is not a chain of patient key {key}"),
                    ));
                }
                vec![coi]
            }
            None => chains,
        };
        let forbidden = |rule: String| ImportError::Refused {
            error: AppError::Forbidden(FieldError::new("Patient.identifier", key, rule)),
            element: "Patient.identifier",
        };
        let Some(via) = self
            .any_in_scope(principal, Permission::RecordPersonalData, &candidates)
            .await?
        else {
            return Err(forbidden(format!(
                "no chain of this patient is in the scope of {}'s sites for recording identifying data",
                principal.actor
            )));
        };
        let through = self.personal_data_chains(key).await?;
        if !through.is_empty()
            && self
                .any_in_scope(principal, Permission::RecordPersonalData, &through)
                .await?
                .is_none()
        {
            return Err(forbidden(format!(
                "this patient's identifying data was recorded through chains outside the scope of {}",
                principal.actor
            )));
        }
        let recorded = self
            .record_personal_data_via(
                Some(via.as_str()),
                key,
                &Value::Object(import.fields.clone()),
                &principal.actor,
            )
            .await
            .map_err(|error| {
                let (error, element) = match error {
                    AppError::Invalid(f) => {
                        let element = patient_element(&f.field);
                        (
                            AppError::Invalid(FieldError::new(element, "(not shown)", f.rule)),
                            element,
                        )
                    }
                    other => (other, ""),
                };
                ImportError::Refused { error, element }
            })?;
        let replaced = recorded.replaced;
        let fields: Vec<&String> = import.fields.keys().collect();
        let mut issues = vec![Issue {
            severity: "information",
            code: "informational",
            diagnostics: format!(
                "identifying data of patient {key} {} in the personal-data vault through chain {via} (fields: {}); the ledger records who recorded which fields, never the values",
                if replaced { "replaced" } else { "recorded" },
                fields.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
            ),
            expression: None,
        }];
        if !import.not_kept.is_empty() {
            issues.push(Issue {
                severity: "information",
                code: "informational",
                diagnostics: format!("not kept: {}", import.not_kept.join(", ")),
                expression: None,
            });
        }
        Ok((operation_outcome(&issues), !replaced, id::patient(key)))
    }

    /// Imports an administration Procedure: it becomes `chain.administered` on the unit's
    /// chain, sent through `append_json_as` with the sender as actor (the same checks and
    /// scope as the native API: bedside check passed, people qualified, site, step). The
    /// time is given in the site's zone. Returns the Procedure as Autolog now renders it
    /// and whether it was new (a resend is answered with the first record).
    pub async fn fhir_import_administration(
        &self,
        principal: &Principal,
        resource: &Value,
    ) -> Result<(Value, bool), ImportError> {
        let a = parse_administration(resource).map_err(ImportError::Unprocessable)?;
        let Some(coi) = self.linked_chain(&StreamId::unit(&a.unit)).await? else {
            return Err(unprocessable(
                "not-found",
                "Procedure.used",
                format!("names unit {}, which Autolog has not recorded", a.unit),
            ));
        };
        let chain_patient = self.patient_key_of(&coi).await?;
        if chain_patient != a.patient_key {
            return Err(unprocessable(
                "business-rule",
                "Procedure.subject",
                format!(
                    "names patient key {}, which is not the patient of unit {}'s chain",
                    a.patient_key, a.unit
                ),
            ));
        }
        let site = self.current_state(&StreamId::site(&a.site_id)).await?;
        let zone = text(&site, "time_zone");
        let Ok(tz) = jiff::tz::TimeZone::get(zone) else {
            return Err(unprocessable(
                "not-found",
                "Procedure.location",
                format!(
                    "names site {}, which is not a registered site with a time zone",
                    a.site_id
                ),
            ));
        };
        let instant = Instant::parse_rfc3339("occurrenceDateTime", &a.occurred).map_err(|e| {
            unprocessable(
                "value",
                "Procedure.occurrence",
                format!("{}: {}", a.occurred, e.rule),
            )
        })?;
        let occurred_at = instant.timestamp().to_zoned(tz).to_string();
        let system = principal.system_id().unwrap_or("fhir");
        let event = json!({
            "stream": StreamId::chain(&coi),
            "occurred_at": occurred_at,
            "site": a.site_id,
            "source": {"system": system, "source_event_id": a.source_event_id},
            "body": {"type": "chain.administered", "version": 1, "data": {
                "step_code": a.step_code,
                "site_id": a.site_id,
                "administered_by": a.administered_by,
                "verified_by": a.verified_by,
                "unit": a.unit,
            }},
        });
        let result = self
            .append_json_via(principal, event.to_string().as_bytes(), "fhir")
            .await
            .map_err(|error| {
                let element = match &error {
                    AppError::Invalid(f)
                    | AppError::Forbidden(f)
                    | AppError::Conflict(f)
                    | AppError::Gone(f)
                    | AppError::TooLarge(f) => administration_element(&f.field),
                    AppError::Unmet(list) => list
                        .first()
                        .map_or("Procedure", |f| administration_element(&f.field)),
                    _ => "",
                };
                ImportError::Refused { error, element }
            })?;
        let procedure = self
            .fhir_read("Procedure", &id::infusion(&a.unit), None, None, None)
            .await?;
        Ok((procedure, result.appended() > 0))
    }
}
