//! Issue 12, finding 5 (no least privilege at the hub), against a running hub over HTTP: every
//! county role used to list and read every case in full, and dept and supervisor could file intake.

use serde_json::Value;
use tongban_tests::*;

fn as_account(hub: &HubProcess, user: &str, path: &str) -> (u16, Value) {
    get_json_as(&client(), &hub.url(path), &basic_auth(user, TEST_PASSWORD)).unwrap()
}

fn file_as(hub: &HubProcess, user: &str, name: &str) -> (u16, Value) {
    post_json_as(
        &hub.url("/api/cases"),
        &basic_auth(user, TEST_PASSWORD),
        &valid_case_body(name),
    )
}

/// Only the window files at the county; a department lists and reads only the cases it handles (a
/// case elsewhere is 404, as if it did not exist); lists mask ID number and phone for everyone; the
/// full values appear on the case only to the roles that handle it, the supervisor keeps the phone it
/// calls back on, and the admin sees the case masked, query password included.
#[test]
fn each_county_role_sees_only_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    HubProcess::init(dir.path()).unwrap();
    HubProcess::add_user(dir.path(), "window1", "window", None).unwrap();
    HubProcess::add_user(dir.path(), "rs", "dept", Some("人社")).unwrap();
    HubProcess::add_user(dir.path(), "mz", "dept", Some("民政")).unwrap();
    HubProcess::add_user(dir.path(), "sup", "supervisor", None).unwrap();
    let hub = HubProcess::serve(dir.path(), "127.0.0.1:0").unwrap();

    // The built-in catalogue's first item belongs to 人社.
    let (status, created) = file_as(&hub, "window1", "权限甲");
    assert_eq!(status, 201, "{created}");
    let no = created["case_no"].as_str().unwrap().to_string();
    for user in ["rs", "mz", "sup"] {
        let (status, body) = file_as(&hub, user, "越权");
        assert_eq!(status, 403, "{user} files no intake: {body}");
        assert!(body["error"].as_str().unwrap().contains("无权"), "{body}");
    }
    let (status, body) = post_json_as(
        &hub.url("/api/cases"),
        &basic_auth("admin", HUB_ADMIN_PASSWORD),
        &valid_case_body("越权"),
    );
    assert_eq!(status, 403, "the admin files no intake: {body}");

    let (_, list) = as_account(&hub, "mz", "/api/cases");
    assert_eq!(list["total"], 0, "民政 does not see 人社's case: {list}");
    assert_eq!(as_account(&hub, "mz", &format!("/api/cases/{no}")).0, 404);
    assert_eq!(
        as_account(&hub, "mz", &format!("/api/cases/{no}/document")).0,
        404
    );

    for user in ["rs", "window1", "sup"] {
        let (_, list) = as_account(&hub, user, "/api/cases");
        assert_eq!(list["total"], 1, "{user}: {list}");
        let row = &list["cases"][0];
        assert_eq!(
            row["applicant_cert_no"], "110105********002X",
            "{user}: {row}"
        );
        assert_eq!(row["phone"], "138****1234", "{user}: {row}");
    }

    let (status, full) = as_account(&hub, "rs", &format!("/api/cases/{no}"));
    assert_eq!(status, 200);
    assert_eq!(full["applicant"]["cert_no"], "11010519491231002X");
    assert_eq!(full["applicant"]["phone"], "13800271234");

    let admin_auth = basic_auth("admin", HUB_ADMIN_PASSWORD);
    let (status, masked) = get_json_as(
        &client(),
        &hub.url(&format!("/api/cases/{no}")),
        &admin_auth,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(masked["applicant"]["cert_no"], "110105********002X");
    assert_eq!(masked["applicant"]["phone"], "138****1234");
    assert_eq!(masked["query_password"], "******");
    let (status, _) = get_json_as(
        &client(),
        &hub.url(&format!("/api/cases/{no}/document")),
        &admin_auth,
    )
    .unwrap();
    assert_eq!(status, 403, "the raw document holds everything");

    let (_, sup) = as_account(&hub, "sup", &format!("/api/cases/{no}"));
    assert_eq!(sup["applicant"]["cert_no"], "110105********002X");
    assert_eq!(
        sup["applicant"]["phone"], "13800271234",
        "the supervisor calls back"
    );

    // The county's home is each role's own queue, and a department's holds none of another's cases.
    let page = |user: &str, path: &str| {
        let mut resp = client()
            .get(hub.url(path))
            .header("Authorization", &basic_auth(user, TEST_PASSWORD))
            .call()
            .unwrap();
        let location = resp
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (location, resp.body_mut().read_to_string().unwrap())
    };
    for user in ["window1", "rs", "mz", "sup"] {
        assert_eq!(page(user, "/").0.as_deref(), Some("/queue"), "{user}");
    }
    assert!(
        page("window1", "/queue").1.contains(&no),
        "the window's 待接收"
    );
    assert!(
        !page("mz", "/queue").1.contains(&no),
        "民政 sees none of 人社's cases"
    );

    // The county's other endpoints by one table: a department has no business with the nodes'
    // sync records or the monthly report; the supervisor has.
    for (user, path, expected) in [
        ("mz", "/api/nodes", 403),
        ("window1", "/api/nodes", 403),
        ("sup", "/api/nodes", 200),
        ("rs", "/api/reports/monthly?month=2026-11", 403),
        ("rs", "/api/outbox", 403),
        ("window1", "/api/outbox", 200),
    ] {
        let (status, body) = as_account(&hub, user, path);
        assert_eq!(status, expected, "{user} {path}: {body}");
    }
    // and the navigation offers no link that would answer 403 (on every page; the queue is home).
    let home = |user: &str| {
        let mut resp = client()
            .get(hub.url("/queue"))
            .header("Authorization", &basic_auth(user, TEST_PASSWORD))
            .call()
            .unwrap();
        resp.body_mut().read_to_string().unwrap()
    };
    assert!(
        !home("mz").contains("href=\"/nodes\""),
        "a department has no 站点同步 link"
    );
    assert!(
        home("sup").contains("href=\"/nodes\""),
        "the supervisor has"
    );
    assert!(
        !home("sup").contains("href=\"/calendar\""),
        "the calendar is the admin's"
    );
}

/// A password on the command line is visible to every user of the machine (`ps`). Every command that
/// takes one also reads it from `--password-file` or stdin, and warns when it was given as an
/// argument.
#[test]
fn passwords_come_from_a_file_or_stdin_and_an_argument_is_warned_about() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let file = dir.path().join("pw.txt");
    std::fs::write(&file, "from-a-file-2026\n").unwrap();
    let (ok, _, err) = hub_cmd(&[
        "init",
        "--data",
        data.to_str().unwrap(),
        "--county",
        "420222",
        "--name",
        "阳新县",
        "--admin-password-file",
        file.to_str().unwrap(),
    ])
    .unwrap();
    assert!(ok, "{err}");
    assert!(!err.contains("warning"), "{err}");

    let mut child = std::process::Command::new(hub_bin())
        .args([
            "user",
            "add",
            "--data",
            data.to_str().unwrap(),
            "--name",
            "window1",
            "--role",
            "window",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from-stdin-2026\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (ok, _, err) = hub_cmd(&[
        "user",
        "add",
        "--data",
        data.to_str().unwrap(),
        "--name",
        "window2",
        "--role",
        "window",
        "--password",
        "on-the-line-2026",
    ])
    .unwrap();
    assert!(ok, "{err}");
    assert!(
        err.contains("warning") && err.contains("other users"),
        "{err}"
    );
    // Nothing on stdin and no file: refused, nothing added.
    let (ok, _, err) = hub_cmd(&[
        "user",
        "add",
        "--data",
        data.to_str().unwrap(),
        "--name",
        "window3",
        "--role",
        "window",
    ])
    .unwrap();
    assert!(!ok);
    assert!(err.contains("--password-file"), "{err}");

    let hub = HubProcess::serve(&data, "127.0.0.1:0").unwrap();
    for (user, pw) in [
        ("admin", "from-a-file-2026"),
        ("window1", "from-stdin-2026"),
    ] {
        let (status, _) =
            get_json_as(&client(), &hub.url("/api/cases"), &basic_auth(user, pw)).unwrap();
        assert_eq!(status, 200, "{user} logs in with the password it was given");
    }
}

fn post_as(hub: &HubProcess, auth: &str, path: &str, body: Value) -> (u16, Value) {
    post_json_as(&hub.url(path), auth, &body)
}

/// Every user changes their own password (knowing the current one); the admin adds accounts under
/// the password policy, resets a password and disables an account, which then logs in no more —
/// neither with a cached Basic header nor with a new login. Before this issue none of it existed.
#[test]
fn people_change_their_password_and_the_admin_resets_and_disables_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(dir.path(), "127.0.0.1:0").unwrap();
    let admin = basic_auth("admin", HUB_ADMIN_PASSWORD);
    let can_read = |auth: &str| {
        get_json_as(&client(), &hub.url("/api/cases"), auth)
            .unwrap()
            .0
    };

    let (status, body) = post_as(
        &hub,
        &admin,
        "/api/users",
        serde_json::json!({"name": "w2", "password": "admin123", "role": "window"}),
    );
    assert_eq!(status, 422, "a common password is refused: {body}");
    let (status, body) = post_as(
        &hub,
        &admin,
        "/api/users",
        serde_json::json!({"name": "w2", "password": "first-pass-26", "role": "window"}),
    );
    assert_eq!(status, 201, "{body}");
    let first = basic_auth("w2", "first-pass-26");
    assert_eq!(can_read(&first), 200);
    assert_eq!(
        get_json_as(&client(), &hub.url("/api/users"), &first)
            .unwrap()
            .0,
        403
    );

    let (status, _) = post_as(
        &hub,
        &first,
        "/api/me/password",
        serde_json::json!({"current": "not-it-2026", "new": "second-pass-26"}),
    );
    assert_eq!(status, 422);
    let (status, body) = post_as(
        &hub,
        &first,
        "/api/me/password",
        serde_json::json!({"current": "first-pass-26", "new": "second-pass-26"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        can_read(&first),
        401,
        "the old password (and its cached check) no longer works"
    );
    let second = basic_auth("w2", "second-pass-26");
    assert_eq!(can_read(&second), 200);

    let (status, _) = post_as(
        &hub,
        &admin,
        "/api/users/w2/password",
        serde_json::json!({"password": "reset-by-admin-26"}),
    );
    assert_eq!(status, 200);
    assert_eq!(can_read(&second), 401);
    let reset = basic_auth("w2", "reset-by-admin-26");
    assert_eq!(can_read(&reset), 200);

    let (status, _) = post_as(&hub, &admin, "/api/users/w2/disable", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(can_read(&reset), 401, "a disabled account logs in no more");
    let (_, users) = get_json_as(&client(), &hub.url("/api/users"), &admin).unwrap();
    let w2 = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "w2")
        .unwrap();
    assert_eq!(w2["disabled"], true);
    assert!(
        !users.to_string().contains("argon2"),
        "no hash leaves the hub: {users}"
    );
}
