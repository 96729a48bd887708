//! JSON API handlers (CONTRACT.md): health, catalogue, cases (create, list, read), document export.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tongban_shared::case::{CaseState, IntakeRequest};
use tongban_shared::FieldError;

use crate::app::{self, blocking, ApiUser, AppError, SharedState};
use tongban_runtime::store::{Created, ListQuery};

pub async fn health(State(state): State<SharedState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "code": state.identity.code,
        "name": state.identity.name,
        "role": state.identity.tier.role(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": state.started.elapsed().as_secs(),
        "storage": if state.storage_fault().is_some() { "failed" } else { "ok" },
        "storage_error": state.storage_fault(),
    }))
}

pub async fn catalog(State(state): State<SharedState>, _user: ApiUser) -> Json<Value> {
    let catalog = state.catalog();
    Json(json!({
        "version": catalog.version,
        "region": catalog.region,
        "items": catalog.items,
    }))
}

/// Turns a body rejection into our error: 413 for an oversized body, 400 otherwise.
pub fn body_error(rejection: BytesRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::TooLarge
    } else {
        AppError::Malformed("无法读取请求内容。".into())
    }
}

/// Parses a JSON body: broken syntax is 400; well-formed JSON with a wrong or missing value is 422
/// naming the field where serde can tell.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => {
                let text = e.to_string();
                let field = text
                    .split('`')
                    .nth(1)
                    .filter(|_| text.contains("field"))
                    .unwrap_or("")
                    .to_string();
                let message = if text.starts_with("missing field") {
                    format!("缺少字段“{field}”。")
                } else if text.starts_with("unknown field") {
                    format!("不认识的字段“{field}”。")
                } else {
                    "字段的类型不正确（例如应为文字却给了数字）。".to_string()
                };
                AppError::Invalid(vec![FieldError::new(field, message)])
            }
            _ => AppError::Malformed(format!(
                "请求内容不是有效的JSON（第{}行第{}列）。",
                e.line(),
                e.column()
            )),
        }
    })
}

pub async fn create_case(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    let body = body.map_err(body_error)?;
    let key = app::request_key(&headers)?;
    let req: IntakeRequest = parse_json(&body)?;
    let created = app::file_case(&state, &user, req, key).await?;
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
pub struct ListParams {
    state: Option<String>,
    q: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub fn parse_state(raw: Option<&str>) -> Result<Option<CaseState>, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => CaseState::parse(s).map(Some).ok_or_else(|| {
            AppError::Invalid(vec![FieldError::new(
                "state",
                format!("不认识的办件状态“{s}”。"),
            )])
        }),
    }
}

pub async fn list_cases(
    State(state): State<SharedState>,
    _user: ApiUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, AppError> {
    let limit = match params
        .limit
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => {
                return Err(AppError::Invalid(vec![FieldError::new(
                    "limit",
                    "每页条数应为1到500之间的整数。",
                )]))
            }
        },
    };
    let query = ListQuery {
        state: parse_state(params.state.as_deref())?,
        text: params.q,
        since_ms: None,
        limit,
        cursor: params.cursor.filter(|c| !c.is_empty()),
    };
    let st = state.clone();
    let page = blocking(move || Ok(st.store.list(&query)?)).await?;
    Ok(Json(json!({
        "cases": page.cases,
        "total": page.total,
        "next": page.next,
    })))
}

pub async fn get_case(
    State(state): State<SharedState>,
    _user: ApiUser,
    Path(case_no): Path<String>,
) -> Result<Json<Value>, AppError> {
    let (_, case) = app::load_case(&state, &case_no).await?;
    let mut body = serde_json::to_value(&case).map_err(AppError::internal)?;
    body["item_code"] = case.item.code.clone().into();
    body["item_name"] = case.item.name.clone().into();
    body["state_label"] = case.state().map(|s| s.label()).unwrap_or("未知状态").into();
    Ok(Json(body))
}

pub async fn document(
    State(state): State<SharedState>,
    _user: ApiUser,
    Path(case_no): Path<String>,
) -> Result<Response, AppError> {
    let (bytes, _) = app::load_case(&state, &case_no).await?;
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

/// `GET /api/sync`: the link to the upstream as the last sessions left it.
pub async fn sync_status(State(state): State<SharedState>, _user: ApiUser) -> Json<Value> {
    match &state.sync {
        None => Json(json!({
            "upstream": null,
            "connected": false,
            "last_success": null,
            "pending_up": 0,
            "last_session": null,
        })),
        Some(sync) => Json(serde_json::to_value(sync.status()).unwrap_or_default()),
    }
}

/// `POST /api/sync/now`: one session to completion; 503 when the upstream cannot be reached.
pub async fn sync_now(
    State(state): State<SharedState>,
    _user: ApiUser,
) -> Result<Json<Value>, AppError> {
    let Some(sync) = &state.sync else {
        return Err(AppError::Conflict(
            "本站尚未接入县级平台（单机运行），无法同步。".into(),
        ));
    };
    match sync.run_now().await {
        Ok(report) => Ok(Json(
            serde_json::to_value(report).map_err(AppError::internal)?,
        )),
        Err(e) => {
            tracing::info!(error = %e, "sync now failed");
            Err(AppError::Unavailable(format!(
                "暂时连不上上级平台，办件已安全保存在本机，网络恢复后会自动上传。（{e}）"
            )))
        }
    }
}

/// `POST /api/cases/{no}/actions`: one workflow action by the logged-in account (see
/// [`app::take_action`]): 403 wrong role, 409 wrong state, 422 missing input.
pub async fn case_action(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Path(case_no): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, AppError> {
    let body = body.map_err(body_error)?;
    let input: tongban_shared::workflow::ActionInput = parse_json(&body)?;
    let case = app::take_action(&state, &user, &case_no, input).await?;
    Ok(Json(
        serde_json::to_value(&case).map_err(AppError::internal)?,
    ))
}

/// Deadline colour threshold: yellow when at most this many working days are left (DOMAIN.md default).
pub const YELLOW_DAYS: u32 = 1;

/// Supervision numbers over every case this tier holds (the hub: the county).
pub async fn compute_stats(state: &SharedState) -> Result<tongban_shared::stats::Stats, AppError> {
    let st = state.clone();
    app::blocking(move || {
        let now = app::beijing_now();
        let calendar = st.calendar();
        let mut b = tongban_shared::stats::StatsBuilder::new(
            now.date_naive(),
            now.timestamp_millis(),
            &calendar,
            YELLOW_DAYS,
        );
        st.store.for_each_summary(|s| b.add(s))?;
        Ok(b.finish())
    })
    .await
}

/// `GET /api/stats`: `by_state`, `overdue`, `yellow`, per department, per node and township, intake per
/// day, on-time rate, average evaluation.
pub async fn stats(
    State(state): State<SharedState>,
    _user: ApiUser,
) -> Result<Json<Value>, AppError> {
    let stats = compute_stats(&state).await?;
    Ok(Json(
        serde_json::to_value(stats).map_err(AppError::internal)?,
    ))
}

/// `GET /api/calendar`: which years' official tables this tier has, and their version.
pub async fn calendar(
    State(state): State<SharedState>,
    _user: ApiUser,
) -> Result<Json<Value>, AppError> {
    let cal = state.calendar();
    let years: Vec<i32> = (2020..=2100).filter(|y| cal.covers(*y)).collect();
    let st = state.clone();
    let version = app::blocking(move || Ok(st.store.calendar_version()?)).await?;
    Ok(Json(json!({ "version": version, "years": years })))
}
