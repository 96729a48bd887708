//! The store's format version and the ordered migrations that bring an older store up to it.

use super::error::{corrupt, StoreError};
use super::tables::{CASES, CASE_INDEX, K_VERSION};
use super::Store;

/// Version of the on-disk layout described in `tables.rs`.
pub const STORE_VERSION: u32 = 2;

/// Migrations from version `n` to `n + 1`, in order; entry `i` upgrades version `i + 1`.
type Migration = fn(&sled::Db) -> Result<(), StoreError>;
const MIGRATIONS: &[Migration] = &[reindex_summaries];

/// 1 → 2: case summaries gained workflow fields (kind, handling department, decision day, evaluation,
/// escalations, correction rounds); every summary is rebuilt from its document. Index keys do not change.
fn reindex_summaries(db: &sled::Db) -> Result<(), StoreError> {
    let cases = db.open_tree(CASES)?;
    let index = db.open_tree(CASE_INDEX)?;
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
            migrate(&self.db)?;
            self.meta.insert(K_VERSION, &(version + 1).to_be_bytes())?;
            self.sync()?;
        }
        Ok(())
    }
}
