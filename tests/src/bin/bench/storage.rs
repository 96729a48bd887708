//! `storage --cases 10000`: where a case's bytes go (issue 17). A standalone village node is filled
//! with `--cases` cases through `tongban-node fill` (the store code every tier runs), then:
//!
//! - the data directory on disk (sled's log and the files beside it);
//! - each tree's live entries and their key + value bytes (what sled holds, without its log);
//! - the same directory after the store is opened and closed again (does sled give space back?);
//! - a backup of it (`tongban-node backup`: the live data once) and a directory restored from that
//!   backup (the same data written fresh, in one pass).
//!
//! The gap between the live bytes and the disk is sled's log: rewritten pages and index nodes that
//! its segment cleaner has not reclaimed.

use tongban_runtime::store::Store;
use tongban_tests::*;

use crate::{walk_size, Table};

pub fn run() -> anyhow::Result<()> {
    let cases: u64 = crate::flag("--cases", "10000")?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("node");
    init_node(&data)?;
    let fill_s = crate::fill(&data, cases)?;
    let after_fill = walk_size(&data);
    let per = |bytes: u64| bytes as f64 / cases.max(1) as f64;

    let sizes = {
        let store = Store::open(&data)?;
        let sizes = store.tree_sizes()?;
        store.flush()?;
        sizes
    };
    let reopened = walk_size(&data);
    let live: u64 = sizes.iter().map(|t| t.bytes).sum();

    let backup = dir.path().join("node.tbk");
    let restored = dir.path().join("restored");
    for args in [
        vec![
            "backup",
            "--data",
            path_str(&data)?,
            "--out",
            path_str(&backup)?,
        ],
        vec![
            "restore",
            "--from",
            path_str(&backup)?,
            "--data",
            path_str(&restored)?,
        ],
    ] {
        let (ok, out, err) = node_cmd(&args)?;
        anyhow::ensure!(ok, "{args:?}: {out} {err}");
    }
    let backup_bytes = std::fs::metadata(&backup)?.len();
    let restored_bytes = walk_size(&restored);

    println!("{cases} cases filled in {fill_s:.1} s");
    let mut table = Table::new(&["tree", "entries", "live bytes", "per case"]);
    for t in &sizes {
        table.row([
            t.name.clone(),
            t.entries.to_string(),
            t.bytes.to_string(),
            format!("{:.0} B", per(t.bytes)),
        ]);
    }
    table.row([
        "all trees (live)".into(),
        String::new(),
        live.to_string(),
        format!("{:.0} B", per(live)),
    ]);
    table.print();
    println!();
    let mut table = Table::new(&["data directory", "bytes", "per case"]);
    for (what, bytes) in [
        ("after fill", after_fill),
        ("after opening and closing it again", reopened),
        (
            "backup file (live data once, with a checksum)",
            backup_bytes,
        ),
        ("restored from that backup (written fresh)", restored_bytes),
    ] {
        table.row([
            what.to_string(),
            bytes.to_string(),
            format!("{:.0} B", per(bytes)),
        ]);
    }
    table.print();
    Ok(())
}
