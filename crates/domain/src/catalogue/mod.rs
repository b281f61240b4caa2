//! The catalogue of event types the ledger accepts, each with a version and a payload
//! schema. Each area (reference data, chain, batch, access) defines its payloads; this
//! table names them all. An unknown type or version is refused.

mod draft;
mod state;

pub use draft::parse_draft;
pub use state::{record_at, stream_state, StreamState};

use crate::chain::enrolment::*;
use crate::error::FieldError;
use crate::ledger::envelope::check_text;
use crate::ledger::event_type::{schema, Check, EventType, Fold};
use crate::reference::*;
use serde::Deserialize;

/// Every event type this build accepts.
pub const EVENT_TYPES: &[EventType] = &[
    EventType {
        name: "annotation.recorded",
        version: 1,
        description: "A free-text note attached to any stream (who noticed what, and why).",
        fold: Fold::AppendTo("annotations"),
        validate: schema::<AnnotationRecordedV1>,
    },
    EventType {
        name: "site.registered",
        version: 1,
        description: "A canonical site enters the network: id, name, types, IANA zone, address, GLN, FIN, FEI, status, validity.",
        fold: Fold::Merge,
        validate: schema::<SiteRegisteredV1>,
    },
    EventType {
        name: "site.amended",
        version: 1,
        description: "Some attributes of a registered site change.",
        fold: Fold::Merge,
        validate: schema::<SiteAmendedV1>,
    },
    EventType {
        name: "personnel.registered",
        version: 1,
        description: "A person of the network: id, printed name, status, roles and qualifications per site with validity.",
        fold: Fold::Merge,
        validate: schema::<PersonnelRegisteredV1>,
    },
    EventType {
        name: "personnel.amended",
        version: 1,
        description: "A person's printed name, status or qualifications (the whole list) change.",
        fold: Fold::Merge,
        validate: schema::<PersonnelAmendedV1>,
    },
    EventType {
        name: "equipment.registered",
        version: 1,
        description: "A piece of equipment: id, type, site, calibration valid until, status.",
        fold: Fold::Merge,
        validate: schema::<EquipmentRegisteredV1>,
    },
    EventType {
        name: "equipment.calibrated",
        version: 1,
        description: "A new calibration: valid until a later instant.",
        fold: Fold::Merge,
        validate: schema::<EquipmentCalibratedV1>,
    },
    EventType {
        name: "equipment.amended",
        version: 1,
        description: "Some attributes of registered equipment change: type, site, calibration, status, validity.",
        fold: Fold::Merge,
        validate: schema::<EquipmentAmendedV1>,
    },
    EventType {
        name: "material_lot.registered",
        version: 1,
        description: "A lot of a material (viral vector, media, reagent, bag): supplier, lot, expiry, status.",
        fold: Fold::Merge,
        validate: schema::<MaterialLotRegisteredV1>,
    },
    EventType {
        name: "material_lot.status_changed",
        version: 1,
        description: "A lot is released, quarantined or recalled.",
        fold: Fold::Merge,
        validate: schema::<MaterialLotStatusChangedV1>,
    },
    EventType {
        name: "process_step.defined",
        version: 1,
        description: "A canonical process step code, its description and its GS1 CBV bizStep.",
        fold: Fold::Merge,
        validate: schema::<ProcessStepDefinedV1>,
    },
    EventType {
        name: "process_step.amended",
        version: 1,
        description: "A defined step's description, CBV bizStep, status or validity changes.",
        fold: Fold::Merge,
        validate: schema::<ProcessStepAmendedV1>,
    },
    EventType {
        name: "product.registered",
        version: 1,
        description: "A product of the portfolio: code, name, process definition (ordered steps with the site types that may perform each, windows between steps, release tests with specifications), storage temperature range, retention class.",
        fold: Fold::Merge,
        validate: schema::<ProductRegisteredV1>,
    },
    EventType {
        name: "product.amended",
        version: 1,
        description: "Some attributes of a registered product change (a new process definition replaces the old one whole).",
        fold: Fold::Merge,
        validate: schema::<ProductAmendedV1>,
    },
    EventType {
        name: "source_system.registered",
        version: 1,
        description: "A source system of the network: id, kind, owning site.",
        fold: Fold::Merge,
        validate: schema::<SourceSystemRegisteredV1>,
    },
    EventType {
        name: "source_system.amended",
        version: 1,
        description: "A source system's owning site, status or validity changes.",
        fold: Fold::Merge,
        validate: schema::<SourceSystemAmendedV1>,
    },
    EventType {
        name: "crosswalk.mapped",
        version: 1,
        description: "A source system's local code mapped onto a canonical id over a validity interval.",
        fold: Fold::Merge,
        validate: schema::<CrosswalkMappedV1>,
    },
    EventType {
        name: "chain.enrolled",
        version: 1,
        description: "A patient (pseudonymous key) is enrolled for a product at a treatment center, and the chain's COI issued (stream coi/<COI>).",
        fold: Fold::Merge,
        validate: schema::<ChainEnrolledV1>,
    },
    EventType {
        name: "chain.cancelled",
        version: 1,
        description: "An enrolment is cancelled; its COI is never issued again.",
        fold: Fold::Merge,
        validate: schema::<ChainCancelledV1>,
    },
    EventType {
        name: "chain.collection_site_assigned",
        version: 1,
        description: "The treatment center sends the patient to another apheresis center than the order named, and why: from then on only that site records the collection.",
        fold: Fold::Merge,
        validate: schema::<crate::chain::ChainCollectionSiteAssignedV1>,
    },
    EventType {
        name: "chain.collected",
        version: 1,
        description: "The apheresis collection of a chain: site, qualified operator, calibrated device, start and end, one DIN per bag.",
        fold: Fold::AppendTo("collections"),
        validate: schema::<ChainCollectedV1>,
    },
    EventType {
        name: "din.linked",
        version: 1,
        description: "Recorded by Autolog with a collection: this DIN belongs to this COI, forever (stream din/<DIN>).",
        fold: Fold::Merge,
        validate: schema::<DinLinkedV1>,
    },
    EventType {
        name: "time_zone.discrepancy_flagged",
        version: 1,
        description: "Recorded by Autolog: an event's UTC offset disagrees with its recording site's zone at that instant (stream discrepancy/time-zone/<site>).",
        fold: Fold::AppendTo("discrepancies"),
        validate: schema::<TimeZoneDiscrepancyFlaggedV1>,
    },
    EventType {
        name: "custody.handed_off",
        version: 1,
        description: "The sender's manifest of a change of hands: units, count, container, seal, courier, destination, expected arrival, required temperature range.",
        fold: Fold::AppendTo("handoffs"),
        validate: schema::<crate::chain::CustodyHandedOffV1>,
    },
    EventType {
        name: "custody.received",
        version: 1,
        description: "The receiver's receipt: every label as scanned, container, seal, temperature-logger summary; reconciled against the handoff at once.",
        fold: Fold::AppendTo("receipts"),
        validate: schema::<crate::chain::CustodyReceivedV1>,
    },
    EventType {
        name: "chain.step_performed",
        version: 1,
        description: "A process step of the product performed on the chain's material: step, site, person, equipment, start and end.",
        fold: Fold::AppendTo("steps"),
        validate: schema::<crate::chain::ChainStepPerformedV1>,
    },
    EventType {
        name: "chain.released",
        version: 1,
        description: "A batch is released for its patient: the batch, the intended patient, releasing site and qualified person, released final units (accepted only when every release condition holds).",
        fold: Fold::Merge,
        validate: schema::<crate::chain::ChainReleasedV1>,
    },
    EventType {
        name: "chain.administered",
        version: 1,
        description: "The product is administered to the chain's patient: unit, site, administering and verifying persons.",
        fold: Fold::Merge,
        validate: schema::<crate::chain::ChainAdministeredV1>,
    },
    EventType {
        name: "chain.exceptional_release_requested",
        version: 1,
        description: "A treating physician's signed request to release an out-of-specification batch to its patient; with it, an exceptional release needs a second qualified signature.",
        fold: Fold::AppendTo("exceptional_release_requests"),
        validate: schema::<crate::chain::ChainExceptionalReleaseRequestedV1>,
    },
    EventType {
        name: "signing_secret.set",
        version: 1,
        description: "Recorded by Autolog: a person's e-signature secret was set or reset, by whom (the secret itself is never in the ledger).",
        fold: Fold::AppendTo("signing_secret_changes"),
        validate: schema::<crate::access::signature::SigningSecretSetV1>,
    },
    EventType {
        name: "chain.legal_hold_placed",
        version: 1,
        description: "A legal hold on the chain's records: no retention period expires while it is in force.",
        fold: Fold::AppendTo("legal_holds"),
        validate: schema::<crate::chain::ChainLegalHoldV1>,
    },
    EventType {
        name: "chain.legal_hold_released",
        version: 1,
        description: "A legal hold is lifted; the retention periods run again.",
        fold: Fold::AppendTo("legal_hold_releases"),
        validate: schema::<crate::chain::ChainLegalHoldV1>,
    },
    EventType {
        name: "chain.bedside_verified",
        version: 1,
        description: "The bedside check before infusion: the unit's label as scanned and the patient's two identifiers, matched against the unit's chain and the release's intended patient (a mismatch is a hard stop and an alert).",
        fold: Fold::AppendTo("bedside_checks"),
        validate: schema::<crate::chain::ChainBedsideVerifiedV1>,
    },
    EventType {
        name: "chain.follow_up_recorded",
        version: 1,
        description: "A long-term follow-up visit is recorded against the chain (codes only).",
        fold: Fold::AppendTo("follow_ups"),
        validate: schema::<crate::chain::ChainFollowUpRecordedV1>,
    },
    EventType {
        name: "chain.hold_placed",
        version: 1,
        description: "A hold on the chain (by Autolog on a failed reconciliation, or by a person): no step is accepted until it is released.",
        fold: Fold::AppendTo("holds"),
        validate: schema::<crate::chain::ChainHoldPlacedV1>,
    },
    EventType {
        name: "chain.hold_released",
        version: 1,
        description: "A hold is resolved with a reason by a person qualified at the site.",
        fold: Fold::AppendTo("hold_releases"),
        validate: schema::<crate::chain::ChainHoldReleasedV1>,
    },
    EventType {
        name: "alert.raised",
        version: 1,
        description: "Recorded by Autolog: an alert (severity, rule, chain, site, evidence) in the same transaction as the event that caused it (stream alert/<id>).",
        fold: Fold::Merge,
        validate: schema::<crate::chain::AlertRaisedV1>,
    },
    EventType {
        name: "alert.acknowledged",
        version: 1,
        description: "A person acknowledges an alert (seen, being handled).",
        fold: Fold::AppendTo("acknowledgements"),
        validate: schema::<crate::chain::AlertHandledV1>,
    },
    EventType {
        name: "alert.resolved",
        version: 1,
        description: "A person resolves an alert, with a note saying how.",
        fold: Fold::AppendTo("resolutions"),
        validate: schema::<crate::chain::AlertHandledV1>,
    },
    EventType {
        name: "batch.created",
        version: 1,
        description: "A batch is created from collections (DINs) of the chain it is recorded on, with the MES's own batch number.",
        fold: Fold::AppendTo("batches"),
        validate: schema::<crate::batch::BatchCreatedV1>,
    },
    EventType {
        name: "batch.linked",
        version: 1,
        description: "Recorded by Autolog: a batch id belongs to one chain, forever (stream batch/<id>).",
        fold: Fold::Merge,
        validate: schema::<crate::batch::BatchLinkedV1>,
    },
    EventType {
        name: "batch.material_consumed",
        version: 1,
        description: "A material lot consumed by a batch (viral vector, media, reagent, bag); a recalled or quarantined lot is refused.",
        fold: Fold::AppendTo("materials"),
        validate: schema::<crate::batch::BatchMaterialConsumedV1>,
    },
    EventType {
        name: "material_lot.consumed",
        version: 1,
        description: "Recorded by Autolog in the lot's stream: the lot went into this chain's batch (forward genealogy).",
        fold: Fold::AppendTo("consumptions"),
        validate: schema::<crate::batch::MaterialLotConsumedV1>,
    },
    EventType {
        name: "batch.units_produced",
        version: 1,
        description: "The final units a batch yields, each identified by COI, product code and division with a check character.",
        fold: Fold::AppendTo("unit_productions"),
        validate: schema::<crate::batch::BatchUnitsProducedV1>,
    },
    EventType {
        name: "unit.linked",
        version: 1,
        description: "Recorded by Autolog: a final unit belongs to one chain and batch, forever (stream unit/<id>).",
        fold: Fold::Merge,
        validate: schema::<crate::batch::UnitLinkedV1>,
    },
    EventType {
        name: "batch.test_result_recorded",
        version: 1,
        description: "A LIMS result for a batch or unit: test, method, result and unit as measured (the verdict is Autolog's).",
        fold: Fold::AppendTo("test_results"),
        validate: schema::<crate::batch::BatchTestResultRecordedV1>,
    },
    EventType {
        name: "batch.test_result_evaluated",
        version: 1,
        description: "Recorded by Autolog with each result: pass or fail against the product's specification, and why.",
        fold: Fold::AppendTo("verdicts"),
        validate: schema::<crate::batch::BatchTestResultEvaluatedV1>,
    },
    EventType {
        name: "deviation.opened",
        version: 1,
        description: "A QMS deviation opened against the chain (and a batch).",
        fold: Fold::AppendTo("deviations"),
        validate: schema::<crate::batch::DeviationOpenedV1>,
    },
    EventType {
        name: "deviation.investigated",
        version: 1,
        description: "An investigation step of an open deviation.",
        fold: Fold::AppendTo("deviation_investigations"),
        validate: schema::<crate::batch::DeviationInvestigatedV1>,
    },
    EventType {
        name: "deviation.closed",
        version: 1,
        description: "A deviation closed with a disposition (release permitted or not, rework) and its rationale.",
        fold: Fold::AppendTo("deviation_closures"),
        validate: schema::<crate::batch::DeviationClosedV1>,
    },
    EventType {
        name: "user.created",
        version: 1,
        description: "Recorded by Autolog: a user account was created for a registered person (its password is the person's signing secret), and by whom.",
        fold: Fold::AppendTo("access_changes"),
        validate: schema::<crate::access::UserCreatedV1>,
    },
    EventType {
        name: "user.role_granted",
        version: 1,
        description: "Recorded by Autolog: a role was granted to a person at a site (or at every site, \"*\"), and by whom.",
        fold: Fold::AppendTo("access_changes"),
        validate: schema::<crate::access::UserRoleChangedV1>,
    },
    EventType {
        name: "user.role_revoked",
        version: 1,
        description: "Recorded by Autolog: a person's role at a site was revoked, and by whom.",
        fold: Fold::AppendTo("access_changes"),
        validate: schema::<crate::access::UserRoleChangedV1>,
    },
    EventType {
        name: "user.second_factor_enrolled",
        version: 1,
        description: "Recorded by Autolog: a new TOTP second factor was enrolled for a user (the key itself is never in the ledger).",
        fold: Fold::AppendTo("access_changes"),
        validate: schema::<crate::access::UserAccountChangedV1>,
    },
    EventType {
        name: "user.locked_out",
        version: 1,
        description: "Recorded by Autolog: a user account was locked after repeated failed sign-ins or re-authentications.",
        fold: Fold::AppendTo("access_changes"),
        validate: schema::<crate::access::UserAccountChangedV1>,
    },
    EventType {
        name: "user.unlocked",
        version: 1,
        description: "Recorded by Autolog: a locked user account was unlocked by an administrator.",
        fold: Fold::AppendTo("access_changes"),
        validate: schema::<crate::access::UserAccountChangedV1>,
    },
    EventType {
        name: "api_token.issued",
        version: 1,
        description: "Recorded by Autolog: an API token was issued to a source system for its sites, until when, and by whom (the token itself is never in the ledger).",
        fold: Fold::AppendTo("api_tokens"),
        validate: schema::<crate::access::ApiTokenChangedV1>,
    },
    EventType {
        name: "api_token.revoked",
        version: 1,
        description: "Recorded by Autolog: a source system's API token was revoked, and by whom.",
        fold: Fold::AppendTo("api_tokens"),
        validate: schema::<crate::access::ApiTokenChangedV1>,
    },
    EventType {
        name: "personal_data.recorded",
        version: 1,
        description: "Recorded by Autolog: a patient's identifying data was recorded in the vault (which fields, by whom; never their values).",
        fold: Fold::AppendTo("personal_data_access"),
        validate: schema::<crate::access::PersonalDataAccessV1>,
    },
    EventType {
        name: "personal_data.read",
        version: 1,
        description: "Recorded by Autolog: a patient's identifying data was read from the vault, by whom and why.",
        fold: Fold::AppendTo("personal_data_access"),
        validate: schema::<crate::access::PersonalDataAccessV1>,
    },
    EventType {
        name: "personal_data.erased",
        version: 1,
        description: "Recorded by Autolog: a patient's data key was destroyed (crypto-shredding); the chain stays, pseudonymous.",
        fold: Fold::AppendTo("personal_data_access"),
        validate: schema::<crate::access::PersonalDataAccessV1>,
    },
    EventType {
        name: "vault.master_key_rotated",
        version: 1,
        description: "Recorded by Autolog: every patient's data key was re-wrapped under a new vault master key (key ids only).",
        fold: Fold::AppendTo("rotations"),
        validate: schema::<crate::access::VaultKeyRotatedV1>,
    },
    EventType {
        name: "access.refused",
        version: 1,
        description: "Recorded by Autolog in the sender's own access audit: an attempt refused for scope or role (who, what, where, the rule; never identifying data).",
        fold: Fold::AppendTo("refusals"),
        validate: schema::<crate::access::AccessRefusedV1>,
    },
    EventType {
        name: "access.refusals_counted",
        version: 1,
        description: "Recorded by Autolog in the sender's own access audit: how many more attempts were refused in one minute beyond those recorded one by one.",
        fold: Fold::AppendTo("refusals_counted"),
        validate: schema::<crate::access::AccessRefusalsCountedV1>,
    },
    EventType {
        name: "sample.handed_off",
        version: 1,
        description: "Samples of a chain (QC aliquots, retains) sent to a laboratory: their own custody, apart from the chain's material; the destination takes part in the chain.",
        fold: Fold::AppendTo("sample_shipments"),
        validate: schema::<crate::chain::SampleHandedOffV1>,
    },
    EventType {
        name: "sample.received",
        version: 1,
        description: "Samples received by the laboratory their shipment names.",
        fold: Fold::AppendTo("sample_receipts"),
        validate: schema::<crate::chain::SampleReceivedV1>,
    },
    EventType {
        name: "chain.recollected",
        version: 1,
        description: "Recorded by Autolog on a chain whose patient is collected again under a new COI (re-collection, re-manufacture): the new chain and why; this episode makes no more progress.",
        fold: Fold::Merge,
        validate: schema::<crate::chain::enrolment::ChainRecollectedV1>,
    },
    EventType {
        name: "unit.expiry_extended",
        version: 1,
        description: "A final unit's expiry extended by a signed QA decision, with its reason (the only way past an expiry).",
        fold: Fold::AppendTo("expiry_extensions"),
        validate: schema::<crate::batch::UnitExpiryExtendedV1>,
    },
    EventType {
        name: "webhook.registered",
        version: 1,
        description: "Recorded by Autolog: an outbound webhook was registered (its URL, by whom, the ledger position its alerts start after; never its secret).",
        fold: Fold::Merge,
        validate: schema::<crate::access::WebhookChangedV1>,
    },
    EventType {
        name: "webhook.deactivated",
        version: 1,
        description: "Recorded by Autolog: an outbound webhook was stopped, by whom.",
        fold: Fold::AppendTo("deactivations"),
        validate: schema::<crate::access::WebhookChangedV1>,
    },
];

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
];

/// Looks up a type; the error says which types or versions exist.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnnotationRecordedV1 {
    text: String,
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
