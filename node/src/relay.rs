//! A township node as the upstream of its villages: the QUIC sync endpoint (`serve --quic`) that
//! accepts only villages whose county certificate names this township as their parent. Their cases
//! land in the township's store and go on to the county with the township's own sync.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tongban_runtime::store::Store;
use tongban_runtime::tls::{self, CertKey, PeerIdentity};
use tongban_runtime::transport::{self, Connections, Gate, SyncReport};
use tongban_shared::sync::frame::LinkReport;
use tongban_shared::Tier;

/// What the township knows of each village's link, by village code (reported to the county).
pub type Links = Arc<Mutex<BTreeMap<String, LinkReport>>>;

/// Admits the township's own villages, nothing else, and keeps their link statistics.
pub struct TownshipGate {
    pub code: String,
    pub links: Links,
}

impl Gate for TownshipGate {
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
        Ok(())
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
    #[error("this node is not enrolled (no TLS files in {0})")]
    NotEnrolled(String),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Starts the relay endpoint; returns it (to close at shutdown) and the address it listens on.
pub fn start(
    store: &Store,
    data: &Path,
    addr: SocketAddr,
    links: Links,
) -> Result<(quinn::Endpoint, SocketAddr), RelayError> {
    let identity = store
        .identity()
        .map_err(|_| RelayError::NotEnrolled(data.display().to_string()))?;
    if identity.tier != Tier::Township {
        return Err(RelayError::NotTownship(identity.tier));
    }
    let dir = crate::sync::tls_dir(data);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|_| RelayError::NotEnrolled(dir.display().to_string()))
    };
    let own = CertKey {
        cert_pem: read("node.pem")?,
        key_pem: read("node.key")?,
    };
    let config = tls::server_config(&read("ca.pem")?, &own)?;
    let endpoint = quinn::Endpoint::server(config, addr)
        .map_err(|source| RelayError::Bind { addr, source })?;
    let local = endpoint
        .local_addr()
        .map_err(|source| RelayError::Bind { addr, source })?;
    tokio::spawn(transport::serve(
        endpoint.clone(),
        store.clone(),
        Arc::new(TownshipGate {
            code: identity.code,
            links,
        }),
        Connections::default(),
    ));
    Ok((endpoint, local))
}
