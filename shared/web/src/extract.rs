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
use crate::guard::{locked_message, Verdict};
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
    /// The address the request came from, for the audit log (none for in-process callers).
    pub source: Option<std::net::IpAddr>,
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
                source: source_address(&parts.extensions),
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
        Some(user) => {
            if let Some(left) = state
                .login_guard
                .lock_left(&user, source_address(&parts.extensions))
            {
                return Err(AppError::Busy(locked_message(left)));
            }
            user
        }
        None => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(AppError::Unauthorized)?;
            let (user, password) = decoded.split_once(':').ok_or(AppError::Unauthorized)?;
            let source = source_address(&parts.extensions);
            match state
                .login_guard
                .verify(&state.store, user, password, source)
                .await?
            {
                Verdict::Valid(record) => {
                    state
                        .sessions
                        .remember_basic(header_value, &record.name, now);
                    record.name
                }
                Verdict::Wrong => return Err(AppError::Unauthorized),
                Verdict::Locked(left) => return Err(AppError::Busy(locked_message(left))),
            }
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
        source: source_address(&parts.extensions),
    })
}

/// The address a request came from, when the server recorded it (both tiers serve with connect
/// info; a router driven in-process has none).
pub fn source_address(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<crate::https::Peer>>()
        .map(|c| c.0.addr.ip())
}

/// Whether the request came over HTTPS (its session cookie is then `Secure`).
pub fn over_https(extensions: &axum::http::Extensions) -> bool {
    extensions
        .get::<axum::extract::ConnectInfo<crate::https::Peer>>()
        .is_some_and(|c| c.0.tls)
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
        let user = authenticate(parts, &SharedState::from_ref(state)).await?;
        check_cookie_request(parts, &user)?;
        Ok(ApiUser(user))
    }
}

/// Header a script in a logged-in page must send with the session's CSRF token on API writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A cookie rides along with any request the browser makes, also one another site (or another port
/// of the same host, which SameSite counts as the same site) makes it send. So an API write with a
/// cookie session must prove it comes from this app's page: the session's token in [`CSRF_HEADER`],
/// and an `Origin`, when the browser sends one, of this very host. HTTP Basic needs neither: the
/// browser never attaches it on its own.
fn check_cookie_request(parts: &Parts, user: &CurrentUser) -> Result<(), AppError> {
    let Some(expected) = &user.csrf else {
        return Ok(());
    };
    if parts.method.is_safe() {
        return Ok(());
    }
    let refused = || {
        AppError::Forbidden("请求未通过安全校验（缺少或不符的校验码），请刷新页面后重试。".into())
    };
    let token = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refused)?;
    if !crate::accounts::same_secret(token, expected) {
        return Err(refused());
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest.trim_end_matches('/'));
        if host.is_none() || origin_host != host {
            return Err(refused());
        }
    }
    Ok(())
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
