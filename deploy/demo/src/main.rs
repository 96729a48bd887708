//! `tongban-demo`: a whole demo county on loopback in one process — the hub, one township node
//! relaying for two villages, one village syncing with the county directly — with accounts for every
//! role and sample cases in several states, until ctrl-c or SIGTERM. This file is the command line
//! and the process: it starts the servers, waits for the sample cases, and prints how to log in.
//!
//! - [`county`]: who is in the demo county, on which ports, and creating or reusing its directory.
//! - [`seed`]: taking sample cases through the workflow and the sync, over the servers' own API.
//! - [`api`]: the small HTTP client `seed` uses.

mod api;
mod county;
mod seed;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tongban_node::serve::ServeOptions;
use tongban_node::uplink::SyncTiming;
use tongban_runtime::transport::ServerLimits;
use tongban_shared::Tier;

use crate::county::{County, Prepared};

#[derive(Parser)]
#[command(
    name = "tongban-demo",
    version,
    about = "通办 demo county on loopback: hub, township, villages, accounts and sample cases"
)]
struct Cli {
    /// Where the demo county lives; reused when it already holds one (default: a `tongban-demo`
    /// folder in the temp directory).
    #[arg(long, env = "TONGBAN_DEMO_DIR")]
    dir: Option<PathBuf>,
    /// The hub's HTTP port; the township and the villages take the next four.
    #[arg(long, env = "TONGBAN_DEMO_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// The hub's QUIC sync port (UDP); the township relays for its villages on the next one.
    #[arg(long, env = "TONGBAN_DEMO_QUIC_PORT", default_value_t = 4433)]
    quic_port: u16,
    /// How log lines are written to stderr: text (for people) or json (one object a line).
    #[arg(long, env = "TONGBAN_LOG_FORMAT", default_value_t)]
    log_format: tongban_runtime::process::LogFormat,
}

/// Short enough that a person sees a new case reach the county, and the county's answer come back,
/// while watching; the fallback to the hub stays for a township that is really gone.
const TIMING: SyncTiming = SyncTiming {
    period: Duration::from_secs(5),
    fallback_after: Duration::from_secs(120),
};

fn main() -> ExitCode {
    // Five servers logging every sync session at info would push the logins off the screen; warnings
    // still show. `RUST_LOG` set by the person wins. Set before any thread exists.
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    let cli = Cli::parse();
    let log_format = cli.log_format;
    tongban_runtime::process::cli_main_logging(cli, None, log_format, run)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = cli
        .dir
        .unwrap_or_else(|| std::env::temp_dir().join("tongban-demo"));
    let county = County::new(dir, cli.http_port, cli.quic_port)?;
    let prepared = county.prepare()?;
    let runtime = tongban_runtime::process::runtime()?;
    let result = runtime.block_on(serve(county, prepared, started));
    // The seeding thread may still be waiting on a server that stopped; do not wait for it long.
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// Runs every server of the county until they all stop: ctrl-c / SIGTERM, or one of them failing,
/// cancels the one token every server and its tasks watch.
async fn serve(county: County, prepared: Prepared, started: Instant) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tongban_runtime::process::shutdown_signal().await;
            shutdown.cancel();
        });
    }
    let result = serve_until(&county, prepared, started, &shutdown).await;
    shutdown.cancel();
    result
}

async fn serve_until(
    county: &County,
    prepared: Prepared,
    started: Instant,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let hub_store = tongban_hub::county::open(&county.hub_dir)?;
    let catalog = hub_store.catalog()?;
    let mut servers: JoinSet<anyhow::Result<()>> = JoinSet::new();
    {
        let (dir, http, quic) = (county.hub_dir.clone(), county.hub_http, county.hub_quic);
        let shutdown = shutdown.clone();
        servers.spawn(async move {
            tongban_hub::server::serve(
                &dir,
                hub_store,
                tongban_hub::server::WebListen::loopback(http),
                quic,
                ServerLimits::default(),
                shutdown,
                |_| {},
            )
            .await
            .context("county hub")
        });
    }
    for node in county.nodes() {
        let store = county::open_store(&node.dir)?;
        let relay = (node.tier == Tier::Township).then_some(county.relay);
        let (dir, http, code) = (node.dir.clone(), node.http, node.code);
        let shutdown = shutdown.clone();
        servers.spawn(async move {
            let opts = ServeOptions {
                data: &dir,
                http,
                sync: TIMING,
                relay,
                https: None,
                tls_files: None,
                idle_timeout: tongban_node::serve::DEFAULT_IDLE_TIMEOUT,
            };
            tongban_node::serve::serve(store, opts, shutdown)
                .await
                .with_context(|| format!("node {code}"))
        });
    }

    let seeding = {
        let (county, catalog) = (county.clone(), catalog.clone());
        tokio::task::spawn_blocking(move || seed::run(&county, &catalog))
    };
    tokio::select! {
        seeded = seeding => seeded.context("sample cases")?.context("preparing the sample cases")?,
        Some(stopped) = servers.join_next() => {
            stopped.context("a server task")??;
            // Stopped cleanly before the demo was ready: ctrl-c during the start.
            return Ok(());
        }
    }
    print!("{}", banner(county, &catalog, prepared, started.elapsed()));

    while let Some(stopped) = servers.join_next().await {
        if let Err(e) = stopped.context("a server task").and_then(|r| r) {
            // The others stop in order before the error is reported.
            shutdown.cancel();
            while servers.join_next().await.is_some() {}
            return Err(e);
        }
    }
    Ok(())
}

/// Every URL and login, one line per node, ending with the line scripts wait for.
fn banner(
    county: &County,
    catalog: &tongban_shared::catalog::Catalog,
    prepared: Prepared,
    took: Duration,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let how = match prepared {
        Prepared::Created => "新建",
        Prepared::Reused => "沿用",
    };
    let _ = writeln!(
        out,
        "\n通办演示县 {} ({})，数据目录 {}（{how}，{:.1} 秒就绪）",
        county::COUNTY_NAME,
        county::COUNTY_CODE,
        county.dir.display(),
        took.as_secs_f64()
    );
    let (a, w, s) = (county::ADMIN, county::WINDOW, county::SUPERVISOR);
    let _ = writeln!(
        out,
        "  县级平台 {} http://{}/   管理员 {} / {}，窗口 {} / {}，督查 {} / {}",
        county::COUNTY_CODE,
        county.hub_http,
        a.user,
        a.password,
        w.user,
        w.password,
        s.user,
        s.password
    );
    let depts: Vec<String> = county::dept_accounts(catalog)
        .into_iter()
        .map(|(account, dept)| format!("{account} {dept}"))
        .collect();
    let _ = writeln!(
        out,
        "    部门后台（密码均为 {}）：{}",
        county::DEPT_PASSWORD,
        depts.join("，")
    );
    let t = &county.township;
    let _ = writeln!(
        out,
        "  乡镇 {} {} http://{}/   {} / {}   为本镇各村中转同步 (QUIC {})",
        t.code, t.name, t.http, t.login.user, t.login.password, county.relay
    );
    for v in &county.villages {
        let link = if v.via_township {
            "经兴国镇同步"
        } else {
            "直连县级平台"
        };
        let _ = writeln!(
            out,
            "  村 {} {} http://{}/   代办员 {} / {}   {link}",
            v.code, v.name, v.http, v.login.user, v.login.password
        );
    }
    let _ = writeln!(
        out,
        "  同步：县级平台 QUIC {}，每 {} 秒一次，新办件约 1 秒后上传",
        county.hub_quic,
        TIMING.period.as_secs()
    );
    let _ = writeln!(out, "  stop with ctrl-c");
    out
}
