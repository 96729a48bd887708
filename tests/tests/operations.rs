//! Running it for real (issue 16), through the real binaries: a station's per-person accounts.

use serde_json::Value;
use tongban_tests::*;

fn user_cmd(args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["user"];
    all.extend_from_slice(args);
    node_cmd(&all).unwrap()
}

fn status_as(node: &NodeProcess, user: (&str, &str), path: &str) -> u16 {
    get_text_as(&node.base, user, path).0
}

#[test]
fn a_station_gives_each_person_an_account_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let d = path_str(dir.path()).unwrap();
    let chunmei = ("lichunmei", "chunmei-2026");

    let (ok, out, err) = user_cmd(&[
        "add",
        "--data",
        d,
        "--name",
        chunmei.0,
        "--display-name",
        "李春梅",
        "--password",
        chunmei.1,
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("added account lichunmei (agent, 李春梅)"),
        "{out}"
    );
    // The same rules as the station head's page: each refusal names the option.
    for (args, expect) in [
        (vec!["--name", "wang", "--password", "123"], "--password"),
        (vec!["--name", "王", "--password", "wang-2026-x"], "--name"),
        (
            vec![
                "--name",
                "wang",
                "--role",
                "admin",
                "--password",
                "wang-2026-x",
            ],
            "--role",
        ),
        (
            vec!["--name", chunmei.0, "--password", "other-2026-x"],
            "exists",
        ),
    ] {
        let mut all = vec!["add", "--data", d];
        all.extend(args);
        let (ok, _, err) = user_cmd(&all);
        assert!(!ok && err.contains(expect), "{all:?}: {err}");
    }
    let (_, listed, _) = user_cmd(&["list", "--data", d]);
    assert!(
        listed.contains("lichunmei\tagent\t李春梅\tenabled"),
        "{listed}"
    );
    assert!(listed.contains(&format!("{TEST_USER}\thead")), "{listed}");
    let (ok, _, err) = user_cmd(&["disable", "--data", d, "--name", TEST_USER]);
    assert!(!ok && err.contains("last enabled station head"), "{err}");

    // She works under her own name; a running node's accounts are its page's to manage.
    let node = NodeProcess::serve(dir.path()).unwrap();
    let (ok, _, err) = user_cmd(&[
        "add",
        "--data",
        d,
        "--name",
        "wang",
        "--password",
        "wang-2026-x",
    ]);
    assert!(!ok && err.contains("in use by a running node"), "{err}");
    let (status, created) = post_json_as(
        &node.url("/api/cases"),
        &basic_auth(chunmei.0, chunmei.1),
        &valid_case_body("王秀英"),
    );
    assert_eq!(status, 201, "{created}");
    let no = created["case_no"].as_str().unwrap();
    let (_, case) = get_text_as(&node.base, chunmei, &format!("/api/cases/{no}"));
    let case: Value = serde_json::from_str(&case).unwrap();
    assert_eq!(case["agent"]["name"], "李春梅");
    assert_eq!(case["history"][0]["by_name"], "李春梅");
    let (_, receipt) = get_text_as(&node.base, chunmei, &format!("/cases/{no}/receipt"));
    assert!(receipt.contains("李春梅"));
    drop(node);

    // Disabled, she is refused; a new password lets her in again. Each change is in the audit log.
    let (ok, _, err) = user_cmd(&["disable", "--data", d, "--name", chunmei.0]);
    assert!(ok, "{err}");
    let node = NodeProcess::serve(dir.path()).unwrap();
    assert_eq!(status_as(&node, chunmei, "/api/badge"), 401);
    drop(node);
    let (ok, _, err) = user_cmd(&[
        "passwd",
        "--data",
        d,
        "--name",
        chunmei.0,
        "--password",
        "chunmei-2027",
    ]);
    assert!(ok, "{err}");
    let node = NodeProcess::serve(dir.path()).unwrap();
    assert_eq!(
        status_as(&node, ("lichunmei", "chunmei-2027"), "/api/badge"),
        200
    );
    let (status, audit) = get_text_as(&node.base, (TEST_USER, TEST_PASSWORD), "/api/audit");
    assert_eq!(status, 200, "{audit}");
    for what in ["account.added", "account.disabled", "password.reset"] {
        assert!(audit.contains(what), "no {what} in {audit}");
    }
}
