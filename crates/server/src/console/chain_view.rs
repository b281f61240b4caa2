//! The chain page's sections, one function each: header, time control, holds, units and
//! custody, alerts, signatures, genealogy, identifying data, timeline. It renders what the
//! app answered for the chain (`ChainAnswer`, the API's answer too): one chain, one truth.

use autolog_app::{Alert, BackwardGenealogy, ChainAnswer, PresentedEvent};
use autolog_domain::access::Permission;
use maud::{html, Markup};
use serde_json::Value;

use super::alerts::alert_table;
use super::chain::identity_form;
use super::page::{at_site, coi_large, coi_link, records_table, site, state, utc};
use super::viewer::Viewer;

/// The moment the page shows, as asked, or the refusal of what was asked.
pub(crate) struct AsOfShown {
    pub valid_at: Option<String>,
    pub known_at: Option<String>,
    pub error: Option<autolog_domain::FieldError>,
}

/// What the chain page shows besides the chain itself.
pub(crate) struct Extras<'a> {
    /// The chain as known now, when the page shows an earlier known time (for the marks
    /// of corrections made since).
    pub now: Option<&'a ChainAnswer>,
    pub alerts: &'a [Alert],
    pub genealogy: Option<&'a BackwardGenealogy>,
    pub identity: Option<Markup>,
}

/// The whole chain page below the top bar.
pub(crate) fn chain_body(
    viewer: &Viewer,
    chain: &ChainAnswer,
    as_of: &AsOfShown,
    extras: Extras<'_>,
) -> Markup {
    let later = corrected_later(chain, extras.now);
    html! {
        (header(chain))
        (as_of_banner(chain, as_of))
        (holds(chain, viewer.may(Permission::Record)))
        @if viewer.may(Permission::Record) && as_of.valid_at.is_none() && as_of.known_at.is_none() {
            (next_steps(chain))
        }
        (time_control(chain, as_of))
        (units(chain))
        @if viewer.may(Permission::Record) && (!chain.units.is_empty() || !chain.final_units.is_empty()) {
            p { a.button href={ "/chains/" (chain.coi) "/labels" } { "Print and verify labels" } }
        }
        @if viewer.may(Permission::ReadAlerts) {
            section aria-labelledby="chain-alerts" {
                h2 #chain-alerts { "Alerts (" (extras.alerts.len()) ")" }
                @if extras.alerts.is_empty() { p.quiet { "No alert on this chain." } }
                @else { (alert_table(extras.alerts, false)) p { a href="/alerts" { "Handle alerts in the inbox" } } }
            }
        }
        (results(extras.genealogy))
        (signatures(chain))
        (genealogy(chain, extras.genealogy))
        @if let Some(identity) = extras.identity {
            (identity)
        } @else if viewer.may(Permission::ReadPersonalData) && chain.patient_key.is_some() {
            (identity_form(viewer, &chain.coi))
        }
        (timeline(chain, &later))
    }
}

fn header(chain: &ChainAnswer) -> Markup {
    html! {
        h1 { "Chain " (coi_large(&chain.coi)) }
        dl.facts {
            dt { "State" } dd { (state(chain.state, chain.holds.len() as u32)) }
            @if let Some(resume) = chain.resume_state { dt { "Resumes as" } dd { (resume.replace('_', " ")) } }
            dt { "Patient key" } dd { (site(chain.patient_key.as_deref())) }
            dt { "Product" } dd { (site(chain.product_code.as_deref())) }
            dt { "Treatment site" } dd { (site(chain.treatment_site_id.as_deref())) }
            dt { "Custodian" } dd { (site(chain.custodian_site_id.as_deref())) }
            dt { "Material at" } dd { (site(chain.location_site_id.as_deref())) }
            dt { "Released for this patient" } dd { @if chain.released { "yes" } @else { "no" } }
            @if let Some(p) = &chain.previous_coi { dt { "Collects again for" } dd { (coi_link(p)) } }
            @if let Some(s) = &chain.succeeded_by { dt { "Collected again as" } dd { (coi_link(s)) } }
        }
    }
}

fn as_of_banner(chain: &ChainAnswer, as_of: &AsOfShown) -> Markup {
    html! {
        @if as_of.valid_at.is_some() || as_of.known_at.is_some() {
            div.banner.asof role="status" {
                "Not now: this is the chain as it stood at " (utc(&chain.valid_at))
                " (valid time), as Autolog knew it at " (utc(&chain.known_at)) " (known time). "
                a href={ "/chains/" (chain.coi) } { "Show the chain now" }
            }
        }
    }
}

fn holds(chain: &ChainAnswer, may_record: bool) -> Markup {
    html! {
        @for hold in &chain.holds {
            div.banner.critical role="alert" {
                "⊘ On hold: " (hold_title(hold))
                @if let Some(findings) = hold.get("findings").and_then(Value::as_array) {
                    ul { @for f in findings { li { (f.as_str().unwrap_or("")) } } }
                }
                (fields(hold, &["reason", "rule", "findings"]))
                @if may_record {
                    p { a href={ "/chains/" (chain.coi) "/record/hold-release?hold_id=" (text(hold, "hold_id")) "&site_id=" (text(hold, "site_id")) } {
                        "Resolve this hold (with a reason and your signature)"
                    } }
                }
            }
        }
        @if let Some(d) = &chain.disputed_custody {
            div.banner.critical {
                "Custody disputed: handoff " (d.handoff_id) " received at " (d.receiving_site_id)
                " failed reconciliation (container " (d.container_id) ", units " (d.units.join(", "))
                "; hold " (d.hold_id) ")."
            }
        }
    }
}

/// The step forms the chain's state opens.
fn next_steps(chain: &ChainAnswer) -> Markup {
    let step = match chain.state {
        "enrolled" => Some(("collect", "Record the collection")),
        "collected" | "released_for_patient" => Some(("hand-off", "Hand off to a courier")),
        _ if chain.open_handoff.is_some() => Some(("receive", "Receive the shipment")),
        _ => None,
    };
    let release = !chain.released && !chain.final_units.is_empty();
    html! {
        @if let Some((slug, title)) = step {
            p { a.button href={ "/chains/" (chain.coi) "/steps/" (slug) } { (title) } }
        }
        @if release {
            p { a.button href={ "/chains/" (chain.coi) "/release" } { "Review the release conditions" } }
        }
        @if chain.state == "received_at_treatment_center" {
            p { a.button href={ "/chains/" (chain.coi) "/bedside" } { "Bedside check and administration" } }
        }
        details.record {
            summary { "Record a step by hand (where no MES or LIMS sends it)" }
            ul {
                @for (slug, title) in super::record::forms() {
                    li { a href={ "/chains/" (chain.coi) "/record/" (slug) } { (title) } }
                }
            }
        }
    }
}

/// What a hold says it is for: its reason, else the rule that placed it.
fn hold_title(hold: &Value) -> &str {
    [text(hold, "reason"), text(hold, "rule")]
        .into_iter()
        .find(|t| !t.is_empty())
        .unwrap_or("(no reason recorded)")
}

fn time_control(chain: &ChainAnswer, as_of: &AsOfShown) -> Markup {
    let error = as_of.error.as_ref();
    let value = |asked: &Option<String>, field: &str| match (error, asked) {
        (Some(e), _) if e.field == field => e.value.clone(),
        (_, Some(v)) => v.clone(),
        _ => String::new(),
    };
    html! {
        section aria-labelledby="timectl-h" {
            h2 #timectl-h { "As it stood, as it was known" }
            form.timectl method="get" action={ "/chains/" (chain.coi) } {
                div {
                    label for="valid_at" { "Valid time (as it stood)" }
                    input #valid_at name="valid_at" value=(value(&as_of.valid_at, "valid_at"))
                        placeholder="now" aria-describedby="time-hint";
                }
                div {
                    label for="known_at" { "Known time (as Autolog knew it)" }
                    input #known_at name="known_at" value=(value(&as_of.known_at, "known_at"))
                        placeholder="now" aria-describedby="time-hint";
                }
                button type="submit" { "Show the chain then" }
            }
            p.field-hint #time-hint {
                "An instant with its zone, e.g. 2026-11-20T09:00:00Z or 2026-11-20T10:00:00+01:00; empty means now."
            }
            @if let Some(e) = error {
                p.field-error role="alert" { (e.field) " " (e.value) ": " (e.rule) }
            }
        }
    }
}

fn units(chain: &ChainAnswer) -> Markup {
    html! {
        section aria-labelledby="units-h" {
            h2 #units-h { "Units and custody" }
            @if chain.units.is_empty() && chain.final_units.is_empty() && chain.shippers.is_empty() {
                p.quiet { "No unit recorded yet." }
            }
            @if !chain.units.is_empty() {
                table {
                    caption { "Collected bags (DIN)" }
                    thead { tr { th scope="col" { "DIN" } th scope="col" { "Collected at" } th scope="col" { "At" } th scope="col" { "Custodian" } } }
                    tbody {
                        @for u in &chain.units {
                            tr {
                                td.coi { (u.din) }
                                td { (site(u.collected_at_site.as_deref())) }
                                td { @match &u.at_site { Some(s) => { (s) }, None => { "in transit" } } }
                                td { (site(u.custodian_site_id.as_deref())) }
                            }
                        }
                    }
                }
            }
            @if !chain.final_units.is_empty() {
                table {
                    caption { "Final product units" }
                    thead { tr { th scope="col" { "Unit" } th scope="col" { "Batch" } th scope="col" { "Expires" } th scope="col" { "At" } th scope="col" { "Custodian" } } }
                    tbody {
                        @for u in &chain.final_units {
                            tr {
                                td.coi { (u.unit) }
                                td { (u.batch_id) }
                                td { @match &u.expires_at { Some(t) => { (utc(t)) }, None => { span.quiet { "—" } } } }
                                td { @match &u.at_site { Some(s) => { (s) }, None => { "in transit" } } }
                                td { (site(u.custodian_site_id.as_deref())) }
                            }
                        }
                    }
                }
            }
            @if !chain.shippers.is_empty() {
                table {
                    caption { "Shippers" }
                    thead { tr { th scope="col" { "Container" } th scope="col" { "Handoff" } th scope="col" { "At" } th scope="col" { "Custodian" } } }
                    tbody {
                        @for s in &chain.shippers {
                            tr {
                                td.coi { (s.container_id) }
                                td { (s.handoff_id) }
                                td { @match &s.at_site { Some(x) => { (x) }, None => { "in transit" } } }
                                td { (site(s.custodian_site_id.as_deref())) }
                            }
                        }
                    }
                }
            }
            @if let Some(h) = &chain.open_handoff {
                p.banner.info { "Handoff awaiting its receipt: " (fields(h, &[])) }
            }
        }
    }
}

/// The batch's test results, Autolog's verdicts on them against the product's
/// specification, and its release, as the backward genealogy of its first unit holds them.
fn results(found: Option<&BackwardGenealogy>) -> Markup {
    html! {
        section aria-labelledby="results-h" {
            h2 #results-h { "Results and release" }
            @match found {
                None => { p.quiet { "No batch yet." } },
                Some(g) => {
                    h3 { "Test results (" (g.test_results.len()) ")" }
                    (records_table("Test results", &g.test_results))
                    h3 { "Verdicts (" (g.verdicts.len()) ")" }
                    (records_table("Verdicts", &g.verdicts))
                    h3 { "Release" }
                    (records_table("Release", &g.release))
                },
            }
        }
    }
}

/// Every signature manifestation in the chain's records: printed name, when (at the
/// record's site and in UTC), what it means.
fn signatures(chain: &ChainAnswer) -> Markup {
    let mut rows = Vec::new();
    for e in chain.timeline.iter().filter(|e| e.in_force != Some(false)) {
        for key in autolog_domain::access::signature::SIGNATURE_KEYS {
            if let Some(sig) = e.event["body"]["data"].get(*key).filter(|s| s.is_object()) {
                rows.push((e, sig));
            }
        }
    }
    html! {
        section aria-labelledby="signatures-h" {
            h2 #signatures-h { "Signatures (" (rows.len()) ")" }
            @if rows.is_empty() { p.quiet { "No signed record yet." } }
            @else {
                table {
                    caption.skip { "Signatures" }
                    thead { tr { th scope="col" { "Signed by" } th scope="col" { "When" } th scope="col" { "Meaning" } th scope="col" { "Record" } } }
                    tbody {
                        @for (e, sig) in &rows {
                            tr {
                                td { (text(sig, "printed_name")) " (" (text(sig, "signer_id")) ")" }
                                td { (signed_at(text(sig, "signed_at"), e)) }
                                td { (text(sig, "meaning")) }
                                td { (event_type(e)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// When a signature was made: in the zone of its record's site, UTC beside it.
fn signed_at(at: &str, record: &PresentedEvent) -> Markup {
    use autolog_domain::ledger::zone::{check_zone, local_time};
    let zone = record.occurred_at_display.site_zone.as_deref();
    let instant = autolog_domain::Instant::parse_rfc3339("signed_at", at).ok();
    match (instant, zone.and_then(|z| check_zone("zone", z).ok())) {
        (Some(instant), Some(tz)) => at_site(&autolog_app::TimeDisplay {
            utc: at.to_string(),
            local: None,
            site_zone: zone.map(str::to_string),
            site_local: Some(local_time(instant, &tz)),
        }),
        _ => utc(at),
    }
}

fn genealogy(chain: &ChainAnswer, found: Option<&BackwardGenealogy>) -> Markup {
    html! {
        section aria-labelledby="genealogy-h" {
            h2 #genealogy-h { "Genealogy" }
            h3 { "Backward: where this patient's product came from" }
            ul {
                @for u in &chain.units { li { "Collected bag " span.coi { (u.din) } " at " (site(u.collected_at_site.as_deref())) } }
                @if let Some(g) = found {
                    @if let Some(batch) = &g.batch { li { "Batch " (text(batch, "batch_id")) " at " (text(batch, "manufacturing_site_id")) } }
                    li { (g.steps.len()) " manufacturing steps; equipment: "
                        @if g.equipment.is_empty() { "none recorded" } @else { (g.equipment.iter().cloned().collect::<Vec<_>>().join(", ")) } }
                    li { "Material lots: "
                        @if g.materials.is_empty() { "none recorded" }
                        @else { (g.materials.iter().map(|m| text(m, "lot").to_string()).collect::<Vec<_>>().join(", ")) } }
                    li { (g.test_results.len()) " test results" }
                }
            }
            h3 { "Forward: where it went" }
            ul {
                @for u in &chain.final_units {
                    li { "Final unit " span.coi { (u.unit) } " of batch " (u.batch_id) ", at "
                        @match &u.at_site { Some(s) => { (s) }, None => { "in transit" } } }
                }
                @if chain.final_units.is_empty() { li.quiet { "No final unit yet." } }
                @if let Some(s) = &chain.succeeded_by { li { "Collected again as " (coi_link(s)) } }
            }
        }
    }
}

/// Corrections recorded after the known time shown: (the event corrected, the correction).
fn corrected_later<'a>(
    chain: &ChainAnswer,
    now: Option<&'a ChainAnswer>,
) -> Vec<(String, &'a PresentedEvent)> {
    let Some(now) = now else { return Vec::new() };
    now.timeline
        .iter()
        .filter(|e| {
            e.event["recorded_at"]
                .as_str()
                .is_some_and(|r| r > chain.known_at.as_str())
        })
        .filter_map(|e| e.event["corrects"].as_str().map(|c| (c.to_string(), e)))
        .collect()
}

fn timeline(chain: &ChainAnswer, later: &[(String, &PresentedEvent)]) -> Markup {
    html! {
        section aria-labelledby="timeline-h" {
            h2 #timeline-h { "Timeline (" (chain.timeline.len()) " records)" }
            p.quiet { "Each time at its site, in the site's zone, with UTC beside it. Struck-through records were superseded by a correction; greyed ones had not yet occurred at the valid time shown." }
            table {
                caption.skip { "Timeline" }
                thead { tr {
                    th scope="col" { "Occurred" } th scope="col" { "What" } th scope="col" { "By" }
                    th scope="col" { "Recorded" } th scope="col" { "Standing" }
                } }
                tbody {
                    @for e in &chain.timeline {
                        @let id = e.event["event_id"].as_str().unwrap_or("");
                        @let superseded = e.superseded_by.is_some();
                        @let pending = e.in_force == Some(false) && !superseded;
                        tr #{ "event-" (id) } {
                            td { (at_site(&e.occurred_at_display)) }
                            td .superseded[superseded] .quiet[pending] { strong { (event_type(e)) } br; (summary(&e.event["body"]["data"])) }
                            td { (e.event["actor"].as_str().unwrap_or("")) }
                            td { (utc(e.event["recorded_at"].as_str().unwrap_or(""))) }
                            td { (standing(e, later.iter().find(|(c, _)| c == id).map(|(_, by)| *by))) }
                        }
                    }
                }
            }
        }
    }
}

fn standing(e: &PresentedEvent, later: Option<&PresentedEvent>) -> Markup {
    html! {
        @if let Some(c) = e.event["corrects"].as_str() {
            span.correction { "✎ correction of " a href={ "#event-" (c) } { "an earlier record" } }
            @if let Some(r) = e.event["reason"].as_str() { br; "Why: " (r) }
        }
        @if let Some(by) = e.superseded_by {
            br; span.quiet { "superseded by " a href={ "#event-" (by) } { "its correction" } }
        } @else if e.in_force == Some(false) {
            br; span.quiet { "not in force at this valid time" }
        }
        @if let Some(c) = later {
            br; span.later {
                "⚑ corrected later, on " (utc(c.event["recorded_at"].as_str().unwrap_or("")))
                " by " (c.event["actor"].as_str().unwrap_or(""))
                @if let Some(r) = c.event["reason"].as_str() { ": " (r) }
            }
        }
    }
}

fn event_type(e: &PresentedEvent) -> String {
    e.event["body"]["type"]
        .as_str()
        .unwrap_or("")
        .replace(['.', '_'], " ")
}

/// The data's plain fields in one line (at most 240 characters; the rest in the API).
fn summary(data: &Value) -> String {
    let Some(map) = data.as_object() else {
        return String::new();
    };
    let mut line = map
        .iter()
        .filter(|(k, _)| !autolog_domain::access::signature::SIGNATURE_KEYS.contains(&k.as_str()))
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some(format!("{k}: {s}")),
            Value::Number(n) => Some(format!("{k}: {n}")),
            Value::Bool(b) => Some(format!("{k}: {b}")),
            Value::Array(items) if items.iter().all(Value::is_string) => Some(format!(
                "{k}: {}",
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("; ");
    if line.chars().count() > 240 {
        line = line.chars().take(239).collect::<String>() + "…";
    }
    line
}

/// A record's plain fields as a list, leaving out `skip`.
fn fields(value: &Value, skip: &[&str]) -> Markup {
    let Some(map) = value.as_object() else {
        return html! {};
    };
    html! {
        dl.facts {
            @for (k, v) in map.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
                dt { (k.replace('_', " ")) }
                dd {
                    @match v {
                        Value::String(s) if k.ends_with("_at") => { (utc(s)) },
                        Value::String(s) => { (s) },
                        other => { (other.to_string()) },
                    }
                }
            }
        }
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}
