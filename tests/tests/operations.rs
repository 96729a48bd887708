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

/// A sheet's rows: the first column's name, then each numeric cell with its column heading.
type Sheet = Vec<(String, Vec<(String, f64)>)>;

/// Every sheet of `xlsx` by name.
fn sheets(xlsx: &[u8]) -> std::collections::BTreeMap<String, Sheet> {
    use calamine::{Data, Reader};
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(xlsx.to_vec())).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for name in wb.sheet_names() {
        let range = wb.worksheet_range(&name).unwrap();
        let rows: Vec<&[Data]> = range.rows().collect();
        // Row 0 is the title, row 1 empty, row 2 the headings.
        let headings: Vec<String> = rows[2].iter().map(|c| c.to_string()).collect();
        let body = rows[3..]
            .iter()
            .map(|r| {
                let numbers = r
                    .iter()
                    .enumerate()
                    .skip(1)
                    .filter_map(|(i, c)| match c {
                        Data::Float(f) => Some((headings[i].clone(), *f)),
                        Data::Int(n) => Some((headings[i].clone(), *n as f64)),
                        _ => None,
                    })
                    .collect();
                (r[0].to_string(), numbers)
            })
            .collect();
        out.insert(name, body);
    }
    out
}

fn number(sheet: &Sheet, row: &str, column: &str) -> f64 {
    let (_, cells) = sheet
        .iter()
        .find(|(name, _)| name == row)
        .unwrap_or_else(|| panic!("no row {row} in {sheet:?}"));
    cells
        .iter()
        .find(|(h, _)| h == column)
        .map(|(_, v)| *v)
        .unwrap_or(0.0)
}

#[test]
fn the_monthly_workbook_counts_every_county_account_department_station_and_station_person() {
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let item = catalog.items[0].clone();
    let (hub, _hub_dir) = HubProcess::staffed(&item.department).unwrap();
    let village = hub.enrolled_village(TEST_CODE).unwrap();
    let data = village.path().join("node");
    let (ok, _, err) = user_cmd(&[
        "add",
        "--data",
        path_str(&data).unwrap(),
        "--name",
        "lichunmei",
        "--display-name",
        "李春梅",
        "--password",
        "chunmei-2026",
    ]);
    assert!(ok, "{err}");
    let node = NodeProcess::serve_with(&data, &["--sync-interval", "3600"]).unwrap();
    let file_as = |user: (&str, &str), name: &str| {
        let (status, body) = post_json_as(
            &node.url("/api/cases"),
            &basic_auth(user.0, user.1),
            &valid_case_body(name),
        );
        assert_eq!(status, 201, "{body}");
        body["case_no"].as_str().unwrap().to_string()
    };
    let chunmei = ("lichunmei", "chunmei-2026");
    let c1 = file_as(chunmei, "甲");
    let c2 = file_as(chunmei, "乙");
    let c3 = file_as((TEST_USER, TEST_PASSWORD), "丙");
    assert_eq!(node.sync_now().0, 200);
    let window = ("window1", TEST_PASSWORD);
    let dept = ("dept1", TEST_PASSWORD);
    let hb = hub.process.base.clone();
    let ok = |(status, body): (u16, Value)| assert_eq!(status, 200, "{body}");
    for no in [&c1, &c2, &c3] {
        ok(act_as(
            &hb,
            window,
            no,
            &serde_json::json!({"action": "receive"}),
        ));
    }
    ok(act_as(
        &hb,
        window,
        &c1,
        &serde_json::json!({"action": "accept"}),
    ));
    ok(act_as(
        &hb,
        window,
        &c2,
        &serde_json::json!({"action": "request_correction", "missing": [item.materials[0].id]}),
    ));
    ok(act_as(
        &hb,
        window,
        &c3,
        &serde_json::json!({"action": "reject", "reason": "不属于受理范围"}),
    ));
    ok(act_as(
        &hb,
        dept,
        &c1,
        &serde_json::json!({"action": "approve"}),
    ));

    let month = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m")
        .to_string();
    let mut resp = client()
        .get(hub.url(&format!("/api/reports/monthly?month={month}")))
        .header("Authorization", &basic_auth("sup1", TEST_PASSWORD))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let book = sheets(&resp.body_mut().read_to_vec().unwrap());
    assert_eq!(
        book.keys().collect::<Vec<_>>(),
        ["窗口人员", "站点", "站点人员", "部门"]
    );

    // The county's people by what each did.
    let accounts = &book["窗口人员"];
    for (column, expected) in [
        ("接收", 3.0),
        ("受理", 1.0),
        ("不予受理", 1.0),
        ("要求补正", 1.0),
    ] {
        assert_eq!(
            number(accounts, "window1", column),
            expected,
            "window1 {column}"
        );
    }
    assert_eq!(number(accounts, "window1", "办结"), 0.0);
    assert_eq!(number(accounts, "dept1", "办结"), 1.0);
    assert_eq!(number(accounts, "dept1", "按时办结"), 1.0);
    assert_eq!(accounts.len(), 2, "{accounts:?}");

    // The department handling all three.
    let depts = &book["部门"];
    for (column, expected) in [
        ("接收", 3.0),
        ("受理", 1.0),
        ("不予受理", 1.0),
        ("要求补正", 1.0),
        ("办结", 1.0),
        ("按时办结", 1.0),
        ("超期办结", 0.0),
    ] {
        assert_eq!(
            number(depts, &item.department, column),
            expected,
            "{column}"
        );
    }

    // The station: three cases taken in (the county's receipt is not counted again).
    let stations = &book["站点"];
    assert_eq!(number(stations, TEST_CODE, "接收"), 3.0);
    assert_eq!(number(stations, TEST_CODE, "办结"), 1.0);

    // The station's people, by the name on their receipts.
    let head_name = {
        let (_, case) = get_text_as(
            &node.base,
            (TEST_USER, TEST_PASSWORD),
            &format!("/api/cases/{c3}"),
        );
        let case: Value = serde_json::from_str(&case).unwrap();
        case["history"][0]["by_name"].as_str().unwrap().to_string()
    };
    let people = &book["站点人员"];
    assert_eq!(
        number(people, &format!("李春梅（{TEST_CODE}）"), "接收"),
        2.0
    );
    assert_eq!(
        number(people, &format!("{head_name}（{TEST_CODE}）"), "接收"),
        1.0
    );
    assert_eq!(people.len(), 2, "{people:?}");
}

#[test]
fn the_station_head_and_the_county_admin_manage_accounts_on_the_running_tier() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let node = NodeProcess::serve(dir.path()).unwrap();
    let base = node.base.clone();
    let head = session(&base, (TEST_USER, TEST_PASSWORD), "/accounts");
    let (status, page) = page_with(&base, &head.0, "/accounts");
    assert_eq!(status, 200);
    assert!(page.contains("账号管理") && page.contains("本人"), "{page}");

    let page = submit(
        &base,
        &head,
        "/accounts",
        &[
            ("name", "lichunmei"),
            ("display_name", "李春梅"),
            ("role", "agent"),
            ("password", "chunmei-2026"),
        ],
    );
    assert!(page.contains("已新增账号 lichunmei（李春梅）"), "{page}");
    assert!(page.contains("id=\"account-lichunmei\""));
    let refused = submit(
        &base,
        &head,
        "/accounts",
        &[("name", "wang"), ("role", "agent"), ("password", "123")],
    );
    assert!(refused.contains("新密码不符合要求"), "{refused}");
    let chunmei = ("lichunmei", "chunmei-2026");
    assert_eq!(get_text_as(&base, chunmei, "/api/badge").0, 200);
    // An agent manages no accounts.
    assert_eq!(get_text_as(&base, chunmei, "/accounts").0, 403);

    let unconfirmed = submit(&base, &head, "/accounts/lichunmei/disable", &[]);
    assert!(unconfirmed.contains("请勾选确认"), "{unconfirmed}");
    assert_eq!(get_text_as(&base, chunmei, "/api/badge").0, 200);
    let disabled = submit(
        &base,
        &head,
        "/accounts/lichunmei/disable",
        &[("confirm", "1")],
    );
    assert!(disabled.contains("已停用账号 lichunmei"), "{disabled}");
    assert_eq!(get_text_as(&base, chunmei, "/api/badge").0, 401);
    let reset = submit(
        &base,
        &head,
        "/accounts/lichunmei/password",
        &[("password", "chunmei-2027")],
    );
    assert!(reset.contains("已为 lichunmei 设置新密码"), "{reset}");
    assert_eq!(
        get_text_as(&base, ("lichunmei", "chunmei-2027"), "/api/badge").0,
        200
    );

    // The county's admin gives a department its account on the running hub.
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let hb = hub.process.base.clone();
    let admin = session(&hb, ("admin", HUB_ADMIN_PASSWORD), "/accounts");
    let page = submit(
        &hb,
        &admin,
        "/accounts",
        &[
            ("name", "mz1"),
            ("display_name", "张民"),
            ("role", "dept"),
            ("dept", "民政"),
            ("password", "minzheng-2026"),
        ],
    );
    assert!(
        page.contains("部门：民政") && page.contains("张民"),
        "{page}"
    );
    assert_eq!(get_text_as(&hb, ("mz1", "minzheng-2026"), "/queue").0, 200);
}

#[test]
fn the_admin_enrols_a_station_from_its_request_and_revokes_it_on_the_node_page() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let hb = hub.process.base.clone();
    let admin = session(&hb, ("admin", HUB_ADMIN_PASSWORD), "/nodes");
    let (_, page) = page_with(&hb, &admin.0, "/nodes");
    assert!(page.contains("接入新站点"), "{page}");

    // The station makes its key and request; only the request travels.
    let station = tempfile::tempdir().unwrap();
    let data = station.path().join("node");
    let request = station.path().join("request.pem");
    let code = "420222100205";
    let (ok, _, err) = node_cmd(&[
        "csr",
        "--data",
        path_str(&data).unwrap(),
        "--code",
        code,
        "--out",
        path_str(&request).unwrap(),
    ])
    .unwrap();
    assert!(ok, "{err}");
    let csr = std::fs::read_to_string(&request).unwrap();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", admin.1.as_str()),
            ("code", code),
            ("name", "兴国镇新村便民服务站"),
            ("tier", "village"),
            ("upstream", hub.quic.as_str()),
            ("csr", csr.as_str()),
        ])
        .finish();
    let mut resp = client()
        .post(format!("{hb}/nodes/enroll"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Cookie", &admin.0)
        .send(form.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let disposition = resp
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        disposition.contains(&format!("{code}.bundle.json")),
        "{disposition}"
    );
    let bundle_text = resp.body_mut().read_to_string().unwrap();
    assert!(!bundle_text.contains("PRIVATE KEY"), "certificates only");
    let bundle_file = station.path().join("bundle.json");
    std::fs::write(&bundle_file, &bundle_text).unwrap();
    let (ok, _, err) = node_cmd(&[
        "init",
        "--data",
        path_str(&data).unwrap(),
        "--bundle",
        path_str(&bundle_file).unwrap(),
        "--user",
        TEST_USER,
        "--password",
        TEST_PASSWORD,
    ])
    .unwrap();
    assert!(ok, "the station starts from the downloaded bundle: {err}");
    let (_, page) = page_with(&hb, &admin.0, "/nodes");
    assert!(page.contains(code) && page.contains("兴国镇新村便民服务站"));

    // A request that is no request is refused with the reason, on the page.
    let bad = submit(
        &hb,
        &admin,
        "/nodes/enroll",
        &[
            ("code", "420222100206"),
            ("name", "x"),
            ("upstream", "127.0.0.1:1"),
        ],
    );
    assert!(bad.contains("需要站点的证书请求"), "{bad}");

    let unconfirmed = submit(&hb, &admin, &format!("/nodes/{code}/revoke"), &[]);
    assert!(unconfirmed.contains("请勾选确认"), "{unconfirmed}");
    let revoked = submit(
        &hb,
        &admin,
        &format!("/nodes/{code}/revoke"),
        &[("confirm", "1")],
    );
    assert!(
        revoked.contains(&format!("已吊销站点 兴国镇新村便民服务站（{code}）")),
        "{revoked}"
    );
    let (_, nodes) = get_json_as(
        &client(),
        &hub.url("/api/nodes"),
        &basic_auth("admin", HUB_ADMIN_PASSWORD),
    )
    .unwrap();
    let record = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["code"] == code)
        .cloned()
        .unwrap();
    assert_eq!(record["revoked"], true, "{record}");
}
