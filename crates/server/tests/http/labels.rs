//! Labels over HTTP on the example network, on SQLite and PostgreSQL: a bag's and a final
//! unit's label printed from the ledger by the systems that print them (the print recorded
//! first), drawn again as PDF, SVG and ZPL, a reprint only with a reason, no label for a
//! container of another chain; the applied label verified by its scans; and the mislabel:
//! a final unit carrying another patient's label is caught at verification (the chain held,
//! a critical alert) and at the bedside (a hard stop).

use std::sync::Arc;

use autolog_app::{AppError, Autolog};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::guide::spawn;
use crate::hard_cases::{alert_rules, enrol, post, record, state, token, Chain};

const LAX: &str = "S-LAX-01";
const BOS: &str = "S-BOS-01";

/// Both patients' chains, collected at Los Angeles and manufactured and released at
/// Boston, each with its final unit.
async fn two_released_chains(app: &Autolog) -> (Chain, Chain) {
    let a = enrol(app, "PK-LBL-A", 1).await;
    let b = enrol(app, "PK-LBL-B", 1).await;
    for c in [&a, &b] {
        let container = format!("DS-{}", c.key);
        let mut events = vec![
            c.collection(),
            c.handoff(&c.dins, &container),
            c.receipt(&c.dins, &container),
        ];
        events.extend(c.to_release(Some("2027-05-18T16:00:00Z")));
        record(app, &events).await;
    }
    (a, b)
}

async fn print(base: &str, token: &str, c: &Chain, body: Value) -> (StatusCode, Value) {
    post(
        base,
        token,
        &format!("/api/v1/chains/{}/labels", c.coi),
        &body,
    )
    .await
}

async fn get(base: &str, token: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
    let answer = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    let status = answer.status();
    let kind = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, kind, answer.bytes().await.expect("body").to_vec())
}

async fn labels(t: Target) {
    let (app, base) = spawn(&t).await;
    let (a, b) = two_released_chains(&app).await;
    // Los Angeles' apheresis system, which prints its bags' labels.
    let system = json!({
        "stream": "source-system/aph-lax", "occurred_at": "2026-01-01T00:00:00+00:00[UTC]", "actor": "person/P-ADMIN",
        "source": {"system": "mdm", "source_event_id": "REF-APH-LAX"},
        "body": {"type": "source_system.registered", "version": 1,
                 "data": {"system_id": "aph-lax", "kind": "apheresis", "owning_site_id": LAX}},
    });
    app.append_json(system.to_string().as_bytes())
        .await
        .expect("registered");
    let aph = token(&app, "aph-lax", &[LAX]).await;
    let bag = bag_label_printed_drawn_and_reprinted(&base, &aph, &a, &b).await;
    bag_label_verified_by_its_scans(&base, &aph, &a, &bag).await;
    let mes = token(&app, "mes-bos", &[BOS]).await;
    let (_, label_a) = unit_print(&base, &mes, &a).await;
    let (_, label_b) = unit_print(&base, &mes, &b).await;
    assert_eq!(label_a["content"]["container"], json!(a.unit));
    another_patients_label_is_caught(&app, &base, &mes, &a, &b, &label_b).await;
    the_console_prints_and_verifies(&app, &base).await;
}

/// The console's labels page: an apheresis coordinator prints a bag's label, sees it
/// drawn, and verifies the applied label (a wrong scan is a mismatch shown as an alert).
async fn the_console_prints_and_verifies(app: &Arc<Autolog>, base: &str) {
    let c = enrol(app, "PK-LBL-C", 1).await;
    record(app, &[c.collection()]).await;
    let who = autolog_test_support::person(app, "P-C21", &[("apheresis_coordinator", LAX)]).await;
    let header = |name: &str| {
        who.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let csrf = header("x-csrf-token");
    let cookies = format!("{}; autolog_csrf={csrf}", header("cookie"));
    let client = reqwest::Client::new();
    let form = |path: &str, body: Vec<(&str, String)>| {
        client
            .post(format!("{base}/chains/{}/labels/{path}", c.coi))
            .header("cookie", cookies.clone())
            .form(&body)
            .send()
    };
    let din = c.dins[0].clone();
    let printed = form(
        "print",
        vec![
            ("csrf", csrf.clone()),
            ("container", din.clone()),
            ("site_id", LAX.into()),
            ("printer", "ZD621-LAX-1".into()),
        ],
    )
    .await
    .expect("POST");
    assert_eq!(printed.status(), StatusCode::OK);
    let page = printed.text().await.expect("page");
    assert!(page.contains("recorded: print it now"), "{page}");
    assert!(page.contains("class=\"label-preview\""), "{page}");
    let svg = client
        .get(format!(
            "{base}/api/v1/chains/{}/labels/{din}?format=svg",
            c.coi
        ))
        .header("cookie", cookies.clone())
        .send()
        .await
        .expect("GET");
    assert_eq!(svg.status(), StatusCode::OK);
    let label = app.current_label(&c.coi, &din).await.expect("in force");
    let matched = form(
        "verify",
        vec![
            ("csrf", csrf.clone()),
            ("container", din.clone()),
            ("site_id", LAX.into()),
            ("scans", label.content.matrix.clone()),
        ],
    )
    .await
    .expect("POST");
    assert!(matched
        .text()
        .await
        .expect("page")
        .contains("Label verified"));
    let wrong = label
        .content
        .matrix
        .replace(&c.coi[..15], "CHA999926999999");
    let mismatch = form(
        "verify",
        vec![
            ("csrf", csrf),
            ("container", din),
            ("site_id", LAX.into()),
            ("scans", wrong),
        ],
    )
    .await
    .expect("POST");
    let page = mismatch.text().await.expect("page");
    assert!(
        page.contains("Label mismatch") && page.contains("role=\"alert\""),
        "{page}"
    );
    assert_eq!(state(app, &c.coi).await["state"], json!("on_hold"));
}

async fn unit_print(base: &str, mes: &str, c: &Chain) -> (StatusCode, Value) {
    let (status, label) = print(base, mes, c,
        json!({"container": c.unit, "site_id": BOS, "printer": "ZT411-BOS-2", "printed_by": "P-0002"})).await;
    assert_eq!(status, StatusCode::CREATED, "{label}");
    (status, label)
}

/// The bag's label: recorded, drawn three ways, reprinted only with a reason; a DIN of
/// another chain gets none.
async fn bag_label_printed_drawn_and_reprinted(
    base: &str,
    aph: &str,
    a: &Chain,
    b: &Chain,
) -> Value {
    let body = json!({"container": a.dins[0], "site_id": LAX, "printer": "ZD621-LAX-1", "printed_by": "P-0005"});
    let (status, label) = print(base, aph, a, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{label}");
    assert_eq!(label["copy"], json!(1));
    assert_eq!(label["template_id"], json!("LT-CART-19-BAG"));
    let matrix = label["content"]["matrix"].as_str().expect("matrix");
    let din = &a.dins[0][..13];
    assert!(
        matrix.starts_with("=+06000=") && matrix.contains(din),
        "{matrix}"
    );
    assert!(matrix.contains(&format!("&/{}", &a.coi[..15])), "{matrix}");
    for (format, kind, start) in [
        ("pdf", "application/pdf", "%PDF"),
        ("svg", "image/svg+xml", "<svg"),
        ("zpl", "application/zpl", "^XA"),
    ] {
        let (status, got, bytes) = get(
            base,
            aph,
            &format!(
                "/api/v1/chains/{}/labels/{}?format={format}",
                a.coi, a.dins[0]
            ),
        )
        .await;
        assert_eq!((status, got.as_str()), (StatusCode::OK, kind));
        assert!(bytes.starts_with(start.as_bytes()), "{format}");
    }
    let (status, refusal) = print(base, aph, a, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");
    assert_eq!(
        refusal["error"]["field"],
        json!("reprint_reason"),
        "{refusal}"
    );
    let mut again = body.clone();
    again["reprint_reason"] = json!("label smudged during the collection");
    let (status, reprint) = print(base, aph, a, again).await;
    assert_eq!(
        (status, reprint["copy"].clone()),
        (StatusCode::CREATED, json!(2)),
        "{reprint}"
    );
    let other = json!({"container": b.dins[0], "site_id": LAX, "printer": "ZD621-LAX-1", "printed_by": "P-0005"});
    let (status, refusal) = print(base, aph, a, other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");
    assert!(
        refusal["error"]["rule"]
            .as_str()
            .unwrap_or_default()
            .contains("chain's own containers"),
        "{refusal}"
    );
    reprint
}

/// The bag's label scanned back (its 2-D symbol and bar codes) matches what was printed.
async fn bag_label_verified_by_its_scans(base: &str, aph: &str, a: &Chain, label: &Value) {
    let mut scans = vec![format!(
        "]d1{}",
        label["content"]["matrix"].as_str().expect("matrix")
    )];
    for code in label["content"]["linear"].as_array().expect("linear") {
        scans.push(format!("]C0{}", code.as_str().expect("text")));
    }
    let (status, v) = post(base, aph, "/api/v1/labels/verify",
        &json!({"coi": a.coi, "container": a.dins[0], "site_id": LAX, "scans": scans, "verified_by": "P-0005"})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["outcome"], json!("match"), "{v}");
    assert_eq!(v["label_id"], label["label_id"]);
}

/// Chain A's final unit carries chain B's label: verification finds another COI (the
/// chain held, a critical alert); the bedside check of patient A stops it too.
async fn another_patients_label_is_caught(
    app: &Arc<Autolog>,
    base: &str,
    mes: &str,
    a: &Chain,
    b: &Chain,
    label_b: &Value,
) {
    let scan = format!(
        "]d1{}",
        label_b["content"]["matrix"].as_str().expect("matrix")
    );
    let (status, v) = post(base, mes, "/api/v1/labels/verify",
        &json!({"coi": a.coi, "container": a.unit, "site_id": BOS, "scans": [scan], "verified_by": "P-0002"})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["outcome"], json!("mismatch"), "{v}");
    let findings = v["findings"].to_string();
    assert!(
        findings.contains(&format!("DS040 read &/{}", &b.coi[..15])),
        "{findings}"
    );
    assert!(v["hold_id"].is_string(), "{v}");
    assert_eq!(state(app, &a.coi).await["state"], json!("on_hold"));
    assert!(alert_rules(app, &a.coi)
        .await
        .contains(&"label.mismatch".to_string()));
    // No new label while the chain is held.
    let (status, refusal) = print(base, mes, a,
        json!({"container": a.unit, "site_id": BOS, "printer": "ZT411-BOS-2", "printed_by": "P-0002", "reprint_reason": "replace the wrong label"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refusal}");
    assert!(
        refusal["error"]["rule"]
            .as_str()
            .unwrap_or_default()
            .contains("on hold"),
        "{refusal}"
    );
    let bedside = a.event("emr-lax", "bedside", "2026-11-25T09:00:00-08:00[America/Los_Angeles]", LAX, "P-0006",
        "chain.bedside_verified",
        json!({"unit_scan": label_b["content"]["matrix"], "patient_key": a.key, "wristband_coi": a.coi,
               "site_id": LAX, "verified_by": "P-0006"}));
    match app.append_json(bedside.to_string().as_bytes()).await {
        Err(AppError::Unmet(unmet)) => {
            let says = unmet
                .iter()
                .map(|u| u.rule.clone())
                .collect::<Vec<_>>()
                .join("; ");
            assert!(
                says.contains(&format!("belongs to chain {}", b.coi)),
                "{says}"
            );
        }
        other => panic!("the bedside check must stop: {other:?}"),
    }
    assert!(alert_rules(app, &a.coi)
        .await
        .contains(&"bedside.mismatch".to_string()));
}

#[tokio::test]
async fn labels_over_http_on_sqlite() {
    run_on(Backend::Sqlite, "labels", labels).await;
}

#[tokio::test]
async fn labels_over_http_on_postgres() {
    run_on(Backend::Postgres, "labels", labels).await;
}
