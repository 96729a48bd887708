//! `/accounts`: the tier's manager (the county's `admin`, a station's `head`) lists, adds and disables
//! accounts and resets passwords on a running node or hub — each person has their own, so history,
//! receipts and the monthly workbook name them. The rules are `account_admin`'s, the same as
//! `POST /api/users`.

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::common::{back_to, csrf_checked_form, field, page_error, render, PageCtx};
use crate::account_admin;
use crate::accounts::{grantable, NewAccount};
use crate::error::AppError;
use crate::extract::WebUser;
use crate::state::SharedState;
use crate::text::format_time;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/accounts", get(accounts_page).post(add_submit))
        .route("/accounts/{name}/disable", post(disable_submit))
        .route("/accounts/{name}/password", post(password_submit))
}

/// How a role reads on the page.
fn role_label(role: &str) -> String {
    match role {
        "head" => "站长（管理账号）".into(),
        "agent" => "代办员".into(),
        "clerk" => "乡镇窗口".into(),
        "admin" => "系统管理员".into(),
        "window" => "综合窗口".into(),
        "supervisor" => "督查".into(),
        other => match (other.strip_prefix("dept:"), other.strip_prefix("window:")) {
            (Some(d), _) => format!("部门：{d}"),
            (_, Some(area)) => format!("{area}窗口"),
            _ => other.to_string(),
        },
    }
}

struct AccountRow {
    name: String,
    display_name: String,
    role: String,
    disabled: bool,
    created: String,
    /// The manager's own account: it cannot disable itself.
    own: bool,
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    page: PageCtx,
    rows: Vec<AccountRow>,
    /// `(role, label)` the manager may give.
    roles: Vec<(&'static str, String)>,
    /// The county's departments, for a department account.
    depts: Vec<String>,
    /// The hall's service areas, for a window account.
    areas: Vec<String>,
    done: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Banner {
    done: Option<String>,
    error: Option<String>,
}

async fn accounts_page(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Query(banner): Query<Banner>,
) -> Response {
    let users = match account_admin::list(&state, &user).await {
        Ok(u) => u,
        Err(e) => return page_error(e),
    };
    render(&AccountsPage {
        page: PageCtx::new(&state, &user),
        rows: users
            .into_iter()
            .map(|u| AccountRow {
                own: u.name == user.name,
                disabled: u.is_disabled(),
                role: role_label(&u.role),
                created: format_time(&u.created_at),
                display_name: u.display_name,
                name: u.name,
            })
            .collect(),
        roles: grantable(state.identity.tier)
            .iter()
            .map(|r| (*r, role_label(r)))
            .collect(),
        depts: state
            .catalog()
            .departments()
            .into_iter()
            .map(String::from)
            .collect(),
        areas: state.catalog().county.service_areas.clone(),
        done: banner.done,
        error: banner.error,
    })
}

fn back(outcome: Result<String, AppError>) -> Response {
    back_to("/accounts", outcome)
}

async fn add_submit(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let dept = field(&pairs, "dept");
    let area = field(&pairs, "area");
    let added = account_admin::add(
        &state,
        &user,
        &NewAccount {
            name: field(&pairs, "name"),
            display_name: field(&pairs, "display_name"),
            password: field(&pairs, "password"),
            role: field(&pairs, "role"),
            dept: (!dept.is_empty()).then_some(dept),
            area: (!area.is_empty()).then_some(area),
        },
    )
    .await;
    back(added.map(|r| format!("已新增账号 {}（{}）。", r.name, r.display_name)))
}

async fn disable_submit(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    if field(&pairs, "confirm") != "1" {
        return back(Err(AppError::Conflict(format!(
            "停用账号 {name} 前请勾选确认。"
        ))));
    }
    let done = account_admin::disable(&state, &user, &name).await;
    back(done.map(|()| format!("已停用账号 {name}：它办过的办件仍显示其姓名，但不能再登录。")))
}

async fn password_submit(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = match csrf_checked_form(&user, body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let done = account_admin::reset_password(&state, &user, &name, field(&pairs, "password")).await;
    back(done.map(|()| format!("已为 {name} 设置新密码，请当面告诉本人。")))
}
