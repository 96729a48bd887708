//! The node's durable store: every sled call of the node lives here, behind [`Store`].
//!
//! Layout (store format [`STORE_VERSION`]):
//! - `meta`: format version, node identity, automerge actor id, catalogue JSON and its version, calendar
//!   tables and their version, per-day case-number
//!   counters (`seq/<yyyymmdd>`), case counters (`count/ALL`, `count/<STATE>`).
//! - `cases`: case number → `Automerge::save` bytes of the case document.
//! - `case_index`: case number → postcard [`CaseSummary`] (lists never load documents).
//! - `by_created`: `created_ms (i64 BE, sign-flipped) ‖ case number` → () for newest-first lists.
//! - `by_state`: `state ‖ 0 ‖ created key` → () for the state filter.
//! - `idempotency`: client request key → case number, so a retried submission never doubles a case.
//! - `users`: account name → postcard [`UserRecord`].
//! - `sync_roots`: scope → root [`Fp`] of the scope's summary trie; `sync_nodes`: scope ‖ 0 ‖
//!   [`Prefix::key`] → [`Fp`] for the levels below the root; `sync_items`: scope ‖ 0 ‖ bucket ‖ case
//!   number → heads digest. Maintained in the same transaction as every case write (see
//!   `tongban_shared::sync::summary`).
//! - `actors`: automerge actor id → division code of the node it is bound to.
//! - `nodes` (hub): division code → JSON [`NodeRecord`].
//! - `outbox` (hub): message id (u64 BE) → JSON [`OutboxMessage`].
//!
//! Writes that belong together go in one sled transaction and are flushed (fsync) before the caller is
//! told they succeeded: that is the moment a case may be acknowledged to a person.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use tongban_shared::calendar::Calendar;
use tongban_shared::case::{CaseState, CaseSummary};
use tongban_shared::catalog::Catalog;
use tongban_shared::sync::scope;
use tongban_shared::sync::summary::{self, Digest, Fp, Prefix};
use tongban_shared::Tier;

/// Version of the on-disk layout described in the module header.
pub const STORE_VERSION: u32 = 2;

/// Migrations from version `n` to `n + 1`, in order; entry `i` upgrades version `i + 1`.
type Migration = fn(&sled::Db) -> Result<(), StoreError>;
const MIGRATIONS: &[Migration] = &[reindex_summaries];

/// 1 → 2: case summaries gained workflow fields (kind, handling department, decision day, evaluation,
/// escalations, correction rounds); every summary is rebuilt from its document. Index keys do not change.
fn reindex_summaries(db: &sled::Db) -> Result<(), StoreError> {
    let cases = db.open_tree("cases")?;
    let index = db.open_tree("case_index")?;
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

/// sled's page cache; the default (1 GiB) is far more than an old village PC should give a background
/// service, and lists read the small index tree, so a modest cache keeps them fast.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("data directory {0} is already initialised; refusing to overwrite it")]
    AlreadyInitialised(String),
    #[error("data directory {0} is not initialised (run `tongban-node init` first)")]
    NotInitialised(String),
    #[error("store format {found} is newer than this program supports ({STORE_VERSION}); upgrade tongban-node")]
    NewerFormat { found: u32 },
    #[error("corrupt store record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(
        "the store in {dir} is damaged: {reason}. Do not write to it: keep a copy of the directory, then \
         restore it from a backup or re-enrol the node (the county holds every case it has synced)"
    )]
    Damaged { dir: String, reason: String },
    #[error("account {0} already exists")]
    UserExists(String),
    #[error("catalogue: {0}")]
    Catalog(#[from] tongban_shared::catalog::CatalogError),
}

fn corrupt(key: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.into(),
        reason: reason.to_string(),
    }
}

/// Who this node is. Set at `init`; later replaced by the enrolment bundle's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub parent: Option<String>,
    /// Upstream sync address; `None` while the node works standalone.
    pub upstream: Option<String>,
    /// TLS server name of the upstream (`hub.tongban`, or a township's name).
    #[serde(default)]
    pub upstream_name: Option<String>,
    /// The hub's address for a village behind a township, used when the township stays unreachable.
    #[serde(default)]
    pub fallback: Option<String>,
    pub created_at: String,
}

/// One text message to an applicant, kept until a sender has passed it on (and after, as a record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: u64,
    pub case_no: String,
    pub phone: String,
    /// `correction`, `result_ready`, …
    pub kind: String,
    pub text: String,
    pub created_at: String,
    pub sent_at: Option<String>,
    /// Which sender passed it on (`log` by default).
    pub sender: Option<String>,
}

/// A node as the hub knows it: enrolment, revocation, and how its syncing goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub parent: Option<String>,
    pub enrolled_at: String,
    pub revoked: bool,
    /// Serial of the certificate issued at enrolment (hex).
    pub serial: String,
    pub last_seen: Option<String>,
    pub sessions: u64,
    pub failed_sessions: u64,
    /// Changes and scopes refused from this node, ever.
    pub refusals: u64,
    /// Local writes the node reported as not yet gone up, at its last session.
    #[serde(default)]
    pub pending: u64,
    /// The township the node last synced through, as that township reported.
    #[serde(default)]
    pub via: Option<String>,
    /// Sessions and refusals on the node's link to its township (as the township reported them).
    #[serde(default)]
    pub relayed_sessions: u64,
    #[serde(default)]
    pub relayed_refusals: u64,
    pub last_error: Option<String>,
    /// The node's clock minus the hub's at its last session (seconds).
    #[serde(default)]
    pub clock_skew_s: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub display_name: String,
    /// `agent` (代办员) or `clerk` (乡镇窗口); both may take cases at a node.
    pub role: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub created_at: String,
}

/// Result of [`Store::create_case`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new case, durable on disk.
    New(CaseSummary),
    /// The same client request was already stored: its case, unchanged.
    Replayed(CaseSummary),
}

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
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub cases: Vec<CaseSummary>,
    pub total: u64,
    pub next: Option<String>,
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// sled's log file, opened a second time: on Linux sled's own flush only waits for
    /// `sync_file_range`, which neither persists the file's size nor empties the disk's write cache.
    /// `fsync` on this handle makes an acknowledged write survive a power cut, not just a process kill.
    log_file: std::sync::Arc<std::fs::File>,
    /// The write seal (see [`Store::check_seal`]) and the highest count written to it.
    seal: std::sync::Arc<std::sync::Mutex<(std::fs::File, u64)>>,
    meta: sled::Tree,
    cases: sled::Tree,
    index: sled::Tree,
    by_created: sled::Tree,
    by_state: sled::Tree,
    idempotency: sled::Tree,
    users: sled::Tree,
    sync_roots: sled::Tree,
    sync_nodes: sled::Tree,
    sync_items: sled::Tree,
    actors: sled::Tree,
    nodes: sled::Tree,
    outbox: sled::Tree,
    /// Client side: case number → (version, new here) of local writes not yet gone up (a hint for the
    /// next session; see `Replica::outgoing`).
    outgoing: sled::Tree,
    /// Whether writes are noted in `outgoing`: every tier but the county, which has no upstream.
    notes_outgoing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Serialises writes of existing cases (load, merge, write) so two sessions or a session and a local
    /// edit never overwrite each other's merge.
    write_lock: std::sync::Arc<std::sync::Mutex<()>>,
}

const K_VERSION: &[u8] = b"store_version";
const K_IDENTITY: &[u8] = b"identity";
const K_ACTOR: &[u8] = b"actor";
const K_CATALOG: &[u8] = b"catalog";
const K_CATALOG_VERSION: &[u8] = b"catalog_version";
const K_CALENDAR: &[u8] = b"calendar";
const K_CALENDAR_VERSION: &[u8] = b"calendar_version";
const K_COUNT_ALL: &[u8] = b"count/ALL";
/// Case writes ever applied (creations and merges), counted inside each write's transaction.
const K_WRITES: &[u8] = b"writes";
/// File next to the database holding the count of case writes known flushed (8 bytes, big-endian).
const SEAL_FILE: &str = "write-seal";

fn db_path(dir: &Path) -> std::path::PathBuf {
    dir.join("db")
}

/// Sort key that makes sled's ascending order newest-first: created time flipped, then the case number
/// with every byte flipped, so that cases of the same millisecond also come newest (highest number) first.
fn created_key(created_ms: i64, case_no: &str) -> Vec<u8> {
    let flipped = (i64::MAX - created_ms).to_be_bytes();
    let mut k = Vec::with_capacity(8 + case_no.len());
    k.extend_from_slice(&flipped);
    k.extend(case_no.bytes().map(|b| !b));
    k
}

/// The case number inside a [`created_key`].
fn case_no_of_created_key(key: &[u8]) -> Result<String, StoreError> {
    let bytes: Vec<u8> = key
        .get(8..)
        .unwrap_or_default()
        .iter()
        .map(|b| !b)
        .collect();
    String::from_utf8(bytes).map_err(|e| corrupt("by_created", e))
}

fn state_key(state: &str, created: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(state.len() + 1 + created.len());
    k.extend_from_slice(state.as_bytes());
    k.push(0);
    k.extend_from_slice(created);
    k
}

fn count_key(state: &str) -> Vec<u8> {
    format!("count/{state}").into_bytes()
}

fn read_u64(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Store {
    fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
        let config = sled::Config::new()
            .path(db_path(dir))
            .cache_capacity(CACHE_BYTES);
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
    fn check_seal(&self, dir: &Path) -> Result<(), StoreError> {
        let held = read_u64(self.meta.get(K_WRITES)?);
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
        let log_file = std::fs::File::open(&log_path)
            .map_err(|e| corrupt(log_path.display().to_string(), e))?;
        let seal_path = db_path(dir).join(SEAL_FILE);
        let mut seal_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&seal_path)
            .map_err(|e| corrupt(seal_path.display().to_string(), e))?;
        let mut sealed = [0u8; 8];
        let sealed = match std::io::Read::read(&mut seal_file, &mut sealed) {
            Ok(8) => u64::from_be_bytes(sealed),
            Ok(_) => 0,
            Err(e) => return Err(corrupt(seal_path.display().to_string(), e)),
        };
        Ok(Store {
            log_file: std::sync::Arc::new(log_file),
            seal: std::sync::Arc::new(std::sync::Mutex::new((seal_file, sealed))),
            meta: db.open_tree("meta")?,
            cases: db.open_tree("cases")?,
            index: db.open_tree("case_index")?,
            by_created: db.open_tree("by_created")?,
            by_state: db.open_tree("by_state")?,
            idempotency: db.open_tree("idempotency")?,
            users: db.open_tree("users")?,
            sync_roots: db.open_tree("sync_roots")?,
            sync_nodes: db.open_tree("sync_nodes")?,
            sync_items: db.open_tree("sync_items")?,
            actors: db.open_tree("actors")?,
            nodes: db.open_tree("nodes")?,
            outbox: db.open_tree("outbox")?,
            outgoing: db.open_tree("outgoing")?,
            notes_outgoing: Default::default(),
            write_lock: Default::default(),
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
        Catalog::from_json(catalog_json)?;
        let store = Store::from_db(Store::open_db(dir)?, dir)?;
        let identity_json = serde_json::to_vec(identity).map_err(|e| corrupt("identity", e))?;
        // The version goes in last: a crash half-way through init leaves a store that `open` refuses as
        // not initialised, rather than one that looks complete.
        store.meta.insert(K_IDENTITY, identity_json)?;
        store.note_tier(identity.tier);
        store.meta.insert(K_ACTOR, actor)?;
        store.actors.insert(actor, identity.code.as_bytes())?;
        store.meta.insert(K_CATALOG, catalog_json.as_bytes())?;
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
        for version in found..STORE_VERSION {
            let migrate = MIGRATIONS
                .get(version as usize - 1)
                .ok_or_else(|| corrupt("store_version", format!("no migration from {version}")))?;
            migrate(&store.db)?;
            store.meta.insert(K_VERSION, &(version + 1).to_be_bytes())?;
            store.sync()?;
        }
        Ok(store)
    }

    pub fn identity(&self) -> Result<NodeIdentity, StoreError> {
        let raw = self
            .meta
            .get(K_IDENTITY)?
            .ok_or_else(|| corrupt("identity", "missing"))?;
        serde_json::from_slice(&raw).map_err(|e| corrupt("identity", e))
    }

    /// Replaces the identity (enrolment of a standalone node). The code may not change: every case the
    /// node holds is numbered with it.
    pub fn set_identity(&self, identity: &NodeIdentity) -> Result<(), StoreError> {
        let current = self.identity()?;
        if current.code != identity.code {
            return Err(corrupt(
                "identity",
                format!(
                    "this node is {}, the bundle is for {}: its cases are numbered with its own code",
                    current.code, identity.code
                ),
            ));
        }
        let json = serde_json::to_vec(identity).map_err(|e| corrupt("identity", e))?;
        self.meta.insert(K_IDENTITY, json)?;
        self.note_tier(identity.tier);
        self.sync()
    }

    fn note_tier(&self, tier: Tier) {
        self.notes_outgoing
            .store(tier != Tier::County, std::sync::atomic::Ordering::SeqCst);
    }

    /// Notes a case written here for the next session to send first. Called under the write lock,
    /// right after the write's transaction, so the version is that write's.
    fn note_outgoing(&self, case_no: &str, new_here: bool) -> Result<(), StoreError> {
        if !self
            .notes_outgoing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        let version = read_u64(self.meta.get(K_WRITES)?);
        let was_new = self
            .outgoing
            .get(case_no.as_bytes())?
            .is_some_and(|v| v.get(8) == Some(&1));
        let mut value = version.to_be_bytes().to_vec();
        value.push(u8::from(new_here || was_new));
        self.outgoing.insert(case_no.as_bytes(), value)?;
        Ok(())
    }

    /// The cases noted by [`Store::note_outgoing`] and not yet cleared.
    pub fn outgoing(&self) -> Result<Vec<tongban_shared::sync::Outgoing>, StoreError> {
        let mut out = Vec::new();
        for entry in self.outgoing.iter() {
            let (k, v) = entry?;
            let version = <[u8; 8]>::try_from(v.get(..8).unwrap_or_default())
                .map(u64::from_be_bytes)
                .map_err(|e| corrupt("outgoing", e))?;
            out.push(tongban_shared::sync::Outgoing {
                case_no: String::from_utf8_lossy(&k).into_owned(),
                version,
                new_here: v.get(8) == Some(&1),
            });
        }
        Ok(out)
    }

    /// Forgets the outgoing entries of writes up to `version` (a later write of the same case stays).
    pub fn clear_outgoing(&self, version: u64) -> Result<(), StoreError> {
        for entry in self.outgoing.iter() {
            let (k, v) = entry?;
            let written = <[u8; 8]>::try_from(v.get(..8).unwrap_or_default())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if written <= version {
                // Only if unchanged since read: a write in between keeps its entry.
                let _ = self.outgoing.compare_and_swap(&k, Some(v), None::<&[u8]>)?;
            }
        }
        Ok(())
    }

    /// Writes a hub-side node record (durable).
    pub fn put_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| corrupt(&record.code, e))?;
        self.nodes.insert(record.code.as_bytes(), bytes)?;
        self.sync()
    }

    pub fn node_record(&self, code: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.nodes
            .get(code.as_bytes())?
            .map(|v| serde_json::from_slice(&v).map_err(|e| corrupt(code, e)))
            .transpose()
    }

    /// Updates a node record in place (sync statistics); not flushed, they are statistics.
    pub fn update_node(
        &self,
        code: &str,
        f: impl Fn(&mut NodeRecord),
    ) -> Result<Option<NodeRecord>, StoreError> {
        let mut out = None;
        self.nodes.fetch_and_update(code.as_bytes(), |old| {
            let mut rec: NodeRecord = serde_json::from_slice(old?).ok()?;
            f(&mut rec);
            out = Some(rec.clone());
            serde_json::to_vec(&rec).ok()
        })?;
        Ok(out)
    }

    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.nodes
            .iter()
            .map(|e| {
                let (k, v) = e?;
                serde_json::from_slice(&v)
                    .map_err(|e| corrupt(String::from_utf8_lossy(&k).into_owned(), e))
            })
            .collect()
    }

    /// Queues a message durably; returns its id.
    pub fn enqueue_message(
        &self,
        case_no: &str,
        phone: &str,
        kind: &str,
        text: &str,
        created_at: &str,
    ) -> Result<u64, StoreError> {
        let id = self.db.generate_id()?;
        let msg = OutboxMessage {
            id,
            case_no: case_no.to_string(),
            phone: phone.to_string(),
            kind: kind.to_string(),
            text: text.to_string(),
            created_at: created_at.to_string(),
            sent_at: None,
            sender: None,
        };
        let bytes = serde_json::to_vec(&msg).map_err(|e| corrupt("outbox", e))?;
        self.outbox.insert(id.to_be_bytes(), bytes)?;
        self.sync()?;
        Ok(id)
    }

    /// Messages, oldest first; only unsent ones with `unsent_only`.
    pub fn outbox(&self, unsent_only: bool) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut out = Vec::new();
        for entry in self.outbox.iter() {
            let (_, v) = entry?;
            let msg: OutboxMessage =
                serde_json::from_slice(&v).map_err(|e| corrupt("outbox", e))?;
            if !unsent_only || msg.sent_at.is_none() {
                out.push(msg);
            }
        }
        Ok(out)
    }

    /// Records that a sender passed message `id` on.
    pub fn mark_sent(&self, id: u64, sender: &str, at: &str) -> Result<(), StoreError> {
        self.outbox.fetch_and_update(id.to_be_bytes(), |old| {
            let mut msg: OutboxMessage = serde_json::from_slice(old?).ok()?;
            msg.sent_at = Some(at.to_string());
            msg.sender = Some(sender.to_string());
            serde_json::to_vec(&msg).ok()
        })?;
        self.sync()
    }

    /// Number of cases in a scope and below it (a township's count includes its villages').
    pub fn cases_in_scope(&self, within: &str) -> Result<u64, StoreError> {
        Ok(self
            .scope_roots(within)?
            .iter()
            .map(|(_, fp)| u64::from(fp.count))
            .sum())
    }

    pub fn actor(&self) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .meta
            .get(K_ACTOR)?
            .ok_or_else(|| corrupt("actor", "missing"))?
            .to_vec())
    }

    pub fn catalog(&self) -> Result<Catalog, StoreError> {
        let raw = self
            .meta
            .get(K_CATALOG)?
            .ok_or_else(|| corrupt("catalog", "missing"))?;
        let json = std::str::from_utf8(&raw).map_err(|e| corrupt("catalog", e))?;
        Ok(Catalog::from_json(json)?)
    }

    /// The catalogue as stored (JSON text).
    pub fn catalog_json(&self) -> Result<String, StoreError> {
        let raw = self
            .meta
            .get(K_CATALOG)?
            .ok_or_else(|| corrupt("catalog", "missing"))?;
        String::from_utf8(raw.to_vec()).map_err(|e| corrupt("catalog", e))
    }

    /// Version of the stored catalogue, without parsing all of it.
    pub fn catalog_version(&self) -> Result<u32, StoreError> {
        match self.meta.get(K_CATALOG_VERSION)? {
            Some(v) => Ok(u32::from_be_bytes(
                <[u8; 4]>::try_from(v.as_ref()).map_err(|e| corrupt("catalog_version", e))?,
            )),
            // Stores from before the version key: read it from the catalogue itself.
            None => Ok(self.catalog()?.version),
        }
    }

    /// Replaces the catalogue with a newer, valid version (durably). An older or equal version, or a
    /// catalogue that fails its checks, is refused and the current one stays.
    pub fn set_catalog(&self, json: &str) -> Result<u32, StoreError> {
        let catalog = Catalog::from_json(json)?;
        let current = self.catalog_version()?;
        if catalog.version <= current {
            return Err(StoreError::Corrupt {
                key: "catalog".into(),
                reason: format!(
                    "version {} is not newer than the current {current}",
                    catalog.version
                ),
            });
        }
        let mut batch = sled::Batch::default();
        batch.insert(K_CATALOG, json.as_bytes());
        batch.insert(K_CATALOG_VERSION, &catalog.version.to_be_bytes());
        self.meta.apply_batch(batch)?;
        self.sync()?;
        Ok(catalog.version)
    }

    /// The working-day calendar: the built-in table plus every year stored here.
    pub fn calendar(&self) -> Result<Calendar, StoreError> {
        let cal = match self.meta.get(K_CALENDAR)? {
            Some(raw) => {
                let json = std::str::from_utf8(&raw).map_err(|e| corrupt("calendar", e))?;
                Calendar::from_tables_json(json)
            }
            None => Calendar::builtin(),
        };
        cal.map_err(|e| corrupt("calendar", e))
    }

    /// 0 while only the built-in table is used.
    pub fn calendar_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .meta
            .get(K_CALENDAR_VERSION)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0))
    }

    /// Stores calendar tables received from upstream (checked; only a newer version replaces).
    pub fn set_calendar(&self, version: u32, tables_json: &str) -> Result<(), StoreError> {
        Calendar::from_tables_json(tables_json).map_err(|e| corrupt("calendar", e))?;
        if version <= self.calendar_version()? {
            return Err(corrupt(
                "calendar",
                format!("version {version} is not newer"),
            ));
        }
        let mut batch = sled::Batch::default();
        batch.insert(K_CALENDAR, tables_json.as_bytes());
        batch.insert(K_CALENDAR_VERSION, &version.to_be_bytes());
        self.meta.apply_batch(batch)?;
        self.sync()
    }

    /// The county adds or replaces one year's table; returns the new calendar version.
    pub fn add_calendar_year(&self, year_json: &str) -> Result<u32, StoreError> {
        let mut cal = self.calendar()?;
        cal.add_year_json(year_json)
            .map_err(|e| corrupt("calendar", e))?;
        let version = self.calendar_version()? + 1;
        self.set_calendar(version, &cal.to_json())?;
        Ok(version)
    }

    pub fn add_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let bytes = postcard::to_stdvec(user).map_err(|e| corrupt(&user.name, e))?;
        self.users
            .compare_and_swap(user.name.as_bytes(), None as Option<&[u8]>, Some(bytes))?
            .map_err(|_| StoreError::UserExists(user.name.clone()))?;
        self.sync()?;
        Ok(())
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.users
            .get(name.as_bytes())?
            .map(|raw| postcard::from_bytes(&raw).map_err(|e| corrupt(format!("user {name}"), e)))
            .transpose()
    }

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
            .meta
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
        let write = CaseWrite::new(&summary, doc, &summary.case_no)?;
        let no = summary.case_no.as_bytes();
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = self.trees().transaction(|t| {
            let tx = Tx::from(t);
            if let Some(key) = request_key {
                if let Some(existing) = tx.idempotency.get(key.as_bytes())? {
                    return Ok(Some(String::from_utf8_lossy(&existing).into_owned()));
                }
                tx.idempotency.insert(key.as_bytes(), no)?;
            }
            if tx.cases.get(no)?.is_some() {
                return Err(ConflictableTransactionError::Abort(corrupt(
                    &summary.case_no,
                    "case number already in use",
                )));
            }
            // Written again inside the transaction so that the counter can never be behind a
            // stored case, whatever sled persisted of the update above before a crash.
            let stored = tx
                .meta
                .get(&counter_key)?
                .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
                .map(u32::from_be_bytes)
                .unwrap_or(0);
            tx.meta
                .insert(counter_key.as_slice(), &stored.max(seq).to_be_bytes())?;
            write.apply(&tx)?;
            Ok(None)
        });
        let replayed = match outcome {
            Ok(r) => r,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        if replayed.is_none() {
            self.note_outgoing(&summary.case_no, true)?;
        }
        if flush {
            self.sync()?;
        }
        Ok(Ok(match replayed {
            Some(no) => Created::Replayed(self.summary_required(&no)?),
            None => Created::New(summary),
        }))
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

    fn summary_required(&self, case_no: &str) -> Result<CaseSummary, StoreError> {
        self.summary(case_no)?
            .ok_or_else(|| corrupt(case_no, "indexed request points to a missing case"))
    }

    #[allow(clippy::type_complexity)]
    fn trees(
        &self,
    ) -> (
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
        &sled::Tree,
    ) {
        (
            &self.meta,
            &self.cases,
            &self.index,
            &self.by_created,
            &self.by_state,
            &self.idempotency,
            &self.sync_roots,
            &self.sync_nodes,
            &self.sync_items,
        )
    }

    /// Writes a new version of a case that arrived by sync (or any merge): `merge` gets the stored
    /// document (if any) and returns the bytes and summary to store. Runs under the write lock, so the
    /// merge always starts from the latest stored version. Not flushed: call [`Store::flush`].
    pub fn merge_case<E>(
        &self,
        case_no: &str,
        merge: impl FnOnce(Option<Vec<u8>>) -> Result<(Vec<u8>, CaseSummary), E>,
    ) -> Result<Result<(), E>, StoreError> {
        self.merge_case_noting(case_no, true, merge)
    }

    /// [`Store::merge_case`] for a version that came from the upstream: not noted as outgoing.
    pub fn merge_case_from_upstream<E>(
        &self,
        case_no: &str,
        merge: impl FnOnce(Option<Vec<u8>>) -> Result<(Vec<u8>, CaseSummary), E>,
    ) -> Result<Result<(), E>, StoreError> {
        self.merge_case_noting(case_no, false, merge)
    }

    fn merge_case_noting<E>(
        &self,
        case_no: &str,
        note: bool,
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
            return Err(corrupt(case_no, "merged document names another case"));
        }
        let write = CaseWrite::new(&summary, doc, case_no)?;
        let outcome = self.trees().transaction(|t| {
            let tx = Tx::from(t);
            write.apply(&tx)?;
            Ok(())
        });
        match outcome {
            Ok(()) => {
                if note {
                    self.note_outgoing(case_no, new_here)?;
                }
                Ok(Ok(()))
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Root fingerprints of the non-empty scopes whose code starts with `within`.
    pub fn scope_roots(&self, within: &str) -> Result<Vec<(String, Fp)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.sync_roots.scan_prefix(within.as_bytes()) {
            let (k, v) = entry?;
            let fp = Fp::from_bytes(&v).ok_or_else(|| corrupt("sync_roots", "bad fingerprint"))?;
            if !fp.is_empty() {
                out.push((String::from_utf8_lossy(&k).into_owned(), fp));
            }
        }
        Ok(out)
    }

    /// Fingerprint of one summary node.
    pub fn sync_node(&self, scope: &str, prefix: Prefix) -> Result<Fp, StoreError> {
        let raw = if prefix == Prefix::ROOT {
            self.sync_roots.get(scope.as_bytes())?
        } else {
            self.sync_nodes.get(node_key(scope, prefix))?
        };
        match raw {
            None => Ok(Fp::EMPTY),
            Some(v) => Fp::from_bytes(&v).ok_or_else(|| corrupt("sync_nodes", "bad fingerprint")),
        }
    }

    /// Every (case number, heads digest) of a scope below a summary node.
    pub fn sync_items(
        &self,
        scope: &str,
        prefix: Prefix,
    ) -> Result<Vec<(String, Digest)>, StoreError> {
        let (lo, hi) = prefix.range();
        let mut start = scope.as_bytes().to_vec();
        start.push(0);
        let mut end = start.clone();
        start.extend_from_slice(&lo.to_be_bytes());
        match hi {
            Some(hi) => end.extend_from_slice(&hi.to_be_bytes()),
            None => {
                // The top of the range: everything of this scope.
                end.pop();
                end.push(1);
            }
        }
        let mut out = Vec::new();
        for entry in self.sync_items.range(start..end) {
            let (k, v) = entry?;
            let no = k
                .get(scope.len() + 1 + 16..)
                .ok_or_else(|| corrupt("sync_items", "short key"))?;
            let digest: Digest = v
                .as_ref()
                .try_into()
                .map_err(|_| corrupt("sync_items", "bad digest"))?;
            out.push((String::from_utf8_lossy(no).into_owned(), digest));
        }
        Ok(out)
    }

    /// Binds an automerge actor id to a node (enrolment, or first use).
    pub fn bind_actor(&self, actor: &[u8], node_code: &str) -> Result<(), StoreError> {
        self.actors.insert(actor, node_code.as_bytes())?;
        Ok(())
    }

    /// The node an actor id is bound to, if any.
    pub fn actor_node(&self, actor: &[u8]) -> Result<Option<String>, StoreError> {
        Ok(self
            .actors
            .get(actor)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

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
        Ok(read_u64(self.meta.get(key)?))
    }

    /// Newest-first page of cases. Without a text filter the total comes from counters and only one
    /// page of the index is read; a text filter scans the index (summaries only, never documents).
    pub fn list(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        let limit = q.limit.clamp(1, 500);
        let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
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
        let counting_by_scan = text.is_some() || q.since_ms.is_some();
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
            let no = case_no_of_created_key(created)?;
            if cases.len() == limit && !counting_by_scan {
                next = Some(hex(&cases_last_key(&cases)));
                break;
            }
            let summary = self.summary_required(&no)?;
            if let Some(t) = text {
                if !summary.matches_text(t) {
                    continue;
                }
            }
            if cases.len() < limit {
                cases.push(summary);
            } else if next.is_none() {
                next = Some(hex(&cases_last_key(&cases)));
            }
            total += 1;
        }
        if !counting_by_scan {
            total = self.count(q.state)?;
        } else if q.cursor.is_some() {
            // A scan that started at a cursor only saw what lies after it; the total of every match
            // needs the whole range once more (rare: the second page of a text search).
            total = self.count_matches(q)?;
        }
        Ok(ListPage { cases, total, next })
    }

    fn count_matches(&self, q: &ListQuery) -> Result<u64, StoreError> {
        let all = ListQuery {
            cursor: None,
            limit: 1,
            ..q.clone()
        };
        Ok(self.list(&all)?.total)
    }

    /// Makes everything written so far durable (sled flush, then fsync of its log file).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.sync()
    }

    fn sync(&self) -> Result<(), StoreError> {
        // Read before the flush: every write counted here is in what the flush makes durable.
        let writes = read_u64(self.meta.get(K_WRITES)?);
        self.db.flush()?;
        self.log_file
            .sync_all()
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        self.write_seal(writes)
    }

    /// Records `writes` as flushed. Not fsynced: a seal lost to a power cut only under-reports, so it
    /// can never raise a false alarm; it exists to catch a database that later loses flushed data.
    fn write_seal(&self, writes: u64) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        let mut seal = self.seal.lock().unwrap_or_else(|p| p.into_inner());
        if writes > seal.1 {
            seal.0
                .write_all_at(&writes.to_be_bytes(), 0)
                .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
            seal.1 = writes;
        }
        Ok(())
    }
}

fn node_key(scope: &str, prefix: Prefix) -> Vec<u8> {
    let mut k = scope.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&prefix.key());
    k
}

fn item_key(scope: &str, bucket: &Digest, case_no: &str) -> Vec<u8> {
    let mut k = scope.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(bucket);
    k.extend_from_slice(case_no.as_bytes());
    k
}

/// The trees of one transaction, by name.
struct Tx<'a> {
    meta: &'a TransactionalTree,
    cases: &'a TransactionalTree,
    index: &'a TransactionalTree,
    by_created: &'a TransactionalTree,
    by_state: &'a TransactionalTree,
    idempotency: &'a TransactionalTree,
    sync_roots: &'a TransactionalTree,
    sync_nodes: &'a TransactionalTree,
    sync_items: &'a TransactionalTree,
}

type TxTrees = (
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
    TransactionalTree,
);

impl<'a> From<&'a TxTrees> for Tx<'a> {
    fn from(t: &'a TxTrees) -> Tx<'a> {
        Tx {
            meta: &t.0,
            cases: &t.1,
            index: &t.2,
            by_created: &t.3,
            by_state: &t.4,
            idempotency: &t.5,
            sync_roots: &t.6,
            sync_nodes: &t.7,
            sync_items: &t.8,
        }
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Everything one case write changes, prepared outside the transaction (which sled may retry).
struct CaseWrite {
    case_no: String,
    scope: String,
    bucket: Digest,
    doc: Vec<u8>,
    summary: CaseSummary,
    summary_bytes: Vec<u8>,
    digest: Digest,
}

impl CaseWrite {
    fn new(summary: &CaseSummary, doc: Vec<u8>, case_no: &str) -> Result<CaseWrite, StoreError> {
        let scope = scope::scope_of(case_no)
            .ok_or_else(|| corrupt(case_no, "not a case number"))?
            .to_string();
        let mut loaded = automerge::AutoCommit::load(&doc).map_err(|e| corrupt(case_no, e))?;
        Ok(CaseWrite {
            case_no: case_no.to_string(),
            bucket: summary::bucket(case_no),
            digest: summary::heads_digest(&loaded.get_heads()),
            summary_bytes: postcard::to_stdvec(summary).map_err(|e| corrupt(case_no, e))?,
            summary: summary.clone(),
            doc,
            scope,
        })
    }

    /// Writes the document, its summary and indexes, counters and the sync summary, replacing whatever
    /// the previous version contributed.
    fn apply(&self, tx: &Tx<'_>) -> TxResult<()> {
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
            let n = read_u64(tx.meta.get(&key)?).saturating_sub(1);
            tx.meta.insert(key, &n.to_be_bytes())?;
        } else {
            let n = read_u64(tx.meta.get(K_COUNT_ALL)?) + 1;
            tx.meta.insert(K_COUNT_ALL, &n.to_be_bytes())?;
        }
        let key = count_key(&self.summary.state);
        let n = read_u64(tx.meta.get(&key)?) + 1;
        tx.meta.insert(key, &n.to_be_bytes())?;
        let writes = read_u64(tx.meta.get(K_WRITES)?) + 1;
        tx.meta.insert(K_WRITES, &writes.to_be_bytes())?;
        tx.cases.insert(no, self.doc.as_slice())?;
        tx.index.insert(no, self.summary_bytes.as_slice())?;
        tx.by_created.insert(ckey.as_slice(), &[])?;
        tx.by_state
            .insert(state_key(&self.summary.state, &ckey).as_slice(), &[])?;

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

fn cases_last_key(cases: &[CaseSummary]) -> Vec<u8> {
    cases
        .last()
        .map(|c| created_key(c.created_ms, &c.case_no))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> NodeIdentity {
        NodeIdentity {
            code: "420222103201".into(),
            name: "测试村便民服务站".into(),
            tier: Tier::Village,
            parent: None,
            upstream: None,
            upstream_name: None,
            fallback: None,
            created_at: "2026-11-27T09:00:00+08:00".into(),
        }
    }

    fn summary(no: &str, ms: i64, name: &str) -> CaseSummary {
        CaseSummary {
            case_no: no.into(),
            item_code: "YX-RS-001".into(),
            item_name: "测试事项".into(),
            department: "人社".into(),
            state: "SUBMITTED".into(),
            created_at: String::new(),
            created_ms: ms,
            applicant_name: name.into(),
            applicant_cert_no: String::new(),
            phone: String::new(),
            agent: "daiban".into(),
            deadline: None,
            delivery: String::new(),
            materials_missing: 0,
            kind: "承诺".into(),
            handling_dept: "人社".into(),
            decided_on: None,
            evaluation: 0,
            escalations: 0,
            correction_rounds: 0,
        }
    }

    fn new_store(dir: &Path) -> Store {
        Store::create(
            dir,
            &identity(),
            &[1; 16],
            tongban_shared::catalog::BUILTIN_CATALOG_JSON,
        )
        .unwrap()
    }

    fn doc_bytes(no: &str) -> Vec<u8> {
        use automerge::transaction::Transactable;
        let mut doc = automerge::AutoCommit::new();
        doc.put(automerge::ROOT, "case_no", no).unwrap();
        doc.save()
    }

    fn add(store: &Store, ms: i64, name: &str, key: Option<&str>) -> Created {
        store
            .create_case("20261127", key, |seq| {
                let no = format!("420222103201-20261127-{seq:04}");
                Ok::<_, ()>((doc_bytes(&no), summary(&no, ms, name)))
            })
            .unwrap()
            .unwrap()
    }

    #[test]
    fn init_refuses_existing_directory_and_open_needs_init() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::NotInitialised(_))
        ));
        drop(new_store(dir.path()));
        let again = Store::create(
            dir.path(),
            &identity(),
            &[1; 16],
            tongban_shared::catalog::BUILTIN_CATALOG_JSON,
        );
        assert!(matches!(again, Err(StoreError::AlreadyInitialised(_))));
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.identity().unwrap(), identity());
    }

    #[test]
    fn a_version_1_store_is_migrated_by_rebuilding_summaries_from_documents() {
        let dir = tempfile::tempdir().unwrap();
        let store = new_store(dir.path());
        let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
        let item = &catalog.items[0];
        let req = tongban_shared::case::IntakeRequest {
            item_code: item.code.clone(),
            applicant: tongban_shared::case::ApplicantInput {
                name: "旧版".into(),
                id_number: "11010519491231002X".into(),
                phone: "13800271234".into(),
                ..Default::default()
            },
            materials: item.materials.iter().map(|m| m.id.clone()).collect(),
            ..Default::default()
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T09:30:00+08:00").unwrap();
        let intake =
            tongban_shared::case::validate_intake(&catalog, &req, now.date_naive()).unwrap();
        let no = "420222103201-20261127-0001";
        let (mut doc, case) = tongban_shared::case::new_case_document(
            &intake,
            tongban_shared::case::IntakeContext {
                case_no: no,
                agent: tongban_shared::case::Agent {
                    user: "a".into(),
                    name: "a".into(),
                    node_code: "420222103201".into(),
                    node_name: "v".into(),
                },
                now,
                query_password: "1",
                actor: automerge::ActorId::from([1u8; 16].as_slice()),
            },
        )
        .unwrap();
        store
            .merge_case(no, |_| Ok::<_, ()>((doc.save(), case.summary())))
            .unwrap()
            .unwrap();
        // Make it look like version 1: an index value the new summary type cannot read.
        store
            .index
            .insert(no.as_bytes(), b"old".as_slice())
            .unwrap();
        store.meta.insert(K_VERSION, &1u32.to_be_bytes()).unwrap();
        store.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.summary(no).unwrap().unwrap().kind, item.kind.label());
        let raw = store.meta.get(K_VERSION).unwrap().unwrap();
        assert_eq!(raw.as_ref(), &STORE_VERSION.to_be_bytes());
    }

    #[test]
    fn newer_store_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = new_store(dir.path());
        store
            .meta
            .insert(K_VERSION, &(STORE_VERSION + 1).to_be_bytes())
            .unwrap();
        store.flush().unwrap();
        drop(store);
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::NewerFormat { .. })
        ));
    }

    #[test]
    fn case_numbers_grow_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = new_store(dir.path());
        let first = add(&store, 1000, "甲", None);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let second = add(&store, 2000, "乙", None);
        match (first, second) {
            (Created::New(a), Created::New(b)) => {
                assert!(a.case_no.ends_with("-0001"));
                assert!(b.case_no.ends_with("-0002"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn same_request_key_returns_the_first_case() {
        let dir = tempfile::tempdir().unwrap();
        let store = new_store(dir.path());
        let a = add(&store, 1000, "甲", Some("k1"));
        let b = add(&store, 2000, "甲", Some("k1"));
        let Created::New(a) = a else { panic!() };
        assert_eq!(b, Created::Replayed(a));
        assert_eq!(store.count(None).unwrap(), 1);
    }

    #[test]
    fn list_pages_newest_first_with_filters_and_totals() {
        let dir = tempfile::tempdir().unwrap();
        let store = new_store(dir.path());
        for i in 0..25 {
            add(
                &store,
                1000 + i,
                if i % 5 == 0 { "张三" } else { "李四" },
                None,
            );
        }
        let page = store
            .list(&ListQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.total, 25);
        assert_eq!(page.cases.len(), 10);
        assert_eq!(page.cases[0].created_ms, 1024);
        let page2 = store
            .list(&ListQuery {
                limit: 10,
                cursor: page.next.clone(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page2.cases[0].created_ms, 1014);
        let text = store
            .list(&ListQuery {
                limit: 3,
                text: Some("张三".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((text.total, text.cases.len()), (5, 3));
        let text2 = store
            .list(&ListQuery {
                limit: 3,
                text: Some("张三".into()),
                cursor: text.next,
                ..Default::default()
            })
            .unwrap();
        assert_eq!((text2.total, text2.cases.len(), text2.next), (5, 2, None));
        let by_state = store
            .list(&ListQuery {
                limit: 100,
                state: Some(CaseState::Submitted),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((by_state.total, by_state.cases.len()), (25, 25));
        let none = store
            .list(&ListQuery {
                limit: 100,
                state: Some(CaseState::Accepted),
                ..Default::default()
            })
            .unwrap();
        assert_eq!((none.total, none.cases.len()), (0, 0));
        let recent = store
            .list(&ListQuery {
                limit: 100,
                since_ms: Some(1020),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(recent.total, 5);
    }
}
