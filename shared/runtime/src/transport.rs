//! The QUIC driver of the sync protocol: moves frames between a [`ClientSession`] and a
//! [`ServerSession`] over one bidirectional stream per session, and counts what it moved. A node
//! keeps its connection open between sessions (`link`); the server pushes notices on it (`push`).
//!
//! The sessions are the pure state machines of `tongban_shared::sync`; this module adds sockets, time
//! limits and the peer's identity (from its verified certificate, never from its messages). Store work
//! runs in `block_in_place`, so a multi-threaded tokio runtime is required.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::{Connection, Endpoint, RecvStream, SendStream};
use serde::Serialize;
use tongban_shared::sync::frame::{encode, FrameDecoder, FrameError, LinkReport, Msg, Refusal};
use tongban_shared::sync::{ClientSession, Replica, ServerSession, SessionError};

use crate::replica::SledReplica;
use crate::store::Store;
use crate::tls::{identity_of, PeerIdentity};

/// A peer that sends nothing for this long mid-session is cut off (slow links still send within it).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server grants its peers, so that one enrolled but misbehaving node cannot starve the others.
/// Memory is bounded by `max_connections` × (QUIC receive window + one frame of at most
/// [`tongban_shared::sync::frame::MAX_FRAME`]), and per peer by `max_connections_per_peer` × the same.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// A peer that sends nothing for this long mid-session is cut off (slowloris).
    pub message_timeout: Duration,
    /// Connections held at once; more are closed with "server busy" and the node retries later. Every
    /// node holds one all day: 4 096 by default (1 000 idle cost ~21 MB, `fanin --hold-secs`).
    pub max_connections: usize,
    /// TLS handshakes in progress at once; more are refused before any work is done for them.
    pub max_handshakes: usize,
    /// Open connections of one node (a node needs one; a reconnect briefly makes two).
    pub max_connections_per_peer: usize,
    /// Sessions one node may start in a burst, refilled at `sessions_per_minute`.
    pub session_burst: u32,
    pub sessions_per_minute: u32,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            message_timeout: MESSAGE_TIMEOUT,
            max_connections: 4096,
            max_handshakes: 128,
            max_connections_per_peer: 4,
            session_burst: 30,
            sessions_per_minute: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("connection lost: {0}")]
    Connection(String),
    #[error("peer sent nothing for {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("refused by upstream: {0}")]
    Refused(String),
}

/// What one session did (`GET /api/sync`'s `last_session`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SyncReport {
    pub round_trips: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub cases_sent: u32,
    pub cases_received: u32,
    pub duration_ms: u64,
    /// UDP bytes this session put on the link and took from it (QUIC and TLS included, handshake
    /// and retransmissions too), and the bytes QUIC judged lost and sent again.
    #[serde(default)]
    pub wire_bytes_sent: u64,
    #[serde(default)]
    pub wire_bytes_received: u64,
    #[serde(default)]
    pub lost_bytes: u64,
    pub refused: Vec<Refusal>,
    /// Server side: what the client reported as not yet gone up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_pending: Option<u32>,
    /// Client side: a newer catalogue version received in this session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_received: Option<u32>,
    /// Server side: the client's report of its own downstream links.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub peer_links: Vec<LinkReport>,
    /// The other side's clock minus ours, as exchanged in `Hello` (see `SessionStats`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}

async fn read_msg(
    recv: &mut RecvStream,
    dec: &mut FrameDecoder,
    counter: &mut u64,
    timeout: Duration,
) -> Result<Option<Msg>, TransportError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(m) = dec.next_msg()? {
            return Ok(Some(m));
        }
        let read =
            match tokio::time::timeout(timeout, recv.read(&mut buf))
                .await
                .map_err(|_| TransportError::Timeout(timeout))?
            {
                Ok(r) => r,
                // The peer closed the connection normally (code 0) between two messages: end of session.
                Err(quinn::ReadError::ConnectionLost(
                    quinn::ConnectionError::ApplicationClosed(c),
                )) if c.error_code == 0u32.into() && dec.pending() == 0 => None,
                Err(e) => return Err(TransportError::Connection(e.to_string())),
            };
        match read {
            Some(n) => {
                *counter += n as u64;
                dec.push(&buf[..n]);
            }
            None if dec.pending() == 0 => return Ok(None),
            None => {
                return Err(TransportError::Connection(
                    "stream ended inside a frame".into(),
                ))
            }
        }
    }
}

async fn write_msg(
    send: &mut SendStream,
    msg: &Msg,
    counter: &mut u64,
) -> Result<(), TransportError> {
    let frame = encode(msg)?;
    *counter += frame.len() as u64;
    send.write_all(&frame)
        .await
        .map_err(|e| TransportError::Connection(e.to_string()))
}

/// Where and how a node reaches its upstream.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub server_name: String,
    pub config: quinn::ClientConfig,
}

/// Runs one complete sync session with the upstream. Every case received is merged and durable before
/// the next request goes out; the upstream does the same before it answers.
pub async fn sync_once(
    endpoint: &Endpoint,
    upstream: &Upstream,
    store: &Store,
    scopes: Vec<String>,
    pending: u32,
    links: Vec<LinkReport>,
) -> Result<SyncReport, TransportError> {
    let mut replica = SledReplica::client(store);
    sync_replica(endpoint, upstream, &mut replica, scopes, pending, links).await
}

/// [`sync_once`] over any replica (the fan-in bench drives hundreds of in-memory nodes with it).
pub async fn sync_replica<R: Replica>(
    endpoint: &Endpoint,
    upstream: &Upstream,
    replica: &mut R,
    scopes: Vec<String>,
    pending: u32,
    links: Vec<LinkReport>,
) -> Result<SyncReport, TransportError> {
    let started = Instant::now();
    let conn = connect(endpoint, upstream).await?;
    let result = run_client(&conn, replica, scopes, pending, links).await;
    conn.close(0u32.into(), b"done");
    let mut report = result?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(crate::link::Wire::of(&conn).into_report(report))
}

/// Opens a connection to the upstream (full handshake, or a resumed one when the endpoint holds a
/// ticket from an earlier connection to it).
pub(crate) async fn connect(
    endpoint: &Endpoint,
    upstream: &Upstream,
) -> Result<Connection, TransportError> {
    let connect_err = |reason: String| TransportError::Connect {
        addr: upstream.addr,
        reason,
    };
    let connecting = endpoint
        .connect_with(
            upstream.config.clone(),
            upstream.addr,
            &upstream.server_name,
        )
        .map_err(|e| connect_err(e.to_string()))?;
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| connect_err("no answer".into()))?
        .map_err(|e| match e {
            quinn::ConnectionError::ApplicationClosed(c) => {
                TransportError::Refused(String::from_utf8_lossy(&c.reason).into_owned())
            }
            other => connect_err(other.to_string()),
        })
}

/// One session on an open connection: a new stream.
pub(crate) async fn run_client<R: Replica>(
    conn: &Connection,
    replica: &mut R,
    scopes: Vec<String>,
    pending: u32,
    links: Vec<LinkReport>,
) -> Result<SyncReport, TransportError> {
    let result = run_stream(conn, replica, scopes, pending, links).await;
    // A server that refuses the peer closes the connection with its reason: report that, not the
    // broken stream it caused.
    result.map_err(|e| match (e, conn.close_reason()) {
        (TransportError::Connection(_), Some(quinn::ConnectionError::ApplicationClosed(c))) => {
            TransportError::Refused(String::from_utf8_lossy(&c.reason).into_owned())
        }
        // The server's own words ending a session (admission, limits) are its refusal.
        (TransportError::Session(SessionError::Peer(reason)), _) => TransportError::Refused(reason),
        (e, _) => e,
    })
}

async fn run_stream<R: Replica>(
    conn: &Connection,
    replica: &mut R,
    scopes: Vec<String>,
    pending: u32,
    links: Vec<LinkReport>,
) -> Result<SyncReport, TransportError> {
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| TransportError::Connection(e.to_string()))?;
    let mut report = SyncReport::default();
    let mut session = ClientSession::new(scopes)
        .with_pending(pending)
        .with_links(links)
        .with_clock(crate::clock::now_ms());
    let mut dec = FrameDecoder::default();
    let mut request = tokio::task::block_in_place(|| session.start(replica))?;
    loop {
        write_msg(&mut send, &request, &mut report.bytes_sent).await?;
        let Some(response) = read_msg(
            &mut recv,
            &mut dec,
            &mut report.bytes_received,
            MESSAGE_TIMEOUT,
        )
        .await?
        else {
            return Err(TransportError::Connection(
                "upstream closed the stream".into(),
            ));
        };
        match tokio::task::block_in_place(|| session.handle(replica, response))? {
            Some(next) => request = next,
            None => break,
        }
    }
    let _ = send.finish();
    if let Some(version) = session.outgoing_version() {
        // Everything written before the session started is reconciled with the upstream now.
        tokio::task::block_in_place(|| replica.clear_outgoing(version))
            .map_err(|e| TransportError::Session(SessionError::Storage(e.to_string())))?;
    }
    let stats = session.stats();
    report.round_trips = stats.round_trips;
    report.cases_sent = stats.cases_sent;
    report.cases_received = stats.cases_received;
    report.refused = stats.refused.clone();
    report.catalog_received = stats.catalog_received;
    report.clock_skew_ms = stats.clock_skew_ms;
    Ok(report)
}

/// What a server decides about peers, and what it learns from their sessions.
pub trait Gate: Send + Sync + 'static {
    /// Whether this (CA-verified) peer may sync now; `Err` carries the reason it is told.
    fn admit(&self, peer: &PeerIdentity) -> Result<(), String>;
    /// Called after each session, finished or not.
    fn record(&self, peer: &PeerIdentity, outcome: &Result<SyncReport, String>);
}

/// Open connections by peer code, so that a revocation can close them at once, and each peer's
/// session allowance.
#[derive(Default, Clone)]
pub struct Connections {
    by_code: Arc<Mutex<HashMap<String, Vec<Connection>>>>,
    buckets: Arc<Mutex<HashMap<String, SessionBucket>>>,
}

/// A token bucket of sessions per peer.
struct SessionBucket {
    tokens: f64,
    refilled: Instant,
}

impl Connections {
    /// Registers a connection unless the peer already has `max` open ones.
    fn try_add(&self, code: &str, conn: Connection, max: usize) -> bool {
        let mut map = self.by_code.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(code.to_string()).or_default();
        list.retain(|c| c.close_reason().is_none());
        if list.len() >= max {
            return false;
        }
        list.push(conn);
        true
    }

    /// Takes one session from the peer's allowance; `false` when it is used up.
    fn take_session(&self, code: &str, limits: &ServerLimits) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let burst = f64::from(limits.session_burst.max(1));
        let bucket = buckets.entry(code.to_string()).or_insert(SessionBucket {
            tokens: burst,
            refilled: now,
        });
        let per_second = f64::from(limits.sessions_per_minute) / 60.0;
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.refilled).as_secs_f64() * per_second)
            .min(burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Closes every open connection of `code`, telling the peer why.
    pub fn close_peer(&self, code: &str, reason: &str) {
        let list = self
            .by_code
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(code)
            .unwrap_or_default();
        for c in list {
            c.close(1u32.into(), reason.as_bytes());
        }
    }
}

/// Accepts sync connections until the endpoint is closed, with the default [`ServerLimits`].
pub async fn serve(
    endpoint: Endpoint,
    store: Store,
    gate: Arc<dyn Gate>,
    connections: Connections,
) {
    serve_with_limits(endpoint, store, gate, connections, ServerLimits::default()).await
}

/// Accepts sync connections until the endpoint is closed.
pub async fn serve_with_limits(
    endpoint: Endpoint,
    store: Store,
    gate: Arc<dyn Gate>,
    connections: Connections,
    limits: ServerLimits,
) {
    let limits = Arc::new(limits);
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let handshakes = Arc::new(tokio::sync::Semaphore::new(limits.max_handshakes));
    // Store work of all sessions together runs at most this wide: the work is CPU and disk bound, and
    // `block_in_place` would otherwise give every session its own thread. Hundreds of villages
    // reconnecting at once then all crawl and all hold their documents in memory; with the limit
    // they are served in turn (the semaphore is fair) and memory stays bounded.
    let work = Arc::new(tokio::sync::Semaphore::new(
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ));
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        let Ok(handshake) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "sync connection refused: too many handshakes in progress");
            incoming.refuse();
            continue;
        };
        let (store, gate, connections) = (store.clone(), gate.clone(), connections.clone());
        let (work, open, limits) = (work.clone(), open.clone(), limits.clone());
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::info!(%remote, error = %e, "sync handshake failed");
                    return;
                }
            };
            drop(handshake);
            let Ok(_open) = open.try_acquire_owned() else {
                tracing::warn!(%remote, "sync connection closed: server busy");
                conn.close(2u32.into(), b"server busy: too many connections, try later");
                return;
            };
            handle_connection(conn, store, gate, connections, work, &limits).await
        });
    }
}

fn peer_of(conn: &Connection) -> Result<PeerIdentity, String> {
    let certs = conn
        .peer_identity()
        .and_then(|any| {
            any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or_else(|| "no client certificate".to_string())?;
    let first = certs
        .first()
        .ok_or_else(|| "empty certificate chain".to_string())?;
    identity_of(first).map_err(|e| e.to_string())
}

async fn handle_connection(
    conn: Connection,
    store: Store,
    gate: Arc<dyn Gate>,
    connections: Connections,
    work: Arc<tokio::sync::Semaphore>,
    limits: &ServerLimits,
) {
    let remote = conn.remote_address();
    let peer = match peer_of(&conn) {
        Ok(p) => p,
        Err(reason) => {
            tracing::warn!(%remote, %reason, "sync peer refused");
            conn.close(1u32.into(), reason.as_bytes());
            return;
        }
    };
    if let Err(reason) = admit(&gate, &peer).await {
        tracing::warn!(%remote, code = %peer.code, %reason, "sync peer refused");
        conn.close(1u32.into(), reason.as_bytes());
        return;
    }
    if !connections.try_add(&peer.code, conn.clone(), limits.max_connections_per_peer) {
        let reason = format!(
            "node {} already has {} open connections",
            peer.code, limits.max_connections_per_peer
        );
        tracing::warn!(%remote, code = %peer.code, %reason, "sync connection refused");
        record(&gate, &peer, Err(reason.clone())).await;
        conn.close(2u32.into(), reason.as_bytes());
        return;
    }
    let mut wire = crate::link::WireShares::new(&conn);
    // Notices of changes in the peer's scope, on the one stream the server opens (see `push`).
    let notices = tokio::spawn(crate::push::notify_peer(
        conn.clone(),
        store.subscribe(),
        peer.code.clone(),
    ));
    while let Ok((mut send, recv)) = conn.accept_bi().await {
        if !connections.take_session(&peer.code, limits) {
            let reason = format!(
                "too many sessions from node {}: at most {} a minute",
                peer.code, limits.sessions_per_minute
            );
            tracing::warn!(%remote, code = %peer.code, %reason, "sync session refused");
            say_error(&mut send, &reason, &mut 0).await;
            record(&gate, &peer, Err(reason.clone())).await;
            drop(recv);
            // Let the reason arrive before the connection goes (closing discards unsent stream data).
            let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
            // A flooding peer loses the connection; an honest one reconnects after its backoff.
            conn.close(2u32.into(), reason.as_bytes());
            notices.abort();
            return;
        }
        // Admission holds per session, not only per connection: a certificate the county replaced
        // or a village it revoked since the connection opened is refused from its next session on.
        if let Err(reason) = admit(&gate, &peer).await {
            tracing::warn!(%remote, code = %peer.code, %reason, "sync peer refused");
            say_error(&mut send, &reason, &mut 0).await;
            drop(recv);
            let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
            conn.close(1u32.into(), reason.as_bytes());
            break;
        }
        let outcome = serve_session(send, recv, &store, &peer, &work, limits).await;
        let share = wire.take();
        let outcome = outcome
            .map(|r| share.into_report(r))
            .map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            tracing::warn!(code = %peer.code, error = %e, "sync session ended early");
        }
        record(&gate, &peer, outcome).await;
    }
    notices.abort();
}

/// [`Gate::admit`] on a blocking thread: gates read the store.
async fn admit(gate: &Arc<dyn Gate>, peer: &PeerIdentity) -> Result<(), String> {
    let (gate, peer) = (gate.clone(), peer.clone());
    tokio::task::spawn_blocking(move || gate.admit(&peer))
        .await
        .unwrap_or_else(|e| Err(format!("admission check failed: {e}")))
}

/// [`Gate::record`] on a blocking thread: gates write the store.
async fn record(gate: &Arc<dyn Gate>, peer: &PeerIdentity, outcome: Result<SyncReport, String>) {
    let (gate, peer) = (gate.clone(), peer.clone());
    if let Err(e) = tokio::task::spawn_blocking(move || gate.record(&peer, &outcome)).await {
        tracing::error!(error = %e, "recording a session failed");
    }
}

/// Last words of a failing session: the reason, then the end of the stream (best effort).
async fn say_error(send: &mut SendStream, reason: &str, counter: &mut u64) {
    let msg = Msg::Error {
        reason: reason.to_string(),
    };
    let _ = write_msg(send, &msg, counter).await;
    let _ = send.finish();
}

async fn serve_session(
    mut send: SendStream,
    mut recv: RecvStream,
    store: &Store,
    peer: &PeerIdentity,
    work: &tokio::sync::Semaphore,
    limits: &ServerLimits,
) -> Result<SyncReport, TransportError> {
    let started = Instant::now();
    let mut report = SyncReport::default();
    let mut session = ServerSession::new(&peer.code).with_clock(crate::clock::now_ms());
    let mut replica = SledReplica::serving(store, &peer.code, &peer.serial);
    let mut dec = FrameDecoder::default();
    loop {
        let request = match read_msg(
            &mut recv,
            &mut dec,
            &mut report.bytes_received,
            limits.message_timeout,
        )
        .await
        {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                // Tell the peer what was wrong with its frame before hanging up.
                say_error(&mut send, &e.to_string(), &mut report.bytes_sent).await;
                return Err(e);
            }
        };
        let handled = {
            let _turn = work
                .acquire()
                .await
                .map_err(|_| TransportError::Connection("server is shutting down".into()))?;
            tokio::task::block_in_place(|| session.handle(&mut replica, request))
        };
        match handled {
            Ok(response) => write_msg(&mut send, &response, &mut report.bytes_sent).await?,
            Err(e) => {
                say_error(&mut send, &e.to_string(), &mut report.bytes_sent).await;
                return Err(e.into());
            }
        }
    }
    let _ = send.finish();
    let stats = session.stats();
    report.round_trips = stats.round_trips;
    report.cases_received = stats.cases_received;
    report.refused = stats.refused.clone();
    report.peer_pending = Some(stats.peer_pending);
    report.peer_links = stats.peer_links.clone();
    report.clock_skew_ms = stats.clock_skew_ms;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
