//! Tongban's case web app, served by every tier: a village or township node over the cases in its
//! scope, the county hub over the whole county.
//!
//! - [`state`]: what requests share ([`AppState`]), and [`blocking`] for store work.
//! - [`site`]: the small trait through which the tiers differ.
//! - [`error`]: the one error type and its mapping to status codes.
//! - [`accounts`] / [`extract`]: password hashes, sessions, and the account behind a request;
//!   [`guard`]: every password check, bounded and with lockout.
//! - [`access`]: the table of who may file, read, see personal data in full; masking.
//! - [`account_admin`]: adding, disabling and resetting accounts as the tier's manager.
//! - [`service`]: filing a case, taking an action, loading, statistics — no HTTP types.
//! - [`api`] / [`pages`]: the JSON API and the server-rendered pages, one module per resource.
//! - [`text`]: URL encoding and times as people read them.
//! - [`throttle`]: the self-query page's guard against guessing.
//! - [`https`]: serving a router over HTTPS, plain HTTP on loopback, or a redirect to HTTPS.
//! - [`metrics`]: `GET /metrics` and the request-latency middleware.
//!
//! The tiers build their routers with [`router`], adding their own routes.

pub mod access;
pub mod account_admin;
pub mod accounts;
pub mod api;
pub mod audit;
pub mod error;
pub mod extract;
pub mod guard;
pub mod https;
pub mod metrics;
pub mod pages;
pub mod service;
pub mod site;
pub mod state;
pub mod text;
pub mod throttle;

pub use error::AppError;
pub use https::{serve_http, serve_https, Peer, TlsListener};
pub use site::Site;
pub use state::{blocking, AppState, SharedState};

use axum::extract::DefaultBodyLimit;
use axum::Router;

/// The whole HTTP app of a tier: the shared case app plus the tier's own routes (`tier`, with its own
/// state already applied). Unknown paths answer 404 as JSON under `/api`, as a page elsewhere.
pub fn router(state: SharedState, tier: Router) -> Router {
    let timed = state.metrics.clone();
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .merge(metrics::routes())
        .fallback(pages::common::not_found)
        .layer(DefaultBodyLimit::max(state::MAX_BODY_BYTES))
        .with_state(state)
        .merge(tier)
        // After the tier's routes are in, so theirs are timed too; a layer on the router runs after
        // routing, where the route template (`MatchedPath`) is known.
        .layer(axum::middleware::from_fn_with_state(timed, metrics::track))
        .layer(axum::middleware::map_response(security_headers))
}

/// What a plain-HTTP address beyond loopback answers besides redirects: the county CA and how to
/// install it (`/ca`, `/ca.pem`).
pub fn public_routes(state: SharedState) -> Router {
    pages::ca::routes()
        .with_state(state)
        .layer(axum::middleware::map_response(security_headers))
}

/// Headers on every answer of every tier: no other site may frame a page (clickjacking), the browser
/// must not guess content types, and nothing but the stylesheet is kept in a cache — pages and API
/// answers carry villagers' ID numbers, phones and addresses, and hall PCs are shared.
async fn security_headers(
    uri: axum::http::Uri,
    mut response: axum::response::Response,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !uri.path().starts_with("/assets/") {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
