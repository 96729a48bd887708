//! The case web app in process: the router a tier builds, a real sled store in a temp dir, requests
//! through `tower::ServiceExt::oneshot` with no socket. Each refusal answers its status and Chinese
//! body; a storage fault latches 507 while a refused write does not.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tongban_runtime::store::{NodeIdentity, Refusal, Store, StoreError, UserRecord};
use tongban_shared::case::CaseDoc;
use tongban_shared::catalog::{Catalog, BUILTIN_CATALOG_JSON};
use tongban_shared::workflow::ActionInput;
use tongban_web::site::{Badge, Site};
use tongban_web::AppState;
use tower::ServiceExt;

/// What the test site's after-action hook answers next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hook {
    Ok,
    /// The disk failed while the hook wrote.
    Fault,
    /// The hook's write was refused (bad input), the disk is fine.
    Refusal,
}

struct TestSite {
    next: Mutex<Hook>,
    writes: Mutex<u32>,
}

impl Site for TestSite {
    fn after_write(&self) {
        *self.writes.lock().unwrap() += 1;
    }

    fn after_action(
        &self,
        _store: &Store,
        _input: &ActionInput,
        _case: &CaseDoc,
        _county: &tongban_shared::catalog::CountySettings,
        _now: &str,
    ) -> Result<(), StoreError> {
        match *self.next.lock().unwrap() {
            Hook::Ok => Ok(()),
            Hook::Fault => Err(StoreError::Sled(sled::Error::Io(std::io::Error::other(
                "disk full",
            )))),
            Hook::Refusal => Err(StoreError::Refused(Refusal::Exists(
                "account daiban".into(),
            ))),
        }
    }

    fn badge(&self) -> Badge {
        Badge {
            class: "badge-online",
            text: "测试".into(),
            hint: String::new(),
            alert: None,
            sync_now: false,
        }
    }
}

struct App {
    router: Router,
    site: Arc<TestSite>,
    _dir: tempfile::TempDir,
}

const BASIC: (&str, &str) = ("daiban", "daiban123");

fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let identity = NodeIdentity {
        code: "420222100201".into(),
        name: "兴国镇示范村便民服务站".into(),
        tier: tongban_shared::Tier::Village,
        parent: Some("420222100".into()),
        upstream: None,
        upstream_name: None,
        fallback: None,
        created_at: "2026-12-01T09:00:00+08:00".into(),
    };
    let store = Store::create(dir.path(), &identity, &[7u8; 16], BUILTIN_CATALOG_JSON).unwrap();
    store
        .add_user(&UserRecord {
            name: BASIC.0.into(),
            display_name: "李代办".into(),
            role: "agent".into(),
            password_hash: tongban_web::accounts::hash_password(BASIC.1).unwrap(),
            created_at: "2026-12-01T09:00:00+08:00".into(),
        })
        .unwrap();
    let site = Arc::new(TestSite {
        next: Mutex::new(Hook::Ok),
        writes: Mutex::new(0),
    });
    let state = Arc::new(AppState::new_blocking(store, site.clone()).unwrap());
    App {
        router: tongban_web::router(state, Router::new()),
        site,
        _dir: dir,
    }
}

fn basic() -> String {
    let raw = format!("{}:{}", BASIC.0, BASIC.1);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn case_body() -> Value {
    let catalog = Catalog::builtin().unwrap();
    let item = &catalog.items[0];
    json!({
        "item_code": item.code,
        "applicant": {"name": "王秀英", "id_number": "11010519491231002X", "phone": "13800271234"},
        "materials": item.materials.iter().filter(|m| m.required).map(|m| m.id.clone()).collect::<Vec<_>>(),
        "delivery": "代办员送达",
        "note": ""
    })
}

async fn send(app: &App, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, basic())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `POST /api/cases/{no}/actions` with `body`, as the agent.
async fn act(app: &App, no: &str, body: Value) -> (StatusCode, String) {
    let (status, _, text) = send(
        app,
        post_json(&format!("/api/cases/{no}/actions"), &body.to_string()),
    )
    .await;
    (status, text)
}

/// `GET uri` as the agent.
async fn get(app: &App, uri: &str) -> (StatusCode, String) {
    let (status, _, text) = send(
        app,
        Request::get(uri)
            .header(header::AUTHORIZATION, basic())
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    (status, text)
}

async fn file_case(app: &App) -> String {
    let (status, _, body) = send(app, post_json("/api/cases", &case_body().to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    json_of(&body)["case_no"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_answer_their_status_with_a_chinese_reason() {
    let app = app();

    // 401: no account; the browser is asked for one.
    let (status, headers, body) = send(
        &app,
        Request::get("/api/cases").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    assert!(json_of(&body)["error"].as_str().unwrap().contains("登录"));

    // 400: broken JSON.
    let (status, _, body) = send(&app, post_json("/api/cases", "{\"item_code\": ")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(json_of(&body)["error"].as_str().unwrap().contains("JSON"));

    // 422: well-formed JSON missing a field, named.
    let mut missing = case_body();
    missing.as_object_mut().unwrap().remove("applicant");
    let (status, _, body) = send(&app, post_json("/api/cases", &missing.to_string())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(json_of(&body)["field"], "applicant");

    // 413: over the body limit, refused before it is read.
    let big = "x".repeat(tongban_web::state::MAX_BODY_BYTES + 1);
    let (status, _, body) = send(&app, post_json("/api/cases", &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // 403: an agent may not take the window's action.
    let no = file_case(&app).await;
    let (status, body) = act(&app, &no, json!({"action": "receive"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(json_of(&body)["error"].as_str().unwrap().contains("无权"));

    // 422 for an action nobody knows, naming the field; a case number that is none is 404.
    let (status, body) = act(&app, &no, json!({"action": "fly"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(json_of(&body)["field"], "action");
    let (status, _, _) = send(
        &app,
        post_json(
            "/api/cases/..%2Fdb/actions",
            &json!({"action": "escalate"}).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // 404 for an unknown case, as JSON under /api.
    let (status, _) = get(&app, "/api/cases/420222100201-20261201-9999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_submission_answers_the_first_case() {
    let app = app();
    let req = |key: &str| {
        Request::post("/api/cases")
            .header(header::AUTHORIZATION, basic())
            .header("idempotency-key", key)
            .body(Body::from(case_body().to_string()))
            .unwrap()
    };
    let (first, _, a) = send(&app, req("retry-1")).await;
    let (second, _, b) = send(&app, req("retry-1")).await;
    assert_eq!(first, StatusCode::CREATED, "{a}");
    assert_eq!(second, StatusCode::OK, "{b}");
    let (a, b) = (json_of(&a), json_of(&b));
    assert_eq!(a["case_no"], b["case_no"]);
    assert_eq!(b["replayed"], true);
    // Only the first was a write the uplink had to send.
    assert_eq!(*app.site.writes.lock().unwrap(), 1);
    let (_, list) = get(&app, "/api/cases").await;
    assert_eq!(json_of(&list)["total"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_this_sessions_csrf_token_is_refused() {
    let app = app();
    let (status, headers, _) = send(
        &app,
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("user=daiban&password=daiban123&next=%2F"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let item = Catalog::builtin().unwrap().items[0].code.clone();
    let form = format!(
        "csrf=forged&form_token=t1&item_code={item}&kind=1&name=%E7%8E%8B&id_number=11010519491231002X&phone=13800271234&delivery=%E4%BB%A3%E5%8A%9E%E5%91%98%E9%80%81%E8%BE%BE"
    );
    let (status, _, body) = send(
        &app,
        Request::post("/cases/new")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("页面已过期"), "{body}");
    let (_, list) = get(&app, "/api/cases").await;
    assert_eq!(json_of(&list)["total"], 0, "nothing was filed");
}

async fn escalate(app: &App, no: &str) -> (StatusCode, String) {
    act(
        app,
        no,
        json!({"action": "escalate", "reason": "等了很久没有结果"}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_leaves_the_node_taking_cases() {
    let app = app();
    let no = file_case(&app).await;
    *app.site.next.lock().unwrap() = Hook::Refusal;
    let (status, body) = escalate(&app, &no).await;
    assert_ne!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert!(
        status.is_client_error(),
        "a refusal is the request's: {status} {body}"
    );
    // The store is fine: the next case is taken.
    file_case(&app).await;
    let (_, health) = get(&app, "/api/health").await;
    assert_eq!(json_of(&health)["storage"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_fault_answers_507_and_stops_intake_until_restart() {
    let app = app();
    let no = file_case(&app).await;
    *app.site.next.lock().unwrap() = Hook::Fault;
    let (status, body) = escalate(&app, &no).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert!(json_of(&body)["error"]
        .as_str()
        .unwrap()
        .contains("存储出错"));
    // From now on nothing more is acknowledged, even with the disk apparently back.
    *app.site.next.lock().unwrap() = Hook::Ok;
    let (status, _, _) = send(&app, post_json("/api/cases", &case_body().to_string())).await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
    let (_, health) = get(&app, "/api/health").await;
    assert_eq!(json_of(&health)["storage"], "failed");
    // One fault, counted once: the refusals the latch answers afterwards are not new faults.
    let (_, metrics) = get(&app, "/metrics").await;
    assert!(
        metrics.contains("\ntongban_storage_faults_total 1\n"),
        "{metrics}"
    );
}

/// A request as if it came over the network from `peer`, with an account or none.
fn from_peer(uri: &str, peer: &str, auth: Option<String>) -> Request<Body> {
    let mut req = Request::get(uri);
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(tongban_web::Peer {
            addr: peer.parse().unwrap(),
            tls: true,
        }));
    req
}

/// `GET /metrics` needs no account from this PC (a scraper beside the server), and one from anywhere
/// else; a request whose source is unknown is not taken for a local one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_an_account_from_another_address_but_not_from_this_pc() {
    let app = app();
    for local in ["127.0.0.1:50000", "[::1]:50000"] {
        let (status, headers, body) = send(&app, from_peer("/metrics", local, None)).await;
        assert_eq!(status, StatusCode::OK, "{local}: {body}");
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert!(
            body.contains("tongban_cases{state=\"SUBMITTED\"} 0"),
            "{body}"
        );
    }
    let hall = "192.168.1.20:50000";
    let (status, _, body) = send(&app, from_peer("/metrics", hall, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains("tongban_"), "{body}");
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("daiban:not-the-password")
    );
    let (status, _, _) = send(&app, from_peer("/metrics", hall, Some(wrong))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = send(&app, from_peer("/metrics", hall, Some(basic()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The wrong password just tried is counted; the route template labels the 401s.
    assert!(
        body.contains("tongban_login_failures_total{reason=\"wrong_password\"} 1"),
        "{body}"
    );
    assert!(
        body.contains(
            "tongban_http_request_duration_seconds_count{method=\"GET\",route=\"/metrics\",status=\"4xx\"} 2"
        ),
        "{body}"
    );
    let (status, _, _) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no recorded source");
}

/// A plain-HTTP address beyond loopback answers only a redirect to the same path over HTTPS (and the
/// public CA routes it is given); a `Host` header that is not a plain name gets no redirect at all.
#[tokio::test]
async fn plain_http_beyond_loopback_only_redirects_to_https() {
    let app = tongban_web::https::redirect_to_https(8443, Router::new());
    let ask = |host: &'static str, path: &'static str| {
        let app = app.clone();
        async move {
            let req = Request::get(path)
                .header(header::HOST, host)
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap()
        }
    };
    let resp = ask("10.1.2.3:8080", "/cases?state=submitted").await;
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers()[header::LOCATION],
        "https://10.1.2.3:8443/cases?state=submitted"
    );
    let resp = ask("evil.example/x", "/login").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(header::LOCATION).is_none());
}
