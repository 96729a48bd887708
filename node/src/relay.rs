//! A township node as the upstream of its villages: the QUIC sync endpoint (`serve --quic`) that
//! accepts only villages whose county certificate names this township as their parent. Their cases
//! land in the township's store and go on to the county with the township's own sync.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tongban_runtime::bundle::NodeTls;
use tongban_runtime::metrics::{Metered, Metrics};
use tongban_runtime::store::{NodeIdentity, Store};
use tongban_runtime::tls::{self, PeerIdentity};
use tongban_runtime::transport::{self, Connections, Gate, SyncReport};
use tongban_shared::sync::frame::LinkReport;
use tongban_shared::Tier;

use crate::links::Links;

/// Admits the township's own villages, nothing else, and keeps their link statistics.
pub struct TownshipGate {
    pub code: String,
    pub links: Links,
    /// Holds the county's record of the township's villages (`Store::downstream`).
    pub store: Store,
}

impl Gate for TownshipGate {
    /// A village the county revoked, or one presenting another certificate than the county issued
    /// it last (a replaced PC's old one), is refused as the county would refuse it. A village the
    /// list does not name yet (enrolled since the township last reached the county) is admitted on
    /// its county certificate: the county checks its changes again when they go up.
    fn admit(&self, peer: &PeerIdentity) -> Result<(), String> {
        if peer.tier != Tier::Village
            || peer.parent.as_deref() != Some(self.code.as_str())
            || !peer.code.starts_with(&self.code)
        {
            return Err(format!(
                "node {} is not a village of township {}",
                peer.code, self.code
            ));
        }
        let known = self
            .store
            .downstream()
            .map_err(|e| format!("township storage error: {e}"))?;
        match known.iter().find(|n| n.code == peer.code) {
            Some(n) if n.revoked => {
                Err(format!("node {} has been revoked by the county", peer.code))
            }
            Some(n) if n.serial != peer.serial => Err(format!(
                "certificate {} is not the one the county issued to node {}",
                peer.serial, peer.code
            )),
            _ => Ok(()),
        }
    }

    fn record(&self, peer: &PeerIdentity, outcome: &Result<SyncReport, String>) {
        {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            let link = links
                .entry(peer.code.clone())
                .or_insert_with(|| LinkReport {
                    code: peer.code.clone(),
                    last_seen: String::new(),
                    sessions: 0,
                    failed_sessions: 0,
                    refusals: 0,
                    pending: 0,
                });
            link.last_seen = tongban_runtime::clock::beijing_now().to_rfc3339();
            link.sessions = link.sessions.saturating_add(1);
            match outcome {
                Ok(r) => {
                    link.refusals = link.refusals.saturating_add(r.refused.len() as u32);
                    link.pending = r.peer_pending.unwrap_or(0);
                }
                Err(_) => link.failed_sessions = link.failed_sessions.saturating_add(1),
            }
        }
        match outcome {
            Ok(r) => {
                for refusal in &r.refused {
                    tracing::warn!(village = %peer.code, subject = %refusal.subject, reason = %refusal.reason, "refused from village");
                }
                tracing::info!(village = %peer.code, received = r.cases_received, "village synced");
            }
            Err(e) => tracing::info!(village = %peer.code, error = %e, "village session failed"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("only a township node relays for villages; this node is a {0:?}")]
    NotTownship(Tier),
    #[error("this node is not enrolled ({0})")]
    NotEnrolled(String),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running relay: its endpoint and the task accepting on it.
pub struct Relay {
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
    pub addr: SocketAddr,
}

impl Relay {
    /// Closes the endpoint (open sessions end) and waits for the accepting task to finish.
    pub async fn stop(self) {
        self.endpoint.close(0u32.into(), b"township shutting down");
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "relay task failed");
        }
        self.endpoint.wait_idle().await;
    }
}

/// Starts the relay endpoint on `addr` for the township `identity`.
pub fn start(
    identity: &NodeIdentity,
    store: &Store,
    data: &Path,
    addr: SocketAddr,
    links: Links,
    metrics: Arc<Metrics>,
) -> Result<Relay, RelayError> {
    if identity.tier != Tier::Township {
        return Err(RelayError::NotTownship(identity.tier));
    }
    let files = NodeTls::load(data).map_err(|e| RelayError::NotEnrolled(e.to_string()))?;
    let config = tls::server_config(&files.ca_pem, &files.own)?;
    let endpoint = tongban_runtime::udp::server_endpoint(config, addr)
        .map_err(|source| RelayError::Bind { addr, source })?;
    let local = endpoint
        .local_addr()
        .map_err(|source| RelayError::Bind { addr, source })?;
    let task = tokio::spawn(transport::serve(
        endpoint.clone(),
        store.clone(),
        Arc::new(Metered {
            gate: TownshipGate {
                code: identity.code.clone(),
                links,
                store: store.clone(),
            },
            metrics,
        }),
        Connections::default(),
    ));
    Ok(Relay {
        endpoint,
        task,
        addr: local,
    })
}
