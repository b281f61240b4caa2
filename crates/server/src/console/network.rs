//! The network's views, for roles with reports at `*`: reconciliation (open holds,
//! unanswered handoffs, units on several chains, steps out of order, unresolved references,
//! unmapped codes), the reference-data alignment report, turnaround per product, step and
//! site, retention, and signals over time as server-rendered SVG charts (each with its
//! numbers in a table beside it: nothing is told by the chart alone).

use std::collections::BTreeMap;
use std::sync::Arc;

use autolog_app::Autolog;
use autolog_domain::access::Permission;
use autolog_domain::FieldError;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::page::{page, records_table, utc, Nav};
use super::viewer::{refused, viewer, ConsoleError, Viewer};

/// The reports' reader, or a 403 page (recorded).
async fn reader(app: &Autolog, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, ConsoleError> {
    let viewer = viewer(app, headers, uri).await?;
    if viewer.may_everywhere(Permission::ReadReports) {
        return Ok(viewer);
    }
    let refusal = FieldError::new(
        "permission",
        "ReadReports",
        format!(
            "{} holds no role with this permission network-wide (a grant at *)",
            viewer.principal.actor
        ),
    );
    Err(refused(app, &viewer, "GET /network", refusal).await)
}

fn tabs(current: &str) -> Markup {
    let links = [
        ("/network", "Reconciliation"),
        ("/network/alignment", "Alignment"),
        ("/network/turnaround", "Turnaround"),
        ("/network/retention", "Retention"),
        ("/network/signals", "Signals"),
    ];
    html! {
        nav aria-label="Network views" {
            ul.tabs {
                @for (href, name) in links {
                    li { a href=(href) aria-current=[(href == current).then_some("page")] { (name) } }
                }
            }
        }
    }
}

/// Each list of a report as its own section.
fn sections(report: &impl Serialize, lists: &[(&str, &str)]) -> Markup {
    let value = serde_json::to_value(report).unwrap_or(Value::Null);
    html! {
        @for (key, title) in lists {
            @let records = value[*key].as_array().cloned().unwrap_or_default();
            section aria-labelledby={ "s-" (key) } {
                h2 #{ "s-" (key) } { (title) " (" (records.len()) ")" }
                (records_table(title, &records))
            }
        }
    }
}

/// `GET /network`: the reconciliation of every chain.
pub(crate) async fn reconciliation(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = reader(&app, &headers, &uri).await?;
    let r = app.reconciliation().await?;
    let body = html! {
        h1 { "Network" }
        (tabs("/network"))
        p {
            (r.chains) " chains reconciled as of " (utc(&r.as_of)) ": "
            @if r.clean { strong { "✓ nothing to reconcile." } } @else { strong { "⚠ findings below." } }
        }
        (sections(&r, &[
            ("open_holds", "Open holds"),
            ("unanswered_handoffs", "Handoffs past their expected arrival, not received"),
            ("units_on_several_chains", "Units on several chains"),
            ("steps_out_of_order", "Steps out of order"),
            ("unresolved_references", "References to records that do not exist"),
            ("unmapped_codes", "Local codes no crosswalk maps"),
        ]))
    };
    Ok(page(Some(&viewer), "Network: reconciliation", Nav::Network, body).into_response())
}

/// `GET /network/alignment`: the reference-data alignment report.
pub(crate) async fn alignment(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = reader(&app, &headers, &uri).await?;
    let r = app.alignment_report(None).await?;
    let body = html! {
        h1 { "Network" }
        (tabs("/network/alignment"))
        p { (r.problems) " findings as of " (utc(&r.known_at)) "; crosswalks ending within "
            (r.expiry_horizon_days) " days count as expiring." }
        (sections(&r, &[
            ("unmapped_codes", "Unmapped codes by source system"),
            ("expiring_crosswalks", "Crosswalk mappings about to end"),
            ("sites_without_valid_zone", "Sites without a valid time zone"),
            ("personnel_without_current_qualification", "Personnel without a current qualification"),
            ("personnel_acting_without_qualification", "Personnel who acted without a qualification"),
            ("equipment_past_calibration", "Equipment past its calibration"),
            ("likely_duplicates", "Likely duplicate records"),
            ("time_zone_discrepancies", "Time-zone discrepancies"),
            ("steps_without_verification_policy", "Steps no verification policy names (no verifier needed)"),
        ]))
    };
    Ok(page(Some(&viewer), "Network: alignment", Nav::Network, body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TurnaroundQuery {
    product_code: Option<String>,
}

/// `GET /network/turnaround`: vein-to-vein and step times.
pub(crate) async fn turnaround(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<TurnaroundQuery>,
) -> Result<Response, ConsoleError> {
    let viewer = reader(&app, &headers, &uri).await?;
    let product = q.product_code.as_deref().filter(|p| !p.is_empty());
    let t = app.turnaround(product, None, None).await?;
    let medians: Vec<(String, f64)> = t
        .vein_to_vein_by_treatment_site
        .iter()
        .filter_map(|s| {
            s.summary.median_hours.map(|m| {
                (
                    format!("{} at {}", s.product_code, s.treatment_site_id),
                    m / 24.0,
                )
            })
        })
        .collect();
    let body = html! {
        h1 { "Network" }
        (tabs("/network/turnaround"))
        form.timectl method="get" action="/network/turnaround" {
            div {
                label for="product_code" { "Product" }
                input #product_code name="product_code" value=(product.unwrap_or("")) size="12";
            }
            button type="submit" { "Show" }
        }
        h2 { "Median vein-to-vein time per treatment center (days)" }
        (bar_chart("Median vein-to-vein days per product and treatment center", &medians, "days"))
        (sections(&t, &[
            ("vein_to_vein_by_treatment_site", "Vein-to-vein per treatment center (hours)"),
            ("by_step_and_site", "Time each step took, per site (hours)"),
        ]))
    };
    Ok(page(Some(&viewer), "Network: turnaround", Nav::Network, body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RetentionQuery {
    within_days: Option<String>,
}

/// `GET /network/retention`: when each chain's records may be released for erasure.
pub(crate) async fn retention(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<RetentionQuery>,
) -> Result<Response, ConsoleError> {
    let viewer = reader(&app, &headers, &uri).await?;
    let within = match q
        .within_days
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        None => None,
        Some(d) => Some(
            d.parse::<u32>()
                .map_err(|_| FieldError::new("within_days", d, "must be a whole number of days"))?,
        ),
    };
    let r = app.retention_report(None, within).await?;
    let body = html! {
        h1 { "Network" }
        (tabs("/network/retention"))
        form.timectl method="get" action="/network/retention" {
            div {
                label for="within_days" { "Only chains due within (days)" }
                input #within_days name="within_days" inputmode="numeric" value=(within.map(|d| d.to_string()).unwrap_or_default()) size="6";
            }
            button type="submit" { "Show" }
        }
        p.quiet { (r.note) }
        (sections(&r, &[("chains", "Chains")]))
    };
    Ok(page(Some(&viewer), "Network: retention", Nav::Network, body).into_response())
}

/// `GET /network/signals`: alerts raised per month by severity, and chains by state.
pub(crate) async fn signals(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = reader(&app, &headers, &uri).await?;
    let alerts = app
        .alerts(&autolog_app::AlertQuery {
            status: Some("all".into()),
            ..Default::default()
        })
        .await?;
    let mut by_month: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for a in &alerts {
        let month: String = a.occurred_at.chars().take(7).collect();
        *by_month
            .entry(month)
            .or_default()
            .entry(a.raised.severity.clone())
            .or_default() += 1;
    }
    let totals: Vec<(String, f64)> = by_month
        .iter()
        .map(|(m, s)| (m.clone(), s.values().sum::<u64>() as f64))
        .collect();
    let states: Vec<(String, f64)> = app
        .chain_state_counts()
        .await?
        .into_iter()
        .map(|(s, n)| (s.as_str().replace('_', " "), n as f64))
        .collect();
    let body = html! {
        h1 { "Network" }
        (tabs("/network/signals"))
        h2 { "Alerts raised per month (when they occurred)" }
        (bar_chart("Alerts raised per month", &totals, "alerts"))
        table {
            caption { "Alerts per month by severity" }
            thead { tr { th scope="col" { "Month" } th scope="col" { "Critical" } th scope="col" { "Major" } th scope="col" { "Minor" } } }
            tbody {
                @for (month, s) in &by_month {
                    tr {
                        td { (month) }
                        @for sev in ["critical", "major", "minor"] { td { (s.get(sev).copied().unwrap_or(0)) } }
                    }
                }
            }
        }
        h2 { "Chains by state, now" }
        (bar_chart("Chains by state", &states, "chains"))
    };
    Ok(page(Some(&viewer), "Network: signals", Nav::Network, body).into_response())
}

/// A horizontal bar chart drawn as SVG, with the value written at each bar, and the same
/// numbers in a table (for screen readers and for reading exact values).
fn bar_chart(title: &str, bars: &[(String, f64)], unit: &str) -> Markup {
    const ROW: f64 = 26.0;
    const LABEL: f64 = 260.0;
    const WIDTH: f64 = 520.0;
    let max = bars
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let height = ROW * bars.len() as f64 + 8.0;
    html! {
        @if bars.is_empty() {
            p.quiet { "No data yet." }
        } @else {
            figure {
                svg role="img" aria-label=(title) width=(LABEL + WIDTH + 80.0) height=(height)
                    viewBox={ "0 0 " (LABEL + WIDTH + 80.0) " " (height) } {
                    title { (title) }
                    @for (i, (label, value)) in bars.iter().enumerate() {
                        @let y = 4.0 + ROW * i as f64;
                        @let w = (value / max * WIDTH).max(1.0);
                        text x=(LABEL - 8.0) y=(y + 17.0) text-anchor="end" font-size="14" fill="#111" { (label) }
                        rect x=(LABEL) y=(y + 3.0) width=(w) height=(ROW - 8.0) fill="#0b4f8a" {}
                        text x=(LABEL + w + 6.0) y=(y + 17.0) font-size="14" fill="#111" { (number(*value)) }
                    }
                }
                figcaption.quiet { (title) ", in " (unit) }
            }
            details {
                summary { "The numbers of this chart" }
                table {
                    caption.skip { (title) }
                    thead { tr { th scope="col" { "What" } th scope="col" { (unit) } } }
                    tbody { @for (label, value) in bars { tr { td { (label) } td { (number(*value)) } } } }
                }
            }
        }
    }
}

/// A chart's value: whole numbers as such, others to one decimal.
fn number(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}
