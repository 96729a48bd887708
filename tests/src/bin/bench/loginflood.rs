//! `loginflood [--requests 64]`: a hub under a flood of parallel wrong-password requests (HTTP Basic,
//! one made-up account name each, all at once). Reports the hub's RSS idle before the flood and its
//! peak (VmHWM) after, and how the requests were answered. Target (issue 12): peak within 100 MB of
//! idle; before the login guard 64 requests took a hub from 126 MB to 2.3 GB.

use std::time::{Duration, Instant};

use tongban_tests::*;

use crate::Table;

pub fn run() -> anyhow::Result<()> {
    let requests: usize = crate::flag("--requests", "64")?;
    let hub_dir = tempfile::tempdir()?;
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0")?;
    let url = hub.url("/api/cases");
    // Idle: one right login and one page, so the process has done its start-up work.
    let admin = basic_auth("admin", HUB_ADMIN_PASSWORD);
    get_json_as(&client(), &url, &admin)?;
    std::thread::sleep(Duration::from_secs(2));
    let pid = hub.process.pid();
    let idle_mb = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;

    let started = Instant::now();
    let answers: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..requests)
            .map(|i| {
                let url = url.clone();
                s.spawn(move || {
                    let auth = basic_auth(&format!("guess{i}"), "wrong-password");
                    get_json_as(&client(), &url, &auth).map_or(0, |(status, _)| status)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    let wall = started.elapsed();
    let peak_mb = peak_rss_kib(pid) as f64 / 1024.0;
    let count = |status: u16| answers.iter().filter(|s| **s == status).count();

    let mut table = Table::new(&["measurement", "result", "target"]);
    table.row(["hub RSS idle".into(), format!("{idle_mb:.1} MB"), "".into()]);
    table.row([
        format!("hub peak RSS, {requests} parallel wrong passwords"),
        format!("{peak_mb:.1} MB (+{:.1} MB)", peak_mb - idle_mb),
        "≤ idle + 100 MB".into(),
    ]);
    table.row([
        "answers".into(),
        format!(
            "{} × 401, {} × 429, {} other, in {:.1} s",
            count(401),
            count(429),
            requests - count(401) - count(429),
            wall.as_secs_f64()
        ),
        "401 or 429 only".into(),
    ]);
    table.print();
    Ok(())
}
