//! Issue 18, part 3: the hall's service areas, against real hub and village processes over HTTP. A
//! window account belongs to an area (社会事务, 企业事务 …); the catalogue says which area receives each
//! item and which other windows its department authorised. A window that is asked to receive
//! another area's item gets 403 with the reason, both when it files an intake and when it receives
//! a case a village filed; its item list and its queues hold its own area's items only.

use serde_json::{json, Value};
use tongban_shared::catalog::Catalog;
use tongban_tests::*;

const SOCIAL: (&str, &str) = ("shehui", TEST_PASSWORD);
const ENTERPRISE: (&str, &str) = ("qiye", TEST_PASSWORD);
const GENERAL: (&str, &str) = ("window1", TEST_PASSWORD);

fn add_window(dir: &std::path::Path, name: &str, area: &str) -> (bool, String) {
    let (ok, _, err) = hub_cmd(&[
        "user",
        "add",
        "--data",
        path_str(dir).unwrap(),
        "--name",
        name,
        "--password",
        TEST_PASSWORD,
        "--role",
        "window",
        "--area",
        area,
    ])
    .unwrap();
    (ok, err)
}

fn item_index(catalog: &Catalog, code: &str) -> usize {
    catalog.items.iter().position(|i| i.code == code).unwrap()
}

fn file_as(hub: &HubProcess, user: (&str, &str), item: usize, name: &str) -> (u16, Value) {
    let mut body = case_body(item, name);
    body["delivery"] = json!("窗口领取");
    post_json_as(&hub.url("/api/cases"), &basic_auth(user.0, user.1), &body)
}

fn page(hub: &HubProcess, user: (&str, &str), path: &str) -> (u16, String) {
    get_text_as(&hub.process.base, user, path)
}

#[test]
fn a_window_receives_only_its_service_areas_items_and_sees_only_their_queues() {
    let catalog = Catalog::builtin().unwrap();
    // 城乡居民基本养老保险参保登记 (人社, 社会事务), 个体工商户设立登记 (市场监管, 企业事务), and
    // 城乡居民社会保险费缴纳 (税务, which authorised the 社会事务 windows to receive it too).
    let pension = item_index(&catalog, "YX-RS-001");
    let business = item_index(&catalog, "YX-SC-001");
    let insurance_fee = item_index(&catalog, "YX-SW-001");
    assert_eq!(catalog.items[pension].area, "社会事务");
    assert_eq!(catalog.items[business].area, "企业事务");

    let dir = tempfile::tempdir().unwrap();
    HubProcess::init(dir.path()).unwrap();
    HubProcess::add_user(dir.path(), GENERAL.0, "window", None).unwrap();
    for (name, area) in [(SOCIAL.0, "社会事务"), (ENTERPRISE.0, "企业事务")] {
        let (ok, err) = add_window(dir.path(), name, area);
        assert!(ok, "{err}");
    }
    let (ok, err) = add_window(dir.path(), "nowhere", "天文台");
    assert!(!ok && err.contains("service areas"), "{err}");
    let (ok, _, err) = hub_cmd(&[
        "user",
        "add",
        "--data",
        path_str(dir.path()).unwrap(),
        "--name",
        "mz",
        "--password",
        TEST_PASSWORD,
        "--role",
        "dept",
        "--dept",
        "民政",
        "--area",
        "社会事务",
    ])
    .unwrap();
    assert!(!ok && err.contains("--area is for --role window"), "{err}");
    let hub = HubProcess::serve(dir.path(), "127.0.0.1:0").unwrap();

    // The admin adds an area window through the API too; an unknown area is refused with the list.
    let admin = basic_auth("admin", HUB_ADMIN_PASSWORD);
    let account = |name: &str, area: &str| {
        post_json_as(
            &hub.url("/api/users"),
            &admin,
            &json!({"name": name, "password": TEST_PASSWORD, "role": "window", "area": area}),
        )
    };
    let (status, body) = account("budongchan", "不动产交易");
    assert_eq!(status, 201, "{body}");
    let (status, body) = account("tianwen", "天文台");
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("服务区只能是"),
        "{body}"
    );

    // Intake at the window: the wrong area is refused with the reason and where to go.
    let (status, body) = file_as(&hub, ENTERPRISE, pension, "错窗甲");
    assert_eq!(status, 403, "{body}");
    let reason = body["error"].as_str().unwrap();
    assert!(
        reason.contains("本窗口属于企业事务区") && reason.contains("社会事务窗口"),
        "{reason}"
    );
    let (status, body) = file_as(&hub, SOCIAL, business, "错窗乙");
    assert_eq!(status, 403, "{body}");
    let (status, business_case) = file_as(&hub, ENTERPRISE, business, "企业甲");
    assert_eq!(status, 201, "{business_case}");
    let business_no = business_case["case_no"].as_str().unwrap().to_string();
    let (status, fee_case) = file_as(&hub, SOCIAL, insurance_fee, "缴费乙");
    assert_eq!(
        status, 201,
        "an authorised window receives the item: {fee_case}"
    );
    let fee_no = fee_case["case_no"].as_str().unwrap().to_string();
    let (status, body) = file_as(&hub, ENTERPRISE, insurance_fee, "缴费丙");
    assert_eq!(status, 403, "{body}");
    let (status, body) = file_as(&hub, GENERAL, pension, "综合丁");
    assert_eq!(status, 201, "a general window receives every item: {body}");
    assert_eq!(
        hub_count(&hub),
        3,
        "nothing was stored for a refused intake"
    );

    // A village files a 社会事务 case offline; at the county only that area's windows receive it.
    let (village, _village_dir) = hub
        .village("420222100201", &["--sync-interval", "3600"])
        .unwrap();
    let village_no = file_case(&village, "村民戊");
    assert_eq!(village.sync_now().0, 200);
    let (status, body) = act_as(
        &hub.process.base,
        ENTERPRISE,
        &village_no,
        &json!({"action": "receive"}),
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("社会事务窗口"),
        "{body}"
    );
    let (status, body) = act_as(
        &hub.process.base,
        SOCIAL,
        &village_no,
        &json!({"action": "receive"}),
    );
    assert_eq!(status, 200, "{body}");
    // The receipt by an area window folds at the village like any county event.
    assert_eq!(village.sync_now().0, 200);
    let (_, at_village) = get_json_as(
        &client(),
        &village.url(&format!("/api/cases/{village_no}")),
        &test_auth(),
    )
    .unwrap();
    assert_eq!(at_village["state"], "RECEIVED", "{at_village}");

    // Each window's queues list its own area's cases; the general window's list them all.
    let (status, social_queue) = page(&hub, SOCIAL, "/queue");
    assert_eq!(status, 200);
    assert!(social_queue.contains("本窗口是<strong>社会事务窗口</strong>"));
    assert!(social_queue.contains(&village_no) && social_queue.contains(&fee_no));
    assert!(!social_queue.contains(&business_no), "{social_queue}");
    let (_, enterprise_queue) = page(&hub, ENTERPRISE, "/queue");
    assert!(enterprise_queue.contains(&business_no));
    assert!(!enterprise_queue.contains(&village_no) && !enterprise_queue.contains(&fee_no));
    let (_, general_queue) = page(&hub, GENERAL, "/queue");
    assert!(!general_queue.contains("本窗口是"));
    for no in [&village_no, &fee_no, &business_no] {
        assert!(general_queue.contains(no.as_str()), "{no}");
    }

    // The item list shows a window only what it receives; another area's form is refused.
    let (_, choose) = page(&hub, ENTERPRISE, "/cases/new");
    assert!(choose.contains("本窗口是<strong>企业事务窗口</strong>"));
    assert!(choose.contains(&catalog.items[business].name));
    assert!(!choose.contains(&catalog.items[pension].name), "{choose}");
    let (status, form) = page(
        &hub,
        ENTERPRISE,
        &format!("/cases/new?item={}", catalog.items[pension].code),
    );
    assert_eq!(status, 403);
    assert!(form.contains("本窗口属于企业事务区"), "{form}");
    let (_, choose) = page(&hub, GENERAL, "/cases/new");
    assert!(
        choose.contains(&catalog.items[pension].name)
            && choose.contains(&catalog.items[business].name)
    );

    // The account page names the area.
    let (_, accounts) = page(&hub, ("admin", HUB_ADMIN_PASSWORD), "/accounts");
    assert!(accounts.contains("企业事务窗口") && accounts.contains("不动产交易窗口"));
}

fn hub_count(hub: &HubProcess) -> u64 {
    let (_, list) = get_json_as(
        &client(),
        &hub.url("/api/cases?limit=1"),
        &basic_auth(GENERAL.0, GENERAL.1),
    )
    .unwrap();
    list["total"].as_u64().unwrap()
}
