//! Access control over HTTP against a running server: the endpoint x role x site matrix
//! (allowed and refused for each), tokens, sessions, second factor, lockout and CSRF.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use autolog_app::{AccessSettings, Autolog, ShiftedClock};
use autolog_domain::access::{Role, ROLES};
use autolog_store_conformance::harness::{run_on, Backend, Target};
use autolog_test_support::{person, system, Credentials, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

const IN_SCOPE: &str = "S-LAX-01";
const OUT_OF_SCOPE: &str = "S-FRA-01";
const EVERY: &str = "*";
const PATIENT: &str = "PK-ACCESS-1";

struct TestApp {
    base: String,
    app: Arc<Autolog>,
    coi: String,
    /// The app's clock: a test moves it instead of sleeping.
    clock: Arc<ShiftedClock>,
}

async fn spawn_app(target: &Target, settings: AccessSettings) -> TestApp {
    let clock = Arc::new(ShiftedClock::default());
    let s = crate::common::spawn_app(
        target,
        crate::common::Setup {
            clock: Some(clock.clone()),
            access: settings,
            ..crate::common::Setup::examples()
        },
    )
    .await;
    let app = s.app;
    // One chain, enrolled and treated at Los Angeles; nothing else involves Frankfurt.
    let coi = autolog_test_support::enrol_at_los_angeles(&app, PATIENT, "enrol-access").await;
    // A refused collection at a site that may not collect: an alert on this chain.
    autolog_test_support::refused_collection_at_boston(&app, &coi, "collect-access").await;
    TestApp {
        base: s.base,
        app,
        coi,
        clock,
    }
}

/// One request of the matrix: what it is, and who may make it.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// Whether a principal with `role` granted at `scope` may make it.
    allowed: fn(Role, Scope) -> bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Granted at the chain's site (Los Angeles).
    In,
    /// Granted at a site that takes no part in the chain (Frankfurt).
    Out,
    /// Granted at every site.
    Network,
}

use Role::*;

fn reads_chains(role: Role) -> bool {
    !matches!(role, Administrator | ReferenceDataSteward)
}

fn in_reach(scope: Scope) -> bool {
    scope != Scope::Out
}

fn records_notes(role: Role) -> bool {
    !matches!(role, Administrator | Auditor)
}

fn cases(coi: &str, n: usize) -> Vec<Case> {
    let note = json!({
        "stream": format!("coi/{coi}"),
        "occurred_at": "2026-11-03T09:00:00-08:00[America/Los_Angeles]",
        "site": IN_SCOPE,
        "source": {"system": "console", "source_event_id": format!("note-{n}")},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "checked the label"}},
    });
    vec![
        Case {
            name: "read the chain",
            method: "GET",
            path: format!("/api/v1/chains/{coi}"),
            body: None,
            allowed: |r, s| reads_chains(r) && in_reach(s),
        },
        Case {
            name: "list chains (narrowed to the caller's scope)",
            method: "GET",
            path: "/api/v1/chains".into(),
            body: None,
            allowed: |r, _| reads_chains(r),
        },
        Case {
            name: "read a site's work",
            method: "GET",
            path: format!("/api/v1/sites/{IN_SCOPE}/work"),
            body: None,
            allowed: |r, s| reads_chains(r) && in_reach(s),
        },
        Case {
            name: "read the chain's events",
            method: "GET",
            path: format!("/api/v1/events?stream=coi/{coi}"),
            body: None,
            allowed: |r, s| reads_chains(r) && in_reach(s),
        },
        Case {
            name: "read the chain's state",
            method: "GET",
            path: format!("/api/v1/streams/coi/{coi}"),
            body: None,
            allowed: |r, s| reads_chains(r) && in_reach(s),
        },
        Case {
            name: "read the whole ledger",
            method: "GET",
            path: "/api/v1/events".into(),
            body: None,
            allowed: |r, s| r == Auditor && s == Scope::Network,
        },
        Case {
            name: "read reference data",
            method: "GET",
            path: "/api/v1/reference/sites".into(),
            body: None,
            allowed: |_, _| true,
        },
        Case {
            name: "read a site's record",
            method: "GET",
            path: "/api/v1/streams/site/S-LAX-01".into(),
            body: None,
            allowed: |_, _| true,
        },
        Case {
            name: "list alerts",
            method: "GET",
            path: "/api/v1/alerts".into(),
            body: None,
            allowed: |_, _| true,
        },
        Case {
            name: "network reconciliation",
            method: "GET",
            path: "/api/v1/reconciliation".into(),
            body: None,
            allowed: |r, s| {
                matches!(r, Auditor | Administrator | QaReleaser) && s == Scope::Network
            },
        },
        Case {
            name: "forward genealogy (recall)",
            method: "GET",
            path: "/api/v1/genealogy/forward/LV19-2026-014".into(),
            body: None,
            allowed: |r, s| reads_chains(r) && s == Scope::Network,
        },
        Case {
            name: "list webhooks",
            method: "GET",
            path: "/api/v1/webhooks".into(),
            body: None,
            allowed: |r, s| r == Administrator && s == Scope::Network,
        },
        Case {
            name: "list users",
            method: "GET",
            path: "/api/v1/users".into(),
            body: None,
            allowed: |r, s| r == Administrator && s == Scope::Network,
        },
        Case {
            name: "list API tokens",
            method: "GET",
            path: "/api/v1/tokens".into(),
            body: None,
            allowed: |r, s| r == Administrator && s == Scope::Network,
        },
        Case {
            name: "read the patient's identifying data",
            method: "GET",
            path: format!("/api/v1/chains/{coi}/personal-data?purpose=TREAT"),
            body: None,
            allowed: |r, s| {
                matches!(
                    r,
                    ApheresisCoordinator | TreatmentNurse | TreatmentPhysician
                ) && in_reach(s)
            },
        },
        Case {
            name: "record the patient's identifying data",
            method: "POST",
            path: format!("/api/v1/chains/{coi}/personal-data"),
            body: Some(
                json!({"name": "Alex Example", "date_of_birth": "1970-01-01", "mrn": "MRN-424242"}),
            ),
            allowed: |r, s| {
                matches!(
                    r,
                    ApheresisCoordinator | TreatmentNurse | TreatmentPhysician
                ) && in_reach(s)
            },
        },
        Case {
            name: "record a note on the chain",
            method: "POST",
            path: "/api/v1/events".into(),
            body: Some(note),
            allowed: |r, s| records_notes(r) && in_reach(s),
        },
        Case {
            name: "the chain's events as EPCIS",
            method: "GET",
            path: format!("/epcis/events?autologCOI={coi}"),
            body: None,
            allowed: |r, s| reads_chains(r) && in_reach(s),
        },
        Case {
            name: "the chain as a FHIR Bundle",
            method: "GET",
            path: format!("/fhir/Bundle/chain-{}", &coi[..coi.len() - 1]),
            body: None,
            allowed: |r, s| reads_chains(r) && in_reach(s),
        },
        Case {
            name: "capture an EPCIS document",
            method: "POST",
            path: "/epcis/capture".into(),
            body: Some(json!({
                "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"example": "http://ns.example.com/epcis/"}],
                "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-11-03T09:00:00Z",
                "epcisBody": {"eventList": [{
                    "type": "ObjectEvent", "eventTime": "2026-11-03T09:00:00Z", "eventTimeZoneOffset": "+00:00",
                    "epcList": [format!("urn:isbt128:coi:{coi}")], "action": "OBSERVE", "bizStep": "inspecting",
                    "readPoint": {"id": "https://id.gs1.org/414/0614141000029"},
                    "example:matrixRow": n,
                }]},
            })),
            allowed: |r, _| records_notes(r),
        },
        Case {
            name: "import reference data (dry run)",
            method: "POST",
            path: "/api/v1/reference/import?registry=sites&dry_run=true".into(),
            body: Some(json!([])),
            allowed: |r, s| r == ReferenceDataSteward && s == Scope::Network,
        },
        Case {
            name: "register a webhook",
            method: "POST",
            path: "/api/v1/webhooks".into(),
            body: Some(json!({"url": "http://127.0.0.1:9/hook"})),
            allowed: |r, s| r == Administrator && s == Scope::Network,
        },
    ]
}

async fn call(
    base: &str,
    who: &Credentials,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let client = who.client();
    let url = format!("{base}{path}");
    let request = match (method, body) {
        ("GET", _) => client.get(url),
        ("DELETE", _) => client.delete(url),
        (_, Some(b)) => client
            .post(url)
            .header("content-type", "application/json")
            .body(b.to_string()),
        (_, None) => client.post(url),
    };
    let answer = request.send().await.expect("request");
    let status = answer.status();
    let text = answer.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn refused(status: StatusCode) -> bool {
    status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED
}

/// Every endpoint of the matrix, for every role granted at the chain's site, at another
/// site and at every site: allowed or refused as the roles table says, and each refusal
/// a 403 naming what is missing. Then source systems' tokens, scoped to their sites.
async fn the_matrix(t: Target) {
    let app = spawn_app(&t, AccessSettings::default()).await;
    let mut principals: Vec<(Role, Scope, Credentials)> = Vec::new();
    for (i, role) in ROLES.iter().enumerate() {
        for (j, (scope, site)) in [
            (Scope::In, IN_SCOPE),
            (Scope::Out, OUT_OF_SCOPE),
            (Scope::Network, EVERY),
        ]
        .iter()
        .enumerate()
        {
            let person_id = format!("P-M{:02}", i * 3 + j);
            let who = person(&app.app, &person_id, &[(role.as_str(), site)]).await;
            principals.push((*role, *scope, who));
        }
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (n, (role, scope, who)) in principals.iter().enumerate() {
        for case in cases(&app.coi, n) {
            let (status, answer) =
                call(&app.base, who, case.method, &case.path, case.body.as_ref()).await;
            let expected = (case.allowed)(*role, *scope);
            checked += 1;
            if expected == refused(status) {
                failures.push(format!(
                    "{} as {} at {scope:?}: expected {}, got {status} {answer}",
                    case.name,
                    role.as_str(),
                    if expected { "allowed" } else { "refused" }
                ));
            }
            if !expected {
                assert_eq!(status, StatusCode::FORBIDDEN, "{}: {answer}", case.name);
                // Autolog's error, or a FHIR OperationOutcome on /fhir routes.
                let (code, why) = if answer["resourceType"] == "OperationOutcome" {
                    (
                        &answer["issue"][0]["code"],
                        &answer["issue"][0]["diagnostics"],
                    )
                } else {
                    (&answer["error"]["code"], &answer["error"]["rule"])
                };
                assert_eq!(code, "forbidden", "{answer}");
                assert!(why.as_str().is_some_and(|r| !r.is_empty()), "{answer}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, ROLES.len() * 3 * cases(&app.coi, 0).len());

    // Alerts are filtered by scope: the chain's alert is listed in scope, not outside.
    let count = |v: &Value| {
        v["alerts"].as_array().map_or(0, |a| {
            a.iter().filter(|x| x["coi"] == json!(app.coi)).count()
        })
    };
    let nurse_in = &principals
        .iter()
        .find(|(r, s, _)| *r == TreatmentNurse && *s == Scope::In)
        .expect("nurse")
        .2;
    let nurse_out = &principals
        .iter()
        .find(|(r, s, _)| *r == TreatmentNurse && *s == Scope::Out)
        .expect("nurse")
        .2;
    let (_, listed) = call(
        &app.base,
        nurse_in,
        "GET",
        "/api/v1/alerts?status=all",
        None,
    )
    .await;
    assert_eq!(count(&listed), 1, "{listed}");
    let (_, listed) = call(
        &app.base,
        nurse_out,
        "GET",
        "/api/v1/alerts?status=all",
        None,
    )
    .await;
    assert_eq!(count(&listed), 0, "{listed}");

    // So are chain listings, from the chain projection.
    let listed_cois = |v: &Value| -> Vec<String> {
        v["chains"].as_array().map_or(Vec::new(), |a| {
            a.iter()
                .filter_map(|c| c["coi"].as_str().map(str::to_string))
                .collect()
        })
    };
    let (status, listed) = call(&app.base, nurse_in, "GET", "/api/v1/chains", None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed_cois(&listed),
        std::slice::from_ref(&app.coi),
        "{listed}"
    );
    assert_eq!(
        listed["chains"][0]["treatment_site_id"], IN_SCOPE,
        "{listed}"
    );
    let (_, listed) = call(&app.base, nurse_out, "GET", "/api/v1/chains", None).await;
    assert_eq!(listed_cois(&listed), Vec::<String>::new(), "{listed}");
    // The enrolled chain waits for its collection at the treatment center (its ordered
    // collection site).
    let work = format!("/api/v1/sites/{IN_SCOPE}/work");
    let (status, listed) = call(&app.base, nurse_in, "GET", &work, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed_cois(&listed["to_collect"]),
        std::slice::from_ref(&app.coi),
        "{listed}"
    );
    assert_eq!(listed["to_collect"]["more"], false, "{listed}");
    let (status, refused) = call(
        &app.base,
        nurse_in,
        "GET",
        "/api/v1/chains?state=shipped",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(
        (&refused["error"]["field"], &refused["error"]["value"]),
        (&json!("state"), &json!("shipped")),
        "{refused}"
    );

    // The scope holds however the COI is spelled in the path (percent-encoded).
    let encoded: String = app.coi.bytes().map(|b| format!("%{b:02X}")).collect();
    for who in [nurse_in, nurse_out] {
        for path in [
            format!("/api/v1/chains/{encoded}"),
            format!("/api/v1/chains/{encoded}/personal-data?purpose=TREAT"),
        ] {
            let (status, e) = call(&app.base, who, "GET", &path, None).await;
            let expected_refused = std::ptr::eq(who, nurse_out);
            assert_eq!(
                status == StatusCode::FORBIDDEN,
                expected_refused,
                "{path}: {status} {e}"
            );
        }
    }

    // Source systems: the treatment center's EMR at its site may read and record on the
    // chain; the Frankfurt LIMS may not; neither may name another system as the source.
    let emr = system(&app.app, "emr-lax", &[]).await;
    let lims = system(&app.app, "lims-fra", &[]).await;
    let chain = format!("/api/v1/chains/{}", app.coi);
    let (status, _) = call(&app.base, &emr, "GET", &chain, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app.base, &lims, "GET", &chain, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut note = cases(&app.coi, 999)
        .into_iter()
        .find(|c| c.name == "record a note on the chain")
        .and_then(|c| c.body)
        .expect("note");
    let (status, e) = call(&app.base, &emr, "POST", "/api/v1/events", Some(&note)).await;
    assert_eq!(
        (status, e["error"]["field"].clone()),
        (StatusCode::FORBIDDEN, json!("source.system")),
        "{e}"
    );
    note["source"]["system"] = json!("emr-lax");
    let (status, e) = call(&app.base, &emr, "POST", "/api/v1/events", Some(&note)).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    assert_eq!(
        e["event"]["actor"], "system/emr-lax",
        "attributed to the token's system"
    );
    note["source"]["system"] = json!("lims-fra");
    note["source"]["source_event_id"] = json!("note-lims");
    let (status, e) = call(&app.base, &lims, "POST", "/api/v1/events", Some(&note)).await;
    assert_eq!(
        (status, e["error"]["field"].clone()),
        (StatusCode::FORBIDDEN, json!("body.type")),
        "{e}"
    );
    // Unauthenticated: 401, and nothing else answers but the public routes.
    let anonymous = reqwest::Client::new();
    let r = anonymous
        .get(format!("{}{chain}", app.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = anonymous
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    let health: Value = r.json().await.expect("json");
    assert!(
        health.get("tree_size").is_none(),
        "the ledger's size is for signed-in callers: {health}"
    );
}

#[tokio::test]
async fn the_endpoint_role_site_matrix_on_sqlite() {
    run_on(Backend::Sqlite, "access_matrix", the_matrix).await;
}

#[tokio::test]
async fn the_endpoint_role_site_matrix_on_postgres() {
    run_on(Backend::Postgres, "access_matrix_pg", the_matrix).await;
}

/// Every route the router serves is in the access table, and the table names no route
/// the router lacks (a route added without a rule would otherwise be refused by default).
#[test]
fn every_route_has_an_access_rule() {
    let openapi: Value = serde_json::from_str(autolog_server::openapi_document()).expect("openapi");
    let documented: Vec<(String, String)> = openapi["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().expect("ops").keys().map(move |m| {
                (
                    m.to_uppercase(),
                    path.replace("{lot}", "{*lot}")
                        .replace("{stream}", "{*stream}"),
                )
            })
        })
        .collect();
    for (method, path) in &documented {
        assert!(
            autolog_server::ROUTES
                .iter()
                .any(|(m, p, _)| m == method && p == path),
            "{method} {path} is documented but has no access rule"
        );
    }
    for (method, path, _) in autolog_server::ROUTES {
        assert!(
            documented.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} has an access rule but is not documented"
        );
    }
}

async fn sign_in(base: &str, person_id: &str, password: &str, totp: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"person_id": person_id, "password": password, "totp": totp}))
        .send()
        .await
        .expect("request")
}

/// A revoked token, an expired session, a wrong second factor (and the lockout it
/// leads to), a missing CSRF token and a signed-out session are each refused.
#[tokio::test]
async fn revoked_expired_wrong_and_forged_credentials_are_refused() {
    run_on(Backend::Sqlite, "access_refusals", |t| async move {
        let settings = AccessSettings {
            idle_timeout: Duration::from_secs(2),
            lock_after: 3,
            ..AccessSettings::default()
        };
        let app = spawn_app(&t, settings).await;
        let chain = format!("/api/v1/chains/{}", app.coi);

        // A token works until it is revoked, then is refused at once.
        let emr = system(&app.app, "emr-lax", &[]).await;
        let (status, _) = call(&app.base, &emr, "GET", &chain, None).await;
        assert_eq!(status, StatusCode::OK);
        let tokens = app.app.tokens().await.expect("tokens");
        let token_id = tokens.tokens[0].token_id.clone();
        app.app
            .revoke_token(&token_id, "person/P-ADMIN")
            .await
            .expect("revoke");
        let (status, e) = call(&app.base, &emr, "GET", &chain, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
        assert_eq!(e["error"]["code"], "unauthenticated");
        // A made-up token too.
        let forged = Credentials::token("system/x", "alt_0192f1c3000070008000000000000000_abc");
        let (status, _) = call(&app.base, &forged, "GET", &chain, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // An idle session expires.
        let nurse = person(&app.app, "P-0005", &[("treatment_nurse", IN_SCOPE)]).await;
        let (status, _) = call(&app.base, &nurse, "GET", &chain, None).await;
        assert_eq!(status, StatusCode::OK);
        app.clock.advance_seconds(3);
        let (status, e) = call(&app.base, &nurse, "GET", &chain, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("expired")),
            "{e}"
        );

        // A wrong second factor is refused; after three failures from one address the next
        // try there waits (429), even with the right code, longer after each further
        // failure; nothing locks the account (its owner elsewhere is not held up).
        let created = app
            .app
            .reset_second_factor("P-0005", "person/P-ADMIN")
            .await
            .expect("reset");
        let secret = created.totp_secret;
        let right = autolog_test_support::current_totp(&secret);
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        for _ in 0..3 {
            let r = sign_in(&app.base, "P-0005", PASSWORD, wrong).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        let r = sign_in(&app.base, "P-0005", PASSWORD, &right).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "throttled");
        let throttled: Value = r.json().await.expect("json");
        assert!(
            throttled["error"]["rule"]
                .as_str()
                .is_some_and(|r| r.contains("try again in 1 s")),
            "{throttled}"
        );
        let user = app.app.user("P-0005").await.expect("user");
        assert!(user.locked_until.is_none(), "not locked: {user:?}");
        app.clock.advance_seconds(2);
        // A wrong password with the right code is refused the same way, and waits longer.
        let r = sign_in(&app.base, "P-0005", "not the password", &right).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = sign_in(&app.base, "P-0005", PASSWORD, &right).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "2 s now");
        app.clock.advance_seconds(3);
        let r = sign_in(&app.base, "P-0005", PASSWORD, &right).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let cookie = r
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .expect("cookie")
            .to_string();
        for flag in ["HttpOnly", "Secure", "SameSite=Strict"] {
            assert!(cookie.contains(flag), "{cookie}");
        }
        let session = cookie
            .split(';')
            .next()
            .and_then(|c| c.split_once('='))
            .map(|(_, v)| v.to_string())
            .expect("session");
        let body: Value = r.json().await.expect("json");
        let csrf = body["csrf_token"].as_str().expect("csrf").to_string();
        // The same code again is a replay: refused as a replay, and not counted as a
        // failure (three double submits do not lock the account).
        for _ in 0..3 {
            let r = sign_in(&app.base, "P-0005", PASSWORD, &right).await;
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "a TOTP code is used once"
            );
            let refused: Value = r.json().await.expect("json");
            assert!(
                refused["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("already used")),
                "{refused}"
            );
        }
        let user = app.app.user("P-0005").await.expect("user");
        assert!(
            user.locked_until.is_none(),
            "replays lock nothing: {user:?}"
        );

        // Without (or with a wrong) CSRF token, a console request that changes something
        // is refused; with it, allowed.
        let note = |id: &str| {
            json!({
                "stream": format!("coi/{}", app.coi),
                "occurred_at": "2026-11-03T09:00:00-08:00[America/Los_Angeles]",
                "site": IN_SCOPE,
                "source": {"system": "console", "source_event_id": id},
                "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "x"}},
            })
        };
        let mut no_csrf = Credentials::session("person/P-0005", &session, "wrong");
        no_csrf.headers.remove("x-csrf-token");
        let (status, e) = call(
            &app.base,
            &no_csrf,
            "POST",
            "/api/v1/events",
            Some(&note("n1")),
        )
        .await;
        assert_eq!(
            (status, e["error"]["field"].clone()),
            (StatusCode::FORBIDDEN, json!("X-CSRF-Token"))
        );
        let wrong_csrf = Credentials::session("person/P-0005", &session, "wrong");
        let (status, _) = call(
            &app.base,
            &wrong_csrf,
            "POST",
            "/api/v1/events",
            Some(&note("n1")),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let good = Credentials::session("person/P-0005", &session, &csrf);
        let (status, e) = call(
            &app.base,
            &good,
            "POST",
            "/api/v1/events",
            Some(&note("n1")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{e}");
        assert_eq!(e["event"]["actor"], "person/P-0005");

        // Sign-out ends the session.
        let (status, _) = call(&app.base, &good, "DELETE", "/api/v1/session", None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = call(&app.base, &good, "GET", &chain, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // An e-signature needs re-authentication with both components at signing time;
        // failed re-authentications count towards the lockout like failed sign-ins.
        let qa = person(&app.app, "P-0008", &[("qa_releaser", EVERY)]).await;
        let parsed = autolog_domain::identifiers::Coi::parse("coi", &app.coi).expect("coi");
        let unit = autolog_domain::identifiers::UnitId::new(&parsed, "S0001", "A0")
            .expect("unit")
            .to_string();
        let release = |signature: Value, id: &str| {
            json!({
                "stream": format!("coi/{}", app.coi),
                "occurred_at": "2026-11-20T09:00:00-05:00[America/New_York]",
                "site": "S-BOS-01",
                "source": {"system": "console", "source_event_id": id},
                "body": {"type": "chain.released", "version": 1, "data": {
                    "signature": signature, "batch_id": "B-ACCESS", "intended_patient_key": PATIENT,
                    "site_id": "S-BOS-01", "released_by": "P-0008", "units": [unit]}},
            })
        };
        let (status, e) = call(
            &app.base,
            &qa,
            "POST",
            "/api/v1/events",
            Some(&release(json!({"signer_id": "P-0008"}), "r0")),
        )
        .await;
        assert_eq!(
            (status, e["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("body.data.signature")),
            "{e}"
        );
        for i in 0..3 {
            let (status, e) = call(
                &app.base,
                &qa,
                "POST",
                "/api/v1/events",
                Some(&release(
                    json!({"signer_id": "P-0008", "secret": "not the password"}),
                    &format!("r{}", i + 1),
                )),
            )
            .await;
            assert_eq!(
                (status, e["error"]["field"].clone()),
                (StatusCode::BAD_REQUEST, json!("body.data.signature.secret")),
                "{e}"
            );
        }
        let user = app.app.user("P-0008").await.expect("user");
        assert!(
            user.locked_until.is_some(),
            "locked after failed re-authentications: {user:?}"
        );
        let (status, _) = call(
            &app.base,
            &qa,
            "POST",
            "/api/v1/events",
            Some(&release(
                json!({"signer_id": "P-0008", "secret": PASSWORD}),
                "r9",
            )),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a locked account's session ends"
        );

        // A revoked role takes effect on the next request.
        let nurse = person(&app.app, "P-0005", &[]).await;
        let (status, _) = call(&app.base, &nurse, "GET", &chain, None).await;
        assert_eq!(status, StatusCode::OK);
        app.app
            .revoke_role("P-0005", "treatment_nurse", IN_SCOPE, "person/P-ADMIN")
            .await
            .expect("revoke");
        let (status, _) = call(&app.base, &nurse, "GET", &chain, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let _ = HashMap::<(), ()>::new();
    })
    .await;
}

/// The scope holds for what a request writes, not only for what it reads: a site that
/// takes no part in a chain cannot write on it (a note would otherwise make it a party),
/// a site-scoped steward cannot change network reference data, a source id used by
/// another sender is a conflict (their record is not shown), identifying data is bound to
/// the chain it was recorded through, a retired system's token stops working, HEAD is
/// authenticated like GET, and a source system acknowledging an alert is the actor.
/// Who collects is decided by the order: Paris, refused reading a Los Angeles chain, is
/// refused collecting on it too, with the same answer as for a chain that does not exist
/// (nothing of either chain's state); once the treatment center names Paris, Paris collects.
async fn only_the_ordered_site_collects(t: Target) {
    let app = spawn_app(&t, AccessSettings::default()).await;
    let paris = person(&app.app, "P-0001", &[("apheresis_coordinator", "S-PAR-01")]).await;
    let collection = |coi: &str, id: &str, din: &str| {
        json!({
            "stream": format!("coi/{coi}"),
            "occurred_at": "2026-11-10T12:30:00+01:00[Europe/Paris]",
            "site": "S-PAR-01",
            "source": {"system": "console", "source_event_id": id},
            "body": {"type": "chain.collected", "version": 1, "data": {
                "collection_site_id": "S-PAR-01", "operator_id": "P-0001", "device_id": "APH-PAR-01",
                "started_at": "2026-11-10T08:00:00+01:00", "ended_at": "2026-11-10T12:00:00+01:00",
                "dins": [autolog_domain::identifiers::Din::parse("din", din).expect("DIN").to_string()]}},
        })
    };
    let takeover = collection(&app.coi, "takeover", "A999926000101");
    let (status, refused) =
        call(&app.base, &paris, "POST", "/api/v1/events", Some(&takeover)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["field"], "stream", "{refused}");
    let fin = autolog_domain::identifiers::Fin::parse("fin", "A9999").expect("FIN");
    let missing = autolog_domain::identifiers::Coi::new(&fin, 26, "999999")
        .expect("COI")
        .to_string();
    let probe = collection(&missing, "probe", "A999926000102");
    let (status, unknown) = call(&app.base, &paris, "POST", "/api/v1/events", Some(&probe)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{unknown}");
    assert_eq!(
        unknown["error"]["rule"], refused["error"]["rule"],
        "the same answer"
    );
    for answer in [&refused, &unknown] {
        assert!(
            !answer.to_string().contains("enrolled"),
            "no state: {answer}"
        );
    }
    let chain = app.app.chain(&app.coi, None, None).await.expect("chain");
    assert_eq!(chain.state, "enrolled", "nothing was recorded");

    // Boston, not the treatment center, cannot name itself; Los Angeles names Paris.
    let assign = |id: &str, site: &str| {
        json!({
            "stream": format!("coi/{}", app.coi),
            "occurred_at": "2026-11-04T09:00:00-08:00[America/Los_Angeles]",
            "site": site,
            "source": {"system": "console", "source_event_id": id},
            "body": {"type": "chain.collection_site_assigned", "version": 1, "data": {
                "collection_site_id": "S-PAR-01", "reason": "no apheresis chair before day 20"}},
        })
    };
    let boston = person(&app.app, "P-0002", &[("apheresis_coordinator", "S-BOS-01")]).await;
    let (status, e) = call(
        &app.base,
        &boston,
        "POST",
        "/api/v1/events",
        Some(&assign("assign-bos", "S-BOS-01")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let physician = person(&app.app, "P-0007", &[("treatment_physician", IN_SCOPE)]).await;
    let (status, e) = call(
        &app.base,
        &physician,
        "POST",
        "/api/v1/events",
        Some(&assign("assign-lax", IN_SCOPE)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let collected = collection(&app.coi, "collected", "A999926000103");
    let (status, e) = call(
        &app.base,
        &paris,
        "POST",
        "/api/v1/events",
        Some(&collected),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let chain = app.app.chain(&app.coi, None, None).await.expect("chain");
    assert_eq!(chain.custodian_site_id.as_deref(), Some("S-PAR-01"));

    // A DIN's stream belongs to its chain: Boston, outside it, gets the same answer for
    // a note on that DIN as for a DIN that was never collected; Paris may note it.
    let din = |text: &str| {
        autolog_domain::identifiers::Din::parse("din", text)
            .expect("DIN")
            .to_string()
    };
    let note = |stream: String, id: &str, site: &str| {
        json!({
            "stream": stream,
            "occurred_at": "2026-11-10T13:00:00+01:00[Europe/Paris]",
            "site": site,
            "source": {"system": "console", "source_event_id": id},
            "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "bag label smudged"}},
        })
    };
    let collected_din = format!("din/{}", din("A999926000103"));
    let unknown_din = format!("din/{}", din("A999926000999"));
    let (status, known) = call(
        &app.base,
        &boston,
        "POST",
        "/api/v1/events",
        Some(&note(collected_din.clone(), "din-bos", "S-BOS-01")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{known}");
    let (status, unknown) = call(
        &app.base,
        &boston,
        "POST",
        "/api/v1/events",
        Some(&note(unknown_din, "din-bos-2", "S-BOS-01")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{unknown}");
    assert_eq!(
        known["error"]["rule"], unknown["error"]["rule"],
        "the same answer"
    );
    let (status, e) = call(
        &app.base,
        &paris,
        "POST",
        "/api/v1/events",
        Some(&note(collected_din, "din-par", "S-PAR-01")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");

    // A person's stream: notes from the sites the person works at (or the person), and
    // the same answer for a person elsewhere as for one who does not exist.
    let (status, known) = call(
        &app.base,
        &boston,
        "POST",
        "/api/v1/events",
        Some(&note("person/P-0005".into(), "p-bos", "S-BOS-01")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{known}");
    let (status, unknown) = call(
        &app.base,
        &boston,
        "POST",
        "/api/v1/events",
        Some(&note("person/P-9999".into(), "p-bos-2", "S-BOS-01")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{unknown}");
    assert_eq!(
        known["error"]["rule"], unknown["error"]["rule"],
        "the same answer"
    );
    let (status, e) = call(
        &app.base,
        &physician,
        "POST",
        "/api/v1/events",
        Some(&note("person/P-0005".into(), "p-lax", IN_SCOPE)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
}

#[tokio::test]
async fn only_the_ordered_site_collects_on_sqlite() {
    run_on(
        Backend::Sqlite,
        "access_collect",
        only_the_ordered_site_collects,
    )
    .await;
}

#[tokio::test]
async fn only_the_ordered_site_collects_on_postgres() {
    run_on(
        Backend::Postgres,
        "access_collect",
        only_the_ordered_site_collects,
    )
    .await;
}

/// The alerts raised on the test's chain.
async fn chain_alerts(app: &TestApp) -> usize {
    let events = app
        .app
        .store()
        .list_events(&autolog_store::EventQuery {
            stream: None,
            valid_at: autolog_domain::Instant::MAX,
            known_at: autolog_domain::Instant::MAX,
            after_position: 0,
            limit: 10_000,
        })
        .await
        .expect("events");
    events
        .iter()
        .filter(|e| e.body.event_type == "alert.raised" && e.body.data["coi"] == app.coi.as_str())
        .count()
}

/// A refused write leaves no trace on the record it was refused on (no event, no alert on
/// another site's chain) and is recorded in the sender's own access audit, which an
/// auditor reads; a flood of refusals is recorded one by one up to a limit per minute and
/// counted beyond it. Nobody writes into an access audit but Autolog.
async fn a_refused_write_is_recorded_in_the_senders_own_audit(t: Target) {
    let app = spawn_app(&t, AccessSettings::default()).await;
    let paris = person(&app.app, "P-0001", &[("apheresis_coordinator", "S-PAR-01")]).await;
    let chain_stream = format!("coi/{}", app.coi);
    let chain_before = app
        .app
        .store()
        .stream_events(&chain_stream, autolog_domain::Instant::MAX)
        .await
        .expect("chain")
        .len();
    let attempt = |i: usize| {
        json!({
            "stream": chain_stream,
            "occurred_at": "2026-11-10T12:30:00+01:00[Europe/Paris]",
            "site": "S-PAR-01",
            "source": {"system": "console", "source_event_id": format!("takeover-{i}")},
            "body": {"type": "chain.collected", "version": 1, "data": {
                "collection_site_id": "S-PAR-01", "operator_id": "P-0001", "device_id": "APH-PAR-01",
                "started_at": "2026-11-10T08:00:00+01:00", "ended_at": "2026-11-10T12:00:00+01:00",
                "dins": [autolog_domain::identifiers::Din::parse("din", "A999926000101").expect("DIN").to_string()]}},
        })
    };
    let alerts_before = chain_alerts(&app).await;
    let (status, refused) = call(
        &app.base,
        &paris,
        "POST",
        "/api/v1/events",
        Some(&attempt(0)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");

    let audit_stream = "access-audit/person/P-0001";
    let audit = |app: &TestApp| {
        let store = app.app.store().clone();
        async move {
            store
                .stream_events(audit_stream, autolog_domain::Instant::MAX)
                .await
                .expect("audit")
        }
    };
    let recorded = audit(&app).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let data = &recorded[0].body.data;
    assert_eq!(recorded[0].body.event_type, "access.refused");
    assert_eq!(data["by"], "person/P-0001");
    assert_eq!(data["action"], "write");
    assert_eq!(data["target"], chain_stream);
    assert_eq!(data["event_type"], "chain.collected");
    assert_eq!(data["field"], "stream");
    assert_eq!(data["rule"], refused["error"]["rule"]);
    let after = app
        .app
        .store()
        .stream_events(&chain_stream, autolog_domain::Instant::MAX)
        .await
        .expect("chain");
    assert_eq!(after.len(), chain_before, "nothing on the chain");
    assert_eq!(
        chain_alerts(&app).await,
        alerts_before,
        "no alert on another site's chain"
    );

    // An auditor reads it; the sender cannot write into it.
    let auditor = person(&app.app, "P-0009", &[("auditor", "*")]).await;
    let (status, state) = call(
        &app.base,
        &auditor,
        "GET",
        &format!("/api/v1/streams/{audit_stream}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(
        state["state"]["refusals"][0]["target"],
        chain_stream.as_str(),
        "{state}"
    );
    let forged = json!({
        "stream": audit_stream,
        "occurred_at": "2026-11-10T12:30:00+01:00[Europe/Paris]",
        "site": "S-PAR-01",
        "source": {"system": "console", "source_event_id": "forged"},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "all fine"}},
    });
    let (status, e) = call(&app.base, &paris, "POST", "/api/v1/events", Some(&forged)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["error"]["field"], "stream");

    // A flood: recorded one by one up to the limit per minute, counted beyond it.
    let flood = 40;
    for i in 1..=flood {
        let (status, _) = call(
            &app.base,
            &paris,
            "POST",
            "/api/v1/events",
            Some(&attempt(i)),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    app.app.flush_access_refusals(true).await;
    let recorded = audit(&app).await;
    let one_by_one = recorded
        .iter()
        .filter(|e| e.body.event_type == "access.refused")
        .count();
    let counted: u64 = recorded
        .iter()
        .filter(|e| e.body.event_type == "access.refusals_counted")
        .map(|e| e.body.data["refusals"].as_u64().expect("refusals"))
        .sum();
    let attempts = flood + 2;
    assert_eq!(
        one_by_one as u64 + counted,
        attempts as u64,
        "every refusal is accounted for"
    );
    let limit = autolog_app::ACCESS_REFUSALS_RECORDED_PER_MINUTE as usize;
    assert!(
        (limit..=2 * limit).contains(&one_by_one),
        "at most the limit per minute one by one (the flood may straddle a minute): {one_by_one}"
    );
    assert!(counted > 0);
}

#[tokio::test]
async fn a_refused_write_is_recorded_in_the_senders_own_audit_on_sqlite() {
    run_on(
        Backend::Sqlite,
        "access_refused_audit",
        a_refused_write_is_recorded_in_the_senders_own_audit,
    )
    .await;
}

#[tokio::test]
async fn a_refused_write_is_recorded_in_the_senders_own_audit_on_postgres() {
    run_on(
        Backend::Postgres,
        "access_refused_audit",
        a_refused_write_is_recorded_in_the_senders_own_audit,
    )
    .await;
}

/// Refused reads are recorded too: a coordinator at Boston asking for a Los Angeles chain
/// (its record, its identifying data, its history) and for an administrative route gets
/// 403 each time, and each is in Boston's own access audit with the route and the chain
/// (never the path as typed); past the per-minute limit an alert goes to network-wide
/// readers. A refused write is recorded once, not twice.
async fn refused_reads_are_recorded(t: Target) {
    let app = spawn_app(&t, AccessSettings::default()).await;
    let boston = person(&app.app, "P-0002", &[("apheresis_coordinator", "S-BOS-01")]).await;
    let coi = app.coi.clone();
    let tries = [
        format!("/api/v1/chains/{coi}"),
        format!("/api/v1/chains/{coi}/personal-data?purpose=TREAT"),
        format!("/api/v1/streams/coi/{coi}"),
        "/api/v1/users".to_string(),
        "/api/v1/chains/Jane%20Doe%201961".to_string(),
    ];
    let mut refused_count = 0;
    for path in &tries {
        let (status, e) = call(&app.base, &boston, "GET", path, None).await;
        if status == StatusCode::FORBIDDEN {
            refused_count += 1;
        }
        assert!(status.is_client_error(), "{path}: {status} {e}");
    }
    let audit = app
        .app
        .store()
        .stream_events("access-audit/person/P-0002", autolog_domain::Instant::MAX)
        .await
        .expect("audit");
    assert_eq!(audit.len(), refused_count, "{audit:?}");
    let targets: Vec<&str> = audit
        .iter()
        .map(|e| e.body.data["target"].as_str().unwrap_or(""))
        .collect();
    assert!(
        targets.contains(&format!("GET /api/v1/chains/{{coi}} coi/{coi}").as_str()),
        "{targets:?}"
    );
    assert!(targets.contains(&"GET /api/v1/users"), "{targets:?}");
    assert!(audit.iter().all(|e| e.body.data["action"] == "read"));
    let everything = serde_json::to_string(&audit.iter().map(|e| &e.body.data).collect::<Vec<_>>())
        .expect("json");
    assert!(
        !everything.contains("Jane"),
        "never the path as typed: {everything}"
    );

    // A flood: one alert for network-wide readers, none for the chain's site.
    let limit = autolog_app::ACCESS_REFUSALS_RECORDED_PER_MINUTE as usize;
    for _ in 0..2 * limit {
        call(&app.base, &boston, "GET", "/api/v1/users", None).await;
    }
    let admin = person(&app.app, "P-0009", &[("auditor", "*")]).await;
    let (status, alerts) = call(&app.base, &admin, "GET", "/api/v1/alerts?status=all", None).await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    let repeated: Vec<&Value> = alerts["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["rule"] == "access.refusals_repeated")
        .collect();
    assert!(
        (1..=2).contains(&repeated.len()),
        "one alert per minute of the flood: {repeated:?}"
    );
    assert_eq!(repeated[0]["evidence"]["by"], "person/P-0002");
    let nurse = person(&app.app, "P-0005", &[("treatment_nurse", IN_SCOPE)]).await;
    let (_, seen) = call(&app.base, &nurse, "GET", "/api/v1/alerts?status=all", None).await;
    assert!(
        !seen.to_string().contains("access.refusals_repeated"),
        "a site's reader does not see it: {seen}"
    );
}

#[tokio::test]
async fn refused_reads_are_recorded_on_sqlite() {
    run_on(Backend::Sqlite, "refused_reads", refused_reads_are_recorded).await;
}

#[tokio::test]
async fn refused_reads_are_recorded_on_postgres() {
    run_on(
        Backend::Postgres,
        "refused_reads",
        refused_reads_are_recorded,
    )
    .await;
}

/// Who may record a step comes from the product's process: a treatment nurse may record
/// the thaw (a treatment-center step) at her site and gets past authorization to the
/// chain's own rules; an operator granted at the same site may not (the process has it
/// performed at a treatment center), nor may the nurse record manufacturing; each refusal
/// names the step, the site types of the process and the roles' kinds.
async fn steps_follow_the_process(t: Target) {
    let app = spawn_app(&t, AccessSettings::default()).await;
    let step = |id: &str, code: &str, by: &str| {
        json!({
            "stream": format!("coi/{}", app.coi),
            "occurred_at": "2026-11-04T09:00:00-08:00[America/Los_Angeles]",
            "site": IN_SCOPE,
            "source": {"system": "console", "source_event_id": id},
            "body": {"type": "chain.step_performed", "version": 1, "data": {
                "step_code": code, "site_id": IN_SCOPE, "performed_by": by,
                "started_at": "2026-11-04T09:00:00-08:00"}},
        })
    };
    let nurse = person(&app.app, "P-0005", &[("treatment_nurse", IN_SCOPE)]).await;
    let (status, e) = call(
        &app.base,
        &nurse,
        "POST",
        "/api/v1/events",
        Some(&step("thaw", "THAW", "P-0005")),
    )
    .await;
    assert_ne!(
        status,
        StatusCode::FORBIDDEN,
        "the nurse may record the thaw: {e}"
    );
    assert!(
        status.is_client_error(),
        "the chain is not at the bedside yet: {e}"
    );
    let operator = person(&app.app, "P-0002", &[("manufacturing_operator", IN_SCOPE)]).await;
    let (status, e) = call(
        &app.base,
        &operator,
        "POST",
        "/api/v1/events",
        Some(&step("thaw-op", "THAW", "P-0002")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["error"]["field"], "body.data.step_code", "{e}");
    let rule = e["error"]["rule"].as_str().unwrap_or_default();
    assert!(
        rule.contains("treatment_center") && rule.contains("manufacturing_site"),
        "{rule}"
    );
    let (status, e) = call(
        &app.base,
        &nurse,
        "POST",
        "/api/v1/events",
        Some(&step("mfg", "MANUFACTURE", "P-0005")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["error"]["value"], "MANUFACTURE", "{e}");
}

#[tokio::test]
async fn steps_follow_the_process_on_sqlite() {
    run_on(Backend::Sqlite, "steps_process", steps_follow_the_process).await;
}

#[tokio::test]
async fn steps_follow_the_process_on_postgres() {
    run_on(Backend::Postgres, "steps_process", steps_follow_the_process).await;
}

/// An external laboratory takes part through samples: the Frankfurt QC lab is refused a
/// result on a Los Angeles chain (it takes no part in it) until samples of the chain are
/// shipped to it and it receives them; then its result reaches the chain's own rules.
async fn a_laboratory_takes_part_through_samples(t: Target) {
    let app = spawn_app(&t, AccessSettings::default()).await;
    let lab = person(&app.app, "P-0003", &[("qc_analyst", "S-FRA-01")]).await;
    let sender = person(&app.app, "P-0005", &[("courier", IN_SCOPE)]).await;
    let event = |id: &str, site: &str, kind: &str, data: Value| {
        json!({
            "stream": format!("coi/{}", app.coi),
            "occurred_at": "2026-11-05T09:00:00+01:00[Europe/Berlin]",
            "site": site,
            "source": {"system": "console", "source_event_id": id},
            "body": {"type": kind, "version": 1, "data": data},
        })
    };
    let result = event(
        "lims-1",
        "S-FRA-01",
        "batch.test_result_recorded",
        json!({"batch_id": "B-SAMPLES", "test_code": "STERILITY", "method": "Ph. Eur. 2.6.27",
               "result": "negative", "site_id": "S-FRA-01", "analyst_id": "P-0003"}),
    );
    let (status, e) = call(&app.base, &lab, "POST", "/api/v1/events", Some(&result)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no part in the chain yet: {e}"
    );

    let shipped = event(
        "samples-out",
        IN_SCOPE,
        "sample.handed_off",
        json!({"shipment_id": "SMP-1", "samples": ["SMP-1-A", "SMP-1-B"], "from_site_id": IN_SCOPE,
               "destination_site_id": "S-FRA-01", "handed_off_by": "P-0005"}),
    );
    let (status, e) = call(&app.base, &sender, "POST", "/api/v1/events", Some(&shipped)).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    let mut wrong = event(
        "samples-wrong",
        "S-FRA-01",
        "sample.received",
        json!({"shipment_id": "SMP-1", "samples": ["SMP-1-A"], "receiving_site_id": "S-FRA-01",
               "received_by": "P-0003"}),
    );
    let (status, e) = call(&app.base, &lab, "POST", "/api/v1/events", Some(&wrong)).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "not the samples shipped: {e}"
    );
    assert_eq!(e["error"]["field"], "body.data.samples", "{e}");
    wrong["source"]["source_event_id"] = json!("samples-in");
    wrong["body"]["data"]["samples"] = json!(["SMP-1-A", "SMP-1-B"]);
    let (status, e) = call(&app.base, &lab, "POST", "/api/v1/events", Some(&wrong)).await;
    assert_eq!(status, StatusCode::CREATED, "{e}");

    let (status, e) = call(&app.base, &lab, "POST", "/api/v1/events", Some(&result)).await;
    assert_ne!(status, StatusCode::FORBIDDEN, "the lab takes part now: {e}");
    assert!(
        e["error"]["rule"]
            .as_str()
            .unwrap_or_default()
            .contains("B-SAMPLES"),
        "the chain's own rules answer (no such batch on this chain): {e}"
    );
}

#[tokio::test]
async fn a_laboratory_takes_part_through_samples_on_sqlite() {
    run_on(
        Backend::Sqlite,
        "samples",
        a_laboratory_takes_part_through_samples,
    )
    .await;
}

#[tokio::test]
async fn a_laboratory_takes_part_through_samples_on_postgres() {
    run_on(
        Backend::Postgres,
        "samples",
        a_laboratory_takes_part_through_samples,
    )
    .await;
}

/// Source ids belong to their sender: a person cannot claim a source system's ids (its
/// events carry the console source), so the system's own fact is never refused as a
/// conflict; a token records only its own system's.
async fn source_ids_belong_to_their_sender(t: Target) {
    let app = spawn_app(&t, AccessSettings::default()).await;
    let note = |system: &str, id: &str| {
        json!({
            "stream": format!("coi/{}", app.coi),
            "occurred_at": "2026-11-03T09:00:00-08:00[America/Los_Angeles]",
            "site": IN_SCOPE,
            "source": {"system": system, "source_event_id": id},
            "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "x"}},
        })
    };
    let nurse = person(&app.app, "P-0005", &[("treatment_nurse", IN_SCOPE)]).await;
    let (status, e) = call(
        &app.base,
        &nurse,
        "POST",
        "/api/v1/events",
        Some(&note("emr-lax", "claimed")),
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].clone()),
        (StatusCode::FORBIDDEN, json!("source.system")),
        "{e}"
    );
    let enrolment = json!({
        "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]", "site": IN_SCOPE,
        "source": {"system": "emr-lax", "source_event_id": "claimed-enrolment"},
        "patient_key": "PK-CLAIM", "product_code": "CART-19", "treatment_site_id": IN_SCOPE,
    });
    let physician = person(&app.app, "P-0007", &[("treatment_physician", IN_SCOPE)]).await;
    let (status, e) = call(
        &app.base,
        &physician,
        "POST",
        "/api/v1/chains",
        Some(&enrolment),
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].clone()),
        (StatusCode::FORBIDDEN, json!("source.system")),
        "{e}"
    );
    // The system's own fact, under the id the person tried: recorded.
    let emr = system(&app.app, "emr-lax", &[IN_SCOPE]).await;
    let (status, e) = call(
        &app.base,
        &emr,
        "POST",
        "/api/v1/events",
        Some(&note("emr-lax", "claimed")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    // A token names its own system only; a person the console.
    let (status, e) = call(
        &app.base,
        &emr,
        "POST",
        "/api/v1/events",
        Some(&note("console", "own")),
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].clone()),
        (StatusCode::FORBIDDEN, json!("source.system")),
        "{e}"
    );
    let (status, e) = call(
        &app.base,
        &nurse,
        "POST",
        "/api/v1/events",
        Some(&note("console", "own")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
}

#[tokio::test]
async fn source_ids_belong_to_their_sender_on_sqlite() {
    run_on(
        Backend::Sqlite,
        "access_sources",
        source_ids_belong_to_their_sender,
    )
    .await;
}

#[tokio::test]
async fn source_ids_belong_to_their_sender_on_postgres() {
    run_on(
        Backend::Postgres,
        "access_sources",
        source_ids_belong_to_their_sender,
    )
    .await;
}

/// A record outside the caller's scope is answered as one that does not exist: a single
/// alert, an event and its inclusion proof are 404, as for an id nobody used.
async fn out_of_scope_records_are_answered_as_missing(t: Target) {
    let app = spawn_app(&t, AccessSettings::default()).await;
    let frankfurt = person(&app.app, "P-0008", &[("qa_releaser", OUT_OF_SCOPE)]).await;
    let all = autolog_app::AlertQuery {
        status: Some("all".into()),
        ..autolog_app::AlertQuery::default()
    };
    let alerts = app.app.alerts(&all).await.expect("alerts");
    let alert_id = &alerts
        .first()
        .expect("an alert on the chain")
        .raised
        .alert_id;
    let chain = app.app.chain(&app.coi, None, None).await.expect("chain");
    let event_id = chain.timeline[0].event_id.to_string();
    let nobody = autolog_domain::Uuid::now_v7().to_string();
    for (path, missing) in [
        (
            format!("/api/v1/alerts/{alert_id}"),
            "/api/v1/alerts/AL-0000000000000000".to_string(),
        ),
        (
            format!("/api/v1/events/{event_id}"),
            format!("/api/v1/events/{nobody}"),
        ),
        (
            format!("/api/v1/proofs/inclusion/{event_id}"),
            format!("/api/v1/proofs/inclusion/{nobody}"),
        ),
    ] {
        let (status, hidden) = call(&app.base, &frankfurt, "GET", &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {hidden}");
        let (status, absent) = call(&app.base, &frankfurt, "GET", &missing, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {absent}");
        assert_eq!(hidden["error"]["code"], absent["error"]["code"]);
    }
    // Scope comes before the parameters' form: an out-of-scope caller learns nothing more
    // from a malformed page size or tree size than from a good one.
    let (status, answer) = call(
        &app.base,
        &frankfurt,
        "GET",
        &format!("/api/v1/events?stream=coi/{}&limit=many", app.coi),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = call(
        &app.base,
        &frankfurt,
        "GET",
        &format!("/api/v1/proofs/inclusion/{event_id}?tree_size=many"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
}

#[tokio::test]
async fn out_of_scope_records_are_answered_as_missing_on_sqlite() {
    run_on(
        Backend::Sqlite,
        "access_missing",
        out_of_scope_records_are_answered_as_missing,
    )
    .await;
}

#[tokio::test]
async fn scope_holds_for_writes_source_ids_personal_data_and_tokens() {
    run_on(Backend::Sqlite, "access_writes", |t| async move {
        let app = spawn_app(&t, AccessSettings::default()).await;
        let chain_stream = format!("coi/{}", app.coi);
        let note = |site: &str, id: &str| {
            json!({
                "stream": chain_stream, "occurred_at": "2026-11-03T09:00:00-08:00[America/Los_Angeles]",
                "site": site, "source": {"system": "console", "source_event_id": id},
                "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "x"}},
            })
        };
        // Boston takes no part in this Los Angeles chain: its operator cannot write on it,
        // not even a note naming Boston, and so cannot make Boston a party to read it.
        let boston = person(&app.app, "P-0002", &[("manufacturing_operator", "S-BOS-01")]).await;
        let (status, e) = call(&app.base, &boston, "POST", "/api/v1/events", Some(&note("S-BOS-01", "n-bos"))).await;
        assert_eq!((status, e["error"]["field"].clone()), (StatusCode::FORBIDDEN, json!("stream")), "{e}");
        let (status, _) = call(&app.base, &boston, "GET", &format!("/api/v1/chains/{}", app.coi), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // A steward of one site cannot change the network's reference data.
        let steward = person(&app.app, "P-0003", &[("reference_data_steward", "S-BOS-01")]).await;
        let amend = json!({
            "stream": "site/S-LAX-01", "occurred_at": "2026-11-03T09:00:00-08:00[America/Los_Angeles]",
            "site": "S-BOS-01", "source": {"system": "console", "source_event_id": "amend-lax"},
            "body": {"type": "site.amended", "version": 1, "data": {"name": "Renamed"}},
        });
        let (status, e) = call(&app.base, &steward, "POST", "/api/v1/events", Some(&amend)).await;
        assert_eq!((status, e["error"]["field"].clone()), (StatusCode::FORBIDDEN, json!("body.type")), "{e}");

        // A source id someone else used: 409, and their record is not in the answer.
        let nurse = person(&app.app, "P-0005", &[("treatment_nurse", IN_SCOPE)]).await;
        let (status, first) = call(&app.base, &nurse, "POST", "/api/v1/events", Some(&note(IN_SCOPE, "n-1"))).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        let physician = person(&app.app, "P-0007", &[("treatment_physician", IN_SCOPE)]).await;
        let (status, e) = call(&app.base, &physician, "POST", "/api/v1/events", Some(&note(IN_SCOPE, "n-1"))).await;
        assert_eq!(status, StatusCode::CONFLICT, "{e}");
        assert!(e.get("event").is_none() && !e.to_string().contains("P-0005"), "{e}");
        let (status, again) = call(&app.base, &nurse, "POST", "/api/v1/events", Some(&note(IN_SCOPE, "n-1"))).await;
        assert_eq!((status, again["status"].clone()), (StatusCode::OK, json!("duplicate")));

        // Identifying data is bound to the chain it was recorded through: a chain enrolled
        // at another center with the same patient key does not open it.
        let data = json!({"name": "Alex Example", "date_of_birth": "1970-01-01"});
        let (status, e) = call(&app.base, &nurse, "POST", &format!("/api/v1/chains/{}/personal-data", app.coi), Some(&data)).await;
        assert_eq!(status, StatusCode::CREATED, "{e}");
        let other = json!({
            "occurred_at": "2026-11-02T09:00:00-05:00[America/New_York]",
            "actor": "person/P-0002", "site": "S-BOS-01",
            "source": {"system": "emr-lax", "source_event_id": "enrol-same-key"},
            "patient_key": PATIENT, "product_code": "CART-19", "treatment_site_id": "S-LHI-01",
        });
        let (other_coi, _) = app.app.enrol(other.to_string().as_bytes()).await.expect("enrol");
        let island = person(&app.app, "P-0006", &[("treatment_nurse", "S-LHI-01")]).await;
        let path = format!("/api/v1/chains/{other_coi}/personal-data?purpose=TREAT");
        let (status, e) = call(&app.base, &island, "GET", &path, None).await;
        assert_eq!((status, e["error"]["field"].clone()), (StatusCode::FORBIDDEN, json!("patient_key")), "{e}");
        let (status, _) = call(&app.base, &nurse, "GET", &format!("/api/v1/chains/{}/personal-data?purpose=TREAT", app.coi), None).await;
        assert_eq!(status, StatusCode::OK);

        // A source system acknowledging an alert is recorded as the actor, reporting
        // the person who acted.
        let emr = system(&app.app, "emr-lax", &[]).await;
        let (_, listed) = call(&app.base, &emr, "GET", "/api/v1/alerts", None).await;
        let alert_id = listed["alerts"][0]["alert_id"].as_str().expect("an alert in scope").to_string();
        let (status, acked) = call(&app.base, &emr, "POST", &format!("/api/v1/alerts/{alert_id}/acknowledge"),
            Some(&json!({"person_id": "P-0005", "note": "seen at the bedside"}))).await;
        assert_eq!(status, StatusCode::OK, "{acked}");
        let events = app.app.store().stream_events(&format!("alert/{alert_id}"), autolog_domain::Instant::MAX).await.expect("events");
        assert_eq!(events.last().expect("ack").actor, "system/emr-lax");

        // A retired source system's token stops working at once. (Retired now: an
        // amendment takes effect after the record's registration, the import's time.)
        let now = autolog_domain::Instant::now().to_string().replace('Z', "+00:00[UTC]");
        let retire = json!({
            "stream": "source-system/emr-lax", "occurred_at": now,
            "actor": "person/P-STEWARD", "source": {"system": "steward", "source_event_id": "retire-emr"},
            "body": {"type": "source_system.amended", "version": 1, "data": {"status": "retired"}},
        });
        app.app.append_json(retire.to_string().as_bytes()).await.expect("retire");
        let (status, _) = call(&app.base, &emr, "GET", &format!("/api/v1/chains/{}", app.coi), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // HEAD is authenticated like GET.
        let r = reqwest::Client::new()
            .head(format!("{}/api/v1/users/P-0005", app.base))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    })
    .await;
}
