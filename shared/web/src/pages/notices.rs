//! The notices the law expects (行政许可法 §32, §38 for licences; the same notices without the
//! licence law's citations for the other kinds of item), printable on A4 at every tier from the case as
//! its events make it, so a village prints them offline: `/cases/{no}/notices/{kind}` (补正材料通知书,
//! 不予受理通知书, 受理通知书, 准予/不予许可决定书, 送达回证) and `/items/{code}/checklist` (一次性告知单,
//! before any case exists). Each notice has a number and a date; a reprint says 补打. A notice the
//! case is not in a state for answers 409.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tongban_shared::action::ActionKind;
use tongban_shared::case::{CaseDoc, CaseState, HistoryEntry};
use tongban_shared::catalog::Catalog;

use super::common::{limit_text, page_error, render};
use crate::error::AppError;
use crate::extract::WebUser;
use crate::service;
use crate::state::{blocking, SharedState};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/cases/{case_no}/notices/{kind}", get(case_notice))
        .route("/items/{code}/checklist", get(checklist))
}

/// The kinds of `/cases/{no}/notices/{kind}`, with their titles, in the order of a case's life.
const KINDS: [(&str, &str); 5] = [
    ("correction", "补正材料通知书"),
    ("rejection", "不予受理通知书"),
    ("acceptance", "受理通知书"),
    ("decision", "许可决定书"),
    ("delivery", "送达回证"),
];

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticePage {
    title: String,
    /// 〔2026〕… 号; empty for the checklist of an item.
    number: String,
    date: String,
    reprint: bool,
    addressee: String,
    paragraphs: Vec<String>,
    table_head: Vec<&'static str>,
    table: Vec<Vec<String>>,
    after_table: Vec<String>,
    /// Signature lines at the bottom (送达回证: the recipient's).
    signatures: Vec<&'static str>,
    issuer: String,
    back: String,
}

fn last<'a>(c: &'a CaseDoc, kinds: &[ActionKind]) -> Option<&'a HistoryEntry> {
    c.history
        .iter()
        .rev()
        .find(|h| h.effective && ActionKind::parse(&h.action).is_some_and(|k| kinds.contains(&k)))
}

fn day_of(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y年%m月%d日").to_string())
        .unwrap_or_default()
}

fn ymd(date: &str) -> String {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map(|d| d.format("%Y年%m月%d日").to_string())
        .unwrap_or_else(|_| date.to_string())
}

/// The event a notice of `kind` documents, if the case has one now.
fn source<'a>(c: &'a CaseDoc, kind: &str) -> Option<&'a HistoryEntry> {
    match kind {
        "correction" => last(c, &[ActionKind::RequestCorrection]),
        "rejection" if c.state() == Some(CaseState::Rejected) => last(c, &[ActionKind::Reject]),
        "acceptance" => last(c, &[ActionKind::Accept]),
        "decision" => last(
            c,
            &[
                ActionKind::Approve,
                ActionKind::Deny,
                ActionKind::CompleteAtWindow,
                ActionKind::CompleteOnSite,
            ],
        ),
        "delivery"
            if matches!(
                c.state(),
                Some(CaseState::ResultReady | CaseState::Delivered | CaseState::Evaluated)
            ) =>
        {
            last(
                c,
                &[
                    ActionKind::Deliver,
                    ActionKind::IssueResult,
                    ActionKind::CompleteAtWindow,
                    ActionKind::CompleteOnSite,
                ],
            )
        }
        _ => None,
    }
}

/// The notices `c` can be printed now (what the case page offers), `(kind, title)`.
pub fn available(c: &CaseDoc, catalog: &Catalog) -> Vec<(&'static str, &'static str)> {
    let licence = is_licence(catalog, c);
    KINDS
        .into_iter()
        .filter(|(kind, _)| source(c, kind).is_some())
        .map(|(kind, title)| (kind, decision_title(c, licence, kind).unwrap_or(title)))
        .collect()
}

/// Whether the case's item is an administrative licence by the catalogue in use: only then do its
/// notices cite the 行政许可法 and end in a 行政许可决定书.
fn is_licence(catalog: &Catalog, c: &CaseDoc) -> bool {
    catalog.item(&c.item.code).is_some_and(|i| i.is_licence())
}

fn decision_title(c: &CaseDoc, licence: bool, kind: &str) -> Option<&'static str> {
    let denied = c.workflow.decision == "denied";
    (kind == "decision").then_some(match (licence, denied) {
        (true, true) => "不予行政许可决定书",
        (true, false) => "准予行政许可决定书",
        (false, true) => "不予办理决定书",
        (false, false) => "准予办理通知书",
    })
}

/// “X”申请, without doubling an item name that already ends in 申请.
fn application(c: &CaseDoc) -> String {
    if c.item.name.ends_with("申请") {
        format!("“{}”", c.item.name)
    } else {
        format!("“{}”申请", c.item.name)
    }
}

/// What the applicant may do against an adverse decision, with the county's bodies.
fn rights(catalog: &Catalog) -> String {
    let county = &catalog.county;
    let body = if county.reconsideration_body.is_empty() {
        "本级人民政府"
    } else {
        &county.reconsideration_body
    };
    let court = if county.court.is_empty() {
        "人民法院"
    } else {
        &county.court
    };
    format!(
        "如不服本决定，可以自收到本通知书之日起六十日内向{body}申请行政复议，或者自收到本通知书之日起六个月内向{court}提起行政诉讼。"
    )
}

fn department_full(catalog: &Catalog, c: &CaseDoc) -> String {
    catalog
        .items
        .iter()
        .find(|i| i.code == c.item.code)
        .map(|i| i.department_full.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| c.item.department.clone())
}

/// Builds the notice of `kind` for `c`; `None` when the case is not in a state for it.
fn build(
    c: &CaseDoc,
    kind: &str,
    catalog: &Catalog,
    calendar: &tongban_shared::calendar::Calendar,
) -> Option<NoticePage> {
    let src = source(c, kind)?;
    let licence = is_licence(catalog, c);
    let law = if licence {
        "根据《中华人民共和国行政许可法》第三十二条的规定，"
    } else {
        ""
    };
    let title = decision_title(c, licence, kind)
        .or_else(|| KINDS.iter().find(|(k, _)| *k == kind).map(|(_, t)| *t))?
        .to_string();
    let short = match kind {
        "correction" => "补正",
        "rejection" => "不受",
        "acceptance" => "受理",
        "decision" => "决定",
        _ => "送达",
    };
    let year = src.at.get(..4).unwrap_or("");
    let round = if kind == "correction" {
        format!("-{}", c.workflow.correction_rounds.max(1))
    } else {
        String::new()
    };
    let dept = department_full(catalog, c);
    let received = day_of(&c.created_at);
    let mut page = NoticePage {
        title,
        number: format!("{short}〔{year}〕{}{round}号", c.case_no),
        date: day_of(&src.at),
        reprint: false,
        addressee: format!("{}：", c.applicant.name),
        paragraphs: Vec::new(),
        table_head: Vec::new(),
        table: Vec::new(),
        after_table: Vec::new(),
        signatures: Vec::new(),
        issuer: dept.clone(),
        back: format!("/cases/{}", c.case_no),
    };
    match kind {
        "correction" => {
            let asked = chrono::DateTime::parse_from_rfc3339(&src.at)
                .map(|t| t.date_naive())
                .ok()?;
            let due = calendar.due_date(asked, catalog.county.correction_days);
            page.paragraphs.push(format!(
                "你（单位）于{received}提出的{}（办件编号{}），经审查，申请材料不齐全或者不符合法定形式。{law}现一次性告知你（单位）需要补正的全部材料如下：",
                application(c), c.case_no
            ));
            page.table_head = vec!["序号", "材料名称", "形式", "份数", "存在的问题"];
            for (i, (m, problem)) in c.asked_for(false).into_iter().enumerate() {
                let problem = if problem.is_empty() {
                    "未提交或不符合要求".to_string()
                } else {
                    problem.to_string()
                };
                page.table.push(vec![
                    (i + 1).to_string(),
                    m.name.clone(),
                    m.form.clone(),
                    m.copies.to_string(),
                    problem,
                ]);
            }
            page.after_table.push(format!(
                "请于{}前将上述材料交代办员或县政务服务中心窗口。补正期间不计入办理时限，自收到全部补正材料之日起重新计算。",
                due.format("%Y年%m月%d日")
            ));
            if !c.workflow.correction_note.is_empty() {
                page.after_table
                    .push(format!("说明：{}", c.workflow.correction_note));
            }
            page.after_table.push(format!(
                "告知人：{}　　告知日期：{}",
                src.by_name, page.date
            ));
        }
        "rejection" => {
            page.paragraphs.push(format!(
                "你（单位）于{received}提出的{}（办件编号{}），经审查，决定不予受理。",
                application(c),
                c.case_no
            ));
            page.paragraphs
                .push(format!("不予受理的理由：{}", c.workflow.reason));
            page.paragraphs.push(rights(catalog));
        }
        "acceptance" => {
            let accepted = c
                .workflow
                .accepted_on
                .as_deref()
                .map(ymd)
                .unwrap_or_default();
            let deadline = c
                .deadline
                .as_deref()
                .map(ymd)
                .unwrap_or_else(|| "以县级通知为准".to_string());
            page.paragraphs.push(format!(
                "你（单位）于{received}提出的{}（办件编号{}），申请材料齐全、符合法定形式，{law}决定予以受理。",
                application(c), c.case_no
            ));
            page.table_head = vec![
                "受理单位",
                "受理人员",
                "受理日期",
                "承诺时限",
                "承诺办结日期",
            ];
            page.table.push(vec![
                dept.clone(),
                src.by_name.clone(),
                accepted,
                limit_text(
                    c.item.kind(),
                    u32::try_from(c.item.promised_days).unwrap_or(u32::MAX),
                    c.item.day_unit(),
                ),
                deadline,
            ]);
            page.after_table.push(
                "承诺办结日期按县级工作日历计算；听证、检验、专家评审及补正材料的时间不计入办理时限。"
                    .to_string(),
            );
        }
        "decision" => {
            let denied = c.workflow.decision == "denied";
            page.paragraphs.push(format!(
                "你（单位）于{received}提出的{}（办件编号{}），经审查，{}。",
                application(c),
                c.case_no,
                match (licence, denied) {
                    (true, true) => "不符合法定条件、标准，决定不予行政许可",
                    (true, false) => "符合法定条件、标准，决定准予行政许可",
                    (false, true) => "不符合规定的条件，决定不予办理",
                    (false, false) => "符合规定的条件，决定予以办理",
                }
            ));
            if denied {
                page.paragraphs
                    .push(format!("不予许可的理由和依据：{}", c.workflow.reason));
                page.paragraphs.push(rights(catalog));
            }
            if !c.workflow.result_name.is_empty() {
                page.paragraphs.push(format!(
                    "办理结果：{}{}",
                    c.workflow.result_name,
                    if c.workflow.result_no.is_empty() {
                        String::new()
                    } else {
                        format!("（编号{}）", c.workflow.result_no)
                    }
                ));
            }
            page.paragraphs
                .push(format!("决定日期：{}", ymd(&c.workflow.decided_on)));
        }
        _ => {
            let delivered = last(c, &[ActionKind::Deliver, ActionKind::CompleteOnSite]);
            let served = if c.workflow.result_name.is_empty() {
                decision_title(c, licence, "decision")
                    .unwrap_or("")
                    .to_string()
            } else {
                format!("{}（{}）", c.workflow.result_name, c.workflow.result_no)
            };
            page.addressee = String::new();
            page.table_head = vec!["项目", "内容"];
            page.table = vec![
                vec!["办件编号".into(), c.case_no.clone()],
                vec!["办理事项".into(), c.item.name.clone()],
                vec!["受送达人".into(), c.applicant.name.clone()],
                vec!["送达文书".into(), served],
                vec!["送达方式".into(), c.delivery.clone()],
                vec![
                    "送达人".into(),
                    delivered.map(|h| h.by_name.clone()).unwrap_or_default(),
                ],
                vec![
                    "送达时间".into(),
                    delivered.map(|h| day_of(&h.at)).unwrap_or_default(),
                ],
            ];
            page.signatures = vec![
                "受送达人（签名或盖章）",
                "代收人及与受送达人关系",
                "送达人（签名）",
            ];
        }
    }
    Some(page)
}

async fn case_notice(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Path((case_no, kind)): Path<(String, String)>,
) -> Response {
    if !KINDS.iter().any(|(k, _)| *k == kind) {
        return page_error(AppError::NotFound("没有这种通知书。".into()));
    }
    let c = match service::case_no(&case_no) {
        Ok(no) => service::load_case_for(&state, &user, &no).await,
        Err(e) => Err(e),
    };
    let c = match c {
        Ok(c) => c,
        Err(e) => return page_error(e),
    };
    let Some(mut page) = build(&c, &kind, &state.catalog(), &state.calendar()) else {
        let title = KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or("通知书", |(_, t)| *t);
        let e = AppError::Conflict(format!(
            "办件当前为“{}”，还不能打印{title}。",
            c.state()
                .map(|s| s.label_with(&c.workflow.decision))
                .unwrap_or("未知状态")
        ));
        return page_error(e);
    };
    let st = state.clone();
    let what = format!("{}/{kind}/{}", c.case_no, page.number);
    match blocking(move || Ok(st.store.note_print(&what)?)).await {
        Ok(before) => page.reprint = before > 0,
        Err(e) => return page_error(e),
    }
    render(&page)
}

/// 一次性告知单: everything an item needs, printable before any case exists.
async fn checklist(
    State(state): State<SharedState>,
    WebUser(_user): WebUser,
    Path(code): Path<String>,
) -> Response {
    let catalog = state.catalog();
    let Some(item) = catalog.items.iter().find(|i| i.code == code) else {
        return page_error(AppError::NotFound("事项目录中没有这个事项。".into()));
    };
    let today = tongban_runtime::clock::beijing_now();
    let mut page = NoticePage {
        title: "政务服务事项一次性告知单".into(),
        number: String::new(),
        date: today.format("%Y年%m月%d日").to_string(),
        reprint: false,
        addressee: String::new(),
        paragraphs: vec![
            format!(
                "办理事项：{}（{}，{}件）",
                item.name,
                item.department_full,
                item.kind.label()
            ),
            format!(
                "承诺时限：{}；法定时限：{}。",
                limit_text(item.kind, item.promised_days, item.day_unit),
                limit_text(item.kind, item.legal_days, item.day_unit)
            ),
            "请按下列清单一次备齐材料，可交村（社区）代办员代为办理，无需往返县城。".into(),
        ],
        table_head: vec!["序号", "材料名称", "是否必需", "形式", "份数", "说明"],
        table: item
            .materials
            .iter()
            .enumerate()
            .map(|(i, m)| {
                vec![
                    (i + 1).to_string(),
                    m.name.clone(),
                    if m.required { "必需" } else { "如有" }.to_string(),
                    m.form.clone(),
                    m.copies.to_string(),
                    m.note.clone(),
                ]
            })
            .collect(),
        after_table: Vec::new(),
        signatures: Vec::new(),
        issuer: format!("{}　{}", state.identity.name, item.department_full),
        back: "/cases/new".into(),
    };
    if !catalog.county.hall.is_empty() {
        page.after_table
            .push(format!("县级办理地点：{}", catalog.county.hall));
    }
    render(&page)
}
