//! The 一窗通办 workflow as people take it: roles, an action's inputs, and taking it (checked against
//! the case as its events make it, written as one new event). Who may write which event in which
//! state is the fold's (`fold.rs`), so taking an action and judging one that arrives agree.
//!
//! Time comes from the caller (the hub's clock for county actions, the node's for the agent's own);
//! deadlines come from the working-day [`Calendar`].

use automerge::{transaction::CommitOptions, AutoCommit};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Deserialize;

use crate::calendar::Calendar;
use crate::case::{read_parts, CaseDoc, CaseDocError};
use crate::event::{Author, Event, Inputs};
use crate::fold;
use crate::{FieldError, Tier};

/// Who acts. Village and township accounts are agents; county accounts have the roles of CONTRACT.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Agent,
    /// A township clerk: an agent for the township's own cases, and the relay for its villages'.
    Township,
    Window,
    /// Back office of a department (短名, e.g. 民政).
    Dept(String),
    Supervisor,
    Admin,
    /// The applicant themself, evaluating on the public self-query page (recorded by the hub).
    Applicant,
}

impl Role {
    /// From an account's stored role: `agent`, `clerk`, `head` (the station head, who also manages
    /// its accounts), `window` or `window:<服务区>`, `dept:<部门>`, `supervisor`, `admin`.
    pub fn from_account(role: &str) -> Option<Role> {
        Some(match role {
            "agent" | "clerk" | "head" => Role::Agent,
            "window" => Role::Window,
            area_window if area_window.starts_with("window:") => Role::Window,
            "supervisor" => Role::Supervisor,
            "admin" => Role::Admin,
            "applicant" => Role::Applicant,
            other => Role::Dept(other.strip_prefix("dept:")?.to_string()),
        })
    }

    /// The role an account acts with at a node of `tier`: at a township its agents act as the
    /// township (the relay for its villages). The one mapping the service and the pages both use.
    pub fn acting(account_role: &str, tier: crate::Tier) -> Option<Role> {
        match (Role::from_account(account_role)?, tier) {
            (Role::Agent, crate::Tier::Township) => Some(Role::Township),
            (role, _) => Some(role),
        }
    }
}

/// Who takes an action, and where.
pub struct Actor<'a> {
    pub user: &'a str,
    pub name: &'a str,
    /// The account's stored role (`agent`, `window`, `dept:民政` …).
    pub role: &'a str,
    pub tier: Tier,
    pub node: &'a str,
}

pub use crate::action::ActionKind;

/// The body of `POST /api/cases/{no}/actions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionInput {
    pub action: ActionKind,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub reason: String,
    /// request_correction: material ids still needed.
    #[serde(default)]
    pub missing: Vec<String>,
    /// request_correction: what is wrong with each missing material (id → problem).
    #[serde(default)]
    pub problems: std::collections::BTreeMap<String, String>,
    /// submit_correction: material ids now collected.
    #[serde(default)]
    pub materials: Vec<String>,
    /// forward: the department that takes over.
    #[serde(default)]
    pub dept: String,
    #[serde(default)]
    pub result_name: String,
    #[serde(default)]
    pub result_no: String,
    /// evaluate: 1 (非常不满意) … 5 (非常满意).
    #[serde(default)]
    pub score: Option<u8>,
    #[serde(default)]
    pub comment: String,
    /// accept: the case is urgent (10-minute hand-over to the department).
    #[serde(default)]
    pub urgent: bool,
    /// amend: the applicant's corrected phone, address, or the delivery method.
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub delivery: String,
    /// evaluate: `applicant_at_station` (the applicant chose, at the station) or `applicant_online`.
    #[serde(default)]
    pub channel: String,
    /// review_appeal: the appeal is granted (the review does not count).
    #[serde(default)]
    pub overturn: bool,
    /// approve: the fee owed in yuan, for an item whose fee follows a rule; record_payment: the
    /// amount paid, in yuan (`20` or `12.50`).
    #[serde(default)]
    pub fee_yuan: String,
    /// record_payment: 现金, 银行卡, 微信, 支付宝 or 非税缴款书.
    #[serde(default)]
    pub pay_method: String,
    /// record_payment: the payment receipt's number.
    #[serde(default)]
    pub pay_receipt: String,
    /// answer: the id of the question answered.
    #[serde(default)]
    pub target: String,
}

impl ActionInput {
    /// `action` with no inputs (what a page asks for first, and what tests start from).
    pub fn new(action: ActionKind) -> ActionInput {
        ActionInput {
            action,
            note: String::new(),
            reason: String::new(),
            missing: Vec::new(),
            problems: Default::default(),
            materials: Vec::new(),
            dept: String::new(),
            result_name: String::new(),
            result_no: String::new(),
            score: None,
            comment: String::new(),
            urgent: false,
            phone: String::new(),
            address: String::new(),
            delivery: String::new(),
            channel: String::new(),
            overturn: false,
            fee_yuan: String::new(),
            pay_method: String::new(),
            pay_receipt: String::new(),
            target: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("action {0} is not known")]
    Unknown(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the case is {state}; {action} is not possible now: {why}")]
    WrongState {
        action: String,
        state: String,
        /// The workflow's reason, as the person reads it.
        why: String,
    },
    #[error("{}", .0.message)]
    Invalid(FieldError),
    #[error("{0}")]
    Document(Box<CaseDocError>),
}

impl From<CaseDocError> for ActionError {
    fn from(e: CaseDocError) -> Self {
        ActionError::Document(Box::new(e))
    }
}

/// Evaluation levels, internal scale 5 = 非常满意 … 1 = 非常不满意 (exports map it explicitly).
pub const EVALUATION_LEVELS: [&str; 5] = ["非常不满意", "不满意", "基本满意", "满意", "非常满意"];

fn invalid(field: &str, message: impl Into<String>) -> ActionError {
    ActionError::Invalid(FieldError::new(field, message))
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// The inputs that make `action` pass the state rules when nothing concurrent interferes (what a page
/// needs to know to offer it).
fn probe_inputs(action: ActionKind, case: &CaseDoc, role: &Role) -> Inputs {
    Inputs {
        materials: if action == ActionKind::SubmitCorrection {
            case.workflow.missing.clone()
        } else {
            Vec::new()
        },
        // An assisting department's opinion is its own: offered until it has given one.
        dept: match (action, role) {
            (ActionKind::AssistOpinion, Role::Dept(d)) => d.clone(),
            _ => String::new(),
        },
        // A department answers the questions put to it, the oldest first.
        target: match (action, role) {
            (ActionKind::Answer, Role::Dept(d)) => case
                .workflow
                .questions
                .iter()
                .find(|q| q.is_open() && &q.dept == d)
                .map(|q| q.id.clone())
                .unwrap_or_default(),
            _ => String::new(),
        },
        ..Default::default()
    }
}

/// The actions `role` may take on `case` now (what a page offers). Intake and refusals (the ingress
/// check's) are never offered; 已告知申请人 only while there is something to tell.
pub fn available(case: &CaseDoc, role: &Role) -> Vec<ActionKind> {
    let to_tell = crate::todo::todo_of(case).is_some_and(|t| {
        matches!(
            t.kind,
            crate::todo::TodoKind::Rejected | crate::todo::TodoKind::Reply
        )
    });
    ActionKind::ALL
        .into_iter()
        .filter(|a| !matches!(a, ActionKind::Intake | ActionKind::Refuse))
        .filter(|a| *a != ActionKind::Inform || to_tell)
        .filter(|a| {
            fold::authorised(*a, role, case).is_ok()
                && fold::transition(*a, case, &probe_inputs(*a, case, role)).is_ok()
        })
        .collect()
}

/// What a person reads for an action named in a history entry.
pub fn action_label(action: &str) -> &'static str {
    ActionKind::parse(action).map_or("其他", ActionKind::label)
}

/// What an action needs beyond the person's inputs: the moment (the acting tier's clock), the county's
/// calendar (deadlines), the departments the catalogue knows (forward), and a fresh event id.
pub struct Context<'a> {
    pub now: DateTime<FixedOffset>,
    pub calendar: &'a Calendar,
    pub departments: Vec<String>,
    pub event_id: String,
    /// Working days a rectification has (the county's setting; 5 by default).
    pub rectify_days: u32,
    /// The case's item's fee in the county's catalogue now: what an approval says is owed.
    pub item_fee: Option<crate::manual::Fee>,
}

/// Checks the person's inputs for `action` and turns them into the event's inputs, computing what the
/// county computes when it acts (deadline, days stopped).
fn event_inputs(
    case: &CaseDoc,
    input: &ActionInput,
    ctx: &Context<'_>,
) -> Result<Inputs, ActionError> {
    let trimmed = |s: &str| s.trim().to_string();
    let mut out = Inputs {
        note: trimmed(&input.note),
        reason: trimmed(&input.reason),
        comment: trimmed(&input.comment),
        ..Default::default()
    };
    let today = ctx.now.date_naive();
    let wf = &case.workflow;
    match input.action {
        ActionKind::Reject if out.reason.is_empty() => {
            return Err(invalid("reason", "不予受理必须写明理由。"))
        }
        ActionKind::Deny if out.reason.is_empty() => {
            return Err(invalid("reason", "不予许可必须写明理由和依据。"))
        }
        ActionKind::Suspend if out.reason.is_empty() => {
            return Err(invalid(
                "reason",
                "暂停计时必须写明理由（听证、检验、专家评审等）。",
            ))
        }
        ActionKind::Escalate if out.reason.is_empty() => {
            return Err(invalid("reason", "请写明反映的问题。"))
        }
        ActionKind::Withdraw if out.reason.is_empty() => {
            return Err(invalid("reason", "请写明申请人撤回的原因。"))
        }
        ActionKind::ReportUp | ActionKind::AssistOpinion if out.note.is_empty() => {
            return Err(invalid("note", "请写明意见。"))
        }
        kind @ (ActionKind::Approve
        | ActionKind::RecordPayment
        | ActionKind::Ask
        | ActionKind::Answer) => desk::inputs(kind, case, input, ctx, &mut out)?,
        ActionKind::Accept => {
            out.urgent = input.urgent;
            out.deadline = case
                .item
                .day_unit()
                .due_date(today, case.item.promised_days, ctx.calendar)
                .map(|d| d.format("%Y-%m-%d").to_string());
        }
        ActionKind::Resume => {
            let stopped = wf
                .suspended_since
                .as_deref()
                .and_then(parse_date)
                .map(|since| u64::from(ctx.calendar.working_days_between(since, today)))
                .unwrap_or(0);
            out.stopped_days = Some(stopped);
            out.deadline = wf
                .accepted_on
                .as_deref()
                .and_then(parse_date)
                .and_then(|accepted| {
                    case.item.day_unit().due_date(
                        accepted,
                        case.item.promised_days + wf.suspended_days + stopped,
                        ctx.calendar,
                    )
                })
                .map(|d| d.format("%Y-%m-%d").to_string());
        }
        ActionKind::RequestCorrection => {
            if input.missing.is_empty() {
                return Err(invalid("missing", "请列出需要补正的材料。"));
            }
            for id in &input.missing {
                if !case.materials.iter().any(|m| &m.id == id) {
                    return Err(invalid("missing", format!("材料“{id}”不是该事项的材料。")));
                }
            }
            out.missing = input.missing.clone();
            for (id, problem) in &input.problems {
                let problem = problem.trim();
                if problem.is_empty() {
                    continue;
                }
                if !input.missing.contains(id) {
                    return Err(invalid("problems", format!("材料“{id}”没有勾选为需补正。")));
                }
                out.problems.insert(id.clone(), problem.to_string());
            }
        }
        ActionKind::SubmitCorrection => {
            if input.materials.is_empty() {
                return Err(invalid("materials", "请勾选补交的材料。"));
            }
            for id in &input.materials {
                if !case.materials.iter().any(|m| &m.id == id) {
                    return Err(invalid(
                        "materials",
                        format!("材料“{id}”不是该事项的材料。"),
                    ));
                }
            }
            if !wf.missing.iter().all(|m| input.materials.contains(m)) {
                return Err(invalid(
                    "materials",
                    "还有要求补正的材料没有补交，请收齐后再提交。",
                ));
            }
            out.materials = input.materials.clone();
        }
        ActionKind::Forward => {
            let dept = trimmed(&input.dept);
            if dept.is_empty() {
                return Err(invalid("dept", "请选择转交的部门。"));
            }
            if !ctx.departments.contains(&dept) {
                return Err(invalid(
                    "dept",
                    format!("“{dept}”不是事项目录中的部门，请从列表中选择。"),
                ));
            }
            if dept == case.handling_dept() {
                return Err(invalid("dept", "办件已在该部门。"));
            }
            out.dept = dept;
        }
        ActionKind::AssistOpinion => {
            // The opinion is the acting department's own.
            out.dept = trimmed(&input.dept);
        }
        ActionKind::IssueResult | ActionKind::CompleteAtWindow | ActionKind::CompleteOnSite => {
            out.result_name = trimmed(&input.result_name);
            out.result_no = trimmed(&input.result_no);
            if out.result_name.is_empty() {
                if input.action == ActionKind::CompleteOnSite {
                    out.result_name = format!("{}（村级当场办结）", case.item.name);
                } else {
                    return Err(invalid("result_name", "请填写结果（证照）名称。"));
                }
            }
            if out.result_no.is_empty() && input.action == ActionKind::IssueResult {
                return Err(invalid("result_no", "请填写结果（证照）编号。"));
            }
        }
        ActionKind::Evaluate => {
            let score = input
                .score
                .filter(|s| (1..=5).contains(s))
                .ok_or_else(|| invalid("score", "请选择评价等级。"))?;
            if crate::stats::is_bad_review(u64::from(score)) && out.comment.is_empty() {
                return Err(invalid(
                    "comment",
                    "“不满意”“非常不满意”须写明原因，以便整改。",
                ));
            }
            out.score = Some(score);
            out.channel = match input.channel.trim() {
                "" | "applicant_at_station" => "applicant_at_station".into(),
                "applicant_online" => "applicant_online".into(),
                _ => return Err(invalid("channel", "评价渠道不正确。")),
            };
        }
        ActionKind::Supervise => {
            let dept = trimmed(&input.dept);
            if !ctx.departments.contains(&dept) {
                return Err(invalid("dept", "请从列表中选择负责整改的部门。"));
            }
            out.dept = dept;
            out.deadline = Some(
                ctx.calendar
                    .due_date(today, ctx.rectify_days)
                    .format("%Y-%m-%d")
                    .to_string(),
            );
        }
        ActionKind::Callback | ActionKind::Rectify if out.note.is_empty() => {
            return Err(invalid(
                "note",
                if input.action == ActionKind::Callback {
                    "请记录回访情况（联系了谁、群众怎么说）。"
                } else {
                    "请写明整改情况。"
                },
            ))
        }
        ActionKind::CloseRectification if out.comment.is_empty() => {
            return Err(invalid("comment", "请记录群众对整改的反馈。"))
        }
        ActionKind::Appeal if out.reason.is_empty() => {
            return Err(invalid("reason", "请写明申诉理由。"))
        }
        ActionKind::ReviewAppeal => out.granted = Some(input.overturn),
        ActionKind::Amend => {
            let mut applicant = case.applicant.clone();
            if !input.phone.trim().is_empty() {
                applicant.phone = crate::validate::check_mobile(&input.phone)
                    .ok_or_else(|| invalid("phone", "手机号码应为以1开头的11位数字。"))?;
            }
            if !input.address.trim().is_empty() {
                if input.address.chars().count() > 200 {
                    return Err(invalid("address", "地址不能超过200个字。"));
                }
                applicant.address = trimmed(&input.address);
            }
            if !input.delivery.trim().is_empty() {
                if !crate::case::DELIVERY_METHODS.contains(&input.delivery.trim()) {
                    return Err(invalid(
                        "delivery",
                        "送达方式应为“窗口领取”“邮寄”或“代办员送达”之一。",
                    ));
                }
                out.delivery = trimmed(&input.delivery);
            }
            if applicant == case.applicant && out.delivery.is_empty() {
                return Err(invalid("phone", "没有要修改的内容。"));
            }
            out.applicant = Some(applicant);
        }
        _ => {}
    }
    Ok(out)
}

/// Takes `input` on the case in `doc` as `by` acting with `role`: checks it against the case as its
/// events make it now, appends one event (never touching another), refreshes the projection for
/// nodes on the previous release and commits. Returns the case as it is afterwards.
pub fn apply(
    doc: &mut AutoCommit,
    input: &ActionInput,
    by: &Actor<'_>,
    role: &Role,
    ctx: &Context<'_>,
) -> Result<CaseDoc, ActionError> {
    crate::limits::check_action(input).map_err(ActionError::Invalid)?;
    let (base, mut events) = read_parts(doc)?;
    if crate::event::read_events(doc).0.is_empty() {
        // A document of the previous format: its history becomes events first (deterministically, so
        // a tier converting the same case concurrently writes the same ones).
        for e in &events {
            crate::event::write_event(doc, e).map_err(CaseDocError::from)?;
        }
    }
    let case = fold::fold(base.clone(), &events);
    if matches!(input.action, ActionKind::Intake | ActionKind::Refuse) {
        return Err(ActionError::Unknown(input.action.to_string()));
    }
    let mut inputs = event_inputs(&case, input, ctx)?;
    if input.action == ActionKind::AssistOpinion {
        if let Role::Dept(d) = role {
            inputs.dept = d.clone();
        }
    }
    fold::authorised(input.action, role, &case).map_err(ActionError::Forbidden)?;
    if input.action == ActionKind::Answer {
        // Only the department the question was put to answers it.
        let asked = case
            .workflow
            .questions
            .iter()
            .find(|q| q.id == input.target);
        if let (Some(q), Role::Dept(d)) = (asked, role) {
            if &q.dept != d {
                return Err(ActionError::Forbidden(format!(
                    "这条咨询是向{}提出的。",
                    q.dept
                )));
            }
        }
    }
    fold::transition(input.action, &case, &inputs).map_err(|why| ActionError::WrongState {
        action: input.action.to_string(),
        state: case.state.clone(),
        why,
    })?;
    let event = Event {
        id: ctx.event_id.clone(),
        kind: input.action,
        by: Author {
            account: by.user.to_string(),
            name: by.name.to_string(),
            role: by.role.to_string(),
            tier: by.tier,
            node: by.node.to_string(),
        },
        at: ctx
            .now
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        saw: case.state.clone(),
        after: crate::event::frontier(&events),
        input: inputs,
    };
    crate::event::write_event(doc, &event).map_err(CaseDocError::from)?;
    events.push(event);
    let after = fold::fold(base, &events);
    if let Some(h) = after.history.iter().find(|h| h.id == ctx.event_id) {
        if !h.effective {
            // The fold and the checks above disagree: a bug, never a silent no-op.
            return Err(ActionError::WrongState {
                action: input.action.to_string(),
                state: case.state.clone(),
                why: h.why.clone(),
            });
        }
    }
    crate::case::project(doc, &after)?;
    doc.commit_with(
        CommitOptions::default()
            .with_message(input.action.to_string())
            .with_time(ctx.now.timestamp()),
    );
    Ok(after)
}

mod desk;
mod notices;
pub use desk::{MAX_QUESTION_CHARS, PAY_METHODS};
pub use notices::applicant_notice;

#[cfg(test)]
mod tests;
