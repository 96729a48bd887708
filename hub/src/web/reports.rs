//! `GET /api/reports/monthly` (the assessment workbook) and `GET /api/outbox` (texts to applicants).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tongban_shared::FieldError;
use tongban_web::extract::ApiUser;
use tongban_web::{access, audit};
use tongban_web::{blocking, AppError};

use super::state::HubState;

pub fn routes() -> Router<HubState> {
    Router::new()
        .route("/api/reports/monthly", get(monthly_report))
        .route("/api/outbox", get(outbox))
}

#[derive(serde::Deserialize)]
struct OutboxParam {
    case_no: Option<String>,
}

/// `GET /api/outbox[?case_no=]`: messages to applicants, sent or waiting.
async fn outbox(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    Query(q): Query<OutboxParam>,
) -> Result<Json<Value>, AppError> {
    access::require_endpoint(&user, "GET /api/outbox")?;
    let st = state.app.clone();
    let messages = blocking(move || Ok(st.store.county().outbox(false)?)).await?;
    let messages: Vec<_> = messages
        .into_iter()
        .filter(|m| q.case_no.as_deref().is_none_or(|c| m.case_no == c))
        .collect();
    Ok(Json(json!({ "messages": messages })))
}

#[derive(serde::Deserialize)]
struct MonthParam {
    month: Option<String>,
}

/// `GET /api/reports/monthly?month=YYYY-MM` (admin, supervisor): the assessment workbook.
async fn monthly_report(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    Query(q): Query<MonthParam>,
) -> Result<Response, AppError> {
    access::require_endpoint(&user, "GET /api/reports/monthly")?;
    let month = q.month.unwrap_or_default();
    let st = state.app.clone();
    let m = month.clone();
    let bytes = blocking(move || {
        let monthly = crate::report::collect(&st.store, &m).map_err(|e| match e {
            crate::report::ReportError::Month(_) => AppError::Invalid(vec![FieldError::new(
                "month",
                "月份格式应为YYYY-MM，例如2026-11。",
            )]),
            other => AppError::internal(other),
        })?;
        crate::report::workbook(&monthly).map_err(AppError::internal)
    })
    .await?;
    audit::record(
        &state.app.store,
        &user.name,
        "report.downloaded",
        &month,
        user.source,
    )
    .await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"tongban-{month}.xlsx\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
