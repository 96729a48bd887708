//! The hub's own HTTP routes, merged into the case web app it shares with the nodes: the node list
//! (`GET /api/nodes`, the `/nodes` page), revocation, and case actions taken at the county.

use askama::Template;
use axum::extract::{FromRef, Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tongban_node::app::{self, blocking, ApiUser, AppError, SharedState, WebUser};
use tongban_runtime::store::{NodeRecord, Store};
use tongban_runtime::transport::Connections;
use tongban_shared::FieldError;

/// A node that has not synced for this long is highlighted on the node page (`TONGBAN_STALE_HOURS`).
const STALE_HOURS: i64 = 24;

fn stale_hours() -> i64 {
    std::env::var("TONGBAN_STALE_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .filter(|h| *h > 0)
        .unwrap_or(STALE_HOURS)
}

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
        .route("/api/calendar", post(add_calendar_year))
        .route("/api/reports/monthly", get(monthly_report))
        .route("/api/outbox", get(outbox))
        .route("/nodes", get(nodes_page))
        .route("/queue", get(queue_page))
        .route("/calendar", get(calendar_page).post(calendar_submit))
        .route("/dashboard", get(dashboard_page))
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
struct OutboxParam {
    case_no: Option<String>,
}

/// `GET /api/outbox[?case_no=]`: messages to applicants, sent or waiting.
async fn outbox(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    axum::extract::Query(q): axum::extract::Query<OutboxParam>,
) -> Result<Json<Value>, AppError> {
    require_role(&user, &["admin", "supervisor", "window"])?;
    let st = state.app.clone();
    let messages = blocking(move || Ok(st.store.outbox(false)?)).await?;
    let messages: Vec<_> = messages
        .into_iter()
        .filter(|m| q.case_no.as_deref().is_none_or(|c| m.case_no == c))
        .collect();
    Ok(Json(json!({ "messages": messages })))
}

#[derive(serde::Deserialize)]
struct MonthParam {
    month: Option<String>,
}

/// `GET /api/reports/monthly?month=YYYY-MM` (admin, supervisor): the assessment workbook.
async fn monthly_report(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    axum::extract::Query(q): axum::extract::Query<MonthParam>,
) -> Result<Response, AppError> {
    require_role(&user, &["admin", "supervisor"])?;
    let month = q.month.unwrap_or_default();
    let st = state.app.clone();
    let m = month.clone();
    let bytes = blocking(move || {
        let monthly = crate::report::collect(&st.store, &m).map_err(|e| match e {
            crate::report::ReportError::Month(_) => AppError::Invalid(vec![FieldError::new(
                "month",
                "月份格式应为YYYY-MM，例如2026-11。",
            )]),
            other => AppError::internal(other),
        })?;
        crate::report::workbook(&monthly).map_err(AppError::internal)
    })
    .await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"tongban-{month}.xlsx\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /api/calendar` (admin): one year's table (`{"year", "holidays":[{"name","from","to"}],
/// "makeup_workdays":[…]}`), added or replacing that year. It reaches every node with its next sync.
async fn add_calendar_year(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, AppError> {
    publish_county_data(
        &state,
        &user,
        body,
        "calendar",
        "日历",
        Store::add_calendar_year,
    )
    .await
}

/// Publishes county data that flows down to every node (catalogue, calendar): admin only, the body is
/// JSON checked by `store_it`, which answers the new version.
async fn publish_county_data(
    state: &HubState,
    user: &app::CurrentUser,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    field: &'static str,
    what: &'static str,
    store_it: fn(&Store, &str) -> Result<u32, tongban_runtime::store::StoreError>,
) -> Result<Json<Value>, AppError> {
    require_role(user, &["admin"])?;
    let body = body.map_err(tongban_node::api::body_error)?;
    let json = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::Malformed(format!("{what}必须是UTF-8编码的JSON。")))?;
    let st = state.app.clone();
    let version = blocking(move || {
        store_it(&st.store, &json).map_err(|e| {
            AppError::Invalid(vec![FieldError::new(field, format!("{what}未发布：{e}"))])
        })
    })
    .await?;
    tracing::info!(version, by = %user.name, what = field, "county data published");
    Ok(Json(json!({ "version": version })))
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
        crate::county::enroll(
            &st.store,
            &ca,
            &crate::county::EnrollRequest {
                code: &req.code,
                name: &req.name,
                tier: req.tier,
                parent: req.parent.as_deref(),
                upstream: &req.upstream,
                upstream_name: req.upstream_name.as_deref(),
                fallback: req.fallback.as_deref(),
            },
            None,
            app::beijing_now(),
        )
        .map_err(|e| match e {
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
    publish_county_data(
        &state,
        &user,
        body,
        "catalog",
        "事项目录",
        Store::set_catalog,
    )
    .await
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
    let stale_hours = stale_hours();
    let rows = rows
        .into_iter()
        .map(|(rec, cases)| {
            let seen = rec
                .last_seen
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            NodeRow {
                depth: if rec.tier == tongban_shared::Tier::Village {
                    1
                } else {
                    0
                },
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
            }
        })
        .collect();
    let page = NodesPage {
        county: state.app.identity.name.clone(),
        user: user.display_name,
        stale_hours,
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

struct QueueRow {
    case_no: String,
    item: String,
    applicant: String,
    dept: String,
    clock: String,
    /// "red", "yellow" or "".
    colour: &'static str,
}

struct Queue {
    id: &'static str,
    title: &'static str,
    clock_title: &'static str,
    rows: Vec<QueueRow>,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    county: String,
    user: String,
    queues: Vec<Queue>,
}

/// `/queue`: what the logged-in account has to do — the window its 待接收 (with the 10/30-minute
/// hand-over clocks), 待受理 and 待补正; a department its cases under review with deadline colours; results
/// to hand out; the supervisor overdue cases, bad reviews and 办不成事 escalations.
async fn queue_page(State(state): State<HubState>, WebUser(user): WebUser) -> Response {
    use tongban_shared::case::{CaseState, CaseSummary};
    use tongban_shared::stats::{handover_late_minutes, handover_limit_minutes, urgency, Urgency};
    use tongban_shared::workflow::Role;
    let role = Role::from_account(&user.role);
    let st = state.app.clone();
    let all = match blocking(move || {
        let mut v: Vec<CaseSummary> = Vec::new();
        st.store.for_each_summary(|s| {
            let open = !matches!(
                CaseState::parse(&s.state),
                Some(CaseState::Evaluated | CaseState::Rejected)
            );
            if open || (s.evaluation > 0 && s.evaluation <= 2) {
                v.push(s.clone());
            }
        })?;
        Ok(v)
    })
    .await
    {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let now = app::beijing_now();
    let today = now.date_naive();
    let calendar = state.app.calendar();
    let cal = &*calendar;
    let row = |s: &CaseSummary, clock: String, colour: &'static str| QueueRow {
        case_no: s.case_no.clone(),
        item: s.item_name.clone(),
        applicant: s.applicant_name.clone(),
        dept: s.handling_dept.clone(),
        clock,
        colour,
    };
    let deadline_row = |s: &CaseSummary| {
        let colour = match urgency(s, today, cal, tongban_node::api::YELLOW_DAYS) {
            Some(Urgency::Red) => "red",
            Some(Urgency::Yellow) => "yellow",
            _ => "",
        };
        row(s, s.deadline.clone().unwrap_or_else(|| "—".into()), colour)
    };
    let in_state = |states: &[CaseState]| -> Vec<&CaseSummary> {
        all.iter()
            .filter(|s| CaseState::parse(&s.state).is_some_and(|st| states.contains(&st)))
            .collect()
    };
    let is = |r: &Role| role.as_ref() == Some(r);
    let admin = is(&Role::Admin);
    let mut queues = Vec::new();
    if admin || is(&Role::Window) {
        let waiting = in_state(&[CaseState::Submitted])
            .into_iter()
            .map(|s| {
                let late = handover_late_minutes(s, now.timestamp_millis());
                let waited = (now.timestamp_millis() - s.created_ms) / 60_000;
                row(
                    s,
                    format!(
                        "已等{}分钟（时限{}分钟）",
                        waited.max(0),
                        handover_limit_minutes(s)
                    ),
                    if late > 0 { "red" } else { "" },
                )
            })
            .collect();
        queues.push(Queue {
            id: "to-receive",
            title: "待接收",
            clock_title: "交接时间",
            rows: waiting,
        });
        queues.push(Queue {
            id: "to-accept",
            title: "待受理",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::Received])
                .into_iter()
                .map(deadline_row)
                .collect(),
        });
        queues.push(Queue {
            id: "in-correction",
            title: "待补正",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::Correction])
                .into_iter()
                .map(deadline_row)
                .collect(),
        });
        queues.push(Queue {
            id: "results",
            title: "结果待出件",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::ResultReady])
                .into_iter()
                .map(deadline_row)
                .collect(),
        });
    }
    if let Some(Role::Dept(d)) = &role {
        queues.push(Queue {
            id: "in-review",
            title: "审批中",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::Accepted, CaseState::Review, CaseState::Suspended])
                .into_iter()
                .filter(|s| &s.handling_dept == d)
                .map(deadline_row)
                .collect(),
        });
    }
    if admin {
        queues.push(Queue {
            id: "in-review",
            title: "审批中（全部部门）",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::Accepted, CaseState::Review, CaseState::Suspended])
                .into_iter()
                .map(deadline_row)
                .collect(),
        });
    }
    if admin || is(&Role::Supervisor) {
        queues.push(Queue {
            id: "overdue",
            title: "超期办件",
            clock_title: "办结期限",
            rows: all
                .iter()
                .filter(|s| urgency(s, today, cal, 0) == Some(Urgency::Red))
                .map(deadline_row)
                .collect(),
        });
        queues.push(Queue {
            id: "bad-reviews",
            title: "差评回访",
            clock_title: "评价",
            rows: all
                .iter()
                .filter(|s| s.evaluation > 0 && s.evaluation <= 2)
                .map(|s| row(s, format!("{}分", s.evaluation), "red"))
                .collect(),
        });
        queues.push(Queue {
            id: "escalations",
            title: "办不成事反映",
            clock_title: "反映次数",
            rows: all
                .iter()
                .filter(|s| s.escalations > 0)
                .map(|s| row(s, format!("{}次", s.escalations), "yellow"))
                .collect(),
        });
    }
    let page = QueuePage {
        county: state.app.identity.name.clone(),
        user: user.display_name,
        queues,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => AppError::internal(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    county: String,
    user: String,
    total: u64,
    overdue: u64,
    yellow: u64,
    on_time: String,
    evaluation: String,
    bad: u64,
    escalations: u64,
    /// (title, inline SVG)
    charts: Vec<(String, String)>,
}

/// `/dashboard`: county statistics with server-drawn charts.
async fn dashboard_page(State(state): State<HubState>, WebUser(user): WebUser) -> Response {
    use crate::charts;
    use tongban_shared::case::CaseState;
    let stats = match tongban_node::api::compute_stats(&state.app).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let by_state: Vec<(String, Vec<u64>)> = stats
        .by_state
        .iter()
        .map(|(s, n)| {
            (
                CaseState::parse(s)
                    .map(|st| st.label().to_string())
                    .unwrap_or_else(|| s.clone()),
                vec![*n],
            )
        })
        .collect();
    let group_rows = |m: &std::collections::BTreeMap<String, tongban_shared::stats::Group>| {
        m.iter()
            .map(|(k, g)| (k.clone(), vec![g.overdue, g.yellow, g.total]))
            .collect::<Vec<_>>()
    };
    let days: Vec<(String, u64)> = stats
        .intake_per_day
        .iter()
        .map(|(d, n)| (d.clone(), *n))
        .collect();
    let pct = |r: Option<f64>| {
        r.map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "—".into())
    };
    let charts = vec![
        (
            "各状态办件".to_string(),
            charts::bars(&by_state, &["#0b57d0"], &["办件数"]),
        ),
        (
            "各部门超期与黄灯".to_string(),
            charts::bars(
                &group_rows(&stats.per_department),
                &["#b3261e", "#e0b000", "#9aa7b4"],
                &["超期", "黄灯", "全部"],
            ),
        ),
        (
            "各乡镇超期与黄灯".to_string(),
            charts::bars(
                &group_rows(&stats.per_township),
                &["#b3261e", "#e0b000", "#9aa7b4"],
                &["超期", "黄灯", "全部"],
            ),
        ),
        (
            "近30天每日收件".to_string(),
            charts::columns(&days, "#0b57d0"),
        ),
    ];
    let page = DashboardPage {
        county: state.app.identity.name.clone(),
        user: user.display_name,
        total: stats.total,
        overdue: stats.overdue,
        yellow: stats.yellow,
        on_time: pct(stats.on_time_rate),
        evaluation: stats
            .avg_evaluation
            .map(|e| format!("{e:.1}"))
            .unwrap_or_else(|| "—".into()),
        bad: stats.bad_reviews,
        escalations: stats.escalations,
        charts,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => AppError::internal(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    county: String,
    user: String,
    csrf: String,
    years: Vec<i32>,
    version: u32,
    example: String,
    message: Option<String>,
    ok: bool,
}

const CALENDAR_EXAMPLE: &str = r#"{
  "year": 2027,
  "source": "国务院办公厅关于2027年部分节假日安排的通知",
  "holidays": [
    { "name": "元旦", "from": "2027-01-01", "to": "2027-01-03" }
  ],
  "makeup_workdays": []
}"#;

async fn render_calendar(
    state: &HubState,
    user: &app::CurrentUser,
    message: Option<String>,
    ok: bool,
) -> Response {
    let cal = state.app.calendar();
    let st = state.app.clone();
    let version = blocking(move || Ok(st.store.calendar_version()?))
        .await
        .unwrap_or(0);
    let page = CalendarPage {
        county: state.app.identity.name.clone(),
        user: user.display_name.clone(),
        csrf: user.csrf.clone().unwrap_or_default(),
        years: (2020..=2100).filter(|y| cal.covers(*y)).collect(),
        version,
        example: CALENDAR_EXAMPLE.to_string(),
        message,
        ok,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => AppError::internal(e).into_response(),
    }
}

/// `/calendar`: the admin enters a year's holiday arrangement.
async fn calendar_page(State(state): State<HubState>, WebUser(user): WebUser) -> Response {
    if let Err(e) = require_role(&user, &["admin"]) {
        return e.into_response();
    }
    render_calendar(&state, &user, None, false).await
}

async fn calendar_submit(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if let Err(e) = require_role(&user, &["admin"]) {
        return e.into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return tongban_node::api::body_error(e).into_response(),
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if user.csrf.as_deref() != Some(get("csrf").as_str()) {
        return AppError::Forbidden("页面已过期，请重新打开后再提交。".into()).into_response();
    }
    let table = get("table");
    let st = state.app.clone();
    let saved = blocking(move || Ok(st.store.add_calendar_year(&table))).await;
    match saved {
        Ok(Ok(version)) => {
            tracing::info!(version, by = %user.name, "calendar year saved");
            render_calendar(
                &state,
                &user,
                Some(format!("已保存（版本 {version}）。")),
                true,
            )
            .await
        }
        Ok(Err(e)) => render_calendar(&state, &user, Some(format!("未保存：{e}")), false).await,
        Err(e) => e.into_response(),
    }
}
