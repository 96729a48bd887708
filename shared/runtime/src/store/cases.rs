//! Storing cases: a new case (numbered from the per-day counter, idempotent by request key) and a
//! new version of an existing one (a merge from sync or a local action). Every write changes the
//! document, its summary, both indexes, the counters and the scope's summary trie in one transaction.

use sled::transaction::ConflictableTransactionError;
use tongban_shared::case::CaseSummary;
use tongban_shared::sync::scope;
use tongban_shared::sync::summary::{self, Digest, Fp, Prefix};

use super::error::{corrupt, invalid, Refusal, StoreError};
use super::keys::{count_key, created_key, item_key, node_key, read_u64, state_key, todo_key};
use super::tables::{CaseTx, TxResult, K_COUNT_ALL, K_WRITES};
use super::Store;

/// Result of [`Store::create_case`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new case, durable on disk.
    New(CaseSummary),
    /// The same client request was already stored: its case, unchanged.
    Replayed(CaseSummary),
}

impl Store {
    /// Stores a new case and flushes it to disk before returning.
    ///
    /// The case number is `<code>-<yyyymmdd>-<seq>`, with `seq` taken from a persistent per-day counter
    /// that only ever grows, so a number is never handed out twice, not even after a crash. `build` turns
    /// the number into the document bytes and their summary. With `request_key`, a second call with the
    /// same key returns the first case instead of storing another (a retry after a lost answer).
    pub fn create_case<E>(
        &self,
        day: &str,
        request_key: Option<&str>,
        build: impl FnOnce(u32) -> Result<(Vec<u8>, CaseSummary), E>,
    ) -> Result<Result<Created, E>, StoreError> {
        self.insert_case(day, request_key, build, true)
    }

    /// As [`Store::create_case`] but without the flush, for loading many cases at once (demo data,
    /// benchmarks). Nothing stored this way may be acknowledged before [`Store::flush`] returns.
    pub fn create_case_unflushed<E>(
        &self,
        day: &str,
        build: impl FnOnce(u32) -> Result<(Vec<u8>, CaseSummary), E>,
    ) -> Result<Result<Created, E>, StoreError> {
        self.insert_case(day, None, build, false)
    }

    fn insert_case<E>(
        &self,
        day: &str,
        request_key: Option<&str>,
        build: impl FnOnce(u32) -> Result<(Vec<u8>, CaseSummary), E>,
        flush: bool,
    ) -> Result<Result<Created, E>, StoreError> {
        if let Some(key) = request_key {
            if let Some(existing) = self.idempotency.get(key.as_bytes())? {
                let no = String::from_utf8_lossy(&existing).into_owned();
                return Ok(Ok(Created::Replayed(self.summary_required(&no)?)));
            }
        }
        let counter_key = format!("seq/{day}").into_bytes();
        let seq_bytes = self
            .counters
            .update_and_fetch(&counter_key, |old| {
                let n = old
                    .and_then(|v| <[u8; 4]>::try_from(v).ok())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                Some(n.saturating_add(1).to_be_bytes().to_vec())
            })?
            .ok_or_else(|| corrupt("seq", "counter vanished"))?;
        let seq = u32::from_be_bytes(
            <[u8; 4]>::try_from(seq_bytes.as_ref()).map_err(|e| corrupt("seq", e))?,
        );
        let (doc, summary) = match build(seq) {
            Ok(built) => built,
            Err(e) => return Ok(Err(e)),
        };
        let write = CaseWrite::new(&summary, doc, &summary.case_no, self.keeper())?;
        let no = summary.case_no.as_bytes();
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let replayed = self.case_transaction(|tx| {
            if let Some(key) = request_key {
                if let Some(existing) = tx.idempotency.get(key.as_bytes())? {
                    return Ok(Some(String::from_utf8_lossy(&existing).into_owned()));
                }
                tx.idempotency.insert(key.as_bytes(), no)?;
            }
            if tx.cases.get(no)?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::Refused(
                    Refusal::InUse(summary.case_no.clone()),
                )));
            }
            // Written again inside the transaction so that the counter can never be behind a
            // stored case, whatever sled persisted of the update above before a crash.
            let stored = tx
                .counters
                .get(&counter_key)?
                .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
                .map(u32::from_be_bytes)
                .unwrap_or(0);
            tx.counters
                .insert(counter_key.as_slice(), &stored.max(seq).to_be_bytes())?;
            write.apply(tx)?;
            Ok(None)
        })?;
        if replayed.is_none() {
            self.note_outgoing(&summary.case_no, true)?;
            self.note_case_change(&summary.case_no, None);
        }
        if flush {
            self.sync()?;
        }
        Ok(Ok(match replayed {
            Some(no) => Created::Replayed(self.summary_required(&no)?),
            None => Created::New(summary),
        }))
    }

    /// The day-counter key and sequence of `case_no` when this node numbered it.
    fn own_day_counter(&self, case_no: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let Some((day, seq)) = tongban_shared::case_no::day_and_seq(case_no) else {
            return Ok(None);
        };
        let own_code = match self.own_code.get() {
            Some(code) => code,
            None => {
                let code = self.identity()?.code;
                self.own_code.get_or_init(|| code)
            }
        };
        let own = tongban_shared::case_no::division_code(case_no) == Some(own_code.as_str());
        Ok(own.then(|| (format!("seq/{day}").into_bytes(), seq)))
    }

    pub fn has_case(&self, case_no: &str) -> Result<bool, StoreError> {
        Ok(self.cases.contains_key(case_no.as_bytes())?)
    }

    pub fn document(&self, case_no: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.cases.get(case_no.as_bytes())?.map(|v| v.to_vec()))
    }

    pub fn summary(&self, case_no: &str) -> Result<Option<CaseSummary>, StoreError> {
        self.index
            .get(case_no.as_bytes())?
            .map(|raw| postcard::from_bytes(&raw).map_err(|e| corrupt(case_no, e)))
            .transpose()
    }

    pub(super) fn summary_required(&self, case_no: &str) -> Result<CaseSummary, StoreError> {
        self.summary(case_no)?
            .ok_or_else(|| corrupt(case_no, "indexed request points to a missing case"))
    }

    /// Writes a new version of a case that arrived by sync (or any merge): `merge` gets the stored
    /// document (if any) and returns the bytes and summary to store. Runs under the write lock, so the
    /// merge always starts from the latest stored version. Not flushed: call [`Store::flush`].
    pub fn merge_case<E>(
        &self,
        case_no: &str,
        merge: impl FnOnce(Option<Vec<u8>>) -> Result<(Vec<u8>, CaseSummary), E>,
    ) -> Result<Result<(), E>, StoreError> {
        self.merge_case_noting(case_no, true, None, merge)
    }

    /// [`Store::merge_case`] for a version a downstream peer's session brought: that peer is not
    /// told of it (see `changes.rs`).
    pub fn merge_case_from_peer<E>(
        &self,
        case_no: &str,
        peer: &str,
        merge: impl FnOnce(Option<Vec<u8>>) -> Result<(Vec<u8>, CaseSummary), E>,
    ) -> Result<Result<(), E>, StoreError> {
        self.merge_case_noting(case_no, true, Some(peer), merge)
    }

    /// [`Store::merge_case`] for a version that came from the upstream: not noted as outgoing.
    pub fn merge_case_from_upstream<E>(
        &self,
        case_no: &str,
        merge: impl FnOnce(Option<Vec<u8>>) -> Result<(Vec<u8>, CaseSummary), E>,
    ) -> Result<Result<(), E>, StoreError> {
        self.merge_case_noting(case_no, false, None, merge)
    }

    fn merge_case_noting<E>(
        &self,
        case_no: &str,
        note: bool,
        from_peer: Option<&str>,
        merge: impl FnOnce(Option<Vec<u8>>) -> Result<(Vec<u8>, CaseSummary), E>,
    ) -> Result<Result<(), E>, StoreError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.document(case_no)?;
        let new_here = current.is_none();
        let (doc, summary) = match merge(current) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        if summary.case_no != case_no {
            return Err(invalid(
                format!("document for {case_no}"),
                format!("it names another case ({})", summary.case_no),
            ));
        }
        let write = CaseWrite::new(&summary, doc, case_no, self.keeper())?;
        // One of this node's own cases coming back (a replaced or restored PC pulling its scope):
        // the day's counter moves past it, so the next intake never takes its number.
        let counter = match new_here {
            true => self.own_day_counter(case_no)?,
            false => None,
        };
        self.case_transaction(|tx| {
            if let Some((key, seq)) = &counter {
                let stored = tx
                    .counters
                    .get(key)?
                    .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                if stored < *seq {
                    tx.counters.insert(key.as_slice(), &seq.to_be_bytes())?;
                }
            }
            write.apply(tx)
        })?;
        if note {
            self.note_outgoing(case_no, new_here)?;
        }
        self.note_case_change(case_no, from_peer);
        Ok(Ok(()))
    }
}

/// Everything one case write changes, prepared outside the transaction (which sled may retry).
struct CaseWrite {
    case_no: String,
    scope: String,
    bucket: Digest,
    doc: Vec<u8>,
    summary: CaseSummary,
    summary_bytes: Vec<u8>,
    digest: Digest,
    keeper: tongban_shared::postings::Keeper,
}

impl CaseWrite {
    fn new(
        summary: &CaseSummary,
        doc: Vec<u8>,
        case_no: &str,
        keeper: tongban_shared::postings::Keeper,
    ) -> Result<CaseWrite, StoreError> {
        let scope = scope::scope_of(case_no)
            .ok_or_else(|| invalid(case_no, "not a case number"))?
            .to_string();
        // Also keeps every stored value far below the size sled moves into a blob file.
        tongban_shared::limits::check_case_size(doc.len()).map_err(|why| {
            StoreError::Refused(Refusal::TooLarge {
                case_no: case_no.to_string(),
                why,
            })
        })?;
        let mut loaded = automerge::AutoCommit::load(&doc)
            .map_err(|e| invalid(format!("document for {case_no}"), e))?;
        Ok(CaseWrite {
            case_no: case_no.to_string(),
            bucket: summary::bucket(case_no),
            digest: summary::heads_digest(&loaded.get_heads()),
            summary_bytes: postcard::to_stdvec(summary).map_err(|e| corrupt(case_no, e))?,
            summary: summary.clone(),
            doc,
            scope,
            keeper,
        })
    }

    /// Writes the document, its summary and indexes, counters and the sync summary, replacing whatever
    /// the previous version contributed.
    fn apply(&self, tx: &CaseTx<'_>) -> TxResult<()> {
        let no = self.case_no.as_bytes();
        let old: Option<CaseSummary> = match tx.index.get(no)? {
            Some(raw) => Some(
                postcard::from_bytes(&raw)
                    .map_err(|e| ConflictableTransactionError::Abort(corrupt(&self.case_no, e)))?,
            ),
            None => None,
        };
        let ckey = created_key(self.summary.created_ms, &self.case_no);
        if let Some(old) = &old {
            let old_ckey = created_key(old.created_ms, &old.case_no);
            tx.by_created.remove(old_ckey.as_slice())?;
            tx.by_state
                .remove(state_key(&old.state, &old_ckey).as_slice())?;
            let key = count_key(&old.state);
            let n = read_u64(tx.counters.get(&key)?).saturating_sub(1);
            tx.counters.insert(key, &n.to_be_bytes())?;
            if !old.todo.is_empty() {
                tx.by_todo
                    .remove(todo_key(&old.todo, &old.todo_since, &old.case_no))?;
            }
        } else {
            let n = read_u64(tx.counters.get(K_COUNT_ALL)?) + 1;
            tx.counters.insert(K_COUNT_ALL, &n.to_be_bytes())?;
        }
        let key = count_key(&self.summary.state);
        let n = read_u64(tx.counters.get(&key)?) + 1;
        tx.counters.insert(key, &n.to_be_bytes())?;
        let writes = read_u64(tx.counters.get(K_WRITES)?) + 1;
        tx.counters.insert(K_WRITES, &writes.to_be_bytes())?;
        tx.cases.insert(no, self.doc.as_slice())?;
        tx.index.insert(no, self.summary_bytes.as_slice())?;
        tx.by_created.insert(ckey.as_slice(), &[])?;
        tx.by_state
            .insert(state_key(&self.summary.state, &ckey).as_slice(), &[])?;
        if !self.summary.todo.is_empty() {
            let s = &self.summary;
            tx.by_todo
                .insert(todo_key(&s.todo, &s.todo_since, &s.case_no), &[])?;
        }

        super::indexes::apply(tx, old.as_ref(), &self.summary, self.keeper)?;

        // Sync summary: remove the old leaf, add the new one, on every node of the path.
        let ikey = item_key(&self.scope, &self.bucket, &self.case_no);
        let old_digest: Option<Digest> = tx
            .sync_items
            .insert(ikey.as_slice(), &self.digest[..])?
            .and_then(|v| v.as_ref().try_into().ok());
        if old_digest == Some(self.digest) {
            return Ok(());
        }
        let new_leaf = summary::leaf(&self.case_no, &self.digest);
        let old_leaf = old_digest.map(|d| summary::leaf(&self.case_no, &d));
        for prefix in summary::path(&self.bucket) {
            let (tree, key) = if prefix == Prefix::ROOT {
                (tx.sync_roots, self.scope.as_bytes().to_vec())
            } else {
                (tx.sync_nodes, node_key(&self.scope, prefix))
            };
            let mut fp = tree
                .get(&key)?
                .and_then(|v| Fp::from_bytes(&v))
                .unwrap_or_default();
            if let Some(old_leaf) = &old_leaf {
                fp.toggle(old_leaf, false);
            }
            fp.toggle(&new_leaf, true);
            tree.insert(key, &fp.to_bytes()[..])?;
        }
        Ok(())
    }
}
