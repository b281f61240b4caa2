//! `autolog simulate`, `ingest` of its output and `serve --demo`, run as a user runs them.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use autolog_test_support::{sign_in_http, PASSWORD};
use serde_json::Value;

use crate::common::autolog;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn simulate_is_deterministic_and_its_output_ingests_into_a_ledger_that_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    for out in [&a, &b] {
        let run = autolog(
            &data,
            &[
                "simulate",
                "--patients",
                "8",
                "--seed",
                "3",
                "--fault-rate",
                "0.25",
                "--out",
            ]
            .into_iter()
            .chain([out.to_str().expect("path")])
            .collect::<Vec<_>>(),
        );
        assert!(run.status.success(), "{}", text(&run.stderr));
    }
    let (first, second) = (std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    assert_eq!(first, second, "the same seed gives byte-identical output");
    let faults =
        std::fs::read_to_string(dir.path().join("a.ndjson.faults.ndjson")).expect("faults");
    assert_eq!(faults.lines().count(), 2, "{faults}");
    for line in faults.lines() {
        let fault: Value = serde_json::from_str(line).expect("a fault as JSON");
        assert!(fault["kind"].is_string() && fault["line"].is_u64() && fault["cois"].is_array());
    }
    let ingest = autolog(&data, &["ingest", a.to_str().expect("path")]);
    assert!(ingest.status.success(), "{}", text(&ingest.stderr));
    let summary = text(&ingest.stdout);
    assert!(
        summary.contains("lines:") && summary.contains("accepted"),
        "{summary}"
    );
    let verify = autolog(&data, &["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    // --demo seeds only a fresh data directory.
    let demo = autolog(&data, &["serve", "--demo", "--listen", "127.0.0.1:0"]);
    assert_eq!(demo.status.code(), Some(2));
    let said = text(&demo.stderr);
    assert!(said.contains("fresh data directory"), "{said}");
}

#[tokio::test]
async fn serve_demo_seeds_a_living_network_and_a_console_account() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = crate::common::sqlite_command(&dir.path().join("data"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--demo-password",
            PASSWORD,
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve --demo");
    let stdout = child.stdout.take().expect("stdout");
    let (mut totp, mut base, mut metrics) = (None, None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        if let Some(key) = line.split("authenticator app): ").nth(1) {
            totp = Some(key.trim().to_string());
        }
        if let Some(url) = line.strip_prefix("autolog metrics on ") {
            metrics = Some(url.trim().to_string());
        }
        if let Some(url) = line.strip_prefix("autolog listening on ") {
            base = Some(url.trim().to_string());
            break;
        }
    }
    let (Some(totp), Some(base)) = (totp, base) else {
        let _ = child.kill();
        panic!("serve --demo printed no TOTP key or address");
    };
    let me = sign_in_http(&base, "P-0001", &totp).await;
    let client = me.client();
    let get = |path: &str| {
        let request = client.get(format!("{base}{path}"));
        async move {
            request
                .send()
                .await
                .expect("request")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let report = get("/api/v1/reconciliation").await;
    let alerts = get("/api/v1/alerts?status=all").await;
    let chains = get("/api/v1/chains?limit=1").await;
    let coi = chains["chains"][0]["coi"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let chain = get(&format!("/api/v1/chains/{coi}")).await;
    // A COI with a mistyped check character: refused, and counted by its rule code.
    let mistyped = mistyped_check_character(&coi);
    let refused = get(&format!("/api/v1/chains/{mistyped}")).await;
    let signals = get("/api/v1/signals?from=2000-01-03&to=2100-01-04").await;
    let on_api = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("request")
        .status();
    // A method of the client's own invention is counted, but not as a label of its own.
    let brew = reqwest::Method::from_bytes(b"BREW").expect("a method token");
    let _ = client
        .request(brew, format!("{base}/healthz"))
        .send()
        .await
        .expect("request");
    let scraped = match &metrics {
        Some(url) => reqwest::get(url).await.expect("scrape").text().await.ok(),
        None => None,
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(chain["coi"], coi, "{chain}");
    assert_eq!(
        on_api,
        reqwest::StatusCode::NOT_FOUND,
        "metrics are not on the API"
    );
    let scraped = scraped.expect("serve --demo --metrics-listen printed where, and answered");
    let value = |name: &str| -> f64 {
        scraped
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{name} in {scraped}"))
    };
    assert!(value("autolog_ledger_events ") > 1000.0, "{scraped}");
    assert_eq!(
        value("autolog_chain_projection_lag_events "),
        0.0,
        "listed: caught up"
    );
    assert!(
        value("autolog_append_group_events_count ") > 0.0,
        "{scraped}"
    );
    assert!(
        value("autolog_append_commit_seconds_count ") > 0.0,
        "{scraped}"
    );
    for route in ["/api/v1/reconciliation", "/api/v1/chains/{coi}"] {
        let counted = format!(
            "autolog_http_request_duration_seconds_count{{method=\"GET\",route=\"{route}\",status=\"200\"}} "
        );
        assert_eq!(value(&counted), 1.0, "{scraped}");
    }
    assert!(
        !scraped.contains(&coi),
        "a route is labelled by its template, never by the COI it names"
    );
    assert!(
        scraped.contains("method=\"OTHER\"") && !scraped.contains("BREW"),
        "{scraped}"
    );
    assert_eq!(
        refused["error"]["rule_code"], "check_character",
        "{refused}"
    );
    let refusal =
        "autolog_refusals_total{route=\"/api/v1/chains/{coi}\",rule_code=\"check_character\"} ";
    assert_eq!(value(refusal), 1.0, "{scraped}");
    assert_signal_counters_match(&scraped, &signals);
    // Chains by state: every state has its line, and together they are every chain.
    let by_state: Vec<f64> = scraped
        .lines()
        .filter(|l| l.starts_with("autolog_chains{state="))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .collect();
    assert_eq!(by_state.len(), 13, "{scraped}");
    let chains_in_report = report["chains"].as_f64().unwrap_or_default();
    assert_eq!(by_state.iter().sum::<f64>(), chains_in_report, "{scraped}");
    // The bag swap holds both chains, with critical alerts.
    assert_eq!(
        report["open_holds"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    assert!(
        alerts
            .to_string()
            .contains("custody.unit_in_wrong_shipment"),
        "{alerts}"
    );
    assert!(
        report["chains"].as_u64().is_some_and(|n| n >= 40),
        "{report}"
    );
}

/// `coi` with another check character (the last one).
fn mistyped_check_character(coi: &str) -> String {
    let (content, check) = coi.split_at(coi.len() - 1);
    let other = if check == "A" { "B" } else { "A" };
    format!("{content}{other}")
}

/// The signal counters of a scrape: each signal's series add up to its total in the
/// weekly report over all time; the faults show; no series names a chain.
fn assert_signal_counters_match(scraped: &str, report: &Value) {
    let totals = report["totals"].as_array().expect("totals");
    for total in totals {
        let signal = total["signal"].as_str().expect("signal");
        let prefix = format!("autolog_signals_total{{signal=\"{signal}\",");
        let counted: f64 = scraped
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum();
        assert_eq!(
            Some(counted),
            total["count"].as_f64(),
            "{signal}: {scraped}"
        );
    }
    for signal in ["reconciliation_failure", "hold", "identifier_confusion"] {
        let found = totals.iter().find(|t| t["signal"] == signal);
        assert!(
            found.is_some_and(|t| t["count"].as_u64() > Some(0)),
            "{signal}: {report}"
        );
    }
    let series = scraped
        .lines()
        .filter(|l| l.starts_with("autolog_signals_total{"));
    for line in series {
        assert!(!line.contains("coi") && !line.contains("CH"), "{line}");
    }
}
