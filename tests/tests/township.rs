//! Three tiers as real processes: a village syncs through its township, which relays for it to the
//! county; the township holds only its villages; strangers are turned away.

use std::time::Duration;

use serde_json::{json, Value};
use tongban_tests::*;

const TOWNSHIP_1: &str = "420222100";
const TOWNSHIP_2: &str = "420222101";
const VILLAGE_1: &str = "420222100201";
const FOREIGN_VILLAGE: &str = "420222101201";
const WITHIN: Duration = Duration::from_secs(30);

fn get_as(base: &str, user: (&str, &str), path: &str) -> (u16, Value) {
    let mut resp = client()
        .get(format!("{base}{path}"))
        .header("Authorization", &basic_auth(user.0, user.1))
        .call()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

struct Township {
    node: NodeProcess,
    relay: String,
    _dir: tempfile::TempDir,
}

fn township(hub: &HubProcess, code: &str) -> Township {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.json");
    hub.enroll(code, "township", &hub.quic, None, &bundle)
        .unwrap();
    init_node_from_bundle(&dir.path().join("node"), &bundle).unwrap();
    let node = NodeProcess::serve_with(
        &dir.path().join("node"),
        &["--quic", "127.0.0.1:0", "--sync-interval", "2"],
    )
    .unwrap();
    let relay = node
        .preamble
        .iter()
        .find_map(|l| l.strip_prefix("tongban-node relay quic "))
        .expect("relay address printed")
        .to_string();
    Township {
        node,
        relay,
        _dir: dir,
    }
}

fn village_under(
    hub: &HubProcess,
    code: &str,
    upstream: &str,
    township_code: &str,
) -> (NodeProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.json");
    let name = format!("{township_code}.node.tongban");
    hub.enroll(code, "village", upstream, Some(&name), &bundle)
        .unwrap();
    init_node_from_bundle(&dir.path().join("node"), &bundle).unwrap();
    let node =
        NodeProcess::serve_with(&dir.path().join("node"), &["--sync-interval", "2"]).unwrap();
    (node, dir)
}

#[test]
fn a_village_syncs_through_its_township_with_or_without_the_county() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let quic = hub.quic.clone();
    let t1 = township(&hub, TOWNSHIP_1);
    let t2 = township(&hub, TOWNSHIP_2);
    let (village, _vd) = village_under(&hub, VILLAGE_1, &t1.relay, TOWNSHIP_1);
    let agent = (TEST_USER, TEST_PASSWORD);
    let admin = ("admin", HUB_ADMIN_PASSWORD);

    // The county link is down: the village's case still reaches its township.
    drop(hub.process.kill());
    let (status, created) = post_json(
        &client(),
        &village.url("/api/cases"),
        &valid_case_body("经乡镇上报"),
        None,
    )
    .unwrap();
    assert_eq!(status, 201);
    let no = created["case_no"].as_str().unwrap().to_string();
    assert!(
        eventually(WITHIN, || get_as(
            &t1.node.base,
            agent,
            &format!("/api/cases/{no}")
        )
        .0 == 200),
        "the case did not reach the township"
    );

    // The county comes back on the same address: the township relays the case up.
    let hub = HubProcess::serve(hub_dir.path(), &quic).unwrap();
    assert!(
        eventually(WITHIN, || get_as(
            &hub.process.base,
            admin,
            &format!("/api/cases/{no}")
        )
        .0 == 200),
        "the township did not relay the case to the county"
    );

    // The county receives it; the decision travels down through the township to the village.
    let mut resp = client()
        .post(hub.url(&format!("/api/cases/{no}/actions")))
        .header("Authorization", &basic_auth(admin.0, admin.1))
        .header("Content-Type", "application/json")
        .send(
            serde_json::to_vec(&json!({"action": "receive"}))
                .unwrap()
                .as_slice(),
        )
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.body_mut().read_to_string().unwrap()
    );
    assert!(
        eventually(WITHIN, || {
            get_as(&village.base, agent, &format!("/api/cases/{no}")).1["state"] == "RECEIVED"
        }),
        "the county's receive did not reach the village through the township"
    );

    // Township 2 never holds township 1's cases.
    assert_eq!(
        get_as(&t2.node.base, agent, &format!("/api/cases/{no}")).0,
        404
    );
    assert_eq!(get_as(&t2.node.base, agent, "/api/cases").1["total"], 0);

    // A village of township 2 that points at township 1 is turned away.
    let (stranger, _sd) = village_under(&hub, FOREIGN_VILLAGE, &t1.relay, TOWNSHIP_1);
    post_json(
        &client(),
        &stranger.url("/api/cases"),
        &valid_case_body("走错门"),
        None,
    )
    .unwrap();
    let (status, body) = post_json(
        &client(),
        &stranger.url("/api/sync/now"),
        &Value::Null,
        None,
    )
    .unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a village of township"),
        "{body}"
    );
    assert_eq!(get_as(&t1.node.base, agent, "/api/cases").1["total"], 1);

    // The relayed village's actor was bound to it at enrolment: the county's node list counts no
    // refusal for the township.
    let (_, nodes) = get_as(&hub.process.base, admin, "/api/nodes");
    let t1_rec = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["code"] == TOWNSHIP_1)
        .unwrap()
        .clone();
    assert_eq!(t1_rec["refusals"], 0, "{t1_rec}");
    assert_eq!(
        t1_rec["cases"], 1,
        "a township's count includes its villages' cases"
    );
}
