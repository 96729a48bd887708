//! `/catalog` (admin): the catalogue in use, its export as JSON, and an import that shows what the new
//! file changes before anything is published to every station. The JSON endpoint
//! (`POST /api/catalog/publish`) stays in `county_data.rs` for scripts.
//!
//! The admin never types a version: a publication from this page is always the current one + 1, so a
//! file exported, edited and imported again cannot be refused as "not newer".

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tongban_shared::catalog::Catalog;
use tongban_shared::catalog_diff::{diff, CatalogDiff};
use tongban_web::extract::{CurrentUser, WebUser};
use tongban_web::pages::common::{csrf_checked_form, field, PageCtx};
use tongban_web::{access, audit, blocking, AppError};

use super::state::HubState;

pub fn routes() -> Router<HubState> {
    Router::new()
        .route("/catalog", get(catalog_page))
        .route("/catalog/export", get(export))
        .route("/catalog/preview", post(preview))
        .route("/catalog/publish", post(publish))
}

#[derive(Template)]
#[template(path = "catalog.html")]
pub(super) struct CatalogPage {
    /// The shared header: place, link badge, navigation, logout.
    page: PageCtx,
    current: std::sync::Arc<Catalog>,
    /// A checked file waiting for the admin's confirmation: what it changes, and its text.
    pub(super) preview: Option<(CatalogDiff, usize, String)>,
    pub(super) next_version: u32,
    pub(super) message: Option<String>,
    ok: bool,
}

pub(super) fn render(state: &HubState, user: &CurrentUser) -> CatalogPage {
    let current = state.app.catalog();
    CatalogPage {
        page: PageCtx::new(&state.app, user),
        next_version: current.version + 1,
        current,
        preview: None,
        message: None,
        ok: false,
    }
}

pub(super) fn html(page: CatalogPage) -> Result<Response, AppError> {
    Ok(Html(page.render().map_err(AppError::internal)?).into_response())
}

pub(super) fn allowed(user: &CurrentUser) -> Result<(), AppError> {
    access::require_endpoint(user, "/catalog")
}

async fn catalog_page(
    State(state): State<HubState>,
    WebUser(user): WebUser,
) -> Result<Response, AppError> {
    allowed(&user)?;
    html(render(&state, &user))
}

/// `GET /catalog/export`: the catalogue in use, as the file the import takes.
async fn export(
    State(state): State<HubState>,
    WebUser(user): WebUser,
) -> Result<Response, AppError> {
    allowed(&user)?;
    let catalog = state.app.catalog();
    let json = serde_json::to_string_pretty(&*catalog).map_err(AppError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/json; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"tongban-catalog-v{}.json\"",
                    catalog.version
                ),
            ),
        ],
        json,
    )
        .into_response())
}

/// The uploaded text as the catalogue it would publish (version set to the next one), or why not.
pub(super) fn checked(text: &str, next_version: u32) -> Result<(Catalog, String), String> {
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("文件不是有效的JSON：{e}"))?;
    let Some(obj) = value.as_object_mut() else {
        return Err("文件不是事项目录（应为一个JSON对象）。".into());
    };
    obj.insert("version".into(), next_version.into());
    let json = value.to_string();
    let catalog = Catalog::from_json(&json).map_err(|e| format!("事项目录有误：{e}"))?;
    Ok((catalog, json))
}

/// `POST /catalog/preview` (multipart: csrf, file): checks the file and shows what it changes.
async fn preview(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    mut form: Multipart,
) -> Result<Response, AppError> {
    allowed(&user)?;
    let (mut csrf, mut text) = (String::new(), None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::Malformed(format!("上传的表单无法读取：{e}")))?
    {
        match field.name() {
            Some("csrf") => csrf = field.text().await.unwrap_or_default(),
            Some("file") => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::Malformed(format!("上传的文件无法读取：{e}")))?;
                text = Some(String::from_utf8(bytes.to_vec()));
            }
            _ => {}
        }
    }
    if !user
        .csrf
        .as_deref()
        .is_some_and(|expected| tongban_web::accounts::same_secret(&csrf, expected))
    {
        return Err(AppError::Forbidden(
            "页面已过期或来源不明，请返回重新打开页面后再提交。".into(),
        ));
    }
    let mut page = render(&state, &user);
    let outcome = match text {
        None => Err("请选择要导入的事项目录文件（JSON）。".to_string()),
        Some(Err(_)) => Err("文件不是UTF-8编码的文本。".to_string()),
        Some(Ok(text)) => checked(&text, page.next_version),
    };
    match outcome {
        Ok(new) => show_changes(&mut page, new),
        Err(why) => page.message = Some(format!("未导入：{why}")),
    }
    html(page)
}

/// Puts what a checked new catalogue changes on the page, for the admin to confirm (or says that
/// nothing changes).
pub(super) fn show_changes(page: &mut CatalogPage, (new, json): (Catalog, String)) {
    let changes = diff(&page.current, &new);
    if changes.is_empty() {
        page.message = Some("与正在使用的目录完全相同，无需发布。".into());
    } else {
        page.preview = Some((changes, new.items.len(), json));
    }
}

/// `POST /catalog/publish` (form: csrf, catalog, confirm): publishes the previewed file.
async fn publish(
    State(state): State<HubState>,
    WebUser(user): WebUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AppError> {
    allowed(&user)?;
    let pairs = csrf_checked_form(&user, body)?;
    let get = |k: &str| field(&pairs, k).to_string();
    let mut page = render(&state, &user);
    if get("confirm") != "1" {
        page.message = Some("未发布：请勾选“已核对以上变更”后再发布。".into());
        return html(page);
    }
    let (_, json) = match checked(&get("catalog"), page.next_version) {
        Ok(c) => c,
        Err(why) => {
            page.message = Some(format!("未发布：{why}"));
            return html(page);
        }
    };
    let st = state.app.clone();
    let published = blocking(move || {
        let published = st.store.set_catalog(&json);
        if published.is_ok() {
            st.refresh_county_data_blocking()?;
        }
        Ok(published)
    })
    .await?;
    match published {
        Ok(version) => {
            audit::record(
                &state.app.store,
                &user.name,
                "catalog.published",
                &format!("version {version}"),
                user.source,
            )
            .await?;
            let mut page = render(&state, &user);
            page.message = Some(format!(
                "事项目录第 {version} 版已发布，各站点下次同步时自动更新。"
            ));
            page.ok = true;
            html(page)
        }
        Err(e) if e.is_fault() => Err(AppError::from(e)),
        // Someone published in between: the preview no longer shows what would change.
        Err(e) => {
            page.message = Some(format!("未发布：{e}。请重新导入文件，核对变更后再发布。"));
            html(page)
        }
    }
}
