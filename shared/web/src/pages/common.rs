//! What every page shares: the header context, rendering and error pages, the CSRF-checked form
//! reader, the case table rows, and how a time limit reads.
//!
//! Pages show Chinese text only; every form POST carries the session's CSRF token.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use tongban_shared::case::{CaseDoc, CaseSummary};
use tongban_shared::catalog::{DayUnit, ItemKind};

use crate::error::{body_error, AppError};
use crate::extract::CurrentUser;
use crate::state::SharedState;
use crate::text::format_time;

const STYLESHEET: &str = include_str!("../../assets/app.css");

/// Header data every logged-in page shows.
pub struct PageCtx {
    pub node_name: String,
    pub node_code: String,
    pub user_display: String,
    pub csrf: String,
    pub badge: crate::site::Badge,
    /// The tier's own pages the account may open, `(href, label)`.
    pub nav: Vec<(&'static str, &'static str)>,
    /// Whether the account manages this tier (admin / station head): it sees the audit log link.
    pub manages: bool,
    /// Whether the account may file a case here (the header offers 新建办件).
    pub files: bool,
    /// A node's page: the header carries the to-do count (the county's staff have their queue).
    pub station: bool,
}

impl PageCtx {
    pub fn new(state: &SharedState, user: &CurrentUser) -> PageCtx {
        PageCtx {
            node_name: state.identity.name.clone(),
            node_code: state.identity.code.clone(),
            user_display: user.display_name.clone(),
            csrf: user.csrf.clone().unwrap_or_default(),
            badge: state.site.badge(),
            // A link the account would only get a 403 behind is not shown.
            nav: state
                .site
                .nav()
                .iter()
                .filter(|(href, _)| crate::access::may_use(&user.role, href) != Some(false))
                .copied()
                .collect(),
            manages: user.role == crate::access::manager_role(state.identity.tier),
            files: crate::access::may(
                state.identity.tier,
                &user.role,
                crate::access::Capability::File,
            ),
            station: state.identity.tier != tongban_shared::Tier::County,
        }
    }
}

pub fn render(t: &impl Template) -> Response {
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
pub fn page_error(e: AppError) -> Response {
    if let AppError::Internal(detail) | AppError::Storage(detail) = &e {
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

/// One line of a case table.
pub struct CaseRow {
    pub case_no: String,
    pub item_name: String,
    pub department: String,
    pub applicant_name: String,
    pub state_label: &'static str,
    pub created: String,
}

/// Table rows of `cases`, their states as staff of `tier` read them.
pub fn rows(cases: Vec<CaseSummary>, tier: tongban_shared::Tier) -> Vec<CaseRow> {
    cases
        .into_iter()
        .map(|c| CaseRow {
            state_label: if c.awaiting_payment() {
                "已决定准予，待申请人缴费"
            } else {
                c.state()
                    .map(|s| s.label_at(tier, &c.decision))
                    .unwrap_or("未知状态")
            },
            created: format_time(&c.created_at),
            case_no: c.case_no,
            item_name: c.item_name,
            department: c.department,
            applicant_name: c.applicant_name,
        })
        .collect()
}

/// Decodes an `application/x-www-form-urlencoded` body into pairs (repeated names kept, for checkboxes).
pub fn form_pairs(body: Result<Bytes, BytesRejection>) -> Result<Vec<(String, String)>, AppError> {
    let body = body.map_err(body_error)?;
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

/// Back to the page `path` after one of its forms: `?done=` with what happened, or `?error=` with
/// why not (a refusal the person can act on); a fault is answered with the error page.
pub fn back_to(path: &str, outcome: Result<String, AppError>) -> Response {
    let query = match outcome {
        Ok(done) => format!("done={}", crate::text::url_encode(&done)),
        Err(AppError::Invalid(fields)) => {
            let why: Vec<String> = fields.into_iter().map(|f| f.message).collect();
            format!("error={}", crate::text::url_encode(&why.join(" ")))
        }
        Err(AppError::Conflict(why) | AppError::NotFound(why)) => {
            format!("error={}", crate::text::url_encode(&why))
        }
        Err(e) => return page_error(e),
    };
    axum::response::Redirect::to(&format!("{path}?{query}")).into_response()
}

/// The first value of `name` in a form, or "".
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// The pairs of a form posted from one of this session's own pages (its CSRF token must match).
pub fn csrf_checked_form(
    user: &CurrentUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<(String, String)>, AppError> {
    let pairs = form_pairs(body)?;
    match &user.csrf {
        Some(expected) if crate::accounts::same_secret(field(&pairs, "csrf"), expected) => {
            Ok(pairs)
        }
        _ => Err(AppError::Forbidden(
            "页面已过期或来源不明，请返回重新打开页面后再提交。".into(),
        )),
    }
}

/// How an item's time limit reads ("当场办结", "20个工作日").
pub fn limit_text(kind: ItemKind, days: u32, unit: DayUnit) -> String {
    if kind == ItemKind::Immediate || days == 0 {
        "当场办结".to_string()
    } else {
        format!("{days}{}", unit.label())
    }
}

/// The promised limit of a case, from the item facts copied into it at intake.
pub fn case_limit(c: &CaseDoc) -> String {
    limit_text(
        c.item.kind(),
        u32::try_from(c.item.promised_days).unwrap_or(u32::MAX),
        c.item.day_unit(),
    )
}
