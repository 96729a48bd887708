//! What a running hub or node tells its monitoring (`GET /metrics`, Prometheus text format 0.0.4):
//! the one registry of a server process and every metric family in it, with the methods the rest of
//! the code counts through. `docs/OPERATIONS.md` lists the names for operators.
//!
//! Here: the families, their labels (small and bounded: states, action kinds, enrolled node codes,
//! route templates, never a case number or a raw path), and the gate wrapper that counts sync
//! sessions on the server side. Not here: HTTP (the route, its access rule and the latency
//! middleware are `tongban_web::metrics`), or anything that decides what happens — a metric only
//! watches.
//!
//! One [`Metrics`] per served tier, passed to whatever counts: the demo runs five servers in one
//! process, and each must answer its own figures, so there is no global registry.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tongban_shared::case::CaseState;

use crate::store::{Store, StoreError};
use crate::tls::PeerIdentity;
use crate::transport::{Gate, SyncReport};

/// The `Content-Type` of the answer (Prometheus text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the request latency buckets: a page answers in milliseconds, intake
/// waits for an fsync (tens of ms on an old disk), a login for argon2 and, under load, its slot (3 s).
const LATENCY_BUCKETS: [f64; 12] = [
    0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    peer: String,
    /// `sent` or `received`, seen from this process.
    direction: &'static str,
    /// `payload` (sync protocol frames) or `wire` (UDP bytes: QUIC, TLS, acks, retransmissions).
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    /// The route template (`/api/cases/{case_no}`), or `unmatched` for a path no route has.
    route: String,
    /// `2xx` … `5xx`.
    status: &'static str,
}

type HttpHistogram = Family<HttpLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Why a login failed, as the login-failure counter labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong account name or password.
    WrongPassword,
    /// Refused because the account or the source address is locked after earlier failures.
    Locked,
}

/// The registry of one server process and its metric families.
pub struct Metrics {
    /// Written only while the families are registered (in `new`); encoding reads it.
    registry: Registry,
    cases: Family<StateLabel, Gauge>,
    intake: Counter,
    actions: Family<ActionLabel, Counter>,
    sync_sessions: Family<PeerLabel, Counter>,
    sync_failures: Family<PeerLabel, Counter>,
    sync_refusals: Family<PeerLabel, Counter>,
    sync_refused_changes: Family<PeerLabel, Counter>,
    sync_bytes: Family<BytesLabels, Counter>,
    /// Only a node with an upstream has writes waiting to go up; elsewhere it is not registered.
    pending_up: Option<Gauge>,
    store_size: Gauge,
    storage_faults: Counter,
    login_failures: Family<ReasonLabel, Counter>,
    http: HttpHistogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::build(false)
    }
}

impl Metrics {
    /// The families of the hub and of a standalone node.
    pub fn new() -> Metrics {
        Metrics::build(false)
    }

    /// The families of a node that syncs with an upstream (adds the writes waiting to go up).
    pub fn with_upstream() -> Metrics {
        Metrics::build(true)
    }

    fn build(upstream: bool) -> Metrics {
        let mut registry = Registry::with_prefix("tongban");
        let cases = Family::<StateLabel, Gauge>::default();
        // Every state from the start, so a state with no case reads 0 instead of being absent.
        for state in CaseState::ALL {
            drop(cases.get_or_create(&StateLabel {
                state: state.as_str(),
            }));
        }
        registry.register(
            "cases",
            "Cases in this store by state, from the store's counters at scrape time",
            cases.clone(),
        );
        let intake = Counter::default();
        registry.register(
            "intake",
            "Cases filed through this server's web UI or API since it started",
            intake.clone(),
        );
        let actions = Family::<ActionLabel, Counter>::default();
        registry.register(
            "case_actions",
            "Workflow actions taken through this server's web UI or API since it started, by action",
            actions.clone(),
        );
        let sync_sessions = Family::<PeerLabel, Counter>::default();
        registry.register(
            "sync_sessions",
            "Sync sessions with a peer (node code) that ended, whether they worked or not",
            sync_sessions.clone(),
        );
        let sync_failures = Family::<PeerLabel, Counter>::default();
        registry.register(
            "sync_session_failures",
            "Sync sessions with a peer that ended in an error",
            sync_failures.clone(),
        );
        let sync_refusals = Family::<PeerLabel, Counter>::default();
        registry.register(
            "sync_refusals",
            "Peers refused: at a server, a peer's admission refused; at a node, a session its upstream refused",
            sync_refusals.clone(),
        );
        let sync_refused_changes = Family::<PeerLabel, Counter>::default();
        registry.register(
            "sync_refused_changes",
            "Cases refused inside sync sessions with a peer (by either side's checks)",
            sync_refused_changes.clone(),
        );
        let sync_bytes = Family::<BytesLabels, Counter>::default();
        registry.register_with_unit(
            "sync",
            "Bytes of finished sync sessions by peer, direction and kind: payload (sync protocol frames) or wire (UDP, QUIC and TLS included)",
            Unit::Bytes,
            sync_bytes.clone(),
        );
        let pending_up = upstream.then(|| {
            let gauge = Gauge::default();
            registry.register(
                "sync_pending_up",
                "Local writes not yet known to have gone up to the upstream",
                gauge.clone(),
            );
            gauge
        });
        let store_size = Gauge::default();
        registry.register_with_unit(
            "store_size",
            "Size of the store's files on disk, at scrape time",
            Unit::Bytes,
            store_size.clone(),
        );
        let storage_faults = Counter::default();
        registry.register(
            "storage_faults",
            "Writes that failed with a storage fault (answered 507; the first one stops intake until restart)",
            storage_faults.clone(),
        );
        let login_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "login_failures",
            "Password checks that failed, by reason: wrong_password or locked",
            login_failures.clone(),
        );
        let http: HttpHistogram = Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer, by method, route template and status class",
            Unit::Seconds,
            http.clone(),
        );
        Metrics {
            registry,
            cases,
            intake,
            actions,
            sync_sessions,
            sync_failures,
            sync_refusals,
            sync_refused_changes,
            sync_bytes,
            pending_up,
            store_size,
            storage_faults,
            login_failures,
            http,
        }
    }

    /// A case was filed here.
    pub fn intake(&self) {
        self.intake.inc();
    }

    /// A workflow action was taken here (`action`: the action's stored name, one of a fixed table).
    pub fn action(&self, action: &'static str) {
        self.actions.get_or_create(&ActionLabel { action }).inc();
    }

    /// A write failed with a storage fault.
    pub fn storage_fault(&self) {
        self.storage_faults.inc();
    }

    pub fn login_failed(&self, why: LoginFailure) {
        let reason = match why {
            LoginFailure::WrongPassword => "wrong_password",
            LoginFailure::Locked => "locked",
        };
        self.login_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// One HTTP request answered. `method` and `route` must be bounded (see `tongban_web::metrics`).
    pub fn http_request(&self, method: &'static str, route: &str, status: u16, took: Duration) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let labels = HttpLabels {
            method,
            route: route.to_string(),
            status,
        };
        self.http.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// A peer (`peer`: its node code) was refused.
    pub fn sync_refused(&self, peer: &str) {
        self.sync_refusals.get_or_create(&peer_label(peer)).inc();
    }

    /// A sync session with `peer` ended: counted, and a finished one's bytes added; one the peer
    /// refused ([`SessionEnd::Refused`]) counts as a failure and a refusal.
    pub fn sync_session(&self, peer: &str, outcome: Result<&SyncReport, SessionEnd>) {
        let label = peer_label(peer);
        self.sync_sessions.get_or_create(&label).inc();
        let report = match outcome {
            Ok(report) => report,
            Err(end) => {
                self.sync_failures.get_or_create(&label).inc();
                if end == SessionEnd::Refused {
                    self.sync_refusals.get_or_create(&label).inc();
                }
                return;
            }
        };
        if !report.refused.is_empty() {
            self.sync_refused_changes
                .get_or_create(&label)
                .inc_by(report.refused.len() as u64);
        }
        for (direction, kind, bytes) in [
            ("sent", "payload", report.bytes_sent),
            ("received", "payload", report.bytes_received),
            ("sent", "wire", report.wire_bytes_sent),
            ("received", "wire", report.wire_bytes_received),
        ] {
            let labels = BytesLabels {
                peer: peer.to_string(),
                direction,
                kind,
            };
            self.sync_bytes.get_or_create(&labels).inc_by(bytes);
        }
    }

    /// The figures read at scrape time (cases by state from the store's counters, the store's size,
    /// the writes waiting to go up), then everything as text. Reads the store: call it on a
    /// blocking thread.
    pub fn scrape(&self, store: &Store, pending_up: Option<u64>) -> Result<String, ScrapeError> {
        for state in CaseState::ALL {
            let label = StateLabel {
                state: state.as_str(),
            };
            self.cases
                .get_or_create(&label)
                .set(gauge_value(store.count(Some(state))?));
        }
        self.store_size.set(gauge_value(store.size_on_disk()?));
        if let (Some(gauge), Some(n)) = (&self.pending_up, pending_up) {
            gauge.set(gauge_value(n));
        }
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .map_err(|_| ScrapeError::Encode)?;
        Ok(text)
    }
}

/// How a sync session that did not finish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The peer refused this side, with a reason.
    Refused,
    /// Anything else: the connection lost, a timeout, a bad frame, a storage error.
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot encode the metrics")]
    Encode,
}

fn peer_label(peer: &str) -> PeerLabel {
    PeerLabel {
        peer: peer.to_string(),
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A server's [`Gate`] that also counts: a refused admission, and every session's end and bytes.
/// The server's wire bytes are the session's share of its connection (`transport`).
pub struct Metered<G> {
    pub gate: G,
    pub metrics: Arc<Metrics>,
}

impl<G: Gate> Gate for Metered<G> {
    fn admit(&self, peer: &PeerIdentity) -> Result<(), String> {
        let admitted = self.gate.admit(peer);
        if admitted.is_err() {
            self.metrics.sync_refused(&peer.code);
        }
        admitted
    }

    fn record(&self, peer: &PeerIdentity, outcome: &Result<SyncReport, String>) {
        let end = outcome.as_ref().map_err(|_| SessionEnd::Failed);
        self.metrics.sync_session(&peer.code, end);
        self.gate.record(peer, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_units_and_total_suffix() {
        let metrics = Metrics::with_upstream();
        metrics.intake();
        metrics.action("accept");
        metrics.login_failed(LoginFailure::WrongPassword);
        metrics.http_request("GET", "/api/cases", 200, Duration::from_millis(3));
        let report = SyncReport {
            bytes_sent: 10,
            bytes_received: 20,
            wire_bytes_sent: 1000,
            wire_bytes_received: 2000,
            ..SyncReport::default()
        };
        metrics.sync_session("420222", Ok(&report));
        metrics.sync_session("420222", Err(SessionEnd::Refused));
        let text = metrics.registry_text();
        for line in [
            "tongban_cases{state=\"SUBMITTED\"} 0",
            "tongban_intake_total 1",
            "tongban_case_actions_total{action=\"accept\"} 1",
            "tongban_login_failures_total{reason=\"wrong_password\"} 1",
            "tongban_sync_sessions_total{peer=\"420222\"} 2",
            "tongban_sync_session_failures_total{peer=\"420222\"} 1",
            "tongban_sync_refusals_total{peer=\"420222\"} 1",
            "tongban_sync_bytes_total{peer=\"420222\",direction=\"sent\",kind=\"payload\"} 10",
            "tongban_sync_bytes_total{peer=\"420222\",direction=\"received\",kind=\"wire\"} 2000",
            "tongban_sync_pending_up 0",
            "tongban_http_request_duration_seconds_count{method=\"GET\",route=\"/api/cases\",status=\"2xx\"} 1",
        ] {
            assert!(text.contains(line), "no line {line} in\n{text}");
        }
        assert!(!Metrics::new().registry_text().contains("pending_up"));
    }

    impl Metrics {
        fn registry_text(&self) -> String {
            let mut text = String::new();
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
                .unwrap();
            text
        }
    }
}
