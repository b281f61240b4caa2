//! Helpers for tests that talk to a real server: accounts with roles, sign-in with a
//! computed TOTP code, API tokens, and reqwest headers carrying the credentials.
#![forbid(unsafe_code)]

pub mod nats;

use std::io::Write as _;
use std::process::{Command, Stdio};

use autolog_app::{totp_code, totp_key, totp_step, Autolog};
use autolog_domain::access::{EVERY_SITE, ROLES};
use autolog_domain::Instant;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE};
use serde_json::{json, Value};

/// Every test account's password (also its e-signature secret).
pub const PASSWORD: &str = "correct horse battery staple";
/// Who administers the test accounts, for the record.
pub const ADMIN: &str = "person/P-ADMIN";

/// What a request carries to authenticate as someone.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub actor: String,
    pub headers: HeaderMap,
}

impl Credentials {
    /// A console session: the cookie, and the CSRF token for unsafe requests.
    pub fn session(actor: &str, session: &str, csrf: &str) -> Credentials {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("autolog_session={session}")).expect("cookie"),
        );
        headers.insert("x-csrf-token", HeaderValue::from_str(csrf).expect("csrf"));
        Credentials {
            actor: actor.to_string(),
            headers,
        }
    }

    /// An API token.
    pub fn token(actor: &str, token: &str) -> Credentials {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("token"),
        );
        Credentials {
            actor: actor.to_string(),
            headers,
        }
    }

    /// A reqwest client that sends these credentials with every request.
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().expect("client")
    }

    /// A reqwest client builder that already sends these credentials with every request
    /// (for a client that needs more settings, e.g. a timeout).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().default_headers(self.headers.clone())
    }
}

/// Every role at every site: for tests of something other than access control.
pub fn every_role() -> Vec<(&'static str, &'static str)> {
    ROLES.iter().map(|r| (r.as_str(), EVERY_SITE)).collect()
}

/// The current TOTP code of a base32 key.
pub fn current_totp(secret: &str) -> String {
    totp_at(secret, Instant::now())
}

/// The TOTP code at `now` (an app's own clock, which a test may have shifted).
pub fn totp_at(secret: &str, now: Instant) -> String {
    let key = totp_key(secret).expect("base32 TOTP key");
    totp_code(&key, totp_step(now)).expect("TOTP code")
}

/// The `personnel.registered` event (a request body of POST /api/v1/events, or one line
/// for `autolog ingest`) that registers a test person, recorded by [`ADMIN`].
pub fn person_registration(person_id: &str) -> Value {
    json!({
        "stream": format!("person/{person_id}"),
        "occurred_at": "2026-01-01T00:00:00+00:00[UTC]",
        "actor": ADMIN,
        "source": {"system": "test-support", "source_event_id": format!("person-{person_id}")},
        "body": {"type": "personnel.registered", "version": 1,
                 "data": {"person_id": person_id, "printed_name": format!("Test User {person_id}")}}
    })
}

/// Registers the person in the personnel registry if the ledger does not know them.
pub async fn ensure_person(app: &Autolog, person_id: &str) {
    let known = app
        .stream_state(&format!("person/{person_id}"), None, None)
        .await
        .ok()
        .is_some_and(|s| s.state["person_id"] == json!(person_id));
    if known {
        return;
    }
    let event = person_registration(person_id);
    app.append_json(event.to_string().as_bytes())
        .await
        .expect("register the test person");
}

/// A signed-in person with the given grants (role, site), in process. Creates the
/// account (or gives it a fresh second factor if it exists) and signs in.
pub async fn person(app: &Autolog, person_id: &str, grants: &[(&str, &str)]) -> Credentials {
    ensure_person(app, person_id).await;
    let secret = if app.user(person_id).await.is_ok() {
        app.reset_second_factor(person_id, ADMIN)
            .await
            .expect("reset second factor")
            .totp_secret
    } else {
        app.create_user(person_id, PASSWORD, ADMIN)
            .await
            .expect("create user")
            .totp_secret
    };
    for (role, site) in grants {
        app.grant_role(person_id, role, site, ADMIN)
            .await
            .expect("grant");
    }
    let signed_in = app
        .sign_in(person_id, PASSWORD, &totp_at(&secret, app.now()), None)
        .await
        .expect("sign in");
    Credentials::session(
        &format!("person/{person_id}"),
        &signed_in.session,
        &signed_in.csrf,
    )
}

/// A token for a registered source system at the given sites (empty: its owning site).
pub async fn system(app: &Autolog, system_id: &str, sites: &[&str]) -> Credentials {
    let sites: Vec<String> = sites.iter().map(|s| s.to_string()).collect();
    let issued = app
        .issue_token(system_id, &sites, None, ADMIN)
        .await
        .expect("issue token");
    Credentials::token(&format!("system/{system_id}"), &issued.token)
}

/// Creates a console account with the CLI, as an operator does before starting a
/// server: `autolog user create <person> --actor person/P-ADMIN` with [`PASSWORD`] on
/// stdin, then `autolog user grant <person> <role> <site> --actor person/P-ADMIN` for each
/// grant. `autolog` gives a fresh command for the binary on the right data directory (and
/// database); the person must already be registered (personnel reference data). Returns
/// the TOTP secret `user create` printed, for [`sign_in_http`].
pub fn create_user_cli(
    autolog: impl Fn() -> Command,
    person_id: &str,
    grants: &[(&str, &str)],
) -> String {
    let mut child = autolog()
        .args(["user", "create", person_id, "--actor", ADMIN])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run autolog user create");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("autolog user create");
    assert!(
        out.status.success(),
        "autolog user create {person_id}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("user create prints JSON");
    let secret = created["totp_secret"]
        .as_str()
        .expect("user create prints the TOTP secret")
        .to_string();
    for (role, site) in grants {
        let out = autolog()
            .args(["user", "grant", person_id, role, site, "--actor", ADMIN])
            .output()
            .expect("run autolog user grant");
        assert!(
            out.status.success(),
            "autolog user grant {person_id} {role} {site}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    secret
}

/// Signs in over HTTP (a server in another process): the TOTP secret is what
/// `autolog user create` printed.
pub async fn sign_in_http(base: &str, person_id: &str, totp_secret: &str) -> Credentials {
    let answer = reqwest::Client::new()
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"person_id": person_id, "password": PASSWORD, "totp": current_totp(totp_secret)}))
        .send()
        .await
        .expect("sign-in request");
    assert_eq!(answer.status(), reqwest::StatusCode::CREATED, "sign-in");
    let cookie = answer
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.split_once('='))
        .map(|(_, v)| v.to_string())
        .expect("session cookie");
    let body: Value = answer.json().await.expect("json");
    Credentials::session(
        &format!("person/{person_id}"),
        &cookie,
        body["csrf_token"].as_str().expect("csrf"),
    )
}

/// Every event of the ledger as recorded, as one text: what a test searches to show that
/// a value (identifying data, a secret) never entered the ledger.
pub async fn ledger_text(app: &Autolog) -> String {
    let mut text = String::new();
    let mut after = 0;
    loop {
        let rows = app.store().scan(after, 500).await.expect("scan");
        let Some(last) = rows.last() else { break };
        after = last.position;
        for row in &rows {
            let event = row.event.as_ref().expect("a readable event");
            text.push_str(&event.to_json().to_string());
            text.push('\n');
        }
    }
    text
}

/// Enrols a chain for CART-19 treated at Los Angeles (S-LAX-01): the treating physician
/// P-0005's order of 2026-11-02, sent by emr-lax as `source_event_id`. Its COI.
pub async fn enrol_at_los_angeles(
    app: &Autolog,
    patient_key: &str,
    source_event_id: &str,
) -> String {
    let enrolment = json!({
        "occurred_at": "2026-11-02T09:00:00-08:00[America/Los_Angeles]",
        "actor": "person/P-0005", "site": "S-LAX-01",
        "source": {"system": "emr-lax", "source_event_id": source_event_id},
        "patient_key": patient_key, "product_code": "CART-19", "treatment_site_id": "S-LAX-01",
    });
    let (coi, _) = app
        .enrol(enrolment.to_string().as_bytes())
        .await
        .expect("enrol");
    coi
}

/// A collection at Boston on chain `coi`, which the order does not name: refused, and the
/// refusal raises an alert on the chain.
pub async fn refused_collection_at_boston(app: &Autolog, coi: &str, source_event_id: &str) {
    let din = autolog_domain::identifiers::Din::parse("din", "A999926000001").expect("DIN");
    let refused = json!({
        "stream": format!("coi/{coi}"),
        "occurred_at": "2026-11-10T12:30:00-05:00[America/New_York]",
        "actor": "person/P-0002", "site": "S-BOS-01",
        "source": {"system": "aph", "source_event_id": source_event_id},
        "body": {"type": "chain.collected", "version": 1, "data": {
            "collection_site_id": "S-BOS-01", "operator_id": "P-0002", "device_id": "APH-PAR-01",
            "started_at": "2026-11-10T08:00:00-05:00", "ended_at": "2026-11-10T12:00:00-05:00",
            "dins": [din.to_string()]}},
    });
    assert!(app
        .append_json(refused.to_string().as_bytes())
        .await
        .is_err());
}

/// Imports the example network (`examples/reference`) through the app, as the reference
/// data steward P-STEWARD, and checks that every row was accepted.
pub async fn import_examples(app: &Autolog) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reference");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("examples/reference")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    let files: Vec<autolog_app::ImportFile> = paths
        .iter()
        .map(|p| autolog_app::ImportFile {
            // The file's name, not its path: what is recorded does not depend on where
            // the checkout is.
            name: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            content: std::fs::read(p).expect("read an example file"),
            registry: None,
        })
        .collect();
    let report = app
        .import_reference(&files, "person/P-STEWARD", false, &|_| {})
        .await
        .expect("import the example network");
    assert!(report.bad_rows.is_empty(), "{:?}", report.bad_rows);
}

/// A shared data file or folder is absent: under AUTOLOG_REQUIRE_SHARED_DATA=1 (CI) the test
/// fails; elsewhere (a clone outside the project) it is skipped with a message.
pub fn shared_data_absent(path: &std::path::Path) {
    let required = std::env::var("AUTOLOG_REQUIRE_SHARED_DATA").as_deref() == Ok("1");
    assert!(
        !required,
        "{} is absent and AUTOLOG_REQUIRE_SHARED_DATA=1",
        path.display()
    );
    eprintln!(
        "skipped: {} is absent (a clone outside the project)",
        path.display()
    );
}
