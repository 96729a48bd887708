//! Whom a node accepts as its upstream: the county's hub (`hub.tongban`) or, for a village, its own
//! township (`<parent>.node.tongban`), whatever name its bundle gives for the address it dials. A
//! village enrolled behind its township by the plain command (no `--upstream-name`) reaches it, and
//! its fallback to the hub needs nothing more. Everything else about the certificate is checked as
//! rustls checks it: chain to the county root, validity, usage.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use tongban_shared::Tier;

use crate::tls::{self, CertKey, TlsError};

#[derive(Debug)]
struct OwnUpstreams {
    inner: Arc<WebPkiServerVerifier>,
    /// Tried in turn when the certificate is not for the name dialled.
    names: Vec<ServerName<'static>>,
}

impl ServerCertVerifier for OwnUpstreams {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let dialled = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let wrong_name = matches!(
            dialled,
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        );
        if !wrong_name {
            return dialled;
        }
        self.names
            .iter()
            .find_map(|name| {
                self.inner
                    .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
                    .ok()
            })
            .ok_or_else(|| {
                dialled
                    .err()
                    .unwrap_or(Error::General("no name fits".into()))
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The names a node of `tier` under `parent` accepts for its upstream.
pub fn upstream_names(tier: Tier, parent: Option<&str>) -> Vec<String> {
    let mut names = vec![tls::HUB_SERVER_NAME.to_string()];
    if let (Tier::Village, Some(township)) = (tier, parent) {
        names.push(tls::township_server_name(township));
    }
    names
}

/// The client configuration of a node of `tier` under `parent` (see the module header).
pub fn node_client_config(
    ca_pem: &str,
    own: &CertKey,
    tier: Tier,
    parent: Option<&str>,
) -> Result<quinn::ClientConfig, TlsError> {
    let inner = WebPkiServerVerifier::builder_with_provider(tls::roots(ca_pem)?, tls::provider())
        .build()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let names = upstream_names(tier, parent)
        .into_iter()
        .map(|n| tls::server_name(&n))
        .collect::<Result<_, _>>()?;
    tls::client_config_verified(Arc::new(OwnUpstreams { inner, names }), own)
}
