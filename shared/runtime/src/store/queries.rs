//! Reading many cases at once from the index trees, never the documents: newest-first pages with
//! a state filter (text and department filters are `search.rs`), counts from the counters, and a
//! walk over every summary (the monthly workbook, and tests that check the indexes against it).

use tongban_shared::case::{CaseState, CaseSummary};
use tongban_shared::todo::TodoKind;

use super::error::{corrupt, StoreError};
use super::keys::{
    case_no_of_created_key, cases_last_key, count_key, created_key, hex, read_u64, state_key,
    todo_prefix, unhex,
};
use super::tables::K_COUNT_ALL;
use super::Store;

/// Filters of the case list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub state: Option<CaseState>,
    pub text: Option<String>,
    /// Only cases created at or after this instant (ms since epoch): the home page's "today".
    pub since_ms: Option<i64>,
    pub limit: usize,
    /// Opaque cursor from a previous page's `next`.
    pub cursor: Option<String>,
    /// Only cases this county department handles (a department account's list).
    pub dept: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub cases: Vec<CaseSummary>,
    pub total: u64,
    pub next: Option<String>,
}

impl Store {
    /// Calls `f` with every case summary (dashboards and reports; documents are never loaded).
    pub fn for_each_summary(&self, mut f: impl FnMut(&CaseSummary)) -> Result<(), StoreError> {
        for entry in self.index.iter() {
            let (k, v) = entry?;
            let s: CaseSummary = postcard::from_bytes(&v)
                .map_err(|e| corrupt(String::from_utf8_lossy(&k).into_owned(), e))?;
            f(&s);
        }
        Ok(())
    }

    /// Number of cases, all or in one state, from the counters (no scan).
    pub fn count(&self, state: Option<CaseState>) -> Result<u64, StoreError> {
        let key = match state {
            Some(s) => count_key(s.as_str()),
            None => K_COUNT_ALL.to_vec(),
        };
        Ok(read_u64(self.counters.get(key)?))
    }

    /// Bytes the store's files take on disk (sled's own count of its files, for monitoring).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// The cases of `station` (the division code its case numbers start with) waiting in `kind`,
    /// longest waiting first: up to `limit` summaries and how many there are. One prefix scan of
    /// index keys; loads only the summaries it returns.
    pub fn todo_list(
        &self,
        kind: TodoKind,
        station: &str,
        limit: usize,
    ) -> Result<(Vec<CaseSummary>, u64), StoreError> {
        let prefix = todo_prefix(station, kind.as_str());
        let mut out = Vec::new();
        let mut total = 0;
        for entry in self.by_todo.scan_prefix(&prefix) {
            let (key, _) = entry?;
            total += 1;
            if out.len() < limit {
                let no = key
                    .get(prefix.len() + 8..)
                    .ok_or_else(|| corrupt("by_todo", "short key"))?;
                out.push(self.summary_required(&String::from_utf8_lossy(no))?);
            }
        }
        Ok((out, total))
    }

    /// Newest-first page of cases. A text search or a department's list reads the postings
    /// (`search.rs`); otherwise the total comes from counters and one page of the date or state
    /// index is read ("today" on the home page reads today's cases).
    pub fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        if text.is_some() || q.dept.is_some() {
            return self.list_by_postings(q);
        }
        let limit = q.limit.clamp(1, 500);
        let prefix: Vec<u8> = match q.state {
            Some(s) => state_key(s.as_str(), &[]),
            None => Vec::new(),
        };
        let tree = if q.state.is_some() {
            &self.by_state
        } else {
            &self.by_created
        };
        let start: Vec<u8> = match q.cursor.as_deref().and_then(unhex) {
            // The cursor is the last key served; start just after it.
            Some(mut k) => {
                k.push(0);
                let mut full = prefix.clone();
                full.extend_from_slice(&k);
                full
            }
            None => prefix.clone(),
        };
        // The largest key of the `since` millisecond: flipped case-number bytes sort below 0xFF.
        let since_key = q.since_ms.map(|ms| {
            let mut k = created_key(ms, "");
            k.push(0xFF);
            k
        });

        let mut cases = Vec::with_capacity(limit);
        let mut next = None;
        let mut total: u64 = 0;
        let counting_by_scan = q.since_ms.is_some();
        for entry in tree.range(start..) {
            let (key, _) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let created = &key[prefix.len()..];
            if let Some(since) = &since_key {
                if created > since.as_slice() {
                    break;
                }
            }
            if cases.len() == limit {
                next = Some(hex(&cases_last_key(&cases)));
                if !counting_by_scan {
                    break;
                }
                total += 1;
                continue;
            }
            cases.push(self.summary_required(&case_no_of_created_key(created)?)?);
            total += 1;
        }
        if !counting_by_scan {
            total = self.count(q.state)?;
        } else if q.cursor.is_some() {
            // A scan that started at a cursor only saw what lies after it.
            total = self
                .list(&ListQuery {
                    cursor: None,
                    limit: 1,
                    ..q.clone()
                })?
                .total;
        }
        Ok(ListPage { cases, total, next })
    }
}

/// One tree's share of a store: what sled holds live, before its log's overhead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSize {
    pub name: String,
    pub entries: u64,
    /// Key and value bytes of the live entries.
    pub bytes: u64,
}

impl Store {
    /// Every tree with its live entries and their bytes (a full walk: for measurements, not serving).
    pub fn tree_sizes(&self) -> Result<Vec<TreeSize>, StoreError> {
        let mut sizes = Vec::new();
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name)?;
            let (mut entries, mut bytes) = (0u64, 0u64);
            for entry in tree.iter() {
                let (k, v) = entry?;
                entries += 1;
                bytes += (k.len() + v.len()) as u64;
            }
            sizes.push(TreeSize {
                name: String::from_utf8_lossy(&name).into_owned(),
                entries,
                bytes,
            });
        }
        sizes.sort_by_key(|t| std::cmp::Reverse(t.bytes));
        Ok(sizes)
    }
}
