//! `link --cases 10000 --idle-secs 120 --actions 100 [--gap-ms 1000] [--look-secs 60]`: the node's
//! one long-lived connection and the hub's push (issue 13). A real hub process and a village enrolled through its API, filled with
//! `--cases` cases; the village's side runs in this process on the node's own store and link code
//! (`tongban_runtime::link`), then as a real node process for the push latency. Every byte figure
//! is either sync payload (the protocol's frames) or wire (all UDP bytes both ways: QUIC, TLS,
//! acknowledgements, retransmissions).
//!
//! `link-township --villages 20 --idle-secs 1800 --actions 100 [--gap-ms 1000]`: a township node
//! with that many idle villages (real processes, the villages enrolled under it with the plain
//! command): the wire bytes of the township's own connection to the hub, and of each village's to
//! the township, over the window; then the push latency of county actions through the township.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tongban_runtime::bundle::NodeTls;
use tongban_runtime::link::Link;
use tongban_runtime::store::Store;
use tongban_runtime::transport::{SyncReport, Upstream};
use tongban_shared::Tier;
use tongban_tests::*;

use crate::{fill, flag, Table};

const VILLAGE: &str = "420222100201";

pub fn run() -> anyhow::Result<()> {
    let cases: u64 = flag("--cases", "10000")?;
    let idle_secs: u64 = flag("--idle-secs", "120")?;
    let actions: usize = flag("--actions", "100")?;
    // Between one action and the next: the node keeps to its upstream's session allowance (a burst
    // of 10, then one a second), so actions closer than a second apart measure that pace instead.
    let gap_ms: u64 = flag("--gap-ms", "1000")?;
    // How long a page is kept open on the idle node (it asks for the badge every 5 s, and the node
    // then probes its link: `tongban_runtime::link`).
    let look_secs: u64 = flag("--look-secs", "60")?;
    println!(
        "hub binary: {}\nnode binary: {}",
        hub_bin().display(),
        node_bin().display()
    );
    let hub_dir = tempfile::tempdir()?;
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0")?;
    let village = tempfile::tempdir()?;
    let bundle = village.path().join("bundle.json");
    hub.enroll_village(VILLAGE, &bundle)?;
    let data = village.path().join("node");
    init_node_from_bundle(&data, &bundle)?;
    let fill_s = fill(&data, cases)?;
    eprintln!("filled {cases} cases in {fill_s:.1} s");

    let mut table = Table::new(&[
        "measure",
        "sync payload",
        "wire (UDP, both ways)",
        "round trips",
    ]);
    let row = |table: &mut Table, what: &str, r: &SyncReport| {
        table.row([
            what.to_string(),
            format!("{} B", r.bytes_sent + r.bytes_received),
            format!("{} B", r.wire_bytes_sent + r.wire_bytes_received),
            r.round_trips.to_string(),
        ]);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    {
        let store = Store::open(&data)?;
        let files = NodeTls::load(&data)?;
        let config = || {
            tongban_runtime::upstream_tls::node_client_config(
                &files.ca_pem,
                &files.own,
                Tier::Village,
                Some(&VILLAGE[..9]),
            )
        };
        let upstream = Upstream {
            addr: hub.quic.parse()?,
            server_name: tongban_runtime::tls::HUB_SERVER_NAME.into(),
            config: config()?,
        };
        runtime.block_on(async {
            let link = Link::new(quinn::Endpoint::client("127.0.0.1:0".parse()?)?);
            let first = session(&link, &upstream, &store).await?;
            eprintln!(
                "initial upload: {} cases in {} ms",
                first.cases_sent, first.duration_ms
            );
            if first.cases_sent as u64 != cases {
                bail!(
                    "the first session sent {} of {cases} cases",
                    first.cases_sent
                );
            }
            // The first no-change session after an upload may still settle what the upload left;
            // the figures are the last of five.
            let mut live = SyncReport::default();
            for _ in 0..5 {
                live = session(&link, &upstream, &store).await?;
            }
            row(
                &mut table,
                &format!("no-change session on the live connection, N = {cases}"),
                &live,
            );

            let before = link.wire().await.context("no open connection")?;
            tokio::time::sleep(Duration::from_secs(idle_secs)).await;
            let after = link
                .wire()
                .await
                .context("the connection did not stay up")?;
            let idle = (after.sent - before.sent) + (after.received - before.received);
            let per_day = idle as f64 * 86_400.0 / idle_secs as f64;
            table.row([
                format!("idle connection (keep-alives), measured {idle_secs} s, per day"),
                "0 B".into(),
                format!("{idle} B in {idle_secs} s → {:.2} MB/day", per_day / 1e6),
                "–".into(),
            ]);

            link.disconnect().await;
            let resumed = session(&link, &upstream, &store).await?;
            row(
                &mut table,
                "reconnect, nothing changed (TLS resumed)",
                &resumed,
            );

            // A process that holds no ticket: the full mutual-TLS handshake, for comparison.
            let fresh = Link::new(quinn::Endpoint::client("127.0.0.1:0".parse()?)?);
            let cold = Upstream {
                config: config()?,
                ..upstream.clone()
            };
            let full = session(&fresh, &cold, &store).await?;
            row(
                &mut table,
                "connect, nothing changed (full handshake)",
                &full,
            );
            link.close().await;
            fresh.close().await;
            anyhow::Ok(())
        })?;
    }

    // Push: the county acts, the village's node process (polling every 10 min) shows it.
    let node = NodeProcess::serve_with(&data, &["--sync-interval", "600"])?;
    let agent = client();
    first_sync(&node)?;
    let numbers: Vec<String> = match actions {
        0 => Vec::new(),
        n => {
            let (_, listed) = get_json(&agent, &node.url(&format!("/api/cases?limit={n}")))?;
            listed["cases"]
                .as_array()
                .context("cases")?
                .iter()
                .filter_map(|c| c["case_no"].as_str().map(str::to_string))
                .collect()
        }
    };
    let latencies = push_latencies(&hub, &[(&node, numbers)], gap_ms)?;
    if let Some(row) = latency_row("direct", &latencies, gap_ms) {
        table.row(row);
    }

    if look_secs > 0 {
        // Let the last action's sessions and the looking of `first_sync` pass first.
        std::thread::sleep(Duration::from_secs(15));
        let before = link_wire(&node)?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(look_secs) {
            get_json(&agent, &node.url("/api/badge"))?;
            std::thread::sleep(Duration::from_secs(5));
        }
        let after = link_wire(&node)?;
        let bytes = after.saturating_sub(before);
        let per_hour = bytes as f64 * 3600.0 / started.elapsed().as_secs_f64();
        table.row([
            format!(
                "idle, a page open (badge every 5 s, probes), measured {look_secs} s, per hour"
            ),
            "0 B".into(),
            format!("{bytes} B → {:.2} MB/hour", per_hour / 1e6),
            "–".into(),
        ]);
    }
    let (_, st) = get_json(&agent, &node.url("/api/sync"))?;
    eprintln!(
        "node: {} sessions over {} connection(s)",
        st["totals"]["sessions"], st["totals"]["connections"]
    );
    table.print();
    Ok(())
}

/// Receives each case at the county, `gap_ms` apart, and times until its village's node shows it
/// (`GET /api/cases/{no}`).
fn push_latencies(
    hub: &HubProcess,
    villages: &[(&NodeProcess, Vec<String>)],
    gap_ms: u64,
) -> anyhow::Result<Vec<Duration>> {
    let agent = client();
    let mut latencies = Vec::new();
    let longest = villages.iter().map(|(_, n)| n.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (node, numbers) in villages {
            let Some(no) = numbers.get(i) else { continue };
            std::thread::sleep(Duration::from_millis(gap_ms));
            let (status, body) = post_json_as(
                &hub.url(&format!("/api/cases/{no}/actions")),
                &basic_auth("admin", HUB_ADMIN_PASSWORD),
                &serde_json::json!({"action": "receive"}),
            );
            if status != 200 {
                bail!("receive {no}: {status} {body}");
            }
            let acted = Instant::now();
            loop {
                let (_, case) = get_json(&agent, &node.url(&format!("/api/cases/{no}")))?;
                if case["state"] == "RECEIVED" {
                    latencies.push(acted.elapsed());
                    break;
                }
                if acted.elapsed() > Duration::from_secs(60) {
                    bail!("{no}: the county's action did not reach the village within 60 s");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    latencies.sort();
    Ok(latencies)
}

/// The table row of sorted `latencies`, if there are any.
fn latency_row(path: &str, latencies: &[Duration], gap_ms: u64) -> Option<[String; 4]> {
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    (!latencies.is_empty()).then(|| {
        [
            format!(
                "county action → visible at the village ({path}), {} actions {gap_ms} ms apart",
                latencies.len()
            ),
            "–".into(),
            "–".into(),
            format!(
                "p50 {} ms, p95 {} ms, max {} ms",
                pct(0.5).as_millis(),
                pct(0.95).as_millis(),
                pct(1.0).as_millis()
            ),
        ]
    })
}

/// Wire bytes (both ways) of a node process's open upstream connection so far.
fn link_wire(node: &NodeProcess) -> anyhow::Result<u64> {
    let (_, st) = get_json(&client(), &node.url("/api/sync"))?;
    let wire = &st["link_wire"];
    match (wire["sent"].as_u64(), wire["received"].as_u64()) {
        (Some(s), Some(r)) => Ok(s + r),
        _ => bail!("no open connection: {st}"),
    }
}

/// `link-township`: see the module header.
pub fn township() -> anyhow::Result<()> {
    let villages: u32 = flag("--villages", "20")?;
    let idle_secs: u64 = flag("--idle-secs", "1800")?;
    let actions: usize = flag("--actions", "100")?;
    let gap_ms: u64 = flag("--gap-ms", "1000")?;
    const TOWNSHIP: &str = "420222103";
    let hub_dir = tempfile::tempdir()?;
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0")?;
    let township_dir = tempfile::tempdir()?;
    let bundle = township_dir.path().join("b.json");
    hub.enroll(TOWNSHIP, "township", &hub.quic, None, &bundle)?;
    init_node_from_bundle(&township_dir.path().join("node"), &bundle)?;
    let township = NodeProcess::serve_with(
        &township_dir.path().join("node"),
        &["--quic", "127.0.0.1:0"],
    )?;
    let relay = township.relay_addr().context("relay address")?;
    let mut nodes = Vec::new();
    for n in 1..=villages {
        let dir = tempfile::tempdir()?;
        let code = format!("{TOWNSHIP}{n:03}");
        let bundle = dir.path().join("b.json");
        hub.enroll(&code, "village", &relay, None, &bundle)?;
        init_node_from_bundle(&dir.path().join("node"), &bundle)?;
        let node = NodeProcess::serve(&dir.path().join("node"))?;
        first_sync(&node)?;
        // Cases for the county to act on later, filed now so that they are up before the window.
        let mine = actions.div_ceil(villages.max(1) as usize);
        let numbers: Vec<String> = (0..mine)
            .map(|i| file_case(&node, &format!("镇下村民{n}-{i}")))
            .collect();
        nodes.push((dir, node, numbers));
    }
    first_sync(&township)?;
    // Past the looking of `first_sync` and the villages' first sessions.
    std::thread::sleep(Duration::from_secs(15));
    let township_before = link_wire(&township)?;
    let mut villages_before = Vec::new();
    for (_, node, _) in &nodes {
        villages_before.push(link_wire(node)?);
    }
    std::thread::sleep(Duration::from_secs(idle_secs));
    let township_bytes = link_wire(&township)?.saturating_sub(township_before);
    let mut village_bytes = Vec::new();
    for ((_, node, _), before) in nodes.iter().zip(villages_before) {
        village_bytes.push(link_wire(node)?.saturating_sub(before));
    }
    let per_day = |b: u64| b as f64 * 86_400.0 / idle_secs.max(1) as f64 / 1e6;
    let mut table = Table::new(&["measure", "wire (UDP, both ways)", "per day / latency"]);
    table.row([
        format!("township's connection to the hub, {villages} idle villages, {idle_secs} s"),
        format!("{township_bytes} B"),
        format!("{:.2} MB", per_day(township_bytes)),
    ]);
    let max = village_bytes.iter().copied().max().unwrap_or(0);
    let sum: u64 = village_bytes.iter().sum();
    table.row([
        format!("each village's connection to the township (max of {villages})"),
        format!("{max} B"),
        format!("{:.2} MB", per_day(max)),
    ]);
    table.row([
        format!("all {villages} villages' connections, as the township's socket sees them"),
        format!("{sum} B"),
        format!("{:.2} MB", per_day(sum)),
    ]);
    // Every filed case is at the county by now (the villages' sessions after each write).
    let mut waiting: Vec<(&NodeProcess, Vec<String>)> = Vec::new();
    for (_, node, numbers) in &nodes {
        for no in numbers {
            let started = Instant::now();
            while get_json_as(
                &client(),
                &hub.url(&format!("/api/cases/{no}")),
                &basic_auth("admin", HUB_ADMIN_PASSWORD),
            )?
            .0 != 200
            {
                if started.elapsed() > Duration::from_secs(120) {
                    bail!("{no} did not reach the county");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        waiting.push((node, numbers.clone()));
    }
    let latencies = push_latencies(&hub, &waiting, gap_ms)?;
    if let Some([what, _, _, figures]) = latency_row("through the township", &latencies, gap_ms) {
        table.row([what, "–".into(), figures]);
    }
    let (_, st) = get_json(&client(), &township.url("/api/sync"))?;
    eprintln!(
        "township: {} sessions over {} connection(s) since start",
        st["totals"]["sessions"], st["totals"]["connections"]
    );
    table.print();
    Ok(())
}

/// One session of the village's scope on `link`.
async fn session(link: &Link, up: &Upstream, store: &Store) -> anyhow::Result<SyncReport> {
    link.session(up, store, vec![VILLAGE.into()], 0, Vec::new())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Waits for the node process's first session after start.
fn first_sync(node: &NodeProcess) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let (_, st) = get_json(&client(), &node.url("/api/sync"))?;
        if !st["last_success"].is_null() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the node did not sync within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
