//! The postings of a case: the tokens under which the store files it (format 6) so that a text
//! search, a department's list and each role's queue read one range of keys instead of every case
//! (issue 17: 3.5 s for a search and 7.4 s for a queue at a million cases when they scanned).
//!
//! [`postings`] says which tokens a case version has and in which order it sorts under each; the
//! store writes the difference to the previous version's in the case write's transaction, with a
//! count per token. [`text_sources`] says which tokens a search reads; a token is exact when every
//! case under it matches, otherwise the store checks each case against
//! [`CaseSummary::matches_text`], which stays the definition (the property test below checks that
//! the tokens find exactly what it matches).
//!
//! What the text search matches (the applicant's name, the tails of ID and phone numbers, the item,
//! the case number) is in [`CaseSummary::matches_text`].

use crate::case::{CaseState, CaseSummary};
use crate::stats::is_bad_review;

/// Separates a token's parts (department and state, queue and department). Never in a name.
pub const SEP: char = '\u{1f}';

/// One token of a case, and where it sorts under it (ascending, before the case's own newest-first
/// key). Empty `order`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Posting {
    pub token: String,
    pub order: Vec<u8>,
}

/// Queue tokens (`/queue`): each is a queue, `q:<name>` for the county and `q:<name><SEP><dept>`
/// for one department's share.
pub mod queue {
    /// Accepted, under review or suspended, by deadline: the departments' 审批中.
    pub const REVIEW: &str = "q:review";
    /// 联办: accepted or under review, for each assisting department, by deadline.
    pub const ASSIST: &str = "q:assist";
    /// Accepted or under review with a deadline (the clock runs), by deadline: the overdue are the
    /// first ones, up to today.
    pub const CLOCK: &str = "q:clock";
    /// Bad reviews no rectification has been opened for.
    pub const BAD_REVIEW: &str = "q:bad";
    /// 办不成事 escalations no rectification has been opened for.
    pub const ESCALATED: &str = "q:esc";
    /// Open rectifications, by due date; `q:rect<SEP><owner>` for the owning department.
    pub const RECTIFY: &str = "q:rect";

    /// The token of `queue` for one department.
    pub fn of(queue: &str, dept: &str) -> String {
        format!("{queue}{}{dept}", super::SEP)
    }

    /// The cases of one item waiting at the county window in one state, longest waiting first: a
    /// window of a service area reads the tokens of the items its area receives (format 7).
    pub const WINDOW: &str = "q:win";

    /// The states a window's queues show: what waits on the county window.
    pub const WINDOW_STATES: [crate::case::CaseState; 4] = [
        crate::case::CaseState::Submitted,
        crate::case::CaseState::Received,
        crate::case::CaseState::Correction,
        crate::case::CaseState::ResultReady,
    ];

    /// Cases with a 中台 question not answered yet, `q:ask<SEP><dept>` for the department asked
    /// (format 7), longest waiting first.
    pub const ASK: &str = "q:ask";

    /// Approved cases whose fee the window has not recorded as paid (待缴费), oldest first; a
    /// service area's share is `window(AWAITING_PAYMENT, code)` per item (format 7).
    pub const PAYMENT: &str = "q:pay";
    /// The pseudo-state of [`window`] tokens for 待缴费 (not a `CaseState`: the case is decided).
    pub const AWAITING_PAYMENT: &str = "AWAITING_PAYMENT";

    /// The token of the cases of item `code` in `state` waiting at the window.
    pub fn window(state: &str, code: &str) -> String {
        format!("{WINDOW}{sep}{state}{sep}{code}", sep = super::SEP)
    }
}

/// A department's list (`ListQuery::dept`): the cases it handles or assists, newest first.
pub fn dept_token(dept: &str) -> String {
    format!("D:{dept}")
}

/// A department's list in one state.
pub fn dept_state_token(dept: &str, state: &str) -> String {
    format!("S:{dept}{SEP}{state}")
}

fn name_prefix(prefix: &str) -> String {
    format!("N:{prefix}")
}

fn digits_tail(tail: &str) -> String {
    format!("d:{tail}")
}

/// The token of one item as cases name it (code and name: a renamed item has two).
pub fn item_token(code: &str, name: &str) -> String {
    format!("i:{code}{SEP}{name}")
}

/// The last four characters, upper-cased, of an ID or phone number with at least four.
fn tail4(s: &str) -> Option<String> {
    let s = s.trim();
    (s.len() >= 4 && s.is_ascii()).then(|| s[s.len() - 4..].to_ascii_uppercase())
}

/// Whether `q` is searched as a number's tail (ID or phone): four or more letters and digits.
fn is_number_tail(q: &str) -> bool {
    q.len() >= 4 && q.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The departments whose list shows the case: the one handling it (the item's department until a
/// department has it) and the 联办 departments that give an opinion.
pub fn list_departments(s: &CaseSummary) -> Vec<&str> {
    let handling = if s.handling_dept.is_empty() {
        &s.department
    } else {
        &s.handling_dept
    };
    let mut depts = vec![handling.as_str()];
    for d in &s.assist_departments {
        if !depts.contains(&d.as_str()) {
            depts.push(d);
        }
    }
    depts
}

/// Which store keeps the tokens: department lists and the queues of `/queue` exist only at the
/// county; a village or township keeps the search tokens alone (each token is a sled key, and keys
/// are most of a case's bytes on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keeper {
    County,
    Station,
}

/// Every token of one case version that `keeper` keeps, each once.
pub fn postings(s: &CaseSummary, keeper: Keeper) -> Vec<Posting> {
    let mut out: Vec<Posting> = Vec::new();
    let mut add = |token: String, order: &[u8]| {
        out.push(Posting {
            token,
            order: order.to_vec(),
        })
    };
    // The name: every beginning of it (a surname, a full name). Each token is a key in sled, whose
    // log costs some 250 bytes per key on disk (docs/BENCHMARKS.md): a part from the middle of a
    // name is not searched.
    let chars: Vec<char> = s.applicant_name.trim().chars().collect();
    for i in 0..chars.len() {
        add(name_prefix(&chars[..=i].iter().collect::<String>()), &[]);
    }
    for number in [&s.applicant_cert_no, &s.phone] {
        if let Some(t) = tail4(number) {
            add(digits_tail(&t), &[]);
        }
    }
    add(item_token(&s.item_code, &s.item_name), &[]);
    if keeper == Keeper::Station {
        out.sort();
        out.dedup_by(|a, b| a.token == b.token);
        return out;
    }
    for d in list_departments(s) {
        add(dept_token(d), &[]);
        add(dept_state_token(d, &s.state), &[]);
    }
    let state = s.state();
    // Decimal, so that the order holds no 0 byte (the key's separator); oldest first.
    let waiting_since = format!("{:015}", s.created_ms.max(0));
    if state.is_some_and(|st| queue::WINDOW_STATES.contains(&st)) {
        add(
            queue::window(&s.state, &s.item_code),
            waiting_since.as_bytes(),
        );
    }
    for dept in &s.questions_open {
        add(queue::of(queue::ASK, dept), waiting_since.as_bytes());
    }
    if s.awaiting_payment() {
        add(queue::PAYMENT.into(), waiting_since.as_bytes());
        add(
            queue::window(queue::AWAITING_PAYMENT, &s.item_code),
            waiting_since.as_bytes(),
        );
    }
    let deadline = s.deadline.as_deref().unwrap_or("~").as_bytes();
    if matches!(
        state,
        Some(CaseState::Accepted | CaseState::Review | CaseState::Suspended)
    ) {
        add(queue::REVIEW.into(), deadline);
        add(queue::of(queue::REVIEW, &s.handling_dept), deadline);
    }
    if matches!(state, Some(CaseState::Accepted | CaseState::Review)) {
        for d in &s.assist_departments {
            add(queue::of(queue::ASSIST, d), deadline);
        }
        if crate::stats::urgency_clock_runs(s) {
            add(queue::CLOCK.into(), deadline);
        }
    }
    // The supervisor's queues list open cases and closed ones with a bad review.
    let open = !matches!(
        state,
        Some(CaseState::Evaluated | CaseState::Rejected | CaseState::Withdrawn)
    );
    let bad = is_bad_review(u64::from(s.evaluation));
    if open || bad {
        if bad && s.rectification.is_empty() {
            add(queue::BAD_REVIEW.into(), &[]);
        }
        if s.escalations > 0 && s.rectification.is_empty() {
            add(queue::ESCALATED.into(), &[]);
        }
        if s.rectification == "open" {
            let due = s.rectification_due.as_bytes();
            add(queue::RECTIFY.into(), due);
            add(queue::of(queue::RECTIFY, &s.rectification_owner), due);
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.token == b.token);
    out
}

/// A token a search reads, and whether every case under it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub token: String,
    pub exact: bool,
}

/// The tokens a text search `q` reads. `items` are the (code, name) pairs cases have been filed
/// under (the store keeps them). A full case number is looked up by the store itself.
pub fn text_sources<'a>(
    q: &str,
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<Source> {
    let q = q.trim();
    let mut out = Vec::new();
    if q.is_empty() {
        return out;
    }
    let exact = |token: String| Source { token, exact: true };
    out.push(exact(name_prefix(q)));
    if is_number_tail(q) {
        if let Some(t) = tail4(q) {
            // Four characters say little of a longer number: each case is checked.
            out.push(Source {
                token: digits_tail(&t),
                exact: q.len() == 4,
            });
        }
    }
    for (code, name) in items {
        if name.contains(q) || code.eq_ignore_ascii_case(q) {
            out.push(exact(item_token(code, name)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    const NAMES: [&str; 8] = [
        "王秀英",
        "王秀",
        "欧阳秀英",
        "李王",
        "秀",
        "张三丰",
        "王王",
        " 赵 ",
    ];

    fn random_summary(rng: &mut impl Rng, i: usize) -> CaseSummary {
        let digits = |rng: &mut dyn rand::RngCore, n: usize| -> String {
            (0..n)
                .map(|_| char::from(b'0' + rng.gen_range(0..3u8)))
                .collect()
        };
        let cert = format!("4202221950{}", digits(rng, 7)) + ["X", "1", "x"][rng.gen_range(0..3)];
        CaseSummary {
            case_no: format!("420222100201-20261201-{i:04}"),
            item_code: ["YX-A", "YX-B"][rng.gen_range(0..2)].into(),
            item_name: ["低保申请", "医保报销", "低保复核"][rng.gen_range(0..3)].into(),
            applicant_name: NAMES[rng.gen_range(0..NAMES.len())].into(),
            applicant_cert_no: if rng.gen_bool(0.8) {
                cert
            } else {
                String::new()
            },
            phone: format!("13{}", digits(rng, 9)),
            ..CaseSummary::default()
        }
    }

    #[test]
    fn a_search_through_the_tokens_finds_exactly_what_the_text_filter_matches() {
        for seed in 0..30u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let cases: Vec<CaseSummary> = (0..200).map(|i| random_summary(&mut rng, i)).collect();
            let items: BTreeSet<(String, String)> = cases
                .iter()
                .map(|s| (s.item_code.clone(), s.item_name.clone()))
                .collect();
            let mut queries: Vec<String> = [
                "王",
                "秀英",
                "王秀英",
                "欧阳秀",
                "秀",
                "王王",
                "赵",
                "低保",
                "医保报销",
                "yx-a",
                "王秀英子",
                "丰",
                "张三丰",
            ]
            .iter()
            .map(|q| q.to_string())
            .collect();
            for s in cases.iter().take(20) {
                let n = rng.gen_range(4..=s.phone.len());
                queries.push(s.phone[s.phone.len() - n..].to_string());
                if s.applicant_cert_no.len() > 6 {
                    let n = rng.gen_range(4..=s.applicant_cert_no.len());
                    queries.push(
                        s.applicant_cert_no[s.applicant_cert_no.len() - n..].to_ascii_lowercase(),
                    );
                }
                queries.push(s.phone[2..7].to_string());
            }
            let tokens_of: Vec<Vec<Posting>> =
                cases.iter().map(|s| postings(s, Keeper::Station)).collect();
            for q in &queries {
                let sources = text_sources(q, items.iter().map(|(c, n)| (c.as_str(), n.as_str())));
                let found: BTreeSet<&str> = cases
                    .iter()
                    .zip(&tokens_of)
                    .filter(|(s, tokens)| {
                        sources.iter().any(|src| {
                            tokens.iter().any(|p| p.token == src.token)
                                && (src.exact || s.matches_text(q))
                        })
                    })
                    .map(|(s, _)| s.case_no.as_str())
                    .collect();
                let matched: BTreeSet<&str> = cases
                    .iter()
                    .filter(|s| s.matches_text(q) && s.case_no != q.trim())
                    .map(|s| s.case_no.as_str())
                    .collect();
                assert_eq!(found, matched, "seed {seed}, query {q:?}");
                // An exact token never holds a case the filter does not match.
                for src in sources.iter().filter(|s| s.exact) {
                    for (s, tokens) in cases.iter().zip(&tokens_of) {
                        if tokens.iter().any(|p| p.token == src.token) {
                            assert!(s.matches_text(q), "{q:?} {:?} {}", src.token, s.case_no);
                        }
                    }
                }
            }
        }
    }
}
