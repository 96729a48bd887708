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
    act_with_fee(doc, action, role, now, None, f)
}

/// [`act`] with the item's fee in the county's catalogue.
fn act_with_fee(
    doc: &mut AutoCommit,
    action: &str,
    role: &Role,
    now: &str,
    item_fee: Option<crate::manual::Fee>,
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
            item_fee,
        },
    )
}

#[test]
fn an_approved_case_with_a_fee_waits_for_the_payment_before_its_result() {
    let (mut doc, case) = new_doc();
    let dept = Role::Dept(case.item.department.clone());
    let w = Role::Window;
    let fee = crate::manual::Fee {
        amount_fen: 2000,
        rule: "工本费".into(),
        basis: "收费文件".into(),
    };
    let fixed = || Some(fee.clone());
    act(&mut doc, "receive", &w, ACCEPT_NOW, |_| {}).unwrap();
    act(&mut doc, "accept", &w, ACCEPT_NOW, |_| {}).unwrap();
    act(&mut doc, "dept_receive", &dept, ACCEPT_NOW, |_| {}).unwrap();
    // Nothing to pay before the decision.
    let early = act(&mut doc, "record_payment", &w, ACCEPT_NOW, |i| {
        i.fee_yuan = "20".into();
        i.pay_method = "现金".into();
        i.pay_receipt = "NO-1".into();
    });
    assert!(early.is_err(), "{early:?}");
    let c = act_with_fee(&mut doc, "approve", &dept, ACCEPT_NOW, fixed(), |_| {}).unwrap();
    assert_eq!(c.workflow.fee_due_fen, 2000);
    assert!(c.awaiting_payment());
    assert_eq!(
        c.state_label_at(crate::Tier::County),
        "已决定准予，待申请人缴费"
    );
    let (kind, text) = applicant_notice(ActionKind::Approve, &c, "县政务服务中心").unwrap();
    assert_eq!(kind, "fee_due");
    assert!(text.contains("需缴费20.00元"), "{text}");

    let refused = act(&mut doc, "issue_result", &dept, ACCEPT_NOW, |i| {
        i.result_name = "证".into();
        i.result_no = "1".into();
    });
    assert!(
        matches!(&refused, Err(ActionError::WrongState { why, .. }) if why.contains("尚未缴费")),
        "{refused:?}"
    );
    for (amount, method, receipt, field) in [
        ("19.99", "现金", "NO-1", "fee_yuan"),
        ("20", "赊账", "NO-1", "pay_method"),
        ("20", "现金", "", "pay_receipt"),
    ] {
        let wrong = act(&mut doc, "record_payment", &w, ACCEPT_NOW, |i| {
            i.fee_yuan = amount.into();
            i.pay_method = method.into();
            i.pay_receipt = receipt.into();
        });
        assert!(
            matches!(&wrong, Err(ActionError::Invalid(e)) if e.field == field),
            "{wrong:?}"
        );
    }
    assert!(
        act(&mut doc, "record_payment", &dept, ACCEPT_NOW, |i| {
            i.fee_yuan = "20".into();
            i.pay_method = "现金".into();
            i.pay_receipt = "NO-1".into();
        })
        .is_err(),
        "a department does not take money"
    );
    let c = act(&mut doc, "record_payment", &w, ACCEPT_NOW, |i| {
        i.fee_yuan = "20.00".into();
        i.pay_method = "微信".into();
        i.pay_receipt = "FS-2026-0001".into();
    })
    .unwrap();
    assert!(!c.awaiting_payment());
    assert_eq!(
        (c.workflow.paid_fen, c.workflow.pay_method.as_str()),
        (2000, "微信")
    );
    assert!(c.summary().paid_on.len() == 10 && !c.summary().awaiting_payment());
    let again = act(&mut doc, "record_payment", &w, ACCEPT_NOW, |i| {
        i.fee_yuan = "20".into();
        i.pay_method = "现金".into();
        i.pay_receipt = "NO-2".into();
    });
    assert!(again.is_err(), "paid once");
    let c = act(&mut doc, "issue_result", &dept, ACCEPT_NOW, |i| {
        i.result_name = "证".into();
        i.result_no = "1".into();
    })
    .unwrap();
    assert_eq!(c.state(), Some(CaseState::ResultReady));
}

#[test]
fn a_fee_set_by_a_rule_is_typed_by_the_approver_and_a_free_item_owes_nothing() {
    let (mut doc, case) = new_doc();
    let dept = Role::Dept(case.item.department.clone());
    let w = Role::Window;
    act(&mut doc, "receive", &w, ACCEPT_NOW, |_| {}).unwrap();
    act(&mut doc, "accept", &w, ACCEPT_NOW, |_| {}).unwrap();
    let rule = || {
        Some(crate::manual::Fee {
            amount_fen: 0,
            rule: "按面积收取".into(),
            basis: "收费文件".into(),
        })
    };
    let missing = act_with_fee(&mut doc, "approve", &dept, ACCEPT_NOW, rule(), |_| {});
    assert!(
        matches!(&missing, Err(ActionError::Invalid(e)) if e.field == "fee_yuan"),
        "{missing:?}"
    );
    let c = act_with_fee(&mut doc, "approve", &dept, ACCEPT_NOW, rule(), |i| {
        i.fee_yuan = "35.5".into()
    })
    .unwrap();
    assert_eq!(c.workflow.fee_due_fen, 3550);

    let (mut free, _) = new_doc();
    act(&mut free, "receive", &w, ACCEPT_NOW, |_| {}).unwrap();
    act(&mut free, "accept", &w, ACCEPT_NOW, |_| {}).unwrap();
    let c = act(&mut free, "approve", &dept, ACCEPT_NOW, |_| {}).unwrap();
    assert!(!c.awaiting_payment() && c.workflow.fee_due_fen == 0);
    assert!(applicant_notice(ActionKind::Approve, &c, "").is_none());
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

#[test]
fn a_question_asked_at_the_village_is_answered_once_by_the_department_asked() {
    let (mut doc, case) = new_doc();
    let dept = Role::Dept(case.item.department.clone());
    let empty = act(&mut doc, "ask", &Role::Agent, ACCEPT_NOW, |_| {});
    assert!(matches!(&empty, Err(ActionError::Invalid(e)) if e.field == "note"));
    let c = act(&mut doc, "ask", &Role::Agent, ACCEPT_NOW, |i| {
        i.note = "申请人户籍在外县，能否在本县申请？".into()
    })
    .unwrap();
    assert_eq!(
        c.state(),
        Some(CaseState::Submitted),
        "a question changes no state"
    );
    let q = c.workflow.questions[0].clone();
    assert_eq!(q.dept, case.item.department);
    assert!(q.is_open());
    assert_eq!(
        c.summary().questions_open,
        vec![case.item.department.clone()]
    );
    assert!(available(&c, &dept).contains(&ActionKind::Answer));
    assert!(!available(&c, &Role::Dept("别的部门".into())).contains(&ActionKind::Answer));
    assert!(!available(&c, &Role::Agent).contains(&ActionKind::Answer));

    let other = act(
        &mut doc,
        "answer",
        &Role::Dept("别的部门".into()),
        ACCEPT_NOW,
        |i| {
            i.target = q.id.clone();
            i.note = "可以".into();
        },
    );
    assert!(matches!(other, Err(ActionError::Forbidden(_))), "{other:?}");
    let c = act(
        &mut doc,
        "answer",
        &dept,
        "2026-09-29T11:30:00+08:00",
        |i| {
            i.target = q.id.clone();
            i.note = "可以，凭居住证在本县申请。".into();
        },
    )
    .unwrap();
    let answered = &c.workflow.questions[0];
    assert_eq!(answered.answer, "可以，凭居住证在本县申请。");
    let summary = c.summary();
    assert!(summary.questions_open.is_empty());
    assert_eq!(summary.answered, 1);
    assert_eq!(Some(summary.answer_minutes), answered.response_minutes());
    // The village passes the answer on: a reply to tell.
    let todo = crate::todo::todo_of(&c).unwrap();
    assert_eq!(todo.kind, crate::todo::TodoKind::Reply);
    let again = act(&mut doc, "answer", &dept, ACCEPT_NOW, |i| {
        i.target = q.id.clone();
        i.note = "再答一次".into();
    });
    assert!(again.is_err(), "answered once");
}
