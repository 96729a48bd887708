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
        let agent = client();
        let resp = agent
            .post(node.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(format!("user={TEST_USER}&password={TEST_PASSWORD}&next=%2F").as_bytes())
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
