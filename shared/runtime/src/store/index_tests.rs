//! The indexes of formats 6 and 7 against a full scan: a store on disk gets random cases and random later
//! versions of them (states, departments, deadlines, names, reviews and hand-overs changing), and
//! every search, department list, queue and number read through the indexes must equal what a walk
//! over every summary finds; again after the indexes are rebuilt by the migration from format 5. A
//! village's store keeps the search tokens only.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use tongban_shared::aggregate::stats_from_parts;
use tongban_shared::calendar::Calendar;
use tongban_shared::case::{CaseState, CaseSummary};
use tongban_shared::postings::{self, queue};
use tongban_shared::stats::{self, urgency, Urgency};

use super::tables::K_VERSION;
use super::*;

/// Cases waiting for payment the checks saw, over every seed: the 待缴费 checks must not pass empty.
static AWAITING_SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

const NODES: [&str; 3] = ["420222100201", "420222100202", "420222101201"];
const DEPTS: [&str; 3] = ["民政", "人社", "医保"];
const NAMES: [&str; 6] = ["王秀英", "王秀", "李建国", "欧阳秀英", "张三丰", "王建"];
const ITEMS: [(&str, &str); 3] = [
    ("YX-MZ-001", "低保申请"),
    ("YX-MZ-002", "低保复核"),
    ("YX-YB-001", "医保报销"),
];

fn doc_bytes(no: &str) -> Vec<u8> {
    use automerge::transaction::Transactable;
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "case_no", no).unwrap();
    doc.save()
}

fn random_version(rng: &mut impl Rng, no: &str, created_ms: i64) -> CaseSummary {
    let day = |rng: &mut dyn rand::RngCore| format!("2026-12-{:02}", rng.gen_range(1..=20));
    let (item_code, item_name) = ITEMS[rng.gen_range(0..ITEMS.len())];
    let rectification = ["", "open", "closed"][rng.gen_range(0..3)];
    CaseSummary {
        case_no: no.into(),
        item_code: item_code.into(),
        item_name: item_name.into(),
        department: DEPTS[rng.gen_range(0..3)].into(),
        state: CaseState::ALL[rng.gen_range(0..CaseState::ALL.len())]
            .as_str()
            .into(),
        created_at: format!("2026-12-{:02}T09:00:00.000+08:00", rng.gen_range(1..=10)),
        created_ms,
        applicant_name: NAMES[rng.gen_range(0..NAMES.len())].into(),
        applicant_cert_no: format!("42022219500101{:03}X", rng.gen_range(0..20)),
        phone: format!("1380000{:04}", rng.gen_range(0..30)),
        deadline: rng.gen_bool(0.8).then(|| day(rng)),
        handling_dept: ["", "民政", "人社", "医保"][rng.gen_range(0..4)].into(),
        decided_on: rng.gen_bool(0.3).then(|| day(rng)),
        evaluation: rng.gen_range(0..=5),
        escalations: rng.gen_range(0..2),
        received_ms: if rng.gen_bool(0.6) {
            created_ms + rng.gen_range(0..3_600_000)
        } else {
            0
        },
        dept_received_ms: if rng.gen_bool(0.4) {
            created_ms + rng.gen_range(0..7_200_000)
        } else {
            0
        },
        urgent: rng.gen_bool(0.3),
        rectification: rectification.into(),
        rectification_owner: DEPTS[rng.gen_range(0..3)].into(),
        rectification_due: day(rng),
        assist_departments: match rng.gen_range(0..3) {
            0 => vec![DEPTS[rng.gen_range(0..3)].into()],
            _ => Vec::new(),
        },
        fee_due_fen: [0, 0, 2000][rng.gen_range(0..3)],
        questions_open: match rng.gen_range(0..4) {
            0 => vec![DEPTS[rng.gen_range(0..3)].into()],
            1 => vec![DEPTS[0].into(), DEPTS[1].into()],
            _ => Vec::new(),
        },
        paid_on: if rng.gen_bool(0.5) {
            day(rng)
        } else {
            String::new()
        },
        ..CaseSummary::default()
    }
}

fn write(store: &Store, s: &CaseSummary) {
    let no = s.case_no.clone();
    store
        .merge_case_from_upstream(&no, |_| Ok::<_, ()>((doc_bytes(&no), s.clone())))
        .unwrap()
        .unwrap();
}

fn all(store: &Store) -> Vec<CaseSummary> {
    let mut v = Vec::new();
    store.for_each_summary(|s| v.push(s.clone())).unwrap();
    v
}

/// Every page of a list, followed by its cursor, and the total of the first page.
fn every_page(store: &Store, q: &ListQuery) -> (Vec<String>, u64) {
    let mut q = ListQuery {
        limit: 7,
        ..q.clone()
    };
    let first = store.list(&q).unwrap();
    let total = first.total;
    let mut seen: Vec<String> = first.cases.iter().map(|c| c.case_no.clone()).collect();
    let mut next = first.next;
    while let Some(cursor) = next {
        q.cursor = Some(cursor);
        let page = store.list(&q).unwrap();
        assert_eq!(page.total, total, "every page says the same total");
        seen.extend(page.cases.iter().map(|c| c.case_no.clone()));
        next = page.next;
    }
    (seen, total)
}

/// Case numbers newest first, as lists order them.
fn newest_first(mut v: Vec<&CaseSummary>) -> Vec<String> {
    v.sort_by_key(|s| (std::cmp::Reverse(s.created_ms), s.case_no.clone()));
    v.into_iter().map(|s| s.case_no.clone()).collect()
}

fn check_against_a_scan(store: &Store, today: NaiveDate, now_ms: i64, seed: u64, county: bool) {
    let calendar = Calendar::builtin().unwrap();
    let cases = all(store);
    let mut queries: Vec<String> = ["王", "秀英", "王秀英", "欧阳秀", "建", "低保", "yx-yb-001"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    queries.push("0005X".into());
    queries.push("00012".into());
    queries.push(cases[0].case_no.clone());
    for text in &queries {
        for state in [None, Some(CaseState::Review)] {
            let q = ListQuery {
                text: Some(text.clone()),
                state,
                ..ListQuery::default()
            };
            let want = newest_first(
                cases
                    .iter()
                    .filter(|s| s.matches_text(text))
                    .filter(|s| state.is_none_or(|st| s.state == st.as_str()))
                    .collect(),
            );
            let (got, total) = every_page(store, &q);
            assert_eq!(
                BTreeSet::from_iter(&got),
                BTreeSet::from_iter(&want),
                "seed {seed}: {text:?} {state:?}"
            );
            assert_eq!(
                got.len(),
                want.len(),
                "seed {seed}: {text:?} listed once each"
            );
            assert_eq!(total, want.len() as u64, "seed {seed}: total of {text:?}");
        }
    }
    if !county {
        // A village or township keeps the search tokens only: no department lists, no queues.
        for dept in DEPTS {
            assert_eq!(store.token_count(&postings::dept_token(dept)).unwrap(), 0);
        }
        assert_eq!(store.token_count(queue::REVIEW).unwrap(), 0);
        assert_eq!(store.token_count(queue::CLOCK).unwrap(), 0);
        let (rows, total) = store
            .queues_merged(&[queue::window("SUBMITTED", ITEMS[0].0)], 10)
            .unwrap();
        assert!(
            rows.is_empty() && total == 0,
            "no window queue at a village"
        );
        return;
    }
    for dept in DEPTS {
        for state in [None, Some(CaseState::Accepted)] {
            let q = ListQuery {
                dept: Some(dept.into()),
                state,
                ..ListQuery::default()
            };
            let want = newest_first(
                cases
                    .iter()
                    .filter(|s| postings::list_departments(s).contains(&dept))
                    .filter(|s| state.is_none_or(|st| s.state == st.as_str()))
                    .collect(),
            );
            let (got, total) = every_page(store, &q);
            assert_eq!(got, want, "seed {seed}: list of {dept} {state:?}");
            assert_eq!(total, want.len() as u64);
        }
    }
    let queue_of = |token: &str| -> BTreeSet<String> {
        let (rows, total) = store.queue(token, usize::MAX).unwrap();
        assert_eq!(rows.len() as u64, total, "seed {seed}: count of {token}");
        rows.into_iter().map(|s| s.case_no).collect()
    };
    let scan = |f: &dyn Fn(&CaseSummary) -> bool| -> BTreeSet<String> {
        cases
            .iter()
            .filter(|s| f(s))
            .map(|s| s.case_no.clone())
            .collect()
    };
    let in_review = |s: &CaseSummary| {
        matches!(
            s.state(),
            Some(CaseState::Accepted | CaseState::Review | CaseState::Suspended)
        )
    };
    let listed = |s: &CaseSummary| {
        !matches!(
            s.state(),
            Some(CaseState::Evaluated | CaseState::Rejected | CaseState::Withdrawn)
        ) || stats::is_bad_review(u64::from(s.evaluation))
    };
    assert_eq!(queue_of(queue::REVIEW), scan(&in_review));
    for d in DEPTS {
        assert_eq!(
            queue_of(&queue::of(queue::REVIEW, d)),
            scan(&|s| in_review(s) && s.handling_dept == d)
        );
        assert_eq!(
            queue_of(&queue::of(queue::ASSIST, d)),
            scan(
                &|s| matches!(s.state(), Some(CaseState::Accepted | CaseState::Review))
                    && s.assist_departments.iter().any(|a| a == d)
            )
        );
        assert_eq!(
            queue_of(&queue::of(queue::ASK, d)),
            scan(&|s| s.questions_open.iter().any(|q| q == d)),
            "seed {seed}: 中台 questions open at {d}"
        );
        assert_eq!(
            queue_of(&queue::of(queue::RECTIFY, d)),
            scan(&|s| listed(s) && s.rectification == "open" && s.rectification_owner == d)
        );
    }
    assert_eq!(
        queue_of(queue::BAD_REVIEW),
        scan(&|s| listed(s)
            && stats::is_bad_review(u64::from(s.evaluation))
            && s.rectification.is_empty())
    );
    assert_eq!(
        queue_of(queue::ESCALATED),
        scan(&|s| listed(s) && s.escalations > 0 && s.rectification.is_empty())
    );
    let (overdue, total) = store.overdue(today, usize::MAX).unwrap();
    let want = scan(&|s| urgency(s, today, &calendar, 0) == Some(Urgency::Red));
    assert_eq!(total, want.len() as u64, "seed {seed}: overdue count");
    assert_eq!(
        overdue
            .into_iter()
            .map(|s| s.case_no)
            .collect::<BTreeSet<_>>(),
        want
    );
    for state in [CaseState::Submitted, CaseState::Received] {
        let (rows, total) = store.oldest_in_state(state, usize::MAX).unwrap();
        assert_eq!(total, rows.len() as u64);
        let mut want: Vec<&CaseSummary> =
            cases.iter().filter(|s| s.state() == Some(state)).collect();
        want.sort_by_key(|s| s.created_ms);
        let got: Vec<i64> = rows.iter().map(|s| s.created_ms).collect();
        assert_eq!(got, want.iter().map(|s| s.created_ms).collect::<Vec<_>>());
    }
    // A service area's window reads several items' tokens as one queue, longest waiting first.
    let item_sets: [&[usize]; 4] = [&[0], &[1], &[0, 2], &[0, 1, 2]];
    for state in queue::WINDOW_STATES {
        for set in item_sets {
            let codes: Vec<&str> = set.iter().map(|i| ITEMS[*i].0).collect();
            let tokens: Vec<String> = codes
                .iter()
                .map(|c| queue::window(state.as_str(), c))
                .collect();
            let mut want: Vec<&CaseSummary> = cases
                .iter()
                .filter(|s| s.state() == Some(state) && codes.contains(&s.item_code.as_str()))
                .collect();
            want.sort_by(|a, b| (a.created_ms, &a.case_no).cmp(&(b.created_ms, &b.case_no)));
            let want: Vec<String> = want.into_iter().map(|s| s.case_no.clone()).collect();
            for limit in [usize::MAX, 3] {
                let (rows, total) = store.queues_merged(&tokens, limit).unwrap();
                let got: Vec<String> = rows.into_iter().map(|s| s.case_no).collect();
                let first: Vec<String> = want.iter().take(limit).cloned().collect();
                assert_eq!(got, first, "seed {seed}: window queue {state:?} {codes:?}");
                assert_eq!(total, want.len() as u64, "seed {seed}: its count");
            }
        }
    }
    // 待缴费: the county's queue and each item's share.
    let (rows, total) = store.queue(queue::PAYMENT, usize::MAX).unwrap();
    let want = scan(&|s| s.awaiting_payment());
    AWAITING_SEEN.fetch_add(want.len(), std::sync::atomic::Ordering::Relaxed);
    assert_eq!(total, want.len() as u64, "seed {seed}: 待缴费 count");
    assert_eq!(
        rows.into_iter().map(|s| s.case_no).collect::<BTreeSet<_>>(),
        want
    );
    let tokens: Vec<String> = ITEMS
        .iter()
        .map(|(code, _)| queue::window(queue::AWAITING_PAYMENT, code))
        .collect();
    let (rows, total) = store.queues_merged(&tokens, usize::MAX).unwrap();
    assert_eq!(total, want.len() as u64);
    assert_eq!(
        rows.into_iter().map(|s| s.case_no).collect::<BTreeSet<_>>(),
        want
    );
    let first_day = today - chrono::Days::new(29);
    let parts = store.stats_parts(first_day, now_ms).unwrap();
    let from_parts = stats_from_parts(&parts, today, &calendar, 1);
    let scanned = stats::compute(&cases, today, now_ms, &calendar, 1);
    assert_eq!(from_parts, scanned, "seed {seed}: the county's numbers");
}

/// A county's store (the hub's), which keeps every token.
fn county_store(dir: &std::path::Path) -> Store {
    let identity = NodeIdentity {
        code: "420222".into(),
        name: "阳新县".into(),
        tier: tongban_shared::Tier::County,
        parent: None,
        upstream: None,
        upstream_name: None,
        fallback: None,
        created_at: "2026-11-27T09:00:00+08:00".into(),
    };
    let catalog = tongban_shared::catalog::BUILTIN_CATALOG_JSON;
    Store::create(dir, &identity, &[2; 16], catalog).unwrap()
}

#[test]
fn indexes_answer_what_a_scan_of_every_summary_answers_and_are_rebuilt_by_the_migration() {
    for seed in 0..8u64 {
        // Even seeds a county's store, odd ones a village's.
        let county = seed % 2 == 0;
        let dir = tempfile::tempdir().unwrap();
        let store = match county {
            true => county_store(dir.path()),
            false => super::tests::new_store(dir.path()),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut numbers: Vec<(String, i64)> = Vec::new();
        for i in 0..150 {
            let node = NODES[rng.gen_range(0..NODES.len())];
            let no = format!("{node}-20261201-{i:04}");
            // Some cases share a millisecond: the order must still be total.
            let created_ms = 1_796_000_000_000 + rng.gen_range(0..40) * 60_000;
            write(&store, &random_version(&mut rng, &no, created_ms));
            numbers.push((no, created_ms));
            if rng.gen_bool(0.6) {
                let (no, created_ms) = numbers[rng.gen_range(0..numbers.len())].clone();
                write(&store, &random_version(&mut rng, &no, created_ms));
            }
        }
        let today: NaiveDate = format!("2026-12-{:02}", rng.gen_range(1..=20))
            .parse()
            .unwrap();
        let now_ms = 1_796_000_000_000 + rng.gen_range(0..90) * 60_000;
        check_against_a_scan(&store, today, now_ms, seed, county);

        // Format 5 had none of these indexes: the migration makes them from the summaries.
        store.postings.clear().unwrap();
        store.posting_counts.clear().unwrap();
        store.cells.clear().unwrap();
        store.deadlines.clear().unwrap();
        store.handovers.clear().unwrap();
        store.meta.insert(K_VERSION, &5u32.to_be_bytes()).unwrap();
        store.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        check_against_a_scan(&store, today, now_ms, seed, county);
    }
    assert!(AWAITING_SEEN.load(std::sync::atomic::Ordering::Relaxed) > 0);
}
