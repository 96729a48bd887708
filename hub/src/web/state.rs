//! The state of the hub's own routes: the shared case app plus what only the county has.

use axum::extract::FromRef;
use tongban_runtime::transport::Connections;
use tongban_web::SharedState;

#[derive(Clone)]
pub struct HubState {
    pub app: SharedState,
    /// Open sync connections, so that a revocation closes the node's at once.
    pub connections: Connections,
    /// The hub's data directory (the CA lives there; enrolment through the API reads it).
    pub data: std::path::PathBuf,
}

impl FromRef<HubState> for SharedState {
    fn from_ref(s: &HubState) -> SharedState {
        s.app.clone()
    }
}
