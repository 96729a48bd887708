//! The indexes a case write keeps beside its summary (format 6), so that operators' requests read a
//! range of keys or a few thousand counters instead of every case:
//!
//! - the postings of `tongban_shared::postings` (text search, department lists, queues) with a
//!   count per token;
//! - the county's numbers as the parts of `tongban_shared::aggregate`: cells per (department, node),
//!   clocks by deadline date, running hand-overs by receipt instant, intake per day.
//!
//! [`apply`] writes the difference between the previous and the new summary of a case inside the
//! case write's transaction; [`rebuild`] makes them all again from the summaries (the migration to
//! format 6). Reading them is `search.rs`.

use std::collections::BTreeMap;

use sled::transaction::ConflictableTransactionError;
use tongban_shared::aggregate::{self, Cell, Parts};
use tongban_shared::case::CaseSummary;
use tongban_shared::postings::{self, Keeper, Posting};

use super::error::{corrupt, StoreError};
use super::keys::read_u64;
use super::tables::{CaseTx, TxResult};
use super::Store;

/// `token ‖ 0 ‖ order ‖ 0 ‖` [`case_suffix`].
pub(super) fn posting_key(p: &Posting, created_ms: i64, case_no: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(p.token.len() + p.order.len() + 10 + case_no.len());
    k.extend_from_slice(p.token.as_bytes());
    k.push(0);
    k.extend_from_slice(&p.order);
    k.push(0);
    k.extend_from_slice(&case_suffix(created_ms, case_no));
    k
}

/// What orders cases within a token's order: created (i64 BE, flipped: newest first), then the
/// case number. A text search merges tokens by it, and its cursor is one.
pub(super) fn case_suffix(created_ms: i64, case_no: &str) -> Vec<u8> {
    let mut k = (i64::MAX - created_ms).to_be_bytes().to_vec();
    k.extend_from_slice(case_no.as_bytes());
    k
}

/// Every key of `token` starts with this.
pub(super) fn token_prefix(token: &str) -> Vec<u8> {
    let mut k = token.as_bytes().to_vec();
    k.push(0);
    k
}

/// The part of a posting key after its token's prefix that orders it: `order ‖ 0 ‖ created ‖ case
/// number`; and the case number in it.
pub(super) fn case_no_of_posting(rest: &[u8]) -> Result<String, StoreError> {
    let order_end = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| corrupt("postings", "key without order"))?;
    let no = rest
        .get(order_end + 9..)
        .ok_or_else(|| corrupt("postings", "short key"))?;
    String::from_utf8(no.to_vec()).map_err(|e| corrupt("postings", e))
}

pub(super) fn cell_key(dept: &str, node: Option<&str>) -> Vec<u8> {
    let mut k = dept.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(node.unwrap_or("").as_bytes());
    k
}

pub(super) fn deadline_key(date: chrono::NaiveDate, dept: &str, node: Option<&str>) -> Vec<u8> {
    let mut k = date.format("%Y-%m-%d").to_string().into_bytes();
    k.push(0);
    k.extend_from_slice(&cell_key(dept, node));
    k
}

/// `urgent (0/1) ‖ county receipt ms (BE) ‖ case number`.
pub(super) fn handover_key(urgent: bool, received_ms: i64, case_no: &str) -> Vec<u8> {
    let mut k = vec![u8::from(urgent)];
    k.extend_from_slice(&received_ms.max(0).to_be_bytes());
    k.extend_from_slice(case_no.as_bytes());
    k
}

/// Counter (in `COUNTERS`) of running hand-overs.
pub(super) fn handover_count_key(urgent: bool) -> Vec<u8> {
    format!("handover/{}", u8::from(urgent)).into_bytes()
}

/// Counter (in `COUNTERS`) of the cases taken in on a day.
pub(super) fn day_key(day: &str) -> Vec<u8> {
    format!("day/{day}").into_bytes()
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn add_u64(tx: &sled::transaction::TransactionalTree, key: &[u8], delta: i64) -> TxResult<()> {
    let n = read_u64(tx.get(key)?);
    let n = n.saturating_add_signed(delta);
    if n == 0 {
        tx.remove(key)?;
    } else {
        tx.insert(key, &n.to_be_bytes())?;
    }
    Ok(())
}

/// Writes what changes between the `old` summary of a case (if it was stored) and the `new` one.
/// Only what differs is written: most actions move a case from one queue to the next and leave its
/// name, numbers and item alone.
pub(super) fn apply(
    tx: &CaseTx<'_>,
    old: Option<&CaseSummary>,
    new: &CaseSummary,
    keeper: Keeper,
) -> TxResult<()> {
    let before = old
        .map(|o| postings::postings(o, keeper))
        .unwrap_or_default();
    let after = postings::postings(new, keeper);
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    // A case keeps its creation time; if a version ever said otherwise, every key moves.
    let moved = old.is_some_and(|o| o.created_ms != new.created_ms);
    if let Some(o) = old {
        for p in before.iter().filter(|p| moved || !after.contains(p)) {
            tx.postings
                .remove(posting_key(p, o.created_ms, &o.case_no))?;
            *counts.entry(&p.token).or_default() -= 1;
        }
    }
    for p in after.iter().filter(|p| moved || !before.contains(p)) {
        tx.postings
            .insert(posting_key(p, new.created_ms, &new.case_no), &[])?;
        *counts.entry(&p.token).or_default() += 1;
    }
    for (token, delta) in counts {
        if delta != 0 {
            add_u64(tx.posting_counts, token.as_bytes(), delta)?;
        }
    }

    let was = old.map(aggregate::parts);
    let now = aggregate::parts(new);
    if was.as_ref() == Some(&now) {
        return Ok(());
    }
    if let Some(was) = &was {
        apply_parts(tx, was, &new.case_no, -1)?;
    }
    apply_parts(tx, &now, &new.case_no, 1)
}

fn apply_parts(tx: &CaseTx<'_>, p: &Parts, case_no: &str, sign: i64) -> TxResult<()> {
    let key = cell_key(&p.dept, p.node.as_deref());
    let mut cell: Cell = match tx.cells.get(&key)? {
        Some(raw) => postcard::from_bytes(&raw).map_err(|e| abort(corrupt("cells", e)))?,
        None => Cell::default(),
    };
    if sign > 0 {
        cell.add(&p.cell);
    } else {
        cell.subtract(&p.cell);
    }
    if cell.is_empty() {
        tx.cells.remove(key)?;
    } else {
        let raw = postcard::to_stdvec(&cell).map_err(|e| abort(corrupt("cells", e)))?;
        tx.cells.insert(key, raw)?;
    }
    if let Some(date) = p.deadline {
        add_u64(
            tx.deadlines,
            &deadline_key(date, &p.dept, p.node.as_deref()),
            sign,
        )?;
    }
    if let Some((urgent, at)) = p.handover {
        let key = handover_key(urgent, at, case_no);
        if sign > 0 {
            tx.handovers.insert(key, &[])?;
        } else {
            tx.handovers.remove(key)?;
        }
        add_u64(tx.counters, &handover_count_key(urgent), sign)?;
    }
    if let Some(day) = &p.day {
        add_u64(tx.counters, &day_key(day), sign)?;
    }
    Ok(())
}

impl Store {
    /// Which tokens this store keeps (the county's queues and department lists only at the hub).
    pub(super) fn keeper(&self) -> Keeper {
        match self
            .notes_outgoing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            true => Keeper::Station,
            false => Keeper::County,
        }
    }
}

/// Makes every index of this module again from the stored summaries (the migration to format 6, or
/// a repair). Not in one transaction: it runs before the store serves, and a crash half-way runs it
/// again from the start.
pub(super) fn rebuild(store: &Store) -> Result<(), StoreError> {
    store.postings.clear()?;
    store.posting_counts.clear()?;
    store.cells.clear()?;
    store.deadlines.clear()?;
    store.handovers.clear()?;
    for entry in store.counters.iter() {
        let (key, _) = entry?;
        if key.starts_with(b"handover/") || key.starts_with(b"day/") {
            store.counters.remove(key)?;
        }
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut cells: BTreeMap<Vec<u8>, Cell> = BTreeMap::new();
    let mut deadlines: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut counters: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut batch = sled::Batch::default();
    let mut handovers = sled::Batch::default();
    let mut pending = 0;
    for entry in store.index.iter() {
        let (key, raw) = entry?;
        // A migration before the last rebuilds from summaries an older format wrote.
        let s: CaseSummary = super::migrations::summary_of_any_format(&key, &raw)?;
        for p in postings::postings(&s, store.keeper()) {
            batch.insert(posting_key(&p, s.created_ms, &s.case_no), &[]);
            *counts.entry(p.token).or_default() += 1;
        }
        let p = aggregate::parts(&s);
        cells
            .entry(cell_key(&p.dept, p.node.as_deref()))
            .or_default()
            .add(&p.cell);
        if let Some(date) = p.deadline {
            *deadlines
                .entry(deadline_key(date, &p.dept, p.node.as_deref()))
                .or_default() += 1;
        }
        if let Some((urgent, at)) = p.handover {
            handovers.insert(handover_key(urgent, at, &s.case_no), &[]);
            *counters.entry(handover_count_key(urgent)).or_default() += 1;
        }
        if let Some(day) = &p.day {
            *counters.entry(day_key(day)).or_default() += 1;
        }
        pending += 1;
        if pending == 10_000 {
            store.postings.apply_batch(std::mem::take(&mut batch))?;
            store
                .handovers
                .apply_batch(std::mem::take(&mut handovers))?;
            pending = 0;
        }
    }
    store.postings.apply_batch(batch)?;
    store.handovers.apply_batch(handovers)?;
    for (token, n) in counts {
        store.posting_counts.insert(token, &n.to_be_bytes())?;
    }
    for (key, cell) in cells {
        let raw = postcard::to_stdvec(&cell).map_err(|e| corrupt("cells", e))?;
        store.cells.insert(key, raw)?;
    }
    for (key, n) in deadlines {
        store.deadlines.insert(key, &n.to_be_bytes())?;
    }
    for (key, n) in counters {
        store.counters.insert(key, &n.to_be_bytes())?;
    }
    Ok(())
}
