//! `GET /api/audit?from=&to=`: the audit log for the tier's manager (admin at the county, the head
//! at a node), to read and to keep a copy of (等保 安全审计). Reading it is itself recorded.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Value};
use tongban_shared::FieldError;

use crate::audit;
use crate::error::AppError;
use crate::extract::ApiUser;
use crate::state::{blocking, SharedState};

/// An answer holds at most this many records (the newest); `"more": true` says a narrower range is
/// needed for the rest.
pub const MAX_RECORDS: usize = 10_000;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/api/audit", get(read_audit))
}

#[derive(Deserialize)]
pub struct Range {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Range {
    /// The days asked for (Beijing time, both ends included); a date that does not parse is 422.
    pub fn days(&self) -> Result<(Option<NaiveDate>, Option<NaiveDate>), AppError> {
        let day = |field: &str, value: &Option<String>| match value.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| {
                    AppError::Invalid(vec![FieldError::new(
                        field,
                        "日期格式应为YYYY-MM-DD，例如2026-12-01。",
                    )])
                }),
        };
        Ok((day("from", &self.from)?, day("to", &self.to)?))
    }
}

async fn read_audit(
    State(state): State<SharedState>,
    ApiUser(user): ApiUser,
    Query(range): Query<Range>,
) -> Result<Json<Value>, AppError> {
    crate::access::require_manager(state.identity.tier, &user)?;
    let (from, to) = range.days()?;
    let subject = format!(
        "{}..{}",
        from.map(|d| d.to_string()).unwrap_or_default(),
        to.map(|d| d.to_string()).unwrap_or_default()
    );
    audit::record(
        &state.store,
        &user.name,
        "audit.read",
        &subject,
        user.source,
    )
    .await?;
    let st = state.clone();
    let (records, more) =
        blocking(move || Ok(st.store.audit_log().records(from, to, MAX_RECORDS)?)).await?;
    Ok(Json(json!({ "records": records, "more": more })))
}
