//! The demo county (`cargo run --release -p tongban-demo`, the README's run command) as a real
//! process: every node answers with its role, the county holds every village's case, and what the
//! county does reaches the villages — through the township relay for the villages behind it.

use std::time::Duration;

use serde_json::{json, Value};
use tongban_tests::*;

/// Bounds every wait. Well under the demo's 120 s fallback to the hub, so a township relay that does
/// not carry the villages' sessions fails here instead of being hidden by the fallback.
const WITHIN: Duration = Duration::from_secs(60);
const ADMIN: (&str, &str) = ("admin", "admin-2026");
const WINDOW: (&str, &str) = ("window1", "window-2026");
const TOWNSHIP: &str = "420222100";
/// (code, agent, behind the township), as the demo prints them.
const VILLAGES: [(&str, &str, bool); 3] = [
    ("420222100201", "daiban1", true),
    ("420222100202", "daiban2", true),
    ("420222101201", "daiban3", false),
];
const AGENT_PASSWORD: &str = "daiban-2026";
const CASES_PER_VILLAGE: u64 = 10;

struct Demo {
    process: NodeProcess,
    http: u16,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Base URL of the server `n` ports above the hub's (0 hub, 1 township, 2.. villages).
    fn base(&self, n: u16) -> String {
        format!("http://127.0.0.1:{}", self.http + n)
    }
}

/// Whether `base` and the `n - 1` ports after it are free now (TCP, or UDP for QUIC).
fn free_run(base: u16, n: u16, udp: bool) -> bool {
    (0..n).all(|i| {
        let Some(port) = base.checked_add(i) else {
            return false;
        };
        if udp {
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        } else {
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        }
    })
}

fn some_port(udp: bool) -> u16 {
    let port = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
    };
    port.unwrap().port()
}

/// Starts the demo on five consecutive free HTTP ports and two consecutive free UDP ports, retrying
/// with other ports when one was taken in between; returns once it printed its last line.
fn start_demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let county = dir.path().join("county");
    for _ in 0..10 {
        let (http, quic) = (some_port(false), some_port(true));
        if !free_run(http, 5, false) || !free_run(quic, 2, true) {
            continue;
        }
        let args = [
            "--dir",
            path_str(&county).unwrap(),
            "--http-port",
            &http.to_string(),
            "--quic-port",
            &quic.to_string(),
        ];
        match spawn_server(&demo_bin(), &args, "  stop with ctrl-c") {
            Ok((process, _)) => {
                return Demo {
                    process,
                    http,
                    _dir: dir,
                }
            }
            // Only a port taken in between is worth another try; anything else is the failure.
            Err(e) if format!("{e:#}").contains("cannot listen") => {
                eprintln!("demo did not start on {http}/{quic}: {e:#}")
            }
            Err(e) => panic!("the demo did not start: {e:#}"),
        }
        // A failed attempt may have left a half-made county; the next one starts afresh.
        let _ = std::fs::remove_dir_all(&county);
    }
    panic!("the demo did not start (is target/<profile>/tongban-demo built? cargo build -p tongban-demo)");
}

fn get(base: &str, user: (&str, &str), path: &str) -> Value {
    let auth = basic_auth(user.0, user.1);
    match get_json_as(&client(), &format!("{base}{path}"), &auth) {
        Ok((200, body)) => body,
        _ => Value::Null,
    }
}

fn post(base: &str, user: (&str, &str), path: &str, body: &Value) -> (u16, Value) {
    let mut resp = client()
        .post(format!("{base}{path}"))
        .header("Authorization", &basic_auth(user.0, user.1))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body).unwrap().as_slice())
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// (state, history actions) of a case as a server holds it.
fn case_at(base: &str, user: (&str, &str), case_no: &str) -> (Value, Vec<Value>) {
    let case = get(base, user, &format!("/api/cases/{case_no}"));
    let actions = case["history"]
        .as_array()
        .map(|h| h.iter().map(|e| e["action"].clone()).collect())
        .unwrap_or_default();
    (case["state"].clone(), actions)
}

#[test]
fn demo_county_starts_with_a_township_relaying_county_actions_down_to_its_villages() {
    let demo = start_demo();
    let hub = demo.base(0);
    let agent = |i: usize| (VILLAGES[i].1, AGENT_PASSWORD);

    // Every URL and login is printed.
    let banner = demo.process.preamble.join("\n");
    for n in 0..5 {
        assert!(
            banner.contains(&format!("http://127.0.0.1:{}/", demo.http + n)),
            "{banner}"
        );
    }
    for login in [
        "admin",
        "window1",
        "dept1",
        "supervisor",
        "clerk1",
        "daiban1",
        "daiban3",
    ] {
        assert!(banner.contains(login), "{login} missing from:\n{banner}");
    }

    // Every node answers with its tier.
    let roles = ["hub", "township", "village", "village", "village"];
    for (n, role) in (0..).zip(roles) {
        let base = demo.base(n);
        assert!(
            eventually(WITHIN, || get(&base, ("", ""), "/api/health")["role"]
                == role),
            "{base} does not answer as {role}"
        );
    }

    // The county holds every village's case, and the township those of its two villages.
    let total = |base: &str, user| get(base, user, "/api/cases?limit=1")["total"].as_u64();
    let villages: Vec<u64> = (0..3)
        .map(|i| total(&demo.base(2 + i as u16), agent(i)).unwrap_or(0))
        .collect();
    assert_eq!(villages, [CASES_PER_VILLAGE; 3]);
    assert!(
        eventually(WITHIN, || total(&hub, ADMIN) == Some(villages.iter().sum())),
        "the county does not hold every village case: {:?} of {villages:?}",
        total(&hub, ADMIN)
    );
    assert_eq!(
        total(&demo.base(1), ("clerk1", "clerk-2026")),
        Some(villages[0] + villages[1])
    );

    // The county knows the villages behind the township by the township's reports of their sessions
    // with its relay; the direct village syncs with the county itself.
    let nodes = get(&hub, ADMIN, "/api/nodes")["nodes"].clone();
    for (code, _, behind) in VILLAGES {
        let node = nodes
            .as_array()
            .and_then(|n| n.iter().find(|n| n["code"] == code))
            .unwrap_or_else(|| panic!("{code} not enrolled: {nodes}"));
        let via = if behind { json!(TOWNSHIP) } else { Value::Null };
        assert_eq!(node["via"], via, "{node}");
    }
    // The node page draws the tree: the township's villages under it, the direct village on its own.
    let mut resp = client()
        .get(format!("{hub}/nodes"))
        .header("Authorization", &basic_auth(ADMIN.0, ADMIN.1))
        .call()
        .unwrap();
    let page = resp.body_mut().read_to_string().unwrap();
    for (code, _, behind) in VILLAGES {
        assert_eq!(
            page.contains(&format!("└ {code}")),
            behind,
            "{code} drawn in the wrong place of the tree"
        );
    }

    // A case the demo took through the county's workflow (accepted there, by the county's node) shows
    // the same state and history at its village behind the township.
    let at_hub = all_cases_as(
        &client(),
        &NodeProcess::attach(&hub),
        &basic_auth(ADMIN.0, ADMIN.1),
    )
    .unwrap();
    let advanced: Vec<String> = at_hub
        .iter()
        .filter_map(|c| c["case_no"].as_str())
        .filter(|no| no.contains(VILLAGES[0].0))
        .filter(|no| case_at(&hub, ADMIN, no).1.contains(&json!("accept")))
        .map(str::to_string)
        .collect();
    assert!(
        !advanced.is_empty(),
        "the demo advanced no case of {}",
        VILLAGES[0].0
    );
    let village = demo.base(2);
    for no in &advanced {
        let county = case_at(&hub, ADMIN, no);
        assert!(
            eventually(WITHIN, || case_at(&village, agent(0), no) == county),
            "{no}: the village has {:?}, the county {county:?}",
            case_at(&village, agent(0), no)
        );
    }

    // And it keeps flowing after the start: a new case goes up through the township, the county's
    // front desk receives it, and the receipt comes back down to the village.
    let (status, created) = post(
        &village,
        agent(0),
        "/api/cases",
        &valid_case_body("演示新件"),
    );
    assert_eq!(status, 201, "{created}");
    let no = created["case_no"].as_str().unwrap().to_string();
    assert!(
        eventually(WITHIN, || case_at(&hub, ADMIN, &no).0.is_string()),
        "the new case did not reach the county"
    );
    let (status, received) = post(
        &hub,
        WINDOW,
        &format!("/api/cases/{no}/actions"),
        &json!({"action": "receive"}),
    );
    assert_eq!(status, 200, "{received}");
    assert!(
        eventually(WITHIN, || case_at(&village, agent(0), &no).0
            == received["state"]),
        "the county's receipt did not come down to the village: {:?}",
        case_at(&village, agent(0), &no)
    );
    drop(demo);
}
