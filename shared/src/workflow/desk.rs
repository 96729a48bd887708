//! The inputs of what the county desk records beside the approval chain: the fee an approval says
//! is owed, the window's payment record, and 中台 questions and answers.

use crate::case::CaseDoc;
use crate::event::Inputs;
use crate::manual::{parse_yuan, yuan_text};

use super::{invalid, ActionError, ActionInput, ActionKind, Context};

/// Longest 中台 question or answer: a paragraph, not a document.
pub const MAX_QUESTION_CHARS: usize = 500;

/// How a payment may be made at the window.
pub const PAY_METHODS: [&str; 5] = ["现金", "银行卡", "微信", "支付宝", "非税缴款书"];

/// Checks the person's inputs for approve, record_payment, ask and answer and puts what the event
/// records into `out`.
pub(super) fn inputs(
    kind: ActionKind,
    case: &CaseDoc,
    input: &ActionInput,
    ctx: &Context<'_>,
    out: &mut Inputs,
) -> Result<(), ActionError> {
    let wf = &case.workflow;
    match kind {
        ActionKind::Approve => {
            let typed = parse_yuan(&input.fee_yuan).map_err(|e| invalid("fee_yuan", e))?;
            out.fee_fen = match &ctx.item_fee {
                None => None,
                Some(_) if typed > 0 => Some(typed),
                Some(fee) if fee.amount_fen > 0 => Some(fee.amount_fen),
                Some(fee) => {
                    return Err(invalid(
                        "fee_yuan",
                        format!("该事项按规则收费（{}），请填写应缴金额。", fee.rule),
                    ))
                }
            };
        }
        ActionKind::Ask => {
            if out.note.is_empty() || out.note.chars().count() > MAX_QUESTION_CHARS {
                return Err(invalid(
                    "note",
                    format!("请写明要咨询的问题（最多{MAX_QUESTION_CHARS}字）。"),
                ));
            }
            out.dept = case.handling_dept().to_string();
        }
        ActionKind::Answer => {
            let target = input.target.trim();
            if !wf.questions.iter().any(|q| q.id == target && q.is_open()) {
                return Err(invalid("target", "请选择一条尚未答复的咨询。"));
            }
            if out.note.is_empty() || out.note.chars().count() > MAX_QUESTION_CHARS {
                return Err(invalid(
                    "note",
                    format!("请写明答复（最多{MAX_QUESTION_CHARS}字）。"),
                ));
            }
            out.target = target.to_string();
        }
        ActionKind::RecordPayment => {
            let paid = parse_yuan(&input.fee_yuan).map_err(|e| invalid("fee_yuan", e))?;
            if paid != wf.fee_due_fen {
                return Err(invalid(
                    "fee_yuan",
                    format!("实收金额应为应缴的{}。", yuan_text(wf.fee_due_fen)),
                ));
            }
            let method = input.pay_method.trim();
            if !PAY_METHODS.contains(&method) {
                return Err(invalid(
                    "pay_method",
                    format!("缴费方式只能是：{}。", PAY_METHODS.join("、")),
                ));
            }
            let receipt = input.pay_receipt.trim();
            if receipt.is_empty() || receipt.chars().count() > 40 {
                return Err(invalid("pay_receipt", "请填写1到40字的缴费票据号。"));
            }
            out.fee_fen = Some(paid);
            out.pay_method = method.to_string();
            out.pay_receipt = receipt.to_string();
        }
        _ => {}
    }
    Ok(())
}
