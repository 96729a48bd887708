//! The agent's to-do inbox in a real headless Chromium at 1366×768, against real hub and village
//! processes: a correction request arrives by sync (the banner says so without a reload), is handled
//! on the case page and leaves the inbox; the result arrives and waits to be delivered; each notice
//! prints with its content. Screenshots of each page go to `docs/screens/` (linked from the README).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use tongban_tests::webdriver::{Browser, Chromedriver};
use tongban_tests::*;

const WINDOW: (&str, &str) = ("window1", TEST_PASSWORD);
const DEPT: (&str, &str) = ("dept1", TEST_PASSWORD);

fn screens() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screens");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn shot(b: &Browser, name: &str) {
    b.screenshot(&screens().join(format!("{name}.png")))
        .unwrap();
}

fn login(b: &Browser, base: &str, user: (&str, &str)) {
    b.goto(&format!("{base}/login")).unwrap();
    b.type_into("#user", user.0).unwrap();
    b.type_into("#password", user.1).unwrap();
    b.click_css_and_wait("#login-button").unwrap();
}

/// Whether the page has an element matching `css` that is shown, polled until `limit` (the
/// header's counts refresh every few seconds).
fn shows_within(b: &Browser, css: &str, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        let shown = b
            .find_all(css)
            .unwrap()
            .iter()
            .any(|e| b.is_displayed(e).unwrap_or(false));
        if shown || start.elapsed() > limit {
            return shown;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ok((status, body): (u16, serde_json::Value)) {
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_agent_works_the_inbox_and_prints_every_notice() {
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let item = catalog.items[0].clone();
    let (hub, _hub_dir) = HubProcess::staffed(&item.department).unwrap();
    let hb = hub.process.base.clone();
    let (node, _node_dir) = hub
        .village("420222100201", &["--sync-interval", "3600"])
        .unwrap();
    let nb = node.base.clone();
    let sync = || assert_eq!(node.sync_now().0, 200);

    let no = file_case(&node, "王秀英");
    sync();
    let driver = Chromedriver::start().unwrap();
    let b = driver.session().unwrap();
    login(&b, &nb, (TEST_USER, TEST_PASSWORD));
    let home = b.page_text().unwrap();
    assert!(home.contains("目前没有需要您处理的办件"), "{home}");

    // The county asks for a correction while the agent has the home page open: after the sync the
    // banner and the header's count say so without a reload.
    ok(act_as(&hb, WINDOW, &no, &json!({"action": "receive"})));
    let first = item.materials[0].id.clone();
    ok(act_as(
        &hb,
        WINDOW,
        &no,
        &json!({"action": "request_correction", "missing": [first],
                "problems": {first.as_str(): "复印件不清晰"}, "note": "请重新复印身份证"}),
    ));
    sync();
    assert!(
        shows_within(&b, "#todo-banner", Duration::from_secs(15)),
        "no banner after the sync"
    );
    let banner = b.text(&b.find("#todo-banner").unwrap()).unwrap();
    assert!(banner.contains("同步后新增 1 件需要处理"), "{banner}");
    assert_eq!(b.text(&b.find("#nav-todo-count").unwrap()).unwrap(), "1");
    b.click_css_and_wait("#todo-banner-link").unwrap();
    let inbox = b.text(&b.find("#todo").unwrap()).unwrap();
    assert!(inbox.contains("待补正") && inbox.contains(&no), "{inbox}");
    assert!(!b
        .find("#todo-banner")
        .map(|e| b.is_displayed(&e).unwrap())
        .unwrap_or(false));
    shot(&b, "home-inbox");

    // The case page says what is wrong and offers the correction among grouped actions.
    b.goto(&format!("{nb}/cases/{no}")).unwrap();
    let page = b.text(&b.find("#missing-box").unwrap()).unwrap();
    assert!(page.contains("复印件不清晰"), "{page}");
    shot(&b, "case-correction");
    b.click_css_and_wait("#notice-correction").unwrap();
    let notice = b.page_text().unwrap();
    assert!(notice.contains("补正材料通知书") && notice.contains("复印件不清晰"));
    assert!(notice.contains(&item.materials[0].name) && notice.contains("王秀英"));
    shot(&b, "notice-correction");

    b.goto(&format!("{nb}/cases/{no}")).unwrap();
    // The agent ticks what the applicant brought (every material the county asked for).
    assert!(
        !b.find_all("#action-submit_correction input[name=materials]")
            .unwrap()
            .is_empty(),
        "the correction form lists the materials"
    );
    b.script(
        "document.querySelectorAll('#action-submit_correction input[name=materials]')\
         .forEach(function (c) { c.checked = true; }); return true;",
    )
    .unwrap();
    b.click_css_and_wait("#action-submit_correction button[type=submit]")
        .unwrap();
    b.goto(&format!("{nb}/")).unwrap();
    assert!(
        b.find_all("#todo-correction").unwrap().is_empty(),
        "handled: gone from the inbox"
    );

    // The county accepts, decides and issues the result: it waits to be delivered.
    sync();
    for (user, body) in [
        (WINDOW, json!({"action": "accept"})),
        (DEPT, json!({"action": "approve"})),
        (
            DEPT,
            json!({"action": "issue_result", "result_name": "参保登记结果", "result_no": "YX-R-1"}),
        ),
    ] {
        ok(act_as(&hb, user, &no, &body));
    }
    sync();
    b.goto(&format!("{nb}/")).unwrap();
    let inbox = b.text(&b.find("#todo").unwrap()).unwrap();
    assert!(
        inbox.contains("结果待送达") && inbox.contains(&no),
        "{inbox}"
    );
    for (kind, expect) in [("acceptance", "受理通知书"), ("decision", "准予办理通知书")]
    {
        b.goto(&format!("{nb}/cases/{no}/notices/{kind}")).unwrap();
        let text = b.page_text().unwrap();
        assert!(
            text.contains(expect) && text.contains(&no),
            "{kind}: {text}"
        );
        shot(&b, &format!("notice-{kind}"));
    }
    b.goto(&format!("{nb}/cases/{no}")).unwrap();
    b.click_css_and_wait("#action-deliver button[type=submit]")
        .unwrap();
    b.goto(&format!("{nb}/cases/{no}/notices/delivery"))
        .unwrap();
    let receipt = b.page_text().unwrap();
    assert!(receipt.contains("送达回证") && receipt.contains("参保登记结果"));
    shot(&b, "notice-delivery");
    b.goto(&format!("{nb}/items/{}/checklist", item.code))
        .unwrap();
    let checklist = b.page_text().unwrap();
    assert!(checklist.contains("一次性告知单") && checklist.contains(&item.materials[0].name));
    shot(&b, "notice-checklist");

    // The applicant's own view at the county: number and password, nothing personal.
    let password = {
        let (_, body) = get_json(&client(), &node.url(&format!("/api/cases/{no}"))).unwrap();
        body["query_password"].as_str().unwrap().to_string()
    };
    let applicant = driver.session().unwrap();
    applicant.goto(&format!("{hb}/query?no={no}")).unwrap();
    applicant.type_into("#password", &password).unwrap();
    applicant.click_css_and_wait("#query-button").unwrap();
    let view = applicant.page_text().unwrap();
    assert!(
        view.contains("结果已送达") || view.contains("已送达"),
        "{view}"
    );
    assert!(!view.contains("11010519491231002X") && !view.contains("13800271234"));
    shot(&applicant, "self-query");

    // The window's case page at the county: county wording, the actions grouped.
    let clerk = driver.session().unwrap();
    let other = file_case(&node, "李四");
    sync();
    login(&clerk, &hb, WINDOW);
    assert!(
        clerk.current_url().unwrap().ends_with("/queue"),
        "the clerk starts at the queue"
    );
    clerk.goto(&format!("{hb}/cases/{other}")).unwrap();
    let text = clerk.page_text().unwrap();
    assert!(
        text.contains("待窗口接收") && !text.contains("再建一件"),
        "{text}"
    );
    shot(&clerk, "county-case");

    // At Windows' 125 % scaling a 1366×768 screen is 1093 CSS pixels wide: the header wraps as a
    // whole, every menu entry stays on one line.
    clerk.resize(1093, 614).unwrap();
    clerk.goto(&format!("{hb}/queue")).unwrap();
    let tallest = clerk
        .script(
            "return Math.max.apply(null, Array.from(document.querySelectorAll('header.top nav a, \
             header.top nav button')).map(function (e) { return e.getBoundingClientRect().height; }));",
        )
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(tallest < 45.0, "a menu entry wraps: {tallest}px tall");
    shot(&clerk, "county-queue-125");

    // A rejection waits in the village's inbox, with the notice of the applicant's rights.
    ok(act_as(&hb, WINDOW, &other, &json!({"action": "receive"})));
    ok(act_as(
        &hb,
        WINDOW,
        &other,
        &json!({"action": "reject", "reason": "申请人不属于本县户籍"}),
    ));
    sync();
    b.goto(&format!("{nb}/")).unwrap();
    let inbox = b.text(&b.find("#todo").unwrap()).unwrap();
    assert!(inbox.contains("被退回/不予受理") && inbox.contains("申请人不属于本县户籍"));
    b.goto(&format!("{nb}/cases/{other}/notices/rejection"))
        .unwrap();
    let notice = b.page_text().unwrap();
    assert!(
        notice.contains("不予受理通知书") && notice.contains("行政复议"),
        "{notice}"
    );
    shot(&b, "notice-rejection");
}
