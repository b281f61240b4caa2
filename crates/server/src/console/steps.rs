//! Doing the work: the step forms of a chain (collection, custody handoff, receipt), made
//! for a keyboard-wedge scanner. A scan field takes what the scanner types (data, then
//! Enter): Enter adds the scan and shows the form again with every scan so far, each
//! compared with the ledger (whose bag it is, whether it belongs on this shipment); the
//! scans ride along in the form, so nothing needs JavaScript. The record button names the
//! fact it records; the step carries an idempotency key made when the form was first
//! shown, so a double click or a resent form records it once. Where a verification
//! policy asks for verifiers, they re-authenticate in the same form on the same device.
//! A refusal shows beside the form, everything typed and scanned kept.

use std::sync::Arc;

use autolog_app::{AppError, Autolog, ChainAnswer, VerificationNeeded};
use autolog_domain::identifiers::scan::{parse_scan, Scanned};
use autolog_domain::identifiers::Din;
use autolog_domain::ledger::zone::{check_zone, local_time};
use autolog_domain::{FieldError, StreamId};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::{json, Value};

use super::page::{coi_large, csrf_field, page, Nav};
use super::viewer::{viewer, ConsoleError, Viewer};

/// The steps a form records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Collection,
    Handoff,
    Receipt,
}

impl Step {
    fn parse(name: &str) -> Result<Step, ConsoleError> {
        match name {
            "collect" => Ok(Step::Collection),
            "hand-off" => Ok(Step::Handoff),
            "receive" => Ok(Step::Receipt),
            _ => Err(AppError::NotFound {
                what: "step form",
                id: name.to_string(),
            }
            .into()),
        }
    }

    fn event_type(self) -> &'static str {
        match self {
            Step::Collection => "chain.collected",
            Step::Handoff => "custody.handed_off",
            Step::Receipt => "custody.received",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Step::Collection => "Record the collection",
            Step::Handoff => "Hand off to a courier",
            Step::Receipt => "Receive the shipment",
        }
    }
}

/// What the form holds: every field as sent (scans repeated).
#[derive(Debug, Default, Clone)]
pub(crate) struct Filled {
    pub pairs: Vec<(String, String)>,
}

impl Filled {
    /// A form the signed-in person posted: who, what was filled in, its CSRF token checked.
    pub async fn posted(
        app: &Autolog,
        headers: &HeaderMap,
        uri: &Uri,
        body: &[u8],
    ) -> Result<(Viewer, Filled), ConsoleError> {
        let viewer = viewer(app, headers, uri).await?;
        let filled = Filled::read(body)?;
        viewer.check_csrf(filled.get("csrf"))?;
        Ok((viewer, filled))
    }

    /// Reads a URL-encoded form, keeping repeated fields in order.
    pub fn read(body: &[u8]) -> Result<Filled, ConsoleError> {
        let pairs = serde_urlencoded::from_bytes(body).map_err(|e| {
            FieldError::new(
                "form",
                "(unreadable)",
                format!("is not a form this page sends: {e}"),
            )
        })?;
        Ok(Filled { pairs })
    }

    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// The verifications typed in (`[{verifier_id, secret}]`), each id with the password
    /// typed beside it; `None` when no verifier was named.
    pub fn verifications(&self) -> Option<Value> {
        let raw = |name: &str| -> Vec<&str> {
            self.pairs
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let given: Vec<Value> = raw("verifier_id")
            .into_iter()
            .zip(
                raw("verifier_secret")
                    .into_iter()
                    .chain(std::iter::repeat("")),
            )
            .filter(|(id, _)| !id.trim().is_empty())
            .map(|(id, secret)| json!({"verifier_id": id.trim(), "secret": secret}))
            .collect();
        (!given.is_empty()).then_some(Value::Array(given))
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// One scan of a bag, as the form shows it: what was scanned, the DIN read from it, and
/// what the ledger says of it here.
struct ScanSeen {
    raw: String,
    din: Option<String>,
    verdict: Result<String, String>,
}

/// Where the chain stands for this step: the site it happens at and what it expects.
struct Context {
    chain: ChainAnswer,
    site_id: String,
    /// The units the ledger expects scanned (a handoff: the chain's bags here; a receipt:
    /// the handoff's manifest).
    expected: Vec<String>,
    needed: Option<VerificationNeeded>,
}

/// `GET /chains/{coi}/steps/{step}`.
pub(crate) async fn form(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path((coi, step)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let step = Step::parse(&step)?;
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let ctx = context(&app, &coi, step).await?;
    let mut filled = Filled::default();
    filled
        .pairs
        .push(("idempotency_key".into(), idempotency_key()));
    let body = render(&app, &viewer, step, &ctx, &filled, None).await?;
    Ok(page(Some(&viewer), step.title(), Nav::Chains, body).into_response())
}

/// `POST /chains/{coi}/steps/{step}`: adds a scan (`action=scan`, what Enter in a scan
/// field does) or records the step (`action=record`).
pub(crate) async fn submit(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path((coi, step)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let step = Step::parse(&step)?;
    let mut filled = Filled::read(&body)?;
    viewer.check_csrf(filled.get("csrf"))?;
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let ctx = context(&app, &coi, step).await?;
    // A scan typed into the scan field joins the list (Enter submits with action=scan);
    // a scan's Remove button takes it out.
    if let Ok(index) = filled.get("remove").parse::<usize>() {
        let mut n = 0;
        filled.pairs.retain(|(k, _)| {
            let keep = k != "scan" || n != index;
            n += usize::from(k == "scan");
            keep
        });
    }
    let new_scan = filled.get("new_scan").to_string();
    if !new_scan.is_empty() {
        filled.pairs.retain(|(k, _)| k != "new_scan");
        filled.pairs.push(("scan".into(), new_scan));
    }
    if filled.get("action") != "record" {
        let body = render(&app, &viewer, step, &ctx, &filled, None).await?;
        return Ok(page(Some(&viewer), step.title(), Nav::Chains, body).into_response());
    }
    let refusal = match event(&app, &viewer, step, &ctx, &filled).await {
        Ok(event) => match app
            .append_json_as(&viewer.principal, event.to_string().as_bytes())
            .await
        {
            Ok(_) => return Ok(Redirect::to(&format!("/chains/{coi}#timeline-h")).into_response()),
            Err(AppError::Invalid(f)) => vec![f],
            Err(AppError::Unmet(list)) => list,
            Err(AppError::Forbidden(f)) => vec![f],
            Err(e) => return Err(e.into()),
        },
        Err(f) => vec![f],
    };
    let body = render(&app, &viewer, step, &ctx, &filled, Some(&refusal)).await?;
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        page(Some(&viewer), step.title(), Nav::Chains, body),
    )
        .into_response())
}

/// A fresh idempotency key: the step's `source_event_id`, made when the form is shown.
fn idempotency_key() -> String {
    autolog_domain::Uuid::now_v7().to_string()
}

async fn context(app: &Autolog, coi: &str, step: Step) -> Result<Context, ConsoleError> {
    let chain = app.chain(coi, None, None).await?;
    let (site_id, expected) = match step {
        Step::Collection => (chain_collection_site(app, coi).await?, Vec::new()),
        // The final product once there is one; the collected bags before.
        Step::Handoff if !chain.final_units.is_empty() => (
            chain.location_site_id.clone().unwrap_or_default(),
            chain
                .final_units
                .iter()
                .filter(|u| u.at_site == chain.location_site_id)
                .map(|u| u.unit.clone())
                .collect(),
        ),
        Step::Handoff => (
            chain.location_site_id.clone().unwrap_or_default(),
            chain
                .units
                .iter()
                .filter(|u| u.at_site == chain.location_site_id)
                .map(|u| u.din.clone())
                .collect(),
        ),
        Step::Receipt => {
            let Some(h) = &chain.open_handoff else {
                return Err(FieldError::new(
                    "coi",
                    coi,
                    "has no handoff on its way: there is nothing to receive",
                )
                .into());
            };
            let units = h["units"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            (
                h["destination_site_id"].as_str().unwrap_or("").to_string(),
                units,
            )
        }
    };
    let stream = StreamId::chain(coi).to_string();
    let needed = app
        .verification_needed(step.event_type(), &stream, &site_id, app.now())
        .await?;
    Ok(Context {
        chain,
        site_id,
        expected,
        needed,
    })
}

/// The site that collects the chain (its enrolment's, or as assigned since).
async fn chain_collection_site(app: &Autolog, coi: &str) -> Result<String, ConsoleError> {
    let summary = app.chain_summary(coi).await?;
    Ok(summary
        .and_then(|s| s.collection_site_id)
        .unwrap_or_default())
}

/// Reads each scan: the DIN it carries, or the final unit once the chain ships its final
/// product (a scan of another structure is refused, saying what it is), and what the
/// ledger says of it here.
async fn read_scans(app: &Autolog, ctx: &Context, step: Step, scans: &[String]) -> Vec<ScanSeen> {
    let final_product = step != Step::Collection && !ctx.chain.final_units.is_empty();
    let mut seen: Vec<ScanSeen> = Vec::new();
    for raw in scans {
        let din = match parse_scan("scan", raw) {
            Ok(Scanned::Din { din, .. }) if !final_product => Ok(din.to_string()),
            Ok(Scanned::Din { .. }) => {
                Err("this is a bag's DIN: scan the final product unit's label".to_string())
            }
            Ok(Scanned::Unit(unit)) if final_product => Ok(unit.to_string()),
            Ok(Scanned::Unit(_)) => {
                Err("this is a final product unit's label: scan the bag's DIN".to_string())
            }
            Ok(Scanned::Gs1(_)) => {
                Err("this is a GS1 label (a shipper or product): scan the bag's DIN".to_string())
            }
            Err(_) if final_product => autolog_domain::identifiers::UnitId::parse("scan", raw)
                .map(|u| u.to_string())
                .map_err(|e| e.rule),
            Err(_) => Din::parse("scan", raw)
                .map(|d| d.to_string())
                .map_err(|e| e.rule),
        };
        let verdict = match &din {
            Err(rule) => Err(rule.clone()),
            Ok(d) if seen.iter().any(|s| s.din.as_deref() == Some(d.as_str())) => {
                Err("scanned twice".to_string())
            }
            Ok(d) => bag_verdict(app, ctx, step, d).await,
        };
        seen.push(ScanSeen {
            raw: raw.clone(),
            din: din.ok(),
            verdict,
        });
    }
    seen
}

/// Whose bag a DIN is and whether it belongs here: a new bag for a collection; one of this
/// chain's bags at this site for a handoff; one on the manifest for a receipt.
async fn bag_verdict(
    app: &Autolog,
    ctx: &Context,
    step: Step,
    din: &str,
) -> Result<String, String> {
    let owner = app
        .genealogy_backward(din, None, None)
        .await
        .ok()
        .map(|g| g.coi);
    match (step, owner) {
        (Step::Collection, None) => Ok("new bag".into()),
        (Step::Collection, Some(c)) => Err(format!("already collected, on chain {c}")),
        (_, Some(c)) if c != ctx.chain.coi => {
            Err(format!("belongs to chain {c}: another patient's bag"))
        }
        (_, None) => Err("no chain has this bag".into()),
        (_, Some(_)) if ctx.expected.iter().any(|e| e == din) => {
            Ok("this patient's bag, on the manifest".into())
        }
        (Step::Handoff, Some(_)) => Err("this patient's bag, but not here".into()),
        (_, Some(_)) => Err("this patient's bag, but not on this shipment's manifest".into()),
    }
}

async fn render(
    app: &Autolog,
    viewer: &Viewer,
    step: Step,
    ctx: &Context,
    filled: &Filled,
    refusal: Option<&[FieldError]>,
) -> Result<Markup, ConsoleError> {
    let scans = read_scans(app, ctx, step, &filled.all("scan")).await;
    let coi = &ctx.chain.coi;
    let missing: Vec<&String> = ctx
        .expected
        .iter()
        .filter(|e| !scans.iter().any(|s| s.din.as_ref() == Some(*e)))
        .collect();
    Ok(html! {
        h1 { (step.title()) }
        p { "Chain " (coi_large(coi)) " at " strong { (ctx.site_id) } ". " a href={ "/chains/" (coi) } { "Back to the chain" } }
        @if let Some(list) = refusal {
            div.banner.critical #refusal role="alert" {
                "Not recorded:"
                ul { @for f in list { li { strong { (f.field) } " " (f.value) ": " (f.rule) } } }
            }
        }
        form.card method="post" action={ "/chains/" (coi) "/steps/" (slug(step)) } {
            (csrf_field(viewer))
            input type="hidden" name="idempotency_key" value=(filled.get("idempotency_key"));
            @for s in &scans { input type="hidden" name="scan" value=(s.raw); }
            h2 { "Bags (scan each, then Enter)" }
            label for="new_scan" { "Scan a bag's DIN" }
            input #new_scan name="new_scan" autocomplete="off" autofocus aria-describedby="scan-hint";
            " " button type="submit" name="action" value="scan" { "Add the scan" }
            p.field-hint #scan-hint { "The scanner types the label's data and Enter. Typing the DIN by hand works too; its check character is checked." }
            (scan_table(&scans))
            @if step != Step::Collection && !missing.is_empty() {
                p.banner.info { "Not scanned yet: " (missing.len()) " of " (ctx.expected.len()) " bags the ledger expects." }
            }
            (step_fields(step, ctx, filled))
            (verification_fields(ctx.needed.as_ref(), filled))
            p { button type="submit" name="action" value="record" { (record_label(step, ctx, scans.len())) } }
        }
    })
}

fn slug(step: Step) -> &'static str {
    match step {
        Step::Collection => "collect",
        Step::Handoff => "hand-off",
        Step::Receipt => "receive",
    }
}

/// The record button names the fact it records.
fn record_label(step: Step, ctx: &Context, bags: usize) -> String {
    match step {
        Step::Collection => format!("Record the collection of {bags} bag(s) at {}", ctx.site_id),
        Step::Handoff => format!("Record the handoff of {bags} bag(s) from {}", ctx.site_id),
        Step::Receipt => format!("Record the receipt of {bags} bag(s) at {}", ctx.site_id),
    }
}

fn scan_table(scans: &[ScanSeen]) -> Markup {
    html! {
        @if scans.is_empty() {
            p.quiet { "No bag scanned yet." }
        } @else {
            table {
                caption { "Bags scanned" }
                thead { tr { th scope="col" { "Scanned" } th scope="col" { "DIN" } th scope="col" { "Check" } th scope="col" { "Remove" } } }
                tbody {
                    @for (i, s) in scans.iter().enumerate() {
                        tr {
                            td.coi { (s.raw) }
                            td.coi { (s.din.as_deref().unwrap_or("—")) }
                            td {
                                @match &s.verdict {
                                    Ok(v) => { span.state { "✓ " (v) } },
                                    Err(v) => { strong.state.hold { "✗ " (v) } },
                                }
                            }
                            td { button.secondary type="submit" name="remove" value=(i) { "Remove scan " (i + 1) } }
                        }
                    }
                }
            }
        }
    }
}

/// A text field, its value kept.
fn field(name: &str, label: &str, filled: &Filled, default: &str, hint: Option<&str>) -> Markup {
    let value = if filled.pairs.iter().any(|(k, _)| k == name) {
        filled.get(name)
    } else {
        default
    };
    let hint_id = format!("{name}-hint");
    html! {
        label for=(name) { (label) }
        input #(name) name=(name) value=(value) autocomplete="off" aria-describedby=[hint.map(|_| hint_id.as_str())];
        @if let Some(h) = hint { p.field-hint #(hint_id) { (h) } }
    }
}

fn step_fields(step: Step, ctx: &Context, filled: &Filled) -> Markup {
    let handoff = ctx.chain.open_handoff.clone().unwrap_or(Value::Null);
    let text = |key: &str| handoff[key].as_str().unwrap_or("").to_string();
    html! {
        h2 { "The step" }
        @match step {
            Step::Collection => {
                (field("device_id", "Apheresis device (scan its label)", filled, "", None))
                (field("started_at", "Started at", filled, "", Some("An instant with its offset, e.g. 2026-12-07T08:00:00-05:00")))
                (field("ended_at", "Ended at", filled, "", Some("An instant with its offset")))
            },
            Step::Handoff => {
                (field("destination_site_id", "Destination site", filled, "", None))
                (field("courier", "Courier", filled, "", None))
                (field("container_id", "Shipper (scan its label)", filled, "", None))
                (field("seal_id", "Seal (scan it)", filled, "", None))
                (field("expected_arrival_by", "Expected arrival by", filled, "", Some("An instant with its offset")))
                (field("min_celsius", "Lowest allowed temperature (°C)", filled, "2", None))
                (field("max_celsius", "Highest allowed temperature (°C)", filled, "8", None))
            },
            Step::Receipt => {
                p { "Handoff " strong { (text("handoff_id")) } " from " (text("from_site_id")) " by " (text("courier")) "." }
                (field("container_id", "Shipper (scan its label)", filled, "", Some("Compared with the shipper the handoff names")))
                (field("seal_id", "Seal (scan it)", filled, "", Some("Compared with the seal the handoff names")))
                label for="seal_intact" { "Seal intact?" }
                select #seal_intact name="seal_intact" {
                    option value="yes" selected[filled.get("seal_intact") != "no"] { "yes, intact" }
                    option value="no" selected[filled.get("seal_intact") == "no"] { "no, broken or missing" }
                }
                (field("min_celsius", "Lowest temperature logged (°C)", filled, "", None))
                (field("max_celsius", "Highest temperature logged (°C)", filled, "", None))
                (field("logger_id", "Temperature logger", filled, "", None))
            },
        }
    }
}

/// The verifiers' fields: as many as the policy asks, each a person id and password typed
/// by the verifier on this device (the signed-in person stays signed in).
pub(crate) fn verification_fields(needed: Option<&VerificationNeeded>, filled: &Filled) -> Markup {
    let Some(n) = needed.filter(|n| n.verifiers > 0) else {
        return html! {};
    };
    html! {
        fieldset {
            legend { "Verification: " (n.verifiers) " other person(s) verify this step (policy " (n.policy_id) ")" }
            p.field-hint { "Each verifier types their own person id and password here; roles that qualify: " (n.qualifying_roles.join(", ")) "." }
            @for i in 0..usize::from(n.verifiers) {
                @let id = format!("verifier_id_{i}");
                @let secret = format!("verifier_secret_{i}");
                label for=(id) { "Verifier " (i + 1) ": person id" }
                input #(id) name="verifier_id" value=(filled.all("verifier_id").get(i).cloned().unwrap_or_default()) autocomplete="off";
                label for=(secret) { "Verifier " (i + 1) ": password" }
                input #(secret) name="verifier_secret" type="password" autocomplete="off";
            }
        }
    }
}

/// The event the form records, in the site's time zone now; a field the form cannot read
/// is refused naming it.
async fn event(
    app: &Autolog,
    viewer: &Viewer,
    step: Step,
    ctx: &Context,
    filled: &Filled,
) -> Result<Value, FieldError> {
    let scans = read_scans(app, ctx, step, &filled.all("scan")).await;
    if let Some(bad) = scans.iter().find(|s| s.din.is_none()) {
        let rule = bad.verdict.clone().err().unwrap_or_default();
        return Err(FieldError::new("scan", bad.raw.clone(), rule));
    }
    let dins: Vec<String> = scans.iter().filter_map(|s| s.din.clone()).collect();
    let me = &viewer.person_id;
    let data = match step {
        Step::Collection => json!({
            "collection_site_id": ctx.site_id, "operator_id": me, "device_id": filled.get("device_id"),
            "started_at": filled.get("started_at"), "ended_at": filled.get("ended_at"), "dins": dins,
        }),
        Step::Handoff => json!({
            "handoff_id": format!("H-{}", filled.get("idempotency_key")), "step_code": handoff_step(&ctx.chain),
            "from_site_id": ctx.site_id, "handed_off_by": me,
            "destination_site_id": filled.get("destination_site_id"), "courier": filled.get("courier"),
            "units": dins, "unit_count": dins.len(), "container_id": filled.get("container_id"),
            "seal_id": filled.get("seal_id"), "expected_arrival_by": filled.get("expected_arrival_by"),
            "temperature_range": {"min_celsius": number("min_celsius", filled)?, "max_celsius": number("max_celsius", filled)?},
        }),
        Step::Receipt => {
            let handoff = ctx.chain.open_handoff.clone().unwrap_or(Value::Null);
            let step_code = if handoff["step_code"] == "SHIP-TC" {
                "RECEIVE-TC"
            } else {
                "RECEIVE-MFG"
            };
            let mut log = json!({"min_celsius": number("min_celsius", filled)?, "max_celsius": number("max_celsius", filled)?});
            if !filled.get("logger_id").is_empty() {
                log["logger_id"] = json!(filled.get("logger_id"));
            }
            json!({
                "handoff_id": handoff["handoff_id"], "step_code": step_code, "receiving_site_id": ctx.site_id,
                "received_by": me,
                "scanned_labels": scans.iter().map(|s| json!({"unit": s.raw})).collect::<Vec<_>>(),
                "container_id": filled.get("container_id"), "seal_id": filled.get("seal_id"),
                "seal_intact": filled.get("seal_intact") != "no", "temperature_log": log,
            })
        }
    };
    let mut data = data;
    if let Some(given) = filled.verifications() {
        data["verifications"] = given;
    }
    let source = format!("{}/{}", slug(step), filled.get("idempotency_key"));
    console_event(
        app,
        &ctx.chain.coi,
        &ctx.site_id,
        step.event_type(),
        &source,
        data,
    )
    .await
}

/// A chain event as a console form sends it: at `site`, occurring now in the site's zone,
/// its source the console with `source_event_id` (the form's idempotency key).
pub(crate) async fn console_event(
    app: &Autolog,
    coi: &str,
    site: &str,
    event_type: &str,
    source_event_id: &str,
    data: Value,
) -> Result<Value, FieldError> {
    let now = site_now(app, site).await?;
    Ok(json!({
        "stream": StreamId::chain(coi).to_string(), "occurred_at": now, "site": site,
        "source": {"system": "console", "source_event_id": source_event_id},
        "body": {"type": event_type, "version": 1, "data": data},
    }))
}

/// Now in the site's time zone (RFC 9557), as the step's valid time.
pub(crate) async fn site_now(app: &Autolog, site_id: &str) -> Result<String, FieldError> {
    let unknown = |rule: String| FieldError::new("site", site_id, rule);
    let site = app
        .stream_state(StreamId::site(site_id).as_ref(), None, None)
        .await
        .map_err(|e| unknown(e.to_string()))?;
    let zone = site.state["time_zone"].as_str().unwrap_or("");
    let tz = check_zone("time_zone", zone)
        .map_err(|e| unknown(format!("has no valid time zone: {}", e.rule)))?;
    Ok(local_time(app.now(), &tz))
}

/// The handoff's step: the collected material to manufacturing, or the final product to
/// the treatment center.
fn handoff_step(chain: &ChainAnswer) -> &'static str {
    if chain.final_units.is_empty() {
        "SHIP-OUT"
    } else {
        "SHIP-TC"
    }
}

fn number(name: &str, filled: &Filled) -> Result<f64, FieldError> {
    let text = filled.get(name);
    text.parse::<f64>()
        .map_err(|_| FieldError::new(name, text, "must be a number of degrees Celsius, e.g. 4.5"))
}
