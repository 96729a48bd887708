//! Backup, restore and replacing a dead PC (issue 16, parts 3 and 4), through the real binaries: a
//! restore drill of a hub backed up while it takes cases, a village PC replaced from the county, and
//! a node's own backups (offline, online, retention, a damaged file).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tongban_tests::*;

const WINDOW: (&str, &str) = ("window1", TEST_PASSWORD);
const SUPERVISOR: (&str, &str) = ("sup1", TEST_PASSWORD);

fn auth(user: (&str, &str)) -> String {
    basic_auth(user.0, user.1)
}

fn hub_has(base: &str, case_no: &str) -> bool {
    get_text_as(base, SUPERVISOR, &format!("/api/cases/{case_no}")).0 == 200
}

/// Every case number the hub lists (as the supervisor, who sees the county).
fn hub_case_numbers(hub: &HubProcess) -> Vec<String> {
    all_cases_as(&client(), &hub.process, &auth(SUPERVISOR))
        .unwrap()
        .iter()
        .map(|c| c["case_no"].as_str().unwrap().to_string())
        .collect()
}

fn first_department() -> String {
    tongban_shared::catalog::Catalog::builtin().unwrap().items[0]
        .department
        .clone()
}

fn cmd_ok(result: anyhow::Result<(bool, String, String)>) -> String {
    let (ok, out, err) = result.unwrap();
    assert!(ok, "{out}\n{err}");
    out
}

#[test]
fn a_hub_backed_up_under_load_restores_every_acknowledged_case_and_its_villages_reconcile() {
    let (hub, hub_dir) = HubProcess::staffed(&first_department()).unwrap();
    let (village, _village_dir) = hub.village(TEST_CODE, &[]).unwrap();
    let early: Vec<String> = (0..3)
        .map(|i| file_case(&village, &format!("村民{i}")))
        .collect();
    assert_eq!(village.sync_now().0, 200);

    // The window keeps filing cases while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let loader = {
        let (stop, acked, url) = (stop.clone(), acked.clone(), hub.url("/api/cases"));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let (status, body) =
                    post_json_as(&url, &auth(WINDOW), &case_body(0, &format!("窗口{i}")));
                assert_eq!(status, 201, "{body}");
                acked
                    .lock()
                    .unwrap()
                    .push(body["case_no"].as_str().unwrap().to_string());
                i += 1;
            }
        })
    };
    assert!(eventually(Duration::from_secs(60), || acked
        .lock()
        .unwrap()
        .len()
        >= 5));
    let acked_before = acked.lock().unwrap().clone();
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("hub.tbk");
    let out = cmd_ok(hub_cmd(&[
        "backup",
        "--data",
        path_str(hub_dir.path()).unwrap(),
        "--out",
        path_str(&file).unwrap(),
    ]));
    assert!(out.contains("taken from the running process"), "{out}");
    let at_backup_end = acked.lock().unwrap().len();
    // Some more after it: they are the ones a restore of this backup cannot have.
    assert!(eventually(Duration::from_secs(60), || acked
        .lock()
        .unwrap()
        .len()
        >= at_backup_end + 3));
    stop.store(true, Ordering::SeqCst);
    loader.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    // A village case that reaches the hub after the backup.
    let late = file_case(&village, "备份后");
    assert_eq!(village.sync_now().0, 200);
    assert!(hub_has(&hub.process.base, &late));

    // The county server dies; a new one is made from the backup, at the same address.
    let quic = hub.quic.clone();
    drop(hub);
    let restored_dir = tempfile::tempdir().unwrap();
    let restored_data = restored_dir.path().join("hub");
    let restored_path = path_str(&restored_data).unwrap();
    let out = cmd_ok(hub_cmd(&[
        "restore",
        "--from",
        path_str(&file).unwrap(),
        "--data",
        restored_path,
    ]));
    assert!(out.contains("restored 420222"), "{out}");
    // Only into a new directory.
    let (ok, _, err) = hub_cmd(&[
        "restore",
        "--from",
        path_str(&file).unwrap(),
        "--data",
        restored_path,
    ])
    .unwrap();
    assert!(!ok && err.contains("already initialised"), "{err}");
    cmd_ok(hub_cmd(&["audit", "verify", "--data", restored_path]));
    let restored = HubProcess::serve(&restored_data, &quic).unwrap();

    // Every case acknowledged before the backup began is there, and the window's cases are a
    // prefix of what was acknowledged: a snapshot of one moment, with no case written by halves.
    for no in early.iter().chain(&acked_before) {
        assert!(hub_has(&restored.process.base, no), "{no} lost");
    }
    let present: Vec<bool> = acked
        .iter()
        .map(|no| hub_has(&restored.process.base, no))
        .collect();
    let kept = present.iter().take_while(|p| **p).count();
    assert!(
        present[kept..].iter().all(|p| !p),
        "not one moment: {present:?}"
    );
    assert!(
        kept >= acked_before.len() && kept < acked.len(),
        "{present:?}"
    );
    assert!(!hub_has(&restored.process.base, &late));
    // The window's people log in as before (accounts were in the backup).
    assert_eq!(
        get_text_as(&restored.process.base, WINDOW, "/api/cases?limit=1").0,
        200
    );

    // The village reconciles with the restored hub: its late case goes up again, nothing doubles.
    let (status, body) = village.sync_now();
    assert_eq!(status, 200, "{body}");
    assert!(hub_has(&restored.process.base, &late));
    let numbers = hub_case_numbers(&restored);
    let mut unique = numbers.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), numbers.len(), "a case listed twice");
    let at_hub = numbers.iter().filter(|n| n.starts_with(TEST_CODE)).count();
    let at_village = all_case_numbers(&client(), &village).unwrap().len();
    assert_eq!((at_hub, at_village), (early.len() + 1, early.len() + 1));
    assert_eq!(numbers.len(), at_hub + kept);
    let (status, again) = village.sync_now();
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["cases_sent"], &again["cases_received"]),
        (&json!(0), &json!(0)),
        "{again}"
    );
}

#[test]
fn a_dead_village_pc_is_replaced_with_every_case_back_and_the_next_free_number() {
    let (hub, _hub_dir) = HubProcess::staffed(&first_department()).unwrap();
    let station = tempfile::tempdir().unwrap();
    let bundle = station.path().join("bundle.json");
    hub.enroll_village(TEST_CODE, &bundle).unwrap();
    let old_data = station.path().join("node");
    init_node_from_bundle(&old_data, &bundle).unwrap();
    let old = NodeProcess::serve(&old_data).unwrap();
    let filed: Vec<String> = (0..3)
        .map(|i| file_case(&old, &format!("村民{i}")))
        .collect();
    assert_eq!(old.sync_now().0, 200);
    // The PC dies. (Its disk is kept aside only to show its certificate is refused afterwards.)
    old.kill();
    let old_disk = station.path().join("old-disk");
    copy_dir(&old_data, &old_disk);
    std::fs::remove_dir_all(&old_data).unwrap();

    // The county gives the code a new certificate; the new PC pulls its cases back.
    let bundle2 = station.path().join("bundle2.json");
    hub.enroll_with(
        &bundle2,
        json!({"code": TEST_CODE, "name": "测试村便民服务站", "tier": "village",
               "upstream": hub.quic, "replace": true}),
    )
    .unwrap();
    let new_data = station.path().join("new");
    let out = init_node_from_bundle_with(&new_data, &bundle2, &["--restore"]).unwrap();
    assert!(out.contains("restore finished: 3 cases"), "{out}");
    assert!(out.contains("第1轮：取回 3 件"), "{out}");
    let new = NodeProcess::serve(&new_data).unwrap();
    let mut back: Vec<String> = all_case_numbers(&client(), &new)
        .unwrap()
        .iter()
        .map(|c| c["case_no"].as_str().unwrap().to_string())
        .collect();
    back.sort();
    let mut expected = filed.clone();
    expected.sort();
    assert_eq!(back, expected);

    // Today's counter is past the cases that came back.
    let last = expected.last().unwrap();
    let (prefix, seq) = last.rsplit_once('-').unwrap();
    let next = file_case(&new, "新电脑");
    assert_eq!(
        next,
        format!("{prefix}-{:04}", seq.parse::<u32>().unwrap() + 1)
    );
    let (status, body) = new.sync_now();
    assert_eq!(status, 200, "{body}");
    assert!(hub_has(&hub.process.base, &next));

    // The old PC comes back to life: its certificate is refused and its new case goes nowhere.
    let ghost = NodeProcess::serve(&old_disk).unwrap();
    let stray = file_case(&ghost, "旧电脑");
    let (status, body) = ghost.sync_now();
    assert_eq!(status, 503, "{body}");
    // It numbered its case as the new PC numbered its own: the county keeps the new PC's.
    assert_eq!(stray, next);
    let (_, at_hub) = get_text_as(&hub.process.base, SUPERVISOR, &format!("/api/cases/{next}"));
    assert!(
        at_hub.contains("新电脑") && !at_hub.contains("旧电脑"),
        "{at_hub}"
    );
    assert_eq!(hub_case_numbers(&hub).len(), filed.len() + 1);
}

#[test]
fn a_restore_pull_cut_short_keeps_the_node_from_serving_until_it_is_run_again() {
    let hub_dir = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    HubProcess::add_user(hub_dir.path(), "sup1", "supervisor", None).unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let (village, _village_dir) = hub.village(TEST_CODE, &[]).unwrap();
    let filed = file_case(&village, "村民");
    assert_eq!(village.sync_now().0, 200);
    village.kill();

    let station = tempfile::tempdir().unwrap();
    let bundle = station.path().join("bundle.json");
    hub.enroll_with(
        &bundle,
        json!({"code": TEST_CODE, "name": "测试村便民服务站", "tier": "village",
               "upstream": hub.quic, "replace": true}),
    )
    .unwrap();
    let quic = hub.quic.clone();
    drop(hub);
    let data = station.path().join("node");
    let err = init_node_from_bundle_with(&data, &bundle, &["--restore"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("run the same command again"), "{err}");
    let (ok, _, err) = node_cmd(&["serve", "--data", path_str(&data).unwrap()]).unwrap();
    assert!(
        !ok && err.contains("has not finished pulling its cases back"),
        "{err}"
    );

    let hub = HubProcess::serve(hub_dir.path(), &quic).unwrap();
    let out = cmd_ok(node_cmd(&[
        "init",
        "--data",
        path_str(&data).unwrap(),
        "--bundle",
        path_str(&bundle).unwrap(),
        "--user",
        TEST_USER,
        "--password",
        TEST_PASSWORD,
        "--restore",
    ]));
    assert!(out.contains("restore finished: 1 cases"), "{out}");
    let node = NodeProcess::serve(&data).unwrap();
    let (status, _) = get_json(&client(), &node.url(&format!("/api/cases/{filed}"))).unwrap();
    assert_eq!(status, 200);
    drop(hub);
}

#[test]
fn a_node_backs_up_offline_and_online_keeps_the_newest_and_refuses_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    init_node(&data).unwrap();
    let d = path_str(&data).unwrap();
    let node = NodeProcess::serve(&data).unwrap();
    let filed: Vec<String> = (0..2)
        .map(|i| file_case(&node, &format!("村民{i}")))
        .collect();
    let nightly = dir.path().join("nightly");
    std::fs::create_dir(&nightly).unwrap();
    let n = path_str(&nightly).unwrap();
    // Online: the running node writes it.
    let out = cmd_ok(node_cmd(&[
        "backup", "--data", d, "--out", n, "--keep", "2",
    ]));
    assert!(
        out.contains("2 cases") && out.contains("taken from the running process"),
        "{out}"
    );
    node.kill();
    // Offline: a stopped node's store is opened by the command itself.
    for _ in 0..2 {
        let out = cmd_ok(node_cmd(&[
            "backup", "--data", d, "--out", n, "--keep", "2",
        ]));
        assert!(!out.contains("running process"), "{out}");
    }
    let mut kept: Vec<_> = std::fs::read_dir(&nightly)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    kept.sort();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let newest = kept.last().unwrap();

    // A damaged copy is refused before anything is written.
    let mut bytes = std::fs::read(newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let damaged = dir.path().join("damaged.tbk");
    std::fs::write(&damaged, bytes).unwrap();
    let target = dir.path().join("restored");
    let (ok, _, err) = node_cmd(&[
        "restore",
        "--from",
        path_str(&damaged).unwrap(),
        "--data",
        path_str(&target).unwrap(),
    ])
    .unwrap();
    assert!(!ok && err.contains("checksum does not match"), "{err}");
    assert!(!target.exists());

    // A file whose checksum holds but whose content does not (its header lists one case too many):
    // the restore fails after writing, and the empty directory it was given is empty again.
    let mut lying = std::fs::read(newest).unwrap();
    let header_end = lying.len().min(400);
    let at = lying[..header_end]
        .windows(9)
        .position(|w| w == b"\"cases\":2")
        .expect("the header lists 2 cases");
    lying[at + 8] = b'3';
    let body = lying.len() - 32;
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(&lying[..body])
    };
    lying[body..].copy_from_slice(&digest);
    let lying_file = dir.path().join("lying.tbk");
    std::fs::write(&lying_file, lying).unwrap();
    std::fs::create_dir(&target).unwrap();
    let (ok, _, err) = node_cmd(&[
        "restore",
        "--from",
        path_str(&lying_file).unwrap(),
        "--data",
        path_str(&target).unwrap(),
    ])
    .unwrap();
    assert!(
        !ok && err.contains("lists 3 cases but 2 were restored"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);

    cmd_ok(node_cmd(&[
        "restore",
        "--from",
        path_str(newest).unwrap(),
        "--data",
        path_str(&target).unwrap(),
    ]));
    let restored = NodeProcess::serve(&target).unwrap();
    let listed: Vec<Value> = all_case_numbers(&client(), &restored).unwrap();
    assert_eq!(listed.len(), filed.len());
    // The station goes on numbering after its restored cases.
    let next = file_case(&restored, "恢复后");
    assert!(!filed.contains(&next), "{next} handed out twice");
}

#[test]
fn a_county_restored_from_before_a_stations_enrolment_takes_it_back_after_a_renewal() {
    let hub_dir = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    HubProcess::add_user(hub_dir.path(), "sup1", "supervisor", None).unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("before.tbk");
    cmd_ok(hub_cmd(&[
        "backup",
        "--data",
        path_str(hub_dir.path()).unwrap(),
        "--out",
        path_str(&file).unwrap(),
    ]));
    // The station joins after that backup and sends its cases up.
    let station = hub.enrolled_village(TEST_CODE).unwrap();
    let data = station.path().join("node");
    let node = NodeProcess::serve(&data).unwrap();
    let mut filed = vec![file_case(&node, "村民甲"), file_case(&node, "村民乙")];
    assert_eq!(node.sync_now().0, 200);

    // The county comes back from the older backup: it does not know the station.
    let quic = hub.quic.clone();
    drop(hub);
    let restored = tempfile::tempdir().unwrap();
    let restored_data = restored.path().join("hub");
    cmd_ok(hub_cmd(&[
        "restore",
        "--from",
        path_str(&file).unwrap(),
        "--data",
        path_str(&restored_data).unwrap(),
    ]));
    let hub = HubProcess::serve(&restored_data, &quic).unwrap();
    filed.push(file_case(&node, "村民丙"));
    assert_eq!(node.sync_now().0, 503);

    // The station renews while it runs; the county signs the request as a new enrolment.
    let d = path_str(&data).unwrap();
    let request = station.path().join("renew.csr");
    cmd_ok(node_cmd(&[
        "renew",
        "--data",
        d,
        "--out",
        path_str(&request).unwrap(),
    ]));
    let bundle = station.path().join("renewed.json");
    let mut resp = client()
        .post(hub.url("/api/nodes"))
        .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
        .header("Content-Type", "application/json")
        .send(
            json!({"code": TEST_CODE, "name": "测试村便民服务站", "tier": "village",
                   "upstream": hub.quic, "csr": std::fs::read_to_string(&request).unwrap()})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    std::fs::write(&bundle, resp.body_mut().read_to_string().unwrap()).unwrap();
    node.kill();
    cmd_ok(node_cmd(&[
        "renew",
        "--data",
        d,
        "--bundle",
        path_str(&bundle).unwrap(),
    ]));
    let node = NodeProcess::serve(&data).unwrap();

    // Every case the station wrote, before and after the county's loss, is taken.
    let (status, report) = node.sync_now();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["refused"], json!([]), "{report}");
    for no in &filed {
        assert!(hub_has(&hub.process.base, no), "{no} refused: {report}");
    }
}
