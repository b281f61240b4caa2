//! The page shell every console page shares (top bar, navigation, the critical-alert
//! banner) and the small pieces pages are made of: times with their zone, states, COIs.

use autolog_app::AppError;
use autolog_domain::access::Permission;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::assets::ASSETS;
use super::viewer::{Viewer, CSRF_FIELD};

/// The navigation entries; the page names the one it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Home,
    Chains,
    Alerts,
    Network,
    Reference,
    Admin,
    None,
}

/// htmx's settings: no inline styles (the CSP allows none), no `eval`, no script tags
/// from answers.
const HTMX_CONFIG: &str =
    r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;

/// A whole page: `<head>` with the console's own files, the top bar for `viewer` (none on
/// the sign-in and error pages), the critical-alert banner, then `body`.
pub(crate) fn page(viewer: Option<&Viewer>, title: &str, nav: Nav, body: Markup) -> Html<String> {
    let assets = &*ASSETS;
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · Autolog" }
                link rel="stylesheet" href=(assets.stylesheet.href());
                script defer src=(assets.htmx.href()) {}
                script defer src=(assets.script.href()) {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if let Some(viewer) = viewer {
                    (top_bar(viewer, nav))
                } @else {
                    header.top { a.brand href="/" { "Autolog" } }
                }
                main #main {
                    @if let Some(viewer) = viewer {
                        (critical_banner(viewer))
                    }
                    (body)
                }
            }
        }
    };
    Html(markup.into_string())
}

fn top_bar(viewer: &Viewer, nav: Nav) -> Markup {
    let current = |n: Nav| (n == nav).then_some("page");
    html! {
        header.top {
            a.brand href="/" { "Autolog" }
            nav.main aria-label="Main" {
                ul {
                    li { a href="/" aria-current=[current(Nav::Home)] { "Home" } }
                    li { a href="/chains" aria-current=[current(Nav::Chains)] { "Chains" } }
                    @if viewer.may(Permission::ReadAlerts) {
                        li {
                            a href="/alerts" aria-current=[current(Nav::Alerts)] {
                                "Alerts "
                                span hx-get="/alerts/count" hx-trigger="every 20s" hx-swap="innerHTML" {
                                    (alert_count(viewer.critical_open()))
                                }
                            }
                        }
                    }
                    @if viewer.may_everywhere(Permission::ReadReports) {
                        li { a href="/network" aria-current=[current(Nav::Network)] { "Network" } }
                    }
                    @if viewer.may(Permission::ReadReference) {
                        li { a href="/reference" aria-current=[current(Nav::Reference)] { "Reference data" } }
                    }
                    @if viewer.may_everywhere(Permission::ManageAccess) {
                        li { a href="/admin" aria-current=[current(Nav::Admin)] { "Administration" } }
                    }
                }
            }
            form.search role="search" method="get" action="/chains" {
                label for="top-search" .skip { "Find a chain" }
                input #top-search type="search" name="q" autocomplete="off"
                    placeholder="COI, DIN, unit or patient key (scan or type)";
                button type="submit" { "Find" }
            }
            span.who {
                "Signed in as " strong { (viewer.person_id) } " · " (roles_summary(viewer))
            }
            form method="post" action="/sign-out" {
                (csrf_field(viewer))
                button.secondary type="submit" { "Sign out" }
            }
        }
    }
}

/// The count of open critical alerts, as the navigation shows it (text, not colour alone).
pub(crate) fn alert_count(critical: usize) -> Markup {
    html! {
        @if critical > 0 {
            span.badge { (critical) } span.skip { " critical open" }
        }
    }
}

fn roles_summary(viewer: &Viewer) -> String {
    let mut roles: Vec<String> = viewer
        .principal
        .grants
        .iter()
        .map(|g| format!("{} at {}", g.role.as_str(), g.site_id))
        .collect();
    roles.sort();
    match roles.len() {
        0 => "no roles".into(),
        1..=3 => roles.join(", "),
        n => format!("{n} roles"),
    }
}

/// The banner of open critical alerts; htmx replaces it every 20 s, so it is there (empty
/// while there are none) on every page.
pub(crate) fn critical_banner(viewer: &Viewer) -> Markup {
    html! {
        div #critical-banner hx-get="/alerts/banner" hx-trigger="every 20s" hx-swap="outerHTML" {
            @if viewer.critical_open() > 0 {
                div.banner.critical role="alert" {
                    "⚠ " (viewer.critical_open())
                    @if viewer.critical_open() == 1 { " critical alert is open. " } @else { " critical alerts are open. " }
                    a href="/alerts?severity=critical" { "See the critical alerts" }
                }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token in a form.
pub(crate) fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(viewer.csrf); }
}

/// An instant as UTC text, marked up so the script can add the viewer's own time.
pub(crate) fn utc(instant: &str) -> Markup {
    html! { time datetime=(instant) data-viewer { (utc_text(instant)) } }
}

/// `2026-10-02T03:21:00.000000Z` as `2026-10-02 03:21:00 UTC` (whole seconds).
fn utc_text(instant: &str) -> String {
    let shown = instant.trim_end_matches('Z').replace('T', " ");
    let whole = shown.split('.').next().unwrap_or(&shown);
    format!("{whole} UTC")
}

/// `2026-09-23T19:21:00+02:00[Europe/Paris]` as `2026-09-23 19:21:00 +02:00` (the zone's
/// name is shown beside it).
fn local_text(zoned: &str) -> String {
    let without_zone = zoned.split('[').next().unwrap_or(zoned).replace('T', " ");
    match without_zone
        .char_indices()
        .skip(19)
        .find(|(_, c)| *c == '+' || *c == '-')
    {
        Some((at, _)) => {
            let (time, offset) = without_zone.split_at(at);
            let whole = time.split('.').next().unwrap_or(time);
            format!("{whole} {offset}")
        }
        None => without_zone,
    }
}

/// An instant at a site: the site's local time with its zone, UTC beside it.
pub(crate) fn at_site(display: &autolog_app::TimeDisplay) -> Markup {
    html! {
        @match (&display.site_local, &display.site_zone) {
            (Some(local), Some(zone)) => {
                time datetime=(display.utc) data-viewer {
                    (local_text(local)) " (" (zone) ")"
                    span.utc { " · " (utc_text(&display.utc)) }
                }
            }
            _ => { (utc(&display.utc)) }
        }
    }
}

/// A chain's state in words, with an icon for a hold (never colour alone).
pub(crate) fn state(name: &str, open_holds: u32) -> Markup {
    let words = name.replace('_', " ");
    html! {
        @if open_holds > 0 || name == "on_hold" {
            span.state.hold { "⊘ " (words) }
        } @else {
            span.state { (words) }
        }
    }
}

/// A COI as a link to its chain page.
pub(crate) fn coi_link(coi: &str) -> Markup {
    html! { a.coi href={ "/chains/" (coi) } { (coi) } }
}

/// A COI large, its check character boxed (the header of a chain page).
pub(crate) fn coi_large(coi: &str) -> Markup {
    let parsed = autolog_domain::identifiers::Coi::parse("coi", coi).ok();
    html! {
        @if let Some(c) = parsed {
            span.coi.large {
                (c.content())
                span.check-character title="check character" { (c.check_character()) }
            }
        } @else {
            span.coi.large { (coi) }
        }
    }
}

/// A site id, or a dash.
pub(crate) fn site(site: Option<&str>) -> Markup {
    html! {
        @match site { Some(s) => { (s) }, None => { span.quiet { "—" } } }
    }
}

/// A page saying what went wrong, with the status's heading and the rule the app gave.
pub(crate) fn error_page(status: StatusCode, error: &AppError) -> Html<String> {
    let heading = match status {
        StatusCode::FORBIDDEN => "Not permitted",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        s if s.is_server_error() => "Autolog could not answer",
        _ => "This cannot be done",
    };
    page(
        None,
        heading,
        Nav::None,
        html! {
            h1 { (heading) }
            p.banner.info { (error.to_string()) }
            p { a href="/" { "Back to your home page" } }
        },
    )
}

/// The console's answer to a path it does not have.
pub(crate) fn not_found_page() -> Response {
    let body = html! {
        h1 { "Not found" }
        p { "There is no page at this address." }
        p { a href="/" { "Back to your home page" } }
    };
    (
        StatusCode::NOT_FOUND,
        page(None, "Not found", Nav::None, body),
    )
        .into_response()
}

/// Chains as a table: COI, state, product, where the material is, who holds custody, the
/// patient's pseudonymous key, and the treatment site.
pub(crate) fn chain_table(
    caption: &str,
    chains: &[autolog_domain::chain::summary::ChainSummary],
) -> Markup {
    html! {
        table {
            caption.skip { (caption) }
            thead {
                tr {
                    th scope="col" { "COI" }
                    th scope="col" { "State" }
                    th scope="col" { "Product" }
                    th scope="col" { "Material at" }
                    th scope="col" { "Custodian" }
                    th scope="col" { "Patient key" }
                    th scope="col" { "Treatment site" }
                }
            }
            tbody {
                @for c in chains {
                    tr {
                        td { (coi_link(&c.coi)) }
                        td { (state(c.state.as_str(), c.open_holds)) }
                        td { (site(c.product_code.as_deref())) }
                        td {
                            (site(c.location_site_id.as_deref()))
                            @if let Some(to) = &c.handoff_to_site_id {
                                " → " (to)
                            }
                        }
                        td { (site(c.custodian_site_id.as_deref())) }
                        td { (site(c.patient_key.as_deref())) }
                        td { (site(c.treatment_site_id.as_deref())) }
                    }
                }
            }
        }
    }
}

/// Records (JSON objects, as the API answers them) as a table: one column per field of
/// any record, in the first record's order; a COI becomes a link to its chain, an instant
/// (a field ending `_at`) is shown in UTC; lists and objects as compact text.
pub(crate) fn records_table(caption: &str, records: &[serde_json::Value]) -> Markup {
    let mut columns: Vec<&str> = Vec::new();
    for r in records {
        for key in r.as_object().into_iter().flat_map(|o| o.keys()) {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    html! {
        @if records.is_empty() {
            p.quiet { "None." }
        } @else {
            table {
                caption.skip { (caption) }
                thead { tr { @for c in &columns { th scope="col" { (c.replace('_', " ")) } } } }
                tbody {
                    @for r in records {
                        tr { @for c in &columns { td { (cell(c, &r[*c])) } } }
                    }
                }
            }
        }
    }
}

fn cell(column: &str, value: &serde_json::Value) -> Markup {
    use serde_json::Value;
    html! {
        @match value {
            Value::Null => { span.quiet { "—" } },
            Value::String(s) if column == "coi" || column.ends_with("_coi") => { (coi_link(s)) },
            Value::String(s) if column.ends_with("_at") => { (utc(s)) },
            Value::String(s) => { (s) },
            Value::Array(items) if column == "chains" => {
                @for (i, c) in items.iter().enumerate() {
                    @if i > 0 { ", " }
                    @match c.as_str() { Some(c) => { (coi_link(c)) }, None => { (c.to_string()) } }
                }
            },
            Value::Array(items) if items.iter().all(serde_json::Value::is_string) => {
                (items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
            },
            other => { (other.to_string()) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_whole_seconds_and_their_zone() {
        assert_eq!(
            utc_text("2026-10-02T03:21:00.000000Z"),
            "2026-10-02 03:21:00 UTC"
        );
        assert_eq!(utc_text("2026-10-02T03:21:07Z"), "2026-10-02 03:21:07 UTC");
        assert_eq!(
            local_text("2026-09-23T19:21:00+02:00[Europe/Paris]"),
            "2026-09-23 19:21:00 +02:00"
        );
        assert_eq!(
            local_text("2026-10-01T22:21:00.5-04:00[America/New_York]"),
            "2026-10-01 22:21:00 -04:00"
        );
    }
}
