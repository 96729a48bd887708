//! The actions of a case's life, the one table of them: the name stored in history and used by the
//! API, what a person reads, and whether a node may take one. Who may take which action in which state
//! is the workflow's (`workflow.rs`).

use serde::Deserialize;

/// Every action a case can see, the one list of them: its name in documents and the API
/// (`as_str`), what a person reads (`label`), whether a node may take it (`by_node`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Intake,
    TownshipReceive,
    Receive,
    Accept,
    Reject,
    RequestCorrection,
    SubmitCorrection,
    Forward,
    Suspend,
    Resume,
    Approve,
    Deny,
    IssueResult,
    Deliver,
    Evaluate,
    Escalate,
    /// The agent corrects the applicant's data before the county received the case.
    Amend,
    /// 村级可直接办结: intake to a result handed over, offline, for items the catalogue allows.
    CompleteOnSite,
    /// 即办: the county window completes the item in one step.
    CompleteAtWindow,
    /// The department signs for the file (签收): ends the hand-over clock.
    DeptReceive,
    /// 上报: the department's 初审意见, and the file goes to the higher authority.
    ReportUp,
    /// 联办: an assisting department's opinion; the lead decides after all of them.
    AssistOpinion,
    /// An upstream did not adopt an event (县级未采纳): written by the ingress check, never by a person.
    Refuse,
    /// 撤回: the applicant withdraws the application (recorded by the agent or the window at their
    /// request) before a decision.
    Withdraw,
    /// 已告知申请人: the agent (or window) told the applicant of a rejection, a refusal or a reply;
    /// ends that to-do item. Changes no state.
    Inform,
    /// 督办: the supervisor opens a rectification of a bad review or an escalation, with the owning
    /// department and a due date in working days.
    Supervise,
    /// 回访: a record of calling the applicant back.
    Callback,
    /// 整改: what the owning department (or the supervisor) did about it: the reply the applicant hears.
    Rectify,
    /// 办结: the supervisor closes the rectification with the applicant's feedback.
    CloseRectification,
    /// 申诉: the owning department contests the bad review.
    Appeal,
    /// 申诉复核: the supervisor upholds or overturns the review after an appeal.
    ReviewAppeal,
    /// 缴费登记: the window records the applicant's payment of an approved case's fee; the result
    /// can then be issued.
    RecordPayment,
    /// 政策咨询: a village agent, township clerk or window asks the handling department's 中台 a
    /// question about the case (does the applicant qualify, which material counts …). State unchanged.
    Ask,
    /// 中台答复: the asked department answers one question. State unchanged.
    Answer,
}

impl ActionKind {
    pub const ALL: [ActionKind; 34] = [
        ActionKind::Intake,
        ActionKind::TownshipReceive,
        ActionKind::Receive,
        ActionKind::Accept,
        ActionKind::Reject,
        ActionKind::RequestCorrection,
        ActionKind::SubmitCorrection,
        ActionKind::Forward,
        ActionKind::Suspend,
        ActionKind::Resume,
        ActionKind::Approve,
        ActionKind::Deny,
        ActionKind::IssueResult,
        ActionKind::Deliver,
        ActionKind::Evaluate,
        ActionKind::Escalate,
        ActionKind::Amend,
        ActionKind::CompleteOnSite,
        ActionKind::CompleteAtWindow,
        ActionKind::DeptReceive,
        ActionKind::ReportUp,
        ActionKind::AssistOpinion,
        ActionKind::Refuse,
        ActionKind::Withdraw,
        ActionKind::Inform,
        ActionKind::Supervise,
        ActionKind::Callback,
        ActionKind::Rectify,
        ActionKind::CloseRectification,
        ActionKind::Appeal,
        ActionKind::ReviewAppeal,
        ActionKind::RecordPayment,
        ActionKind::Ask,
        ActionKind::Answer,
    ];

    /// The name stored in a case's history and used by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Intake => "intake",
            ActionKind::TownshipReceive => "township_receive",
            ActionKind::Receive => "receive",
            ActionKind::Accept => "accept",
            ActionKind::Reject => "reject",
            ActionKind::RequestCorrection => "request_correction",
            ActionKind::SubmitCorrection => "submit_correction",
            ActionKind::Forward => "forward",
            ActionKind::Suspend => "suspend",
            ActionKind::Resume => "resume",
            ActionKind::Approve => "approve",
            ActionKind::Deny => "deny",
            ActionKind::IssueResult => "issue_result",
            ActionKind::Deliver => "deliver",
            ActionKind::Evaluate => "evaluate",
            ActionKind::Escalate => "escalate",
            ActionKind::Amend => "amend",
            ActionKind::CompleteOnSite => "complete_on_site",
            ActionKind::CompleteAtWindow => "complete_at_window",
            ActionKind::DeptReceive => "dept_receive",
            ActionKind::ReportUp => "report_up",
            ActionKind::AssistOpinion => "assist_opinion",
            ActionKind::Refuse => "refuse",
            ActionKind::Withdraw => "withdraw",
            ActionKind::Inform => "inform",
            ActionKind::Supervise => "supervise",
            ActionKind::Callback => "callback",
            ActionKind::Rectify => "rectify",
            ActionKind::CloseRectification => "close_rectification",
            ActionKind::Appeal => "appeal",
            ActionKind::ReviewAppeal => "review_appeal",
            ActionKind::RecordPayment => "record_payment",
            ActionKind::Ask => "ask",
            ActionKind::Answer => "answer",
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What a person reads.
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::Intake => "收件",
            ActionKind::Receive => "接收",
            ActionKind::TownshipReceive => "乡镇收件转报",
            ActionKind::Accept => "受理",
            ActionKind::Reject => "不予受理",
            ActionKind::RequestCorrection => "要求补正",
            ActionKind::SubmitCorrection => "提交补正材料",
            ActionKind::Forward => "转交部门",
            ActionKind::Suspend => "暂停计时（特别程序）",
            ActionKind::Resume => "恢复计时",
            ActionKind::Approve => "准予",
            ActionKind::Deny => "不予许可",
            ActionKind::IssueResult => "出具结果",
            ActionKind::Deliver => "送达",
            ActionKind::Evaluate => "评价",
            ActionKind::Escalate => "办不成事反映",
            ActionKind::Amend => "修改收件信息",
            ActionKind::CompleteOnSite => "村级当场办结",
            ActionKind::CompleteAtWindow => "窗口即办办结",
            ActionKind::DeptReceive => "部门签收",
            ActionKind::ReportUp => "初审并转报上级",
            ActionKind::AssistOpinion => "协办部门意见",
            ActionKind::Refuse => "未采纳",
            ActionKind::Withdraw => "申请人撤回",
            ActionKind::Inform => "已告知申请人",
            ActionKind::Supervise => "督办整改",
            ActionKind::Callback => "回访",
            ActionKind::Rectify => "整改答复",
            ActionKind::CloseRectification => "整改办结",
            ActionKind::Appeal => "申诉",
            ActionKind::ReviewAppeal => "申诉复核",
            ActionKind::RecordPayment => "缴费登记",
            ActionKind::Ask => "政策咨询",
            ActionKind::Answer => "中台答复",
        }
    }

    /// Whether the county's event answers the applicant's complaint or a 中台 question (the village
    /// hears it as a reply, to pass on).
    pub fn is_reply(self) -> bool {
        matches!(
            self,
            ActionKind::Rectify | ActionKind::CloseRectification | ActionKind::Answer
        )
    }

    /// Whether a village or township node may take it (and so sync it up to the hub).
    pub fn by_node(self) -> bool {
        matches!(
            self,
            ActionKind::Intake
                | ActionKind::SubmitCorrection
                | ActionKind::Deliver
                | ActionKind::Evaluate
                | ActionKind::Escalate
                | ActionKind::TownshipReceive
                | ActionKind::Amend
                | ActionKind::CompleteOnSite
                | ActionKind::Withdraw
                | ActionKind::Inform
                | ActionKind::Ask
        )
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ActionKind {
    type Err = crate::workflow::ActionError;

    fn from_str(s: &str) -> Result<ActionKind, Self::Err> {
        ActionKind::parse(s).ok_or_else(|| crate::workflow::ActionError::Unknown(s.to_string()))
    }
}
