//! Hub and village nodes as real processes syncing over QUIC with mutual TLS on loopback.

use std::time::Duration;

use serde_json::Value;
use tongban_tests::*;

const V1: &str = "420222100201";
const V2: &str = "420222100202";
/// Background sync must deliver within the 30 s the issue allows; nodes here sync every 2 s.
const WITHIN: Duration = Duration::from_secs(30);

fn hub_get(hub: &HubProcess, path: &str) -> (u16, Value) {
    let mut resp = client()
        .get(hub.url(path))
        .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
        .call()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn hub_post(hub: &HubProcess, user: (&str, &str), path: &str, body: &Value) -> (u16, Value) {
    let mut resp = client()
        .post(hub.url(path))
        .header("Authorization", &basic_auth(user.0, user.1))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body).unwrap().as_slice())
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn sync_now(node: &NodeProcess) -> (u16, Value) {
    node.sync_now()
}

fn enrolled_village(hub: &HubProcess, code: &str) -> tempfile::TempDir {
    hub.enrolled_village(code).unwrap()
}

fn new_case(node: &NodeProcess, name: &str) -> String {
    file_case(node, name)
}

#[test]
fn cases_go_up_and_county_actions_come_down_without_any_button() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let v1 = enrolled_village(&hub, V1);
    let node = NodeProcess::serve_with(&v1.path().join("node"), &["--sync-interval", "2"]).unwrap();

    let (_, health) = get_json(&client(), &node.url("/api/health")).unwrap();
    assert_eq!(health["code"], V1);
    // `/api/sync*` belongs to a node's uplink; the county has no upstream and does not answer it.
    assert_eq!(hub_get(&hub, "/api/sync").0, 404);
    let no = new_case(&node, "上行甲");
    assert!(
        eventually(WITHIN, || hub_get(&hub, &format!("/api/cases/{no}")).0
            == 200),
        "case {no} did not reach the hub"
    );

    // The county receives it; the village sees RECEIVED with the county's history entry.
    let (status, body) = hub_post(
        &hub,
        ("admin", HUB_ADMIN_PASSWORD),
        &format!("/api/cases/{no}/actions"),
        &serde_json::json!({"action": "receive", "note": "县级窗口已接收"}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        eventually(WITHIN, || {
            let (_, case) = get_json(&client(), &node.url(&format!("/api/cases/{no}"))).unwrap();
            case["state"] == "RECEIVED"
        }),
        "the county's receive did not reach the village"
    );
    let (_, case) = get_json(&client(), &node.url(&format!("/api/cases/{no}"))).unwrap();
    let history = case["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["action"], "receive");
    assert_eq!(history[1]["node"], "420222");
    // Receiving twice is a state error.
    let (status, _) = hub_post(
        &hub,
        ("admin", HUB_ADMIN_PASSWORD),
        &format!("/api/cases/{no}/actions"),
        &serde_json::json!({"action": "receive"}),
    );
    assert_eq!(status, 409);

    // A new catalogue version published at the county reaches the village by the same sync.
    let builtin = tongban_shared::catalog::Catalog::builtin().unwrap().version;
    let v2 = tongban_shared::catalog::BUILTIN_CATALOG_JSON.replacen(
        &format!("\"version\": {builtin},"),
        &format!("\"version\": {},", builtin + 1),
        1,
    );
    let mut resp = client()
        .post(hub.url("/api/catalog/publish"))
        .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
        .header("Content-Type", "application/json")
        .send(v2.as_bytes())
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.body_mut().read_to_string().unwrap()
    );
    assert!(
        eventually(WITHIN, || {
            get_json(&client(), &node.url("/api/catalog")).unwrap().1["version"] == builtin + 1
        }),
        "catalogue version {} did not reach the village",
        builtin + 1
    );
    // Publishing the same version again is refused.
    let resp = client()
        .post(hub.url("/api/catalog/publish"))
        .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
        .send(v2.as_bytes())
        .unwrap();
    assert_eq!(resp.status(), 422);

    let (_, nodes) = hub_get(&hub, "/api/nodes");
    let v = &nodes["nodes"][0];
    assert_eq!(v["code"], V1);
    assert_eq!(v["cases"], 1);
    assert!(!v["last_seen"].is_null());
    let (_, status) = get_json(&client(), &node.url("/api/sync")).unwrap();
    assert_eq!(status["connected"], true);
}

#[test]
fn cases_made_while_the_hub_is_down_arrive_after_it_returns() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let quic = hub.quic.clone();
    let v1 = enrolled_village(&hub, V1);
    let node = NodeProcess::serve_with(&v1.path().join("node"), &["--sync-interval", "2"]).unwrap();
    drop(hub.process.kill());

    let no = new_case(&node, "断网时收件");
    let (status, body) = sync_now(&node);
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("连不上"));
    let (_, st) = get_json(&client(), &node.url("/api/sync")).unwrap();
    assert_eq!(st["connected"], false);
    assert!(st["pending_up"].as_u64().unwrap() >= 1);

    // Same address as before: the node's bundle names it.
    let hub = HubProcess::serve(hub_dir.path(), &quic).unwrap();
    assert!(
        eventually(WITHIN, || hub_get(&hub, &format!("/api/cases/{no}")).0
            == 200),
        "case made while the hub was down never arrived"
    );
}

#[test]
fn reconnect_costs_one_small_round_trip_and_one_case_costs_one_case() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let v1 = enrolled_village(&hub, V1);
    let data = v1.path().join("node");
    let (ok, _, err) = node_cmd(&[
        "fill",
        "--data",
        path_str(&data).unwrap(),
        "--count",
        "320",
        "--user",
        TEST_USER,
    ])
    .unwrap();
    assert!(ok, "{err}");
    // A long interval: only the explicit sessions below run.
    let node = NodeProcess::serve_with(&data, &["--sync-interval", "3600"]).unwrap();
    let (status, first) = sync_now(&node);
    assert_eq!(status, 200, "{first}");
    let (status, second) = sync_now(&node);
    assert_eq!(status, 200);
    eprintln!("second session: {second}");
    assert!(second["round_trips"].as_u64().unwrap() <= 2, "{second}");
    let bytes = second["bytes_sent"].as_u64().unwrap() + second["bytes_received"].as_u64().unwrap();
    assert!(bytes <= 2048, "{second}");
    assert_eq!(hub_get(&hub, "/api/cases?limit=1").1["total"], 320);

    new_case(&node, "新增一件");
    let (_, one) = sync_now(&node);
    eprintln!("one new case: {one}");
    assert_eq!(one["cases_sent"], 1, "{one}");
    let bytes = one["bytes_sent"].as_u64().unwrap() + one["bytes_received"].as_u64().unwrap();
    assert!(bytes <= 8 * 1024, "{one}");
}

#[test]
fn foreign_ca_and_revoked_nodes_are_refused_and_villages_see_only_their_own() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();

    // A node enrolled by another county's CA, pointed at this hub.
    let other_dir = tempfile::tempdir().unwrap();
    let other = HubProcess::serve(other_dir.path(), "127.0.0.1:0").unwrap();
    let rogue_dir = tempfile::tempdir().unwrap();
    let bundle = rogue_dir.path().join("bundle.json");
    other.enroll_village(V2, &bundle).unwrap();
    let mut b: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    b["upstream"] = hub.quic.clone().into();
    std::fs::remove_file(&bundle).unwrap();
    std::fs::write(&bundle, serde_json::to_vec(&b).unwrap()).unwrap();
    init_node_from_bundle(&rogue_dir.path().join("node"), &bundle).unwrap();
    let rogue =
        NodeProcess::serve_with(&rogue_dir.path().join("node"), &["--sync-interval", "3600"])
            .unwrap();
    new_case(&rogue, "冒充者");
    let (status, _) = sync_now(&rogue);
    assert_eq!(status, 503);
    assert_eq!(hub_get(&hub, "/api/cases").1["total"], 0);

    // Two honest villages.
    let v1 = enrolled_village(&hub, V1);
    let v2 = enrolled_village(&hub, V2);
    let n1 =
        NodeProcess::serve_with(&v1.path().join("node"), &["--sync-interval", "3600"]).unwrap();
    let n2 =
        NodeProcess::serve_with(&v2.path().join("node"), &["--sync-interval", "3600"]).unwrap();
    let c1 = new_case(&n1, "一村甲");
    let c2 = new_case(&n2, "二村乙");
    assert_eq!(sync_now(&n1).0, 200);
    assert_eq!(sync_now(&n2).0, 200);
    assert_eq!(sync_now(&n1).0, 200);
    assert_eq!(hub_get(&hub, "/api/cases").1["total"], 2);
    // Village 2 never receives village 1's case, and cannot read it.
    let (status, _) = get_json(&client(), &n2.url(&format!("/api/cases/{c1}"))).unwrap();
    assert_eq!(status, 404);
    let (_, list) = get_json(&client(), &n2.url("/api/cases")).unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["cases"][0]["case_no"], c2.as_str());

    // Revoke village 1: its next session is refused and its new case never reaches the hub.
    let (status, body) = hub_post(
        &hub,
        ("admin", HUB_ADMIN_PASSWORD),
        &format!("/api/nodes/{V1}/revoke"),
        &Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    let late = new_case(&n1, "吊销后");
    let (status, body) = sync_now(&n1);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    assert_eq!(hub_get(&hub, &format!("/api/cases/{late}")).0, 404);
    let (_, nodes) = hub_get(&hub, "/api/nodes");
    let rec = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["code"] == V1)
        .unwrap()
        .clone();
    assert_eq!(rec["revoked"], true);
}

/// A station that worked standalone joins the county and keeps every case it already had.
#[test]
fn a_standalone_node_enrols_and_keeps_its_cases() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let station = tempfile::tempdir().unwrap();
    let data = station.path().join("node");
    std::fs::create_dir_all(&data).unwrap();
    init_standalone_node(&data, V1, "独立运行的村站").unwrap();
    let before = {
        let node = NodeProcess::serve(&data).unwrap();
        let no = new_case(&node, "接入前的办件");
        assert_eq!(sync_now(&node).0, 409, "a standalone node cannot sync");
        no
    };

    // A bundle for another code is refused, and nothing changes.
    let wrong = station.path().join("wrong.json");
    hub.enroll_village(V2, &wrong).unwrap();
    let (ok, _, err) = node_cmd(&[
        "enroll",
        "--data",
        path_str(&data).unwrap(),
        "--bundle",
        path_str(&wrong).unwrap(),
    ])
    .unwrap();
    assert!(!ok);
    assert!(err.contains(V1), "{err}");

    // A bundle with a key cannot say who wrote the cases the node already holds: refused, with the
    // way that can (a request, which names the node's actor to the county); nothing changes.
    let stopped = tempfile::tempdir().unwrap();
    HubProcess::init(stopped.path()).unwrap();
    let keyed = station.path().join("keyed.json");
    let (ok, _, err) = hub_cmd(&[
        "enroll",
        "--data",
        path_str(stopped.path()).unwrap(),
        "--code",
        V1,
        "--name",
        "接入村",
        "--tier",
        "village",
        "--upstream",
        &hub.quic,
        "--out",
        path_str(&keyed).unwrap(),
    ])
    .unwrap();
    assert!(ok, "{err}");
    let (ok, _, err) = node_cmd(&[
        "enroll",
        "--data",
        path_str(&data).unwrap(),
        "--bundle",
        path_str(&keyed).unwrap(),
    ])
    .unwrap();
    assert!(!ok);
    assert!(
        err.contains("1 cases written before enrolment") && err.contains("tongban-node csr"),
        "{err}"
    );
    assert!(
        !data.join("tls").join("node.pem").exists(),
        "nothing installed"
    );

    // The key is made in the standalone node's own directory; only the request goes to the county,
    // naming the actor the node's cases were written with.
    let bundle = station.path().join("bundle.json");
    hub.enroll_node_in(
        &data,
        &bundle,
        serde_json::json!({"code": V1, "name": "接入村", "tier": "village", "upstream": hub.quic}),
    )
    .unwrap();
    let (ok, _, err) = node_cmd(&[
        "enroll",
        "--data",
        path_str(&data).unwrap(),
        "--bundle",
        path_str(&bundle).unwrap(),
    ])
    .unwrap();
    assert!(ok, "{err}");
    let answered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(
        answered["actors"].as_array().map(Vec::len),
        Some(1),
        "{answered}"
    );
    // The enrolled node syncs by itself at start; the case it had before goes up.
    let node = NodeProcess::serve_with(&data, &["--sync-interval", "3600"]).unwrap();
    assert!(
        eventually(WITHIN, || hub_get(&hub, &format!("/api/cases/{before}")).0
            == 200),
        "the case from before enrolment did not reach the hub"
    );
    let (status, report) = sync_now(&node);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["round_trips"], 1, "{report}");
    // Enrolling twice is refused rather than silently replacing the certificate.
    let (ok, _, _) = node_cmd(&[
        "enroll",
        "--data",
        path_str(&data).unwrap(),
        "--bundle",
        path_str(&bundle).unwrap(),
    ])
    .unwrap();
    assert!(!ok);
}
