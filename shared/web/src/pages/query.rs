//! The applicant's own view of their case (群众自助查询), public at every tier: `/query` asks for the
//! case number and the 查询密码 printed on the receipt, and shows where the case is, what happens next,
//! the materials still missing and where to collect the result — never the ID number, phone or
//! address. The applicant evaluates the service there too (好差评, recorded as given online).
//!
//! Guessing is throttled ([`crate::throttle::QueryThrottle`]): per source address and per case
//! number, so neither one address trying many numbers nor many addresses trying one number gets far;
//! the password is compared in constant time.

use std::time::Instant;

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tongban_shared::case::{CaseDoc, CaseState};
use tongban_shared::workflow::{ActionInput, ActionKind, EVALUATION_LEVELS};

use super::common::{field, form_pairs, render};
use crate::error::AppError;
use crate::extract::{source_address, CurrentUser};
use crate::service;
use crate::state::{blocking, SharedState};
use crate::text::format_time;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/query", get(query_form).post(query_submit))
        .route("/query/evaluate", axum::routing::post(evaluate_submit))
        .route("/api/query", get(query_api))
}

#[derive(Deserialize)]
struct ApiParams {
    case_no: Option<String>,
    password: Option<String>,
}

/// `GET /api/query?case_no=&password=`: the same view as JSON, under the same throttle.
async fn query_api(
    State(state): State<SharedState>,
    extensions: Extensions,
    Query(p): Query<ApiParams>,
) -> Response {
    let no = p.case_no.unwrap_or_default();
    let password = p.password.unwrap_or_default();
    match verified(&state, &extensions, no.trim(), password.trim()).await {
        Ok(c) => {
            let view = view_of(&c, "", &state.catalog().county.hall);
            axum::Json(view).into_response()
        }
        Err((status, why)) => {
            (status, axum::Json(serde_json::json!({ "error": why }))).into_response()
        }
    }
}

/// The stored password matches: compared in time independent of where they differ
/// ([`crate::accounts::same_secret`]); a case without one never matches.
fn same_password(given: &str, stored: &str) -> bool {
    !stored.is_empty() && crate::accounts::same_secret(given, stored)
}

#[derive(Deserialize)]
struct NoParam {
    no: Option<String>,
}

#[derive(Template)]
#[template(path = "query.html")]
struct QueryPage {
    place: String,
    no: String,
    error: Option<String>,
    done: Option<String>,
    view: Option<CaseView>,
}

/// What the applicant sees of their case: nothing that identifies them beyond the name's first
/// character. The page renders it; `GET /api/query` answers it as JSON.
#[derive(serde::Serialize)]
struct CaseView {
    case_no: String,
    /// Echoed into the evaluation form only, never into the JSON answer.
    #[serde(skip)]
    password: String,
    item_name: String,
    department: String,
    applicant: String,
    state: &'static str,
    state_label: &'static str,
    next_step: String,
    deadline: String,
    missing: Vec<MissingView>,
    collect: String,
    reason: String,
    result: String,
    reply: String,
    evaluation: String,
    can_evaluate: bool,
    history: Vec<StepView>,
}

#[derive(serde::Serialize)]
struct MissingView {
    name: String,
    problem: String,
}

#[derive(serde::Serialize)]
struct StepView {
    at: String,
    action: String,
}

fn masked_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("{first}{}", "*".repeat(chars.count().max(1))),
        None => String::new(),
    }
}

/// The next step as the applicant reads it.
fn applicant_next(c: &CaseDoc) -> &'static str {
    use CaseState::*;
    match c.state() {
        Some(Submitted) => "代办员正在把材料报送县政务服务中心。",
        Some(Received) => "县政务服务中心正在审核材料。",
        Some(Correction) => "请按下面列出的要求补齐材料，交给代办员或县政务服务中心窗口。",
        Some(Accepted | Review | Suspended | ReportedUp) => "部门正在办理，请耐心等待。",
        Some(Decided) => "已作出决定，正在出具结果。",
        Some(ResultReady) => "结果已出，请按下面的方式领取。",
        Some(Delivered) => "结果已送达。欢迎对本次服务进行评价。",
        Some(Rejected) => "不予受理。如有疑问可咨询代办员或县政务服务中心。",
        Some(Evaluated | Withdrawn) => "办件已结束。",
        None => "请联系代办员或县政务服务中心。",
    }
}

fn view_of(c: &CaseDoc, password: &str, hall: &str) -> CaseView {
    let missing = c
        .asked_for(true)
        .into_iter()
        .map(|(m, problem)| MissingView {
            name: m.name.clone(),
            problem: problem.to_string(),
        })
        .collect();
    let collect = match c.delivery.as_str() {
        "窗口领取" if !hall.is_empty() => format!("到{hall}领取"),
        "窗口领取" => "到县政务服务中心统一出件窗口领取".to_string(),
        "邮寄" => "邮寄到您登记的地址".to_string(),
        _ => format!("由代办员{}送达", c.agent.name),
    };
    let reply = if c.workflow.rectification.fix.is_empty() {
        String::new()
    } else {
        c.workflow.rectification.fix.clone()
    };
    CaseView {
        case_no: c.case_no.clone(),
        password: password.to_string(),
        item_name: c.item.name.clone(),
        department: c.item.department.clone(),
        applicant: masked_name(&c.applicant.name),
        state: c.state().map(|s| s.as_str()).unwrap_or(""),
        state_label: if c.awaiting_payment() {
            "已准予，请按短信提示缴费"
        } else {
            c.state()
                .map(|s| s.label_with(&c.workflow.decision))
                .unwrap_or("未知状态")
        },
        next_step: applicant_next(c).to_string(),
        deadline: c.deadline.clone().unwrap_or_else(|| "受理后确定".into()),
        missing,
        collect,
        reason: if matches!(c.state(), Some(CaseState::Rejected)) || c.workflow.decision == "denied"
        {
            c.workflow.reason.clone()
        } else {
            String::new()
        },
        result: c.workflow.result_name.clone(),
        reply,
        evaluation: match c.workflow.evaluation {
            n @ 1..=5 => EVALUATION_LEVELS[n as usize - 1].to_string(),
            _ => String::new(),
        },
        can_evaluate: c.state() == Some(CaseState::Delivered),
        // When and what, never who: staff names are not the applicant's business on a public page.
        history: c
            .history
            .iter()
            .filter(|h| h.effective)
            .map(|h| StepView {
                at: format_time(&h.at),
                action: tongban_shared::workflow::action_label(&h.action).to_string(),
            })
            .collect(),
    }
}

fn page(state: &SharedState) -> QueryPage {
    QueryPage {
        place: state.identity.name.clone(),
        no: String::new(),
        error: None,
        done: None,
        view: None,
    }
}

async fn query_form(State(state): State<SharedState>, Query(p): Query<NoParam>) -> Response {
    let mut q = page(&state);
    q.no = p.no.unwrap_or_default().chars().take(40).collect();
    render(&q)
}

/// Checks the number and password under the throttle and loads the case, or the page that says
/// why not (with its status).
async fn verified(
    state: &SharedState,
    extensions: &Extensions,
    no: &str,
    password: &str,
) -> Result<CaseDoc, (StatusCode, String)> {
    let now = Instant::now();
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            "办件编号或查询密码不正确，请核对受理凭证后重新输入。".to_string(),
        )
    };
    state
        .query_throttle
        .admit(source_address(extensions), no, now)
        .map_err(|why| (StatusCode::TOO_MANY_REQUESTS, why.to_string()))?;
    let Ok(case_no) = service::case_no(no) else {
        state.query_throttle.failed(no, now);
        return Err(not_found());
    };
    let st = state.clone();
    let loaded = blocking(move || service::load_case_blocking(&st, &case_no)).await;
    let case = match loaded {
        Ok((_, c)) => Some(c),
        Err(AppError::NotFound(_)) => None,
        Err(e) => {
            tracing::warn!(error = ?e, "self-query could not load a case");
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "暂时无法查询，请稍后再试。".into(),
            ));
        }
    };
    // An unknown number and a wrong password answer alike: the page is no oracle of case numbers.
    match case {
        Some(c) if same_password(password, &c.query_password) => Ok(c),
        _ => {
            state.query_throttle.failed(no, now);
            Err(not_found())
        }
    }
}

/// Reads the form's number and password and checks them: the case, or the page that says why not.
async fn case_of_form(
    state: &SharedState,
    extensions: &Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Vec<(String, String)>, String, CaseDoc), Response> {
    let pairs = form_pairs(body).map_err(super::common::page_error)?;
    let no = field(&pairs, "no").trim().to_string();
    let password = field(&pairs, "password").trim().to_string();
    match verified(state, extensions, &no, &password).await {
        Ok(c) => Ok((pairs, password, c)),
        Err((status, why)) => {
            let mut q = page(state);
            q.no = no.chars().take(40).collect();
            q.error = Some(why);
            Err((status, render(&q)).into_response())
        }
    }
}

async fn query_submit(
    State(state): State<SharedState>,
    extensions: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match case_of_form(&state, &extensions, body).await {
        Ok((_, password, c)) => {
            let mut q = page(&state);
            q.no = c.case_no.clone();
            q.view = Some(view_of(&c, &password, &state.catalog().county.hall));
            render(&q)
        }
        Err(refused) => refused,
    }
}

/// `POST /query/evaluate`: the applicant's own 好差评, under the same number and password.
async fn evaluate_submit(
    State(state): State<SharedState>,
    extensions: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (pairs, password, case) = match case_of_form(&state, &extensions, body).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let mut q = page(&state);
    q.no = case.case_no.clone();
    // At the county the applicant is a role of their own; a station records the evaluation under its
    // own (a village writes only village roles, which the county's ingress check insists on), and
    // the evaluation's channel says the applicant gave it online either way.
    let role = if state.identity.tier == tongban_shared::Tier::County {
        "applicant"
    } else {
        "agent"
    };
    let applicant = CurrentUser {
        name: "applicant".into(),
        display_name: format!("申请人{}（自助评价）", masked_name(&case.applicant.name)),
        role: role.into(),
        csrf: None,
        session_token: None,
        source: source_address(&extensions),
    };
    let mut input = ActionInput::new(ActionKind::Evaluate);
    input.score = field(&pairs, "score").parse().ok();
    input.comment = field(&pairs, "comment").to_string();
    input.channel = "applicant_online".into();
    let case_no = match service::case_no(&case.case_no) {
        Ok(n) => n,
        Err(e) => return super::common::page_error(e),
    };
    let hall = state.catalog().county.hall.clone();
    match service::take_action(&state, &applicant, &case_no, input).await {
        Ok(c) => {
            q.done = Some("感谢您的评价！".into());
            q.view = Some(view_of(&c, &password, &hall));
            render(&q)
        }
        Err(e) => {
            q.error = Some(match &e {
                AppError::Invalid(fields) => fields
                    .iter()
                    .map(|f| f.message.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                AppError::Conflict(_) => "这个办件现在不能评价（可能已经评价过）。".into(),
                _ => "评价没有保存，请稍后再试。".into(),
            });
            q.view = Some(view_of(&case, &password, &hall));
            (StatusCode::UNPROCESSABLE_ENTITY, render(&q)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_compare_by_content_and_an_empty_stored_one_never_matches() {
        assert!(same_password("123456", "123456"));
        assert!(!same_password("123457", "123456"));
        assert!(!same_password("1234567", "123456"));
        assert!(!same_password("", ""));
    }

    #[test]
    fn a_name_shows_only_its_first_character() {
        assert_eq!(masked_name("张三丰"), "张**");
        assert_eq!(masked_name("李"), "李*");
    }
}
