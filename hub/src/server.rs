//! `tongban-hub serve`: the county-wide web app and API on `--https` (and in full on a loopback
//! `--http`; a LAN `--http` only redirects), the QUIC sync endpoint on `--quic`, until ctrl-c or
//! SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tongban_runtime::metrics::{Metered, Metrics};
use tongban_runtime::store::Store;
use tongban_runtime::tls;
use tongban_runtime::transport::{self, Connections, ServerLimits};
use tongban_web::{AppError, AppState};

use crate::certs;
use crate::error::CountyError;
use crate::gate::HubGate;
use crate::notify::{Outbox, OutboxWake};
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
    #[error("--http {0} is reachable from other PCs, where passwords and villagers' data would cross the network in clear: add --https HOST:PORT (plain HTTP then only redirects there), or bind --http to 127.0.0.1")]
    Cleartext(SocketAddr),
    #[error("{0}")]
    Option(String),
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
    pub https: Option<SocketAddr>,
    pub quic: SocketAddr,
}

/// Where the web app listens, checked before anything starts: plain HTTP beyond loopback is refused
/// unless HTTPS is there to redirect to.
pub struct WebListen {
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    /// Extra names for the county-issued certificate.
    pub names: Vec<String>,
    /// `--tls-cert/--tls-key`.
    pub operator_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// A web session unused this long ends (`--session-idle-minutes`).
    pub idle_timeout: std::time::Duration,
}

impl WebListen {
    pub fn new(
        http: SocketAddr,
        https: Option<SocketAddr>,
        names: Vec<String>,
        operator_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) -> Result<WebListen, ServeError> {
        if https.is_none() && !tongban_web::https::is_loopback(&http) {
            return Err(ServeError::Cleartext(http));
        }
        if https.is_none() && (operator_cert.is_some() || !names.is_empty()) {
            return Err(ServeError::Option(
                "--tls-cert/--tls-key and --web-name need --https".into(),
            ));
        }
        Ok(WebListen {
            http,
            https,
            names,
            operator_cert,
            idle_timeout: tongban_web::accounts::DEFAULT_IDLE_TIMEOUT,
        })
    }

    /// Loopback HTTP only (tests, and a hub reached through a local proxy).
    pub fn loopback(http: SocketAddr) -> WebListen {
        WebListen {
            http,
            https: None,
            names: Vec::new(),
            operator_cert: None,
            idle_timeout: tongban_web::accounts::DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// What the hub runs with besides its data: where it listens, and how it texts applicants.
pub struct HubOptions {
    pub web: WebListen,
    pub quic: SocketAddr,
    pub limits: ServerLimits,
    /// The outbox's sender and policy ([`Outbox::log`] unless `--sms-url`).
    pub outbox: Outbox,
}

/// [`serve_with`] with texts to applicants only logged.
pub async fn serve(
    data: &Path,
    store: Store,
    web: WebListen,
    quic: SocketAddr,
    limits: ServerLimits,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), ServeError> {
    let options = HubOptions {
        web,
        quic,
        limits,
        outbox: Outbox::log(),
    };
    serve_with(data, store, options, shutdown, on_bound).await
}

/// Serves until `shutdown` is cancelled; every task started here is told to stop and awaited.
pub async fn serve_with(
    data: &Path,
    store: Store,
    options: HubOptions,
    shutdown: CancellationToken,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), ServeError> {
    let HubOptions {
        web,
        quic,
        limits,
        outbox,
    } = options;
    // The root certificate only: the running hub never reads the county CA key.
    let own = certs::hub_cert(data)?;
    let ca_pem = certs::ca_cert(data)?;
    let config = tls::server_config(&ca_pem, &own)?;
    // Both keys survive restarts (see `certs::reset_key`): the connection ids a restarted hub sees
    // must validate as its own, and the reset tokens it derives from them must match the ones nodes
    // were given, or the nodes' packets are dropped silently and their sessions wait out the idle
    // timeout.
    let key = certs::reset_key(data)?;
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
    // `tongban-hub backup` reaches the running hub through it (sled lets one process open the store).
    tongban_runtime::control::serve(data, store.clone(), shutdown.clone())
        .await
        .map_err(|e| ServeError::Option(format!("cannot start the local control channel: {e}")))?;
    let connections = Connections::default();
    let metrics = Arc::new(Metrics::new());
    let gate = Arc::new(Metered {
        gate: HubGate {
            store: store.clone(),
        },
        metrics: metrics.clone(),
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
    let app_state = AppState::new(store, site, web.idle_timeout, metrics).await?;
    app_state.set_county_ca(ca_pem)?;
    tracing::info!(sender = outbox.sender.name(), daily_cap = ?outbox.policy.daily_cap, "texts to applicants");
    let sender_task = tokio::spawn(crate::notify::run(
        app_state.store.clone(),
        outbox,
        outbox_wake.clone(),
        shutdown.clone(),
    ));
    // The wake rides as an extension, for the handler that re-queues a message by hand.
    let router = web::app(HubState {
        app: app_state.clone(),
        connections,
        data: data.to_path_buf(),
    })
    .layer(axum::Extension(OutboxWake(outbox_wake)));
    let https = match web.https {
        Some(addr) => {
            let mut names = web.names.clone();
            if !addr.ip().is_unspecified() {
                names.push(addr.ip().to_string());
            }
            let operator = web
                .operator_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path()));
            let cert = certs::web_cert(data, &names, operator)?;
            let config = tongban_runtime::web_tls::server_config(&cert)?;
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?;
            Some(
                tongban_web::TlsListener::new(tcp, config)
                    .map_err(|source| ServeError::Bind { addr, source })?,
            )
        }
        None => None,
    };
    let https_addr = https.as_ref().map(|l| {
        use axum::serve::Listener;
        l.local_addr().unwrap_or(web.https.unwrap_or(web.http))
    });
    let http = web.http;
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .map_err(|source| ServeError::Bind { addr: http, source })?;
    let http_addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr: http, source })?;
    on_bound(&Bound {
        http: http_addr,
        https: https_addr,
        quic: quic_addr,
    });
    tracing::info!(%http_addr, ?https_addr, %quic_addr, "hub serving");
    // Plain HTTP serves the app only to this PC; from the LAN it only points to HTTPS.
    let served = tongban_web::https::serve_web(
        listener,
        https.zip(https_addr.map(|a| a.port())),
        router,
        tongban_web::public_routes(app_state.clone()),
        shutdown.clone(),
    )
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
