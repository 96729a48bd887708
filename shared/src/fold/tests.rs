//! The conflict table of docs/WORKFLOW.md, one test per row: two tiers act on the same case while
//! cut off from each other, then merge; both orders of merging give the same case.

use automerge::AutoCommit;
use chrono::DateTime;

use super::*;
use crate::calendar::Calendar;
use crate::case::read_case;
use crate::case::tests_support::new_doc;
use crate::catalog::Catalog;
use crate::event::read_events;
use crate::workflow::{apply, ActionInput, Actor, Context};

fn act(
    doc: &mut AutoCommit,
    kind: ActionKind,
    role: Role,
    at: &str,
    f: impl FnOnce(&mut ActionInput),
) {
    try_act(doc, kind, role, at, f).unwrap();
}

fn try_act(
    doc: &mut AutoCommit,
    kind: ActionKind,
    role: Role,
    at: &str,
    f: impl FnOnce(&mut ActionInput),
) -> Result<CaseDoc, crate::workflow::ActionError> {
    let mut input = ActionInput::new(kind);
    f(&mut input);
    let (node, tier, stored) = crate::case::tests_support::acting_as(&role);
    let seq = read_events(doc).0.len() as u64;
    let id = crate::legacy::stable_hash(&[node, at, kind.as_str(), &seq.to_string()]);
    apply(
        doc,
        &input,
        &Actor {
            user: "u",
            name: "U",
            role: &stored,
            tier,
            node,
        },
        &role,
        &Context {
            now: DateTime::parse_from_rfc3339(at).unwrap(),
            calendar: &Calendar::builtin().unwrap(),
            departments: vec!["人社".into(), "民政".into()],
            event_id: crate::event::event_id(id),
            rectify_days: 5,
            item_fee: None,
        },
    )
}

/// Forks `doc` into the county's copy and the node's copy, lets each act, merges both ways and
/// checks both copies derive the same case. Returns it.
fn concurrently(
    doc: &AutoCommit,
    county: impl FnOnce(&mut AutoCommit),
    node: impl FnOnce(&mut AutoCommit),
) -> CaseDoc {
    let mut a = doc.clone();
    let mut b = doc.clone();
    a.set_actor(automerge::ActorId::from([1u8; 16].as_slice()));
    b.set_actor(automerge::ActorId::from([2u8; 16].as_slice()));
    county(&mut a);
    node(&mut b);
    let mut ab = a.clone();
    ab.merge(&mut b.clone()).unwrap();
    let mut ba = b.clone();
    ba.merge(&mut a.clone()).unwrap();
    let x = read_case(&ab).unwrap();
    let y = read_case(&ba).unwrap();
    assert_eq!(x, y, "the two merge orders derive different cases");
    x
}

fn entry<'a>(c: &'a CaseDoc, kind: ActionKind, node: &str) -> &'a HistoryEntry {
    c.history
        .iter()
        .find(|h| h.action == kind.as_str() && h.node == node)
        .unwrap_or_else(|| panic!("no {kind} by {node} in {:#?}", c.history))
}

const T1: &str = "2026-09-01T10:00:00+08:00";
const T2: &str = "2026-09-01T11:00:00+08:00";
const VILLAGE: &str = "420222103201";

fn received() -> AutoCommit {
    let (mut doc, _) = new_doc();
    act(&mut doc, ActionKind::Receive, Role::Window, T1, |_| {});
    doc
}

fn result_ready(dept: &str) -> AutoCommit {
    let mut doc = received();
    act(&mut doc, ActionKind::Accept, Role::Window, T1, |_| {});
    let d = Role::Dept(dept.to_string());
    act(&mut doc, ActionKind::Approve, d.clone(), T1, |_| {});
    act(&mut doc, ActionKind::IssueResult, d, T1, |i| {
        i.result_name = "证".into();
        i.result_no = "1".into();
    });
    doc
}

#[test]
fn receive_and_an_offline_escalation_both_stand() {
    let (doc, _) = new_doc();
    let c = concurrently(
        &doc,
        |a| act(a, ActionKind::Receive, Role::Window, T1, |_| {}),
        |b| {
            act(b, ActionKind::Escalate, Role::Agent, T2, |i| {
                i.reason = "等太久".into()
            })
        },
    );
    assert_eq!(c.state(), Some(CaseState::Received));
    assert_eq!(c.workflow.escalations, 1);
    assert!(c.history.iter().all(|h| h.effective), "{:#?}", c.history);
    assert_eq!(c.history.len(), 3);
}

#[test]
fn a_correction_that_crosses_a_rejection_does_not_reopen_the_case() {
    let mut doc = received();
    let (_, case) = new_doc();
    let m = case.materials[0].id.clone();
    act(
        &mut doc,
        ActionKind::RequestCorrection,
        Role::Window,
        T1,
        |i| i.missing = vec![m.clone()],
    );
    let c = concurrently(
        &doc,
        |a| {
            act(a, ActionKind::Reject, Role::Window, T2, |i| {
                i.reason = "逾期未补正".into()
            })
        },
        |b| {
            act(b, ActionKind::SubmitCorrection, Role::Agent, T2, |i| {
                i.materials = vec![m.clone()]
            })
        },
    );
    assert_eq!(c.state(), Some(CaseState::Rejected));
    let corr = entry(&c, ActionKind::SubmitCorrection, VILLAGE);
    assert!(!corr.effective);
    assert!(corr.why.contains("不予受理"), "{}", corr.why);
}

#[test]
fn two_deliveries_count_once() {
    let (_, case) = new_doc();
    let doc = result_ready(&case.item.department);
    let c = concurrently(
        &doc,
        |a| act(a, ActionKind::Deliver, Role::Window, T2, |_| {}),
        |b| act(b, ActionKind::Deliver, Role::Agent, T2, |_| {}),
    );
    assert_eq!(c.state(), Some(CaseState::Delivered));
    assert!(entry(&c, ActionKind::Deliver, "420222").effective);
    let agent = entry(&c, ActionKind::Deliver, VILLAGE);
    assert!(
        !agent.effective && agent.why.contains("已由他人送达"),
        "{agent:?}"
    );
}

#[test]
fn a_townships_receipt_concurrent_with_the_countys_is_kept_as_a_record() {
    let (doc, _) = new_doc();
    let c = concurrently(
        &doc,
        |a| act(a, ActionKind::Receive, Role::Window, T2, |_| {}),
        |b| act(b, ActionKind::TownshipReceive, Role::Township, T1, |_| {}),
    );
    assert_eq!(c.state(), Some(CaseState::Received));
    assert!(c.history.iter().all(|h| h.effective), "{:#?}", c.history);
    assert!(!c.workflow.township_received_at.is_empty());
}

#[test]
fn an_amendment_the_countys_receipt_did_not_see_does_not_take_effect() {
    let (doc, case) = new_doc();
    let c = concurrently(
        &doc,
        |a| act(a, ActionKind::Receive, Role::Window, T2, |_| {}),
        |b| {
            act(b, ActionKind::Amend, Role::Agent, T1, |i| {
                i.phone = "13900001111".into()
            })
        },
    );
    assert_eq!(c.state(), Some(CaseState::Received));
    assert_eq!(c.applicant.phone, case.applicant.phone);
    assert!(!entry(&c, ActionKind::Amend, VILLAGE).effective);
    // Before any receipt the amendment is the agent's to make.
    let mut early = doc.clone();
    act(&mut early, ActionKind::Amend, Role::Agent, T1, |i| {
        i.phone = "13900001111".into()
    });
    assert_eq!(read_case(&early).unwrap().applicant.phone, "13900001111");
}

#[test]
fn an_escalation_that_arrives_after_the_case_closed_is_kept_but_moot() {
    let doc = received();
    let c = concurrently(
        &doc,
        |a| {
            act(a, ActionKind::Reject, Role::Window, T2, |i| {
                i.reason = "不属于本县".into()
            })
        },
        |b| {
            act(b, ActionKind::Escalate, Role::Agent, T2, |i| {
                i.reason = "没人管".into()
            })
        },
    );
    assert_eq!(c.state(), Some(CaseState::Rejected));
    assert_eq!(c.workflow.escalations, 0);
    let e = entry(&c, ActionKind::Escalate, VILLAGE);
    assert!(!e.effective && e.why.contains("已经办结"), "{e:?}");
}

#[test]
fn two_evaluations_count_once_the_countys_first() {
    let (_, case) = new_doc();
    let mut doc = result_ready(&case.item.department);
    act(&mut doc, ActionKind::Deliver, Role::Window, T1, |_| {});
    let c = concurrently(
        &doc,
        |a| {
            act(a, ActionKind::Evaluate, Role::Window, T2, |i| {
                i.score = Some(4)
            })
        },
        |b| {
            act(b, ActionKind::Evaluate, Role::Agent, T2, |i| {
                i.score = Some(1);
                i.comment = "等了太久".into();
            })
        },
    );
    assert_eq!(c.workflow.evaluation, 4);
    assert!(!entry(&c, ActionKind::Evaluate, VILLAGE).effective);
}

#[test]
fn a_suspension_and_an_escalation_both_stand() {
    let (_, case) = new_doc();
    let mut doc = received();
    act(&mut doc, ActionKind::Accept, Role::Window, T1, |_| {});
    let dept = Role::Dept(case.item.department.clone());
    let c = concurrently(
        &doc,
        |a| {
            act(a, ActionKind::Suspend, dept.clone(), T2, |i| {
                i.reason = "专家评审".into()
            })
        },
        |b| {
            act(b, ActionKind::Escalate, Role::Agent, T2, |i| {
                i.reason = "慢".into()
            })
        },
    );
    assert_eq!(c.state(), Some(CaseState::Suspended));
    assert_eq!(c.workflow.escalations, 1);
}

#[test]
fn a_completion_on_site_is_only_for_items_the_catalogue_authorises() {
    let catalog = Catalog::builtin().unwrap();
    let promised = read_case(&new_doc().0).unwrap();
    assert!(!promised.item.village_completable());
    let mut doc = new_doc().0;
    let err = try_act(
        &mut doc,
        ActionKind::CompleteOnSite,
        Role::Agent,
        T1,
        |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, crate::workflow::ActionError::Forbidden(_)),
        "{err:?}"
    );
    assert!(catalog.items.iter().any(|i| i.village == "办结"));
}

#[test]
fn the_fold_does_not_depend_on_the_order_events_are_listed_in() {
    let (_, case) = new_doc();
    let mut doc = result_ready(&case.item.department);
    act(&mut doc, ActionKind::Escalate, Role::Agent, T2, |i| {
        i.reason = "慢".into()
    });
    let (base, mut events) = crate::case::read_parts(&doc).unwrap();
    let straight = fold(base.clone(), &events);
    events.reverse();
    assert_eq!(fold(base.clone(), &events), straight);
    events.swap(0, 2);
    assert_eq!(fold(base, &events), straight);
}

#[test]
fn a_forged_cycle_of_parents_still_folds() {
    let (doc, _) = new_doc();
    let (base, mut events) = crate::case::read_parts(&doc).unwrap();
    let mut a = events[0].clone();
    a.id = "a".into();
    a.kind = ActionKind::Escalate;
    a.after = vec!["b".into()];
    let mut b = a.clone();
    b.id = "b".into();
    b.after = vec!["a".into()];
    events.push(a);
    events.push(b);
    let c = fold(base, &events);
    assert_eq!(c.history.len(), 3);
}

#[test]
fn a_withdrawal_at_the_village_crossing_an_acceptance_stands_and_closes_the_case() {
    let doc = received();
    let c = concurrently(
        &doc,
        |a| act(a, ActionKind::Accept, Role::Window, T2, |_| {}),
        |b| {
            act(b, ActionKind::Withdraw, Role::Agent, T2, |i| {
                i.reason = "申请人已在外地办理".into()
            })
        },
    );
    // Before the decision the applicant may always withdraw: folded after the acceptance it
    // closes the accepted case; folded before it, the acceptance finds the case closed.
    let withdraw = entry(&c, ActionKind::Withdraw, VILLAGE);
    assert!(withdraw.effective, "{:#?}", c.history);
    assert_eq!(c.state(), Some(CaseState::Withdrawn));
    let accept = entry(&c, ActionKind::Accept, "420222");
    assert!(accept.effective || !accept.why.is_empty());
}

#[test]
fn two_supervisors_opening_the_same_rectification_offline_open_it_once() {
    let (_, case) = new_doc();
    let mut doc = result_ready(&case.item.department);
    act(&mut doc, ActionKind::Deliver, Role::Window, T1, |_| {});
    act(&mut doc, ActionKind::Evaluate, Role::Agent, T1, |i| {
        i.score = Some(1);
        i.comment = "跑了三趟".into();
    });
    let c = concurrently(
        &doc,
        |a| {
            act(a, ActionKind::Supervise, Role::Supervisor, T2, |i| {
                i.dept = "人社".into()
            })
        },
        |b| {
            // A minute later: the test's event ids come from the author, time and kind.
            act(
                b,
                ActionKind::Supervise,
                Role::Supervisor,
                "2026-09-01T11:01:00+08:00",
                |i| i.dept = "民政".into(),
            )
        },
    );
    let opened: Vec<_> = c
        .history
        .iter()
        .filter(|h| h.action == "supervise")
        .collect();
    assert_eq!(opened.len(), 2);
    assert_eq!(opened.iter().filter(|h| h.effective).count(), 1);
    assert_eq!(c.workflow.rectification.state, "open");
    assert!(["人社", "民政"].contains(&c.workflow.rectification.owner.as_str()));
}

#[test]
fn a_bad_review_needs_its_reason_and_the_applicant_may_give_it_at_the_county() {
    let (_, case) = new_doc();
    let mut doc = result_ready(&case.item.department);
    act(&mut doc, ActionKind::Deliver, Role::Window, T1, |_| {});
    let refused = try_act(&mut doc, ActionKind::Evaluate, Role::Applicant, T2, |i| {
        i.score = Some(2)
    });
    assert!(refused.is_err());
    let c = try_act(&mut doc, ActionKind::Evaluate, Role::Applicant, T2, |i| {
        i.score = Some(2);
        i.comment = "窗口态度不好".into();
        i.channel = "applicant_online".into();
    })
    .unwrap();
    assert_eq!(c.workflow.evaluation, 2);
    assert_eq!(c.workflow.evaluation_channel, "applicant_online");
}
