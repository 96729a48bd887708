//! Sync over a bad link: a village node whose upstream is the fault proxy (loss, duplication,
//! reordering, jitter, and a blackout while the agent keeps filing) gets every case to the hub exactly
//! once, and county decisions back down.

use std::time::Duration;

use serde_json::Value;
use tongban_tests::faultproxy::{FaultProxy, LinkProfile};
use tongban_tests::*;

const V1: &str = "420222100201";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_cross_a_lossy_reordering_link_with_a_blackout_exactly_once() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = tokio::task::block_in_place(|| {
        HubProcess::init(hub_dir.path()).unwrap();
        HubProcess::add_user(hub_dir.path(), "window1", "window", None).unwrap();
        HubProcess::serve(hub_dir.path(), "127.0.0.1:0")
    })
    .unwrap();
    let proxy = FaultProxy::start(
        hub.quic.parse().unwrap(),
        LinkProfile {
            bandwidth_bps: Some(2_000_000),
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            loss: 0.05,
            duplicate: 0.05,
            reorder: 0.1,
            seed: 6,
            ..LinkProfile::default()
        },
    )
    .await
    .unwrap();
    let village = tempfile::tempdir().unwrap();
    let bundle = village.path().join("bundle.json");
    let data = village.path().join("node");
    let node = tokio::task::block_in_place(|| {
        hub.enroll(V1, "village", &proxy.addr.to_string(), None, &bundle)
            .unwrap();
        init_node_from_bundle(&data, &bundle).unwrap();
        NodeProcess::serve_with(&data, &["--sync-interval", "1"])
    })
    .unwrap();

    let mut filed = Vec::new();
    for i in 0..20 {
        filed.push(tokio::task::block_in_place(|| {
            file_case(&node, &format!("弱网村民{i}"))
        }));
    }
    // The link goes down while the agent keeps working, then comes back.
    proxy.set_down(true);
    for i in 20..40 {
        filed.push(tokio::task::block_in_place(|| {
            file_case(&node, &format!("断网村民{i}"))
        }));
    }
    // Up again only once the node has tried to sync into the blackout.
    let tried = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(30), || {
            proxy.stats.up.counts().blacked_out > 0
        })
    });
    assert!(
        tried,
        "the node syncs after local writes, also while the link is down"
    );
    proxy.set_down(false);

    let admin = basic_auth("admin", HUB_ADMIN_PASSWORD);
    let all_there = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(120), || {
            get_json_as(&client(), &hub.url("/api/cases?limit=1"), &admin)
                .is_ok_and(|(_, page)| page["total"].as_u64() == Some(filed.len() as u64))
        })
    });
    let stats = proxy.stats.up.counts();
    assert!(
        all_there,
        "not all {} cases arrived: {stats:?}",
        filed.len()
    );
    let at_hub =
        tokio::task::block_in_place(|| all_cases_as(&client(), &hub.process, &admin)).unwrap();
    let mut numbers: Vec<&str> = at_hub
        .iter()
        .map(|c| c["case_no"].as_str().unwrap())
        .collect();
    numbers.sort();
    let mut expected: Vec<&str> = filed.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(numbers, expected, "each case exactly once");
    // The link really was bad.
    assert!(
        stats.lost > 0 && stats.duplicated > 0 && stats.reordered > 0,
        "{stats:?}"
    );

    // A county decision comes back down the same link.
    let no = filed[0].clone();
    let (status, body) = tokio::task::block_in_place(|| {
        let mut resp = client()
            .post(hub.url(&format!("/api/cases/{no}/actions")))
            .header("Authorization", &basic_auth("window1", TEST_PASSWORD))
            .header("Content-Type", "application/json")
            .send(br#"{"action":"receive"}"#.as_slice())
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    });
    assert_eq!(status, 200, "{body}");
    let came_down = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(60), || {
            get_json(&client(), &node.url(&format!("/api/cases/{no}")))
                .is_ok_and(|(_, c): (u16, Value)| c["state"] == "RECEIVED")
        })
    });
    assert!(
        came_down,
        "the county's receipt reaches the village over the bad link"
    );
}
