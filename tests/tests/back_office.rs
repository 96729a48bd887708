//! The county works a proxy case from the village to an evaluated result, across real hub and node
//! processes. (What the hub refuses from a misbehaving node is in `hostile.rs`.)

use serde_json::{json, Value};
use tongban_tests::*;

const V1: &str = "420222100201";

fn act(base: &str, user: (&str, &str), case_no: &str, body: Value) -> (u16, Value) {
    act_as(base, user, case_no, &body)
}

fn case_at(base: &str, user: (&str, &str), case_no: &str) -> Value {
    let mut resp = client()
        .get(format!("{base}/api/cases/{case_no}"))
        .header("Authorization", &basic_auth(user.0, user.1))
        .call()
        .unwrap();
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
}

fn sync(node: &NodeProcess) {
    let (status, body) =
        post_json(&client(), &node.url("/api/sync/now"), &Value::Null, None).unwrap();
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_case_travels_from_intake_to_evaluation_and_both_tiers_agree() {
    let hub_dir = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let item = &catalog.items[0];
    HubProcess::add_user(hub_dir.path(), "window1", "window", None).unwrap();
    HubProcess::add_user(hub_dir.path(), "dept1", "dept", Some(&item.department)).unwrap();
    HubProcess::add_user(hub_dir.path(), "other", "dept", Some("不相干的部门")).unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let window = ("window1", TEST_PASSWORD);
    let dept = ("dept1", TEST_PASSWORD);
    let agent = (TEST_USER, TEST_PASSWORD);

    let (node, _v) = hub.village(V1, &["--sync-interval", "3600"]).unwrap();
    let no = file_case(&node, "全程甲");
    sync(&node);

    let hb = hub.process.base.clone();
    let nb = node.base.clone();
    let ok = |(status, body): (u16, Value)| {
        assert_eq!(status, 200, "{body}");
        body
    };
    // The agent cannot take the county's actions, even at its own node.
    assert_eq!(act(&nb, agent, &no, json!({"action": "accept"})).0, 403);
    ok(act(&hb, window, &no, json!({"action": "receive"})));
    let first = &item.materials[0].id;
    assert_eq!(
        act(&hb, window, &no, json!({"action": "reject"})).0,
        422,
        "reject needs a reason"
    );
    ok(act(
        &hb,
        window,
        &no,
        json!({"action": "request_correction", "missing": [first], "note": "复印件不清晰"}),
    ));
    sync(&node);
    assert_eq!(case_at(&nb, agent, &no)["state"], "CORRECTION");
    ok(act(
        &nb,
        agent,
        &no,
        json!({"action": "submit_correction", "materials": [first]}),
    ));
    sync(&node);
    assert_eq!(case_at(&hb, window, &no)["state"], "RECEIVED");
    let accepted = ok(act(&hb, window, &no, json!({"action": "accept"})));
    // The deadline: promised working days from the day after acceptance, by the 2026 calendar.
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let expected = tongban_shared::calendar::Calendar::builtin()
        .unwrap()
        .due_date(today, item.promised_days);
    if item.day_unit == tongban_shared::catalog::DayUnit::Working && item.promised_days > 0 {
        assert_eq!(
            accepted["deadline"],
            expected.format("%Y-%m-%d").to_string()
        );
    }
    assert_eq!(
        act(
            &hb,
            ("other", TEST_PASSWORD),
            &no,
            json!({"action": "approve"})
        )
        .0,
        403,
        "another department's user"
    );
    ok(act(
        &hb,
        dept,
        &no,
        json!({"action": "suspend", "reason": "现场核查"}),
    ));
    ok(act(&hb, dept, &no, json!({"action": "resume"})));
    ok(act(&hb, dept, &no, json!({"action": "approve"})));
    assert_eq!(
        act(&hb, dept, &no, json!({"action": "approve"})).0,
        409,
        "wrong state"
    );
    ok(act(
        &hb,
        dept,
        &no,
        json!({"action": "issue_result", "result_name": "审批结果", "result_no": "YX-2026-0001"}),
    ));
    sync(&node);
    assert_eq!(case_at(&nb, agent, &no)["state"], "RESULT_READY");
    ok(act(
        &nb,
        agent,
        &no,
        json!({"action": "deliver", "note": "已送到申请人家中"}),
    ));
    ok(act(
        &nb,
        agent,
        &no,
        json!({"action": "evaluate", "score": 5, "comment": "不用跑路"}),
    ));
    sync(&node);

    let at_hub = case_at(&hb, window, &no);
    let at_node = case_at(&nb, agent, &no);
    assert_eq!(at_hub["state"], "EVALUATED");
    assert_eq!(
        at_hub["history"], at_node["history"],
        "both tiers show the same history"
    );
    let actions: Vec<&str> = at_hub["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "intake",
            "receive",
            "request_correction",
            "submit_correction",
            "accept",
            "suspend",
            "resume",
            "approve",
            "issue_result",
            "deliver",
            "evaluate"
        ]
    );
    for h in at_hub["history"].as_array().unwrap() {
        assert!(!h["by"].as_str().unwrap().is_empty() && !h["at"].as_str().unwrap().is_empty());
    }
    assert_eq!(at_hub["history"][1]["node"], "420222");
    assert_eq!(at_hub["history"][3]["node"], V1);

    // The applicant was told about the correction, the acceptance and the result; the log sender
    // passed them on.
    let outbox = {
        let mut resp = client()
            .get(format!("{hb}/api/outbox?case_no={no}"))
            .header("Authorization", &basic_auth(window.0, window.1))
            .call()
            .unwrap();
        serde_json::from_str::<Value>(&resp.body_mut().read_to_string().unwrap()).unwrap()
    };
    let kinds: Vec<&str> = outbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["correction", "accepted", "result_ready"],
        "{outbox}"
    );
    assert_eq!(outbox["messages"][0]["phone"], "13800271234");
    assert!(eventually(std::time::Duration::from_secs(10), || {
        let mut resp = client()
            .get(format!("{hb}/api/outbox?case_no={no}"))
            .header("Authorization", &basic_auth(window.0, window.1))
            .call()
            .unwrap();
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["sender"] == "log")
    }));

    // The county's statistics count it: evaluated, decided on time, five stars, in its township.
    let mut resp = client()
        .get(format!("{hb}/api/stats"))
        .header("Authorization", &basic_auth(window.0, window.1))
        .call()
        .unwrap();
    let stats: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(stats["by_state"]["EVALUATED"], 1, "{stats}");
    assert_eq!(stats["on_time_rate"], 1.0);
    assert_eq!(stats["avg_evaluation"], 5.0);
    assert_eq!(stats["per_township"]["420222100"]["total"], 1);
    assert_eq!(
        stats["per_department"][item.department.as_str()]["decided"],
        1
    );
}

/// The window's queue shows a case waiting to be received with its hand-over clock; the dashboard
/// draws its charts.
#[test]
fn queues_and_dashboard_show_the_county() {
    let hub_dir = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    HubProcess::add_user(hub_dir.path(), "window1", "window", None).unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let (node, _v) = hub.village(V1, &["--sync-interval", "3600"]).unwrap();
    let no = file_case(&node, "排队甲");
    sync(&node);
    let page = |path: &str| {
        let mut resp = client()
            .get(hub.url(path))
            .header("Authorization", &basic_auth("window1", TEST_PASSWORD))
            .call()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    };
    let (status, queue) = page("/queue");
    assert_eq!(status, 200);
    let waiting = queue.split("id=\"to-accept\"").next().unwrap();
    assert!(
        waiting.contains(&no) && waiting.contains("收件后"),
        "{queue}"
    );
    // The county publishes its 2027 holiday table; the village takes it with its next sync.
    let y2027 = r#"{"year":2027,"holidays":[{"name":"元旦","from":"2027-01-01","to":"2027-01-03"}],"makeup_workdays":[]}"#;
    let resp = client()
        .post(hub.url("/api/calendar"))
        .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
        .send(y2027.as_bytes())
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bad = client()
        .post(hub.url("/api/calendar"))
        .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
        .send(&br#"{"year":2027,"holidays":[{"name":"x","from":"2027-01-03","to":"2027-01-01"}],"makeup_workdays":[]}"#[..])
        .unwrap();
    assert_eq!(
        bad.status(),
        422,
        "a table with a backwards range is refused"
    );
    sync(&node);
    // The node picks up what a session brought right after the session ends, on its own task: the
    // answer to `sync/now` can come first.
    assert!(
        eventually(std::time::Duration::from_secs(10), || {
            get_json(&client(), &node.url("/api/calendar")).unwrap().1["version"] == 1
        }),
        "the node did not take the county's calendar"
    );
    let (_, cal) = get_json(&client(), &node.url("/api/calendar")).unwrap();
    assert_eq!(cal["years"], json!([2026, 2027]));

    let (status, dash) = page("/dashboard");
    assert_eq!(status, 200);
    assert!(
        dash.matches("<svg").count() >= 4,
        "charts drawn on the server"
    );
    assert!(dash.contains("近30天每日收件"));
    // The village→county transit is its own figure: one case on its way, none arrived yet.
    assert!(dash.contains("在途 1 件"), "{dash}");
    let (status, _) = act(
        &hub.process.base,
        ("window1", TEST_PASSWORD),
        &no,
        json!({"action": "receive"}),
    );
    assert_eq!(status, 200);
    let (_, dash) = page("/dashboard");
    assert!(dash.contains("在途 0 件"), "{dash}");
    let transit = dash.split("村到县在途（平均）").nth(1).unwrap_or_default();
    assert!(transit.contains("分钟"), "{dash}");
}
