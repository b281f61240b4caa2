//! HTTP tests of alerts against a running server: the list, acknowledgement and
//! resolution, the server-sent event stream, webhooks (signed, retried until a receiver
//! that was down comes up), the reconciliation report, and a refusal for each bad input.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use autolog_app::{Autolog, SIGNATURE_HEADER};
use autolog_domain::SigningKey;
use autolog_store_conformance::harness::{run_on, Backend, Target};
use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

struct TestApp {
    base: String,
    /// P-0008's client (every role, every site): reads and anything naming no one.
    client: reqwest::Client,
    /// A signed-in client per person the tests act as.
    clients: std::collections::HashMap<String, reqwest::Client>,
}

async fn spawn_app(target: &Target) -> TestApp {
    // The receivers of these tests listen on loopback: the operator's option allows it.
    let s = crate::common::spawn_app(
        target,
        crate::common::Setup {
            private_webhooks: true,
            webhook_interval: Duration::from_millis(200),
            ..crate::common::Setup::examples()
        },
    )
    .await;
    // The people the tests act as, signed in with every role everywhere (access control
    // is tested in access.rs); their password is also their signing secret.
    let mut clients = std::collections::HashMap::new();
    for person in ["P-0002", "P-0005", "P-0008"] {
        let user =
            autolog_test_support::person(&s.app, person, &autolog_test_support::every_role()).await;
        clients.insert(user.actor.clone(), user.client());
    }
    TestApp {
        base: s.base,
        client: clients["person/P-0008"].clone(),
        clients,
    }
}

impl TestApp {
    /// The client of the person a request body names (as actor, person_id or
    /// created_by), else P-0008's.
    fn client_for(&self, body: Option<&str>) -> &reqwest::Client {
        let value: Value = body
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        let first = if value.is_array() { &value[0] } else { &value };
        let actor = first["actor"]
            .as_str()
            .or(first["created_by"].as_str())
            .map(str::to_string)
            .or_else(|| first["person_id"].as_str().map(|p| format!("person/{p}")));
        actor
            .and_then(|a| self.clients.get(&a))
            .unwrap_or(&self.client)
    }

    async fn send(&self, path: &str, body: Option<&str>) -> (StatusCode, Value) {
        let request = match body {
            Some(b) => self
                .client_for(body)
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(b.to_string()),
            None => self.client.get(format!("{}{path}", self.base)),
        };
        let r = request.send().await.expect("request");
        let status = r.status();
        (status, r.json().await.expect("json answer"))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(path, Some(&body.to_string())).await
    }

    /// Enrols a patient and sends a collection at a site that may not collect: refused,
    /// and one alert raised. Returns the COI.
    async fn raise_refusal_alert(&self, key: &str) -> String {
        let (status, enrolled) = self
            .post(
                "/api/v1/chains",
                &json!({
                    "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]",
                    "actor": "person/P-0005",
                    "site": "S-LAX-01",
                    "source": {"system": "console", "source_event_id": format!("enrol-{key}")},
                    "patient_key": key,
                    "product_code": "CART-19",
                    "treatment_site_id": "S-LAX-01",
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{enrolled}");
        let coi = enrolled["coi"].as_str().expect("coi").to_string();
        let din = autolog_domain::identifiers::Din::parse(
            "din",
            &format!("A99992{}", &key[key.len() - 7..]),
        )
        .expect("DIN")
        .to_string();
        let (status, refused) = self
            .post(
                "/api/v1/events",
                &json!({
                    "stream": format!("coi/{coi}"),
                    "occurred_at": "2026-11-10T12:30:00-05:00[America/New_York]",
                    "actor": "person/P-0002",
                    "site": "S-BOS-01",
                    "source": {"system": "console", "source_event_id": format!("collect-{key}")},
                    "body": {"type": "chain.collected", "version": 1, "data": {
                        "collection_site_id": "S-BOS-01", "operator_id": "P-0002", "device_id": "APH-PAR-01",
                        "started_at": "2026-11-10T08:00:00-05:00", "ended_at": "2026-11-10T12:00:00-05:00",
                        "dins": [din],
                    }},
                }),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(refused["error"]["field"], "body.data.collection_site_id");
        coi
    }
}

fn sqlite<F, Fut>(name: &'static str, f: F) -> impl std::future::Future<Output = ()>
where
    F: FnOnce(Target) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    run_on(Backend::Sqlite, name, f)
}

#[tokio::test]
async fn alerts_are_listed_acknowledged_and_resolved_with_every_bad_input_refused() {
    sqlite("alerts_api", |t| async move {
        let app = spawn_app(&t).await;
        let coi = app.raise_refusal_alert("PK-0000001").await;
        let (status, list) = app.get("/api/v1/alerts").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["count"], 1);
        let alert = &list["alerts"][0];
        assert_eq!(alert["rule"], "chain.step_refused");
        assert_eq!(alert["coi"], json!(coi));
        assert_eq!(alert["status"], "raised");
        let id = alert["alert_id"].as_str().expect("id").to_string();
        let (status, by_chain) = app.get(&format!("/api/v1/alerts?coi={coi}&status=all")).await;
        assert_eq!((status, by_chain["count"].clone()), (StatusCode::OK, json!(1)));

        // Bad inputs: each refused, naming the field, nothing changed.
        for (path, field) in [
            ("/api/v1/alerts?status=bogus", "status"),
            ("/api/v1/alerts?colour=red", "colour"),
            ("/api/v1/alerts?coi=NOT-A-COI", "coi"),
            ("/api/v1/reconciliation?verbose=1", "verbose"),
            ("/api/v1/alerts/stream?after=minus-one", "after"),
        ] {
            let (status, e) = app.get(path).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
            assert_eq!(e["error"]["field"], field, "{path}");
        }
        let (status, _) = app.get("/api/v1/alerts/AL-0000000000000000").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_signals_count_the_refusal(&app).await;
        let ack = format!("/api/v1/alerts/{id}/acknowledge");
        let (status, e) = app.send(&ack, Some("{\"person_id\": ")).await;
        assert_eq!((status, e["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("request")));
        let (status, e) = app.post(&ack, &json!({"person_id": "P-0008", "note": "x", "mood": "calm"})).await;
        assert_eq!((status, e["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("mood")));
        let (status, e) = app.post(&ack, &json!({"person_id": "P-9999", "note": "x"})).await;
        assert_eq!((status, e["error"]["field"].clone()), (StatusCode::FORBIDDEN, json!("person_id")), "a person acknowledges as themself: {e}");
        let (status, e) = app.post(&ack, &json!({"person_id": "P-0008"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["error"]["field"], "note");
        let (_, unchanged) = app.get(&format!("/api/v1/alerts/{id}")).await;
        assert_eq!(unchanged["status"], "raised");

        let (status, acked) = app.post(&ack, &json!({"person_id": "P-0008", "note": "looking into it"})).await;
        assert_eq!(status, StatusCode::OK, "{acked}");
        assert_eq!(acked["status"], "acknowledged");
        assert_eq!(acked["acknowledgements"][0]["person_id"], "P-0008");
        let resolve = format!("/api/v1/alerts/{id}/resolve");
        let (status, done) = app.post(&resolve, &json!({"person_id": "P-0008", "note": "collection re-recorded at the apheresis center"})).await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(done["status"], "resolved");
        let (status, again) = app.post(&resolve, &json!({"person_id": "P-0008", "note": "again"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{again}");
        let (_, open) = app.get("/api/v1/alerts").await;
        assert_eq!(open["count"], 0, "a resolved alert is no longer open");
        let (_, resolved) = app.get("/api/v1/alerts?status=resolved").await;
        assert_eq!(resolved["count"], 1);

        // The network report: the refusal left the chain clean (nothing recorded on it).
        let (status, report) = app.get("/api/v1/reconciliation").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["clean"], true, "{report}");
        assert_eq!(report["chains"], 1);
        assert!(report["open_holds"].as_array().expect("list").is_empty());
    })
    .await;
}

/// The refused collection, in the weekly signals: one cross-site inconsistency in the
/// week of 2026-11-09 at the collecting site, from the console, on a CART-19 chain; and
/// each bad parameter refused by name.
async fn assert_signals_count_the_refusal(app: &TestApp) {
    let (status, report) = app
        .get("/api/v1/signals?from=2026-11-01&to=2026-11-30")
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (report["from"].clone(), report["to"].clone()),
        (json!("2026-10-26"), json!("2026-11-30"))
    );
    assert_eq!(
        report["counts"],
        json!([{"week_start": "2026-11-09", "signal": "cross_site_inconsistency", "site_id": "S-BOS-01",
                "source_system": "console", "product_code": "CART-19", "count": 1}])
    );
    let (_, elsewhere) = app
        .get("/api/v1/signals?from=2026-11-01&to=2026-11-30&site_id=S-LAX-01")
        .await;
    assert_eq!(elsewhere["counts"], json!([]), "{elsewhere}");
    for (path, field) in [
        ("/api/v1/signals?from=yesterday", "from"),
        ("/api/v1/signals?to=2026-02-30", "to"),
        ("/api/v1/signals?from=2026-12-01&to=2026-11-01", "from"),
        ("/api/v1/signals?site_id=not%20a%20site", "site_id"),
        ("/api/v1/signals?colour=red", "colour"),
    ] {
        let (status, e) = app.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {e}");
        assert_eq!(e["error"]["field"], field, "{path}");
    }
}

/// Reads the SSE response until `count` alert events arrived; returns their data.
async fn read_alerts(response: &mut reqwest::Response, count: usize) -> Vec<(String, Value)> {
    let mut buffer = String::new();
    let mut found = Vec::new();
    while found.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(30), response.chunk())
            .await
            .expect("an event within 30 s (hang guard)")
            .expect("stream")
            .expect("stream still open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let record: String = buffer.drain(..end + 2).collect();
            let mut id = String::new();
            let mut data = None;
            let mut is_alert = false;
            for line in record.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str::<Value>(v.trim()).ok();
                } else if line.trim() == "event: alert" || line.trim() == "event:alert" {
                    is_alert = true;
                }
            }
            if let (true, Some(d)) = (is_alert, data) {
                found.push((id, d));
            }
        }
    }
    found
}

#[tokio::test]
async fn alerts_are_pushed_to_subscribers_at_once_and_replayed_after_a_reconnect() {
    sqlite("alerts_sse", |t| async move {
        let app = spawn_app(&t).await;
        let mut stream = app
            .client
            .get(format!("{}/api/v1/alerts/stream", app.base))
            .send()
            .await
            .expect("subscribe");
        assert_eq!(stream.status(), StatusCode::OK);
        assert!(stream
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream")));
        let coi = app.raise_refusal_alert("PK-0000002").await;
        let pushed = read_alerts(&mut stream, 1).await;
        assert_eq!(pushed[0].1["coi"], json!(coi));
        assert_eq!(pushed[0].1["rule"], "chain.step_refused");
        let first_position = pushed[0].0.clone();
        drop(stream);

        // While disconnected, another alert; a reconnect with Last-Event-ID gets it.
        let second = app.raise_refusal_alert("PK-0000003").await;
        let mut again = app
            .client
            .get(format!("{}/api/v1/alerts/stream", app.base))
            .header("last-event-id", &first_position)
            .send()
            .await
            .expect("resubscribe");
        let replayed = read_alerts(&mut again, 1).await;
        assert_eq!(replayed[0].1["coi"], json!(second));
        // An alert recorded by another server sharing the database reaches this
        // server's subscriber too (read from the ledger, not only pushed in-process).
        let other = Autolog::from_parts(t.open().await, SigningKey::from_bytes(&[42u8; 32]))
            .with_coi_issuer("A9999")
            .expect("FIN");
        let (coi3, _) = other
            .enrol(
                json!({
                    "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]",
                    "actor": "person/P-0005", "site": "S-LAX-01",
                    "source": {"system": "console", "source_event_id": "enrol-other"},
                    "patient_key": "PK-OTHER", "product_code": "CART-19", "treatment_site_id": "S-LAX-01",
                })
                .to_string()
                .as_bytes(),
            )
            .await
            .expect("enrol on the other server");
        let cancel_twice = json!([
            {"stream": format!("coi/{coi3}"), "occurred_at": "2026-11-03T09:00:00-08:00[America/Los_Angeles]",
             "actor": "person/P-0005", "site": "S-LAX-01", "source": {"system": "console", "source_event_id": "c1"},
             "body": {"type": "chain.cancelled", "version": 1, "data": {"cancellation_reason": "withdrew"}}},
            {"stream": format!("coi/{coi3}"), "occurred_at": "2026-11-03T09:05:00-08:00[America/Los_Angeles]",
             "actor": "person/P-0005", "site": "S-LAX-01", "source": {"system": "console", "source_event_id": "c2"},
             "body": {"type": "chain.cancelled", "version": 1, "data": {"cancellation_reason": "again"}}}
        ]);
        assert!(other.append_json(cancel_twice.to_string().as_bytes()).await.is_err());
        let from_elsewhere = read_alerts(&mut again, 1).await;
        assert_eq!(from_elsewhere[0].1["coi"], json!(coi3));
        let (status, e) = {
            let r = app
                .client
                .get(format!("{}/api/v1/alerts/stream", app.base))
                .header("last-event-id", "yesterday")
                .send()
                .await
                .expect("request");
            (r.status(), r.json::<Value>().await.expect("json"))
        };
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(e["error"]["field"], "Last-Event-ID");
    })
    .await;
}

/// A receiver that answers 503 to its first `failures` requests, then 200, keeping each
/// request's headers and body.
async fn receiver(
    listener: tokio::net::TcpListener,
    failures: usize,
) -> Arc<Mutex<Vec<(HeaderMap, String)>>> {
    let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let kept = seen.clone();
    let handler = move |headers: HeaderMap, body: String| {
        let kept = kept.clone();
        async move {
            let mut list = kept.lock().expect("lock");
            list.push((headers, body));
            if list.len() <= failures {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    tokio::spawn(async move { axum::serve(listener, router).await });
    seen
}

async fn wait_until_delivered(app: &TestApp, webhook: &str, deliveries: usize) -> Value {
    for _ in 0..300 {
        let (_, state) = app.get(&format!("/api/v1/webhooks/{webhook}")).await;
        let delivered = state["deliveries"]
            .as_array()
            .map(|d| d.iter().filter(|x| x["status"] == "delivered").count())
            .unwrap_or(0);
        if delivered >= deliveries {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not delivered within 30 s (hang guard)");
}

#[tokio::test]
async fn webhooks_are_signed_and_retried_until_a_receiver_that_was_down_comes_up() {
    sqlite("alerts_webhooks", |t| async move {
        let app = spawn_app(&t).await;
        // Bad registrations first.
        for (body, field) in [
            (json!({"url": "not a url", "created_by": "person/P-0008"}), "url"),
            (json!({"url": "ftp://example.org/x", "created_by": "person/P-0008"}), "url"),
            (json!({"url": "http://127.0.0.1:9/x", "created_by": "person/P-0008", "secret": "short"}), "secret"),
            (json!({"url": "http://127.0.0.1:9/x", "created_by": "person/P-0008", "retries": 3}), "retries"),
        ] {
            let (status, e) = app.post("/api/v1/webhooks", &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {e}");
            assert_eq!(e["error"]["field"], field, "{body}");
        }
        // Registered by whoever sends it: naming someone else is refused.
        let (status, e) = app
            .post("/api/v1/webhooks", &json!({"url": "http://127.0.0.1:9/x", "created_by": "person/P-9999"}))
            .await;
        assert_eq!((status, e["error"]["field"].clone()), (StatusCode::FORBIDDEN, json!("created_by")), "{e}");
        let (status, _) = app.get("/api/v1/webhooks/not-a-uuid").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = app.get("/api/v1/webhooks/0192f1c3-0000-7000-8000-000000000000").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // A receiver that is down: its port is reserved, then released, nobody listens.
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = reserved.local_addr().expect("addr").port();
        drop(reserved);
        let (status, hook) = app
            .post("/api/v1/webhooks", &json!({"url": format!("http://127.0.0.1:{port}/hook"), "created_by": "person/P-0008"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        let id = hook["webhook_id"].as_str().expect("id").to_string();
        let secret = hook["secret"].as_str().expect("shown once").to_string();
        let (_, listed) = app.get("/api/v1/webhooks").await;
        assert!(listed.to_string().find(&secret).is_none(), "the secret is never listed");

        let coi = app.raise_refusal_alert("PK-0000004").await;
        // Wait for a failed attempt in the delivery log.
        let mut failed = Value::Null;
        for _ in 0..300 {
            let (_, state) = app.get(&format!("/api/v1/webhooks/{id}")).await;
            if state["deliveries"][0]["attempts"].as_u64().unwrap_or(0) >= 1 {
                failed = state;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(failed["deliveries"][0]["status"], "pending", "{failed}");
        assert_eq!(failed["deliveries"][0]["log"][0]["ok"], false);

        // The receiver comes up on that port, failing once more before it accepts.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("rebind");
        let seen = receiver(listener, 1).await;
        let state = wait_until_delivered(&app, &id, 1).await;
        let delivery = &state["deliveries"][0];
        let log = delivery["log"].as_array().expect("log");
        assert!(log.len() >= 3, "down, 503, then delivered: {delivery}");
        assert_eq!(log.last().expect("last")["ok"], true);
        assert_eq!(log.last().expect("last")["detail"], "HTTP 200");

        // What arrived is the alert, signed with the secret.
        let requests = seen.lock().expect("lock").clone();
        let (headers, body) = requests.last().expect("delivered");
        let alert: Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(alert["coi"], json!(coi));
        let signature = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .expect("signed");
        assert_eq!(signature, autolog_app::signature(&secret, body.as_bytes()));
        assert_ne!(signature, autolog_app::signature("another secret", body.as_bytes()));

        // Deactivated: later alerts are not sent.
        let (status, off) = app.send(&format!("/api/v1/webhooks/{id}/deactivate"), Some("")).await;
        assert_eq!(status, StatusCode::OK, "{off}");
        assert_eq!(off["active"], false);
    })
    .await;
}

#[tokio::test]
async fn a_refused_release_answers_422_listing_every_condition_and_genealogy_reads_are_checked() {
    sqlite("release_http", |t| async move {
        let app = spawn_app(&t).await;
        let (status, enrolled) = app
            .post(
                "/api/v1/chains",
                &json!({
                    "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]",
                    "actor": "person/P-0005", "site": "S-LAX-01",
                    "source": {"system": "console", "source_event_id": "enrol-rel"},
                    "patient_key": "PK-HTTP", "product_code": "CART-19", "treatment_site_id": "S-LAX-01",
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{enrolled}");
        let coi = enrolled["coi"].as_str().expect("coi").to_string();
        let content = format!("{}S0001A0", &coi[..15]);
        let unit = format!(
            "{content}{}",
            autolog_domain::identifiers::mod37_2_check(&content).expect("check")
        );
        let release = |secret: &str| {
            json!({
                "stream": format!("coi/{coi}"),
                "occurred_at": "2026-11-20T10:00:00-05:00[America/New_York]",
                "actor": "person/P-0002", "site": "S-BOS-01",
                "source": {"system": "console", "source_event_id": format!("release-{}", secret.len())},
                "body": {"type": "chain.released", "version": 1, "data": {
                    "batch_id": "B-NONE", "intended_patient_key": "PK-SOMEONE-ELSE", "site_id": "S-BOS-01",
                    "released_by": "P-0002", "units": [unit],
                    "signature": {"signer_id": "P-0002", "secret": secret},
                }},
            })
        };
        // A wrong secret: 400, the secret never echoed.
        let (status, e) = app.post("/api/v1/events", &release("wrong secret entirely")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["error"]["field"], "body.data.signature.secret");
        assert!(!e.to_string().contains("wrong secret entirely"));
        // Signed, but nothing holds: 422 with every unmet condition.
        let mut signed = release("correct horse battery staple");
        signed["source"]["source_event_id"] = json!("release-with-unit");
        let (status, e) = app.post("/api/v1/events", &signed).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["code"], "conditions_unmet");
        let fields: Vec<String> = e["error"]["unmet"]
            .as_array()
            .expect("unmet")
            .iter()
            .filter_map(|c| c["field"].as_str().map(str::to_string))
            .collect();
        for expected in [
            "body.type",
            "body.data.batch_id",
            "body.data.intended_patient_key",
            "release_tests.VIABILITY",
            "release_tests.STERILITY",
            "body.data.site_id",
        ] {
            assert!(fields.iter().any(|f| f == expected), "{expected} missing: {fields:?}");
        }
        // Genealogy reads: unknown unit 404, unreadable unit 400, unknown lot 404.
        let (status, _) = app.get("/api/v1/genealogy/backward/CHA999926000001S0001A0X").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = app.get("/api/v1/genealogy/forward/LV-CD19/LV19-2026-014").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app.get("/api/v1/genealogy/forward/NO-SUCH-LOT").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, e) = app.get("/api/v1/genealogy/forward/LV19-2026-014?valid_at=yesterday").await;
        assert_eq!((status, e["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("valid_at")));
        let (status, t) = app.get("/api/v1/turnaround?product_code=CART-19").await;
        assert_eq!(status, StatusCode::OK, "{t}");
        assert_eq!(t["chains"].as_array().map(Vec::len), Some(1));
        let (status, _) = app.get("/api/v1/turnaround?colour=red").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    })
    .await;
}
