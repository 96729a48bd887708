//! The durable store of a node or the hub: every sled call of either lives in this module, behind
//! [`Store`]. What each tree holds is in `tables.rs`; the rest is split by responsibility:
//!
//! - `tables`: tree names, their layout, and the transaction over a case write's trees.
//! - `keys`: key encodings.
//! - `durability`: opening sled, flush + fsync, and the write seal that catches a damaged log.
//! - `migrations`: the format version and the ordered upgrades.
//! - `meta`: who this node is, its actor id, the catalogue and calendar in use.
//! - `cases`: storing new cases and merged versions.
//! - `trie`: the per-scope summary trie that sync reconciles.
//! - `queries`: lists, counts, and walks over the summaries.
//! - `indexes`: postings and the county's numbers, written with each case (format 6).
//! - `search`: reading them: text search, department lists, queues, the numbers.
//! - `outgoing`: local writes not yet gone up.
//! - `changes`: durable changes told to listeners (the sync server's notices).
//! - `accounts`, `actors`: people and automerge actor bindings.
//! - `county`: records only the hub keeps (nodes, the outbox), reached through [`Store::county`].
//! - `backup`: a consistent copy of the store and the files beside it, and its restore.
//! - `error`: refusals versus faults.

mod accounts;
mod actors;
pub mod audit;
pub mod backup;
mod cases;
pub mod changes;
pub mod county;
mod durability;
mod error;
mod indexes;
pub(crate) mod keys;
mod meta;
mod migrations;
mod outgoing;
mod queries;
mod search;
mod tables;
mod trie;

pub use accounts::UserRecord;
pub use cases::Created;
pub use durability::restrict_to_owner as restrict_dir_to_owner;
pub use error::{Refusal, StoreError};
pub use meta::NodeIdentity;
pub use migrations::STORE_VERSION;
pub use queries::{ListPage, ListQuery, TreeSize};

/// One data directory's store. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// sled's log file, opened a second time: on Linux sled's own flush only waits for
    /// `sync_file_range`, which neither persists the file's size nor empties the disk's write cache.
    /// `fsync` on this handle makes an acknowledged write survive a power cut, not just a process kill.
    log_file: std::sync::Arc<std::fs::File>,
    /// The write seal (see `durability.rs`) and the highest count written to it.
    seal: std::sync::Arc<std::sync::Mutex<(std::fs::File, u64)>>,
    meta: sled::Tree,
    counters: sled::Tree,
    cases: sled::Tree,
    index: sled::Tree,
    by_created: sled::Tree,
    by_state: sled::Tree,
    by_todo: sled::Tree,
    idempotency: sled::Tree,
    users: sled::Tree,
    sync_roots: sled::Tree,
    sync_nodes: sled::Tree,
    sync_items: sled::Tree,
    postings: sled::Tree,
    posting_counts: sled::Tree,
    cells: sled::Tree,
    deadlines: sled::Tree,
    handovers: sled::Tree,
    actors: sled::Tree,
    nodes: sled::Tree,
    outbox: sled::Tree,
    /// Client side: local writes not yet gone up (a hint for the next session; see
    /// `Replica::outgoing`).
    outgoing: sled::Tree,
    /// Whether writes are noted in `outgoing`: every tier but the county, which has no upstream.
    notes_outgoing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Serialises writes of existing cases (load, merge, write) so two sessions or a session and a local
    /// edit never overwrite each other's merge.
    write_lock: std::sync::Arc<std::sync::Mutex<()>>,
    /// The data directory's audit log (`DIR/audit.log`), appended only through this store.
    audit: std::sync::Arc<audit::AuditLog>,
    /// Durable changes for listeners (see `changes.rs`).
    changes: std::sync::Arc<changes::Changes>,
    /// This node's division code, read once: a store's code never changes (`enroll` keeps it), and
    /// every new case received asks whether it is one of its own.
    own_code: std::sync::Arc<std::sync::OnceLock<String>>,
}

#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod tests;
