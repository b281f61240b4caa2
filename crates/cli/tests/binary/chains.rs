//! Chains of identity through the real binary: COIs issued by two server processes sharing
//! one database never collide (nor come back after a cancellation), and a bag of one
//! patient scanned into another's shipment shows as a hold in `reconcile` and `trace`.
//! Requests are sent by a person whose account is created with the CLI before the server
//! starts, signed in over HTTP.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{command, Server};
use autolog_domain::identifiers::{mod37_2_check, Coi, Din};
use autolog_domain::Instant;
use autolog_store_conformance::harness::{run_on, Backend, Target};
use reqwest::StatusCode;
use serde_json::{json, Value};

const FIN: &str = "A9999";
const LAX: (&str, &str) = ("S-LAX-01", "America/Los_Angeles");
const BOS: (&str, &str) = ("S-BOS-01", "America/New_York");
const ENROLLED_AT: &str = "2026-11-02T09:00:00-08:00[America/Los_Angeles]";
const MOD37: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*";
/// Who sends the requests (Maria Lopez of the example network), with every role.
const PERSON: &str = "P-0005";

fn run(data_dir: &Path, target: &Target, args: &[&str]) -> Output {
    command(data_dir, target)
        .args(args)
        .output()
        .expect("run autolog")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn both(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

/// Imports the example network, file by file in name order, as a steward would.
fn import_reference(data_dir: &Path, target: &Target) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reference");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("examples/reference")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let out = command(data_dir, target)
        .args(["reference", "import"])
        .args(&files)
        .output()
        .expect("run autolog reference import");
    assert!(out.status.success(), "reference import: {}", both(&out));
}

/// Gives PERSON an account with every role, as an operator would with the CLI before
/// starting a server; the TOTP secret.
fn create_account(data_dir: &Path, target: &Target) -> String {
    crate::common::create_account(data_dir, target, PERSON)
}

async fn sign_in(base: &str, totp_secret: &str) -> reqwest::Client {
    crate::common::sign_in(base, PERSON, totp_secret).await
}

/// Starts a server issuing COIs under FIN A9999 on a port the OS picks.
async fn start(data_dir: &Path, target: &Target) -> Server {
    crate::common::start_server(data_dir, target, &["--coi-issuer-fin", FIN]).await
}

/// An enrolment request for the Los Angeles treatment center; `id` makes source and key unique.
fn enrolment(id: &str, occurred_at: &str) -> Value {
    json!({
        "occurred_at": occurred_at,
        "actor": format!("person/{PERSON}"),
        "site": LAX.0,
        "source": {"system": "console", "source_event_id": format!("enrol-{id}")},
        "patient_key": format!("PK-{id}"),
        "product_code": "CART-19",
        "treatment_site_id": LAX.0,
    })
}

/// POSTs `body` to `base` + `path`; the status and the JSON answer.
async fn post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let answer = client
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .expect("request");
    let status = answer.status();
    let v: Value = answer.json().await.expect("JSON answer");
    (status, v)
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> (StatusCode, Value) {
    let answer = client
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("request");
    let status = answer.status();
    let v: Value = answer.json().await.expect("JSON answer");
    (status, v)
}

/// Enrols and returns the issued COI, asserting a 201 that carries it.
async fn enrol(client: &reqwest::Client, base: &str, body: &Value) -> String {
    let (status, v) = post(client, base, "/api/v1/chains", body).await;
    assert_eq!(status, StatusCode::CREATED, "enrolment: {v}");
    v["coi"]
        .as_str()
        .expect("the answer carries the COI")
        .to_string()
}

/// A COI as issued: canonical, well formed (check character included), under FIN A9999.
fn assert_issued_coi(coi: &str) {
    let parsed = Coi::parse("coi", coi).unwrap_or_else(|e| panic!("{coi} is not a COI: {e}"));
    assert_eq!(
        parsed.to_string(),
        coi,
        "the COI is given in canonical form"
    );
    assert!(coi.starts_with(&format!("CH{FIN}")), "{coi} is under {FIN}");
}

async fn cois_unique(target: Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    import_reference(dir.path(), &target);
    let secret = create_account(dir.path(), &target);
    let mut first = start(dir.path(), &target).await;
    let mut second = start(dir.path(), &target).await;
    let bases = [first.base.clone(), second.base.clone()];
    // One sign-in: the session is in the shared database, so it works on both servers.
    let client = sign_in(&bases[0], &secret).await;

    // 4 tasks x 10 enrolments, alternating between the two servers.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (client, bases) = (client.clone(), bases.clone());
        tasks.push(tokio::spawn(async move {
            let mut issued = Vec::new();
            for i in 0..10 {
                let server = (t + i) % 2;
                let id = format!("T{t}-{i}");
                let coi = enrol(&client, &bases[server], &enrolment(&id, ENROLLED_AT)).await;
                issued.push((coi, format!("PK-{id}"), server));
            }
            issued
        }));
    }
    let mut issued = Vec::new();
    for t in tasks {
        issued.extend(t.await.expect("enrolling task"));
    }
    assert_eq!(issued.len(), 40);
    let mut cois: HashSet<String> = HashSet::new();
    for (coi, _, _) in &issued {
        assert_issued_coi(coi);
        assert!(cois.insert(coi.clone()), "COI {coi} was issued twice");
    }
    // Each chain is seen by the other server, as enrolled, for its patient.
    for (coi, key, server) in &issued {
        let other = &bases[1 - server];
        let (status, chain) = get(&client, other, &format!("/api/v1/chains/{coi}")).await;
        assert_eq!(status, StatusCode::OK, "{coi}: {chain}");
        assert_eq!(chain["coi"], coi.as_str());
        assert_eq!(chain["state"], "enrolled", "{coi}: {chain}");
        assert_eq!(chain["patient_key"], key.as_str(), "{coi}");
    }
    // A resent enrolment (same source), to the other server, answers the same chain.
    let (coi0, key0, server0) = issued[0].clone();
    let resend_id = key0.trim_start_matches("PK-").to_string();
    let (status, v) = post(
        &client,
        &bases[1 - server0],
        "/api/v1/chains",
        &enrolment(&resend_id, ENROLLED_AT),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a resend appends nothing: {v}");
    assert_eq!(v["coi"], coi0.as_str(), "a resend answers the first COI");

    // Cancel one chain.
    let cancelled = issued[7].0.clone();
    let (status, v) = post(
        &client,
        &bases[0],
        "/api/v1/events",
        &json!({
            "stream": format!("coi/{cancelled}"),
            "occurred_at": "2026-11-03T10:00:00-08:00[America/Los_Angeles]",
            "actor": format!("person/{PERSON}"),
            "site": LAX.0,
            "source": {"system": "console", "source_event_id": "cancel-T1-0"},
            "body": {"type": "chain.cancelled", "version": 1, "data": {"cancellation_reason": "patient withdrew consent"}},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "cancellation: {v}");
    let (_, chain) = get(&client, &bases[1], &format!("/api/v1/chains/{cancelled}")).await;
    assert_eq!(chain["state"], "cancelled", "{chain}");

    // Five more enrolments: new COIs, never the cancelled one.
    for i in 0..5 {
        let coi = enrol(
            &client,
            &bases[i % 2],
            &enrolment(&format!("AFTER-{i}"), ENROLLED_AT),
        )
        .await;
        assert_issued_coi(&coi);
        assert_ne!(coi, cancelled, "a cancelled COI is never issued again");
        assert!(cois.insert(coi.clone()), "COI {coi} was issued twice");
    }
    // Nor can it be brought in as an upstream COI.
    let mut again = enrolment("UPSTREAM-1", ENROLLED_AT);
    again["coi"] = json!(cancelled);
    again["upstream_system"] = json!("mfr-portal");
    for base in &bases {
        let (status, v) = post(&client, base, "/api/v1/chains", &again).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
        assert_eq!(v["error"]["field"], "coi", "{v}");
        assert_eq!(v["error"]["value"], cancelled.as_str(), "{v}");
    }
    let (_, chain) = get(&client, &bases[0], &format!("/api/v1/chains/{cancelled}")).await;
    assert_eq!(
        chain["state"], "cancelled",
        "the refusal changed nothing: {chain}"
    );
    assert_eq!(
        chain["timeline"].as_array().map(Vec::len),
        Some(2),
        "{chain}"
    );

    first.kill();
    second.kill();
    let verify = run(dir.path(), &target, &["verify"]);
    assert_eq!(verify.status.code(), Some(0), "verify: {}", both(&verify));

    // The operator's listing and work queue, from the chain projection.
    let listed = run(
        dir.path(),
        &target,
        &["chains", "--limit", "1000", "--json"],
    );
    assert_eq!(listed.status.code(), Some(0), "chains: {}", both(&listed));
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let summaries = listed["chains"].as_array().expect("chains");
    let listed_cois: HashSet<String> = summaries
        .iter()
        .filter_map(|c| c["coi"].as_str().map(str::to_string))
        .collect();
    assert!(
        listed_cois.is_superset(&cois),
        "every chain issued is listed"
    );
    assert_eq!(listed_cois.len(), summaries.len(), "each once");
    let waiting_at_lax: HashSet<&str> = summaries
        .iter()
        .filter(|c| c["state"] == "enrolled" && c["collection_site_id"] == LAX.0)
        .filter_map(|c| c["coi"].as_str())
        .collect();
    assert!(
        !waiting_at_lax.contains(cancelled.as_str()),
        "the cancelled chain waits no more"
    );
    let work = run(
        dir.path(),
        &target,
        &["work", LAX.0, "--limit", "1000", "--json"],
    );
    assert_eq!(work.status.code(), Some(0), "work: {}", both(&work));
    let work: Value = serde_json::from_slice(&work.stdout).expect("JSON");
    let to_collect: HashSet<&str> = work["to_collect"]["chains"]
        .as_array()
        .expect("to_collect")
        .iter()
        .filter_map(|c| c["coi"].as_str())
        .collect();
    assert!(to_collect.len() >= 39, "{work}");
    assert_eq!(to_collect, waiting_at_lax, "{work}");
    let refused = run(dir.path(), &target, &["chains", "--state", "shipped"]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        both(&refused).contains("must be one of"),
        "{}",
        both(&refused)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cois_are_unique_across_server_processes_on_sqlite() {
    run_on(Backend::Sqlite, "cois_unique", cois_unique).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cois_are_unique_across_server_processes_on_postgres() {
    run_on(Backend::Postgres, "cois_unique", cois_unique).await;
}

/// SIGKILL while chains are enrolled and listed at once (the listing folds them into the
/// chain projection): the projection is left at its last committed position, and `verify`
/// finds it equal to the ledger's fold for every chain.
async fn kill_while_projecting(target: Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    import_reference(dir.path(), &target);
    let secret = create_account(dir.path(), &target);
    let mut server = crate::common::start_server(
        dir.path(),
        &target,
        &["--coi-issuer-fin", FIN, "--rate-limit-per-second", "0"],
    )
    .await;
    let base = server.base.clone();
    let client = sign_in(&base, &secret).await;
    let enrolled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..3 {
        let (client, base, enrolled, stop) =
            (client.clone(), base.clone(), enrolled.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..300 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let body = enrolment(&format!("K{t}-{i}"), ENROLLED_AT);
                let sent = client
                    .post(format!("{base}/api/v1/chains"))
                    .json(&body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        enrolled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
        }));
    }
    let (reader, reader_stop) = (client.clone(), stop.clone());
    let reader_base = base.clone();
    tasks.push(tokio::spawn(async move {
        while !reader_stop.load(std::sync::atomic::Ordering::Relaxed) {
            let listed = reader
                .get(format!("{reader_base}/api/v1/chains?limit=1"))
                .send()
                .await;
            if listed.is_err() {
                break;
            }
        }
    }));
    // Kill once enough chains exist, while enrolments and listings still run (no timing
    // is asserted: a slow machine just waits longer).
    for _ in 0..6000 {
        if enrolled.load(std::sync::atomic::Ordering::Relaxed) >= 60 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await.expect("task");
    }
    let enrolled = enrolled.load(std::sync::atomic::Ordering::Relaxed);
    assert!(enrolled >= 60, "{enrolled} chains enrolled before the kill");
    let verify = run(dir.path(), &target, &["verify"]);
    let said = both(&verify);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "verify after the kill: {said}"
    );
    let counted = said
        .split("chain projection equals the fold of the ledger for ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no projection line in {said}"));
    assert!(
        counted >= enrolled,
        "{counted} chains checked, {enrolled} enrolled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_while_projecting_leaves_the_projection_equal_to_the_ledger_on_sqlite() {
    run_on(Backend::Sqlite, "kill_projecting", kill_while_projecting).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_while_projecting_leaves_the_projection_equal_to_the_ledger_on_postgres() {
    run_on(Backend::Postgres, "kill_projecting", kill_while_projecting).await;
}

/// An instant `hours` after `t0` (microseconds UTC), in `zone`, in the RFC 9557 form a
/// source sends.
fn at(t0: i64, hours: i64, zone: &str) -> String {
    Instant::from_micros(t0 + hours * 3_600_000_000)
        .expect("instant")
        .timestamp()
        .in_tz(zone)
        .expect("zone")
        .to_string()
}

/// A DIN's barcode data as scanned: `=` + DIN + type-3 flags (60 + its MOD 37-2 check).
fn din_barcode(din: &str) -> String {
    let body = &din[..13];
    let k = mod37_2_check(body).expect("alphabet");
    let index = MOD37.find(k).expect("in alphabet");
    format!("={body}{}", 60 + index)
}

struct Patient {
    key: String,
    coi: String,
    dins: Vec<String>,
    t0: i64,
}

/// A step of `p`'s chain at `site`, recorded by the signed-in PERSON (the people who did
/// it are named in `data`).
fn step(p: &Patient, id: &str, hours: i64, site: (&str, &str), kind: &str, data: Value) -> Value {
    json!({
        "stream": format!("coi/{}", p.coi),
        "occurred_at": at(p.t0, hours, site.1),
        "actor": format!("person/{PERSON}"),
        "site": site.0,
        "source": {"system": "console", "source_event_id": format!("{}/{id}", p.key)},
        "body": {"type": kind, "version": 1, "data": data},
    })
}

fn collection(p: &Patient) -> Value {
    step(
        p,
        "collect",
        5,
        LAX,
        "chain.collected",
        json!({
            "collection_site_id": LAX.0, "operator_id": "P-0005", "device_id": "APH-LAX-01",
            "started_at": at(p.t0, 1, LAX.1), "ended_at": at(p.t0, 5, LAX.1), "dins": p.dins,
        }),
    )
}

/// The SHIP-OUT leg from Los Angeles to Boston: the sender's manifest.
fn handoff(p: &Patient) -> Value {
    step(
        p,
        "handoff-out",
        6,
        LAX,
        "custody.handed_off",
        json!({
            "handoff_id": format!("H-{}-out", p.key),
            "step_code": "SHIP-OUT",
            "from_site_id": LAX.0,
            "handed_off_by": "P-0005",
            "destination_site_id": BOS.0,
            "courier": "WORLD-COURIER",
            "units": p.dins,
            "unit_count": p.dins.len(),
            "container_id": format!("DS-{}-out", p.key),
            "seal_id": format!("SEAL-{}-out", p.key),
            "expected_arrival_by": at(p.t0, 36, "UTC"),
            "temperature_range": {"min_celsius": 2.0, "max_celsius": 8.0},
        }),
    )
}

/// The receipt in Boston: what was scanned on arrival.
fn receipt(p: &Patient, labels: Vec<Value>) -> Value {
    step(
        p,
        "receipt-out",
        30,
        BOS,
        "custody.received",
        json!({
            "handoff_id": format!("H-{}-out", p.key),
            "step_code": "RECEIVE-MFG",
            "receiving_site_id": BOS.0,
            "received_by": "P-0002",
            "scanned_labels": labels,
            "container_id": format!("DS-{}-out", p.key),
            "seal_id": format!("SEAL-{}-out", p.key),
            "seal_intact": true,
            "temperature_log": {"min_celsius": 3.1, "max_celsius": 6.8, "logger_id": "TL-0042"},
        }),
    )
}

/// Sends one event; asserts it is recorded (201) and returns the answer.
async fn append(client: &reqwest::Client, base: &str, event: &Value) -> Value {
    let (status, v) = post(client, base, "/api/v1/events", event).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{} refused: {v}",
        event["body"]["type"]
    );
    v
}

async fn patient(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    t0: i64,
    first_din: u32,
) -> Patient {
    let mut body = enrolment(key, &at(t0, 0, LAX.1));
    body["patient_key"] = json!(key);
    let coi = enrol(client, base, &body).await;
    let dins = (first_din..first_din + 2)
        .map(|n| {
            Din::parse("din", &format!("A999926{n:06}"))
                .expect("DIN")
                .to_string()
        })
        .collect();
    Patient {
        key: key.to_string(),
        coi,
        dins,
        t0,
    }
}

async fn hold_shows_in_reconcile_and_trace(target: Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    import_reference(dir.path(), &target);
    let secret = create_account(dir.path(), &target);
    let mut server = start(dir.path(), &target).await;
    let base = server.base.clone();
    let client = sign_in(&base, &secret).await;
    // Thirty days ago, on a whole second: every step has happened, none is in the future.
    let now = Instant::now().micros();
    let t0 = now - now.rem_euclid(1_000_000) - 30 * 24 * 3_600_000_000;
    let a = patient(&client, &base, "PK-SWAP-A", t0, 100_000).await;
    let b = patient(&client, &base, "PK-SWAP-B", t0, 200_000).await;
    for p in [&a, &b] {
        for event in [collection(p), handoff(p)] {
            let v = append(&client, &base, &event).await;
            assert_eq!(v["alerts"].as_array().map(Vec::len).unwrap_or(0), 0, "{v}");
        }
    }
    // B's shipment holds A's first bag in place of B's.
    let labels = vec![
        json!({"unit": din_barcode(&a.dins[0])}),
        json!({"unit": din_barcode(&b.dins[1]), "coi": b.coi}),
    ];
    let v = append(&client, &base, &receipt(&b, labels)).await;
    assert!(
        !v["alerts"].as_array().expect("alerts").is_empty(),
        "the swap raised alerts: {v}"
    );
    for p in [&a, &b] {
        let (_, chain) = get(&client, &base, &format!("/api/v1/chains/{}", p.coi)).await;
        assert_eq!(chain["state"], "on_hold", "{}: {chain}", p.key);
    }

    // The CLI opens the SQLite file while the server still holds it.
    let out = run(dir.path(), &target, &["reconcile"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "not clean: {}", both(&out));
    assert!(text.contains("findings below"), "{text}");
    for p in [&a, &b] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("open hold ") && l.contains(&format!(" on {} ", p.coi))),
            "an open hold on {}: {text}",
            p.key
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("unit {} seen on chains", a.dins[0]))),
        "{text}"
    );
    // A's own shipment was never received: its handoff is still open.
    assert!(
        text.contains(&format!("unanswered handoff H-{}-out of {}", a.key, a.coi)),
        "{text}"
    );

    let out = run(dir.path(), &target, &["reconcile", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["clean"], false, "{report}");
    let holds = report["open_holds"].as_array().expect("open_holds");
    assert_eq!(holds.len(), 2, "{report}");
    let held: HashSet<&str> = holds.iter().filter_map(|h| h["coi"].as_str()).collect();
    assert_eq!(
        held,
        HashSet::from([a.coi.as_str(), b.coi.as_str()]),
        "{report}"
    );
    let several = report["units_on_several_chains"]
        .as_array()
        .expect("units_on_several_chains");
    assert_eq!(several.len(), 1, "{report}");
    assert!(several[0].to_string().contains(&a.dins[0]), "{report}");

    let out = run(dir.path(), &target, &["trace", &b.coi]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("state on_hold"), "{text}");
    assert!(text.contains("ON HOLD"), "{text}");
    assert!(text.contains(&a.dins[0]), "the hold names A's bag: {text}");

    let out = run(dir.path(), &target, &["trace", "--json", &b.coi]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    let chain: Value = serde_json::from_slice(&out.stdout).expect("JSON chain");
    assert_eq!(chain["coi"], b.coi.as_str());
    assert_eq!(chain["state"], "on_hold", "{chain}");
    assert_eq!(
        chain["resume_state"], "received_at_manufacturing",
        "{chain}"
    );
    assert!(
        chain["holds"][0]["findings"]
            .to_string()
            .contains(&a.dins[0]),
        "{chain}"
    );
    server.kill();

    // A fresh network with one clean enrolment reconciles clean.
    let fresh = tempfile::tempdir().expect("tempdir");
    import_reference(fresh.path(), &target);
    let secret = create_account(fresh.path(), &target);
    let mut server = start(fresh.path(), &target).await;
    // A new network, a new account: signed in there.
    let client = sign_in(&server.base, &secret).await;
    let coi = enrol(&client, &server.base, &enrolment("CLEAN-1", ENROLLED_AT)).await;
    assert_issued_coi(&coi);
    let out = run(fresh.path(), &target, &["reconcile"]);
    assert_eq!(out.status.code(), Some(0), "clean: {}", both(&out));
    assert!(stdout(&out).contains("1 chains as of"), "{}", stdout(&out));
    assert!(stdout(&out).contains("clean"), "{}", stdout(&out));
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconcile_and_trace_show_a_hold() {
    run_on(
        Backend::Sqlite,
        "reconcile_hold",
        hold_shows_in_reconcile_and_trace,
    )
    .await;
}

#[tokio::test]
async fn signer_set_secret_reads_the_secret_from_stdin_and_never_prints_it() {
    run_on(Backend::Sqlite, "cli_signer", |target| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        import_reference(dir.path(), &target);
        let set = |person: &str, secret: &str| {
            let mut child = command(dir.path(), &target)
                .args(["signer", "set-secret", person, "--set-by", "person/P-ADMIN"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn");
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{secret}\n").as_bytes())
                .expect("write");
            child.wait_with_output().expect("run")
        };
        let ok = set("P-0008", "correct horse battery staple");
        assert!(ok.status.success(), "{}", both(&ok));
        assert!(stdout(&ok).contains("signing secret set for P-0008"));
        assert!(
            !both(&ok).contains("correct horse"),
            "the secret is never printed"
        );
        let short = set("P-0008", "short");
        assert!(!short.status.success());
        assert!(both(&short).contains("at least 12"), "{}", both(&short));
        let unknown = set("P-9999", "correct horse battery staple");
        assert!(!unknown.status.success());
        assert!(
            both(&unknown).contains("not a registered person"),
            "{}",
            both(&unknown)
        );
    })
    .await;
}
