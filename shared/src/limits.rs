//! How big what people and peers write may be: the length of every text an action carries, and the
//! size budget of a whole case document.
//!
//! Without them one case could grow without end (seven escalations with 900 KB reasons made a case
//! larger than a sync frame, and from then on every session of its village failed). The same limits
//! hold where a person types (the action is refused with the field and a Chinese sentence) and where a
//! peer's event arrives (the event is refused by itself, see [`crate::ingress`]). CONTRACT lists them.

use crate::event::Inputs;
use crate::workflow::ActionInput;
use crate::FieldError;

/// Longest text of each field an action carries, in characters, with the label people know it by.
pub const TEXT_LIMITS: [(&str, &str, usize); 11] = [
    ("note", "备注", 500),
    ("reason", "理由", 500),
    ("comment", "评价意见", 500),
    ("dept", "部门", 50),
    ("result_name", "结果名称", 100),
    ("result_no", "结果文号", 64),
    ("phone", "联系电话", 20),
    ("address", "地址", 200),
    ("delivery", "送达方式", 20),
    ("problems", "材料问题说明", 200),
    ("channel", "评价渠道", 32),
];

/// Most material ids one action may name (a checklist has a few dozen at most), and the longest id.
pub const MAX_LISTED_MATERIALS: usize = 64;
pub const MAX_MATERIAL_ID: usize = 64;

/// Size budget of one case document as stored and sent (automerge's saved form). A case with a few
/// dozen events is 5–20 KB; the budget leaves room for hundreds. It is also what keeps every stored
/// value well below the size at which sled writes a value to a separate blob file (128 KiB with its
/// default 512 KiB segments), which `Store::sync` would not fsync, and every document far below
/// the sync frame limit.
pub const MAX_CASE_BYTES: usize = 96 * 1024;

fn limit_of(field: &str) -> (&'static str, usize) {
    TEXT_LIMITS
        .iter()
        .find(|(f, ..)| *f == field)
        .map_or(("内容", 500), |(_, label, max)| (*label, *max))
}

fn check_text(field: &'static str, text: &str) -> Result<(), FieldError> {
    let (label, max) = limit_of(field);
    let n = text.chars().count();
    if n > max {
        return Err(FieldError::new(
            field,
            format!("“{label}”最多{max}个字，现在有{n}个字，请删减后再提交。"),
        ));
    }
    Ok(())
}

fn check_ids(field: &'static str, ids: &[String]) -> Result<(), FieldError> {
    if ids.len() > MAX_LISTED_MATERIALS || ids.iter().any(|m| m.chars().count() > MAX_MATERIAL_ID) {
        return Err(FieldError::new(field, "所列材料超出了清单的范围。"));
    }
    Ok(())
}

fn check_all(
    texts: &[(&'static str, &str)],
    missing: &[String],
    materials: &[String],
    problems: &std::collections::BTreeMap<String, String>,
) -> Result<(), FieldError> {
    for (field, text) in texts {
        check_text(field, text)?;
    }
    for problem in problems.values() {
        check_text("problems", problem)?;
    }
    let ids: Vec<String> = problems.keys().cloned().collect();
    check_ids("problems", &ids)?;
    check_ids("missing", missing)?;
    check_ids("materials", materials)
}

/// The texts of an action as a person or a script submitted it.
pub fn check_action(input: &ActionInput) -> Result<(), FieldError> {
    let texts = [
        ("note", input.note.as_str()),
        ("reason", &input.reason),
        ("comment", &input.comment),
        ("dept", &input.dept),
        ("result_name", &input.result_name),
        ("result_no", &input.result_no),
        ("phone", &input.phone),
        ("address", &input.address),
        ("delivery", &input.delivery),
        ("channel", &input.channel),
    ];
    check_all(&texts, &input.missing, &input.materials, &input.problems)
}

/// The texts of an event as a peer wrote it: the same limits (an honest node never writes more).
pub fn check_event_inputs(input: &Inputs) -> Result<(), FieldError> {
    let (phone, address) = input
        .applicant
        .as_ref()
        .map_or(("", ""), |a| (a.phone.as_str(), a.address.as_str()));
    let texts = [
        ("note", input.note.as_str()),
        ("reason", &input.reason),
        ("comment", &input.comment),
        ("dept", &input.dept),
        ("result_name", &input.result_name),
        ("result_no", &input.result_no),
        ("phone", phone),
        ("address", address),
        ("delivery", &input.delivery),
        ("channel", &input.channel),
    ];
    check_all(&texts, &input.missing, &input.materials, &input.problems)
}

/// A case document of `bytes` (saved form) within the budget, or why not.
pub fn check_case_size(bytes: usize) -> Result<(), String> {
    if bytes > MAX_CASE_BYTES {
        return Err(format!(
            "办件记录达到{}KB，超过每件{}KB的上限",
            bytes.div_ceil(1024),
            MAX_CASE_BYTES / 1024
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::ActionKind;

    #[test]
    fn every_text_of_an_action_is_bounded() {
        let mut input = ActionInput::new(ActionKind::Escalate);
        input.reason = "办".repeat(500);
        assert!(check_action(&input).is_ok());
        input.reason.push('事');
        let e = check_action(&input).unwrap_err();
        assert_eq!(e.field, "reason");
        assert!(
            e.message.contains("最多500个字，现在有501个字"),
            "{}",
            e.message
        );
        let mut input = ActionInput::new(ActionKind::IssueResult);
        input.result_no = "x".repeat(65);
        assert_eq!(check_action(&input).unwrap_err().field, "result_no");
        let mut input = ActionInput::new(ActionKind::SubmitCorrection);
        input.materials = vec!["m".into(); MAX_LISTED_MATERIALS + 1];
        assert_eq!(check_action(&input).unwrap_err().field, "materials");
    }

    #[test]
    fn event_inputs_have_the_same_limits() {
        let input = Inputs {
            comment: "差".repeat(501),
            ..Default::default()
        };
        assert_eq!(check_event_inputs(&input).unwrap_err().field, "comment");
        assert!(check_event_inputs(&Inputs::default()).is_ok());
    }

    #[test]
    fn the_case_budget() {
        assert!(check_case_size(MAX_CASE_BYTES).is_ok());
        let why = check_case_size(MAX_CASE_BYTES + 1).unwrap_err();
        assert!(why.contains("上限"), "{why}");
    }
}
