//! Durability: a case acknowledged with 201 survives SIGKILL of the node, and nothing is doubled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tongban_tests::*;

const ROUNDS: usize = 5;
const CASES_PER_ROUND: usize = 10;

#[test]
fn acknowledged_cases_survive_repeated_sigkill_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let agent = client();
    // applicant name → case number, for every 201 we saw.
    let mut acknowledged: BTreeMap<String, String> = BTreeMap::new();
    // Requests in flight at the moment of the kill: stored or not, but never twice.
    let mut unanswered: BTreeSet<String> = BTreeSet::new();

    for round in 0..ROUNDS {
        let node = NodeProcess::serve(dir.path()).unwrap();
        check_store(&agent, &node, &acknowledged, &unanswered, round);

        for i in 0..CASES_PER_ROUND {
            let name = format!("轮{round}号{i}");
            let (status, body) = post_json(
                &agent,
                &node.url("/api/cases"),
                &valid_case_body(&name),
                Some(&format!("crash-{round}-{i}")),
            )
            .unwrap();
            assert_eq!(status, 201, "{body}");
            acknowledged.insert(name, body["case_no"].as_str().unwrap().to_string());
        }

        // A second client keeps filing while the process is killed, so the kill lands in the middle
        // of requests as well as right after acknowledgements.
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight_acks = Arc::new(Mutex::new(Vec::new()));
        let in_flight_sent = Arc::new(Mutex::new(Vec::new()));
        let writer = {
            let (stop, acks, sent) = (stop.clone(), in_flight_acks.clone(), in_flight_sent.clone());
            let url = node.url("/api/cases");
            std::thread::spawn(move || {
                let agent = client();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) && i < 200 {
                    let name = format!("飞{round}号{i}");
                    sent.lock().unwrap().push(name.clone());
                    match post_json(&agent, &url, &valid_case_body(&name), None) {
                        Ok((201, body)) => acks
                            .lock()
                            .unwrap()
                            .push((name, body["case_no"].as_str().unwrap().to_string())),
                        _ => break,
                    }
                    i += 1;
                }
            })
        };
        // Kill once the writer has at least one acknowledged case (or gave up).
        while in_flight_acks.lock().unwrap().is_empty() && !writer.is_finished() {
            std::thread::yield_now();
        }
        let _ = node.kill();
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        let acks = in_flight_acks.lock().unwrap().clone();
        let acked_names: BTreeSet<&String> = acks.iter().map(|(n, _)| n).collect();
        for name in in_flight_sent.lock().unwrap().iter() {
            if !acked_names.contains(name) {
                unanswered.insert(name.clone());
            }
        }
        acknowledged.extend(acks);
    }

    let node = NodeProcess::serve(dir.path()).unwrap();
    check_store(&agent, &node, &acknowledged, &unanswered, ROUNDS);
    assert!(acknowledged.len() >= ROUNDS * CASES_PER_ROUND);

    // A retry of an acknowledged request after the crashes returns the original case.
    let (status, body) = post_json(
        &agent,
        &node.url("/api/cases"),
        &valid_case_body("轮0号0"),
        Some("crash-0-0"),
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["case_no"].as_str().unwrap(), acknowledged["轮0号0"]);
}

fn check_store(
    agent: &ureq::Agent,
    node: &NodeProcess,
    acknowledged: &BTreeMap<String, String>,
    unanswered: &BTreeSet<String>,
    round: usize,
) {
    let listed = all_case_numbers(agent, node).unwrap();
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for c in &listed {
        let no = c["case_no"].as_str().unwrap().to_string();
        let name = c["applicant_name"].as_str().unwrap().to_string();
        assert!(
            numbers.insert(no.clone()),
            "round {round}: case number {no} listed twice"
        );
        assert!(
            names.insert(name.clone()),
            "round {round}: request {name} stored twice"
        );
        assert!(
            acknowledged.contains_key(&name) || unanswered.contains(&name),
            "round {round}: {name} stored but never sent"
        );
    }
    for (name, no) in acknowledged {
        assert!(
            numbers.contains(no),
            "round {round}: acknowledged case {no} ({name}) lost after SIGKILL"
        );
        let (status, case) = get_json(agent, &node.url(&format!("/api/cases/{no}"))).unwrap();
        assert_eq!(status, 200, "round {round}: {no} not readable");
        assert_eq!(case["applicant"]["name"].as_str(), Some(name.as_str()));
    }
    let (_, page) = get_json(agent, &node.url("/api/cases?limit=1")).unwrap();
    assert_eq!(
        page["total"].as_u64(),
        Some(listed.len() as u64),
        "round {round}: counter disagrees with the index"
    );
}
