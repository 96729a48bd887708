//! `weaklink --cases 500`: a village on a bad link. A real hub process and a real village node process
//! whose upstream is the fault proxy (tests/src/faultproxy.rs): by default 256 kbit/s each way, 300 ms
//! RTT, 10 % loss each way, and the link down for `--drop-secs` every 20 s. The agent files `--cases`
//! cases over HTTP; the node syncs them on its own (after writes, with backoff after failures). The
//! clock runs from the first filing until the hub's API lists every case.
//!
//! Goodput is the sync payload of the node's finished sessions (both directions) over every byte the
//! node and the hub put on the link (the proxy's count: QUIC, TLS, handshakes, retransmissions and
//! sessions cut short included). Re-sent bytes are what QUIC on the node judged lost and sent again.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tongban_tests::faultproxy::{FaultProxy, LinkProfile};
use tongban_tests::*;

use crate::{flag, Table};

const V1: &str = "420222100201";

pub fn run() -> anyhow::Result<()> {
    let cases: u64 = flag("--cases", "500")?;
    let kbit: u64 = flag("--kbit", "256")?;
    let rtt_ms: u64 = flag("--rtt-ms", "300")?;
    let loss: f64 = flag("--loss", "0.10")?;
    let drop_every: u64 = flag("--drop-every", "20")?;
    let drop_secs: f64 = flag("--drop-secs", "3")?;
    let seed: u64 = flag("--seed", "1")?;
    let as_json = std::env::args().any(|a| a == "--json");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let hub_dir = tempfile::tempdir()?;
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0")?;
    let profile = LinkProfile {
        bandwidth_bps: Some(kbit * 1000),
        delay: Duration::from_millis(rtt_ms / 2),
        loss,
        blackouts: (drop_every > 0).then(|| {
            (
                Duration::from_secs(drop_every),
                Duration::from_secs_f64(drop_secs),
            )
        }),
        seed,
        ..LinkProfile::default()
    };
    let proxy = runtime.block_on(FaultProxy::start(hub.quic.parse()?, profile.clone()))?;
    let village = tempfile::tempdir()?;
    let bundle = village.path().join("bundle.json");
    hub.enroll(V1, "village", &proxy.addr.to_string(), None, &bundle)?;
    let data = village.path().join("node");
    init_node_from_bundle(&data, &bundle)?;
    let node = NodeProcess::serve(&data)?;
    let agent = client();
    let admin = basic_auth("admin", HUB_ADMIN_PASSWORD);
    let hub_total = || -> anyhow::Result<u64> {
        let (status, page) = get_json_as(&agent, &hub.url("/api/cases?limit=1"), &admin)?;
        if status != 200 {
            bail!("hub answered {status}: {page}");
        }
        page["total"].as_u64().context("total")
    };
    // The node's first session (at start) may still be on the link: let it finish, so the clock
    // measures the cases and not the enrolment.
    let settle = Instant::now();
    loop {
        let (_, st) = get_json(&agent, &node.url("/api/sync"))?;
        if st["running"] == false && !st["last_attempt"].is_null() {
            break;
        }
        if settle.elapsed() > Duration::from_secs(120) {
            bail!("the node's first session did not end");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let before_up = proxy.stats.up.counts();
    let before_down = proxy.stats.down.counts();
    let (_, st) = get_json(&agent, &node.url("/api/sync"))?;
    let totals_before = st["totals"].clone();

    let start = Instant::now();
    for i in 0..cases {
        let (status, body) = post_json(
            &agent,
            &node.url("/api/cases"),
            &valid_case_body(&format!("弱网{i}")),
            None,
        )?;
        if status != 201 {
            bail!("intake answered {status}: {body}");
        }
    }
    let filed = start.elapsed();
    let arrived = loop {
        if hub_total()? >= cases {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(900) {
            bail!("after 900 s the hub has {} of {cases} cases", hub_total()?);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // Let the session that delivered the last case end, so its bytes are in the node's totals.
    let idle = Instant::now();
    let st = loop {
        let (_, st) = get_json(&agent, &node.url("/api/sync"))?;
        if st["running"] == false || idle.elapsed() > Duration::from_secs(120) {
            break st;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let delta =
        |k: &str| st["totals"][k].as_u64().unwrap_or(0) - totals_before[k].as_u64().unwrap_or(0);
    let up = proxy.stats.up.counts();
    let down = proxy.stats.down.counts();
    let wire = (up.offered_bytes - before_up.offered_bytes)
        + (down.offered_bytes - before_down.offered_bytes);
    let payload = delta("bytes_sent") + delta("bytes_received");
    let goodput = payload as f64 / wire.max(1) as f64;
    let row = serde_json::json!({
        "cases": cases,
        "kbit": kbit,
        "rtt_ms": rtt_ms,
        "loss": loss,
        "drop_every_s": drop_every,
        "drop_s": drop_secs,
        "seed": seed,
        "filing_ms": filed.as_secs_f64() * 1000.0,
        "all_at_hub_ms": arrived.as_secs_f64() * 1000.0,
        "payload_bytes": payload,
        "wire_bytes": wire,
        "goodput": goodput,
        "resent_bytes": delta("lost_bytes"),
        "sessions": delta("sessions"),
        "failed_sessions": delta("failed_sessions"),
        "packets_lost": (up.lost - before_up.lost) + (down.lost - before_down.lost),
        "packets_blacked_out": (up.blacked_out - before_up.blacked_out) + (down.blacked_out - before_down.blacked_out),
        "packets_queue_dropped": (up.queue_dropped - before_up.queue_dropped) + (down.queue_dropped - before_down.queue_dropped),
    });
    if as_json {
        println!("{row}");
    }
    let mut table = Table::new(&["measurement", "result", "target"]);
    table.row([
        format!(
            "{cases} cases at the hub ({kbit} kbit/s, {rtt_ms} ms RTT, {:.0} % loss, {drop_secs} s down every {drop_every} s)",
            loss * 100.0
        ),
        format!("{:.1} s", arrived.as_secs_f64()),
        "≤ 90 s".into(),
    ]);
    table.row([
        "goodput (sync payload / bytes on the link)".into(),
        format!("{:.1} % ({payload} / {wire} B)", goodput * 100.0),
        "≥ 70 %".into(),
    ]);
    table.row([
        "bytes re-sent by QUIC on the node".into(),
        format!("{} B", delta("lost_bytes")),
        "".into(),
    ]);
    table.row([
        "sessions (failed)".into(),
        format!("{} ({})", delta("sessions"), delta("failed_sessions")),
        "".into(),
    ]);
    table.row([
        "packets lost / blacked out / dropped by the queue".into(),
        format!(
            "{} / {} / {}",
            row["packets_lost"], row["packets_blacked_out"], row["packets_queue_dropped"]
        ),
        "".into(),
    ]);
    table.print();
    drop(proxy);
    Ok(())
}
