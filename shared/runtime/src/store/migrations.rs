//! The store's format version and the ordered migrations that bring an older store up to it.

use super::error::{corrupt, StoreError};
use super::keys::read_u64;
use super::tables::{CASES, CASE_INDEX, K_VERSION};
use super::Store;
use tongban_shared::case::CaseSummary;

/// Version of the on-disk layout described in `tables.rs`.
pub const STORE_VERSION: u32 = 7;

/// Migrations from version `n` to `n + 1`, in order; entry `i` upgrades version `i + 1`.
type Migration = fn(&Store) -> Result<(), StoreError>;
const MIGRATIONS: &[Migration] = &[
    reindex_summaries,
    history_to_events,
    todo_index,
    counters_apart,
    postings_and_parts,
    back_office,
];

/// 1 → 2: case summaries gained workflow fields (kind, handling department, decision day, evaluation,
/// escalations, correction rounds); every summary is rebuilt from its document. Index keys do not change.
fn reindex_summaries(store: &Store) -> Result<(), StoreError> {
    let cases = store.db.open_tree(CASES)?;
    let index = store.db.open_tree(CASE_INDEX)?;
    for entry in cases.iter() {
        let (key, bytes) = entry?;
        let no = String::from_utf8_lossy(&key).into_owned();
        let doc = automerge::AutoCommit::load(&bytes).map_err(|e| corrupt(&no, e))?;
        let case = tongban_shared::case::read_case(&doc).map_err(|e| corrupt(&no, e))?;
        let summary = postcard::to_stdvec(&case.summary()).map_err(|e| corrupt(&no, e))?;
        index.insert(key, summary)?;
    }
    Ok(())
}

/// 2 → 3: cases became event logs. Each document's history list is converted into events (written
/// with this store's actor; the conversion is deterministic, so the hub and a node converting the
/// same case write the same events) and the summary (which gained hand-over fields) is rebuilt. The
/// plain fields stay as the previous release wrote them. The derived state equals the stored one for every case
/// the previous workflow could produce (tests/tests/event_log.rs checks the fixture stores).
fn history_to_events(store: &Store) -> Result<(), StoreError> {
    use automerge::transaction::CommitOptions;
    // Summaries first: the case writes below read the old summary to replace its index entries, and
    // the summary layout changed. The derived state equals the stored one, so the state and date
    // indexes stay valid.
    reindex_summaries(store)?;
    let actor = automerge::ActorId::from(store.actor()?.as_slice());
    let numbers: Vec<String> = store
        .cases
        .iter()
        .keys()
        .map(|k| k.map(|k| String::from_utf8_lossy(&k).into_owned()))
        .collect::<Result<_, _>>()?;
    for no in numbers {
        store.merge_case_from_upstream(&no, |current| {
            let bytes = current.ok_or_else(|| corrupt(&no, "vanished during migration"))?;
            let mut doc = automerge::AutoCommit::load(&bytes).map_err(|e| corrupt(&no, e))?;
            if !tongban_shared::ingress::has_events(&doc) {
                doc.set_actor(actor.clone());
                let (_, events) =
                    tongban_shared::case::read_parts(&doc).map_err(|e| corrupt(&no, e))?;
                for e in &events {
                    tongban_shared::event::write_event(&mut doc, e).map_err(|e| corrupt(&no, e))?;
                }
                // No projection here: the plain fields are the previous release's own, and they
                // are what its readers need; the fold derives the same state from the events. The
                // next action or merge projects the fields this release added. Projecting every
                // history entry of every case was most of the migration's time.
                doc.commit_with(CommitOptions::default().with_message("history to events"));
            }
            let case = tongban_shared::case::read_case(&doc).map_err(|e| corrupt(&no, e))?;
            Ok::<_, StoreError>((doc.save(), case.summary()))
        })??;
    }
    Ok(())
}

/// 3 → 4: summaries gained the to-do item, the decision and the rectification, and the to-do
/// index (`by_todo`) appeared. Summaries are rebuilt from the documents (the old
/// ones no longer read), then the index from the new summaries.
fn todo_index(store: &Store) -> Result<(), StoreError> {
    use super::keys::todo_key;
    reindex_summaries(store)?;
    store.by_todo.clear()?;
    for entry in store.index.iter() {
        let (key, raw) = entry?;
        let s: tongban_shared::case::CaseSummary =
            postcard::from_bytes(&raw).map_err(|e| corrupt(String::from_utf8_lossy(&key), e))?;
        if s.todo.is_empty() {
            continue;
        }
        store
            .by_todo
            .insert(todo_key(&s.todo, &s.todo_since, &s.case_no), &[])?;
    }
    Ok(())
}

/// 4 → 5: the counters every case write changes move from `meta` to their own tree, `counters`,
/// away from the catalogue's leaf (see `tables.rs`). Copied first, then removed: a crash half-way
/// leaves every value in `counters` or still in `meta`, and the next open copies again.
fn counters_apart(store: &Store) -> Result<(), StoreError> {
    use super::tables::K_WRITES;
    let moved: Vec<sled::IVec> = store
        .meta
        .iter()
        .keys()
        .filter(|k| {
            k.as_ref().is_ok_and(|k| {
                k.starts_with(b"seq/") || k.starts_with(b"count/") || k.as_ref() == K_WRITES
            })
        })
        .collect::<Result<_, _>>()?;
    for key in &moved {
        if let Some(value) = store.meta.get(key)? {
            if key.as_ref() == K_WRITES {
                // The migrations before this one already counted their merges in `counters`, and
                // the seal may hold that count: the count only ever grows.
                let writes = read_u64(Some(value)).max(read_u64(store.counters.get(K_WRITES)?));
                store.counters.insert(key, &writes.to_be_bytes())?;
            } else {
                // The earlier migrations never change a state or number, so what `meta` held is
                // right; what they wrote in `counters` started from nothing.
                store.counters.insert(key, value)?;
            }
        }
    }
    store.sync()?;
    for key in &moved {
        store.meta.remove(key)?;
    }
    Ok(())
}

/// 5 → 6: the postings (text search, department lists, queues) and the county's numbers as parts
/// appeared (`indexes.rs`); made from the summaries, which every case write keeps equal to its
/// document.
fn postings_and_parts(store: &Store) -> Result<(), StoreError> {
    super::indexes::rebuild(store)
}

/// The postcard encoding of the fields format 7 appended to the summary, at their defaults, one byte
/// each: `fee_due_fen` 0, `paid_fen` 0, `paid_on` "", `questions_open` [], `answered` 0,
/// `answer_minutes` 0 (varints and lengths).
const FORMAT_7_DEFAULTS: [u8; 6] = [0; 6];

/// A stored summary, and whether it was written before format 7: an older one's encoding is a
/// prefix of the current one that postcard cannot read to the end; with format 7's defaults appended
/// it can.
fn read_summary(key: &[u8], raw: &[u8]) -> Result<(CaseSummary, bool), StoreError> {
    if let Ok(s) = postcard::from_bytes::<CaseSummary>(raw) {
        return Ok((s, false));
    }
    let mut padded = raw.to_vec();
    padded.extend_from_slice(&FORMAT_7_DEFAULTS);
    postcard::from_bytes(&padded)
        .map(|s| (s, true))
        .map_err(|e| corrupt(String::from_utf8_lossy(key).into_owned(), e))
}

/// A stored summary of any format since 3, with format 7's fields at their defaults when it is
/// older (what the index rebuild of 5 → 6 reads).
pub(super) fn summary_of_any_format(key: &[u8], raw: &[u8]) -> Result<CaseSummary, StoreError> {
    read_summary(key, raw).map(|(s, _)| s)
}

/// 6 → 7, the county's back office (issue 18):
/// - the summaries gained the fee owed and paid (`record_payment`) and the 中台 questions (open ones
///   by department, answered, minutes to answer). No case of an older store has either, so each
///   older summary gets them at their defaults, appended to its encoding: no document is read;
/// - the county's indexes gained a window queue per item and state (`q:win`, what a window of one
///   service area reads), 待缴费 (`q:pay`) and the open questions per department (`q:ask`): made
///   again from the summaries.
fn back_office(store: &Store) -> Result<(), StoreError> {
    for entry in store.index.iter() {
        let (key, raw) = entry?;
        if read_summary(&key, &raw)?.1 {
            let mut extended = raw.to_vec();
            extended.extend_from_slice(&FORMAT_7_DEFAULTS);
            store.index.insert(key, extended)?;
        }
    }
    super::indexes::rebuild(store)
}

impl Store {
    /// Runs every migration from `found` to [`STORE_VERSION`], each made durable before the next.
    pub(super) fn migrate_from(&self, found: u32) -> Result<(), StoreError> {
        if found == 0 {
            return Err(corrupt("store_version", "format 0 was never written"));
        }
        for version in found..STORE_VERSION {
            let migrate = MIGRATIONS
                .get(version as usize - 1)
                .ok_or_else(|| corrupt("store_version", format!("no migration from {version}")))?;
            migrate(self)?;
            self.meta.insert(K_VERSION, &(version + 1).to_be_bytes())?;
            self.sync()?;
        }
        Ok(())
    }
}
