//! The hub's own HTTP routes, merged into the case web app it shares with the nodes: the node tree and
//! enrolment, county data (catalogue, calendar), queues, the dashboard, reports and the outbox.

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tongban_web::state::MAX_BODY_BYTES;

mod calendar;
mod catalog;
mod catalog_item;
mod county_data;
mod dashboard;
mod nodes;
mod queue;
mod reports;
mod state;

pub use state::HubState;

fn routes(state: HubState) -> Router {
    Router::new()
        .merge(nodes::routes())
        .merge(county_data::routes())
        .merge(calendar::routes())
        .merge(catalog::routes())
        .merge(catalog_item::routes())
        .merge(reports::routes())
        .merge(queue::routes())
        .merge(dashboard::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The whole HTTP app of the hub.
pub fn app(state: HubState) -> Router {
    tongban_web::router(state.app.clone(), routes(state))
}
