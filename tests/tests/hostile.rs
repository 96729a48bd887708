//! Hostile peers with real certificates against a real hub process, over real QUIC. Each kind of
//! misbehaviour is refused with a reason the peer is told, logged, and counted against the node in
//! `GET /api/nodes`; honest nodes syncing at the same time are unaffected and the hub's memory stays
//! bounded.
//!
//! - broken frames: unknown version, oversized header, truncated frame, garbage, misplaced message;
//! - forged content: another village's case, a scope that is not the node's, an actor bound to
//!   another node, county-only fields, rewritten history;
//! - resource abuse: stalled sessions (slowloris), too many connections, session floods.

use std::time::Duration;

use serde_json::Value;
use tongban_shared::sync::frame::{FrameDecoder, Msg, PROTOCOL_VERSION};
use tongban_tests::rogue::Rogue;
use tongban_tests::*;

const V1: &str = "420222100201";
const V2: &str = "420222100202";
const HONEST: &str = "420222100203";

fn admin() -> String {
    basic_auth("admin", HUB_ADMIN_PASSWORD)
}

/// (status, body) of a hub API call as admin.
fn hub_get(hub: &HubProcess, path: &str) -> (u16, Value) {
    tokio::task::block_in_place(|| get_json_as(&client(), &hub.url(path), &admin())).unwrap()
}

/// The hub's record of node `code` (`GET /api/nodes`).
fn node_record(hub: &HubProcess, code: &str) -> Value {
    let (_, nodes) = hub_get(hub, "/api/nodes");
    nodes["nodes"]
        .as_array()
        .and_then(|list| list.iter().find(|n| n["code"] == code).cloned())
        .unwrap_or(Value::Null)
}

/// Sends `bytes` on a fresh stream and returns the server's answer.
async fn answer_to(rogue: &Rogue, bytes: &[u8]) -> Msg {
    let conn = rogue.connect().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let _ = send.finish();
    let reply = recv.read_to_end(1 << 20).await.unwrap();
    let mut dec = FrameDecoder::default();
    dec.push(&reply);
    let msg = dec
        .next_msg()
        .unwrap()
        .expect("the server answers before hanging up");
    conn.close(0u32.into(), b"");
    msg
}

fn reason(msg: Msg) -> String {
    match msg {
        Msg::Error { reason } => reason,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_frames_get_a_reason_and_do_not_disturb_honest_nodes() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub =
        tokio::task::block_in_place(|| HubProcess::serve(hub_dir.path(), "127.0.0.1:0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.json");
    tokio::task::block_in_place(|| hub.enroll_village(V1, &bundle)).unwrap();
    let rogue = Rogue::new(&dir.path().join("rogue"), &bundle).unwrap();

    // An unknown protocol version.
    let r = reason(answer_to(&rogue, &[9, 0, 0, 0, 1, 0]).await);
    assert!(r.contains("version 9"), "{r}");
    // A frame announcing 100 MB: refused from the header, before anything is buffered.
    let r = reason(answer_to(&rogue, &[PROTOCOL_VERSION, 0x06, 0x00, 0x00, 0x00]).await);
    assert!(r.contains("exceeds"), "{r}");
    // A well-framed payload that is not a message.
    let r = reason(answer_to(&rogue, &[PROTOCOL_VERSION, 0, 0, 0, 3, 0xff, 0xff, 0xff]).await);
    assert!(r.contains("malformed"), "{r}");
    // A frame cut short: the stream ends inside it.
    let frame = tongban_shared::sync::frame::encode(&Msg::CompareReply { differ: vec![] }).unwrap();
    let r = reason(answer_to(&rogue, &frame[..frame.len() - 1]).await);
    assert!(r.contains("inside a frame"), "{r}");
    // Garbage from the first byte.
    let r = reason(answer_to(&rogue, b"GET / HTTP/1.1\r\n\r\n").await);
    assert!(r.contains("version"), "{r}");
    // A response where a request belongs.
    let frame = tongban_shared::sync::frame::encode(&Msg::CompareReply { differ: vec![] }).unwrap();
    let r = reason(answer_to(&rogue, &frame).await);
    assert!(r.contains("not a request"), "{r}");

    // The same node, now honest, still syncs.
    let (no, mut doc) = rogue.case(V1, 1, "诚实", rogue.actor);
    rogue.put(&no, &mut doc);
    let report = rogue.sync().await.unwrap();
    assert_eq!(report.cases_sent, 1, "{report:?}");
    let status = tokio::task::block_in_place(|| {
        client()
            .get(hub.url(&format!("/api/cases/{no}")))
            .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
            .call()
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
}

/// A node with a real certificate that tampers with documents: a new case whose item does not match
/// the catalogue, and a rewrite of an event the hub already holds. Each case is refused whole and
/// counted, the hub's copy stays as it was, and the honest case sent in the same session lands.
/// (Events a node may not write are refused one by one instead: tests/tests/event_log.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_refuses_county_fields_and_history_rewrites_from_a_node() {
    use automerge::transaction::Transactable;
    use tongban_shared::case;

    let hub_dir = tempfile::tempdir().unwrap();
    let hub =
        tokio::task::block_in_place(|| HubProcess::serve(hub_dir.path(), "127.0.0.1:0")).unwrap();
    let v = tempfile::tempdir().unwrap();
    let bundle_path = v.path().join("b.json");
    tokio::task::block_in_place(|| hub.enroll_village(V1, &bundle_path)).unwrap();
    let rogue = Rogue::new(&v.path().join("rogue"), &bundle_path).unwrap();

    // A new case whose item promises 99 days where the catalogue says otherwise.
    let (forged_no, mut forged) = rogue.case(V1, 1, "伪造期限", rogue.actor);
    let mut c = case::read_case(&forged).unwrap();
    c.item.promised_days = 99;
    autosurgeon::reconcile(&mut forged, &c).unwrap();
    forged.commit();
    rogue.put(&forged_no, &mut forged);
    // An honest case in the same session.
    let (honest_no, mut honest) = rogue.case(V1, 2, "老实人", rogue.actor);
    rogue.put(&honest_no, &mut honest);
    let report = rogue.sync().await.unwrap();
    assert!(
        report
            .refused
            .iter()
            .any(|r| r.subject == forged_no && r.reason.contains("事项目录")),
        "{report:?}"
    );
    let get = |no: &str| {
        let mut resp = client()
            .get(hub.url(&format!("/api/cases/{no}")))
            .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
            .call()
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    let (status, _) = tokio::task::block_in_place(|| get(&forged_no));
    assert_eq!(status, 404, "the forged case must not land");
    let (status, landed) = tokio::task::block_in_place(|| get(&honest_no));
    assert_eq!(status, 200, "the honest case lands");

    // Rewrite the history of the case the hub already has.
    let mut doc =
        automerge::AutoCommit::load(&rogue.store.document(&honest_no).unwrap().unwrap()).unwrap();
    doc.set_actor(automerge::ActorId::from(rogue.actor.as_slice()));
    let (mut intake, _) = tongban_shared::event::read_events(&doc);
    let mut rewritten = intake.remove(0).event;
    rewritten.input.note = "从未收过材料".into();
    doc.put(
        automerge::ROOT,
        format!("e/{}", rewritten.id),
        serde_json::to_string(&rewritten).unwrap(),
    )
    .unwrap();
    doc.commit();
    rogue.put(&honest_no, &mut doc);
    let report = rogue.sync().await.unwrap();
    assert!(
        report
            .refused
            .iter()
            .any(|r| r.subject == honest_no && r.reason.contains("was changed")),
        "{report:?}"
    );
    let (_, after) = tokio::task::block_in_place(|| get(&honest_no));
    assert_eq!(
        after["history"], landed["history"],
        "the hub's history is untouched"
    );

    // The hub records a session's refusals when the session ends on its side, just after the
    // client has its answer: wait for the record rather than race it.
    let counted = tokio::task::block_in_place(|| {
        eventually(std::time::Duration::from_secs(10), || {
            let mut resp = client()
                .get(hub.url("/api/nodes"))
                .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
                .call()
                .unwrap();
            let nodes: Value =
                serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
            nodes["nodes"][0]["refusals"].as_u64().unwrap_or(0) >= 2
        })
    });
    assert!(counted, "refusals are counted per node");
}

/// Another village's case, a scope that is not the node's, and a change by an actor bound to another
/// node are refused case by case; the honest case of the same session lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_cases_scopes_and_actors_are_refused() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub =
        tokio::task::block_in_place(|| HubProcess::serve(hub_dir.path(), "127.0.0.1:0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (b1, b2) = (dir.path().join("b1.json"), dir.path().join("b2.json"));
    tokio::task::block_in_place(|| {
        hub.enroll_village(V1, &b1).unwrap();
        hub.enroll_village(V2, &b2).unwrap();
    });
    let rogue = Rogue::new(&dir.path().join("r1"), &b1).unwrap();
    let neighbour = Rogue::new(&dir.path().join("r2"), &b2).unwrap();

    // The neighbour syncs honestly with the actor the county bound to V2.
    let neighbour_actor = neighbour.actor;
    let (no, mut doc) = neighbour.case(V2, 1, "邻村", neighbour_actor);
    neighbour.put(&no, &mut doc);
    assert!(neighbour.sync().await.unwrap().refused.is_empty());

    // V1 writes a case numbered in V2, a case with V2's actor, and one honest case.
    let (stolen_no, mut stolen) = rogue.case(V2, 7, "冒名", rogue.actor);
    rogue.put(&stolen_no, &mut stolen);
    let (borrowed_no, mut borrowed) = rogue.case(V1, 1, "借用身份", neighbour_actor);
    rogue.put(&borrowed_no, &mut borrowed);
    let (honest_no, mut honest) = rogue.case(V1, 2, "本村", rogue.actor);
    rogue.put(&honest_no, &mut honest);
    let report = rogue.sync().await.unwrap();
    let reason_for = |no: &str| {
        report
            .refused
            .iter()
            .find(|r| r.subject == no)
            .map(|r| r.reason.clone())
            .unwrap_or_default()
    };
    assert!(
        reason_for(&borrowed_no).contains("not bound to node"),
        "{report:?}"
    );
    assert_eq!(hub_get(&hub, &format!("/api/cases/{borrowed_no}")).0, 404);
    assert_eq!(hub_get(&hub, &format!("/api/cases/{honest_no}")).0, 200);
    // The stolen case is never even offered to the hub as V1's: V1's scope does not hold it, and a
    // session claiming V2's scope is refused for that scope.
    assert_eq!(hub_get(&hub, &format!("/api/cases/{stolen_no}")).0, 404);
    let report = rogue
        .sync_scopes(vec![V1.to_string(), V2.to_string()])
        .await
        .unwrap();
    assert!(
        report
            .refused
            .iter()
            .any(|r| r.subject == V2 && r.reason.contains("not within node")),
        "{report:?}"
    );
    assert_eq!(hub_get(&hub, &format!("/api/cases/{stolen_no}")).0, 404);
    // The neighbour's own case is untouched and still its own.
    let (status, theirs) = hub_get(&hub, &format!("/api/cases/{no}"));
    assert_eq!(status, 200);
    assert_eq!(theirs["applicant"]["name"], "邻村");

    let counted = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(10), || {
            node_record(&hub, V1)["refusals"].as_u64().unwrap_or(0) >= 2
        })
    });
    assert!(counted, "refusals counted: {}", node_record(&hub, V1));
}

/// Opens a stream on `conn`, sends `bytes` and keeps the stream open without sending more; returns
/// the server's answer when it comes.
async fn stall(conn: &quinn::Connection, bytes: Vec<u8>) -> Result<Msg, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(&bytes).await.map_err(|e| e.to_string())?;
    let reply = recv.read_to_end(1 << 20).await.map_err(|e| match e {
        quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(
            quinn::ConnectionError::ApplicationClosed(c),
        )) => format!("closed: {}", String::from_utf8_lossy(&c.reason)),
        other => other.to_string(),
    })?;
    drop(send);
    let mut dec = FrameDecoder::default();
    dec.push(&reply);
    dec.next_msg()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no answer".to_string())
}

/// Slowloris, too many connections and a session flood from one enrolled node, while an honest
/// village files and syncs: the rogue is cut off with reasons and counted, the honest village's cases
/// all arrive, and the hub's memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_sessions_and_floods_are_cut_off_while_an_honest_node_syncs() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = tokio::task::block_in_place(|| {
        HubProcess::serve_with(
            hub_dir.path(),
            "127.0.0.1:0",
            &[
                "--sync-message-timeout",
                "2",
                "--sync-max-per-node",
                "4",
                "--sync-sessions-per-minute",
                "60",
            ],
        )
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b1 = dir.path().join("b1.json");
    tokio::task::block_in_place(|| hub.enroll_village(V1, &b1)).unwrap();
    let rogue = Rogue::new(&dir.path().join("r1"), &b1).unwrap();
    let (_honest_dir, honest) = tokio::task::block_in_place(|| {
        let dir = hub.enrolled_village(HONEST).unwrap();
        let node =
            NodeProcess::serve_with(&dir.path().join("node"), &["--sync-interval", "1"]).unwrap();
        (dir, node)
    });
    let rss_at_start = peak_rss_kib(hub.process.pid());

    // Slowloris: 4 connections (the most a node may hold), each with a session that sent part of a
    // frame and then nothing, one of them 3 MB into a 4 MB frame.
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(rogue.connect().await.unwrap());
    }
    let mut big = vec![PROTOCOL_VERSION, 0x00, 0x3D, 0x09, 0x00]; // announces 4 000 000 bytes
    big.extend(std::iter::repeat_n(0u8, 3_000_000));
    let stalls: Vec<_> = conns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c = c.clone();
            let bytes = if i == 0 {
                big.clone()
            } else {
                vec![PROTOCOL_VERSION, 0, 0]
            };
            tokio::spawn(async move { stall(&c, bytes).await })
        })
        .collect();
    // A fifth connection is refused with the reason.
    let fifth = rogue.connect().await.unwrap();
    let closed = fifth.closed().await;
    assert!(
        closed
            .to_string()
            .contains("already has 4 open connections"),
        "{closed}"
    );

    // Meanwhile the honest village files cases; they reach the hub.
    let filed: Vec<String> = tokio::task::block_in_place(|| {
        (0..5)
            .map(|i| file_case(&honest, &format!("老实村民{i}")))
            .collect()
    });
    let arrived = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(30), || {
            filed
                .iter()
                .all(|no| hub_get(&hub, &format!("/api/cases/{no}")).0 == 200)
        })
    });
    assert!(
        arrived,
        "the honest village's cases reach the hub during the attack"
    );

    // Each stalled session is cut off after the message timeout, with the reason.
    for s in stalls {
        let answer = s.await.unwrap();
        match answer {
            Ok(Msg::Error { reason }) => assert!(reason.contains("sent nothing"), "{reason}"),
            other => panic!("expected a timeout error, got {other:?}"),
        }
    }
    for c in &conns {
        c.close(0u32.into(), b"");
    }

    // Session flood on one connection: what is left of the burst allowance (30, less the stalled
    // sessions, plus what refilled since) is served, then the node is told to slow down and the
    // connection is closed.
    let conn = rogue.connect().await.unwrap();
    let garbage = vec![PROTOCOL_VERSION, 0, 0, 0, 3, 0xff, 0xff, 0xff];
    let mut flood_reason = None;
    let mut served = 0;
    for _ in 0..200 {
        match stall(&conn, garbage.clone()).await {
            Ok(Msg::Error { reason }) if reason.contains("too many sessions") => {
                flood_reason = Some(reason);
                break;
            }
            Ok(Msg::Error { reason }) => {
                assert!(reason.contains("malformed"), "{reason}");
                served += 1;
            }
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(e) => panic!("flood session failed without a reason: {e}"),
        }
    }
    let flood_reason = flood_reason.expect("the flood is cut off");
    assert!(served >= 20, "most of the burst is served: {served}");
    assert!(flood_reason.contains("420222100201"), "{flood_reason}");
    assert!(conn
        .closed()
        .await
        .to_string()
        .contains("too many sessions"));

    // Counted against the rogue, not the honest village.
    let counted = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(10), || {
            node_record(&hub, V1)["failed_sessions"]
                .as_u64()
                .unwrap_or(0)
                > 4 + 1 + served
        })
    });
    let record = node_record(&hub, V1);
    assert!(counted, "{record}");
    assert!(
        record["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("too many sessions")),
        "{record}"
    );

    // The honest village is unaffected: its sessions succeed, and a case filed now arrives.
    let late = tokio::task::block_in_place(|| file_case(&honest, "攻击之后"));
    let fine = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(30), || {
            hub_get(&hub, &format!("/api/cases/{late}")).0 == 200
        })
    });
    assert!(fine);
    let (_, honest_record) = (0, node_record(&hub, HONEST));
    assert_eq!(honest_record["failed_sessions"], 0, "{honest_record}");

    // Bounded memory: the attack (including 3 MB of a frame held until the timeout) costs the hub
    // far less than its limits allow.
    let grown_mb = (peak_rss_kib(hub.process.pid()).saturating_sub(rss_at_start)) / 1024;
    assert!(grown_mb < 128, "hub peak RSS grew by {grown_mb} MB");
}

/// Issue 12, finding 3: a case the county refuses is refused by itself, and people see it — the
/// village's case page says the county did not take it (with the reason), the county's node page
/// names it — while the village's other cases go up. Before, the refusal was only a log line.
/// A real village node serves a store in which a case was forged (its item's promised days changed
/// by hand), beside an honest one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_case_is_shown_on_the_village_case_page_and_the_county_node_page() {
    use tongban_shared::case;

    let hub_dir = tempfile::tempdir().unwrap();
    let hub =
        tokio::task::block_in_place(|| HubProcess::serve(hub_dir.path(), "127.0.0.1:0")).unwrap();
    let v = tempfile::tempdir().unwrap();
    let bundle_path = v.path().join("b.json");
    tokio::task::block_in_place(|| hub.enroll_village(V1, &bundle_path)).unwrap();
    // The directory `tongban-node csr` made the key in becomes the node's data directory.
    let data = key_dir_of(&bundle_path);
    let (forged_no, honest_no) = {
        let rogue = Rogue::new(&data, &bundle_path).unwrap();
        let (forged_no, mut forged) = rogue.case(V1, 1, "改了期限", rogue.actor);
        let mut c = case::read_case(&forged).unwrap();
        c.item.promised_days = 99;
        autosurgeon::reconcile(&mut forged, &c).unwrap();
        forged.commit();
        rogue.put(&forged_no, &mut forged);
        let (honest_no, mut honest) = rogue.case(V1, 2, "正常办件", rogue.actor);
        rogue.put(&honest_no, &mut honest);
        rogue
            .store
            .add_user(&tongban_runtime::store::UserRecord {
                name: TEST_USER.into(),
                display_name: "代办员".into(),
                role: "head".into(),
                password_hash: tongban_web::accounts::hash_password(TEST_PASSWORD).unwrap(),
                created_at: "2026-11-27T09:00:00+08:00".into(),
            })
            .unwrap();
        rogue.store.flush().unwrap();
        tongban_runtime::bundle::NodeTls::install(&data, &rogue.bundle).unwrap();
        (forged_no, honest_no)
    };
    let node = tokio::task::block_in_place(|| NodeProcess::serve(&data)).unwrap();
    let (status, body) = tokio::task::block_in_place(|| node.sync_now());
    assert_eq!(status, 200, "the session completes: {body}");

    let page = |base: &str, path: &str, auth: &str| {
        let mut resp = client()
            .get(format!("{base}{path}"))
            .header("Authorization", auth)
            .call()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    };
    tokio::task::block_in_place(|| {
        let (status, html) = page(&node.base, &format!("/cases/{forged_no}"), &test_auth());
        assert_eq!(status, 200);
        assert!(html.contains("id=\"sync-refusal\""), "{html}");
        assert!(html.contains("事项目录"), "the reason is shown: {html}");
        let (_, html) = page(&node.base, &format!("/cases/{honest_no}"), &test_auth());
        assert!(
            !html.contains("id=\"sync-refusal\""),
            "the honest case went up"
        );

        let admin = basic_auth("admin", HUB_ADMIN_PASSWORD);
        let (status, _) = page(
            &hub.process.base,
            &format!("/api/cases/{honest_no}"),
            &admin,
        );
        assert_eq!(status, 200, "the honest case reached the county");
        let (status, html) = page(&hub.process.base, "/nodes", &admin);
        assert_eq!(status, 200);
        assert!(
            html.contains("最近一次：") && html.contains(&forged_no),
            "the county's node page names the refused case: {html}"
        );
    });
}

/// Issue 13, the long-lived connection: a peer that never reads the notices (it takes one byte of
/// a stream and no more, so the hub's notice writer for it stalls for good), that floods probe
/// datagrams on the same connection, and a second connection that sends nothing at all. The
/// honest village's pushes still come at once (it polls every ten minutes), the rogue's own
/// next session still works, and the flood gets at most two echoes a second, none for a long one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_never_read_notices_flood_probes_or_sit_silent_disturb_nobody() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub =
        tokio::task::block_in_place(|| HubProcess::serve(hub_dir.path(), "127.0.0.1:0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b1 = dir.path().join("b1.json");
    tokio::task::block_in_place(|| hub.enroll_village(V1, &b1)).unwrap();
    let rogue = Rogue::new(&dir.path().join("r1"), &b1).unwrap();
    let (rogue_no, mut doc) = rogue.case(V1, 1, "不读通知", rogue.actor);
    rogue.put(&rogue_no, &mut doc);
    rogue.sync().await.unwrap();
    let (_honest_dir, honest) = tokio::task::block_in_place(|| {
        let dir = hub.enrolled_village(HONEST).unwrap();
        let node =
            NodeProcess::serve_with(&dir.path().join("node"), &["--sync-interval", "600"]).unwrap();
        (dir, node)
    });

    let mut deaf = quinn::TransportConfig::default();
    deaf.stream_receive_window(1u32.into());
    let deaf = rogue.connect_with(deaf).await.unwrap();
    let silent = rogue.connect().await.unwrap();

    let receive = |no: &str| {
        let (status, body) = post_json_as(
            &hub.url(&format!("/api/cases/{no}/actions")),
            &admin(),
            &serde_json::json!({"action": "receive", "note": "县级窗口已接收"}),
        );
        assert_eq!(status, 200, "{body}");
    };
    let state_at_honest = |no: &str| {
        get_json(&client(), &honest.url(&format!("/api/cases/{no}")))
            .map(|(_, c)| c["state"].clone())
            .unwrap_or_default()
    };
    // The county acts on the rogue's case twice over (one notice fills its one-byte window, the
    // next stalls its writer) and then on the honest village's cases, one after the other.
    tokio::task::block_in_place(|| {
        receive(&rogue_no);
        for n in 0..2 {
            let no = file_case(&honest, &format!("老实村民{n}"));
            assert!(
                eventually(Duration::from_secs(30), || hub_get(
                    &hub,
                    &format!("/api/cases/{no}")
                )
                .0 == 200),
                "the honest case {no} went up"
            );
            receive(&no);
            assert!(
                eventually(Duration::from_secs(15), || state_at_honest(&no)
                    == "RECEIVED"),
                "the county's receive of {no} was pushed to the honest village"
            );
        }
    });

    // A probe flood on the deaf connection: 200 one-byte datagrams over about 2 s, and long ones.
    let counting = deaf.clone();
    let echoes = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(Ok(d)) =
            tokio::time::timeout(Duration::from_secs(3), counting.read_datagram()).await
        {
            got.push(d.len());
        }
        got
    });
    let started = std::time::Instant::now();
    for i in 0..200u32 {
        let datagram = match i % 2 {
            0 => bytes::Bytes::from_static(b"?"),
            _ => bytes::Bytes::from(vec![0u8; 1000]),
        };
        let _ = deaf.send_datagram(datagram);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flood_secs = started.elapsed().as_secs_f64();
    let echoes = echoes.await.unwrap();
    assert!(!echoes.is_empty(), "probes are echoed");
    assert!(echoes.iter().all(|&len| len == 1), "{echoes:?}");
    let allowed = (flood_secs / 0.5).ceil() as usize + 1;
    assert!(
        echoes.len() <= allowed,
        "{} echoes in {flood_secs:.1} s (at most {allowed})",
        echoes.len()
    );

    // The rogue can still sync beside its stalled notices, and nobody closed the
    // connection that sends nothing.
    rogue.sync().await.unwrap();
    assert!(
        silent.close_reason().is_none(),
        "{:?}",
        silent.close_reason()
    );
    assert!(deaf.close_reason().is_none(), "{:?}", deaf.close_reason());
}
