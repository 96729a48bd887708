//! The JSON API of CONTRACT.md that every tier answers. One module per resource, each with its own
//! `routes()`; the tiers add their own resources (the node's `/api/sync*`, the hub's `/api/nodes`, …).

use axum::Router;

use crate::state::SharedState;

pub mod audit;
mod cases;
mod status;
mod todo;
mod users;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .merge(status::routes())
        .merge(cases::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .merge(todo::routes())
}
