//! What a case is, derived from its events: state, workflow fields, deadline and the history as
//! people read it. A pure, deterministic function of the event set, computed the same way at every
//! tier, so two tiers holding the same events always show the same case.
//!
//! Order: events are folded in causal order (each after the events it names in `after`); among events
//! that are concurrent, the county's come first, then the township's, then the village's, then by the
//! author's clock and id. Each event is then judged against the case as folded so far by the rules
//! below ([`authorised`], [`transition`]): one that no longer fits (a delivery after another delivery,
//! a correction after a rejection) stays in the history as 未生效 with why, and changes nothing. An
//! event an upstream refused (`refuse`, see `ingress`) stays as 未采纳 with the reason. The conflict
//! rules are tabled in docs/WORKFLOW.md.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::action::ActionKind;
use crate::case::{CaseDoc, CaseState, HistoryEntry};
use crate::catalog::ItemKind;
use crate::event::{Event, Inputs};
use crate::workflow::Role;
use crate::Tier;

/// Why an event does not take effect, in words for the page.
// First, so that its `complaint_kinds!` pattern is in scope below.
#[macro_use]
mod complaints;
mod notes;
mod questions;

pub type Why = String;

fn tier_rank(t: Tier) -> u8 {
    match t {
        Tier::County => 0,
        Tier::Township => 1,
        Tier::Village => 2,
    }
}

/// The tier a division code belongs to: 6 digits a county, 9 a township, 12 a village.
pub fn tier_of_code(code: &str) -> Option<Tier> {
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match code.len() {
        6 => Some(Tier::County),
        9 => Some(Tier::Township),
        12 => Some(Tier::Village),
        _ => None,
    }
}

/// The role an event's author acted with, from what the event declares; `None` when the declared role
/// does not exist or does not belong to the declared tier (a village account claiming `window`).
pub fn author_role(e: &Event) -> Option<Role> {
    let role = Role::acting(&e.by.role, e.by.tier)?;
    let county_role = !matches!(role, Role::Agent | Role::Township);
    if county_role != (e.by.tier == Tier::County) {
        return None;
    }
    Some(role)
}

/// Whether `role` may write an event of `kind` on this case at all (who, for which item), whatever
/// the case's state. The ingress check refuses events that fail this; the fold marks them 未生效.
pub fn authorised(kind: ActionKind, role: &Role, case: &CaseDoc) -> Result<(), Why> {
    let window = matches!(role, Role::Window | Role::Admin);
    let node = matches!(role, Role::Agent | Role::Township);
    let handling = matches!(role, Role::Dept(d) if d == case.handling_dept());
    let item_kind = case.item.kind();
    let ok = match kind {
        ActionKind::Intake => node || window,
        ActionKind::Amend => node,
        ActionKind::TownshipReceive => matches!(role, Role::Township),
        ActionKind::Receive
        | ActionKind::Accept
        | ActionKind::Reject
        | ActionKind::RequestCorrection => window,
        ActionKind::CompleteAtWindow => {
            if !window {
                false
            } else if item_kind != ItemKind::Immediate {
                return Err("只有即办事项可以在窗口当场办结。".into());
            } else {
                true
            }
        }
        ActionKind::CompleteOnSite => {
            if !matches!(role, Role::Agent) {
                false
            } else if !case.item.village_completable() {
                return Err("该事项未授权村级直接办结，须报县级办理。".into());
            } else {
                true
            }
        }
        ActionKind::SubmitCorrection => node || matches!(role, Role::Window),
        ActionKind::Forward => window || handling,
        ActionKind::DeptReceive
        | ActionKind::Suspend
        | ActionKind::Resume
        | ActionKind::IssueResult => handling,
        ActionKind::Approve | ActionKind::Deny => handling,
        ActionKind::ReportUp => {
            if !handling {
                false
            } else if item_kind != ItemKind::ReportUp {
                return Err("只有上报类事项需要转报上级机关。".into());
            } else {
                true
            }
        }
        ActionKind::AssistOpinion => {
            if item_kind != ItemKind::Joint {
                return Err("只有联办事项需要协办部门意见。".into());
            }
            matches!(role, Role::Dept(d) if case.item.assist_departments.contains(d))
        }
        ActionKind::Evaluate => node || matches!(role, Role::Window | Role::Applicant),
        ActionKind::Deliver | ActionKind::Escalate => node || matches!(role, Role::Window),
        kind @ complaint_kinds!() => complaints::authorised(kind, role, case),
        ActionKind::Refuse => window || matches!(role, Role::Township | Role::Admin),
        // On the applicant's request, wherever they are: at the village, or at the county window.
        ActionKind::Withdraw | ActionKind::Inform => node || window,
        // The window takes the money (or the 非税 receipt) at the county.
        ActionKind::RecordPayment => window,
        kind @ (ActionKind::Ask | ActionKind::Answer) => questions::authorised(kind, role, case),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("该账号无权进行“{}”。", kind.label()))
    }
}

/// The state after `kind` given the case as it is now, or why it does not fit now. Also checks the
/// inputs the state needs (a decision on a joint item needs every assisting department's opinion).
pub fn transition(kind: ActionKind, case: &CaseDoc, input: &Inputs) -> Result<CaseState, Why> {
    use CaseState::*;
    let state = case.state().unwrap_or(Submitted);
    let wf = &case.workflow;
    let item_kind = case.item.kind();
    let (from, to): (&[CaseState], CaseState) = match kind {
        ActionKind::Intake => return Err("办件已经收件。".into()),
        ActionKind::Refuse => return Err("未采纳记录不是办理操作。".into()),
        ActionKind::Amend => (&[Submitted], Submitted),
        ActionKind::TownshipReceive => {
            if !wf.township_received_at.is_empty() {
                return Err("乡镇已收件转报过此件。".into());
            }
            (&[Submitted, Received, Correction], state)
        }
        ActionKind::Receive => (&[Submitted], Received),
        ActionKind::CompleteAtWindow => (&[Received], ResultReady),
        ActionKind::CompleteOnSite => (&[Submitted], Delivered),
        ActionKind::Accept => (&[Received], Accepted),
        ActionKind::Reject => (&[Received, Correction], Rejected),
        ActionKind::RequestCorrection => (&[Received], Correction),
        ActionKind::SubmitCorrection => {
            if state == Correction && !wf.missing.iter().all(|m| input.materials.contains(m)) {
                return Err("补交的材料不全。".into());
            }
            (&[Correction], Received)
        }
        ActionKind::DeptReceive => {
            if !wf.dept_received_at.is_empty() && state == Accepted {
                return Err("部门已签收。".into());
            }
            (&[Accepted], Review)
        }
        ActionKind::Forward => (&[Accepted, Review], Review),
        ActionKind::Suspend => (&[Accepted, Review], Suspended),
        ActionKind::Resume => (&[Suspended], Review),
        ActionKind::ReportUp => (&[Accepted, Review], ReportedUp),
        ActionKind::AssistOpinion => {
            if wf.assist_opinions.iter().any(|o| o.dept == input.dept) {
                return Err(format!("{}已经出具过协办意见。", input.dept));
            }
            (&[Accepted, Review], state)
        }
        ActionKind::Approve | ActionKind::Deny => {
            // Decisions converted from the previous format were taken under its rules, which had
            // neither prerequisite: they keep their effect.
            if item_kind == ItemKind::ReportUp && state != ReportedUp && !input.legacy {
                return Err("上报类事项须先出具初审意见并转报上级机关。".into());
            }
            if item_kind == ItemKind::Joint && !input.legacy {
                let missing: Vec<&str> = case
                    .item
                    .assist_departments
                    .iter()
                    .filter(|d| !wf.assist_opinions.iter().any(|o| &o.dept == *d))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() && matches!(state, Accepted | Review) {
                    return Err(format!("还需协办部门意见：{}。", missing.join("、")));
                }
            }
            (&[Accepted, Review, ReportedUp], Decided)
        }
        ActionKind::IssueResult => {
            if case.awaiting_payment() {
                return Err(format!(
                    "申请人尚未缴费（应缴{}），缴费登记后才能出具结果。",
                    crate::manual::yuan_text(wf.fee_due_fen)
                ));
            }
            (&[Decided], ResultReady)
        }
        kind @ (ActionKind::Ask | ActionKind::Answer) => {
            questions::check(kind, wf, input)?;
            (&[state], state)
        }
        ActionKind::RecordPayment => {
            if !wf.paid_on.is_empty() {
                return Err("已经登记过缴费。".into());
            }
            if state == Decided && (wf.decision != "approved" || wf.fee_due_fen == 0) {
                return Err("该办件无需缴费。".into());
            }
            (&[Decided], Decided)
        }
        ActionKind::Deliver => (&[ResultReady], Delivered),
        ActionKind::Evaluate => (&[Delivered], Evaluated),
        // Any time until the case is closed.
        ActionKind::Escalate if !matches!(state, Rejected | Evaluated | Withdrawn) => {
            (&[state], state)
        }
        ActionKind::Escalate => (&[], state),
        // Before the decision only: once decided, the result stands and is delivered.
        ActionKind::Withdraw => (
            &[
                Submitted, Received, Correction, Accepted, Review, Suspended, ReportedUp,
            ],
            Withdrawn,
        ),
        ActionKind::Inform => (&[state], state),
        kind @ complaint_kinds!() => {
            complaints::check(kind, wf)?;
            (&[state], state)
        }
    };
    if from.contains(&state) {
        Ok(to)
    } else {
        Err(moot_reason(kind, case))
    }
}

/// Why an action that was right when its author took it no longer fits the case: what happened
/// concurrently, in the words the history shows.
fn moot_reason(kind: ActionKind, case: &CaseDoc) -> Why {
    let state = case.state().unwrap_or(CaseState::Submitted);
    match (kind, state) {
        (ActionKind::SubmitCorrection, CaseState::Rejected) => {
            "补正材料到达前，县级已作出不予受理。".into()
        }
        (ActionKind::Deliver, CaseState::Delivered | CaseState::Evaluated) => {
            "结果已由他人送达，本次送达未重复记录。".into()
        }
        (ActionKind::Amend, _) => {
            "县级已接收此件，收件信息的修改未生效，请联系县级窗口更正。".into()
        }
        (
            ActionKind::Escalate,
            CaseState::Rejected | CaseState::Evaluated | CaseState::Withdrawn,
        ) => "反映送达前办件已经办结，请向县级督办人员当面反映。".into(),
        (ActionKind::CompleteOnSite, _) => "县级已接收此件，须按县级流程办理。".into(),
        (ActionKind::Withdraw, CaseState::Withdrawn) => "办件已经撤回。".into(),
        (ActionKind::Withdraw, _) => format!(
            "撤回送达前办件已经“{}”，撤回未生效，请联系县级窗口。",
            state.label()
        ),
        _ => format!("办件当时为“{}”，“{}”未生效。", state.label(), kind.label()),
    }
}

/// Applies an effective event's effects to the case (its state is set by the caller).
fn effects(e: &Event, case: &mut CaseDoc) {
    let i = &e.input;
    let wf = &mut case.workflow;
    let day = e.at.get(..10).unwrap_or_default().to_string();
    match e.kind {
        // The previous format kept the intake's data only in the plain fields: they stay as they are.
        ActionKind::Intake if i.legacy => {}
        ActionKind::Intake => {
            for m in &mut case.materials {
                m.collected = i.materials.contains(&m.id);
            }
            if let Some(a) = &i.applicant {
                case.applicant = a.clone();
            }
            case.delivery = i.delivery.clone();
            case.note = i.note.clone();
        }
        ActionKind::Amend => {
            if let Some(a) = &i.applicant {
                case.applicant = a.clone();
            }
            if !i.delivery.is_empty() {
                case.delivery = i.delivery.clone();
            }
        }
        ActionKind::TownshipReceive => wf.township_received_at = e.at.clone(),
        ActionKind::Receive => wf.received_at = e.at.clone(),
        ActionKind::Accept => {
            wf.accepted_on = Some(day);
            wf.urgent = i.urgent || case.item.urgent;
            if wf.dept.is_empty() {
                wf.dept = case.item.department.clone();
            }
            case.deadline = i.deadline.clone();
        }
        ActionKind::Reject => wf.reason = i.reason.clone(),
        ActionKind::RequestCorrection => {
            wf.missing = i.missing.clone();
            wf.requested = i.missing.clone();
            wf.correction_note = i.note.trim().to_string();
            wf.problems = i
                .problems
                .iter()
                .map(|(id, problem)| crate::case::MaterialProblem {
                    id: id.clone(),
                    problem: problem.clone(),
                })
                .collect();
            wf.correction_rounds += 1;
        }
        ActionKind::SubmitCorrection => {
            for m in &mut case.materials {
                if i.materials.contains(&m.id) {
                    m.collected = true;
                }
            }
            wf.missing.retain(|id| !i.materials.contains(id));
        }
        ActionKind::DeptReceive => wf.dept_received_at = e.at.clone(),
        ActionKind::Forward => {
            wf.dept = i.dept.clone();
            wf.dept_received_at.clear();
        }
        ActionKind::Suspend => {
            wf.suspended_since = Some(day);
            wf.reason = i.reason.clone();
        }
        ActionKind::Resume => {
            wf.suspended_since = None;
            wf.suspended_days += i.stopped_days.unwrap_or(0);
            if i.deadline.is_some() {
                case.deadline = i.deadline.clone();
            }
        }
        ActionKind::ReportUp => wf.preliminary_opinion = i.note.clone(),
        ActionKind::AssistOpinion => wf.assist_opinions.push(crate::case::AssistOpinion {
            dept: i.dept.clone(),
            opinion: i.note.clone(),
        }),
        ActionKind::Approve => {
            wf.decision = "approved".into();
            wf.decided_on = day;
            wf.fee_due_fen = i.fee_fen.unwrap_or(0);
        }
        ActionKind::Ask | ActionKind::Answer => questions::apply(e, wf),
        ActionKind::RecordPayment => {
            wf.paid_fen = i.fee_fen.unwrap_or(0);
            wf.paid_on = day;
            wf.pay_method = i.pay_method.clone();
            wf.pay_receipt = i.pay_receipt.clone();
        }
        ActionKind::Deny => {
            wf.decision = "denied".into();
            wf.decided_on = day;
            if !i.reason.is_empty() {
                wf.reason = i.reason.clone();
            }
        }
        ActionKind::IssueResult => {
            wf.result_name = i.result_name.clone();
            wf.result_no = i.result_no.clone();
        }
        ActionKind::CompleteAtWindow | ActionKind::CompleteOnSite => {
            wf.decision = "approved".into();
            wf.decided_on = day;
            wf.result_name = i.result_name.clone();
            wf.result_no = i.result_no.clone();
            wf.completed_on_site = e.kind == ActionKind::CompleteOnSite;
        }
        ActionKind::Evaluate => {
            wf.evaluation = u64::from(i.score.unwrap_or(0));
            wf.evaluation_comment = i.comment.clone();
            wf.evaluation_channel = i.channel.clone();
        }
        complaint_kinds!() => complaints::apply(e, wf, day),
        ActionKind::Escalate => wf.escalations += 1,
        ActionKind::Withdraw => wf.reason = i.reason.clone(),
        ActionKind::Inform => wf.informed_at = e.at.clone(),
        ActionKind::Deliver | ActionKind::Refuse => {}
    }
}

/// What a township may refuse: an event of one of its villages, or one that claims another tier's
/// name (only a village can have sent it, forging it). Never its own, nor another village's. A
/// township that refuses a real county event gets its refusal refused by the hub (`ingress`).
pub fn township_may_refuse(refusal: &Event, target: &Event) -> bool {
    match target.by.tier {
        Tier::Village => target.by.node.starts_with(&refusal.by.node),
        _ => target.by.node != refusal.by.node,
    }
}

/// Which events are refused by an upstream: a `refuse` event by the county (or by a township, see
/// [`township_may_refuse`]) that is not itself refused. A refusal names an event it had seen,
/// so working from the newest back settles refusals of refusals.
fn refused(events: &[&Event], order: &[usize]) -> BTreeMap<String, String> {
    let by_id: BTreeMap<&str, &Event> = events.iter().map(|e| (e.id.as_str(), *e)).collect();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for &ix in order.iter().rev() {
        let r = events[ix];
        if r.kind != ActionKind::Refuse || out.contains_key(&r.id) {
            continue;
        }
        let Some(target) = by_id.get(r.input.target.as_str()) else {
            continue;
        };
        let entitled = match r.by.tier {
            Tier::County => author_role(r).is_some(),
            Tier::Township => author_role(r).is_some() && township_may_refuse(r, target),
            Tier::Village => false,
        };
        if entitled {
            out.entry(target.id.clone())
                .or_insert_with(|| r.input.reason.clone());
        }
    }
    out
}

/// The fold order: causal (parents first), concurrent events by (tier, clock, id). Parents that are
/// not in the set are ignored, and events caught in a cycle (only a forged document has one) follow
/// in the same tie-break order, so the fold always terminates and always agrees.
fn order(events: &[&Event]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.as_str(), i))
        .collect();
    let key = |i: usize| {
        let e = events[i];
        (tier_rank(e.by.tier), e.at.clone(), e.id.clone(), i)
    };
    let mut waiting = vec![0usize; events.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    for (i, e) in events.iter().enumerate() {
        let parents: BTreeSet<usize> = e
            .after
            .iter()
            .filter_map(|p| index.get(p.as_str()).copied())
            .filter(|&p| p != i)
            .collect();
        waiting[i] = parents.len();
        for p in parents {
            children[p].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<(u8, String, String, usize)>> = (0..events.len())
        .filter(|&i| waiting[i] == 0)
        .map(|i| Reverse(key(i)))
        .collect();
    let mut out = Vec::with_capacity(events.len());
    let mut done = vec![false; events.len()];
    loop {
        while let Some(Reverse((_, _, _, i))) = ready.pop() {
            if done[i] {
                continue;
            }
            done[i] = true;
            out.push(i);
            for &c in &children[i] {
                if done[c] || waiting[c] == 0 {
                    // Released from a cycle already.
                    continue;
                }
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    ready.push(Reverse(key(c)));
                }
            }
        }
        // Whatever is left sits in a cycle: release its smallest member and go on.
        match (0..events.len())
            .filter(|&i| !done[i] && waiting[i] > 0)
            .min_by_key(|&i| key(i))
        {
            Some(i) => {
                waiting[i] = 0;
                ready.push(Reverse(key(i)));
            }
            None => break,
        }
    }
    out
}

/// Derives the case from `base` (the document's fixed intake fields) and its events. The intake event
/// is the first of the fold: a case without one keeps its base as it is.
pub fn fold(mut base: CaseDoc, events: &[Event]) -> CaseDoc {
    let mut unique: BTreeMap<&str, &Event> = BTreeMap::new();
    for e in events {
        unique.entry(e.id.as_str()).or_insert(e);
    }
    let events: Vec<&Event> = unique.into_values().collect();
    let order = order(&events);
    let refusals = refused(&events, &order);
    base.state = CaseState::Submitted.as_str().to_string();
    base.deadline = None;
    base.history = Vec::with_capacity(events.len());
    base.workflow = Default::default();
    let mut case = base;
    let mut opened = false;
    for ix in order {
        let e = events[ix];
        let mut entry = HistoryEntry {
            id: e.id.clone(),
            at: e.at.clone(),
            by: e.by.account.clone(),
            by_name: e.by.name.clone(),
            node: e.by.node.clone(),
            action: e.kind.as_str().to_string(),
            note: String::new(),
            state: String::new(),
            effective: false,
            why: String::new(),
            refused: false,
            tier: e.by.tier.as_str().to_string(),
        };
        let verdict = if let Some(reason) = refusals.get(&e.id) {
            entry.refused = true;
            Err(if reason.is_empty() {
                "上级未采纳。".to_string()
            } else {
                reason.clone()
            })
        } else if e.kind == ActionKind::Refuse {
            // A refusal is a record about another event: it stands, and changes no state.
            Ok(None)
        } else if e.kind == ActionKind::Intake {
            if opened {
                Err("办件已经收件。".to_string())
            } else {
                Ok(Some(CaseState::Submitted))
            }
        } else if !opened {
            Err("办件尚未收件。".to_string())
        } else {
            match author_role(e) {
                None => Err("操作人的角色与所在层级不符。".to_string()),
                Some(role) => authorised(e.kind, &role, &case)
                    .and_then(|()| transition(e.kind, &case, &e.input))
                    .map(Some),
            }
        };
        match verdict {
            Ok(next) => {
                entry.note = notes::note_of(e, &case);
                effects(e, &mut case);
                if e.kind == ActionKind::Intake {
                    opened = true;
                }
                if let Some(next) = next {
                    case.state = next.as_str().to_string();
                }
                entry.effective = true;
            }
            Err(why) => {
                entry.note = notes::note_of(e, &case);
                entry.why = why;
            }
        }
        entry.state = case.state.clone();
        case.history.push(entry);
    }
    case
}

#[cfg(test)]
mod tests;
