//! What a case asks of the station that took it (the agent's to-do inbox): derived from the case as
//! its events make it, so every tier computes the same item for the same events, and an item goes
//! away by itself when the case moves on (the correction is submitted, the result delivered) or when
//! the agent records that the applicant was told (`inform`).
//!
//! A case has at most one item at a time, the most pressing one: a correction holds the case up;
//! a rejection or a reply must reach the applicant; a result must be handed over; an evaluation is
//! the last step.

use crate::action::ActionKind;
use crate::case::{CaseDoc, CaseState, HistoryEntry};

/// The kinds of `GET /api/todo` (`kind`), in the order the inbox shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TodoKind {
    /// 待补正: the county asked for materials.
    Correction,
    /// 被退回/不予受理: the applicant must be told why.
    Rejected,
    /// A reply to an escalation or a bad review (督办, 回访, 整改) the applicant has not heard yet.
    Reply,
    /// 结果待送达.
    Result,
    /// 待评价.
    Evaluate,
}

impl TodoKind {
    pub const ALL: [TodoKind; 5] = [
        TodoKind::Correction,
        TodoKind::Rejected,
        TodoKind::Reply,
        TodoKind::Result,
        TodoKind::Evaluate,
    ];

    /// The name in the API and the store's index.
    pub fn as_str(self) -> &'static str {
        match self {
            TodoKind::Correction => "correction",
            TodoKind::Rejected => "rejected",
            TodoKind::Reply => "reply",
            TodoKind::Result => "result",
            TodoKind::Evaluate => "evaluate",
        }
    }

    pub fn parse(s: &str) -> Option<TodoKind> {
        TodoKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The inbox heading.
    pub fn label(self) -> &'static str {
        match self {
            TodoKind::Correction => "待补正",
            TodoKind::Rejected => "被退回/不予受理，需告知群众",
            TodoKind::Reply => "县级答复，需告知群众",
            TodoKind::Result => "结果待送达",
            TodoKind::Evaluate => "待评价",
        }
    }
}

/// The case's to-do item: its kind, since when it waits (the RFC 3339 time of the event that
/// opened it), and the reason or note a person must read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    pub kind: TodoKind,
    pub since: String,
    pub note: String,
}

/// Replies to the applicant's complaints: events of the county that answer them.
fn is_reply(h: &HistoryEntry) -> bool {
    h.effective
        && h.tier == "county"
        && ActionKind::parse(&h.action).is_some_and(ActionKind::is_reply)
}

/// What the agent must collect: each missing material with what is wrong with it, then the county's
/// note (`居民身份证（复印件不清晰）；户口簿。请重新复印`).
fn correction_note(case: &CaseDoc) -> String {
    let wf = &case.workflow;
    let materials: Vec<String> = case
        .asked_for(true)
        .into_iter()
        .map(|(m, problem)| match problem {
            "" => m.name.clone(),
            problem => format!("{}（{problem}）", m.name),
        })
        .collect();
    let mut note = materials.join("；");
    if !wf.correction_note.is_empty() {
        note = format!("{note}。{}", wf.correction_note);
    }
    note
}

/// The item `case` asks of its station now, if any.
pub fn todo_of(case: &CaseDoc) -> Option<Todo> {
    let last = |kinds: &[ActionKind]| {
        case.history.iter().rev().find(|h| {
            h.effective && ActionKind::parse(&h.action).is_some_and(|k| kinds.contains(&k))
        })
    };
    let told = case.workflow.informed_at.as_str();
    // Times are RFC 3339 from different clocks; an inform written after seeing the event names it
    // causally, but comparing times is what a person would do and is enough to clear the item.
    let untold = |h: &&HistoryEntry| told.is_empty() || h.at.as_str() > told;
    let item = |kind, h: &HistoryEntry| Todo {
        kind,
        since: h.at.clone(),
        note: h.note.clone(),
    };
    match case.state() {
        Some(CaseState::Correction) => {
            return last(&[ActionKind::RequestCorrection]).map(|h| Todo {
                note: correction_note(case),
                ..item(TodoKind::Correction, h)
            });
        }
        Some(CaseState::Rejected) => {
            if let Some(h) = last(&[ActionKind::Reject]).filter(untold) {
                return Some(Todo {
                    note: case.workflow.reason.clone(),
                    ..item(TodoKind::Rejected, h)
                });
            }
        }
        _ => {}
    }
    // An event of this station the upstream did not adopt (被退回).
    if let Some(h) = case
        .history
        .iter()
        .rev()
        .find(|h| h.refused && h.tier != "county")
        .filter(untold)
    {
        return Some(Todo {
            note: h.why.clone(),
            ..item(TodoKind::Rejected, h)
        });
    }
    if let Some(h) = case
        .history
        .iter()
        .rev()
        .find(|h| is_reply(h))
        .filter(untold)
    {
        // What the department did is what the applicant hears, not the supervisor's closing words.
        let fix = &case.workflow.rectification.fix;
        return Some(Todo {
            note: if fix.is_empty() {
                h.note.clone()
            } else {
                format!("整改答复：{fix}")
            },
            ..item(TodoKind::Reply, h)
        });
    }
    match case.state() {
        Some(CaseState::ResultReady) => {
            last(&[ActionKind::IssueResult, ActionKind::CompleteAtWindow]).map(|h| Todo {
                // A refusal is handed over too, and the agent must know it is one.
                note: if case.workflow.decision == "denied" {
                    format!("不予许可：{}", case.workflow.reason)
                } else {
                    format!("办理结果：{}", case.workflow.result_name)
                },
                ..item(TodoKind::Result, h)
            })
        }
        Some(CaseState::Delivered) => last(&[ActionKind::Deliver, ActionKind::CompleteOnSite])
            .map(|h| item(TodoKind::Evaluate, h)),
        _ => None,
    }
}
