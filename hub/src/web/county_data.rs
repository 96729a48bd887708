//! County data that flows down to every node: the catalogue (`POST /api/catalog/publish`) and the
//! working-day calendar (`POST /api/calendar`, the `/calendar` page). Admin only.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tongban_runtime::store::{Store, StoreError};
use tongban_shared::FieldError;
use tongban_web::error::body_error;
use tongban_web::extract::{ApiUser, CurrentUser, WebUser};
use tongban_web::pages::common::PageCtx;
use tongban_web::{access, audit};
use tongban_web::{blocking, AppError};

use super::state::HubState;

pub fn routes() -> Router<HubState> {
    Router::new()
        .route("/api/catalog/publish", post(publish_catalog))
        .route("/api/calendar", post(add_calendar_year))
        .route("/calendar", get(calendar_page).post(calendar_submit))
}

/// `POST /api/calendar` (admin): one year's table (`{"year", "holidays":[{"name","from","to"}],
/// "makeup_workdays":[…]}`), added or replacing that year. It reaches every node with its next sync.
async fn add_calendar_year(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    body: Result<Bytes, BytesRejection>,
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
    user: &CurrentUser,
    body: Result<Bytes, BytesRejection>,
    field: &'static str,
    what: &'static str,
    store_it: fn(&Store, &str) -> Result<u32, StoreError>,
) -> Result<Json<Value>, AppError> {
    let endpoint = if field == "catalog" {
        "POST /api/catalog/publish"
    } else {
        "POST /api/calendar"
    };
    access::require_endpoint(user, endpoint)?;
    let body = body.map_err(body_error)?;
    let json = String::from_utf8(body.to_vec())
        .map_err(|_| AppError::Malformed(format!("{what}必须是UTF-8编码的JSON。")))?;
    let st = state.app.clone();
    let version = blocking(move || {
        let version = store_it(&st.store, &json).map_err(|e| publish_error(e, field, what))?;
        st.refresh_county_data_blocking()?;
        Ok(version)
    })
    .await?;
    let code = if field == "catalog" {
        "catalog.published"
    } else {
        "calendar.published"
    };
    audit::record(
        &state.app.store,
        &user.name,
        code,
        &format!("version {version}"),
        user.source,
    )
    .await?;
    Ok(Json(json!({ "version": version })))
}

/// A refused publication names the field; a broken disk is a storage fault like any other.
fn publish_error(e: StoreError, field: &str, what: &str) -> AppError {
    match e {
        e if e.is_fault() => AppError::from(e),
        refused => AppError::Invalid(vec![FieldError::new(
            field,
            format!("{what}未发布：{refused}"),
        )]),
    }
}

/// `POST /api/catalog/publish` (admin): body is a complete catalogue JSON with a higher version. It
/// reaches every node with its next sync session.
async fn publish_catalog(
    State(state): State<HubState>,
    ApiUser(user): ApiUser,
    body: Result<Bytes, BytesRejection>,
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

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    /// The shared header: place, link badge, navigation, logout.
    page: PageCtx,
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
    user: &CurrentUser,
    message: Option<String>,
    ok: bool,
) -> Response {
    let cal = state.app.calendar();
    let st = state.app.clone();
    let version = blocking(move || Ok(st.store.calendar_version()?))
        .await
        .unwrap_or(0);
    let page = CalendarPage {
        page: PageCtx::new(&state.app, user),
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
    if let Err(e) = access::require_endpoint(&user, "/calendar") {
        return e.into_response();
    }
    render_calendar(&state, &user, None, false).await
}

async fn calendar_submit(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = access::require_endpoint(&user, "/calendar") {
        return e.into_response();
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return body_error(e).into_response(),
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
    let st_store = state.app.store.clone();
    let saved = blocking(move || {
        let saved = st.store.add_calendar_year(&table);
        if saved.is_ok() {
            st.refresh_county_data_blocking()?;
        }
        Ok(saved)
    })
    .await;
    match saved {
        Ok(Ok(version)) => {
            let subject = format!("version {version}");
            let recorded = audit::record(
                &st_store,
                &user.name,
                "calendar.published",
                &subject,
                user.source,
            );
            if let Err(e) = recorded.await {
                return e.into_response();
            }
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
