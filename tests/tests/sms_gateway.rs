//! Texts to applicants through an HTTP SMS gateway: a real `tongban-hub serve --sms-url` against a
//! fake gateway in this test (a std `TcpListener` on 127.0.0.1), which answers the first request with
//! 500 and holds the later ones until the test lets them through.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tongban_tests::*;

const KEY: &str = "test-gateway-key-7f3a";
const PHONE: &str = "13800271234";
const LIMIT: Duration = Duration::from_secs(30);

/// One request as the gateway saw it.
#[derive(Debug, Clone)]
struct Seen {
    headers: HashMap<String, String>,
    body: Value,
}

/// The fake gateway: answers the first request 500, every later one 200 once `open` is set.
struct Gateway {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl Gateway {
    fn start() -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/sms/send", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let open: Arc<(Mutex<bool>, Condvar)> = Arc::default();
        let (s, o) = (seen.clone(), open.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (s, o) = (s.clone(), o.clone());
                // Its own thread: a held request must not keep the next one out.
                std::thread::spawn(move || answer(stream, &s, &o));
            }
        });
        Gateway { url, seen, open }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Lets held and later requests through (answered 200).
    fn open(&self) {
        let (lock, cvar) = &*self.open;
        *lock.lock().unwrap() = true;
        cvar.notify_all();
    }
}

fn answer(stream: TcpStream, seen: &Mutex<Vec<Seen>>, open: &(Mutex<bool>, Condvar)) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = HashMap::new();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        read_chunked(&mut reader)
    } else {
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        body
    };
    let first = {
        let mut seen = seen.lock().unwrap();
        seen.push(Seen {
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        seen.len() == 1
    };
    let (status, reply) = if first {
        // Gateways like to echo the request: the hub must mask the number it quotes.
        (
            "500 Internal Server Error",
            format!(r#"{{"error":"provider down, number {PHONE}"}}"#),
        )
    } else {
        let (lock, cvar) = open;
        let guard = lock.lock().unwrap();
        let (_guard, waited) = cvar
            .wait_timeout_while(guard, LIMIT, |open| !*open)
            .unwrap();
        assert!(!waited.timed_out(), "the test never opened the gateway");
        ("200 OK", r#"{"ok":true}"#.to_string())
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

fn read_chunked(reader: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; n + 2];
        reader.read_exact(&mut chunk).unwrap();
        if n == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..n]);
    }
}

fn outbox_message(hub: &NodeProcess, auth: &str, id: u64) -> Value {
    let (status, outbox) = get_json_as(&client(), &hub.url("/api/outbox"), auth).unwrap();
    assert_eq!(status, 200, "{outbox}");
    outbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Polls the outbox until message `id` satisfies `check`; its last state either way.
fn wait_for_message(
    hub: &NodeProcess,
    auth: &str,
    id: u64,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let msg = outbox_message(hub, auth, id);
        if check(&msg) || start.elapsed() > LIMIT {
            return msg;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The one message of `case_no` (its id).
fn message_id_of(hub: &NodeProcess, auth: &str, case_no: &str) -> u64 {
    let (_, outbox) = get_json_as(
        &client(),
        &hub.url(&format!("/api/outbox?case_no={case_no}")),
        auth,
    )
    .unwrap();
    let messages = outbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{outbox}");
    messages[0]["id"].as_u64().unwrap()
}

/// A case filed at the hub's window and received: the next action decides the text.
fn received_case(hub: &NodeProcess, window: (&str, &str), name: &str) -> String {
    let (status, created) = post_json_as(
        &hub.url("/api/cases"),
        &basic_auth(window.0, window.1),
        &valid_case_body(name),
    );
    assert_eq!(status, 201, "{created}");
    let no = created["case_no"].as_str().unwrap().to_string();
    let (status, body) = act_as(&hub.base, window, &no, &json!({"action": "receive"}));
    assert_eq!(status, 200, "{body}");
    no
}

#[test]
fn texts_go_through_the_gateway_with_retries_and_a_daily_limit() {
    let dir = tempfile::tempdir().unwrap();
    HubProcess::init(dir.path()).unwrap();
    HubProcess::add_user(dir.path(), "window1", "window", None).unwrap();
    let key_file = dir.path().join("sms.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let gateway = Gateway::start();
    let key_path = path_str(&key_file).unwrap();
    let hub = HubProcess::serve_logging_info(
        dir.path(),
        &[
            "--sms-url",
            &gateway.url,
            "--sms-key-file",
            key_path,
            "--sms-templates",
            "accepted=T-ACC,correction=T-CORR",
            "--sms-daily-cap",
            "1",
            // The first retry 200 ms after the failure, not 30 s.
            "--sms-retry-base-ms",
            "200",
        ],
    )
    .unwrap()
    .process;
    let window = ("window1", TEST_PASSWORD);
    let window_auth = basic_auth(window.0, window.1);
    let admin_auth = basic_auth("admin", HUB_ADMIN_PASSWORD);

    // A correction: the gateway answers 500, so the message stays pending with one attempt and the
    // reason; its retry is held at the gateway meanwhile, so this state holds still to be looked at.
    let first = received_case(&hub, window, "短信甲");
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let missing = catalog.items[0].materials[0].id.clone();
    let (status, body) = act_as(
        &hub.base,
        window,
        &first,
        &json!({"action": "request_correction", "missing": [missing], "note": "复印件不清晰"}),
    );
    assert_eq!(status, 200, "{body}");
    let id1 = message_id_of(&hub, &window_auth, &first);
    let failed_once = wait_for_message(&hub, &window_auth, id1, |m| m["attempts"] == 1);
    assert_eq!(failed_once["state"], "pending", "{failed_once}");
    assert_eq!(failed_once["attempts"], 1, "{failed_once}");
    let error = failed_once["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("HTTP 500"), "{failed_once}");
    assert!(
        error.contains("138****1234") && !error.contains(PHONE),
        "the gateway's answer is quoted with the number masked: {error}"
    );
    assert!(failed_once["next_attempt_at"].is_string(), "{failed_once}");

    gateway.open();
    let sent = wait_for_message(&hub, &window_auth, id1, |m| m["state"] == "sent");
    assert_eq!(sent["state"], "sent", "{sent}");
    assert_eq!(sent["attempts"], 2, "{sent}");
    assert_eq!(sent["sender"], "sms-http", "{sent}");
    assert!(sent["sent_at"].is_string(), "{sent}");
    let seen = gateway.seen();
    assert_eq!(seen.len(), 2, "one failed attempt, one retry: {seen:?}");
    for request in &seen {
        assert_eq!(
            request.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(
            request.body["message_id"], id1,
            "the same id on every retry"
        );
        assert_eq!(request.body["template_id"], "T-CORR");
        assert_eq!(request.body["kind"], "correction");
        assert_eq!(request.body["phone"], PHONE);
        assert_eq!(request.body["params"]["case_no"], first.as_str());
        let text = request.body["text"].as_str().unwrap();
        assert!(text.contains("需补充材料"), "{text}");
        assert_eq!(request.body["params"]["text"], text);
    }

    // The same number's second text today is held back (cap 1): capped, never posted.
    let second = received_case(&hub, window, "短信乙");
    let (status, body) = act_as(&hub.base, window, &second, &json!({"action": "accept"}));
    assert_eq!(status, 200, "{body}");
    let id2 = message_id_of(&hub, &window_auth, &second);
    let capped = wait_for_message(&hub, &window_auth, id2, |m| m["state"] != "pending");
    assert_eq!(capped["state"], "capped", "{capped}");
    assert_eq!(capped["attempts"], 0, "{capped}");
    assert!(
        capped["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("每天最多1条")),
        "{capped}"
    );
    assert_eq!(gateway.seen().len(), 2, "a capped text is not posted");

    // The page lists it for the window, with the number masked and without a retry button.
    let page = |auth: &str| {
        let mut resp = client()
            .get(hub.url("/outbox"))
            .header("Authorization", auth)
            .call()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    };
    let (status, html) = page(&window_auth);
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&second) && html.contains("超出当日条数"),
        "{html}"
    );
    assert!(html.contains("138****1234"), "{html}");
    assert!(!html.contains(PHONE), "the full number is on the page");
    assert!(!html.contains(&first), "a sent text is not listed");
    assert!(
        !html.contains("重新发送</button>"),
        "the window cannot re-queue"
    );
    let (status, html) = page(&admin_auth);
    assert_eq!(status, 200);
    assert!(html.contains("重新发送</button>"), "{html}");

    // Only the admin re-queues, only a stuck message; a re-queued one goes past the day's limit.
    let retry = |auth: &str, id: u64| {
        post_json_as(
            &hub.url(&format!("/api/outbox/{id}/retry")),
            auth,
            &Value::Null,
        )
    };
    assert_eq!(retry(&window_auth, id2).0, 403);
    assert_eq!(retry(&admin_auth, id1).0, 409, "a sent message");
    assert_eq!(retry(&admin_auth, 999_999).0, 404);
    let (status, body) = retry(&admin_auth, id2);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"]["requeued_by"], "admin", "{body}");
    let resent = wait_for_message(&hub, &window_auth, id2, |m| m["state"] == "sent");
    assert_eq!(resent["state"], "sent", "{resent}");
    let seen = gateway.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[2].body["message_id"], id2);
    assert_eq!(seen[2].body["template_id"], "T-ACC");
    assert_eq!(seen[2].body["kind"], "accepted");

    let log = hub.kill();
    assert!(log.contains("sms sent"), "{log}");
    assert!(
        !log.contains(PHONE),
        "the full number is in the log:\n{log}"
    );
    assert!(!log.contains(KEY), "the key is in the log:\n{log}");
    assert!(!log.contains("需补充材料"), "a text is in the log:\n{log}");
}

/// Runs `serve` with `extra` and expects it to refuse to start: its stderr. A hub that starts anyway
/// is killed and fails the test.
fn refused(dir: &Path, extra: &[&str]) -> String {
    let data = path_str(dir).unwrap();
    let mut args = vec![
        "serve",
        "--data",
        data,
        "--http",
        "127.0.0.1:0",
        "--quic",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut child = Command::new(hub_bin())
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {extra:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{extra:?}: {stderr}");
    stderr
}

#[test]
fn a_bad_gateway_configuration_stops_serve_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    HubProcess::init(dir.path()).unwrap();
    let key_file = dir.path().join("sms.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let key = path_str(&key_file).unwrap();
    let url = "http://127.0.0.1:9/send";

    let e = refused(
        dir.path(),
        &["--sms-url", "ftp://127.0.0.1/send", "--sms-key-file", key],
    );
    assert!(e.contains("--sms-url") && e.contains("http://"), "{e}");
    let e = refused(
        dir.path(),
        &[
            "--sms-url",
            "http://user:pw@127.0.0.1/",
            "--sms-key-file",
            key,
        ],
    );
    assert!(e.contains("--sms-key-file"), "{e}");
    let missing = dir.path().join("no-such.key");
    let e = refused(
        dir.path(),
        &[
            "--sms-url",
            url,
            "--sms-key-file",
            path_str(&missing).unwrap(),
        ],
    );
    assert!(
        e.contains("--sms-key-file") && e.contains("no-such.key"),
        "{e}"
    );
    let e = refused(
        dir.path(),
        &[
            "--sms-url",
            url,
            "--sms-key-file",
            key,
            "--sms-templates",
            "acepted=T1",
        ],
    );
    assert!(
        e.contains("--sms-templates") && e.contains("acepted"),
        "{e}"
    );
    let e = refused(dir.path(), &["--sms-url", url]);
    assert!(e.contains("--sms-key-file"), "a gateway needs its key: {e}");
    let e = refused(dir.path(), &["--sms-key-file", key]);
    assert!(e.contains("--sms-url"), "a key without a gateway: {e}");
    assert!(!e.contains(KEY));
}
