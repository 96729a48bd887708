//! `/cases/{no}`: one case with its history, what to do next, and the actions this account may take
//! now (`POST /cases/{no}/actions`).

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use tongban_shared::case::{CaseDoc, CaseState};
use tongban_shared::workflow::{self, ActionInput, ActionKind, Role};

use super::common::{case_limit, csrf_checked_form, field, page_error, render, PageCtx};
use crate::error::AppError;
use crate::extract::WebUser;
use crate::service;
use crate::state::{blocking, SharedState};
use crate::text::{format_time, url_encode};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/cases/{case_no}", get(case_page))
        .route("/cases/{case_no}/actions", post(case_action_submit))
}

struct HistoryView {
    at: String,
    by: String,
    action: String,
    note: String,
    /// Written by a node whose clock is known to be off.
    skewed: bool,
    /// Empty for an event that took effect; else 未生效 or 未采纳 with why.
    status: String,
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    page: PageCtx,
    c: CaseDoc,
    created: bool,
    /// Result of the last action form, shown as a banner.
    done: Option<String>,
    error: Option<String>,
    actions: Vec<ActionForm>,
    /// Names of the materials the county asked for (补正), if any.
    missing: Vec<String>,
    evaluation: String,
    state_label: &'static str,
    next_step: &'static str,
    deadline: String,
    limit: String,
    history: Vec<HistoryView>,
    clock_warning: Option<String>,
    /// The upstream's reason for refusing the case in the last sync session.
    sync_refusal: Option<String>,
}

#[derive(Deserialize)]
struct CreatedParam {
    created: Option<String>,
    done: Option<String>,
    error: Option<String>,
}

/// One action the logged-in account may take on the case now, with the inputs it needs.
struct ActionForm {
    action: &'static str,
    label: &'static str,
    /// Which inputs to show: "note", "reason", "materials", "dept", "result", "score".
    input: &'static str,
    /// For "materials": (id, name, checked).
    materials: Vec<(String, String, bool)>,
    /// For "dept": the departments of the catalogue other than the one handling the case.
    depts: Vec<String>,
}

fn action_forms(c: &CaseDoc, role: Option<Role>, departments: &[&str]) -> Vec<ActionForm> {
    let Some(role) = role else {
        return Vec::new();
    };
    workflow::available(c, &role)
        .into_iter()
        .map(|action| {
            let input = match action {
                ActionKind::Reject
                | ActionKind::Deny
                | ActionKind::Suspend
                | ActionKind::Escalate => "reason",
                ActionKind::RequestCorrection | ActionKind::SubmitCorrection => "materials",
                ActionKind::Forward => "dept",
                ActionKind::IssueResult | ActionKind::CompleteAtWindow => "result",
                ActionKind::CompleteOnSite => "result_name",
                ActionKind::ReportUp | ActionKind::AssistOpinion => "opinion",
                ActionKind::Accept => "accept",
                ActionKind::Evaluate => "score",
                _ => "note",
            };
            let materials = match action {
                ActionKind::RequestCorrection => c
                    .materials
                    .iter()
                    .map(|m| (m.id.clone(), m.name.clone(), false))
                    .collect(),
                ActionKind::SubmitCorrection => c
                    .materials
                    .iter()
                    .filter(|m| c.workflow.missing.contains(&m.id))
                    .map(|m| (m.id.clone(), m.name.clone(), true))
                    .collect(),
                _ => Vec::new(),
            };
            ActionForm {
                action: action.as_str(),
                label: action.label(),
                input,
                materials,
                depts: departments
                    .iter()
                    .filter(|d| **d != c.handling_dept())
                    .map(|d| d.to_string())
                    .collect(),
            }
        })
        .collect()
}

/// `POST /cases/{no}/actions`: the case page's action forms.
async fn case_action_submit(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Path(case_no): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let all = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let action = match ActionKind::parse(field(&pairs, "action")) {
        Some(a) => a,
        None => return page_error(AppError::Malformed("不认识的操作。".into())),
    };
    let input = ActionInput {
        action,
        note: field(&pairs, "note").to_string(),
        reason: field(&pairs, "reason").to_string(),
        missing: if action == ActionKind::RequestCorrection {
            all("materials")
        } else {
            Vec::new()
        },
        materials: if action == ActionKind::SubmitCorrection {
            all("materials")
        } else {
            Vec::new()
        },
        dept: field(&pairs, "dept").to_string(),
        result_name: field(&pairs, "result_name").to_string(),
        result_no: field(&pairs, "result_no").to_string(),
        score: field(&pairs, "score").parse().ok(),
        comment: field(&pairs, "comment").to_string(),
        urgent: field(&pairs, "urgent") == "1",
        phone: field(&pairs, "phone").to_string(),
        address: field(&pairs, "address").to_string(),
        delivery: field(&pairs, "delivery").to_string(),
    };
    let no = match service::case_no(&case_no) {
        Ok(no) => no,
        Err(e) => return page_error(e),
    };
    let target = match service::take_action(&state, &user, &no, input).await {
        Ok(_) => format!("/cases/{case_no}?done={}", url_encode(action.as_str())),
        Err(e @ AppError::Internal(_)) => return page_error(e),
        Err(e) => format!("/cases/{case_no}?error={}", url_encode(&e.message())),
    };
    Redirect::to(&target).into_response()
}

fn next_step(state: Option<CaseState>) -> &'static str {
    match state {
        Some(CaseState::Submitted) => {
            "将纸质材料按规定报送；本站接入县级平台后，办件信息自动上报。"
        }
        Some(CaseState::Correction) => "按县级要求补齐材料后提交补正。",
        Some(CaseState::ResultReady) => "领取办理结果并送达群众。",
        Some(CaseState::Delivered) => "请群众对本次服务进行评价。",
        Some(CaseState::Evaluated | CaseState::Rejected) => "办件已结束。",
        _ => "等待县级部门办理，无需操作。",
    }
}

async fn case_page(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Path(case_no): Path<String>,
    Query(params): Query<CreatedParam>,
) -> Response {
    let c = match service::case_no(&case_no) {
        Ok(no) => service::load_case_for(&state, &user, &no).await,
        Err(e) => Err(e),
    };
    let c = match c {
        Ok(c) => c,
        Err(e) => return page_error(e),
    };
    let st = state.clone();
    let loaded = blocking(move || {
        let warning = st.site.clock_warning(&st.store, &c);
        let refusal = st.site.sync_refusal(&c.case_no);
        Ok((c, warning, refusal))
    })
    .await;
    let (c, warning, sync_refusal) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return page_error(e),
    };
    let skewed_node = warning.as_ref().map(|w| w.node.clone());
    let clock_warning = warning.map(|w| w.sentence);
    let history = c
        .history
        .iter()
        .map(|h| HistoryView {
            at: format_time(&h.at),
            by: if h.by_name.is_empty() {
                h.by.clone()
            } else {
                format!("{}（{}）", h.by_name, h.node)
            },
            action: workflow::action_label(&h.action).to_string(),
            note: h.note.clone(),
            skewed: skewed_node.as_deref() == Some(h.node.as_str()),
            status: if h.refused {
                format!("上级未采纳：{}", h.why)
            } else if !h.effective {
                format!("未生效：{}", h.why)
            } else {
                String::new()
            },
        })
        .collect();
    let missing = c
        .materials
        .iter()
        .filter(|m| c.workflow.missing.contains(&m.id))
        .map(|m| m.name.clone())
        .collect();
    let evaluation = match c.workflow.evaluation {
        1..=5 => tongban_shared::workflow::EVALUATION_LEVELS[c.workflow.evaluation as usize - 1]
            .to_string(),
        _ => String::new(),
    };
    render(&CasePage {
        page: PageCtx::new(&state, &user),
        created: params.created.is_some(),
        done: params
            .done
            .as_deref()
            .map(|a| workflow::action_label(a).to_string()),
        error: params.error.clone(),
        actions: action_forms(
            &c,
            Role::acting(&user.role, state.identity.tier),
            &state.catalog().departments(),
        ),
        missing,
        evaluation,
        state_label: c.state().map(|s| s.label()).unwrap_or("未知状态"),
        next_step: next_step(c.state()),
        deadline: c
            .deadline
            .clone()
            .unwrap_or_else(|| "县级受理后计算".to_string()),
        limit: case_limit(&c),
        history,
        clock_warning,
        sync_refusal,
        c,
    })
}
