//! The `backup` and `restore` commands both binaries share: where the file goes, whether the store is
//! reached through the running process or opened here, and how many nightly files are kept.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::control::{self, Asked};
use crate::store::backup::BackupSummary;
use crate::store::Store;

/// Extension of the files `backup` names itself (when `--out` is a directory).
const BACKUP_SUFFIX: &str = ".tbk";
const BACKUP_PREFIX: &str = "tongban-";

/// A written backup and how it was taken.
pub struct Written {
    pub path: PathBuf,
    pub summary: BackupSummary,
    /// Through the running process (the store stayed in service).
    pub online: bool,
    /// Older backups removed to keep `keep`.
    pub removed: Vec<PathBuf>,
}

/// Writes a backup of the data directory `data` to `out`: a new file, or, when `out` is a directory,
/// a file named by the time in it, keeping the newest `keep` such files there (a nightly timer's
/// retention).
pub fn backup(data: &Path, out: &Path, keep: Option<usize>) -> anyhow::Result<Written> {
    let now = crate::clock::beijing_now();
    let made_at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let into_dir = out.is_dir();
    if keep.is_some() && !into_dir {
        anyhow::bail!("--keep needs --out to be a directory the backups are named in");
    }
    let path = if into_dir {
        out.join(format!(
            "{BACKUP_PREFIX}{}{BACKUP_SUFFIX}",
            now.format("%Y%m%d-%H%M%S%.3f")
        ))
    } else {
        out.to_path_buf()
    };
    let (summary, online) = match control::request_backup(data, &path, &made_at)? {
        Asked::Done(summary) => (summary, true),
        Asked::NotRunning => {
            let store = Store::open(data)
                .with_context(|| format!("opening the store in {}", data.display()))?;
            let summary = store.write_backup(data, &path, &made_at)?;
            store.audit(
                &crate::process::cli_actor(),
                "backup.written",
                &format!("{} ({} bytes)", path.display(), summary.bytes),
                None,
            )?;
            (summary, false)
        }
    };
    let removed = match keep {
        Some(keep) => prune(out, keep.max(1))?,
        None => Vec::new(),
    };
    Ok(Written {
        path,
        summary,
        online,
        removed,
    })
}

/// The actor the node in `data` writes with: from its running process, or its stopped store.
pub fn store_actor(data: &Path) -> anyhow::Result<Vec<u8>> {
    match control::request_actor(data)? {
        Asked::Done(actor) => Ok(actor),
        Asked::NotRunning => Ok(Store::open(data)
            .with_context(|| format!("opening the store in {}", data.display()))?
            .actor()?),
    }
}

/// Removes all but the newest `keep` backups `backup` named in `dir` (names sort by time).
fn prune(dir: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut ours: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(BACKUP_PREFIX) && n.ends_with(BACKUP_SUFFIX))
        })
        .collect();
    ours.sort();
    let excess = ours.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = ours.into_iter().take(excess).collect();
    for p in &removed {
        std::fs::remove_file(p).with_context(|| format!("removing old backup {}", p.display()))?;
    }
    Ok(removed)
}

/// Restores the backup `from` into the new data directory `data`.
pub fn restore(from: &Path, data: &Path) -> anyhow::Result<BackupSummary> {
    Ok(Store::restore_backup(from, data)?)
}

/// The lines both binaries print after a backup.
pub fn describe(w: &Written) -> String {
    let h = &w.summary.header;
    format!(
        "backup of {} ({}) written to {}: {} cases, {} bytes, sha256 {}{}{}",
        h.code,
        h.name,
        w.path.display(),
        h.cases,
        w.summary.bytes,
        w.summary.sha256,
        if w.online {
            " (taken from the running process)"
        } else {
            ""
        },
        w.removed
            .iter()
            .map(|p| format!("\nremoved old backup {}", p.display()))
            .collect::<String>()
    )
}

/// `backup` of either binary.
#[derive(clap::Args)]
pub struct BackupArgs {
    /// The data directory (its process may be running: the backup is then taken through it).
    #[arg(long)]
    pub data: PathBuf,
    /// The backup file to write (must not exist), or a directory to write a file named by the time in.
    #[arg(long)]
    pub out: PathBuf,
    /// With --out DIR: keep only the newest N backups there (the nightly timer uses 14).
    #[arg(long)]
    pub keep: Option<usize>,
}

/// `restore` of either binary.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A file written by `backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// A new data directory (refused when it exists and is not empty).
    #[arg(long)]
    pub data: PathBuf,
}

/// Runs `backup` and prints what it wrote.
pub fn run_backup(args: &BackupArgs) -> anyhow::Result<()> {
    let written = backup(&args.data, &args.out, args.keep)?;
    println!("{}", describe(&written));
    Ok(())
}

/// Runs `restore` and prints what it restored; `serve` names the command that starts it.
pub fn run_restore(args: &RestoreArgs, serve: &str) -> anyhow::Result<()> {
    let restored = restore(&args.from, &args.data)?;
    let h = &restored.header;
    println!(
        "restored {} ({}) as of {} into {}: {} cases, {} files; start it with `{serve} --data {}`",
        h.code,
        h.name,
        h.made_at,
        args.data.display(),
        h.cases,
        restored.files,
        args.data.display()
    );
    Ok(())
}
