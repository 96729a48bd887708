//! A node's one long-lived connection to its upstream (issue 13). Every session is a new stream on
//! it; the upstream's notices on it (see `push`) wake the node's sync loop; a lost connection is
//! opened again by the next session, resuming the TLS session from the ticket the upstream gave, so
//! a reconnect does not send both certificate chains again.
//!
//! Liveness: keep-alives come every 20 s (what an idle village can afford), so a killed upstream
//! would be noticed only at the idle timeout. While someone is looking at the station's pages the
//! node checks more often (`check_liveness`): after a short silence it sends a one-byte probe
//! datagram, which the upstream echoes (`push`), and a connection that stays silent past a few
//! seconds is given up, so the badge says 离线 within 5 s. Nobody looking, no probes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, Endpoint};
use tokio::sync::Notify;

use crate::replica::SledReplica;
use crate::store::Store;
use crate::transport::{connect, run_client, SyncReport, TransportError, Upstream};
use tongban_shared::sync::frame::LinkReport;

/// UDP bytes of a connection: everything QUIC sent and received, and what it had to send again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Wire {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
}

impl Wire {
    pub(crate) fn of(conn: &Connection) -> Wire {
        let stats = conn.stats();
        Wire {
            sent: stats.udp_tx.bytes,
            received: stats.udp_rx.bytes,
            lost: stats.path.lost_bytes,
        }
    }

    /// What the connection moved since `before` was read: one session's share of it.
    pub(crate) fn since(self, before: Wire) -> Wire {
        Wire {
            sent: self.sent.saturating_sub(before.sent),
            received: self.received.saturating_sub(before.received),
            lost: self.lost.saturating_sub(before.lost),
        }
    }

    /// `report` with these as its wire figures.
    pub(crate) fn into_report(self, mut report: SyncReport) -> SyncReport {
        report.wire_bytes_sent = self.sent;
        report.wire_bytes_received = self.received;
        report.lost_bytes = self.lost;
        report
    }
}

/// A server's connection's UDP bytes handed out session by session: each session's share is
/// everything since the one before it ended (the first one's includes the handshake, as on the
/// client). Measured from the start of a session instead, its first packets — the request that
/// opened the stream, often the biggest — would already be counted before it; the price is that
/// keep-alives and notices between sessions go with the next one.
pub(crate) struct WireShares {
    conn: Connection,
    mark: Wire,
}

impl WireShares {
    pub(crate) fn new(conn: &Connection) -> WireShares {
        WireShares {
            conn: conn.clone(),
            mark: Wire::default(),
        }
    }

    /// The bytes since the last call (or since the connection opened).
    pub(crate) fn take(&mut self) -> Wire {
        let now = Wire::of(&self.conn);
        let share = now.since(self.mark);
        self.mark = now;
        share
    }
}

/// Silence after which a probe goes out (and again after each such interval of silence).
const PROBE_AFTER: Duration = Duration::from_millis(1500);
/// Silence after which the connection is given up, plus two round trips: on a 2G-class link (1 s
/// RTT, 20 % loss) that leaves five probes to get one echo back.
const GIVE_UP_AFTER: Duration = Duration::from_millis(3500);
/// The probe's one byte (any short datagram is echoed).
const PROBE: &[u8] = b"?";

/// What `check_liveness` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// No connection is open.
    Down,
    /// The upstream was heard from recently enough.
    Up,
    /// The upstream was silent too long: the connection was closed now.
    GaveUp,
}

/// When the upstream was last heard from on the open connection.
struct Heard {
    /// UDP datagrams received on it when last checked.
    datagrams: u64,
    at: Instant,
    probed: Option<Instant>,
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
    /// The last connection opened, for what must not wait for a session in progress (whether it
    /// is up, its wire bytes, liveness checks).
    current: std::sync::Mutex<Option<(Connection, Heard)>>,
}

impl Link {
    pub fn new(endpoint: Endpoint) -> Link {
        Link {
            endpoint,
            live: tokio::sync::Mutex::new(None),
            notices: Arc::new(Notify::new()),
            lost: Arc::new(Notify::new()),
            opened: Default::default(),
            current: std::sync::Mutex::new(None),
        }
    }

    /// For a liveness check every few hundred milliseconds while someone is looking: probes the
    /// upstream after `PROBE_AFTER` of silence and gives the connection up after `GIVE_UP_AFTER`
    /// (plus two round trips), which ends it at once for every waiter (`connection_lost`).
    pub fn check_liveness(&self) -> Liveness {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let Some((conn, heard)) = current.as_mut() else {
            return Liveness::Down;
        };
        if conn.close_reason().is_some() {
            return Liveness::Down;
        }
        let now = Instant::now();
        let datagrams = conn.stats().udp_rx.datagrams;
        if datagrams != heard.datagrams {
            heard.datagrams = datagrams;
            heard.at = now;
        }
        let silent = now - heard.at;
        if silent >= GIVE_UP_AFTER + 2 * conn.rtt() {
            tracing::info!(
                silent_ms = silent.as_millis() as u64,
                "upstream silent; connection given up"
            );
            conn.close(0u32.into(), b"upstream unresponsive");
            return Liveness::GaveUp;
        }
        if silent >= PROBE_AFTER && heard.probed.is_none_or(|p| now - p >= PROBE_AFTER) {
            heard.probed = Some(now);
            // Unreliable by design: a lost probe or echo is followed by the next one.
            let _ = conn.send_datagram(bytes::Bytes::from_static(PROBE));
        }
        Liveness::Up
    }

    /// Whether a connection to the upstream is open now.
    pub fn up(&self) -> bool {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .is_some_and(|(conn, _)| conn.close_reason().is_none())
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
                    return Ok(after.since(before).into_report(report));
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
        let heard = Heard {
            datagrams: conn.stats().udp_rx.datagrams,
            at: Instant::now(),
            probed: None,
        };
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((conn.clone(), heard));
        // Echoes of probes: only their arrival counts (in the connection's statistics).
        let echoes = conn.clone();
        tokio::spawn(async move { while echoes.read_datagram().await.is_ok() {} });
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
            lost.notify_one();
        });
        Ok(Live {
            conn,
            addr: upstream.addr,
            server_name: upstream.server_name.clone(),
        })
    }

    /// [`Link::wire`] without waiting for a session in progress (for status pages).
    pub fn current_wire(&self) -> Option<Wire> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .filter(|(conn, _)| conn.close_reason().is_none())
            .map(|(conn, _)| Wire::of(conn))
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
