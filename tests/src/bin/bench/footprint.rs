//! `footprint --cases 100000`: what a village PC pays for a big store. A village node enrolled at a
//! real hub is filled with `--cases` cases (`tongban-node fill`), then started: start-up time (spawn
//! to the first 200 from `/api/health`), RSS while its first session uploads everything (peak,
//! VmHWM), RSS idle after that session, and disk bytes per case before and after the sync.

use std::time::{Duration, Instant};

use tongban_tests::*;

use crate::{walk_size, Table};

const V1: &str = "420222100201";

pub fn run() -> anyhow::Result<()> {
    let cases: u64 = crate::flag("--cases", "100000")?;
    let as_json = std::env::args().any(|a| a == "--json");
    let hub_dir = tempfile::tempdir()?;
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0")?;
    let village = tempfile::tempdir()?;
    let bundle = village.path().join("bundle.json");
    hub.enroll_village(V1, &bundle)?;
    let data = village.path().join("node");
    init_node_from_bundle(&data, &bundle)?;
    let fill_s = crate::fill(&data, cases)?;
    let disk_before = walk_size(&data);

    let spawned = Instant::now();
    let node = NodeProcess::serve_with(&data, &["--sync-interval", "86400"])?;
    wait_until_up(&node.url("/api/health"), Duration::from_secs(60))?;
    let start_to_serving = spawned.elapsed();
    let agent = client();
    // The first session starts at once and uploads every case.
    let first = crate::first_session(&agent, &node)?;
    let peak_mb = peak_rss_kib(node.pid()) as f64 / 1024.0;
    // Idle: the agent has a page open and does nothing.
    for _ in 0..3 {
        get_json(&agent, &node.url("/api/cases?limit=50"))?;
    }
    std::thread::sleep(Duration::from_secs(5));
    let idle_mb = rss_kib(node.pid()).unwrap_or(0) as f64 / 1024.0;
    // Heap and the like versus the binary's own pages (file-backed, shared with the page cache).
    let idle_anon_mb = status_kib(node.pid(), "RssAnon:").unwrap_or(0) as f64 / 1024.0;
    let disk_after = walk_size(&data);
    drop(node);
    // Start-up again, now with the sync state written.
    let spawned = Instant::now();
    let node = NodeProcess::serve_with(&data, &["--sync-interval", "86400"])?;
    wait_until_up(&node.url("/api/health"), Duration::from_secs(60))?;
    let restart = spawned.elapsed();
    drop(node);

    let row = serde_json::json!({
        "cases": cases,
        "fill_s": fill_s,
        "start_ms": start_to_serving.as_secs_f64() * 1000.0,
        "restart_ms": restart.as_secs_f64() * 1000.0,
        "upload_ms": first["duration_ms"],
        "rss_peak_during_sync_mb": peak_mb,
        "rss_idle_after_sync_mb": idle_mb,
        "rss_anon_idle_after_sync_mb": idle_anon_mb,
        "disk_bytes": disk_after,
        "disk_bytes_per_case_before_sync": disk_before / cases.max(1),
        "disk_bytes_per_case": disk_after / cases.max(1),
    });
    if as_json {
        println!("{row}");
    }
    let mut table = Table::new(&["measurement", "result", "target"]);
    table.row([
        format!("start to serving, {cases} cases"),
        format!("{:.0} ms", start_to_serving.as_secs_f64() * 1000.0),
        "≤ 1 s".into(),
    ]);
    table.row([
        "start to serving again, after the sync".into(),
        format!("{:.0} ms", restart.as_secs_f64() * 1000.0),
        "≤ 1 s".into(),
    ]);
    table.row([
        format!("node peak RSS while uploading {cases} cases"),
        format!("{peak_mb:.1} MB"),
        "".into(),
    ]);
    table.row([
        "node RSS idle after the sync".into(),
        format!("{idle_mb:.1} MB ({idle_anon_mb:.1} MB anonymous)"),
        "≤ 64 MB".into(),
    ]);
    table.row([
        "upload of all cases (first session)".into(),
        format!(
            "{:.1} s",
            first["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0
        ),
        "".into(),
    ]);
    table.row([
        "disk per case, after fill / after sync".into(),
        format!(
            "{} B / {} B ({:.0} MB in all)",
            disk_before / cases.max(1),
            disk_after / cases.max(1),
            disk_after as f64 / 1e6
        ),
        "".into(),
    ]);
    table.print();
    Ok(())
}
