//! The node's JSON API through a real process: real HTTP on loopback, real sled in a temp dir.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::json;
use tongban_tests::*;

fn started() -> (tempfile::TempDir, NodeProcess, ureq::Agent) {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let node = NodeProcess::serve(dir.path()).unwrap();
    (dir, node, client())
}

fn total(agent: &ureq::Agent, node: &NodeProcess) -> u64 {
    let (status, body) = get_json(agent, &node.url("/api/cases")).unwrap();
    assert_eq!(status, 200, "{body}");
    body["total"].as_u64().unwrap()
}

#[test]
fn health_needs_no_account_and_names_the_node() {
    let (_dir, node, agent) = started();
    let mut resp = agent.get(node.url("/api/health")).call().unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.body_mut().read_json().unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["code"], TEST_CODE);
    assert_eq!(body["role"], "village");
}

#[test]
fn everything_else_needs_an_account() {
    let (_dir, node, agent) = started();
    let resp = agent.get(node.url("/api/cases")).call().unwrap();
    assert_eq!(resp.status(), 401);
    let resp = agent
        .get(node.url("/api/catalog"))
        .header("Authorization", &basic_auth(TEST_USER, "wrong-password"))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[test]
fn catalog_lists_items_with_materials() {
    let (_dir, node, agent) = started();
    let (status, body) = get_json(&agent, &node.url("/api/catalog")).unwrap();
    assert_eq!(status, 200);
    assert!(body["version"].as_u64().unwrap() >= 1);
    let items = body["items"].as_array().unwrap();
    assert!(items.len() >= 30);
    let first = &items[0];
    for key in [
        "code",
        "name",
        "department",
        "kind",
        "promised_days",
        "legal_days",
        "materials",
    ] {
        assert!(!first[key].is_null(), "catalog item lacks {key}");
    }
    assert!(first["materials"][0]["required"].is_boolean());
}

#[test]
fn valid_case_is_created_read_and_exported_as_automerge() {
    let (_dir, node, agent) = started();
    let (status, created) = post_json(
        &agent,
        &node.url("/api/cases"),
        &valid_case_body("王秀英"),
        None,
    )
    .unwrap();
    assert_eq!(status, 201, "{created}");
    let case_no = created["case_no"].as_str().unwrap().to_string();
    assert!(case_no.starts_with(&format!("{TEST_CODE}-")), "{case_no}");

    let (status, case) = get_json(&agent, &node.url(&format!("/api/cases/{case_no}"))).unwrap();
    assert_eq!(status, 200);
    assert_eq!(case["case_no"], case_no.as_str());
    assert_eq!(case["state"], "SUBMITTED");
    assert_eq!(case["applicant"]["name"], "王秀英");
    assert_eq!(case["history"][0]["action"], "intake");
    assert_eq!(case["history"][0]["by"], TEST_USER);
    assert!(case["deadline"].is_null());

    let mut resp = agent
        .get(node.url(&format!("/api/cases/{case_no}/document")))
        .header("Authorization", &test_auth())
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/octet-stream"
    );
    let bytes = resp.body_mut().read_to_vec().unwrap();
    let doc = automerge::AutoCommit::load(&bytes).unwrap();
    let read = tongban_shared::case::read_case(&doc).unwrap();
    assert_eq!(read.case_no, case_no);
    assert_eq!(read.applicant.name, "王秀英");
    assert_eq!(read.applicant.id_number, "11010519491231002X");
    assert_eq!(read.applicant.phone, "13800271234");
    // The raw document, without our mapping, holds the applicant map too.
    use automerge::ReadDoc;
    let (_, applicant) = doc.get(automerge::ROOT, "applicant").unwrap().unwrap();
    let (value, _) = doc.get(&applicant, "name").unwrap().unwrap();
    assert_eq!(value.as_str(), Some("王秀英"));

    // Receipt page shows the case number.
    let mut resp = agent
        .get(node.url(&format!("/cases/{case_no}/receipt")))
        .header("Authorization", &test_auth())
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.body_mut().read_to_string().unwrap();
    assert!(html.contains(&case_no));
    assert!(html.contains("受理凭证"));
    assert_eq!(html.matches("<svg").count(), 3, "one QR code per part");
}

#[test]
fn invalid_bodies_are_refused_and_nothing_is_stored() {
    let (_dir, node, agent) = started();
    let url = node.url("/api/cases");

    let mut bad_id = valid_case_body("甲");
    bad_id["applicant"]["id_number"] = json!("11010519491231003X");
    let (status, body) = post_json(&agent, &url, &bad_id, None).unwrap();
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "applicant.id_number");
    assert!(body["error"].as_str().unwrap().contains("身份证"));

    let mut unknown_item = valid_case_body("乙");
    unknown_item["item_code"] = json!("YX-NOPE-999");
    let (status, body) = post_json(&agent, &url, &unknown_item, None).unwrap();
    assert_eq!(status, 422);
    assert_eq!(body["field"], "item_code");

    let mut missing_material = valid_case_body("丙");
    missing_material["materials"] = json!([]);
    let (status, body) = post_json(&agent, &url, &missing_material, None).unwrap();
    assert_eq!(status, 422);
    assert_eq!(body["field"], "materials");
    assert!(body["error"].as_str().unwrap().contains("缺少必需材料"));

    let mut bad_phone = valid_case_body("丁");
    bad_phone["applicant"]["phone"] = json!("02712345678");
    let (status, body) = post_json(&agent, &url, &bad_phone, None).unwrap();
    assert_eq!(status, 422);
    assert_eq!(body["field"], "applicant.phone");

    let mut wrong_type = valid_case_body("戊");
    wrong_type["materials"] = json!("id_card");
    let (status, _) = post_json(&agent, &url, &wrong_type, None).unwrap();
    assert_eq!(status, 422);

    let resp = agent
        .post(&url)
        .header("Authorization", &test_auth())
        .header("Content-Type", "application/json")
        .send(&b"{\"item_code\": \"YX-RS-001\", \"applicant\": {"[..])
        .unwrap();
    assert_eq!(resp.status(), 400);

    assert_eq!(oversized_post(&node, 8 * 1024 * 1024), 413);

    assert_eq!(total(&agent, &node), 0, "a refused request stored a case");
}

/// Sends an 8 MiB body on a raw socket, reading the answer while writing: the server answers 413 as
/// soon as it sees the length, and may close before the whole body is sent.
fn oversized_post(node: &NodeProcess, size: usize) -> u16 {
    let addr = node.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    let head = format!(
        "POST /api/cases HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n",
        test_auth()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < size {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to oversized body: {text:?}"))
}

#[test]
fn retry_with_the_same_idempotency_key_returns_the_first_case() {
    let (_dir, node, agent) = started();
    let url = node.url("/api/cases");
    let body = valid_case_body("重试者");
    let (s1, first) = post_json(&agent, &url, &body, Some("req-0001")).unwrap();
    let (s2, second) = post_json(&agent, &url, &body, Some("req-0001")).unwrap();
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["case_no"], second["case_no"]);
    assert_eq!(second["replayed"], true);
    assert_eq!(total(&agent, &node), 1);
}

#[test]
fn list_filters_by_state_and_text_newest_first_with_cursor() {
    let (_dir, node, agent) = started();
    let url = node.url("/api/cases");
    for name in ["张三", "李四", "张三丰", "王五"] {
        let (status, _) = post_json(&agent, &url, &valid_case_body(name), None).unwrap();
        assert_eq!(status, 201);
    }
    let (_, all) = get_json(&agent, &node.url("/api/cases?limit=3")).unwrap();
    assert_eq!(all["total"], 4);
    assert_eq!(all["cases"].as_array().unwrap().len(), 3);
    assert_eq!(all["cases"][0]["applicant_name"], "王五", "newest first");
    let next = all["next"].as_str().unwrap();
    let (_, rest) = get_json(
        &agent,
        &node.url(&format!("/api/cases?limit=3&cursor={next}")),
    )
    .unwrap();
    assert_eq!(rest["cases"].as_array().unwrap().len(), 1);
    assert_eq!(rest["cases"][0]["applicant_name"], "张三");
    assert!(rest["next"].is_null());

    let (_, text) = get_json(&agent, &node.url("/api/cases?q=%E5%BC%A0%E4%B8%89")).unwrap();
    assert_eq!(text["total"], 2);
    let (_, state) = get_json(&agent, &node.url("/api/cases?state=SUBMITTED")).unwrap();
    assert_eq!(state["total"], 4);
    let (_, none) = get_json(&agent, &node.url("/api/cases?state=DELIVERED")).unwrap();
    assert_eq!(none["total"], 0);
    let (status, bad) = get_json(&agent, &node.url("/api/cases?state=FLYING")).unwrap();
    assert_eq!(status, 422);
    assert_eq!(bad["field"], "state");
    let (status, _) = get_json(&agent, &node.url("/api/cases/not-a-case")).unwrap();
    assert_eq!(status, 404);
}
