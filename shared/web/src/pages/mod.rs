//! Server-rendered pages every tier serves (askama templates under `templates/`, compiled into the
//! binary): login, home and case list, intake, the case page, the receipt. One module per page family,
//! each with its own `routes()`; `common` holds what they share.

use axum::routing::get;
use axum::Router;

use crate::state::SharedState;

mod accounts;
mod audit;
pub mod ca;
mod case;
mod case_actions;
mod cases;
pub mod common;
mod guide;
mod intake;
mod login;
pub mod notices;
pub mod query;
mod receipt;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .merge(login::routes())
        .merge(ca::routes())
        .merge(audit::routes())
        .merge(accounts::routes())
        .merge(cases::routes())
        .merge(intake::routes())
        .merge(guide::routes())
        .merge(case::routes())
        .merge(receipt::routes())
        .merge(notices::routes())
        .merge(query::routes())
        .route("/assets/app.css", get(common::stylesheet))
}
