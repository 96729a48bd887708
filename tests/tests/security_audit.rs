//! Issue 12, 安全审计: the hub and each node keep an append-only, hash-chained audit log of who did
//! what (logins, account changes, enrolment, views of full personal data, …); the manager reads and
//! exports it at `GET /api/audit` and `/audit`, and `audit verify` names the first record someone
//! changed. Before this issue there were only `tracing` lines, which anyone with the log file could
//! edit unseen.

use serde_json::Value;
use tongban_tests::*;

fn post_as(base: &str, auth: &str, path: &str, body: Value) -> (u16, Value) {
    post_json_as(&format!("{base}{path}"), auth, &body)
}

/// `(who, what, subject)` of every record, in order.
fn events(records: &Value) -> Vec<(String, String, String)> {
    records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (field("who"), field("what"), field("subject"))
        })
        .collect()
}

fn has(events: &[(String, String, String)], who: &str, what: &str, subject: &str) -> bool {
    events
        .iter()
        .any(|(w, e, s)| w.as_str() == who && e.as_str() == what && s.as_str() == subject)
}

#[test]
fn the_hub_audits_who_did_what_and_verify_names_a_changed_record() {
    let dir = tempfile::tempdir().unwrap();
    HubProcess::init(dir.path()).unwrap();
    HubProcess::add_user(dir.path(), "window1", "window", None).unwrap();
    let hub = HubProcess::serve(dir.path(), "127.0.0.1:0").unwrap();
    let base = hub.process.base.as_str();
    let admin = basic_auth("admin", HUB_ADMIN_PASSWORD);
    let window = basic_auth("window1", TEST_PASSWORD);

    let wrong = basic_auth("window1", "not-the-password");
    assert_eq!(
        get_json_as(&client(), &hub.url("/api/cases"), &wrong)
            .unwrap()
            .0,
        401
    );
    let (status, created) = post_as(base, &window, "/api/cases", valid_case_body("审计甲"));
    assert_eq!(status, 201, "{created}");
    let no = created["case_no"].as_str().unwrap().to_string();
    let (status, _) =
        get_json_as(&client(), &hub.url(&format!("/api/cases/{no}")), &window).unwrap();
    assert_eq!(status, 200);
    let (status, body) = post_as(
        base,
        &admin,
        "/api/users",
        serde_json::json!({"name": "sup2", "password": "supervise-26", "role": "supervisor"}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        post_as(base, &admin, "/api/users/sup2/disable", Value::Null).0,
        200
    );

    // Only the admin reads it.
    let (status, _) = get_json_as(&client(), &hub.url("/api/audit"), &window).unwrap();
    assert_eq!(status, 403);
    let (status, log) = get_json_as(&client(), &hub.url("/api/audit"), &admin).unwrap();
    assert_eq!(status, 200, "{log}");
    let seen = events(&log);
    let cli = seen
        .first()
        .map(|(who, _, _)| who.clone())
        .unwrap_or_default();
    assert!(
        cli.starts_with("cli"),
        "init is recorded as the command line: {seen:?}"
    );
    assert!(
        has(&seen, &cli, "account.added", "admin (admin)"),
        "{seen:?}"
    );
    assert!(
        has(&seen, &cli, "account.added", "window1 (window)"),
        "{seen:?}"
    );
    assert!(has(&seen, "window1", "login.failed", ""), "{seen:?}");
    assert!(has(&seen, "window1", "login", ""), "{seen:?}");
    assert!(
        has(&seen, "window1", "personal_data.viewed", &no),
        "{seen:?}"
    );
    assert!(
        has(&seen, "admin", "account.added", "sup2 (supervisor)"),
        "{seen:?}"
    );
    assert!(has(&seen, "admin", "account.disabled", "sup2"), "{seen:?}");
    assert!(
        has(&seen, "admin", "audit.read", ".."),
        "reading it is recorded too: {seen:?}"
    );
    let records = log["records"].as_array().unwrap();
    let failed = records
        .iter()
        .find(|r| r["what"] == "login.failed")
        .unwrap();
    assert_eq!(failed["ip"], "127.0.0.1");
    for (i, pair) in records.windows(2).enumerate() {
        assert_eq!(pair[0]["seq"].as_u64(), Some(i as u64));
        assert_eq!(
            pair[1]["prev"], pair[0]["hash"],
            "each record names the one before"
        );
    }

    // By day, in Beijing time: nothing dated tomorrow; a date that is not one is refused.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d");
    let (status, later) = get_json_as(
        &client(),
        &hub.url(&format!("/api/audit?from={tomorrow}")),
        &admin,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(later["records"].as_array().unwrap().is_empty(), "{later}");
    let (status, _) =
        get_json_as(&client(), &hub.url("/api/audit?from=12/01/2026"), &admin).unwrap();
    assert_eq!(status, 422);

    // The page, in Chinese, for the admin.
    let mut page = client()
        .get(hub.url("/audit"))
        .header("Authorization", &admin)
        .call()
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.body_mut().read_to_string().unwrap();
    assert!(
        html.contains("登录失败") && html.contains("查看完整个人信息"),
        "{html}"
    );

    // Verified while the hub runs, then after someone edits a record while it is stopped.
    let data = path_str(dir.path()).unwrap();
    let (ok, out, err) = hub_cmd(&["audit", "verify", "--data", data]).unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("whole"), "{out}");
    drop(hub);
    let path = dir.path().join("audit.log");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("\"login.failed\""))
        .unwrap();
    let edited: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let l = if i == line {
                l.replace("window1", "someone")
            } else {
                l.to_string()
            };
            l + "\n"
        })
        .collect();
    std::fs::write(&path, edited).unwrap();
    let (ok, _, err) = hub_cmd(&["audit", "verify", "--data", data]).unwrap();
    assert!(!ok, "a changed record is found");
    assert!(
        err.contains(&format!("line {}", line + 1)) && err.contains("changed"),
        "names the first broken record: {err}"
    );
}

/// A village node keeps its own log: its head (the account made at `init`) reads it and adds the
/// station's other agents; an agent may do neither.
#[test]
fn a_node_keeps_its_own_audit_log_for_its_head() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let node = NodeProcess::serve(dir.path()).unwrap();
    let head = test_auth();
    let (status, body) = post_as(
        &node.base,
        &head,
        "/api/users",
        serde_json::json!({"name": "agent2", "password": "village-agent-26", "role": "agent"}),
    );
    assert_eq!(status, 201, "{body}");
    let agent = basic_auth("agent2", "village-agent-26");
    assert_eq!(
        get_json_as(&client(), &node.url("/api/audit"), &agent)
            .unwrap()
            .0,
        403
    );
    let no = file_case(&node, "村审计");
    let (status, _) =
        get_json_as(&client(), &node.url(&format!("/api/cases/{no}")), &agent).unwrap();
    assert_eq!(status, 200);

    let (status, log) = get_json_as(&client(), &node.url("/api/audit"), &head).unwrap();
    assert_eq!(status, 200, "{log}");
    let seen = events(&log);
    assert!(
        seen.iter().any(|(w, e, s)| w.starts_with("cli")
            && e == "account.added"
            && s == &format!("{TEST_USER} (head)")),
        "{seen:?}"
    );
    assert!(
        has(&seen, TEST_USER, "account.added", "agent2 (agent)"),
        "{seen:?}"
    );
    assert!(
        has(&seen, "agent2", "personal_data.viewed", &no),
        "{seen:?}"
    );

    let (ok, out, err) =
        node_cmd(&["audit", "verify", "--data", path_str(dir.path()).unwrap()]).unwrap();
    assert!(ok, "{out}{err}");
}
