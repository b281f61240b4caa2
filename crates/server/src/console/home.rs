//! The home page: what is wrong first (open alerts, chains on hold), then the work waiting
//! at the person's sites, from the chain projection. A person with grants at single sites
//! sees each of them; one with a grant at `*` picks a site (or sees the network's counts).

use std::collections::BTreeSet;
use std::sync::Arc;

use autolog_app::{Autolog, ChainFilter, RegistryQuery};
use autolog_domain::access::{Permission, EVERY_SITE};
use autolog_domain::chain::ChainState;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::alerts::alert_table;
use super::page::{chain_table, page, Nav};
use super::viewer::{viewer, ConsoleError, Viewer};

/// Chains shown per list on the home page (each list links to the whole).
const PER_LIST: u32 = 10;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct HomeQuery {
    site: Option<String>,
}

/// `GET /`: the person's home page.
pub(crate) async fn home(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Query(q): Query<HomeQuery>,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let mut body = html! {
        h1 { "Home" }
        p.quiet { "What is wrong or waiting at your sites, the most urgent first." }
    };
    let mut sections = Vec::new();
    if viewer.may(Permission::ReadAlerts) {
        sections.push(alerts_section(&viewer));
    }
    if viewer.may(Permission::ReadChains) {
        sections.push(holds_section(&app, &viewer).await?);
        sections.push(sites_section(&app, &viewer, q.site.as_deref()).await?);
    }
    if sections.is_empty() {
        sections.push(html! {
            p.banner.info { "You hold no role that shows chains or alerts. Ask an administrator for a role at your site." }
        });
    }
    body = html! { (body) @for s in &sections { (s) } };
    Ok(page(Some(&viewer), "Home", Nav::Home, body).into_response())
}

fn alerts_section(viewer: &Viewer) -> Markup {
    let mut open = viewer.open_alerts.clone();
    // Critical first, then the newest.
    open.sort_by_key(|a| {
        (
            severity_rank(&a.raised.severity),
            std::cmp::Reverse(a.position),
        )
    });
    let shown: Vec<_> = open.iter().take(PER_LIST as usize).cloned().collect();
    html! {
        section aria-labelledby="open-alerts" {
            h2 #open-alerts { "Open alerts (" (open.len()) ")" }
            @if shown.is_empty() {
                p.quiet { "No open alert." }
            } @else {
                (alert_table(&shown, false))
                @if open.len() > shown.len() {
                    p { a href="/alerts" { "All " (open.len()) " open alerts" } }
                }
            }
        }
    }
}

/// Critical before major before minor.
pub(crate) fn severity_rank(severity: &str) -> u8 {
    match severity {
        "critical" => 0,
        "major" => 1,
        _ => 2,
    }
}

async fn holds_section(app: &Autolog, viewer: &Viewer) -> Result<Markup, ConsoleError> {
    let held = app
        .chains(
            &viewer.principal.grants,
            &ChainFilter {
                state: Some("on_hold".into()),
                limit: Some(PER_LIST * 5),
                ..ChainFilter::default()
            },
        )
        .await?;
    Ok(html! {
        section aria-labelledby="on-hold" {
            h2 #on-hold { "Chains on hold (" (held.chains.len()) @if held.next_after.is_some() { "+" } ")" }
            @if held.chains.is_empty() {
                p.quiet { "No chain is on hold." }
            } @else {
                (chain_table("Chains on hold", &held.chains))
            }
        }
    })
}

/// The sites whose work the person sees: each site of a grant that reads chains; with a
/// grant at `*`, the chosen site (if any).
async fn sites_section(
    app: &Autolog,
    viewer: &Viewer,
    chosen: Option<&str>,
) -> Result<Markup, ConsoleError> {
    let mut sites: BTreeSet<String> = viewer
        .principal
        .grants
        .iter()
        .filter(|g| g.site_id != EVERY_SITE && g.role.allows(Permission::ReadChains))
        .map(|g| g.site_id.clone())
        .collect();
    let everywhere = viewer.may_everywhere(Permission::ReadChains);
    let mut switcher = html! {};
    if everywhere {
        let all = site_names(app).await?;
        switcher = site_switcher(&all, chosen);
        sites.clear();
        if let Some(site) = chosen.filter(|s| all.iter().any(|(id, _)| id == s)) {
            sites.insert(site.to_string());
        }
    } else if let Some(site) = chosen.filter(|s| sites.contains(*s)) {
        sites = BTreeSet::from([site.to_string()]);
    }
    let mut work = Vec::new();
    for site in &sites {
        work.push(site_work(app, viewer, site).await?);
    }
    Ok(html! {
        (switcher)
        @if everywhere && sites.is_empty() {
            (network_counts(app).await?)
        }
        @for w in &work { (w) }
    })
}

async fn site_names(app: &Autolog) -> Result<Vec<(String, String)>, ConsoleError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = app
            .list_registry(
                "sites",
                &RegistryQuery {
                    after: after.clone(),
                    limit: Some(1000),
                    ..RegistryQuery::default()
                },
            )
            .await?;
        for r in &page.records {
            let state = &r["state"];
            if let Some(id) = state["site_id"].as_str() {
                let name = state["name"].as_str().unwrap_or(id);
                out.push((id.to_string(), name.to_string()));
            }
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

fn site_switcher(sites: &[(String, String)], chosen: Option<&str>) -> Markup {
    html! {
        form.timectl method="get" action="/" {
            div {
                label for="site" { "Show the work at" }
                select #site name="site" {
                    option value="" selected[chosen.is_none()] { "the whole network (counts)" }
                    @for (id, name) in sites {
                        option value=(id) selected[chosen == Some(id.as_str())] { (id) " · " (name) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
    }
}

async fn network_counts(app: &Autolog) -> Result<Markup, ConsoleError> {
    let counts = app.chain_state_counts().await?;
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    Ok(html! {
        section aria-labelledby="network" {
            h2 #network { "Chains in the network by state (" (total) ")" }
            table {
                caption.skip { "Chains by state" }
                thead { tr { th scope="col" { "State" } th scope="col" { "Chains" } } }
                tbody {
                    @for (state, n) in &counts {
                        tr {
                            td { a href={ "/chains?state=" (state.as_str()) } { (state.as_str().replace('_', " ")) } }
                            td { (n) }
                        }
                    }
                }
            }
        }
    })
}

/// What is in progress at a site, by the step it waits for: each state its own list.
fn in_progress(site: &str, list: &autolog_app::WorkList) -> Markup {
    let steps = [
        (ChainState::Collected, "Collected, to ship"),
        (ChainState::InTransit, "In transit"),
        (
            ChainState::ReceivedAtManufacturing,
            "Received, to start manufacturing",
        ),
        (ChainState::InManufacturing, "Batches in manufacturing"),
        (ChainState::InTesting, "Results awaited, releases to decide"),
        (
            ChainState::ReleasedForPatient,
            "Released, to ship to the treatment center",
        ),
        (
            ChainState::ReceivedAtTreatmentCenter,
            "Received, infusions to give",
        ),
    ];
    html! {
        h3 { "In progress here (" (list.chains.len()) @if list.more { "+" } ")" }
        @if list.chains.is_empty() { p.quiet { "None." } }
        @for (state, title) in steps {
            @let chains: Vec<_> = list.chains.iter().filter(|c| c.state == state).cloned().collect();
            @if !chains.is_empty() {
                h4 { (title) " (" (chains.len()) ")" }
                (chain_table(title, &chains))
            }
        }
        @if list.more {
            p { a href={ "/chains?site_id=" (site) } { "More chains in progress at " (site) } }
        }
    }
}

async fn site_work(app: &Autolog, viewer: &Viewer, site: &str) -> Result<Markup, ConsoleError> {
    let work = app
        .site_work(&viewer.principal.grants, site, Some(PER_LIST * 5))
        .await?;
    let id = format!("work-{site}");
    let lists = [
        ("On hold here", &work.on_hold),
        ("Handoffs on their way here", &work.to_receive),
        ("To collect", &work.to_collect),
    ];
    Ok(html! {
        section aria-labelledby=(id) {
            h2 #(id) { "Work at " (site) }
            p { a href={ "/chains?site_id=" (site) } { "Every chain " (site) " takes part in" } }
            @for (title, list) in lists {
                h3 { (title) " (" (list.chains.len()) @if list.more { "+" } ")" }
                @if list.chains.is_empty() {
                    p.quiet { "None." }
                } @else {
                    (chain_table(title, &list.chains))
                }
            }
            (in_progress(site, &work.in_progress))
        }
    })
}
