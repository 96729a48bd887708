//! Issue 13: one long-lived connection per node, and the upstream's push. Every node here polls
//! only every ten minutes, so nothing but a notice can bring the county's action down within the
//! wait below; and a village behind its township is enrolled with the plain command (no TLS name).

use std::time::Duration;

use serde_json::{json, Value};
use tongban_tests::*;

const DIRECT: &str = "420222100201";
const TOWNSHIP: &str = "420222103";
const BEHIND: &str = "420222103201";
/// Far below the ten-minute poll; the notices themselves take well under a second on loopback.
const WITHIN: Duration = Duration::from_secs(15);
const POLL: [&str; 2] = ["--sync-interval", "600"];

fn state_at(node: &NodeProcess, no: &str) -> Value {
    let (_, case) = get_json(&client(), &node.url(&format!("/api/cases/{no}"))).unwrap();
    case["state"].clone()
}

fn receive_at_county(hub: &HubProcess, no: &str) {
    let (status, body) = post_json_as(
        &hub.url(&format!("/api/cases/{no}/actions")),
        &basic_auth("admin", HUB_ADMIN_PASSWORD),
        &json!({"action": "receive", "note": "县级窗口已接收"}),
    );
    assert_eq!(status, 200, "{body}");
}

fn at_hub(hub: &HubProcess, no: &str) -> bool {
    get_json_as(
        &client(),
        &hub.url(&format!("/api/cases/{no}")),
        &basic_auth("admin", HUB_ADMIN_PASSWORD),
    )
    .map(|(s, _)| s == 200)
    .unwrap_or(false)
}

fn connections(node: &NodeProcess) -> u64 {
    let (_, sync) = get_json(&client(), &node.url("/api/sync")).unwrap();
    sync["totals"]["connections"].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn county_actions_reach_connected_villages_at_once_directly_and_through_the_township() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let direct_dir = hub.enrolled_village(DIRECT).unwrap();
    let direct = NodeProcess::serve_with(&direct_dir.path().join("node"), &POLL).unwrap();

    let township_dir = tempfile::tempdir().unwrap();
    let bundle = township_dir.path().join("b.json");
    hub.enroll(TOWNSHIP, "township", &hub.quic, None, &bundle)
        .unwrap();
    init_node_from_bundle(&township_dir.path().join("node"), &bundle).unwrap();
    let township = NodeProcess::serve_with(
        &township_dir.path().join("node"),
        &["--quic", "127.0.0.1:0", POLL[0], POLL[1]],
    )
    .unwrap();
    let relay = township.relay_addr().expect("relay address printed");

    // The plain command: the township's address, no TLS name, no fallback.
    let behind_dir = tempfile::tempdir().unwrap();
    let bundle = behind_dir.path().join("b.json");
    hub.enroll(BEHIND, "village", &relay, None, &bundle)
        .unwrap();
    let said: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(
        said["upstream_name"],
        format!("{TOWNSHIP}.node.tongban"),
        "{said}"
    );
    assert_eq!(
        said["fallback"],
        hub.quic.as_str(),
        "the hub is the fallback: {said}"
    );
    init_node_from_bundle(&behind_dir.path().join("node"), &bundle).unwrap();
    let behind = NodeProcess::serve_with(&behind_dir.path().join("node"), &POLL).unwrap();

    // Cases go up after the write, the township's at once after its village's session.
    let direct_no = file_case(&direct, "直连村的件");
    let behind_no = file_case(&behind, "镇下村的件");
    assert!(
        eventually(WITHIN, || at_hub(&hub, &direct_no)),
        "direct case not up"
    );
    assert!(
        eventually(WITHIN, || at_hub(&hub, &behind_no)),
        "relayed case not up"
    );

    receive_at_county(&hub, &direct_no);
    receive_at_county(&hub, &behind_no);
    assert!(
        eventually(WITHIN, || state_at(&direct, &direct_no) == "RECEIVED"),
        "the county's receive was not pushed to the village"
    );
    assert!(
        eventually(WITHIN, || state_at(&behind, &behind_no) == "RECEIVED"),
        "the county's receive was not pushed through the township"
    );
    // Every session of each node went over the one connection it opened at start.
    for node in [&direct, &behind, &township] {
        assert_eq!(node.sync_now().0, 200);
        assert_eq!(connections(node), 1);
    }
}

/// A revoked station was told it was just offline (暂时连不上上级平台…网络恢复后自动上传) and kept
/// taking cases that would never reach the county. Now its badge and every page say it was
/// stopped by the county and what to do, and `GET /api/sync` says `revoked`.
#[test]
fn a_revoked_station_is_told_so_on_every_page() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let dir = hub.enrolled_village(DIRECT).unwrap();
    let node = NodeProcess::serve_with(&dir.path().join("node"), &POLL).unwrap();
    assert_eq!(node.sync_now().0, 200);
    let (_, sync) = get_json(&client(), &node.url("/api/sync")).unwrap();
    assert_eq!(sync["state"], "synced", "{sync}");
    assert_eq!(sync["connection"], "up", "{sync}");

    let (status, body) = post_json_as(
        &hub.url(&format!("/api/nodes/{DIRECT}/revoke")),
        &basic_auth("admin", HUB_ADMIN_PASSWORD),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(node.sync_now().0, 503);
    let (_, sync) = get_json(&client(), &node.url("/api/sync")).unwrap();
    assert_eq!(sync["state"], "revoked", "{sync}");
    let (_, badge) = get_json(&client(), &node.url("/api/badge")).unwrap();
    assert_eq!(badge["badge"]["text"], "已被县级停用", "{badge}");
    let mut resp = client()
        .get(node.url("/cases/new"))
        .header("Authorization", &test_auth())
        .call()
        .unwrap();
    let page = resp.body_mut().read_to_string().unwrap();
    assert!(page.contains("已被县级停用"), "the header says so");
    assert!(
        page.contains("本站已被县级平台停用") && page.contains("联系县政务服务中心"),
        "the intake page says why and what to do"
    );
}

/// Keep-alives come only every 20 s, so a killed hub used to be noticed at the idle timeout (50 s)
/// while the badge said 在线 · 已同步. While someone is looking (here: the badge refresh), the
/// node probes after a short silence and gives a silent connection up: 离线 within 5 s of the kill.
/// A live hub answers the probes, so looking for longer than the give-up time keeps the one
/// connection.
#[test]
fn a_killed_hub_is_noticed_within_five_seconds_by_a_station_someone_is_looking_at() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let dir = hub.enrolled_village(DIRECT).unwrap();
    let node = NodeProcess::serve_with(&dir.path().join("node"), &POLL).unwrap();
    assert_eq!(node.sync_now().0, 200);
    // What an open page asks every 5 s, then what the test checks.
    let sync = || {
        let (status, _) = get_json(&client(), &node.url("/api/badge")).unwrap();
        assert_eq!(status, 200);
        get_json(&client(), &node.url("/api/sync")).unwrap().1
    };

    // Looking for 6 s (past the 3.5 s after which a silent connection is given up): the hub
    // echoes the probes, so the link stays up on its first connection.
    let looking = std::time::Instant::now();
    while looking.elapsed() < Duration::from_secs(6) {
        let s = sync();
        assert_eq!(s["connection"], "up", "{s}");
        assert_eq!(s["state"], "synced", "{s}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(connections(&node), 1);

    hub.process.kill();
    let killed = std::time::Instant::now();
    let noticed = eventually(Duration::from_secs(5), || {
        let s = sync();
        s["state"] == "offline" && s["connection"] == "down"
    });
    let after = killed.elapsed();
    let s = sync();
    assert!(noticed, "still {s} {after:?} after the kill");
    assert!(s["offline_since"].is_string(), "{s}");
    let (_, badge) = get_json(&client(), &node.url("/api/badge")).unwrap();
    assert!(
        badge["badge"]["text"]
            .as_str()
            .unwrap_or("")
            .starts_with("离线"),
        "{badge}"
    );
}
