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
    next_step: String,
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

/// One action the logged-in account may take on the case now, with the inputs it needs and how
/// the page presents it.
struct ActionForm {
    action: &'static str,
    label: &'static str,
    /// Which inputs to show: "note", "reason", "correction", "materials", "dept", "result",
    /// "result_name", "opinion", "accept", "score", "amend", "withdraw", "supervise", "callback",
    /// "rectify", "close", "appeal", "review_appeal", "inform".
    input: &'static str,
    /// `btn-primary` (moves the case on), `btn-warn` (sends it back or aside), `btn-danger`
    /// (ends it), `btn` (a side record).
    class: &'static str,
    /// What the action does, in one sentence above its fields.
    hint: &'static str,
    /// Irreversible: the form asks the person to confirm first (checked again on the server).
    confirm: bool,
    /// For "materials" / "correction": (id, name, checked).
    materials: Vec<(String, String, bool)>,
    /// For "dept" / "supervise": the departments of the catalogue (other than the handling one
    /// for a forward).
    depts: Vec<String>,
}

/// The page's groups of actions, in the order a person reads them: what moves the case on first,
/// what ends it last; the complaint path in its own group.
const GROUPS: [&str; 5] = ["办理", "补正与退回", "结束办件", "督办整改", "其他"];

struct ActionGroup {
    title: &'static str,
    forms: Vec<ActionForm>,
}

/// How the page presents `action`: (group, input kind, button class, hint, confirm).
fn presentation(
    action: ActionKind,
) -> (&'static str, &'static str, &'static str, &'static str, bool) {
    use ActionKind as A;
    match action {
        A::Receive => (
            "办理",
            "note",
            "btn-primary",
            "纸质材料已到窗口：接收后开始计算流转时间。",
            false,
        ),
        A::TownshipReceive => (
            "办理",
            "note",
            "btn-primary",
            "乡镇收到村里报来的纸质材料，转报县级。",
            false,
        ),
        A::Accept => (
            "办理",
            "accept",
            "btn-primary",
            "材料齐全、符合法定形式：受理后开始计算承诺时限。",
            false,
        ),
        A::DeptReceive => (
            "办理",
            "note",
            "btn-primary",
            "部门收到纸质材料，签收后开始审查。",
            false,
        ),
        A::Forward => (
            "办理",
            "dept",
            "btn-warn",
            "本部门不负责此事项时，转给负责的部门。",
            false,
        ),
        A::Suspend => (
            "办理",
            "reason",
            "btn-warn",
            "听证、检验、专家评审等特别程序期间暂停计时。",
            false,
        ),
        A::Resume => (
            "办理",
            "note",
            "btn-primary",
            "特别程序结束，恢复计时。",
            false,
        ),
        A::ReportUp => (
            "办理",
            "opinion",
            "btn-primary",
            "出具初审意见，报上级机关审批。",
            false,
        ),
        A::AssistOpinion => (
            "办理",
            "opinion",
            "btn-primary",
            "本部门作为协办部门出具意见。",
            false,
        ),
        A::Approve => (
            "办理",
            "note",
            "btn-primary",
            "作出准予许可的决定。决定后不能撤销。",
            true,
        ),
        A::IssueResult => (
            "办理",
            "result",
            "btn-primary",
            "出具结果（证照或决定书），交统一出件窗口。",
            false,
        ),
        A::CompleteAtWindow => ("办理", "result", "btn-primary", "即办事项当场办结。", true),
        A::CompleteOnSite => (
            "办理",
            "result_name",
            "btn-primary",
            "本事项授权村级当场办结。",
            true,
        ),
        A::Deliver => (
            "办理",
            "note",
            "btn-primary",
            "结果已交到申请人手中（请申请人在送达回证上签名）。",
            false,
        ),
        A::Evaluate => (
            "办理",
            "score",
            "btn-primary",
            "请申请人本人选择评价，代办员只负责记录。",
            true,
        ),
        A::SubmitCorrection => (
            "补正与退回",
            "materials",
            "btn-primary",
            "申请人补齐的材料已收到：勾选后提交，县级恢复审核。",
            false,
        ),
        A::RequestCorrection => (
            "补正与退回",
            "correction",
            "btn-warn",
            "材料不齐或不符合法定形式：一次性告知需补正的全部材料及问题。",
            false,
        ),
        A::Amend => (
            "补正与退回",
            "amend",
            "btn-warn",
            "县级接收前可更正联系电话、地址和送达方式；修改会记入办理记录。",
            false,
        ),
        A::Inform => (
            "补正与退回",
            "inform",
            "btn-primary",
            "已把结果或答复告诉申请人后记录一下，待办事项随即消除。",
            false,
        ),
        A::Reject => (
            "结束办件",
            "reason",
            "btn-danger",
            "不属于受理范围或不符合条件：写明理由，申请人可申请行政复议或提起行政诉讼。",
            true,
        ),
        A::Deny => (
            "结束办件",
            "reason",
            "btn-danger",
            "作出不予许可的决定：必须写明理由和依据。",
            true,
        ),
        A::Withdraw => (
            "结束办件",
            "withdraw",
            "btn-danger",
            "申请人本人要求撤回申请：撤回后办件结束。",
            true,
        ),
        A::Supervise => (
            "督办整改",
            "supervise",
            "btn-primary",
            "差评或办不成事反映：指定整改部门，按工作日计算答复期限。",
            false,
        ),
        A::Callback => ("督办整改", "callback", "btn", "记录一次回访。", false),
        A::Rectify => (
            "督办整改",
            "rectify",
            "btn-primary",
            "写明整改情况：这是群众收到的答复。",
            false,
        ),
        A::CloseRectification => (
            "督办整改",
            "close",
            "btn-primary",
            "群众对整改的反馈已记录，办结整改。",
            true,
        ),
        A::Appeal => (
            "督办整改",
            "appeal",
            "btn-warn",
            "认为差评不实时提出申诉，由督办人员复核。",
            false,
        ),
        A::ReviewAppeal => (
            "督办整改",
            "review_appeal",
            "btn-primary",
            "复核部门的申诉。",
            true,
        ),
        A::Escalate => (
            "其他",
            "reason",
            "btn",
            "办事遇到困难、办不成时，向县级督办人员反映。",
            false,
        ),
        A::Intake | A::Refuse => ("其他", "note", "btn", "", false),
    }
}

fn action_groups(c: &CaseDoc, role: Option<Role>, departments: &[&str]) -> Vec<ActionGroup> {
    let Some(role) = role else {
        return Vec::new();
    };
    let forms: Vec<(&'static str, ActionForm)> = workflow::available(c, &role)
        .into_iter()
        .map(|action| {
            let (group, input, class, hint, confirm) = presentation(action);
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
            let depts = departments
                .iter()
                .filter(|d| action != ActionKind::Forward || **d != c.handling_dept())
                .map(|d| d.to_string())
                .collect();
            (
                group,
                ActionForm {
                    action: action.as_str(),
                    label: action.label(),
                    input,
                    class,
                    hint,
                    confirm,
                    materials,
                    depts,
                },
            )
        })
        .collect();
    let mut groups: Vec<ActionGroup> = GROUPS
        .iter()
        .map(|title| ActionGroup {
            title,
            forms: Vec::new(),
        })
        .collect();
    for (group, form) in forms {
        if let Some(g) = groups.iter_mut().find(|g| g.title == group) {
            g.forms.push(form);
        }
    }
    groups.retain(|g| !g.forms.is_empty());
    groups
}

/// Whether a form must carry the person's confirmation (irreversible actions).
fn needs_confirmation(action: ActionKind) -> bool {
    presentation(action).4
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
        (Some(Rejected), false) => "告知群众不予受理的理由，打印不予受理通知书交给群众。",
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
        .materials
        .iter()
        .filter(|m| c.workflow.missing.contains(&m.id))
        .map(|m| {
            let problem = c
                .workflow
                .problems
                .iter()
                .find(|p| p.id == m.id)
                .map(|p| p.problem.clone())
                .unwrap_or_default();
            (m.id.clone(), m.name.clone(), problem)
        })
        .collect();
    let notices = crate::pages::notices::available(&c);
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
        state_label: c
            .state()
            .map(|s| s.label_at(state.identity.tier, &c.workflow.decision))
            .unwrap_or("未知状态"),
        next_step: next_step(&c, state.identity.tier),
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
