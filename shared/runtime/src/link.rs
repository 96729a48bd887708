//! A node's one long-lived connection to its upstream (issue 13). Every session is a new stream on
//! it; the upstream's notices on it (see `push`) wake the node's sync loop; a lost connection is
//! opened again by the next session, resuming the TLS session from the ticket the upstream gave, so
//! a reconnect does not send both certificate chains again.

use std::sync::Arc;

use quinn::{Connection, Endpoint};
use tokio::sync::Notify;

use crate::replica::SledReplica;
use crate::store::Store;
use crate::transport::{connect, run_client, SyncReport, TransportError, Upstream};
use tongban_shared::sync::frame::LinkReport;

/// UDP bytes of a connection: everything QUIC sent and received, and what it had to send again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wire {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
}

impl Wire {
    fn of(conn: &Connection) -> Wire {
        let stats = conn.stats();
        Wire {
            sent: stats.udp_tx.bytes,
            received: stats.udp_rx.bytes,
            lost: stats.path.lost_bytes,
        }
    }
}

/// The connection and what it is to.
struct Live {
    conn: Connection,
    addr: std::net::SocketAddr,
    server_name: String,
}

/// The link to the upstream: its connection while one is open, and what it tells.
pub struct Link {
    endpoint: Endpoint,
    live: tokio::sync::Mutex<Option<Live>>,
    /// Woken by each notice from the upstream.
    notices: Arc<Notify>,
    /// Woken when the connection ends (the badge then says so at once).
    lost: Arc<Notify>,
    /// Connections opened since start (`GET /api/sync`'s `totals.connections`).
    opened: std::sync::atomic::AtomicU64,
    /// Whether a connection is open now (set at open, cleared the moment it ends).
    up: Arc<std::sync::atomic::AtomicBool>,
}

impl Link {
    pub fn new(endpoint: Endpoint) -> Link {
        Link {
            endpoint,
            live: tokio::sync::Mutex::new(None),
            notices: Arc::new(Notify::new()),
            lost: Arc::new(Notify::new()),
            opened: Default::default(),
            up: Default::default(),
        }
    }

    /// Whether a connection to the upstream is open now.
    pub fn up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Connections opened since start.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves at the upstream's next notice (at once if one came since the last call).
    pub async fn notice(&self) {
        self.notices.notified().await
    }

    /// Resolves when the open connection ends (at once if one ended since the last call).
    pub async fn connection_lost(&self) {
        self.lost.notified().await
    }

    /// One session of `scopes` with `upstream` on the open connection, opening one if there is none
    /// (or it is to another address). A session that finds the connection gone before it got
    /// anywhere (a restarted upstream, a NAT that forgot the mapping) opens a new one and runs once
    /// more. Wire bytes are this session's share of the connection's traffic.
    pub async fn session(
        &self,
        upstream: &Upstream,
        store: &Store,
        scopes: Vec<String>,
        pending: u32,
        links: Vec<LinkReport>,
    ) -> Result<SyncReport, TransportError> {
        let started = std::time::Instant::now();
        let mut live = self.live.lock().await;
        let mut reused = false;
        for attempt in 0..2 {
            let usable = live.as_ref().is_some_and(|l| {
                l.conn.close_reason().is_none()
                    && l.addr == upstream.addr
                    && l.server_name == upstream.server_name
            });
            if usable {
                reused = attempt == 0;
            } else {
                if let Some(old) = live.take() {
                    old.conn.close(0u32.into(), b"replaced");
                }
                *live = Some(self.open(upstream).await?);
            }
            let conn = live
                .as_ref()
                .map(|l| l.conn.clone())
                .ok_or_else(|| TransportError::Connection("no connection".into()))?;
            // A session that opened the connection pays for its handshake too.
            let before = match usable {
                true => Wire::of(&conn),
                false => Wire::default(),
            };
            let mut replica = SledReplica::client(store);
            let result =
                run_client(&conn, &mut replica, scopes.clone(), pending, links.clone()).await;
            let after = Wire::of(&conn);
            match result {
                Ok(mut report) => {
                    report.duration_ms = started.elapsed().as_millis() as u64;
                    report.wire_bytes_sent = after.sent.saturating_sub(before.sent);
                    report.wire_bytes_received = after.received.saturating_sub(before.received);
                    report.lost_bytes = after.lost.saturating_sub(before.lost);
                    return Ok(report);
                }
                // The reused connection was dead already: once more on a fresh one.
                Err(TransportError::Connection(_)) if reused && conn.close_reason().is_some() => {
                    tracing::info!("upstream connection had gone; reconnecting");
                    continue;
                }
                Err(e) => {
                    if conn.close_reason().is_some() {
                        *live = None;
                    }
                    return Err(e);
                }
            }
        }
        Err(TransportError::Connection(
            "the upstream closed two connections in a row".into(),
        ))
    }

    /// Opens a connection and starts reading its notices.
    async fn open(&self, upstream: &Upstream) -> Result<Live, TransportError> {
        let conn = connect(&self.endpoint, upstream).await?;
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (notices, lost, watched) = (self.notices.clone(), self.lost.clone(), conn.clone());
        let up = self.up.clone();
        up.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            // The upstream's one notice stream; each byte read is a reason to sync.
            if let Ok(mut recv) = watched.accept_uni().await {
                let mut buf = [0u8; 64];
                while let Ok(Some(n)) = recv.read(&mut buf).await {
                    if n > 0 {
                        notices.notify_one();
                    }
                }
            }
            watched.closed().await;
            up.store(false, std::sync::atomic::Ordering::SeqCst);
            lost.notify_one();
        });
        Ok(Live {
            conn,
            addr: upstream.addr,
            server_name: upstream.server_name.clone(),
        })
    }

    /// What the open connection has put on and taken off the UDP socket so far (keep-alives
    /// included), if one is open.
    pub async fn wire(&self) -> Option<Wire> {
        self.live.lock().await.as_ref().map(|l| Wire::of(&l.conn))
    }

    /// Drops the connection as a link outage would (the next session opens a new one, resuming the
    /// TLS session); for the reconnect benchmark.
    pub async fn disconnect(&self) {
        if let Some(live) = self.live.lock().await.take() {
            live.conn.close(0u32.into(), b"reconnecting");
        }
    }

    /// Closes the connection (the node is stopping).
    pub async fn close(&self) {
        if let Some(live) = self.live.lock().await.take() {
            live.conn.close(0u32.into(), b"shutdown");
        }
        self.endpoint.close(0u32.into(), b"shutdown");
    }
}
