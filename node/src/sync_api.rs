//! The node-only routes over the uplink: `GET /api/sync` (the link as the last sessions left it)
//! and `POST /api/sync/now` (one session to completion).

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tongban_web::extract::ApiUser;
use tongban_web::{AppError, SharedState};

use crate::uplink::SyncHandle;

/// What the node-only routes need: the shared app (for the account check) and the uplink.
#[derive(Clone)]
pub struct UplinkState {
    pub app: SharedState,
    pub uplink: Option<Arc<SyncHandle>>,
}

impl FromRef<UplinkState> for SharedState {
    fn from_ref(s: &UplinkState) -> SharedState {
        s.app.clone()
    }
}

/// `GET /api/sync`, `POST /api/sync/now`.
pub fn routes(state: UplinkState) -> Router {
    Router::new()
        .route("/api/sync", get(sync_status))
        .route("/api/sync/now", post(sync_now))
        .with_state(state)
}

/// `GET /api/sync`: the link to the upstream as the last sessions left it.
async fn sync_status(State(state): State<UplinkState>, _user: ApiUser) -> Json<Value> {
    match &state.uplink {
        None => Json(json!({
            "upstream": null,
            "connected": false,
            "last_success": null,
            "pending_up": 0,
            "last_session": null,
        })),
        Some(sync) => Json(serde_json::to_value(sync.status()).unwrap_or_default()),
    }
}

/// `POST /api/sync/now`: one session to completion; 503 when the upstream cannot be reached.
async fn sync_now(
    State(state): State<UplinkState>,
    _user: ApiUser,
) -> Result<Json<Value>, AppError> {
    let Some(sync) = &state.uplink else {
        return Err(AppError::Conflict(
            "本站尚未接入县级平台（单机运行），无法同步。".into(),
        ));
    };
    match sync.run_now().await {
        Ok(report) => Ok(Json(
            serde_json::to_value(report).map_err(AppError::internal)?,
        )),
        Err(e) => {
            tracing::info!(error = %e, "sync now failed");
            Err(AppError::Unavailable(format!(
                "暂时连不上上级平台，办件已安全保存在本机，网络恢复后会自动上传。（{e}）"
            )))
        }
    }
}
