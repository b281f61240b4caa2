//! Who may do what, where: the roles, what each may read and record, site scope, and the
//! payloads of the access audit trail (accounts, grants, tokens, personal-data reads).

pub mod signature;
pub mod verification;

use serde::Deserialize;

use crate::error::FieldError;
use crate::ledger::envelope::{check_actor, check_code, Event};
use crate::ledger::event_type::Check;

/// A grant's site that covers every site of the network (auditors, administrators,
/// reference-data stewards).
pub const EVERY_SITE: &str = "*";

/// The roles a person is granted, each per site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    ApheresisCoordinator,
    Courier,
    ManufacturingOperator,
    QcAnalyst,
    QaReleaser,
    TreatmentNurse,
    TreatmentPhysician,
    ReferenceDataSteward,
    Auditor,
    Administrator,
}

/// Every role, in the order the documentation lists them.
pub const ROLES: &[Role] = &[
    Role::ApheresisCoordinator,
    Role::Courier,
    Role::ManufacturingOperator,
    Role::QcAnalyst,
    Role::QaReleaser,
    Role::TreatmentNurse,
    Role::TreatmentPhysician,
    Role::ReferenceDataSteward,
    Role::Auditor,
    Role::Administrator,
];

/// What a request needs. Reads of a chain are further limited to the chains in scope
/// of the sites the permission is granted at (see [`chain_in_scope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Chains (pseudonymous), their events, genealogy and turnaround.
    ReadChains,
    /// Every event of the ledger, proofs and checkpoints (the audit view).
    ReadLedger,
    /// Reference data: registries, resolution, alignment, export.
    ReadReference,
    /// Alerts (of chains and sites in scope).
    ReadAlerts,
    /// Acknowledge and resolve alerts.
    HandleAlerts,
    /// Network reports: reconciliation, retention.
    ReadReports,
    /// Record events (each event type is further checked with [`may_record`]).
    Record,
    /// Import reference data in bulk.
    ImportReference,
    /// Register and deactivate webhooks.
    ManageWebhooks,
    /// User accounts, role grants and API tokens.
    ManageAccess,
    /// Read a patient's identifying data (each read is recorded).
    ReadPersonalData,
    /// Record a patient's identifying data.
    RecordPersonalData,
    /// Erase a patient's identifying data (crypto-shredding) after retention.
    ErasePersonalData,
}

impl Role {
    /// The kinds of site whose process steps this role performs: a product's process
    /// names the site types that perform each step, and a `chain.step_performed` needs a
    /// role whose kind is among them (a nurse thaws at the treatment center; an operator
    /// manufactures at the manufacturing site).
    pub fn step_site_types(self) -> &'static [&'static str] {
        match self {
            Role::ApheresisCoordinator => &["apheresis_center"],
            Role::ManufacturingOperator => &["manufacturing_site"],
            Role::QcAnalyst => &["laboratory", "manufacturing_site"],
            Role::TreatmentNurse | Role::TreatmentPhysician => &["treatment_center"],
            Role::Courier => &["logistics_depot"],
            Role::QaReleaser | Role::ReferenceDataSteward | Role::Auditor | Role::Administrator => {
                &[]
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ApheresisCoordinator => "apheresis_coordinator",
            Role::Courier => "courier",
            Role::ManufacturingOperator => "manufacturing_operator",
            Role::QcAnalyst => "qc_analyst",
            Role::QaReleaser => "qa_releaser",
            Role::TreatmentNurse => "treatment_nurse",
            Role::TreatmentPhysician => "treatment_physician",
            Role::ReferenceDataSteward => "reference_data_steward",
            Role::Auditor => "auditor",
            Role::Administrator => "administrator",
        }
    }

    /// Parses a role name; the error lists the roles.
    pub fn parse(field: &str, name: &str) -> Result<Role, FieldError> {
        ROLES
            .iter()
            .copied()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = ROLES.iter().map(|r| r.as_str()).collect();
                FieldError::new(field, name, format!("must be one of {}", names.join(", ")))
            })
    }

    /// Whether the role holds the permission (at the sites it is granted at).
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match self {
            Auditor => matches!(
                permission,
                ReadChains | ReadLedger | ReadReference | ReadAlerts | ReadReports
            ),
            Administrator => matches!(
                permission,
                ReadReference | ManageAccess | ManageWebhooks | ReadReports | ReadAlerts
            ),
            ReferenceDataSteward => matches!(
                permission,
                ReadReference | Record | ImportReference | ReadAlerts | HandleAlerts
            ),
            ApheresisCoordinator | TreatmentNurse | TreatmentPhysician => matches!(
                permission,
                ReadChains
                    | ReadReference
                    | ReadAlerts
                    | HandleAlerts
                    | Record
                    | ReadPersonalData
                    | RecordPersonalData
            ),
            Courier | ManufacturingOperator | QcAnalyst => matches!(
                permission,
                ReadChains | ReadReference | ReadAlerts | HandleAlerts | Record
            ),
            QaReleaser => matches!(
                permission,
                ReadChains
                    | ReadReference
                    | ReadAlerts
                    | HandleAlerts
                    | Record
                    | ReadReports
                    | ErasePersonalData
            ),
        }
    }

    /// Whether the role sees a chain because its site is the chain's treatment center
    /// (treatment roles), rather than any site taking part in the chain.
    fn scoped_to_treatment_center(self) -> bool {
        matches!(self, Role::TreatmentNurse | Role::TreatmentPhysician)
    }
}

/// The roles a source system's API token acts with, by the system's kind.
pub fn roles_of_source_kind(kind: &str) -> &'static [Role] {
    match kind {
        "apheresis" => &[Role::ApheresisCoordinator],
        "logistics" => &[Role::Courier],
        "mes" => &[Role::ManufacturingOperator],
        "lims" => &[Role::QcAnalyst],
        "qms" => &[Role::QaReleaser],
        "treatment" => &[Role::TreatmentNurse, Role::TreatmentPhysician],
        "ltfu" => &[Role::TreatmentPhysician],
        "mdm" | "reference" => &[Role::ReferenceDataSteward],
        _ => &[],
    }
}

/// Whether a role may record events of this type (Autolog's own types are recorded by
/// nobody else; the catalogue refuses them before this is asked).
pub fn may_record(role: Role, event_type: &str) -> bool {
    use Role::*;
    let family = event_type.split_once('.').map_or(event_type, |(f, _)| f);
    match role {
        Auditor | Administrator => false,
        ReferenceDataSteward => matches!(
            family,
            "site"
                | "personnel"
                | "equipment"
                | "material_lot"
                | "process_step"
                | "product"
                | "source_system"
                | "crosswalk"
                | "label_template"
                | "annotation"
        ),
        ApheresisCoordinator => matches!(
            event_type,
            "label.printed"
                | "label.voided"
                | "label.verified"
                | "chain.enrolled"
                | "chain.step_performed"
                | "chain.collected"
                | "chain.collection_site_assigned"
                | "chain.cancelled"
                | "chain.hold_placed"
                | "custody.handed_off"
                | "custody.received"
                | "annotation.recorded"
        ),
        Courier => matches!(
            event_type,
            "label.printed"
                | "label.voided"
                | "label.verified"
                | "custody.handed_off"
                | "custody.received"
                | "sample.handed_off"
                | "sample.received"
                | "chain.hold_placed"
                | "annotation.recorded"
        ),
        ManufacturingOperator => matches!(
            event_type,
            "label.printed"
                | "label.voided"
                | "label.verified"
                | "chain.step_performed"
                | "sample.handed_off"
                | "sample.received"
                | "chain.hold_placed"
                | "custody.handed_off"
                | "custody.received"
                | "batch.created"
                | "batch.material_consumed"
                | "batch.units_produced"
                | "deviation.opened"
                | "equipment.calibrated"
                | "annotation.recorded"
        ),
        QcAnalyst => matches!(
            event_type,
            "chain.step_performed"
                | "sample.handed_off"
                | "sample.received"
                | "chain.hold_placed"
                | "batch.test_result_recorded"
                | "deviation.opened"
                | "annotation.recorded"
        ),
        QaReleaser => matches!(
            event_type,
            "audit_trail.reviewed"
                | "label.verified"
                | "chain.released"
                | "unit.expiry_extended"
                | "chain.hold_placed"
                | "chain.hold_released"
                | "chain.legal_hold_placed"
                | "chain.legal_hold_released"
                | "custody.handed_off"
                | "deviation.opened"
                | "deviation.investigated"
                | "deviation.closed"
                | "material_lot.status_changed"
                | "annotation.recorded"
        ),
        TreatmentNurse => matches!(
            event_type,
            "label.verified"
                | "custody.received"
                | "chain.step_performed"
                | "chain.hold_placed"
                | "chain.bedside_verified"
                | "chain.administered"
                | "annotation.recorded"
        ),
        TreatmentPhysician => matches!(
            event_type,
            "chain.enrolled"
                | "chain.step_performed"
                | "chain.cancelled"
                | "chain.collection_site_assigned"
                | "custody.received"
                | "chain.hold_placed"
                | "chain.exceptional_release_requested"
                | "chain.bedside_verified"
                | "chain.administered"
                | "chain.follow_up_recorded"
                | "annotation.recorded"
        ),
    }
}

/// One role held at one site (or at [`EVERY_SITE`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub role: Role,
    pub site_id: String,
}

impl Grant {
    /// Whether the grant holds at `site_id` (its own site, or every site).
    pub fn covers(&self, site_id: &str) -> bool {
        self.site_id == EVERY_SITE || self.site_id == site_id
    }
}

/// The sites a chain involves, as far as access is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainSites {
    /// Where the patient was enrolled and is treated.
    pub treatment_site_id: Option<String>,
    /// The site the order names for the collection (see `ChainView::collection_site_id`).
    pub collection_site_id: Option<String>,
    /// Every site that took part (recorded an event, sent or received custody).
    pub involved: std::collections::BTreeSet<String>,
}

impl ChainSites {
    /// The sites of a chain, from its events as recorded (superseded ones too: a site that
    /// took part keeps its view of the chain).
    pub fn of(events: &[Event]) -> ChainSites {
        let mut sites = ChainSites::default();
        for e in events {
            // A note or a hold does not make a site a party to the chain.
            if matches!(
                e.body.event_type.as_str(),
                "annotation.recorded" | "chain.hold_placed"
            ) {
                continue;
            }
            if let Some(site) = &e.site {
                sites.involved.insert(site.clone());
            }
            let data = &e.body.data;
            for field in [
                "treatment_site_id",
                "collection_site_id",
                "destination_site_id",
                "from_site_id",
                "site_id",
            ] {
                let value = text(data, field);
                if !value.is_empty() {
                    sites.involved.insert(value.to_string());
                }
            }
            if e.body.event_type == "chain.enrolled" {
                let t = text(data, "treatment_site_id");
                if !t.is_empty() {
                    sites.treatment_site_id = Some(t.to_string());
                }
                let c = text(data, "collection_site_id");
                let collection = if c.is_empty() { t } else { c };
                if !collection.is_empty() {
                    sites.collection_site_id = Some(collection.to_string());
                    sites.involved.insert(collection.to_string());
                }
            }
            if e.body.event_type == "chain.collection_site_assigned" {
                let c = text(data, "collection_site_id");
                if !c.is_empty() {
                    sites.collection_site_id = Some(c.to_string());
                }
            }
        }
        sites
    }
}

/// The text of a payload field, empty when absent or not text.
fn text<'a>(data: &'a serde_json::Value, field: &str) -> &'a str {
    data.get(field).and_then(|v| v.as_str()).unwrap_or_default()
}

/// Whether any grant with `permission` covers the site.
pub fn allowed_at(grants: &[Grant], permission: Permission, site_id: &str) -> bool {
    grants
        .iter()
        .any(|g| g.role.allows(permission) && g.covers(site_id))
}

/// Whether any grant holds `permission` anywhere (a site-independent endpoint).
pub fn allowed_somewhere(grants: &[Grant], permission: Permission) -> bool {
    grants.iter().any(|g| g.role.allows(permission))
}

/// Whether any grant holds `permission` network-wide.
pub fn allowed_everywhere(grants: &[Grant], permission: Permission) -> bool {
    grants
        .iter()
        .any(|g| g.role.allows(permission) && g.site_id == EVERY_SITE)
}

/// Whether a chain is visible under `permission`: a treatment role sees the chains of
/// patients enrolled at its center; other roles see the chains their site takes part
/// in; a network-wide grant sees every chain.
pub fn chain_in_scope(grants: &[Grant], permission: Permission, chain: &ChainSites) -> bool {
    grants
        .iter()
        .filter(|g| g.role.allows(permission))
        .any(|g| {
            if g.site_id == EVERY_SITE {
                return true;
            }
            if g.role.scoped_to_treatment_center() {
                chain.treatment_site_id.as_deref() == Some(g.site_id.as_str())
            } else {
                chain.involved.contains(&g.site_id)
            }
        })
}

/// Where a holder of `grants` sees chains under `permission`, as [`chain_in_scope`]
/// decides it: `None` with a network-wide grant (every chain); otherwise the treatment
/// centers whose patients' chains it sees, and the sites whose chains (those they take
/// part in) it sees.
pub fn chain_scope(grants: &[Grant], permission: Permission) -> Option<(Vec<String>, Vec<String>)> {
    let mut treatment = Vec::new();
    let mut involved = Vec::new();
    for g in grants.iter().filter(|g| g.role.allows(permission)) {
        if g.site_id == EVERY_SITE {
            return None;
        }
        let list = match g.role.scoped_to_treatment_center() {
            true => &mut treatment,
            false => &mut involved,
        };
        if !list.contains(&g.site_id) {
            list.push(g.site_id.clone());
        }
    }
    Some((treatment, involved))
}

/// Whether some grant lets the holder record `event_type` at `site_id` (`None`: an event
/// with no recording site, which needs a network-wide grant).
pub fn may_record_at(grants: &[Grant], event_type: &str, site_id: Option<&str>) -> bool {
    grants.iter().any(|g| {
        g.role.allows(Permission::Record)
            && may_record(g.role, event_type)
            && match site_id {
                Some(site) => g.covers(site),
                None => g.site_id == EVERY_SITE,
            }
    })
}

// --- Payloads of the access audit trail (all recorded by Autolog itself). ---

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreatedV1 {
    pub person_id: String,
    pub created_by: String,
}

impl Check for UserCreatedV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_code("person_id", &self.person_id)?;
        check_actor("created_by", &self.created_by)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRoleChangedV1 {
    pub person_id: String,
    pub role: String,
    pub site_id: String,
    pub changed_by: String,
}

impl Check for UserRoleChangedV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_code("person_id", &self.person_id)?;
        Role::parse("role", &self.role)?;
        if self.site_id != EVERY_SITE {
            check_code("site_id", &self.site_id)?;
        }
        check_actor("changed_by", &self.changed_by)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAccountChangedV1 {
    pub person_id: String,
    /// Who did it (a person or system), or Autolog itself for a lockout.
    pub changed_by: String,
    #[serde(default)]
    pub detail: Option<String>,
}

impl Check for UserAccountChangedV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_code("person_id", &self.person_id)?;
        if let Some(d) = &self.detail {
            crate::ledger::envelope::check_text("detail", d, 500)?;
        }
        check_actor("changed_by", &self.changed_by)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenChangedV1 {
    pub token_id: String,
    pub system_id: String,
    #[serde(default)]
    pub sites: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    /// An issued token's stored SHA-256 (of a 256-bit random secret), for `verify`.
    #[serde(default)]
    pub secret_sha256: Option<String>,
    pub changed_by: String,
}

impl Check for ApiTokenChangedV1 {
    fn check(&self) -> Result<(), FieldError> {
        uuid::Uuid::parse_str(&self.token_id)
            .map_err(|_| FieldError::new("token_id", &self.token_id, "must be a UUID"))?;
        check_code("system_id", &self.system_id)?;
        for (i, site) in self.sites.iter().enumerate() {
            check_code(&format!("sites[{i}]"), site)?;
        }
        if let Some(at) = &self.expires_at {
            crate::ledger::time::Instant::parse_rfc3339("expires_at", at)?;
        }
        if let Some(digest) = &self.secret_sha256 {
            check_sha256_hex("secret_sha256", digest)?;
        }
        check_actor("changed_by", &self.changed_by)
    }
}

/// 64 lower-case hex characters: a SHA-256 as the ledger writes it.
pub(crate) fn check_sha256_hex(field: &str, value: &str) -> Result<(), FieldError> {
    if value.len() == 64 && value.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            value,
            "must be a SHA-256 as 64 lower-case hex characters",
        ))
    }
}

/// A webhook registered (its URL, who, and the ledger position its alerts start after;
/// never its secret) or stopped, on `webhook/<id>`: what `verify` holds the webhooks table to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChangedV1 {
    pub webhook_id: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub from_position: Option<u64>,
    pub changed_by: String,
}

impl Check for WebhookChangedV1 {
    fn check(&self) -> Result<(), FieldError> {
        uuid::Uuid::parse_str(&self.webhook_id)
            .map_err(|_| FieldError::new("webhook_id", &self.webhook_id, "must be a UUID"))?;
        if let Some(url) = &self.url {
            crate::ledger::envelope::check_text("url", url, 2_000)?;
        }
        if let Some(position) = self.from_position {
            if i64::try_from(position).is_err() {
                return Err(FieldError::new(
                    "from_position",
                    position.to_string(),
                    "must be a ledger position (at most 2^63 - 1)",
                ));
            }
        }
        check_actor("changed_by", &self.changed_by)
    }
}

/// Why identifying data may be read: HL7 v3 PurposeOfUse codes (ActReason code system,
/// `http://terminology.hl7.org/CodeSystem/v3-ActReason`), the ones a cell therapy network
/// has. A code, never free text: a purpose is recorded in the ledger forever, and text
/// could carry the very identifiers it was read for.
pub const PURPOSES_OF_USE: &[(&str, &str)] = &[
    ("TREAT", "treatment"),
    ("ETREAT", "emergency treatment"),
    ("COC", "coordination of care"),
    ("CAREMGT", "care management"),
    (
        "PATSFTY",
        "patient safety (such as the bedside identity check)",
    ),
    ("PATRQT", "requested by the patient"),
    ("PATADMIN", "patient administration"),
    ("HOPERAT", "healthcare operations"),
    ("RECORDMGT", "records management"),
    ("HLEGAL", "legal"),
    ("PUBHLTH", "public health"),
    ("HRESCH", "healthcare research"),
    ("CLINTRL", "clinical trial"),
];

/// The coded reasons a read of identifying data may give besides its purpose: HL7 v3
/// ActReason, value set ActConsentInformationAccessOverrideReason (why a person reads
/// beyond the usual, e.g. in an emergency).
pub const ACCESS_OVERRIDE_REASONS: &[(&str, &str)] = &[
    ("OVRER", "emergency treatment override"),
    ("OVRINCOMP", "incompetency override"),
    ("OVRPJ", "professional judgment override"),
    ("OVRPS", "public safety override"),
    ("OVRTPS", "third party safety override"),
];

/// Checks that `value` is one of [`ACCESS_OVERRIDE_REASONS`]; the refusal lists them and
/// never repeats the value.
pub fn check_access_override_reason(field: &str, value: &str) -> Result<(), FieldError> {
    if ACCESS_OVERRIDE_REASONS
        .iter()
        .any(|(code, _)| *code == value)
    {
        return Ok(());
    }
    let codes: Vec<String> = ACCESS_OVERRIDE_REASONS
        .iter()
        .map(|(code, meaning)| format!("{code} ({meaning})"))
        .collect();
    Err(FieldError::new(
        field,
        "(withheld)",
        format!(
            "must be an HL7 v3 ActConsentInformationAccessOverrideReason code: {}",
            codes.join(", ")
        ),
    ))
}

/// Checks that `value` is one of [`PURPOSES_OF_USE`]; the refusal lists them and never
/// repeats the value (it may be the identifiers themselves).
pub fn check_purpose_of_use(field: &str, value: &str) -> Result<(), FieldError> {
    if PURPOSES_OF_USE.iter().any(|(code, _)| *code == value) {
        return Ok(());
    }
    let codes: Vec<String> = PURPOSES_OF_USE
        .iter()
        .map(|(code, meaning)| format!("{code} ({meaning})"))
        .collect();
    Err(FieldError::new(
        field,
        "(withheld)",
        format!("must be an HL7 v3 PurposeOfUse code: {}", codes.join(", ")),
    ))
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataAccessV1 {
    pub patient_key: String,
    pub by: String,
    /// Why (a read's purpose, an erasure's reason); the identifying data itself never.
    #[serde(default)]
    pub purpose: Option<String>,
    /// A read's optional coded reason ([`ACCESS_OVERRIDE_REASONS`]).
    #[serde(default)]
    pub reason: Option<String>,
    /// The names of the fields recorded (never their values).
    #[serde(default)]
    pub fields: Vec<String>,
    /// The chain it was recorded through, if any.
    #[serde(default)]
    pub coi: Option<String>,
}

impl Check for PersonalDataAccessV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_code("patient_key", &self.patient_key)?;
        if let Some(p) = &self.purpose {
            crate::ledger::envelope::check_text("purpose", p, 500)?;
        }
        if let Some(r) = &self.reason {
            check_access_override_reason("reason", r)?;
        }
        for (i, f) in self.fields.iter().enumerate() {
            check_code(&format!("fields[{i}]"), f)?;
        }
        if let Some(coi) = &self.coi {
            crate::identifiers::Coi::parse("coi", coi)?;
        }
        check_actor("by", &self.by)
    }
}

/// The stream of a sender's own access audit: `access-audit/person/<id>` or
/// `access-audit/system/<id>`. Written by Autolog only.
pub fn access_audit_stream(actor: &str) -> String {
    format!("{ACCESS_AUDIT_PREFIX}{actor}")
}

/// The prefix of every sender's access-audit stream.
pub const ACCESS_AUDIT_PREFIX: &str = "access-audit/";

/// What a refused sender tried: write an event or read a record.
pub const ACCESS_ACTIONS: &[&str] = &["write", "read"];

/// One refused attempt, recorded in the sender's own audit: who, what they tried where,
/// and the rule that refused it (the field and rule of the answer they got).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRefusedV1 {
    pub by: String,
    pub action: String,
    /// The stream (or route) the attempt named, as the sender sent it.
    pub target: String,
    /// The event type a refused write carried.
    #[serde(default)]
    pub event_type: Option<String>,
    pub field: String,
    pub rule: String,
}

impl Check for AccessRefusedV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_actor("by", &self.by)?;
        crate::reference::one_of("action", &self.action, ACCESS_ACTIONS)?;
        crate::ledger::envelope::check_text("target", &self.target, 300)?;
        if let Some(t) = &self.event_type {
            check_code("event_type", t)?;
        }
        crate::ledger::envelope::check_text("field", &self.field, 300)?;
        crate::ledger::envelope::check_text("rule", &self.rule, 1_000)
    }
}

/// Refusals of one sender in one minute beyond those recorded one by one: counted, so a
/// flood of refused attempts cannot fill the ledger.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRefusalsCountedV1 {
    pub by: String,
    /// The minute they happened in (its first instant, RFC 3339 UTC).
    pub minute: String,
    pub refusals: u64,
}

impl Check for AccessRefusalsCountedV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_actor("by", &self.by)?;
        crate::ledger::time::Instant::parse_rfc3339("minute", &self.minute)?;
        if self.refusals == 0 {
            return Err(FieldError::new(
                "refusals",
                "0",
                "must be at least 1 (a minute with none is not recorded)",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultKeyRotatedV1 {
    pub from_key_id: String,
    pub to_key_id: String,
    pub records: u64,
    pub by: String,
}

impl Check for VaultKeyRotatedV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_code("from_key_id", &self.from_key_id)?;
        check_code("to_key_id", &self.to_key_id)?;
        let _ = self.records;
        check_actor("by", &self.by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(role: Role, site: &str) -> Grant {
        Grant {
            role,
            site_id: site.to_string(),
        }
    }

    fn chain(treatment: &str, involved: &[&str]) -> ChainSites {
        ChainSites {
            treatment_site_id: Some(treatment.to_string()),
            collection_site_id: Some(treatment.to_string()),
            involved: involved.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn role_names_round_trip_and_unknown_names_list_the_roles() {
        for role in ROLES {
            assert_eq!(Role::parse("role", role.as_str()), Ok(*role));
        }
        let e = Role::parse("role", "superuser").expect_err("unknown");
        assert_eq!(e.field, "role");
        assert!(e.rule.contains("qa_releaser"), "{}", e.rule);
    }

    #[test]
    fn a_treatment_nurse_sees_only_the_chains_enrolled_at_her_center() {
        let nurse = [grant(Role::TreatmentNurse, "S-LAX-01")];
        let lax = chain("S-LAX-01", &["S-PAR-01", "S-BOS-01", "S-LAX-01"]);
        let bos_patient_collected_at_lax = chain("S-BOS-01", &["S-LAX-01", "S-BOS-01"]);
        assert!(chain_in_scope(&nurse, Permission::ReadChains, &lax));
        assert!(!chain_in_scope(
            &nurse,
            Permission::ReadChains,
            &bos_patient_collected_at_lax
        ));
    }

    #[test]
    fn a_manufacturing_operator_sees_the_chains_his_site_takes_part_in() {
        let op = [grant(Role::ManufacturingOperator, "S-BOS-01")];
        assert!(chain_in_scope(
            &op,
            Permission::ReadChains,
            &chain("S-LAX-01", &["S-BOS-01"])
        ));
        assert!(!chain_in_scope(
            &op,
            Permission::ReadChains,
            &chain("S-LAX-01", &["S-FRA-01"])
        ));
        // but never personal data
        assert!(!allowed_at(&op, Permission::ReadPersonalData, "S-BOS-01"));
    }

    #[test]
    fn auditors_read_everything_and_record_nothing() {
        let auditor = [grant(Role::Auditor, EVERY_SITE)];
        assert!(chain_in_scope(
            &auditor,
            Permission::ReadChains,
            &chain("S-LAX-01", &[])
        ));
        assert!(allowed_everywhere(&auditor, Permission::ReadLedger));
        assert!(!allowed_somewhere(&auditor, Permission::ReadPersonalData));
        assert!(!may_record_at(&auditor, "annotation.recorded", None));
    }

    #[test]
    fn recording_needs_the_role_for_the_type_at_the_events_site() {
        let qa = [grant(Role::QaReleaser, "S-BOS-01")];
        assert!(may_record_at(&qa, "chain.released", Some("S-BOS-01")));
        assert!(!may_record_at(&qa, "chain.released", Some("S-LAX-01")));
        assert!(!may_record_at(&qa, "chain.administered", Some("S-BOS-01")));
        assert!(!may_record_at(&qa, "chain.released", None));
        let steward = [grant(Role::ReferenceDataSteward, EVERY_SITE)];
        assert!(may_record_at(&steward, "site.registered", None));
        assert!(!may_record_at(&steward, "chain.released", Some("S-BOS-01")));
    }

    #[test]
    fn source_system_kinds_map_to_roles() {
        assert_eq!(roles_of_source_kind("mes"), &[Role::ManufacturingOperator]);
        assert!(roles_of_source_kind("unknown").is_empty());
    }
}
