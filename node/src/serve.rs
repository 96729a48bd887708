//! `tongban-node serve`: the case web app on `--http`, the uplink's sync loop for an enrolled node, the
//! relay for a township's villages, until `shutdown` is cancelled. Every task started here is owned,
//! told to stop, and awaited.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tongban_runtime::store::{Store, StoreError};
use tongban_web::{blocking, AppError, AppState, SharedState};

use crate::links::Links;
use crate::site::NodeSite;
use crate::uplink::{SyncHandle, SyncTiming, UplinkState};

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
}

impl From<AppError> for ServeError {
    fn from(e: AppError) -> Self {
        ServeError::Start(format!("{e:?}"))
    }
}

/// What to run besides the web app.
pub struct ServeOptions<'a> {
    pub data: &'a Path,
    pub http: SocketAddr,
    pub sync: SyncTiming,
    /// A township's sync endpoint for its villages.
    pub relay: Option<SocketAddr>,
}

/// Binds the listener and serves until `shutdown` is cancelled; prints the URL on stdout once
/// listening (scripts and tests read that line to learn the port when `--http` names port 0).
pub async fn serve(
    store: Store,
    opts: ServeOptions<'_>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let s = store.clone();
    let identity = blocking(move || Ok(s.identity()?)).await?;
    let links = Links::default();
    let relay = match opts.relay {
        Some(quic) => {
            let relay = crate::relay::start(&identity, &store, opts.data, quic, links.clone())
                .map_err(|e| ServeError::Start(e.to_string()))?;
            println!("tongban-node relay quic {}", relay.addr);
            Some(relay)
        }
        None => None,
    };
    let uplink = SyncHandle::for_store(&store, &identity, opts.data, opts.sync, links)
        .map_err(|e| ServeError::Start(e.to_string()))?;
    let site = Arc::new(NodeSite {
        code: identity.code.clone(),
        uplink: uplink.clone(),
    });
    let state = AppState::new(store, site).await?;
    let mut tasks = Vec::new();
    if let Some(uplink) = &uplink {
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
    println!("tongban-node serving http://{local}/");
    let router = tongban_web::router(
        state.clone(),
        crate::uplink::routes(UplinkState {
            app: state.clone(),
            uplink,
        }),
    );
    let served = tongban_web::serve_http(listener, router, shutdown.clone().cancelled_owned())
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
