//! The actions a case page offers: which the account may take now (`workflow::available`), how
//! each is presented (group, fields, button style, one-line hint, whether it asks for a
//! confirmation), in groups a person reads top to bottom. `case.rs` renders them and checks the
//! confirmation again when a form comes back.

use tongban_shared::case::CaseDoc;
use tongban_shared::workflow::{self, ActionKind, Role};

/// One action the logged-in account may take on the case now, with the inputs it needs and how
/// the page presents it.
pub(crate) struct ActionForm {
    pub(crate) action: &'static str,
    pub(crate) label: &'static str,
    /// Which inputs to show: "note", "reason", "correction", "materials", "dept", "result",
    /// "result_name", "opinion", "accept", "score", "amend", "withdraw", "supervise", "callback",
    /// "rectify", "close", "appeal", "review_appeal", "inform".
    pub(crate) input: &'static str,
    /// `btn-primary` (moves the case on), `btn-warn` (sends it back or aside), `btn-danger`
    /// (ends it), `btn` (a side record).
    pub(crate) class: &'static str,
    /// What the action does, in one sentence above its fields.
    pub(crate) hint: &'static str,
    /// Irreversible: the form asks the person to confirm first (checked again on the server).
    pub(crate) confirm: bool,
    /// For "materials" / "correction": (id, name, checked).
    pub(crate) materials: Vec<(String, String, bool)>,
    /// For "dept" / "supervise": the departments of the catalogue (other than the handling one
    /// for a forward).
    pub(crate) depts: Vec<String>,
}

/// The page's groups of actions, in the order a person reads them: what moves the case on first,
/// what ends it last; the complaint path in its own group.
const GROUPS: [&str; 7] = [
    "办理",
    "向中台咨询与答复",
    "补正",
    "告知与更正",
    "结束办件",
    "督办整改操作",
    "其他",
];

pub(crate) struct ActionGroup {
    pub(crate) title: &'static str,
    pub(crate) forms: Vec<ActionForm>,
}

/// How the page presents `action`: (group, input kind, button class, hint, confirm).
fn presentation(
    action: ActionKind,
) -> (&'static str, &'static str, &'static str, &'static str, bool) {
    use ActionKind as A;
    match action {
        A::Receive => (
            "办理",
            "note",
            "btn-primary",
            "纸质材料已到窗口：接收后开始计算流转时间。",
            false,
        ),
        A::TownshipReceive => (
            "办理",
            "note",
            "btn-primary",
            "乡镇收到村里报来的纸质材料，转报县级。",
            false,
        ),
        A::Accept => (
            "办理",
            "accept",
            "btn-primary",
            "材料齐全、符合法定形式：受理后开始计算承诺时限。",
            false,
        ),
        A::DeptReceive => (
            "办理",
            "note",
            "btn-primary",
            "部门收到纸质材料，签收后开始审查。",
            false,
        ),
        A::Forward => (
            "办理",
            "dept",
            "btn-warn",
            "本部门不负责此事项时，转给负责的部门。",
            false,
        ),
        A::Suspend => (
            "办理",
            "reason",
            "btn-warn",
            "听证、检验、专家评审等特别程序期间暂停计时。",
            false,
        ),
        A::Resume => (
            "办理",
            "note",
            "btn-primary",
            "特别程序结束，恢复计时。",
            false,
        ),
        A::ReportUp => (
            "办理",
            "opinion",
            "btn-primary",
            "出具初审意见，报上级机关审批。",
            false,
        ),
        A::AssistOpinion => (
            "办理",
            "opinion",
            "btn-primary",
            "本部门作为协办部门出具意见。",
            false,
        ),
        A::Approve => (
            "办理",
            "approve",
            "btn-primary",
            "作出准予许可的决定。决定后不能撤销。收费事项决定后待申请人缴费。",
            true,
        ),
        A::RecordPayment => (
            "办理",
            "payment",
            "btn-primary",
            "申请人已缴费：登记实收金额、方式和票据号后，部门即可出具结果。",
            false,
        ),
        A::IssueResult => (
            "办理",
            "result",
            "btn-primary",
            "出具结果（证照或决定书），交统一出件窗口。",
            false,
        ),
        A::CompleteAtWindow => ("办理", "result", "btn-primary", "即办事项当场办结。", true),
        A::CompleteOnSite => (
            "办理",
            "result_name",
            "btn-primary",
            "本事项授权村级当场办结。",
            true,
        ),
        A::Deliver => (
            "办理",
            "note",
            "btn-primary",
            "结果已交到申请人手中（请申请人在送达回证上签名）。",
            false,
        ),
        A::Evaluate => (
            "办理",
            "score",
            "btn-primary",
            "请申请人本人选择评价，代办员只负责记录。",
            true,
        ),
        A::SubmitCorrection => (
            "补正",
            "materials",
            "btn-primary",
            "申请人补齐的材料已收到：勾选后提交，县级恢复审核。",
            false,
        ),
        A::RequestCorrection => (
            "补正",
            "correction",
            "btn-warn",
            "材料不齐或不符合法定形式：一次性告知需补正的全部材料及问题。",
            false,
        ),
        A::Amend => (
            "告知与更正",
            "amend",
            "btn-warn",
            "县级接收前可更正联系电话、地址和送达方式；修改会记入办理记录。",
            false,
        ),
        A::Inform => (
            "告知与更正",
            "inform",
            "btn-primary",
            "已把结果或答复告诉申请人后记录一下，待办事项随即消除。",
            false,
        ),
        A::Reject => (
            "结束办件",
            "reason",
            "btn-danger",
            "不属于受理范围或不符合条件：写明理由，申请人可申请行政复议或提起行政诉讼。",
            true,
        ),
        A::Deny => (
            "结束办件",
            "reason",
            "btn-danger",
            "作出不予许可的决定：必须写明理由和依据。",
            true,
        ),
        A::Withdraw => (
            "结束办件",
            "withdraw",
            "btn-danger",
            "申请人本人要求撤回申请：撤回后办件结束。",
            true,
        ),
        A::Supervise => (
            "督办整改操作",
            "supervise",
            "btn-primary",
            "差评或办不成事反映：指定整改部门，按工作日计算答复期限。",
            false,
        ),
        A::Callback => ("督办整改操作", "callback", "btn", "记录一次回访。", false),
        A::Rectify => (
            "督办整改操作",
            "rectify",
            "btn-primary",
            "写明整改情况：这是群众收到的答复。",
            false,
        ),
        A::CloseRectification => (
            "督办整改操作",
            "close",
            "btn-primary",
            "群众对整改的反馈已记录，办结整改。",
            true,
        ),
        A::Appeal => (
            "督办整改操作",
            "appeal",
            "btn-warn",
            "认为差评不实时提出申诉，由督办人员复核。",
            false,
        ),
        A::ReviewAppeal => (
            "督办整改操作",
            "review_appeal",
            "btn-primary",
            "复核部门的申诉。",
            true,
        ),
        A::Escalate => (
            "其他",
            "reason",
            "btn",
            "办事遇到困难、办不成时，向县级督办人员反映。",
            false,
        ),
        A::Ask => (
            "向中台咨询与答复",
            "ask",
            "btn",
            "对政策、条件或材料拿不准时，向承办部门的中台提问；答复会记在本办件里，各级都能看到。",
            false,
        ),
        A::Answer => (
            "向中台咨询与答复",
            "answer",
            "btn-primary",
            "答复向本部门提出的咨询；提问的代办员或窗口同步后即可看到。",
            false,
        ),
        A::Intake | A::Refuse => ("其他", "note", "btn", "", false),
    }
}

pub(super) fn action_groups(
    c: &CaseDoc,
    role: Option<Role>,
    departments: &[&str],
) -> Vec<ActionGroup> {
    let Some(role) = role else {
        return Vec::new();
    };
    let forms: Vec<(&'static str, ActionForm)> = workflow::available(c, &role)
        .into_iter()
        .map(|action| {
            let (group, input, class, hint, confirm) = presentation(action);
            let materials = match (action, &role) {
                // The questions this department is asked and has not answered: (id, question).
                (ActionKind::Answer, Role::Dept(d)) => c
                    .workflow
                    .questions
                    .iter()
                    .filter(|q| q.is_open() && &q.dept == d)
                    .map(|q| (q.id.clone(), q.question.clone(), false))
                    .collect(),
                (ActionKind::RequestCorrection, _) => c
                    .materials
                    .iter()
                    .map(|m| (m.id.clone(), m.name.clone(), false))
                    .collect(),
                (ActionKind::SubmitCorrection, _) => c
                    .materials
                    .iter()
                    .filter(|m| c.workflow.missing.contains(&m.id))
                    .map(|m| (m.id.clone(), m.name.clone(), true))
                    .collect(),
                _ => Vec::new(),
            };
            let depts = departments
                .iter()
                .filter(|d| action != ActionKind::Forward || **d != c.handling_dept())
                .map(|d| d.to_string())
                .collect();
            (
                group,
                ActionForm {
                    action: action.as_str(),
                    label: action.label(),
                    input,
                    class,
                    hint,
                    confirm,
                    materials,
                    depts,
                },
            )
        })
        .collect();
    let mut groups: Vec<ActionGroup> = GROUPS
        .iter()
        .map(|title| ActionGroup {
            title,
            forms: Vec::new(),
        })
        .collect();
    for (group, form) in forms {
        if let Some(g) = groups.iter_mut().find(|g| g.title == group) {
            g.forms.push(form);
        }
    }
    // In each group what moves the case on comes first (签收 before 转交 and 暂停), what ends it last.
    let rank = |class: &str| match class {
        "btn-primary" => 0,
        "btn-warn" => 1,
        "btn" => 2,
        _ => 3,
    };
    for g in &mut groups {
        g.forms.sort_by_key(|f| rank(f.class));
    }
    groups.retain(|g| !g.forms.is_empty());
    groups
}

/// Whether a form must carry the person's confirmation (irreversible actions).
pub(super) fn needs_confirmation(action: ActionKind) -> bool {
    presentation(action).4
}
