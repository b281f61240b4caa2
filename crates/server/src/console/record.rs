//! Steps entered by hand where a site has no MES or LIMS connected: a batch created,
//! a manufacturing step performed, material consumed, final units produced, a test result,
//! a deviation opened or closed, a hold resolved, a follow-up visit. Each form is declared
//! once as a table of its fields (what the event's payload takes), rendered and read by
//! the same code; the person recording is the signed-in person, signed records ask for the
//! password (an e-signature), verified ones for their verifiers. A refusal shows beside
//! the form with everything typed kept.

use std::sync::Arc;

use autolog_app::{AppError, Autolog};
use autolog_domain::{FieldError, StreamId};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use super::page::{coi_large, csrf_field, page, Nav};
use super::steps::{console_event, verification_fields, Filled};
use super::viewer::{viewer, ConsoleError};

/// What a field holds and how the form reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// A number (decimal point).
    Number,
    /// An instant with its offset.
    Instant,
    /// Values separated by commas or new lines (scans one per line).
    List,
    /// A number, true/false, or else text (a test result).
    Value,
    /// The signed-in person (not a field: recorded as is).
    Me,
    /// A site id, defaulting to where the chain's material is.
    Site,
    /// The signed-in person's password, as the e-signature of this record.
    Signature,
}

struct FieldSpec {
    name: &'static str,
    label: &'static str,
    kind: Kind,
    required: bool,
}

const fn f(name: &'static str, label: &'static str, kind: Kind, required: bool) -> FieldSpec {
    FieldSpec {
        name,
        label,
        kind,
        required,
    }
}

/// A form: its address, the event it records, what the button says, its fields.
struct FormSpec {
    slug: &'static str,
    event_type: &'static str,
    title: &'static str,
    fields: &'static [FieldSpec],
}

use Kind::*;

const FORMS: &[FormSpec] = &[
    FormSpec {
        slug: "batch",
        event_type: "batch.created",
        title: "Create the batch",
        fields: &[
            f("batch_id", "Batch id", Text, true),
            f("site_id", "Manufacturing site", Site, true),
            f("created_by", "", Me, true),
            f(
                "source_dins",
                "Collected bags it is made from (DINs, one per line)",
                List,
                true,
            ),
            f("mes_system", "MES (if any)", Text, false),
            f("mes_batch_number", "MES batch number", Text, false),
        ],
    },
    FormSpec {
        slug: "step",
        event_type: "chain.step_performed",
        title: "Record a manufacturing step",
        fields: &[
            f("step_code", "Step (e.g. MANUFACTURE, CRYO)", Text, true),
            f("site_id", "Site", Site, true),
            f("performed_by", "", Me, true),
            f(
                "equipment_ids",
                "Equipment used (one per line)",
                List,
                false,
            ),
            f("started_at", "Started at", Instant, true),
            f("ended_at", "Ended at", Instant, false),
        ],
    },
    FormSpec {
        slug: "material",
        event_type: "batch.material_consumed",
        title: "Record material consumed",
        fields: &[
            f("batch_id", "Batch id", Text, true),
            f("material", "Material", Text, true),
            f("lot", "Lot", Text, true),
            f("quantity", "Quantity", Number, true),
            f("quantity_unit", "Unit of quantity", Text, true),
            f("site_id", "Site", Site, true),
            f("recorded_by", "", Me, true),
            f("step_code", "Step", Text, false),
        ],
    },
    FormSpec {
        slug: "units",
        event_type: "batch.units_produced",
        title: "Record the final units labelled",
        fields: &[
            f("batch_id", "Batch id", Text, true),
            f("site_id", "Site", Site, true),
            f("recorded_by", "", Me, true),
            f(
                "units",
                "Final units (scan each label, one per line)",
                List,
                true,
            ),
            f("expires_at", "Expires at", Instant, false),
        ],
    },
    FormSpec {
        slug: "result",
        event_type: "batch.test_result_recorded",
        title: "Record a test result",
        fields: &[
            f("batch_id", "Batch id", Text, true),
            f("test_code", "Test", Text, true),
            f("method", "Method", Text, true),
            f(
                "result",
                "Result (a number, true or false, or text)",
                Value,
                true,
            ),
            f("result_unit", "Unit of the result", Text, false),
            f("site_id", "Laboratory", Site, true),
            f("analyst_id", "", Me, true),
            f("sample_id", "Sample", Text, false),
            f("unit", "Final unit tested (if one)", Text, false),
        ],
    },
    FormSpec {
        slug: "deviation",
        event_type: "deviation.opened",
        title: "Open a deviation",
        fields: &[
            f("deviation_id", "Deviation id", Text, true),
            f("batch_id", "Batch id", Text, false),
            f("site_id", "Site", Site, true),
            f("opened_by", "", Me, true),
            f("category", "Category", Text, true),
            f(
                "summary",
                "Summary (no patient's identifying data)",
                Text,
                true,
            ),
        ],
    },
    FormSpec {
        slug: "deviation-close",
        event_type: "deviation.closed",
        title: "Close a deviation (signed)",
        fields: &[
            f("deviation_id", "Deviation id", Text, true),
            f("site_id", "Site", Site, true),
            f("closed_by", "", Me, true),
            f(
                "disposition",
                "Disposition (e.g. release_permitted)",
                Text,
                true,
            ),
            f("rationale", "Rationale", Text, true),
            f(
                "signature",
                "Your password (your e-signature of this closure)",
                Signature,
                true,
            ),
        ],
    },
    FormSpec {
        slug: "hold-release",
        event_type: "chain.hold_released",
        title: "Resolve a hold (signed)",
        fields: &[
            f("hold_id", "Hold id", Text, true),
            f("site_id", "Site", Site, true),
            f("resolved_by", "", Me, true),
            f("resolution_reason", "Why the hold is resolved", Text, true),
            f(
                "signature",
                "Your password (your e-signature of this resolution)",
                Signature,
                true,
            ),
        ],
    },
    FormSpec {
        slug: "exceptional-request",
        event_type: "chain.exceptional_release_requested",
        title: "Request an exceptional release (treating physician, signed)",
        fields: &[
            f("batch_id", "Batch id", Text, true),
            f("intended_patient_key", "Patient key", Text, true),
            f(
                "result_event_ids",
                "The out-of-specification results accepted (their event ids, one per line)",
                List,
                true,
            ),
            f("site_id", "Treatment site", Site, true),
            f("requested_by", "", Me, true),
            f(
                "justification",
                "Clinical justification (no patient's identifying data)",
                Text,
                true,
            ),
            f(
                "signature",
                "Your password (your e-signature of this request)",
                Signature,
                true,
            ),
        ],
    },
    FormSpec {
        slug: "follow-up",
        event_type: "chain.follow_up_recorded",
        title: "Record a follow-up visit",
        fields: &[
            f("site_id", "Site", Site, true),
            f("recorded_by", "", Me, true),
            f("visit_code", "Visit (e.g. M3, M6, Y1)", Text, true),
            f("outcome_code", "Outcome", Text, true),
        ],
    },
];

fn form_spec(slug: &str) -> Result<&'static FormSpec, ConsoleError> {
    FORMS.iter().find(|f| f.slug == slug).ok_or_else(|| {
        AppError::NotFound {
            what: "form",
            id: slug.to_string(),
        }
        .into()
    })
}

/// The forms the chain page links to: (address, title).
pub(crate) fn forms() -> impl Iterator<Item = (&'static str, &'static str)> {
    FORMS.iter().map(|f| (f.slug, f.title))
}

/// `GET /chains/{coi}/record/{form}`.
pub(crate) async fn form(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path((coi, slug)): Path<(String, String)>,
    Query(given): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let spec = form_spec(&slug)?;
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let mut filled = Filled::default();
    filled.pairs.push((
        "idempotency_key".into(),
        autolog_domain::Uuid::now_v7().to_string(),
    ));
    // A link may fill some fields in (the hold a banner's link resolves); never a secret.
    for field in spec
        .fields
        .iter()
        .filter(|f| f.kind != Signature && f.kind != Me)
    {
        if let Some(value) = given.get(field.name) {
            filled.pairs.push((field.name.to_string(), value.clone()));
        }
    }
    let body = render(&app, &viewer, spec, &coi, &filled, None).await?;
    Ok(page(Some(&viewer), spec.title, Nav::Chains, body).into_response())
}

async fn render(
    app: &Autolog,
    viewer: &super::viewer::Viewer,
    spec: &FormSpec,
    coi: &str,
    filled: &Filled,
    refusal: Option<&[FieldError]>,
) -> Result<Markup, ConsoleError> {
    let chain = app.chain(coi, None, None).await?;
    let here = chain.location_site_id.clone().unwrap_or_default();
    let site = Some(filled.get("site_id"))
        .filter(|s| !s.is_empty())
        .unwrap_or(&here)
        .to_string();
    let needed = app
        .verification_needed(
            spec.event_type,
            StreamId::chain(coi).as_ref(),
            &site,
            app.now(),
        )
        .await?;
    Ok(html! {
        h1 { (spec.title) }
        p { "Chain " (coi_large(coi)) ". " a href={ "/chains/" (coi) } { "Back to the chain" } }
        @if let Some(list) = refusal {
            div.banner.critical role="alert" {
                "Not recorded:"
                ul { @for f in list { li { strong { (f.field) } " " (f.value) ": " (f.rule) } } }
            }
        }
        form.card method="post" action={ "/chains/" (coi) "/record/" (spec.slug) } {
            (csrf_field(viewer))
            input type="hidden" name="idempotency_key" value=(filled.get("idempotency_key"));
            p { "Recorded by " strong { (viewer.person_id) } "." }
            @for field in spec.fields.iter().filter(|f| f.kind != Me) {
                (input(field, filled, &here))
            }
            (verification_fields(needed.as_ref(), filled))
            p { button type="submit" { "Record: " (spec.title.to_lowercase()) } }
        }
    })
}

fn input(field: &FieldSpec, filled: &Filled, here: &str) -> Markup {
    let given = filled.pairs.iter().any(|(k, _)| k == field.name);
    let value = match (given, field.kind) {
        (true, _) => filled.get(field.name).to_string(),
        (false, Site) => here.to_string(),
        (false, _) => String::new(),
    };
    let hint = match field.kind {
        Instant => Some("An instant with its offset, e.g. 2026-12-07T08:00:00-05:00"),
        List => Some("One per line, or separated by commas"),
        _ => None,
    };
    let hint_id = format!("{}-hint", field.name);
    html! {
        label for=(field.name) { (field.label) @if !field.required { " (optional)" } }
        @match field.kind {
            List => { textarea #(field.name) name=(field.name) rows="3" aria-describedby=[hint.map(|_| hint_id.as_str())] { (value) } },
            Signature => { input #(field.name) name=(field.name) type="password" autocomplete="current-password" required; },
            _ => { input #(field.name) name=(field.name) value=(value) autocomplete="off" required[field.required]
                    aria-describedby=[hint.map(|_| hint_id.as_str())]; },
        }
        @if let Some(h) = hint { p.field-hint #(hint_id) { (h) } }
    }
}

/// The payload the form states: each field read by its kind; optional ones left out when
/// empty.
fn payload(spec: &FormSpec, filled: &Filled, me: &str) -> Result<Value, FieldError> {
    let mut data = Map::new();
    for field in spec.fields {
        let text = filled.get(field.name);
        let value = match field.kind {
            Me => json!(me),
            Signature => json!({"signer_id": me, "secret": text}),
            List => json!(text
                .split([',', '\n'])
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect::<Vec<_>>()),
            _ if text.is_empty() && !field.required => continue,
            Number => json!(text.parse::<f64>().map_err(|_| FieldError::new(
                field.name,
                text,
                "must be a number, e.g. 12.5"
            ))?),
            Value => match (text.parse::<f64>(), text) {
                (Ok(n), _) => json!(n),
                (_, "true") => json!(true),
                (_, "false") => json!(false),
                _ => json!(text),
            },
            Text | Instant | Site => json!(text),
        };
        data.insert(field.name.to_string(), value);
    }
    if let Some(given) = filled.verifications() {
        data.insert("verifications".into(), given);
    }
    Ok(Value::Object(data))
}

/// `POST /chains/{coi}/record/{form}`.
pub(crate) async fn submit(
    State(app): State<Arc<Autolog>>,
    headers: HeaderMap,
    uri: Uri,
    Path((coi, slug)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let viewer = viewer(&app, &headers, &uri).await?;
    let spec = form_spec(&slug)?;
    let filled = Filled::read(&body)?;
    viewer.check_csrf(filled.get("csrf"))?;
    let coi = super::chain::in_scope(&app, &viewer, &coi).await?;
    let refusal = match record(&app, &viewer, spec, &coi, &filled).await {
        Ok(()) => return Ok(Redirect::to(&format!("/chains/{coi}#timeline-h")).into_response()),
        Err(list) => list,
    };
    // What was typed comes back, but never a password.
    let mut kept = filled.clone();
    kept.pairs
        .retain(|(k, _)| k != "signature" && k != "verifier_secret");
    let body = render(&app, &viewer, spec, &coi, &kept, Some(&refusal)).await?;
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        page(Some(&viewer), spec.title, Nav::Chains, body),
    )
        .into_response())
}

async fn record(
    app: &Autolog,
    viewer: &super::viewer::Viewer,
    spec: &FormSpec,
    coi: &str,
    filled: &Filled,
) -> Result<(), Vec<FieldError>> {
    let data = payload(spec, filled, &viewer.person_id).map_err(|f| vec![f])?;
    let site = data["site_id"].as_str().unwrap_or("").to_string();
    let source = format!("{}/{}", spec.slug, filled.get("idempotency_key"));
    let event = console_event(app, coi, &site, spec.event_type, &source, data)
        .await
        .map_err(|f| vec![f])?;
    match app
        .append_json_as(&viewer.principal, event.to_string().as_bytes())
        .await
    {
        Ok(_) => Ok(()),
        Err(AppError::Invalid(f) | AppError::Forbidden(f)) => Err(vec![f]),
        Err(AppError::Unmet(list)) => Err(list),
        Err(e) => Err(vec![FieldError::new("request", "", e.to_string())]),
    }
}
