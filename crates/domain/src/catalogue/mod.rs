//! The catalogue of event types the ledger accepts, each with a version and a payload
//! schema. Each area (reference data, chain, batch, access) defines its payloads; this
//! table names them all. An unknown type or version is refused.

pub mod batch;
pub mod chain;
mod draft;
pub mod enrolment;
mod state;

pub use draft::parse_draft;
pub use state::{record_at, stream_state, StreamState};

use crate::catalogue::enrolment::*;
use crate::error::FieldError;
use crate::ledger::envelope::check_text;
use crate::ledger::event_type::{schema, typed, Check, EventType, Fold};
use crate::reference::*;
use serde::Deserialize;
use serde_json::Value;

/// Declares the catalogue once: the typed payload of each accepted `(type, version)`, and
/// the table of event types. Both are generated from the same lines, so a type cannot be
/// accepted without its typed form, nor typed without being accepted.
macro_rules! catalogue {
    ($( $variant:ident($payload:ty) = $name:literal, $version:literal, $fold:expr,
        $description:literal; )*) => {
        /// A payload in its typed form: one variant per accepted `(type, version)`. Read
        /// once from the canonical JSON; folds and rules match on it.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Payload {
            $( $variant($payload), )*
        }

        /// Every event type this build accepts.
        pub const EVENT_TYPES: &[EventType] = &[
            $( EventType {
                name: $name,
                version: $version,
                description: $description,
                fold: $fold,
                validate: schema::<$payload>,
            }, )*
        ];

        impl Payload {
            /// Reads a recorded payload in its typed form (its shape only: the rules were
            /// checked when it was recorded). An unknown type or version is named.
            pub fn read(event_type: &str, version: u32, data: &Value) -> Result<Self, FieldError> {
                match (event_type, version) {
                    $( ($name, $version) => typed::<$payload>(data).map(Payload::$variant), )*
                    _ => Err(lookup(event_type, version).err().unwrap_or_else(|| {
                        FieldError::new("type", event_type, "has no typed form")
                    })),
                }
            }

            /// The event type this payload is of.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( Payload::$variant(_) => $name, )*
                }
            }
        }
    };
}

catalogue! {
    AnnotationRecorded(AnnotationRecordedV1) = "annotation.recorded", 1, Fold::AppendTo("annotations"),
        "A free-text note attached to any stream (who noticed what, and why).";
    SiteRegistered(SiteRegisteredV1) = "site.registered", 1, Fold::Merge,
        "A canonical site enters the network: id, name, types, IANA zone, address, GLN, FIN, FEI, status, validity.";
    SiteAmended(SiteAmendedV1) = "site.amended", 1, Fold::Merge,
        "Some attributes of a registered site change.";
    PersonnelRegistered(PersonnelRegisteredV1) = "personnel.registered", 1, Fold::Merge,
        "A person of the network: id, printed name, status, roles and qualifications per site with validity.";
    PersonnelAmended(PersonnelAmendedV1) = "personnel.amended", 1, Fold::Merge,
        "A person's printed name, status or qualifications (the whole list) change.";
    EquipmentRegistered(EquipmentRegisteredV1) = "equipment.registered", 1, Fold::Merge,
        "A piece of equipment: id, type, site, calibration valid until, status.";
    EquipmentCalibrated(EquipmentCalibratedV1) = "equipment.calibrated", 1, Fold::Merge,
        "A new calibration: valid until a later instant.";
    EquipmentAmended(EquipmentAmendedV1) = "equipment.amended", 1, Fold::Merge,
        "Some attributes of registered equipment change: type, site, calibration, status, validity.";
    MaterialLotRegistered(MaterialLotRegisteredV1) = "material_lot.registered", 1, Fold::Merge,
        "A lot of a material (viral vector, media, reagent, bag): supplier, lot, expiry, status.";
    MaterialLotStatusChanged(MaterialLotStatusChangedV1) = "material_lot.status_changed", 1, Fold::Merge,
        "A lot is released, quarantined or recalled.";
    ProcessStepDefined(ProcessStepDefinedV1) = "process_step.defined", 1, Fold::Merge,
        "A canonical process step code, its description and its GS1 CBV bizStep.";
    ProcessStepAmended(ProcessStepAmendedV1) = "process_step.amended", 1, Fold::Merge,
        "A defined step's description, CBV bizStep, status or validity changes.";
    ProductRegistered(ProductRegisteredV1) = "product.registered", 1, Fold::Merge,
        "A product of the portfolio: code, name, process definition (ordered steps with the site types that may perform each, windows between steps, release tests with specifications), storage temperature range, retention class.";
    ProductAmended(ProductAmendedV1) = "product.amended", 1, Fold::Merge,
        "Some attributes of a registered product change (a new process definition replaces the old one whole).";
    SourceSystemRegistered(SourceSystemRegisteredV1) = "source_system.registered", 1, Fold::Merge,
        "A source system of the network: id, kind, owning site.";
    SourceSystemAmended(SourceSystemAmendedV1) = "source_system.amended", 1, Fold::Merge,
        "A source system's owning site, status or validity changes.";
    VerificationPolicyDefined(crate::access::verification::VerificationPolicyDefinedV1) = "verification_policy.defined", 1, Fold::Merge,
        "How many people (0 to 5) must verify a step (collection, custody handoff or receipt, final labelling, release, bedside check, administration), with which roles, for a product, in a country or at a site.";
    VerificationPolicyAmended(crate::access::verification::VerificationPolicyAmendedV1) = "verification_policy.amended", 1, Fold::Merge,
        "A verification policy's number of verifiers, qualifying roles, status or validity changes.";
    LabelTemplateDefined(crate::labels::template::LabelTemplateDefinedV1) = "label_template.defined", 1, Fold::Merge,
        "How a product's container (collection bag, final unit, shipper) is labelled: label stock (size, roll or A4 sheet), language, the collection product's ISBT 128 code, a bag's expiry, whether the pseudonymous patient key is printed.";
    LabelTemplateAmended(crate::labels::template::LabelTemplateAmendedV1) = "label_template.amended", 1, Fold::Merge,
        "A label template's stock, language, codes, patient naming, status or validity changes (a new version of the template).";
    CrosswalkMapped(CrosswalkMappedV1) = "crosswalk.mapped", 1, Fold::Merge,
        "A source system's local code mapped onto a canonical id over a validity interval.";
    ChainEnrolled(ChainEnrolledV1) = "chain.enrolled", 1, Fold::Merge,
        "A patient (pseudonymous key) is enrolled for a product at a treatment center, and the chain's COI issued (stream coi/<COI>).";
    ChainCancelled(ChainCancelledV1) = "chain.cancelled", 1, Fold::Merge,
        "An enrolment is cancelled; its COI is never issued again.";
    ChainCollectionSiteAssigned(crate::catalogue::chain::ChainCollectionSiteAssignedV1) = "chain.collection_site_assigned", 1, Fold::Merge,
        "The treatment center sends the patient to another apheresis center than the order named, and why: from then on only that site records the collection.";
    ChainCollected(ChainCollectedV1) = "chain.collected", 1, Fold::AppendTo("collections"),
        "The apheresis collection of a chain: site, qualified operator, calibrated device, start and end, one DIN per bag.";
    DinLinked(DinLinkedV1) = "din.linked", 1, Fold::Merge,
        "Recorded by Autolog with a collection: this DIN belongs to this COI, forever (stream din/<DIN>).";
    TimeZoneDiscrepancyFlagged(TimeZoneDiscrepancyFlaggedV1) = "time_zone.discrepancy_flagged", 1, Fold::AppendTo("discrepancies"),
        "Recorded by Autolog: an event's UTC offset disagrees with its recording site's zone at that instant (stream discrepancy/time-zone/<site>).";
    CustodyHandedOff(crate::catalogue::chain::CustodyHandedOffV1) = "custody.handed_off", 1, Fold::AppendTo("handoffs"),
        "The sender's manifest of a change of hands: units, count, container, seal, courier, destination, expected arrival, required temperature range.";
    CustodyReceived(crate::catalogue::chain::CustodyReceivedV1) = "custody.received", 1, Fold::AppendTo("receipts"),
        "The receiver's receipt: every label as scanned, container, seal, temperature-logger summary; reconciled against the handoff at once.";
    ChainStepPerformed(crate::catalogue::chain::ChainStepPerformedV1) = "chain.step_performed", 1, Fold::AppendTo("steps"),
        "A process step of the product performed on the chain's material: step, site, person, equipment, start and end.";
    ChainReleased(crate::catalogue::chain::ChainReleasedV1) = "chain.released", 1, Fold::Merge,
        "A batch is released for its patient: the batch, the intended patient, releasing site and qualified person, released final units (accepted only when every release condition holds).";
    ChainAdministered(crate::catalogue::chain::ChainAdministeredV1) = "chain.administered", 1, Fold::Merge,
        "The product is administered to the chain's patient: unit, site, administering and verifying persons.";
    ChainExceptionalReleaseRequested(crate::catalogue::chain::ChainExceptionalReleaseRequestedV1) = "chain.exceptional_release_requested", 1, Fold::AppendTo("exceptional_release_requests"),
        "A treating physician's signed request to release an out-of-specification batch to its patient; with it, an exceptional release needs a second qualified signature.";
    SigningSecretSet(crate::access::signature::SigningSecretSetV1) = "signing_secret.set", 1, Fold::AppendTo("signing_secret_changes"),
        "Recorded by Autolog: a person's e-signature secret was set or reset, by whom (the secret itself is never in the ledger).";
    ChainLegalHoldPlaced(crate::catalogue::chain::ChainLegalHoldV1) = "chain.legal_hold_placed", 1, Fold::AppendTo("legal_holds"),
        "A legal hold on the chain's records: no retention period expires while it is in force.";
    ChainLegalHoldReleased(crate::catalogue::chain::ChainLegalHoldV1) = "chain.legal_hold_released", 1, Fold::AppendTo("legal_hold_releases"),
        "A legal hold is lifted; the retention periods run again.";
    ChainBedsideVerified(crate::catalogue::chain::ChainBedsideVerifiedV1) = "chain.bedside_verified", 1, Fold::AppendTo("bedside_checks"),
        "The bedside check before infusion: the unit's label as scanned and the patient's two identifiers, matched against the unit's chain and the release's intended patient (a mismatch is a hard stop and an alert).";
    ChainFollowUpRecorded(crate::catalogue::chain::ChainFollowUpRecordedV1) = "chain.follow_up_recorded", 1, Fold::AppendTo("follow_ups"),
        "A long-term follow-up visit is recorded against the chain (codes only).";
    AuditTrailReviewed(crate::catalogue::chain::AuditTrailReviewedV1) = "audit_trail.reviewed", 1, Fold::AppendTo("audit_trail_reviews"),
        "A QA reviewer's signed review of the chain's audit trail (every value changed after first entry): the changes it covered, the last one, the findings. A product may require one since the last change before release.";
    ChainHoldPlaced(crate::catalogue::chain::ChainHoldPlacedV1) = "chain.hold_placed", 1, Fold::AppendTo("holds"),
        "A hold on the chain (by Autolog on a failed reconciliation, or by a person): no step is accepted until it is released.";
    ChainHoldReleased(crate::catalogue::chain::ChainHoldReleasedV1) = "chain.hold_released", 1, Fold::AppendTo("hold_releases"),
        "A hold is resolved with a reason by a person qualified at the site.";
    AlertRaised(crate::catalogue::chain::AlertRaisedV1) = "alert.raised", 1, Fold::Merge,
        "Recorded by Autolog: an alert (severity, rule, chain, site, evidence) in the same transaction as the event that caused it (stream alert/<id>).";
    AlertAcknowledged(crate::catalogue::chain::AlertHandledV1) = "alert.acknowledged", 1, Fold::AppendTo("acknowledgements"),
        "A person acknowledges an alert (seen, being handled).";
    AlertResolved(crate::catalogue::chain::AlertHandledV1) = "alert.resolved", 1, Fold::AppendTo("resolutions"),
        "A person resolves an alert, with a note saying how.";
    BatchCreated(crate::catalogue::batch::BatchCreatedV1) = "batch.created", 1, Fold::AppendTo("batches"),
        "A batch is created from collections (DINs) of the chain it is recorded on, with the MES's own batch number.";
    BatchLinked(crate::catalogue::batch::BatchLinkedV1) = "batch.linked", 1, Fold::Merge,
        "Recorded by Autolog: a batch id belongs to one chain, forever (stream batch/<id>).";
    BatchMaterialConsumed(crate::catalogue::batch::BatchMaterialConsumedV1) = "batch.material_consumed", 1, Fold::AppendTo("materials"),
        "A material lot consumed by a batch (viral vector, media, reagent, bag); a recalled or quarantined lot is refused.";
    MaterialLotConsumed(crate::catalogue::batch::MaterialLotConsumedV1) = "material_lot.consumed", 1, Fold::AppendTo("consumptions"),
        "Recorded by Autolog in the lot's stream: the lot went into this chain's batch (forward genealogy).";
    BatchUnitsProduced(crate::catalogue::batch::BatchUnitsProducedV1) = "batch.units_produced", 1, Fold::AppendTo("unit_productions"),
        "The final units a batch yields, each identified by COI, product code and division with a check character.";
    UnitLinked(crate::catalogue::batch::UnitLinkedV1) = "unit.linked", 1, Fold::Merge,
        "Recorded by Autolog: a final unit belongs to one chain and batch, forever (stream unit/<id>).";
    BatchTestResultRecorded(crate::catalogue::batch::BatchTestResultRecordedV1) = "batch.test_result_recorded", 1, Fold::AppendTo("test_results"),
        "A LIMS result for a batch or unit: test, method, result and unit as measured (the verdict is Autolog's).";
    BatchTestResultEvaluated(crate::catalogue::batch::BatchTestResultEvaluatedV1) = "batch.test_result_evaluated", 1, Fold::AppendTo("verdicts"),
        "Recorded by Autolog with each result: pass or fail against the product's specification, and why.";
    DeviationOpened(crate::catalogue::batch::DeviationOpenedV1) = "deviation.opened", 1, Fold::AppendTo("deviations"),
        "A QMS deviation opened against the chain (and a batch).";
    DeviationInvestigated(crate::catalogue::batch::DeviationInvestigatedV1) = "deviation.investigated", 1, Fold::AppendTo("deviation_investigations"),
        "An investigation step of an open deviation.";
    DeviationClosed(crate::catalogue::batch::DeviationClosedV1) = "deviation.closed", 1, Fold::AppendTo("deviation_closures"),
        "A deviation closed with a disposition (release permitted or not, rework) and its rationale.";
    UserCreated(crate::access::UserCreatedV1) = "user.created", 1, Fold::AppendTo("access_changes"),
        "Recorded by Autolog: a user account was created for a registered person (its password is the person's signing secret), and by whom.";
    UserRoleGranted(crate::access::UserRoleChangedV1) = "user.role_granted", 1, Fold::AppendTo("access_changes"),
        "Recorded by Autolog: a role was granted to a person at a site (or at every site, \"*\"), and by whom.";
    UserRoleRevoked(crate::access::UserRoleChangedV1) = "user.role_revoked", 1, Fold::AppendTo("access_changes"),
        "Recorded by Autolog: a person's role at a site was revoked, and by whom.";
    UserSecondFactorEnrolled(crate::access::UserAccountChangedV1) = "user.second_factor_enrolled", 1, Fold::AppendTo("access_changes"),
        "Recorded by Autolog: a new TOTP second factor was enrolled for a user (the key itself is never in the ledger).";
    UserLockedOut(crate::access::UserAccountChangedV1) = "user.locked_out", 1, Fold::AppendTo("access_changes"),
        "Recorded by Autolog: a user account was locked after repeated failed sign-ins or re-authentications.";
    UserUnlocked(crate::access::UserAccountChangedV1) = "user.unlocked", 1, Fold::AppendTo("access_changes"),
        "Recorded by Autolog: a locked user account was unlocked by an administrator.";
    ApiTokenIssued(crate::access::ApiTokenChangedV1) = "api_token.issued", 1, Fold::AppendTo("api_tokens"),
        "Recorded by Autolog: an API token was issued to a source system for its sites, until when, and by whom (the token itself is never in the ledger).";
    ApiTokenRevoked(crate::access::ApiTokenChangedV1) = "api_token.revoked", 1, Fold::AppendTo("api_tokens"),
        "Recorded by Autolog: a source system's API token was revoked, and by whom.";
    PersonalDataRecorded(crate::access::PersonalDataAccessV1) = "personal_data.recorded", 1, Fold::AppendTo("personal_data_access"),
        "Recorded by Autolog: a patient's identifying data was recorded in the vault (which fields, by whom; never their values).";
    PersonalDataRead(crate::access::PersonalDataAccessV1) = "personal_data.read", 1, Fold::AppendTo("personal_data_access"),
        "Recorded by Autolog: a patient's identifying data was read from the vault, by whom and why.";
    PersonalDataErased(crate::access::PersonalDataAccessV1) = "personal_data.erased", 1, Fold::AppendTo("personal_data_access"),
        "Recorded by Autolog: a patient's data key was destroyed (crypto-shredding); the chain stays, pseudonymous.";
    VaultMasterKeyRotated(crate::access::VaultKeyRotatedV1) = "vault.master_key_rotated", 1, Fold::AppendTo("rotations"),
        "Recorded by Autolog: every patient's data key was re-wrapped under a new vault master key (key ids only).";
    AccessRefused(crate::access::AccessRefusedV1) = "access.refused", 1, Fold::AppendTo("refusals"),
        "Recorded by Autolog in the sender's own access audit: an attempt refused for scope or role (who, what, where, the rule; never identifying data).";
    AccessRefusalsCounted(crate::access::AccessRefusalsCountedV1) = "access.refusals_counted", 1, Fold::AppendTo("refusals_counted"),
        "Recorded by Autolog in the sender's own access audit: how many more attempts were refused in one minute beyond those recorded one by one.";
    SampleHandedOff(crate::catalogue::chain::SampleHandedOffV1) = "sample.handed_off", 1, Fold::AppendTo("sample_shipments"),
        "Samples of a chain (QC aliquots, retains) sent to a laboratory: their own custody, apart from the chain's material; the destination takes part in the chain.";
    SampleReceived(crate::catalogue::chain::SampleReceivedV1) = "sample.received", 1, Fold::AppendTo("sample_receipts"),
        "Samples received by the laboratory their shipment names.";
    ChainRecollected(crate::catalogue::enrolment::ChainRecollectedV1) = "chain.recollected", 1, Fold::Merge,
        "Recorded by Autolog on a chain whose patient is collected again under a new COI (re-collection, re-manufacture): the new chain and why; this episode makes no more progress.";
    UnitExpiryExtended(crate::catalogue::batch::UnitExpiryExtendedV1) = "unit.expiry_extended", 1, Fold::AppendTo("expiry_extensions"),
        "A final unit's expiry extended by a signed QA decision, with its reason (the only way past an expiry).";
    LabelPrinted(crate::labels::LabelPrintedV1) = "label.printed", 1, Fold::AppendTo("labels"),
        "Recorded by Autolog: a label of one of the chain's containers was printed from the ledger (template and version, every data structure encoded and the eye-readable text, by whom, where, on which printer, which copy; a reprint says why).";
    LabelVoided(crate::labels::LabelVoidedV1) = "label.voided", 1, Fold::AppendTo("label_voids"),
        "Recorded by Autolog: a printed label was voided (spoiled, destroyed), by whom and why.";
    LabelVerified(crate::labels::LabelVerifiedV1) = "label.verified", 1, Fold::AppendTo("label_verifications"),
        "Recorded by Autolog: an applied label was scanned back and every data structure read compared with what was printed (a mismatch holds the chain and raises an alert).";
    CheckpointWitnessed(crate::ledger::witness::CheckpointWitnessedV1) = "checkpoint.witnessed", 1, Fold::AppendTo("witnessed"),
        "Recorded by Autolog as a witness of another ledger (stream witness/<its key id>): a checkpoint it signed, checked to extend the one held before (RFC 9162 consistency), and countersigned.";
    WebhookRegistered(crate::access::WebhookChangedV1) = "webhook.registered", 1, Fold::Merge,
        "Recorded by Autolog: an outbound webhook was registered (its URL, by whom, the ledger position its alerts start after; never its secret).";
    WebhookDeactivated(crate::access::WebhookChangedV1) = "webhook.deactivated", 1, Fold::AppendTo("deactivations"),
        "Recorded by Autolog: an outbound webhook was stopped, by whom.";
}

/// Types only Autolog itself records; a request that sends one is refused.
pub const RECORDED_BY_AUTOLOG: &[&str] = &[
    "time_zone.discrepancy_flagged",
    "din.linked",
    "alert.raised",
    "batch.linked",
    "unit.linked",
    "material_lot.consumed",
    "batch.test_result_evaluated",
    "signing_secret.set",
    "user.created",
    "user.role_granted",
    "user.role_revoked",
    "user.second_factor_enrolled",
    "user.locked_out",
    "user.unlocked",
    "api_token.issued",
    "api_token.revoked",
    "personal_data.recorded",
    "personal_data.read",
    "personal_data.erased",
    "vault.master_key_rotated",
    "access.refused",
    "access.refusals_counted",
    "chain.recollected",
    "webhook.registered",
    "webhook.deactivated",
    "label.printed",
    "label.voided",
    "label.verified",
    "checkpoint.witnessed",
];

/// Looks up a type; the error says which types or versions exist.
impl Payload {
    /// The process step a chain event performs, for those that name one.
    pub fn step_code(&self) -> Option<&str> {
        match self {
            Payload::CustodyHandedOff(p) => Some(&p.step_code),
            Payload::CustodyReceived(p) => Some(&p.step_code),
            Payload::ChainStepPerformed(p) => Some(&p.step_code),
            Payload::ChainAdministered(p) => Some(&p.step_code),
            Payload::BatchMaterialConsumed(p) => p.step_code.as_deref(),
            _ => None,
        }
    }
}

pub fn lookup(name: &str, version: u32) -> Result<&'static EventType, FieldError> {
    let same_name: Vec<&EventType> = EVENT_TYPES.iter().filter(|t| t.name == name).collect();
    if same_name.is_empty() {
        let known: Vec<&str> = EVENT_TYPES.iter().map(|t| t.name).collect();
        return Err(FieldError::new(
            "type",
            name,
            format!(
                "is not a known event type; known types: {}",
                known.join(", ")
            ),
        ));
    }
    same_name
        .iter()
        .find(|t| t.version == version)
        .copied()
        .ok_or_else(|| {
            let versions: Vec<String> = same_name.iter().map(|t| t.version.to_string()).collect();
            FieldError::new(
                "version",
                version.to_string(),
                format!("{name} has versions {} only", versions.join(", ")),
            )
        })
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotationRecordedV1 {
    pub text: String,
}

impl Check for AnnotationRecordedV1 {
    fn check(&self) -> Result<(), FieldError> {
        check_text("text", &self.text, 4000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_type_and_version_are_named() {
        let e = lookup("site.demolished", 1).expect_err("unknown");
        assert_eq!(e.field, "type");
        assert!(e.rule.contains("site.registered"));
        let e = lookup("site.registered", 7).expect_err("unknown version");
        assert_eq!(e.field, "version");
        assert_eq!(e.value, "7");
    }

    #[test]
    fn site_registered_checks_its_payload() {
        let t = lookup("site.registered", 1).expect("known");
        let good = json!({"site_id":"S-1","name":"Paris","site_types":["apheresis_center"],"time_zone":"Europe/Paris"});
        assert!(t.validate(&good).is_ok());
        let e = t
            .validate(&json!({"site_id":"S-1","name":"Paris","site_types":["spaceport"],"time_zone":"Europe/Paris"}))
            .expect_err("bad type");
        assert_eq!(e.field, "site_types[0]");
        let e = t
            .validate(&json!({"site_id":"S-1","name":"Paris","site_types":["laboratory"],"time_zone":"Paris"}))
            .expect_err("bad zone");
        assert_eq!(e.field, "time_zone");
        let e = t
            .validate(&json!({"site_id":"S-1","name":"Paris","site_types":["laboratory"],"time_zone":"Europe/Paris","colour":"red"}))
            .expect_err("unknown field");
        assert!(e.rule.contains("unknown field `colour`"), "{}", e.rule);
        let e = t
            .validate(&json!({"site_id":"S-1","name":"Paris","site_types":["laboratory", 7],"time_zone":"Europe/Paris"}))
            .expect_err("wrong type");
        assert_eq!((e.field.as_str(), e.value.as_str()), ("site_types[1]", "7"));
        assert!(e.rule.contains("expected a string"), "{}", e.rule);
        let e = t
            .validate(
                &json!({"site_id":"S-1","site_types":["laboratory"],"time_zone":"Europe/Paris"}),
            )
            .expect_err("missing");
        assert_eq!((e.field.as_str(), e.rule.as_str()), ("name", "is required"));
        assert!(t.validate(&json!([1, 2])).is_err());
    }

    #[test]
    fn amendments_must_change_something() {
        let t = lookup("site.amended", 1).expect("known");
        assert!(t.validate(&json!({})).is_err());
        assert!(t.validate(&json!({"name": "Paris Nord"})).is_ok());
    }
}
