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
    serve_township(dir, "127.0.0.1:0")
}

fn serve_township(dir: tempfile::TempDir, relay: &str) -> Township {
    let node = NodeProcess::serve_with(
        &dir.path().join("node"),
        &["--quic", relay, "--sync-interval", "2"],
    )
    .unwrap();
    let relay = node.relay_addr().expect("relay address printed");
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

    // The township clerk takes the file on its way to the county; a village account may not.
    let relay_receive = |base: &str| {
        let mut resp = client()
            .post(format!("{base}/api/cases/{no}/actions"))
            .header("Authorization", &test_auth())
            .header("Content-Type", "application/json")
            .send(r#"{"action":"township_receive","note":"材料已到乡镇"}"#.as_bytes())
            .unwrap();
        let status = resp.status().as_u16();
        let _ = resp.body_mut().read_to_string();
        status
    };
    assert_eq!(relay_receive(&village.base), 403);
    assert_eq!(relay_receive(&t1.node.base), 200);

    // The county comes back on the same address: the township relays the case up, with its entry.
    let hub = HubProcess::serve(hub_dir.path(), &quic).unwrap();
    assert!(
        eventually(WITHIN, || {
            get_as(&hub.process.base, admin, &format!("/api/cases/{no}")).1["history"]
                .as_array()
                .is_some_and(|h| h.len() == 2)
        }),
        "the township did not relay the case (and its receipt) to the county"
    );
    let case = get_as(&hub.process.base, admin, &format!("/api/cases/{no}")).1;
    assert_eq!(case["history"][1]["action"], "township_receive");
    assert_eq!(case["history"][1]["node"], TOWNSHIP_1);

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

/// A township with its real certificate forges: a case in a village of another township, and a
/// change to its own village's case made with the county's actor id. The county refuses both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_township_cannot_forge_for_villages_not_under_it() {
    use tongban_tests::rogue::Rogue;
    let hub_dir = tempfile::tempdir().unwrap();
    let hub =
        tokio::task::block_in_place(|| HubProcess::serve(hub_dir.path(), "127.0.0.1:0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("t.json");
    tokio::task::block_in_place(|| hub.enroll(TOWNSHIP_1, "township", &hub.quic, None, &bundle))
        .unwrap();
    let rogue = Rogue::new(&dir.path().join("rogue"), &bundle).unwrap();

    // A case numbered in a village of township 2, offered under township 1's scope and under its own.
    let (foreign_no, mut foreign) = rogue.case(FOREIGN_VILLAGE, 1, "冒名", rogue.actor);
    rogue.put(&foreign_no, &mut foreign);
    let report = rogue
        .sync_scopes(vec![TOWNSHIP_1.into(), FOREIGN_VILLAGE.into()])
        .await
        .unwrap();
    assert!(
        report.refused.iter().any(|r| r.subject == FOREIGN_VILLAGE),
        "{report:?}"
    );
    let admin = ("admin", HUB_ADMIN_PASSWORD);
    let base = hub.process.base.clone();
    let fno = foreign_no.clone();
    let (status, _) =
        tokio::task::block_in_place(|| get_as(&base, admin, &format!("/api/cases/{fno}")));
    assert_eq!(status, 404, "the forged case must not reach the county");

    // A case of its own village, written as if by the county's actor (bound to the hub at init).
    let hub_actor = {
        // The hub's own actor is not known to the township; any actor bound to another node will do:
        // enrol a village of township 2 and use the actor the county bound to it.
        let other = dir.path().join("v.json");
        tokio::task::block_in_place(|| {
            hub.enroll(FOREIGN_VILLAGE, "village", &hub.quic, None, &other)
        })
        .unwrap();
        let b = tongban_runtime::bundle::Bundle::load(&other).unwrap();
        let serial = tongban_runtime::tls::identity_of_pem(&b.node.cert_pem)
            .unwrap()
            .serial;
        tongban_runtime::tls::actor_for_serial(&serial)
    };
    let (own_no, mut own) = rogue.case(VILLAGE_1, 1, "借用他人身份", hub_actor);
    rogue.put(&own_no, &mut own);
    let report = rogue.sync().await.unwrap();
    assert!(
        report
            .refused
            .iter()
            .any(|r| r.subject == own_no && r.reason.contains("not bound")),
        "{report:?}"
    );
    let ono = own_no.clone();
    let (status, _) =
        tokio::task::block_in_place(|| get_as(&base, admin, &format!("/api/cases/{ono}")));
    assert_eq!(status, 404);

    // The honest part of the same session lands: a case of its own by its own actor. (A case in its
    // village's name with its own actor is a forgery too: a village's events carry the village's
    // actor, see event_log's a_township_writing_in_a_villages_name_is_refused_once.)
    let serial = tongban_runtime::tls::identity_of_pem(&rogue.bundle.node.cert_pem)
        .unwrap()
        .serial;
    let (honest_no, mut honest) = rogue.case(
        TOWNSHIP_1,
        2,
        "正常代办",
        tongban_runtime::tls::actor_for_serial(&serial),
    );
    rogue.put(&honest_no, &mut honest);
    rogue.sync().await.unwrap();
    let hno = honest_no.clone();
    let (status, _) =
        tokio::task::block_in_place(|| get_as(&base, admin, &format!("/api/cases/{hno}")));
    assert_eq!(status, 200);
}

/// With its township away longer than the fallback time, a village syncs with the county directly;
/// when the township returns it catches up, and nothing is doubled. The village is enrolled with the
/// plain command (the township's address only): the township's TLS name and the hub as fallback are
/// the enrolment's defaults (issue 13).
#[test]
fn a_village_falls_back_to_the_county_when_its_township_is_away() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let t1 = township(&hub, TOWNSHIP_1);
    let relay = t1.relay.clone();
    let vdir = tempfile::tempdir().unwrap();
    let bundle = vdir.path().join("b.json");
    hub.enroll(VILLAGE_1, "village", &relay, None, &bundle)
        .unwrap();
    let said: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(
        said["upstream_name"],
        format!("{TOWNSHIP_1}.node.tongban"),
        "{said}"
    );
    assert_eq!(said["fallback"], hub.quic.as_str(), "{said}");
    init_node_from_bundle(&vdir.path().join("node"), &bundle).unwrap();
    let village = NodeProcess::serve_with(
        &vdir.path().join("node"),
        &["--sync-interval", "1", "--fallback-after", "2"],
    )
    .unwrap();

    // The township goes away; the village keeps taking cases.
    let Township {
        node, _dir: tdir, ..
    } = t1;
    drop(node.kill());
    let (status, created) = post_json(
        &client(),
        &village.url("/api/cases"),
        &valid_case_body("乡镇停电"),
        None,
    )
    .unwrap();
    assert_eq!(status, 201);
    let no = created["case_no"].as_str().unwrap().to_string();
    let admin = ("admin", HUB_ADMIN_PASSWORD);
    // Each session first tries the dead township until its handshake gives up, and the fallback
    // comes only in a later session: the whole test takes about 21 s on an idle machine, and this
    // wait once ran past WITHIN in a full CI run. How long a dead upstream holds a session is issue
    // 13's; this test is about the fallback.
    assert!(
        eventually(3 * WITHIN, || get_as(
            &hub.process.base,
            admin,
            &format!("/api/cases/{no}")
        )
        .0 == 200),
        "the village did not fall back to the county"
    );

    // The township returns on its address and catches up from the county; still one case everywhere.
    let t1 = serve_township(tdir, &relay);
    assert!(
        eventually(WITHIN, || get_as(
            &t1.node.base,
            (TEST_USER, TEST_PASSWORD),
            &format!("/api/cases/{no}")
        )
        .0 == 200),
        "the township did not catch up"
    );
    assert_eq!(get_as(&hub.process.base, admin, "/api/cases").1["total"], 1);
    assert_eq!(
        get_as(&t1.node.base, (TEST_USER, TEST_PASSWORD), "/api/cases").1["total"],
        1
    );
    // And the village syncs through its township again.
    let (status, report) =
        post_json(&client(), &village.url("/api/sync/now"), &Value::Null, None).unwrap();
    assert_eq!(status, 200, "{report}");
}

/// Issue 12, finding 6: a township used to check neither revocation nor certificate serials, so a
/// stolen village PC the county revoked kept syncing through its township, and so did a replaced
/// PC's old certificate. The county now hands each township its villages' serials and revocations in
/// every session, and the township refuses as the county would.
#[test]
fn a_township_refuses_a_village_the_county_revoked_or_gave_a_new_certificate() {
    const VILLAGE_2: &str = "420222100202";
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let admin = basic_auth("admin", HUB_ADMIN_PASSWORD);
    let t1 = township(&hub, TOWNSHIP_1);
    let (stolen, _sd) = village_under(&hub, VILLAGE_1, &t1.relay, TOWNSHIP_1);
    let (replaced, _rd) = village_under(&hub, VILLAGE_2, &t1.relay, TOWNSHIP_1);
    for village in [&stolen, &replaced] {
        let (status, body) = village.sync_now();
        assert_eq!(status, 200, "syncs through its township before: {body}");
    }

    // The county revokes the stolen PC and gives village 2 a new PC (a new certificate).
    let mut resp = client()
        .post(hub.url(&format!("/api/nodes/{VILLAGE_1}/revoke")))
        .header("Authorization", &admin)
        .send(&[][..])
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.body_mut().read_to_string().unwrap()
    );
    let new_pc = tempfile::tempdir().unwrap();
    hub.enroll_with(
        &new_pc.path().join("b.json"),
        json!({
            "code": VILLAGE_2, "name": "新电脑", "tier": "village",
            "upstream": t1.relay, "upstream_name": format!("{TOWNSHIP_1}.node.tongban"),
            "replace": true,
        }),
    )
    .unwrap();
    // The township's next session with the county brings the list.
    let (status, body) = t1.node.sync_now();
    assert_eq!(status, 200, "{body}");

    file_case(&stolen, "被盗电脑");
    let (status, body) = stolen.sync_now();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    let (status, body) = replaced.sync_now();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not the one the county issued"),
        "{body}"
    );
    assert_eq!(
        get_as(&t1.node.base, (TEST_USER, TEST_PASSWORD), "/api/cases").1["total"],
        0,
        "nothing of the stolen PC reached the township"
    );
}
