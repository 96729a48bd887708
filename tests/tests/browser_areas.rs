//! Service areas (issue 18, part 3) in a real headless Chromium at 1366×768 against a real hub: the
//! admin adds a 企业事务 window on the accounts page; that window's item list holds only its area's
//! items and says so, another area's item is refused with the reason, and its queue page names its
//! area. Screenshots go to `docs/screens/`.

use tongban_shared::catalog::Catalog;
use tongban_tests::webdriver::Chromedriver;
use tongban_tests::*;

#[test]
fn the_admin_adds_an_area_window_and_it_sees_only_its_areas_items() {
    let catalog = Catalog::builtin().unwrap();
    let dir = tempfile::tempdir().unwrap();
    HubProcess::init(dir.path()).unwrap();
    let hub = HubProcess::serve(dir.path(), "127.0.0.1:0").unwrap();
    let base = hub.process.base.clone();
    let driver = Chromedriver::start().unwrap();
    let b = driver.session().unwrap();
    b.resize(1366, 768).unwrap();

    b.log_in(&base, "admin", HUB_ADMIN_PASSWORD).unwrap();
    b.goto(&format!("{base}/accounts")).unwrap();
    let areas: Vec<String> = b
        .find_all("#new-area option")
        .unwrap()
        .iter()
        .map(|o| b.text(o).unwrap())
        .collect();
    assert!(
        areas.iter().any(|a| a == "企业事务") && areas.iter().any(|a| a == "不动产交易"),
        "{areas:?}"
    );
    b.type_into("#new-name", "qiye").unwrap();
    b.type_into("#new-display", "陈敏").unwrap();
    b.script("document.getElementById('new-role').value = 'window';")
        .unwrap();
    b.script("document.getElementById('new-area').value = '企业事务';")
        .unwrap();
    b.type_into("#new-password", TEST_PASSWORD).unwrap();
    b.click_css_and_wait("#add-account button[type=submit]")
        .unwrap();
    let text = b.page_text().unwrap();
    assert!(text.contains("已新增账号 qiye"), "{text}");
    assert!(
        text.contains("企业事务窗口"),
        "the list names the area: {text}"
    );
    b.screenshot_for_docs("accounts-area-window").unwrap();

    b.log_in(&base, "qiye", TEST_PASSWORD).unwrap();
    b.goto(&format!("{base}/cases/new")).unwrap();
    let note = b.text(&b.find("#window-area").unwrap()).unwrap();
    assert!(note.contains("企业事务窗口"), "{note}");
    let listed: Vec<String> = b
        .find_all(".items a.item .name")
        .unwrap()
        .iter()
        .map(|e| b.text(e).unwrap())
        .collect();
    let want: Vec<String> = catalog
        .received_at(Some("企业事务"))
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(listed, want);
    b.screenshot_for_docs("choose-item-area-window").unwrap();

    // Another area's item, reached by its address, is refused with where to send the applicant.
    b.goto(&format!("{base}/cases/new?item=YX-RS-001")).unwrap();
    let refused = b.page_text().unwrap();
    assert!(
        refused.contains("本窗口属于企业事务区") && refused.contains("社会事务窗口"),
        "{refused}"
    );

    b.goto(&format!("{base}/queue")).unwrap();
    let queue = b.text(&b.find("#window-area").unwrap()).unwrap();
    assert!(queue.contains("企业事务窗口"), "{queue}");
}
