//! The 一窗通办 workflow: one definition of every action, who may take it, in which state, with what
//! input, and what it changes. Node, hub and the hub's check of incoming node changes all use it.
//!
//! Time comes from the caller (the hub's clock for county actions, the node's for the agent's own);
//! deadlines come from the working-day [`Calendar`].

use automerge::{transaction::CommitOptions, AutoCommit};
use autosurgeon::reconcile;
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Deserialize;

use crate::calendar::Calendar;
use crate::case::{read_case, CaseDoc, CaseDocError, CaseState, HistoryEntry};
use crate::FieldError;

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
}

impl Role {
    /// From an account's stored role: `agent`, `clerk`, `window`, `dept:<部门>`, `supervisor`, `admin`.
    pub fn from_account(role: &str) -> Option<Role> {
        Some(match role {
            "agent" | "clerk" => Role::Agent,
            "window" => Role::Window,
            "supervisor" => Role::Supervisor,
            "admin" => Role::Admin,
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

/// Who took an action, and where.
pub struct Actor<'a> {
    pub user: &'a str,
    pub name: &'a str,
    pub node: &'a str,
}

pub use crate::action::ActionKind;

/// Whether a history entry's action is one a node may take (unknown names are not).
fn by_node(action: &str) -> bool {
    ActionKind::parse(action).is_some_and(ActionKind::by_node)
}

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
}

impl ActionInput {
    /// `action` with no inputs (what a page asks for first, and what tests start from).
    pub fn new(action: ActionKind) -> ActionInput {
        ActionInput {
            action,
            note: String::new(),
            reason: String::new(),
            missing: Vec::new(),
            materials: Vec::new(),
            dept: String::new(),
            result_name: String::new(),
            result_no: String::new(),
            score: None,
            comment: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("action {0} is not known")]
    Unknown(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the case is {state}; {action} is not possible now")]
    WrongState { action: String, state: String },
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

fn date_of(now: DateTime<FixedOffset>) -> String {
    now.date_naive().format("%Y-%m-%d").to_string()
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// The promised completion date: promised days from the day after acceptance, plus the working days
/// the clock was stopped (suspension). Calendar-day items count calendar days.
pub fn deadline(case: &CaseDoc, calendar: &Calendar) -> Option<NaiveDate> {
    let accepted = parse_date(case.workflow.accepted_on.as_deref()?)?;
    let days = case.item.promised_days + case.workflow.suspended_days;
    case.item.day_unit().due_date(accepted, days, calendar)
}

/// Checks who may act and that the case is in a state that allows it; returns the state afterwards.
fn check(case: &CaseDoc, input: &ActionInput, role: &Role) -> Result<CaseState, ActionError> {
    use CaseState::*;
    let state = case.state().ok_or_else(|| ActionError::WrongState {
        action: input.action.to_string(),
        state: case.state.clone(),
    })?;
    let dept_of_case = case.handling_dept();
    let is_dept = matches!(role, Role::Dept(d) if d == dept_of_case);
    let (allowed, from, to): (bool, &[CaseState], CaseState) = match input.action {
        ActionKind::Receive => (
            matches!(role, Role::Window | Role::Admin),
            &[Submitted],
            Received,
        ),
        ActionKind::Accept => (
            matches!(role, Role::Window | Role::Admin),
            &[Received],
            Accepted,
        ),
        ActionKind::Reject => (
            matches!(role, Role::Window | Role::Admin),
            &[Received, Correction],
            Rejected,
        ),
        ActionKind::RequestCorrection => (
            matches!(role, Role::Window | Role::Admin),
            &[Received],
            Correction,
        ),
        ActionKind::SubmitCorrection => (
            matches!(role, Role::Agent | Role::Township | Role::Window),
            &[Correction],
            Received,
        ),
        // The township takes a village's file on its way to the county; the case stays SUBMITTED.
        ActionKind::TownshipReceive => (matches!(role, Role::Township), &[Submitted], Submitted),
        ActionKind::Forward => (
            matches!(role, Role::Window | Role::Admin) || is_dept,
            &[Accepted, Review],
            Review,
        ),
        ActionKind::Suspend => (is_dept, &[Accepted, Review], Suspended),
        ActionKind::Resume => (is_dept, &[Suspended], Review),
        ActionKind::Approve | ActionKind::Deny => (is_dept, &[Accepted, Review], Decided),
        ActionKind::IssueResult => (is_dept, &[Decided], ResultReady),
        ActionKind::Deliver => (
            matches!(role, Role::Window | Role::Agent | Role::Township),
            &[ResultReady],
            Delivered,
        ),
        ActionKind::Evaluate => (
            matches!(role, Role::Window | Role::Agent | Role::Township),
            &[Delivered],
            Evaluated,
        ),
        ActionKind::Escalate => (
            matches!(role, Role::Window | Role::Agent | Role::Township),
            &[
                Submitted,
                Received,
                Correction,
                Accepted,
                Review,
                Suspended,
                Decided,
                ResultReady,
                Delivered,
            ],
            state,
        ),
        // An intake is how a case begins, never an action on one.
        ActionKind::Intake => return Err(ActionError::Unknown("intake".into())),
    };
    if !allowed {
        return Err(ActionError::Forbidden(format!(
            "this account may not {} this case",
            input.action
        )));
    }
    if !from.contains(&state) {
        return Err(ActionError::WrongState {
            action: input.action.to_string(),
            state: case.state.clone(),
        });
    }
    Ok(to)
}

/// The actions `role` may take on `case` now (what a page offers).
pub fn available(case: &CaseDoc, role: &Role) -> Vec<ActionKind> {
    ActionKind::ALL
        .into_iter()
        .filter(|a| check(case, &ActionInput::new(*a), role).is_ok())
        .collect()
}

/// What a person reads for an action named in a history entry.
pub fn action_label(action: &str) -> &'static str {
    ActionKind::parse(action).map_or("其他", ActionKind::label)
}

/// The message an action sends the applicant, if any.
pub fn applicant_notice(action: ActionKind, case: &CaseDoc) -> Option<(&'static str, String)> {
    match action {
        ActionKind::RequestCorrection => {
            let missing: Vec<&str> = case
                .materials
                .iter()
                .filter(|m| case.workflow.missing.contains(&m.id))
                .map(|m| m.name.as_str())
                .collect();
            Some((
                "correction",
                format!(
                    "【通办】您的办件{}（{}）需补充材料：{}。请交给代办员{}。",
                    case.case_no,
                    case.item.name,
                    missing.join("、"),
                    case.agent.name
                ),
            ))
        }
        ActionKind::IssueResult => Some((
            "result_ready",
            format!(
                "【通办】您的办件{}（{}）已办结，结果将按“{}”方式交付。",
                case.case_no, case.item.name, case.delivery
            ),
        )),
        _ => None,
    }
}

/// Applies `input` to the case in `doc` and commits the change with `now`. Every accepted action appends
/// one history entry (who, where, when, note, resulting state); nothing else in the history changes.
pub fn apply(
    doc: &mut AutoCommit,
    input: &ActionInput,
    by: &Actor<'_>,
    role: &Role,
    now: DateTime<FixedOffset>,
    calendar: &Calendar,
) -> Result<CaseDoc, ActionError> {
    let mut case = read_case(doc)?;
    let next = check(&case, input, role)?;
    let mut note = input.note.trim().to_string();
    let wf = &mut case.workflow;
    match input.action {
        ActionKind::Accept => {
            wf.accepted_on = Some(date_of(now));
            if wf.dept.is_empty() {
                wf.dept = case.item.department.clone();
            }
        }
        ActionKind::Reject => {
            if input.reason.trim().is_empty() {
                return Err(invalid("reason", "不予受理必须写明理由。"));
            }
            wf.reason = input.reason.trim().to_string();
            note = wf.reason.clone();
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
            wf.missing = input.missing.clone();
            wf.correction_rounds += 1;
            let names: Vec<&str> = case
                .materials
                .iter()
                .filter(|m| input.missing.contains(&m.id))
                .map(|m| m.name.as_str())
                .collect();
            note = format!("需补正：{}。{note}", names.join("、"));
        }
        ActionKind::SubmitCorrection => {
            if input.materials.is_empty() {
                return Err(invalid("materials", "请勾选补交的材料。"));
            }
            for id in &input.materials {
                let Some(m) = case.materials.iter_mut().find(|m| &m.id == id) else {
                    return Err(invalid(
                        "materials",
                        format!("材料“{id}”不是该事项的材料。"),
                    ));
                };
                m.collected = true;
            }
            wf.missing.retain(|id| !input.materials.contains(id));
            if !wf.missing.is_empty() {
                return Err(invalid(
                    "materials",
                    "还有要求补正的材料没有补交，请收齐后再提交。",
                ));
            }
        }
        ActionKind::Forward => {
            if input.dept.trim().is_empty() {
                return Err(invalid("dept", "请写明转交的部门。"));
            }
            wf.dept = input.dept.trim().to_string();
            note = format!("转交{}。{note}", wf.dept);
        }
        ActionKind::Suspend => {
            if input.reason.trim().is_empty() {
                return Err(invalid(
                    "reason",
                    "暂停计时必须写明理由（听证、检验、专家评审等）。",
                ));
            }
            wf.suspended_since = Some(date_of(now));
            wf.reason = input.reason.trim().to_string();
            note = wf.reason.clone();
        }
        ActionKind::Resume => {
            if let Some(since) = wf.suspended_since.take().as_deref().and_then(parse_date) {
                wf.suspended_days +=
                    u64::from(calendar.working_days_between(since, now.date_naive()));
            }
        }
        ActionKind::Approve => wf.decision = "approved".into(),
        ActionKind::Deny => wf.decision = "denied".into(),
        ActionKind::IssueResult => {
            if input.result_name.trim().is_empty() {
                return Err(invalid("result_name", "请填写结果（证照）名称。"));
            }
            if input.result_no.trim().is_empty() {
                return Err(invalid("result_no", "请填写结果（证照）编号。"));
            }
            wf.result_name = input.result_name.trim().to_string();
            wf.result_no = input.result_no.trim().to_string();
        }
        ActionKind::Evaluate => {
            let score = input
                .score
                .filter(|s| (1..=5).contains(s))
                .ok_or_else(|| invalid("score", "评价分数应为1到5。"))?;
            wf.evaluation = u64::from(score);
            wf.evaluation_comment = input.comment.trim().to_string();
            note = format!(
                "{}。{}",
                EVALUATION_LEVELS[usize::from(score) - 1],
                wf.evaluation_comment
            );
        }
        ActionKind::Escalate => {
            if input.reason.trim().is_empty() {
                return Err(invalid("reason", "请写明反映的问题。"));
            }
            wf.escalations += 1;
            note = format!("办不成事反映：{}", input.reason.trim());
        }
        _ => {}
    }
    case.state = next.as_str().to_string();
    case.deadline = deadline(&case, calendar).map(|d| d.format("%Y-%m-%d").to_string());
    case.history.push(HistoryEntry {
        at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        by: by.user.to_string(),
        by_name: by.name.to_string(),
        node: by.node.to_string(),
        action: input.action.to_string(),
        note: note.trim_end_matches('。').trim().to_string(),
        state: next.as_str().to_string(),
    });
    reconcile(doc, &case).map_err(CaseDocError::from)?;
    doc.commit_with(
        CommitOptions::default()
            .with_message(input.action.to_string())
            .with_time(now.timestamp()),
    );
    Ok(case)
}

/// The hub's check of what a node's changes did to a case (`old` as the hub had it, `new` after
/// merging the node's changes). A node may open a case (as SUBMITTED, with one intake entry), edit the
/// intake fields before the county receives it, take its own actions, and append to the history;
/// nothing else. Returns the reason for a refusal.
pub fn check_node_change(old: Option<&CaseDoc>, new: &CaseDoc) -> Result<(), String> {
    let Some(old) = old else {
        // New to the county: an intake, possibly followed by node actions (a township's receipt, an
        // escalation) taken while the county was out of reach — never anything of the county's.
        if new.state() != Some(CaseState::Submitted) {
            return Err(format!("a new case must be SUBMITTED, not {}", new.state));
        }
        if new.history.first().map(|h| h.action.as_str()) != Some(ActionKind::Intake.as_str()) {
            return Err("a new case must begin with its intake".into());
        }
        if let Some(h) = new.history[1..]
            .iter()
            .find(|h| !by_node(&h.action) || h.action == ActionKind::Intake.as_str())
        {
            return Err(format!("action {} is the county's, not a node's", h.action));
        }
        let mut county_part = new.workflow.clone();
        county_part.escalations = 0;
        if new.deadline.is_some() || county_part != Default::default() {
            return Err("a new case may not carry county workflow data".into());
        }
        return Ok(());
    };
    if new.history.len() < old.history.len() || new.history[..old.history.len()] != old.history[..]
    {
        return Err("history rewritten: entries already recorded were changed or removed".into());
    }
    for entry in &new.history[old.history.len()..] {
        if !by_node(&entry.action) || entry.action == ActionKind::Intake.as_str() {
            return Err(format!(
                "action {} is the county's, not a node's",
                entry.action
            ));
        }
    }
    let receiving_done = old.state() != Some(CaseState::Submitted);
    let mut allowed = old.clone();
    // What node actions may change.
    allowed.state = new.state.clone();
    allowed.history = new.history.clone();
    allowed.workflow.missing = new.workflow.missing.clone();
    allowed.workflow.evaluation = new.workflow.evaluation;
    allowed.workflow.evaluation_comment = new.workflow.evaluation_comment.clone();
    allowed.workflow.escalations = new.workflow.escalations;
    for (a, n) in allowed.materials.iter_mut().zip(&new.materials) {
        a.collected = n.collected;
    }
    if !receiving_done {
        // Before the county receives it, the intake is still the agent's to correct.
        allowed.applicant = new.applicant.clone();
        allowed.materials = new.materials.clone();
        allowed.delivery = new.delivery.clone();
        allowed.note = new.note.clone();
    }
    if &allowed != new {
        return Err("the change writes fields only the county may write".into());
    }
    // The resulting state must be the one the last appended entry recorded.
    if let Some(last) = new.history.last() {
        if new.history.len() > old.history.len() && last.state != new.state {
            return Err("state does not match the history".into());
        }
    }
    if new.history.len() == old.history.len() && new.state != old.state {
        return Err("state changed without a history entry".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::tests_support::{new_doc, ACCEPT_NOW};

    fn cal() -> Calendar {
        Calendar::builtin().unwrap()
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn act(
        doc: &mut AutoCommit,
        action: &str,
        role: &Role,
        now: &str,
        f: impl FnOnce(&mut ActionInput),
    ) -> Result<CaseDoc, ActionError> {
        let mut input = ActionInput::new(action.parse()?);
        f(&mut input);
        let node = if *role == Role::Agent {
            "420222103201"
        } else {
            "420222"
        };
        apply(
            doc,
            &input,
            &Actor {
                user: "u",
                name: "U",
                node,
            },
            role,
            at(now),
            &cal(),
        )
    }

    #[test]
    fn the_whole_life_of_a_case_with_correct_deadlines() {
        let (mut doc, case) = new_doc();
        let dept = Role::Dept(case.item.department.clone());
        let w = Role::Window;
        act(&mut doc, "receive", &w, ACCEPT_NOW, |_| {}).unwrap();
        let c = act(&mut doc, "request_correction", &w, ACCEPT_NOW, |i| {
            i.missing = vec![case.materials[0].id.clone()]
        })
        .unwrap();
        assert_eq!(c.workflow.correction_rounds, 1);
        act(
            &mut doc,
            "submit_correction",
            &Role::Agent,
            ACCEPT_NOW,
            |i| i.materials = vec![case.materials[0].id.clone()],
        )
        .unwrap();
        // Accepted Tue 2026-09-29: promised days counted across National Day with its makeup Saturday.
        let c = act(&mut doc, "accept", &w, "2026-09-29T10:00:00+08:00", |_| {}).unwrap();
        let expected = cal().due_date(
            NaiveDate::from_ymd_opt(2026, 9, 29).unwrap(),
            c.item.promised_days as u32,
        );
        assert_eq!(
            c.deadline.as_deref(),
            Some(expected.format("%Y-%m-%d").to_string().as_str())
        );
        // Suspended for 3 working days (Mon 10-12 → Thu 10-15): the deadline moves by 3 working days.
        act(
            &mut doc,
            "suspend",
            &dept,
            "2026-10-12T09:00:00+08:00",
            |i| i.reason = "专家评审".into(),
        )
        .unwrap();
        let c = act(
            &mut doc,
            "resume",
            &dept,
            "2026-10-15T09:00:00+08:00",
            |_| {},
        )
        .unwrap();
        assert_eq!(c.workflow.suspended_days, 3);
        let moved = cal().due_date(
            NaiveDate::from_ymd_opt(2026, 9, 29).unwrap(),
            c.item.promised_days as u32 + 3,
        );
        assert_eq!(
            c.deadline.as_deref(),
            Some(moved.format("%Y-%m-%d").to_string().as_str())
        );
        act(
            &mut doc,
            "approve",
            &dept,
            "2026-10-16T09:00:00+08:00",
            |_| {},
        )
        .unwrap();
        act(
            &mut doc,
            "issue_result",
            &dept,
            "2026-10-16T10:00:00+08:00",
            |i| {
                i.result_name = "残疾人证".into();
                i.result_no = "42022219900101001X11".into();
            },
        )
        .unwrap();
        act(
            &mut doc,
            "deliver",
            &Role::Agent,
            "2026-10-17T10:00:00+08:00",
            |_| {},
        )
        .unwrap();
        let c = act(
            &mut doc,
            "evaluate",
            &Role::Agent,
            "2026-10-17T10:05:00+08:00",
            |i| i.score = Some(5),
        )
        .unwrap();
        assert_eq!(c.state(), Some(CaseState::Evaluated));
        assert_eq!(c.history.len(), 11);
        assert!(c
            .history
            .iter()
            .all(|h| !h.at.is_empty() && !h.by.is_empty()));
    }

    #[test]
    fn reasons_roles_and_states_are_enforced() {
        let (mut doc, case) = new_doc();
        act(&mut doc, "receive", &Role::Window, ACCEPT_NOW, |_| {}).unwrap();
        assert!(matches!(
            act(&mut doc, "reject", &Role::Window, ACCEPT_NOW, |_| {}),
            Err(ActionError::Invalid(f)) if f.field == "reason"
        ));
        assert!(matches!(
            act(&mut doc, "accept", &Role::Agent, ACCEPT_NOW, |_| {}),
            Err(ActionError::Forbidden(_))
        ));
        act(&mut doc, "accept", &Role::Window, ACCEPT_NOW, |_| {}).unwrap();
        assert!(matches!(
            act(
                &mut doc,
                "approve",
                &Role::Dept("另一个部门".into()),
                ACCEPT_NOW,
                |_| {}
            ),
            Err(ActionError::Forbidden(_))
        ));
        assert!(matches!(
            act(&mut doc, "deliver", &Role::Window, ACCEPT_NOW, |_| {}),
            Err(ActionError::WrongState { .. })
        ));
        let dept = Role::Dept(case.item.department.clone());
        act(&mut doc, "approve", &dept, ACCEPT_NOW, |_| {}).unwrap();
    }

    #[test]
    fn node_changes_are_checked_field_by_field() {
        let (mut doc, _) = new_doc();
        let fresh = read_case(&doc).unwrap();
        assert!(check_node_change(None, &fresh).is_ok());
        act(&mut doc, "receive", &Role::Window, ACCEPT_NOW, |_| {}).unwrap();
        let received = read_case(&doc).unwrap();

        // An honest escalation from the village.
        let mut esc = doc.fork();
        act(&mut esc, "escalate", &Role::Agent, ACCEPT_NOW, |i| {
            i.reason = "等太久".into()
        })
        .unwrap();
        assert!(check_node_change(Some(&received), &read_case(&esc).unwrap()).is_ok());

        // Writing the deadline (hub-only) is refused.
        let mut forged = received.clone();
        forged.deadline = Some("2026-12-01".into());
        assert!(check_node_change(Some(&received), &forged).is_err());
        // Rewriting history is refused.
        let mut rewritten = received.clone();
        rewritten.history[0].note = "改写".into();
        assert!(check_node_change(Some(&received), &rewritten).is_err());
        // Taking a county action is refused.
        let mut accepted = doc.fork();
        act(&mut accepted, "accept", &Role::Window, ACCEPT_NOW, |_| {}).unwrap();
        assert!(check_node_change(Some(&received), &read_case(&accepted).unwrap()).is_err());
        // Changing the applicant after the county received the case is refused.
        let mut renamed = received.clone();
        renamed.applicant.name = "别人".into();
        assert!(check_node_change(Some(&received), &renamed).is_err());
        // ... but before, it is the agent's intake to correct.
        let mut early = fresh.clone();
        early.applicant.phone = "13900000000".into();
        assert!(check_node_change(Some(&fresh), &early).is_ok());
    }
}
