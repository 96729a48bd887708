//! The issuing CA under the county root (issue 12, finding 7: the running hub read the CA key). The
//! hub now signs node certificates with the issuing CA only; these check, with the verifiers the
//! sync and HTTPS clients use, that what it signs is trusted as a node and that its key cannot make
//! a certificate for the hub's sync name or a web address.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tongban_runtime::tls::{self, HUB_SERVER_NAME};
use tongban_runtime::web_tls;
use tongban_shared::Tier;

fn chain(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls::pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn roots(root_pem: &str) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for c in chain(root_pem) {
        roots.add(c).unwrap();
    }
    Arc::new(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// As a node (or a hall's browser) checks the server it connects to.
fn server_check(root_pem: &str, cert_pem: &str, name: &str) -> Result<(), String> {
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(root_pem), provider())
            .build()
            .unwrap();
    let certs = chain(cert_pem);
    verifier
        .verify_server_cert(
            &certs[0],
            &certs[1..],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// As the hub (or a township) checks a node that connects to it.
fn client_check(root_pem: &str, cert_pem: &str) -> Result<(), String> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(root_pem), provider())
            .build()
            .unwrap();
    let certs = chain(cert_pem);
    verifier
        .verify_client_cert(&certs[0], &certs[1..], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn the_issuing_ca_signs_nodes_but_its_key_cannot_pass_for_the_hub_or_its_web_address() {
    let root = tls::generate_ca("420222", "阳新县").unwrap();
    let issuing = tls::issue_issuing_ca(&root, "420222", "阳新县").unwrap();
    assert!(tls::is_self_signed(&root.cert_pem).unwrap());
    assert!(!tls::is_self_signed(&issuing.cert_pem).unwrap());

    // What the running hub signs: trusted as a node, a township also as its villages' server.
    let village =
        tls::issue_node(&issuing, "420222100201", Tier::Village, Some("420222100")).unwrap();
    assert_eq!(
        chain(&village.cert_pem).len(),
        2,
        "the node presents the issuing CA with its own"
    );
    client_check(&root.cert_pem, &village.cert_pem).unwrap();
    let township = tls::issue_node(&issuing, "420222100", Tier::Township, Some("420222")).unwrap();
    server_check(
        &root.cert_pem,
        &township.cert_pem,
        &tls::township_server_name("420222100"),
    )
    .unwrap();
    assert!(
        tls::not_after(&village.cert_pem).unwrap() <= tls::not_after(&issuing.cert_pem).unwrap(),
        "no node certificate outlives its issuer"
    );

    // The hub's own certificates come from the root and pass.
    let hub = tls::issue_hub(&root, "420222").unwrap();
    server_check(&root.cert_pem, &hub.cert_pem, HUB_SERVER_NAME).unwrap();
    let names = vec!["10.1.2.3".to_string(), "hub.yangxin.gov".to_string()];
    let web = web_tls::issue_web(&root, "420222", &names).unwrap();
    server_check(&root.cert_pem, &web.cert_pem, "10.1.2.3").unwrap();

    // The same made with the issuing CA's key (a compromised hub's) are refused.
    let forged_hub = tls::issue_hub(&issuing, "420222").unwrap();
    let why = server_check(&root.cert_pem, &forged_hub.cert_pem, HUB_SERVER_NAME).unwrap_err();
    assert!(
        why.contains("NameConstraint") || why.contains("name constraint"),
        "{why}"
    );
    let forged_web = web_tls::issue_web(&issuing, "420222", &names).unwrap();
    for name in ["10.1.2.3", "hub.yangxin.gov"] {
        let why = server_check(&root.cert_pem, &forged_web.cert_pem, name).unwrap_err();
        assert!(
            why.contains("NameConstraint") || why.contains("name constraint"),
            "{name}: {why}"
        );
    }
}
