//! `tongban-hub demo`: a demo county on loopback in one process — the hub and two village nodes
//! enrolled with it, accounts and sample cases — so a fresh machine can see the whole chain.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tongban_node::setup as node_setup;
use tongban_runtime::clock::beijing_now;
use tongban_runtime::store::Store;

use crate::county::{self, CountyError, EnrollRequest};

pub const COUNTY: &str = "420222";
pub const ADMIN_PASSWORD: &str = "admin123";
pub const WINDOW_USER: (&str, &str) = ("window1", "window123");
pub const VILLAGES: [(&str, &str, &str); 2] = [
    ("420222100201", "兴国镇示范村便民服务站", "daiban1"),
    ("420222100202", "兴国镇东风村便民服务站", "daiban2"),
];
pub const AGENT_PASSWORD: &str = "daiban123";
pub const DEPT_PASSWORD: &str = "dept123";

pub struct DemoPorts {
    pub hub_http: SocketAddr,
    pub hub_quic: SocketAddr,
    pub village_http: [SocketAddr; 2],
}

fn village_dir(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("village{}", i + 1))
}

/// Creates the demo county in `dir` unless it is there already.
pub fn prepare(dir: &Path, ports: &DemoPorts) -> Result<(), CountyError> {
    let hub_dir = dir.join("hub");
    if hub_dir.join("db").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| CountyError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let now = beijing_now();
    let hub = county::init(&hub_dir, COUNTY, "阳新县", ADMIN_PASSWORD, now)?;
    county::add_user(&hub, WINDOW_USER.0, WINDOW_USER.1, "window", None, now)?;
    // One back-office account per department of the catalogue, and a supervisor.
    let catalog = hub.catalog()?;
    for (i, dept) in catalog.departments().iter().enumerate() {
        county::add_user(
            &hub,
            &format!("dept{}", i + 1),
            DEPT_PASSWORD,
            "dept",
            Some(dept),
            now,
        )?;
    }
    county::add_user(&hub, "supervisor", DEPT_PASSWORD, "supervisor", None, now)?;
    let ca = county::ca(&hub_dir)?;
    for (i, (code, name, agent)) in VILLAGES.iter().enumerate() {
        let bundle_path = dir.join(format!("{code}.bundle.json"));
        county::enroll(
            &hub,
            &ca,
            &EnrollRequest {
                code,
                name,
                tier: tongban_shared::Tier::Village,
                parent: None,
                upstream: &ports.hub_quic.to_string(),
                upstream_name: None,
                fallback: None,
            },
            Some(&bundle_path),
            now,
        )?;
        let vdir = village_dir(dir, i);
        let store = node_setup::init_from_bundle(
            &vdir,
            &bundle_path,
            agent,
            Some("代办员"),
            AGENT_PASSWORD,
            now,
        )
        .map_err(|e| CountyError::Invalid(e.to_string()))?;
        node_setup::fill(&store, 6, 2026 + i as u64, now, agent)
            .map_err(|e| CountyError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// Runs the demo county until ctrl-c.
pub async fn run(dir: &Path, ports: DemoPorts) -> anyhow::Result<()> {
    prepare(dir, &ports)?;
    let hub_dir = dir.join("hub");
    let hub_store = county::open(&hub_dir)?;
    println!(
        "通办 demo county 阳新县 (420222) — data in {}",
        dir.display()
    );
    println!(
        "  county hub:  http://{}/   login admin / {ADMIN_PASSWORD}, {} / {}",
        ports.hub_http, WINDOW_USER.0, WINDOW_USER.1
    );
    println!(
        "               back office dept1, dept2, … / {DEPT_PASSWORD} (one per department, see /queue), supervisor / {DEPT_PASSWORD}"
    );
    for (i, (code, name, agent)) in VILLAGES.iter().enumerate() {
        println!(
            "  village {code} {name}: http://{}/   login {agent} / {AGENT_PASSWORD}",
            ports.village_http[i]
        );
    }
    println!(
        "  sync: villages → hub over QUIC at {} (every 10 s and right after each new case)",
        ports.hub_quic
    );
    println!("  stop with ctrl-c");

    let hub = crate::server::serve(
        &hub_dir,
        hub_store,
        ports.hub_http,
        ports.hub_quic,
        tongban_runtime::transport::ServerLimits::default(),
        tongban_runtime::process::shutdown_signal(),
        |_| {},
    );
    let mut villages = Vec::new();
    for i in 0..VILLAGES.len() {
        let vdir = village_dir(dir, i);
        let store = Store::open(&vdir)?;
        let addr = ports.village_http[i];
        villages.push(tokio::spawn(async move {
            node_setup::serve(
                store,
                addr,
                &vdir,
                tongban_node::sync::SyncTiming {
                    period: Duration::from_secs(10),
                    ..Default::default()
                },
                None,
            )
            .await
        }));
    }
    hub.await?;
    for v in villages {
        v.await??;
    }
    Ok(())
}
