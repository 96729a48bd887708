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
use tongban_shared::Tier;

use super::case_actions::{action_groups, needs_confirmation, ActionGroup};
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

/// One 中台 question as the case page shows it.
struct QuestionView {
    /// Who asked, where and when.
    asked: String,
    question: String,
    dept: String,
    /// Who answered and when, once answered.
    answered: Option<String>,
    answer: String,
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
    groups: Vec<ActionGroup>,
    /// The notices this case can be printed now, `(kind, title)`.
    notices: Vec<(&'static str, &'static str)>,
    /// The county reads the page (no village wording, no 再建一件).
    county: bool,
    /// An open rectification past its due date (the page shows it red).
    rectification_overdue: bool,
    /// The materials the county asked for (补正): id, name and what is wrong, if it said.
    missing: Vec<(String, String, String)>,
    evaluation: String,
    state_label: &'static str,
    /// The fee owed and how it may be paid (for 缴费登记).
    fee_due: String,
    pay_methods: &'static [&'static str],
    /// What the window recorded as paid, once it did.
    payment: Option<String>,
    /// 中台 questions, in the order asked.
    questions: Vec<QuestionView>,
    next_step: String,
    deadline: String,
    limit: String,
    history: Vec<HistoryView>,
    clock_warning: Option<String>,
    /// 联办 at the county: the assisting departments whose opinion the decision still waits for.
    waiting_opinions: Vec<String>,
    /// The upstream's reason for refusing the case in the last sync session.
    sync_refusal: Option<String>,
}

#[derive(Deserialize)]
struct CreatedParam {
    created: Option<String>,
    done: Option<String>,
    error: Option<String>,
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
    if needs_confirmation(action) && field(&pairs, "confirm") != "1" {
        let target = format!(
            "/cases/{case_no}?error={}",
            url_encode(&format!(
                "“{}”不能撤销，请勾选确认后再提交。",
                action.label()
            ))
        );
        return Redirect::to(&target).into_response();
    }
    let problems = pairs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("problem_")?.to_string(), v.clone())))
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    let input = ActionInput {
        action,
        note: field(&pairs, "note").to_string(),
        reason: field(&pairs, "reason").to_string(),
        missing: if action == ActionKind::RequestCorrection {
            all("materials")
        } else {
            Vec::new()
        },
        problems,
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
        channel: "applicant_at_station".to_string(),
        overturn: field(&pairs, "overturn") == "1",
        fee_yuan: field(&pairs, "fee_yuan").to_string(),
        pay_method: field(&pairs, "pay_method").to_string(),
        pay_receipt: field(&pairs, "pay_receipt").to_string(),
        target: field(&pairs, "target").to_string(),
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

/// Who holds the case now and what happens next, for the tier that reads it: a village is told
/// whether it must act, the county what its staff must do.
fn next_step(c: &CaseDoc, tier: Tier) -> String {
    use CaseState::*;
    let state = c.state();
    let county = tier == Tier::County;
    if c.awaiting_payment() {
        return if county {
            "申请人缴费后，窗口在此登记实收金额、方式和票据号，部门再出具结果。"
        } else {
            "已准予，请提醒申请人按短信到县政务服务中心缴费；缴费后县级出具结果。"
        }
        .to_string();
    }
    let text = match (state, county) {
        (Some(Submitted), false) => "将纸质材料报送县级；办件信息在联网时自动上报。",
        (Some(Submitted), true) => "等待纸质材料到达县级窗口，到达后点击“接收”。",
        (Some(Received), false) => "县级窗口正在审核材料，无需操作。",
        (Some(Received), true) => "窗口审核材料：受理、要求补正或不予受理。",
        (Some(Correction), false) => "按县级要求补齐材料后提交补正。",
        (Some(Correction), true) => "等待申请人补正材料（补正期间不计时）。",
        (Some(Accepted), true) => "等待部门签收纸质材料。",
        (Some(Review), true) => "部门审查中，请在办结期限前作出决定。",
        (Some(Suspended), true) => "特别程序中（暂停计时），完成后恢复计时。",
        (Some(ReportedUp), true) => "等待上级机关的审批结果。",
        (Some(Accepted | Review | Suspended | ReportedUp), false) => "县级部门正在办理，无需操作。",
        (Some(Decided), true) => "出具结果（证照或决定书），交统一出件窗口。",
        (Some(Decided), false) => "县级已作出决定，等待出具结果。",
        (Some(ResultReady), true) => "等待送达申请人。",
        (Some(ResultReady), false) => "领取办理结果并送达群众，请群众在送达回证上签名。",
        (Some(Delivered), _) => "请申请人本人对本次服务进行评价。",
        (Some(Rejected), false) if c.workflow.informed_at.is_empty() => {
            "告知群众不予受理的理由，打印不予受理通知书交给群众。"
        }
        (Some(Rejected | Evaluated | Withdrawn), _) => "办件已结束。",
        (None, _) => "办件状态未知，请联系县政务服务中心。",
    };
    text.to_string()
}

/// The station a history entry was written at, by name where this tier knows it.
fn station_name(c: &CaseDoc, node: &str, tier: &str, here: (&str, &str)) -> String {
    if node == here.0 {
        here.1.to_string()
    } else if node == c.agent.node_code {
        c.agent.node_name.clone()
    } else if tier == "county" {
        "县政务服务中心".to_string()
    } else {
        node.to_string()
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
            by: format!(
                "{}（{}）",
                if h.by_name.is_empty() {
                    &h.by
                } else {
                    &h.by_name
                },
                station_name(
                    &c,
                    &h.node,
                    &h.tier,
                    (&state.identity.code, &state.identity.name)
                )
            ),
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
        .asked_for(true)
        .into_iter()
        .map(|(m, problem)| (m.id.clone(), m.name.clone(), problem.to_string()))
        .collect();
    let notices = crate::pages::notices::available(&c, &state.catalog());
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
        groups: action_groups(
            &c,
            Role::acting(&user.role, state.identity.tier),
            &state.catalog().departments(),
        ),
        notices,
        county: state.identity.tier == Tier::County,
        rectification_overdue: c.workflow.rectification.state == "open"
            && !c.workflow.rectification.due.is_empty()
            && c.workflow.rectification.due.as_str()
                < tongban_runtime::clock::beijing_now()
                    .format("%Y-%m-%d")
                    .to_string()
                    .as_str(),
        missing,
        evaluation,
        state_label: c.state_label_at(state.identity.tier),
        fee_due: tongban_shared::manual::yuan_text(c.workflow.fee_due_fen),
        pay_methods: &tongban_shared::workflow::PAY_METHODS,
        questions: c
            .workflow
            .questions
            .iter()
            .map(|q| QuestionView {
                asked: format!(
                    "{}（{}）{}",
                    q.asked_by,
                    q.asked_node,
                    crate::text::format_time(&q.asked_at)
                ),
                question: q.question.clone(),
                answered: (!q.is_open()).then(|| {
                    format!(
                        "{} {}",
                        q.answered_by,
                        crate::text::format_time(&q.answered_at)
                    )
                }),
                answer: q.answer.clone(),
                dept: q.dept.clone(),
            })
            .collect(),
        payment: (!c.workflow.paid_on.is_empty()).then(|| {
            format!(
                "{}于{}以{}缴纳，票据号{}",
                tongban_shared::manual::yuan_text(c.workflow.paid_fen),
                c.workflow.paid_on,
                c.workflow.pay_method,
                c.workflow.pay_receipt
            )
        }),
        next_step: next_step(&c, state.identity.tier),
        deadline: match (c.deadline.clone(), c.state()) {
            (Some(d), _) => d,
            (None, Some(CaseState::Rejected | CaseState::Withdrawn)) => "—（办件已结束）".into(),
            (None, _) => "县级受理后计算".into(),
        },
        limit: case_limit(&c),
        history,
        clock_warning,
        waiting_opinions: if state.identity.tier == Tier::County
            && matches!(c.state(), Some(CaseState::Accepted | CaseState::Review))
        {
            c.item
                .assist_departments
                .iter()
                .filter(|d| !c.workflow.assist_opinions.iter().any(|o| &o.dept == *d))
                .cloned()
                .collect()
        } else {
            Vec::new()
        },
        sync_refusal,
        c,
    })
}
