//! The history line of each event as people read it (`HistoryEntry::note`): what was done, in the
//! words of the tier that did it, never with personal data (history is shown to accounts that see
//! the applicant masked).

use crate::action::ActionKind;
use crate::case::CaseDoc;
use crate::event::Event;
use crate::workflow::EVALUATION_LEVELS;
use crate::Tier;

use super::complaints;

/// The history text of an effective event (what the old list stored as `note`).
pub(super) fn note_of(e: &Event, case: &CaseDoc) -> String {
    let i = &e.input;
    if i.legacy {
        return i.note.clone();
    }
    let note = i.note.trim();
    let names = |ids: &[String]| -> String {
        case.materials
            .iter()
            .filter(|m| ids.contains(&m.id))
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join("、")
    };
    let text = match e.kind {
        ActionKind::Intake => format!(
            "{}收件，收取材料{}件",
            if e.by.tier == Tier::County {
                "窗口"
            } else {
                "代办员"
            },
            i.materials.len()
        ),
        // What changed, by name only: history is read by people who see personal data masked.
        ActionKind::Amend => {
            let mut changed = Vec::new();
            if let Some(a) = &i.applicant {
                if a.phone != case.applicant.phone {
                    changed.push("手机号码".to_string());
                }
                if a.address != case.applicant.address {
                    changed.push("地址".to_string());
                }
            }
            if !i.delivery.is_empty() && i.delivery != case.delivery {
                changed.push(format!("送达方式（改为{}）", i.delivery));
            }
            format!("更正{}。{note}", changed.join("、"))
        }
        ActionKind::Reject | ActionKind::Suspend => i.reason.clone(),
        ActionKind::Deny => format!("{}。{note}", i.reason),
        ActionKind::RequestCorrection => format!("需补正：{}。{note}", names(&i.missing)),
        ActionKind::Forward => format!("转交{}。{note}", i.dept),
        ActionKind::AssistOpinion => format!("{}协办意见：{note}", i.dept),
        ActionKind::ReportUp => format!("初审意见：{note}"),
        ActionKind::Evaluate => {
            let level = i
                .score
                .and_then(|s| EVALUATION_LEVELS.get(usize::from(s).wrapping_sub(1)))
                .copied()
                .unwrap_or("");
            format!("{level}。{}", i.comment)
        }
        ActionKind::Escalate => format!("办不成事反映：{}", i.reason),
        ActionKind::Withdraw => format!("申请人申请撤回：{}", i.reason),
        complaint_kinds!() => complaints::note(e, note),
        ActionKind::Refuse => i.reason.clone(),
        ActionKind::Approve => match i.fee_fen {
            Some(fen) if fen > 0 => {
                format!(
                    "应缴{}，待申请人缴费。{note}",
                    crate::manual::yuan_text(fen)
                )
            }
            _ => note.to_string(),
        },
        ActionKind::Ask => format!("向{}中台咨询：{note}", i.dept),
        ActionKind::Answer => format!("中台答复：{note}"),
        ActionKind::RecordPayment => format!(
            "实收{}（{}，票据号{}）",
            crate::manual::yuan_text(i.fee_fen.unwrap_or(0)),
            i.pay_method,
            i.pay_receipt
        ),
        ActionKind::CompleteOnSite | ActionKind::CompleteAtWindow => {
            format!("当场办结：{}。{note}", i.result_name)
        }
        _ => note.to_string(),
    };
    text.trim().trim_end_matches('。').trim().to_string()
}
