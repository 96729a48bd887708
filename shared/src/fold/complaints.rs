//! The complaint path of a case (好差评 that closes the loop): the supervisor opens a rectification
//! of a bad review or an escalation (督办), calls the applicant back (回访), the owning department
//! answers with what it did (整改) or contests the review (申诉), and the supervisor closes it or
//! rules on the appeal. None of these moves the case's own state; they write `workflow.rectification`.
//! Who may, whether the rectification is in a state for it, the history note and the effect are
//! here, called by the fold's general rules in `fold.rs`.

use crate::action::ActionKind;
use crate::case::{CaseDoc, Rectification, Workflow};
use crate::event::Event;
use crate::stats::is_bad_review;
use crate::workflow::Role;

use super::Why;

/// The kinds of the complaint path, as a pattern (`fold.rs` matches on it).
macro_rules! complaint_kinds {
    () => {
        ActionKind::Supervise
            | ActionKind::Callback
            | ActionKind::Rectify
            | ActionKind::CloseRectification
            | ActionKind::Appeal
            | ActionKind::ReviewAppeal
    };
}

/// The supervisor runs the loop; the owning department answers and may appeal.
pub(super) fn authorised(kind: ActionKind, role: &Role, case: &CaseDoc) -> bool {
    let owner = matches!(role, Role::Dept(d) if *d == case.workflow.rectification.owner);
    match kind {
        ActionKind::Rectify => matches!(role, Role::Supervisor) || owner,
        ActionKind::Appeal => owner,
        _ => matches!(role, Role::Supervisor),
    }
}

/// Whether the rectification is in a state for `kind` (the case's state does not change).
pub(super) fn check(kind: ActionKind, wf: &Workflow) -> Result<(), Why> {
    let r = &wf.rectification;
    let open = r.state == "open";
    match kind {
        ActionKind::Supervise if !(is_bad_review(wf.evaluation) || wf.escalations > 0) => {
            Err("只有差评或办不成事反映需要督办整改。".into())
        }
        ActionKind::Supervise if open => Err("该件已在督办整改中。".into()),
        ActionKind::Callback
        | ActionKind::Rectify
        | ActionKind::Appeal
        | ActionKind::CloseRectification
            if !open =>
        {
            Err("该件没有进行中的整改。".into())
        }
        ActionKind::Appeal if !r.appeal.is_empty() => Err("该件已经申诉过。".into()),
        ActionKind::Appeal if !is_bad_review(wf.evaluation) => Err("只有差评可以申诉。".into()),
        ActionKind::CloseRectification if r.fix.is_empty() => {
            Err("还没有整改答复，不能办结。".into())
        }
        ActionKind::ReviewAppeal if r.appeal != "pending" => Err("该件没有待复核的申诉。".into()),
        _ => Ok(()),
    }
}

/// The history line of a complaint event; `note` is the person's note, trimmed.
pub(super) fn note(e: &Event, note: &str) -> String {
    let i = &e.input;
    match e.kind {
        ActionKind::Supervise => format!(
            "督办：由{}整改，{}前答复。{note}",
            i.dept,
            i.deadline.as_deref().unwrap_or("")
        ),
        ActionKind::Callback => format!("回访：{note}"),
        ActionKind::Rectify => format!("整改：{note}"),
        ActionKind::CloseRectification => format!("整改办结，群众反馈：{}", i.comment),
        ActionKind::Appeal => format!("申诉：{}", i.reason),
        ActionKind::ReviewAppeal if i.granted == Some(true) => {
            format!("申诉成立，该评价不计入考核。{note}")
        }
        ActionKind::ReviewAppeal => format!("申诉不成立，维持评价。{note}"),
        _ => note.to_string(),
    }
}

/// What an effective complaint event does to the rectification; `day` is the event's date.
pub(super) fn apply(e: &Event, wf: &mut Workflow, day: String) {
    let i = &e.input;
    let r = &mut wf.rectification;
    match e.kind {
        ActionKind::Supervise => {
            *r = Rectification {
                state: "open".into(),
                owner: i.dept.clone(),
                due: i.deadline.clone().unwrap_or_default(),
                opened_on: day,
                ..Default::default()
            }
        }
        ActionKind::Callback => r.callbacks += 1,
        ActionKind::Rectify => r.fix = i.note.clone(),
        ActionKind::CloseRectification => {
            r.state = "closed".into();
            r.feedback = i.comment.clone();
            r.closed_on = day;
        }
        ActionKind::Appeal => r.appeal = "pending".into(),
        ActionKind::ReviewAppeal if i.granted == Some(true) => {
            r.appeal = "overturned".into();
            r.state = "closed".into();
            r.feedback = "申诉成立".into();
            r.closed_on = day;
        }
        ActionKind::ReviewAppeal => r.appeal = "upheld".into(),
        _ => {}
    }
}
