//! `/items/{code}/guide`: an item's 办事指南 on A4 from the catalogue this tier holds (offline at a
//! village too), laid out by `tongban_shared::manual::Guide`.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tongban_shared::manual::Guide;

use super::common::{page_error, render};
use crate::error::AppError;
use crate::extract::WebUser;
use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/items/{code}/guide", get(guide))
}

#[derive(Template)]
#[template(path = "guide.html")]
struct GuidePage {
    g: Guide,
    catalog_version: u32,
    published: String,
    region_name: String,
}

/// Every signed-in account may print a guide: the agent hands it to a villager, the window to an
/// applicant who must come back with more.
async fn guide(
    State(state): State<SharedState>,
    WebUser(_user): WebUser,
    Path(code): Path<String>,
) -> Response {
    let catalog = state.catalog();
    let Some(item) = catalog.item(&code) else {
        return page_error(AppError::NotFound(format!(
            "事项目录（第{}版）里没有编码为“{code}”的事项。",
            catalog.version
        )));
    };
    render(&GuidePage {
        g: Guide::of(item, &catalog.county),
        catalog_version: catalog.version,
        published: catalog.published.clone(),
        region_name: catalog.region_name.clone(),
    })
}
