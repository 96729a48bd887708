//! Certificates the county CA issues have a bounded life (node 3 years), and a node whose
//! certificate has ended can no longer connect: a real QUIC handshake on loopback with the
//! configurations both tiers use. Before issue 12 certificates were issued valid until 4096.

use chrono::{Days, Utc};
use tongban_runtime::tls::{self, CertKey, Validity};
use tongban_shared::Tier;

const VILLAGE: &str = "420222100201";

fn node_cert(ca: &CertKey, validity: Validity) -> CertKey {
    let (key_pem, request) = tls::node_request(VILLAGE).unwrap();
    let cert_pem = tls::sign_node_request(
        ca,
        &request,
        VILLAGE,
        Tier::Village,
        Some("420222100"),
        validity,
    )
    .unwrap();
    CertKey { cert_pem, key_pem }
}

/// Connects with `node` to a hub endpoint on loopback; the handshake's outcome.
async fn handshake(ca: &CertKey, node: &CertKey) -> Result<(), String> {
    let hub = tls::issue_hub(ca, "420222").unwrap();
    let server = quinn::Endpoint::server(
        tls::server_config(&ca.cert_pem, &hub).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let incoming = server.accept().await?;
        let outcome = incoming.await.map(|_| ()).map_err(|e| e.to_string());
        Some(outcome)
    });
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(tls::client_config(&ca.cert_pem, node).unwrap());
    let connected = match client.connect(addr, tls::HUB_SERVER_NAME) {
        Ok(connecting) => connecting.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    // Under TLS 1.3 the client may finish before the server has checked its certificate: the
    // server's verdict is the one that counts.
    let served = accepting
        .await
        .unwrap()
        .unwrap_or(Err("no connection".into()));
    connected.and(served)
}

#[tokio::test]
async fn a_node_certificate_lives_three_years_and_an_expired_one_is_refused() {
    let ca = tls::generate_ca("420222", "阳新县").unwrap();
    let fresh = node_cert(&ca, Validity::years_from_today(tls::NODE_CERT_YEARS));
    let ends = tls::not_after(&fresh.cert_pem).unwrap();
    let years = (ends - Utc::now()).num_days() as f64 / 365.25;
    assert!((2.9..3.1).contains(&years), "valid for {years:.2} years");
    handshake(&ca, &fresh)
        .await
        .expect("a valid certificate connects");

    let today = Utc::now().date_naive();
    let expired = node_cert(
        &ca,
        Validity {
            not_before: today - Days::new(3 * 366),
            not_after: today - Days::new(1),
        },
    );
    let refused = handshake(&ca, &expired)
        .await
        .expect_err("an ended certificate is refused");
    assert!(refused.to_lowercase().contains("expired"), "{refused}");
}
