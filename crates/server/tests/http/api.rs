//! HTTP tests against a running server on a random port: appends, reads as of any time,
//! proofs, checkpoints, and a refusal (with nothing written) for each kind of bad input.

use std::sync::Arc;
use std::time::Duration;

use autolog_app::{Autolog, MAX_REQUEST_BYTES};
use autolog_domain::ledger::merkle;
use autolog_domain::SigningKey;
use autolog_store_conformance::harness::{run_on, Backend, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct TestApp {
    base: String,
    client: reqwest::Client,
    app: Arc<Autolog>,
    /// The ledger's size after the test user was set up: tests count from here.
    setup: u64,
}

async fn spawn_app(target: &Target) -> TestApp {
    let s = crate::common::spawn_app(
        target,
        crate::common::Setup {
            webhook_interval: Duration::from_millis(200),
            ..crate::common::Setup::default()
        },
    )
    .await;
    // Every request is made by P-0001, signed in with every role everywhere (access
    // control itself is tested in access.rs); the tests count events from after its set-up.
    let user =
        autolog_test_support::person(&s.app, "P-0001", &autolog_test_support::every_role()).await;
    let setup = s.app.store().head().await.expect("head").position;
    TestApp {
        base: s.base,
        client: user.client(),
        app: s.app,
        setup,
    }
}

impl TestApp {
    async fn post(&self, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        let r = self
            .client
            .post(format!("{}/api/v1/events", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.expect("json answer"))
    }

    async fn post_json(&self, v: &Value) -> (StatusCode, Value) {
        self.post(v.to_string()).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.expect("json answer"))
    }

    async fn tree_size(&self) -> u64 {
        let (_, h) = self.get("/healthz").await;
        h["tree_size"].as_u64().expect("tree_size") - self.setup
    }
}

/// A note on a stream of notes (no registration needed, so tests start from an empty ledger).
fn site_event(id: &str, occurred: &str, name: &str) -> Value {
    json!({
        "stream": "note/S-PAR-01",
        "occurred_at": occurred,
        "actor": "person/P-0001",
        "source": {"system": "console", "source_event_id": id},
        "body": {"type": "annotation.recorded", "version": 1, "data": {"text": name}}
    })
}

fn sqlite<F, Fut>(name: &'static str, f: F) -> impl std::future::Future<Output = ()>
where
    F: FnOnce(Target) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    run_on(Backend::Sqlite, name, f)
}

/// Every answer carries a request id: the client's own when it is a plain token, a new
/// UUIDv7 otherwise (free text never becomes a log field).
#[tokio::test]
async fn every_answer_carries_a_request_id() {
    sqlite("request_id", |t| async move {
        let app = spawn_app(&t).await;
        let id_of = |sent: Option<&'static str>| {
            let mut request = app.client.get(format!("{}/healthz", app.base));
            if let Some(id) = sent {
                request = request.header(autolog_server::REQUEST_ID_HEADER, id);
            }
            async move {
                let answer = request.send().await.expect("request");
                let id = answer.headers().get(autolog_server::REQUEST_ID_HEADER);
                id.and_then(|v| v.to_str().ok()).map(str::to_string)
            }
        };
        assert_eq!(
            id_of(Some("courier-42")).await.as_deref(),
            Some("courier-42")
        );
        for sent in [None, Some("Jane Doe 1970-01-01")] {
            let made = id_of(sent).await.expect("an id is made");
            let uuid = autolog_domain::Uuid::parse_str(&made).expect("a UUID");
            assert_eq!(uuid.get_version_num(), 7, "{made}");
        }
    })
    .await;
}

/// A method a route does not have is answered 405 with `Allow`, before authentication
/// and whoever asks.
#[tokio::test]
async fn a_method_a_route_lacks_is_405_with_allow() {
    sqlite("method", |t| async move {
        let app = spawn_app(&t).await;
        let anonymous = reqwest::Client::new();
        for (method, path, allow) in [
            ("TRACE", "/api/v1/events", "GET, HEAD, POST"),
            ("DELETE", "/api/v1/chains/CHA999926000001*", "GET, HEAD"),
            ("PUT", "/healthz", "GET, HEAD"),
        ] {
            for client in [&anonymous, &app.client] {
                let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                let answer = client
                    .request(method.clone(), format!("{}{path}", app.base))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(
                    answer.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                let allowed = answer.headers().get("allow").and_then(|v| v.to_str().ok());
                assert_eq!(allowed, Some(allow), "{method} {path}");
                let body: Value = answer.json().await.expect("json");
                assert_eq!(body["error"]["code"], "method_not_allowed");
                assert_eq!(body["error"]["field"], "method");
            }
        }
    })
    .await;
}

/// A webhook cannot be pointed into Autolog's own network: loopback, private, link-local
/// (cloud metadata) and names that resolve to them are refused by default.
#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused() {
    sqlite("webhook_ssrf", |t| async move {
        let app = spawn_app(&t).await;
        for url in [
            "http://127.0.0.1:9/hook",
            "http://localhost:9/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.8/hook",
            "http://[::1]:9/hook",
        ] {
            let r = app
                .client
                .post(format!("{}/api/v1/webhooks", app.base))
                .json(&json!({"url": url, "created_by": "person/P-0001"}))
                .send()
                .await
                .expect("request");
            let status = r.status();
            let body: Value = r.json().await.expect("json");
            assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
            assert_eq!(body["error"]["field"], "url", "{url}: {body}");
            assert!(
                body["error"]["rule"]
                    .as_str()
                    .is_some_and(|r| r.contains("--allow-private-webhooks")),
                "{body}"
            );
        }
        let (_, listed) = app.get("/api/v1/webhooks").await;
        assert_eq!(listed["webhooks"], json!([]), "nothing registered");
    })
    .await;
}

#[tokio::test]
async fn health_reports_backend_and_size() {
    sqlite("health", |t| async move {
        let app = spawn_app(&t).await;
        let (status, body) = app.get("/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({
                "status": "ok",
                "backend": "sqlite",
                "writer": {"state": "writing"},
                "tree_size": app.setup
            })
        );
    })
    .await;
}

/// A full disk: appends answer 503 and write nothing, `/healthz` answers 503 with when the
/// writer began failing (its error only to signed-in callers); once space returns,
/// `/healthz` turns 200 by itself (it probes the writer) and appends succeed, all without
/// a restart. On both stores.
async fn full_disk_story(target: Target) {
    let (store, drill) = target.open_with_disk_drill().await;
    let backend = store.backend();
    let app = Arc::new(Autolog::from_parts(
        store,
        SigningKey::from_bytes(&[42u8; 32]),
    ));
    let user =
        autolog_test_support::person(&app, "P-0001", &autolog_test_support::every_role()).await;
    let setup = app.store().head().await.expect("head").position;
    let addr = crate::common::serve_on_loopback(app.clone(), Duration::from_millis(200)).await;
    let app = TestApp {
        base: format!("http://{addr}"),
        client: user.client(),
        app,
        setup,
    };
    let anonymous = reqwest::Client::new();
    let note = |i: usize| {
        let mut event = site_event(
            &format!("disk-{i}"),
            "2026-03-02T09:00:00+01:00[Europe/Paris]",
            "x",
        );
        event["stream"] = json!(format!("note/disk-{i}"));
        event["body"]["data"]["text"] = json!("y".repeat(3_000));
        event
    };
    let batch = |from: usize| Value::Array((from..from + 50).map(note).collect());

    drill.fill().await;
    let (status, body) = app.post_json(&batch(0)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    let (status, health) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["status"], "failing");
    assert_eq!(health["writer"]["state"], "failing");
    assert!(health["writer"]["since"].is_string(), "{health}");
    let error = health["writer"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("full") || error.contains("No space"),
        "{health}"
    );
    let r = anonymous
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let seen: Value = r.json().await.expect("json");
    assert!(seen["writer"].get("error").is_none(), "{seen}");
    assert!(seen.get("tree_size").is_none(), "{seen}");
    assert_eq!(app.tree_size().await, 0, "nothing written on a full disk");

    drill.free().await;
    let (status, health) = app.get("/healthz").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "no append needed to see the writer back: {health}"
    );
    assert_eq!(health["writer"], json!({"state": "writing"}));
    let (status, body) = app.post_json(&batch(100)).await;
    assert_eq!(status, StatusCode::CREATED, "{backend}: {body}");
    assert_eq!(app.tree_size().await, 50);
}

#[tokio::test]
async fn a_full_disk_answers_503_and_the_writer_recovers_on_sqlite() {
    run_on(Backend::Sqlite, "full_disk", full_disk_story).await;
}

#[tokio::test]
async fn a_full_disk_answers_503_and_the_writer_recovers_on_postgres() {
    run_on(Backend::Postgres, "full_disk", full_disk_story).await;
}

#[tokio::test]
async fn append_then_read_back_and_duplicates_are_idempotent() {
    sqlite("append", |t| async move {
        let app = spawn_app(&t).await;
        let ev = site_event("A-1", "2026-03-02T09:00:00+01:00[Europe/Paris]", "Paris");
        let (status, body) = app.post_json(&ev).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["status"], "appended");
        let event = &body["event"];
        assert_eq!(event["seq"], 1);
        assert_eq!(event["position"], app.setup + 1);
        assert_eq!(event["occurred_at"], json!({"instant": "2026-03-02T08:00:00.000000Z", "zone": "Europe/Paris", "offset": "+01:00"}));
        let id = event["event_id"].as_str().expect("id");

        let (status, mut got) = app.get(&format!("/api/v1/events/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        let display = got
            .as_object_mut()
            .and_then(|o| o.remove("occurred_at_display"))
            .expect("a read shows the time for people");
        assert_eq!(
            display,
            json!({"utc": "2026-03-02T08:00:00.000000Z", "local": "2026-03-02T09:00:00+01:00[Europe/Paris]"})
        );
        assert_eq!(&got, event);

        let (status, again) = app.post_json(&ev).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["status"], "duplicate");
        assert_eq!(&again["event"], event);
        assert_eq!(app.tree_size().await, 1);

        let (status, state) = app.get("/api/v1/streams/note/S-PAR-01").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(state["state"], json!({"annotations": [{"text": "Paris"}]}));
        let (status, _) = app.get("/api/v1/streams/site/NOPE").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn a_batch_is_atomic() {
    sqlite("batch", |t| async move {
        let app = spawn_app(&t).await;
        let good = json!([
            site_event("B-1", "2026-03-02T09:00:00+01:00[Europe/Paris]", "One"),
            site_event("B-2", "2026-03-03T09:00:00+01:00[Europe/Paris]", "Two"),
        ]);
        let (status, body) = app.post_json(&good).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body["appended"], 2);
        let mut bad = site_event("B-4", "2026-03-04T09:00:00", "Four");
        bad["reason"] = json!("x");
        let batch = json!([
            site_event("B-3", "2026-03-04T09:00:00+01:00[Europe/Paris]", "Three"),
            bad
        ]);
        let (status, body) = app.post_json(&batch).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "[1].occurred_at");
        assert_eq!(
            app.tree_size().await,
            2,
            "nothing of the refused batch was written"
        );
    })
    .await;
}

/// Each kind of bad input: status, the field named, and nothing written.
#[tokio::test]
async fn bad_input_is_refused_with_field_value_and_rule() {
    sqlite("bad_input", |t| async move {
        let app = spawn_app(&t).await;
        let ok = site_event("C-1", "2026-03-02T09:00:00+01:00[Europe/Paris]", "Paris");
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v = ok.clone();
            f(&mut v);
            v.to_string()
        };
        let cases: Vec<(&str, String, StatusCode, &str)> = vec![
            (
                "malformed JSON",
                "{\"stream\": \"site/x\",".into(),
                StatusCode::BAD_REQUEST,
                "request",
            ),
            (
                "not an object",
                "\"hello\"".into(),
                StatusCode::BAD_REQUEST,
                "request",
            ),
            (
                "a key given twice",
                ok.to_string()
                    .replacen('{', "{\"stream\": \"site/other\", ", 1),
                StatusCode::BAD_REQUEST,
                "request",
            ),
            (
                "missing field",
                edit(&|v| {
                    v.as_object_mut().expect("obj").remove("source");
                }),
                StatusCode::BAD_REQUEST,
                "source",
            ),
            (
                "an actor other than the sender",
                edit(&|v| {
                    v["actor"] = json!("person/P-0002");
                }),
                StatusCode::FORBIDDEN,
                "actor",
            ),
            (
                "unknown field",
                edit(&|v| {
                    v["colour"] = json!("red");
                }),
                StatusCode::BAD_REQUEST,
                "colour",
            ),
            (
                "ledger field",
                edit(&|v| {
                    v["seq"] = json!(7);
                }),
                StatusCode::BAD_REQUEST,
                "seq",
            ),
            (
                "unknown event type",
                edit(&|v| {
                    v["body"]["type"] = json!("site.teleported");
                }),
                StatusCode::BAD_REQUEST,
                "body.type",
            ),
            (
                "unknown version",
                edit(&|v| {
                    v["body"]["version"] = json!(9);
                }),
                StatusCode::BAD_REQUEST,
                "body.version",
            ),
            (
                "unknown payload field",
                edit(&|v| {
                    v["body"]["data"]["beds"] = json!(3);
                }),
                StatusCode::BAD_REQUEST,
                "body.data.beds",
            ),
            (
                "time without offset",
                edit(&|v| {
                    v["occurred_at"] = json!("2026-03-02T09:00:00[Europe/Paris]");
                }),
                StatusCode::BAD_REQUEST,
                "occurred_at",
            ),
            (
                "impossible time",
                edit(&|v| {
                    v["occurred_at"] = json!("2026-02-30T09:00:00+01:00[Europe/Paris]");
                }),
                StatusCode::BAD_REQUEST,
                "occurred_at",
            ),
            (
                "offset contradicts zone",
                edit(&|v| {
                    v["occurred_at"] = json!("2026-03-02T09:00:00+05:00[Europe/Paris]");
                }),
                StatusCode::BAD_REQUEST,
                "occurred_at",
            ),
            (
                "future time",
                edit(&|v| {
                    v["occurred_at"] = json!("2099-01-01T00:00:00+01:00[Europe/Paris]");
                }),
                StatusCode::BAD_REQUEST,
                "occurred_at",
            ),
            (
                "correction without reason",
                edit(&|v| {
                    v["corrects"] = json!("0192f1c3-0000-7000-8000-000000000000");
                }),
                StatusCode::BAD_REQUEST,
                "reason",
            ),
            (
                "correction of nothing",
                edit(&|v| {
                    v["corrects"] = json!("0192f1c3-0000-7000-8000-000000000000");
                    v["reason"] = json!("typo");
                }),
                StatusCode::BAD_REQUEST,
                "corrects",
            ),
            (
                "empty batch",
                "[]".into(),
                StatusCode::BAD_REQUEST,
                "request",
            ),
            (
                "body over the size limit",
                format!("{{\"stream\": \"{}\"}}", "x".repeat(MAX_REQUEST_BYTES)),
                StatusCode::PAYLOAD_TOO_LARGE,
                "request",
            ),
        ];
        for (what, body, status, field) in cases {
            let (got, answer) = app.post(body).await;
            assert_eq!(got, status, "{what}: {answer}");
            let error = &answer["error"];
            assert_eq!(error["field"], field, "{what}: {answer}");
            assert!(
                error["rule"].as_str().is_some_and(|r| !r.is_empty()),
                "{what}: a rule is given"
            );
            assert!(error["value"].is_string(), "{what}: the value is echoed");
        }
        // Nothing but the forged actor's refusal, in the sender's own access audit.
        let audit = app
            .app
            .store()
            .stream_events("access-audit/person/P-0001", autolog_domain::Instant::MAX)
            .await
            .expect("audit");
        assert_eq!(audit.len(), 1, "{audit:?}");
        assert_eq!(audit[0].body.data["field"], "actor");
        assert_eq!(app.tree_size().await, 1, "no bad input wrote anything else");

        let (status, answer) = app.get("/api/v1/events?valid_at=2026-03-02T09:00:00").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["error"]["field"], "valid_at");
        let (status, answer) = app.get("/api/v1/events?colour=red").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["error"]["field"], "colour");
        assert_eq!(answer["error"]["rule_code"], "unknown", "{answer}");
        let (status, answer) = app.get("/api/v1/events?limit=5&limit=6").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            (&answer["error"]["field"], &answer["error"]["rule_code"]),
            (&json!("limit"), &json!("repeated")),
            "{answer}"
        );
        let (status, answer) = app.get("/api/v1/proofs/consistency?from=1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            (&answer["error"]["field"], &answer["error"]["rule_code"]),
            (&json!("to"), &json!("required")),
            "{answer}"
        );
        let (status, answer) = app.get("/api/v1/events?limit=5000").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["error"]["field"], "limit");
        let (status, answer) = app.get("/api/v1/events/not-a-uuid").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["error"]["field"], "event_id");
        let (status, _) = app.get("/api/v1/no-such-route").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn reads_as_of_known_at_survive_corrections() {
    sqlite("bitemporal", |t| async move {
        let app = spawn_app(&t).await;
        let (_, first) = app
            .post_json(&site_event(
                "D-1",
                "2026-03-02T09:00:00+01:00[Europe/Paris]",
                "Paris Nrod",
            ))
            .await;
        let k1 = first["event"]["recorded_at"]
            .as_str()
            .expect("recorded_at")
            .to_string();
        let mut fix = site_event(
            "D-2",
            "2026-03-02T09:00:00+01:00[Europe/Paris]",
            "Paris Nord",
        );
        fix["corrects"] = json!({"system": "console", "source_event_id": "D-1"});
        fix["reason"] = json!("typo in the site name");
        let (status, corrected) = app.post_json(&fix).await;
        assert_eq!(status, StatusCode::CREATED, "{corrected}");
        assert_eq!(corrected["event"]["corrects"], first["event"]["event_id"]);

        let (_, now) = app.get("/api/v1/streams/note/S-PAR-01").await;
        assert_eq!(now["state"]["annotations"][0]["text"], "Paris Nord");
        let (_, then) = app
            .get(&format!("/api/v1/streams/note/S-PAR-01?known_at={k1}"))
            .await;
        assert_eq!(
            then["state"]["annotations"][0]["text"], "Paris Nrod",
            "what was known at K1 is unchanged"
        );
        let (_, before) = app
            .get("/api/v1/streams/note/S-PAR-01?valid_at=2026-03-01T00:00:00Z")
            .await;
        assert_eq!(before["event_count"], 0);

        let (_, listed) = app.get("/api/v1/events?stream=note/S-PAR-01").await;
        let events = listed["events"].as_array().expect("events");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["superseded_by"], corrected["event"]["event_id"]);
        let (_, listed_then) = app
            .get(&format!(
                "/api/v1/events?stream=note/S-PAR-01&known_at={k1}"
            ))
            .await;
        let events_then = listed_then["events"].as_array().expect("events");
        assert_eq!(events_then.len(), 1);
        assert!(events_then[0].get("superseded_by").is_none());
    })
    .await;
}

fn hex32(v: &Value) -> [u8; 32] {
    let bytes = hex_decode(v.as_str().expect("hex string"));
    bytes.try_into().expect("32 bytes")
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test]
async fn proofs_and_checkpoints_verify_offline() {
    sqlite("proofs", |t| async move {
        let app = spawn_app(&t).await;
        // The server may already have signed a checkpoint of the test user's set-up
        // (its loop signs at start when the ledger is not empty): any checkpoint covers at
        // most what was committed.
        let (status, early) = app.get("/api/v1/checkpoints/latest").await;
        if status == StatusCode::OK {
            assert!(early["tree_size"].as_u64().expect("size") <= app.setup);
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND);
        }
        let mut ids = Vec::new();
        for i in 0..11 {
            let (_, body) = app
                .post_json(&site_event(
                    &format!("E-{i}"),
                    "2026-03-02T09:00:00+01:00[Europe/Paris]",
                    &format!("n{i}"),
                ))
                .await;
            ids.push(body["event"]["event_id"].as_str().expect("id").to_string());
        }
        app.app.checkpoint_if_grown().await.expect("checkpoint");
        let s = app.setup;
        let (status, cp) = app.get("/api/v1/checkpoints/latest").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cp["tree_size"], s + 11);
        let (_, key) = app.get("/api/v1/key").await;
        let public =
            autolog_domain::VerifyingKey::from_bytes(&hex32(&key["public_key"])).expect("key");
        assert_eq!(
            cp["signed_text"]
                .as_str()
                .map(|t| t.starts_with("autolog-checkpoint/v2\n")),
            Some(true),
            "{cp}"
        );
        let checkpoint =
            autolog_domain::ledger::checkpoint::checkpoint_from_json(&cp).expect("a checkpoint");
        assert_eq!(checkpoint.tree_size, s + 11);
        assert_eq!(checkpoint.root, hex32(&cp["root"]));
        checkpoint
            .verify_signature(&public)
            .expect("checkpoint signature verifies");

        for (i, id) in ids.iter().enumerate() {
            let (status, p) = app.get(&format!("/api/v1/proofs/inclusion/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{p}");
            assert_eq!(p["leaf_index"], s + i as u64);
            let path: Vec<[u8; 32]> = p["path"]
                .as_array()
                .expect("path")
                .iter()
                .map(hex32)
                .collect();
            let leaf = merkle::leaf_hash(&hex32(&p["event_hash"]));
            merkle::verify_inclusion(&leaf, s + i as u64, s + 11, &path, &checkpoint.root)
                .expect("inclusion verifies against the checkpoint");
        }
        let (_, p) = app
            .get(&format!(
                "/api/v1/proofs/inclusion/{}?tree_size={}",
                ids[2],
                s + 5
            ))
            .await;
        assert_eq!(p["tree_size"], s + 5);
        let (status, p) = app
            .get(&format!(
                "/api/v1/proofs/inclusion/{}?tree_size={}",
                ids[5],
                s + 3
            ))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "the event came later: {p}");

        let (status, c) = app
            .get(&format!(
                "/api/v1/proofs/consistency?from={}&to={}",
                s + 4,
                s + 11
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        let proof: Vec<[u8; 32]> = c["proof"]
            .as_array()
            .expect("proof")
            .iter()
            .map(hex32)
            .collect();
        merkle::verify_consistency(
            s + 4,
            s + 11,
            &hex32(&c["from_root"]),
            &checkpoint.root,
            &proof,
        )
        .expect("consistency verifies");
        for bad in ["from=0&to=3", "from=5&to=4", "to=3", "from=x&to=3"] {
            let (status, e) = app.get(&format!("/api/v1/proofs/consistency?{bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {e}");
        }
        // A tree larger than the ledger does not exist (yet).
        let (status, e) = app
            .get(&format!("/api/v1/proofs/consistency?from=1&to={}", s + 12))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
        assert!(e.to_string().contains("Merkle tree"), "{e}");
        let (status, _) = app
            .get("/api/v1/proofs/inclusion/0192f1c3-0000-7000-8000-000000000000")
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn openapi_describes_every_route() {
    let doc: Value = serde_json::from_str(autolog_server::openapi_document()).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let documented: Vec<&str> = doc["components"]["schemas"]["EventType"]["enum"]
        .as_array()
        .expect("enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let catalogue: Vec<&str> = autolog_domain::catalogue::EVENT_TYPES
        .iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        documented, catalogue,
        "the OpenAPI enum lists exactly the event type catalogue"
    );
    let rule_codes: Vec<&str> = doc["components"]["schemas"]["RuleCode"]["enum"]
        .as_array()
        .expect("rule_code enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let defined: Vec<&str> = autolog_domain::error::CODES
        .iter()
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(
        rule_codes, defined,
        "the OpenAPI enum lists exactly the field errors' codes"
    );
    for path in [
        "/healthz",
        "/api/openapi.json",
        "/api/v1/events",
        "/api/v1/events/{event_id}",
        "/api/v1/streams/{stream}",
        "/api/v1/proofs/inclusion/{event_id}",
        "/api/v1/proofs/consistency",
        "/api/v1/checkpoints/latest",
        "/api/v1/key",
        "/api/v1/reference/resolve",
        "/api/v1/reference/alignment",
        "/api/v1/reference/export",
        "/api/v1/reference/import",
        "/api/v1/reference/{registry}",
        "/api/v1/chains",
        "/api/v1/chains/{coi}",
        "/api/v1/reconciliation",
        "/api/v1/alerts",
        "/api/v1/alerts/stream",
        "/api/v1/alerts/{alert_id}",
        "/api/v1/alerts/{alert_id}/acknowledge",
        "/api/v1/alerts/{alert_id}/resolve",
        "/api/v1/webhooks",
        "/api/v1/webhooks/{webhook_id}",
        "/api/v1/webhooks/{webhook_id}/deactivate",
        "/api/v1/genealogy/backward/{unit}",
        "/api/v1/genealogy/forward/{lot}",
        "/api/v1/turnaround",
        "/api/v1/retention",
        "/api/v1/signals",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    sqlite("openapi", |t| async move {
        let app = spawn_app(&t).await;
        let (status, served) = app.get("/api/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(served["info"]["title"], "Autolog API");
    })
    .await;
}

#[tokio::test]
async fn postgres_backend_serves_the_same_api() {
    run_on(Backend::Postgres, "postgres_api", |t| async move {
        let app = spawn_app(&t).await;
        let (status, body) = app
            .post_json(&site_event(
                "P-1",
                "2026-03-02T09:00:00+01:00[Europe/Paris]",
                "Paris",
            ))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, health) = app.get("/healthz").await;
        assert_eq!(health["backend"], "postgres");
        let (status, _) = app
            .post_json(&json!([site_event("P-2", "2026-03-02T09:00:00", "x")]))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(app.tree_size().await, 1);
    })
    .await;
}

fn examples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reference")
}

impl TestApp {
    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let r = req.send().await.expect("request");
        let status = r.status();
        (status, r.json().await.expect("json answer"))
    }

    async fn import(&self, query: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let req = self
            .client
            .post(format!("{}/api/v1/reference/import{query}", self.base))
            .header("content-type", content_type)
            .body(body);
        self.send(req).await
    }

    /// Imports examples/reference file by file, in file-name order, over HTTP.
    async fn import_examples(&self) {
        let mut files: Vec<_> = std::fs::read_dir(examples_dir())
            .expect("examples/reference")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for path in files {
            let name = path.file_stem().and_then(|s| s.to_str()).expect("name");
            let registry = name.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
            let content_type = if path.extension().is_some_and(|e| e == "csv") {
                "text/csv"
            } else {
                "application/json"
            };
            let body = std::fs::read(&path).expect("read example");
            let (status, report) = self
                .import(&format!("?registry={registry}"), content_type, body)
                .await;
            assert_eq!(status, StatusCode::CREATED, "{}: {report}", path.display());
        }
    }
}

#[tokio::test]
async fn the_example_network_imports_exports_and_reimports_identically() {
    sqlite("network", |t| async move {
        let app = spawn_app(&t).await;
        app.import_examples().await;
        let (status, export) = app.get("/api/v1/reference/export").await;
        assert_eq!(status, StatusCode::OK, "{export}");
        let sites = export["sites"].as_array().expect("sites");
        let zones: std::collections::HashSet<&str> = sites
            .iter()
            .filter_map(|s| s["time_zone"].as_str())
            .collect();
        assert!(sites.len() >= 4 && zones.len() >= 4, "{zones:?}");
        let systems: std::collections::HashSet<&str> = export["crosswalks"]
            .as_array()
            .expect("crosswalks")
            .iter()
            .filter_map(|c| c["system"].as_str())
            .collect();
        assert!(systems.len() >= 3, "{systems:?}");

        // Into a fresh ledger, and out again: the same document.
        let dir = tempfile::tempdir().expect("tempdir");
        let other = spawn_app(&Target::Sqlite(dir.path().join("copy.db"))).await;
        let (status, report) = other
            .import("", "application/json", export.to_string().into_bytes())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{report}");
        let (_, again) = other.get("/api/v1/reference/export").await;
        assert_eq!(again, export, "lossless round trip");

        // Importing the same document again changes nothing.
        let size = app.tree_size().await;
        let (status, report) = app
            .import(
                "?dry_run=true",
                "application/json",
                export.to_string().into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["unchanged"], report["rows"]);
        let (status, _) = app
            .import("", "application/json", export.to_string().into_bytes())
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.tree_size().await, size);

        // CSV of one registry.
        let r = app
            .client
            .get(format!(
                "{}/api/v1/reference/export?format=csv&registry=sites",
                app.base
            ))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/csv"));
        let csv = r.text().await.expect("csv");
        assert!(
            csv.starts_with("site_id,name,site_types,time_zone,"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), sites.len() + 1);

        // Crosswalk pages hold at most `limit` mappings, and following next_after lists
        // every mapping once.
        let mut seen = Vec::new();
        let mut after = String::new();
        loop {
            let (status, page) = app
                .get(&format!("/api/v1/reference/crosswalks?limit=3&valid_at=2026-06-01T00:00:00Z&after={after}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let records = page["records"].as_array().expect("records");
            assert!(records.len() <= 3);
            seen.extend(records.iter().map(|r| r["event_id"].clone()));
            match page["next_after"].as_str() {
                Some(next) => after = next.replace('#', "%23"),
                None => break,
            }
        }
        let all = export["crosswalks"].as_array().map_or(0, Vec::len);
        let distinct: std::collections::HashSet<String> = seen.iter().map(Value::to_string).collect();
        assert_eq!((seen.len(), distinct.len()), (all, all));
        let (status, e) = app.get("/api/v1/reference/crosswalks?after=crosswalk/x%23y").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(e["error"]["field"], "after");

        // Filters on registry reads.
        let (status, listed) = app
            .get("/api/v1/reference/sites?filter.site_types=treatment_center&filter.status=active")
            .await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        let ids: Vec<&str> = listed["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|r| r["state"]["site_id"].as_str())
            .collect();
        assert_eq!(ids, vec!["S-LAX-01", "S-LHI-01"]);
        let (status, listed) = app
            .get("/api/v1/reference/personnel?filter.qualifications.site_id=S-BOS-01")
            .await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<&str> = listed["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter_map(|r| r["state"]["person_id"].as_str())
            .collect();
        assert_eq!(ids, vec!["P-0002", "P-0008"]);
        let (status, e) = app.get("/api/v1/reference/sites?colour=red").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(e["error"]["field"], "colour");
        let (status, listed) = app.get("/api/v1/reference/products").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            listed["records"][0]["state"]["process"]["windows"][2]["max_minutes"],
            30
        );
    })
    .await;
}

#[tokio::test]
async fn a_bad_import_lists_every_bad_row_and_writes_nothing() {
    sqlite("bad_import", |t| async move {
        let app = spawn_app(&t).await;
        app.import_examples().await;
        let size = app.tree_size().await;
        let csv = "site_id,name,site_types,time_zone,gln\n\
                   S-NEW-01,New,treatment_center,Europe/Paris,4012345000009\n\
                   S-NEW-02,Bad GLN,treatment_center,Europe/Paris,4012345000008\n\
                   S-NEW-03,Bad zone,treatment_center,Mars/Olympus,\n\
                   S-NEW-01,Twice,treatment_center,Europe/Paris,\n";
        let (status, report) = app
            .import("?registry=sites", "text/csv", csv.as_bytes().to_vec())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{report}");
        let bad: Vec<(u64, &str)> = report["bad_rows"]
            .as_array()
            .expect("bad rows")
            .iter()
            .map(|b| {
                (
                    b["line"].as_u64().unwrap_or(0),
                    b["column"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(bad, vec![(3, "gln"), (4, "time_zone"), (5, "site_id")]);
        assert!(
            report["bad_rows"][0]["rule"]
                .as_str()
                .is_some_and(|r| r.contains("check digit")),
            "{report}"
        );
        assert_eq!(app.tree_size().await, size, "nothing written");

        let crosswalks = "system,kind,local_code,canonical_id,valid_from\n\
                          mes-bos,site,BOS1,S-LAX-01,2026-06-01T00:00:00Z\n\
                          nosys,site,X,S-BOS-01,2026-01-01T00:00:00Z\n\
                          mes-bos,site,BOS7,S-NOPE,2026-01-01T00:00:00Z\n";
        let (status, report) = app
            .import(
                "?registry=crosswalks",
                "text/csv",
                crosswalks.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{report}");
        let rules: Vec<&str> = report["bad_rows"]
            .as_array()
            .expect("bad rows")
            .iter()
            .filter_map(|b| b["rule"].as_str())
            .collect();
        assert!(
            rules[0].contains("S-BOS-01") && rules[0].contains("overlaps"),
            "{rules:?}"
        );
        assert!(rules[1].contains("source-system/nosys"), "{rules:?}");
        assert!(rules[2].contains("site/S-NOPE"), "{rules:?}");

        let (status, e) = app
            .import("", "application/json", b"{\"sites\": [".to_vec())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert!(e["bad_rows"][0]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("well-formed")));
        let (status, e) = app
            .import("?registry=planets", "text/csv", b"a\n".to_vec())
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        let (status, e) = app.import("", "text/plain", b"hello".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(e["error"]["field"], "Content-Type");
        let huge = vec![b' '; autolog_app::MAX_IMPORT_BYTES + 1];
        let (status, e) = app.import("?registry=sites", "text/csv", huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
        assert_eq!(app.tree_size().await, size, "nothing written");
    })
    .await;
}

#[tokio::test]
async fn local_codes_resolve_and_offsets_are_checked_against_the_site_zone() {
    sqlite("resolve", |t| async move {
        let app = spawn_app(&t).await;
        app.import_examples().await;
        let (status, body) = app.get("/api/v1/reference/resolve?system=mes-bos&kind=site&code=BOS1").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["canonical_id"], "S-BOS-01");
        for _ in 0..2 {
            let (status, body) = app.get("/api/v1/reference/resolve?system=mes-bos&kind=site&code=NOPE").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("mes-bos") && message.contains("site") && message.contains("NOPE"), "{body}");
        }
        let (status, body) = app.get("/api/v1/reference/resolve?system=mes-bos&code=BOS1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "kind");
        let (status, listed) = app.get("/api/v1/reference/crosswalks?filter.system=mes-bos&filter.kind=site").await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert_eq!(listed["records"][0]["state"]["canonical_id"], "S-BOS-01");
        let (status, e) = app.get("/api/v1/reference/planets").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(e["error"]["field"], "registry");
        let overlapping = json!({
            "stream": "crosswalk/mes-bos/site",
            "occurred_at": "2026-01-01T00:00:00+00:00[UTC]",
            "actor": "person/P-0001",
            "source": {"system": "console", "source_event_id": "m2"},
            "body": {"type": "crosswalk.mapped", "version": 1,
                     "data": {"system": "mes-bos", "kind": "site", "local_code": "BOS1", "canonical_id": "S-LAX-01", "valid_from": "2026-06-01T00:00:00Z"}}
        });
        let (status, body) = app.post_json(&overlapping).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["error"]["rule"].as_str().is_some_and(|r| r.contains("S-BOS-01")), "{body}");

        // An event recorded at Boston with a Paris offset: kept, and flagged.
        let note = |id: &str, occurred: &str, site: &str| json!({
            "stream": "site/S-BOS-01",
            "occurred_at": occurred,
            "actor": "person/P-0001",
            "site": site,
            "source": {"system": "console", "source_event_id": id},
            "body": {"type": "annotation.recorded", "version": 1, "data": {"text": "freezer door alarm"}}
        });
        let (status, body) = app.post_json(&note("n1", "2026-03-09T15:00:00-04:00[America/New_York]", "S-BOS-01")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(body.get("flags").is_none(), "EDT on 2026-03-09 is right: {body}");
        let (status, body) = app.post_json(&note("n2", "2026-03-09T20:00:00+01:00[Europe/Paris]", "S-BOS-01")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let flag = &body["flags"][0]["body"]["data"];
        assert_eq!(flag["expected_offset"], "-04:00", "{body}");
        assert_eq!(flag["recorded_offset"], "+01:00");
        assert_eq!(flag["event_id"], body["event"]["event_id"]);
        let id = body["event"]["event_id"].as_str().expect("id");
        let (_, read) = app.get(&format!("/api/v1/events/{id}")).await;
        assert_eq!(
            read["occurred_at_display"],
            json!({"utc": "2026-03-09T19:00:00.000000Z",
                   "local": "2026-03-09T20:00:00+01:00[Europe/Paris]",
                   "site_zone": "America/New_York",
                   "site_local": "2026-03-09T15:00:00-04:00[America/New_York]"}),
            "shown in UTC, as recorded, and in the site's local time"
        );
        let (status, body) = app.post_json(&note("n3", "2026-03-09T20:00:00+01:00[Europe/Paris]", "S-NOWHERE")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "site");
        let mut forged = note("n4", "2026-03-09T15:00:00-04:00[America/New_York]", "S-BOS-01");
        forged["body"] = json!({"type": "time_zone.discrepancy_flagged", "version": 1, "data": {}});
        let (status, body) = app.post_json(&forged).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["field"], "body.type");

        let (status, report) = app.get("/api/v1/reference/alignment").await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["unmapped_codes"], json!([{"system": "mes-bos", "kind": "site", "count": 2,
            "codes": [{"code": "NOPE", "count": 2, "first_seen": report["unmapped_codes"][0]["codes"][0]["first_seen"],
                       "last_seen": report["unmapped_codes"][0]["codes"][0]["last_seen"]}]}]));
        assert_eq!(report["time_zone_discrepancies"][0]["site_id"], "S-BOS-01");
        let (status, e) = app.get("/api/v1/reference/alignment?horizon_days=99999").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(e["error"]["field"], "horizon_days");
    })
    .await;
}

#[tokio::test]
async fn enrolment_over_http_accepts_an_upstream_coi_once() {
    sqlite("enrol", |t| async move {
        let app = spawn_app(&t).await;
        app.import_examples().await;
        let coi = autolog_domain::identifiers::Coi::parse("coi", "&/CHA999926000777")
            .expect("coi")
            .to_string();
        let body = |id: &str, coi: Option<&str>| {
            let mut v = json!({
                "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]",
                "actor": "person/P-0001", "site": "S-LAX-01",
                "source": {"system": "console", "source_event_id": id},
                "patient_key": "PK-0001", "product_code": "CART-19", "treatment_site_id": "S-LAX-01"
            });
            if let Some(coi) = coi {
                v["coi"] = json!(coi);
                v["upstream_system"] = json!("emr-lax");
            }
            v.to_string()
        };
        let post = |b: String| {
            app.send(
                app.client
                    .post(format!("{}/api/v1/chains", app.base))
                    .header("content-type", "application/json")
                    .body(b),
            )
        };
        let (status, answer) = post(body("e-1", Some(&coi))).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["coi"], coi);
        assert_eq!(answer["event"]["stream"], format!("coi/{coi}"));
        let (status, answer) = post(body("e-2", Some(&coi))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["field"], "coi");
        let (status, chain) = app.get(&format!("/api/v1/chains/{coi}")).await;
        assert_eq!(status, StatusCode::OK, "{chain}");
        assert_eq!(
            (chain["state"].as_str(), chain["patient_key"].as_str()),
            (Some("enrolled"), Some("PK-0001"))
        );
        let (status, _) = app.get("/api/v1/chains/CHA999926000778X").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let other =
            autolog_domain::identifiers::Coi::parse("coi", "&/CHA999926000778").expect("coi");
        let (status, _) = app.get(&format!("/api/v1/chains/{other}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, answer) = post(body("e-3", None)).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "no issuer FIN configured: {answer}"
        );
        assert_eq!(answer["error"]["field"], "coi");
    })
    .await;
}
