//! `fanin --nodes 400 --cases 50`: the morning after a county-wide outage. A real hub process; `--nodes`
//! village identities enrolled through its API, each with its own certificate and `--cases` new cases,
//! all reconnect at once over real QUIC. Measures the time until every case is durable at the hub (a
//! session ends only after the hub's answer, which it sends after its fsync) and the hub's peak RSS.
//!
//! With `--hold-secs S`, every village then opens one idle connection of its own, as nodes hold them
//! all day, and after S seconds the hub's RSS is read with all of them held.
//!
//! The villages' own storage is in memory ([`MemReplica`]): 400 sled stores in the bench process would
//! take CPU from the hub on this 2-core machine and measure the bench instead of the hub.

use std::time::Instant;

use anyhow::{bail, Context};
use tongban_runtime::bundle::Bundle;
use tongban_runtime::transport::{self, Upstream};
use tongban_shared::sync::memory::MemReplica;
use tongban_tests::*;

use crate::{flag, Table};

/// Village codes under county 420222: towns 100.., villages 201.. in each.
fn village_code(i: usize) -> String {
    format!("420222{:03}{:03}", 100 + i / 50, 201 + i % 50)
}

pub fn run() -> anyhow::Result<()> {
    let nodes: usize = flag("--nodes", "400")?;
    let per_node: u32 = flag("--cases", "50")?;
    let hold_secs: u64 = flag("--hold-secs", "0")?;
    let as_json = std::env::args().any(|a| a == "--json");
    println!("hub binary: {}", hub_bin().display());

    let hub_dir = tempfile::tempdir()?;
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0")?;
    let bundles_dir = tempfile::tempdir()?;
    let enrol_start = Instant::now();
    let mut villages = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let code = village_code(i);
        let path = bundles_dir.path().join(format!("{code}.json"));
        hub.enroll_village(&code, &path)?;
        let bundle = Bundle::load(&path)?;
        let mut replica = MemReplica::default();
        replica.publish_catalog(1, tongban_shared::catalog::BUILTIN_CATALOG_JSON);
        // The actor the hub bound to this village at enrolment, as a real node writes with.
        let actor = tongban_runtime::tls::actor_for_serial(
            &tongban_runtime::tls::identity_of_pem(&bundle.node.cert_pem)?.serial,
        );
        for seq in 1..=per_node {
            let (no, mut doc) = rogue::case_document(&code, seq, &format!("汇入{i}-{seq}"), actor);
            replica
                .write(&no, &mut doc)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let upstream = Upstream {
            addr: bundle.upstream.parse()?,
            server_name: bundle.upstream_name.clone(),
            config: tongban_runtime::tls::client_config(
                &bundle.ca_pem,
                &tongban_tests::node_credentials(&path, &bundle)?,
            )?,
        };
        villages.push((code, replica, upstream));
    }
    let upstreams: Vec<Upstream> = villages.iter().map(|(_, _, up)| up.clone()).collect();
    eprintln!(
        "enrolled {nodes} villages and made {} cases in {:.1} s",
        nodes as u64 * u64::from(per_node),
        enrol_start.elapsed().as_secs_f64()
    );
    let hub_rss_before = peak_rss_kib(hub.process.pid());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let start = Instant::now();
    let outcomes = runtime.block_on(async {
        let tasks: Vec<_> = villages
            .into_iter()
            .map(|(code, mut replica, upstream)| {
                tokio::spawn(async move {
                    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
                    // A village whose first attempt fails (the hub is busy) tries again, as nodes do.
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        match transport::sync_replica(
                            &endpoint,
                            &upstream,
                            &mut replica,
                            vec![code.clone()],
                            per_node,
                            Vec::new(),
                        )
                        .await
                        {
                            Ok(report) => {
                                return anyhow::Ok((code, report, attempts, start.elapsed()))
                            }
                            // After a pause, as nodes back off (theirs is longer, with jitter): a
                            // hub refusing handshakes beyond its limit is not asked again at once.
                            Err(e) if attempts < 10 => {
                                eprintln!("{code}: {e}; again");
                                tokio::time::sleep(std::time::Duration::from_millis(
                                    250 * attempts as u64,
                                ))
                                .await;
                            }
                            Err(e) => bail!("{code}: {e}"),
                        }
                    }
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await?);
        }
        anyhow::Ok(out)
    })?;
    let wall = start.elapsed();
    let mut sent = 0u64;
    let mut retried = 0;
    let mut latest = std::time::Duration::ZERO;
    let mut durations = Vec::new();
    for outcome in outcomes {
        let (code, report, attempts, done_at) = outcome?;
        if !report.refused.is_empty() {
            bail!("{code}: refused {:?}", report.refused);
        }
        sent += u64::from(report.cases_sent);
        retried += usize::from(attempts > 1);
        latest = latest.max(done_at);
        durations.push(done_at);
    }
    durations.sort();
    let hub_peak_mb = peak_rss_kib(hub.process.pid()) as f64 / 1024.0;
    // What the hub itself says it holds, through its API.
    let (status, page) = get_json_as(
        &client(),
        &hub.url("/api/cases?limit=1"),
        &basic_auth("admin", HUB_ADMIN_PASSWORD),
    )?;
    if status != 200 {
        bail!("hub case list answered {status}: {page}");
    }
    let at_hub = page["total"].as_u64().context("total")?;
    let expected = nodes as u64 * u64::from(per_node);
    if at_hub != expected || sent != expected {
        bail!("hub holds {at_hub} cases, villages sent {sent}, expected {expected}");
    }
    let row = serde_json::json!({
        "nodes": nodes,
        "cases_per_node": per_node,
        "cases": expected,
        "all_durable_ms": latest.as_secs_f64() * 1000.0,
        "median_node_done_ms": durations[durations.len() / 2].as_secs_f64() * 1000.0,
        "wall_ms": wall.as_secs_f64() * 1000.0,
        "cases_per_s": expected as f64 / latest.as_secs_f64(),
        "nodes_retried": retried,
        "hub_peak_rss_mb": hub_peak_mb,
        "hub_rss_before_mb": hub_rss_before as f64 / 1024.0,
    });
    if as_json {
        println!("{row}");
    }
    let mut table = Table::new(&["measurement", "result", "target"]);
    table.row([
        format!("all {expected} cases durable at the hub ({nodes} nodes × {per_node})"),
        format!("{:.1} s", latest.as_secs_f64()),
        "≤ 20 s".into(),
    ]);
    table.row([
        "half the nodes done".into(),
        format!("{:.1} s", durations[durations.len() / 2].as_secs_f64()),
        "".into(),
    ]);
    table.row([
        "throughput".into(),
        format!("{:.0} cases/s", expected as f64 / latest.as_secs_f64()),
        "".into(),
    ]);
    table.row([
        "nodes that had to retry".into(),
        retried.to_string(),
        "".into(),
    ]);
    table.row([
        "hub peak RSS".into(),
        format!("{hub_peak_mb:.1} MB"),
        "≤ 512 MB".into(),
    ]);
    if hold_secs > 0 {
        let rss_idle_before = rss_kib(hub.process.pid()).unwrap_or(0);
        let (held, rss_held) = runtime.block_on(async {
            let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
            let mut held = Vec::with_capacity(upstreams.len());
            for up in &upstreams {
                held.push(
                    endpoint
                        .connect_with(up.config.clone(), up.addr, &up.server_name)?
                        .await?,
                );
            }
            tokio::time::sleep(std::time::Duration::from_secs(hold_secs)).await;
            let open = held.iter().filter(|c| c.close_reason().is_none()).count();
            let rss = rss_kib(hub.process.pid()).unwrap_or(0);
            anyhow::Ok((open, rss))
        })?;
        if held != upstreams.len() {
            bail!(
                "only {held} of {} idle connections stayed open",
                upstreams.len()
            );
        }
        table.row([
            format!("hub RSS with {held} idle connections held {hold_secs} s"),
            format!(
                "{:.1} MB (before opening them: {:.1} MB)",
                rss_held as f64 / 1024.0,
                rss_idle_before as f64 / 1024.0
            ),
            "≤ 256 MB".into(),
        ]);
    }
    table.print();
    Ok(())
}
