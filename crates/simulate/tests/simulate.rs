//! The simulator end to end: a small network with faults, ingested on a fresh store through
//! the API's code path. The ledger verifies, every journey stands where the simulation
//! meant it to, every injected fault is caught (an alert or a refusal, by kind and chain),
//! and the same seed gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use autolog_app::{AlertQuery, Autolog};
use autolog_domain::SigningKey;
use autolog_simulate::{generate, SimulateOptions, FAULT_KINDS};

#[tokio::test]
async fn a_simulated_network_ingests_verifies_and_every_injected_fault_is_caught() {
    let options = SimulateOptions::new(60, 11, 0.25);
    let sim = generate(&options).expect("simulate");
    let again = generate(&options).expect("simulate again");
    assert_eq!(
        sim.lines, again.lines,
        "the same seed gives the same requests"
    );
    assert_eq!(sim.faults_ndjson(), again.faults_ndjson());
    let other = generate(&SimulateOptions::new(60, 12, 0.25)).expect("another seed");
    assert_ne!(sim.lines, other.lines, "another seed, another network");
    assert!(
        !sim.faults.is_empty(),
        "a fault rate of 0.25 injects faults"
    );
    let kinds: BTreeSet<&str> = sim.faults.iter().map(|f| f.kind.as_str()).collect();
    // 60 journeys at 0.25: 15 faults, one of each kind.
    assert_eq!(sim.faults.len(), FAULT_KINDS.len(), "{:?}", sim.faults);
    assert_eq!(
        kinds.len(),
        FAULT_KINDS.len(),
        "every kind of fault: {kinds:?}"
    );
    // No secret reaches the ledger: they are set-up lines only.
    for line in &sim.lines {
        if line.contains("\"secret\"") {
            assert!(
                line.contains("\"endpoint\":\"signing-secret\"") || line.contains("\"signature\""),
                "{line}"
            );
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let store = autolog_store_sqlite::SqliteStore::open(&dir.path().join("sim.db"))
        .await
        .expect("store");
    let app = Autolog::from_parts(Arc::new(store), SigningKey::from_bytes(&[5u8; 32]));
    let report = app.ingest_lines(&sim.lines).await.expect("ingest");
    println!("{}", report.summary_line());

    // The ledger verifies.
    let verified = app.verify(|_, _| {}).await.expect("verify runs");
    assert!(verified.is_ok(), "{:?}", verified.err());

    for refused in &report.refused {
        println!("line {}: {}", refused.line, refused.reason);
    }
    for fault in &sim.faults {
        println!("{}", fault.to_json());
    }
    // Every refusal and duplicate is an injected fault's line.
    let fault_lines: BTreeMap<usize, &str> = sim
        .faults
        .iter()
        .map(|f| (f.line, f.kind.as_str()))
        .collect();
    for refused in &report.refused {
        assert!(
            fault_lines.contains_key(&refused.line),
            "line {} refused, no fault injected there: {}\n{}",
            refused.line,
            refused.reason,
            sim.lines[refused.line - 1]
        );
    }
    for line in &report.duplicate_lines {
        assert_eq!(fault_lines.get(line), Some(&"duplicate"), "line {line}");
    }

    // Each journey stands where the simulation meant it to.
    let faulty: BTreeSet<&str> = sim
        .faults
        .iter()
        .flat_map(|f| f.cois.iter().map(String::as_str))
        .collect();
    for expected in &sim.chains {
        let chain = app.chain(&expected.coi, None, None).await.expect("chain");
        assert_eq!(chain.state, expected.state.as_str(), "{}", expected.coi);
        if !faulty.contains(expected.coi.as_str()) {
            assert!(
                alerts_of(&app, &expected.coi).await.is_empty(),
                "a clean journey raises no alert: {}",
                expected.coi
            );
        }
    }
    let clean_done = sim
        .chains
        .iter()
        .filter(|c| !faulty.contains(c.coi.as_str()) && c.state == "in_follow_up")
        .count();
    assert!(clean_done > 0, "clean journeys reach follow-up");

    // Every injected fault is found: in the alerts of each chain it affects, or in the
    // refusals at its line (a refused step is an alert too), or as a duplicate.
    for fault in &sim.faults {
        assert!(FAULT_KINDS.contains(&fault.kind.as_str()));
        let refused = report.refused.iter().find(|r| r.line == fault.line);
        match fault.kind.as_str() {
            "misread_check_character"
            | "unmapped_code"
            | "out_of_order"
            | "external_lab"
            | "partial_shipment"
            | "expired_unit" => {
                let r = refused.unwrap_or_else(|| panic!("not refused: {fault:?}"));
                let hint = match fault.kind.as_str() {
                    "misread_check_character" => "check",
                    "unmapped_code" => "BOS1",
                    "external_lab" => "not the samples shipped",
                    "partial_shipment" => "a batch is made only from bags the site holds",
                    "expired_unit" => "expired at",
                    _ => "bedside",
                };
                assert!(r.reason.contains(hint), "{fault:?}: {}", r.reason);
            }
            "duplicate" => assert!(
                report.duplicate_lines.contains(&fault.line),
                "not seen as a duplicate: {fault:?}"
            ),
            kind => {
                assert!(refused.is_none(), "recorded, not refused: {fault:?}");
                let rules: &[&str] = match kind {
                    "swapped_bag" => &[
                        "custody.reconciliation_failed",
                        "custody.unit_in_wrong_shipment",
                    ],
                    "wrong_seal" | "late_arrival" | "returned_shipment" => {
                        &["custody.reconciliation_failed"]
                    }
                    "consolidated_swap" => &[
                        "custody.reconciliation_failed",
                        "custody.unit_in_wrong_shipment",
                    ],
                    "amended_result" => &["decision.basis_corrected"],
                    "late_entry" => &["material_lot.recalled_after_use"],
                    "wrong_utc_offset" => &["time_zone.discrepancy"],
                    other => panic!("unknown fault kind {other}"),
                };
                for coi in &fault.cois {
                    let alerts = alerts_of(&app, coi).await;
                    assert!(
                        alerts
                            .iter()
                            .any(|a| rules.contains(&a["rule"].as_str().unwrap_or_default())),
                        "{fault:?} not in the alerts of {coi}: {alerts:?}"
                    );
                }
            }
        }
    }
}

async fn alerts_of(app: &Autolog, coi: &str) -> Vec<serde_json::Value> {
    app.alerts(&AlertQuery {
        status: Some("all".into()),
        coi: Some(coi.to_string()),
        site_id: None,
    })
    .await
    .expect("alerts")
    .iter()
    .map(|a| serde_json::json!(a))
    .collect()
}
