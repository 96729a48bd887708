//! The node's HTTP application: shared state, the error type every handler returns, authentication
//! extractors, the intake service used by both the form and the API, and the router.
//!
//! Handlers live in `api` (JSON) and `ui` (HTML); they call the store only through `spawn_blocking`.

use std::sync::Arc;
use std::time::Instant;

use automerge::ActorId;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequestParts};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use rand::Rng;
use tongban_shared::calendar::Calendar;
use tongban_shared::case::{self, Agent, IntakeContext, IntakeRequest};
use tongban_shared::catalog::Catalog;
use tongban_shared::FieldError;

use crate::auth::{self, Sessions};
use tongban_runtime::store::{Created, NodeIdentity, Store, StoreError};

/// Request bodies above this are refused with 413 before they are read into memory.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct AppState {
    pub store: Store,
    /// Read once at start: identity changes only through `enroll`, which needs a restart.
    pub identity: NodeIdentity,
    /// The catalogue in use; replaced when sync brings a newer version (see [`AppState::catalog`]).
    catalog: std::sync::RwLock<Arc<Catalog>>,
    /// The working-day calendar; replaced when the county publishes a year (see [`AppState::calendar`]).
    calendar: std::sync::RwLock<(u32, Arc<Calendar>)>,
    /// This node's automerge actor id; every change it makes to a case carries it.
    pub actor: ActorId,
    pub sessions: Sessions,
    pub started: Instant,
    /// Sync with the upstream; `None` while the node is standalone.
    pub sync: Option<Arc<crate::sync::SyncHandle>>,
    /// Woken when the county queues a message to an applicant (the hub's sender task waits on it).
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Set by the first failed write. From then on new cases are refused: after a failed write or
    /// fsync the store's state on disk is unknown, and acknowledging more work would be a promise
    /// the node cannot keep. Cleared by a restart (after the disk is fixed).
    storage_fault: std::sync::Mutex<Option<String>>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(
        store: Store,
        sync: Option<Arc<crate::sync::SyncHandle>>,
    ) -> Result<AppState, StoreError> {
        Ok(AppState {
            identity: store.identity()?,
            catalog: std::sync::RwLock::new(Arc::new(store.catalog()?)),
            calendar: std::sync::RwLock::new((
                store.calendar_version()?,
                Arc::new(store.calendar()?),
            )),
            actor: ActorId::from(store.actor()?),
            sessions: Sessions::default(),
            started: Instant::now(),
            sync,
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            storage_fault: std::sync::Mutex::new(None),
            store,
        })
    }
}

impl AppState {
    /// Why the store failed, if a write has failed since start.
    pub fn storage_fault(&self) -> Option<String> {
        self.storage_fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a failed write (the first reason is kept) when `error` is a storage failure.
    pub fn note_write_error(&self, error: &AppError) {
        if let AppError::Storage(detail) = error {
            let mut fault = self.storage_fault.lock().unwrap_or_else(|p| p.into_inner());
            if fault.is_none() {
                tracing::error!(%detail, "store write failed; refusing new cases until restart");
                *fault = Some(detail.clone());
            }
        }
    }

    /// Refuses a write while the store is known to be failing.
    pub fn check_writable(&self) -> Result<(), AppError> {
        match self.storage_fault() {
            Some(detail) => Err(AppError::Storage(detail)),
            None => Ok(()),
        }
    }

    /// The current calendar: reloaded from the store when a newer version arrived (sync, or the
    /// county's admin).
    pub fn calendar(&self) -> Arc<Calendar> {
        let (version, cached) = self
            .calendar
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match self.store.calendar_version() {
            Ok(v) if v > version => match self.store.calendar() {
                Ok(newer) => {
                    let newer = Arc::new(newer);
                    *self.calendar.write().unwrap_or_else(|p| p.into_inner()) = (v, newer.clone());
                    newer
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the newer calendar");
                    cached
                }
            },
            _ => cached,
        }
    }

    /// The current catalogue: the cached one unless the store holds a newer version (a sync session
    /// brought one), in which case that is loaded once and cached.
    pub fn catalog(&self) -> Arc<Catalog> {
        let cached = self
            .catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match self.store.catalog_version() {
            Ok(v) if v > cached.version => match self.store.catalog() {
                Ok(newer) => {
                    let newer = Arc::new(newer);
                    *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = newer.clone();
                    tracing::info!(version = newer.version, "catalogue updated");
                    newer
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot load the newer catalogue");
                    cached
                }
            },
            _ => cached,
        }
    }
}

pub use tongban_runtime::clock::beijing_now;

/// Every failure a handler can answer with. Internal details are logged, never sent.
#[derive(Debug)]
pub enum AppError {
    Malformed(String),
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    TooLarge,
    Invalid(Vec<FieldError>),
    /// Not possible in the current state (409).
    Conflict(String),
    /// The upstream could not be reached (503).
    Unavailable(String),
    /// The store failed to write (disk full, I/O error, corruption): nothing was acknowledged (507).
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
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => StatusCode::CONFLICT,
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
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Sled(_) | StoreError::Corrupt { .. } => AppError::Storage(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
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
            if let Some(first) = errors.first() {
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

/// Runs blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f).await?
}

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

async fn authenticate(parts: &Parts, state: &SharedState) -> Result<CurrentUser, AppError> {
    let now = Instant::now();
    if let Some(token) = parts
        .headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| auth::cookie_value(c, auth::SESSION_COOKIE))
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
                    .filter(|u| auth::verify_password(&password, &u.password_hash))
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

/// Generic over the router state so that the hub, whose state wraps the node's, can use it too.
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
                let target = format!("/login?next={}", crate::ui::url_encode(back));
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

/// Validates an intake, builds its document and stores it durably. Shared by the JSON API and the form,
/// so both apply exactly the same rules and both acknowledge only after the flush.
pub async fn file_case(
    state: &SharedState,
    user: &CurrentUser,
    req: IntakeRequest,
    request_key: Option<String>,
) -> Result<Created, AppError> {
    state.check_writable()?;
    let now = beijing_now();
    let intake = case::validate_intake(&state.catalog(), &req, now.date_naive())
        .map_err(AppError::Invalid)?;
    let st = state.clone();
    let agent = Agent {
        user: user.name.clone(),
        name: user.display_name.clone(),
        node_code: state.identity.code.clone(),
        node_name: state.identity.name.clone(),
    };
    blocking(move || {
        let day = now.format("%Y%m%d").to_string();
        let password = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
        let created = st
            .store
            .create_case(&day, request_key.as_deref(), |seq| {
                let case_no = case::format_case_no(&st.identity.code, now.date_naive(), seq);
                let (mut doc, case) = case::new_case_document(
                    &intake,
                    IntakeContext {
                        case_no: &case_no,
                        agent,
                        now,
                        query_password: &password,
                        actor: st.actor.clone(),
                    },
                )
                .map_err(Box::new)?;
                Ok::<_, Box<case::CaseDocError>>((doc.save(), case.summary()))
            })?
            .map_err(AppError::internal)?;
        if let Created::New(summary) = &created {
            tracing::info!(case_no = %summary.case_no, item = %summary.item_code, "case filed");
        }
        Ok(created)
    })
    .await
    .inspect(|created| {
        if let (Created::New(_), Some(sync)) = (created, &state.sync) {
            sync.local_write();
        }
    })
    .inspect_err(|e| state.note_write_error(e))
}

/// Loads and reads one case document; 404 for a number that is malformed or unknown.
pub async fn load_case(
    state: &SharedState,
    case_no: &str,
) -> Result<(Vec<u8>, case::CaseDoc), AppError> {
    let not_found = || AppError::NotFound(format!("没有找到办件“{case_no}”。"));
    if !case::is_case_no(case_no) {
        return Err(not_found());
    }
    let st = state.clone();
    let no = case_no.to_string();
    let bytes = blocking(move || Ok(st.store.document(&no)?))
        .await?
        .ok_or_else(not_found)?;
    let doc = automerge::AutoCommit::load(&bytes).map_err(AppError::internal)?;
    let case = case::read_case(&doc).map_err(AppError::internal)?;
    Ok((bytes, case))
}

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/api/health", get(crate::api::health))
        .route("/api/catalog", get(crate::api::catalog))
        .route(
            "/api/cases",
            post(crate::api::create_case).get(crate::api::list_cases),
        )
        .route("/api/cases/{case_no}", get(crate::api::get_case))
        .route("/api/cases/{case_no}/document", get(crate::api::document))
        .route(
            "/api/cases/{case_no}/actions",
            post(crate::api::case_action),
        )
        .route("/api/stats", get(crate::api::stats))
        .route("/api/calendar", get(crate::api::calendar))
        .route("/api/sync", get(crate::api::sync_status))
        .route("/api/sync/now", post(crate::api::sync_now))
        .route("/", get(crate::ui::home))
        .route("/login", get(crate::ui::login_page).post(crate::ui::login))
        .route("/logout", post(crate::ui::logout))
        .route("/cases", get(crate::ui::case_list))
        .route(
            "/cases/new",
            get(crate::ui::new_case_page).post(crate::ui::new_case_submit),
        )
        .route("/cases/{case_no}", get(crate::ui::case_page))
        .route("/cases/{case_no}/receipt", get(crate::ui::receipt))
        .route(
            "/cases/{case_no}/actions",
            post(crate::ui::case_action_submit),
        )
        .route("/assets/app.css", get(crate::ui::stylesheet))
        .fallback(crate::ui::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// One workflow action by `user` on a case, with the roles and rules of `tongban_shared::workflow`.
/// At a node the account acts as the agent and the change syncs up; at the hub it acts with its county
/// role. Durable before it returns.
pub async fn take_action(
    state: &SharedState,
    user: &CurrentUser,
    case_no: &str,
    input: tongban_shared::workflow::ActionInput,
) -> Result<case::CaseDoc, AppError> {
    use tongban_shared::workflow::{self, ActionError, Actor, Role};
    state.check_writable()?;
    let role = Role::from_account(&user.role)
        .ok_or_else(|| AppError::Forbidden(format!("账号“{}”没有办件权限。", user.name)))?;
    // At a township node its accounts act as the township (the relay for its villages).
    let role = match (role, state.identity.tier) {
        (Role::Agent, tongban_shared::Tier::Township) => Role::Township,
        (r, _) => r,
    };
    load_case(state, case_no).await?;
    let st = state.clone();
    let no = case_no.to_string();
    let user = user.clone();
    let case = blocking(move || {
        let now = beijing_now();
        let mut outcome = None;
        st.store.merge_case(&no, |current| {
            let bytes = current.ok_or_else(|| AppError::NotFound("办件不存在。".into()))?;
            let mut doc = automerge::AutoCommit::load(&bytes).map_err(AppError::internal)?;
            doc.set_actor(st.actor.clone());
            let case = workflow::apply(
                &mut doc,
                &input,
                &Actor {
                    user: &user.name,
                    name: &user.display_name,
                    node: &st.identity.code,
                },
                &role,
                now,
                &st.calendar(),
            )
            .map_err(|e| match e {
                ActionError::Forbidden(_) => {
                    AppError::Forbidden(format!("账号“{}”无权对该办件进行此操作。", user.name))
                }
                ActionError::WrongState { state, .. } => AppError::Conflict(format!(
                    "办件当前状态为“{}”，不能进行此操作。",
                    case::CaseState::parse(&state)
                        .map(|s| s.label())
                        .unwrap_or("未知")
                )),
                ActionError::Invalid(f) => AppError::Invalid(vec![f]),
                ActionError::Unknown(a) => AppError::Invalid(vec![FieldError::new(
                    "action",
                    format!("不认识的操作“{a}”。"),
                )]),
                ActionError::Document(e) => AppError::internal(e),
            })?;
            let summary = case.summary();
            outcome = Some(case);
            Ok::<_, AppError>((doc.save(), summary))
        })??;
        st.store.flush()?;
        let case = outcome.ok_or_else(|| AppError::internal("action produced no case"))?;
        // The county tells the applicant what concerns them; nodes leave that to the county.
        if st.identity.tier == tongban_shared::Tier::County {
            if let Some((kind, text)) = workflow::applicant_notice(&input.action, &case) {
                st.store.enqueue_message(
                    &case.case_no,
                    &case.applicant.phone,
                    kind,
                    &text,
                    &now.to_rfc3339(),
                )?;
                st.outbox_wake.notify_one();
            }
        }
        Ok(case)
    })
    .await
    .inspect_err(|e| state.note_write_error(e))?;
    if let Some(last) = case.history.last() {
        tracing::info!(case_no = %case.case_no, action = %last.action, by = %last.by, "case action");
    }
    if let Some(sync) = &state.sync {
        sync.local_write();
    }
    Ok(case)
}
