//! The monthly assessment (考核) workbook: one sheet per county account, per department, per node and
//! per person at a node,
//! with received, accepted, rejected, on time, overdue, average handling days and evaluations — counted
//! from every case's history, by the hub's clock.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_xlsxwriter::{Format, Workbook, XlsxError};
use tongban_runtime::store::{Store, StoreError};
use tongban_shared::calendar::Calendar;
use tongban_shared::case::{read_case, CaseDoc};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("month must be YYYY-MM, not {0}")]
    Month(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("workbook: {0}")]
    Xlsx(#[from] XlsxError),
    #[error("case {case_no}: {reason}")]
    Case { case_no: String, reason: String },
}

/// The numbers of one row (an account, a department or a node).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub corrections: u64,
    pub decided: u64,
    pub on_time: u64,
    pub overdue: u64,
    handling_days: u64,
    pub evaluations: u64,
    evaluation_sum: u64,
    pub bad_reviews: u64,
    /// Rectifications opened (督办) this month, those called back at least once, and those closed.
    pub rectifications: u64,
    pub called_back: u64,
    pub rectified: u64,
    /// Payments the window recorded this month (缴费登记), and their sum in fen.
    pub payments: u64,
    pub fees_fen: u64,
}

impl Row {
    /// Share of this month's rectifications whose applicant was called back (回访率).
    pub fn callback_rate(&self) -> Option<f64> {
        (self.rectifications > 0).then(|| self.called_back as f64 / self.rectifications as f64)
    }

    /// Share of this month's rectifications that are closed (整改办结率).
    pub fn rectified_rate(&self) -> Option<f64> {
        (self.rectifications > 0).then(|| self.rectified as f64 / self.rectifications as f64)
    }

    pub fn avg_handling_days(&self) -> Option<f64> {
        (self.decided > 0).then(|| self.handling_days as f64 / self.decided as f64)
    }

    pub fn avg_evaluation(&self) -> Option<f64> {
        (self.evaluations > 0).then(|| self.evaluation_sum as f64 / self.evaluations as f64)
    }
}

#[derive(Debug, Default)]
pub struct Monthly {
    pub month: String,
    pub by_account: BTreeMap<String, Row>,
    pub by_department: BTreeMap<String, Row>,
    pub by_node: BTreeMap<String, Row>,
    /// A station's people: `display name（station code）`.
    pub by_station_person: BTreeMap<String, Row>,
}

fn parse_month(month: &str) -> Result<(NaiveDate, NaiveDate), ReportError> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(|_| ReportError::Month(month.to_string()))?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(|| ReportError::Month(month.to_string()))?;
    Ok((first, next))
}

fn day(at: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(at.get(..10)?, "%Y-%m-%d").ok()
}

/// Counts one case's history entries that fall in `[first, next)`.
fn count_case(m: &mut Monthly, case: &CaseDoc, first: NaiveDate, next: NaiveDate, cal: &Calendar) {
    let in_month = |at: &str| day(at).is_some_and(|d| d >= first && d < next);
    let dept = case.handling_dept().to_string();
    let node = case.agent.node_code.clone();
    let deadline = case.deadline.as_deref().and_then(day);
    let accepted_on = case.workflow.accepted_on.as_deref().and_then(day);
    // Only what took effect counts: a second delivery or a refused event did not happen.
    for h in case
        .history
        .iter()
        .filter(|h| h.effective && in_month(&h.at))
    {
        let bump = |row: &mut Row| match h.action.as_str() {
            "receive" => row.received += 1,
            "accept" => row.accepted += 1,
            "reject" => row.rejected += 1,
            "request_correction" => row.corrections += 1,
            "approve" | "deny" => {
                row.decided += 1;
                let decided = day(&h.at);
                match (decided, deadline) {
                    (Some(d), Some(dl)) if d > dl => row.overdue += 1,
                    _ => row.on_time += 1,
                }
                if let (Some(a), Some(d)) = (accepted_on, decided) {
                    row.handling_days += u64::from(cal.working_days_between(a, d));
                }
            }
            "evaluate" if case.workflow.evaluation > 0 => {
                row.evaluations += 1;
                row.evaluation_sum += case.workflow.evaluation;
                if tongban_shared::stats::is_bad_review(case.workflow.evaluation) {
                    row.bad_reviews += 1;
                }
            }
            "record_payment" => {
                row.payments += 1;
                row.fees_fen += case.workflow.paid_fen;
            }
            // A rectification counts in the month it was opened, with how far it got since.
            "supervise" => {
                row.rectifications += 1;
                let r = &case.workflow.rectification;
                if r.callbacks > 0 {
                    row.called_back += 1;
                }
                if r.state == "closed" {
                    row.rectified += 1;
                }
            }
            _ => {}
        };
        if h.node.len() == 6 {
            // County accounts are assessed by what they did.
            bump(m.by_account.entry(h.by.clone()).or_default());
        } else {
            // So are a station's people, by name and station; their 收件 is their 接收.
            let who = if h.by_name.is_empty() {
                &h.by
            } else {
                &h.by_name
            };
            let person = m
                .by_station_person
                .entry(format!("{who}（{}）", h.node))
                .or_default();
            match h.action.as_str() {
                "intake" => person.received += 1,
                _ => bump(person),
            }
        }
        bump(m.by_department.entry(dept.clone()).or_default());
        // A station's 接收 is its intake; the county's receipt of the same case is the county's.
        let station = m.by_node.entry(node.clone()).or_default();
        match h.action.as_str() {
            "intake" => station.received += 1,
            "receive" => {}
            _ => bump(station),
        }
    }
}

/// Collects the month's numbers from the store (documents are loaded only for cases opened before the
/// month ends).
pub fn collect(store: &Store, month: &str) -> Result<Monthly, ReportError> {
    let (first, next) = parse_month(month)?;
    let cal = store.calendar()?;
    let mut candidates = Vec::new();
    store.for_each_summary(|s| {
        if s.created_at
            .get(..10)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            < Some(next)
        {
            candidates.push(s.case_no.clone());
        }
    })?;
    let mut m = Monthly {
        month: month.to_string(),
        ..Default::default()
    };
    for no in candidates {
        let Some(bytes) = store.document(&no)? else {
            continue;
        };
        let err = |reason: String| ReportError::Case {
            case_no: no.clone(),
            reason,
        };
        let doc = automerge::AutoCommit::load(&bytes).map_err(|e| err(e.to_string()))?;
        let case = read_case(&doc).map_err(|e| err(e.to_string()))?;
        count_case(&mut m, &case, first, next, &cal);
    }
    Ok(m)
}

const HEADERS: [&str; 19] = [
    "",
    "接收",
    "受理",
    "不予受理",
    "要求补正",
    "办结",
    "按时办结",
    "超期办结",
    "平均办理工作日",
    "评价数",
    "平均评价",
    "差评",
    "督办整改",
    "已回访",
    "整改办结",
    "回访率",
    "整改办结率",
    "缴费笔数",
    "收费（元）",
];

/// The workbook: sheets 窗口人员, 部门, 站点, 站点人员.
pub fn workbook(m: &Monthly) -> Result<Vec<u8>, ReportError> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    for (sheet, first_col, rows) in [
        ("窗口人员", "账号", &m.by_account),
        ("部门", "部门", &m.by_department),
        ("站点", "区划代码", &m.by_node),
        ("站点人员", "人员（站点）", &m.by_station_person),
    ] {
        let ws = wb.add_worksheet();
        ws.set_name(sheet)?;
        ws.write_string_with_format(0, 0, format!("{} 月度考核 · {}", m.month, sheet), &bold)?;
        for (c, h) in HEADERS.iter().enumerate() {
            let text = if c == 0 { first_col } else { h };
            ws.write_string_with_format(2, c as u16, text, &bold)?;
        }
        for (r, (name, row)) in rows.iter().enumerate() {
            let r = r as u32 + 3;
            ws.write_string(r, 0, name)?;
            let values = [
                row.received,
                row.accepted,
                row.rejected,
                row.corrections,
                row.decided,
                row.on_time,
                row.overdue,
            ];
            for (c, v) in values.iter().enumerate() {
                ws.write_number(r, c as u16 + 1, *v as f64)?;
            }
            if let Some(d) = row.avg_handling_days() {
                ws.write_number(r, 8, (d * 10.0).round() / 10.0)?;
            }
            ws.write_number(r, 9, row.evaluations as f64)?;
            if let Some(e) = row.avg_evaluation() {
                ws.write_number(r, 10, (e * 100.0).round() / 100.0)?;
            }
            for (c, v) in [
                row.bad_reviews,
                row.rectifications,
                row.called_back,
                row.rectified,
            ]
            .iter()
            .enumerate()
            {
                ws.write_number(r, c as u16 + 11, *v as f64)?;
            }
            for (c, rate) in [row.callback_rate(), row.rectified_rate()]
                .iter()
                .enumerate()
            {
                if let Some(rate) = rate {
                    ws.write_number(r, c as u16 + 15, (rate * 1000.0).round() / 1000.0)?;
                }
            }
            ws.write_number(r, 17, row.payments as f64)?;
            ws.write_number(r, 18, row.fees_fen as f64 / 100.0)?;
        }
        ws.set_column_width(0, 16)?;
    }
    Ok(wb.save_to_buffer()?)
}
