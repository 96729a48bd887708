//! `tongban-hub serve`: the county-wide web app and API on `--http`, the QUIC sync endpoint on
//! `--quic`, until ctrl-c or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tongban_runtime::store::Store;
use tongban_runtime::tls;
use tongban_runtime::transport::{self, Connections, ServerLimits};
use tongban_web::{AppError, AppState};

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
    #[error("{0:?}")]
    App(AppError),
}

impl From<AppError> for ServeError {
    fn from(e: AppError) -> Self {
        ServeError::App(e)
    }
}

/// A running hub's addresses (port 0 resolved).
pub struct Bound {
    pub http: SocketAddr,
    pub quic: SocketAddr,
}

/// Serves until `shutdown` is cancelled; every task started here is told to stop and awaited.
pub async fn serve(
    data: &Path,
    store: Store,
    http: SocketAddr,
    quic: SocketAddr,
    limits: ServerLimits,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), ServeError> {
    let ca = county::ca(data)?;
    let own = county::hub_cert(data)?;
    let config = tls::server_config(&ca.cert_pem, &own)?;
    // Both keys survive restarts (see `county::reset_key`): the connection ids a restarted hub sees
    // must validate as its own, and the reset tokens it derives from them must match the ones nodes
    // were given, or the nodes' packets are dropped silently and their sessions wait out the idle
    // timeout.
    let key = county::reset_key(data)?;
    let reset = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key[..32]);
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&key[32..40]);
    let cid_key = u64::from_be_bytes(cid_key);
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset));
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let socket = std::net::UdpSocket::bind(quic)
        .map_err(|source| ServeError::Bind { addr: quic, source })?;
    let endpoint = quinn::Endpoint::new(
        endpoint_config,
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
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

    let outbox_wake = Arc::new(tokio::sync::Notify::new());
    let site = Arc::new(crate::site::HubSite {
        outbox_wake: outbox_wake.clone(),
    });
    let app_state = AppState::new(store, site).await?;
    let sender_task = tokio::spawn(crate::notify::run(
        app_state.store.clone(),
        Arc::new(crate::notify::LogSender),
        outbox_wake,
        shutdown.clone(),
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
    let served = tongban_web::serve_http(listener, router, shutdown.clone().cancelled_owned())
        .await
        .map_err(ServeError::Serve);
    // However the server ended, the other tasks stop too: the sync endpoint's accept loop ends when
    // the endpoint closes, the sender at its next wait.
    shutdown.cancel();
    endpoint.close(0u32.into(), b"hub shutting down");
    for (name, task) in [("sync", sync_task), ("outbox", sender_task)] {
        if let Err(e) = task.await {
            tracing::error!(task = name, error = %e, "hub task failed");
        }
    }
    endpoint.wait_idle().await;
    served?;
    let st = app_state.clone();
    tongban_web::blocking(move || Ok(st.store.flush()?)).await?;
    tracing::info!("hub stopped");
    Ok(())
}
