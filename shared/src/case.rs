//! The case (办件): one automerge document per case, its schema, its states and its intake.
//!
//! The document is the unit that travels between village, township and county, so everything that
//! describes the case lives inside it (GB/T 39046 fields, the materials checklist with each material's
//! state, delivery, the append-only history). What a node needs for lists and indexes is derived from it
//! as a [`CaseSummary`]. This module never reads a clock or draws randomness: the caller passes `now`,
//! the actor id and the query password in.

use automerge::{transaction::CommitOptions, ActorId, AutoCommit};
use autosurgeon::{hydrate, reconcile, Hydrate, Reconcile};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::action::ActionKind;
use crate::catalog::{Catalog, DayUnit, Item, ItemKind};
use crate::event::{Author, Event, Inputs};
use crate::validate::{self, FieldError};

/// Version of the document layout below; a reader refuses documents from a newer schema.
pub const CASE_SCHEMA: u64 = 1;

/// Where a case is in its life. Only the states a node reaches on its own exist yet; the back-office
/// states arrive with the hub workflow and are accepted from documents already (see `label`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaseState {
    Submitted,
    Received,
    Correction,
    Accepted,
    Rejected,
    Review,
    Suspended,
    /// 上报: the department gave its 初审意见 and the file is with the higher authority.
    ReportedUp,
    Decided,
    ResultReady,
    Delivered,
    Evaluated,
    /// 撤回: the applicant withdrew before a decision; the case is closed.
    Withdrawn,
}

impl CaseState {
    pub const ALL: [CaseState; 13] = [
        CaseState::Submitted,
        CaseState::Received,
        CaseState::Correction,
        CaseState::Accepted,
        CaseState::Rejected,
        CaseState::Review,
        CaseState::Suspended,
        CaseState::ReportedUp,
        CaseState::Decided,
        CaseState::ResultReady,
        CaseState::Delivered,
        CaseState::Evaluated,
        CaseState::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Submitted => "SUBMITTED",
            CaseState::Received => "RECEIVED",
            CaseState::Correction => "CORRECTION",
            CaseState::Accepted => "ACCEPTED",
            CaseState::Rejected => "REJECTED",
            CaseState::Review => "REVIEW",
            CaseState::Suspended => "SUSPENDED",
            CaseState::ReportedUp => "REPORTED_UP",
            CaseState::Decided => "DECIDED",
            CaseState::ResultReady => "RESULT_READY",
            CaseState::Delivered => "DELIVERED",
            CaseState::Evaluated => "EVALUATED",
            CaseState::Withdrawn => "WITHDRAWN",
        }
    }

    pub fn parse(s: &str) -> Option<CaseState> {
        CaseState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// [`CaseState::label`], with the decision said: a denial never reads like an approval.
    pub fn label_with(self, decision: &str) -> &'static str {
        match (self, decision) {
            (CaseState::Decided, "approved") => "已决定准予",
            (CaseState::Decided, "denied") => "已决定不予许可",
            (CaseState::ResultReady, "denied") => "不予许可决定待送达",
            _ => self.label(),
        }
    }

    /// The state as staff of `tier` read it: who holds the case now and what comes next. The county
    /// reads its own queue's words (待受理, 待部门签收); a village or township reads whose turn it is.
    pub fn label_at(self, tier: crate::Tier, decision: &str) -> &'static str {
        if tier != crate::Tier::County {
            return self.label_with(decision);
        }
        match (self, decision) {
            (CaseState::Submitted, _) => "待窗口接收（纸质材料在途）",
            (CaseState::Received, _) => "待窗口受理",
            (CaseState::Correction, _) => "待申请人补正",
            (CaseState::Accepted, _) => "待部门签收",
            (CaseState::Decided, "denied") => "已决定不予许可，待出具决定书",
            (CaseState::Decided, _) => "已决定准予，待出具结果",
            (CaseState::ResultReady, "denied") => "不予许可决定待送达",
            (CaseState::ResultReady, _) => "结果待送达",
            (CaseState::Delivered, _) => "已送达，待评价",
            _ => self.label_with(decision),
        }
    }

    /// What an agent reads: the state in plain Chinese, saying whose turn it is.
    pub fn label(self) -> &'static str {
        match self {
            CaseState::Submitted => "已收件，待县级接收",
            CaseState::Received => "县级已接收",
            CaseState::Correction => "需补齐补正材料",
            CaseState::Accepted => "已受理",
            CaseState::Rejected => "不予受理",
            CaseState::Review => "部门审查中",
            CaseState::Suspended => "特别程序（暂停计时）",
            CaseState::ReportedUp => "已转报上级机关审批",
            CaseState::Decided => "已作出决定",
            CaseState::ResultReady => "结果待领取",
            CaseState::Delivered => "已送达",
            CaseState::Evaluated => "已评价",
            CaseState::Withdrawn => "申请人已撤回",
        }
    }
}

/// Applicant kind, GB/T 39046 codes.
pub const APPLICANT_KINDS: [(&str, &str); 6] = [
    ("1", "自然人"),
    ("2", "企业法人"),
    ("3", "事业单位法人"),
    ("4", "社会组织法人"),
    ("5", "机关法人"),
    ("6", "其他组织"),
];

/// Delivery methods recorded at intake (统一出件 channel).
pub const DELIVERY_METHODS: [&str; 3] = ["窗口领取", "邮寄", "代办员送达"];

#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct ItemRef {
    pub code: String,
    pub name: String,
    pub department: String,
    /// 即办 / 承诺 / 上报 / 联办.
    pub kind: String,
    /// GB/T 39046 case type: 即办件 / 承诺件.
    pub case_type: String,
    pub legal_days: u64,
    pub promised_days: u64,
    /// "working" or "calendar": the unit of both limits.
    pub day_unit: String,
    /// Catalogue version the checklist was taken from: a later catalogue must not rewrite old cases.
    pub catalog_version: u64,
    /// "办结" when the catalogue lets the village station complete the item itself (村级可直接办结).
    #[autosurgeon(missing = "Default::default")]
    pub village: String,
    /// Urgent items are handed to the department within 10 minutes of the county's receipt.
    #[autosurgeon(missing = "Default::default")]
    pub urgent: bool,
    /// 联办: the departments whose opinion the lead department needs before it decides.
    #[autosurgeon(missing = "Default::default")]
    pub assist_departments: Vec<String>,
    /// 上报: the authority the department reports the file to.
    #[autosurgeon(missing = "Default::default")]
    pub higher_authority: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Applicant {
    /// GB/T 39046 applicant kind code ("1" natural person … "6" other).
    pub kind: String,
    pub name: String,
    /// GA/T certificate type: "111" resident ID card for a person, "001" credit code for an organisation.
    pub cert_type: String,
    /// ID number for a person, unified social credit code for an organisation.
    pub cert_no: String,
    pub phone: String,
    pub address: String,
    /// Legal representative, organisations only.
    pub legal_rep: String,
    /// ID number of the person who came in (the applicant, or the contact of an organisation).
    pub id_number: String,
}

/// The proxy agent (代理人) who took the case: every proxy case records who and where.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Agent {
    pub user: String,
    pub name: String,
    pub node_code: String,
    pub node_name: String,
}

impl Agent {
    /// Whether the case was taken in at the county's window rather than by a station's agent.
    pub fn at_county(&self) -> bool {
        crate::fold::tier_of_code(&self.node_code) == Some(crate::Tier::County)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct MaterialEntry {
    pub id: String,
    pub name: String,
    pub required: bool,
    pub form: String,
    pub copies: u64,
    /// Whether the agent collected it at intake (a correction round will flip missing ones later).
    pub collected: bool,
}

/// One line of the history (全程留痕) as people read it: an event of the case's log with what the fold
/// made of it. In documents, the list is a projection for nodes still on the previous release.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The event's id (empty in lists written by the previous release).
    #[autosurgeon(missing = "Default::default")]
    pub id: String,
    /// RFC 3339 with offset, from the clock of the node that wrote the entry.
    pub at: String,
    /// Account that acted.
    pub by: String,
    /// Display name of that account, as it was then.
    pub by_name: String,
    /// Division code of the node (or hub) where it happened.
    pub node: String,
    pub action: String,
    pub note: String,
    /// State after the action.
    pub state: String,
    /// Whether the event took effect (a delivery after another delivery does not).
    #[autosurgeon(missing = "Default::default")]
    pub effective: bool,
    /// Why it did not take effect, or the upstream's reason for refusing it.
    #[autosurgeon(missing = "Default::default")]
    pub why: String,
    /// An upstream did not adopt it (县级未采纳): forged author, a county-only action, wrong scope.
    #[autosurgeon(missing = "Default::default")]
    pub refused: bool,
    /// Tier of the author (`county`, `township`, `village`).
    #[autosurgeon(missing = "Default::default")]
    pub tier: String,
}

/// The rectification (整改) a bad review or an escalation opened: who owns it, by when, and how far
/// it got. Empty `state` when there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Rectification {
    /// `open` or `closed`.
    pub state: String,
    /// The department that must act.
    pub owner: String,
    /// Due date (YYYY-MM-DD, working days by the county's calendar from the day it was opened).
    pub due: String,
    pub opened_on: String,
    /// 回访 records so far.
    pub callbacks: u64,
    /// The last 整改 text: what was done (the reply the applicant hears).
    pub fix: String,
    /// The applicant's feedback when it was closed.
    pub feedback: String,
    pub closed_on: String,
    /// Appeal of the owning department: `pending`, `upheld` (the review stands) or `overturned`.
    pub appeal: String,
}

/// What the county found wrong with a material it asked to be corrected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct MaterialProblem {
    pub id: String,
    pub problem: String,
}

/// A 中台 policy question on the case, and its answer once given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Question {
    /// The `ask` event's id: what the answer names.
    pub id: String,
    /// The department asked (the one handling the case then).
    pub dept: String,
    pub question: String,
    /// Who asked (display name) and where (node code), when (RFC 3339, the asker's clock).
    pub asked_by: String,
    pub asked_node: String,
    pub asked_at: String,
    /// Empty until answered.
    pub answer: String,
    pub answered_by: String,
    pub answered_at: String,
}

impl Question {
    pub fn is_open(&self) -> bool {
        self.answered_at.is_empty()
    }

    /// Whole minutes from the question to the answer (0 when the asker's clock ran ahead).
    pub fn response_minutes(&self) -> Option<u64> {
        let asked = DateTime::parse_from_rfc3339(&self.asked_at).ok()?;
        let answered = DateTime::parse_from_rfc3339(&self.answered_at).ok()?;
        Some(u64::try_from((answered - asked).num_minutes()).unwrap_or(0))
    }
}

/// A 联办 assisting department's opinion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct AssistOpinion {
    pub dept: String,
    pub opinion: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct CaseDoc {
    pub schema: u64,
    pub case_no: String,
    pub item: ItemRef,
    /// Tongban keeps proxy submission as its own channel ("代办"); exports map it to GB/T 39046 code 9.
    pub channel: String,
    pub applicant: Applicant,
    pub agent: Agent,
    pub materials: Vec<MaterialEntry>,
    pub delivery: String,
    pub note: String,
    /// 查询密码 printed on the receipt so that the applicant can ask after the case.
    pub query_password: String,
    pub state: String,
    pub created_at: String,
    /// Promised completion date (YYYY-MM-DD), set when the county accepts the case.
    pub deadline: Option<String>,
    pub history: Vec<HistoryEntry>,
    /// Back-office data (see `workflow`); absent in documents written before it existed.
    #[autosurgeon(missing = "Default::default")]
    pub workflow: Workflow,
}

/// What the county's handling adds to a case. Empty strings and zeros mean "not yet".
#[derive(Debug, Clone, Default, PartialEq, Eq, Reconcile, Hydrate, Serialize, Deserialize)]
pub struct Workflow {
    /// Department now handling the case (the item's, or where it was forwarded).
    #[autosurgeon(missing = "Default::default")]
    pub dept: String,
    /// Day of acceptance (YYYY-MM-DD, county clock): the deadline counts from the day after.
    #[autosurgeon(missing = "Default::default")]
    pub accepted_on: Option<String>,
    /// Reason of the last rejection or suspension.
    #[autosurgeon(missing = "Default::default")]
    pub reason: String,
    /// Material ids the county asked for in the current correction round.
    #[autosurgeon(missing = "Default::default")]
    pub missing: Vec<String>,
    #[autosurgeon(missing = "Default::default")]
    pub correction_rounds: u64,
    /// Material ids the last correction request named (kept after they arrive: its notice lists them).
    #[autosurgeon(missing = "Default::default")]
    pub requested: Vec<String>,
    /// What is wrong with each material of the current correction round (where the county said).
    #[autosurgeon(missing = "Default::default")]
    pub problems: Vec<MaterialProblem>,
    /// The county's note to the applicant with the last correction request.
    #[autosurgeon(missing = "Default::default")]
    pub correction_note: String,
    /// Start of the current suspension (YYYY-MM-DD), while suspended.
    #[autosurgeon(missing = "Default::default")]
    pub suspended_since: Option<String>,
    /// Working days the clock was stopped so far.
    #[autosurgeon(missing = "Default::default")]
    pub suspended_days: u64,
    /// "approved" or "denied".
    #[autosurgeon(missing = "Default::default")]
    pub decision: String,
    #[autosurgeon(missing = "Default::default")]
    pub result_name: String,
    #[autosurgeon(missing = "Default::default")]
    pub result_no: String,
    /// 1-5 (5 = 非常满意); 0 = not evaluated.
    #[autosurgeon(missing = "Default::default")]
    pub evaluation: u64,
    #[autosurgeon(missing = "Default::default")]
    pub evaluation_comment: String,
    /// 办不成事 escalations to the supervisor.
    #[autosurgeon(missing = "Default::default")]
    pub escalations: u64,
    /// When the township took the file on its way (its clock), empty if it did not.
    #[autosurgeon(missing = "Default::default")]
    pub township_received_at: String,
    /// When the county window received the case (county clock): the hand-over clock starts here.
    #[autosurgeon(missing = "Default::default")]
    pub received_at: String,
    /// When the department signed for it (county clock): the hand-over clock stops here.
    #[autosurgeon(missing = "Default::default")]
    pub dept_received_at: String,
    /// Urgent (by the item, or marked at the window when accepting): 10-minute hand-over.
    #[autosurgeon(missing = "Default::default")]
    pub urgent: bool,
    /// 上报: the department's 初审意见.
    #[autosurgeon(missing = "Default::default")]
    pub preliminary_opinion: String,
    /// 联办: the assisting departments' opinions so far.
    #[autosurgeon(missing = "Default::default")]
    pub assist_opinions: Vec<AssistOpinion>,
    /// Day of the decision (YYYY-MM-DD).
    #[autosurgeon(missing = "Default::default")]
    pub decided_on: String,
    /// Completed at the village in one step (村级当场办结).
    #[autosurgeon(missing = "Default::default")]
    pub completed_on_site: bool,
    /// When the applicant was last told of a rejection, refusal or reply (告知), by whoever did it.
    #[autosurgeon(missing = "Default::default")]
    pub informed_at: String,
    /// 中台 policy questions and their answers, in the order asked.
    #[autosurgeon(missing = "Default::default")]
    pub questions: Vec<Question>,
    /// The fee owed once approved (分; 0: none), as the approval said.
    #[autosurgeon(missing = "Default::default")]
    pub fee_due_fen: u64,
    /// The payment the window recorded (缴费登记): amount (分), day, method and receipt number.
    #[autosurgeon(missing = "Default::default")]
    pub paid_fen: u64,
    #[autosurgeon(missing = "Default::default")]
    pub paid_on: String,
    #[autosurgeon(missing = "Default::default")]
    pub pay_method: String,
    #[autosurgeon(missing = "Default::default")]
    pub pay_receipt: String,
    #[autosurgeon(missing = "Default::default")]
    pub rectification: Rectification,
    /// Who gave the evaluation: `applicant_online` (self-query), `applicant_at_station` (the
    /// applicant chose at the village or window), empty before.
    #[autosurgeon(missing = "Default::default")]
    pub evaluation_channel: String,
}

impl ItemRef {
    /// The item's kind as the catalogue names it; an unknown label counts as a promised item.
    pub fn kind(&self) -> ItemKind {
        match self.kind.as_str() {
            "即办" => ItemKind::Immediate,
            "上报" => ItemKind::ReportUp,
            "联办" => ItemKind::Joint,
            _ => ItemKind::Promised,
        }
    }

    pub fn day_unit(&self) -> DayUnit {
        DayUnit::parse(&self.day_unit)
    }

    /// 村级可直接办结: the catalogue lets the village station complete the item itself.
    pub fn village_completable(&self) -> bool {
        self.village == "办结"
    }
}

impl CaseDoc {
    /// The department handling the case now: the one it was forwarded to, else the item's.
    pub fn handling_dept(&self) -> &str {
        if self.workflow.dept.is_empty() {
            &self.item.department
        } else {
            &self.workflow.dept
        }
    }

    pub fn state(&self) -> Option<CaseState> {
        CaseState::parse(&self.state)
    }

    pub fn created_at(&self) -> Option<DateTime<FixedOffset>> {
        DateTime::parse_from_rfc3339(&self.created_at).ok()
    }

    /// The materials the last correction request named (`requested`) or that are still missing
    /// (`missing` only), each with what the county said is wrong with it ("" where it said nothing).
    pub fn asked_for(&self, still_missing: bool) -> Vec<(&MaterialEntry, &str)> {
        let wf = &self.workflow;
        let ids = if still_missing {
            &wf.missing
        } else {
            &wf.requested
        };
        self.materials
            .iter()
            .filter(|m| ids.contains(&m.id))
            .map(|m| {
                let problem = wf.problems.iter().find(|p| p.id == m.id);
                (m, problem.map_or("", |p| p.problem.as_str()))
            })
            .collect()
    }

    /// Approved with a fee the window has not recorded as paid: the case waits in 待缴费.
    pub fn awaiting_payment(&self) -> bool {
        self.state() == Some(CaseState::Decided)
            && self.workflow.fee_due_fen > 0
            && self.workflow.paid_on.is_empty()
    }

    /// The state as staff of `tier` read it, 待缴费 included.
    pub fn state_label_at(&self, tier: crate::Tier) -> &'static str {
        if self.awaiting_payment() {
            return "已决定准予，待申请人缴费";
        }
        self.state()
            .map(|s| s.label_at(tier, &self.workflow.decision))
            .unwrap_or("未知状态")
    }

    pub fn summary(&self) -> CaseSummary {
        let todo = crate::todo::todo_of(self);
        CaseSummary {
            case_no: self.case_no.clone(),
            item_code: self.item.code.clone(),
            item_name: self.item.name.clone(),
            department: self.item.department.clone(),
            state: self.state.clone(),
            created_at: self.created_at.clone(),
            created_ms: self.created_at().map(|t| t.timestamp_millis()).unwrap_or(0),
            applicant_name: self.applicant.name.clone(),
            applicant_cert_no: self.applicant.cert_no.clone(),
            phone: self.applicant.phone.clone(),
            agent: self.agent.user.clone(),
            deadline: self.deadline.clone(),
            delivery: self.delivery.clone(),
            materials_missing: self
                .materials
                .iter()
                .filter(|m| m.required && !m.collected)
                .count() as u32,
            kind: self.item.kind.clone(),
            handling_dept: self.handling_dept().to_string(),
            decided_on: (!self.workflow.decided_on.is_empty())
                .then(|| self.workflow.decided_on.clone()),
            evaluation: u8::try_from(self.workflow.evaluation).unwrap_or(0),
            escalations: u32::try_from(self.workflow.escalations).unwrap_or(u32::MAX),
            correction_rounds: u32::try_from(self.workflow.correction_rounds).unwrap_or(u32::MAX),
            received_ms: millis(&self.workflow.received_at),
            dept_received_ms: millis(&self.workflow.dept_received_at),
            urgent: self.workflow.urgent || self.item.urgent,
            not_adopted: self
                .history
                .iter()
                .filter(|h| !h.effective)
                .count()
                .try_into()
                .unwrap_or(u32::MAX),
            decision: self.workflow.decision.clone(),
            todo: todo
                .as_ref()
                .map(|t| t.kind.as_str())
                .unwrap_or("")
                .to_string(),
            todo_since: todo.as_ref().map(|t| t.since.clone()).unwrap_or_default(),
            // Enough for a line of the inbox; the case page has the whole text.
            todo_note: todo
                .map(|t| t.note.chars().take(120).collect())
                .unwrap_or_default(),
            rectification: self.workflow.rectification.state.clone(),
            rectification_owner: self.workflow.rectification.owner.clone(),
            rectification_due: self.workflow.rectification.due.clone(),
            callbacks: u32::try_from(self.workflow.rectification.callbacks).unwrap_or(u32::MAX),
            assist_departments: self.item.assist_departments.clone(),
            fee_due_fen: self.workflow.fee_due_fen,
            paid_fen: self.workflow.paid_fen,
            paid_on: self.workflow.paid_on.clone(),
            questions_open: self
                .workflow
                .questions
                .iter()
                .filter(|q| q.is_open())
                .map(|q| q.dept.clone())
                .collect(),
            answered: self
                .workflow
                .questions
                .iter()
                .filter(|q| !q.is_open())
                .count()
                .try_into()
                .unwrap_or(u32::MAX),
            answer_minutes: self
                .workflow
                .questions
                .iter()
                .filter_map(Question::response_minutes)
                .sum(),
        }
    }
}

/// What lists, filters and dashboards need of a case without loading its document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseSummary {
    pub case_no: String,
    pub item_code: String,
    pub item_name: String,
    pub department: String,
    pub state: String,
    pub created_at: String,
    /// Milliseconds since the epoch: the sort key of the date index.
    pub created_ms: i64,
    pub applicant_name: String,
    pub applicant_cert_no: String,
    pub phone: String,
    pub agent: String,
    pub deadline: Option<String>,
    pub delivery: String,
    pub materials_missing: u32,
    /// Item kind (即办/承诺/上报/联办): the hand-over limit depends on it.
    pub kind: String,
    /// Department handling the case now.
    pub handling_dept: String,
    /// Day of the decision (approve/deny), for on-time statistics.
    pub decided_on: Option<String>,
    /// 1-5, 0 when not evaluated.
    pub evaluation: u8,
    pub escalations: u32,
    pub correction_rounds: u32,
    /// County receipt and department sign-in (ms since the epoch, county clock; 0 = not yet): the
    /// hand-over clock runs between them.
    #[serde(default)]
    pub received_ms: i64,
    #[serde(default)]
    pub dept_received_ms: i64,
    /// 10-minute hand-over instead of 30.
    #[serde(default)]
    pub urgent: bool,
    /// Events that did not take effect or were not adopted (shown as 未生效 / 未采纳).
    #[serde(default)]
    pub not_adopted: u32,
    /// "approved" / "denied" once decided (a denial must not read like an approval).
    #[serde(default)]
    pub decision: String,
    /// The station's to-do item (`crate::todo`): kind (empty: none), since when, and what to read.
    #[serde(default)]
    pub todo: String,
    #[serde(default)]
    pub todo_since: String,
    #[serde(default)]
    pub todo_note: String,
    /// The rectification: `open` / `closed` (empty: none), owning department, due date, call-backs.
    #[serde(default)]
    pub rectification: String,
    #[serde(default)]
    pub rectification_owner: String,
    #[serde(default)]
    pub rectification_due: String,
    #[serde(default)]
    pub callbacks: u32,
    /// 联办: the departments that give an opinion (they see the case too).
    #[serde(default)]
    pub assist_departments: Vec<String>,
    /// The fee owed once approved and what the window recorded as paid (分), and the day it was paid.
    #[serde(default)]
    pub fee_due_fen: u64,
    #[serde(default)]
    pub paid_fen: u64,
    #[serde(default)]
    pub paid_on: String,
    /// The departments asked a 中台 question not answered yet (one entry per question).
    #[serde(default)]
    pub questions_open: Vec<String>,
    /// Questions answered, and the minutes from question to answer summed over them.
    #[serde(default)]
    pub answered: u32,
    #[serde(default)]
    pub answer_minutes: u64,
}

fn millis(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0)
}

impl CaseSummary {
    /// The state, parsed from the stored name (`None` for a name this program does not know).
    pub fn state(&self) -> Option<CaseState> {
        CaseState::parse(&self.state)
    }

    /// See [`CaseDoc::awaiting_payment`].
    pub fn awaiting_payment(&self) -> bool {
        self.state() == Some(CaseState::Decided) && self.fee_due_fen > 0 && self.paid_on.is_empty()
    }

    /// Free-text filter of the case list, and the definition the store's search tokens
    /// (`crate::postings`) are checked against:
    ///
    /// - the whole case number;
    /// - the beginning of the applicant's name (a surname, a full name);
    /// - four or more letters and digits: the tail of the ID number or of the phone (手机尾号);
    /// - the item: a part of its name, or its whole code.
    pub fn matches_text(&self, q: &str) -> bool {
        let q = q.trim();
        if q.is_empty() {
            return true;
        }
        let name_matches = self.applicant_name.trim().starts_with(q);
        let tail = q.len() >= 4 && q.bytes().all(|b| b.is_ascii_alphanumeric());
        let upper = q.to_ascii_uppercase();
        let ends = |number: &str| number.trim().to_ascii_uppercase().ends_with(&upper);
        self.case_no == q
            || name_matches
            || tail && (ends(&self.applicant_cert_no) || ends(&self.phone))
            || self.item_name.contains(q)
            || self.item_code.eq_ignore_ascii_case(q)
    }
}

pub use crate::case_no::{format_case_no, is_case_no, CaseNo};

/// Intake as the API and the web form submit it, before validation.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeRequest {
    pub item_code: String,
    pub applicant: ApplicantInput,
    #[serde(default)]
    pub materials: Vec<String>,
    #[serde(default)]
    pub delivery: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicantInput {
    /// GB/T 39046 kind code; "1" (natural person) when absent.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub id_number: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub credit_code: String,
    #[serde(default)]
    pub legal_rep: String,
    #[serde(default)]
    pub address: String,
}

/// An intake that passed every check, with the catalogue item it refers to.
#[derive(Debug, Clone)]
pub struct ValidIntake {
    pub item: Item,
    pub catalog_version: u32,
    pub applicant: Applicant,
    pub collected: Vec<String>,
    pub delivery: String,
    pub note: String,
}

/// Checks an intake against the catalogue; returns every problem at once so a form can mark them all.
pub fn validate_intake(
    catalog: &Catalog,
    req: &IntakeRequest,
    today: NaiveDate,
) -> Result<ValidIntake, Vec<FieldError>> {
    let mut errors = Vec::new();
    let item = catalog.item(req.item_code.trim());
    if item.is_none() {
        errors.push(FieldError::new(
            "item_code",
            if req.item_code.trim().is_empty() {
                "请选择要办理的事项。".to_string()
            } else {
                format!("事项编码“{}”不在事项目录中。", req.item_code.trim())
            },
        ));
    }

    let a = &req.applicant;
    let kind = if a.kind.trim().is_empty() {
        "1"
    } else {
        a.kind.trim()
    };
    let organisation = kind != "1";
    if !APPLICANT_KINDS.iter().any(|(code, _)| *code == kind) {
        errors.push(FieldError::new(
            "applicant.kind",
            "申请人类型不正确，应为1（自然人）到6（其他组织）。",
        ));
    }
    let name_label = if organisation {
        "申请单位名称"
    } else {
        "申请人姓名"
    };
    let name = validate::check_person_name(&a.name, "applicant.name", name_label)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();

    let mut id_number = String::new();
    if !organisation || !a.id_number.trim().is_empty() {
        if a.id_number.trim().is_empty() {
            errors.push(FieldError::new(
                "applicant.id_number",
                "请填写申请人身份证号码。",
            ));
        } else {
            match validate::check_id_number(&a.id_number, today) {
                Ok(id) => id_number = id,
                Err(p) => errors.push(FieldError::new("applicant.id_number", p.message())),
            }
        }
    }

    let mut credit_code = String::new();
    let mut legal_rep = String::new();
    if organisation {
        match validate::check_credit_code(&a.credit_code) {
            Ok(code) => credit_code = code,
            Err(p) => errors.push(FieldError::new(
                "applicant.credit_code",
                if a.credit_code.trim().is_empty() {
                    "申请人是单位时，请填写统一社会信用代码。"
                } else {
                    p.message()
                },
            )),
        }
        legal_rep = validate::check_person_name(&a.legal_rep, "applicant.legal_rep", "法定代表人")
            .map_err(|e| errors.push(e))
            .unwrap_or_default();
    }

    let phone = match validate::check_mobile(&a.phone) {
        Some(p) => p,
        None => {
            errors.push(FieldError::new(
                "applicant.phone",
                if a.phone.trim().is_empty() {
                    "请填写申请人手机号码，以便通知办理进度。"
                } else {
                    "手机号码应为以1开头的11位数字。"
                },
            ));
            String::new()
        }
    };

    let delivery = req.delivery.trim();
    let delivery = if delivery.is_empty() {
        "代办员送达"
    } else {
        delivery
    };
    if !DELIVERY_METHODS.contains(&delivery) {
        errors.push(FieldError::new(
            "delivery",
            "送达方式应为“窗口领取”“邮寄”或“代办员送达”之一。",
        ));
    }
    let address = a.address.trim().to_string();
    if delivery == "邮寄" && address.is_empty() {
        errors.push(FieldError::new(
            "applicant.address",
            "选择邮寄送达时，请填写收件地址。",
        ));
    }
    if address.chars().count() > 200 {
        errors.push(FieldError::new(
            "applicant.address",
            "地址不能超过200个字。",
        ));
    }
    if req.note.chars().count() > 500 {
        errors.push(FieldError::new("note", "备注不能超过500个字。"));
    }

    let mut collected: Vec<String> = Vec::new();
    if let Some(item) = item {
        for id in &req.materials {
            match item.material(id) {
                Some(_) if !collected.contains(id) => collected.push(id.clone()),
                Some(_) => {}
                None => errors.push(FieldError::new(
                    "materials",
                    format!("材料“{id}”不是该事项需要的材料。"),
                )),
            }
        }
        let missing: Vec<&str> = item
            .materials
            .iter()
            .filter(|m| m.required && !collected.contains(&m.id))
            .map(|m| m.name.as_str())
            .collect();
        if !missing.is_empty() {
            errors.push(FieldError::new(
                "materials",
                format!(
                    "缺少必需材料：{}。请收齐后再提交，以免群众多跑一趟。",
                    missing.join("、")
                ),
            ));
        }
    }

    match item {
        Some(item) if errors.is_empty() => Ok(ValidIntake {
            item: item.clone(),
            catalog_version: catalog.version,
            applicant: Applicant {
                kind: kind.to_string(),
                name,
                cert_type: if organisation { "001" } else { "111" }.to_string(),
                cert_no: if organisation {
                    credit_code
                } else {
                    id_number.clone()
                },
                phone,
                address,
                legal_rep,
                id_number,
            },
            collected,
            delivery: delivery.to_string(),
            note: req.note.trim().to_string(),
        }),
        _ => Err(errors),
    }
}

/// Everything about the place and moment of an intake that does not come from the form.
pub struct IntakeContext<'a> {
    pub case_no: &'a str,
    pub agent: Agent,
    pub now: DateTime<FixedOffset>,
    pub query_password: &'a str,
    /// The node's automerge actor id: every change a node makes carries it.
    pub actor: ActorId,
}

#[derive(Debug, thiserror::Error)]
pub enum CaseDocError {
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("case document does not match the schema: {0}")]
    Hydrate(#[from] autosurgeon::HydrateError),
    #[error("writing case document: {0}")]
    Reconcile(#[from] autosurgeon::ReconcileError),
    #[error("case document schema {0} is newer than this program understands ({CASE_SCHEMA})")]
    NewerSchema(u64),
}

/// Builds the first version of a case document from a validated intake: the fixed intake fields, the
/// intake event, and the projection of the derived case (for nodes on the previous release).
pub fn new_case_document(
    intake: &ValidIntake,
    ctx: IntakeContext<'_>,
) -> Result<(AutoCommit, CaseDoc), CaseDocError> {
    let at = ctx
        .now
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    let tier = crate::fold::tier_of_code(&ctx.agent.node_code).unwrap_or(crate::Tier::Village);
    let intake_event = Event {
        id: INTAKE_EVENT_ID.to_string(),
        kind: ActionKind::Intake,
        by: Author {
            account: ctx.agent.user.clone(),
            name: ctx.agent.name.clone(),
            role: if tier == crate::Tier::County {
                "window"
            } else {
                "agent"
            }
            .to_string(),
            tier,
            node: ctx.agent.node_code.clone(),
        },
        at: at.clone(),
        saw: String::new(),
        after: Vec::new(),
        input: Inputs {
            note: intake.note.clone(),
            materials: intake.collected.clone(),
            applicant: Some(intake.applicant.clone()),
            delivery: intake.delivery.clone(),
            ..Default::default()
        },
    };
    let base = CaseDoc {
        schema: CASE_SCHEMA,
        case_no: ctx.case_no.to_string(),
        item: ItemRef {
            code: intake.item.code.clone(),
            name: intake.item.name.clone(),
            department: intake.item.department.clone(),
            kind: intake.item.kind.label().to_string(),
            case_type: intake.item.kind.case_type().to_string(),
            legal_days: intake.item.legal_days.into(),
            promised_days: intake.item.promised_days.into(),
            day_unit: intake.item.day_unit.as_str().to_string(),
            catalog_version: intake.catalog_version.into(),
            village: intake.item.village.clone(),
            urgent: intake.item.urgent,
            assist_departments: intake.item.assist_departments.clone(),
            higher_authority: intake.item.higher_authority.clone(),
        },
        channel: "代办".to_string(),
        applicant: intake.applicant.clone(),
        materials: intake
            .item
            .materials
            .iter()
            .map(|m| MaterialEntry {
                id: m.id.clone(),
                name: m.name.clone(),
                required: m.required,
                form: m.form.clone(),
                copies: m.copies.into(),
                collected: intake.collected.contains(&m.id),
            })
            .collect(),
        delivery: intake.delivery.clone(),
        note: intake.note.clone(),
        query_password: ctx.query_password.to_string(),
        state: CaseState::Submitted.as_str().to_string(),
        created_at: at,
        deadline: None,
        workflow: Workflow::default(),
        history: Vec::new(),
        agent: ctx.agent,
    };
    let case = crate::fold::fold(base, std::slice::from_ref(&intake_event));
    let mut doc = AutoCommit::new();
    doc.set_actor(ctx.actor);
    crate::event::write_event(&mut doc, &intake_event)?;
    reconcile(&mut doc, &case)?;
    doc.commit_with(
        CommitOptions::default()
            .with_message("intake")
            .with_time(ctx.now.timestamp()),
    );
    Ok((doc, case))
}

/// The id of a case's intake event: there is one intake per case.
pub const INTAKE_EVENT_ID: &str = "intake";

/// A new case as the store keeps it: number `seq` of its day at the agent's node, the saved document
/// and its summary. The one way intake builds a case (the form, the API, demo and benchmark data).
pub fn build_case(
    intake: &ValidIntake,
    agent: Agent,
    now: DateTime<FixedOffset>,
    seq: u32,
    query_password: &str,
    actor: ActorId,
) -> Result<(Vec<u8>, CaseSummary), CaseDocError> {
    let case_no = format_case_no(&agent.node_code, now.date_naive(), seq);
    let (mut doc, case) = new_case_document(
        intake,
        IntakeContext {
            case_no: &case_no,
            agent,
            now,
            query_password,
            actor,
        },
    )?;
    Ok((doc.save(), case.summary()))
}

/// Reads the case out of a document, refusing schemas from the future: the fixed intake fields, and
/// everything else derived from the events ([`crate::fold`]). A document of the previous format (a
/// history list, no events) is read through the same fold, its list converted on the fly.
pub fn read_case(doc: &AutoCommit) -> Result<CaseDoc, CaseDocError> {
    let (base, events) = read_parts(doc)?;
    Ok(crate::fold::fold(base, &events))
}

/// The document's fields as stored (the history and workflow there being the projection) and its
/// events: what the fold and the ingress check start from.
pub fn read_parts(doc: &AutoCommit) -> Result<(CaseDoc, Vec<Event>), CaseDocError> {
    let (stored, _) = crate::event::read_events(doc);
    if stored.is_empty() {
        let base: CaseDoc = hydrate(doc)?;
        if base.schema > CASE_SCHEMA {
            return Err(CaseDocError::NewerSchema(base.schema));
        }
        let events = crate::legacy::events_from_history(&base);
        return Ok((base, events));
    }
    // With events, the projection (state, deadline, history, workflow) is never read: the fold
    // derives it. Reading the history out of automerge was most of what reading a case cost.
    let fixed: FixedFields = hydrate(doc)?;
    if fixed.schema > CASE_SCHEMA {
        return Err(CaseDocError::NewerSchema(fixed.schema));
    }
    let base = CaseDoc {
        schema: fixed.schema,
        case_no: fixed.case_no,
        item: fixed.item,
        channel: fixed.channel,
        applicant: fixed.applicant,
        agent: fixed.agent,
        materials: fixed.materials,
        delivery: fixed.delivery,
        note: fixed.note,
        query_password: fixed.query_password,
        state: String::new(),
        created_at: fixed.created_at,
        deadline: None,
        history: Vec::new(),
        workflow: Workflow::default(),
    };
    Ok((base, stored.into_iter().map(|s| s.event).collect()))
}

/// The history list as stored: the projection, plus whatever a node on the previous release appended
/// to it (the ingress check imports those). Read only where such appends can arrive.
pub fn stored_history(doc: &AutoCommit) -> Result<Vec<HistoryEntry>, CaseDocError> {
    let history: Option<Vec<HistoryEntry>> =
        autosurgeon::hydrate_prop(doc, automerge::ROOT, "history")?;
    Ok(history.unwrap_or_default())
}

/// The fields of a case document the fold starts from (everything but the projection).
#[derive(Hydrate)]
struct FixedFields {
    schema: u64,
    case_no: String,
    item: ItemRef,
    channel: String,
    applicant: Applicant,
    agent: Agent,
    materials: Vec<MaterialEntry>,
    delivery: String,
    note: String,
    query_password: String,
    created_at: String,
}

/// Writes the derived case into the document's plain fields (state, deadline, history, workflow…), for
/// readers on the previous release, which know only those. Nothing on this release reads them back as
/// truth. Returns whether anything changed; the caller commits.
pub fn project(doc: &mut AutoCommit, case: &CaseDoc) -> Result<bool, CaseDocError> {
    let stored: Result<CaseDoc, _> = hydrate(doc);
    if stored.as_ref().ok() == Some(case) {
        return Ok(false);
    }
    reconcile(doc, case)?;
    Ok(true)
}

/// A valid case document for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Node, tier and stored account role of the test account acting with `role`.
    pub fn acting_as(role: &crate::workflow::Role) -> (&'static str, crate::Tier, String) {
        use crate::workflow::Role;
        use crate::Tier;
        match role {
            Role::Agent => ("420222103201", Tier::Village, "agent".to_string()),
            Role::Township => ("420222103", Tier::Township, "agent".to_string()),
            Role::Window => ("420222", Tier::County, "window".to_string()),
            Role::Dept(d) => ("420222", Tier::County, format!("dept:{d}")),
            Role::Supervisor => ("420222", Tier::County, "supervisor".to_string()),
            Role::Admin => ("420222", Tier::County, "admin".to_string()),
            Role::Applicant => ("420222", Tier::County, "applicant".to_string()),
        }
    }

    /// When the county acts in tests that do not care about dates.
    pub const ACCEPT_NOW: &str = "2026-11-27T10:00:00+08:00";

    pub fn new_doc() -> (AutoCommit, CaseDoc) {
        new_doc_where(|i| {
            i.promised_days > 0
                && i.day_unit == crate::catalog::DayUnit::Working
                && i.kind == ItemKind::Promised
        })
    }

    /// A new case of the first builtin item that `wanted` picks.
    pub fn new_doc_where(wanted: impl Fn(&crate::catalog::Item) -> bool) -> (AutoCommit, CaseDoc) {
        let catalog = Catalog::builtin().unwrap();
        let item = catalog.items.iter().find(|i| wanted(i)).unwrap();
        let req = IntakeRequest {
            item_code: item.code.clone(),
            applicant: ApplicantInput {
                name: "王秀英".into(),
                id_number: "11010519491231002X".into(),
                phone: "13800271234".into(),
                ..Default::default()
            },
            materials: item
                .materials
                .iter()
                .filter(|m| m.required)
                .map(|m| m.id.clone())
                .collect(),
            delivery: "代办员送达".into(),
            note: String::new(),
        };
        let today = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        let intake = validate_intake(&catalog, &req, today).unwrap();
        let no = format_case_no("420222103201", today, 1);
        new_case_document(
            &intake,
            IntakeContext {
                case_no: &no,
                agent: Agent {
                    user: "daiban".into(),
                    name: "李代办".into(),
                    node_code: "420222103201".into(),
                    node_name: "某村便民服务站".into(),
                },
                now: DateTime::parse_from_rfc3339("2026-09-01T09:30:00+08:00").unwrap(),
                query_password: "482913",
                actor: ActorId::from([7u8; 16].as_slice()),
            },
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    fn valid_request(catalog: &Catalog) -> IntakeRequest {
        let item = &catalog.items[0];
        IntakeRequest {
            item_code: item.code.clone(),
            applicant: ApplicantInput {
                name: "王秀英".into(),
                id_number: "11010519491231002X".into(),
                phone: "13800271234".into(),
                ..Default::default()
            },
            materials: item.materials.iter().map(|m| m.id.clone()).collect(),
            delivery: "代办员送达".into(),
            note: String::new(),
        }
    }

    fn ctx(case_no: &str) -> IntakeContext<'_> {
        IntakeContext {
            case_no,
            agent: Agent {
                user: "daiban".into(),
                name: "李代办".into(),
                node_code: "420222103201".into(),
                node_name: "某村便民服务站".into(),
            },
            now: DateTime::parse_from_rfc3339("2026-11-27T09:30:00+08:00").unwrap(),
            query_password: "482913",
            actor: ActorId::from([7u8; 16].as_slice()),
        }
    }

    #[test]
    fn valid_intake_roundtrips_through_automerge_bytes() {
        let catalog = Catalog::builtin().unwrap();
        let intake = validate_intake(&catalog, &valid_request(&catalog), today()).unwrap();
        let no = format_case_no("420222103201", today(), 1);
        let (mut doc, case) = new_case_document(&intake, ctx(&no)).unwrap();
        let bytes = doc.save();
        let loaded = AutoCommit::load(&bytes).unwrap();
        let back = read_case(&loaded).unwrap();
        assert_eq!(back, case);
        assert_eq!(back.applicant.cert_no, "11010519491231002X");
        assert_eq!(back.history.len(), 1);
        assert_eq!(back.state(), Some(CaseState::Submitted));
        assert!(back.materials.iter().all(|m| m.collected));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let catalog = Catalog::builtin().unwrap();
        let mut req = valid_request(&catalog);
        req.applicant.id_number = "11010519491231003X".into();
        req.applicant.phone = "12345".into();
        req.materials.clear();
        req.delivery = "飞鸽传书".into();
        let errors = validate_intake(&catalog, &req, today()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "applicant.id_number",
                "applicant.phone",
                "delivery",
                "materials"
            ]
        );
        assert!(errors[3].message.contains("缺少必需材料"));
    }

    #[test]
    fn unknown_item_and_unknown_material_are_refused() {
        let catalog = Catalog::builtin().unwrap();
        let mut req = valid_request(&catalog);
        req.materials.push("no_such_material".into());
        let errors = validate_intake(&catalog, &req, today()).unwrap_err();
        assert_eq!(errors[0].field, "materials");
        req.item_code = "NOPE".into();
        let errors = validate_intake(&catalog, &req, today()).unwrap_err();
        assert_eq!(errors[0].field, "item_code");
    }

    #[test]
    fn organisation_needs_valid_credit_code_and_legal_rep() {
        let catalog = Catalog::builtin().unwrap();
        let mut req = valid_request(&catalog);
        req.applicant.kind = "2".into();
        req.applicant.id_number.clear();
        req.applicant.credit_code = "91350100M000100Y44".into();
        let errors = validate_intake(&catalog, &req, today()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["applicant.credit_code", "applicant.legal_rep"]);
        req.applicant.credit_code = "91350100m000100y43".into();
        req.applicant.legal_rep = "陈法人".into();
        let ok = validate_intake(&catalog, &req, today()).unwrap();
        assert_eq!(ok.applicant.cert_no, "91350100M000100Y43");
        assert_eq!(ok.applicant.cert_type, "001");
    }

    #[test]
    fn case_numbers_carry_code_and_date_and_parse_back() {
        let no = format_case_no("420222103201", today(), 7);
        assert_eq!(no, "420222103201-20261127-0007");
        assert!(is_case_no(&no));
        assert!(is_case_no(&format_case_no("420222103", today(), 12345)));
        assert!(!is_case_no("420222103201-20261327-0007"));
        assert!(!is_case_no("../etc/passwd"));
        assert!(!is_case_no("420222103201-20261127-0007-1"));
    }

    #[test]
    fn text_filter_matches_useful_fields_only() {
        let catalog = Catalog::builtin().unwrap();
        let intake = validate_intake(&catalog, &valid_request(&catalog), today()).unwrap();
        let no = format_case_no("420222103201", today(), 1);
        let (_, case) = new_case_document(&intake, ctx(&no)).unwrap();
        let s = case.summary();
        assert!(s.matches_text("王秀英"));
        assert!(s.matches_text("002x"));
        assert!(s.matches_text(&s.case_no));
        assert!(
            !s.matches_text("0007"),
            "a part of a case number is not searched"
        );
        assert!(!s.matches_text("张三"));
    }
}
