//! The alignment report finds each problem planted in a test network built from the
//! example reference data, and bulk import refuses what it must.

use std::sync::Arc;

use autolog_app::{Autolog, ImportFile};
use autolog_domain::{Body, EventDraft, Instant, OccurredAt, SigningKey, Source, Uuid};
use serde_json::{json, Value};

async fn app(dir: &tempfile::TempDir) -> Autolog {
    let store = autolog_store_sqlite::SqliteStore::open(&dir.path().join("a.db"))
        .await
        .expect("store");
    Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[9u8; 32]))
}

fn example_files() -> Vec<ImportFile> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reference");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("examples/reference")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| ImportFile {
            name: p.display().to_string(),
            content: std::fs::read(&p).expect("read"),
            registry: None,
        })
        .collect()
}

async fn import(app: &Autolog, name: &str, content: Value) {
    let file = ImportFile {
        name: name.into(),
        content: content.to_string().into_bytes(),
        registry: None,
    };
    let report = app
        .import_reference(&[file], "person/P-STEWARD", false, &|_| {})
        .await
        .expect("import");
    assert!(report.bad_rows.is_empty(), "{:?}", report.bad_rows);
}

fn rfc3339(micros_from_now: i64) -> String {
    Instant::from_micros(Instant::now().micros() + micros_from_now)
        .expect("instant")
        .to_string()
}

const DAY: i64 = 86_400_000_000;

fn event(stream: &str, id: &str, occurred: &str, actor: &str, site: &str) -> Value {
    json!({
        "stream": stream, "occurred_at": occurred, "actor": actor, "site": site,
        "source": {"system": "mes-bos", "source_event_id": id},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "observation"}}
    })
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|v| v[key].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_alignment_report_finds_every_planted_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let report = app
        .import_reference(&example_files(), "person/P-STEWARD", false, &|_| {})
        .await
        .expect("import");
    assert!(report.bad_rows.is_empty(), "{:?}", report.bad_rows);

    // Planted: a GLN shared with S-PAR-01; a site with Boston's name and address.
    import(
        &app,
        "sites.json",
        json!([
            {"site_id": "S-DUP-01", "name": "Paris annex", "site_types": ["apheresis_center"],
             "time_zone": "Europe/Paris", "gln": "3760000000017"},
            {"site_id": "S-DUP-02", "name": "Boston Cell-Therapy Manufacturing", "site_types": ["manufacturing_site"],
             "time_zone": "America/New_York",
             "postal_address": {"lines": ["200 Innovation Way"], "city": "Boston", "postal_code": "02210", "country": "US"}}
        ]),
    )
    .await;
    // Planted: a second "Claire Martin" at S-PAR-01; a person whose only qualification lapsed.
    import(
        &app,
        "personnel.json",
        json!([
            {"person_id": "P-0099", "printed_name": "Claire  Martin",
             "qualifications": [{"site_id": "S-PAR-01", "role": "apheresis_operator", "valid_until": rfc3339(300 * DAY)}]},
            {"person_id": "P-0100", "printed_name": "Lapsed Operator",
             "qualifications": [{"site_id": "S-BOS-01", "role": "manufacturing_operator", "valid_until": rfc3339(-DAY)}]}
        ]),
    )
    .await;
    // Planted: equipment past calibration; a crosswalk ending in ten days.
    import(
        &app,
        "equipment.json",
        json!([{"equipment_id": "CRF-OLD", "equipment_type": "controlled_rate_freezer", "site_id": "S-BOS-01",
                "calibration_valid_until": rfc3339(-2 * DAY)}]),
    )
    .await;
    import(
        &app,
        "crosswalks.json",
        json!([{"system": "lims-fra", "kind": "site", "local_code": "FRA-OLD", "canonical_id": "S-FRA-01",
                "valid_from": "2026-01-01T00:00:00Z", "valid_to": rfc3339(10 * DAY)}]),
    )
    .await;
    // Planted: a code nobody mapped, seen twice.
    for _ in 0..2 {
        assert!(app
            .resolve("mes-bos", "equipment", "FREEZER-9", None, None)
            .await
            .is_err());
    }
    // Planted: the QC analyst of Frankfurt records at Boston, where she holds no qualification;
    // Lord Howe is at +10:30 in June, the event says +11:00.
    let recorded = app
        .append_json(
            json!([
                event(
                    "site/S-BOS-01",
                    "e1",
                    "2026-06-15T10:00:00-04:00[America/New_York]",
                    "person/P-0003",
                    "S-BOS-01"
                ),
                event(
                    "site/S-LHI-01",
                    "e2",
                    "2026-06-15T10:00:00+11:00[Pacific/Noumea]",
                    "person/P-0006",
                    "S-LHI-01"
                ),
            ])
            .to_string()
            .as_bytes(),
        )
        .await
        .expect("append");
    assert_eq!(recorded.flags.len(), 1, "one discrepancy flagged");
    // Not a problem: work done under a qualification that was later renewal-replaced.
    let qualification = |from: &str, until: &str| {
        json!([{"person_id": "P-0101", "printed_name": "Renewed Operator",
                "qualifications": [{"site_id": "S-PAR-01", "role": "apheresis_operator",
                                    "valid_from": from, "valid_until": until}]}])
    };
    import(
        &app,
        "personnel.json",
        qualification("2025-05-01T00:00:00Z", "2026-05-01T00:00:00Z"),
    )
    .await;
    app.append_json(
        event(
            "site/S-PAR-01",
            "e3",
            "2026-04-15T10:00:00+02:00[Europe/Paris]",
            "person/P-0101",
            "S-PAR-01",
        )
        .to_string()
        .as_bytes(),
    )
    .await
    .expect("append");
    import(
        &app,
        "personnel.json",
        qualification("2026-05-01T00:00:00Z", "2028-05-01T00:00:00Z"),
    )
    .await;
    // Planted: a site whose zone the bundled tz database does not know (written straight to
    // the store, as if registered under an older tz database).
    let draft = EventDraft {
        event_id: Uuid::now_v7(),
        stream: "site/S-OLD-01".into(),
        occurred_at: OccurredAt::from_parts(Instant::now().micros() - DAY, "UTC", 0).expect("t"),
        actor: "person/P-STEWARD".into(),
        site: None,
        source: Source {
            system: "steward".into(),
            source_event_id: "old-zone".into(),
        },
        reason: None,
        corrects: None,
        body: Body {
            event_type: "site.registered".into(),
            version: 1,
            data: json!({"site_id": "S-OLD-01", "name": "Old", "site_types": ["laboratory"], "time_zone": "Asia/Old_Capital"}),
        },
    };
    app.store()
        .append(&[draft], &Instant::now)
        .await
        .expect("append");

    let report =
        serde_json::to_value(app.alignment_report(None).await.expect("report")).expect("json");
    assert_eq!(report["unmapped_codes"][0]["system"], "mes-bos");
    assert_eq!(report["unmapped_codes"][0]["kind"], "equipment");
    assert_eq!(report["unmapped_codes"][0]["count"], 2);
    assert!(ids(&report["expiring_crosswalks"], "local_code").contains(&"FRA-OLD".to_string()));
    assert_eq!(
        ids(&report["sites_without_valid_zone"], "site_id"),
        vec!["S-OLD-01"]
    );
    assert_eq!(
        ids(
            &report["personnel_without_current_qualification"],
            "person_id"
        ),
        vec!["P-0100"]
    );
    let acting = &report["personnel_acting_without_qualification"];
    assert_eq!(ids(acting, "person_id"), vec!["P-0003"]);
    assert_eq!(acting[0]["site_id"], "S-BOS-01");
    assert_eq!(
        ids(&report["equipment_past_calibration"], "equipment_id"),
        vec!["CRF-OLD"]
    );
    let duplicates: Vec<Value> = report["likely_duplicates"]
        .as_array()
        .expect("list")
        .iter()
        .map(|d| d["ids"].clone())
        .collect();
    assert!(
        duplicates.contains(&json!(["S-DUP-01", "S-PAR-01"])),
        "{duplicates:?}"
    );
    assert!(
        duplicates.contains(&json!(["S-BOS-01", "S-DUP-02"])),
        "{duplicates:?}"
    );
    assert!(
        duplicates.contains(&json!(["P-0001", "P-0099"])),
        "{duplicates:?}"
    );
    let discrepancies = &report["time_zone_discrepancies"];
    assert_eq!(discrepancies[0]["site_id"], "S-LHI-01");
    assert_eq!(discrepancies[0]["expected_offset"], "+10:30");
    assert_eq!(discrepancies[0]["recorded_offset"], "+11:00");

    // Mapping the code takes it off the report.
    import(
        &app,
        "crosswalks.json",
        json!([{"system": "mes-bos", "kind": "equipment", "local_code": "FREEZER-9", "canonical_id": "CRF-OLD",
                "valid_from": "2026-01-01T00:00:00Z"}]),
    )
    .await;
    let report =
        serde_json::to_value(app.alignment_report(None).await.expect("report")).expect("json");
    assert_eq!(report["unmapped_codes"], json!([]));
}

#[tokio::test]
async fn an_import_amends_what_changed_and_refuses_what_cannot_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    app.import_reference(&example_files(), "person/P-STEWARD", false, &|_| {})
        .await
        .expect("import");
    // Imported records took effect at their valid_from: a read as of February sees them.
    let february = autolog_app::RegistryQuery {
        valid_at: Some("2026-02-01T00:00:00Z".into()),
        filters: vec![("site_id".into(), "S-PAR-01".into())],
        ..Default::default()
    };
    let listed = app.list_registry("sites", &february).await.expect("list");
    assert_eq!(listed.records.len(), 1, "{listed:?}");
    let size = app.store().head().await.expect("head").position;
    let file = |name: &str, content: &str| ImportFile {
        name: name.into(),
        content: content.as_bytes().to_vec(),
        registry: None,
    };
    // A renamed site and a recalled lot: amendments.
    let report = app
        .import_reference(
            &[
                file("sites.json", r#"[{"site_id": "S-FRA-01", "name": "Frankfurt QC laboratory (Höchst)", "site_types": ["laboratory"], "time_zone": "Europe/Berlin"}]"#),
                file("lots.csv", ""),
            ],
            "person/P-STEWARD",
            true,
            &|_| {},
        )
        .await
        .expect("dry run");
    assert!(!report.bad_rows.is_empty(), "lots.csv names no registry");
    let report = app
        .import_reference(
            &[
                file("sites.json", r#"[{"site_id": "S-FRA-01", "name": "Frankfurt QC laboratory (Höchst)", "site_types": ["laboratory"], "time_zone": "Europe/Berlin"}]"#),
                file("07-material_lots.csv", "material,supplier,lot,expiry,status\nLV-CD19,Vector Biologics Inc.,LV19-2026-014,2027-10-31,recalled\n"),
            ],
            "person/P-STEWARD",
            false,
            &|_| {},
        )
        .await
        .expect("import");
    assert!(report.bad_rows.is_empty(), "{:?}", report.bad_rows);
    assert_eq!((report.amended, report.appended_events), (2, 2));
    let lot = app
        .stream_state("lot/LV-CD19/LV19-2026-014", None, None)
        .await
        .expect("lot");
    assert_eq!(lot.state["status"], "recalled");
    let site = app
        .stream_state("site/S-FRA-01", None, None)
        .await
        .expect("site");
    assert_eq!(site.state["name"], "Frankfurt QC laboratory (Höchst)");
    assert_eq!(
        site.state["gln"], "4000000000020",
        "an import never removes an attribute"
    );

    // A new address replaces the old one whole; a null is an absent field, never a removal;
    // and importing the same row again changes nothing.
    let moved = r#"[{"site_id": "S-FRA-01", "name": "Frankfurt QC laboratory (Höchst)", "site_types": ["laboratory"],
        "time_zone": "Europe/Berlin", "gln": null,
        "postal_address": {"lines": ["Brüningstraße 50"], "city": "Frankfurt am Main", "country": "DE"}}]"#;
    for (round, expected_amended) in [(1, 1), (2, 0)] {
        let report = app
            .import_reference(
                &[file("sites.json", moved)],
                "person/P-STEWARD",
                false,
                &|_| {},
            )
            .await
            .expect("import");
        assert!(report.bad_rows.is_empty(), "{:?}", report.bad_rows);
        assert_eq!(report.amended, expected_amended, "round {round}");
    }
    let site = app
        .stream_state("site/S-FRA-01", None, None)
        .await
        .expect("site");
    assert_eq!(
        site.state["postal_address"],
        json!({"lines": ["Brüningstraße 50"], "city": "Frankfurt am Main", "country": "DE"})
    );
    assert_eq!(site.state["gln"], "4000000000020");

    // A mapping restated with another end is corrected: closing it by import.
    let closing = "system,kind,local_code,canonical_id,valid_from,valid_to\n\
                   mes-bos,site,BOS1,S-BOS-01,2026-01-01T00:00:00Z,2026-09-01T00:00:00Z\n";
    let report = app
        .import_reference(
            &[file("08-crosswalks.csv", closing)],
            "person/P-STEWARD",
            false,
            &|_| {},
        )
        .await
        .expect("import");
    assert!(report.bad_rows.is_empty(), "{:?}", report.bad_rows);
    assert_eq!((report.amended, report.mapped), (1, 0));
    let resolve = |at: &'static str| app.resolve("mes-bos", "site", "BOS1", Some(at), None);
    assert_eq!(
        resolve("2026-08-01T00:00:00Z").await.expect("mapped"),
        "S-BOS-01"
    );
    assert!(
        resolve("2026-10-01T00:00:00Z").await.is_err(),
        "closed on 2026-09-01"
    );
    let export = app.export_reference(None).await.expect("export");
    let bos1: Vec<&Value> = export.registries["crosswalks"]
        .iter()
        .filter(|m| m["local_code"] == "BOS1")
        .collect();
    assert_eq!(bos1.len(), 1, "the corrected mapping replaced the old one");

    // A lot's supplier and a source system's kind cannot change: refused, nothing written.
    let size_after = app.store().head().await.expect("head").position;
    assert_eq!(size_after, size + 4);
    let report = app
        .import_reference(
            &[
                file("07-material_lots.csv", "material,supplier,lot,expiry,status\nLV-CD19,Other Supplier,LV19-2026-014,2027-10-31,recalled\n"),
                file("02-source_systems.csv", "system_id,kind,owning_site_id\nmes-bos,lims,S-BOS-01\n"),
            ],
            "person/P-STEWARD",
            false,
            &|_| {},
        )
        .await
        .expect("import");
    let columns: Vec<&str> = report.bad_rows.iter().map(|b| b.column.as_str()).collect();
    assert_eq!(columns, vec!["supplier", "kind"], "{:?}", report.bad_rows);
    assert!(
        report.bad_rows[1]
            .rule
            .contains("source_system.amended cannot make that change"),
        "{:?}",
        report.bad_rows
    );
    assert_eq!(app.store().head().await.expect("head").position, size_after);
}

/// Every import refusal names the field that is actually wrong: a list missing deep in a
/// product's process is `process.release_tests` (under column `process`), a bad time in a
/// qualification `qualifications[0].valid_from`, a CSV cell its column; an unknown column its
/// header; and nothing of a refused import is written.
#[tokio::test]
async fn each_import_refusal_names_the_field_that_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app(&dir).await;
    let report = app
        .import_reference(&example_files(), "person/P-STEWARD", false, &|_| {})
        .await
        .expect("examples");
    assert!(report.bad_rows.is_empty(), "{:?}", report.bad_rows);
    let size = app.store().head().await.expect("head").position;

    let examples = |name: &str| -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/reference")
            .join(name);
        serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
    };
    let mut product = examples("04-products.json")[0].clone();
    product["product_code"] = json!("CART-NEW");
    if let Some(process) = product["process"].as_object_mut() {
        process.remove("release_tests");
    }
    let mut person = examples("05-personnel.json")[0].clone();
    person["person_id"] = json!("P-NEW");
    person["qualifications"][0]["valid_from"] = json!("yesterday");
    let csv = |name: &str, text: &str| ImportFile {
        name: name.into(),
        content: text.as_bytes().to_vec(),
        registry: None,
    };
    let json_file = |name: &str, value: Value| ImportFile {
        name: name.into(),
        content: value.to_string().into_bytes(),
        registry: None,
    };
    let cases: Vec<(ImportFile, &str, &str)> = vec![
        (
            json_file("products.json", json!([product])),
            "process",
            "process.release_tests",
        ),
        (
            json_file("personnel.json", json!([person])),
            "qualifications",
            "qualifications[0].valid_from",
        ),
        (
            csv(
                "sites.csv",
                "site_id,name,site_types,time_zone,postal_address.lines,postal_address.city,postal_address.postal_code,postal_address.country,status,valid_from\nS-NEW-01,New,apheresis_center,Mars/Olympus,1 rue X,Paris,75012,FR,active,2026-01-01T00:00:00Z\n",
            ),
            "time_zone",
            "",
        ),
        (
            csv(
                "material_lots.csv",
                "material,supplier,lot,expiry,status\nLV-NEW,Supplier,LOT-1,31/10/2027,released\n",
            ),
            "expiry",
            "",
        ),
        (
            csv(
                "equipment.csv",
                "equipment_id,equipment_type,site_id,status,colour\nEQ-NEW,freezer,S-PAR-01,active,blue\n",
            ),
            "#5 (header)",
            "",
        ),
    ];
    for (file, column, field) in cases {
        let name = file.name.clone();
        let report = app
            .import_reference(&[file], "person/P-STEWARD", false, &|_| {})
            .await
            .expect("import");
        let bad = report
            .bad_rows
            .first()
            .unwrap_or_else(|| panic!("{name}: refused"));
        assert_eq!(
            (bad.column.as_str(), bad.field.as_str()),
            (column, field),
            "{name}: {bad}"
        );
        if !field.is_empty() {
            assert!(bad.to_string().contains(field), "{name}: {bad}");
        }
    }
    assert_eq!(
        app.store().head().await.expect("head").position,
        size,
        "nothing of a refused import is written"
    );
}
