//! Concurrent offline actions at the village, the township and the county, as real `tongban-hub`
//! and `tongban-node` processes over QUIC: a village under its township, which relays for it.
//! Nodes sync only when told to (`POST /api/sync/now`), so "offline" is exactly "has not synced":
//! each tier acts on the case as it last saw it, then the links come back.
//!
//! - the five concurrent pairs of docs/WORKFLOW.md that used to diverge for good: after the links
//!   return every tier shows the same events and state, nothing is refused, and the next sessions
//!   move nothing;
//! - 村级当场办结 offline at the village, taken by the county when the link returns; a forged
//!   completion of a 承诺 item refused once, shown at the village, and never sent again.

use std::path::Path;

use automerge::{ActorId, AutoCommit};
use serde_json::{json, Value};
use tongban_runtime::store::Store;
use tongban_shared::action::ActionKind;
use tongban_shared::case;
use tongban_shared::event::{self, Author, Event, Inputs};
use tongban_shared::Tier;
use tongban_tests::*;

const TOWNSHIP: &str = "420222100";
const VILLAGE: &str = "420222100201";
const WINDOW: (&str, &str) = ("window1", TEST_PASSWORD);
const AGENT: (&str, &str) = (TEST_USER, TEST_PASSWORD);
/// 城乡居民基本养老保险参保登记: 即办, and 村级可直接办结 in the builtin catalogue.
const ON_SITE_ITEM: usize = 0;
/// 城乡居民基本养老保险待遇申领: 承诺, the department decides.
const PROMISED_ITEM: usize = 2;

struct County {
    hub: HubProcess,
    township: NodeProcess,
    village: NodeProcess,
    _dirs: Vec<tempfile::TempDir>,
}

/// A hub with a window clerk, a township enrolled under it and a village enrolled under the
/// township; nodes sync only on demand.
fn county() -> County {
    let hub_dir = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    HubProcess::add_user(hub_dir.path(), WINDOW.0, "window", None).unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let on_demand = ["--sync-interval", "3600"];

    let t_dir = tempfile::tempdir().unwrap();
    let bundle = t_dir.path().join("b.json");
    hub.enroll(TOWNSHIP, "township", &hub.quic, None, &bundle)
        .unwrap();
    init_node_from_bundle(&t_dir.path().join("node"), &bundle).unwrap();
    let township = NodeProcess::serve_with(
        &t_dir.path().join("node"),
        &["--quic", "127.0.0.1:0", on_demand[0], on_demand[1]],
    )
    .unwrap();
    let relay = township.relay_addr().expect("relay address printed");

    let v_dir = tempfile::tempdir().unwrap();
    let bundle = v_dir.path().join("b.json");
    let name = format!("{TOWNSHIP}.node.tongban");
    hub.enroll(VILLAGE, "village", &relay, Some(&name), &bundle)
        .unwrap();
    init_node_from_bundle(&v_dir.path().join("node"), &bundle).unwrap();
    let village = NodeProcess::serve_with(&v_dir.path().join("node"), &on_demand).unwrap();
    County {
        hub,
        township,
        village,
        _dirs: vec![hub_dir, t_dir, v_dir],
    }
}

fn act(base: &str, user: (&str, &str), case_no: &str, body: Value) -> (u16, Value) {
    act_as(base, user, case_no, &body)
}

fn ok(base: &str, user: (&str, &str), no: &str, body: Value) {
    let (status, answer) = act(base, user, no, body.clone());
    assert_eq!(status, 200, "{body} on {no} at {base}: {answer}");
}

fn case_at(base: &str, user: (&str, &str), no: &str) -> Value {
    let (status, case) = get_json_as(
        &client(),
        &format!("{base}/api/cases/{no}"),
        &basic_auth(user.0, user.1),
    )
    .unwrap();
    assert_eq!(status, 200, "{no} at {base}: {case}");
    case
}

/// One session of `node` with its upstream; its report.
fn sync(node: &NodeProcess) -> Value {
    let (status, report) =
        post_json(&client(), &node.url("/api/sync/now"), &Value::Null, None).unwrap();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["refused"], json!([]), "a case was refused: {report}");
    report
}

/// The links come back: the village's session with the township, the township's with the county,
/// and the village's again for what the county sent down.
fn links_return(c: &County) {
    sync(&c.village);
    sync(&c.township);
    sync(&c.village);
}

/// A further round moves nothing: every tier already holds everything.
fn assert_quiet(c: &County) {
    for (node, name) in [(&c.village, "village"), (&c.township, "township")] {
        let report = sync(node);
        assert_eq!(
            (
                report["cases_sent"].as_u64(),
                report["cases_received"].as_u64()
            ),
            (Some(0), Some(0)),
            "the {name}'s next session still moved cases: {report}"
        );
    }
}

fn file(village: &NodeProcess, item: usize, applicant: &str) -> String {
    let body = case_body(item, applicant);
    let (status, created) = post_json(&client(), &village.url("/api/cases"), &body, None).unwrap();
    assert_eq!(status, 201, "{created}");
    created["case_no"].as_str().unwrap().to_string()
}

/// What every tier must agree on: the state and each history entry's id, kind and effect.
fn view(case: &Value) -> (Value, Vec<(Value, Value, Value, Value)>) {
    let history = case["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].clone(),
                h["action"].clone(),
                h["effective"].clone(),
                h["refused"].clone(),
            )
        })
        .collect();
    (case["state"].clone(), history)
}

/// The case as the county sees it, after checking the township and the village see the same.
fn agreed(c: &County, no: &str) -> Value {
    let county = case_at(&c.hub.process.base, WINDOW, no);
    for (base, tier) in [(&c.township.base, "township"), (&c.village.base, "village")] {
        let theirs = case_at(base, AGENT, no);
        assert_eq!(view(&theirs), view(&county), "{no}: the {tier} differs");
    }
    county
}

fn entry<'a>(case: &'a Value, action: &str, node: &str) -> &'a Value {
    case["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["action"] == action && h["node"] == node)
        .unwrap_or_else(|| panic!("no {action} by {node}: {case}"))
}

#[test]
fn the_five_concurrent_pairs_converge_across_real_processes() {
    let c = county();
    let hub = c.hub.process.base.clone();
    let village = c.village.base.clone();
    let escalated = file(&c.village, PROMISED_ITEM, "并发甲");
    let corrected = file(&c.village, PROMISED_ITEM, "并发乙");
    let delivered = file(&c.village, ON_SITE_ITEM, "并发丙");
    let relayed = file(&c.village, PROMISED_ITEM, "并发丁");
    let amended = file(&c.village, PROMISED_ITEM, "并发戊");
    sync(&c.village);
    sync(&c.township);

    // Before the cut: one case waits for a correction, one has its result ready at the window.
    ok(&hub, WINDOW, &corrected, json!({"action": "receive"}));
    ok(
        &hub,
        WINDOW,
        &corrected,
        json!({"action": "request_correction", "missing": ["id_card"]}),
    );
    ok(&hub, WINDOW, &delivered, json!({"action": "receive"}));
    ok(
        &hub,
        WINDOW,
        &delivered,
        json!({"action": "complete_at_window", "result_name": "参保登记凭证"}),
    );
    sync(&c.township);
    sync(&c.village);
    assert_eq!(case_at(&village, AGENT, &corrected)["state"], "CORRECTION");
    assert_eq!(
        case_at(&village, AGENT, &delivered)["state"],
        "RESULT_READY"
    );

    // The links are down; each tier acts on what it last saw.
    ok(&hub, WINDOW, &escalated, json!({"action": "receive"}));
    ok(
        &village,
        AGENT,
        &escalated,
        json!({"action": "escalate", "reason": "等了很久没有消息"}),
    );
    ok(
        &hub,
        WINDOW,
        &corrected,
        json!({"action": "reject", "reason": "不符合申领条件"}),
    );
    ok(
        &village,
        AGENT,
        &corrected,
        json!({"action": "submit_correction", "materials": ["id_card"]}),
    );
    ok(&hub, WINDOW, &delivered, json!({"action": "deliver"}));
    ok(&village, AGENT, &delivered, json!({"action": "deliver"}));
    ok(&hub, WINDOW, &relayed, json!({"action": "receive"}));
    ok(
        &c.township.base,
        AGENT,
        &relayed,
        json!({"action": "township_receive", "note": "材料已到乡镇"}),
    );
    ok(&hub, WINDOW, &amended, json!({"action": "receive"}));
    ok(
        &village,
        AGENT,
        &amended,
        json!({"action": "amend", "phone": "13900001111"}),
    );

    links_return(&c);
    assert_quiet(&c);

    let case = agreed(&c, &escalated);
    assert_eq!(case["state"], "RECEIVED");
    assert_eq!(entry(&case, "escalate", VILLAGE)["effective"], true);
    assert_eq!(case["workflow"]["escalations"], 1);

    let case = agreed(&c, &corrected);
    assert_eq!(case["state"], "REJECTED");
    let late = entry(&case, "submit_correction", VILLAGE);
    assert_eq!(late["effective"], false, "{case}");
    assert_eq!(late["refused"], false, "an entitled correction was refused");

    let case = agreed(&c, &delivered);
    assert_eq!(case["state"], "DELIVERED");
    assert_eq!(entry(&case, "deliver", "420222")["effective"], true);
    assert_eq!(entry(&case, "deliver", VILLAGE)["effective"], false);

    let case = agreed(&c, &relayed);
    assert_eq!(case["state"], "RECEIVED");
    assert_eq!(
        entry(&case, "township_receive", TOWNSHIP)["effective"],
        true
    );
    assert_eq!(entry(&case, "receive", "420222")["effective"], true);

    let case = agreed(&c, &amended);
    assert_eq!(case["state"], "RECEIVED");
    assert_eq!(entry(&case, "amend", VILLAGE)["effective"], false);
    assert_eq!(case["applicant"]["phone"], "13800271234");

    for no in [&escalated, &corrected, &delivered, &relayed, &amended] {
        let case = case_at(&hub, WINDOW, no);
        assert!(
            !case["history"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["action"] == "refuse"),
            "{no}: an honest action was refused: {case}"
        );
    }
}

/// Writes a 村级当场办结 into the stopped village's own store, as a modified node would: the
/// village's own actor, the agent's own name, an item that needs the department.
fn forge_completion(data: &Path, no: &str) -> String {
    let store = Store::open(data).unwrap();
    let mut doc = AutoCommit::load(&store.document(no).unwrap().unwrap()).unwrap();
    doc.set_actor(ActorId::from(store.actor().unwrap().as_slice()));
    let events: Vec<Event> = event::read_events(&doc)
        .0
        .into_iter()
        .map(|s| s.event)
        .collect();
    let forged = Event {
        id: "f0f0f0f0f0f0f0f0".into(),
        kind: ActionKind::CompleteOnSite,
        by: Author {
            account: TEST_USER.into(),
            name: "代办员".into(),
            role: "agent".into(),
            tier: Tier::Village,
            node: VILLAGE.into(),
        },
        at: chrono::Utc::now()
            .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, false),
        saw: "SUBMITTED".into(),
        after: event::frontier(&events),
        input: Inputs {
            result_name: "待遇核定通知".into(),
            ..Default::default()
        },
    };
    event::write_event(&mut doc, &forged).unwrap();
    doc.commit();
    let summary = case::read_case(&doc).unwrap().summary();
    store
        .merge_case(no, |_| Ok::<_, ()>((doc.save(), summary)))
        .unwrap()
        .unwrap();
    store.flush().unwrap();
    forged.id
}

/// A page as the agent sees it after logging in.
fn page_as_agent(node: &NodeProcess, path: &str) -> String {
    let agent = client();
    let resp = agent
        .post(node.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!("user={}&password={}&next=%2F", AGENT.0, AGENT.1).as_bytes())
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let mut page = agent
        .get(node.url(path))
        .header("Cookie", &cookie)
        .call()
        .unwrap();
    page.body_mut().read_to_string().unwrap()
}

#[test]
fn a_completion_on_site_made_offline_is_taken_and_a_forged_one_is_refused_once() {
    let mut c = county();
    let hub = c.hub.process.base.clone();
    let on_site = file(&c.village, ON_SITE_ITEM, "当场甲");
    let promised = file(&c.village, PROMISED_ITEM, "当场乙");
    sync(&c.village);
    sync(&c.township);

    // Offline at the village: the agent completes the 村级可直接办结 item in one step; the page
    // refuses it for the 承诺 item.
    ok(
        &c.village.base,
        AGENT,
        &on_site,
        json!({"action": "complete_on_site"}),
    );
    let (status, _) = act(
        &c.village.base,
        AGENT,
        &promised,
        json!({"action": "complete_on_site"}),
    );
    assert_eq!(status, 403);

    // A modified node writes it anyway.
    let data = c._dirs[2].path().join("node");
    drop(c.village.kill());
    let forged = forge_completion(&data, &promised);
    c.village = NodeProcess::serve_with(&data, &["--sync-interval", "3600"]).unwrap();

    links_return(&c);
    assert_quiet(&c);

    let case = agreed(&c, &on_site);
    assert_eq!(case["state"], "DELIVERED");
    assert_eq!(entry(&case, "complete_on_site", VILLAGE)["effective"], true);

    let case = agreed(&c, &promised);
    assert_eq!(
        case["state"], "SUBMITTED",
        "the forged completion took effect"
    );
    let h = case["history"].as_array().unwrap();
    let forged_entry = h.iter().find(|e| e["id"] == forged.as_str()).unwrap();
    assert_eq!(forged_entry["effective"], false);
    assert_eq!(forged_entry["refused"], true);
    let refusals = h.iter().filter(|e| e["action"] == "refuse").count();
    assert_eq!(refusals, 1, "refused more than once: {case}");

    // The village's page says so, and nothing more goes up about it.
    let page = page_as_agent(&c.village, &format!("/cases/{promised}"));
    assert!(page.contains("上级未采纳"), "{page}");
    assert_quiet(&c);
    let again = case_at(&hub, WINDOW, &promised);
    assert_eq!(
        again["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "refuse")
            .count(),
        1
    );
}
