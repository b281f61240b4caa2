//! What a treatment center sends: its `Patient` (identifying data for the vault, keyed by
//! Autolog's pseudonymous patient key) and an administration `Procedure` (Autolog's
//! `chain.administered`). Each refusal names the FHIR element at fault; a patient's
//! identifying values are never repeated in a refusal.

use serde_json::{Map, Value};

use super::{id, is_date, is_date_time, system, text, Issue};

/// A Patient read for the vault.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientImport {
    pub patient_key: String,
    /// The chain it names (canonical COI), if it carries one.
    pub coi: Option<String>,
    /// Vault fields: name, given_name, family_name, date_of_birth, mrn, contact.
    pub fields: Map<String, Value>,
    /// Elements present but not kept (Autolog keeps only what identifies the patient at
    /// the bedside).
    pub not_kept: Vec<String>,
}

/// An administration read from a Procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdministrationImport {
    /// The sender's id for the administration (its first identifier's value).
    pub source_event_id: String,
    /// The final unit administered (canonical identifier).
    pub unit: String,
    /// The patient key the subject names.
    pub patient_key: String,
    pub step_code: String,
    pub site_id: String,
    pub administered_by: String,
    pub verified_by: String,
    /// When, as sent (a FHIR dateTime with time and offset).
    pub occurred: String,
}

fn is_code(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

fn array<'a>(resource: &'a Value, key: &str) -> &'a [Value] {
    resource
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn has_coding(concept: &Value, system: &str, code: &str) -> bool {
    array(concept, "coding")
        .iter()
        .any(|c| text(c, "system") == system && text(c, "code") == code)
}

fn check_type(resource: &Value, expected: &str) -> Result<(), Vec<Issue>> {
    if !resource.is_object() {
        return Err(vec![Issue::error(
            "structure",
            "",
            format!("the body must be a FHIR {expected} resource (a JSON object)"),
        )]);
    }
    let given = text(resource, "resourceType");
    if given != expected {
        return Err(vec![Issue::error(
            "invalid",
            "resourceType",
            format!("must be {expected}, given {given:?}"),
        )]);
    }
    Ok(())
}

/// The one Autolog patient key among a Patient's identifiers (an issue when none, several
/// or one that is not a code).
fn patient_key_of(keys: &[&str], issues: &mut Vec<Issue>) -> String {
    match keys {
        [] => {
            issues.push(Issue::error(
                "required",
                "Patient.identifier",
                format!(
                    "names no Autolog patient key: add an identifier with system {} and the pseudonymous key the patient was enrolled with",
                    system::PATIENT_KEY
                ),
            ));
            String::new()
        }
        [key] if is_code(key) => key.to_string(),
        [_] => {
            issues.push(Issue::error(
                "value",
                "Patient.identifier",
                "the patient key must be a code of 1-64 letters, digits or . _ : -",
            ));
            String::new()
        }
        _ => {
            issues.push(Issue::error(
                "invalid",
                "Patient.identifier",
                "names more than one Autolog patient key",
            ));
            String::new()
        }
    }
}

/// The name kept (official, else usual, else any current one): given, family and full
/// name; other names are listed as not kept.
fn name_fields(resource: &Value, fields: &mut Map<String, Value>, not_kept: &mut Vec<String>) {
    let names = array(resource, "name");
    let chosen = ["official", "usual"]
        .iter()
        .find_map(|u| names.iter().find(|n| text(n, "use") == *u))
        .or_else(|| {
            names
                .iter()
                .find(|n| !matches!(text(n, "use"), "old" | "maiden"))
        });
    if let Some(name) = chosen {
        let given: Vec<&str> = array(name, "given")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let family = text(name, "family");
        if !given.is_empty() {
            fields.insert("given_name".into(), Value::from(given.join(" ")));
        }
        if !family.trim().is_empty() {
            fields.insert("family_name".into(), Value::from(family));
        }
        let full = match text(name, "text") {
            t if !t.trim().is_empty() => t.to_string(),
            _ => given
                .iter()
                .copied()
                .chain((!family.is_empty()).then_some(family))
                .collect::<Vec<_>>()
                .join(" "),
        };
        if !full.trim().is_empty() {
            fields.insert("name".into(), Value::from(full));
        }
    }
    if names.len() > usize::from(chosen.is_some()) {
        not_kept.push("Patient.name (other than the one kept)".to_string());
    }
}

/// Reads a treatment center's Patient: the patient key (an identifier with system
/// [`system::PATIENT_KEY`]), optionally the chain (system [`system::COI`]), and the
/// identifying data Autolog keeps in the vault: the official (else usual, else first)
/// name, birthDate, the medical record number (identifier of type v2-0203 `MR`) and the
/// first telecom. Everything else is reported as not kept.
pub fn parse_patient(resource: &Value) -> Result<PatientImport, Vec<Issue>> {
    check_type(resource, "Patient")?;
    let mut issues = Vec::new();
    let identifiers = array(resource, "identifier");
    let keys: Vec<&str> = identifiers
        .iter()
        .filter(|i| text(i, "system") == system::PATIENT_KEY)
        .map(|i| text(i, "value"))
        .collect();
    let patient_key = patient_key_of(&keys, &mut issues);
    let coi = identifiers
        .iter()
        .find(|i| text(i, "system") == system::COI)
        .map(|i| text(i, "value").to_string());
    let mut fields = Map::new();
    let mut not_kept = Vec::new();
    // The medical record number.
    if let Some(mrn) = identifiers
        .iter()
        .filter(|i| {
            i.get("type")
                .is_some_and(|t| has_coding(t, system::IDENTIFIER_TYPE, "MR"))
        })
        .map(|i| text(i, "value"))
        .find(|v| !v.trim().is_empty())
    {
        fields.insert("mrn".into(), Value::from(mrn));
    }
    name_fields(resource, &mut fields, &mut not_kept);
    // The date of birth.
    if let Some(birth) = resource.get("birthDate") {
        match birth.as_str() {
            Some(d) if is_date(d) => {
                fields.insert("date_of_birth".into(), Value::from(d));
            }
            _ => issues.push(Issue::error(
                "value",
                "Patient.birthDate",
                "must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)",
            )),
        }
    }
    // A way to reach the patient.
    if let Some(t) = array(resource, "telecom")
        .iter()
        .find(|t| !text(t, "value").trim().is_empty())
    {
        let system = text(t, "system");
        let value = text(t, "value");
        let contact = if system.is_empty() {
            value.to_string()
        } else {
            format!("{system}: {value}")
        };
        fields.insert("contact".into(), Value::from(contact));
    }
    if let Some(object) = resource.as_object() {
        for key in object.keys() {
            let kept = matches!(
                key.as_str(),
                "resourceType"
                    | "id"
                    | "meta"
                    | "text"
                    | "identifier"
                    | "name"
                    | "birthDate"
                    | "telecom"
            );
            if !kept && !key.starts_with('_') {
                not_kept.push(format!("Patient.{key}"));
            }
        }
    }
    if issues.is_empty() && fields.is_empty() {
        issues.push(Issue::error(
            "required",
            "Patient",
            "carries none of the identifying data Autolog keeps: name, birthDate, an identifier of type MR, telecom",
        ));
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(PatientImport {
        patient_key,
        coi,
        fields,
        not_kept,
    })
}

/// The Autolog id a reference names: `Type/<id>` (read back with `to_id`), or a logical
/// reference by identifier in `system`.
fn referenced_code(
    reference: &Value,
    resource_type: &str,
    system: &str,
    to_code: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    if let Some(r) = reference.get("reference").and_then(Value::as_str) {
        if let Some(rest) = r.strip_prefix(&format!("{resource_type}/")) {
            return to_code(rest);
        }
    }
    reference
        .get("identifier")
        .filter(|i| text(i, "system") == system)
        .map(|i| text(i, "value").to_string())
        .filter(|v| !v.is_empty())
}

fn unit_of(reference: &Value) -> Option<String> {
    referenced_code(
        reference,
        "BiologicallyDerivedProduct",
        system::FINAL_UNIT,
        |rest| match super::lookup("BiologicallyDerivedProduct", rest) {
            Some(super::Lookup::Unit(unit)) => Some(unit),
            _ => None,
        },
    )
}

/// Reads an administration Procedure: status `completed`; `code` from Autolog's
/// process-step code system; `subject` the patient (`Patient/<key>` or the patient-key
/// identifier); `used` the final unit (`BiologicallyDerivedProduct/unit-...` or the
/// final-unit identifier); `performer`s with function v3-ParticipationType `PRF` (who
/// administered) and `VRF` (who verified), each `Practitioner/<person id>` or the person
/// identifier; `location` the site; `occurrenceDateTime` (or `occurrencePeriod.start`)
/// with time and offset; `identifier` the sender's id. Every element at fault is listed.
pub fn parse_administration(resource: &Value) -> Result<AdministrationImport, Vec<Issue>> {
    check_type(resource, "Procedure")?;
    let mut issues = Vec::new();
    let status = text(resource, "status");
    if status != "completed" {
        need(
            &mut issues,
            "Procedure.status",
            "business-rule",
            format!("is {status:?}: only a completed administration is recorded"),
        );
    }
    let source_event_id = array(resource, "identifier")
        .iter()
        .map(|i| text(i, "value"))
        .find(|v| !v.is_empty())
        .unwrap_or_default()
        .to_string();
    if source_event_id.is_empty() {
        need(&mut issues,
            "Procedure.identifier",
            "required",
            "carries no identifier: the sender's id for the administration is required, so that a resend is recognised".into(),
        );
    }
    let step_code = resource
        .get("code")
        .map(|c| array(c, "coding"))
        .unwrap_or_default()
        .iter()
        .find(|c| text(c, "system") == system::PROCESS_STEP)
        .map(|c| text(c, "code").to_string())
        .unwrap_or_default();
    if step_code.is_empty() {
        need(
            &mut issues,
            "Procedure.code",
            "code-invalid",
            format!(
                "must carry the administration step of the product's process, coded in {}",
                system::PROCESS_STEP
            ),
        );
    }
    let patient_key = resource
        .get("subject")
        .and_then(|s| referenced_code(s, "Patient", system::PATIENT_KEY, id::to_code))
        .unwrap_or_default();
    if patient_key.is_empty() {
        need(&mut issues,
            "Procedure.subject",
            "required",
            format!(
                "must name the patient by Autolog's key: Patient/<key>, or an identifier with system {}",
                system::PATIENT_KEY
            ),
        );
    }
    let unit = unit_used(resource, &mut issues);
    let (administered_by, verified_by) = performers(resource, &mut issues);
    let site_id = resource
        .get("location")
        .and_then(|l| referenced_code(l, "Location", system::SITE, id::to_code))
        .unwrap_or_default();
    if site_id.is_empty() {
        need(
            &mut issues,
            "Procedure.location",
            "required",
            "must name the treatment center: Location/<site id>".into(),
        );
    }
    let occurred = resource
        .get("occurrenceDateTime")
        .and_then(Value::as_str)
        .or_else(|| {
            resource
                .get("occurrencePeriod")
                .and_then(|p| p.get("start"))
                .and_then(Value::as_str)
        })
        .unwrap_or_default()
        .to_string();
    if !is_date_time(&occurred) {
        need(
            &mut issues,
            "Procedure.occurrence",
            "required",
            "must be occurrenceDateTime (or occurrencePeriod.start) with a time and a UTC offset"
                .into(),
        );
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(AdministrationImport {
        source_event_id,
        unit,
        patient_key,
        step_code,
        site_id,
        administered_by,
        verified_by,
        occurred,
    })
}

/// An issue of the Procedure: `code` at `expression`, with the rule.
fn need(issues: &mut Vec<Issue>, expression: &str, code: &'static str, rule: String) {
    issues.push(Issue::error(code, expression, rule));
}

/// The one final unit the Procedure used.
fn unit_used(resource: &Value, issues: &mut Vec<Issue>) -> String {
    let units: Vec<String> = array(resource, "used")
        .iter()
        .filter_map(|u| u.get("reference"))
        .filter_map(unit_of)
        .collect();
    match units.as_slice() {
        [one] => one.clone(),
        [] => {
            need(issues,
                "Procedure.used",
                "required",
                format!(
                    "must name the final unit administered: BiologicallyDerivedProduct/unit-<unit>, or an identifier with system {}",
                    system::FINAL_UNIT
                ),
            );
            String::new()
        }
        _ => {
            need(
                issues,
                "Procedure.used",
                "business-rule",
                "names more than one final unit: record each administration on its own".into(),
            );
            String::new()
        }
    }
}

/// Who administered (PRF) and who verified at the bedside (VRF).
fn performers(resource: &Value, issues: &mut Vec<Issue>) -> (String, String) {
    let performer = |function: &str| -> Option<String> {
        array(resource, "performer")
            .iter()
            .filter(|p| {
                p.get("function")
                    .is_some_and(|f| has_coding(f, system::PARTICIPATION_TYPE, function))
            })
            .filter_map(|p| p.get("actor"))
            .find_map(|a| referenced_code(a, "Practitioner", system::PERSON, id::to_code))
    };
    let administered_by = performer("PRF").unwrap_or_default();
    let verified_by = performer("VRF").unwrap_or_default();
    for (who, function, role) in [
        (&administered_by, "PRF", "who administered"),
        (&verified_by, "VRF", "who verified at the bedside"),
    ] {
        if who.is_empty() {
            need(issues,
                "Procedure.performer",
                "required",
                format!(
                    "must name {role}: a performer with function {}#{function} and actor Practitioner/<person id>",
                    system::PARTICIPATION_TYPE
                ),
            );
        }
    }
    (administered_by, verified_by)
}

/// The Procedure element an Autolog refusal of the administration it became is about
/// (from the refusal's field).
pub fn administration_element(field: &str) -> &'static str {
    let field = field.strip_prefix("[0].").unwrap_or(field);
    match field {
        "body.data.unit" | "stream" => "Procedure.used",
        "body.data.administered_by" | "body.data.verified_by" => "Procedure.performer",
        "body.data.site_id" | "site" => "Procedure.location",
        "body.data.step_code" => "Procedure.code",
        "occurred_at" => "Procedure.occurrence",
        f if f.starts_with("source") => "Procedure.identifier",
        "actor" => "Procedure.recorder",
        _ => "Procedure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patient_without_a_patient_key_is_refused_naming_the_identifier() {
        let p = json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}]});
        let issues = parse_patient(&p).expect_err("no key");
        assert_eq!(issues[0].expression.as_deref(), Some("Patient.identifier"));
        assert!(!issues[0].diagnostics.contains("Chalmers"));
        let wrong = json!({"resourceType": "Procedure"});
        assert_eq!(
            parse_patient(&wrong).expect_err("type")[0]
                .expression
                .as_deref(),
            Some("resourceType")
        );
    }

    #[test]
    fn a_patient_gives_the_vault_its_fields() {
        let p = json!({
            "resourceType": "Patient",
            "identifier": [
                {"system": system::PATIENT_KEY, "value": "PK-1"},
                {"type": {"coding": [{"system": system::IDENTIFIER_TYPE, "code": "MR"}]}, "value": "12345"},
            ],
            "name": [{"use": "maiden", "family": "Windsor"}, {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
            "birthDate": "1974-12-25",
            "telecom": [{"use": "home"}, {"system": "phone", "value": "(03) 5555 6473"}],
            "gender": "male",
        });
        let read = parse_patient(&p).expect("patient");
        assert_eq!(read.patient_key, "PK-1");
        assert_eq!(read.fields["name"], "Peter James Chalmers");
        assert_eq!(read.fields["given_name"], "Peter James");
        assert_eq!(read.fields["family_name"], "Chalmers");
        assert_eq!(read.fields["date_of_birth"], "1974-12-25");
        assert_eq!(read.fields["mrn"], "12345");
        assert_eq!(read.fields["contact"], "phone: (03) 5555 6473");
        assert!(read.not_kept.contains(&"Patient.gender".to_string()));
    }

    #[test]
    fn an_appendectomy_is_no_administration_and_every_missing_element_is_named() {
        let p = json!({"resourceType": "Procedure", "status": "completed",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "80146002"}]},
            "subject": {"reference": "Patient/example"}, "occurrenceDateTime": "2013-04-05"});
        let issues = parse_administration(&p).expect_err("not an administration");
        let named: Vec<&str> = issues
            .iter()
            .filter_map(|i| i.expression.as_deref())
            .collect();
        for element in [
            "Procedure.identifier",
            "Procedure.code",
            "Procedure.used",
            "Procedure.performer",
            "Procedure.location",
            "Procedure.occurrence",
        ] {
            assert!(named.contains(&element), "{element}: {named:?}");
        }
        // Patient/example is a well-formed reference to the key "example".
        assert!(!named.contains(&"Procedure.subject"), "{named:?}");
    }

    #[test]
    fn refusal_fields_map_to_procedure_elements() {
        assert_eq!(administration_element("body.data.unit"), "Procedure.used");
        assert_eq!(
            administration_element("[0].occurred_at"),
            "Procedure.occurrence"
        );
        assert_eq!(
            administration_element("source.source_event_id"),
            "Procedure.identifier"
        );
        assert_eq!(administration_element("body.type"), "Procedure");
    }
}
