//! The whole life of a case through `apply`, and the rules it enforces.

use super::*;
use crate::case::tests_support::{new_doc, ACCEPT_NOW};
use crate::case::CaseState;
use crate::catalog::Catalog;

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
    let (node, tier, account_role) = crate::case::tests_support::acting_as(role);
    let n = crate::event::read_events(doc).0.len() as u64;
    apply(
        doc,
        &input,
        &Actor {
            user: "u",
            name: "U",
            role: &account_role,
            tier,
            node,
        },
        role,
        &Context {
            now: at(now),
            calendar: &cal(),
            departments: Catalog::builtin()
                .unwrap()
                .departments()
                .into_iter()
                .map(String::from)
                .collect(),
            event_id: crate::event::event_id(0xa000 + n * 7 + now.len() as u64),
            rectify_days: 5,
        },
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
fn an_assisting_department_is_offered_its_opinion_until_it_has_given_it() {
    let (mut doc, case) =
        crate::case::tests_support::new_doc_where(|i| i.kind == crate::catalog::ItemKind::Joint);
    let w = Role::Window;
    act(&mut doc, "receive", &w, ACCEPT_NOW, |_| {}).unwrap();
    let c = act(&mut doc, "accept", &w, ACCEPT_NOW, |_| {}).unwrap();
    let assisting = Role::Dept(case.item.assist_departments[0].clone());
    assert!(available(&c, &assisting).contains(&ActionKind::AssistOpinion));
    let c = act(&mut doc, "assist_opinion", &assisting, ACCEPT_NOW, |i| {
        i.note = "同意".into()
    })
    .unwrap();
    assert!(!available(&c, &assisting).contains(&ActionKind::AssistOpinion));
}
