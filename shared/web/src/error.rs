//! The one error type of the case web app: every handler and the service layer answer with
//! [`AppError`], which maps to a status and a Chinese sentence. Internal details are logged, never sent.
//!
//! Also the two ways a request body becomes an error: [`body_error`] and [`parse_json`].

use axum::extract::rejection::BytesRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tongban_runtime::store::{Refusal, StoreError};
use tongban_shared::FieldError;

/// Every failure a handler can answer with.
#[derive(Debug)]
pub enum AppError {
    Malformed(String),
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    TooLarge,
    /// The case would outgrow its size budget (413, with why).
    Oversized(String),
    Invalid(Vec<FieldError>),
    /// Not possible in the current state (409).
    Conflict(String),
    /// Too many requests: a login waited too long for a password check, or the account or address is
    /// locked after failures (429).
    Busy(String),
    /// The upstream could not be reached (503).
    Unavailable(String),
    /// The store failed to write (disk full, I/O error, damage): nothing was acknowledged (507).
    Storage(String),
    Internal(String),
}

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> AppError {
        AppError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Malformed(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::TooLarge | AppError::Oversized(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Storage(_) => StatusCode::INSUFFICIENT_STORAGE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Chinese sentence shown to a person.
    pub fn message(&self) -> String {
        match self {
            AppError::Malformed(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::Busy(m)
            | AppError::Oversized(m)
            | AppError::Unavailable(m) => m.clone(),
            AppError::Unauthorized => "请先登录，或在请求中提供正确的账号和密码。".into(),
            AppError::TooLarge => "提交的内容太大（超过1MB），请减少内容后重试。".into(),
            AppError::Invalid(errors) => errors
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_else(|| "提交的内容有误。".into()),
            AppError::Storage(_) => {
                "本机存储出错（磁盘已满或损坏），这一件没有保存。已保存的办件不受影响。\
                 请联系技术人员处理后再录入，在此之前本机不再接收新办件。"
                    .into()
            }
            AppError::Internal(_) => "系统内部错误，数据未保存，请稍后重试或联系技术人员。".into(),
        }
    }
}

impl From<StoreError> for AppError {
    /// Only a fault of the disk or the store becomes a storage error (507, and the latch that stops
    /// intake); a refused write is the request's problem and says so.
    fn from(e: StoreError) -> Self {
        match e {
            e if e.is_fault() => AppError::Storage(e.to_string()),
            StoreError::Refused(refusal) => refused(&refusal),
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// A refused store write as the person reads it: the request's problem, never the disk's.
fn refused(refusal: &Refusal) -> AppError {
    match refusal {
        Refusal::NotNewer { .. } => {
            AppError::Conflict("提交的版本不比现有版本新，未作更改。".into())
        }
        Refusal::WrongNode { this, other } => {
            AppError::Conflict(format!("本站是{this}，提交的内容属于{other}，未作更改。"))
        }
        Refusal::Invalid { what, .. } => AppError::Invalid(vec![FieldError::new(
            "",
            format!("提交的内容未通过检查（{what}），未作更改。"),
        )]),
        Refusal::Exists(what) => AppError::Conflict(format!("{what}已存在，未作更改。")),
        Refusal::InUse(no) => AppError::Conflict(format!("办件编号{no}已被占用，请重试。")),
        Refusal::TooLarge { why, .. } => AppError::Oversized(format!(
            "{why}，这次的内容没有保存，已保存的内容不受影响。请精简文字后再试。"
        )),
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) | AppError::Storage(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let mut body = serde_json::json!({ "error": self.message() });
        if let AppError::Invalid(errors) = &self {
            // `field` only when the error is about one field (a refused document is about none).
            if let Some(first) = errors.first().filter(|e| !e.field.is_empty()) {
                body["field"] = first.field.clone().into();
            }
            body["errors"] = serde_json::to_value(errors).unwrap_or_default();
        }
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, AppError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"tongban\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

/// Turns a body rejection into our error: 413 for an oversized body, 400 otherwise.
pub fn body_error(rejection: BytesRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::TooLarge
    } else {
        AppError::Malformed("无法读取请求内容。".into())
    }
}

/// Parses a JSON body: broken syntax is 400; well-formed JSON with a wrong or missing value is 422
/// naming the field by its path (`applicant.name`, `action`).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    use serde_json::error::Category;
    let mut de = serde_json::Deserializer::from_slice(body);
    let (path, inner) = match serde_path_to_error::deserialize(&mut de) {
        // Trailing characters after the value are broken JSON too.
        Ok(v) => match de.end() {
            Ok(()) => return Ok(v),
            Err(e) => (String::new(), e),
        },
        Err(e) => (e.path().to_string(), e.into_inner()),
    };
    if inner.classify() != Category::Data {
        return Err(AppError::Malformed(format!(
            "请求内容不是有效的JSON（第{}行第{}列）。",
            inner.line(),
            inner.column()
        )));
    }
    let text = inner.to_string();
    let quoted = text.split('`').nth(1).unwrap_or("").to_string();
    let under = |name: &str| {
        if path == "." || path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let (field, message) = if text.starts_with("missing field") {
        (under(&quoted), format!("缺少字段“{quoted}”。"))
    } else if text.starts_with("unknown field") {
        (under(&quoted), format!("不认识的字段“{quoted}”。"))
    } else if text.starts_with("unknown variant") {
        (
            path.clone(),
            format!("“{path}”的取值“{quoted}”不在允许的范围内。"),
        )
    } else {
        (
            path.clone(),
            "字段的类型不正确（例如应为文字却给了数字）。".to_string(),
        )
    };
    Err(AppError::Invalid(vec![FieldError::new(field, message)]))
}
