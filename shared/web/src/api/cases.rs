//! `/api/cases…`: file a case, list, read, export its document, take an action.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tongban_runtime::store::{Created, ListQuery};
use tongban_shared::case::IntakeRequest;
use tongban_shared::workflow::ActionInput;
use tongban_shared::FieldError;

use crate::access::{self, Capability};
use crate::error::{body_error, parse_json, AppError};
use crate::extract::{parse_state, request_key, ApiUser};
use crate::service;
use crate::state::{blocking, SharedState};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/cases", post(create_case).get(list_cases))
        .route("/api/cases/{case_no}", get(get_case))
        .route("/api/cases/{case_no}/document", get(document))
        .route("/api/cases/{case_no}/actions", post(case_action))
}

async fn create_case(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(body_error)?;
    let key = request_key(&headers)?;
    let req: IntakeRequest = parse_json(&body)?;
    let created = service::file_case(&state, &user, req, key).await?;
    let (status, summary, replayed) = match created {
        Created::New(s) => (StatusCode::CREATED, s, false),
        Created::Replayed(s) => (StatusCode::OK, s, true),
    };
    let location = format!("/api/cases/{}", summary.case_no);
    let mut body = serde_json::to_value(&summary).map_err(AppError::internal)?;
    body["replayed"] = replayed.into();
    body["receipt"] = format!("/cases/{}/receipt", summary.case_no).into();
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
struct ListParams {
    state: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn parse_limit(raw: Option<&str>) -> Result<usize, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(50),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(AppError::Invalid(vec![FieldError::new(
                "limit",
                "每页条数应为1到500之间的整数。",
            )])),
        },
    }
}

async fn list_cases(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, AppError> {
    let tier = state.identity.tier;
    access::require(tier, &user, Capability::Read)?;
    let query = ListQuery {
        dept: access::dept_scope(tier, &user.role).map(str::to_string),
        state: parse_state(params.state.as_deref())?,
        text: params.q,
        since_ms: None,
        limit: parse_limit(params.limit.as_deref())?,
        cursor: params.cursor.filter(|c| !c.is_empty()),
    };
    let st = state.clone();
    let mut page = blocking(move || Ok(st.store.list(&query)?)).await?;
    page.cases.iter_mut().for_each(access::mask_summary);
    Ok(Json(json!({
        "cases": page.cases,
        "total": page.total,
        "next": page.next,
    })))
}

async fn get_case(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(case_no): Path<String>,
) -> Result<Json<Value>, AppError> {
    let case = service::load_case_for(&state, &user, &service::case_no(&case_no)?).await?;
    let mut body = serde_json::to_value(&case).map_err(AppError::internal)?;
    body["item_code"] = case.item.code.clone().into();
    body["item_name"] = case.item.name.clone().into();
    body["state_label"] = case.state_label_at(state.identity.tier).into();
    Ok(Json(body))
}

async fn document(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(case_no): Path<String>,
) -> Result<Response, AppError> {
    let tier = state.identity.tier;
    access::require(tier, &user, Capability::Document)?;
    let (bytes, case) = service::load_case(&state, &service::case_no(&case_no)?).await?;
    access::require_in_scope(tier, &user, &case)?;
    crate::audit::record(
        &state.store,
        &user.name,
        "document.exported",
        &case.case_no,
        user.source,
    )
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{case_no}.automerge\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /api/cases/{no}/actions`: one workflow action by the logged-in account (see
/// [`service::take_action`]): 403 wrong role, 409 wrong state, 422 missing input.
async fn case_action(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(case_no): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let body = body.map_err(body_error)?;
    let input: ActionInput = parse_json(&body)?;
    let case = service::take_action(&state, &user, &service::case_no(&case_no)?, input).await?;
    Ok(Json(
        serde_json::to_value(&case).map_err(AppError::internal)?,
    ))
}
