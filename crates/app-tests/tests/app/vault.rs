//! The personal-data vault on both stores: identifying data encrypted outside the ledger,
//! every read recorded, master key rotation, the bedside check, and erasure after retention.

use std::sync::Arc;

use autolog_app::{AppError, Autolog, VaultKey};
use autolog_domain::{Instant, SigningKey};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use jiff::{tz::TimeZone, SignedDuration, Timestamp};
use serde_json::{json, Value};

const LAX: (&str, &str) = ("S-LAX-01", "America/Los_Angeles");
const NURSE: &str = "person/P-0005";

fn key(n: u8) -> VaultKey {
    VaultKey::from_bytes([n; 32])
}

/// The identifying data of a test patient (made up, and distinctive enough to be searched
/// for in the database files).
fn identity(tag: &str) -> Value {
    json!({
        "name": format!("Zebulon {tag} Quixotewright"),
        "date_of_birth": "1961-04-12",
        "mrn": format!("MRN-{tag}-884213"),
        "contact": format!("17 Vexillology Lane, Flat {tag}"),
    })
}

/// The example network on any store, issuing COIs, with vault master key 1.
async fn network_on(store: Arc<dyn autolog_store::Store>) -> Autolog {
    let app = Autolog::from_parts(store, SigningKey::from_bytes(&[7u8; 32]))
        .with_coi_issuer("A9999")
        .expect("FIN")
        .with_vault_key(key(1));
    autolog_test_support::import_examples(&app).await;
    app
}

/// Now, less `hours`, to the second, at Los Angeles (the RFC 9557 form a source sends).
fn hours_ago(hours: i64) -> String {
    let now = Timestamp::from_second(Timestamp::now().as_second()).expect("in range");
    now.checked_sub(SignedDuration::from_hours(hours))
        .expect("in range")
        .to_zoned(TimeZone::get(LAX.1).expect("zone"))
        .to_string()
}

/// Enrols a patient at Los Angeles `days_ago` days ago; the COI.
async fn enrol(app: &Autolog, patient_key: &str, days_ago: i64, tag: &str) -> String {
    let when = hours_ago(24 * days_ago);
    let body = json!({
        "occurred_at": when,
        "actor": NURSE,
        "site": LAX.0,
        "source": {"system": "emr-lax", "source_event_id": format!("enrol/{patient_key}/{tag}")},
        "patient_key": patient_key,
        "product_code": "CART-19",
        "treatment_site_id": LAX.0,
    });
    app.enrol(body.to_string().as_bytes())
        .await
        .expect("enrol")
        .0
}

/// The events of a stream, as JSON.
async fn stream(app: &Autolog, name: &str) -> Vec<Value> {
    app.store()
        .stream_events(name, Instant::MAX)
        .await
        .expect("events")
        .iter()
        .map(|e| e.to_json())
        .collect()
}

async fn verified(app: &Autolog) {
    let report = app.verify(|_, _| {}).await.expect("verify");
    assert!(report.is_ok(), "verify failed: {:?}", report.err());
}

fn refused_field<T: std::fmt::Debug>(result: Result<T, AppError>) -> autolog_domain::FieldError {
    match result {
        Err(AppError::Invalid(f)) => f,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn record_read_rotate(target: Target) {
    let store = target.open().await;
    let app = network_on(store.clone()).await;
    let pk = "PK-VAULT-1";
    let data = identity("A");

    // Recorded: the values are encrypted, the ledger names the fields only.
    let recorded = app
        .record_personal_data(pk, &data, NURSE)
        .await
        .expect("record");
    assert_eq!(recorded.fields, ["contact", "date_of_birth", "mrn", "name"]);
    let row = store.vault_record(pk).await.expect("row").expect("stored");
    assert_eq!(row.master_key_id, key(1).id());
    let name = data["name"].as_str().expect("name");
    assert!(!String::from_utf8_lossy(&row.ciphertext).contains(name));

    // Read: the data comes back, and the read is in the ledger (who, which patient, why).
    let read = app
        .read_personal_data(pk, NURSE, Some("TREAT"))
        .await
        .expect("read");
    assert_eq!(json!(read.data), data);
    let events = stream(&app, &format!("patient/{pk}")).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["body"]["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["personal_data.recorded", "personal_data.read"]);
    let read_event = &events[1]["body"]["data"];
    assert_eq!(read_event["patient_key"], pk);
    assert_eq!(read_event["by"], NURSE);
    assert_eq!(read_event["purpose"], "TREAT");
    assert_eq!(events[1]["actor"], NURSE);
    let ledger_text = serde_json::to_string(&events).expect("json");
    for value in data.as_object().expect("object").values() {
        let value = value.as_str().expect("text");
        assert!(
            !ledger_text.contains(value),
            "{value} leaked into the ledger"
        );
    }

    // A read without a purpose (or a blank one) is refused and records nothing.
    let e = refused_field(app.read_personal_data(pk, NURSE, None).await);
    assert_eq!(e.field, "purpose");
    let e = refused_field(app.read_personal_data(pk, NURSE, Some("  ")).await);
    assert_eq!(e.field, "purpose");
    // A purpose is a code, never text: the patient's own name as a purpose is refused,
    // and the refusal does not repeat it.
    let text_purpose = format!("{name} born 1961-04-12");
    let e = refused_field(app.read_personal_data(pk, NURSE, Some(&text_purpose)).await);
    assert_eq!(e.field, "purpose");
    assert!(
        e.rule.contains("TREAT") && !e.to_string().contains(name),
        "{e}"
    );
    assert_eq!(stream(&app, &format!("patient/{pk}")).await.len(), 2);

    // Unknown fields are refused by name, never repeating the value.
    let mut extra = data.clone();
    extra["blood_type"] = json!("AB-negative");
    let e = refused_field(app.record_personal_data(pk, &extra, NURSE).await);
    assert_eq!(e.field, "data.blood_type");
    assert!(!e.to_string().contains("AB-negative"), "{e}");
    let e = refused_field(
        app.record_personal_data(pk, &json!({"date_of_birth": "12/04/1961"}), NURSE)
            .await,
    );
    assert_eq!(e.field, "data.date_of_birth");

    // Unknown patient: not found; no master key: a configuration error.
    assert!(matches!(
        app.read_personal_data("PK-NOBODY", NURSE, Some("TREAT"))
            .await,
        Err(AppError::NotFound { .. })
    ));
    let keyless = Autolog::from_parts(store.clone(), SigningKey::from_bytes(&[7u8; 32]));
    match keyless
        .record_personal_data("PK-VAULT-2", &data, NURSE)
        .await
    {
        Err(AppError::Config(m)) => assert!(m.contains("vault-key-file"), "{m}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }

    // The bedside check: names loosely, the date of birth exactly.
    let same = json!({"name": "  zebulon a   QUIXOTEWRIGHT", "date_of_birth": "1961-04-12"});
    assert!(app
        .personal_data_matches(pk, &same, NURSE)
        .await
        .expect("match")
        .is_empty());
    let wrong = json!({"name": "Zebulon A Quixotewright", "date_of_birth": "1961-12-04"});
    assert_eq!(
        app.personal_data_matches(pk, &wrong, NURSE)
            .await
            .expect("match"),
        ["date_of_birth"]
    );
    let lacking = json!({"given_name": "Zebulon"});
    assert_eq!(
        app.personal_data_matches(pk, &lacking, NURSE)
            .await
            .expect("match"),
        ["given_name"]
    );
    let events = stream(&app, &format!("patient/{pk}")).await;
    let last = &events.last().expect("event")["body"];
    assert_eq!(last["type"], "personal_data.read");
    assert_eq!(last["data"]["purpose"], "PATSFTY");
    assert_eq!(last["data"]["fields"], json!(["given_name"]));

    // A coded reason besides the purpose is recorded with the read; free text is refused
    // (not repeated) and the refused read records nothing.
    let urgent = json!(app
        .read_personal_data_for(pk, NURSE, Some("ETREAT"), Some("OVRER"))
        .await
        .expect("read with a reason"));
    assert_eq!(urgent["reason"], "OVRER");
    let events = stream(&app, &format!("patient/{pk}")).await;
    let last = &events.last().expect("event")["body"];
    assert_eq!(last["data"]["reason"], "OVRER");
    let before = events.len();
    match app
        .read_personal_data_for(pk, NURSE, Some("TREAT"), Some("Zebulon 1961-04-12"))
        .await
    {
        Err(AppError::Invalid(f)) => {
            assert_eq!(f.field, "reason");
            assert!(f.rule.contains("OVRER"), "{f}");
            assert!(!f.to_string().contains("Zebulon"), "{f}");
        }
        other => panic!("expected a refusal of the reason, got {other:?}"),
    }
    assert_eq!(stream(&app, &format!("patient/{pk}")).await.len(), before);

    // Another instance with another master key: refused, naming both key ids (never keys).
    let other = Autolog::from_parts(store.clone(), SigningKey::from_bytes(&[7u8; 32]))
        .with_vault_key(key(2));
    match other.read_personal_data(pk, NURSE, Some("TREAT")).await {
        Err(AppError::Config(m)) => {
            assert!(m.contains(key(1).id()) && m.contains(key(2).id()), "{m}");
            assert!(!m.contains(key(2).to_hex().as_str()), "{m}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }

    // Rotation: every data key re-wrapped under key 2, recorded; reads go on.
    app.record_personal_data("PK-VAULT-3", &identity("C"), NURSE)
        .await
        .expect("record");
    let rotated = app
        .rotate_vault_key(key(2), "person/P-ADMIN")
        .await
        .expect("rotate");
    assert_eq!(rotated.records, 2, "{rotated:?}");
    assert_eq!(app.vault_key_id().as_deref(), Some(key(2).id()));
    let read = app
        .read_personal_data(pk, NURSE, Some("TREAT"))
        .await
        .expect("read with the new key");
    assert_eq!(json!(read.data), data);
    assert_eq!(
        json!(
            other
                .read_personal_data("PK-VAULT-3", NURSE, Some("TREAT"))
                .await
                .expect("read")
                .data
        ),
        identity("C")
    );
    let rotation = stream(&app, "vault/master-key").await;
    assert_eq!(rotation.len(), 1);
    assert_eq!(
        rotation[0]["body"]["data"],
        json!({"from_key_id": key(1).id(), "to_key_id": key(2).id(), "records": 2, "by": "person/P-ADMIN"})
    );
    // The old key is refused by id, and does not unwrap the record even relabelled.
    let old = Autolog::from_parts(store.clone(), SigningKey::from_bytes(&[7u8; 32]))
        .with_vault_key(key(1));
    assert!(matches!(
        old.read_personal_data(pk, NURSE, Some("TREAT")).await,
        Err(AppError::Config(_))
    ));
    let row = store.vault_record(pk).await.expect("row").expect("stored");
    let mut relabelled = row.clone();
    relabelled.master_key_id = key(1).id().to_string();
    store.put_vault_record(&relabelled).await.expect("tamper");
    assert!(matches!(
        old.read_personal_data(pk, NURSE, Some("TREAT")).await,
        Err(AppError::Integrity(_))
    ));
    store.put_vault_record(&row).await.expect("restore");
    // A record moved onto another patient's row does not open.
    let mut moved = row.clone();
    moved.patient_key = "PK-VAULT-3".into();
    store.put_vault_record(&moved).await.expect("move");
    assert!(matches!(
        app.read_personal_data("PK-VAULT-3", NURSE, Some("TREAT"))
            .await,
        Err(AppError::Integrity(_))
    ));
    // Rotating to the key in use is refused.
    assert!(app
        .rotate_vault_key(key(2), "person/P-ADMIN")
        .await
        .is_err());
    verified(&app).await;
}

#[tokio::test]
async fn personal_data_is_recorded_read_checked_and_rotated_on_sqlite() {
    run_on(Backend::Sqlite, "vault_round_trip", record_read_rotate).await;
}

#[tokio::test]
async fn personal_data_is_recorded_read_checked_and_rotated_on_postgres() {
    run_on(Backend::Postgres, "vault_round_trip", record_read_rotate).await;
}

/// Retention of CART-19 in the US: one year from enrolment.
async fn one_year_retention(app: &Autolog) {
    let amendment = json!({
        "stream": "product/CART-19",
        "occurred_at": "2026-01-01T00:00:00+00:00[UTC]",
        "actor": "person/P-STEWARD",
        "source": {"system": "mdm", "source_event_id": "cart-19/retention-1y"},
        "body": {"type": "product.amended", "version": 1, "data": {
            "retention_policies": [{"jurisdiction": "US", "years": 1, "from": "enrolment"}],
        }},
    });
    app.append_json(amendment.to_string().as_bytes())
        .await
        .expect("amend product");
}

fn legal_hold(coi: &str, kind: &str, id: &str) -> Value {
    let now = hours_ago(0);
    json!({
        "stream": format!("coi/{coi}"),
        "occurred_at": now,
        "actor": "person/P-0008",
        "site": LAX.0,
        "source": {"system": "qms", "source_event_id": format!("{coi}/{id}")},
        "body": {"type": kind, "version": 1, "data": {
            "legal_hold_id": "LH-1", "person_id": "P-0008", "reason": "product liability claim",
        }},
    })
}

async fn erasure_after_retention(target: Target) {
    let store = target.open().await;
    let app = network_on(store.clone()).await;
    one_year_retention(&app).await;
    let old = "PK-ERASE-OLD";
    let recent = "PK-ERASE-NEW";
    let held = "PK-ERASE-HELD";
    let old_coi = enrol(&app, old, 400, "a").await;
    let recent_coi = enrol(&app, recent, 10, "a").await;
    let held_coi = enrol(&app, held, 400, "a").await;
    for (pk, tag) in [(old, "OLD"), (recent, "NEW"), (held, "HELD")] {
        app.record_personal_data(pk, &identity(tag), NURSE)
            .await
            .expect("record");
    }
    let before = store.vault_record(old).await.expect("row").expect("stored");
    if let Target::Sqlite(path) = &target {
        let dir = path.parent().expect("directory");
        assert!(!files_holding(dir, &before.wrapped_key).is_empty());
    }

    // Before retention has passed: refused, naming the date until which it is kept.
    match app
        .erase_personal_data(&recent_coi, "person/P-0008", "retention period ended")
        .await
    {
        Err(AppError::Unmet(list)) => {
            let rule = &list[0].rule;
            assert!(rule.contains("retained until"), "{rule}");
            let year = Timestamp::now()
                .to_zoned(TimeZone::UTC)
                .year()
                .checked_add(1)
                .expect("year");
            assert!(rule.contains(&year.to_string()), "{rule}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A patient with a second, recent chain: that chain keeps the personal data too.
    let twice = "PK-ERASE-TWICE";
    let first_coi = enrol(&app, twice, 400, "a").await;
    enrol(&app, twice, 5, "b").await;
    app.record_personal_data(twice, &identity("TWICE"), NURSE)
        .await
        .expect("record");
    match app
        .erase_personal_data(&first_coi, "person/P-0008", "retention period ended")
        .await
    {
        Err(AppError::Unmet(list)) => {
            assert_eq!(list.len(), 1, "{list:?}");
            assert!(list[0].value != first_coi, "{list:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A legal hold blocks erasure even after the period.
    app.append_json(
        legal_hold(&held_coi, "chain.legal_hold_placed", "lh-on")
            .to_string()
            .as_bytes(),
    )
    .await
    .expect("legal hold");
    match app
        .erase_personal_data(&held_coi, "person/P-0008", "retention period ended")
        .await
    {
        Err(AppError::Unmet(list)) => assert!(list[0].rule.contains("legal hold"), "{list:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(app
        .read_personal_data(held, NURSE, Some("TREAT"))
        .await
        .is_ok());

    // After retention: crypto-shredded, recorded; reads are gone; the ledger verifies.
    let erased = app
        .erase_personal_data(&old_coi, "person/P-0008", "retention period ended")
        .await
        .expect("erase");
    assert_eq!(erased.patient_key, old);
    let row = store.vault_record(old).await.expect("row").expect("kept");
    assert!(row.erased_at.is_some() && row.wrapped_key.is_empty() && row.ciphertext.is_empty());
    let read = app.read_personal_data(old, NURSE, Some("TREAT")).await;
    assert!(matches!(read, Err(AppError::Gone(_))), "{read:?}");
    let recorded = app.record_personal_data(old, &identity("OLD"), NURSE).await;
    assert!(matches!(recorded, Err(AppError::Gone(_))), "{recorded:?}");
    assert!(matches!(
        app.personal_data_matches(old, &json!({"date_of_birth": "1961-04-12"}), NURSE)
            .await,
        Err(AppError::Gone(_))
    ));
    let events = stream(&app, &format!("patient/{old}")).await;
    let last = &events.last().expect("event")["body"];
    assert_eq!(last["type"], "personal_data.erased");
    assert_eq!(last["data"]["purpose"], "retention period ended");
    assert_eq!(last["data"]["by"], "person/P-0008");
    // Erasing again finishes any scrub and records nothing new.
    let again = app
        .erase_personal_data(&old_coi, "person/P-0008", "retention period ended")
        .await
        .expect("erase again");
    assert!(again.already_erased);
    assert_eq!(
        stream(&app, &format!("patient/{old}")).await.len(),
        events.len()
    );
    // The others are untouched; rotation skips the erased record.
    assert!(app
        .read_personal_data(recent, NURSE, Some("TREAT"))
        .await
        .is_ok());
    let rotated = app
        .rotate_vault_key(key(3), "person/P-ADMIN")
        .await
        .expect("rotate");
    assert_eq!(rotated.records, 3, "{rotated:?}");
    verified(&app).await;

    // On SQLite: none of the erased patient's values, nor its former wrapped key or
    // ciphertext, are anywhere in the database files.
    if let Target::Sqlite(path) = &target {
        let dir = path.parent().expect("directory");
        let identity = identity("OLD");
        let mut needles: Vec<Vec<u8>> = identity
            .as_object()
            .expect("object")
            .values()
            .map(|v| v.as_str().expect("text").as_bytes().to_vec())
            .collect();
        needles.push(before.wrapped_key.clone());
        needles.push(before.ciphertext.clone());
        for needle in &needles {
            let holding = files_holding(dir, needle);
            assert!(
                holding.is_empty(),
                "{holding:?} still hold {} bytes of the erased record",
                needle.len()
            );
        }
        // The search finds what is there: the record not erased.
        let kept = store
            .vault_record(recent)
            .await
            .expect("row")
            .expect("kept");
        assert!(!files_holding(dir, &kept.wrapped_key).is_empty());
    }
}

/// The files of a directory whose bytes contain `needle`.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .expect("files")
        .map(|e| e.expect("entry").path())
        .filter(|file| {
            let bytes = std::fs::read(file).expect("read");
            bytes.windows(needle.len()).any(|w| w == needle)
        })
        .collect()
}

#[tokio::test]
async fn personal_data_is_erased_only_after_retention_on_sqlite() {
    run_on(Backend::Sqlite, "vault_erasure", erasure_after_retention).await;
}

#[tokio::test]
async fn personal_data_is_erased_only_after_retention_on_postgres() {
    run_on(Backend::Postgres, "vault_erasure", erasure_after_retention).await;
}

#[tokio::test]
async fn init_keys_generates_the_quick_start_vault_key_and_existing_keys_loads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = autolog_app::Config {
        data_dir: dir.path().join("data"),
        database_url: None,
        vault_key_file: None,
        vault_key_hex: None,
    };
    let store = || async {
        let path = dir.path().join("data").join(autolog_app::SQLITE_FILE);
        Arc::new(
            autolog_store_sqlite::SqliteStore::open(&path)
                .await
                .expect("store"),
        )
    };
    assert!(config.existing_keys().is_err(), "no data directory yet");
    let keys = config.init_keys().expect("created");
    let app = Autolog::with_keys(store().await, keys);
    let id = app.vault_key_id().expect("generated");
    assert!(dir.path().join("data").join("vault.key").exists());
    drop(app);
    let again = Autolog::with_keys(store().await, config.existing_keys().expect("loaded"));
    assert_eq!(again.vault_key_id(), Some(id));
}

/// A bedside check given the identifiers read at the bedside: compared with the vault,
/// a mismatch stops it (naming the field, never the value) with a critical alert, and
/// the identifiers never reach the ledger; the record keeps only which were checked.
#[tokio::test]
async fn bedside_identifiers_are_compared_with_the_vault_and_never_written() {
    run_on(Backend::Sqlite, "vault_bedside", |target| async move {
        let app = network_on(target.open().await).await;
        let coi = enrol(&app, "PK-BEDSIDE", 1, "bedside").await;
        app.record_personal_data("PK-BEDSIDE", &identity("Bedside"), NURSE)
            .await
            .expect("record");
        let parsed = autolog_domain::identifiers::Coi::parse("coi", &coi).expect("coi");
        let unit = autolog_domain::identifiers::UnitId::new(&parsed, "S0001", "A0")
            .expect("unit")
            .to_string();
        let bedside = |id: &str, identifiers: Value| {
            json!({
                "stream": format!("coi/{coi}"),
                "occurred_at": hours_ago(1),
                "actor": NURSE, "site": LAX.0,
                "source": {"system": "emr-lax", "source_event_id": id},
                "body": {"type": "chain.bedside_verified", "version": 1, "data": {
                    "unit_scan": unit, "patient_key": "PK-BEDSIDE", "wristband_coi": coi,
                    "site_id": LAX.0, "verified_by": "P-0005",
                    "patient_identifiers": identifiers}},
            })
            .to_string()
        };
        let wrong = json!({"name": "Zebulon Bedside Quixotewright", "date_of_birth": "1961-04-21"});
        match app.append_json(bedside("b1", wrong).as_bytes()).await {
            Err(AppError::Unmet(unmet)) => {
                assert_eq!(unmet.len(), 1, "{unmet:?}");
                assert_eq!(unmet[0].field, "body.data.patient_identifiers.date_of_birth");
                assert_eq!(unmet[0].value, "(not shown)");
            }
            other => panic!("expected a hard stop, got {other:?}"),
        }
        let alerts = app
            .alerts(&autolog_app::AlertQuery {
                status: Some("all".into()),
                coi: Some(coi.clone()),
                site_id: None,
            })
            .await
            .expect("alerts");
        assert!(
            alerts.iter().any(|a| a.raised.severity == "critical"),
            "a critical alert: {alerts:?}"
        );
        // The right identifiers pass this check (the chain's own rules then decide: this
        // unit was never produced, so the bedside check is refused for that reason).
        let right = json!({"name": "  zebulon bedside QUIXOTEWRIGHT ", "date_of_birth": "1961-04-12", "mrn": "MRN-Bedside-884213"});
        let refusal = app.append_json(bedside("b2", right).as_bytes()).await;
        let text = format!("{refusal:?}");
        assert!(refusal.is_err());
        assert!(!text.contains("patient_identifiers"), "{text}");
        assert!(text.contains("unit_scan"), "{text}");
        // Nothing of the identity is in the ledger, whatever was refused or recorded.
        let everything = autolog_test_support::ledger_text(&app).await;
        for value in ["Quixotewright", "QUIXOTEWRIGHT", "1961-04-12", "1961-04-21", "MRN-Bedside"] {
            assert!(!everything.contains(value), "{value} is in the ledger");
        }
        assert!(everything.contains("\"purpose\":\"PATSFTY\""), "the reads are recorded");
    })
    .await;
}

/// Free text on a chain that carries the patient's identifying data (a note naming the
/// patient, a reason quoting the MRN) is refused naming the field, never the value; the
/// same note without them is recorded.
#[tokio::test]
async fn free_text_with_the_patients_identifiers_is_refused() {
    run_on(Backend::Sqlite, "vault_free_text", |target| async move {
        let app = network_on(target.open().await).await;
        let pk = "PK-FREE-TEXT";
        let coi = enrol(&app, pk, 1, "free-text").await;
        let data = identity("Notes");
        app.record_personal_data(pk, &data, NURSE)
            .await
            .expect("recorded");
        let note = |id: &str, text: &str, reason: Option<&str>| {
            let mut note = json!({
                "stream": format!("coi/{coi}"),
                "occurred_at": hours_ago(1),
                "actor": NURSE, "site": LAX.0,
                "source": {"system": "emr-lax", "source_event_id": id},
                "body": {"type": "annotation.recorded", "version": 1, "data": {"text": text}},
            });
            if let Some(reason) = reason {
                note["reason"] = json!(reason);
            }
            note.to_string()
        };
        let size = app.store().head().await.expect("head").position;
        let cases = [
            (
                note("n-1", "Zebulon Notes QUIXOTEWRIGHT arrived early", None),
                "body.data.text",
            ),
            (
                note("n-2", "bag checked", Some("MRN-Notes-884213 asked to")),
                "reason",
            ),
        ];
        for (body, field) in cases {
            match app.append_json(body.as_bytes()).await {
                Err(AppError::Invalid(e)) => {
                    assert_eq!(e.field, field, "{e}");
                    assert!(
                        !e.to_string().contains("Quixotewright")
                            && !e.to_string().contains("884213"),
                        "{e}"
                    );
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(
            app.store().head().await.expect("head").position,
            size,
            "nothing written"
        );
        app.append_json(note("n-3", "bag checked, patient ready", None).as_bytes())
            .await
            .expect("a note without identifiers is recorded");
    })
    .await;
}

/// A code of `secret` for the step after the current one (accepted: one step of drift).
fn next_totp(secret: &str) -> String {
    let key = autolog_app::totp_key(secret).expect("base32");
    autolog_app::totp_code(&key, autolog_app::totp_step(Instant::now()) + 1).expect("code")
}

/// TOTP and webhook secrets are sealed under the vault master key before they reach the
/// database (never in clear there), still work (sign-in, signed deliveries), are sealed at
/// start when an earlier version stored them in clear, and follow a rotation of the key;
/// a server with another key is refused naming both ids.
async fn secrets_sealed(target: Target) {
    let store = target.open().await;
    let app = network_on(store.clone())
        .await
        .with_private_webhook_receivers(true);
    let person = "P-0005";
    let created = app
        .create_user(person, autolog_test_support::PASSWORD, "person/P-ADMIN")
        .await
        .expect("create user");
    let secret = created.totp_secret;
    let stored = store.user(person).await.expect("read").expect("user");
    let sealed = stored.totp_secret.expect("stored secret");
    assert!(
        sealed.starts_with(&format!("sealed:v1:{}:", key(1).id())),
        "{sealed}"
    );
    assert!(!sealed.contains(&secret));
    app.sign_in(
        person,
        autolog_test_support::PASSWORD,
        &autolog_test_support::current_totp(&secret),
        None,
    )
    .await
    .expect("sign in with the sealed secret");

    let hook = app
        .register_webhook(
            json!({"url": "http://127.0.0.1:9/alerts", "created_by": "person/P-ADMIN"})
                .to_string()
                .as_bytes(),
        )
        .await
        .expect("webhook");
    let hook_secret = hook.secret.clone();
    let hooks = store.webhooks().await.expect("webhooks");
    assert!(hooks[0].secret.starts_with("sealed:v1:"), "sealed");
    assert!(!hooks[0].secret.contains(&hook_secret));

    // An account whose secret an earlier version stored in clear: sealed at start.
    autolog_test_support::ensure_person(&app, "P-0007").await;
    let mut legacy = store.user(person).await.expect("read").expect("user");
    legacy.person_id = "P-0007".into();
    legacy.totp_secret = Some("JBSWY3DPEHPK3PXP".into());
    legacy.totp_last_step = None;
    store.add_user(&legacy).await.expect("legacy account");
    assert_eq!(app.seal_clear_secrets().await.expect("seal"), 1);
    assert_eq!(
        app.seal_clear_secrets().await.expect("again"),
        0,
        "nothing left"
    );
    let now_sealed = store.user("P-0007").await.expect("read").expect("user");
    assert!(now_sealed
        .totp_secret
        .as_deref()
        .is_some_and(|s| s.starts_with("sealed:v1:") && !s.contains("JBSWY3DPEHPK3PXP")));

    // Rotation re-seals every secret under the new key; sign-in goes on.
    let rotated = app
        .rotate_vault_key(key(2), "person/P-ADMIN")
        .await
        .expect("rotate");
    assert_eq!(rotated.secrets_resealed, 3, "{rotated:?}");
    for user in store.users().await.expect("users") {
        let s = user.totp_secret.expect("secret");
        assert!(s.starts_with(&format!("sealed:v1:{}:", key(2).id())), "{s}");
    }
    app.sign_in(
        person,
        autolog_test_support::PASSWORD,
        &next_totp(&secret),
        None,
    )
    .await
    .expect("sign in after the rotation");

    // A server with the old key is refused at start, naming both ids.
    let old = Autolog::from_parts(store.clone(), SigningKey::from_bytes(&[7u8; 32]))
        .with_vault_key(key(1));
    match old.check_keys_match_database().await {
        Err(AppError::Config(m)) => {
            assert!(m.contains(key(1).id()) && m.contains(key(2).id()), "{m}");
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_follow_rotation_on_sqlite() {
    run_on(Backend::Sqlite, "secrets_sealed", secrets_sealed).await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_follow_rotation_on_postgres() {
    run_on(Backend::Postgres, "secrets_sealed", secrets_sealed).await;
}
