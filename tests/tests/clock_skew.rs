//! A village PC whose clock is a day fast: the county measures the skew at every sync, shows it for
//! the node and flags the times the node wrote; deadlines still come from the county's clock, and the
//! node itself warns its agent.

use serde_json::{json, Value};
use tongban_tests::*;

const V1: &str = "420222100201";

fn as_user(method: &str, url: &str, user: (&str, &str), body: Option<Value>) -> (u16, String) {
    let agent = client();
    let auth = basic_auth(user.0, user.1);
    let mut resp = match body {
        Some(b) => agent
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(&b).unwrap().as_slice())
            .unwrap(),
        None if method == "GET" => agent
            .get(url)
            .header("Authorization", &auth)
            .call()
            .unwrap(),
        None => unreachable!(),
    };
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

#[test]
fn a_node_a_day_fast_gets_county_deadlines_and_its_times_are_flagged() {
    let hub_dir = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    HubProcess::add_user(hub_dir.path(), "window1", "window", None).unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let village = hub.enrolled_village(V1).unwrap();
    let node = NodeProcess::serve_with_env(
        &village.path().join("node"),
        &["--sync-interval", "3600"],
        &[("TONGBAN_CLOCK_OFFSET_SECS", "86400")],
    )
    .unwrap();
    let no = file_case(&node, "时钟快一天");
    let sync = || {
        let (status, report) =
            post_json(&client(), &node.url("/api/sync/now"), &Value::Null, None).unwrap();
        assert_eq!(status, 200, "{report}");
        report
    };
    let report = sync();
    // The node learns its own skew (its clock minus the county's, in seconds, within a few).
    let (_, status) = get_json(&client(), &node.url("/api/sync")).unwrap();
    let own = status["clock_skew_s"].as_i64().unwrap();
    assert!((86_390..=86_410).contains(&own), "{status} {report}");

    // The county sees it per node (recorded as the hub's side of the session ends).
    let admin = ("admin", HUB_ADMIN_PASSWORD);
    let hub_skew = || {
        let (_, nodes) = as_user("GET", &hub.url("/api/nodes"), admin, None);
        let nodes: Value = serde_json::from_str(&nodes).unwrap();
        nodes["nodes"][0]["clock_skew_s"].as_i64()
    };
    assert!(eventually(std::time::Duration::from_secs(10), || hub_skew(
    )
    .is_some()));
    let skew = hub_skew().unwrap();
    assert!((86_390..=86_410).contains(&skew), "{skew}");

    // The case says it was made "tomorrow"; the county accepts it today, by its own clock.
    let window = ("window1", TEST_PASSWORD);
    for action in ["receive", "accept"] {
        let (status, body) = as_user(
            "POST",
            &hub.url(&format!("/api/cases/{no}/actions")),
            window,
            Some(json!({ "action": action })),
        );
        assert_eq!(status, 200, "{action}: {body}");
    }
    let (_, case) = as_user("GET", &hub.url(&format!("/api/cases/{no}")), window, None);
    let case: Value = serde_json::from_str(&case).unwrap();
    let county_today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    assert_eq!(
        case["workflow"]["accepted_on"].as_str(),
        Some(county_today.to_string().as_str()),
        "{case}"
    );
    let days = case["item"]["promised_days"].as_u64().unwrap();
    let expected = if case["item"]["day_unit"] == "calendar" {
        county_today + chrono::Duration::days(days as i64)
    } else {
        tongban_shared::calendar::Calendar::builtin()
            .unwrap()
            .due_date(county_today, days as u32)
    };
    assert_eq!(
        case["deadline"].as_str(),
        Some(expected.to_string().as_str()),
        "the deadline counts from the county's day, not the node's: {case}"
    );
    // The node's own entry is dated by its fast clock: the county's case page says so.
    assert!(case["history"][0]["at"]
        .as_str()
        .unwrap()
        .starts_with(&(county_today + chrono::Duration::days(1)).to_string()));
    let (_, page) = as_user("GET", &hub.url(&format!("/cases/{no}")), admin, None);
    assert!(page.contains("id=\"clock-warning\""), "{page}");
    assert!(page.contains("快约 1 天"), "{page}");
    assert!(page.contains("时间仅供参考"), "{page}");

    // Back at the node: the same county deadline, and a warning to fix the PC's clock.
    sync();
    let (_, at_node) = get_json(&client(), &node.url(&format!("/api/cases/{no}"))).unwrap();
    assert_eq!(at_node["deadline"], case["deadline"], "{at_node}");
    let (_, page) = as_user(
        "GET",
        &node.url(&format!("/cases/{no}")),
        (TEST_USER, TEST_PASSWORD),
        None,
    );
    assert!(page.contains("本机时钟比县级服务器快约 1 天"), "{page}");
}
