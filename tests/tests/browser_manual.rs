//! The 受理材料标准化手册 (issue 18, part 6) in a real headless Chromium against real hub and village
//! processes: the admin edits an item's fee and a material's signature rule on its page, is shown
//! what changes, publishes; the village syncs, the hub goes away, and the village prints the item's
//! 办事指南 offline with the new fee and rule. Screenshots go to `docs/screens/`.

use tongban_tests::webdriver::Chromedriver;
use tongban_tests::*;

#[test]
fn the_admin_edits_an_items_manual_and_the_village_prints_its_guide_offline() {
    let dir = tempfile::tempdir().unwrap();
    HubProcess::init(dir.path()).unwrap();
    let hub = HubProcess::serve(dir.path(), "127.0.0.1:0").unwrap();
    let (village, _village_dir) = hub
        .village("420222100201", &["--sync-interval", "3600"])
        .unwrap();
    let base = hub.process.base.clone();
    let version = tongban_shared::catalog::Catalog::builtin().unwrap().version;
    let driver = Chromedriver::start().unwrap();
    let b = driver.session().unwrap();
    b.resize(1366, 768).unwrap();

    b.log_in(&base, "admin", HUB_ADMIN_PASSWORD).unwrap();
    b.goto(&format!("{base}/catalog/items/YX-RS-001")).unwrap();
    // A mistyped amount is refused on the form, with nothing published.
    b.type_into("#fee_amount", "五元").unwrap();
    b.click_css_and_wait("#edit-save").unwrap();
    let error = b.text(&b.find("#edit-error").unwrap()).unwrap();
    assert!(error.contains("收费金额"), "{error}");

    b.type_into("#fee_amount", "5").unwrap();
    b.type_into("#fee_rule", "社会保障卡工本费").unwrap();
    b.type_into("#fee_basis", "阳新县测试收费文件（2026）1号")
        .unwrap();
    b.type_into(
        "input[name='m.enroll_form.sign_seal']",
        "参保人签字并加盖村委会公章",
    )
    .unwrap();
    b.click_css_and_wait("#edit-save").unwrap();
    let preview = b.text(&b.find("#catalog-preview").unwrap()).unwrap();
    assert!(
        preview.contains(
            "收费：不收费 → 5.00元（社会保障卡工本费），依据阳新县测试收费文件（2026）1号"
        ),
        "{preview}"
    );
    assert!(
        preview.contains("签字盖章") && preview.contains("→ 参保人签字并加盖村委会公章"),
        "{preview}"
    );
    b.screenshot_for_docs("catalog-item-preview").unwrap();
    b.click_css("#catalog-preview input[name=confirm]").unwrap();
    b.click_css_and_wait("#catalog-preview button[type=submit]")
        .unwrap();
    let published = b.text(&b.find("#catalog-message").unwrap()).unwrap();
    assert!(
        published.contains(&format!("第 {} 版已发布", version + 1)),
        "{published}"
    );

    // The village takes the new catalogue with its next sync, then works without the county.
    assert_eq!(village.sync_now().0, 200);
    hub.process.kill();
    b.log_in(&village.base, TEST_USER, TEST_PASSWORD).unwrap();
    b.goto(&village.url("/items/YX-RS-001/guide")).unwrap();
    let fee = b.text(&b.find("#guide-fee").unwrap()).unwrap();
    assert_eq!(fee, "5.00元（社会保障卡工本费）");
    let materials = b.text(&b.find("#guide-materials").unwrap()).unwrap();
    assert!(
        materials.contains("参保人签字并加盖村委会公章"),
        "{materials}"
    );
    let basis = b.text(&b.find("#guide-basis").unwrap()).unwrap();
    assert!(basis.contains("社会保险法"), "{basis}");
    let process = b.find_all("#guide-process li").unwrap();
    assert!(process.len() >= 3);
    let page = b.page_text().unwrap();
    assert!(
        page.contains(&format!("事项目录第{}版", version + 1)),
        "{page}"
    );
    b.screenshot_for_docs("guide-village").unwrap();
}
