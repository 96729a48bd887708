//! What can go wrong in the store, in two kinds: a **refusal** (the caller's input or request is not
//! acceptable: nothing was written, the store is fine) and a **fault** (the disk or the database is
//! broken). Only faults may stop a node from taking cases.

use super::migrations::STORE_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk or sled failed (I/O error, full disk).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("data directory {0} is already initialised; refusing to overwrite it")]
    AlreadyInitialised(String),
    #[error("data directory {0} is not initialised (run `init` first: `tongban-node init` on a station, `tongban-hub init` at the county)")]
    NotInitialised(String),
    #[error("store format {found} is newer than this program supports ({STORE_VERSION}); upgrade this program")]
    NewerFormat { found: u32 },
    /// A record on disk does not decode: damage, or a bug that wrote it.
    #[error("corrupt store record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(
        "the store in {dir} is damaged: {reason}. Do not write to it: keep a copy of the directory, then \
         restore it from a backup or re-enrol the node (the county holds every case it has synced)"
    )]
    Damaged { dir: String, reason: String },
    /// The write was refused; nothing changed.
    #[error("{0}")]
    Refused(Refusal),
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// County data (catalogue, calendar) that is not newer than what is stored.
    #[error("{what}: version {offered} is not newer than the current {current}")]
    NotNewer {
        what: &'static str,
        offered: u32,
        current: u32,
    },
    /// Data for another node than this one.
    #[error("this node is {this}, not {other}: its cases are numbered with its own code")]
    WrongNode { this: String, other: String },
    /// Input that fails its checks (a document, a catalogue, a calendar table, a case number).
    #[error("{what} refused: {reason}")]
    Invalid { what: String, reason: String },
    /// Something with this name exists already (an account).
    #[error("{0} already exists")]
    Exists(String),
    /// A case document over the size budget ([`tongban_shared::limits::MAX_CASE_BYTES`]).
    #[error("case {case_no}: {why}")]
    TooLarge { case_no: String, why: String },
    /// A case number that is taken.
    #[error("case number {0} is already in use")]
    InUse(String),
}

impl StoreError {
    /// Whether the disk or the database is at fault (as opposed to a refused write or a directory
    /// that is not set up): the web layer latches its storage fault only on these.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(_) | StoreError::Corrupt { .. } | StoreError::Damaged { .. }
        )
    }
}

pub(super) fn corrupt(key: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.into(),
        reason: reason.to_string(),
    }
}

pub(super) fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Refused(Refusal::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    })
}

/// An I/O error of a file the store keeps beside sled (log handle, seal): a fault like sled's own.
pub(super) fn io(e: std::io::Error) -> StoreError {
    StoreError::Sled(sled::Error::Io(e))
}
