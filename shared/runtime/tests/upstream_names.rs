//! Whom a village accepts as its upstream (issue 13: a village enrolled behind its township by the
//! plain command failed every session with "certificate not valid for name hub.tongban"). Real QUIC
//! handshakes on loopback with the configuration the node uses, whatever name it dials: its own
//! township and the county's hub pass, another township does not.

use tongban_runtime::tls::{self, CertKey};
use tongban_runtime::upstream_tls::node_client_config;
use tongban_shared::Tier;

const OWN_TOWNSHIP: &str = "420222103";
const OTHER_TOWNSHIP: &str = "420222104";
const VILLAGE: &str = "420222103201";

/// `village` dials a server presenting `server_cert` as `name`: whether the handshake passes.
async fn dial(
    ca: &CertKey,
    server_cert: &CertKey,
    village: &CertKey,
    name: &str,
) -> Result<(), String> {
    let server = quinn::Endpoint::server(
        tls::server_config(&ca.cert_pem, server_cert).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let accepting = tokio::spawn(async move {
        let incoming = server.accept().await?;
        Some(incoming.await.map(|_| ()).map_err(|e| e.to_string()))
    });
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(
        node_client_config(&ca.cert_pem, village, Tier::Village, Some(OWN_TOWNSHIP)).unwrap(),
    );
    let connected = match client.connect(addr, name) {
        Ok(connecting) => connecting.await.map(|_| ()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    connected.as_ref()?;
    accepting
        .await
        .unwrap()
        .unwrap_or(Err("no connection".into()))
}

#[tokio::test]
async fn a_village_accepts_its_own_township_or_the_hub_under_either_name_and_no_other_node() {
    let root = tls::generate_ca("420222", "阳新县").unwrap();
    let issuing = tls::issue_issuing_ca(&root, "420222", "阳新县").unwrap();
    let village = tls::issue_node(&issuing, VILLAGE, Tier::Village, Some(OWN_TOWNSHIP)).unwrap();
    let own = tls::issue_node(&issuing, OWN_TOWNSHIP, Tier::Township, Some("420222")).unwrap();
    let other = tls::issue_node(&issuing, OTHER_TOWNSHIP, Tier::Township, Some("420222")).unwrap();
    let hub = tls::issue_hub(&root, "420222").unwrap();
    let own_name = tls::township_server_name(OWN_TOWNSHIP);

    for name in [tls::HUB_SERVER_NAME, own_name.as_str()] {
        dial(&root, &own, &village, name)
            .await
            .unwrap_or_else(|e| panic!("own township dialled as {name}: {e}"));
        dial(&root, &hub, &village, name)
            .await
            .unwrap_or_else(|e| panic!("the hub dialled as {name}: {e}"));
    }
    for name in [tls::HUB_SERVER_NAME, own_name.as_str()] {
        let refused = dial(&root, &other, &village, name)
            .await
            .expect_err("another township is not this village's upstream");
        assert!(refused.contains("not valid for name"), "{refused}");
    }
}
