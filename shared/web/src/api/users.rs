//! Accounts over HTTP, both tiers: `GET/POST /api/users` (list, add), `POST
//! /api/users/{name}/disable`, `POST /api/users/{name}/password` (reset) for the account manager
//! (the county's `admin`, a station's `head`), and `POST /api/me/password` for everyone's own.
//!
//! A disabled account keeps its record (cases name it) but can no longer log in; changing or resetting
//! a password and disabling end the account's sessions at once.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tongban_shared::FieldError;

use crate::account_admin;
use crate::accounts;
use crate::audit;
use crate::error::{body_error, parse_json, AppError};
use crate::extract::{source_address, ApiUser, CurrentUser};
use crate::guard::Verdict;
use crate::state::{blocking, SharedState};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/users", get(list_users).post(add_user))
        .route("/api/users/{name}/disable", post(disable_user))
        .route("/api/users/{name}/password", post(reset_password))
        .route("/api/me/password", post(change_own_password))
}

fn require_manager(state: &SharedState, user: &CurrentUser) -> Result<(), AppError> {
    crate::access::require_manager(state.identity.tier, user)
}

fn invalid(field: &str, message: impl Into<String>) -> AppError {
    AppError::Invalid(vec![FieldError::new(field, message)])
}

fn hash_new(user: &str, password: &str) -> Result<String, AppError> {
    accounts::hash_new(user, password).map_err(|e| AppError::Invalid(vec![e]))
}

async fn list_users(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
) -> Result<Json<Value>, AppError> {
    require_manager(&state, &user)?;
    let st = state.clone();
    let users = blocking(move || Ok(st.store.users()?)).await?;
    Ok(Json(json!({
        "users": users.iter().map(|u| json!({
            "name": u.name,
            "display_name": u.display_name,
            "role": u.role,
            "disabled": u.is_disabled(),
            "created_at": u.created_at,
        })).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    #[serde(default)]
    display_name: String,
    password: String,
    role: String,
    #[serde(default)]
    dept: Option<String>,
    /// A window's service area.
    #[serde(default)]
    area: Option<String>,
}

async fn add_user(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(body_error)?;
    let req: NewUser = parse_json(&body)?;
    let record = account_admin::add(
        &state,
        &user,
        &accounts::NewAccount {
            name: &req.name,
            display_name: &req.display_name,
            password: &req.password,
            role: &req.role,
            dept: req.dept.as_deref(),
            area: req.area.as_deref(),
        },
    )
    .await?;
    let name = record.name;
    Ok((StatusCode::CREATED, Json(json!({"name": name}))).into_response())
}

async fn disable_user(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(name): Path<String>,
) -> Result<Json<Value>, AppError> {
    account_admin::disable(&state, &user, &name).await?;
    Ok(Json(json!({"name": name, "disabled": true})))
}

#[derive(Deserialize)]
struct Reset {
    password: String,
}

async fn reset_password(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let body = body.map_err(body_error)?;
    let req: Reset = parse_json(&body)?;
    account_admin::reset_password(&state, &user, &name, &req.password).await?;
    Ok(Json(json!({"name": name, "reset": true})))
}

#[derive(Deserialize)]
struct Change {
    current: String,
    new: String,
}

/// Needs the current password (checked by the login guard, so guessing here counts towards the
/// lockout like anywhere else).
async fn change_own_password(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    extensions: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let body = body.map_err(body_error)?;
    let req: Change = parse_json(&body)?;
    match state
        .login_guard
        .verify(
            &state.store,
            &user.name,
            &req.current,
            source_address(&extensions),
        )
        .await?
    {
        Verdict::Valid(_) => {}
        Verdict::Wrong => return Err(invalid("current", "当前密码不正确。")),
        Verdict::Locked(left) => {
            return Err(AppError::Busy(crate::guard::locked_message(left)));
        }
    }
    if req.new == req.current {
        return Err(invalid("new", "新密码不能与当前密码相同。"));
    }
    let hash = hash_new(&user.name, &req.new)?;
    let st = state.clone();
    let n = user.name.clone();
    blocking(move || {
        Ok(st
            .store
            .update_user(&n, |u| u.password_hash = hash.clone())?)
    })
    .await?;
    state.sessions.end_all_of(&user.name);
    audit::record(
        &state.store,
        &user.name,
        "password.changed",
        &user.name,
        user.source,
    )
    .await?;
    Ok(Json(json!({"name": user.name, "changed": true})))
}
