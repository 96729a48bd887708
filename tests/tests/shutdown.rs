//! Stopping as a service manager does (SIGTERM) while every task of each tier is running — a
//! township's relay and uplink, a village's uplink, the hub's sync endpoint and outbox sender: each
//! process exits 0 soon, having flushed, and starts again on the same data with nothing lost.
#![cfg(unix)]

use std::time::Duration;

use serde_json::Value;
use tongban_tests::*;

const TOWNSHIP: &str = "420222100";
const VILLAGE: &str = "420222100201";
const WITHIN: Duration = Duration::from_secs(30);

#[test]
fn sigterm_stops_every_tier_cleanly_and_nothing_is_lost() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();

    let town_dir = tempfile::tempdir().unwrap();
    let bundle = town_dir.path().join("b.json");
    hub.enroll(TOWNSHIP, "township", &hub.quic, None, &bundle)
        .unwrap();
    let town_data = town_dir.path().join("node");
    init_node_from_bundle(&town_data, &bundle).unwrap();
    let township = NodeProcess::serve_with(
        &town_data,
        &["--quic", "127.0.0.1:0", "--sync-interval", "1"],
    )
    .unwrap();
    let relay = township.relay_addr().expect("relay address printed");

    let village_dir = tempfile::tempdir().unwrap();
    let vbundle = village_dir.path().join("b.json");
    let name = format!("{TOWNSHIP}.node.tongban");
    hub.enroll(VILLAGE, "village", &relay, Some(&name), &vbundle)
        .unwrap();
    let village_data = village_dir.path().join("node");
    init_node_from_bundle(&village_data, &vbundle).unwrap();
    let village = NodeProcess::serve_with(&village_data, &["--sync-interval", "1"]).unwrap();

    let no = file_case(&village, "停机测试");
    let reached = |base: &str| {
        let mut resp = client()
            .get(format!("{base}/api/cases/{no}"))
            .header("Authorization", &test_auth())
            .call();
        matches!(&mut resp, Ok(r) if r.status().as_u16() == 200)
    };
    assert!(
        eventually(WITHIN, || reached(&township.base)),
        "the case did not reach the township"
    );

    // While the relay, both uplinks, the hub's endpoint and its sender run.
    for (who, process) in [
        ("village", village),
        ("township", township),
        ("hub", hub.process),
    ] {
        let (status, log) = process
            .terminate(WITHIN)
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert!(status.success(), "{who} exited with {status}: {log}");
        assert!(!log.contains("panicked"), "{who}: {log}");
    }

    // Everything acknowledged is there after a restart (the stores were flushed and open cleanly).
    let township = NodeProcess::serve_with(&town_data, &["--quic", "127.0.0.1:0"]).unwrap();
    assert!(reached(&township.base), "the township lost the case");
    let village = NodeProcess::serve(&village_data).unwrap();
    assert!(reached(&village.base), "the village lost the case");
    let (_, health) = get_json(&client(), &village.url("/api/health")).unwrap();
    assert_eq!(health["storage"], Value::from("ok"));
}
