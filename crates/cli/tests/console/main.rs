//! The console in a real browser: `autolog serve --demo` (the real binary, its real HTTP
//! server) driven by headless Chromium, each page checked by axe-core and photographed
//! (`browser.rs`). People sign in with real TOTP codes, as they would.

mod browser;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use autolog_test_support::{current_totp, sign_in_http, PASSWORD};
use browser::Browser;
use fantoccini::key::Key;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_autolog");

/// `autolog serve --demo`, killed when dropped.
struct Demo {
    child: Child,
    base: String,
    /// The demo administrator's TOTP key (P-0001).
    totp: String,
    database_url: Option<String>,
    dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    fn start() -> Demo {
        Demo::start_on(None)
    }

    /// The demo on SQLite, or on the PostgreSQL database at `database_url`.
    fn start_on(database_url: Option<String>) -> Demo {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = std::process::Command::new(BIN);
        if let Some(url) = &database_url {
            command.arg("--database-url").arg(url);
        }
        let mut child = command
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "serve",
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--demo-password",
                PASSWORD,
            ])
            .env("AUTOLOG_LOG", "warn")
            .env_remove("AUTOLOG_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve --demo");
        let stdout = child.stdout.take().expect("stdout");
        let (mut totp, mut base, mut qr) = (None, None, false);
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("a line");
            // The key as a QR code: lines of Unicode half blocks.
            qr |= line.contains('\u{2580}') || line.contains('\u{2584}');
            if let Some(key) = line.split("authenticator app): ").nth(1) {
                totp = Some(key.trim().to_string());
            }
            if let Some(url) = line.strip_prefix("autolog listening on ") {
                base = Some(url.trim().to_string());
                break;
            }
        }
        let (Some(totp), Some(base), true) = (totp, base, qr) else {
            let _ = child.kill();
            panic!("serve --demo printed no TOTP key, QR code or address");
        };
        Demo {
            child,
            base,
            totp,
            database_url,
            dir,
        }
    }

    /// Stops the server and runs `autolog verify` on its data: whether the ledger verifies.
    fn stop_and_verify(mut self) -> std::process::Output {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut verify = std::process::Command::new(BIN);
        if let Some(url) = &self.database_url {
            verify.arg("--database-url").arg(url);
        }
        verify
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("verify")
            .env("AUTOLOG_LOG", "warn")
            .output()
            .expect("autolog verify")
    }

    /// Gives a registered person of the demo network an account and roles, through the
    /// API as the demo administrator; their TOTP key.
    async fn account(
        &self,
        admin: &reqwest::Client,
        csrf: &str,
        person: &str,
        grants: &[(&str, &str)],
    ) -> String {
        let created: Value = admin
            .post(format!("{}/api/v1/users", self.base))
            .header("x-csrf-token", csrf)
            .json(&json!({"person_id": person, "password": PASSWORD}))
            .send()
            .await
            .expect("create the account")
            .json()
            .await
            .expect("json");
        let key = created["totp_secret"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"));
        for (role, site) in grants {
            let granted = admin
                .post(format!("{}/api/v1/users/{person}/grants", self.base))
                .header("x-csrf-token", csrf)
                .json(&json!({"role": role, "site_id": site}))
                .send()
                .await
                .expect("grant");
            assert!(granted.status().is_success(), "grant {role} at {site}");
        }
        key.to_string()
    }
}

/// Signs in through the console's form, as a person at a keyboard would. A code is
/// accepted once: signing the same person in again within its 30 s waits for the next.
async fn sign_in(b: &Browser, base: &str, person: &str, totp_key: &str) {
    for attempt in 0..2 {
        b.goto(&format!("{base}/sign-in")).await;
        b.fill("#person_id", person).await;
        b.fill("#password", PASSWORD).await;
        b.fill("#totp", &current_totp(totp_key)).await;
        b.click("form[action='/sign-in'] button[type=submit]").await;
        if b.path().await != "/sign-in" {
            return;
        }
        let page = b.text().await;
        assert!(
            attempt == 0 && page.contains("already used"),
            "sign-in of {person}: {page}"
        );
        let into_step = jiff::Timestamp::now().as_second().rem_euclid(30);
        tokio::time::sleep(std::time::Duration::from_secs(
            u64::try_from(31 - into_step).unwrap_or(31),
        ))
        .await;
    }
}

/// The demo administrator's API session: a client carrying the cookie, and the CSRF token.
async fn admin(demo: &Demo) -> (reqwest::Client, String) {
    let me = sign_in_http(&demo.base, "P-0001", &demo.totp).await;
    let csrf = me
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (me.client(), csrf)
}

/// The walk-through of issue 19: a QA releaser signs in with a real TOTP code, sees the
/// demo's bag swap on the home page, opens the held chain, moves the time control to
/// before the receipt and sees it unheld, acknowledges the alert, signs out. A courier at
/// one site cannot open a chain of other sites (403 page). Every page passes axe-core.
#[tokio::test]
async fn a_qa_releaser_walks_the_bag_swap_and_a_courier_is_kept_out() {
    if let Some(why) = browser::missing() {
        eprintln!("skipped: the browser tests need {why}");
        return;
    }
    let demo = Demo::start();
    let base = demo.base.clone();
    let (admin, csrf) = admin(&demo).await;
    let qa = demo
        .account(
            &admin,
            &csrf,
            "P-0011",
            &[("qa_releaser", "*"), ("auditor", "*")],
        )
        .await;
    let courier = demo
        .account(&admin, &csrf, "P-0004", &[("courier", "S-BOM-01")])
        .await;
    let mut b = Browser::start("qa").await;

    // Not signed in: the console sends the browser to its sign-in page.
    b.goto(&format!("{base}/")).await;
    assert_eq!(b.path().await, "/sign-in");
    b.check_page("sign-in").await;

    // A wrong code (for an account that does not exist): refused, saying nothing of which.
    b.fill("#person_id", "P-9999").await;
    b.fill("#password", "not the password").await;
    b.fill("#totp", "000000").await;
    b.click("form[action='/sign-in'] button[type=submit]").await;
    let refused = b.text().await;
    assert!(refused.contains("sign-in refused"), "{refused}");
    b.check_page("sign-in-refused").await;

    sign_in(&b, &base, "P-0011", &qa).await;
    assert_eq!(b.path().await, "/");
    let home = b.text().await;
    assert!(home.contains("custody.unit_in_wrong_shipment"), "{home}");
    assert!(home.contains("critical alerts are open"), "{home}");
    b.check_page("home").await;

    // The held chain, from the home page's list of chains on hold.
    b.click("section[aria-labelledby='on-hold'] tbody tr:first-child a.coi")
        .await;
    let held_path = b.path().await;
    let chain = b.text().await;
    assert!(chain.contains("On hold: custody."), "{chain}");
    b.check_page("chain").await;
    // The same page on a tablet at the bedside.
    b.resize(820, 1180).await;
    b.check_page("chain-tablet").await;
    b.resize(1280, 800).await;

    // Before the receipt at manufacturing, the chain was not held.
    let received_at = b
        .client
        .find(fantoccini::Locator::XPath(
            "//tr[td[contains(., 'custody received')]]/td[1]/time",
        ))
        .await
        .expect("the receipt in the timeline")
        .attr("datetime")
        .await
        .expect("datetime")
        .expect("the receipt's instant");
    let before: jiff::Timestamp = received_at.parse().expect("an instant");
    let before = before
        .checked_sub(jiff::SignedDuration::from_mins(1))
        .expect("in range");
    b.fill("#valid_at", &before.to_string()).await;
    b.click("form.timectl button[type=submit]").await;
    let then = b.text().await;
    assert!(then.contains("Not now"), "{then}");
    assert!(!then.contains("On hold:"), "{then}");
    assert!(then.contains("in transit"), "{then}");
    b.check_page("chain-before-receipt").await;

    // Acknowledge the alert of the held chain in the inbox.
    b.goto(&format!("{base}/alerts")).await;
    b.check_page("alerts").await;
    let coi = held_path.trim_start_matches("/chains/").to_string();
    let alert_id = b
        .client
        .find(fantoccini::Locator::XPath(&format!(
            "//tr[starts-with(@id, 'alert-')][.//a[contains(., '{coi}')]]"
        )))
        .await
        .expect("the chain's alert row")
        .attr("id")
        .await
        .expect("id")
        .expect("an id")
        .trim_start_matches("alert-")
        .to_string();
    b.fill(
        &format!("#note-{alert_id}"),
        "Both bags quarantined; QA investigating",
    )
    .await;
    b.click(&format!(
        "#handle-{alert_id} button[type=submit]:not(.secondary)"
    ))
    .await;
    let handled = b.text().await;
    assert!(handled.contains("acknowledged by P-0011"), "{handled}");
    b.check_page("alerts-acknowledged").await;

    // The same chain found by scanning one of its bags' DIN into the search.
    b.goto(&format!("{base}{held_path}")).await;
    let din = b
        .client
        .find(fantoccini::Locator::Css(
            "section[aria-labelledby='units-h'] td.coi",
        ))
        .await
        .expect("a collected bag")
        .text()
        .await
        .expect("its DIN");
    b.fill("#top-search", &din).await;
    b.click("form.search button[type=submit]").await;
    assert_eq!(b.path().await, held_path, "the DIN {din} finds its chain");

    // The network's views and the reference data, as an auditor at * sees them.
    for (path, name, expect) in [
        ("/?site=S-BOS-01", "home-site", "Batches in manufacturing"),
        ("/network", "network-reconciliation", "Open holds (2)"),
        ("/network/alignment", "network-alignment", "findings"),
        ("/network/turnaround", "network-turnaround", "vein-to-vein"),
        ("/network/retention", "network-retention", "Chains"),
        (
            "/network/signals",
            "network-signals",
            "Alerts raised per month",
        ),
        ("/reference", "reference", "sites"),
        ("/reference/sites", "reference-sites", "Europe/Paris"),
        ("/chains?state=in_follow_up", "chains-list", "in follow up"),
    ] {
        b.goto(&format!("{base}{path}")).await;
        let text = b.text().await;
        assert!(text.contains(expect), "{path}: {text}");
        b.check_page(name).await;
    }
    // A chain in follow-up: released with a signature, its batch's results shown.
    b.click("main table tbody tr:first-child a.coi").await;
    let released = b.text().await;
    assert!(
        released.contains("Released for this patient\nyes"),
        "{released}"
    );
    assert!(!released.contains("Signatures (0)"), "{released}");
    assert!(!released.contains("No batch yet."), "{released}");
    b.check_page("chain-released").await;

    b.click("form[action='/sign-out'] button").await;
    assert!(b.text().await.contains("You are signed out."));
    b.goto(&format!("{base}/")).await;
    assert_eq!(b.path().await, "/sign-in", "signed out means signed out");

    // A courier at Mumbai signs in with the keyboard alone (the person id field has the
    // focus; Tab to the next field, Enter to submit), and cannot open a chain of Paris
    // and Boston.
    b.goto(&format!("{base}/sign-in")).await;
    let (tab, enter) = (char::from(Key::Tab), char::from(Key::Enter));
    b.type_and_submit(&format!(
        "P-0004{tab}{PASSWORD}{tab}{}{enter}",
        current_totp(&courier)
    ))
    .await;
    assert_eq!(b.path().await, "/", "signed in by keyboard");
    b.check_page("courier-home").await;
    b.goto(&format!("{base}{held_path}")).await;
    let kept_out = b.text().await;
    assert!(kept_out.contains("Not permitted"), "{kept_out}");
    assert!(!kept_out.contains("custody received"), "{kept_out}");
    b.check_page("courier-forbidden").await;
    b.close().await;
}

/// An administrator creates an account (its TOTP key shown once, as a QR code), grants and
/// revokes a role, and issues a source system's API token; a QA releaser is refused the
/// administration pages.
#[tokio::test]
async fn an_administrator_manages_accounts_and_tokens() {
    if let Some(why) = browser::missing() {
        eprintln!("skipped: the browser tests need {why}");
        return;
    }
    let demo = Demo::start();
    let base = demo.base.clone();
    let (admin, csrf) = admin(&demo).await;
    let key = demo
        .account(&admin, &csrf, "P-0005", &[("administrator", "*")])
        .await;
    let b = Browser::start("admin").await;
    sign_in(&b, &base, "P-0005", &key).await;
    b.goto(&format!("{base}/admin")).await;
    b.check_page("admin").await;

    b.fill("#new-person", "P-0003").await;
    b.fill("#new-password", PASSWORD).await;
    b.click("form[action='/admin/users'] button[type=submit]")
        .await;
    let created = b.text().await;
    assert!(
        created.contains("Second factor of P-0003: shown this once"),
        "{created}"
    );
    let qr = b
        .client
        .find(fantoccini::Locator::Css("img.qr"))
        .await
        .expect("the QR code");
    assert!(qr
        .attr("src")
        .await
        .expect("src")
        .is_some_and(|s| s.starts_with("data:image/svg+xml,")));
    b.check_page("admin-account-created").await;

    // The same person again: refused, naming the rule.
    b.fill("#new-person", "P-0003").await;
    b.fill("#new-password", PASSWORD).await;
    b.click("form[action='/admin/users'] button[type=submit]")
        .await;
    assert!(b.text().await.contains("Not recorded"));

    b.goto(&format!("{base}/admin/users/P-0003")).await;
    b.client
        .find(fantoccini::Locator::Css("#role"))
        .await
        .expect("role")
        .select_by_value("qc_analyst")
        .await
        .expect("choose qc_analyst");
    b.fill("#site_id", "S-FRA-01").await;
    b.click("form[action$='/grant'] button[type=submit]").await;
    let granted = b.text().await;
    assert!(
        granted.contains("Revoke qc_analyst at S-FRA-01"),
        "{granted}"
    );
    b.check_page("admin-account").await;
    b.click("form[action$='/revoke'] button[type=submit]").await;
    assert!(!b.text().await.contains("Revoke qc_analyst at S-FRA-01"));

    b.goto(&format!("{base}/admin")).await;
    b.fill("#system", "emr-par").await;
    b.click("form[action='/admin/tokens'] button[type=submit]")
        .await;
    let issued = b.text().await;
    assert!(
        issued.contains("API token of emr-par: shown this once"),
        "{issued}"
    );
    assert!(issued.contains("alt_"), "{issued}");
    b.check_page("admin-token-issued").await;
    b.click("form[action$='/revoke'] button[type=submit]").await;
    assert!(b.text().await.contains("revoked"));

    // A QA releaser has no administration.
    b.click("form[action='/sign-out'] button").await;
    let qa = demo
        .account(&admin, &csrf, "P-0011", &[("qa_releaser", "*")])
        .await;
    sign_in(&b, &base, "P-0011", &qa).await;
    assert!(!b.text().await.contains("Administration"));
    b.goto(&format!("{base}/admin")).await;
    assert!(b.text().await.contains("Not permitted"));
    b.close().await;
}

/// A DIN of Los Angeles (validation FIN A9990) in 2026, `seq` its six digits, as typed (13 characters
/// and its check character K).
fn lax_din(seq: u32) -> String {
    autolog_domain::identifiers::Din::parse("din", &format!("A999026{seq:06}"))
        .expect("a DIN")
        .to_string()
}

/// A patient's bags are collected, handed off and received through the console's step
/// forms, scanned as a wedge scanner types them: a wrong check character is refused
/// naming K; at receipt a bag of another patient is flagged before anything is recorded,
/// a receipt short of the verifier its policy asks is refused, and the receipt, once
/// verified, holds the chain.
#[tokio::test]
async fn bags_are_scanned_through_collection_handoff_and_a_swapped_bag_is_caught_at_receipt() {
    if let Some(why) = browser::missing() {
        eprintln!("skipped: the browser tests need {why}");
        return;
    }
    let demo = Demo::start();
    let base = demo.base.clone();
    let (admin, csrf) = admin(&demo).await;
    // A receipt at Boston needs two verifiers, QA releasers there.
    let policy = json!([{"policy_id": "VP-BOS-RECEIPT", "step": "custody_receipt", "verifiers": 2,
        "site_id": "S-BOS-01", "qualifying_roles": ["qa_releaser"], "valid_from": "2026-01-01T00:00:00Z"}]);
    let imported = admin
        .post(format!(
            "{base}/api/v1/reference/import?registry=verification_policies"
        ))
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body(policy.to_string())
        .send()
        .await
        .expect("import the policy");
    assert!(
        imported.status().is_success(),
        "{:?}",
        imported.text().await
    );
    // Maria Lopez collects and hands off at Los Angeles; Daniel Okafor receives at
    // Boston, verified by Samuel Osei (QA): each qualified there in the demo's registry.
    let nurse = demo
        .account(
            &admin,
            &csrf,
            "P-0005",
            &[("apheresis_coordinator", "S-LAX-01")],
        )
        .await;
    let operator = demo
        .account(
            &admin,
            &csrf,
            "P-0002",
            &[("manufacturing_operator", "S-BOS-01")],
        )
        .await;
    let qa = demo
        .account(&admin, &csrf, "P-0011", &[("qa_releaser", "S-BOS-01")])
        .await;
    let enrolled: Value = admin
        .get(format!("{base}/api/v1/chains?state=enrolled&limit=1"))
        .send()
        .await
        .expect("chains")
        .json()
        .await
        .expect("json");
    let coi = enrolled["chains"][0]["coi"]
        .as_str()
        .expect("an enrolled chain")
        .to_string();
    let b = Browser::start("steps").await;
    sign_in(&b, &base, "P-0005", &nurse).await;

    // Collection: a DIN with a wrong check character is refused naming K, and removed.
    b.goto(&format!("{base}/chains/{coi}")).await;
    b.click("a.button[href$='/steps/collect']").await;
    let (bag1, bag2) = (lax_din(900_001), lax_din(900_002));
    let wrong_k = format!(
        "{}{}",
        &bag1[..13],
        if bag1.ends_with('A') { 'B' } else { 'A' }
    );
    b.fill("#new_scan", &wrong_k).await;
    b.type_and_submit(&char::from(Key::Enter).to_string()).await;
    let refused = b.text().await;
    assert!(
        refused.contains("✗") && refused.contains("check character"),
        "{refused}"
    );
    b.check_page("collect-wrong-k").await;
    b.click("button[name=remove][value='0']").await;
    // As the scanner types the labels: the first bag's DIN barcode (`=`, the 13
    // characters, two flags), the second bag's compound message (DS023 carrying the DIN
    // and the product code in one 2-D symbol).
    for scan in [
        format!("={}00", &bag1[..13]),
        format!("=+02000={}00=<S0001AA0", &bag2[..13]),
    ] {
        b.fill("#new_scan", &scan).await;
        b.type_and_submit(&char::from(Key::Enter).to_string()).await;
    }
    assert_eq!(b.text().await.matches("✓ new bag").count(), 2);
    b.fill("#device_id", "APH-LAX-01").await;
    // Whole seconds: an instant is recorded to the microsecond at most.
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("now");
    let hours_ago = |h: i64| {
        now.checked_sub(jiff::SignedDuration::from_hours(h))
            .expect("in range")
            .to_string()
    };
    b.fill("#started_at", &hours_ago(5)).await;
    b.fill("#ended_at", &hours_ago(1)).await;
    b.check_page("collect").await;
    b.click("button[name=action][value=record]").await;
    assert!(
        b.text().await.contains("chain collected"),
        "{}",
        b.text().await
    );

    // Handoff to Boston: the same two bags.
    b.click("a.button[href$='/steps/hand-off']").await;
    for bag in [&bag1, &bag2] {
        b.fill("#new_scan", bag).await;
        b.type_and_submit(&char::from(Key::Enter).to_string()).await;
    }
    assert_eq!(
        b.text()
            .await
            .matches("✓ this patient's bag, on the manifest")
            .count(),
        2
    );
    b.fill("#destination_site_id", "S-BOS-01").await;
    b.fill("#courier", "WORLD-COURIER").await;
    b.fill("#container_id", "DS-CONSOLE-1").await;
    b.fill("#seal_id", "SEAL-CONSOLE-1").await;
    let due = now
        .checked_add(jiff::SignedDuration::from_hours(48))
        .expect("in range");
    b.fill("#expected_arrival_by", &due.to_string()).await;
    b.check_page("hand-off").await;
    b.click("button[name=action][value=record]").await;
    assert!(
        b.text().await.contains("custody handed off"),
        "{}",
        b.text().await
    );

    // Receipt at Boston with another patient's bag in the box: flagged at the scan.
    b.click("form[action='/sign-out'] button").await;
    sign_in(&b, &base, "P-0002", &operator).await;
    b.goto(&format!("{base}/chains/{coi}")).await;
    b.click("a.button[href$='/steps/receive']").await;
    b.fill("#new_scan", &bag1).await;
    b.type_and_submit(&char::from(Key::Enter).to_string()).await;
    b.fill("#new_scan", "A999126000002W").await;
    b.type_and_submit(&char::from(Key::Enter).to_string()).await;
    let flagged = b.text().await;
    assert!(flagged.contains("another patient's bag"), "{flagged}");
    assert!(flagged.contains("Not scanned yet: 1 of 2"), "{flagged}");
    b.fill("#container_id", "DS-CONSOLE-1").await;
    b.fill("#seal_id", "SEAL-CONSOLE-1").await;
    b.fill("#min_celsius", "3.1").await;
    b.fill("#max_celsius", "6.4").await;
    b.check_page("receive-swapped").await;
    // Without its verifier: refused, nothing recorded, the scans kept.
    b.click("button[name=action][value=record]").await;
    let short = b.text().await;
    assert!(
        short.contains("Not recorded") && short.contains("VP-BOS-RECEIPT"),
        "{short}"
    );
    assert!(
        short.contains("another patient's bag"),
        "the scans are kept: {short}"
    );
    b.check_page("receive-unverified").await;
    // The verifiers type their own ids and passwords on this device: one of two is
    // refused, the same person twice too, two different QA releasers record it.
    b.fill("#verifier_id_0", "P-0011").await;
    b.fill("#verifier_secret_0", PASSWORD).await;
    b.click("button[name=action][value=record]").await;
    let one = b.text().await;
    assert!(
        one.contains("1 given") && one.contains("asks 2 verifier"),
        "{one}"
    );
    for (i, who) in [(0, "P-0011"), (1, "P-0011")] {
        b.fill(&format!("#verifier_id_{i}"), who).await;
        b.fill(&format!("#verifier_secret_{i}"), PASSWORD).await;
    }
    b.click("button[name=action][value=record]").await;
    let twice = b.text().await;
    assert!(twice.contains("verifies this step twice"), "{twice}");
    b.check_page("receive-same-verifier-twice").await;
    for (i, who) in [(0, "P-0011"), (1, "P-0001")] {
        b.fill(&format!("#verifier_id_{i}"), who).await;
        b.fill(&format!("#verifier_secret_{i}"), PASSWORD).await;
    }
    b.click("button[name=action][value=record]").await;
    let held = b.text().await;
    assert!(
        held.contains("On hold:"),
        "the receipt of another patient's bag holds the chain: {held}"
    );
    b.check_page("received-on-hold").await;

    // QA resolves the hold from its banner, with a reason and a signature.
    b.click("form[action='/sign-out'] button").await;
    sign_in(&b, &base, "P-0011", &qa).await;
    b.goto(&format!("{base}/chains/{coi}")).await;
    b.click("a[href*='/record/hold-release?hold_id=']").await;
    assert!(b.text().await.contains("Resolve a hold (signed)"));
    b.fill(
        "#resolution_reason",
        "The foreign bag was returned to its chain; this chain's second bag was found at the depot",
    )
    .await;
    b.fill("#signature", PASSWORD).await;
    b.check_page("hold-release").await;
    b.click("form[action$='/record/hold-release'] button[type=submit]")
        .await;
    let resolved = b.text().await;
    assert!(!resolved.contains("Not recorded"), "{resolved}");
    assert!(resolved.contains("chain hold released"), "{resolved}");
    b.close().await;
}

/// QA release: each condition listed with its state; where one is not met there is no
/// button to sign; where all are, the releaser signs by re-authenticating, the meaning on
/// the button, and the chain page shows the signature's manifestation.
#[tokio::test]
async fn a_qa_releaser_sees_every_condition_and_signs_a_release() {
    if let Some(why) = browser::missing() {
        eprintln!("skipped: the browser tests need {why}");
        return;
    }
    let demo = Demo::start();
    let base = demo.base.clone();
    let (admin, csrf) = admin(&demo).await;
    let qa = demo
        .account(&admin, &csrf, "P-0011", &[("qa_releaser", "S-BOS-01")])
        .await;
    // At Boston a second QA releaser verifies every release.
    let policy = json!([{"policy_id": "VP-BOS-RELEASE", "step": "release", "verifiers": 1,
        "site_id": "S-BOS-01", "qualifying_roles": ["qa_releaser"], "valid_from": "2026-01-01T00:00:00Z"}]);
    let imported = admin
        .post(format!(
            "{base}/api/v1/reference/import?registry=verification_policies"
        ))
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body(policy.to_string())
        .send()
        .await
        .expect("import the policy");
    assert!(
        imported.status().is_success(),
        "{:?}",
        imported.text().await
    );
    let testing: Value = admin
        .get(format!("{base}/api/v1/chains?state=in_testing"))
        .send()
        .await
        .expect("chains")
        .json()
        .await
        .expect("json");
    let cois: Vec<String> = testing["chains"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["coi"].as_str().map(str::to_string))
        .collect();
    let b = Browser::start("release").await;
    sign_in(&b, &base, "P-0011", &qa).await;
    let (mut blocked, mut releasable) = (None, None);
    for coi in &cois {
        b.goto(&format!("{base}/chains/{coi}/release")).await;
        let text = b.text().await;
        if text.contains("✗ not met") && blocked.is_none() {
            assert!(
                !text.contains("Sign: I approve"),
                "no signature while a condition is unmet: {text}"
            );
            assert!(
                text.contains("cannot be signed until every condition is met"),
                "{text}"
            );
            b.check_page("release-unmet").await;
            blocked = Some(coi.clone());
        } else if !text.contains("✗ not met") && releasable.is_none() {
            releasable = Some(coi.clone());
        }
    }
    assert!(blocked.is_some(), "a chain in testing awaits results");
    let coi = releasable.expect("a chain in testing whose batch may be released");
    b.goto(&format!("{base}/chains/{coi}/release")).await;
    assert_eq!(b.text().await.matches("✓ met").count(), 7);
    b.check_page("release-ready").await;
    // Signed, but without the verifier the policy asks: refused, nothing recorded.
    b.fill("#secret", PASSWORD).await;
    b.click("form[action$='/release'] button[type=submit]")
        .await;
    let unverified = b.text().await;
    assert!(
        unverified.contains("VP-BOS-RELEASE") && unverified.contains("0 given"),
        "{unverified}"
    );
    // Verified by a second QA releaser on the same screen, but a wrong signing password.
    b.fill("#secret", "not my password at all").await;
    b.fill("#verifier_id_0", "P-0001").await;
    b.fill("#verifier_secret_0", PASSWORD).await;
    b.click("form[action$='/release'] button[type=submit]")
        .await;
    let refused = b.text().await;
    assert!(
        refused.contains("Not recorded") && refused.contains("re-authentication failed for P-0011"),
        "{refused}"
    );
    // Both right: recorded.
    b.fill("#secret", PASSWORD).await;
    b.fill("#verifier_id_0", "P-0001").await;
    b.fill("#verifier_secret_0", PASSWORD).await;
    b.click("form[action$='/release'] button[type=submit]")
        .await;
    let released = b.text().await;
    assert!(
        released.contains("Released for this patient\nyes"),
        "{released}"
    );
    assert!(
        released.contains("Samuel Osei (P-0011)"),
        "the manifestation: {released}"
    );
    assert!(
        released.contains("approved for release of batch"),
        "{released}"
    );
    b.check_page("released").await;
    b.close().await;
}

/// The demo's nurse and physician of a treatment center.
fn center_staff(site: &str) -> (&'static str, &'static str) {
    match site {
        "S-LAX-01" => ("P-0005", "P-0006"),
        "S-PAR-01" => ("P-0007", "P-0008"),
        _ => ("P-0009", "P-0010"),
    }
}

/// At the bedside: the unit scanned with another patient's wristband is a full-screen hard
/// stop (nothing checked, a critical alert raised); with the right wristband the check
/// passes, and only then is administration offered and recorded.
#[tokio::test]
async fn a_wrong_wristband_is_a_hard_stop_and_administration_follows_a_passed_check() {
    if let Some(why) = browser::missing() {
        eprintln!("skipped: the browser tests need {why}");
        return;
    }
    let demo = Demo::start();
    let base = demo.base.clone();
    let (admin, csrf) = admin(&demo).await;
    let received: Value = admin
        .get(format!(
            "{base}/api/v1/chains?state=received_at_treatment_center&limit=1"
        ))
        .send()
        .await
        .expect("chains")
        .json()
        .await
        .expect("json");
    let coi = received["chains"][0]["coi"]
        .as_str()
        .expect("a chain at its center")
        .to_string();
    let site = received["chains"][0]["treatment_site_id"]
        .as_str()
        .expect("its center")
        .to_string();
    let chain: Value = admin
        .get(format!("{base}/api/v1/chains/{coi}"))
        .send()
        .await
        .expect("chain")
        .json()
        .await
        .expect("json");
    let unit = chain["final_units"][0]["unit"]
        .as_str()
        .expect("a unit")
        .to_string();
    // The patient's identifying data, in the vault (recorded through the API).
    let recorded = admin
        .post(format!("{base}/api/v1/chains/{coi}/personal-data"))
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body(json!({"family_name": "Okonkwo", "date_of_birth": "1961-04-12"}).to_string())
        .send()
        .await
        .expect("record identifying data");
    assert!(
        recorded.status().is_success(),
        "{:?}",
        recorded.text().await
    );
    let (nurse_id, physician_id) = center_staff(&site);
    let nurse = demo
        .account(&admin, &csrf, nurse_id, &[("treatment_nurse", &site)])
        .await;
    let _ = demo
        .account(
            &admin,
            &csrf,
            physician_id,
            &[("treatment_physician", &site)],
        )
        .await;
    // At this center a treating physician verifies every administration.
    let policy = json!([{"policy_id": "VP-INFUSION", "step": "administration", "verifiers": 1,
        "site_id": site, "qualifying_roles": ["treatment_physician"], "valid_from": "2026-01-01T00:00:00Z"}]);
    let imported = admin
        .post(format!(
            "{base}/api/v1/reference/import?registry=verification_policies"
        ))
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body(policy.to_string())
        .send()
        .await
        .expect("import the policy");
    assert!(
        imported.status().is_success(),
        "{:?}",
        imported.text().await
    );
    let mut b = Browser::start("bedside").await;
    b.resize(820, 1180).await;
    sign_in(&b, &base, nurse_id, &nurse).await;
    b.goto(&format!("{base}/chains/{coi}")).await;
    b.click("a.button[href$='/bedside']").await;
    b.check_page("bedside").await;

    // Another patient's wristband: the hard stop.
    b.fill("#unit_scan", &unit).await;
    b.fill("#wristband", "CHS999926000001P").await;
    b.click("form[action$='/bedside'] button[type=submit]")
        .await;
    let stop = b.text().await;
    assert!(stop.contains("STOP: DO NOT INFUSE"), "{stop}");
    assert!(stop.contains("not this chain's COI"), "{stop}");
    b.check_page("bedside-hard-stop").await;
    let alerts: Value = admin
        .get(format!("{base}/api/v1/alerts?coi={coi}"))
        .send()
        .await
        .expect("alerts")
        .json()
        .await
        .expect("json");
    assert!(alerts.to_string().contains("bedside.mismatch"), "{alerts}");

    // The right wristband, but a family name on it that the vault does not hold: stop.
    b.click(".hardstop a").await;
    b.fill("#unit_scan", &unit).await;
    b.fill("#wristband", &coi).await;
    b.fill("#id_family_name", "Okonkwu").await;
    b.click("form[action$='/bedside'] button[type=submit]")
        .await;
    let stop = b.text().await;
    assert!(
        stop.contains("STOP: DO NOT INFUSE") && stop.contains("family_name"),
        "{stop}"
    );
    assert!(
        !stop.contains("Okonkwo"),
        "the vault's value is never shown: {stop}"
    );

    // The right wristband and name: passed; administration with a second person.
    b.click(".hardstop a").await;
    b.fill("#unit_scan", &unit).await;
    b.fill("#wristband", &coi).await;
    b.fill("#id_family_name", "okonkwo").await;
    b.fill("#id_date_of_birth", "1961-04-12").await;
    b.click("form[action$='/bedside'] button[type=submit]")
        .await;
    let passed = b.text().await;
    assert!(passed.contains("Bedside check passed"), "{passed}");
    b.check_page("bedside-passed").await;
    b.fill("#verified_by", physician_id).await;
    b.click("form[action$='/administer'] button[type=submit]")
        .await;
    let unverified = b.text().await;
    assert!(unverified.contains("VP-INFUSION"), "{unverified}");
    // The physician verifies on the nurse's tablet.
    b.fill("#verified_by", physician_id).await;
    b.fill("#verifier_id_0", physician_id).await;
    b.fill("#verifier_secret_0", PASSWORD).await;
    b.click("form[action$='/administer'] button[type=submit]")
        .await;
    let done = b.text().await;
    assert!(done.contains("chain administered"), "{done}");
    b.close().await;
}

/// Fills and submits a hand-entry form of the chain (`/chains/{coi}/record/{form}`).
async fn record_by_hand(b: &Browser, base: &str, coi: &str, form: &str, fields: &[(&str, String)]) {
    b.goto(&format!("{base}/chains/{coi}/record/{form}")).await;
    let page = b.text().await;
    assert!(page.contains("Recorded by"), "the {form} form: {page}");
    for (name, value) in fields {
        b.fill(&format!("#{name}"), value).await;
    }
    b.click(&format!(
        "form[action$='/record/{form}'] button[type=submit]"
    ))
    .await;
    let after = b.text().await;
    assert!(!after.contains("Not recorded"), "{form}: {after}");
}

/// Scans each bag into a step form (as a wedge scanner: the data, then Enter).
async fn scan_bags(b: &Browser, bags: &[String]) {
    let page = b.text().await;
    assert!(
        page.contains("scan each, then Enter"),
        "a step form: {page}"
    );
    for bag in bags {
        b.fill("#new_scan", bag).await;
        b.type_and_submit(&char::from(Key::Enter).to_string()).await;
    }
}

/// One patient from the physician's order to the infusion through the console alone,
/// each step by the person qualified for it at its site, scans typed as a wedge scanner
/// types them; then the ledger verifies.
/// The first bag's label printed from the chain's labels page, then verified by typing
/// its 2-D symbol's data as a scanner would.
async fn print_and_verify_a_bag_label(b: &Browser, base: &str, coi: &str, din: &str) {
    b.goto(&format!("{base}/chains/{coi}")).await;
    b.click("a.button[href$='/labels']").await;
    b.fill(&format!("#printer-{din}"), "ZD621-LAX-1").await;
    b.click(&format!(
        "form[action$='/labels/print']:has(input[value='{din}']) button"
    ))
    .await;
    let page = b.text().await;
    assert!(page.contains("recorded: print it now"), "{page}");
    b.check_page("labels").await;
    let matrix = page
        .split_whitespace()
        .find(|w| w.starts_with("=+06000"))
        .unwrap_or_else(|| panic!("the 2-D symbol's data on the page: {page}"))
        .to_string();
    b.fill(&format!("#scans-{din}"), &matrix).await;
    b.click(&format!(
        "form[action$='/labels/verify']:has(input[value='{din}']) button"
    ))
    .await;
    let page = b.text().await;
    assert!(page.contains("Label verified"), "{page}");
}

async fn one_patient_through_the_console(database_url: Option<String>) {
    if let Some(why) = browser::missing() {
        eprintln!("skipped: the browser tests need {why}");
        return;
    }
    let backend = if database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let demo = Demo::start_on(database_url);
    let base = demo.base.clone();
    let (admin, csrf) = admin(&demo).await;
    let people = [
        ("P-0006", vec![("treatment_physician", "S-LAX-01")]),
        (
            "P-0005",
            vec![
                ("apheresis_coordinator", "S-LAX-01"),
                ("treatment_nurse", "S-LAX-01"),
            ],
        ),
        ("P-0002", vec![("manufacturing_operator", "S-BOS-01")]),
        // The central QC laboratory tests for every chain of the network: its analyst's
        // role is granted at * (the lab takes part in a chain only once it records).
        ("P-0003", vec![("qc_analyst", "*")]),
        ("P-0011", vec![("qa_releaser", "S-BOS-01")]),
    ];
    let mut keys = std::collections::HashMap::new();
    for (person, grants) in &people {
        keys.insert(*person, demo.account(&admin, &csrf, person, grants).await);
    }
    let b = Browser::start(&format!("walk-{backend}")).await;
    let as_person = |person: &'static str| {
        let key = keys[person].clone();
        let (b, base) = (&b, base.clone());
        async move {
            b.goto(&format!("{base}/")).await;
            if b.path().await != "/sign-in" {
                b.click("form[action='/sign-out'] button").await;
            }
            sign_in(b, &base, person, &key).await;
        }
    };
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("now");
    let at = |minutes: i64| {
        now.checked_add(jiff::SignedDuration::from_mins(minutes))
            .expect("in range")
            .to_string()
    };

    // The order, and the COI issued.
    as_person("P-0006").await;
    b.goto(&format!("{base}/enrol")).await;
    b.fill("#patient_key", "PK-CONSOLE-WALK").await;
    b.fill("#product_code", "CART-19").await;
    b.fill("#treatment_site_id", "S-LAX-01").await;
    b.click("form[action='/enrol'] button[type=submit]").await;
    let issued = b.text().await;
    assert!(issued.contains("Chain of identity issued"), "{issued}");
    b.check_page("coi-issued").await;
    b.click("a.button").await;
    let coi = b.path().await.trim_start_matches("/chains/").to_string();

    // Collection and handoff at Los Angeles.
    as_person("P-0005").await;
    b.goto(&format!("{base}/chains/{coi}/steps/collect")).await;
    let bags = [lax_din(910_001), lax_din(910_002)];
    scan_bags(
        &b,
        &bags
            .iter()
            .map(|d| format!("={}00", &d[..13]))
            .collect::<Vec<_>>(),
    )
    .await;
    b.fill("#device_id", "APH-LAX-01").await;
    b.fill("#started_at", &at(-240)).await;
    b.fill("#ended_at", &at(-1)).await;
    b.click("button[name=action][value=record]").await;
    assert!(
        b.text().await.contains("chain collected"),
        "{}",
        b.text().await
    );
    print_and_verify_a_bag_label(&b, &base, &coi, &bags[0]).await;
    b.goto(&format!("{base}/chains/{coi}/steps/hand-off")).await;
    scan_bags(&b, &bags).await;
    for (field, value) in [
        ("destination_site_id", "S-BOS-01".to_string()),
        ("courier", "WORLD-COURIER".into()),
        ("container_id", "DS-WALK-1".into()),
        ("seal_id", "SEAL-WALK-1".into()),
        ("expected_arrival_by", at(2880)),
    ] {
        b.fill(&format!("#{field}"), &value).await;
    }
    b.click("button[name=action][value=record]").await;

    // Boston: receipt, batch, manufacture, cryopreservation, final units.
    as_person("P-0002").await;
    b.goto(&format!("{base}/chains/{coi}/steps/receive")).await;
    scan_bags(&b, &bags).await;
    for (field, value) in [
        ("container_id", "DS-WALK-1"),
        ("seal_id", "SEAL-WALK-1"),
        ("min_celsius", "3.0"),
        ("max_celsius", "7.0"),
    ] {
        b.fill(&format!("#{field}"), value).await;
    }
    b.click("button[name=action][value=record]").await;
    assert!(
        b.text().await.contains("received at manufacturing"),
        "{}",
        b.text().await
    );
    let batch = "B-CONSOLE-WALK".to_string();
    let dins = bags.join("\n");
    record_by_hand(
        &b,
        &base,
        &coi,
        "batch",
        &[("batch_id", batch.clone()), ("source_dins", dins)],
    )
    .await;
    record_by_hand(
        &b,
        &base,
        &coi,
        "step",
        &[
            ("step_code", "MANUFACTURE".into()),
            ("equipment_ids", "BIO-BOS-01".into()),
            ("started_at", at(1)),
            ("ended_at", at(2)),
        ],
    )
    .await;
    record_by_hand(
        &b,
        &base,
        &coi,
        "step",
        &[
            ("step_code", "CRYO".into()),
            ("equipment_ids", "CRF-BOS-01".into()),
            ("started_at", at(3)),
            ("ended_at", at(4)),
        ],
    )
    .await;
    let coi_id = autolog_domain::identifiers::Coi::parse("coi", &coi).expect("COI");
    let units: Vec<String> = ["A0", "B0"]
        .iter()
        .map(|d| {
            autolog_domain::identifiers::UnitId::new(&coi_id, "S0001", d)
                .expect("unit")
                .to_string()
        })
        .collect();
    record_by_hand(
        &b,
        &base,
        &coi,
        "units",
        &[("batch_id", batch.clone()), ("units", units.join("\n"))],
    )
    .await;

    // Frankfurt: the release tests.
    as_person("P-0003").await;
    for (test, result, unit) in [
        ("VIABILITY", "82", "%"),
        ("CAR-EXPR", "41", "%"),
        ("VCN", "2.1", "copies/cell"),
        ("STERILITY", "negative", ""),
        ("ENDOTOXIN", "1.2", "EU/mL"),
        ("MYCOPLASMA", "not detected", ""),
    ] {
        record_by_hand(
            &b,
            &base,
            &coi,
            "result",
            &[
                ("batch_id", batch.clone()),
                ("test_code", test.into()),
                ("method", "per specification".into()),
                ("result", result.into()),
                ("result_unit", unit.into()),
                ("site_id", "S-FRA-01".into()),
            ],
        )
        .await;
    }

    // QA release, signed.
    as_person("P-0011").await;
    b.goto(&format!("{base}/chains/{coi}/release")).await;
    let conditions = b.text().await;
    assert_eq!(conditions.matches("✓ met").count(), 7, "{conditions}");
    b.fill("#secret", PASSWORD).await;
    b.click("form[action$='/release'] button[type=submit]")
        .await;
    assert!(
        b.text().await.contains("Released for this patient\nyes"),
        "{}",
        b.text().await
    );

    // The final product to Los Angeles in a dry shipper, received there.
    as_person("P-0002").await;
    b.goto(&format!("{base}/chains/{coi}/steps/hand-off")).await;
    scan_bags(&b, &units).await;
    for (field, value) in [
        ("destination_site_id", "S-LAX-01".to_string()),
        ("courier", "WORLD-COURIER".into()),
        ("container_id", "DS-WALK-2".into()),
        ("seal_id", "SEAL-WALK-2".into()),
        ("expected_arrival_by", at(2880)),
        ("min_celsius", "-196".into()),
        ("max_celsius", "-150".into()),
    ] {
        b.fill(&format!("#{field}"), &value).await;
    }
    b.click("button[name=action][value=record]").await;
    assert!(b.text().await.contains("in transit"), "{}", b.text().await);
    as_person("P-0005").await;
    b.goto(&format!("{base}/chains/{coi}/steps/receive")).await;
    scan_bags(&b, &units).await;
    for (field, value) in [
        ("container_id", "DS-WALK-2"),
        ("seal_id", "SEAL-WALK-2"),
        ("min_celsius", "-190"),
        ("max_celsius", "-165"),
    ] {
        b.fill(&format!("#{field}"), value).await;
    }
    b.click("button[name=action][value=record]").await;
    assert!(
        b.text().await.contains("received at treatment center"),
        "{}",
        b.text().await
    );

    // At the bedside: the unit and the wristband, then the infusion with a second person.
    b.goto(&format!("{base}/chains/{coi}/bedside")).await;
    b.fill("#unit_scan", &units[0]).await;
    b.fill("#wristband", &coi).await;
    b.click("form[action$='/bedside'] button[type=submit]")
        .await;
    assert!(
        b.text().await.contains("Bedside check passed"),
        "{}",
        b.text().await
    );
    b.fill("#verified_by", "P-0006").await;
    b.click("form[action$='/administer'] button[type=submit]")
        .await;
    let administered = b.text().await;
    assert!(
        administered.contains("State\nadministered"),
        "{administered}"
    );
    b.check_page("administered").await;
    b.close().await;
    let verified = demo.stop_and_verify();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
}

#[tokio::test]
async fn one_patient_from_order_to_infusion_through_the_console_on_sqlite() {
    one_patient_through_the_console(None).await;
}

#[tokio::test]
async fn one_patient_from_order_to_infusion_through_the_console_on_postgres() {
    autolog_store_conformance::harness::run_on(
        autolog_store_conformance::harness::Backend::Postgres,
        "console_walk",
        |target| async move { one_patient_through_the_console(target.database_url()).await },
    )
    .await;
}

/// An out-of-specification batch: the release page shows the failing test and offers the
/// treating physician's request; once the physician has signed it, QA releases it
/// exceptionally with a second QA releaser's signature on the same screen.
#[tokio::test]
async fn an_out_of_specification_batch_is_released_exceptionally() {
    if let Some(why) = browser::missing() {
        eprintln!("skipped: the browser tests need {why}");
        return;
    }
    let demo = Demo::start();
    let base = demo.base.clone();
    let (admin, csrf) = admin(&demo).await;
    let qa = demo
        .account(&admin, &csrf, "P-0011", &[("qa_releaser", "S-BOS-01")])
        .await;
    let analyst = demo
        .account(&admin, &csrf, "P-0003", &[("qc_analyst", "*")])
        .await;
    let testing: Value = admin
        .get(format!("{base}/api/v1/chains?state=in_testing"))
        .send()
        .await
        .expect("chains")
        .json()
        .await
        .expect("json");
    let b = Browser::start("exceptional").await;
    sign_in(&b, &base, "P-0011", &qa).await;
    let mut found = None;
    for c in testing["chains"].as_array().into_iter().flatten() {
        let coi = c["coi"].as_str().unwrap_or_default();
        b.goto(&format!("{base}/chains/{coi}/release")).await;
        if !b.text().await.contains("✗ not met") {
            let site = c["treatment_site_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            found = Some((coi.to_string(), site));
            break;
        }
    }
    let (coi, site) = found.expect("a releasable chain in testing");
    let batch = b
        .client
        .find(fantoccini::Locator::Css("h1"))
        .await
        .expect("the heading")
        .text()
        .await
        .expect("text")
        .trim_start_matches("Release batch ")
        .to_string();

    // A new viability result below its specification.
    b.click("form[action='/sign-out'] button").await;
    sign_in(&b, &base, "P-0003", &analyst).await;
    record_by_hand(
        &b,
        &base,
        &coi,
        "result",
        &[
            ("batch_id", batch.clone()),
            ("test_code", "VIABILITY".into()),
            ("method", "flow cytometry".into()),
            ("result", "61".into()),
            ("result_unit", "%".into()),
            ("site_id", "S-FRA-01".into()),
        ],
    )
    .await;

    // QA sees it fail, and the way to a physician's request.
    b.click("form[action='/sign-out'] button").await;
    sign_in(&b, &base, "P-0011", &qa).await;
    b.goto(&format!("{base}/chains/{coi}/release")).await;
    let failing = b.text().await;
    assert!(failing.contains("release_tests.VIABILITY"), "{failing}");
    let request = b
        .client
        .find(fantoccini::Locator::Css(
            "a[href*='/record/exceptional-request?']",
        ))
        .await
        .expect("the way to a physician's request")
        .attr("href")
        .await
        .expect("href")
        .expect("a link");

    // The treating physician signs the request.
    let (_, physician_id) = center_staff(&site);
    let physician = demo
        .account(
            &admin,
            &csrf,
            physician_id,
            &[("treatment_physician", &site)],
        )
        .await;
    b.click("form[action='/sign-out'] button").await;
    sign_in(&b, &base, physician_id, &physician).await;
    b.goto(&format!("{base}{request}")).await;
    b.fill(
        "#justification",
        "No alternative therapy; benefit outweighs the risk of a viability of 61 %",
    )
    .await;
    b.fill("#signature", PASSWORD).await;
    b.check_page("exceptional-request").await;
    b.click("form[action$='/record/exceptional-request'] button[type=submit]")
        .await;
    assert!(
        b.text()
            .await
            .contains("chain exceptional release requested"),
        "{}",
        b.text().await
    );

    // QA releases it exceptionally, a second QA releaser signing on the same screen.
    b.click("form[action='/sign-out'] button").await;
    sign_in(&b, &base, "P-0011", &qa).await;
    b.goto(&format!("{base}/chains/{coi}/release")).await;
    let ready = b.text().await;
    assert!(ready.contains("Exceptional release"), "{ready}");
    assert_eq!(ready.matches("✓ met").count(), 7, "{ready}");
    b.check_page("exceptional-release").await;
    b.fill("#secret", PASSWORD).await;
    b.fill("#second_released_by", "P-0001").await;
    b.fill("#second_secret", PASSWORD).await;
    b.click("form[action$='/release'] button[type=submit]")
        .await;
    let released = b.text().await;
    assert!(
        released.contains("Released for this patient\nyes"),
        "{released}"
    );
    assert!(released.contains("exceptional: true"), "{released}");
    assert!(
        released.contains("second approval of the exceptional release"),
        "{released}"
    );
    b.close().await;
}
