//! County data that flows down to every node: the catalogue (`POST /api/catalog/publish`) and the
//! working-day calendar (`POST /api/calendar`; its page is `calendar.rs`). Admin only.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tongban_runtime::store::{Store, StoreError};
use tongban_shared::FieldError;
use tongban_web::error::body_error;
use tongban_web::extract::{ApiUser, CurrentUser};
use tongban_web::{access, audit};
use tongban_web::{blocking, AppError};

use super::state::HubState;

pub fn routes() -> Router<HubState> {
    Router::new()
        .route("/api/catalog/publish", post(publish_catalog))
        .route("/api/calendar", post(add_calendar_year))
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
