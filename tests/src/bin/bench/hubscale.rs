//! `hubscale --cases 20000 [--data DIR] [--samples 20]`: a county hub holding `--cases` cases
//! answers its operators (issue 17). The store is filled with `tongban-node fill --villages 300`
//! (the store code the hub runs; cases of 300 villages in 20 townships, random items of every
//! department, all as filed, i.e. 待接收), then `tongban-hub serve` is started and timed to its first
//! answer, and each operator request is sent `--samples` times over real HTTP with an account:
//! p50 and p95 per request, RSS idle and peak, disk per case.
//!
//! `--data DIR` keeps the filled store there and reuses it on the next run (a million cases take a
//! while to fill).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tongban_tests::*;

use crate::{walk_size, Table};

const DEPT: &str = "民政";

pub fn run() -> anyhow::Result<()> {
    let cases: u64 = crate::flag("--cases", "20000")?;
    let samples: usize = crate::flag("--samples", "20")?;
    let kept: String = crate::flag("--data", "")?;
    let temp = tempfile::tempdir()?;
    let data: PathBuf = match kept.is_empty() {
        true => temp.path().join("hub"),
        false => PathBuf::from(kept),
    };
    let mut fill_s = None;
    if !data.join("db").exists() {
        HubProcess::init(&data)?;
        HubProcess::add_user(&data, "window1", "window", None)?;
        HubProcess::add_user(&data, "dept1", "dept", Some(DEPT))?;
        HubProcess::add_user(&data, "sup1", "supervisor", None)?;
        let started = Instant::now();
        let (ok, out, err) = node_cmd(&[
            "fill",
            "--data",
            path_str(&data)?,
            "--count",
            &cases.to_string(),
            "--user",
            "window1",
            "--villages",
            "300",
        ])?;
        anyhow::ensure!(ok, "fill: {out} {err}");
        fill_s = Some(started.elapsed().as_secs_f64());
    }
    let disk = walk_size(&data);

    let spawned = Instant::now();
    let hub = HubProcess::serve(&data, "127.0.0.1:0")?;
    wait_until_up(&hub.url("/api/health"), Duration::from_secs(600))?;
    let start = spawned.elapsed();
    let base = hub.url("");
    let admin = ("admin", HUB_ADMIN_PASSWORD);
    let window = ("window1", TEST_PASSWORD);
    let dept = ("dept1", TEST_PASSWORD);
    let sup = ("sup1", TEST_PASSWORD);

    // Search terms from the store itself (the list shows an ID and a phone by their last four).
    let (_, first) = get_text_as(&base, admin, "/api/cases?limit=1");
    let first: serde_json::Value = serde_json::from_str(&first)?;
    let newest = &first["cases"][0];
    let text = |field: &str| newest[field].as_str().unwrap_or("").to_string();
    let tail = |s: String| {
        s.chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
    };
    let case_no = text("case_no");
    let id_tail = tail(text("applicant_cert_no"));
    let phone_tail = tail(text("phone"));
    let item_part: String = text("item_name").chars().take(2).collect();
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let requests: Vec<(String, (&str, &str), String)> = vec![
        ("list 50".into(), admin, "/api/cases?limit=50".into()),
        (
            "list 50, state 待接收".into(),
            admin,
            "/api/cases?limit=50&state=SUBMITTED".into(),
        ),
        (
            "list 50, department's own".into(),
            dept,
            "/api/cases?limit=50".into(),
        ),
        (
            "search 张 (surname)".into(),
            admin,
            format!("/api/cases?limit=50&q={}", enc("张")),
        ),
        (
            "search 张秀英 (full name)".into(),
            admin,
            format!("/api/cases?limit=50&q={}", enc("张秀英")),
        ),
        (
            "search ID tail (4)".into(),
            admin,
            format!("/api/cases?limit=50&q={id_tail}"),
        ),
        (
            "search phone tail (4)".into(),
            admin,
            format!("/api/cases?limit=50&q={phone_tail}"),
        ),
        (
            "search case number".into(),
            admin,
            format!("/api/cases?limit=50&q={case_no}"),
        ),
        (
            format!("search item {item_part}"),
            admin,
            format!("/api/cases?limit=50&q={}", enc(&item_part)),
        ),
        ("/api/stats".into(), admin, "/api/stats".into()),
        ("/dashboard".into(), admin, "/dashboard".into()),
        ("/queue window".into(), window, "/queue".into()),
        ("/queue department".into(), dept, "/queue".into()),
        ("/queue supervisor".into(), sup, "/queue".into()),
        ("/queue admin".into(), admin, "/queue".into()),
    ];
    let mut table = Table::new(&["request", "p50 ms", "p95 ms", "answer bytes"]);
    for (name, user, path) in &requests {
        let mut times = Vec::with_capacity(samples);
        let mut bytes = 0;
        for _ in 0..samples.max(1) {
            let t = Instant::now();
            let (status, body) = get_text_as(&base, *user, path);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(status == 200, "{name}: {status} {body}");
            bytes = body.len();
        }
        times.sort_by(f64::total_cmp);
        let pick = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        table.row([
            name.clone(),
            format!("{:.1}", pick(0.5)),
            format!("{:.1}", pick(0.95)),
            bytes.to_string(),
        ]);
    }
    let idle_mb = rss_kib(hub.process.pid()).unwrap_or(0) as f64 / 1024.0;
    let peak_mb = peak_rss_kib(hub.process.pid()) as f64 / 1024.0;
    drop(hub);

    println!(
        "{cases} cases{}; disk {disk} bytes ({:.0} B per case); start to serving {:.0} ms; RSS after the requests {idle_mb:.1} MB, peak {peak_mb:.1} MB",
        fill_s.map(|s| format!(", filled in {s:.0} s")).unwrap_or_default(),
        disk as f64 / cases.max(1) as f64,
        start.as_secs_f64() * 1000.0,
    );
    table.print();
    Ok(())
}
