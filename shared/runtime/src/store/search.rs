//! Reading the indexes of `indexes.rs`: a text search or a department's list as a merge of token
//! ranges, each role's queue as one range, the states' queues oldest first, and the parts of the
//! county's numbers. Nothing here visits every case.

use chrono::NaiveDate;
use tongban_shared::aggregate::{handover_late_if_received_by, Cell, StoredParts};
use tongban_shared::case::{CaseState, CaseSummary};
use tongban_shared::postings::{self, queue, Source};

use super::error::{corrupt, StoreError};
use super::indexes::{case_no_of_posting, case_suffix, day_key, handover_count_key, token_prefix};
use super::keys::{case_no_of_created_key, hex, read_u64, state_key, unhex};
use super::queries::{ListPage, ListQuery};
use super::Store;

fn created_of_suffix(suffix: &[u8]) -> i64 {
    let flipped = <[u8; 8]>::try_from(suffix.get(..8).unwrap_or(&[0; 8])).unwrap_or([0; 8]);
    i64::MAX - i64::from_be_bytes(flipped)
}

type Suffixes = Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>>>;

impl Store {
    /// The (code, name) pairs cases are filed under, from the tokens' counts.
    pub fn filed_items(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.posting_counts.scan_prefix(b"i:") {
            let (token, _) = entry?;
            let token = String::from_utf8_lossy(&token[2..]).into_owned();
            if let Some((code, name)) = token.split_once(postings::SEP) {
                out.push((code.to_string(), name.to_string()));
            }
        }
        Ok(out)
    }

    /// How many cases are under a token.
    pub fn token_count(&self, token: &str) -> Result<u64, StoreError> {
        Ok(read_u64(self.posting_counts.get(token.as_bytes())?))
    }

    /// Up to `limit` cases of a queue token (`tongban_shared::postings::queue`) in its order, and
    /// how many it holds.
    pub fn queue(&self, token: &str, limit: usize) -> Result<(Vec<CaseSummary>, u64), StoreError> {
        let prefix = token_prefix(token);
        let mut out = Vec::new();
        for entry in self.postings.scan_prefix(&prefix).take(limit) {
            let (key, _) = entry?;
            out.push(self.summary_required(&case_no_of_posting(&key[prefix.len()..])?)?);
        }
        Ok((out, self.token_count(token)?))
    }

    /// The first `limit` cases of several queue tokens together, in their common order (each
    /// token's first `limit` suffice), and how many the tokens hold in all: a window's queue over the
    /// items of its service area.
    pub fn queues_merged(
        &self,
        tokens: &[String],
        limit: usize,
    ) -> Result<(Vec<CaseSummary>, u64), StoreError> {
        let mut firsts: Vec<(Vec<u8>, String)> = Vec::new();
        let mut total = 0;
        for token in tokens {
            let count = self.token_count(token)?;
            if count == 0 {
                continue;
            }
            total += count;
            let prefix = token_prefix(token);
            for entry in self.postings.scan_prefix(&prefix).take(limit) {
                let (key, _) = entry?;
                let rest = &key[prefix.len()..];
                firsts.push((rest.to_vec(), case_no_of_posting(rest)?));
            }
        }
        firsts.sort();
        firsts.truncate(limit);
        let mut out = Vec::with_capacity(firsts.len());
        for (_, case_no) in firsts {
            out.push(self.summary_required(&case_no)?);
        }
        Ok((out, total))
    }

    /// Cases whose deadline passed before `today` (their clock running), the earliest deadline
    /// first, up to `limit`, and how many there are.
    pub fn overdue(
        &self,
        today: NaiveDate,
        limit: usize,
    ) -> Result<(Vec<CaseSummary>, u64), StoreError> {
        let today_key = today.format("%Y-%m-%d").to_string();
        let mut total = 0;
        for entry in self.deadlines.range(..today_key.as_bytes()) {
            total += read_u64(Some(entry?.1));
        }
        let prefix = token_prefix(queue::CLOCK);
        let mut out = Vec::new();
        for entry in self.postings.scan_prefix(&prefix) {
            let (key, _) = entry?;
            let rest = &key[prefix.len()..];
            if out.len() >= limit || rest.get(..10).is_none_or(|d| d >= today_key.as_bytes()) {
                break;
            }
            out.push(self.summary_required(&case_no_of_posting(rest)?)?);
        }
        Ok((out, total))
    }

    /// Cases in `state`, longest waiting first, up to `limit`, and how many there are.
    pub fn oldest_in_state(
        &self,
        state: CaseState,
        limit: usize,
    ) -> Result<(Vec<CaseSummary>, u64), StoreError> {
        let prefix = state_key(state.as_str(), &[]);
        let mut out = Vec::new();
        for entry in self.by_state.scan_prefix(&prefix).rev().take(limit) {
            let (key, _) = entry?;
            out.push(self.summary_required(&case_no_of_created_key(&key[prefix.len()..])?)?);
        }
        Ok((out, self.count(Some(state))?))
    }

    /// The stored parts of the county's numbers (`tongban_shared::aggregate`) at `now_ms`, with
    /// the intake of the days from `first_day` on.
    pub fn stats_parts(
        &self,
        first_day: NaiveDate,
        now_ms: i64,
    ) -> Result<StoredParts, StoreError> {
        let mut out = StoredParts::default();
        let split = |key: &[u8]| -> Result<(String, Option<String>), StoreError> {
            let at = key
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| corrupt("cells", "key without node"))?;
            let dept = String::from_utf8_lossy(&key[..at]).into_owned();
            let node = String::from_utf8_lossy(&key[at + 1..]).into_owned();
            Ok((dept, (!node.is_empty()).then_some(node)))
        };
        for entry in self.cells.iter() {
            let (key, raw) = entry?;
            let cell: Cell = postcard::from_bytes(&raw).map_err(|e| corrupt("cells", e))?;
            let (dept, node) = split(&key)?;
            out.cells.push((dept, node, cell));
        }
        for entry in self.deadlines.iter() {
            let (key, raw) = entry?;
            let date = std::str::from_utf8(key.get(..10).unwrap_or_default())
                .ok()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or_else(|| corrupt("deadlines", "key without a date"))?;
            let (dept, node) = split(key.get(11..).unwrap_or_default())?;
            out.deadlines.push((date, dept, node, read_u64(Some(raw))));
        }
        for urgent in [false, true] {
            // Late are those received by the threshold: all running ones but the recent few.
            let running = read_u64(self.counters.get(handover_count_key(urgent))?);
            let by = handover_late_if_received_by(urgent, now_ms);
            let mut from = vec![u8::from(urgent)];
            from.extend_from_slice(&(by.saturating_add(1)).max(0).to_be_bytes());
            let recent = self
                .handovers
                .range(from..vec![u8::from(urgent) + 1])
                .count() as u64;
            out.handovers_late += running.saturating_sub(recent);
        }
        let first = day_key(&first_day.format("%Y-%m-%d").to_string());
        for entry in self.counters.range(first..b"day0".to_vec()) {
            let (key, raw) = entry?;
            let day = String::from_utf8_lossy(&key[4..]).into_owned();
            out.days.insert(day, read_u64(Some(raw)));
        }
        Ok(out)
    }

    /// A page of a text search or a department's list, newest first: a merge of the ranges of its
    /// tokens. Each case under an exact token matches; the others (and every case when the state or
    /// the department narrow a text search) are checked against their summary. The total comes
    /// from the token's count when one exact token answers alone; otherwise it is counted over the
    /// tokens' ranges, which are as long as the cases they hold, not the county.
    pub(super) fn list_by_postings(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        let limit = q.limit.clamp(1, 500);
        let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let mut sources: Vec<Source> = Vec::new();
        let mut named: Option<Vec<u8>> = None;
        match (text, &q.dept) {
            (Some(t), _) => {
                let items = self.filed_items()?;
                sources =
                    postings::text_sources(t, items.iter().map(|(c, n)| (c.as_str(), n.as_str())));
                if tongban_shared::case_no::is_case_no(t) {
                    if let Some(s) = self.summary(t)? {
                        named = Some(case_suffix(s.created_ms, &s.case_no));
                    }
                }
            }
            (None, Some(d)) => sources.push(Source {
                token: match q.state {
                    Some(s) => postings::dept_state_token(d, s.as_str()),
                    None => postings::dept_token(d),
                },
                exact: true,
            }),
            (None, None) => return Err(corrupt("list", "neither text nor department")),
        }
        // Text sources are read only where they hold cases.
        let mut kept = Vec::new();
        for s in sources {
            if self.token_count(&s.token)? > 0 {
                kept.push(s);
            }
        }
        let sources = kept;
        let check_state = text.is_some() && q.state.is_some();
        let check_dept = text.is_some() && q.dept.is_some();
        let alone = sources.len() == 1
            && named.is_none()
            && sources[0].exact
            && !check_state
            && !check_dept
            && q.since_ms.is_none();
        let after: Option<Vec<u8>> = q.cursor.as_deref().and_then(unhex);

        let mut heads: Vec<Option<Vec<u8>>> = Vec::new();
        let mut iters: Vec<Suffixes> = Vec::new();
        for s in &sources {
            let mut prefix = token_prefix(&s.token);
            prefix.push(0); // the empty order of text and list tokens
            let mut start = prefix.clone();
            if let Some(a) = &after {
                start.extend_from_slice(a);
                start.push(0);
            }
            let skip = prefix.len();
            let it = self
                .postings
                .range(start..)
                .take_while(move |e| e.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
                .map(move |e| Ok(e?.0[skip..].to_vec()));
            iters.push(Box::new(it));
        }
        if let Some(n) = named.filter(|n| after.as_ref().is_none_or(|a| n > a)) {
            iters.push(Box::new(std::iter::once(Ok(n))));
        }
        let exact: Vec<bool> = sources
            .iter()
            .map(|s| s.exact)
            .chain(std::iter::once(true))
            .collect();
        for it in iters.iter_mut() {
            heads.push(it.next().transpose()?);
        }

        let mut cases = Vec::with_capacity(limit);
        let mut last_served: Vec<u8> = Vec::new();
        let mut next = None;
        let mut total: u64 = 0;
        while let Some(min) = heads.iter().flatten().min().cloned() {
            let mut exact_hit = false;
            for i in 0..heads.len() {
                if heads[i].as_ref() == Some(&min) {
                    exact_hit |= exact[i];
                    heads[i] = iters[i].next().transpose()?;
                }
            }
            if q.since_ms
                .is_some_and(|since| created_of_suffix(&min) < since)
            {
                break;
            }
            let no = String::from_utf8_lossy(min.get(8..).unwrap_or_default()).into_owned();
            let needs_summary = !exact_hit || check_state || check_dept || cases.len() < limit;
            let summary = match needs_summary {
                true => Some(self.summary_required(&no)?),
                false => None,
            };
            if let Some(s) = &summary {
                let text_ok = exact_hit || text.is_none_or(|t| s.matches_text(t));
                let state_ok = !check_state || q.state.is_some_and(|st| s.state == st.as_str());
                let dept_ok = !check_dept
                    || q.dept
                        .as_deref()
                        .is_some_and(|d| postings::list_departments(s).contains(&d));
                if !(text_ok && state_ok && dept_ok) {
                    continue;
                }
            }
            total += 1;
            if cases.len() < limit {
                if let Some(s) = summary {
                    cases.push(s);
                    last_served = min;
                }
            } else if next.is_none() {
                next = Some(hex(&last_served));
                if alone {
                    break;
                }
            }
        }
        if alone {
            total = self.token_count(&sources[0].token)?;
        } else if q.cursor.is_some() {
            let all = ListQuery {
                cursor: None,
                limit: 1,
                ..q.clone()
            };
            total = self.list_by_postings(&all)?.total;
        }
        Ok(ListPage { cases, total, next })
    }
}
