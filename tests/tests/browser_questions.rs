//! 中台 policy questions (issue 18, part 1) in a real headless Chromium against real hub and village
//! processes: the agent asks on the village's case page; after the sync the department answers on
//! the hub's case page; after the next sync the village's case page shows the answer. Screenshots go
//! to `docs/screens/`.

use tongban_tests::webdriver::Chromedriver;
use tongban_tests::*;

const DEPT: (&str, &str) = ("dept1", TEST_PASSWORD);

#[test]
fn the_agent_asks_on_the_case_page_and_reads_the_departments_answer_after_the_sync() {
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let (hub, _hub_dir) = HubProcess::staffed(&catalog.items[0].department).unwrap();
    let (village, _village_dir) = hub
        .village("420222100201", &["--sync-interval", "3600"])
        .unwrap();
    let no = file_case(&village, "咨询乙");
    let driver = Chromedriver::start().unwrap();
    let b = driver.session().unwrap();
    b.resize(1366, 768).unwrap();

    b.log_in(&village.base, TEST_USER, TEST_PASSWORD).unwrap();
    b.goto(&village.url(&format!("/cases/{no}"))).unwrap();
    let question = "申请人已满60周岁，还能补缴以前年度的保费吗？";
    b.type_into("#ask-note", question).unwrap();
    b.click_css_and_wait("#action-ask button[type=submit]")
        .unwrap();
    let asked = b.text(&b.find("#questions").unwrap()).unwrap();
    assert!(
        asked.contains(question) && asked.contains("等待") && asked.contains("中台答复"),
        "{asked}"
    );

    assert_eq!(village.sync_now().0, 200);
    b.log_in(&hub.process.base, DEPT.0, DEPT.1).unwrap();
    b.goto(&format!("{}/cases/{no}", hub.process.base)).unwrap();
    let options = b.find_all("#answer-target option").unwrap();
    assert_eq!(options.len(), 1);
    assert_eq!(b.text(&options[0]).unwrap(), question);
    let answer = "可以按规定补缴，具体年限以县社保中心核定为准。";
    b.type_into("#answer-note", answer).unwrap();
    b.screenshot_for_docs("case-question-answer").unwrap();
    b.click_css_and_wait("#action-answer button[type=submit]")
        .unwrap();
    assert!(b.find_all("#action-answer").unwrap().is_empty(), "answered");

    assert_eq!(village.sync_now().0, 200);
    b.log_in(&village.base, TEST_USER, TEST_PASSWORD).unwrap();
    b.goto(&village.url(&format!("/cases/{no}"))).unwrap();
    let answered = b.text(&b.find("#questions .answer").unwrap()).unwrap();
    assert_eq!(answered, answer);
    b.screenshot_for_docs("case-question-answered-village")
        .unwrap();
}
