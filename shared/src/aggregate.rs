//! The county's numbers as parts the store keeps with every case write, so that `/api/stats` and the
//! dashboard read a few thousand counters instead of every case (issue 17: 2–3.5 s at a million
//! cases when they scanned).
//!
//! A case version contributes its [`Parts`]: the store adds them when it writes the version and
//! subtracts the previous version's in the same transaction. What does not depend on the day is
//! summed per (department, node) [`Cell`]; what does — the deadline colours and the hand-overs still
//! running — is kept by deadline date or receipt instant and coloured when asked, against the
//! calendar in use then. [`stats_from_parts`] gives exactly what [`crate::stats::compute`] gives over
//! the same cases; the property test below checks that on random counties.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::calendar::Calendar;
use crate::case::{CaseState, CaseSummary};
use crate::stats::{
    handover_late_minutes, handover_limit_for, is_bad_review, transit_minutes, Group, Stats,
    StatsBuilder, Urgency,
};

/// The day-independent numbers of the cases of one (department, node).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub total: u64,
    pub by_state: BTreeMap<String, u64>,
    pub decided: u64,
    pub on_time: u64,
    pub late: u64,
    pub evaluations: u64,
    pub evaluation_sum: u64,
    pub bad_reviews: u64,
    pub escalations: u64,
    pub transit_sum: i64,
    pub transit_count: u64,
    pub in_transit: u64,
    /// Hand-overs that ended (the department signed) later than their limit.
    pub handover_late_done: u64,
    /// 中台: questions open, answered, and the minutes to answer summed.
    pub questions_open: u64,
    pub answered: u64,
    pub answer_minutes: u64,
    /// 待缴费, and the fees paid (how many, sum in fen).
    pub awaiting_payment: u64,
    pub payments: u64,
    pub fees_fen: u64,
}

impl Cell {
    pub fn add(&mut self, other: &Cell) {
        self.combine(other, 1);
    }

    pub fn subtract(&mut self, other: &Cell) {
        self.combine(other, -1);
    }

    /// Whether nothing is counted (the store then drops the cell).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn combine(&mut self, o: &Cell, sign: i64) {
        let f = |a: &mut u64, b: u64| {
            *a = if sign > 0 {
                a.saturating_add(b)
            } else {
                a.saturating_sub(b)
            }
        };
        f(&mut self.total, o.total);
        for (state, n) in &o.by_state {
            let slot = self.by_state.entry(state.clone()).or_default();
            f(slot, *n);
            if *slot == 0 {
                self.by_state.remove(state);
            }
        }
        f(&mut self.decided, o.decided);
        f(&mut self.on_time, o.on_time);
        f(&mut self.late, o.late);
        f(&mut self.evaluations, o.evaluations);
        f(&mut self.evaluation_sum, o.evaluation_sum);
        f(&mut self.bad_reviews, o.bad_reviews);
        f(&mut self.escalations, o.escalations);
        self.transit_sum += sign * o.transit_sum;
        f(&mut self.transit_count, o.transit_count);
        f(&mut self.in_transit, o.in_transit);
        f(&mut self.handover_late_done, o.handover_late_done);
        f(&mut self.questions_open, o.questions_open);
        f(&mut self.answered, o.answered);
        f(&mut self.answer_minutes, o.answer_minutes);
        f(&mut self.awaiting_payment, o.awaiting_payment);
        f(&mut self.payments, o.payments);
        f(&mut self.fees_fen, o.fees_fen);
    }
}

/// What one case version contributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The department handling it now (the dashboard's per-department rows).
    pub dept: String,
    /// The node that opened it (its case number's scope), when the number has one.
    pub node: Option<String>,
    pub cell: Cell,
    /// The deadline of a case whose clock runs (accepted or under review): coloured by the day.
    pub deadline: Option<NaiveDate>,
    /// A hand-over still running (received at the county, not yet signed for by the department):
    /// whether it is urgent, and the county's receipt in ms.
    pub handover: Option<(bool, i64)>,
    /// The intake day (YYYY-MM-DD).
    pub day: Option<String>,
}

/// The parts of one case version.
pub fn parts(s: &CaseSummary) -> Parts {
    let state = s.state();
    let mut cell = Cell {
        total: 1,
        ..Cell::default()
    };
    cell.by_state.insert(s.state.clone(), 1);
    if let Some(decided) = &s.decided_on {
        cell.decided = 1;
        match s.deadline.as_deref() {
            Some(d) if decided.as_str() > d => cell.late = 1,
            _ => cell.on_time = 1,
        }
    }
    if s.evaluation > 0 {
        cell.evaluations = 1;
        cell.evaluation_sum = u64::from(s.evaluation);
        cell.bad_reviews = u64::from(is_bad_review(u64::from(s.evaluation)));
    }
    cell.escalations = u64::from(s.escalations);
    cell.questions_open = s.questions_open.len() as u64;
    cell.answered = u64::from(s.answered);
    cell.answer_minutes = s.answer_minutes;
    cell.awaiting_payment = u64::from(s.awaiting_payment());
    if !s.paid_on.is_empty() {
        cell.payments = 1;
        cell.fees_fen = s.paid_fen;
    }
    match transit_minutes(s) {
        Some(t) => {
            cell.transit_sum = t;
            cell.transit_count = 1;
        }
        None => cell.in_transit = u64::from(state == Some(CaseState::Submitted)),
    }
    let running = s.received_ms > 0
        && s.dept_received_ms == 0
        && matches!(state, Some(CaseState::Received | CaseState::Accepted));
    if !running {
        // Ended or never started: its lateness no longer depends on the time.
        cell.handover_late_done = u64::from(handover_late_minutes(s, 0) > 0);
    }
    let deadline = match state {
        Some(CaseState::Accepted | CaseState::Review) => s
            .deadline
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
        _ => None,
    };
    Parts {
        dept: s.handling_dept.clone(),
        node: crate::sync::scope::scope_of(&s.case_no).map(str::to_string),
        cell,
        deadline,
        handover: running.then_some((s.urgent, s.received_ms)),
        day: s.created_at.get(..10).map(str::to_string),
    }
}

/// The latest receipt instant (ms) at which a running hand-over is late at `now_ms`: its whole
/// minutes since the receipt exceed its limit ([`handover_late_minutes`]).
pub fn handover_late_if_received_by(urgent: bool, now_ms: i64) -> i64 {
    now_ms - (handover_limit_for(urgent) + 1) * 60_000
}

/// What the store holds for the numbers, read back.
#[derive(Debug, Clone, Default)]
pub struct StoredParts {
    /// (department, node, cell)
    pub cells: Vec<(String, Option<String>, Cell)>,
    /// (deadline, department, node, number of cases)
    pub deadlines: Vec<(NaiveDate, String, Option<String>, u64)>,
    /// Running hand-overs now late (the store counts them from its index of receipts).
    pub handovers_late: u64,
    /// Cases per intake day, for the last 30 days at least.
    pub days: BTreeMap<String, u64>,
}

/// The statistics from the stored parts: equal to [`crate::stats::compute`] over the cases.
pub fn stats_from_parts(
    parts: &StoredParts,
    today: NaiveDate,
    calendar: &Calendar,
    yellow_days: u32,
) -> Stats {
    // The builder makes the 30 intake days; the rest is summed here.
    let mut st = StatsBuilder::new(today, 0, calendar, yellow_days).finish();
    let mut all = Cell::default();
    let mut per_dept: BTreeMap<String, Cell> = BTreeMap::new();
    let mut per_node: BTreeMap<String, Cell> = BTreeMap::new();
    let mut per_township: BTreeMap<String, Cell> = BTreeMap::new();
    for (dept, node, cell) in &parts.cells {
        all.add(cell);
        per_dept.entry(dept.clone()).or_default().add(cell);
        if let Some(node) = node {
            per_node.entry(node.clone()).or_default().add(cell);
            if let Some(township) = node.get(..9) {
                per_township
                    .entry(township.to_string())
                    .or_default()
                    .add(cell);
            }
        }
    }
    let mut colours: Vec<(Urgency, &str, Option<&str>, u64)> = Vec::new();
    let mut colour_of_day: BTreeMap<NaiveDate, Urgency> = BTreeMap::new();
    for (deadline, dept, node, n) in &parts.deadlines {
        let colour = *colour_of_day.entry(*deadline).or_insert_with(|| {
            if today > *deadline {
                Urgency::Red
            } else if calendar.working_days_between(today, *deadline) <= yellow_days {
                Urgency::Yellow
            } else {
                Urgency::Green
            }
        });
        colours.push((colour, dept, node.as_deref(), *n));
    }
    let group = |cell: &Cell, pick: &dyn Fn(&str, Option<&str>) -> bool| {
        let mut g = Group {
            total: cell.total,
            decided: cell.decided,
            on_time: cell.on_time,
            late: cell.late,
            evaluations: cell.evaluations,
            bad_reviews: cell.bad_reviews,
            questions_open: cell.questions_open,
            answered: cell.answered,
            answer_minutes: cell.answer_minutes,
            awaiting_payment: cell.awaiting_payment,
            payments: cell.payments,
            fees_fen: cell.fees_fen,
            ..Group::default()
        };
        g.evaluation_sum = cell.evaluation_sum;
        g.avg_evaluation =
            (cell.evaluations > 0).then(|| cell.evaluation_sum as f64 / cell.evaluations as f64);
        for (colour, dept, node, n) in &colours {
            if pick(dept, *node) {
                match colour {
                    Urgency::Red => g.overdue += n,
                    Urgency::Yellow => g.yellow += n,
                    Urgency::Green => {}
                }
            }
        }
        g
    };
    let whole = group(&all, &|_, _| true);
    st.total = all.total;
    st.by_state = all.by_state.clone();
    st.overdue = whole.overdue;
    st.yellow = whole.yellow;
    st.handover_late = all.handover_late_done + parts.handovers_late;
    st.transit_sum = all.transit_sum;
    st.transit_count = all.transit_count;
    st.transit_avg_minutes =
        (all.transit_count > 0).then(|| all.transit_sum as f64 / all.transit_count as f64);
    st.in_transit = all.in_transit;
    st.escalations = all.escalations;
    st.bad_reviews = all.bad_reviews;
    st.on_time_rate = whole.on_time_rate();
    st.avg_evaluation = whole.avg_evaluation;
    st.all = whole;
    st.per_department = per_dept
        .iter()
        .map(|(d, c)| (d.clone(), group(c, &|dept, _| dept == d)))
        .collect();
    st.per_node = per_node
        .iter()
        .map(|(n, c)| (n.clone(), group(c, &|_, node| node == Some(n.as_str()))))
        .collect();
    st.per_township = per_township
        .iter()
        .map(|(t, c)| {
            let g = group(c, &|_, node| {
                node.is_some_and(|n| n.get(..9) == Some(t.as_str()))
            });
            (t.clone(), g)
        })
        .collect();
    for (day, n) in st.intake_per_day.iter_mut() {
        *n = parts.days.get(day).copied().unwrap_or(0);
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::compute;
    use rand::{Rng, SeedableRng};

    const STATES: [CaseState; 13] = CaseState::ALL;

    /// A random county: few departments, nodes, days and deadlines, so that they collide.
    fn random_summary(rng: &mut impl Rng, i: usize) -> CaseSummary {
        let node = ["420222100201", "420222100202", "420222101201", "bad"][rng.gen_range(0..4)];
        let day = |rng: &mut dyn rand::RngCore| format!("2026-12-{:02}", rng.gen_range(1..=28));
        let created_ms = 1_796_000_000_000 + rng.gen_range(0..3_000_000_000i64);
        CaseSummary {
            case_no: if node == "bad" {
                format!("x{i}")
            } else {
                format!("{node}-20261201-{i:04}")
            },
            state: STATES[rng.gen_range(0..STATES.len())].as_str().into(),
            created_at: day(rng) + "T09:00:00.000+08:00",
            created_ms,
            deadline: rng.gen_bool(0.8).then(|| day(rng)),
            handling_dept: ["民政", "人社", "", "医保"][rng.gen_range(0..4)].into(),
            decided_on: rng.gen_bool(0.4).then(|| day(rng)),
            evaluation: rng.gen_range(0..=5),
            escalations: rng.gen_range(0..3),
            received_ms: if rng.gen_bool(0.6) {
                created_ms + rng.gen_range(-60_000..10_000_000)
            } else {
                0
            },
            dept_received_ms: if rng.gen_bool(0.5) {
                created_ms + rng.gen_range(0..10_000_000)
            } else {
                0
            },
            urgent: rng.gen_bool(0.3),
            fee_due_fen: [0, 1000, 2000][rng.gen_range(0..3)],
            questions_open: match rng.gen_range(0..4) {
                0 => vec!["民政".into()],
                1 => vec!["人社".into(), "民政".into()],
                _ => Vec::new(),
            },
            answered: rng.gen_range(0..3),
            answer_minutes: rng.gen_range(0..500),
            paid_fen: rng.gen_range(0..3000),
            paid_on: if rng.gen_bool(0.4) {
                day(rng)
            } else {
                String::new()
            },
            ..CaseSummary::default()
        }
    }

    /// What the store does: parts added per version, the previous version's subtracted.
    fn stored(cases: &BTreeMap<String, CaseSummary>, now_ms: i64) -> StoredParts {
        let mut cells: BTreeMap<(String, Option<String>), Cell> = BTreeMap::new();
        let mut deadlines: BTreeMap<(NaiveDate, String, Option<String>), u64> = BTreeMap::new();
        let mut out = StoredParts::default();
        for s in cases.values() {
            let p = parts(s);
            cells
                .entry((p.dept.clone(), p.node.clone()))
                .or_default()
                .add(&p.cell);
            if let Some(d) = p.deadline {
                *deadlines.entry((d, p.dept, p.node)).or_default() += 1;
            }
            if let Some((urgent, at)) = p.handover {
                if at <= handover_late_if_received_by(urgent, now_ms) {
                    out.handovers_late += 1;
                }
            }
            if let Some(day) = p.day {
                *out.days.entry(day).or_default() += 1;
            }
        }
        out.cells = cells
            .into_iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|((d, n), c)| (d, n, c))
            .collect();
        out.deadlines = deadlines
            .into_iter()
            .map(|((d, dept, node), n)| (d, dept, node, n))
            .collect();
        out
    }

    #[test]
    fn numbers_from_the_parts_equal_a_scan_of_every_case() {
        let calendar = Calendar::builtin().unwrap();
        for seed in 0..40u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut cases = BTreeMap::new();
            let mut cell_kept = BTreeMap::<(String, Option<String>), Cell>::new();
            // Keeps the cells the way the store does, version after version: the new version's
            // parts added, the replaced one's subtracted.
            let mut write = |s: CaseSummary, cases: &mut BTreeMap<String, CaseSummary>| {
                let p = parts(&s);
                cell_kept.entry((p.dept, p.node)).or_default().add(&p.cell);
                if let Some(old) = cases.insert(s.case_no.clone(), s) {
                    let q = parts(&old);
                    cell_kept
                        .entry((q.dept, q.node))
                        .or_default()
                        .subtract(&q.cell);
                }
            };
            for i in 0..rng.gen_range(1..120) {
                write(random_summary(&mut rng, i), &mut cases);
                // Later versions of earlier cases.
                if i > 3 && rng.gen_bool(0.5) {
                    let earlier = rng.gen_range(0..i);
                    write(random_summary(&mut rng, earlier), &mut cases);
                }
            }
            let today: NaiveDate = format!("2026-12-{:02}", rng.gen_range(1..=28))
                .parse()
                .unwrap();
            // Now is within 40 minutes of some running hand-over's receipt, so that both limits
            // (10 and 30 minutes) cut through the county's hand-overs.
            let running: Vec<i64> = cases
                .values()
                .filter_map(|s| parts(s).handover.map(|(_, at)| at))
                .collect();
            let now_ms = match running.is_empty() {
                true => 1_796_000_000_000 + rng.gen_range(0..3_000_000_000i64),
                false => running[rng.gen_range(0..running.len())] + rng.gen_range(0..2_400_000),
            };
            let mut parts = stored(&cases, now_ms);
            let incremental: Vec<_> = cell_kept
                .into_iter()
                .filter(|(_, c)| !c.is_empty())
                .map(|((d, n), c)| (d, n, c))
                .collect();
            assert_eq!(
                incremental, parts.cells,
                "seed {seed}: cells kept by add and subtract"
            );
            parts.cells = incremental;
            let scanned = compute(cases.values(), today, now_ms, &calendar, 1);
            let from_parts = stats_from_parts(&parts, today, &calendar, 1);
            assert_eq!(from_parts, scanned, "seed {seed}");
        }
    }
}
