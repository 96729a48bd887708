//! `tongban-bench`: measures real node and hub processes and prints Markdown tables for
//! docs/BENCHMARKS.md.
//!
//! `intake` (the default):
//! 1. Intake: sequential `POST /api/cases` (each acknowledged only after fsync): p50/p90/p99/max latency
//!    and cases per minute; then the same with concurrent clients.
//! 2. Scale: a store filled with `--cases` cases; start-to-serving time, list latencies, idle RSS.
//!
//! `reconnect --cases 1000,10000 --changed 0,1,100 [--json]`: a hub and an enrolled village node,
//! the village holding N cases already synced; then the hub goes away, D new cases are filed, the hub
//! returns and the node reconnects (`POST /api/sync/now`): round trips, payload bytes both ways and
//! cases sent over every session from the hub's return until that call answers (the node's own
//! retry may come first), wall time, and peak RSS of both processes.
//!
//! `fanin --nodes 400 --cases 50`, `weaklink --cases 500`, `footprint --cases 100000`, `eventlog`,
//! `loginflood --requests 64`, `link`, `link-township`, `storage --cases 10000`, `hubscale --cases 20000`: see their
//! modules. Every subcommand prints a Markdown table; with `--json` also one JSON object per row.
//!
//! Usage: `cargo build --release && target/release/tongban-bench
//! [intake|reconnect|fanin|weaklink|footprint|eventlog|loginflood|link|link-township|storage|hubscale] [flags]`

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tongban_tests::*;

struct Args {
    cases: u64,
    intake: usize,
    clients: usize,
    node: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        cases: 100_000,
        intake: 1000,
        clients: 4,
        node: node_bin(),
    };
    let mut it = std::env::args()
        .skip(1)
        .filter(|a| a != "intake" && a != "--json");
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--cases" => args.cases = value.parse()?,
            "--intake" => args.intake = value.parse()?,
            "--clients" => args.clients = value.parse()?,
            "--node" => args.node = PathBuf::from(value),
            other => bail!("unknown flag {other} (--cases N --intake N --clients N --node PATH)"),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn file_one(agent: &ureq::Agent, node: &NodeProcess, name: &str) -> anyhow::Result<Duration> {
    let body = valid_case_body(name);
    let start = Instant::now();
    let (status, answer) = post_json(agent, &node.url("/api/cases"), &body, None)?;
    let took = start.elapsed();
    if status != 201 {
        bail!("intake answered {status}: {answer}");
    }
    Ok(took)
}

mod eventlog;
mod fanin;
mod footprint;
mod hubscale;
mod link;
mod loginflood;
mod storage;
mod weaklink;

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("reconnect") => return reconnect(),
        Some("eventlog") => return eventlog::run(),
        Some("fanin") => return fanin::run(),
        Some("footprint") => return footprint::run(),
        Some("hubscale") => return hubscale::run(),
        Some("link") => return link::run(),
        Some("link-township") => return link::township(),
        Some("loginflood") => return loginflood::run(),
        Some("storage") => return storage::run(),
        Some("weaklink") => return weaklink::run(),
        _ => {}
    }
    let args = parse_args()?;
    std::env::set_var("TONGBAN_NODE_BIN", &args.node);
    println!("node binary: {}", args.node.display());
    let mut rows: Vec<(String, String, String)> = Vec::new();

    // ---------------------------------------------------------------- intake latency
    let dir = tempfile::tempdir()?;
    init_node(dir.path())?;
    let node = NodeProcess::serve(dir.path())?;
    let agent = client();
    for i in 0..20 {
        file_one(&agent, &node, &format!("预热{i}"))?;
    }
    let mut lat = Vec::with_capacity(args.intake);
    let start = Instant::now();
    for i in 0..args.intake {
        lat.push(file_one(&agent, &node, &format!("顺序{i}"))?);
    }
    let wall = start.elapsed();
    lat.sort();
    let per_min = args.intake as f64 / wall.as_secs_f64() * 60.0;
    rows.push((
        "intake p50 (sequential, incl. fsync)".into(),
        ms(percentile(&lat, 0.50)),
        "".into(),
    ));
    rows.push(("intake p90".into(), ms(percentile(&lat, 0.90)), "".into()));
    rows.push((
        "intake p99".into(),
        ms(percentile(&lat, 0.99)),
        "≤ 20 ms".into(),
    ));
    rows.push((
        "intake max".into(),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        "".into(),
    ));
    rows.push((
        "intake throughput, 1 client".into(),
        format!("{per_min:.0} cases/min"),
        "".into(),
    ));

    let per_client = args.intake / args.clients.max(1);
    let start = Instant::now();
    let handles: Vec<_> = (0..args.clients)
        .map(|c| {
            let url_node = NodeProcess::attach(&node.base);
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let agent = client();
                (0..per_client)
                    .map(|i| file_one(&agent, &url_node, &format!("并发{c}-{i}")))
                    .collect()
            })
        })
        .collect();
    let mut clat = Vec::new();
    for h in handles {
        clat.extend(h.join().map_err(|_| anyhow::anyhow!("client panicked"))??);
    }
    let cwall = start.elapsed();
    clat.sort();
    rows.push((
        format!("intake p99, {} concurrent clients", args.clients),
        ms(percentile(&clat, 0.99)),
        "".into(),
    ));
    rows.push((
        format!("intake throughput, {} clients", args.clients),
        format!(
            "{:.0} cases/min",
            clat.len() as f64 / cwall.as_secs_f64() * 60.0
        ),
        "".into(),
    ));
    rows.push((
        "node RSS after intake run".into(),
        format!("{:.1} MB", rss_kib(node.pid()).unwrap_or(0) as f64 / 1024.0),
        "".into(),
    ));
    drop(node.kill());

    // ---------------------------------------------------------------- scale
    let big = tempfile::tempdir()?;
    init_node(big.path())?;
    let fill_start = Instant::now();
    let (ok, out, err) = node_cmd(&[
        "fill",
        "--data",
        path_str(big.path())?,
        "--count",
        &args.cases.to_string(),
        "--user",
        TEST_USER,
    ])?;
    if !ok {
        bail!("fill failed: {out} {err}");
    }
    rows.push((
        format!("bulk load of {} cases (one flush)", args.cases),
        format!("{:.1} s", fill_start.elapsed().as_secs_f64()),
        "".into(),
    ));
    let disk: u64 = walk_size(big.path());
    rows.push((
        format!("store on disk, {} cases", args.cases),
        format!("{:.1} MB", disk as f64 / 1e6),
        "".into(),
    ));

    let spawn_at = Instant::now();
    let mut child = Command::new(&args.node)
        .args([
            "serve",
            "--data",
            path_str(big.path())?,
            "--http",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let base = line
        .trim()
        .strip_prefix("tongban-node serving ")
        .context("no serving line")?
        .trim_end_matches('/')
        .to_string();
    let up = wait_until_up(&format!("{base}/api/health"), Duration::from_secs(30))?;
    let start_to_serving = spawn_at.elapsed().max(up);
    rows.push((
        format!("start to serving, {} cases", args.cases),
        ms(start_to_serving),
        "≤ 1 s".into(),
    ));
    let pid = child.id();
    let big_node = NodeProcess::attach(&base);
    let agent = client();
    let timed = |path: &str| -> anyhow::Result<Duration> {
        let start = Instant::now();
        let (status, body) = get_json(&agent, &big_node.url(path))?;
        if status != 200 {
            bail!("{path} answered {status}: {body}");
        }
        Ok(start.elapsed())
    };
    timed("/api/cases?limit=50")?;
    rows.push((
        "list first page (50), 100k store".into(),
        ms(timed("/api/cases?limit=50")?),
        "".into(),
    ));
    rows.push((
        "list by state (50, total counted)".into(),
        ms(timed("/api/cases?limit=50&state=SUBMITTED")?),
        "".into(),
    ));
    rows.push((
        "text search over all cases".into(),
        ms(timed("/api/cases?limit=50&q=%E7%8E%8B%E7%A7%80%E8%8B%B1")?),
        "".into(),
    ));
    let first_no = {
        let (_, page) = get_json(&agent, &big_node.url("/api/cases?limit=1"))?;
        page["cases"][0]["case_no"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    rows.push((
        "read one case".into(),
        ms(timed(&format!("/api/cases/{first_no}"))?),
        "".into(),
    ));
    // Idle: the agent has the home page open and does nothing.
    std::thread::sleep(Duration::from_secs(3));
    rows.push((
        format!("node RSS idle, {} cases", args.cases),
        format!("{:.1} MB", rss_kib(pid).unwrap_or(0) as f64 / 1024.0),
        "≤ 64 MB".into(),
    ));
    let _ = child.kill();
    let _ = child.wait();

    println!();
    if std::env::args().any(|a| a == "--json") {
        for (what, result, target) in &rows {
            println!(
                "{}",
                serde_json::json!({"measurement": what, "result": result, "target": target})
            );
        }
    }
    println!("| measurement | result | target |");
    println!("|---|---|---|");
    for (what, result, target) in rows {
        println!("| {what} | {result} | {target} |");
    }
    Ok(())
}

pub(crate) fn walk_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The word after `name` on the command line, or `default`.
fn arg_value(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// Fills a node's store with `n` generated cases (`tongban-node fill`); returns the seconds it took.
pub(crate) fn fill(data: &std::path::Path, n: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let (ok, out, err) = node_cmd(&[
        "fill",
        "--data",
        path_str(data)?,
        "--count",
        &n.to_string(),
        "--user",
        TEST_USER,
    ])?;
    if !ok {
        bail!("fill failed: {out} {err}");
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Waits for a node's first sync session (it starts at once and uploads what the node holds) and
/// returns its report.
pub(crate) fn first_session(
    agent: &ureq::Agent,
    node: &NodeProcess,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    loop {
        let (_, st) = get_json(agent, &node.url("/api/sync"))?;
        if !st["last_success"].is_null() && st["running"] == false {
            return Ok(st["last_session"].clone());
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("the node's first session did not finish within an hour");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn list_arg(name: &str, default: &str) -> anyhow::Result<Vec<u64>> {
    let raw = arg_value(name, default);
    raw.split(',')
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .with_context(|| format!("{name} {raw}"))
        })
        .collect()
}

fn reconnect() -> anyhow::Result<()> {
    let sizes = list_arg("--cases", "1000,10000")?;
    let changes = list_arg("--changed", "0,1,100")?;
    let as_json = std::env::args().any(|a| a == "--json");
    println!(
        "node binary: {}\nhub binary: {}",
        node_bin().display(),
        hub_bin().display()
    );
    let mut rows = Vec::new();
    for &n in &sizes {
        let hub_dir = tempfile::tempdir()?;
        let mut hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0")?;
        let village = tempfile::tempdir()?;
        let bundle = village.path().join("bundle.json");
        hub.enroll_village("420222100201", &bundle)?;
        let data = village.path().join("node");
        init_node_from_bundle(&data, &bundle)?;
        let fill_s = fill(&data, n)?;
        let node = NodeProcess::serve_with(&data, &["--sync-interval", "86400"])?;
        let agent = client();
        // The node's first session (at start) uploads everything; wait for it and record it.
        let first = first_session(&agent, &node)?;
        eprintln!(
            "N={n}: filled in {fill_s:.1} s, initial upload {} cases in {} ms",
            first["cases_sent"], first["duration_ms"]
        );
        let mut hub_peak_kib = 0;
        for &d in &changes {
            // The d cases are made while the county is away (otherwise the node's loop would send
            // them as they are filed); then the county returns and the node reconnects once.
            hub_peak_kib = hub_peak_kib.max(peak_rss_kib(hub.process.pid()));
            let quic = hub.quic.clone();
            let HubProcess { process, .. } = hub;
            let _ = process.kill();
            let mut doc_bytes = 0u64;
            for i in 0..d {
                let (status, body) = post_json(
                    &agent,
                    &node.url("/api/cases"),
                    &valid_case_body(&format!("变更{d}-{i}")),
                    None,
                )?;
                if status != 201 {
                    bail!("intake answered {status}: {body}");
                }
                // The saved automerge document: what must travel whatever the protocol.
                let no = body["case_no"].as_str().context("case_no")?;
                let mut doc = agent
                    .get(node.url(&format!("/api/cases/{no}/document")))
                    .header("Authorization", &test_auth())
                    .call()?;
                doc_bytes += doc.body_mut().read_to_vec()?.len() as u64;
            }
            // Every session from the county's return until the node's `sync/now` answers counts:
            // the node's own loop (retrying after the outage) may get there first.
            let (_, st) = get_json(&agent, &node.url("/api/sync"))?;
            let before = st["totals"].clone();
            hub = HubProcess::serve(hub_dir.path(), &quic)?;
            let start = Instant::now();
            let (status, report) = post_json(
                &agent,
                &node.url("/api/sync/now"),
                &serde_json::Value::Null,
                None,
            )?;
            let wall = start.elapsed();
            if status != 200 {
                bail!("sync/now answered {status}: {report}");
            }
            let (_, st) = get_json(&agent, &node.url("/api/sync"))?;
            let delta =
                |k: &str| st["totals"][k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
            let row = serde_json::json!({
                "cases": n,
                "changed": d,
                "sessions": delta("sessions") - delta("failed_sessions"),
                "round_trips": delta("round_trips"),
                "bytes": delta("bytes_sent") + delta("bytes_received"),
                "bytes_up": delta("bytes_sent"),
                "bytes_down": delta("bytes_received"),
                "cases_sent": delta("cases_sent"),
                "document_bytes": doc_bytes,
                "overhead_per_case": (d > 0).then(|| (delta("bytes_sent") + delta("bytes_received")).saturating_sub(doc_bytes) / d),
                "wall_ms": wall.as_secs_f64() * 1000.0,
                "node_peak_rss_mb": peak_rss_kib(node.pid()) as f64 / 1024.0,
                "hub_peak_rss_mb": hub_peak_kib.max(peak_rss_kib(hub.process.pid())) as f64 / 1024.0,
                "initial_upload_ms": first["duration_ms"],
            });
            if as_json {
                println!("{row}");
            }
            rows.push(row);
        }
    }
    println!();
    println!("| cases N | changed d | sessions | round trips | bytes (up + down) | documents' own bytes | beyond them, per case | cases sent | wall | node peak RSS | hub peak RSS | initial upload of N |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} ({} + {}) | {} | {} | {} | {:.1} ms | {:.1} MB | {:.1} MB | {:.1} s |",
            r["cases"],
            r["changed"],
            r["sessions"],
            r["round_trips"],
            r["bytes"],
            r["bytes_up"],
            r["bytes_down"],
            r["document_bytes"],
            r["overhead_per_case"].as_u64().map_or("–".to_string(), |b| format!("{b} B")),
            r["cases_sent"],
            r["wall_ms"].as_f64().unwrap_or(0.0),
            r["node_peak_rss_mb"].as_f64().unwrap_or(0.0),
            r["hub_peak_rss_mb"].as_f64().unwrap_or(0.0),
            r["initial_upload_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        );
    }
    Ok(())
}

/// The value of `--name` (or `default`), parsed.
pub(crate) fn flag<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let raw = arg_value(name, default);
    raw.parse::<T>()
        .map_err(|e| anyhow::anyhow!("{name} {raw}: {e}"))
}

/// A Markdown table, printed after a blank line so it can be pasted into docs/BENCHMARKS.md.
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row, and says it on stderr at once: a long run that fails later keeps what it measured.
    pub(crate) fn row<const N: usize>(&mut self, cells: [String; N]) {
        eprintln!("measured: {}", cells.join(" | "));
        self.rows.push(cells.to_vec());
    }

    pub(crate) fn print(&self) {
        println!();
        println!("| {} |", self.header.join(" | "));
        println!("|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
    }
}
