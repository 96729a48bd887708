//! Issue 14: the Windows node, under Wine. `scripts/windows` builds `tongban-node.exe`, points
//! `TONGBAN_NODE_BIN` at `deploy/windows/wine-node` (which runs that exe under Wine) and runs this
//! file's tests with `--ignored`; the hub is the Linux one. In the ordinary test run they are
//! ignored: there `TONGBAN_NODE_BIN` is the Linux node, which every other test covers.
//!
//! One test, in the order a village station lives it: enrolled while the county is reachable, then
//! intake while the link is down, a hard kill in the middle of intake, a restart, the link back, and
//! the county's decision coming down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tongban_tests::*;

const VILLAGE: &str = "420222100201";

fn admin() -> String {
    basic_auth("admin", HUB_ADMIN_PASSWORD)
}

fn case_numbers(node: &NodeProcess) -> Vec<String> {
    let (status, listed) = get_json(&client(), &node.url("/api/cases?limit=500")).unwrap();
    assert_eq!(status, 200, "{listed}");
    listed["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["case_no"].as_str().map(str::to_string))
        .collect()
}

#[test]
#[ignore = "run by scripts/windows with the Windows node under Wine"]
fn the_windows_node_files_cases_survives_a_hard_kill_syncs_and_gets_the_county_decision() {
    assert!(
        std::env::var_os("TONGBAN_WINDOWS_EXE").is_some(),
        "TONGBAN_NODE_BIN must run the Windows node (scripts/windows sets both)"
    );
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let quic = hub.quic.clone();
    // `csr` and `init --bundle` run as tongban-node.exe: the key is made on the "Windows PC".
    let station = hub.enrolled_village(VILLAGE).unwrap();
    let data = station.path().join("node");
    // The county goes away: intake goes on offline.
    hub.process.kill();

    let node = NodeProcess::serve_with(&data, &["--sync-interval", "600"]).unwrap();
    let (status, health) = get_json(&client(), &node.url("/api/health")).unwrap();
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["code"], VILLAGE, "{health}");
    let mut acknowledged: Vec<String> = (0..50)
        .map(|i| file_case(&node, &format!("村民{i}")))
        .collect();
    let no = &acknowledged[0].clone();
    let mut receipt = client()
        .get(node.url(&format!("/cases/{no}/receipt")))
        .header("Authorization", &test_auth())
        .call()
        .unwrap();
    assert_eq!(receipt.status().as_u16(), 200);
    let page = receipt.body_mut().read_to_string().unwrap();
    assert!(page.contains(no.as_str()), "the receipt names the case");

    // Intake goes on in another thread while the process is killed: every case acknowledged before
    // the kill must be there after the restart.
    let during = Arc::new(Mutex::new(Vec::new()));
    let filer = {
        let during = during.clone();
        let base = node.url("");
        std::thread::spawn(move || {
            let agent = client();
            for i in 0.. {
                let answer = post_json(
                    &agent,
                    &format!("{base}/api/cases"),
                    &valid_case_body(&format!("杀进程时的村民{i}")),
                    None,
                );
                match answer {
                    Ok((201, body)) => during
                        .lock()
                        .unwrap()
                        .push(body["case_no"].as_str().unwrap_or_default().to_string()),
                    _ => return,
                }
            }
        })
    };
    assert!(
        eventually(Duration::from_secs(60), || during.lock().unwrap().len()
            >= 3),
        "intake goes on"
    );
    node.kill();
    filer.join().unwrap();
    acknowledged.extend(during.lock().unwrap().iter().cloned());

    let node = NodeProcess::serve_with(&data, &["--sync-interval", "600"]).unwrap();
    let stored = case_numbers(&node);
    for no in &acknowledged {
        assert!(stored.contains(no), "{no} was acknowledged and is gone");
    }

    // The county is back at the same address; the node's next session brings everything up.
    let hub = HubProcess::serve(hub_dir.path(), &quic).unwrap();
    assert!(
        eventually(Duration::from_secs(120), || node.sync_now().0 == 200),
        "the node syncs with the hub again"
    );
    let at_hub = |no: &str| {
        get_json_as(&client(), &hub.url(&format!("/api/cases/{no}")), &admin())
            .map(|(s, _)| s == 200)
            .unwrap_or(false)
    };
    assert!(
        eventually(Duration::from_secs(120), || stored
            .iter()
            .all(|no| at_hub(no))),
        "every case reached the hub"
    );

    // The county's decision comes down to the village.
    let (status, body) = post_json_as(
        &hub.url(&format!("/api/cases/{no}/actions")),
        &admin(),
        &json!({"action": "receive", "note": "县级窗口已接收"}),
    );
    assert_eq!(status, 200, "{body}");
    let state = || -> Value {
        get_json(&client(), &node.url(&format!("/api/cases/{no}")))
            .map(|(_, c)| c["state"].clone())
            .unwrap_or_default()
    };
    assert!(
        eventually(Duration::from_secs(60), || state() == "RECEIVED"),
        "the county's receive reached the Windows node: {}",
        state()
    );
}
