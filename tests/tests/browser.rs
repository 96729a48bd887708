//! End to end in a real headless Chromium: log in, find an item by typing, file a case through the
//! form (first with a mistyped ID number), open the receipt. Screenshots go to `docs/`.

use std::path::PathBuf;

use tongban_tests::webdriver::Chromedriver;
use tongban_tests::*;

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

#[test]
fn agent_logs_in_files_a_case_and_opens_its_receipt() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let node = NodeProcess::serve(dir.path()).unwrap();
    let driver = Chromedriver::start().unwrap();
    let b = driver.session().unwrap();

    // Any page sends a stranger to the login page.
    b.goto(&node.url("/cases/new")).unwrap();
    assert!(b.current_url().unwrap().contains("/login"));
    b.type_into("#user", TEST_USER).unwrap();
    b.type_into("#password", "wrong-password").unwrap();
    b.click_css_and_wait("#login-button").unwrap();
    assert!(b.page_text().unwrap().contains("账号或密码不正确"));
    b.type_into("#password", TEST_PASSWORD).unwrap();
    b.click_css_and_wait("#login-button").unwrap();
    assert!(
        b.current_url().unwrap().ends_with("/cases/new"),
        "login returns to the page asked for"
    );

    // Typing part of a name narrows the item list as the agent types.
    b.type_into("#item-search", "残疾人证").unwrap();
    let visible: Vec<_> = b
        .find_all(".items a.item")
        .unwrap()
        .into_iter()
        .filter(|e| b.is_displayed(e).unwrap())
        .collect();
    assert!(!visible.is_empty(), "search found nothing");
    let all = b.find_all(".items a.item").unwrap().len();
    assert!(visible.len() < all, "search did not filter");
    let chosen = b.text(&visible[0]).unwrap();
    assert!(chosen.contains("残疾人证"), "{chosen}");
    b.click_and_wait(&visible[0]).unwrap();

    // Fill the form with a mistyped ID number: the form says which field and keeps what was typed.
    b.type_into("#name", "王秀英").unwrap();
    b.type_into("#id_number", "11010519491231003X").unwrap();
    b.type_into("#phone", "13800271234").unwrap();
    for checkbox in b.find_all("input[name=materials]").unwrap() {
        b.click(&checkbox).unwrap();
    }
    b.screenshot(&docs_dir().join("screenshot-new-case.png"))
        .unwrap();
    b.click_css_and_wait("#submit-case").unwrap();
    let errors = b.text(&b.find("#form-errors").unwrap()).unwrap();
    assert!(errors.contains("身份证号码校验位不正确"), "{errors}");
    let kept = b
        .script("return document.getElementById('name').value;")
        .unwrap();
    assert_eq!(kept, "王秀英");

    b.type_into("#id_number", "11010519491231002X").unwrap();
    b.click_css_and_wait("#submit-case").unwrap();
    let banner = b.text(&b.find("#created-banner").unwrap()).unwrap();
    assert!(banner.contains("办件已保存"), "{banner}");
    let url = b.current_url().unwrap();
    let case_no = url
        .rsplit("/cases/")
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    assert!(case_no.starts_with(TEST_CODE), "{url}");

    b.click_css_and_wait("#open-receipt").unwrap();
    let receipt = b.page_text().unwrap();
    assert!(receipt.contains("政务服务事项申请材料受理凭证"));
    assert_eq!(
        receipt.matches(&case_no).count(),
        3,
        "case number on all three parts"
    );
    for part in ["申请人留存", "代办员留存", "随件存档"] {
        assert!(receipt.contains(part), "receipt lacks {part}");
    }
    b.screenshot(&docs_dir().join("screenshot-receipt.png"))
        .unwrap();

    // The case is on the home page's list of today's cases, found by the list's text and state
    // filters, absent under another state, and stored exactly once.
    b.goto(&node.url("/")).unwrap();
    assert!(b.page_text().unwrap().contains(&case_no));
    b.goto(&node.url("/cases")).unwrap();
    b.type_into("#q", "王秀英").unwrap();
    b.click_css_and_wait("form.filters button[type=submit]")
        .unwrap();
    let found = b.page_text().unwrap();
    assert!(
        found.contains("共找到 1 件") && found.contains(&case_no),
        "{found}"
    );
    b.goto(&node.url("/cases?state=DELIVERED")).unwrap();
    assert!(b.page_text().unwrap().contains("共找到 0 件"));
    let agent = client();
    let (_, page) = get_json(&agent, &node.url("/api/cases")).unwrap();
    assert_eq!(page["total"], 1);
}
