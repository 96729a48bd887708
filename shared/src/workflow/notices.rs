//! The texts the county sends applicants (the hub's outbox), one per action that warrants one.

use crate::case::CaseDoc;
use crate::manual::yuan_text;

use super::ActionKind;

/// The text the county sends the applicant after `action` (the hub queues it): at acceptance with the
/// promised date, a correction request with what is missing, a rejection or a denial with the reason,
/// and a result ready with where to collect it. `hall` is where results are collected at the county
/// (the county's settings); `None` for actions the applicant is not told of by text.
pub fn applicant_notice(
    action: ActionKind,
    case: &CaseDoc,
    hall: &str,
) -> Option<(&'static str, String)> {
    let head = format!("【通办】您的办件{}（{}）", case.case_no, case.item.name);
    match action {
        ActionKind::Accept => Some((
            "accepted",
            format!(
                "{head}已受理，承诺于{}前办结。",
                case.deadline.as_deref().unwrap_or("（以受理通知书为准）")
            ),
        )),
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
                    "{head}需补充材料：{}。请交给代办员{}。",
                    missing.join("、"),
                    case.agent.name
                ),
            ))
        }
        ActionKind::Reject => Some((
            "rejected",
            format!(
                "{head}不予受理，理由：{}。可凭不予受理通知书申请行政复议或提起行政诉讼。",
                case.workflow.reason
            ),
        )),
        ActionKind::Deny => Some((
            "denied",
            format!("{head}经审查不予许可，理由：{}。", case.workflow.reason),
        )),
        // 缴费通知: approved with a fee; the result is issued once the window records the payment.
        ActionKind::Approve if case.awaiting_payment() => {
            let place = if hall.is_empty() {
                "县政务服务中心收费窗口".to_string()
            } else {
                hall.to_string()
            };
            Some((
                "fee_due",
                format!(
                    "{head}已审批通过，需缴费{}。请持受理凭证到{place}缴费（现金、银行卡、微信、支付宝均可），缴费后为您出具结果。",
                    yuan_text(case.workflow.fee_due_fen)
                ),
            ))
        }
        ActionKind::IssueResult => {
            let place = match case.delivery.as_str() {
                "窗口领取" if !hall.is_empty() => format!("请到{hall}领取"),
                "窗口领取" => "请到县政务服务中心统一出件窗口领取".to_string(),
                "邮寄" => "将邮寄给您".to_string(),
                _ => format!("代办员{}将送达给您", case.agent.name),
            };
            Some(("result_ready", format!("{head}已办结，{place}。")))
        }
        _ => None,
    }
}
