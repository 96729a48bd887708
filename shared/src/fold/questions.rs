//! 中台 policy questions in the fold: who may ask and answer, whether an answer still fits, and
//! what each event records on the case. State never changes.

use crate::action::ActionKind;
use crate::case::{CaseDoc, Question, Workflow};
use crate::event::{Event, Inputs};
use crate::workflow::Role;

use super::Why;

/// A station (village agent, township clerk) or the window asks; the department a question was put
/// to answers (the writer checks that the answer names one of that department's questions).
pub(super) fn authorised(kind: ActionKind, role: &Role, case: &CaseDoc) -> bool {
    match kind {
        ActionKind::Ask => matches!(role, Role::Agent | Role::Township | Role::Window),
        _ => matches!(role, Role::Dept(d)
            if case.workflow.questions.iter().any(|q| q.is_open() && &q.dept == d)),
    }
}

/// An answer names a question that is still open (two answers written concurrently: the first in
/// the fold's order stands, the other does not take effect).
pub(super) fn check(kind: ActionKind, wf: &Workflow, input: &Inputs) -> Result<(), Why> {
    if kind == ActionKind::Answer {
        match wf.questions.iter().find(|q| q.id == input.target) {
            None => return Err("没有这条咨询。".into()),
            Some(q) if !q.is_open() => return Err("这条咨询已经答复过。".into()),
            Some(_) => {}
        }
    }
    Ok(())
}

pub(super) fn apply(e: &Event, wf: &mut Workflow) {
    let i = &e.input;
    match e.kind {
        ActionKind::Ask => wf.questions.push(Question {
            id: e.id.clone(),
            dept: i.dept.clone(),
            question: i.note.clone(),
            asked_by: e.by.name.clone(),
            asked_node: e.by.node.clone(),
            asked_at: e.at.clone(),
            ..Default::default()
        }),
        _ => {
            if let Some(q) = wf.questions.iter_mut().find(|q| q.id == i.target) {
                q.answer = i.note.clone();
                q.answered_by = e.by.name.clone();
                q.answered_at = e.at.clone();
            }
        }
    }
}
