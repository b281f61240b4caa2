//! The reference-data browser: every registry (sites with their zone and local time now,
//! personnel and qualifications, steps, products, equipment, lots, source systems,
//! crosswalks), each as it stood at a valid time and as known at a known time, filtered by
//! a field, a page at a time, with the API's CSV and JSON exports linked.

use std::sync::Arc;

use autolog_app::{Autolog, RegistryQuery, REGISTRIES};
use autolog_domain::access::Permission;
use autolog_domain::FieldError;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::page::{page, utc, Nav};
use super::viewer::{refused, url_encode, viewer, ConsoleError, Viewer};

/// Records per page.
const PAGE: u32 = 100;

async fn reader(app: &Autolog, headers: &HeaderMap, uri: &Uri) -> Result<Viewer, ConsoleError> {
    let viewer = viewer(app, headers, uri).await?;
    if viewer.may(Permission::ReadReference) {
        return Ok(viewer);
    }
    let refusal = FieldError::new(
        "permission",
        "ReadReference",
        format!(
            "{} holds no role that reads reference data",
            viewer.principal.actor
        ),
    );
    Err(refused(app, &viewer, "GET /reference", refusal).await)
}

/// `GET /reference`: the registries.
pub(crate) async fn index(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let viewer = reader(&app, &headers, &uri).await?;
    let body = html! {
        h1 { "Reference data" }
        p { "Every registry as it stands now, or as it stood and was known at any time." }
        ul {
            @for r in REGISTRIES {
                li { a href={ "/reference/" (r.name) } { (r.name.replace('_', " ")) } }
            }
        }
        p { a href="/api/v1/reference/export?format=json" { "Export every registry as JSON" } }
    };
    Ok(page(Some(&viewer), "Reference data", Nav::Reference, body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RegistryParams {
    valid_at: Option<String>,
    known_at: Option<String>,
    after: Option<String>,
    field: Option<String>,
    value: Option<String>,
}

/// `GET /reference/{registry}`: one registry's records.
pub(crate) async fn registry(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
    Query(q): Query<RegistryParams>,
) -> Result<Response, ConsoleError> {
    let viewer = reader(&app, &headers, &uri).await?;
    let registry = autolog_app::registry(&name)?;
    let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let filters: Vec<(String, String)> = match (given(&q.field), given(&q.value)) {
        (Some(f), Some(v)) => vec![(f, v)],
        _ => Vec::new(),
    };
    let listed = app
        .list_registry(
            registry.name,
            &RegistryQuery {
                valid_at: given(&q.valid_at),
                known_at: given(&q.known_at),
                after: given(&q.after),
                limit: Some(PAGE),
                filters,
            },
        )
        .await?;
    let columns: Vec<&str> = registry.columns.iter().map(|c| c.path).collect();
    let sites = registry.name == "sites";
    let now = app.now();
    let body = html! {
        h1 { "Reference data: " (registry.name.replace('_', " ")) }
        p { a href="/reference" { "All registries" } }
        (controls(registry.name, &q))
        p { "As it stood at " (utc(&listed.valid_at)) ", as known at " (utc(&listed.known_at)) ". "
            a href={ "/api/v1/reference/export?format=csv&registry=" (registry.name) } { "Export as CSV" } }
        table {
            caption.skip { (registry.name) }
            thead { tr {
                @for c in &columns { th scope="col" { (c.replace('_', " ")) } }
                @if sites { th scope="col" { "Local time now" } }
            } }
            tbody {
                @for r in &listed.records {
                    tr {
                        @for c in &columns { td { (cell(&r["state"], c)) } }
                        @if sites { td { (local_now(&r["state"], now)) } }
                    }
                }
            }
        }
        @if listed.records.is_empty() { p.quiet { "No record matches." } }
        @if let Some(next) = &listed.next_after {
            p { a href=(next_page(registry.name, &q, next)) { "Next page" } }
        }
    };
    Ok(page(Some(&viewer), registry.name, Nav::Reference, body).into_response())
}

fn controls(name: &str, q: &RegistryParams) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        form.timectl method="get" action={ "/reference/" (name) } {
            div { label for="field" { "Field" } input #field name="field" value=(v(&q.field)) size="18" placeholder="e.g. status"; }
            div { label for="value" { "Equals" } input #value name="value" value=(v(&q.value)) size="14"; }
            div { label for="valid_at" { "Valid time" } input #valid_at name="valid_at" value=(v(&q.valid_at)) placeholder="now" size="22"; }
            div { label for="known_at" { "Known time" } input #known_at name="known_at" value=(v(&q.known_at)) placeholder="now" size="22"; }
            button type="submit" { "Show" }
        }
    }
}

fn next_page(name: &str, q: &RegistryParams, after: &str) -> String {
    let mut link = format!("/reference/{name}?after={}", url_encode(after));
    for (key, value) in [
        ("field", &q.field),
        ("value", &q.value),
        ("valid_at", &q.valid_at),
        ("known_at", &q.known_at),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            link.push_str(&format!("&{key}={}", url_encode(v)));
        }
    }
    link
}

/// The value at a dotted path of a record, as text (lists joined, objects compact).
fn cell(record: &Value, path: &str) -> Markup {
    let mut at = record;
    for part in path.split('.') {
        at = &at[part];
    }
    html! {
        @match at {
            Value::Null => { span.quiet { "—" } },
            Value::String(s) => { (s) },
            Value::Array(items) => {
                (items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string)).collect::<Vec<_>>().join("; "))
            },
            other => { (other.to_string()) },
        }
    }
}

/// A site's local time now, in its registered zone.
fn local_now(site: &Value, now: autolog_domain::Instant) -> Markup {
    let zone = site["time_zone"].as_str().unwrap_or("");
    match autolog_domain::ledger::zone::check_zone("time_zone", zone) {
        Ok(tz) => {
            let local = autolog_domain::ledger::zone::local_time(now, &tz);
            html! { (local.split('[').next().unwrap_or(&local).replace('T', " ")) " (" (zone) ")" }
        }
        Err(_) => html! { span.quiet { "no valid zone" } },
    }
}
