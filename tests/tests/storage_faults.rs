//! Storage faults: a store that can no longer grow (a size-limited file, as on a full disk) refuses
//! the case it cannot write with a clear reason and then refuses new cases, instead of acknowledging
//! them; every case acknowledged before is intact after a restart. A store whose log was damaged is
//! refused at start with a clear error instead of being served short.
//!
//! Unix only: the full disk is rehearsed with `RLIMIT_FSIZE` and the damage with positioned writes;
//! Windows has neither limit, and its storage faults are for the Windows build's own tests.
#![cfg(unix)]

use std::collections::BTreeMap;

use tongban_tests::*;

/// Sizes of the files in the store directory (sled's log is the one that grows).
fn largest_file(dir: &std::path::Path) -> u64 {
    let mut largest = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            largest = largest.max(largest_file(&entry.path()));
        } else {
            largest = largest.max(meta.len());
        }
    }
    largest
}

#[test]
fn a_full_disk_refuses_new_cases_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    // Room for some cases, not for many: each one writes a few KB to sled's log.
    let limit = largest_file(dir.path()) + 2 * 1024 * 1024;
    let node = NodeProcess::serve_with_file_limit(dir.path(), limit).unwrap();
    let agent = client();
    let mut acknowledged = BTreeMap::new();
    let mut refusal = None;
    for i in 0..5000 {
        let name = format!("满盘{i}");
        let (status, body) = post_json(
            &agent,
            &node.url("/api/cases"),
            &valid_case_body(&name),
            None,
        )
        .unwrap();
        match status {
            201 => {
                acknowledged.insert(name, body["case_no"].as_str().unwrap().to_string());
            }
            _ => {
                refusal = Some((status, body, name));
                break;
            }
        }
    }
    let (status, body, failed_name) = refusal.expect("the store fills up within 5000 cases");
    assert!(
        acknowledged.len() >= 5,
        "some cases fit: {}",
        acknowledged.len()
    );
    assert_eq!(status, 507, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("存储出错") && message.contains("没有保存"),
        "{message}"
    );

    // From now on nothing is accepted, even a small case, and health says why.
    let (status, body) = post_json(
        &agent,
        &node.url("/api/cases"),
        &valid_case_body("之后"),
        None,
    )
    .unwrap();
    assert_eq!(status, 507, "{body}");
    let (_, health) = get_json(&agent, &node.url("/api/health")).unwrap();
    assert_eq!(health["storage"], "failed", "{health}");
    assert!(health["storage_error"].as_str().is_some(), "{health}");
    // Without an account, only that it failed: the details (paths, OS errors) are not public.
    let text = agent
        .get(node.url("/api/health"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let public: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(public["storage"], "failed", "{public}");
    assert!(public["storage_error"].is_null(), "{public}");
    // Nor are actions on stored cases: their writes would go to the same failing disk.
    let (status, body) = post_json(
        &agent,
        &node.url(&format!(
            "/api/cases/{}/actions",
            acknowledged.values().next().unwrap()
        )),
        &serde_json::json!({"action": "submit_correction"}),
        None,
    )
    .unwrap();
    assert_eq!(status, 507, "{body}");
    // Reading still works.
    let (first_name, first_no) = acknowledged.iter().next().unwrap();
    let (status, case) = get_json(&agent, &node.url(&format!("/api/cases/{first_no}"))).unwrap();
    assert_eq!(status, 200);
    assert_eq!(case["applicant"]["name"], first_name.as_str());
    let _ = node.kill();

    // The disk is fixed (no limit): every acknowledged case is there, and nothing else but perhaps
    // the one whose write failed.
    let node = NodeProcess::serve(dir.path()).unwrap();
    let listed = all_case_numbers(&agent, &node).unwrap();
    let mut found = BTreeMap::new();
    for c in &listed {
        found.insert(
            c["applicant_name"].as_str().unwrap().to_string(),
            c["case_no"].as_str().unwrap().to_string(),
        );
    }
    for (name, no) in &acknowledged {
        assert_eq!(found.get(name), Some(no), "acknowledged {name} lost");
        let (status, _) = get_json(&agent, &node.url(&format!("/api/cases/{no}"))).unwrap();
        assert_eq!(status, 200, "{no} unreadable");
    }
    for name in found.keys() {
        assert!(
            acknowledged.contains_key(name) || *name == failed_name,
            "{name} stored but never sent"
        );
    }
    // And the node takes cases again.
    let (status, body) = post_json(
        &agent,
        &node.url("/api/cases"),
        &valid_case_body("修好之后"),
        None,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
}

/// Bytes overwritten in a store's log at several places: the node either refuses to start, saying the
/// store is damaged and what to do, or (damage where nothing lives) serves every case. It never
/// serves a store that silently lost acknowledged cases, which is what sled alone does.
#[test]
fn a_damaged_store_is_refused_with_a_clear_error_never_served_short() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    init_node(&data).unwrap();
    let (ok, out, err) = node_cmd(&[
        "fill",
        "--data",
        path_str(&data).unwrap(),
        "--count",
        "300",
        "--user",
        TEST_USER,
    ])
    .unwrap();
    assert!(ok, "{out} {err}");
    let log_len = std::fs::metadata(data.join("db/db")).unwrap().len();
    let mut refused = 0;
    let mut served = 0;
    // Eight places spread over the log; where each lands (a case, an index, free space) depends on
    // sled's layout, so the test asks only that damage is never served short and sometimes seen.
    let offsets: Vec<u64> = (1..=8).map(|k| log_len / 10 * k).collect();
    for (i, offset) in offsets.into_iter().enumerate() {
        let copy = dir.path().join(format!("damaged{i}"));
        copy_dir(&data, &copy);
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(copy.join("db/db"))
                .unwrap();
            f.write_all_at(&[0xde, 0xad, 0xbe, 0xef].repeat(4096), offset)
                .unwrap();
        }
        match NodeProcess::serve(&copy) {
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("is damaged") && e.contains("restore it from a backup"),
                    "offset {offset}: {e}"
                );
                eprintln!("offset {offset}: refused: {e}");
                refused += 1;
            }
            Ok(node) => {
                let all = all_case_numbers(&client(), &node).unwrap();
                assert_eq!(
                    all.len(),
                    300,
                    "offset {offset}: a damaged store was served with cases missing"
                );
                eprintln!("offset {offset}: served all 300");
                served += 1;
            }
        }
    }
    assert!(refused >= 1, "refused {refused}, served {served}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.metadata().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
