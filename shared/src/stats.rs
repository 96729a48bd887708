//! Supervision numbers from case summaries: deadline colours, hand-over delays, and the counts the
//! dashboard, `GET /api/stats` and the monthly assessment show. Pure: "today" and "now" come in.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use serde::Serialize;

use crate::calendar::Calendar;
use crate::case::{CaseState, CaseSummary};

/// Deadline colour of a case whose clock runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    Green,
    /// At most `yellow_days` working days left.
    Yellow,
    /// Past the deadline.
    Red,
}

/// Colour of a case that is with the county and whose clock runs (accepted or under review).
/// Evaluations at or below this (不满意, 非常不满意) are bad reviews the supervisor follows up.
pub const BAD_REVIEW_MAX: u64 = 2;

/// Whether an evaluation score (1–5; 0 for none yet) is a bad review.
pub fn is_bad_review(score: u64) -> bool {
    (1..=BAD_REVIEW_MAX).contains(&score)
}

pub fn urgency(
    s: &CaseSummary,
    today: NaiveDate,
    calendar: &Calendar,
    yellow_days: u32,
) -> Option<Urgency> {
    let state = s.state()?;
    if !matches!(state, CaseState::Accepted | CaseState::Review) {
        return None;
    }
    let deadline = NaiveDate::parse_from_str(s.deadline.as_deref()?, "%Y-%m-%d").ok()?;
    Some(if today > deadline {
        Urgency::Red
    } else if calendar.working_days_between(today, deadline) <= yellow_days {
        Urgency::Yellow
    } else {
        Urgency::Green
    })
}

/// Whether the case has a deadline colour at all: accepted or under review, with a deadline.
pub fn urgency_clock_runs(s: &CaseSummary) -> bool {
    matches!(s.state(), Some(CaseState::Accepted | CaseState::Review))
        && s.deadline
            .as_deref()
            .is_some_and(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
}

/// Minutes the county has from its receipt of a case to the department's sign-in (签收): 10 for
/// urgent cases, 30 otherwise (the county notice's 流转 limits).
pub fn handover_limit_minutes(s: &CaseSummary) -> i64 {
    handover_limit_for(s.urgent)
}

/// [`handover_limit_minutes`] of an urgent or ordinary case.
pub fn handover_limit_for(urgent: bool) -> i64 {
    if urgent {
        10
    } else {
        30
    }
}

/// Minutes the hand-over from the county's receipt to the department's sign-in took or has taken
/// beyond its limit (0 when in time, not started, or not applicable). Both ends are county clocks;
/// the village→county transit never counts here (see [`transit_minutes`]).
pub fn handover_late_minutes(s: &CaseSummary, now_ms: i64) -> i64 {
    if s.received_ms == 0 {
        return 0;
    }
    let end = if s.dept_received_ms > 0 {
        s.dept_received_ms
    } else if matches!(s.state(), Some(CaseState::Received | CaseState::Accepted)) {
        now_ms
    } else {
        return 0;
    };
    ((end - s.received_ms) / 60_000 - handover_limit_minutes(s)).max(0)
}

/// Minutes from the intake at the node (its clock) to the county's receipt (the county's): the
/// village→county transit, its own figure. `None` until the county received the case, or when the
/// node's clock makes it negative.
pub fn transit_minutes(s: &CaseSummary) -> Option<i64> {
    (s.received_ms > 0 && s.received_ms >= s.created_ms)
        .then(|| (s.received_ms - s.created_ms) / 60_000)
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Group {
    pub total: u64,
    pub overdue: u64,
    pub yellow: u64,
    pub decided: u64,
    pub on_time: u64,
    pub late: u64,
    pub evaluations: u64,
    pub avg_evaluation: Option<f64>,
    pub bad_reviews: u64,
    /// 中台 questions on its cases not answered yet, answered, and the minutes to answer summed.
    pub questions_open: u64,
    pub answered: u64,
    pub answer_minutes: u64,
    /// Approved cases whose fee is not paid yet (待缴费).
    pub awaiting_payment: u64,
    /// Fees the window recorded as paid: how many, and their sum in fen.
    pub payments: u64,
    pub fees_fen: u64,
    #[serde(skip)]
    pub(crate) evaluation_sum: u64,
}

impl Group {
    fn add(&mut self, s: &CaseSummary, colour: Option<Urgency>) {
        self.total += 1;
        match colour {
            Some(Urgency::Red) => self.overdue += 1,
            Some(Urgency::Yellow) => self.yellow += 1,
            _ => {}
        }
        if let Some(decided) = &s.decided_on {
            self.decided += 1;
            match s.deadline.as_deref() {
                Some(d) if decided.as_str() <= d => self.on_time += 1,
                Some(_) => self.late += 1,
                None => self.on_time += 1,
            }
        }
        self.questions_open += s.questions_open.len() as u64;
        self.answered += u64::from(s.answered);
        self.answer_minutes += s.answer_minutes;
        if s.awaiting_payment() {
            self.awaiting_payment += 1;
        }
        if !s.paid_on.is_empty() {
            self.payments += 1;
            self.fees_fen += s.paid_fen;
        }
        if s.evaluation > 0 {
            self.evaluations += 1;
            self.evaluation_sum += u64::from(s.evaluation);
            self.avg_evaluation = Some(self.evaluation_sum as f64 / self.evaluations as f64);
            if is_bad_review(u64::from(s.evaluation)) {
                self.bad_reviews += 1;
            }
        }
    }

    /// Average hours from a 中台 question to its answer.
    pub fn answer_hours(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.answer_minutes as f64 / 60.0 / self.answered as f64)
    }

    /// Share of decided cases decided by their deadline.
    pub fn on_time_rate(&self) -> Option<f64> {
        (self.decided > 0).then(|| self.on_time as f64 / self.decided as f64)
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    pub total: u64,
    pub by_state: BTreeMap<String, u64>,
    pub overdue: u64,
    pub yellow: u64,
    pub handover_late: u64,
    /// Average village→county transit of the cases the county has received, in minutes.
    pub transit_avg_minutes: Option<f64>,
    /// Cases filed at a node that the county has not received yet.
    pub in_transit: u64,
    #[serde(skip)]
    pub(crate) transit_sum: i64,
    #[serde(skip)]
    pub(crate) transit_count: u64,
    pub escalations: u64,
    pub bad_reviews: u64,
    pub on_time_rate: Option<f64>,
    pub avg_evaluation: Option<f64>,
    pub per_department: BTreeMap<String, Group>,
    /// By the node that opened the case (its scope).
    pub per_node: BTreeMap<String, Group>,
    /// By township (a village's cases count for its township too).
    pub per_township: BTreeMap<String, Group>,
    /// Intake per day over the last 30 days (YYYY-MM-DD → count).
    pub intake_per_day: BTreeMap<String, u64>,
    #[serde(skip)]
    pub(crate) all: Group,
}

/// Accumulates [`Stats`] one summary at a time, so a county's worth of cases never has to be held at
/// once.
pub struct StatsBuilder<'a> {
    st: Stats,
    today: NaiveDate,
    now_ms: i64,
    calendar: &'a Calendar,
    yellow_days: u32,
}

impl<'a> StatsBuilder<'a> {
    pub fn new(today: NaiveDate, now_ms: i64, calendar: &'a Calendar, yellow_days: u32) -> Self {
        let mut st = Stats::default();
        let mut d = today.checked_sub_days(Days::new(29)).unwrap_or(today);
        while d <= today {
            st.intake_per_day
                .insert(d.format("%Y-%m-%d").to_string(), 0);
            d = d
                .checked_add_days(Days::new(1))
                .unwrap_or(today + Days::new(1));
        }
        StatsBuilder {
            st,
            today,
            now_ms,
            calendar,
            yellow_days,
        }
    }

    pub fn add(&mut self, s: &CaseSummary) {
        let st = &mut self.st;
        let colour = urgency(s, self.today, self.calendar, self.yellow_days);
        st.total += 1;
        *st.by_state.entry(s.state.clone()).or_default() += 1;
        match colour {
            Some(Urgency::Red) => st.overdue += 1,
            Some(Urgency::Yellow) => st.yellow += 1,
            _ => {}
        }
        if handover_late_minutes(s, self.now_ms) > 0 {
            st.handover_late += 1;
        }
        if let Some(t) = transit_minutes(s) {
            st.transit_sum += t;
            st.transit_count += 1;
            st.transit_avg_minutes = Some(st.transit_sum as f64 / st.transit_count as f64);
        } else if s.state() == Some(CaseState::Submitted) {
            st.in_transit += 1;
        }
        st.escalations += u64::from(s.escalations);
        if is_bad_review(u64::from(s.evaluation)) {
            st.bad_reviews += 1;
        }
        st.all.add(s, colour);
        st.per_department
            .entry(s.handling_dept.clone())
            .or_default()
            .add(s, colour);
        if let Some(node) = crate::sync::scope::scope_of(&s.case_no) {
            st.per_node
                .entry(node.to_string())
                .or_default()
                .add(s, colour);
            if node.len() >= 9 {
                st.per_township
                    .entry(node[..9].to_string())
                    .or_default()
                    .add(s, colour);
            }
        }
        if let Some(day) = s.created_at.get(..10) {
            if let Some(n) = st.intake_per_day.get_mut(day) {
                *n += 1;
            }
        }
    }

    pub fn finish(mut self) -> Stats {
        self.st.on_time_rate = self.st.all.on_time_rate();
        self.st.avg_evaluation = self.st.all.avg_evaluation;
        self.st
    }
}

/// Everything the dashboard shows, in one pass over the summaries.
pub fn compute<'a>(
    summaries: impl IntoIterator<Item = &'a CaseSummary>,
    today: NaiveDate,
    now_ms: i64,
    calendar: &Calendar,
    yellow_days: u32,
) -> Stats {
    let mut b = StatsBuilder::new(today, now_ms, calendar, yellow_days);
    for s in summaries {
        b.add(s);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(no: &str, state: CaseState, deadline: Option<&str>) -> CaseSummary {
        CaseSummary {
            case_no: no.into(),
            item_code: "x".into(),
            item_name: "x".into(),
            department: "民政".into(),
            state: state.as_str().into(),
            created_at: "2026-11-20T09:00:00.000+08:00".into(),
            created_ms: 0,
            applicant_name: "甲".into(),
            applicant_cert_no: String::new(),
            phone: String::new(),
            agent: "a".into(),
            deadline: deadline.map(str::to_string),
            delivery: String::new(),
            materials_missing: 0,
            kind: "承诺".into(),
            handling_dept: "民政".into(),
            decided_on: None,
            evaluation: 0,
            escalations: 0,
            correction_rounds: 0,
            received_ms: 0,
            dept_received_ms: 0,
            urgent: false,
            not_adopted: 0,
            ..Default::default()
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn deadline_colours_count_working_days() {
        let cal = Calendar::builtin().unwrap();
        // Friday 11-27, deadline Monday 11-30: one working day left → yellow at the default of 1.
        let s = summary(
            "420222100201-20261120-0001",
            CaseState::Review,
            Some("2026-11-30"),
        );
        assert_eq!(
            urgency(&s, day("2026-11-27"), &cal, 1),
            Some(Urgency::Yellow)
        );
        assert_eq!(
            urgency(&s, day("2026-11-20"), &cal, 1),
            Some(Urgency::Green)
        );
        assert_eq!(urgency(&s, day("2026-12-01"), &cal, 1), Some(Urgency::Red));
        let suspended = summary(
            "420222100201-20261120-0002",
            CaseState::Suspended,
            Some("2026-11-01"),
        );
        assert_eq!(
            urgency(&suspended, day("2026-12-01"), &cal, 1),
            None,
            "clock stopped"
        );
    }

    #[test]
    fn handover_runs_from_county_receipt_to_department_sign_in_and_transit_is_apart() {
        let mut s = summary("420222100201-20261120-0001", CaseState::Submitted, None);
        // Still on its way from the village: two hours of transit are not a late hand-over.
        assert_eq!(handover_late_minutes(&s, 120 * 60_000), 0);
        assert_eq!(transit_minutes(&s), None);
        s.state = CaseState::Accepted.as_str().into();
        s.received_ms = 100 * 60_000;
        assert_eq!(transit_minutes(&s), Some(100));
        assert_eq!(handover_late_minutes(&s, 129 * 60_000), 0);
        assert_eq!(handover_late_minutes(&s, 145 * 60_000), 15);
        s.urgent = true;
        assert_eq!(handover_late_minutes(&s, 115 * 60_000), 5);
        // Signed for after 12 minutes: 2 late for an urgent case, and it stays so.
        s.dept_received_ms = 112 * 60_000;
        s.state = CaseState::Review.as_str().into();
        assert_eq!(handover_late_minutes(&s, 999 * 60_000), 2);
    }

    #[test]
    fn groups_and_rates() {
        let cal = Calendar::builtin().unwrap();
        let mut a = summary(
            "420222100201-20261120-0001",
            CaseState::Decided,
            Some("2026-11-25"),
        );
        a.decided_on = Some("2026-11-24".into());
        a.evaluation = 5;
        let mut b = summary(
            "420222100202-20261120-0002",
            CaseState::Decided,
            Some("2026-11-25"),
        );
        b.decided_on = Some("2026-11-26".into());
        b.evaluation = 1;
        let c = summary(
            "420222101201-20261120-0003",
            CaseState::Review,
            Some("2026-11-01"),
        );
        let st = compute([&a, &b, &c], day("2026-11-27"), 0, &cal, 1);
        assert_eq!(st.total, 3);
        assert_eq!(st.overdue, 1);
        assert_eq!(st.on_time_rate, Some(0.5));
        assert_eq!(st.avg_evaluation, Some(3.0));
        assert_eq!(st.bad_reviews, 1);
        assert_eq!(st.per_township["420222100"].total, 2);
        assert_eq!(st.per_township["420222101"].overdue, 1);
        assert_eq!(st.intake_per_day["2026-11-20"], 3);
        assert_eq!(st.intake_per_day.len(), 30);
    }
}
