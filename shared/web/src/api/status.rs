//! `GET /api/health`, `/api/catalog`, `/api/calendar`, `/api/stats`: what this tier is and holds.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::AppError;
use crate::extract::ApiUser;
use crate::service;
use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/catalog", get(catalog))
        .route("/api/stats", get(stats))
        .route("/api/calendar", get(calendar))
        .route("/api/badge", get(badge))
}

/// `GET /api/badge`: the header badge as the page shows it, the count waiting to go up and the
/// station's to-do count, which every page refreshes every few seconds without a reload.
async fn badge(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
) -> Result<Json<Value>, AppError> {
    let badge = state.site.badge();
    if state.identity.tier == tongban_shared::Tier::County {
        // The county's own counts depend on the account's role: its staff read their queue.
        return Ok(Json(
            json!({ "badge": badge, "pending": null, "todo": null }),
        ));
    }
    let todo = service::todo_total(&state, &user).await?;
    // The home page's 待上传县级; a standalone node has no upstream, and every case it has not
    // handed over waits (its 待上报县级).
    let pending = match state.site.pending_up() {
        Some(n) => n,
        None => {
            let st = state.clone();
            crate::state::blocking(move || {
                Ok(st
                    .store
                    .count(Some(tongban_shared::case::CaseState::Submitted))?)
            })
            .await?
        }
    };
    Ok(Json(
        json!({ "badge": badge, "pending": pending, "todo": todo }),
    ))
}

/// Public (monitoring needs no account), so the storage error's details — paths, OS errors — go only
/// to a logged-in account.
async fn health(State(state): State<SharedState>, user: Result<ApiUser, AppError>) -> Json<Value> {
    let fault = state.storage_fault().filter(|_| user.is_ok());
    Json(json!({
        "status": "ok",
        "code": state.identity.code,
        "name": state.identity.name,
        "role": state.identity.tier.role(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "storage": if state.storage_fault().is_some() { "failed" } else { "ok" },
        "storage_error": fault,
    }))
}

async fn catalog(State(state): State<SharedState>, _user: ApiUser) -> Json<Value> {
    let catalog = state.catalog();
    Json(json!({
        "version": catalog.version,
        "region": catalog.region,
        "items": catalog.items,
    }))
}

/// `GET /api/stats`: `by_state`, `overdue`, `yellow`, per department, per node and township, intake per
/// day, on-time rate, average evaluation.
async fn stats(State(state): State<SharedState>, _user: ApiUser) -> Result<Json<Value>, AppError> {
    let stats = service::compute_stats(&state).await?;
    Ok(Json(
        serde_json::to_value(stats).map_err(AppError::internal)?,
    ))
}

/// `GET /api/calendar`: which years' official tables this tier has, and their version.
async fn calendar(State(state): State<SharedState>, _user: ApiUser) -> Json<Value> {
    let cal = state.calendar();
    let years: Vec<i32> = (2020..=2100).filter(|y| cal.covers(*y)).collect();
    Json(json!({ "version": state.calendar_version(), "years": years }))
}
