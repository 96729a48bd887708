//! The hub's own HTTP routes, merged into the case web app it shares with the nodes: the node list
//! (`GET /api/nodes`, the `/nodes` page), revocation, and case actions taken at the county.

use askama::Template;
use axum::extract::{FromRef, Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tongban_node::app::{self, blocking, ApiUser, AppError, SharedState, WebUser};
use tongban_runtime::store::NodeRecord;
use tongban_runtime::transport::Connections;
use tongban_shared::FieldError;

/// A node that has not synced for this long is highlighted on the node page.
const STALE_HOURS: i64 = 24;

#[derive(Clone)]
pub struct HubState {
    pub app: SharedState,
    pub connections: Connections,
    /// The hub's data directory (the CA lives there; enrolment through the API reads it).
    pub data: std::path::PathBuf,
}

impl FromRef<HubState> for SharedState {
    fn from_ref(s: &HubState) -> SharedState {
        s.app.clone()
    }
}

pub fn routes(state: HubState) -> Router {
    Router::new()
        .route("/api/nodes", get(nodes_json).post(enroll_node))
        .route("/api/nodes/{code}/revoke", post(revoke))
        .route("/api/catalog/publish", post(publish_catalog))
        .route("/nodes", get(nodes_page))
        .layer(axum::extract::DefaultBodyLimit::max(app::MAX_BODY_BYTES))
        .with_state(state)
}

fn require_role(user: &app::CurrentUser, roles: &[&str]) -> Result<(), AppError> {
    if roles.contains(&user.role.as_str()) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!(
            "账号“{}”的角色无权进行此操作。",
            user.name
        )))
    }
}

async fn node_rows(state: &HubState) -> Result<Vec<(NodeRecord, u64)>, AppError> {
    let st = state.app.clone();
    blocking(move || {
        let mut out = Vec::new();
        for rec in st.store.nodes()? {
            let cases = st.store.cases_in_scope(&rec.code)?;
            out.push((rec, cases));
        }
        Ok(out)
    })
    .await
}

async fn nodes_json(
    State(state): State<HubState>,
    _user: ApiUser,
) -> Result<Json<Value>, AppError> {
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
                "last_error": rec.last_error,
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
}

/// `POST /api/nodes` (admin): `enroll` on a running hub. Answers the bundle itself (it contains the
/// node's private key: hand it over as carefully as the file `tongban-hub enroll` writes).
async fn enroll_node(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, AppError> {
    require_role(&user, &["admin"])?;
    let body = body.map_err(tongban_node::api::body_error)?;
    let req: EnrollBody = tongban_node::api::parse_json(&body)?;
    let st = state.app.clone();
    let data = state.data.clone();
    let bundle = blocking(move || {
        let ca = crate::county::ca(&data).map_err(AppError::internal)?;
        // The bundle file goes to a private temporary path and is read back, so that the API and the
        // CLI share one enrolment path.
        let tmp = data.join(format!("enroll-{}.json", req.code));
        let _ = std::fs::remove_file(&tmp);
        let result = crate::county::enroll(
            &st.store,
            &ca,
            &crate::county::EnrollRequest {
                code: &req.code,
                name: &req.name,
                tier: req.tier,
                parent: req.parent.as_deref(),
                upstream: &req.upstream,
                upstream_name: req.upstream_name.as_deref(),
            },
            &tmp,
            app::beijing_now(),
        );
        let _ = std::fs::remove_file(&tmp);
        result.map_err(|e| match e {
            crate::county::CountyError::Invalid(m) => {
                AppError::Invalid(vec![FieldError::new("code", m)])
            }
            other => AppError::internal(other),
        })
    })
    .await?;
    tracing::info!(node = %bundle.code, by = %user.name, "node enrolled");
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
    require_role(&user, &["admin"])?;
    let st = state.app.clone();
    let c = code.clone();
    let updated = blocking(move || {
        let Some(mut rec) = st.store.node_record(&c)? else {
            return Ok(None);
        };
        rec.revoked = true;
        st.store.put_node(&rec)?;
        Ok(Some(rec))
    })
    .await?
    .ok_or_else(|| AppError::NotFound(format!("没有登记过站点“{code}”。")))?;
    // Effective at once: open connections close now, the next handshake is refused by the gate.
    state
        .connections
        .close_peer(&code, "node has been revoked by the county");
    tracing::warn!(node = %code, by = %user.name, "node revoked");
    Ok(Json(json!({ "code": updated.code, "revoked": true })))
}

/// `POST /api/catalog/publish` (admin): body is a complete catalogue JSON with a higher version. It
/// reaches every node with its next sync session.
async fn publish_catalog(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, AppError> {
    require_role(&user, &["admin"])?;
    let body = body.map_err(tongban_node::api::body_error)?;
    let json = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::Malformed("事项目录必须是UTF-8编码的JSON。".into()))?;
    let st = state.app.clone();
    let version = blocking(move || {
        st.store.set_catalog(&json).map_err(|e| {
            AppError::Invalid(vec![FieldError::new(
                "catalog",
                format!("事项目录未发布：{e}"),
            )])
        })
    })
    .await?;
    tracing::info!(version, by = %user.name, "catalogue published");
    Ok(Json(json!({ "version": version })))
}

struct NodeRow {
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
}

#[derive(Template)]
#[template(path = "nodes.html")]
struct NodesPage {
    county: String,
    user: String,
    stale_hours: i64,
    rows: Vec<NodeRow>,
}

async fn nodes_page(State(state): State<HubState>, WebUser(user): WebUser) -> Response {
    let rows = match node_rows(&state).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let now = app::beijing_now();
    let rows = rows
        .into_iter()
        .map(|(rec, cases)| {
            let seen = rec
                .last_seen
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            NodeRow {
                stale: seen.is_none_or(|t| (now - t).num_hours() >= STALE_HOURS),
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
            }
        })
        .collect();
    let page = NodesPage {
        county: state.app.identity.name.clone(),
        user: user.display_name,
        stale_hours: STALE_HOURS,
        rows,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => AppError::internal(e).into_response(),
    }
}

/// The whole HTTP app of the hub.
pub fn app(state: HubState) -> Router {
    tongban_node::app::router(state.app.clone()).merge(routes(state))
}
