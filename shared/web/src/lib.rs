//! Tongban's case web app, served by every tier: a village or township node over the cases in its
//! scope, the county hub over the whole county.
//!
//! - [`state`]: what requests share ([`AppState`]), and [`blocking`] for store work.
//! - [`site`]: the small trait through which the tiers differ.
//! - [`error`]: the one error type and its mapping to status codes.
//! - [`accounts`] / [`extract`]: password hashes, sessions, and the account behind a request.
//! - [`service`]: filing a case, taking an action, loading, statistics — no HTTP types.
//! - [`api`] / [`pages`]: the JSON API and the server-rendered pages, one module per resource.
//! - [`text`]: URL encoding and times as people read them.
//!
//! The tiers build their routers with [`router`], adding their own routes.

pub mod accounts;
pub mod api;
pub mod error;
pub mod extract;
pub mod pages;
pub mod service;
pub mod site;
pub mod state;
pub mod text;

pub use error::AppError;
pub use site::Site;
pub use state::{blocking, AppState, SharedState};

use axum::extract::DefaultBodyLimit;
use axum::Router;

/// The whole HTTP app of a tier: the shared case app plus the tier's own routes (`tier`, with its own
/// state already applied). Unknown paths answer 404 as JSON under `/api`, as a page elsewhere.
pub fn router(state: SharedState, tier: Router) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .fallback(pages::common::not_found)
        .layer(DefaultBodyLimit::max(state::MAX_BODY_BYTES))
        .with_state(state)
        .merge(tier)
}
