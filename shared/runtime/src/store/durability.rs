//! Opening a store, and making writes durable: sled's flush, an fsync of its log, and the write seal
//! beside the database that notices when sled has silently lost flushed writes.

use std::path::Path;

use tongban_shared::catalog::Catalog;

use super::error::{corrupt, invalid, io, StoreError};
use super::keys::read_u64;
use super::meta::NodeIdentity;
use super::migrations::STORE_VERSION;
use super::tables::*;
use super::Store;

/// sled's page cache; the default (1 GiB) is far more than an old village PC should give a background
/// service, and lists read the small index tree, so a modest cache keeps them fast.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// sled's log segment, its default, stated because it bounds what stays in the log: sled writes a
/// page larger than a quarter of a segment to a blob file of its own, which `Store::sync` does not
/// fsync, and a case document may be 96 KiB (`limits::MAX_CASE_BYTES`). 256 KiB segments took a
/// filled store from 21 KB to 7 KB per case (docs/BENCHMARKS.md) but put such documents in blob
/// files; sled also refuses to change a store's segment size once made.
const SEGMENT_BYTES: usize = 512 * 1024;

/// File next to the database holding the count of case writes known flushed (8 bytes, big-endian).
const SEAL_FILE: &str = "write-seal";

fn db_path(dir: &Path) -> std::path::PathBuf {
    dir.join("db")
}

/// Overwrites the first bytes of `file` without moving a shared cursor.
#[cfg(unix)]
fn write_at_start(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, 0)
}

/// Overwrites the first bytes of `file` (Windows has positioned writes as `seek_write`).
#[cfg(windows)]
fn write_at_start(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    let mut done = 0;
    while done < bytes.len() {
        done += file.seek_write(&bytes[done..], done as u64)?;
    }
    Ok(())
}

impl Store {
    pub(super) fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
        // A store closed in this process a moment ago may still be locked: sled drops its file lock
        // when its background flusher ends, after `Db` is dropped. Wait for that, briefly; another
        // process holding the store keeps it locked and gets the error after the last attempt.
        let mut attempts = 0;
        loop {
            match Store::open_db_once(dir) {
                Err(StoreError::Sled(sled::Error::Io(e)))
                    if attempts < 100 && e.to_string().contains("could not acquire lock") =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open_db_once(dir: &Path) -> Result<sled::Db, StoreError> {
        let config = sled::Config::new()
            .path(db_path(dir))
            .cache_capacity(CACHE_BYTES)
            .segment_size(SEGMENT_BYTES);
        // sled panics on some damaged logs instead of returning an error; the program must still say
        // what is wrong rather than die with a backtrace.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open())) {
            Ok(opened) => Ok(opened?),
            Err(panic) => Err(StoreError::Damaged {
                dir: dir.display().to_string(),
                reason: format!(
                    "the database log cannot be read ({})",
                    panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "sled panicked".into())
                ),
            }),
        }
    }

    /// Fails if the database holds fewer case writes than were once known flushed. sled recovers a
    /// damaged log by silently dropping everything after the damage; the seal, written outside the
    /// database after each flush, is what notices that acknowledged cases went missing.
    pub(super) fn check_seal(&self, dir: &Path) -> Result<(), StoreError> {
        // Before format 5 the count lived in `meta`; the seal is checked before migrations run.
        let held = read_u64(self.counters.get(K_WRITES)?).max(read_u64(self.meta.get(K_WRITES)?));
        let sealed = self.seal.lock().unwrap_or_else(|p| p.into_inner()).1;
        if held < sealed {
            return Err(StoreError::Damaged {
                dir: dir.display().to_string(),
                reason: format!(
                    "it holds {held} case writes, but {sealed} were stored and made durable before; \
                     acknowledged work was lost"
                ),
            });
        }
        Ok(())
    }

    fn from_db(db: sled::Db, dir: &Path) -> Result<Store, StoreError> {
        let log_path = db_path(dir).join("db");
        // Opened for writing although nothing is written through it: on Windows `sync_all`
        // (FlushFileBuffers) needs a handle with write access ("Access denied" otherwise).
        let log_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(io)?;
        let seal_path = db_path(dir).join(SEAL_FILE);
        let mut seal_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&seal_path)
            .map_err(io)?;
        restrict_to_owner(dir)?;
        restrict_to_owner(&db_path(dir))?;
        let mut sealed = [0u8; 8];
        let sealed = match std::io::Read::read(&mut seal_file, &mut sealed) {
            Ok(8) => u64::from_be_bytes(sealed),
            Ok(_) => 0,
            Err(e) => return Err(io(e)),
        };
        Ok(Store {
            log_file: std::sync::Arc::new(log_file),
            seal: std::sync::Arc::new(std::sync::Mutex::new((seal_file, sealed))),
            meta: db.open_tree(META)?,
            counters: db.open_tree(COUNTERS)?,
            cases: db.open_tree(CASES)?,
            index: db.open_tree(CASE_INDEX)?,
            by_created: db.open_tree(BY_CREATED)?,
            by_state: db.open_tree(BY_STATE)?,
            by_todo: db.open_tree(BY_TODO)?,
            idempotency: db.open_tree(IDEMPOTENCY)?,
            users: db.open_tree(USERS)?,
            sync_roots: db.open_tree(SYNC_ROOTS)?,
            sync_nodes: db.open_tree(SYNC_NODES)?,
            sync_items: db.open_tree(SYNC_ITEMS)?,
            postings: db.open_tree(POSTINGS)?,
            posting_counts: db.open_tree(POSTING_COUNTS)?,
            cells: db.open_tree(CELLS)?,
            deadlines: db.open_tree(DEADLINES)?,
            handovers: db.open_tree(HANDOVERS)?,
            actors: db.open_tree(ACTORS)?,
            nodes: db.open_tree(NODES)?,
            outbox: db.open_tree(OUTBOX)?,
            outgoing: db.open_tree(OUTGOING)?,
            notes_outgoing: Default::default(),
            write_lock: Default::default(),
            audit: std::sync::Arc::new(super::audit::AuditLog::open(dir)?),
            changes: Default::default(),
            own_code: Default::default(),
            db,
        })
    }

    /// Creates a new store in `dir`. Refuses a directory that already holds one.
    pub fn create(
        dir: &Path,
        identity: &NodeIdentity,
        actor: &[u8],
        catalog_json: &str,
    ) -> Result<Store, StoreError> {
        if db_path(dir).exists() {
            return Err(StoreError::AlreadyInitialised(dir.display().to_string()));
        }
        let catalog = Catalog::from_json(catalog_json).map_err(|e| invalid("catalogue", e))?;
        let store = Store::from_db(Store::open_db(dir)?, dir)?;
        let identity_json = serde_json::to_vec(identity).map_err(|e| corrupt("identity", e))?;
        // The version goes in last: a crash half-way through init leaves a store that `open` refuses as
        // not initialised, rather than one that looks complete.
        store.meta.insert(K_IDENTITY, identity_json)?;
        store.note_tier(identity.tier);
        store.meta.insert(K_ACTOR, actor)?;
        store.actors.insert(actor, identity.code.as_bytes())?;
        store.meta.insert(
            K_CATALOG,
            super::meta::compact_json(catalog_json)?.as_bytes(),
        )?;
        // Without it every version check parses the whole catalogue (see `catalog_version`).
        store
            .meta
            .insert(K_CATALOG_VERSION, &catalog.version.to_be_bytes())?;
        store.sync()?;
        store.meta.insert(K_VERSION, &STORE_VERSION.to_be_bytes())?;
        store.sync()?;
        Ok(store)
    }

    /// Opens an initialised store, running any migrations from an older format.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        if !db_path(dir).exists() {
            return Err(StoreError::NotInitialised(dir.display().to_string()));
        }
        let store = Store::from_db(Store::open_db(dir)?, dir)?;
        let Some(raw) = store.meta.get(K_VERSION)? else {
            return Err(StoreError::NotInitialised(dir.display().to_string()));
        };
        let found = u32::from_be_bytes(
            <[u8; 4]>::try_from(raw.as_ref()).map_err(|e| corrupt("store_version", e))?,
        );
        if found > STORE_VERSION {
            return Err(StoreError::NewerFormat { found });
        }
        store.check_seal(dir)?;
        if let Ok(identity) = store.identity() {
            store.note_tier(identity.tier);
        }
        store.migrate_from(found)?;
        Ok(store)
    }

    /// Makes everything written so far durable (sled flush, then fsync of its log file).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.sync()
    }

    pub(super) fn sync(&self) -> Result<(), StoreError> {
        // Read before the flush: every write counted here is in what the flush makes durable.
        let writes = read_u64(self.counters.get(K_WRITES)?);
        self.db.flush()?;
        self.log_file.sync_all().map_err(io)?;
        self.write_seal(writes)?;
        self.publish_changes();
        Ok(())
    }

    /// Records `writes` as flushed. Not fsynced: a seal lost to a power cut only under-reports, so it
    /// can never raise a false alarm; it exists to catch a database that later loses flushed data.
    fn write_seal(&self, writes: u64) -> Result<(), StoreError> {
        let mut seal = self.seal.lock().unwrap_or_else(|p| p.into_inner());
        if writes > seal.1 {
            write_at_start(&seal.0, &writes.to_be_bytes()).map_err(io)?;
            seal.1 = writes;
        }
        Ok(())
    }
}

/// Only the account the program runs as may enter the data directory: it holds villagers' ID
/// numbers, phones and addresses, account hashes and the node's private key. sled creates its files
/// with the process's umask (often 0644), so the directories are what keeps others out; the files
/// found at open are narrowed to 0600 as well.
#[cfg(unix)]
pub fn restrict_to_owner(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
    }
    Ok(())
}

/// On Windows a directory inherits the access list of where it is made; the installer creates the
/// data directory with one for the service account and administrators only (docs/SECURITY.md).
#[cfg(not(unix))]
pub fn restrict_to_owner(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}
