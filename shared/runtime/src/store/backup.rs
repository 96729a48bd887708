//! Backups of a data directory: one file holding every tree of the store and every file beside it
//! (certificates, keys, the audit log), ending in a SHA-256 of everything before it; and the restore
//! that turns such a file into a new data directory.
//!
//! A backup is consistent although the process keeps serving: case writes (the only writes that span
//! trees) take the store's write lock, which the copy of the trees holds, so the snapshot has every
//! case write acknowledged before it started and none half. Every other record is one key, whole by
//! itself. The audit log is cut at its last complete line, as a restart would cut it.
//!
//! File layout (integers big-endian):
//!
//! ```text
//! "TONGBAN-BACKUP\n"  u32 len  header JSON
//! records: 'T' u16 len tree name          (the entries that follow are this tree's)
//!          'E' u32 len key  u32 len value
//!          'F' u16 len relative path (/-separated)  u64 len contents
//!          'Z' then 32 bytes: SHA-256 of every byte before them
//! ```

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::error::{invalid, io, StoreError};
use super::tables::K_VERSION;
use super::Store;

const MAGIC: &[u8] = b"TONGBAN-BACKUP\n";
/// Beside the data a backup leaves out: sled's own files (the trees are copied instead), logs (the
/// journal or log files are the operator's), the running process's control file, and the write seal
/// (a restored store starts its own).
const SKIPPED: &[&str] = &["db", "logs", super::super::control::CONTROL_FILE];

/// What a backup holds, told when it is written and again when it is restored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupHeader {
    pub format: u32,
    pub store_version: u32,
    pub code: String,
    pub name: String,
    pub made_at: String,
    pub cases: u64,
}

/// A written or restored backup: its header, size and checksum.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupSummary {
    pub header: BackupHeader,
    pub bytes: u64,
    pub sha256: String,
    pub files: u32,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn put_len(w: &mut impl Write, len: usize, width: usize) -> std::io::Result<()> {
    let len = len as u64;
    w.write_all(&len.to_be_bytes()[8 - width..])
}

impl Store {
    /// Writes a backup of this store (open in `dir`) to `out`, which must not exist. The file appears
    /// only when complete and fsynced: an interrupted backup leaves at most `out.partial` behind.
    pub fn write_backup(
        &self,
        dir: &Path,
        out: &Path,
        made_at: &str,
    ) -> Result<BackupSummary, StoreError> {
        if out.exists() {
            return Err(invalid(
                format!("backup file {}", out.display()),
                "it exists already; choose a new name",
            ));
        }
        let identity = self.identity()?;
        let header = BackupHeader {
            format: 1,
            store_version: super::STORE_VERSION,
            code: identity.code,
            name: identity.name,
            made_at: made_at.to_string(),
            cases: self.count(None)?,
        };
        let partial = partial_path(out);
        let written = self.write_backup_to(dir, &partial, out, &header);
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }

    fn write_backup_to(
        &self,
        dir: &Path,
        partial: &Path,
        out: &Path,
        header: &BackupHeader,
    ) -> Result<BackupSummary, StoreError> {
        // Owner-only: a backup holds villagers' personal data and private keys.
        let file = crate::bundle::create_private(partial).map_err(io)?;
        let mut w = Hashing {
            inner: BufWriter::new(file),
            hash: Sha256::new(),
            bytes: 0,
        };
        let header_json =
            serde_json::to_vec(header).map_err(|e| invalid("backup header", e.to_string()))?;
        w.write_all(MAGIC).map_err(io)?;
        put_len(&mut w, header_json.len(), 4).map_err(io)?;
        w.write_all(&header_json).map_err(io)?;
        {
            // Case writes wait while the trees are copied (see the module header).
            let _no_case_writes = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
            for name in self.db.tree_names() {
                let tree = self.db.open_tree(&name)?;
                w.write_all(b"T").map_err(io)?;
                put_len(&mut w, name.len(), 2).map_err(io)?;
                w.write_all(&name).map_err(io)?;
                for entry in tree.iter() {
                    let (k, v) = entry?;
                    w.write_all(b"E").map_err(io)?;
                    put_len(&mut w, k.len(), 4).map_err(io)?;
                    w.write_all(&k).map_err(io)?;
                    put_len(&mut w, v.len(), 4).map_err(io)?;
                    w.write_all(&v).map_err(io)?;
                }
            }
        }
        let mut files = 0;
        for (rel, path) in files_beside(dir, out)? {
            let mut contents = std::fs::read(&path).map_err(io)?;
            if rel == super::audit::AUDIT_FILE {
                // A record being appended right now is not acknowledged yet: cut at the last line.
                let whole = contents
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                contents.truncate(whole);
            }
            w.write_all(b"F").map_err(io)?;
            put_len(&mut w, rel.len(), 2).map_err(io)?;
            w.write_all(rel.as_bytes()).map_err(io)?;
            put_len(&mut w, contents.len(), 8).map_err(io)?;
            w.write_all(&contents).map_err(io)?;
            files += 1;
        }
        w.write_all(b"Z").map_err(io)?;
        let digest = w.hash.clone().finalize();
        w.inner.write_all(&digest).map_err(io)?;
        let bytes = w.bytes + digest.len() as u64;
        let file = w.inner.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(partial, out).map_err(io)?;
        sync_parent(out);
        Ok(BackupSummary {
            header: header.clone(),
            bytes,
            sha256: hex(&digest),
            files,
        })
    }

    /// Makes `data` (which must not exist, or be an empty directory) a copy of the backup `from`.
    /// The checksum is verified before anything is written; a restore that fails half-way removes
    /// what it wrote.
    pub fn restore_backup(from: &Path, data: &Path) -> Result<BackupSummary, StoreError> {
        let verified = verify_backup(from)?;
        let existed = data.exists();
        if existed {
            let empty = std::fs::read_dir(data).map_err(io)?.next().is_none();
            if !empty {
                return Err(StoreError::AlreadyInitialised(data.display().to_string()));
            }
        }
        let restored = restore_into(from, data, &verified);
        if restored.is_err() {
            // Back to what was there: nothing, or the empty directory (a package makes it, with
            // its owner and mode, for the data to go in).
            if existed {
                if let Ok(entries) = std::fs::read_dir(data) {
                    for entry in entries.flatten() {
                        let path = entry.path();
                        let _ = if path.is_dir() {
                            std::fs::remove_dir_all(&path)
                        } else {
                            std::fs::remove_file(&path)
                        };
                    }
                }
            } else {
                let _ = std::fs::remove_dir_all(data);
            }
        }
        restored.map(|files| BackupSummary { files, ..verified })
    }
}

/// Checks a backup file's checksum and reads its header, writing nothing.
pub fn verify_backup(from: &Path) -> Result<BackupSummary, StoreError> {
    let what = || format!("backup file {}", from.display());
    let mut file = std::fs::File::open(from).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < (MAGIC.len() + 4 + 1 + 32) as u64 {
        return Err(invalid(what(), "it is too short to be a backup"));
    }
    let mut hash = Sha256::new();
    let mut left = len - 32;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let want = buf.len().min(left as usize);
        file.read_exact(&mut buf[..want]).map_err(io)?;
        hash.update(&buf[..want]);
        left -= want as u64;
    }
    let mut stored = [0u8; 32];
    file.read_exact(&mut stored).map_err(io)?;
    let digest = hash.finalize();
    if digest[..] != stored[..] {
        return Err(invalid(
            what(),
            "its checksum does not match: the file is damaged or incomplete",
        ));
    }
    let mut r = BufReader::new(std::fs::File::open(from).map_err(io)?);
    let header = read_header(&mut r).map_err(|e| invalid(what(), e))?;
    Ok(BackupSummary {
        header,
        bytes: len,
        sha256: hex(&digest),
        files: 0,
    })
}

fn read_header(r: &mut impl Read) -> Result<BackupHeader, String> {
    let mut magic = [0u8; MAGIC.len()];
    r.read_exact(&mut magic).map_err(|e| e.to_string())?;
    if magic[..] != *MAGIC {
        return Err("it is not a Tongban backup".into());
    }
    let header = read_chunk(r, 4)?;
    let header: BackupHeader =
        serde_json::from_slice(&header).map_err(|e| format!("header: {e}"))?;
    if header.format != 1 {
        return Err(format!("backup format {} is not known here", header.format));
    }
    if header.store_version > super::STORE_VERSION {
        return Err(format!(
            "it was made by a newer version (store format {}); restore it with that version",
            header.store_version
        ));
    }
    Ok(header)
}

fn read_len(r: &mut impl Read, width: usize) -> Result<u64, String> {
    let mut raw = [0u8; 8];
    r.read_exact(&mut raw[8 - width..])
        .map_err(|e| format!("cut short: {e}"))?;
    Ok(u64::from_be_bytes(raw))
}

fn read_chunk(r: &mut impl Read, width: usize) -> Result<Vec<u8>, String> {
    let len = read_len(r, width)?;
    let mut v = Vec::new();
    r.take(len)
        .read_to_end(&mut v)
        .map_err(|e| format!("cut short: {e}"))?;
    if v.len() as u64 != len {
        return Err("cut short".into());
    }
    Ok(v)
}

fn restore_into(from: &Path, data: &Path, verified: &BackupSummary) -> Result<u32, StoreError> {
    let what = || format!("backup file {}", from.display());
    let bad = |e: String| invalid(what(), e);
    std::fs::create_dir_all(data).map_err(io)?;
    let mut r = BufReader::new(std::fs::File::open(from).map_err(io)?);
    read_header(&mut r).map_err(bad)?;
    let db = Store::open_db(data)?;
    let mut tree: Option<sled::Tree> = None;
    let mut version: Option<sled::IVec> = None;
    let mut files = 0u32;
    loop {
        let mut tag = [0u8; 1];
        r.read_exact(&mut tag).map_err(|e| bad(e.to_string()))?;
        match tag[0] {
            b'T' => tree = Some(db.open_tree(read_chunk(&mut r, 2).map_err(bad)?)?),
            b'E' => {
                let k = read_chunk(&mut r, 4).map_err(bad)?;
                let v = read_chunk(&mut r, 4).map_err(bad)?;
                let Some(t) = &tree else {
                    return Err(bad("an entry before its tree".into()));
                };
                // The format version goes in last, so an interrupted restore is not a store.
                if t.name() == super::tables::META.as_bytes() && k == K_VERSION {
                    version = Some(v.into());
                } else {
                    t.insert(k, v)?;
                }
            }
            b'F' => {
                let rel = String::from_utf8(read_chunk(&mut r, 2).map_err(bad)?)
                    .map_err(|_| bad("a file name that is not UTF-8".into()))?;
                let path = inside(data, &rel).ok_or_else(|| bad(format!("file name {rel:?}")))?;
                let contents = read_chunk(&mut r, 8).map_err(bad)?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let mut f = crate::bundle::create_private(&path).map_err(io)?;
                f.write_all(&contents).map_err(io)?;
                f.sync_all().map_err(io)?;
                files += 1;
            }
            b'Z' => break,
            other => return Err(bad(format!("unknown record {other:#x}"))),
        }
    }
    let Some(version) = version else {
        return Err(bad("it holds no store format version".into()));
    };
    db.flush()?;
    db.open_tree(super::tables::META)?
        .insert(K_VERSION, version)?;
    db.flush()?;
    drop(tree);
    drop(db);
    super::durability::restrict_to_owner(data)?;
    // Opening it runs the migrations of an older backup and checks what was restored.
    let store = Store::open(data)?;
    let held = store.count(None)?;
    if held != verified.header.cases {
        return Err(bad(format!(
            "it lists {} cases but {held} were restored",
            verified.header.cases
        )));
    }
    store.flush()?;
    Ok(files)
}

/// `rel` as a path under `data`, or `None` when it would leave it.
fn inside(data: &Path, rel: &str) -> Option<PathBuf> {
    let mut path = data.to_path_buf();
    let mut parts = 0;
    for part in rel.split('/') {
        match Path::new(part).components().next() {
            Some(Component::Normal(p)) if Path::new(part).components().count() == 1 => {
                path.push(p);
                parts += 1;
            }
            _ => return None,
        }
    }
    (parts > 0).then_some(path)
}

/// Every file under `dir` a backup keeps, by `/`-separated relative path, sorted.
fn files_beside(dir: &Path, out: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut found = Vec::new();
    let mut stack = vec![(String::new(), dir.to_path_buf())];
    let out = std::fs::canonicalize(out.parent().unwrap_or(Path::new(".")))
        .ok()
        .map(|p| p.join(out.file_name().unwrap_or_default()));
    while let Some((prefix, at)) = stack.pop() {
        for entry in std::fs::read_dir(&at).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if prefix.is_empty() && SKIPPED.contains(&name.as_str()) {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry.file_type().map_err(io)?;
            if kind.is_dir() {
                stack.push((rel, entry.path()));
            } else if kind.is_file() && !name.ends_with(".partial") {
                let canonical = std::fs::canonicalize(entry.path()).ok();
                if canonical.is_some() && canonical == out {
                    continue;
                }
                found.push((rel, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

/// Makes a rename durable where the platform can (Unix: fsync of the directory). Windows has no
/// directory handle to sync; NTFS journals the rename itself.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
