//! `tongban-node init --bundle FILE --restore`: a replacement PC pulls its whole scope from the
//! upstream before it takes a case. Its own cases move the day counters past their numbers as they
//! arrive (see `Store::merge_case_noting`), so the next intake gets the next free number.
//!
//! While the pull is unfinished a marker file stays in the data directory and `serve` refuses to
//! start: a station that took cases before its old ones were back could hand out a number the county
//! already holds. Running the same command again resumes the pull.

use std::path::Path;

use anyhow::Context;
use tongban_runtime::store::Store;

use crate::uplink::{SyncHandle, SyncTiming};

/// In the data directory until the pull has finished.
pub const PENDING_FILE: &str = "restore-pending";

/// Whether `data` holds a node whose restore has not finished.
pub fn pending(data: &Path) -> bool {
    data.join(PENDING_FILE).exists()
}

/// Marks `data` as being restored (before the first session).
pub fn mark_pending(data: &Path) -> anyhow::Result<()> {
    std::fs::write(
        data.join(PENDING_FILE),
        b"pulling the scope from upstream\n",
    )
    .context("writing the restore marker")
}

/// Pulls sessions from the upstream until one brings nothing new, printing the progress; then clears
/// the marker. Returns the number of cases the node holds.
pub fn pull_scope(data: &Path, store: &Store) -> anyhow::Result<u64> {
    let identity = store.identity()?;
    let runtime = tongban_runtime::process::runtime()?;
    runtime.block_on(async {
        let handle = SyncHandle::for_store(
            store,
            &identity,
            data,
            SyncTiming::default(),
            crate::links::Links::default(),
            // Nobody scrapes a pull that runs before the node serves.
            std::sync::Arc::new(tongban_runtime::metrics::Metrics::with_upstream()),
        )?
        .context("--restore needs an enrolled node (--bundle)")?;
        let mut pulled = 0u64;
        for session in 1.. {
            let report = handle.run_now().await.with_context(|| {
                format!(
                    "pulling from {} failed after {pulled} cases; run the same command again when \
                     the link is up (it resumes)",
                    identity.upstream.clone().unwrap_or_default()
                )
            })?;
            pulled += u64::from(report.cases_received);
            println!(
                "第{session}轮：取回 {} 件，共 {pulled} 件 / session {session}: {} cases back, {pulled} in all",
                report.cases_received, report.cases_received
            );
            if report.cases_received == 0 {
                break;
            }
        }
        anyhow::Ok(())
    })?;
    store.flush()?;
    std::fs::remove_file(data.join(PENDING_FILE)).context("clearing the restore marker")?;
    Ok(store.count(None)?)
}
