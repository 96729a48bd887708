//! HTTPS for the web UI and API: the certificate the county CA issues for the hall's browsers, and the
//! rustls server configuration (TLS 1.2 and 1.3 only, HTTP/1.1) both tiers serve it with.
//!
//! Sync identity (mutual TLS over QUIC) lives in [`crate::tls`]; this is the other, browser-facing
//! use of the same CA.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType};

use crate::tls::{certs, key, provider, random_serial, CertKey, TlsError, Validity};

/// Two years: browsers accept long lifetimes from a root the user installed, and a hall renews it by
/// deleting `tls/web.pem` and restarting the hub.
pub const WEB_CERT_YEARS: i32 = 2;

/// The names a web certificate is always issued for, whatever else the hall reaches the hub by.
pub fn default_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}

/// Issues the web server's certificate for `names` (DNS names or IP addresses).
pub fn issue_web(ca: &CertKey, county_code: &str, names: &[String]) -> Result<CertKey, TlsError> {
    let mut params = CertificateParams::default();
    for name in names {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                name.clone()
                    .try_into()
                    .map_err(|e| TlsError::Pem(format!("web name {name}: {e}")))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    params
        .distinguished_name
        .push(DnType::CommonName, format!("tongban web {county_code}"));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.serial_number = Some(random_serial());
    Validity::years_from_today(WEB_CERT_YEARS).apply(&mut params);
    crate::tls::issue(ca, params)
}

/// The DNS names and IP addresses a certificate names (canonical, see `canonical`).
pub fn names_of(cert_pem: &str) -> Result<Vec<String>, TlsError> {
    let der = &certs(cert_pem)?[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Pem(format!("unparsable certificate: {e}")))?;
    let mut have = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => {
                    have.push(d.to_ascii_lowercase())
                }
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    have.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(have)
}

/// A name as `names_of` lists it: IP addresses in their usual form, DNS names in lower case.
pub fn canonical(name: &str) -> String {
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => name.to_ascii_lowercase(),
    }
}

/// The server side of HTTPS: TLS 1.2 or 1.3 (rustls offers nothing older), no client certificates,
/// HTTP/1.1 by ALPN.
pub fn server_config(own: &CertKey) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs(&own.cert_pem)?, key(&own.key_pem)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_web_certificate_names_what_it_was_issued_for_and_no_more() {
        let ca = crate::tls::generate_ca("420222", "阳新县").unwrap();
        let mut names = default_names();
        names.push("10.1.2.3".into());
        names.push("Hub.Yangxin.gov".into());
        let web = issue_web(&ca, "420222", &names).unwrap();
        let named = names_of(&web.cert_pem).unwrap();
        assert!(
            names.iter().all(|n| named.contains(&canonical(n))),
            "{named:?}"
        );
        assert!(!named.contains(&canonical("10.9.9.9")));
        assert_eq!(named.len(), names.len());
        server_config(&web).unwrap();
    }
}
