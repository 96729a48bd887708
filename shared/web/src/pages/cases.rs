//! `/` (today's cases and counts) and `/cases` (search and filter every case this tier holds).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::TimeZone;
use serde::Deserialize;
use tongban_runtime::clock::beijing_now;
use tongban_runtime::store::ListQuery;
use tongban_shared::case::CaseState;

use super::common::{page_error, render, rows, CaseRow, PageCtx};
use crate::extract::{parse_state, WebUser};
use crate::state::{blocking, SharedState};
use crate::text::url_encode;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/", get(home))
        .route("/cases", get(case_list))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    page: PageCtx,
    today: String,
    today_count: u64,
    /// Cases written here that have not gone up yet; `None` for a standalone node, where every case
    /// waits (then the tile counts the cases the county has not received).
    pending_up: Option<u64>,
    /// Cases the county has not received yet (paper in transit, or data not up yet).
    submitted_count: u64,
    total_count: u64,
    inbox: crate::service::Inbox,
    rows: Vec<CaseRow>,
}

/// `/`: the station's to-do inbox first, then today's cases and counts. The county's staff start
/// at their queue instead (`Site::home_for`).
async fn home(State(state): State<SharedState>, WebUser(user): WebUser) -> Response {
    if let Some(target) = state.site.home_for(&user.role) {
        return axum::response::Redirect::to(target).into_response();
    }
    let now = beijing_now();
    let midnight = now
        .timezone()
        .from_local_datetime(&now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let inbox = match crate::service::todo(&state, &user).await {
        Ok(inbox) => inbox,
        Err(e) => return page_error(e),
    };
    let st = state.clone();
    let loaded = blocking(move || {
        let today = st.store.list(&ListQuery {
            since_ms: Some(midnight),
            limit: 100,
            ..Default::default()
        })?;
        Ok((
            today,
            st.store.count(Some(CaseState::Submitted))?,
            st.store.count(None)?,
        ))
    })
    .await;
    match loaded {
        Ok((today, submitted, total)) => render(&HomePage {
            page: PageCtx::new(&state, &user),
            today: now.format("%Y年%m月%d日").to_string(),
            today_count: today.total,
            pending_up: state.site.pending_up(),
            submitted_count: submitted,
            total_count: total,
            inbox,
            rows: rows(today.cases, state.identity.tier),
        }),
        Err(e) => page_error(e),
    }
}

#[derive(Template)]
#[template(path = "cases.html")]
struct CasesPage {
    page: PageCtx,
    q: String,
    q_url: String,
    state: String,
    states: Vec<(&'static str, &'static str)>,
    total: u64,
    from: usize,
    to: usize,
    rows: Vec<CaseRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct ListForm {
    q: Option<String>,
    state: Option<String>,
    cursor: Option<String>,
    from: Option<usize>,
}

const PAGE_SIZE: usize = 50;

async fn case_list(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Query(form): Query<ListForm>,
) -> Response {
    let filter_state = match parse_state(form.state.as_deref()) {
        Ok(s) => s,
        Err(e) => return page_error(e),
    };
    let q = form.q.unwrap_or_default().trim().to_string();
    let query = ListQuery {
        state: filter_state,
        text: Some(q.clone()),
        since_ms: None,
        limit: PAGE_SIZE,
        cursor: form.cursor.filter(|c| !c.is_empty()),
        dept: crate::access::dept_scope(state.identity.tier, &user.role).map(str::to_string),
    };
    let st = state.clone();
    let page = match blocking(move || Ok(st.store.list(&query)?)).await {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let skipped = form.from.unwrap_or(0);
    let shown = page.cases.len();
    render(&CasesPage {
        page: PageCtx::new(&state, &user),
        q_url: url_encode(&q),
        q,
        state: filter_state.map(|s| s.as_str()).unwrap_or("").to_string(),
        states: CaseState::ALL
            .iter()
            .map(|s| (s.as_str(), s.label_at(state.identity.tier, "")))
            .collect(),
        total: page.total,
        from: skipped + 1,
        to: skipped + shown,
        rows: rows(page.cases, state.identity.tier),
        next: page.next,
    })
}
