//! 缴费登记 (issue 18, part 5) in a real headless Chromium against a real hub: an approved
//! fee-charging case reads 待缴费 on its page with the amount owed; the window records the payment on
//! the page's form (a wrong amount is refused and said why); the page then shows the payment, and the
//! department is offered the result. Screenshots go to `docs/screens/`.

use serde_json::json;
use tongban_shared::catalog::Catalog;
use tongban_tests::webdriver::{Browser, Chromedriver};
use tongban_tests::*;

const WINDOW: (&str, &str) = ("window1", TEST_PASSWORD);
const DEPT: (&str, &str) = ("dept1", TEST_PASSWORD);

fn pay(b: &Browser, amount: &str) {
    b.type_into("#pay-amount", amount).unwrap();
    b.script("document.getElementById('pay-method').value = '银行卡';")
        .unwrap();
    b.type_into("#pay-receipt", "FS-2026-0007").unwrap();
    b.click_css_and_wait("#action-record_payment button[type=submit]")
        .unwrap();
}

#[test]
fn the_window_records_a_payment_on_the_case_page_and_the_result_is_offered() {
    let catalog = Catalog::builtin().unwrap();
    let index = catalog
        .items
        .iter()
        .position(|i| i.code == "YX-GA-001")
        .unwrap();
    let (hub, _dir) = HubProcess::staffed(&catalog.items[index].department).unwrap();
    let base = hub.process.base.clone();
    let mut body = case_body(index, "缴费乙");
    body["delivery"] = json!("窗口领取");
    let (status, created) = post_json_as(
        &hub.url("/api/cases"),
        &basic_auth(WINDOW.0, WINDOW.1),
        &body,
    );
    assert_eq!(status, 201, "{created}");
    let no = created["case_no"].as_str().unwrap().to_string();
    for (user, action) in [
        (WINDOW, "receive"),
        (WINDOW, "accept"),
        (DEPT, "dept_receive"),
        (DEPT, "approve"),
    ] {
        let (status, body) = act_as(&base, user, &no, &json!({"action": action}));
        assert!(
            status == 200 || (action == "receive" && status == 409),
            "{action}: {status} {body}"
        );
    }

    let driver = Chromedriver::start().unwrap();
    let b = driver.session().unwrap();
    b.resize(1366, 768).unwrap();
    b.log_in(&base, WINDOW.0, WINDOW.1).unwrap();
    b.goto(&format!("{base}/cases/{no}")).unwrap();
    let state = b.text(&b.find("#state-label").unwrap()).unwrap();
    assert_eq!(state, "已决定准予，待申请人缴费");
    let fee = b.text(&b.find("#fee-line").unwrap()).unwrap();
    assert_eq!(fee, "应缴20.00元（未缴）");
    let due = b.text(&b.find("#fee-due").unwrap()).unwrap();
    assert!(due.contains("20.00元"), "{due}");
    b.screenshot_for_docs("case-awaiting-payment").unwrap();

    pay(&b, "2");
    let text = b.page_text().unwrap();
    assert!(text.contains("实收金额应为应缴的20.00元"), "{text}");
    pay(&b, "20");
    let fee = b.text(&b.find("#fee-line").unwrap()).unwrap();
    assert!(
        fee.contains("已缴：20.00元") && fee.contains("银行卡") && fee.contains("FS-2026-0007"),
        "{fee}"
    );
    assert!(b.find_all("#action-record_payment").unwrap().is_empty());

    b.log_in(&base, DEPT.0, DEPT.1).unwrap();
    b.goto(&format!("{base}/cases/{no}")).unwrap();
    assert_eq!(b.find_all("#action-issue_result").unwrap().len(), 1);
}
