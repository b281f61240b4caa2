//! The audit trail and its review, on SQLite and PostgreSQL: for a product that requires a
//! review before release, a result corrected before the release holds the release until a
//! QA reviewer signs a review covering that change; the audit trail lists the change field
//! by field (old and new values, who, when, why) over HTTP to an auditor; a review that
//! does not cover the trail as it stands is refused.

use autolog_app::{AppError, Autolog};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::guide::spawn;
use crate::hard_cases::{enrol, record, Chain};

/// CART-19 now needs a reviewed audit trail before release.
async fn require_review(app: &Autolog) {
    let amended = json!({
        "stream": "product/CART-19", "occurred_at": "2026-10-01T00:00:00+00:00[UTC]", "actor": "person/P-ADMIN",
        "source": {"system": "mdm", "source_event_id": "CART-19-REVIEW"},
        "body": {"type": "product.amended", "version": 1, "data": {"audit_trail_review_before_release": true}},
    });
    app.append_json(amended.to_string().as_bytes())
        .await
        .expect("amended");
}

fn review(c: &Chain, id: &str, count: u32, last: Option<&str>) -> Value {
    c.event("qms-net", id, "2026-11-21T09:00:00-05:00[America/New_York]", "S-BOS-01", "P-0008", "audit_trail.reviewed",
        json!({"review_id": format!("REV-{id}"), "site_id": "S-BOS-01", "reviewed_by": "P-0008",
               "changes_reviewed": count, "last_change_event_id": last,
               "findings": "the viable-cell count was re-read from the instrument; the change is justified"}))
}

async fn audit_trail(t: Target) {
    let (app, base) = spawn(&t).await;
    require_review(&app).await;
    let c = enrol(&app, "PK-AUDIT", 1).await;
    let container = "DS-AUDIT";
    let mut events = vec![
        c.collection(),
        c.handoff(&c.dins, container),
        c.receipt(&c.dins, container),
    ];
    events.extend(c.to_release(None));
    let release = events.pop().expect("the release");
    record(&app, &events).await;
    let mut amended = c.result("LIMS-VIABILITY-2", "VIABILITY", json!(92.0), Some("%"));
    amended["corrects"] =
        json!({"system": "lims-fra", "source_event_id": format!("{}-LIMS-VIABILITY", c.key)});
    amended["reason"] = json!("transcription error: the instrument printout reads 92.0 %");
    app.append_json(amended.to_string().as_bytes())
        .await
        .expect("the correction");

    match app.append_json(release.to_string().as_bytes()).await {
        Err(AppError::Unmet(unmet)) => {
            assert!(unmet.iter().any(|u| u.field == "audit_trail"), "{unmet:?}")
        }
        other => panic!("the release must wait for the review: {other:?}"),
    }
    let auditor = autolog_test_support::person(&app, "P-AUD1", &[("auditor", "*")]).await;
    let answer = reqwest::Client::new()
        .get(format!("{base}/api/v1/audit-trail?coi={}", c.coi))
        .headers(auditor.headers.clone())
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), StatusCode::OK);
    let trail: Value = answer.json().await.expect("JSON");
    let change = &trail["changes"][0];
    assert_eq!(
        trail["changes"].as_array().map(Vec::len),
        Some(1),
        "{trail}"
    );
    let result = change["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["field"] == "result")
        .expect("the result changed");
    assert_eq!(
        (result["old"].clone(), result["new"].clone()),
        (json!(91.5), json!(92.0))
    );
    assert_eq!(
        change["reason"],
        json!("transcription error: the instrument printout reads 92.0 %")
    );
    let last = change["event_id"].as_str().expect("id").to_string();

    let stale = review(&c, "review-0", 0, None);
    match app.append_json(stale.to_string().as_bytes()).await {
        Err(AppError::Invalid(e)) => assert!(e.rule.contains("holds 1 change"), "{e}"),
        other => panic!("a review of another trail must be refused: {other:?}"),
    }
    app.append_json(
        review(&c, "review-1", 1, Some(&last))
            .to_string()
            .as_bytes(),
    )
    .await
    .expect("the review");
    app.append_json(release.to_string().as_bytes())
        .await
        .expect("released once reviewed");
    let trail = app
        .audit_trail(&autolog_app::audit_trail::AuditTrailQuery {
            coi: Some(c.coi.clone()),
            ..Default::default()
        })
        .await
        .expect("trail");
    assert_eq!(trail.reviews.len(), 1);
    assert_eq!(
        trail.reviews[0].last_change_event_id.as_deref(),
        Some(last.as_str())
    );
}

#[tokio::test]
async fn a_release_waits_for_the_audit_trail_review_on_sqlite() {
    run_on(Backend::Sqlite, "audit_trail", audit_trail).await;
}

#[tokio::test]
async fn a_release_waits_for_the_audit_trail_review_on_postgres() {
    run_on(Backend::Postgres, "audit_trail", audit_trail).await;
}
