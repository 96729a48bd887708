//! The trees of the store and what each holds (store format [`super::migrations::STORE_VERSION`]).
//! One constant per tree; the comment beside it is the layout. Trees the county alone uses are marked
//! (hub).
//!
//! Writes that belong together go in one sled transaction over [`CaseTx`] and are flushed (fsync)
//! before the caller is told they succeeded: that is the moment a case may be acknowledged to a person.

use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};

use super::error::StoreError;
use super::Store;

/// Format version, node identity, automerge actor id, catalogue JSON and its version (and past
/// versions), calendar tables and their version, print counts (`printed/…`). Rarely written: sled
/// rewrites a whole leaf every few changes to it, and this tree's leaf holds the 80 KB catalogue.
pub(super) const META: &str = "meta";
/// Counters every case write changes (format 5; before, they lived in `META` beside the catalogue,
/// so each few case writes rewrote the catalogue into sled's log: 17–21 KB per case on disk):
/// per-day case-number counters (`seq/<yyyymmdd>`), case counters (`count/ALL`, `count/<STATE>`),
/// the count of case writes (`writes`); (format 6) running hand-overs (`handover/<0|1>`) and cases
/// taken in per day (`day/<YYYY-MM-DD>`).
pub(super) const COUNTERS: &str = "counters";
/// Case number → `Automerge::save` bytes of the case document.
pub(super) const CASES: &str = "cases";
/// Case number → postcard `CaseSummary` (lists never load documents).
pub(super) const CASE_INDEX: &str = "case_index";
/// `created_ms (i64 BE, sign-flipped) ‖ case number, bytes flipped` → () for newest-first lists.
pub(super) const BY_CREATED: &str = "by_created";
/// `state ‖ 0 ‖ created key` → () for the state filter.
pub(super) const BY_STATE: &str = "by_state";
/// `station code ‖ 0 ‖ to-do kind ‖ 0 ‖ since ms (i64 BE) ‖ case number` → (): each station's
/// inbox, longest waiting first (`tongban_shared::todo`).
pub(super) const BY_TODO: &str = "by_todo";
/// (format 6) `token ‖ 0 ‖ order ‖ 0 ‖ created (flipped) ‖ case number` → (): the postings of
/// `tongban_shared::postings` (text search, department lists, queues; see `indexes.rs`).
pub(super) const POSTINGS: &str = "postings";
/// (format 6) Token → number of cases under it (u64 BE).
pub(super) const POSTING_COUNTS: &str = "posting_counts";
/// (format 6) `department ‖ 0 ‖ node` → postcard `aggregate::Cell`: the day-independent numbers.
pub(super) const CELLS: &str = "cells";
/// (format 6) `deadline YYYY-MM-DD ‖ 0 ‖ department ‖ 0 ‖ node` → cases whose clock runs (u64 BE).
pub(super) const DEADLINES: &str = "deadlines";
/// (format 6) `urgent ‖ county receipt ms ‖ case number` → (): hand-overs still running.
pub(super) const HANDOVERS: &str = "handovers";
/// Client request key → case number, so a retried submission never doubles a case.
pub(super) const IDEMPOTENCY: &str = "idempotency";
/// Account name → postcard `UserRecord`.
pub(super) const USERS: &str = "users";
/// Scope → root fingerprint of the scope's summary trie (see `tongban_shared::sync::summary`).
pub(super) const SYNC_ROOTS: &str = "sync_roots";
/// `scope ‖ 0 ‖ Prefix::key` → fingerprint, for the trie levels below the root.
pub(super) const SYNC_NODES: &str = "sync_nodes";
/// `scope ‖ 0 ‖ bucket ‖ case number` → heads digest.
pub(super) const SYNC_ITEMS: &str = "sync_items";
/// Automerge actor id → division code of the node it is bound to.
pub(super) const ACTORS: &str = "actors";
/// (hub) Division code → JSON `NodeRecord`.
pub(super) const NODES: &str = "nodes";
/// (hub) Message id (u64 BE) → JSON `OutboxMessage`.
pub(super) const OUTBOX: &str = "outbox";
/// (nodes) Case number → (write count u64 BE, new-here byte) of local writes not yet gone up.
pub(super) const OUTGOING: &str = "outgoing";

// Keys of `META` (the first seven) and `COUNTERS` (the rest).
pub(super) const K_VERSION: &[u8] = b"store_version";
pub(super) const K_IDENTITY: &[u8] = b"identity";
pub(super) const K_ACTOR: &[u8] = b"actor";
pub(super) const K_CATALOG: &[u8] = b"catalog";
pub(super) const K_CATALOG_VERSION: &[u8] = b"catalog_version";
pub(super) const K_CALENDAR: &[u8] = b"calendar";
pub(super) const K_CALENDAR_VERSION: &[u8] = b"calendar_version";
pub(super) const K_COUNT_ALL: &[u8] = b"count/ALL";
/// Case writes ever applied (creations and merges), counted inside each write's transaction.
pub(super) const K_WRITES: &[u8] = b"writes";

/// The trees one case write changes, open in one transaction, by name.
pub(super) struct CaseTx<'a> {
    pub counters: &'a TransactionalTree,
    pub cases: &'a TransactionalTree,
    pub index: &'a TransactionalTree,
    pub by_created: &'a TransactionalTree,
    pub by_state: &'a TransactionalTree,
    pub by_todo: &'a TransactionalTree,
    pub idempotency: &'a TransactionalTree,
    pub sync_roots: &'a TransactionalTree,
    pub sync_nodes: &'a TransactionalTree,
    pub sync_items: &'a TransactionalTree,
    pub postings: &'a TransactionalTree,
    pub posting_counts: &'a TransactionalTree,
    pub cells: &'a TransactionalTree,
    pub deadlines: &'a TransactionalTree,
    pub handovers: &'a TransactionalTree,
}

pub(super) type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl Store {
    /// Runs `f` in one transaction over the trees of a case write (sled may run it more than once).
    pub(super) fn case_transaction<T>(
        &self,
        f: impl Fn(&CaseTx<'_>) -> TxResult<T>,
    ) -> Result<T, StoreError> {
        let trees = [
            &self.counters,
            &self.cases,
            &self.index,
            &self.by_created,
            &self.by_state,
            &self.by_todo,
            &self.idempotency,
            &self.sync_roots,
            &self.sync_nodes,
            &self.sync_items,
            &self.postings,
            &self.posting_counts,
            &self.cells,
            &self.deadlines,
            &self.handovers,
        ];
        let outcome = trees[..].transaction(|views: &Vec<TransactionalTree>| {
            let [counters, cases, index, by_created, by_state, by_todo, idempotency, sync_roots, sync_nodes, sync_items, postings, posting_counts, cells, deadlines, handovers] =
                views.as_slice()
            else {
                return Err(ConflictableTransactionError::Abort(super::error::corrupt(
                    "transaction",
                    "sled returned another number of trees",
                )));
            };
            f(&CaseTx {
                counters,
                cases,
                index,
                by_created,
                by_state,
                by_todo,
                idempotency,
                sync_roots,
                sync_nodes,
                sync_items,
                postings,
                posting_counts,
                cells,
                deadlines,
                handovers,
            })
        });
        match outcome {
            Ok(v) => Ok(v),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }
}
