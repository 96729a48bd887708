//! 中台 policy support (issue 18, part 1) through real hub and village processes: an agent asks a
//! question on a case while the village is offline; it syncs up to the county, where the department
//! asked finds it in its queue and answers; the answer comes back to the village like any county
//! event, as a reply to pass on; the dashboard shows the department's answers and response time.

use serde_json::json;
use tongban_tests::*;

const WINDOW: (&str, &str) = ("window1", TEST_PASSWORD);
const DEPT: (&str, &str) = ("dept1", TEST_PASSWORD);
const SUPERVISOR: (&str, &str) = ("sup1", TEST_PASSWORD);

#[test]
fn a_question_asked_offline_at_a_village_is_answered_at_the_county_and_comes_back() {
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let dept = catalog.items[0].department.clone();
    let (hub, _hub_dir) = HubProcess::staffed(&dept).unwrap();
    let hb = hub.process.base.clone();
    let (village, _village_dir) = hub
        .village("420222100201", &["--sync-interval", "3600"])
        .unwrap();
    let agent = (TEST_USER, TEST_PASSWORD);
    let no = file_case(&village, "咨询甲");

    // Asked at the village before any sync: stored there, nothing at the county yet.
    let question = "申请人常年在外务工，户口在本村，能否由家属代为参保？";
    let (status, body) = act_as(
        &village.base,
        agent,
        &no,
        &json!({"action": "ask", "note": question}),
    );
    assert_eq!(status, 200, "{body}");
    let local = case_json(&village.base, agent, &no);
    let local_id = local["workflow"]["questions"][0]["id"].clone();
    let (status, _) = act_as(
        &village.base,
        agent,
        &no,
        &json!({"action": "answer", "target": local_id, "note": "自己答"}),
    );
    assert_eq!(status, 403, "a village does not answer");

    assert_eq!(village.sync_now().0, 200);
    let at_hub = case_json(&hb, DEPT, &no);
    let asked = &at_hub["workflow"]["questions"][0];
    assert_eq!(asked["question"], question, "{at_hub}");
    assert_eq!(asked["dept"], dept.as_str());
    let id = asked["id"].as_str().unwrap().to_string();
    let (_, queue) = get_text_as(&hb, DEPT, "/queue");
    let to_answer = queue.split("id=\"to-answer\"").nth(1).unwrap_or_default();
    let to_answer = to_answer.split("<h2").next().unwrap_or_default();
    assert!(to_answer.contains(&no), "{queue}");

    // The window may ask too, but only the department answers.
    let (status, body) = act_as(
        &hb,
        WINDOW,
        &no,
        &json!({"action": "answer", "target": id, "note": "窗口答"}),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = act_as(
        &hb,
        DEPT,
        &no,
        &json!({"action": "answer", "target": "0000000000000000", "note": "答"}),
    );
    assert_eq!(status, 422, "{body}");
    let answer = "可以。家属持申请人身份证和委托代办授权书即可代办参保登记。";
    let (status, body) = act_as(
        &hb,
        DEPT,
        &no,
        &json!({"action": "answer", "target": id, "note": answer}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = act_as(
        &hb,
        DEPT,
        &no,
        &json!({"action": "answer", "target": id, "note": "再答"}),
    );
    assert_eq!(status, 422, "answered once: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("尚未答复"),
        "{body}"
    );
    let (_, queue) = get_text_as(&hb, DEPT, "/queue");
    let to_answer = queue.split("id=\"to-answer\"").nth(1).unwrap_or_default();
    let to_answer = to_answer.split("<h2").next().unwrap_or_default();
    assert!(!to_answer.contains(&no), "{queue}");

    // The answer comes down with the next sync, as a reply the agent passes on.
    assert_eq!(village.sync_now().0, 200);
    let at_village = case_json(&village.base, agent, &no);
    assert_eq!(
        at_village["workflow"]["questions"][0]["answer"], answer,
        "{at_village}"
    );
    let (_, todo) = get_json_as(&client(), &village.url("/api/todo"), &test_auth()).unwrap();
    assert!(todo.to_string().contains(&no), "{todo}");
    let (_, page) = get_text_as(&village.base, agent, &format!("/cases/{no}"));
    assert!(page.contains(answer), "{page}");

    // The dashboard shows the department's answers and how long they took.
    let (_, dashboard) = get_text_as(&hb, SUPERVISOR, "/dashboard");
    let answers = dashboard
        .split("id=\"answers-by-department\"")
        .nth(1)
        .unwrap_or_default();
    assert!(
        answers.contains(&format!("<td>{dept}</td><td>1</td>")),
        "{dashboard}"
    );
    assert!(answers.contains("小时</td><td>0</td>"), "{dashboard}");
}
