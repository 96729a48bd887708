//! Identity: the county CA, the certificates it issues, and the rustls configurations (ring provider)
//! that make every sync connection mutually authenticated.
//!
//! A node's certificate names its division code, tier and parent in a SAN URI
//! `urn:tongban:node:<code>:<tier>:<parent>`; the hub reads the peer's identity from there and from
//! nowhere else. Servers are named in SAN DNS names: the hub is `hub.tongban`, a township node
//! `<code>.node.tongban`, so a village accepts only its county's hub or its own township.
//!
//! Two county CAs: the root (what every node and browser trusts; it signs the hub's sync and web
//! certificates and the issuing CA, and only the signing commands read its key) and the issuing CA
//! under it, which the running hub signs node certificates with. The issuing CA is name-constrained
//! to `node.tongban` names and no IP address, so its key, if the hub were compromised, cannot make a
//! certificate for the hub's sync name or for its web addresses. Node certificates carry it as chain.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde::{Deserialize, Serialize};
use tongban_shared::Tier;

/// ALPN of the sync protocol; a peer speaking anything else fails the handshake.
pub const ALPN: &[u8] = b"tongban-sync/1";
/// The hub's server name in certificates and in `connect`.
pub const HUB_SERVER_NAME: &str = "hub.tongban";
const NODE_URI_PREFIX: &str = "urn:tongban:node:";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("peer certificate: {0}")]
    Peer(String),
    #[error("certificate request: {0}")]
    Request(String),
}

/// The server name a township node presents to its villages.
pub fn township_server_name(code: &str) -> String {
    format!("{code}.node.tongban")
}

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerIdentity {
    pub code: String,
    pub tier: Tier,
    pub parent: Option<String>,
    /// Certificate serial, hex: what a revocation names.
    pub serial: String,
}

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

fn tier_word(t: Tier) -> &'static str {
    match t {
        Tier::County => "county",
        Tier::Township => "township",
        Tier::Village => "village",
    }
}

/// How long what the county CA issues stays valid. A node's certificate lives three years and is
/// renewed with `tongban-node csr` + `tongban-hub enroll --replace`; an expired one fails every
/// handshake (webpki checks the dates), so a PC that vanished stops being able to sync on its own.
pub const NODE_CERT_YEARS: i32 = 3;
/// The hub's own sync certificate.
pub const HUB_CERT_YEARS: i32 = 5;
/// The county CA itself.
pub const CA_YEARS: i32 = 20;
/// The issuing CA under it (`tongban-hub renew` makes a new one when fewer than `NODE_CERT_YEARS`
/// remain; a node certificate never outlives its issuer).
pub const ISSUING_CA_YEARS: i32 = 10;

/// The validity window of a certificate, in whole days (the dates rcgen writes).
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: chrono::NaiveDate,
    pub not_after: chrono::NaiveDate,
}

impl Validity {
    /// From yesterday (a PC whose clock is a little behind still accepts it) for `years` years.
    pub fn years_from_today(years: i32) -> Validity {
        let today = chrono::Utc::now().date_naive();
        Validity {
            not_before: today - chrono::Days::new(1),
            not_after: today
                .checked_add_months(chrono::Months::new(12 * years.max(0) as u32))
                .unwrap_or(chrono::NaiveDate::MAX),
        }
    }

    pub(crate) fn apply(&self, params: &mut CertificateParams) {
        use chrono::Datelike;
        let day =
            |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
        params.not_before = day(self.not_before);
        params.not_after = day(self.not_after);
    }
}

pub(crate) fn random_serial() -> rcgen::SerialNumber {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    b[0] &= 0x7F; // positive
    rcgen::SerialNumber::from_slice(&b)
}

/// Creates the county CA.
pub fn generate_ca(county_code: &str, county_name: &str) -> Result<CertKey, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("通办 {county_name} 县级CA"));
    dn.push(DnType::OrganizationName, format!("tongban {county_code}"));
    params.distinguished_name = dn;
    // One CA below it: the issuing CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(random_serial());
    Validity::years_from_today(CA_YEARS).apply(&mut params);
    let cert = params.self_signed(&key)?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The county's issuing CA, signed by `root`: node certificates only (see the module header).
pub fn issue_issuing_ca(
    root: &CertKey,
    county_code: &str,
    county_name: &str,
) -> Result<CertKey, TlsError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("通办 {county_name} 站点证书签发CA"),
    );
    dn.push(DnType::OrganizationName, format!("tongban {county_code}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName("node.tongban".into())],
        excluded_subtrees: vec![
            GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
            GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
        ],
    });
    params.serial_number = Some(random_serial());
    Validity::years_from_today(ISSUING_CA_YEARS).apply(&mut params);
    issue(root, params)
}

/// Issues a certificate for a fresh key pair (the key is returned with it).
pub(crate) fn issue(ca: &CertKey, params: CertificateParams) -> Result<CertKey, TlsError> {
    let key = KeyPair::generate()?;
    Ok(CertKey {
        cert_pem: sign(ca, &params, &key)?,
        key_pem: key.serialize_pem(),
    })
}

/// Signs with `ca`. What an intermediate (the issuing CA) signs carries it as chain, and ends no
/// later than it does: a path through an expired CA fails.
fn sign(
    ca: &CertKey,
    params: &CertificateParams,
    public_key: &impl rcgen::PublicKeyData,
) -> Result<String, TlsError> {
    use chrono::Datelike;
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer_pem = pem_of(&certs(&ca.cert_pem)?[0]);
    let issuer = Issuer::from_ca_cert_pem(&issuer_pem, ca_key)?;
    let mut params = params.clone();
    let ends = not_after(&issuer_pem)?;
    if params.not_after.unix_timestamp() > ends.timestamp() {
        let day = ends.date_naive();
        params.not_after = rcgen::date_time_ymd(day.year(), day.month() as u8, day.day() as u8);
    }
    let leaf = params.signed_by(public_key, &issuer)?.pem();
    Ok(match is_self_signed(&ca.cert_pem)? {
        true => leaf,
        false => format!("{leaf}{issuer_pem}"),
    })
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Whether the first certificate of `pem` is its own issuer (a root).
pub fn is_self_signed(pem: &str) -> Result<bool, TlsError> {
    let der = &certs(pem)?[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Pem(format!("unparsable certificate: {e}")))?;
    Ok(cert.subject().as_raw() == cert.issuer().as_raw())
}

/// The hub's certificate (server for every node).
pub fn issue_hub(ca: &CertKey, county_code: &str) -> Result<CertKey, TlsError> {
    let mut params = CertificateParams::new(vec![HUB_SERVER_NAME.to_string()])?;
    params.subject_alt_names.push(SanType::URI(
        format!("{NODE_URI_PREFIX}{county_code}:county:").try_into()?,
    ));
    params
        .distinguished_name
        .push(DnType::CommonName, format!("tongban hub {county_code}"));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.serial_number = Some(random_serial());
    Validity::years_from_today(HUB_CERT_YEARS).apply(&mut params);
    issue(ca, params)
}

/// A node's certificate with its key made here (the USB-stick bundle): client towards its upstream,
/// and for a township also server for its villages.
pub fn issue_node(
    ca: &CertKey,
    code: &str,
    tier: Tier,
    parent: Option<&str>,
) -> Result<CertKey, TlsError> {
    issue(
        ca,
        node_params(
            code,
            tier,
            parent,
            Validity::years_from_today(NODE_CERT_YEARS),
        )?,
    )
}

/// The subject a node's certificate request names: the hub checks it against the code it enrols.
fn request_common_name(code: &str) -> String {
    format!("tongban node {code}")
}

/// Makes a node's key pair and a PEM certificate request for it (`tongban-node csr`): the key never
/// leaves the node. Returns `(key_pem, request_pem)`.
pub fn node_request(code: &str) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate()?;
    node_request_for_key(code, &key.serialize_pem())
}

/// A certificate request for an existing key (a node asked again before its bundle came back).
pub fn node_request_for_key(code: &str, key_pem: &str) -> Result<(String, String), TlsError> {
    let key = KeyPair::from_pem(key_pem)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, request_common_name(code));
    let request = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), request.pem()?))
}

/// Signs a node's certificate request. Only the request's public key is used (its signature proves
/// the node holds the key); names, tier, usages and validity are the county's, so a request cannot
/// ask for more than the enrolment grants. A request made for another code is refused, which catches
/// a request file handed to the wrong enrolment.
pub fn sign_node_request(
    ca: &CertKey,
    request_pem: &str,
    code: &str,
    tier: Tier,
    parent: Option<&str>,
    validity: Validity,
) -> Result<String, TlsError> {
    // Only the PEM block: declared actors above it are the caller's (`declared_actors`).
    let pem_block = &request_pem[request_pem.find("-----BEGIN").unwrap_or(0)..];
    let request = rcgen::CertificateSigningRequestParams::from_pem(pem_block)
        .map_err(|e| TlsError::Request(format!("not a valid certificate request: {e}")))?;
    let named = request
        .params
        .distinguished_name
        .get(&DnType::CommonName)
        .map(|v| match v {
            rcgen::DnValue::Utf8String(s) => s.clone(),
            rcgen::DnValue::PrintableString(s) => s.as_str().to_string(),
            other => format!("{other:?}"),
        });
    let wanted = request_common_name(code);
    if named.as_deref() != Some(wanted.as_str()) {
        return Err(TlsError::Request(format!(
            "the request was made for another node ({}), not {code}: run `tongban-node csr --code {code}` on that node",
            named.unwrap_or_else(|| "no name".into())
        )));
    }
    sign(
        ca,
        &node_params(code, tier, parent, validity)?,
        &request.public_key,
    )
}

/// Whether `cert_pem` certifies the public key of `key_pem` (a bundle installed onto the wrong
/// node's key would fail every handshake with a confusing error).
pub fn certifies_key(cert_pem: &str, key_pem: &str) -> Result<bool, TlsError> {
    use rcgen::PublicKeyData;
    let key = KeyPair::from_pem(key_pem)?;
    let der = &certs(cert_pem)?[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Pem(format!("unparsable certificate: {e}")))?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == key.der_bytes())
}

/// The SHA-256 fingerprint of a PEM certificate, as `AB:CD:…` (what Windows and browsers show).
pub fn fingerprint(cert_pem: &str) -> Result<String, TlsError> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(&certs(cert_pem)?[0]);
    Ok(digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// The common name of a certificate's subject.
pub fn subject_common_name(cert_pem: &str) -> Result<String, TlsError> {
    let der = &certs(cert_pem)?[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Pem(format!("unparsable certificate: {e}")))?;
    let cn = cert.subject().iter_common_name().next();
    Ok(cn
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string())
}

/// When a certificate stops being valid.
pub fn not_after(cert_pem: &str) -> Result<chrono::DateTime<chrono::Utc>, TlsError> {
    let der = &certs(cert_pem)?[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Pem(format!("unparsable certificate: {e}")))?;
    chrono::DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
        .ok_or_else(|| TlsError::Pem("certificate end date out of range".into()))
}

fn node_params(
    code: &str,
    tier: Tier,
    parent: Option<&str>,
    validity: Validity,
) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(vec![township_server_name(code)])?;
    params.subject_alt_names.push(SanType::URI(
        format!(
            "{NODE_URI_PREFIX}{code}:{}:{}",
            tier_word(tier),
            parent.unwrap_or("")
        )
        .try_into()?,
    ));
    params
        .distinguished_name
        .push(DnType::CommonName, format!("tongban node {code}"));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.serial_number = Some(random_serial());
    validity.apply(&mut params);
    Ok(params)
}

/// Reads the identity out of a certificate that the TLS layer already verified against the county CA.
pub fn identity_of(cert_der: &[u8]) -> Result<PeerIdentity, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| TlsError::Peer(format!("unparsable certificate: {e}")))?;
    let serial = cert.raw_serial_as_string().replace(':', "");
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::Peer(e.to_string()))?
        .ok_or_else(|| TlsError::Peer("no subject alternative names".into()))?;
    for name in &san.value.general_names {
        if let x509_parser::extensions::GeneralName::URI(uri) = name {
            if let Some(rest) = uri.strip_prefix(NODE_URI_PREFIX) {
                let mut parts = rest.split(':');
                let (Some(code), Some(tier), parent) = (parts.next(), parts.next(), parts.next())
                else {
                    break;
                };
                let tier = match tier {
                    "county" => Tier::County,
                    "township" => Tier::Township,
                    "village" => Tier::Village,
                    other => return Err(TlsError::Peer(format!("unknown tier {other}"))),
                };
                if tongban_shared::validate::check_division_code(code).ok() != Some(tier) {
                    return Err(TlsError::Peer(format!("code {code} does not fit tier")));
                }
                return Ok(PeerIdentity {
                    code: code.to_string(),
                    tier,
                    parent: parent.filter(|p| !p.is_empty()).map(str::to_string),
                    serial,
                });
            }
        }
    }
    Err(TlsError::Peer("certificate names no tongban node".into()))
}

/// The automerge actor id of a node enrolled from a bundle, derived from its certificate's serial: the
/// hub binds it to the node at enrolment, so every change the node makes is attributable from its very
/// first session, also when it reaches the hub through a township.
pub fn actor_for_serial(serial: &str) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let full = Sha256::digest(format!("tongban-actor-v1:{serial}").as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// The identity in a PEM certificate (the first one).
pub fn identity_of_pem(pem: &str) -> Result<PeerIdentity, TlsError> {
    identity_of(&certs(pem)?[0])
}

pub(crate) fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for block in pem_blocks(pem, "CERTIFICATE")? {
        out.push(CertificateDer::from(block));
    }
    if out.is_empty() {
        return Err(TlsError::Pem("no certificate".into()));
    }
    Ok(out)
}

pub(crate) fn key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let block = pem_blocks(pem, "PRIVATE KEY")?
        .into_iter()
        .next()
        .ok_or_else(|| TlsError::Pem("no PKCS#8 private key".into()))?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(block)))
}

/// Minimal PEM reader for the blocks rcgen writes (base64 between BEGIN/END lines).
fn pem_blocks(pem: &str, label: &str) -> Result<Vec<Vec<u8>>, TlsError> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let stop = after
            .find(&end)
            .ok_or_else(|| TlsError::Pem(format!("unterminated {label}")))?;
        let body: String = after[..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|e| TlsError::Pem(e.to_string()))?,
        );
        rest = &after[stop + end.len()..];
    }
    Ok(out)
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn roots(ca_pem: &str) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c)?;
    }
    Ok(Arc::new(roots))
}

/// Server side (hub, or a township for its villages): only certificates issued by the county CA.
pub fn server_config(ca_pem: &str, own: &CertKey) -> Result<quinn::ServerConfig, TlsError> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
            .build()
            .map_err(|e| TlsError::Pem(e.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&own.cert_pem)?, key(&own.key_pem)?)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // Resumption: a node that lost its connection comes back without both certificate chains
    // crossing the link again. Stateful (the ticket is a 32-byte id into this cache): a stateless
    // ticket carries the node's certificate chain inside, which made the resumed ClientHello spill
    // into a second padded 1200-byte Initial and cost more than a full handshake. One ticket per
    // connection; 4096 entries of about 2 KB hold every node of a county.
    tls.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    tls.send_tls13_tickets = 1;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(crate::quic::transport(crate::quic::Side::Server)));
    Ok(config)
}

/// Client side (a node towards its upstream): trusts only the county CA, and only the name it dials.
pub fn client_config(ca_pem: &str, own: &CertKey) -> Result<quinn::ClientConfig, TlsError> {
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs(&own.cert_pem)?, key(&own.key_pem)?)?;
    quic_client(tls)
}

/// [`client_config`] with another check of the server's certificate (`upstream_tls`).
pub(crate) fn client_config_verified(
    verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    own: &CertKey,
) -> Result<quinn::ClientConfig, TlsError> {
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(certs(&own.cert_pem)?, key(&own.key_pem)?)?;
    quic_client(tls)
}

fn quic_client(mut tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, TlsError> {
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(crate::quic::transport(crate::quic::Side::Client)));
    Ok(config)
}

/// Checks a server name before connecting (a typo in a bundle should say so, not fail the handshake).
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_string()).map_err(|e| TlsError::Pem(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_carry_code_tier_and_parent() {
        let ca = generate_ca("420222", "阳新县").unwrap();
        let node = issue_node(&ca, "420222100201", Tier::Village, Some("420222100")).unwrap();
        let der = &certs(&node.cert_pem).unwrap()[0];
        let id = identity_of(der).unwrap();
        assert_eq!(id.code, "420222100201");
        assert_eq!(id.tier, Tier::Village);
        assert_eq!(id.parent.as_deref(), Some("420222100"));
        assert!(!id.serial.is_empty());
        let hub = issue_hub(&ca, "420222").unwrap();
        let id = identity_of(&certs(&hub.cert_pem).unwrap()[0]).unwrap();
        assert_eq!((id.code.as_str(), id.tier), ("420222", Tier::County));
    }

    #[test]
    fn configs_build_with_the_ring_provider() {
        let ca = generate_ca("420222", "阳新县").unwrap();
        let hub = issue_hub(&ca, "420222").unwrap();
        let node = issue_node(&ca, "420222100201", Tier::Village, Some("420222100")).unwrap();
        server_config(&ca.cert_pem, &hub).unwrap();
        client_config(&ca.cert_pem, &node).unwrap();
        assert!(matches!(certs("garbage"), Err(TlsError::Pem(_))));
    }
}
