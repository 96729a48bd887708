//! Fees and payment (issue 18, part 5) through real hub and village processes: a village files a
//! fee-charging item offline; the department's approval leaves it in 待缴费 with a text telling the
//! applicant how much and where to pay; the result cannot be issued before the window records the
//! payment (amount, method, receipt number), which only the window may record, once; then the case
//! resumes, the village sees the payment, and the dashboard and the monthly workbook sum the fee for
//! the department.

use serde_json::{json, Value};
use tongban_shared::catalog::Catalog;
use tongban_tests::*;

const WINDOW: (&str, &str) = ("window1", TEST_PASSWORD);
const DEPT: (&str, &str) = ("dept1", TEST_PASSWORD);
const SUPERVISOR: (&str, &str) = ("sup1", TEST_PASSWORD);

fn act(hub: &HubProcess, user: (&str, &str), no: &str, body: Value) -> (u16, Value) {
    act_as(&hub.process.base, user, no, &body)
}

fn payment(amount: &str, method: &str, receipt: &str) -> Value {
    json!({"action": "record_payment", "fee_yuan": amount, "pay_method": method, "pay_receipt": receipt})
}

/// The 缴费笔数 and 收费（元） of `department` on the workbook's 部门 sheet.
fn fee_columns(xlsx: &[u8], department: &str) -> (f64, f64) {
    use calamine::{Data, Reader};
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(xlsx.to_vec())).unwrap();
    let sheet = wb.worksheet_range("部门").unwrap();
    let rows: Vec<&[Data]> = sheet.rows().collect();
    let is = |c: &Data, text: &str| matches!(c, Data::String(s) if s == text);
    let heading = rows
        .iter()
        .find(|r| r.first().is_some_and(|c| is(c, "部门")))
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r.first().is_some_and(|c| is(c, department)))
        .unwrap();
    let value = |name: &str| {
        let col = heading.iter().position(|c| is(c, name)).unwrap();
        match &row[col] {
            Data::Float(f) => *f,
            Data::Int(i) => *i as f64,
            other => panic!("{name}: {other:?}"),
        }
    };
    (value("缴费笔数"), value("收费（元）"))
}

#[test]
fn an_approved_fee_case_waits_for_the_windows_payment_record_then_resumes() {
    let catalog = Catalog::builtin().unwrap();
    // 居民身份证换领: 20 yuan, fixed by the catalogue.
    let index = catalog
        .items
        .iter()
        .position(|i| i.code == "YX-GA-001")
        .unwrap();
    let item = &catalog.items[index];
    assert_eq!(item.fee.as_ref().unwrap().amount_fen, 2000);
    let (hub, _hub_dir) = HubProcess::staffed(&item.department).unwrap();
    let hb = hub.process.base.clone();
    let (village, _village_dir) = hub
        .village("420222100201", &["--sync-interval", "3600"])
        .unwrap();
    let (status, created) = post_json(
        &client(),
        &village.url("/api/cases"),
        &case_body(index, "缴费甲"),
        None,
    )
    .unwrap();
    assert_eq!(status, 201, "{created}");
    let no = created["case_no"].as_str().unwrap().to_string();
    assert_eq!(village.sync_now().0, 200);

    for (user, action) in [
        (WINDOW, "receive"),
        (WINDOW, "accept"),
        (DEPT, "dept_receive"),
        (DEPT, "approve"),
    ] {
        let (status, body) = act(&hub, user, &no, json!({"action": action}));
        assert_eq!(status, 200, "{action}: {body}");
    }
    let case = case_json(&hb, WINDOW, &no);
    assert_eq!(case["state_label"], "已决定准予，待申请人缴费", "{case}");
    assert_eq!(case["workflow"]["fee_due_fen"], 2000);

    // The applicant is told how much and where.
    let (_, outbox) = get_json_as(
        &client(),
        &hub.url(&format!("/api/outbox?case_no={no}")),
        &basic_auth(WINDOW.0, WINDOW.1),
    )
    .unwrap();
    let texts: Vec<&Value> = outbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "fee_due")
        .collect();
    assert_eq!(texts.len(), 1, "{outbox}");
    assert!(
        texts[0]["text"].as_str().unwrap().contains("需缴费20.00元"),
        "{outbox}"
    );

    // The dashboard counts it as waiting for payment.
    let (_, dashboard) = get_text_as(&hb, SUPERVISOR, "/dashboard");
    assert!(dashboard.contains("待缴费 1 件"), "{dashboard}");

    // The window's queue holds it under 待缴费.
    let (_, queue) = get_text_as(&hb, WINDOW, "/queue");
    let to_pay = queue.split("id=\"to-pay\"").nth(1).unwrap_or_default();
    assert!(to_pay.contains(&no), "{queue}");

    // No result before the payment; only the window records it, for the amount owed.
    let result =
        json!({"action": "issue_result", "result_name": "居民身份证", "result_no": "SFZ-1"});
    let (status, body) = act(&hub, DEPT, &no, result.clone());
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("尚未缴费"),
        "{body}"
    );
    let (status, _) = act(&hub, DEPT, &no, payment("20", "现金", "FS-1"));
    assert_eq!(status, 403);
    let (status, body) = act(&hub, WINDOW, &no, payment("2", "现金", "FS-1"));
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("20.00元"),
        "{body}"
    );
    let (status, body) = act(&hub, WINDOW, &no, payment("20.00", "微信", "FS-2026-0001"));
    assert_eq!(status, 200, "{body}");
    let (status, _) = act(&hub, WINDOW, &no, payment("20", "现金", "FS-2026-0002"));
    assert_eq!(status, 409, "paid once");

    let (_, queue) = get_text_as(&hb, WINDOW, "/queue");
    let to_pay = queue.split("id=\"to-pay\"").nth(1).unwrap_or_default();
    let to_pay = to_pay.split("<h2").next().unwrap_or_default();
    assert!(!to_pay.contains(&no), "{queue}");
    let (status, body) = act(&hub, DEPT, &no, result);
    assert_eq!(status, 200, "{body}");
    let (_, dashboard) = get_text_as(&hb, SUPERVISOR, "/dashboard");
    let fees = dashboard
        .split("id=\"fees-by-department\"")
        .nth(1)
        .unwrap_or_default();
    assert!(
        fees.contains(&format!(
            "<td>{}</td><td>0</td><td>1</td><td>20.00元</td>",
            item.department
        )),
        "{dashboard}"
    );
    assert!(dashboard.contains("待缴费 0 件"), "{dashboard}");

    // The village sees the payment with its next sync.
    assert_eq!(village.sync_now().0, 200);
    let at_village = case_json(&village.base, (TEST_USER, TEST_PASSWORD), &no);
    assert_eq!(at_village["workflow"]["paid_fen"], 2000, "{at_village}");
    assert_eq!(at_village["workflow"]["pay_receipt"], "FS-2026-0001");
    assert_eq!(at_village["state"], "RESULT_READY");

    // The month's workbook sums the fee for the department.
    let month = case_json(&hb, WINDOW, &no)["workflow"]["paid_on"]
        .as_str()
        .unwrap()[..7]
        .to_string();
    let mut resp = client()
        .get(format!("{hb}/api/reports/monthly?month={month}"))
        .header("Authorization", &basic_auth(SUPERVISOR.0, SUPERVISOR.1))
        .call()
        .unwrap();
    let bytes = resp.body_mut().read_to_vec().unwrap();
    assert_eq!(fee_columns(&bytes, &item.department), (1.0, 20.0));
}
