//! Sync over real QUIC on loopback with mutual TLS from a county CA: cases flow, a no-change session is
//! one round trip, a foreign CA and a revoked node are refused.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

mod common;

use common::{add_case, open as store, VILLAGE};
use tongban_runtime::store::Store;
use tongban_runtime::tls::{self, CertKey, PeerIdentity};
use tongban_runtime::transport::{self, Connections, Gate, SyncReport, TransportError, Upstream};
use tongban_shared::Tier;

#[derive(Default)]
struct TestGate {
    revoked: Mutex<BTreeSet<String>>,
    sessions: Mutex<Vec<(String, Result<SyncReport, String>)>>,
}

impl Gate for TestGate {
    fn admit(&self, peer: &PeerIdentity) -> Result<(), String> {
        if self.revoked.lock().unwrap().contains(&peer.code) {
            return Err(format!("node {} is revoked", peer.code));
        }
        Ok(())
    }
    fn record(&self, peer: &PeerIdentity, outcome: &Result<SyncReport, String>) {
        self.sessions
            .lock()
            .unwrap()
            .push((peer.code.clone(), outcome.clone()));
    }
}

struct Hub {
    addr: SocketAddr,
    gate: Arc<TestGate>,
    connections: Connections,
    store: Store,
    _dir: tempfile::TempDir,
}

fn start_hub(ca: &CertKey) -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), "420222", Tier::County, 200);
    let hub_cert = tls::issue_hub(ca, "420222").unwrap();
    let config = tls::server_config(&ca.cert_pem, &hub_cert).unwrap();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let gate = Arc::new(TestGate::default());
    let connections = Connections::default();
    tokio::spawn(transport::serve(
        endpoint,
        store.clone(),
        gate.clone(),
        connections.clone(),
    ));
    Hub {
        addr,
        gate,
        connections,
        store,
        _dir: dir,
    }
}

fn upstream(ca_pem: &str, own: &CertKey, addr: SocketAddr) -> Upstream {
    Upstream {
        addr,
        server_name: tls::HUB_SERVER_NAME.into(),
        config: tls::client_config(ca_pem, own).unwrap(),
    }
}

/// One session of the village's own scope.
async fn sync(
    endpoint: &quinn::Endpoint,
    up: &Upstream,
    village: &Store,
) -> Result<SyncReport, TransportError> {
    transport::sync_once(endpoint, up, village, vec![VILLAGE.into()], 0, Vec::new()).await
}

fn client_endpoint() -> quinn::Endpoint {
    quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_reach_the_hub_and_a_second_session_is_one_small_round_trip() {
    let ca = tls::generate_ca("420222", "阳新县").unwrap();
    let hub = start_hub(&ca);
    let vdir = tempfile::tempdir().unwrap();
    let village = store(vdir.path(), VILLAGE, Tier::Village, 1);
    // As enrolment does: the hub knows the village's actor.
    hub.store
        .bind_actor(&village.actor().unwrap(), VILLAGE)
        .unwrap();
    for seq in 1..=320 {
        add_case(&village, seq);
    }
    let cert = tls::issue_node(&ca, VILLAGE, Tier::Village, Some("420222100")).unwrap();
    let up = upstream(&ca.cert_pem, &cert, hub.addr);
    let endpoint = client_endpoint();

    let first = sync(&endpoint, &up, &village).await.unwrap();
    assert_eq!(first.cases_sent, 320);
    assert_eq!(hub.store.count(None).unwrap(), 320);

    let second = sync(&endpoint, &up, &village).await.unwrap();
    assert_eq!(second.round_trips, 1, "{second:?}");
    assert!(
        second.bytes_sent + second.bytes_received <= 2048,
        "{second:?}"
    );

    add_case(&village, 321);
    let one = sync(&endpoint, &up, &village).await.unwrap();
    assert_eq!(one.cases_sent, 1);
    assert!(one.bytes_sent + one.bytes_received <= 8 * 1024, "{one:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_ca_is_refused() {
    let ca = tls::generate_ca("420222", "阳新县").unwrap();
    let hub = start_hub(&ca);
    let other = tls::generate_ca("420222", "冒充的县").unwrap();
    let cert = tls::issue_node(&other, VILLAGE, Tier::Village, Some("420222100")).unwrap();
    let vdir = tempfile::tempdir().unwrap();
    let village = store(vdir.path(), VILLAGE, Tier::Village, 1);
    // As enrolment does: the hub knows the village's actor.
    hub.store
        .bind_actor(&village.actor().unwrap(), VILLAGE)
        .unwrap();
    add_case(&village, 1);
    // It trusts the real county CA, so the server's side of the handshake is fine; its own
    // certificate is not.
    let up = upstream(&ca.cert_pem, &cert, hub.addr);
    let result = sync(&client_endpoint(), &up, &village).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(hub.store.count(None).unwrap(), 0);

    // And a node that trusts another CA refuses the real hub.
    let good = tls::issue_node(&ca, VILLAGE, Tier::Village, Some("420222100")).unwrap();
    let fooled = upstream(&other.cert_pem, &good, hub.addr);
    let result = sync(&client_endpoint(), &fooled, &village).await;
    assert!(result.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_refused_with_the_reason() {
    let ca = tls::generate_ca("420222", "阳新县").unwrap();
    let hub = start_hub(&ca);
    let cert = tls::issue_node(&ca, VILLAGE, Tier::Village, Some("420222100")).unwrap();
    let vdir = tempfile::tempdir().unwrap();
    let village = store(vdir.path(), VILLAGE, Tier::Village, 1);
    // As enrolment does: the hub knows the village's actor.
    hub.store
        .bind_actor(&village.actor().unwrap(), VILLAGE)
        .unwrap();
    let up = upstream(&ca.cert_pem, &cert, hub.addr);
    sync(&client_endpoint(), &up, &village).await.unwrap();
    hub.gate.revoked.lock().unwrap().insert(VILLAGE.into());
    hub.connections.close_peer(VILLAGE, "revoked");
    add_case(&village, 1);
    match sync(&client_endpoint(), &up, &village).await {
        Err(TransportError::Refused(reason)) => assert!(reason.contains("revoked"), "{reason}"),
        other => panic!("expected refusal, got {other:?}"),
    }
    assert_eq!(hub.store.count(None).unwrap(), 0);
}

/// The fallback of `udp` (for Winsock layers that lack what quinn's own socket layer turns on, as
/// Wine does): both ends on plain sockets, 320 cases across and a no-change session after, the
/// same as on quinn's sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_works_the_same_over_plain_udp_sockets() {
    use tongban_runtime::udp::plain_endpoint;
    let ca = tls::generate_ca("420222", "阳新县").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub = store(dir.path(), "420222", Tier::County, 200);
    let config = tls::server_config(&ca.cert_pem, &tls::issue_hub(&ca, "420222").unwrap()).unwrap();
    let server = plain_endpoint(Some(config), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(transport::serve(
        server,
        hub.clone(),
        Arc::new(TestGate::default()),
        Connections::default(),
    ));
    let vdir = tempfile::tempdir().unwrap();
    let village = store(vdir.path(), VILLAGE, Tier::Village, 1);
    hub.bind_actor(&village.actor().unwrap(), VILLAGE).unwrap();
    for seq in 1..=320 {
        add_case(&village, seq);
    }
    let cert = tls::issue_node(&ca, VILLAGE, Tier::Village, Some("420222100")).unwrap();
    let up = upstream(&ca.cert_pem, &cert, addr);
    let client = plain_endpoint(None, "127.0.0.1:0".parse().unwrap()).unwrap();
    let first = sync(&client, &up, &village).await.unwrap();
    assert_eq!(first.cases_sent, 320);
    assert_eq!(hub.count(None).unwrap(), 320);
    let second = sync(&client, &up, &village).await.unwrap();
    assert_eq!(second.round_trips, 1, "{second:?}");
}
