//! `tongban-hub serve`: the county-wide web app and API on `--http`, the QUIC sync endpoint on
//! `--quic`, until ctrl-c or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tongban_node::app::AppState;
use tongban_runtime::store::Store;
use tongban_runtime::tls;
use tongban_runtime::transport::{self, Connections, ServerLimits};

use crate::county::{self, CountyError};
use crate::gate::HubGate;
use crate::web::{self, HubState};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    County(#[from] CountyError),
    #[error("{0}")]
    Store(#[from] tongban_runtime::store::StoreError),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// A running hub's addresses (port 0 resolved).
pub struct Bound {
    pub http: SocketAddr,
    pub quic: SocketAddr,
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    data: &Path,
    store: Store,
    http: SocketAddr,
    quic: SocketAddr,
    limits: ServerLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), ServeError> {
    let ca = county::ca(data)?;
    let own = county::hub_cert(data)?;
    let config = tls::server_config(&ca.cert_pem, &own)?;
    let endpoint = quinn::Endpoint::server(config, quic)
        .map_err(|source| ServeError::Bind { addr: quic, source })?;
    let quic_addr = endpoint
        .local_addr()
        .map_err(|source| ServeError::Bind { addr: quic, source })?;
    let connections = Connections::default();
    let gate = Arc::new(HubGate {
        store: store.clone(),
    });
    let sync_task = tokio::spawn(transport::serve_with_limits(
        endpoint.clone(),
        store.clone(),
        gate,
        connections.clone(),
        limits,
    ));

    let app_state = Arc::new(AppState::new(store, None)?);
    let sender_task = tokio::spawn(crate::notify::run(
        app_state.store.clone(),
        Arc::new(crate::notify::LogSender),
        app_state.outbox_wake.clone(),
    ));
    let router = web::app(HubState {
        app: app_state.clone(),
        connections,
        data: data.to_path_buf(),
    });
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .map_err(|source| ServeError::Bind { addr: http, source })?;
    let http_addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr: http, source })?;
    on_bound(&Bound {
        http: http_addr,
        quic: quic_addr,
    });
    tracing::info!(%http_addr, %quic_addr, "hub serving");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)?;
    endpoint.close(0u32.into(), b"hub shutting down");
    sync_task.abort();
    sender_task.abort();
    app_state.store.flush()?;
    tracing::info!("hub stopped");
    Ok(())
}
