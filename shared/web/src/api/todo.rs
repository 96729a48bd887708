//! `GET /api/todo`: the station's to-do inbox (what its cases ask of it), with counts per kind. The
//! home page renders the same list; its header polls the counts.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::AppError;
use crate::extract::ApiUser;
use crate::service;
use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/api/todo", get(todo))
}

async fn todo(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
) -> Result<Json<Value>, AppError> {
    let inbox = service::todo(&state, &user).await?;
    let items: Vec<Value> = inbox
        .groups
        .iter()
        .flat_map(|g| {
            g.items.iter().map(move |i| {
                json!({
                    "case_no": i.case_no,
                    "kind": g.kind.as_str(),
                    "since": i.since,
                    "waited": i.waited,
                    "item_name": i.item_name,
                    "applicant_name": i.applicant_name,
                    "note": i.note,
                })
            })
        })
        .collect();
    let mut counts = serde_json::Map::new();
    for g in &inbox.groups {
        counts.insert(g.kind.as_str().to_string(), g.total.into());
    }
    counts.insert("total".into(), inbox.total().into());
    Ok(Json(json!({ "items": items, "counts": counts })))
}
