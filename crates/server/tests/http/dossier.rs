//! The inspection dossier of a chain with a signed release, a result corrected after it
//! and the hold that correction placed, on SQLite and PostgreSQL: it verifies with
//! Autolog's verifier and with the independent Python one (docs/dossier_verify.py);
//! altering an event, a proof, the checkpoint's root or its signature fails both, naming
//! what; a dossier as known before the correction leaves it out and still verifies.

use std::path::Path;
use std::process::Command;

use autolog_app::Autolog;
use autolog_domain::ledger::dossier::verify;
use autolog_domain::VerifyingKey;
use autolog_store_conformance::harness::{run_on, Backend, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::guide::spawn;
use crate::hard_cases::{enrol, record, token, Chain};

/// The chain: released with a signature, then a result corrected after the release
/// (which holds the chain).
async fn corrected_after_release(app: &Autolog) -> Chain {
    let c = enrol(app, "PK-DOSSIER", 1).await;
    let container = "DS-DOSSIER";
    let mut events = vec![
        c.collection(),
        c.handoff(&c.dins, container),
        c.receipt(&c.dins, container),
    ];
    events.extend(c.to_release(None));
    record(app, &events).await;
    let mut amended = c.result("LIMS-VIABILITY-2", "VIABILITY", json!(64.5), Some("%"));
    amended["corrects"] =
        json!({"system": "lims-fra", "source_event_id": format!("{}-LIMS-VIABILITY", c.key)});
    amended["reason"] = json!("viable-cell count re-read from the instrument");
    amended["source"]["system"] = json!("lims-fra");
    app.append_json(amended.to_string().as_bytes())
        .await
        .expect("the correction");
    c
}

fn key_of(app: &Autolog) -> VerifyingKey {
    let bytes: [u8; 32] = hex::decode(app.public_key().0)
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    VerifyingKey::from_bytes(&bytes).expect("key")
}

/// The Python verifier's verdict: `None` when it verifies, else what it printed.
fn python_verdict(dossier: &Value, key: &str, dir: &Path) -> Option<String> {
    let file = dir.join(format!("dossier-{}.json", autolog_domain::Uuid::now_v7()));
    std::fs::write(&file, dossier.to_string()).expect("written");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dossier_verify.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .arg(key)
        .output()
        .expect("python3 runs");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("ModuleNotFoundError"),
        "the Python verifier needs the cryptography package: {said}"
    );
    (!out.status.success()).then_some(said)
}

async fn dossier(t: Target) {
    let (app, base) = spawn(&t).await;
    let c = corrected_after_release(&app).await;
    let doc = app.dossier(&c.coi, None, None).await.expect("dossier");
    let key = key_of(&app);
    let key_hex = app.public_key().0;
    let dir = tempfile::tempdir().expect("tempdir");
    let verified = verify(&doc, &key).expect("verifies");
    assert!(verified.events > 20 && verified.streams > 5, "{verified:?}");
    assert_eq!(python_verdict(&doc, &key_hex, dir.path()), None);
    assert_eq!(
        doc["corrections"].as_array().map(Vec::len),
        Some(1),
        "{}",
        doc["corrections"]
    );
    assert_eq!(doc["corrections"][0]["prior"]["result"], json!(91.5));
    assert_eq!(doc["corrections"][0]["new"]["result"], json!(64.5));
    assert!(doc["signatures"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(doc["holds"].as_array().is_some_and(|h| !h.is_empty()));
    every_alteration_is_named(&doc, &key, &key_hex, dir.path());
    as_known_before_the_correction(&app, &c, &doc, &key, &key_hex, dir.path()).await;
    the_pdf_carries_the_json_that_verifies(&app, &c, &key, dir.path()).await;
    let lims = token(&app, "qms-net", &["S-BOS-01"]).await;
    let answer = reqwest::Client::new()
        .get(format!("{base}/api/v1/chains/{}/dossier", c.coi))
        .bearer_auth(lims)
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), StatusCode::OK);
    let served: Value = answer.json().await.expect("JSON");
    verify(&served, &key).expect("the served dossier verifies");
}

/// A change made to a copy of the dossier.
type Alteration = Box<dyn Fn(&mut Value)>;

/// Each alteration fails both verifiers, naming where.
fn every_alteration_is_named(doc: &Value, key: &VerifyingKey, key_hex: &str, dir: &Path) {
    let flip = |text: &str| -> String {
        let mut chars: Vec<char> = text.chars().collect();
        chars[0] = if chars[0] == '0' { '1' } else { '0' };
        chars.into_iter().collect()
    };
    let cases: Vec<(&str, Alteration, &str)> = vec![
        (
            "an event's actor",
            Box::new(|d: &mut Value| d["events"][3]["event"]["actor"] = json!("person/P-9999")),
            "events[3]: hash",
        ),
        (
            "a proof's hash",
            Box::new(move |d: &mut Value| {
                let h = d["events"][0]["inclusion_path"][0]
                    .as_str()
                    .expect("hash")
                    .to_string();
                d["events"][0]["inclusion_path"][0] = json!(flip(&h));
            }),
            "events[0]: inclusion proof",
        ),
        (
            "the checkpoint's root",
            Box::new(move |d: &mut Value| {
                let h = d["checkpoint"]["root"].as_str().expect("root").to_string();
                d["checkpoint"]["root"] = json!(flip(&h));
            }),
            "checkpoint: ",
        ),
        (
            "the checkpoint's signature",
            Box::new(move |d: &mut Value| {
                let h = d["checkpoint"]["signature"]
                    .as_str()
                    .expect("signature")
                    .to_string();
                d["checkpoint"]["signature"] = json!(flip(&h));
            }),
            "signature does not verify",
        ),
        (
            "an event left out",
            Box::new(|d: &mut Value| {
                d["events"].as_array_mut().expect("events").remove(1);
            }),
            "events[1]: stream",
        ),
    ];
    for (what, alter, says) in cases {
        let mut bad = doc.clone();
        alter(&mut bad);
        let rust = verify(&bad, key).expect_err(what);
        assert!(rust.contains(says), "{what}: {rust}");
        let python = python_verdict(&bad, key_hex, dir)
            .unwrap_or_else(|| panic!("{what}: the Python verifier passed it"));
        assert!(python.contains(says), "{what}: {python}");
    }
}

/// As known just before the correction was recorded: without it, and still proven.
async fn as_known_before_the_correction(
    app: &Autolog,
    c: &Chain,
    now: &Value,
    key: &VerifyingKey,
    key_hex: &str,
    dir: &Path,
) {
    let corrected_id = now["corrections"][0]["event_id"].as_str().expect("id");
    let recorded_at = now["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["event"]["event_id"] == corrected_id)
        .and_then(|e| e["event"]["recorded_at"].as_str())
        .expect("recorded_at")
        .to_string();
    let at = autolog_domain::Instant::parse_rfc3339("t", &recorded_at).expect("instant");
    let before = autolog_domain::Instant::from_micros(at.micros() - 1)
        .expect("instant")
        .to_string();
    let past = app
        .dossier(&c.coi, None, Some(&before))
        .await
        .expect("dossier");
    assert_eq!(past["corrections"], json!([]));
    assert!(past["events"].as_array().map(Vec::len) < now["events"].as_array().map(Vec::len));
    verify(&past, key).expect("the past dossier verifies");
    assert_eq!(python_verdict(&past, key_hex, dir), None);
}

/// What pikepdf reads of the PDF: its PDF/A part and conformance, and the attachment.
const READ_PDF: &str = r#"
import json, sys, pikepdf
pdf = pikepdf.open(sys.argv[1])
meta = pdf.open_metadata()
attached = pdf.attachments["dossier.json"].get_file().read_bytes().decode()
print(json.dumps({"part": meta.get("pdfaid:part"), "conformance": meta.get("pdfaid:conformance"),
                  "pages": len(pdf.pages), "dossier": json.loads(attached)}))
"#;

/// The PDF/A-3b report: its metadata says so, the JSON it carries verifies, its first page
/// renders (written to target/dossier-pictures/ for a person to look at).
async fn the_pdf_carries_the_json_that_verifies(
    app: &Autolog,
    c: &Chain,
    key: &VerifyingKey,
    dir: &Path,
) {
    let pdf = app.dossier_pdf(&c.coi, None, None).await.expect("the PDF");
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    let file = dir.join("dossier.pdf");
    std::fs::write(&file, &pdf).expect("written");
    let out = Command::new("python3")
        .args(["-c", READ_PDF])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pikepdf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (read["part"].clone(), read["conformance"].clone()),
        (json!("3"), json!("B")),
        "{}",
        read["part"]
    );
    assert!(read["pages"].as_u64() > Some(1));
    verify(&read["dossier"], key).expect("the JSON inside the PDF verifies");
    let pictures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dossier-pictures");
    std::fs::create_dir_all(&pictures).expect("a folder");
    let page = Command::new("pdftoppm")
        .args(["-r", "100", "-png", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&file)
        .arg(pictures.join("dossier-page-1"))
        .status()
        .expect("pdftoppm runs");
    assert!(page.success(), "pdftoppm renders the first page");
}

#[tokio::test]
async fn a_dossier_verifies_offline_on_sqlite() {
    run_on(Backend::Sqlite, "dossier", dossier).await;
}

#[tokio::test]
async fn a_dossier_verifies_offline_on_postgres() {
    run_on(Backend::Postgres, "dossier", dossier).await;
}
