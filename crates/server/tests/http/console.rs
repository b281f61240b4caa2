//! The console over HTTP, against a real server: where a request without a session goes,
//! what a console page and an API answer carry, the sign-in form's own token, CSRF on
//! every form, and polls that do not keep a session alive. (The pages themselves are
//! walked in a real browser: crates/cli/tests/console.)

use std::sync::Arc;
use std::time::Duration;

use autolog_app::{AccessSettings, AlertStatus, ShiftedClock};
use autolog_store_conformance::harness::{run_on, Backend};
use autolog_test_support::{person, Credentials};
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, Client, StatusCode};

fn client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client")
}

/// The console's cookies for an API session: the session, and its CSRF token.
fn console_cookies(who: &Credentials) -> (String, String) {
    let session = who
        .headers
        .get(COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let csrf = who
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (format!("{session}; autolog_csrf={csrf}"), csrf)
}

/// The value of `name="<field>" value="…"` in a page.
fn field_value(page: &str, field: &str) -> String {
    let marker = format!("name=\"{field}\" value=\"");
    page.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn without_a_session_the_console_asks_to_sign_in_and_the_api_answers_json() {
    run_on(Backend::Sqlite, "console_edges", |t| async move {
        let s = crate::common::spawn_app(&t, crate::common::Setup::examples()).await;
        let c = client();
        let home = c.get(format!("{}/", s.base)).send().await.expect("GET /");
        assert_eq!(home.status(), StatusCode::SEE_OTHER);
        assert_eq!(home.headers()[LOCATION], "/sign-in");
        let csp = home.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );

        let deep = c
            .get(format!(
                "{}/chains/CHA999926000001X?valid_at=2026-01-01T00:00:00Z",
                s.base
            ))
            .send()
            .await
            .expect("GET a chain");
        let to = deep.headers()[LOCATION]
            .to_str()
            .expect("location")
            .to_string();
        assert!(
            to.starts_with("/sign-in?next=/chains/CHA999926000001X%3Fvalid_at%3D"),
            "{to}"
        );

        let page = c
            .get(format!("{}/no-such-page", s.base))
            .send()
            .await
            .expect("404");
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
        assert!(page.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html"));
        let api = c
            .get(format!("{}/api/v1/no-such-route", s.base))
            .send()
            .await
            .expect("404");
        assert_eq!(api.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            api.headers()[CONTENT_SECURITY_POLICY],
            "default-src 'none'; frame-ancestors 'none'"
        );
        let body: serde_json::Value = api.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "not_found");

        let asset = c
            .get(format!("{}/assets/console-0000.css", s.base))
            .send()
            .await
            .expect("asset");
        assert_eq!(asset.status(), StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn sign_in_needs_its_form_token_and_goes_back_only_to_this_site() {
    run_on(Backend::Sqlite, "console_sign_in", |t| async move {
        let s = crate::common::spawn_app(&t, crate::common::Setup::examples()).await;
        // Creates P-C01's account; its own session is not used here.
        let _ = person(&s.app, "P-C01", &[("auditor", "*")]).await;
        let secret = s
            .app
            .reset_second_factor("P-C01", "person/P-ADMIN")
            .await
            .expect("key")
            .totp_secret;
        let c = client();
        let form = |token: &str, next: &str, code: &str| {
            format!(
                "person_id=P-C01&password={}&totp={code}&form_token={token}&next={next}",
                autolog_test_support::PASSWORD.replace(' ', "+")
            )
        };
        // Without the form's cookie (another site's form): refused, nobody signed in.
        let forged = c
            .post(format!("{}/sign-in", s.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form(
                "made-up",
                "/",
                &autolog_test_support::current_totp(&secret),
            ))
            .send()
            .await
            .expect("POST");
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert!(!forged
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .any(|v| v.to_str().unwrap_or("").starts_with("autolog_session=")));

        // With it, and a `next` on another host: signed in, and sent home instead.
        let page = c
            .get(format!("{}/sign-in", s.base))
            .send()
            .await
            .expect("GET");
        let cookie = page.headers()[SET_COOKIE]
            .to_str()
            .expect("cookie")
            .split(';')
            .next()
            .unwrap_or("")
            .to_string();
        let token = field_value(&page.text().await.expect("page"), "form_token");
        let signed_in = c
            .post(format!("{}/sign-in", s.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, cookie)
            .body(form(
                &token,
                "%2F%2Fevil.example%2F",
                &autolog_test_support::current_totp(&secret),
            ))
            .send()
            .await
            .expect("POST");
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        assert_eq!(signed_in.headers()[LOCATION], "/");
        let cookies: Vec<&str> = signed_in
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        for name in ["autolog_session=", "autolog_csrf="] {
            let c = cookies
                .iter()
                .find(|c| c.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {cookies:?}"));
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_form_without_the_session_token_changes_nothing() {
    run_on(Backend::Sqlite, "console_csrf", |t| async move {
        let s = crate::common::spawn_app(&t, crate::common::Setup::examples()).await;
        let coi =
            autolog_test_support::enrol_at_los_angeles(&s.app, "PK-CONSOLE-1", "enrol-console")
                .await;
        autolog_test_support::refused_collection_at_boston(&s.app, &coi, "collect-console").await;
        let alert = s
            .app
            .alerts(&Default::default())
            .await
            .expect("alerts")
            .remove(0);
        let id = alert.raised.alert_id.clone();
        let qa = person(&s.app, "P-C02", &[("qa_releaser", "*")]).await;
        let (cookies, csrf) = console_cookies(&qa);
        let post = |body: String| {
            client()
                .post(format!("{}/alerts/{id}/acknowledge", s.base))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(COOKIE, cookies.clone())
                .body(body)
                .send()
        };
        let forged = post("note=seen".into()).await.expect("POST");
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        assert!(forged.text().await.expect("page").contains("this session"));
        assert_eq!(
            s.app.alert(&id).await.expect("alert").status,
            AlertStatus::Raised
        );

        let done = post(format!("note=seen&csrf={csrf}")).await.expect("POST");
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        let handled = s.app.alert(&id).await.expect("alert");
        assert_eq!(handled.status, AlertStatus::Acknowledged);
        assert_eq!(handled.acknowledgements[0].person_id, "P-C02");

        // An empty note is refused beside the field, and nothing is recorded.
        let empty = post(format!("note=&csrf={csrf}")).await.expect("POST");
        assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
        assert!(empty.text().await.expect("page").contains("Not recorded"));
        assert_eq!(
            s.app
                .alert(&id)
                .await
                .expect("alert")
                .acknowledgements
                .len(),
            1
        );
    })
    .await;
}

/// The example network served on a clock the test moves, sessions idle out after 60 s.
async fn with_idle_timeout_of_a_minute(
    t: &autolog_store_conformance::harness::Target,
    clock: &Arc<ShiftedClock>,
) -> crate::common::Spawned {
    crate::common::spawn_app(
        t,
        crate::common::Setup {
            clock: Some(clock.clone()),
            access: AccessSettings {
                idle_timeout: Duration::from_secs(60),
                ..AccessSettings::default()
            },
            ..crate::common::Setup::examples()
        },
    )
    .await
}

#[tokio::test]
async fn polls_do_not_keep_an_idle_session_alive() {
    run_on(Backend::Sqlite, "console_polls", |t| async move {
        let clock = Arc::new(ShiftedClock::default());
        let s = with_idle_timeout_of_a_minute(&t, &clock).await;
        let get = |path: &str, cookies: &str| {
            client()
                .get(format!("{}{path}", s.base))
                .header(COOKIE, cookies.to_string())
                .send()
        };
        // Two sessions opened now: one only polled (at 40 s and 70 s), one used for a
        // page at 40 s. With a 60 s idle window, the first ends, the second lives.
        let (idle, _) = console_cookies(&person(&s.app, "P-C03", &[("auditor", "*")]).await);
        let (busy, _) = console_cookies(&person(&s.app, "P-C04", &[("auditor", "*")]).await);
        clock.advance_seconds(40);
        assert_eq!(
            get("/alerts/count", &idle).await.expect("poll").status(),
            StatusCode::OK
        );
        assert_eq!(
            get("/", &busy).await.expect("page").status(),
            StatusCode::OK
        );
        clock.advance_seconds(30);
        let ended = get("/alerts/count", &idle).await.expect("poll");
        assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(ended.headers()["hx-redirect"], "/sign-in");
        assert_eq!(
            get("/alerts/banner", &busy).await.expect("poll").status(),
            StatusCode::OK
        );
    })
    .await;
}

/// A request records the session's last activity at most once a fifteenth of the idle
/// timeout (4 s of 60 here): requests in between write nothing, so a session ends at most
/// that much before the full timeout after its last request, never after.
#[tokio::test]
async fn a_session_records_its_activity_at_most_once_a_fifteenth_of_the_idle_timeout() {
    run_on(Backend::Sqlite, "console_touch", |t| async move {
        let clock = Arc::new(ShiftedClock::default());
        let s = with_idle_timeout_of_a_minute(&t, &clock).await;
        let page = |cookies: String| {
            client()
                .get(format!("{}/", s.base))
                .header(COOKIE, cookies)
                .send()
        };
        let (kept, _) = console_cookies(&person(&s.app, "P-C05", &[("auditor", "*")]).await);
        let (ending, _) = console_cookies(&person(&s.app, "P-C06", &[("auditor", "*")]).await);
        // Both at 40 s (recorded); `ending` again at 42 s (within 4 s: not recorded),
        // `kept` again at 45 s (recorded).
        clock.advance_seconds(40);
        for cookies in [&kept, &ending] {
            assert_eq!(
                page(cookies.clone()).await.expect("page").status(),
                StatusCode::OK
            );
        }
        clock.advance_seconds(2);
        assert_eq!(
            page(ending.clone()).await.expect("page").status(),
            StatusCode::OK
        );
        clock.advance_seconds(3);
        assert_eq!(
            page(kept.clone()).await.expect("page").status(),
            StatusCode::OK
        );
        // At 101 s: 61 s after `ending` was last recorded, 56 s after `kept` was.
        clock.advance_seconds(56);
        assert_eq!(page(kept).await.expect("page").status(), StatusCode::OK);
        let ended = page(ending).await.expect("page");
        assert_ne!(
            ended.status(),
            StatusCode::OK,
            "ended 59 s after its last request"
        );
    })
    .await;
}
