//! The county admin's pages on a running hub (issue 16, part 2), through cookie sessions and CSRF
//! forms as a browser sends them: the holiday calendar as a form, the catalogue's export and import
//! with a preview of its changes, and the monthly workbook's month picker.

use serde_json::Value;
use tongban_tests::*;

const ADMIN: (&str, &str) = ("admin", HUB_ADMIN_PASSWORD);

fn api(hub: &HubProcess, path: &str) -> Value {
    let (status, body) = get_text_as(&hub.process.base, ADMIN, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of the first `<input … name="NAME" value="…">` on a page, unescaped.
fn input_value(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no input {name}"));
    let rest = &html[at + name.len() + 15..];
    let raw = &rest[..rest.find('"').unwrap()];
    raw.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Posts a file the way a browser's upload form does (multipart/form-data).
fn upload(base: &str, (cookie, csrf): &(String, String), path: &str, file: &[u8]) -> (u16, String) {
    let boundary = "----tongbanTestBoundary7MA4YWxk";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"catalog.json\"\r\n\
             Content-Type: application/json\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut resp = client()
        .post(format!("{base}{path}"))
        .header(
            "Content-Type",
            &format!("multipart/form-data; boundary={boundary}"),
        )
        .header("Cookie", cookie)
        .send(body.as_slice())
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn the_admin_enters_a_years_holidays_as_a_form_and_a_mistake_keeps_what_was_typed() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(dir.path(), "127.0.0.1:0").unwrap();
    let base = hub.process.base.clone();
    let admin = session(&base, ADMIN, "/calendar");
    let (_, page) = page_with(&base, &admin.0, "/calendar?year=2026");
    // The table in use is shown, and the form of a loaded year is filled with it.
    assert!(page.contains("id=\"year-2026\""), "{page}");
    assert!(page.contains("value=\"春节\""), "{page}");
    let before = api(&hub, "/api/calendar")["version"].clone();

    let typed = [
        ("year", "2027"),
        ("source", "国务院办公厅关于2027年部分节假日安排的通知"),
        ("h_name", "元旦"),
        ("h_from", "2027-01-01"),
        ("h_to", "2027-01-03"),
        ("h_name", "春节"),
        ("h_from", "2027-02-12"),
        ("h_to", "2027-02-05"),
        ("m_date", "2027-02-20"),
        ("m_date", "2026-13-40"),
    ];
    let (status, page) = post_form(&base, &admin, "/calendar", &typed);
    assert_eq!(status, 200);
    assert!(page.contains("未保存"), "{page}");
    assert!(page.contains("结束日期早于开始日期"), "{page}");
    assert!(page.contains("不是有效日期"), "{page}");
    // Everything typed is still there to be corrected.
    for kept in [
        "value=\"2027-02-12\"",
        "value=\"2026-13-40\"",
        "value=\"国务院办公厅关于2027年部分节假日安排的通知\"",
    ] {
        assert!(page.contains(kept), "{kept} lost: {page}");
    }
    assert_eq!(api(&hub, "/api/calendar")["version"], before);

    let mut fixed = typed;
    fixed[6] = ("h_from", "2027-02-05");
    fixed[7] = ("h_to", "2027-02-12");
    fixed[9] = ("m_date", "");
    let (status, page) = post_form(&base, &admin, "/calendar", &fixed);
    assert_eq!(status, 200);
    assert!(page.contains("2027年的安排已保存"), "{page}");
    let cal = api(&hub, "/api/calendar");
    assert!(
        cal["years"].as_array().unwrap().contains(&2027.into()),
        "{cal}"
    );
    assert_ne!(cal["version"], before);
    // The year's form now shows what was saved, and nothing of the empty or removed rows.
    let (_, page) = page_with(&base, &admin.0, "/calendar?year=2027");
    assert!(page.contains("id=\"year-2027\""), "{page}");
    assert!(page.contains("value=\"2027-02-05\"") && page.contains("value=\"2027-02-20\""));
    assert!(!page.contains("2026-13-40"), "{page}");
}

#[test]
fn the_admin_exports_the_catalogue_imports_an_edit_sees_what_changes_and_publishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(dir.path(), "127.0.0.1:0").unwrap();
    let base = hub.process.base.clone();
    let admin = session(&base, ADMIN, "/catalog");
    let (status, exported) = page_with(&base, &admin.0, "/catalog/export");
    assert_eq!(status, 200);
    let mut catalog: Value = serde_json::from_str(&exported).unwrap();
    let version = catalog["version"].as_u64().unwrap();
    let items = catalog["items"].as_array_mut().unwrap();
    // An item with a promise of days (not 即办) gets a shorter one; another item is dropped.
    let edited = items
        .iter()
        .position(|i| i["promised_days"].as_u64().unwrap() >= 2)
        .unwrap();
    let first_code = items[edited]["code"].as_str().unwrap().to_string();
    let promised = items[edited]["promised_days"].as_u64().unwrap();
    items[edited]["promised_days"] = (promised - 1).into();
    let removed = items.remove(if edited == 0 { 1 } else { 0 });
    let removed_name = removed["name"].as_str().unwrap().to_string();

    // Not a catalogue: refused with the reason, nothing shown to publish.
    let (_, page) = upload(&base, &admin, "/catalog/preview", b"{ not json");
    assert!(page.contains("未导入：文件不是有效的JSON"), "{page}");
    assert!(!page.contains("catalog-preview"), "{page}");

    let (status, page) = upload(
        &base,
        &admin,
        "/catalog/preview",
        catalog.to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"catalog-preview\""), "{page}");
    assert!(page.contains("承诺时限："), "{page}");
    assert!(page.contains(&removed_name), "{page}");
    assert!(
        page.contains(&format!("发布第 {} 版", version + 1)),
        "{page}"
    );
    // Nothing is published by the preview.
    assert_eq!(api(&hub, "/api/catalog")["version"], version);

    let previewed = input_value(&page, "catalog");
    let (_, page) = post_form(
        &base,
        &admin,
        "/catalog/publish",
        &[("catalog", &previewed)],
    );
    assert!(page.contains("请勾选"), "{page}");
    assert_eq!(api(&hub, "/api/catalog")["version"], version);

    let (_, page) = post_form(
        &base,
        &admin,
        "/catalog/publish",
        &[("catalog", &previewed), ("confirm", "1")],
    );
    assert!(
        page.contains(&format!("事项目录第 {} 版已发布", version + 1)),
        "{page}"
    );
    let now = api(&hub, "/api/catalog");
    assert_eq!(now["version"], version + 1);
    let items = now["items"].as_array().unwrap();
    assert!(!items.iter().any(|i| i["name"] == removed_name.as_str()));
    let first = items
        .iter()
        .find(|i| i["code"] == first_code.as_str())
        .unwrap();
    assert_eq!(first["promised_days"], promised - 1);
}

#[test]
fn the_monthly_workbook_is_downloaded_with_a_month_picker_by_those_who_may() {
    let dir = tempfile::tempdir().unwrap();
    HubProcess::init(dir.path()).unwrap();
    HubProcess::add_user(dir.path(), "window1", "window", None).unwrap();
    let hub = HubProcess::serve(dir.path(), "127.0.0.1:0").unwrap();
    let base = hub.process.base.clone();
    let admin = session(&base, ADMIN, "/dashboard");
    let (_, page) = page_with(&base, &admin.0, "/dashboard");
    assert!(page.contains("id=\"monthly-report\""), "{page}");
    let month = input_value(&page, "month");
    assert_eq!(month.len(), 7, "{month}");
    // What the picker's form sends.
    let mut resp = client()
        .get(format!("{base}/api/reports/monthly?month={month}"))
        .header("Cookie", &admin.0)
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.body_mut().read_to_vec().unwrap();
    assert_eq!(&bytes[..2], b"PK", "an xlsx is a zip");

    let window = session(&base, ("window1", TEST_PASSWORD), "/dashboard");
    let (_, page) = page_with(&base, &window.0, "/dashboard");
    assert!(!page.contains("id=\"monthly-report\""), "{page}");
    // The catalogue and calendar pages are the admin's alone.
    assert_eq!(page_with(&base, &window.0, "/catalog").0, 403);
    assert!(!page.contains("href=\"/catalog\""));
}
