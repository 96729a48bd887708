//! Syncing with the upstream (the hub, or a township node): one owner task that runs a session soon
//! after a local write, at once when the upstream's notice says something changed there, rarely as
//! a safety net while the connection is up (often while it is not), and again after failures with
//! exponential backoff and jitter; all on one long-lived connection (`tongban_runtime::link`);
//! plus the status that `GET /api/sync` and the page badge show (the routes: `sync_api`).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tongban_runtime::bundle::{NodeTls, TlsFilesError};
use tongban_runtime::link::Liveness;
use tongban_runtime::metrics::{Metrics, SessionEnd};
use tongban_runtime::store::{NodeIdentity, Store};
use tongban_runtime::tls;
use tongban_runtime::transport::{SyncReport, TransportError, Upstream};

/// A write is followed by a session after this pause, so a burst of intake goes up in one session.
const AFTER_WRITE: Duration = Duration::from_secs(1);
/// A notice from the upstream is followed by a session after this pause: a county clerk's action
/// is often several writes in a row.
const AFTER_NOTICE: Duration = Duration::from_millis(150);
/// Sessions started by notices: a burst of this many at once, then one a second. A county working
/// through many of one village's cases then never exceeds the upstream's allowance (60 sessions a
/// minute, bursts of 30), which would cost the connection; a single action still comes at once.
const NOTICE_BURST: f64 = 10.0;
/// A lost connection is opened again after this pause.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);
/// While the connection is up, changes upstream are pushed: the poll is only a safety net for a lost
/// notice. Every 10 minutes it was a third of an idle township's wire bytes (each of its sessions
/// carries its villages' link reports up and their certificate list down: `tongban-bench
/// link-township`), so half an hour.
const CONNECTED_POLL_MIN: Duration = Duration::from_secs(1800);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Someone who looked at the station's status within this long (every open page asks every 5 s)
/// is still looking: the link is then checked often enough for the badge to be true within 5 s.
const LOOKED_AT_WITHIN: Duration = Duration::from_secs(12);
const LIVENESS_TICK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    pub upstream: Option<String>,
    /// `synced`, `syncing`, `offline`, `revoked` or `failing` (see `LinkState`).
    pub state: &'static str,
    /// `up` while the connection to the upstream is open, else `down`.
    pub connection: &'static str,
    /// Since when the upstream has been out of reach (RFC 3339), while it is.
    pub offline_since: Option<String>,
    /// Sessions that failed since the last one that worked.
    pub failures_in_a_row: u32,
    /// The last failure in words for the station (Chinese).
    pub problem: Option<String>,
    /// The upstream refused this node because the county revoked it.
    pub revoked: bool,
    /// The last failures came from an upstream that answered (not from an unreachable one).
    #[serde(skip)]
    answered: bool,
    pub connected: bool,
    pub running: bool,
    pub last_success: Option<String>,
    pub last_attempt: Option<String>,
    pub last_error: Option<String>,
    pub pending_up: u64,
    pub last_session: Option<SyncReport>,
    /// Since this process started.
    pub totals: SyncTotals,
    /// UDP bytes of the open connection so far, sessions, keep-alives and probes alike.
    pub link_wire: Option<tongban_runtime::link::Wire>,
    /// This machine's clock minus the upstream's, from the last session (seconds).
    pub clock_skew_s: Option<i64>,
}

/// What all sessions since start moved (`GET /api/sync`'s `totals`; the weak-link bench reads it).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncTotals {
    pub sessions: u64,
    pub failed_sessions: u64,
    pub round_trips: u64,
    pub cases_sent: u64,
    pub cases_received: u64,
    /// Sync-protocol payload of the sessions that finished.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// UDP bytes of the sessions that finished, and what QUIC had to send again.
    pub wire_bytes_sent: u64,
    pub wire_bytes_received: u64,
    pub lost_bytes: u64,
    /// Connections to the upstream opened (sessions share one while it lasts).
    pub connections: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncSetupError {
    #[error("{0}")]
    Files(#[from] TlsFilesError),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot open a UDP socket for sync: {0}")]
    Socket(std::io::Error),
}

/// When a node syncs.
#[derive(Debug, Clone, Copy)]
pub struct SyncTiming {
    /// Between sessions when nothing triggers one sooner.
    pub period: Duration,
    /// How long the upstream (a township) may stay unreachable before sessions go to the fallback
    /// (the hub) directly.
    pub fallback_after: Duration,
}

impl Default for SyncTiming {
    fn default() -> Self {
        SyncTiming {
            period: Duration::from_secs(30),
            fallback_after: Duration::from_secs(600),
        }
    }
}

pub struct SyncHandle {
    store: Store,
    upstream_addr: String,
    server_name: String,
    /// The hub's address, for a village behind a township.
    fallback_addr: Option<String>,
    /// Since when the upstream has been unreachable.
    down_since: Mutex<Option<std::time::Instant>>,
    config: quinn::ClientConfig,
    link: tongban_runtime::link::Link,
    scopes: Vec<String>,
    status: Mutex<SyncStatus>,
    trigger: Notify,
    /// One session at a time, whether started by the loop or by `POST /api/sync/now`.
    run_lock: tokio::sync::Mutex<()>,
    /// Local writes not yet known to have gone up.
    pending: AtomicU64,
    timing: SyncTiming,
    /// A township's view of its villages' links, reported upstream in every session.
    links: crate::links::Links,
    /// Told after every successful session (the node then picks up county data it brought).
    finished: Notify,
    /// When someone last asked for the status (milliseconds since `started`).
    looked_at_ms: AtomicU64,
    started: std::time::Instant,
    /// Where sessions are counted for `GET /metrics`, labelled with the upstream's code.
    metrics: Arc<Metrics>,
    /// The codes sessions are counted under: the upstream's (a township, or the county), and the
    /// county's for sessions with the hub (a village's fallback).
    upstream_code: String,
    county_code: String,
}

impl SyncHandle {
    /// The handle of an enrolled node; `None` for a standalone one.
    pub fn for_store(
        store: &Store,
        identity: &NodeIdentity,
        data: &Path,
        timing: SyncTiming,
        links: crate::links::Links,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Arc<SyncHandle>>, SyncSetupError> {
        let Some(upstream) = identity.upstream.clone() else {
            return Ok(None);
        };
        // Division codes nest: the county's is the first six digits of every code in it.
        let county_code = identity.code.get(..6).unwrap_or(&identity.code).to_string();
        let upstream_code = match identity.upstream_name.as_deref() {
            Some(name) if name != tls::HUB_SERVER_NAME => identity.parent.clone(),
            _ => None,
        }
        .unwrap_or_else(|| county_code.clone());
        let files = NodeTls::load(data)?;
        let config = tongban_runtime::upstream_tls::node_client_config(
            &files.ca_pem,
            &files.own,
            identity.tier,
            identity.parent.as_deref(),
        )?;
        let endpoint =
            tongban_runtime::udp::client_endpoint(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
                .map_err(SyncSetupError::Socket)?;
        Ok(Some(Arc::new(SyncHandle {
            store: store.clone(),
            server_name: identity
                .upstream_name
                .clone()
                .unwrap_or_else(|| tls::HUB_SERVER_NAME.to_string()),
            scopes: vec![identity.code.clone()],
            status: Mutex::new(SyncStatus {
                upstream: Some(upstream.clone()),
                ..Default::default()
            }),
            upstream_addr: upstream,
            fallback_addr: identity.fallback.clone(),
            down_since: Mutex::new(None),
            config,
            link: tongban_runtime::link::Link::new(endpoint),
            trigger: Notify::new(),
            run_lock: tokio::sync::Mutex::new(()),
            pending: AtomicU64::new(0),
            timing,
            links,
            finished: Notify::new(),
            looked_at_ms: AtomicU64::new(0),
            started: std::time::Instant::now(),
            metrics,
            upstream_code,
            county_code,
        })))
    }

    /// Someone is looking at the station's status (a page, the badge refresh): for the next
    /// `LOOKED_AT_WITHIN` the link is checked often enough for the badge to be true within 5 s.
    /// Scripts reading `GET /api/sync` do not count: they would make an idle link pay for probes.
    pub fn looked_at(&self) {
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.looked_at_ms.store(now_ms.max(1), Ordering::Relaxed);
    }

    pub fn status(&self) -> SyncStatus {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        s.pending_up = self.pending.load(Ordering::SeqCst);
        s.totals.connections = self.link.connections_opened();
        s.link_wire = self.link.current_wire();
        let up = self.link.up();
        s.connection = if up { "up" } else { "down" };
        s.state = LinkState::of(&s, up).word();
        s
    }

    /// A case was written locally: send it up soon.
    pub fn local_write(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.trigger.notify_one();
    }

    /// A township: a village's session brought cases here; send them on soon.
    pub fn relayed(&self) {
        self.trigger.notify_one();
    }

    fn update(&self, f: impl FnOnce(&mut SyncStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Runs one session to completion.
    pub async fn run_now(&self) -> Result<SyncReport, TransportError> {
        let _one_at_a_time = self.run_lock.lock().await;
        let pending_at_start = self.pending.load(Ordering::SeqCst);
        let now = tongban_runtime::clock::beijing_now().to_rfc3339();
        self.update(|s| {
            s.running = true;
            s.last_attempt = Some(now.clone());
        });
        let result = self.session().await;
        release_freed_memory();
        let finished = tongban_runtime::clock::beijing_now().to_rfc3339();
        match &result {
            Ok(report) => {
                // Writes made during the session may not have gone up; keep counting those.
                let _ = self
                    .pending
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                        Some(p.saturating_sub(pending_at_start))
                    });
                self.update(|s| {
                    s.running = false;
                    s.connected = true;
                    s.last_success = Some(finished);
                    s.last_error = None;
                    s.offline_since = None;
                    s.failures_in_a_row = 0;
                    s.problem = None;
                    s.revoked = false;
                    s.answered = false;
                    s.last_session = Some(report.clone());
                    if let Some(ms) = report.clock_skew_ms {
                        s.clock_skew_s = Some(-ms / 1000);
                    }
                    let t = &mut s.totals;
                    t.sessions += 1;
                    t.round_trips += u64::from(report.round_trips);
                    t.cases_sent += u64::from(report.cases_sent);
                    t.cases_received += u64::from(report.cases_received);
                    t.bytes_sent += report.bytes_sent;
                    t.bytes_received += report.bytes_received;
                    t.wire_bytes_sent += report.wire_bytes_sent;
                    t.wire_bytes_received += report.wire_bytes_received;
                    t.lost_bytes += report.lost_bytes;
                });
                tracing::info!(
                    round_trips = report.round_trips,
                    sent = report.cases_sent,
                    received = report.cases_received,
                    bytes = report.bytes_sent + report.bytes_received,
                    "sync session done"
                );
                for r in &report.refused {
                    tracing::warn!(subject = %r.subject, reason = %r.reason, "upstream refused");
                }
                self.finished.notify_one();
            }
            Err(e) => {
                let message = e.to_string();
                let (answered, problem) = in_words(e);
                let revoked = matches!(e, TransportError::Refused(r) if r.contains("revoked"));
                self.update(|s| {
                    s.running = false;
                    s.connected = false;
                    s.last_error = Some(message);
                    s.totals.sessions += 1;
                    s.totals.failed_sessions += 1;
                    s.failures_in_a_row = s.failures_in_a_row.saturating_add(1);
                    s.answered = answered;
                    s.problem = Some(problem);
                    s.revoked = revoked;
                    if !answered && s.offline_since.is_none() {
                        s.offline_since = Some(finished.clone());
                    }
                });
                tracing::info!(error = %e, "sync session failed");
            }
        }
        result
    }

    async fn session(&self) -> Result<SyncReport, TransportError> {
        let primary = self
            .session_with(&self.upstream_addr, &self.server_name)
            .await;
        let down_for = {
            let mut down = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
            match (&primary, *down) {
                (Ok(_), _) => {
                    *down = None;
                    return primary;
                }
                (Err(_), None) => {
                    *down = Some(std::time::Instant::now());
                    Duration::ZERO
                }
                (Err(_), Some(since)) => since.elapsed(),
            }
        };
        // The township has been away long enough: go to the county directly. Nothing is duplicated
        // when the township returns: it reconciles the same documents.
        match &self.fallback_addr {
            Some(hub) if down_for >= self.timing.fallback_after => {
                tracing::info!(%hub, down_s = down_for.as_secs(), "upstream unreachable; syncing with the hub directly");
                self.session_with(hub, tls::HUB_SERVER_NAME).await
            }
            _ => primary,
        }
    }

    /// One session with the upstream at `addr`, counted in the metrics under its code.
    async fn session_with(
        &self,
        addr: &str,
        server_name: &str,
    ) -> Result<SyncReport, TransportError> {
        let result = self.session_at(addr, server_name).await;
        let peer = match server_name == tls::HUB_SERVER_NAME {
            true => &self.county_code,
            false => &self.upstream_code,
        };
        let end = result.as_ref().map_err(|e| match e {
            TransportError::Refused(_) => SessionEnd::Refused,
            _ => SessionEnd::Failed,
        });
        self.metrics.sync_session(peer, end);
        result
    }

    async fn session_at(
        &self,
        addr: &str,
        server_name: &str,
    ) -> Result<SyncReport, TransportError> {
        let resolved = tokio::net::lookup_host(addr)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| TransportError::Connection(format!("cannot resolve upstream {addr}")))?;
        let upstream = Upstream {
            addr: resolved,
            server_name: server_name.to_string(),
            config: self.config.clone(),
        };
        let pending = u32::try_from(self.pending.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
        let links = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        self.link
            .session(&upstream, &self.store, self.scopes.clone(), pending, links)
            .await
    }

    /// Resolves after the next successful session (at once if one finished since the last call).
    pub async fn session_finished(&self) {
        self.finished.notified().await
    }

    /// The owner loop: sync after local writes and the upstream's notices, every `period` (much less
    /// often while the connection is up), and with backoff after failures, until `shutdown` is
    /// cancelled. A session in progress is finished first: its writes are durable before they are
    /// acknowledged, and cutting it would only make the upstream wait for a timeout.
    pub async fn run_loop(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::spawn(self.clone().watch_liveness(shutdown.clone()));
        let mut failures: u32 = 0;
        // First session right away: the link may have come back while the node was off.
        let mut wait = Duration::ZERO;
        let (mut tokens, mut refilled) = (NOTICE_BURST, tokio::time::Instant::now());
        loop {
            let pause = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = self.trigger.notified() => Some(AFTER_WRITE),
                _ = self.link.notice() => {
                    let now = tokio::time::Instant::now();
                    tokens = (tokens + (now - refilled).as_secs_f64()).min(NOTICE_BURST);
                    refilled = now;
                    let short = (1.0 - tokens).max(0.0);
                    tokens -= 1.0;
                    Some(AFTER_NOTICE.max(Duration::from_secs_f64(short)))
                }
                _ = self.link.connection_lost() => {
                    // Said at once; a new connection soon, so that notices flow again (a failure
                    // then backs off as usual).
                    let now = tongban_runtime::clock::beijing_now().to_rfc3339();
                    self.update(|s| {
                        s.connected = false;
                        s.offline_since.get_or_insert(now);
                    });
                    wait = RECONNECT_AFTER.min(self.timing.period);
                    continue;
                }
                _ = tokio::time::sleep(wait) => None,
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            match self.run_now().await {
                Ok(_) => {
                    failures = 0;
                    wait = match self.link.up() {
                        true => self.timing.period.max(CONNECTED_POLL_MIN),
                        false => self.timing.period,
                    };
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    let base = Duration::from_secs(1u64 << failures.min(6)).min(BACKOFF_MAX);
                    let jitter = rand::thread_rng().gen_range(0.8..1.2);
                    wait = base.mul_f64(jitter);
                }
            }
        }
        self.link.close().await;
    }
}

impl SyncHandle {
    /// While someone is looking, checks the connection every `LIVENESS_TICK` (see
    /// `Link::check_liveness`: probes after a short silence, gives a silent connection up); a
    /// connection given up is said at once, and the loop's `connection_lost` reconnects.
    async fn watch_liveness(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(LIVENESS_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let looked_at = Duration::from_millis(self.looked_at_ms.load(Ordering::Relaxed));
            let looking = looked_at > Duration::ZERO
                && self.started.elapsed().saturating_sub(looked_at) <= LOOKED_AT_WITHIN;
            if looking && self.link.check_liveness() == Liveness::GaveUp {
                let now = tongban_runtime::clock::beijing_now().to_rfc3339();
                self.update(|s| {
                    s.connected = false;
                    s.offline_since.get_or_insert(now);
                });
            }
        }
    }
}

/// What the station sees of its link (the badge, `GET /api/sync`'s `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Synced,
    Syncing,
    Offline,
    Revoked,
    /// The upstream answers, but sessions keep failing.
    Failing,
}

impl LinkState {
    pub fn of(s: &SyncStatus, up: bool) -> LinkState {
        if s.revoked {
            LinkState::Revoked
        } else if s.running && (up || s.offline_since.is_none()) {
            // (A session trying to reach an upstream already known to be away is not syncing.)
            LinkState::Syncing
        } else if s.failures_in_a_row >= 2 && s.answered {
            LinkState::Failing
        } else if s.failures_in_a_row > 0 || (!up && !s.connected) || s.offline_since.is_some() {
            LinkState::Offline
        } else {
            LinkState::Synced
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            LinkState::Synced => "synced",
            LinkState::Syncing => "syncing",
            LinkState::Offline => "offline",
            LinkState::Revoked => "revoked",
            LinkState::Failing => "failing",
        }
    }
}

/// Whether a failed session reached an upstream that answered, and the failure in the station's words.
fn in_words(e: &TransportError) -> (bool, String) {
    match e {
        TransportError::Connect { .. } | TransportError::Connection(_) => (
            false,
            "连不上上级平台（网络不通或上级平台未开机）".to_string(),
        ),
        TransportError::Timeout(_) => (false, "上级平台长时间没有回应".to_string()),
        TransportError::Refused(r) if r.contains("revoked") => {
            (true, "县级平台已停用本站的接入证书".to_string())
        }
        TransportError::Refused(r) => (true, format!("上级平台拒绝了本站的同步（{r}）")),
        TransportError::Frame(f) => (true, format!("上级平台发来的数据无法识别（{f}）")),
        TransportError::Session(tongban_shared::sync::SessionError::Storage(m)) => {
            (true, format!("本机存储出错，请联系技术支持（{m}）"))
        }
        TransportError::Session(other) => (true, format!("同步过程出错（{other}）")),
    }
}

/// A session that moved many cases leaves the allocator holding freed memory it does not give back by
/// itself; a village PC should not keep paying for yesterday's big upload.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (the Windows heap, musl) have no such call; their memory after a big session is
/// what the P6 benchmark measures on Linux only.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() {}
