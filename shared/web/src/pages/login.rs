//! `/login`, `/logout`: a cookie session for a person at this tier's screen.

use std::time::Instant;

use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, Extensions, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::common::{csrf_checked_form, field, form_pairs, page_error, render};
use crate::accounts;
use crate::extract::{over_https, source_address, WebUser};
use crate::guard::{locked_message, Verdict};
use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

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
struct NextParam {
    next: Option<String>,
}

fn login_title(state: &SharedState) -> &'static str {
    match state.identity.tier {
        tongban_shared::Tier::County => "县级政务服务中心登录",
        tongban_shared::Tier::Township => "乡镇便民服务中心登录",
        tongban_shared::Tier::Village => "代办员登录",
    }
}

/// Only local paths: a login link must not send the agent to another site. Browsers drop tabs and
/// newlines from a URL and read `\` as `/`, so `/\t/evil.example` would become `//evil.example`:
/// any control or space character, or a backslash, is refused outright.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\\') =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

async fn login_page(State(state): State<SharedState>, Query(params): Query<NextParam>) -> Response {
    render(&LoginPage {
        title: login_title(&state),
        node_name: state.identity.name.clone(),
        node_code: state.identity.code.clone(),
        next: safe_next(params.next.as_deref()),
        user: String::new(),
        error: None,
    })
}

async fn login(
    State(state): State<SharedState>,
    extensions: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let pairs = match form_pairs(body) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let user = field(&pairs, "user").trim().to_string();
    let password = field(&pairs, "password").to_string();
    let next = safe_next(Some(field(&pairs, "next")));
    let verified = state
        .login_guard
        .verify(&state.store, &user, &password, source_address(&extensions))
        .await;
    let refused = |status: StatusCode, error: String, user: String| {
        let page = LoginPage {
            title: login_title(&state),
            node_name: state.identity.name.clone(),
            node_code: state.identity.code.clone(),
            next: next.clone(),
            user,
            error: Some(error),
        };
        (status, render(&page)).into_response()
    };
    match verified {
        Ok(Verdict::Valid(record)) => {
            let (token, _) = state.sessions.start(
                &record.name,
                &record.display_name,
                &record.role,
                Instant::now(),
            );
            let cookie = format!(
                "{}={token}; HttpOnly; SameSite=Strict; Path=/{}",
                accounts::SESSION_COOKIE,
                if over_https(&extensions) {
                    "; Secure"
                } else {
                    ""
                }
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Ok(Verdict::Wrong) => refused(
            StatusCode::UNAUTHORIZED,
            "账号或密码不正确，请重新输入。".into(),
            user,
        ),
        Ok(Verdict::Locked(left)) => {
            refused(StatusCode::TOO_MANY_REQUESTS, locked_message(left), user)
        }
        Err(e @ crate::error::AppError::Busy(_)) => {
            refused(StatusCode::TOO_MANY_REQUESTS, e.message(), user)
        }
        Err(e) => page_error(e),
    }
}

async fn logout(
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
        accounts::SESSION_COOKIE
    );
    ([(header::SET_COOKIE, expire)], Redirect::to("/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn login_redirects_only_to_local_paths() {
        assert_eq!(safe_next(Some("/cases/new")), "/cases/new");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/ /evil.example")), "/");
    }
}
