//! `tongban-node serve`: the case web app on `--http`, the uplink's sync loop for an enrolled node, the
//! relay for a township's villages, until `shutdown` is cancelled. Every task started here is owned,
//! told to stop, and awaited.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tongban_runtime::metrics::Metrics;
use tongban_runtime::store::{Store, StoreError};
use tongban_web::{blocking, AppError, AppState, SharedState};

use crate::links::Links;
use crate::site::NodeSite;
use crate::sync_api::UplinkState;
use crate::uplink::{SyncHandle, SyncTiming};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Start(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error("--http {0} is reachable from other PCs, where passwords and villagers' data would cross the network in clear: add --https HOST:PORT (plain HTTP then only redirects there), or keep --http on 127.0.0.1")]
    Cleartext(SocketAddr),
}

impl From<AppError> for ServeError {
    fn from(e: AppError) -> Self {
        ServeError::Start(format!("{e:?}"))
    }
}

/// The idle timeout a serve command uses unless told otherwise.
pub use tongban_web::accounts::DEFAULT_IDLE_TIMEOUT;

/// What to run besides the web app.
pub struct ServeOptions<'a> {
    pub data: &'a Path,
    pub http: SocketAddr,
    pub sync: SyncTiming,
    /// A township's sync endpoint for its villages.
    pub relay: Option<SocketAddr>,
    /// HTTPS for other PCs of the station (a township's clerks); needed for any `http` beyond
    /// loopback, which then only redirects.
    pub https: Option<SocketAddr>,
    /// `--tls-cert/--tls-key`; without them the node serves the certificate the county issued it
    /// (named `<code>.node.tongban`).
    pub tls_files: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// A web session unused this long ends (`--session-idle-minutes`).
    pub idle_timeout: std::time::Duration,
}

/// Binds the listener and serves until `shutdown` is cancelled; prints the URL on stdout once
/// listening (scripts and tests read that line to learn the port when `--http` names port 0).
pub async fn serve(
    store: Store,
    opts: ServeOptions<'_>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    if crate::restore::pending(opts.data) {
        return Err(ServeError::Start(format!(
            "the node in {} has not finished pulling its cases back from the county; run \
             `tongban-node init --bundle FILE --restore` again (it resumes) before serving",
            opts.data.display()
        )));
    }
    if opts.https.is_none() && !tongban_web::https::is_loopback(&opts.http) {
        return Err(ServeError::Cleartext(opts.http));
    }
    let s = store.clone();
    let identity = blocking(move || Ok(s.identity()?)).await?;
    let https = match opts.https {
        Some(addr) => Some(https_listener(opts.data, addr, opts.tls_files.as_ref()).await?),
        None => None,
    };
    // `tongban-node backup` reaches the running node through it (sled lets one process open the store).
    tongban_runtime::control::serve(opts.data, store.clone(), shutdown.clone())
        .await
        .map_err(|e| ServeError::Start(format!("cannot start the local control channel: {e}")))?;
    let links = Links::default();
    let metrics = Arc::new(match identity.upstream {
        Some(_) => Metrics::with_upstream(),
        None => Metrics::new(),
    });
    let relay = match opts.relay {
        Some(quic) => {
            let relay = crate::relay::start(
                &identity,
                &store,
                opts.data,
                quic,
                links.clone(),
                metrics.clone(),
            )
            .map_err(|e| ServeError::Start(e.to_string()))?;
            println!("tongban-node relay quic {}", relay.addr);
            Some(relay)
        }
        None => None,
    };
    let uplink = SyncHandle::for_store(
        &store,
        &identity,
        opts.data,
        opts.sync,
        links,
        metrics.clone(),
    )
    .map_err(|e| ServeError::Start(e.to_string()))?;
    let site = Arc::new(NodeSite {
        code: identity.code.clone(),
        uplink: uplink.clone(),
    });
    let state = AppState::new(store, site, opts.idle_timeout, metrics).await?;
    if let Ok(tls) = tongban_runtime::bundle::NodeTls::load(opts.data) {
        state.set_county_ca(tls.ca_pem)?;
    }
    let mut tasks = Vec::new();
    if let Some(uplink) = &uplink {
        if relay.is_some() {
            tasks.push(tokio::spawn(send_on_relayed(
                state.store.subscribe(),
                uplink.clone(),
                shutdown.clone(),
            )));
        }
        tasks.push(tokio::spawn(uplink.clone().run_loop(shutdown.clone())));
        tasks.push(tokio::spawn(refresh_county_data(
            state.clone(),
            uplink.clone(),
            shutdown.clone(),
        )));
    }
    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.http,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: opts.http,
        source,
    })?;
    tracing::info!(code = %state.identity.code, %local, "node serving");
    let https_addr = https.as_ref().and_then(|l| {
        use axum::serve::Listener;
        l.local_addr().ok()
    });
    match https_addr {
        Some(h) => println!("tongban-node serving http://{local}/ https https://{h}/"),
        None => println!("tongban-node serving http://{local}/"),
    }
    let router = tongban_web::router(
        state.clone(),
        crate::sync_api::routes(UplinkState {
            app: state.clone(),
            uplink,
        }),
    );
    let served = tongban_web::https::serve_web(
        listener,
        https.zip(https_addr.map(|a| a.port())),
        router,
        tongban_web::public_routes(state.clone()),
        shutdown.clone(),
    )
    .await
    .map_err(ServeError::Serve);
    // However the server ended, the other tasks stop too.
    shutdown.cancel();
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "node task failed");
        }
    }
    if let Some(relay) = relay {
        relay.stop().await;
    }
    served?;
    let s = state.clone();
    blocking(move || Ok(s.store.flush()?)).await?;
    tracing::info!("node stopped");
    Ok(())
}

/// A township sends on what its villages brought as soon as it is durable here, instead of at the
/// next poll: the county sees a village's case within seconds, not minutes.
async fn send_on_relayed(
    mut changes: tokio::sync::broadcast::Receiver<tongban_runtime::store::changes::Change>,
    uplink: Arc<SyncHandle>,
    shutdown: CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    use tongban_runtime::store::changes::Change;
    loop {
        let relayed = tokio::select! {
            _ = shutdown.cancelled() => return,
            change = changes.recv() => match change {
                Ok(Change::Case { from_peer, .. }) => from_peer.is_some(),
                Ok(Change::County) => false,
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return,
            },
        };
        if relayed {
            uplink.relayed();
        }
    }
}

/// After each session the uplink finishes, picks up a catalogue or calendar it may have brought.
async fn refresh_county_data(
    state: SharedState,
    uplink: Arc<SyncHandle>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = uplink.session_finished() => {}
        }
        let st = state.clone();
        if let Err(e) = blocking(move || Ok(st.refresh_county_data_blocking()?)).await {
            tracing::error!(error = ?e, "cannot load county data the upstream sent");
        }
    }
}

/// A token cancelled on ctrl-c or SIGTERM: what `main` passes to [`serve`].
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tongban_runtime::process::shutdown_signal().await;
        t.cancel();
    });
    token
}

/// The HTTPS listener of a node: the operator's certificate, or the node's own from enrolment.
async fn https_listener(
    data: &Path,
    addr: SocketAddr,
    files: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<tongban_web::TlsListener, ServeError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| ServeError::Start(format!("{}: {e}", p.display())))
    };
    let own = match files {
        Some((cert, key)) => tongban_runtime::tls::CertKey {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        },
        None => {
            tongban_runtime::bundle::NodeTls::load(data)
                .map_err(|e| {
                    ServeError::Start(format!(
                        "--https needs --tls-cert/--tls-key on a node that is not enrolled ({e})"
                    ))
                })?
                .own
        }
    };
    let config = tongban_runtime::web_tls::server_config(&own)
        .map_err(|e| ServeError::Start(format!("HTTPS certificate: {e}")))?;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    tongban_web::TlsListener::new(tcp, config).map_err(|source| ServeError::Bind { addr, source })
}
