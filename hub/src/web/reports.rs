//! `GET /api/reports/monthly` (the assessment workbook), and the texts to applicants: `GET /api/outbox`,
//! `POST /api/outbox/{id}/retry` and the `/outbox` page.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use tongban_runtime::store::county::{OutboxMessage, OutboxState, Requeue};
use tongban_shared::FieldError;
use tongban_web::extract::{ApiUser, CurrentUser, WebUser};
use tongban_web::pages::common::{csrf_checked_form, field, page_error, render, PageCtx};
use tongban_web::text::format_time;
use tongban_web::{access, audit};
use tongban_web::{blocking, AppError};

use super::state::HubState;
use crate::notify::{masked_phone, OutboxWake};

pub fn routes() -> Router<HubState> {
    Router::new()
        .route("/api/reports/monthly", get(monthly_report))
        .route("/api/outbox", get(outbox))
        .route("/api/outbox/{id}/retry", post(retry))
        .route("/outbox", get(outbox_page).post(outbox_form))
}

#[derive(serde::Deserialize)]
struct OutboxParam {
    case_no: Option<String>,
}

/// `GET /api/outbox[?case_no=]`: messages to applicants, sent or waiting, each with its `state`
/// (`pending`, `sent`, `failed`, `capped`), `attempts`, `last_error` and `next_attempt_at`.
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

/// Puts a failed or capped message back in the queue and wakes the sender; the refusal as the caller
/// reads it otherwise.
async fn requeue(
    state: &HubState,
    user: &CurrentUser,
    wake: Option<&OutboxWake>,
    id: u64,
) -> Result<OutboxMessage, AppError> {
    access::require_endpoint(user, "POST /api/outbox/{id}/retry")?;
    let st = state.app.clone();
    let by = user.name.clone();
    let outcome = blocking(move || Ok(st.store.county().requeue(id, &by)?)).await?;
    let msg = match outcome {
        Requeue::Requeued(msg) => *msg,
        Requeue::NotFound => return Err(AppError::NotFound(format!("没有编号为{id}的短信。"))),
        Requeue::NotStuck(now) => {
            return Err(AppError::Conflict(format!(
                "这条短信{}，只有发送失败或超出当日条数的短信可以重新发送。",
                match now {
                    OutboxState::Sent => "已经发出",
                    _ => "正在等待发送",
                }
            )))
        }
    };
    audit::record(
        &state.app.store,
        &user.name,
        "outbox.requeued",
        &format!("{id} {}", msg.case_no),
        user.source,
    )
    .await?;
    if let Some(OutboxWake(wake)) = wake {
        wake.notify_one();
    }
    Ok(msg)
}

/// `POST /api/outbox/{id}/retry` (admin): a failed or capped message is tried again at once, with a
/// fresh set of attempts and past the daily limit. 409 for a message that is pending or sent.
async fn retry(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    wake: Option<Extension<OutboxWake>>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, AppError> {
    let msg = requeue(&state, &user, wake.as_ref().map(|w| &w.0), id).await?;
    Ok(Json(json!({ "message": msg })))
}

/// One row of the `/outbox` page: the number masked, the text left out (the page is for finding what
/// did not go out, not for reading what the applicant was told).
struct OutboxRow {
    id: u64,
    case_no: String,
    phone: String,
    kind: &'static str,
    state: &'static str,
    stuck: bool,
    attempts: u32,
    last_error: String,
    next_attempt: String,
    created: String,
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "accepted" => "受理通知",
        "correction" => "补正通知",
        "rejected" => "不予受理通知",
        "denied" => "不予许可通知",
        "fee_due" => "缴费通知",
        "result_ready" => "办结通知",
        _ => "其他通知",
    }
}

fn state_label(state: OutboxState) -> &'static str {
    match state {
        OutboxState::Pending => "等待发送",
        OutboxState::Sent => "已发送",
        OutboxState::Failed => "发送失败",
        OutboxState::Capped => "超出当日条数，未发送",
    }
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    page: PageCtx,
    rows: Vec<OutboxRow>,
    sent: usize,
    /// Whether the account may re-queue (admin): the buttons are shown only then.
    may_retry: bool,
    notice: Option<(bool, String)>,
}

async fn render_outbox(
    state: &HubState,
    user: &CurrentUser,
    notice: Option<(bool, String)>,
) -> Response {
    let st = state.app.clone();
    let messages = match blocking(move || Ok(st.store.county().outbox(false)?)).await {
        Ok(m) => m,
        Err(e) => return page_error(e),
    };
    let sent = messages
        .iter()
        .filter(|m| m.state == OutboxState::Sent)
        .count();
    // Failed and capped first (they need a person), then what is still waiting; oldest first within.
    let mut rows: Vec<OutboxRow> = messages
        .into_iter()
        .filter(|m| m.state != OutboxState::Sent)
        .map(|m| OutboxRow {
            id: m.id,
            stuck: matches!(m.state, OutboxState::Failed | OutboxState::Capped),
            phone: masked_phone(&m.phone),
            kind: kind_label(&m.kind),
            state: state_label(m.state),
            attempts: m.attempts,
            last_error: m.last_error.unwrap_or_default(),
            next_attempt: m
                .next_attempt_at
                .filter(|_| m.state == OutboxState::Pending)
                .map(|t| format_time(&t))
                .unwrap_or_default(),
            created: format_time(&m.created_at),
            case_no: m.case_no,
        })
        .collect();
    rows.sort_by_key(|r| (!r.stuck, r.id));
    render(&OutboxPage {
        page: PageCtx::new(&state.app, user),
        rows,
        sent,
        may_retry: access::may_use(&user.role, "POST /api/outbox/{id}/retry") == Some(true),
        notice,
    })
}

/// `/outbox`: the texts that have not gone out (failed, held back, waiting), with masked numbers.
async fn outbox_page(State(state): State<HubState>, WebUser(user): WebUser) -> Response {
    if let Err(e) = access::require_endpoint(&user, "/outbox") {
        return page_error(e);
    }
    render_outbox(&state, &user, None).await
}

/// The page's 重新发送 button (admin): the same as `POST /api/outbox/{id}/retry`.
async fn outbox_form(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    wake: Option<Extension<OutboxWake>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = access::require_endpoint(&user, "/outbox") {
        return page_error(e);
    }
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let Ok(id) = field(&pairs, "id").parse::<u64>() else {
        return page_error(AppError::Invalid(vec![FieldError::new(
            "id",
            "请选择要重新发送的短信。",
        )]));
    };
    let notice = match requeue(&state, &user, wake.as_ref().map(|w| &w.0), id).await {
        Ok(msg) => (
            true,
            format!(
                "已重新排队：办件{}发往{}的短信，马上发送。",
                msg.case_no,
                masked_phone(&msg.phone)
            ),
        ),
        Err(AppError::Forbidden(m) | AppError::NotFound(m) | AppError::Conflict(m)) => (false, m),
        Err(e) => return page_error(e),
    };
    render_outbox(&state, &user, Some(notice)).await
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
