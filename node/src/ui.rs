//! Server-rendered pages for agents (askama templates under `templates/`, compiled into the binary):
//! login, home, item choice, intake form, case page, case list, printable receipt.
//!
//! Pages show Chinese text only; every form POST carries the session's CSRF token.

use std::time::Instant;

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Days, TimeZone};
use serde::Deserialize;
use tongban_shared::case::{ApplicantInput, CaseDoc, CaseState, IntakeRequest, DELIVERY_METHODS};
use tongban_shared::catalog::{DayUnit, Item, ItemKind};
use tongban_shared::FieldError;

use crate::app::{self, beijing_now, blocking, AppError, CurrentUser, SharedState, WebUser};
use crate::auth;
use tongban_runtime::store::{Created, ListQuery};

const STYLESHEET: &str = include_str!("../assets/app.css");

/// Header data every logged-in page shows.
pub struct PageCtx {
    node_name: String,
    node_code: String,
    user_display: String,
    csrf: String,
    badge_class: &'static str,
    badge_text: String,
    badge_hint: String,
    /// The county hub shows its node overview in the navigation.
    is_hub: bool,
}

impl PageCtx {
    fn new(state: &SharedState, user: &CurrentUser) -> PageCtx {
        let (badge_class, badge_text, badge_hint) = match &state.sync {
            None => (
                "badge-offline",
                "离线 · 单机运行".to_string(),
                "本站尚未接入县级平台：办件安全保存在本机，接入后自动上报。".to_string(),
            ),
            Some(sync) => {
                let st = sync.status();
                let last = st
                    .last_success
                    .as_deref()
                    .map(format_time)
                    .unwrap_or_else(|| "尚未同步".to_string());
                match (st.connected, st.pending_up) {
                    _ if st.running => (
                        "badge-online",
                        "正在同步…".to_string(),
                        format!("正在与上级平台同步。最近同步：{last}"),
                    ),
                    (true, 0) => (
                        "badge-online",
                        "在线 · 已同步".to_string(),
                        format!("最近同步：{last}"),
                    ),
                    (true, n) => (
                        "badge-online",
                        format!("在线 · 待上传 {n} 件"),
                        format!("最近同步：{last}，新办件将在几秒内上传。"),
                    ),
                    (false, n) => (
                        "badge-offline",
                        if n > 0 {
                            format!("离线 · 待上传 {n} 件")
                        } else {
                            "离线".to_string()
                        },
                        format!(
                            "暂时连不上上级平台：办件照常保存在本机，网络恢复后自动上传。最近同步：{last}"
                        ),
                    ),
                }
            }
        };
        PageCtx {
            node_name: state.identity.name.clone(),
            node_code: state.identity.code.clone(),
            user_display: user.display_name.clone(),
            csrf: user.csrf.clone().unwrap_or_default(),
            badge_class,
            badge_text,
            badge_hint,
            is_hub: state.identity.tier == tongban_shared::Tier::County,
        }
    }
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => page_error(AppError::internal(e)),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

/// Renders an error as a page (the JSON form is for `/api`).
fn page_error(e: AppError) -> Response {
    if let AppError::Internal(detail) = &e {
        tracing::error!(%detail, "page failed");
    }
    let title = match e.status() {
        StatusCode::NOT_FOUND => "没有找到",
        StatusCode::FORBIDDEN => "无权操作",
        StatusCode::PAYLOAD_TOO_LARGE => "内容太大",
        StatusCode::BAD_REQUEST => "请求有误",
        _ => "出错了",
    };
    let page = ErrorPage {
        title: title.into(),
        message: e.message(),
    };
    let html = page.render().unwrap_or_else(|_| "系统内部错误".to_string());
    (e.status(), Html(html)).into_response()
}

pub async fn not_found(uri: Uri) -> Response {
    let e = AppError::NotFound("没有这个页面或接口。".into());
    if uri.path().starts_with("/api/") {
        e.into_response()
    } else {
        page_error(e)
    }
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

fn format_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// One line of a case table.
struct CaseRow {
    case_no: String,
    item_name: String,
    department: String,
    applicant_name: String,
    state_label: &'static str,
    created: String,
}

fn rows(cases: Vec<tongban_shared::case::CaseSummary>) -> Vec<CaseRow> {
    cases
        .into_iter()
        .map(|c| CaseRow {
            state_label: CaseState::parse(&c.state)
                .map(|s| s.label())
                .unwrap_or("未知状态"),
            created: format_time(&c.created_at),
            case_no: c.case_no,
            item_name: c.item_name,
            department: c.department,
            applicant_name: c.applicant_name,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    title: &'static str,
    node_name: String,
    node_code: String,
    next: String,
    user: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

fn login_title(state: &SharedState) -> &'static str {
    match state.identity.tier {
        tongban_shared::Tier::County => "县级政务服务中心登录",
        tongban_shared::Tier::Township => "乡镇便民服务中心登录",
        tongban_shared::Tier::Village => "代办员登录",
    }
}

/// Only local paths: a login link must not send the agent to another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

pub async fn login_page(
    State(state): State<SharedState>,
    Query(params): Query<NextParam>,
) -> Response {
    render(&LoginPage {
        title: login_title(&state),
        node_name: state.identity.name.clone(),
        node_code: state.identity.code.clone(),
        next: safe_next(params.next.as_deref()),
        user: String::new(),
        error: None,
    })
}

/// Decodes an `application/x-www-form-urlencoded` body into pairs (repeated names kept, for checkboxes).
fn form_pairs(body: Result<Bytes, BytesRejection>) -> Result<Vec<(String, String)>, AppError> {
    let body = body.map_err(crate::api::body_error)?;
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

pub async fn login(
    State(state): State<SharedState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = match form_pairs(body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let user = field(&pairs, "user").trim().to_string();
    let password = field(&pairs, "password").to_string();
    let next = safe_next(Some(field(&pairs, "next")));
    let st = state.clone();
    let name = user.clone();
    let verified = blocking(move || {
        Ok(st
            .store
            .user(&name)?
            .filter(|u| auth::verify_password(&password, &u.password_hash)))
    })
    .await;
    match verified {
        Ok(Some(record)) => {
            let (token, _) = state.sessions.start(
                &record.name,
                &record.display_name,
                &record.role,
                Instant::now(),
            );
            tracing::info!(user = %record.name, "login");
            let cookie = format!(
                "{}={token}; HttpOnly; SameSite=Strict; Path=/",
                auth::SESSION_COOKIE
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Ok(None) => {
            tracing::warn!(%user, "failed login");
            let page = LoginPage {
                title: login_title(&state),
                node_name: state.identity.name.clone(),
                node_code: state.identity.code.clone(),
                next,
                user,
                error: Some("账号或密码不正确，请重新输入。".into()),
            };
            (StatusCode::UNAUTHORIZED, render(&page)).into_response()
        }
        Err(e) => page_error(e),
    }
}

/// The pairs of a form posted from one of this session's own pages (its CSRF token must match).
fn csrf_checked_form(
    user: &CurrentUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<(String, String)>, AppError> {
    let pairs = form_pairs(body)?;
    match &user.csrf {
        Some(expected) if field(&pairs, "csrf") == expected => Ok(pairs),
        _ => Err(AppError::Forbidden(
            "页面已过期或来源不明，请返回重新打开页面后再提交。".into(),
        )),
    }
}

pub async fn logout(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = csrf_checked_form(&user, body) {
        return page_error(e);
    }
    if let Some(token) = &user.session_token {
        state.sessions.end(token);
    }
    let expire = format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        auth::SESSION_COOKIE
    );
    ([(header::SET_COOKIE, expire)], Redirect::to("/login")).into_response()
}

// ----------------------------------------------------------------------------------------------- home

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    page: PageCtx,
    today: String,
    today_count: u64,
    pending_count: u64,
    total_count: u64,
    rows: Vec<CaseRow>,
}

pub async fn home(State(state): State<SharedState>, WebUser(user): WebUser) -> Response {
    let now = beijing_now();
    let midnight = now
        .timezone()
        .from_local_datetime(&now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let st = state.clone();
    let loaded = blocking(move || {
        let today = st.store.list(&ListQuery {
            since_ms: Some(midnight),
            limit: 100,
            ..Default::default()
        })?;
        Ok((
            today,
            st.store.count(Some(CaseState::Submitted))?,
            st.store.count(None)?,
        ))
    })
    .await;
    match loaded {
        Ok((today, pending, total)) => render(&HomePage {
            page: PageCtx::new(&state, &user),
            today: now.format("%Y年%m月%d日").to_string(),
            today_count: today.total,
            pending_count: pending,
            total_count: total,
            rows: rows(today.cases),
        }),
        Err(e) => page_error(e),
    }
}

// ------------------------------------------------------------------------------------------ case list

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage {
    page: PageCtx,
    q: String,
    q_url: String,
    state: String,
    states: Vec<(&'static str, &'static str)>,
    total: u64,
    from: usize,
    to: usize,
    rows: Vec<CaseRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct ListForm {
    q: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    from: Option<usize>,
}

const PAGE_SIZE: usize = 50;

pub async fn case_list(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Query(form): Query<ListForm>,
) -> Response {
    let filter_state = match crate::api::parse_state(form.state.as_deref()) {
        Ok(s) => s,
        Err(e) => return page_error(e),
    };
    let q = form.q.unwrap_or_default().trim().to_string();
    let query = ListQuery {
        state: filter_state,
        text: Some(q.clone()),
        since_ms: None,
        limit: PAGE_SIZE,
        cursor: form.cursor.filter(|c| !c.is_empty()),
    };
    let st = state.clone();
    let page = match blocking(move || Ok(st.store.list(&query)?)).await {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let skipped = form.from.unwrap_or(0);
    let shown = page.cases.len();
    render(&CasesPage {
        page: PageCtx::new(&state, &user),
        q_url: url_encode(&q),
        q,
        state: filter_state.map(|s| s.as_str()).unwrap_or("").to_string(),
        states: CaseState::ALL
            .iter()
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        total: page.total,
        from: skipped + 1,
        to: skipped + shown,
        rows: rows(page.cases),
        next: page.next,
    })
}

// ------------------------------------------------------------------------------------------- new case

struct ItemChoice {
    code: String,
    name: String,
    department_full: String,
    kind: &'static str,
    limit: String,
    village: String,
    /// Text the page's live filter matches against.
    search: String,
}

#[derive(Template)]
#[template(path = "choose_item.html")]
struct ChooseItemPage {
    page: PageCtx,
    q: String,
    catalog_version: u32,
    items: Vec<ItemChoice>,
}

/// Item facts as the form and receipt print them.
struct ItemView {
    code: String,
    name: String,
    department_full: String,
    kind: &'static str,
    limit: String,
    legal: String,
    village: String,
}

fn limit_text(kind: ItemKind, days: u32, unit: DayUnit) -> String {
    if kind == ItemKind::Immediate || days == 0 {
        "当场办结".to_string()
    } else {
        format!("{days}{}", unit.label())
    }
}

fn village_text(village: &str) -> String {
    match village {
        "办结" => "村级可直接办结".to_string(),
        _ => "村级代收，报送上级办理".to_string(),
    }
}

impl ItemView {
    fn of(item: &Item) -> ItemView {
        ItemView {
            code: item.code.clone(),
            name: item.name.clone(),
            department_full: item.department_full.clone(),
            kind: item.kind.label(),
            limit: limit_text(item.kind, item.promised_days, item.day_unit),
            legal: limit_text(item.kind, item.legal_days, item.day_unit),
            village: village_text(&item.village),
        }
    }
}

struct MaterialChoice {
    id: String,
    name: String,
    required: bool,
    form: String,
    copies: u32,
    note: String,
    checked: bool,
}

/// Values typed into the form, echoed back when something must be corrected.
#[derive(Default)]
struct FormValues {
    kind: String,
    name: String,
    id_number: String,
    phone: String,
    credit_code: String,
    legal_rep: String,
    address: String,
    delivery: String,
    note: String,
}

/// Field errors by JSON path, for the template.
struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    fn msg(&self, field: &str) -> String {
        self.0
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn class(&self, field: &str) -> &'static str {
        if self.0.iter().any(|e| e.field == field) {
            "has-error"
        } else {
            ""
        }
    }
}

#[derive(Template)]
#[template(path = "case_form.html")]
struct CaseFormPage {
    page: PageCtx,
    item: ItemView,
    materials: Vec<MaterialChoice>,
    deliveries: &'static [&'static str],
    v: FormValues,
    errors: Vec<FieldError>,
    err: FieldErrors,
    form_token: String,
}

#[derive(Deserialize)]
pub struct NewCaseParams {
    item: Option<String>,
    q: Option<String>,
}

fn choose_page(state: &SharedState, user: &CurrentUser, q: &str) -> Response {
    let catalog = state.catalog();
    let items = catalog
        .search(q)
        .map(|i| ItemChoice {
            code: i.code.clone(),
            name: i.name.clone(),
            department_full: i.department_full.clone(),
            kind: i.kind.label(),
            limit: limit_text(i.kind, i.promised_days, i.day_unit),
            village: village_text(&i.village),
            search: format!(
                "{} {} {} {}",
                i.name,
                i.department,
                i.department_full,
                i.keywords.join(" ")
            ),
        })
        .collect();
    render(&ChooseItemPage {
        page: PageCtx::new(state, user),
        q: q.to_string(),
        catalog_version: catalog.version,
        items,
    })
}

fn form_page(
    state: &SharedState,
    user: &CurrentUser,
    item: &Item,
    v: FormValues,
    checked: &[String],
    errors: Vec<FieldError>,
    form_token: String,
) -> Response {
    let page = CaseFormPage {
        page: PageCtx::new(state, user),
        item: ItemView::of(item),
        materials: item
            .materials
            .iter()
            .map(|m| MaterialChoice {
                id: m.id.clone(),
                name: m.name.clone(),
                required: m.required,
                form: m.form.clone(),
                copies: m.copies,
                note: m.note.clone(),
                checked: checked.contains(&m.id),
            })
            .collect(),
        deliveries: &DELIVERY_METHODS,
        err: FieldErrors(errors.clone()),
        errors,
        v,
        form_token,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, render(&page)).into_response()
}

pub async fn new_case_page(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Query(params): Query<NewCaseParams>,
) -> Response {
    let catalog = state.catalog();
    match params.item.as_deref().and_then(|c| catalog.item(c)) {
        Some(item) => form_page(
            &state,
            &user,
            item,
            FormValues {
                kind: "1".into(),
                delivery: "代办员送达".into(),
                ..Default::default()
            },
            &[],
            Vec::new(),
            auth::random_token(),
        ),
        None => choose_page(&state, &user, params.q.as_deref().unwrap_or("")),
    }
}

pub async fn new_case_submit(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let token = field(&pairs, "form_token").to_string();
    let key = match app::check_request_key(&token) {
        Ok(k) => format!("form-{k}"),
        Err(e) => return page_error(e),
    };
    let v = FormValues {
        kind: field(&pairs, "kind").to_string(),
        name: field(&pairs, "name").to_string(),
        id_number: field(&pairs, "id_number").to_string(),
        phone: field(&pairs, "phone").to_string(),
        credit_code: field(&pairs, "credit_code").to_string(),
        legal_rep: field(&pairs, "legal_rep").to_string(),
        address: field(&pairs, "address").to_string(),
        delivery: field(&pairs, "delivery").to_string(),
        note: field(&pairs, "note").to_string(),
    };
    let materials: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "materials")
        .map(|(_, v)| v.clone())
        .collect();
    let item_code = field(&pairs, "item_code").to_string();
    let req = IntakeRequest {
        item_code: item_code.clone(),
        applicant: ApplicantInput {
            kind: v.kind.clone(),
            name: v.name.clone(),
            id_number: v.id_number.clone(),
            phone: v.phone.clone(),
            credit_code: v.credit_code.clone(),
            legal_rep: v.legal_rep.clone(),
            address: v.address.clone(),
        },
        materials: materials.clone(),
        delivery: v.delivery.clone(),
        note: v.note.clone(),
    };
    match app::file_case(&state, &user, req, Some(key)).await {
        Ok(Created::New(s) | Created::Replayed(s)) => {
            Redirect::to(&format!("/cases/{}?created=1", s.case_no)).into_response()
        }
        Err(AppError::Invalid(errors)) => match state.catalog().item(&item_code) {
            Some(item) => form_page(&state, &user, item, v, &materials, errors, token),
            None => page_error(AppError::Invalid(errors)),
        },
        Err(e) => page_error(e),
    }
}

// ------------------------------------------------------------------------------------------ case page

struct HistoryView {
    at: String,
    by: String,
    action: String,
    note: String,
    /// Written by a node whose clock is known to be off.
    skewed: bool,
}

fn action_label(action: &str) -> String {
    tongban_shared::workflow::action_label(action).to_string()
}

#[derive(Template)]
#[template(path = "case.html")]
struct CasePage {
    page: PageCtx,
    c: CaseDoc,
    created: bool,
    /// Result of the last action form, shown as a banner.
    done: Option<String>,
    error: Option<String>,
    actions: Vec<ActionForm>,
    /// Names of the materials the county asked for (补正), if any.
    missing: Vec<String>,
    evaluation: String,
    state_label: &'static str,
    next_step: &'static str,
    deadline: String,
    limit: String,
    history: Vec<HistoryView>,
    clock_warning: Option<String>,
}

#[derive(Deserialize)]
pub struct CreatedParam {
    created: Option<String>,
    done: Option<String>,
    error: Option<String>,
}

/// One action the logged-in account may take on the case now, with the inputs it needs.
struct ActionForm {
    action: &'static str,
    label: &'static str,
    /// Which inputs to show: "note", "reason", "materials", "dept", "result", "score".
    input: &'static str,
    /// For "materials": (id, name, checked).
    materials: Vec<(String, String, bool)>,
}

fn action_forms(c: &CaseDoc, role: &str, tier: tongban_shared::Tier) -> Vec<ActionForm> {
    use tongban_shared::workflow::{action_label, available, Role};
    let Some(role) = Role::from_account(role) else {
        return Vec::new();
    };
    let role = match (role, tier) {
        (Role::Agent, tongban_shared::Tier::Township) => Role::Township,
        (r, _) => r,
    };
    available(c, &role)
        .into_iter()
        .map(|action| {
            let input = match action {
                "reject" | "suspend" | "escalate" => "reason",
                "request_correction" | "submit_correction" => "materials",
                "forward" => "dept",
                "issue_result" => "result",
                "evaluate" => "score",
                _ => "note",
            };
            let materials = match action {
                "request_correction" => c
                    .materials
                    .iter()
                    .map(|m| (m.id.clone(), m.name.clone(), false))
                    .collect(),
                "submit_correction" => c
                    .materials
                    .iter()
                    .filter(|m| c.workflow.missing.contains(&m.id))
                    .map(|m| (m.id.clone(), m.name.clone(), true))
                    .collect(),
                _ => Vec::new(),
            };
            ActionForm {
                action,
                label: action_label(action),
                input,
                materials,
            }
        })
        .collect()
}

/// `POST /cases/{no}/actions`: the case page's action forms.
pub async fn case_action_submit(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Path(case_no): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let all = |name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let action = field(&pairs, "action").to_string();
    let input = tongban_shared::workflow::ActionInput {
        action: action.clone(),
        note: field(&pairs, "note").to_string(),
        reason: field(&pairs, "reason").to_string(),
        missing: if action == "request_correction" {
            all("materials")
        } else {
            Vec::new()
        },
        materials: if action == "submit_correction" {
            all("materials")
        } else {
            Vec::new()
        },
        dept: field(&pairs, "dept").to_string(),
        result_name: field(&pairs, "result_name").to_string(),
        result_no: field(&pairs, "result_no").to_string(),
        score: field(&pairs, "score").parse().ok(),
        comment: field(&pairs, "comment").to_string(),
    };
    let target = match app::take_action(&state, &user, &case_no, input).await {
        Ok(_) => format!("/cases/{case_no}?done={}", url_encode(&action)),
        Err(e @ AppError::Internal(_)) => return page_error(e),
        Err(e) => format!("/cases/{case_no}?error={}", url_encode(&e.message())),
    };
    Redirect::to(&target).into_response()
}

fn next_step(state: Option<CaseState>) -> &'static str {
    match state {
        Some(CaseState::Submitted) => {
            "将纸质材料按规定报送；本站接入县级平台后，办件信息自动上报。"
        }
        Some(CaseState::Correction) => "按县级要求补齐材料后提交补正。",
        Some(CaseState::ResultReady) => "领取办理结果并送达群众。",
        Some(CaseState::Delivered) => "请群众对本次服务进行评价。",
        Some(CaseState::Evaluated | CaseState::Rejected) => "办件已结束。",
        _ => "等待县级部门办理，无需操作。",
    }
}

fn case_limit(c: &CaseDoc) -> String {
    let kind = match c.item.kind.as_str() {
        "即办" => ItemKind::Immediate,
        _ => ItemKind::Promised,
    };
    let unit = if c.item.day_unit == "calendar" {
        DayUnit::Calendar
    } else {
        DayUnit::Working
    };
    limit_text(kind, c.item.promised_days as u32, unit)
}

pub async fn case_page(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Path(case_no): Path<String>,
    Query(params): Query<CreatedParam>,
) -> Response {
    let (_, c) = match app::load_case(&state, &case_no).await {
        Ok(loaded) => loaded,
        Err(e) => return page_error(e),
    };
    let (skewed_node, clock_warning) = clock_warning(&state, &c);
    let history = c
        .history
        .iter()
        .map(|h| HistoryView {
            at: format_time(&h.at),
            by: if h.by_name.is_empty() {
                h.by.clone()
            } else {
                format!("{}（{}）", h.by_name, h.node)
            },
            action: action_label(&h.action),
            note: h.note.clone(),
            skewed: skewed_node.as_deref() == Some(h.node.as_str()),
        })
        .collect();
    let missing = c
        .materials
        .iter()
        .filter(|m| c.workflow.missing.contains(&m.id))
        .map(|m| m.name.clone())
        .collect();
    let evaluation = match c.workflow.evaluation {
        1..=5 => tongban_shared::workflow::EVALUATION_LEVELS[c.workflow.evaluation as usize - 1]
            .to_string(),
        _ => String::new(),
    };
    render(&CasePage {
        page: PageCtx::new(&state, &user),
        created: params.created.is_some(),
        done: params
            .done
            .as_deref()
            .map(|a| tongban_shared::workflow::action_label(a).to_string()),
        error: params.error.clone(),
        actions: action_forms(&c, &user.role, state.identity.tier),
        missing,
        evaluation,
        state_label: c.state().map(|s| s.label()).unwrap_or("未知状态"),
        next_step: next_step(c.state()),
        deadline: c
            .deadline
            .clone()
            .unwrap_or_else(|| "县级受理后计算".to_string()),
        limit: case_limit(&c),
        history,
        clock_warning,
        c,
    })
}

/// Whether the times a node wrote into this case may be wrong: at a node, its own clock as measured
/// against the county's in the last sync; at the hub, the clock of the node that took the case in.
/// Returns the node whose entries are suspect and the sentence to show.
fn clock_warning(state: &SharedState, c: &CaseDoc) -> (Option<String>, Option<String>) {
    use tongban_runtime::clock::{describe_skew, SKEW_WARNING_SECS};
    match &state.sync {
        Some(sync) => match sync.status().clock_skew_s {
            Some(s) if s.abs() > SKEW_WARNING_SECS => (
                Some(state.identity.code.clone()),
                Some(format!(
                    "本机时钟比县级服务器{}，本机记下的时间可能不准，请校准电脑时间。办理期限以县级时间为准。",
                    describe_skew(s)
                )),
            ),
            _ => (None, None),
        },
        None => match state.store.node_record(&c.agent.node_code) {
            Ok(Some(rec)) => match rec.clock_skew_s {
                Some(s) if s.abs() > SKEW_WARNING_SECS => (
                    Some(rec.code.clone()),
                    Some(format!(
                        "代办点“{}”的时钟比县级服务器{}，它记下的时间可能不准。办理期限以县级时间为准。",
                        rec.name,
                        describe_skew(s)
                    )),
                ),
                _ => (None, None),
            },
            _ => (None, None),
        },
    }
}

// -------------------------------------------------------------------------------------------- receipt

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    c: CaseDoc,
    /// (copy name, who keeps it, full certificate number shown, query password shown)
    parts: [(&'static str, &'static str, bool, bool); 3],
    received: String,
    masked_cert: String,
    received_materials: Vec<String>,
    missing_materials: String,
    promise: String,
    qr_svg: String,
}

fn mask(cert: &str) -> String {
    let chars: Vec<char> = cert.chars().collect();
    if chars.len() <= 10 {
        return cert.to_string();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}********{tail}")
}

fn qr_svg(text: &str) -> Result<String, AppError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(AppError::internal)?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(120, 120)
        .build();
    // The renderer emits a standalone XML document; inside HTML only the <svg> element belongs.
    Ok(svg
        .find("<svg")
        .map(|i| svg[i..].to_string())
        .unwrap_or(svg))
}

fn promise_text(state: &SharedState, c: &CaseDoc) -> String {
    if c.item.kind == "即办" || c.item.promised_days == 0 {
        return "即办件：县级窗口收到材料后当场办结".to_string();
    }
    let days = c.item.promised_days;
    let Some(created) = c.created_at() else {
        return case_limit(c);
    };
    let from = created.date_naive();
    let estimate = if c.item.day_unit == "calendar" {
        from.checked_add_days(Days::new(days)).unwrap_or(from)
    } else {
        state.calendar().due_date(from, days as u32)
    };
    format!(
        "{}，自县级受理次日起计算（若当日受理，预计{}前办结）",
        case_limit(c),
        estimate.format("%Y年%m月%d日")
    )
}

pub async fn receipt(
    State(state): State<SharedState>,
    WebUser(_user): WebUser,
    Path(case_no): Path<String>,
) -> Response {
    let (_, c) = match app::load_case(&state, &case_no).await {
        Ok(loaded) => loaded,
        Err(e) => return page_error(e),
    };
    let qr = match qr_svg(&c.case_no) {
        Ok(svg) => svg,
        Err(e) => return page_error(e),
    };
    let received_materials = c
        .materials
        .iter()
        .filter(|m| m.collected)
        .map(|m| format!("{}（{}{}份）", m.name, m.form, m.copies))
        .collect();
    let missing_materials = c
        .materials
        .iter()
        .filter(|m| !m.collected)
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join("；");
    render(&ReceiptPage {
        parts: [
            ("第一联", "申请人留存", true, true),
            ("第二联", "代办员留存", false, false),
            ("第三联", "随件存档", true, false),
        ],
        received: c
            .created_at()
            .map(|t| t.format("%Y年%m月%d日").to_string())
            .unwrap_or_default(),
        masked_cert: mask(&c.applicant.cert_no),
        received_materials,
        missing_materials,
        promise: promise_text(&state, &c),
        qr_svg: qr,
        c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_redirects_only_to_local_paths() {
        assert_eq!(safe_next(Some("/cases/new")), "/cases/new");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn certificate_numbers_are_masked_on_the_agent_copy() {
        assert_eq!(mask("11010519491231002X"), "110105********002X");
    }

    #[test]
    fn qr_is_an_inline_svg_element() {
        let svg = qr_svg("420222103201-20261127-0001").unwrap();
        assert!(svg.starts_with("<svg"));
    }
}
