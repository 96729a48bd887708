//! Who is asking: the account behind a request (session cookie or HTTP Basic) as axum extractors,
//! the role check, and the client's idempotency key.

use std::time::Instant;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header, request::Parts, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;

use tongban_shared::case::CaseState;
use tongban_shared::FieldError;

use crate::accounts;
use crate::error::AppError;
use crate::state::{blocking, SharedState};
use crate::text::url_encode;

/// The account behind a request, from the session cookie or HTTP Basic.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub name: String,
    pub display_name: String,
    pub role: String,
    /// Present for cookie sessions: forms must echo it.
    pub csrf: Option<String>,
    pub session_token: Option<String>,
}

impl CurrentUser {
    /// 403 unless the account has one of `roles` (account role names: `admin`, `window`, …).
    pub fn require_role(&self, roles: &[&str]) -> Result<(), AppError> {
        if roles.contains(&self.role.as_str()) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "账号“{}”的角色无权进行此操作。",
                self.name
            )))
        }
    }
}

async fn authenticate(parts: &Parts, state: &SharedState) -> Result<CurrentUser, AppError> {
    let now = Instant::now();
    if let Some(token) = parts
        .headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| accounts::cookie_value(c, accounts::SESSION_COOKIE))
    {
        if let Some(session) = state.sessions.get(token, now) {
            return Ok(CurrentUser {
                name: session.user,
                display_name: session.display_name,
                role: session.role,
                csrf: Some(session.csrf),
                session_token: Some(token.to_string()),
            });
        }
    }
    let Some(header_value) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(AppError::Unauthorized);
    };
    let Some(encoded) = header_value.strip_prefix("Basic ") else {
        return Err(AppError::Unauthorized);
    };
    let user_name = match state.sessions.cached_basic(header_value, now) {
        Some(user) => user,
        None => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(AppError::Unauthorized)?;
            let (user, password) = decoded.split_once(':').ok_or(AppError::Unauthorized)?;
            let (user, password) = (user.to_string(), password.to_string());
            let st = state.clone();
            let ok = blocking(move || {
                Ok(st
                    .store
                    .user(&user)?
                    .filter(|u| accounts::verify_password(&password, &u.password_hash))
                    .map(|u| u.name))
            })
            .await?;
            let user = ok.ok_or(AppError::Unauthorized)?;
            state.sessions.remember_basic(header_value, &user, now);
            user
        }
    };
    let st = state.clone();
    let name = user_name.clone();
    let record = blocking(move || Ok(st.store.user(&name)?))
        .await?
        .ok_or(AppError::Unauthorized)?;
    Ok(CurrentUser {
        name: record.name,
        display_name: record.display_name,
        role: record.role,
        csrf: None,
        session_token: None,
    })
}

/// Extractor for JSON endpoints: 401 with a JSON body when nobody is logged in.
pub struct ApiUser(pub CurrentUser);

/// Generic over the router state so that a tier whose state wraps [`SharedState`] can use it too.
impl<S> FromRequestParts<S> for ApiUser
where
    S: Send + Sync,
    SharedState: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        authenticate(parts, &SharedState::from_ref(state))
            .await
            .map(ApiUser)
    }
}

/// Extractor for pages: sends the browser to the login page when nobody is logged in.
pub struct WebUser(pub CurrentUser);

impl<S> FromRequestParts<S> for WebUser
where
    S: Send + Sync,
    SharedState: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match authenticate(parts, &SharedState::from_ref(state)).await {
            Ok(user) => Ok(WebUser(user)),
            Err(AppError::Unauthorized) => {
                let back = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let target = format!("/login?next={}", url_encode(back));
                Err(Redirect::to(&target).into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// Client-chosen key that makes a submission idempotent (`Idempotency-Key` header, or the hidden form
/// token): a retry after a lost answer or a double click returns the first case.
pub fn request_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                AppError::Malformed("Idempotency-Key 只能包含可见的ASCII字符。".into())
            })?;
            check_request_key(key).map(Some)
        }
    }
}

pub fn check_request_key(key: &str) -> Result<String, AppError> {
    let key = key.trim();
    if key.is_empty()
        || key.len() > 100
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AppError::Malformed(
            "请求标识（Idempotency-Key）应为1到100位字母、数字、“-”或“_”。".into(),
        ));
    }
    Ok(key.to_string())
}

/// A state filter from a query string (`?state=`); empty means every state.
pub fn parse_state(raw: Option<&str>) -> Result<Option<CaseState>, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => CaseState::parse(s).map(Some).ok_or_else(|| {
            AppError::Invalid(vec![FieldError::new(
                "state",
                format!("不认识的办件状态“{s}”。"),
            )])
        }),
    }
}
