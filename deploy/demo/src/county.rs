//! The demo county's layout — which nodes exist, their codes, names, accounts, data directories and
//! loopback addresses — and [`County::prepare`], which creates them on the first start (county CA,
//! enrolment bundles, node stores, generated intake) or points a reused directory at this start's
//! ports. Running the servers belongs to `main.rs`; moving cases through the workflow to `seed.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tongban_hub::certs;
use tongban_hub::county::{self, EnrollRequest};
use tongban_node::setup as node_setup;
use tongban_runtime::clock::beijing_now;
use tongban_runtime::store::Store;
use tongban_runtime::tls::township_server_name;
use tongban_shared::catalog::Catalog;
use tongban_shared::Tier;

/// An account name and its password, as printed for the person trying the demo.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    pub user: &'a str,
    pub password: &'a str,
}

pub const COUNTY_CODE: &str = "420222";
pub const COUNTY_NAME: &str = "阳新县";
pub const ADMIN: Login<'static> = Login {
    user: "admin",
    password: "admin-2026",
};
pub const WINDOW: Login<'static> = Login {
    user: "window1",
    password: "window-2026",
};
pub const SUPERVISOR: Login<'static> = Login {
    user: "supervisor",
    password: DEPT_PASSWORD,
};
/// Shared by every department account (`dept1`, `dept2`, … in catalogue order).
pub const DEPT_PASSWORD: &str = "dept-2026";

const TOWNSHIP_CODE: &str = "420222100";
const TOWNSHIP_NAME: &str = "兴国镇便民服务中心";
const CLERK: Login<'static> = Login {
    user: "clerk1",
    password: "clerk-2026",
};
const AGENT_PASSWORD: &str = "daiban-2026";

/// (code, name, agent account, syncs through the township). The last one belongs to another township
/// that has no node, so it syncs with the county directly — the other way a village is connected.
/// Code, station, the agent's account and name, whether it syncs through the township.
const VILLAGES: [(&str, &str, &str, &str, bool); 3] = [
    (
        "420222100201",
        "兴国镇示范村便民服务站",
        "daiban1",
        "李春梅",
        true,
    ),
    (
        "420222100202",
        "兴国镇东风村便民服务站",
        "daiban2",
        "王建国",
        true,
    ),
    (
        "420222101201",
        "富池镇示范村便民服务站",
        "daiban3",
        "张秀兰",
        false,
    ),
];

/// Generated intake cases per village: enough for one case in each planned state plus a few left as
/// filed (see `seed::PLANS`).
pub const CASES_PER_VILLAGE: u64 = 10;

/// One node of the demo (the township or a village).
#[derive(Debug, Clone)]
pub struct Node {
    pub code: &'static str,
    pub name: &'static str,
    pub tier: Tier,
    pub dir: PathBuf,
    pub http: SocketAddr,
    /// The station's own account: the township clerk, or the village's agent.
    pub login: Login<'static>,
    /// That person's name, as receipts and history show it.
    pub person: &'static str,
    /// A village behind the township (upstream = the relay, fallback = the hub).
    pub via_township: bool,
}

/// The whole demo county on loopback.
#[derive(Debug, Clone)]
pub struct County {
    pub dir: PathBuf,
    pub hub_dir: PathBuf,
    pub hub_http: SocketAddr,
    pub hub_quic: SocketAddr,
    /// The township's QUIC endpoint for its villages.
    pub relay: SocketAddr,
    pub township: Node,
    pub villages: Vec<Node>,
}

/// Whether this start created the county or found it in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    Created,
    Reused,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `base + n`, refused when it runs past the last port rather than wrapping onto a privileged one.
fn port(base: u16, n: u16, option: &str) -> anyhow::Result<SocketAddr> {
    match base.checked_add(n) {
        Some(p) => Ok(loopback(p)),
        None => {
            bail!("{option} {base}: the demo needs ports {base} to {base}+{n}; choose a lower one")
        }
    }
}

impl County {
    /// Hub on HTTP `http_port` and QUIC `quic_port`; township on the next HTTP port and relaying on the
    /// next QUIC port; the villages on the HTTP ports after that.
    pub fn new(dir: PathBuf, http_port: u16, quic_port: u16) -> anyhow::Result<County> {
        let township = Node {
            code: TOWNSHIP_CODE,
            name: TOWNSHIP_NAME,
            tier: Tier::Township,
            dir: dir.join(TOWNSHIP_CODE),
            http: port(http_port, 1, "--http-port")?,
            login: CLERK,
            person: "陈静",
            via_township: false,
        };
        let villages = VILLAGES
            .iter()
            .zip(2u16..)
            .map(|(&(code, name, agent, person, via_township), n)| {
                Ok(Node {
                    code,
                    name,
                    tier: Tier::Village,
                    dir: dir.join(code),
                    http: port(http_port, n, "--http-port")?,
                    login: Login {
                        user: agent,
                        password: AGENT_PASSWORD,
                    },
                    person,
                    via_township,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(County {
            hub_dir: dir.join("hub"),
            hub_http: loopback(http_port),
            hub_quic: loopback(quic_port),
            relay: port(quic_port, 1, "--quic-port")?,
            township,
            villages,
            dir,
        })
    }

    /// The township first, then the villages.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        std::iter::once(&self.township).chain(&self.villages)
    }

    /// Creates the county, or re-points a directory that already holds one at this start's ports.
    pub fn prepare(&self) -> anyhow::Result<Prepared> {
        if self.hub_dir.join("db").exists() {
            self.reattach()?;
            return Ok(Prepared::Reused);
        }
        let occupied = std::fs::read_dir(&self.dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if occupied {
            bail!(
                "{} is not empty and holds no demo county; choose another --dir",
                self.dir.display()
            );
        }
        self.create()
            .with_context(|| format!("creating the demo county in {}", self.dir.display()))?;
        Ok(Prepared::Created)
    }

    /// Where a node syncs: (upstream address, its TLS name if not the hub's, fallback address).
    fn upstream_of(&self, node: &Node) -> (String, Option<String>, Option<String>) {
        if node.via_township {
            (
                self.relay.to_string(),
                Some(township_server_name(self.township.code)),
                Some(self.hub_quic.to_string()),
            )
        } else {
            (self.hub_quic.to_string(), None, None)
        }
    }

    fn create(&self) -> anyhow::Result<()> {
        fn account<'a>(
            name: &'a str,
            password: &'a str,
            role: &'a str,
            dept: Option<&'a str>,
            display_name: Option<&'a str>,
        ) -> county::NewUser<'a> {
            county::NewUser {
                name,
                password,
                role,
                dept,
                area: None,
                display_name,
            }
        }
        let now = beijing_now();
        let hub = county::init(&self.hub_dir, COUNTY_CODE, COUNTY_NAME, ADMIN.password, now)?;
        // The demo's window is a general one (综合窗口): it receives every area's items.
        county::add_user(
            &hub,
            &account(WINDOW.user, WINDOW.password, "window", None, Some("刘芳")),
            now,
        )?;
        for (name, dept) in dept_accounts(&hub.catalog()?) {
            county::add_user(
                &hub,
                &account(&name, DEPT_PASSWORD, "dept", Some(&dept), None),
                now,
            )?;
        }
        county::add_user(
            &hub,
            &account(
                SUPERVISOR.user,
                SUPERVISOR.password,
                "supervisor",
                None,
                Some("周明"),
            ),
            now,
        )?;
        let signer = certs::node_signer(&self.hub_dir)?;
        let bundles = self.dir.join("bundles");
        std::fs::create_dir_all(&bundles)
            .with_context(|| format!("creating {}", bundles.display()))?;
        for (i, node) in self.nodes().enumerate() {
            let (upstream, upstream_name, fallback) = self.upstream_of(node);
            let bundle = bundles.join(format!("{}.json", node.code));
            // As a real station does: the key is made in the node's own directory and only the
            // request travels to the county.
            let request = tongban_runtime::bundle::NodeTls::request(&node.dir, node.code)
                .with_context(|| format!("certificate request of {}", node.code))?;
            county::enroll(
                &hub,
                &signer,
                &EnrollRequest {
                    code: node.code,
                    name: node.name,
                    tier: node.tier,
                    parent: None,
                    upstream: &upstream,
                    upstream_name: upstream_name.as_deref(),
                    fallback: fallback.as_deref(),
                    csr: Some(&request),
                    replace: false,
                },
                Some(&bundle),
                now,
            )
            .with_context(|| format!("enrolling {}", node.code))?;
            let store = node_setup::init_from_bundle(
                &node.dir,
                &bundle,
                node.login.user,
                Some(node.person),
                node.login.password,
                now,
            )
            .with_context(|| format!("initialising {}", node.code))?;
            if node.tier == Tier::Village {
                // Seeded per village, so every demo county holds the same applicants.
                tongban_node::demo_data::fill(
                    &store,
                    CASES_PER_VILLAGE,
                    2026 + i as u64,
                    now,
                    node.login.user,
                    0,
                )
                .with_context(|| format!("filling {}", node.code))?;
            }
        }
        hub.flush()?;
        Ok(())
    }

    /// A node's upstream is part of its stored identity, written from the bundle at enrolment; a
    /// reused directory started on other ports would otherwise sync with addresses nobody listens on.
    fn reattach(&self) -> anyhow::Result<()> {
        for node in self.nodes() {
            let incomplete = || {
                format!(
                    "{} holds an incomplete or older demo ({} missing); delete it and start again",
                    self.dir.display(),
                    node.dir.display()
                )
            };
            if !node.dir.join("db").exists() {
                bail!(incomplete());
            }
            let store = open_store(&node.dir)?;
            let mut identity = store.identity()?;
            if identity.code != node.code {
                bail!(incomplete());
            }
            let (upstream, upstream_name, fallback) = self.upstream_of(node);
            let upstream_name = upstream_name.or(identity.upstream_name.clone());
            let wanted = (Some(upstream), upstream_name, fallback);
            let stored = (
                identity.upstream.clone(),
                identity.upstream_name.clone(),
                identity.fallback.clone(),
            );
            if stored != wanted {
                (identity.upstream, identity.upstream_name, identity.fallback) = wanted;
                store.set_identity(&identity)?;
                store.flush()?;
            }
        }
        Ok(())
    }
}

/// Opens a node's store, naming the directory when it cannot.
pub fn open_store(dir: &Path) -> anyhow::Result<Store> {
    Store::open(dir).with_context(|| format!("opening the store in {}", dir.display()))
}

/// One back-office account per department of the catalogue, `dept1`, `dept2`, … in the catalogue's
/// (sorted) department order: (account, department).
pub fn dept_accounts(catalog: &Catalog) -> Vec<(String, String)> {
    catalog
        .departments()
        .into_iter()
        .enumerate()
        .map(|(i, dept)| (format!("dept{}", i + 1), dept.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_two_bases_and_never_wrap() {
        let county = County::new(PathBuf::from("/tmp/x"), 8080, 4433).unwrap();
        let http: Vec<u16> = county.nodes().map(|n| n.http.port()).collect();
        assert_eq!(http, [8081, 8082, 8083, 8084]);
        assert_eq!(county.relay.port(), 4434);
        assert!(County::new(PathBuf::from("/tmp/x"), 65533, 4433).is_err());
        assert!(County::new(PathBuf::from("/tmp/x"), 8080, 65535).is_err());
    }

    #[test]
    fn villages_behind_the_township_sync_through_its_relay_with_the_hub_as_fallback() {
        let county = County::new(PathBuf::from("/tmp/x"), 8080, 4433).unwrap();
        let (up, name, fallback) = county.upstream_of(&county.villages[0]);
        assert_eq!(up, "127.0.0.1:4434");
        assert_eq!(name.as_deref(), Some("420222100.node.tongban"));
        assert_eq!(fallback.as_deref(), Some("127.0.0.1:4433"));
        let (up, name, fallback) = county.upstream_of(&county.villages[2]);
        assert_eq!(
            (up.as_str(), name, fallback),
            ("127.0.0.1:4433", None, None)
        );
        assert_eq!(county.upstream_of(&county.township).0, "127.0.0.1:4433");
    }
}
