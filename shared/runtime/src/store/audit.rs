//! The audit log (等保 安全审计): an append-only, hash-chained file beside the store,
//! `DIR/audit.log`, one JSON record per line. Each record carries the hash of the one before it, and
//! its own hash covers its fields and that link, so changing, removing or reordering any record breaks
//! the chain from there on; [`verify`] names the first record that does not fit.
//!
//! A file rather than a sled tree: `tongban-hub audit verify` and an admin's copy read it while the
//! hub runs (sled locks its database), and a line-per-record text file is what an assessor can check
//! with other tools. Only the process holding the store appends (sled's lock keeps that to one), and
//! each record is on disk (`fsync`) before the action it records is acknowledged. Tongban never
//! deletes records: at a few hundred bytes each, years of a county's logins fit in megabytes, and the
//! 180 days 等保 asks for are the operator's backup's to keep beyond that.
//!
//! What a chain cannot show is its own newest records cut off; the admin's exports and backups are the
//! reference for that (see docs/SECURITY.md).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{corrupt, io, StoreError};

pub const AUDIT_FILE: &str = "audit.log";

/// The `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest text kept in `who` and `subject`: they come from people (login names typed at the
/// form), and a record must stay one short line.
const FIELD_CHARS: usize = 120;

/// A record is never longer than this; the tail read at open relies on it.
const TAIL_BYTES: u64 = 16 * 1024;

/// One audited event. `what` is a fixed code (`login`, `login.failed`, `password.reset`, …; the list
/// is in docs/SECURITY.md); `who` the account that acted (`-` when none, `cli` for the command line);
/// `subject` what it acted on (an account, a node code, a case number, a month).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    /// Beijing time, RFC 3339.
    pub at: String,
    pub who: String,
    pub what: String,
    pub subject: String,
    pub ip: Option<String>,
    /// The hash of the record before (64 zeros for the first).
    pub prev: String,
    pub hash: String,
}

impl AuditRecord {
    /// SHA-256 over the fields and the link, as a JSON array: no separator can be forged inside a
    /// field.
    fn computed_hash(&self) -> String {
        let covered = serde_json::json!([
            self.seq,
            self.at,
            self.who,
            self.what,
            self.subject,
            self.ip,
            self.prev
        ]);
        super::keys::hex(&Sha256::digest(covered.to_string().as_bytes()))
    }

    /// The record's day in Beijing time (`at` starts with it).
    fn day(&self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(self.at.get(..10)?, "%Y-%m-%d").ok()
    }
}

/// Where the next record goes.
struct Tail {
    file: File,
    next_seq: u64,
    last_hash: String,
}

/// The appending end of a data directory's audit log; shared by every clone of the store.
pub struct AuditLog {
    path: PathBuf,
    tail: Mutex<Tail>,
}

impl AuditLog {
    /// Opens (or starts) the log in `dir`. A last line without its newline is a record whose write a
    /// crash cut short: it was never acknowledged, so it is cut off (and said in the log) rather than
    /// left to break the chain.
    pub fn open(dir: &Path) -> Result<AuditLog, StoreError> {
        let path = dir.join(AUDIT_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        // Windows: the file inherits the data directory's access list, like the store's own files
        // (see `restrict_to_owner`).
        let mut file = options.open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(io)?;
        let complete = match tail.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if start == 0 => 0,
            // Damage, not a torn write: kept as it is for `verify` to name.
            None => tail.len(),
        };
        if complete < tail.len() {
            tracing::warn!(
                bytes = tail.len() - complete,
                "audit log: an unfinished last record (a crash while writing it) is cut off"
            );
            file.set_len(start + complete as u64).map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        let last = tail[..complete]
            .split(|b| *b == b'\n')
            .rfind(|line| !line.is_empty())
            .map(serde_json::from_slice::<AuditRecord>);
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let (next_seq, last_hash) = match last {
            Some(Ok(r)) => (r.seq + 1, r.hash),
            None => (0, GENESIS.to_string()),
            // A damaged log must not stop the node from taking cases: new records start a new
            // chain after the damage, which `verify` names as the first break.
            Some(Err(e)) => {
                tracing::error!(error = %e, "audit log: the last record is damaged; new records start a new chain after it (run `audit verify`)");
                (0, GENESIS.to_string())
            }
        };
        Ok(AuditLog {
            path,
            tail: Mutex::new(Tail {
                file,
                next_seq,
                last_hash,
            }),
        })
    }

    /// Appends one record and makes it durable before returning it.
    pub fn append(
        &self,
        who: &str,
        what: &str,
        subject: &str,
        ip: Option<IpAddr>,
        at: &str,
    ) -> Result<AuditRecord, StoreError> {
        let mut tail = self
            .tail
            .lock()
            .map_err(|_| corrupt("audit.log", "a writer panicked"))?;
        let mut record = AuditRecord {
            seq: tail.next_seq,
            at: at.to_string(),
            who: bounded(who),
            what: bounded(what),
            subject: bounded(subject),
            ip: ip.map(|ip| ip.to_string()),
            prev: tail.last_hash.clone(),
            hash: String::new(),
        };
        record.hash = record.computed_hash();
        let mut line = serde_json::to_vec(&record).map_err(|e| corrupt("audit record", e))?;
        line.push(b'\n');
        tail.file.write_all(&line).map_err(io)?;
        tail.file.sync_data().map_err(io)?;
        tail.next_seq += 1;
        tail.last_hash = record.hash.clone();
        tracing::info!(
            target: "audit",
            seq = record.seq,
            who = %record.who,
            what = %record.what,
            subject = %record.subject,
            ip = record.ip.as_deref().unwrap_or("-"),
        );
        Ok(record)
    }

    /// The records of the days `from..=to` (Beijing time; either end open), oldest first, at most
    /// `limit` of them (the newest are kept); and whether more matched.
    pub fn records(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, bool), StoreError> {
        let file = File::open(&self.path).map_err(io)?;
        let mut kept = std::collections::VecDeque::new();
        let mut more = false;
        for line in BufReader::new(file).lines() {
            let line = line.map_err(io)?;
            let Ok(record) = serde_json::from_str::<AuditRecord>(&line) else {
                continue; // `verify` reports it; the reader still shows the rest.
            };
            let day = record.day();
            if from.is_some_and(|f| day.is_none_or(|d| d < f))
                || to.is_some_and(|t| day.is_none_or(|d| d > t))
            {
                continue;
            }
            if kept.len() == limit {
                kept.pop_front();
                more = true;
            }
            kept.push_back(record);
        }
        Ok((kept.into(), more))
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Whole {
        records: u64,
    },
    /// The first line that does not fit the chain (1-based) and why.
    Broken {
        line: u64,
        seq: Option<u64>,
        reason: String,
    },
}

/// Checks the whole chain in `dir` without opening the store (so also while it runs). A last line
/// still being written (no newline yet) is not counted and not a break.
pub fn verify(dir: &Path) -> Result<Verified, StoreError> {
    let path = dir.join(AUDIT_FILE);
    let mut bytes = Vec::new();
    File::open(&path)
        .map_err(io)?
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 0u64;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    // Without its final newline, so that every piece is one record's line.
    let body = &bytes[..complete.saturating_sub(1)];
    let lines = (complete > 0).then(|| body.split(|b| *b == b'\n'));
    for (i, line) in lines.into_iter().flatten().enumerate() {
        let line_no = i as u64 + 1;
        if line.is_empty() {
            return Ok(broken(line_no, None, "an empty line"));
        }
        let record: AuditRecord = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => return Ok(broken(line_no, None, &format!("not a record: {e}"))),
        };
        if record.seq != expected_seq {
            return Ok(broken(
                line_no,
                Some(record.seq),
                &format!(
                    "sequence number {} where {expected_seq} was due (a record removed or moved)",
                    record.seq
                ),
            ));
        }
        if record.prev != prev {
            return Ok(broken(
                line_no,
                Some(record.seq),
                "it does not name the hash of the record before it",
            ));
        }
        if record.computed_hash() != record.hash {
            return Ok(broken(
                line_no,
                Some(record.seq),
                "its content does not match its hash (it was changed)",
            ));
        }
        prev = record.hash;
        expected_seq += 1;
    }
    Ok(Verified::Whole {
        records: expected_seq,
    })
}

fn broken(line: u64, seq: Option<u64>, reason: &str) -> Verified {
    Verified::Broken {
        line,
        seq,
        reason: reason.to_string(),
    }
}

/// Control characters out (a record is one line), and a bounded length.
fn bounded(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(FIELD_CHARS)
        .collect()
}

impl super::Store {
    /// The audit log, to read.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// Records one event now (Beijing time) and makes it durable: the caller acknowledges the
    /// action only after this returns.
    pub fn audit(
        &self,
        who: &str,
        what: &str,
        subject: &str,
        ip: Option<IpAddr>,
    ) -> Result<AuditRecord, StoreError> {
        let at = crate::clock::beijing_now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        self.audit.append(who, what, subject, ip, &at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "2026-12-03T10:00:00+08:00";

    fn log_with(dir: &Path, n: usize) -> AuditLog {
        let log = AuditLog::open(dir).unwrap();
        for i in 0..n {
            log.append("admin", "login", &format!("第{i}次"), None, AT)
                .unwrap();
        }
        log
    }

    #[test]
    fn a_whole_chain_verifies_and_continues_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        drop(log_with(dir.path(), 3));
        let log = log_with(dir.path(), 2);
        assert_eq!(verify(dir.path()).unwrap(), Verified::Whole { records: 5 });
        let (records, more) = log.records(None, None, 10).unwrap();
        assert_eq!(
            records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(!more);
        assert_eq!(records[3].prev, records[2].hash);
        let (newest, more) = log.records(None, None, 2).unwrap();
        assert_eq!(newest.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
        assert!(more);
    }

    #[test]
    fn a_changed_removed_or_forged_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        drop(log_with(dir.path(), 4));
        let path = dir.path().join(AUDIT_FILE);
        let original = std::fs::read_to_string(&path).unwrap();

        std::fs::write(&path, original.replacen("第2次", "第9次", 1)).unwrap();
        match verify(dir.path()).unwrap() {
            Verified::Broken { line, seq, reason } => {
                assert_eq!((line, seq), (3, Some(2)));
                assert!(reason.contains("changed"), "{reason}");
            }
            whole => panic!("a changed record verified: {whole:?}"),
        }

        let without_second: Vec<&str> = original
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| l)
            .collect();
        std::fs::write(&path, without_second.join("\n") + "\n").unwrap();
        assert!(matches!(
            verify(dir.path()).unwrap(),
            Verified::Broken {
                line: 2,
                seq: Some(2),
                ..
            }
        ));

        // A forger who recomputes the changed record's hash still breaks the next record's link.
        let mut lines: Vec<AuditRecord> = original
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        lines[1].who = "nobody".into();
        lines[1].hash = lines[1].computed_hash();
        let forged: String = lines
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(&path, forged).unwrap();
        assert!(matches!(
            verify(dir.path()).unwrap(),
            Verified::Broken {
                line: 3,
                seq: Some(2),
                ..
            }
        ));
    }

    #[test]
    fn a_record_cut_short_by_a_crash_is_dropped_at_open_and_typed_text_stays_on_one_line() {
        let dir = tempfile::tempdir().unwrap();
        drop(log_with(dir.path(), 2));
        let path = dir.path().join(AUDIT_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"seq":2,"at":"2026-12"#).unwrap();
        drop(file);
        assert_eq!(verify(dir.path()).unwrap(), Verified::Whole { records: 2 });
        let log = AuditLog::open(dir.path()).unwrap();
        let record = log
            .append(
                "x\nforged line",
                "login.failed",
                &"长".repeat(500),
                None,
                AT,
            )
            .unwrap();
        assert_eq!(record.seq, 2);
        assert_eq!(record.who, "x forged line");
        assert_eq!(record.subject.chars().count(), FIELD_CHARS);
        assert_eq!(verify(dir.path()).unwrap(), Verified::Whole { records: 3 });
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    /// Damage at the end of the log (not a torn write) does not stop the node: the log opens, new
    /// records are kept, and `verify` still names the damaged line.
    #[test]
    fn a_damaged_last_record_is_named_by_verify_and_does_not_stop_appending() {
        let dir = tempfile::tempdir().unwrap();
        drop(log_with(dir.path(), 2));
        let path = dir.path().join(AUDIT_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{not a record}\n").unwrap();
        drop(file);
        let log = AuditLog::open(dir.path()).expect("a damaged log still opens");
        log.append("admin", "login", "", None, AT).unwrap();
        assert!(matches!(
            verify(dir.path()).unwrap(),
            Verified::Broken { line: 3, .. }
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
    }

    #[test]
    fn days_filter_in_beijing_time() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path()).unwrap();
        for at in [
            "2026-11-30T23:59:59+08:00",
            "2026-12-01T00:00:00+08:00",
            "2026-12-02T08:00:00+08:00",
        ] {
            log.append("admin", "login", "", None, at).unwrap();
        }
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        let (records, _) = log
            .records(day("2026-12-01"), day("2026-12-01"), 10)
            .unwrap();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1]);
        let (records, _) = log.records(day("2026-12-01"), None, 10).unwrap();
        assert_eq!(records.len(), 2);
    }
}
