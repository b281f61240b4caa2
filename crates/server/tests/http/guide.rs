//! The integration guide runs as written: the examples block of `docs/integration.md` is
//! read and every request in it is sent, in order, to a running server over the example
//! network, each with the token its system is issued there. The rest of the journey between
//! the examples (collection, manufacturing, samples to the laboratory, the other results,
//! the signed release, the final shipment, the bedside check) is recorded as the other
//! systems send it. On SQLite and PostgreSQL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use autolog_app::{Autolog, ShiftedClock};
use autolog_domain::identifiers::{Coi, Din, UnitId};
use autolog_domain::Instant;
use autolog_store_conformance::harness::{run_on, Backend, Target};
use serde_json::{json, Value};

/// The COI the guide's requests name: the first chain the issuer `A9999` issues in 2026.
const COI: &str = "CHA999926000001*";
/// The time the guide runs at: after its last example (2026-12-01), whenever the test runs.
const NOW: &str = "2026-12-07T12:00:00Z";
pub(crate) const SIGNING_SECRET: &str = "correct horse battery staple";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One command of the guide's examples block.
#[derive(Debug)]
enum Command {
    /// `VAR=$(autolog token issue <system> --site <site>... | jq -r .token)`
    Token {
        var: String,
        system: String,
        sites: Vec<String>,
    },
    /// `curl [-X METHOD] -H 'Authorization: Bearer $VAR' [-H 'Content-Type: ...']
    /// [--data-binary @file] URL`
    Request {
        method: String,
        path: String,
        token_var: String,
        content_type: Option<String>,
        file: Option<String>,
    },
}

/// The shell block under "### Examples", its continuation lines joined, comments left out.
fn examples_block() -> Vec<String> {
    let guide = std::fs::read_to_string(repository().join("docs/integration.md"))
        .expect("docs/integration.md");
    let after = guide
        .split("### Examples")
        .nth(1)
        .expect("the guide has an Examples section");
    let block = after
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the Examples section has a sh block");
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    lines
}

/// Splits a command line into words as a POSIX shell would for these lines: single and
/// double quotes group, and are removed.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

fn parse(line: &str) -> Command {
    let w = words(line);
    if let Some(var) = w.first().and_then(|f| f.strip_suffix("=$(autolog")) {
        let at = |flag: &str| -> Vec<String> {
            w.windows(2)
                .filter(|p| p[0] == flag)
                .map(|p| p[1].clone())
                .collect()
        };
        let issue = w.iter().position(|x| x == "issue").expect("token issue");
        return Command::Token {
            var: var.to_string(),
            system: w[issue + 1].clone(),
            sites: at("--site"),
        };
    }
    assert_eq!(w.first().map(String::as_str), Some("curl"), "{line}");
    let (mut method, mut path, mut token_var, mut content_type, mut file) =
        ("GET".to_string(), None, None, None, None);
    let mut i = 1;
    while i < w.len() {
        let next = w.get(i + 1).cloned().unwrap_or_default();
        match w[i].as_str() {
            "-X" => method = next,
            "-H" => {
                if let Some(var) = next.strip_prefix("Authorization: Bearer $") {
                    token_var = Some(var.to_string());
                } else if let Some(t) = next.strip_prefix("Content-Type: ") {
                    content_type = Some(t.to_string());
                } else {
                    panic!("unexpected header {next} in {line}");
                }
            }
            "--data-binary" => {
                file = Some(next.strip_prefix('@').expect("@file").to_string());
            }
            url => {
                path = Some(
                    url.strip_prefix("http://127.0.0.1:8080")
                        .unwrap_or_else(|| panic!("a local URL: {url}"))
                        .to_string(),
                );
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    Command::Request {
        method,
        path: path.expect("a URL"),
        token_var: token_var.expect("a bearer token"),
        content_type,
        file,
    }
}

pub(crate) async fn spawn(target: &Target) -> (Arc<Autolog>, String) {
    let clock = Arc::new(ShiftedClock::default());
    let now = Instant::parse_rfc3339("now", NOW).expect("instant");
    clock.advance_seconds((now.micros() - Instant::now().micros()) / 1_000_000);
    let s = crate::common::spawn_app(
        target,
        crate::common::Setup {
            clock: Some(clock),
            ..crate::common::Setup::examples()
        },
    )
    .await;
    s.app
        .set_signing_secret("P-0008", SIGNING_SECRET, "person/P-ADMIN")
        .await
        .expect("signing secret");
    (s.app, s.base)
}

/// One fact of the journey between the examples, as its system sends it.
fn fact(id: &str, at: &str, site: &str, actor: &str, kind: &str, data: Value) -> Value {
    let mut data = data;
    if let Some(field) = autolog_domain::access::signature::signer_field(kind) {
        data["signature"] = json!({"signer_id": data[field], "secret": SIGNING_SECRET});
    }
    json!({
        "stream": format!("coi/{COI}"), "occurred_at": at, "actor": format!("person/{actor}"),
        "site": site, "source": {"system": "guide", "source_event_id": id},
        "body": {"type": kind, "version": 1, "data": data},
    })
}

fn din() -> String {
    Din::parse("din", "A999926000001").expect("DIN").to_string()
}

fn unit() -> String {
    let coi = Coi::parse("coi", COI).expect("COI");
    UnitId::new(&coi, "S0001", "A0").expect("unit").to_string()
}

const LAX: &str = "S-LAX-01";
const BOS: &str = "S-BOS-01";
const FRA: &str = "S-FRA-01";

/// What happens before an example request, by the file it sends.
fn before(file: &str) -> Vec<Value> {
    let (din, unit, batch) = (din(), unit(), "B-PK-0042");
    match file {
        "examples/integration/courier-shipping.epcis.jsonld" => vec![fact(
            "APH-0042",
            "2026-11-10T12:00:00-08:00[America/Los_Angeles]",
            LAX,
            "P-0005",
            "chain.collected",
            json!({"collection_site_id": LAX, "operator_id": "P-0005", "device_id": "APH-LAX-01",
                   "started_at": "2026-11-10T08:00:00-08:00", "ended_at": "2026-11-10T12:00:00-08:00", "dins": [din]}),
        )],
        "examples/integration/lims-test-result.json" => vec![
            fact(
                "MES-B-0042",
                "2026-11-11T12:00:00-05:00[America/New_York]",
                BOS,
                "P-0002",
                "batch.created",
                json!({"batch_id": batch, "site_id": BOS, "created_by": "P-0002", "source_dins": [din]}),
            ),
            fact(
                "MES-OP020-0042",
                "2026-11-11T13:00:00-05:00[America/New_York]",
                BOS,
                "P-0002",
                "chain.step_performed",
                json!({"step_code": "MANUFACTURE", "site_id": BOS, "performed_by": "P-0002", "equipment_ids": ["BIO-BOS-01"],
                       "started_at": "2026-11-11T13:00:00-05:00", "ended_at": "2026-11-18T09:00:00-05:00"}),
            ),
            fact(
                "MES-LV-0042",
                "2026-11-11T14:00:00-05:00[America/New_York]",
                BOS,
                "P-0002",
                "batch.material_consumed",
                json!({"batch_id": batch, "material": "LV-CD19", "lot": "LV19-2026-014", "quantity": 2.5,
                       "quantity_unit": "mL", "site_id": BOS, "recorded_by": "P-0002", "step_code": "MANUFACTURE"}),
            ),
            fact(
                "MES-OP090-0042",
                "2026-11-18T10:00:00-05:00[America/New_York]",
                BOS,
                "P-0002",
                "chain.step_performed",
                json!({"step_code": "CRYO", "site_id": BOS, "performed_by": "P-0002", "equipment_ids": ["CRF-BOS-01"],
                       "started_at": "2026-11-18T10:00:00-05:00"}),
            ),
            fact(
                "MES-UNITS-0042",
                "2026-11-18T11:00:00-05:00[America/New_York]",
                BOS,
                "P-0002",
                "batch.units_produced",
                json!({"batch_id": batch, "site_id": BOS, "recorded_by": "P-0002", "units": [unit]}),
            ),
            fact(
                "MES-SMP-0042",
                "2026-11-18T12:00:00-05:00[America/New_York]",
                BOS,
                "P-0002",
                "sample.handed_off",
                json!({"shipment_id": "SMP-0042", "samples": ["SMP-0042-QC", "SMP-0042-RET"], "from_site_id": BOS,
                       "destination_site_id": FRA, "handed_off_by": "P-0002"}),
            ),
            fact(
                "LIMS-SMP-0042",
                "2026-11-19T09:00:00+01:00[Europe/Berlin]",
                FRA,
                "P-0003",
                "sample.received",
                json!({"shipment_id": "SMP-0042", "samples": ["SMP-0042-QC", "SMP-0042-RET"], "receiving_site_id": FRA,
                       "received_by": "P-0003"}),
            ),
            fact(
                "LIMS-QC-0042",
                "2026-11-19T10:00:00+01:00[Europe/Berlin]",
                FRA,
                "P-0003",
                "chain.step_performed",
                json!({"step_code": "QC-TEST", "site_id": FRA, "performed_by": "P-0003",
                       "started_at": "2026-11-19T10:00:00+01:00", "ended_at": "2026-11-20T09:00:00+01:00"}),
            ),
        ],
        "examples/integration/treatment-procedure.fhir.json" => {
            let mut facts: Vec<Value> = [
                ("CAR-EXPR", json!(41.0), Some("%")),
                ("VCN", json!(2.1), Some("copies/cell")),
                ("STERILITY", json!("negative"), None),
                ("ENDOTOXIN", json!(1.2), Some("EU/mL")),
                ("MYCOPLASMA", json!("not detected"), None),
            ]
            .into_iter()
            .map(|(code, result, unit)| {
                let mut data = json!({"batch_id": batch, "test_code": code, "method": "per specification",
                                      "result": result, "site_id": FRA, "analyst_id": "P-0003"});
                if let Some(u) = unit {
                    data["result_unit"] = json!(u);
                }
                fact(&format!("LIMS-{code}-0042"), "2026-11-20T11:00:00+01:00[Europe/Berlin]", FRA, "P-0003",
                     "batch.test_result_recorded", data)
            })
            .collect();
            facts.extend([
                fact("QMS-REL-0042", "2026-11-21T10:00:00-05:00[America/New_York]", BOS, "P-0008", "chain.released",
                    json!({"batch_id": batch, "intended_patient_key": "PK-0042", "site_id": BOS,
                           "released_by": "P-0008", "units": [unit]})),
                fact("MES-SHIP-0042", "2026-11-25T09:00:00-05:00[America/New_York]", BOS, "P-0002", "custody.handed_off",
                    json!({"handoff_id": "H-PK-0042-tc", "step_code": "SHIP-TC", "from_site_id": BOS,
                           "handed_off_by": "P-0002", "destination_site_id": LAX, "courier": "WORLD-COURIER",
                           "units": [unit], "unit_count": 1, "container_id": "DS-0042-TC", "seal_id": "SEAL-0042-TC",
                           "expected_arrival_by": "2026-11-28T00:00:00Z",
                           "temperature_range": {"min_celsius": -196.0, "max_celsius": -150.0}})),
                fact("EMR-RCV-0042", "2026-11-27T10:00:00-08:00[America/Los_Angeles]", LAX, "P-0005", "custody.received",
                    json!({"handoff_id": "H-PK-0042-tc", "step_code": "RECEIVE-TC", "receiving_site_id": LAX,
                           "received_by": "P-0005", "scanned_labels": [{"unit": unit, "coi": COI}],
                           "container_id": "DS-0042-TC", "seal_id": "SEAL-0042-TC", "seal_intact": true,
                           "temperature_log": {"min_celsius": -190.0, "max_celsius": -172.5, "logger_id": "TL-BOM-07"}})),
                fact("EMR-BEDSIDE-0042", "2026-12-01T10:00:00-08:00[America/Los_Angeles]", LAX, "P-0005",
                    "chain.bedside_verified",
                    json!({"unit_scan": unit, "patient_key": "PK-0042", "wristband_coi": COI, "site_id": LAX,
                           "verified_by": "P-0005"})),
                fact("EMR-THAW-0042", "2026-12-01T10:05:00-08:00[America/Los_Angeles]", LAX, "P-0005",
                    "chain.step_performed",
                    json!({"step_code": "THAW", "site_id": LAX, "performed_by": "P-0005",
                           "started_at": "2026-12-01T10:05:00-08:00"})),
            ]);
            facts
        }
        _ => Vec::new(),
    }
}

async fn the_guide_runs_as_written(t: Target) {
    let (app, base) = spawn(&t).await;
    let client = reqwest::Client::new();
    let mut tokens: HashMap<String, String> = HashMap::new();
    let commands: Vec<Command> = examples_block().iter().map(|l| parse(l)).collect();
    let requests = commands
        .iter()
        .filter(|c| matches!(c, Command::Request { .. }))
        .count();
    assert_eq!(requests, 8, "the guide's example requests: {commands:?}");
    for command in commands {
        match command {
            Command::Token { var, system, sites } => {
                let issued = app
                    .issue_token(&system, &sites, None, "person/P-ADMIN")
                    .await
                    .unwrap_or_else(|e| panic!("token for {system}: {e}"));
                let token = issued.token;
                tokens.insert(var, token);
            }
            Command::Request {
                method,
                path,
                token_var,
                content_type,
                file,
            } => {
                for fact in before(file.as_deref().unwrap_or_default()) {
                    let recorded = app
                        .append_json(fact.to_string().as_bytes())
                        .await
                        .unwrap_or_else(|e| panic!("{}: {e}", fact["body"]["type"]));
                    assert!(
                        recorded.alerts.is_empty(),
                        "{}",
                        serde_json::json!(recorded)
                    );
                }
                let token = tokens
                    .get(&token_var)
                    .unwrap_or_else(|| panic!("${token_var} is issued in the guide"));
                let mut request = client
                    .request(method.parse().expect("method"), format!("{base}{path}"))
                    .bearer_auth(token);
                if let Some(t) = &content_type {
                    request = request.header("content-type", t);
                }
                if let Some(f) = &file {
                    let body = std::fs::read(repository().join(f)).expect("example file");
                    request = request.body(body);
                }
                let answer = request.send().await.expect("send");
                let status = answer.status();
                let text = answer.text().await.expect("answer");
                assert!(
                    status.is_success(),
                    "{method} {path} ({file:?}) with ${token_var}: {status} {text}"
                );
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                check_answer(&path, &body, &text);
            }
        }
    }
    let chain = app.chain(COI, None, None).await.expect("chain");
    assert_eq!(chain.state, "administered", "{chain:?}");
    let alerts = app
        .alerts(&autolog_app::AlertQuery {
            status: Some("all".into()),
            coi: Some(COI.into()),
            site_id: None,
        })
        .await
        .expect("alerts");
    assert!(
        alerts.is_empty(),
        "the guide's journey is clean: {alerts:?}"
    );
}

/// What each answer must say beyond its success.
fn check_answer(path: &str, body: &Value, text: &str) {
    if path == "/api/v1/chains" {
        assert_eq!(body["coi"], COI, "the guide names the COI issued: {text}");
    }
    if path == "/epcis/capture" {
        let chain = body["chain"].as_array().expect("chain outcomes");
        assert_eq!(chain.len(), 1, "{text}");
        assert_eq!(chain[0]["status"], "recorded", "{text}");
    }
    if path.starts_with("/epcis/events") || path.starts_with("/fhir/Bundle") {
        assert!(text.contains(COI), "{path}: {text}");
    }
}

#[tokio::test]
async fn the_integration_guide_runs_as_written_on_sqlite() {
    run_on(Backend::Sqlite, "guide", the_guide_runs_as_written).await;
}

#[tokio::test]
async fn the_integration_guide_runs_as_written_on_postgres() {
    run_on(Backend::Postgres, "guide", the_guide_runs_as_written).await;
}
