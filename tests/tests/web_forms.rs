//! The web forms over real HTTP: session login, CSRF protection, and a double submission of the intake
//! form storing one case.

use tongban_tests::*;

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in page"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

struct Session {
    agent: ureq::Agent,
    cookie: String,
}

impl Session {
    fn login(node: &NodeProcess) -> Session {
        Session::login_as(node, TEST_USER, TEST_PASSWORD)
    }

    fn login_as(node: &NodeProcess, user: &str, password: &str) -> Session {
        let agent = client();
        let resp = agent
            .post(node.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(format!("user={user}&password={password}&next=%2F").as_bytes())
            .unwrap();
        assert_eq!(resp.status(), 303);
        let cookie = resp
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        Session { agent, cookie }
    }

    fn get(&self, url: &str) -> (u16, String) {
        let mut resp = self
            .agent
            .get(url)
            .header("Cookie", &self.cookie)
            .call()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    }

    fn post_form(&self, url: &str, pairs: &[(&str, &str)]) -> (u16, String, String) {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut resp = self
            .agent
            .post(url)
            .header("Cookie", &self.cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body.as_bytes())
            .unwrap();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (
            resp.status().as_u16(),
            location,
            resp.body_mut().read_to_string().unwrap(),
        )
    }
}

#[test]
fn wrong_password_is_refused_and_pages_need_a_session() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let node = NodeProcess::serve(dir.path()).unwrap();
    let agent = client();
    let resp = agent.get(node.url("/cases")).call().unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers().get("location").unwrap(),
        "/login?next=%2Fcases"
    );
    let mut resp = agent
        .post(node.url("/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(&b"user=daiban&password=nope&next=%2F"[..])
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp
        .body_mut()
        .read_to_string()
        .unwrap()
        .contains("账号或密码不正确"));
}

#[test]
fn intake_form_needs_the_sessions_csrf_token_and_a_double_submit_stores_one_case() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let node = NodeProcess::serve(dir.path()).unwrap();
    let s = Session::login(&node);
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let item = &catalog.items[0];
    let (status, form) = s.get(&node.url(&format!("/cases/new?item={}", item.code)));
    assert_eq!(status, 200);
    let csrf = hidden(&form, "csrf");
    let token = hidden(&form, "form_token");
    let mut pairs: Vec<(&str, &str)> = vec![
        ("item_code", item.code.as_str()),
        ("form_token", token.as_str()),
        ("kind", "1"),
        ("name", "赵金凤"),
        ("id_number", "11010519491231002X"),
        ("phone", "13800271234"),
        ("delivery", "窗口领取"),
    ];
    for m in item.materials.iter().filter(|m| m.required) {
        pairs.push(("materials", m.id.as_str()));
    }

    // Without the token (a forged cross-site post): refused, nothing stored.
    let (status, _, _) = s.post_form(&node.url("/cases/new"), &pairs);
    assert_eq!(status, 403);
    let (status, _, _) = s.post_form(
        &node.url("/cases/new"),
        &[pairs.clone(), vec![("csrf", "forged")]].concat(),
    );
    assert_eq!(status, 403);

    let with_csrf = [pairs.clone(), vec![("csrf", csrf.as_str())]].concat();
    let (status, first, _) = s.post_form(&node.url("/cases/new"), &with_csrf);
    assert_eq!(status, 303);
    assert!(first.ends_with("?created=1"), "{first}");
    // The agent clicks twice / refreshes: the same case, not a second one.
    let (status, second, _) = s.post_form(&node.url("/cases/new"), &with_csrf);
    assert_eq!(status, 303);
    assert_eq!(first, second);

    let (status, page) = s.get(&node.url(&first));
    assert_eq!(status, 200);
    assert!(page.contains("办件已保存") && page.contains("赵金凤"));
    let (_, list) = get_json(&client(), &node.url("/api/cases")).unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["cases"][0]["delivery"], "窗口领取");
}

#[test]
fn form_errors_name_every_field_and_keep_the_input() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let node = NodeProcess::serve(dir.path()).unwrap();
    let s = Session::login(&node);
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let item = &catalog.items[0];
    let (_, form) = s.get(&node.url(&format!("/cases/new?item={}", item.code)));
    let csrf = hidden(&form, "csrf");
    let token = hidden(&form, "form_token");
    let (status, _, html) = s.post_form(
        &node.url("/cases/new"),
        &[
            ("csrf", csrf.as_str()),
            ("form_token", token.as_str()),
            ("item_code", item.code.as_str()),
            ("kind", "1"),
            ("name", "钱长青"),
            ("id_number", "110105194912310"),
            ("phone", "1380027"),
            ("delivery", "邮寄"),
        ],
    );
    assert_eq!(status, 422);
    for expected in [
        "身份证号码应为18位",
        "手机号码应为以1开头的11位数字",
        "请填写收件地址",
        "缺少必需材料",
    ] {
        assert!(html.contains(expected), "form lacks {expected}");
    }
    assert!(html.contains("value=\"钱长青\""), "typed name was lost");
    let (_, list) = get_json(&client(), &node.url("/api/cases")).unwrap();
    assert_eq!(list["total"], 0);
}

/// The county works a case through the case page's forms: each form appears only when the account may
/// take that action, and a refused input comes back as a message on the page.
#[test]
fn county_actions_through_the_case_page_forms() {
    let hub_dir = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    HubProcess::add_user(hub_dir.path(), "window1", "window", None).unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    // The window files a walk-in case with Basic auth, like any script (only the window files at
    // the county).
    let mut resp = client()
        .post(hub.url("/api/cases"))
        .header("Authorization", &basic_auth("window1", TEST_PASSWORD))
        .header("Content-Type", "application/json")
        .send(
            serde_json::to_vec(&valid_case_body("窗口来人"))
                .unwrap()
                .as_slice(),
        )
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: serde_json::Value =
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    let no = created["case_no"].as_str().unwrap().to_string();
    let s = Session::login_as(&hub.process, "window1", TEST_PASSWORD);
    let page_url = hub.url(&format!("/cases/{no}"));
    let (_, page) = s.get(&page_url);
    assert!(
        page.contains("id=\"action-receive\""),
        "receive form offered"
    );
    assert!(
        !page.contains("id=\"action-approve\""),
        "approve is the department's"
    );
    let csrf = hidden(&page, "csrf");
    let (status, location, _) = s.post_form(
        &hub.url(&format!("/cases/{no}/actions")),
        &[
            ("csrf", csrf.as_str()),
            ("action", "receive"),
            ("note", "已接收"),
        ],
    );
    assert_eq!(status, 303);
    let (_, page) = s.get(&hub.url(&location));
    assert!(page.contains("id=\"action-done\""), "{location}");
    // Reject without a reason: refused, shown on the page, nothing changes.
    let (_, location, _) = s.post_form(
        &hub.url(&format!("/cases/{no}/actions")),
        &[
            ("csrf", csrf.as_str()),
            ("action", "reject"),
            ("reason", ""),
        ],
    );
    let (_, page) = s.get(&hub.url(&location));
    assert!(page.contains("id=\"action-error\""), "{location}");
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let first = catalog.items[0].materials[0].id.clone();
    let (status, _, _) = s.post_form(
        &hub.url(&format!("/cases/{no}/actions")),
        &[
            ("csrf", csrf.as_str()),
            ("action", "request_correction"),
            ("materials", first.as_str()),
        ],
    );
    assert_eq!(status, 303);
    let (_, page) = s.get(&page_url);
    assert!(
        page.contains("县级要求补正"),
        "the missing material is listed"
    );
    let (_, case) = get_json_as(
        &hub.url(&format!("/api/cases/{no}")),
        "window1",
        TEST_PASSWORD,
    );
    assert_eq!(case["state"], "CORRECTION");
    assert_eq!(case["workflow"]["correction_rounds"], 1);
}

fn get_json_as(url: &str, user: &str, password: &str) -> (u16, serde_json::Value) {
    let mut resp = client()
        .get(url)
        .header("Authorization", &basic_auth(user, password))
        .call()
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap_or_default(),
    )
}
