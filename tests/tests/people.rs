//! What the agent, the clerk and the villager see after intake, across real hub and village
//! processes: the to-do inbox, the legal notices, the applicant's self-query and online
//! evaluation, the rectification loop of a bad review, amendment and withdrawal.

use std::time::Duration;

use serde_json::{json, Value};
use tongban_tests::*;

const V1: &str = "420222100201";

struct County {
    hub: HubProcess,
    node: NodeProcess,
    _hub_dir: tempfile::TempDir,
    _node_dir: tempfile::TempDir,
    item: tongban_shared::catalog::Item,
}

const WINDOW: (&str, &str) = ("window1", TEST_PASSWORD);
const DEPT: (&str, &str) = ("dept1", TEST_PASSWORD);
const SUPERVISOR: (&str, &str) = ("sup1", TEST_PASSWORD);
const AGENT: (&str, &str) = (TEST_USER, TEST_PASSWORD);

/// A hub with a window, the first item's department and a supervisor, and one village that syncs
/// only when told to.
fn county() -> County {
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let item = catalog.items[0].clone();
    let (hub, hub_dir) = HubProcess::staffed(&item.department).unwrap();
    let (node, node_dir) = hub.village(V1, &["--sync-interval", "3600"]).unwrap();
    County {
        hub,
        node,
        _hub_dir: hub_dir,
        _node_dir: node_dir,
        item,
    }
}

impl County {
    fn hb(&self) -> String {
        self.hub.process.base.clone()
    }
    fn nb(&self) -> String {
        self.node.base.clone()
    }
    fn sync(&self) {
        let (status, body) = self.node.sync_now();
        assert_eq!(status, 200, "{body}");
    }
}

fn ok((status, body): (u16, Value)) -> Value {
    assert_eq!(status, 200, "{body}");
    body
}

fn get_as(base: &str, user: (&str, &str), path: &str) -> (u16, String) {
    get_text_as(base, user, path)
}

fn todo(base: &str) -> Value {
    let (status, body) = get_as(base, AGENT, "/api/todo");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn todo_kinds(base: &str, case_no: &str) -> Vec<String> {
    todo(base)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["case_no"] == case_no)
        .map(|i| i["kind"].as_str().unwrap().to_string())
        .collect()
}

fn case_at(base: &str, user: (&str, &str), case_no: &str) -> Value {
    let (status, body) = get_as(base, user, &format!("/api/cases/{case_no}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn post_form(base: &str, path: &str, pairs: &[(&str, &str)]) -> (u16, String) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut resp = client()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body.as_bytes())
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive()
}

#[test]
fn the_inbox_asks_for_a_correction_until_it_is_sent_then_for_the_result_and_the_evaluation() {
    let c = county();
    let no = file_case(&c.node, "待办甲");
    assert!(todo_kinds(&c.nb(), &no).is_empty());
    c.sync();
    let first = c.item.materials[0].id.clone();
    ok(act_as(&c.hb(), WINDOW, &no, &json!({"action": "receive"})));
    ok(act_as(
        &c.hb(),
        WINDOW,
        &no,
        &json!({"action": "request_correction", "missing": [first],
                "problems": {first.as_str(): "复印件不清晰，看不清出生日期"}, "note": "请重新复印"}),
    ));
    c.sync();

    // The inbox names the case, what is wrong and how long it has waited; the home page shows it.
    let inbox = todo(&c.nb());
    assert_eq!(inbox["counts"]["correction"], 1, "{inbox}");
    assert_eq!(inbox["counts"]["total"], 1, "{inbox}");
    let row = &inbox["items"][0];
    assert_eq!(row["case_no"], no.as_str());
    assert_eq!(row["kind"], "correction");
    assert!(row["waited"].as_str().unwrap().contains("小时"), "{row}");
    let (_, home) = get_as(&c.nb(), AGENT, "/");
    assert!(home.contains("需要您处理") && home.contains("待补正") && home.contains(&no));
    let (_, page) = get_as(&c.nb(), AGENT, &format!("/cases/{no}"));
    assert!(
        page.contains("复印件不清晰，看不清出生日期"),
        "the case page says what is wrong"
    );
    assert!(
        page.contains("需补正"),
        "the materials table marks the material"
    );
    let (_, badge) = get_as(&c.nb(), AGENT, "/api/badge");
    let badge: Value = serde_json::from_str(&badge).unwrap();
    assert_eq!(badge["todo"], 1, "{badge}");
    assert_eq!(badge["pending"], 0, "nothing waits to go up: {badge}");

    // The correction notice lists the material with its problem and the return date; a second
    // print is marked as a reprint.
    let (status, notice) = get_as(&c.nb(), AGENT, &format!("/cases/{no}/notices/correction"));
    assert_eq!(status, 200, "{notice}");
    assert!(notice.contains("补正材料通知书") && notice.contains("复印件不清晰，看不清出生日期"));
    assert!(notice.contains(&c.item.materials[0].name));
    let due = tongban_shared::calendar::Calendar::builtin()
        .unwrap()
        .due_date(today(), 15)
        .format("%Y年%m月%d日")
        .to_string();
    assert!(
        notice.contains(&due),
        "return deadline {due} by the calendar"
    );
    assert!(!notice.contains("补打"));
    let (_, again) = get_as(&c.nb(), AGENT, &format!("/cases/{no}/notices/correction"));
    assert!(again.contains("补打"));
    assert_eq!(
        get_as(&c.nb(), AGENT, &format!("/cases/{no}/notices/acceptance")).0,
        409,
        "no acceptance notice before the county accepts"
    );

    ok(act_as(
        &c.nb(),
        AGENT,
        &no,
        &json!({"action": "submit_correction", "materials": [first]}),
    ));
    assert!(todo_kinds(&c.nb(), &no).is_empty(), "handled: gone");
    c.sync();
    ok(act_as(&c.hb(), WINDOW, &no, &json!({"action": "accept"})));
    ok(act_as(&c.hb(), DEPT, &no, &json!({"action": "approve"})));
    ok(act_as(
        &c.hb(),
        DEPT,
        &no,
        &json!({"action": "issue_result", "result_name": "审批结果", "result_no": "R-1"}),
    ));
    c.sync();
    assert_eq!(todo_kinds(&c.nb(), &no), ["result"]);
    let (status, acceptance) = get_as(&c.nb(), AGENT, &format!("/cases/{no}/notices/acceptance"));
    assert_eq!(status, 200);
    assert!(acceptance.contains("受理通知书") && acceptance.contains("承诺办结日期"));
    let (status, decision) = get_as(&c.nb(), AGENT, &format!("/cases/{no}/notices/decision"));
    assert_eq!(status, 200);
    // The item is no licence (行政确认): its decision is no 行政许可决定书.
    assert!(decision.contains("准予办理通知书") && decision.contains("审批结果"));
    assert!(!decision.contains("行政许可"));
    ok(act_as(&c.nb(), AGENT, &no, &json!({"action": "deliver"})));
    assert_eq!(todo_kinds(&c.nb(), &no), ["evaluate"]);
    let (_, receipt) = get_as(&c.nb(), AGENT, &format!("/cases/{no}/notices/delivery"));
    assert!(receipt.contains("送达回证") && receipt.contains("受送达人"));
}

#[test]
fn a_rejection_waits_in_the_inbox_until_the_applicant_is_told_with_the_notice_of_their_rights() {
    let c = county();
    let no = file_case(&c.node, "退回乙");
    c.sync();
    ok(act_as(&c.hb(), WINDOW, &no, &json!({"action": "receive"})));
    ok(act_as(
        &c.hb(),
        WINDOW,
        &no,
        &json!({"action": "reject", "reason": "不属于本县受理范围"}),
    ));
    c.sync();
    let inbox = todo(&c.nb());
    assert_eq!(todo_kinds(&c.nb(), &no), ["rejected"], "{inbox}");
    assert!(inbox["items"][0]["note"]
        .as_str()
        .unwrap()
        .contains("不属于本县受理范围"));
    let (status, notice) = get_as(&c.nb(), AGENT, &format!("/cases/{no}/notices/rejection"));
    assert_eq!(status, 200);
    assert!(notice.contains("不予受理通知书") && notice.contains("不属于本县受理范围"));
    assert!(notice.contains("行政复议") && notice.contains("六十日") && notice.contains("六个月"));
    ok(act_as(
        &c.nb(),
        AGENT,
        &no,
        &json!({"action": "inform", "note": "电话告知"}),
    ));
    assert!(todo_kinds(&c.nb(), &no).is_empty());
    // The state says what happened, at both tiers.
    assert_eq!(case_at(&c.nb(), AGENT, &no)["state_label"], "不予受理");
}

#[test]
fn a_denial_reads_as_a_denial_and_its_decision_notice_names_the_reason_and_the_rights() {
    let c = county();
    let no = file_case(&c.node, "不予己");
    c.sync();
    for (user, body) in [
        (WINDOW, json!({"action": "receive"})),
        (WINDOW, json!({"action": "accept"})),
        (
            DEPT,
            json!({"action": "deny", "reason": "不符合参保年龄条件"}),
        ),
    ] {
        ok(act_as(&c.hb(), user, &no, &body));
    }
    assert_eq!(
        case_at(&c.hb(), WINDOW, &no)["state_label"],
        "已决定不予许可，待出具决定书"
    );
    c.sync();
    assert_eq!(
        case_at(&c.nb(), AGENT, &no)["state_label"],
        "已决定不予许可"
    );
    let (status, notice) = get_as(&c.nb(), AGENT, &format!("/cases/{no}/notices/decision"));
    assert_eq!(status, 200);
    assert!(notice.contains("不予办理决定书") && !notice.contains("准予办理通知书"));
    assert!(notice.contains("不符合参保年龄条件") && notice.contains("行政复议"));
    ok(act_as(
        &c.hb(),
        DEPT,
        &no,
        &json!({"action": "issue_result", "result_name": "不予办理决定书", "result_no": "BY-1"}),
    ));
    c.sync();
    // The refusal is handed over like a result, and the inbox says it is one.
    let inbox = todo(&c.nb());
    assert_eq!(inbox["items"][0]["kind"], "result");
    assert_eq!(inbox["items"][0]["note"], "不予许可：不符合参保年龄条件");

    // A licence's notices cite the licence law and its decision is a 行政许可决定书.
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let (index, licence) = catalog
        .items
        .iter()
        .enumerate()
        .find(|(_, i)| i.is_licence() && i.assist_departments.is_empty())
        .expect("a licence item");
    let (status, created) = post_json(
        &client(),
        &c.node.url("/api/cases"),
        &case_body(index, "许可辛"),
        None,
    )
    .unwrap();
    assert_eq!(status, 201, "{created}");
    let no = created["case_no"].as_str().unwrap().to_string();
    c.sync();
    ok(act_as(&c.hb(), WINDOW, &no, &json!({"action": "receive"})));
    ok(act_as(&c.hb(), WINDOW, &no, &json!({"action": "accept"})));
    c.sync();
    let (_, acceptance) = get_as(&c.nb(), AGENT, &format!("/cases/{no}/notices/acceptance"));
    assert!(
        acceptance.contains("《中华人民共和国行政许可法》第三十二条"),
        "{} ({}): {acceptance}",
        licence.name,
        licence.category
    );
}

#[test]
fn a_joint_case_is_seen_by_its_assisting_departments_and_decided_after_their_opinions() {
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let (index, item) = catalog
        .items
        .iter()
        .enumerate()
        .find(|(_, i)| i.assist_departments.len() >= 2)
        .expect("a 联办 item with two assisting departments");
    let (hub, _hub_dir) = HubProcess::staffed(&item.department).unwrap();
    // The assisting departments' accounts, added by the admin on the running hub.
    let assisting: Vec<(String, String)> = item
        .assist_departments
        .iter()
        .enumerate()
        .map(|(n, d)| {
            let account = format!("assist{n}");
            let (status, body) = post_json_as(
                &hub.url("/api/users"),
                &basic_auth("admin", HUB_ADMIN_PASSWORD),
                &json!({"name": account, "password": TEST_PASSWORD, "role": "dept", "dept": d}),
            );
            assert_eq!(status, 201, "{body}");
            (account, d.clone())
        })
        .collect();
    let hb = hub.process.base.clone();
    let (status, created) = post_json_as(
        &hub.url("/api/cases"),
        &basic_auth(WINDOW.0, WINDOW.1),
        &case_body(index, "联办庚"),
    );
    assert_eq!(status, 201, "{created}");
    let no = created["case_no"].as_str().unwrap().to_string();
    ok(act_as(&hb, WINDOW, &no, &json!({"action": "receive"})));
    ok(act_as(&hb, WINDOW, &no, &json!({"action": "accept"})));
    ok(act_as(&hb, DEPT, &no, &json!({"action": "dept_receive"})));
    let (_, lead_page) = get_as(&hb, DEPT, &format!("/cases/{no}"));
    assert!(
        lead_page.contains("出具协办意见，主办部门才能作出决定"),
        "{lead_page}"
    );
    assert_eq!(
        act_as(&hb, DEPT, &no, &json!({"action": "approve"})).0,
        409,
        "no decision before the opinions"
    );
    for (account, _) in &assisting {
        let user = (account.as_str(), TEST_PASSWORD);
        let (status, _) = get_as(&hb, user, &format!("/api/cases/{no}"));
        assert_eq!(status, 200, "{account} sees the case it assists");
        let (_, queue) = get_as(&hb, user, "/queue");
        assert!(queue.contains("联办待出具协办意见") && queue.contains(&no));
        let (_, list) = get_as(&hb, user, "/api/cases");
        assert!(list.contains(&no), "{account}'s list: {list}");
        ok(act_as(
            &hb,
            user,
            &no,
            &json!({"action": "assist_opinion", "note": "同意，信息已核对"}),
        ));
    }
    let decided = ok(act_as(&hb, DEPT, &no, &json!({"action": "approve"})));
    assert_eq!(decided["state"], "DECIDED");
}

#[test]
fn a_bad_review_is_supervised_rectified_and_closed_and_the_village_hears_the_reply() {
    let c = county();
    let no = file_case(&c.node, "差评丙");
    c.sync();
    for (user, body) in [
        (WINDOW, json!({"action": "receive"})),
        (WINDOW, json!({"action": "accept"})),
        (DEPT, json!({"action": "approve"})),
        (
            DEPT,
            json!({"action": "issue_result", "result_name": "结果", "result_no": "R-2"}),
        ),
    ] {
        ok(act_as(&c.hb(), user, &no, &body));
    }
    c.sync();
    ok(act_as(&c.nb(), AGENT, &no, &json!({"action": "deliver"})));
    // A bad review needs its reason.
    assert_eq!(
        act_as(
            &c.nb(),
            AGENT,
            &no,
            &json!({"action": "evaluate", "score": 1})
        )
        .0,
        422
    );
    ok(act_as(
        &c.nb(),
        AGENT,
        &no,
        &json!({"action": "evaluate", "score": 1, "comment": "跑了三趟"}),
    ));
    c.sync();

    // The supervisor sees it waiting for 督办 and opens a rectification with a due date by the
    // county calendar (5 working days).
    let (_, queue) = get_as(&c.hb(), SUPERVISOR, "/queue");
    assert!(
        queue.contains("差评待督办") && queue.contains(&no),
        "{queue}"
    );
    assert_eq!(
        act_as(
            &c.hb(),
            DEPT,
            &no,
            &json!({"action": "supervise", "dept": c.item.department})
        )
        .0,
        403,
        "only the supervisor supervises"
    );
    let opened = ok(act_as(
        &c.hb(),
        SUPERVISOR,
        &no,
        &json!({"action": "supervise", "dept": c.item.department, "note": "三日内回访"}),
    ));
    let due = tongban_shared::calendar::Calendar::builtin()
        .unwrap()
        .due_date(today(), 5)
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(opened["workflow"]["rectification"]["due"], due.as_str());
    assert_eq!(
        opened["workflow"]["rectification"]["owner"],
        c.item.department.as_str()
    );
    let (_, dept_queue) = get_as(&c.hb(), DEPT, "/queue");
    assert!(dept_queue.contains("待整改") && dept_queue.contains(&no));
    // Closing needs the fix first.
    assert_eq!(
        act_as(
            &c.hb(),
            SUPERVISOR,
            &no,
            &json!({"action": "close_rectification", "comment": "满意"})
        )
        .0,
        409
    );
    ok(act_as(
        &c.hb(),
        SUPERVISOR,
        &no,
        &json!({"action": "callback", "note": "电话联系申请人，反映窗口让其多跑了路"}),
    ));
    ok(act_as(
        &c.hb(),
        DEPT,
        &no,
        &json!({"action": "rectify", "note": "已约谈窗口人员，今后材料一次告知"}),
    ));
    let closed = ok(act_as(
        &c.hb(),
        SUPERVISOR,
        &no,
        &json!({"action": "close_rectification", "comment": "申请人表示认可"}),
    ));
    assert_eq!(closed["workflow"]["rectification"]["state"], "closed");
    assert_eq!(closed["workflow"]["rectification"]["callbacks"], 1);
    c.sync();

    // The monthly workbook counts the rectification, its call-back and its closing for the
    // department (read back from the .xlsx the supervisor downloads).
    let month = today().format("%Y-%m").to_string();
    let mut resp = client()
        .get(format!("{}/api/reports/monthly?month={month}", c.hb()))
        .header("Authorization", &basic_auth(SUPERVISOR.0, SUPERVISOR.1))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.body_mut().read_to_vec().unwrap();
    let department_row = department_row(&bytes, &c.item.department);
    assert_eq!(
        department_row,
        [
            ("差评".to_string(), 1.0),
            ("督办整改".to_string(), 1.0),
            ("已回访".to_string(), 1.0),
            ("整改办结".to_string(), 1.0),
            ("回访率".to_string(), 1.0),
            ("整改办结率".to_string(), 1.0),
        ]
    );

    // The reply reaches the village: in its inbox, with what the department did, until the agent
    // has told the applicant.
    assert_eq!(todo_kinds(&c.nb(), &no), ["reply"]);
    let inbox = todo(&c.nb());
    assert_eq!(
        inbox["items"][0]["note"],
        "整改答复：已约谈窗口人员，今后材料一次告知"
    );
    let (_, page) = get_as(&c.nb(), AGENT, &format!("/cases/{no}"));
    assert!(page.contains("已约谈窗口人员，今后材料一次告知"));
    ok(act_as(
        &c.nb(),
        AGENT,
        &no,
        &json!({"action": "inform", "note": "已转告"}),
    ));
    assert!(todo_kinds(&c.nb(), &no).is_empty());
}

#[test]
fn the_applicant_follows_their_case_with_its_password_evaluates_online_and_guesses_are_throttled() {
    let c = county();
    let no = file_case(&c.node, "查询丁");
    let password = case_at(&c.nb(), AGENT, &no)["query_password"]
        .as_str()
        .unwrap()
        .to_string();
    c.sync();
    let hb = c.hb();

    let (status, page) = post_form(&hb, "/query", &[("no", &no), ("password", &password)]);
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("查**") && page.contains("已收件，待县级接收"),
        "{page}"
    );
    for personal in ["11010519491231002X", "13800271234", "查询丁"] {
        assert!(!page.contains(personal), "the page shows {personal}");
    }
    // The same as JSON for the county's other channels (a WeChat page, a kiosk).
    let mut resp = client()
        .get(format!("{hb}/api/query?case_no={no}&password={password}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let json_text = resp.body_mut().read_to_string().unwrap();
    let view: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(view["state"], "SUBMITTED", "{view}");
    assert_eq!(view["applicant"], "查**");
    assert!(view.get("password").is_none());
    for personal in ["11010519491231002X", "13800271234", "查询丁", &password] {
        assert!(!json_text.contains(personal), "the answer holds {personal}");
    }
    let (status, wrong) = post_form(&hb, "/query", &[("no", &no), ("password", "000000")]);
    assert_eq!(status, 404);
    assert!(wrong.contains("办件编号或查询密码不正确") && !wrong.contains("查**"));
    // An unknown number answers the same.
    let (status, _) = post_form(
        &hb,
        "/query",
        &[
            ("no", "420222100201-20260101-9999"),
            ("password", &password),
        ],
    );
    assert_eq!(status, 404);

    // After five wrong passwords for this number even the right one waits.
    for _ in 0..3 {
        assert_eq!(
            post_form(&hb, "/query", &[("no", &no), ("password", "111111")]).0,
            404
        );
    }
    let mut resp = client()
        .get(format!("{hb}/api/query?case_no={no}&password=222222"))
        .call()
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        404,
        "the JSON answer counts as a guess too"
    );
    assert!(resp.body_mut().read_to_string().unwrap().contains("不正确"));
    let (status, locked) = post_form(&hb, "/query", &[("no", &no), ("password", &password)]);
    assert_eq!(status, 429, "{locked}");
    // The node serves the same page for its LAN, with its own throttle: the applicant evaluates
    // there once the result is delivered, recorded as given online.
    for (user, body) in [
        (WINDOW, json!({"action": "receive"})),
        (WINDOW, json!({"action": "accept"})),
        (DEPT, json!({"action": "approve"})),
        (
            DEPT,
            json!({"action": "issue_result", "result_name": "结果", "result_no": "R-3"}),
        ),
    ] {
        ok(act_as(&hb, user, &no, &body));
    }
    c.sync();
    ok(act_as(&c.nb(), AGENT, &no, &json!({"action": "deliver"})));
    let (status, page) = post_form(&c.nb(), "/query", &[("no", &no), ("password", &password)]);
    assert_eq!(status, 200);
    assert!(page.contains("请对本次服务进行评价"));
    let (status, bad) = post_form(
        &c.nb(),
        "/query/evaluate",
        &[("no", &no), ("password", &password), ("score", "2")],
    );
    assert_eq!(status, 422, "a bad review needs a reason");
    assert!(bad.contains("须写明原因"));
    let (status, done) = post_form(
        &c.nb(),
        "/query/evaluate",
        &[
            ("no", &no),
            ("password", &password),
            ("score", "5"),
            ("comment", "很方便"),
        ],
    );
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("感谢您的评价"));
    let at_node = case_at(&c.nb(), AGENT, &no);
    assert_eq!(at_node["state"], "EVALUATED");
    assert_eq!(
        at_node["workflow"]["evaluation_channel"],
        "applicant_online"
    );
    c.sync();
    let at_hub = case_at(&hb, WINDOW, &no);
    assert_eq!(at_hub["state"], "EVALUATED", "the county adopted it");
    assert_eq!(at_hub["workflow"]["evaluation"], 5);
}

#[test]
fn the_agent_amends_until_the_county_receives_and_records_a_withdrawal_the_county_sees() {
    let c = county();
    let no = file_case(&c.node, "更正戊");
    let amended = ok(act_as(
        &c.nb(),
        AGENT,
        &no,
        &json!({"action": "amend", "phone": "13900271234", "note": "号码记错了"}),
    ));
    assert_eq!(amended["applicant"]["phone"], "13900271234");
    c.sync();
    let at_hub = case_at(&c.hb(), WINDOW, &no);
    assert_eq!(at_hub["applicant"]["phone"], "13900271234");
    let amendment = at_hub["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["action"] == "amend")
        .expect("the window sees the amendment")
        .clone();
    // What changed, never the number itself (history is shown masked to some accounts).
    assert_eq!(amendment["note"], "更正手机号码。号码记错了");
    ok(act_as(&c.hb(), WINDOW, &no, &json!({"action": "receive"})));
    c.sync();
    assert_eq!(
        act_as(
            &c.nb(),
            AGENT,
            &no,
            &json!({"action": "amend", "phone": "13700271234"})
        )
        .0,
        409,
        "received: no more amendments"
    );
    assert_eq!(
        act_as(&c.nb(), AGENT, &no, &json!({"action": "withdraw"})).0,
        422,
        "a withdrawal says why"
    );
    let withdrawn = ok(act_as(
        &c.nb(),
        AGENT,
        &no,
        &json!({"action": "withdraw", "reason": "申请人已在外地办理"}),
    ));
    assert_eq!(withdrawn["state"], "WITHDRAWN");
    c.sync();
    assert!(eventually(Duration::from_secs(10), || {
        case_at(&c.hb(), WINDOW, &no)["state"] == "WITHDRAWN"
    }));
    assert_eq!(
        act_as(&c.hb(), WINDOW, &no, &json!({"action": "accept"})).0,
        409,
        "a withdrawn case is closed"
    );
}

/// The complaint columns of `department`'s row on the workbook's 部门 sheet, by their headings.
fn department_row(xlsx: &[u8], department: &str) -> Vec<(String, f64)> {
    use calamine::{Data, Reader};
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(xlsx.to_vec())).unwrap();
    let sheet = wb.worksheet_range("部门").unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    let is = |c: &Data, text: &str| matches!(c, Data::String(s) if s == text);
    let heading = rows
        .iter()
        .find(|r| r.first().is_some_and(|c| is(c, "部门")))
        .expect("the heading row");
    let row = rows
        .iter()
        .find(|r| r.first().is_some_and(|c| is(c, department)))
        .unwrap_or_else(|| panic!("no row for {department}"));
    [
        "差评",
        "督办整改",
        "已回访",
        "整改办结",
        "回访率",
        "整改办结率",
    ]
    .iter()
    .map(|name| {
        let col = heading
            .iter()
            .position(|c| is(c, name))
            .unwrap_or_else(|| panic!("no column {name}"));
        let value = match &row[col] {
            Data::Float(f) => *f,
            Data::Int(i) => *i as f64,
            other => panic!("{name}: {other:?}"),
        };
        (name.to_string(), value)
    })
    .collect()
}
