//! `GET /metrics` and `--log-format json` through the real binaries: a hub and an enrolled village on
//! loopback, a case filed and synced, and the figures each one's scrape must then show.
//!
//! What the access rule does for a request from another address (401 without an account) is pinned
//! in process by `shared/web/tests/router.rs`
//! (`metrics_need_an_account_from_another_address_but_not_from_this_pc`), where the router sees any
//! peer address it is given.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tongban_tests::*;

const VILLAGE: &str = "420222100201";
const COUNTY: &str = "420222";
/// Room for the hub to record a session the village has already finished.
const WITHIN: Duration = Duration::from_secs(20);

/// One scrape: every sample line as `name{labels}` → value.
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// `GET /metrics` without an account: the test talks to the servers over loopback.
    fn of(base: &str) -> Scrape {
        let mut resp = client()
            .get(format!("{base}/metrics"))
            .call()
            .unwrap_or_else(|e| panic!("GET {base}/metrics: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "loopback needs no account");
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = resp.body_mut().read_to_string().unwrap();
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
                (
                    series.to_string(),
                    value.parse().unwrap_or_else(|_| panic!("{l}")),
                )
            })
            .collect();
        Scrape(samples)
    }

    /// The sample's value; 0 for a series not (yet) there, as Prometheus reads an absent counter.
    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    fn bytes(&self, peer: &str, direction: &str, kind: &str) -> f64 {
        self.get(&format!(
            "tongban_sync_bytes_total{{peer=\"{peer}\",direction=\"{direction}\",kind=\"{kind}\"}}"
        ))
    }
}

#[test]
fn metrics_show_intake_sync_bytes_requests_and_failed_logins_at_the_hub_and_the_village() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    // A long interval: the sessions are the first one at start, the one after the write, and ours.
    let (node, _village) = hub.village(VILLAGE, &["--sync-interval", "3600"]).unwrap();

    let case_no = file_case(&node, "王秀英");
    let (status, body) = node.sync_now();
    assert_eq!(status, 200, "{body}");
    // The session's report: what `/metrics` adds up per peer.
    assert!(
        body["wire_bytes_sent"].as_u64() > body["bytes_sent"].as_u64(),
        "{body}"
    );
    eprintln!("session report: {body}");

    // A wrong password at the village.
    let (status, _) = get_json_as(
        &client(),
        &node.url("/api/cases"),
        &basic_auth(TEST_USER, "not-the-password"),
    )
    .unwrap();
    assert_eq!(status, 401);

    let village = Scrape::of(&node.base);
    eprintln!("village scrape: {:#?}", village.0);
    assert_eq!(village.get("tongban_intake_total"), 1.0);
    assert_eq!(village.get("tongban_cases{state=\"SUBMITTED\"}"), 1.0);
    assert_eq!(village.get("tongban_cases{state=\"ACCEPTED\"}"), 0.0);
    assert_eq!(
        village.get("tongban_sync_pending_up"),
        0.0,
        "the case went up"
    );
    let up = format!("{{peer=\"{COUNTY}\"}}");
    assert!(village.get(&format!("tongban_sync_sessions_total{up}")) >= 1.0);
    assert_eq!(
        village.get(&format!("tongban_sync_session_failures_total{up}")),
        0.0
    );
    for direction in ["sent", "received"] {
        let payload = village.bytes(COUNTY, direction, "payload");
        let wire = village.bytes(COUNTY, direction, "wire");
        assert!(payload > 0.0, "village {direction} payload {payload}");
        assert!(
            wire > payload,
            "village {direction}: wire {wire} ≤ payload {payload}"
        );
    }
    // The case's own bytes went up in a session: more than a "nothing changed" round trip.
    assert!(village.bytes(COUNTY, "sent", "payload") > 1000.0);
    assert_eq!(
        village.get(
            "tongban_http_request_duration_seconds_count{method=\"POST\",route=\"/api/cases\",status=\"2xx\"}"
        ),
        1.0
    );
    assert_eq!(
        village.get(
            "tongban_http_request_duration_seconds_count{method=\"GET\",route=\"/api/cases\",status=\"4xx\"}"
        ),
        1.0
    );
    // No case number ever becomes a label: routes are templates.
    assert!(!village.0.keys().any(|k| k.contains(&case_no)));
    assert_eq!(
        village.get("tongban_login_failures_total{reason=\"wrong_password\"}"),
        1.0
    );
    assert!(village.get("tongban_store_size_bytes") > 0.0);
    assert_eq!(village.get("tongban_storage_faults_total"), 0.0);

    // The hub records a session when its side of it ends, a moment after the village's answer.
    let down = format!("{{peer=\"{VILLAGE}\"}}");
    let mut county = Scrape::of(&hub.process.base);
    assert!(
        eventually(WITHIN, || {
            county = Scrape::of(&hub.process.base);
            county.get("tongban_cases{state=\"SUBMITTED\"}") == 1.0
                && county.bytes(VILLAGE, "received", "payload") > 1000.0
        }),
        "{:#?}",
        county.0
    );
    eprintln!("hub scrape: {:#?}", county.0);
    assert_eq!(
        county.get("tongban_intake_total"),
        0.0,
        "filed at the village"
    );
    assert!(county.get(&format!("tongban_sync_sessions_total{down}")) >= 1.0);
    assert_eq!(
        county.get(&format!("tongban_sync_refusals_total{down}")),
        0.0
    );
    for direction in ["sent", "received"] {
        let payload = county.bytes(VILLAGE, direction, "payload");
        let wire = county.bytes(VILLAGE, direction, "wire");
        assert!(payload > 0.0, "hub {direction} payload {payload}");
        assert!(
            wire > payload,
            "hub {direction}: wire {wire} ≤ payload {payload}"
        );
    }
    // The hub has no upstream: no writes wait to go up there.
    assert!(!county.0.contains_key("tongban_sync_pending_up"));

    // A failed login at the hub counts there, not at the village.
    let (status, _) = get_json_as(
        &client(),
        &hub.url("/api/nodes"),
        &basic_auth("admin", "not-the-password"),
    )
    .unwrap();
    assert_eq!(status, 401);
    let county = Scrape::of(&hub.process.base);
    assert_eq!(
        county.get("tongban_login_failures_total{reason=\"wrong_password\"}"),
        1.0
    );
    assert!(
        county.get(
            "tongban_http_request_duration_seconds_count{method=\"POST\",route=\"/api/nodes\",status=\"2xx\"}"
        ) >= 1.0,
        "the enrolment went through the hub's own routes, timed too"
    );
}

/// Every stderr line of a server started with `--log-format json` is one JSON object with the level
/// and the event's fields.
fn assert_json_lines(log: &str, message: &str) {
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["fields"]["message"] == message)
        .unwrap_or_else(|| panic!("no {message:?} line in {log}"));
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    assert!(line["target"].is_string(), "{line}");
}

#[test]
fn serve_with_log_format_json_writes_one_json_object_a_line() {
    let info = |c: &mut std::process::Command| {
        c.env("RUST_LOG", "info");
    };
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path()).unwrap();
    let data = path_str(dir.path()).unwrap();
    let args = [
        "serve",
        "--data",
        data,
        "--http",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ];
    // The line that says the node serves is written before the URL the helper waits for.
    let (node, _) = spawn_server_with(&node_bin(), &args, "tongban-node serving ", info).unwrap();
    assert_json_lines(&node.kill(), "node serving");

    let hub_dir = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    // The hub prints its URL before it logs that it serves, and answers only after: one answer
    // means the line is written.
    let hub = HubProcess::serve_logging_info(hub_dir.path(), &["--log-format", "json"])
        .unwrap()
        .process;
    let (status, _) = get_json(&client(), &hub.url("/api/health")).unwrap();
    assert_eq!(status, 200);
    assert_json_lines(&hub.kill(), "hub serving");

    // Anything else is refused before the server starts, naming the two formats.
    let (ok, _, err) = node_cmd(&["serve", "--data", data, "--log-format", "xml"]).unwrap();
    assert!(!ok);
    assert!(err.contains("text or json"), "{err}");
}
