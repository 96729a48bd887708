//! The county's nodes: `GET/POST /api/nodes` (list, enrol on a running hub), revocation, and the
//! `/nodes` page that shows the tree county → township → village with each link's health.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tongban_runtime::clock::beijing_now;
use tongban_runtime::store::county::NodeRecord;
use tongban_shared::FieldError;
use tongban_web::error::{body_error, parse_json};
use tongban_web::extract::{ApiUser, WebUser};
use tongban_web::pages::common::PageCtx;
use tongban_web::{access, audit};
use tongban_web::{blocking, AppError};

use super::state::HubState;

pub fn routes() -> Router<HubState> {
    Router::new()
        .route("/api/nodes", get(nodes_json).post(enroll_node))
        .route("/api/nodes/{code}/revoke", post(revoke))
        .route("/nodes", get(nodes_page))
        .route("/nodes/enroll", post(enroll_submit))
        .route("/nodes/{code}/revoke", post(revoke_submit))
}

/// A node that has not synced for this long is highlighted on the node page (`TONGBAN_STALE_HOURS`).
const STALE_HOURS: i64 = 24;

fn stale_hours() -> i64 {
    std::env::var("TONGBAN_STALE_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .filter(|h| *h > 0)
        .unwrap_or(STALE_HOURS)
}

async fn node_rows(state: &HubState) -> Result<Vec<(NodeRecord, u64)>, AppError> {
    let st = state.app.clone();
    blocking(move || {
        let mut out = Vec::new();
        for rec in st.store.county().nodes()? {
            let cases = st.store.cases_in_scope(&rec.code)?;
            out.push((rec, cases));
        }
        Ok(out)
    })
    .await
}

async fn nodes_json(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
) -> Result<Json<Value>, AppError> {
    access::require_endpoint(&user, "GET /api/nodes")?;
    let rows = node_rows(&state).await?;
    let nodes: Vec<Value> = rows
        .into_iter()
        .map(|(rec, cases)| {
            json!({
                "code": rec.code,
                "name": rec.name,
                "tier": rec.tier,
                "parent": rec.parent,
                "last_seen": rec.last_seen,
                "revoked": rec.revoked,
                "cases": cases,
                "sessions": rec.sessions,
                "failed_sessions": rec.failed_sessions,
                "refusals": rec.refusals,
                "pending": rec.pending,
                "via": rec.via,
                "relayed_sessions": rec.relayed_sessions,
                "relayed_refusals": rec.relayed_refusals,
                "last_error": rec.last_error,
                "clock_skew_s": rec.clock_skew_s,
            })
        })
        .collect();
    Ok(Json(json!({ "nodes": nodes })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    code: String,
    name: String,
    tier: tongban_shared::Tier,
    #[serde(default)]
    parent: Option<String>,
    upstream: String,
    #[serde(default)]
    upstream_name: Option<String>,
    #[serde(default)]
    fallback: Option<String>,
    /// The node's PEM certificate request: required, so that no private key crosses the network.
    #[serde(default)]
    csr: Option<String>,
    #[serde(default)]
    replace: bool,
}

/// Enrols a node from its certificate request (the API's and the page's way alike): certificates
/// only, audited.
async fn enroll_with(
    state: &HubState,
    user: &tongban_web::extract::CurrentUser,
    req: EnrollBody,
) -> Result<tongban_runtime::bundle::Bundle, AppError> {
    if req.csr.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(AppError::Invalid(vec![FieldError::new(
            "csr",
            "需要站点的证书请求（在站点电脑上运行 tongban-node csr 生成）：私钥不经网络传送。",
        )]));
    }
    let st = state.app.clone();
    let data = state.data.clone();
    let bundle = blocking(move || {
        let signer = crate::certs::node_signer(&data).map_err(|e| match e {
            crate::error::CountyError::Invalid(m) => {
                AppError::Invalid(vec![FieldError::new("code", m)])
            }
            other => AppError::internal(other),
        })?;
        crate::county::enroll(
            &st.store,
            &signer,
            &crate::county::EnrollRequest {
                code: &req.code,
                name: &req.name,
                tier: req.tier,
                parent: req.parent.as_deref(),
                upstream: &req.upstream,
                upstream_name: req.upstream_name.as_deref(),
                fallback: req.fallback.as_deref(),
                csr: req.csr.as_deref(),
                replace: req.replace,
            },
            None,
            beijing_now(),
        )
        .map_err(|e| match e {
            crate::error::CountyError::Invalid(m) => {
                AppError::Invalid(vec![FieldError::new("code", m)])
            }
            other => AppError::internal(other),
        })
    })
    .await?;
    audit::record(
        &state.app.store,
        &user.name,
        "node.enrolled",
        &bundle.code,
        user.source,
    )
    .await?;
    Ok(bundle)
}

/// `POST /api/nodes` (admin): `enroll --csr` on a running hub. Takes the node's certificate request
/// and answers a bundle of certificates only: a key made here would cross the network, so a request
/// without `csr` is refused (the keyed USB-stick bundle is the command line's, on a stopped hub).
async fn enroll_node(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    access::require_endpoint(&user, "POST /api/nodes")?;
    let body = body.map_err(body_error)?;
    let req: EnrollBody = parse_json(&body)?;
    let bundle = enroll_with(&state, &user, req).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(serde_json::to_value(&bundle).map_err(AppError::internal)?),
    )
        .into_response())
}

async fn revoke(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    Path(code): Path<String>,
) -> Result<Json<Value>, AppError> {
    access::require_endpoint(&user, "POST /api/nodes/{code}/revoke")?;
    let updated = revoke_node(&state, &user, &code).await?;
    Ok(Json(json!({ "code": updated.code, "revoked": true })))
}

/// Revokes node `code`: effective at once (open connections close, the next handshake is refused),
/// audited.
async fn revoke_node(
    state: &HubState,
    user: &tongban_web::extract::CurrentUser,
    code: &str,
) -> Result<NodeRecord, AppError> {
    let st = state.app.clone();
    let c = code.to_string();
    let updated = blocking(move || {
        let Some(mut rec) = st.store.county().node_record(&c)? else {
            return Ok(None);
        };
        rec.revoked = true;
        st.store.county().put_node(&rec)?;
        Ok(Some(rec))
    })
    .await?
    .ok_or_else(|| AppError::NotFound(format!("没有登记过站点“{code}”。")))?;
    state
        .connections
        .close_peer(code, "node has been revoked by the county");
    audit::record(
        &state.app.store,
        &user.name,
        "node.revoked",
        code,
        user.source,
    )
    .await?;
    Ok(updated)
}

struct NodeRow {
    /// Villages are indented under their township: the page shows the tree county → township → village.
    depth: usize,
    via: String,
    pending: u64,
    code: String,
    name: String,
    tier: &'static str,
    last_seen: String,
    cases: u64,
    sessions: u64,
    failed: u64,
    refusals: u64,
    revoked: bool,
    stale: bool,
    last_error: String,
    last_refusal: String,
}

#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage {
    /// The shared header: place, link badge, navigation, logout.
    page: PageCtx,
    stale_hours: i64,
    rows: Vec<NodeRow>,
    /// The admin enrols and revokes here.
    admin: bool,
    done: Option<String>,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
struct Banner {
    done: Option<String>,
    error: Option<String>,
}

async fn nodes_page(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    axum::extract::Query(banner): axum::extract::Query<Banner>,
) -> Response {
    if let Err(e) = access::require_endpoint(&user, "/nodes") {
        return e.into_response();
    }
    let rows = match node_rows(&state).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let now = beijing_now();
    let stale_hours = stale_hours();
    // Rows come in code order, so a village follows its township when that township is enrolled;
    // a village whose township is not (it syncs with the county directly) stands on its own.
    let enrolled: std::collections::BTreeSet<String> =
        rows.iter().map(|(rec, _)| rec.code.clone()).collect();
    let rows = rows
        .into_iter()
        .map(|(rec, cases)| {
            let seen = rec
                .last_seen
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            NodeRow {
                depth: usize::from(
                    rec.tier == tongban_shared::Tier::Village
                        && rec.parent.as_ref().is_some_and(|p| enrolled.contains(p)),
                ),
                via: rec.via.clone().unwrap_or_else(|| "直连".into()),
                pending: rec.pending,
                stale: seen.is_none_or(|t| (now - t).num_hours() >= stale_hours),
                last_seen: seen
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "从未同步".into()),
                code: rec.code,
                name: rec.name,
                tier: match rec.tier {
                    tongban_shared::Tier::Township => "乡镇",
                    tongban_shared::Tier::Village => "村（社区）",
                    tongban_shared::Tier::County => "县",
                },
                cases,
                sessions: rec.sessions,
                failed: rec.failed_sessions,
                refusals: rec.refusals,
                revoked: rec.revoked,
                last_error: rec.last_error.unwrap_or_default(),
                last_refusal: rec.last_refusal.unwrap_or_default(),
            }
        })
        .collect();
    let page = NodesPage {
        page: PageCtx::new(&state.app, &user),
        stale_hours,
        rows,
        admin: access::may_use(&user.role, "POST /nodes/enroll") == Some(true),
        done: banner.done,
        error: banner.error,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => AppError::internal(e).into_response(),
    }
}

fn back(outcome: Result<String, AppError>) -> Response {
    tongban_web::pages::common::back_to("/nodes", outcome)
}

/// `POST /nodes/enroll`: the enrolment form. The answer is the bundle itself, downloaded as
/// `CODE.bundle.json` for the station's USB stick (certificates only; the key never left the PC).
async fn enroll_submit(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    use tongban_web::pages::common::{csrf_checked_form, field};
    if let Err(e) = access::require_endpoint(&user, "POST /nodes/enroll") {
        return e.into_response();
    }
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let tier = match field(&pairs, "tier") {
        "township" => tongban_shared::Tier::Township,
        _ => tongban_shared::Tier::Village,
    };
    let optional = |name: &str| {
        let v = field(&pairs, name).trim();
        (!v.is_empty()).then(|| v.to_string())
    };
    let req = EnrollBody {
        code: field(&pairs, "code").trim().to_string(),
        name: field(&pairs, "name").trim().to_string(),
        tier,
        parent: optional("parent"),
        upstream: field(&pairs, "upstream").trim().to_string(),
        upstream_name: optional("upstream_name"),
        fallback: optional("fallback"),
        csr: optional("csr"),
        replace: field(&pairs, "replace") == "1",
    };
    match enroll_with(&state, &user, req).await {
        Ok(bundle) => match serde_json::to_vec_pretty(&bundle) {
            Ok(json) => (
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "application/json".to_string(),
                    ),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}.bundle.json\"", bundle.code),
                    ),
                ],
                json,
            )
                .into_response(),
            Err(e) => AppError::internal(e).into_response(),
        },
        Err(e) => back(Err(e)),
    }
}

/// `POST /nodes/{code}/revoke`: the revoke button, after its confirmation box.
async fn revoke_submit(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    Path(code): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    use tongban_web::pages::common::{csrf_checked_form, field};
    if let Err(e) = access::require_endpoint(&user, "POST /nodes/{code}/revoke") {
        return e.into_response();
    }
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if field(&pairs, "confirm") != "1" {
        return back(Err(AppError::Conflict(format!(
            "吊销站点 {code} 前请勾选确认：吊销后它不能再同步，须由县里重新接入。"
        ))));
    }
    let done = revoke_node(&state, &user, &code).await;
    back(done.map(|rec| {
        format!(
            "已吊销站点 {}（{}）：它的连接已断开，不能再同步。",
            rec.name, rec.code
        )
    }))
}
