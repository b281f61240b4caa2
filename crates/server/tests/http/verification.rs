//! N-person verification over HTTP: verification policies imported as reference data, the
//! most specific one in force where and when a step happens asks its verifiers, each
//! re-authenticated, qualified at the site and someone else; refusals name what is
//! missing; the policies go out and back in through the exports.

use autolog_store_conformance::harness::{run_on, Backend};
use autolog_test_support::{enrol_at_los_angeles, person, Credentials, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The policies of these tests, in force from 1 October 2026 (a policy takes effect at its
/// valid time): none for collection by default, one verifier (a treating physician) in the
/// US, and two at Los Angeles from 5 November 2026.
fn policies() -> Value {
    json!([
        {"policy_id": "VP-DEFAULT", "step": "collection", "verifiers": 0,
         "valid_from": "2026-10-01T00:00:00Z"},
        {"policy_id": "VP-US", "step": "collection", "verifiers": 1, "country": "US",
         "qualifying_roles": ["treatment_physician"], "valid_from": "2026-10-01T00:00:00Z"},
        {"policy_id": "VP-LAX", "step": "collection", "verifiers": 2, "site_id": "S-LAX-01",
         "qualifying_roles": ["treatment_physician", "qa_releaser"],
         "valid_from": "2026-11-05T00:00:00Z"},
        {"policy_id": "VP-PARIS-RELEASE", "step": "release", "verifiers": 1, "country": "FR",
         "product_code": "CART-19", "qualifying_roles": ["qa_releaser"]}
    ])
}

async fn post(who: &Credentials, url: String, body: &Value) -> (StatusCode, Value) {
    let answer = who
        .client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// A collection at Los Angeles on `coi` at `day` (November 2026), recorded by P-0005, with
/// these verifications.
fn collection(coi: &str, day: u32, din: &str, verifications: Value) -> Value {
    let mut event = json!({
        "stream": format!("coi/{coi}"),
        "occurred_at": format!("2026-11-{day:02}T14:00:00-08:00[America/Los_Angeles]"),
        "actor": "person/P-0005", "site": "S-LAX-01",
        "source": {"system": "console", "source_event_id": format!("collect/{coi}")},
        "body": {"type": "chain.collected", "version": 1, "data": {
            "collection_site_id": "S-LAX-01", "operator_id": "P-0005", "device_id": "APH-LAX-01",
            "started_at": format!("2026-11-{day:02}T10:00:00-08:00"),
            "ended_at": format!("2026-11-{day:02}T14:00:00-08:00"), "dins": [din]}},
    });
    if !verifications.is_null() {
        event["body"]["data"]["verifications"] = verifications;
    }
    event
}

fn din(n: u32) -> String {
    autolog_domain::identifiers::Din::parse("din", &format!("A99992600{n:04}"))
        .expect("a DIN")
        .to_string()
}

#[tokio::test]
async fn the_most_specific_policy_in_force_asks_its_verifiers() {
    run_on(Backend::Sqlite, "verification_policies", |t| async move {
        let s = crate::common::spawn_app(&t, crate::common::Setup::examples()).await;
        let steward = person(&s.app, "P-STEWARD", &[("reference_data_steward", "*")]).await;
        let (status, report) = post(
            &steward,
            format!(
                "{}/api/v1/reference/import?registry=verification_policies",
                s.base
            ),
            &policies(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{report}");
        // The alignment report lists the steps no policy names.
        let alignment: Value = steward
            .client()
            .get(format!("{}/api/v1/reference/alignment", s.base))
            .send()
            .await
            .expect("alignment")
            .json()
            .await
            .expect("JSON");
        let unnamed = &alignment["steps_without_verification_policy"];
        let listed = |step: &str| {
            unnamed
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["product_code"] == "CART-19" && s["step"] == step)
        };
        assert!(
            listed("custody_receipt") && !listed("collection") && !listed("release"),
            "{unnamed}"
        );

        let nurse = person(&s.app, "P-0005", &[("apheresis_coordinator", "S-LAX-01")]).await;
        let _ = person(&s.app, "P-0007", &[("treatment_physician", "S-LAX-01")]).await;
        let _ = person(&s.app, "P-0008", &[("qa_releaser", "S-LAX-01")]).await;
        let _ = person(&s.app, "P-0003", &[("qc_analyst", "S-FRA-01")]).await;
        let events = format!("{}/api/v1/events", s.base);
        let verifier = |id: &str, secret: &str| json!({"verifier_id": id, "secret": secret});

        // On 3 November the US policy is the most specific in force: one verifier.
        let coi = enrol_at_los_angeles(&s.app, "PK-VERIFY-1", "enrol-verify-1").await;
        let (status, e) = post(
            &nurse,
            events.clone(),
            &collection(&coi, 3, &din(1), Value::Null),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["field"], "body.data.verifications");
        assert_eq!(e["error"]["value"], "0 given");
        let rule = e["error"]["rule"].as_str().unwrap_or("");
        assert!(
            rule.contains("VP-US") && rule.contains("1 verifier"),
            "{rule}"
        );

        for (who, secret, field, words) in [
            (
                "P-0005",
                PASSWORD,
                "verifier_id",
                "is the person recording the step",
            ),
            (
                "P-0007",
                "not the password",
                "secret",
                "re-authentication failed",
            ),
            ("P-0003", PASSWORD, "verifier_id", "holds none of the roles"),
        ] {
            let (status, e) = post(
                &nurse,
                events.clone(),
                &collection(&coi, 3, &din(1), json!([verifier(who, secret)])),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{who}: {e}");
            assert_eq!(
                e["error"]["field"],
                format!("body.data.verifications[0].{field}"),
                "{e}"
            );
            assert!(
                e["error"]["rule"].as_str().unwrap_or("").contains(words),
                "{e}"
            );
            assert!(
                !e.to_string().contains("not the password"),
                "a secret is never echoed"
            );
        }
        let (status, e) = post(
            &nurse,
            events.clone(),
            &collection(&coi, 3, &din(1), json!([verifier("P-0007", PASSWORD)])),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{e}");
        let chain = s.app.chain(&coi, None, None).await.expect("chain");
        let recorded = chain
            .timeline
            .iter()
            .find(|e| e.event["body"]["type"] == "chain.collected")
            .expect("the collection")
            .event["body"]["data"]["verifications"]
            .clone();
        assert_eq!(recorded[0]["verifier_id"], "P-0007");
        assert_eq!(recorded[0]["printed_name"], "Grace Kim");
        assert_eq!(recorded[0]["role"], "treatment_physician");
        assert!(
            recorded[0]["verified_at"]
                .as_str()
                .is_some_and(|t| t.ends_with("[America/Los_Angeles]")),
            "{recorded}"
        );
        assert!(
            !autolog_test_support::ledger_text(&s.app)
                .await
                .contains(PASSWORD),
            "no secret in the ledger"
        );

        // From 5 November the Los Angeles policy applies: two, and two different people.
        let coi = enrol_at_los_angeles(&s.app, "PK-VERIFY-2", "enrol-verify-2").await;
        let one = collection(&coi, 6, &din(2), json!([verifier("P-0007", PASSWORD)]));
        let (status, e) = post(&nurse, events.clone(), &one).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert!(
            e["error"]["rule"].as_str().unwrap_or("").contains("VP-LAX"),
            "{e}"
        );
        let twice = collection(
            &coi,
            6,
            &din(2),
            json!([verifier("P-0007", PASSWORD), verifier("P-0007", PASSWORD)]),
        );
        let (status, e) = post(&nurse, events.clone(), &twice).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert!(
            e["error"]["rule"].as_str().unwrap_or("").contains("twice"),
            "{e}"
        );
        let two = collection(
            &coi,
            6,
            &din(2),
            json!([verifier("P-0007", PASSWORD), verifier("P-0008", PASSWORD)]),
        );
        let (status, e) = post(&nurse, events.clone(), &two).await;
        assert_eq!(status, StatusCode::CREATED, "{e}");
    })
    .await;
}

#[tokio::test]
async fn verification_policies_go_out_and_back_in_through_the_exports() {
    run_on(Backend::Sqlite, "verification_exports", |t| async move {
        let first = crate::common::spawn_app(&t, crate::common::Setup::examples()).await;
        let steward = person(&first.app, "P-STEWARD", &[("reference_data_steward", "*")]).await;
        let import =
            |base: &str| format!("{base}/api/v1/reference/import?registry=verification_policies");
        let (status, report) = post(&steward, import(&first.base), &policies()).await;
        assert_eq!(status, StatusCode::CREATED, "{report}");
        let export = |who: &Credentials, base: String| {
            let client = who.client();
            async move {
                client
                    .get(format!(
                        "{base}/api/v1/reference/export?format=csv&registry=verification_policies"
                    ))
                    .send()
                    .await
                    .expect("export")
                    .text()
                    .await
                    .expect("CSV")
            }
        };
        let csv = export(&steward, first.base.clone()).await;
        assert!(
            csv.contains("VP-LAX") && csv.contains("treatment_physician;qa_releaser"),
            "{csv}"
        );

        // Into another instance, and out again: the same file.
        let t2 = t.clone();
        let second = crate::common::spawn_app(&t2, crate::common::Setup::examples()).await;
        let steward2 = person(&second.app, "P-STEWARD", &[("reference_data_steward", "*")]).await;
        let answer = steward2
            .client()
            .post(import(&second.base))
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
            .await
            .expect("import the CSV");
        assert!(answer.status().is_success(), "{:?}", answer.text().await);
        assert_eq!(export(&steward2, second.base.clone()).await, csv);
    })
    .await;
}
