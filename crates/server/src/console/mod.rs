//! The console: server-rendered HTML for the people who carry the chain of identity,
//! under `/` beside the API (`/api`, `/epcis`, `/fhir`). Pages are maud templates compiled
//! into the binary; the stylesheet, one small script and htmx (vendored, its hash pinned)
//! are served from the binary under content-hashed names (`assets.rs`). Every page works
//! without JavaScript: htmx only keeps the alert count live.
//!
//! A person signs in with the API's session: the same cookie, the same CSRF token, which
//! forms carry in a hidden field (the console keeps it in a second HttpOnly cookie to put
//! it in the forms it renders). Every page needs a live session; what a role may see is
//! decided by the same grants and the same scope checks as the API's.

mod admin;
mod alerts;
mod assets;
mod bedside;
mod chain;
mod chain_view;
mod enrol;
mod home;
mod labels;
mod network;
mod page;
mod record;
mod reference;
mod release;
mod session;
mod steps;
mod viewer;

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use std::sync::Arc;

use autolog_app::Autolog;

pub(crate) use page::not_found_page;

/// The console's Content-Security-Policy: its own files only, no inline script or style,
/// forms post only to itself, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The console's pages, to be merged into the server's router.
pub(crate) fn router() -> Router<Arc<Autolog>> {
    Router::new()
        .route("/", get(home::home))
        .route("/sign-in", get(session::form).post(session::sign_in))
        .route("/sign-out", post(session::sign_out))
        .route("/chains", get(chain::find))
        .route("/enrol", get(enrol::form).post(enrol::enrol))
        .route("/chains/{coi}", get(chain::page_of_chain))
        .route(
            "/chains/{coi}/identity",
            get(chain::identity_get).post(chain::identity),
        )
        .route(
            "/chains/{coi}/steps/{step}",
            get(steps::form).post(steps::submit),
        )
        .route(
            "/chains/{coi}/release",
            get(release::form).post(release::sign),
        )
        .route(
            "/chains/{coi}/bedside",
            get(bedside::form).post(bedside::check),
        )
        .route("/chains/{coi}/administer", post(bedside::administer))
        .route("/chains/{coi}/labels", get(labels::form))
        .route("/chains/{coi}/labels/print", post(labels::print))
        .route("/chains/{coi}/labels/verify", post(labels::verify))
        .route(
            "/chains/{coi}/record/{form}",
            get(record::form).post(record::submit),
        )
        .route("/alerts", get(alerts::inbox))
        .route("/alerts/count", get(alerts::count))
        .route("/alerts/banner", get(alerts::banner))
        .route("/alerts/{alert_id}/acknowledge", post(alerts::acknowledge))
        .route("/alerts/{alert_id}/resolve", post(alerts::resolve))
        .route("/network", get(network::reconciliation))
        .route("/network/alignment", get(network::alignment))
        .route("/network/turnaround", get(network::turnaround))
        .route("/network/retention", get(network::retention))
        .route("/network/signals", get(network::signals))
        .route("/reference", get(reference::index))
        .route("/reference/{registry}", get(reference::registry))
        .route("/admin", get(admin::index))
        .route("/admin/users", post(admin::create))
        .route("/admin/users/{person_id}", get(admin::user))
        .route(
            "/admin/users/{person_id}/{action}",
            post(admin::account_action),
        )
        .route("/admin/tokens", post(admin::issue))
        .route("/admin/tokens/{token_id}/revoke", post(admin::revoke_token))
        .route("/assets/{name}", get(assets::serve))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
}
