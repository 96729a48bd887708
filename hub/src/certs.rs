//! The county's certificate files in `DIR/tls/` (layout in `county`): reading them for the running
//! hub (which never reads the root's key), and the signing commands `renew` and `web-cert`, which do.

use std::path::Path;

use rand::RngCore;
use tongban_runtime::bundle::write_private;
use tongban_runtime::tls::{self, CertKey};

use crate::error::{io, read, CountyError};

pub use tongban_runtime::bundle::tls_dir;

/// The county root certificate (public): what nodes and browsers trust.
pub fn ca_cert(data: &Path) -> Result<String, CountyError> {
    read(&tls_dir(data).join("ca.pem"))
}

/// The county root with its key, for the signing commands only: `key` names where the operator
/// keeps it (a USB stick) when it is not in `tls/ca.key`.
pub fn root_ca(data: &Path, key: Option<&Path>) -> Result<CertKey, CountyError> {
    let default = tls_dir(data).join("ca.key");
    let key_path = key.unwrap_or(&default);
    let key_pem = std::fs::read_to_string(key_path).map_err(|e| {
        CountyError::Invalid(format!(
            "the county CA key {}: {e} (a key kept off this PC is named with --ca-key FILE)",
            key_path.display()
        ))
    })?;
    let root = CertKey {
        cert_pem: ca_cert(data)?,
        key_pem,
    };
    if !tls::certifies_key(&root.cert_pem, &root.key_pem)? {
        return Err(CountyError::Invalid(format!(
            "{} is not the key of this county's CA ({})",
            key_path.display(),
            tls_dir(data).join("ca.pem").display()
        )));
    }
    Ok(root)
}

/// What enrolment signs with: the issuing CA, and the root that bundles name for nodes to trust.
pub struct NodeSigner {
    pub root_pem: String,
    pub issuing: CertKey,
}

/// The running hub's and `enroll`'s signer: no root key needed.
pub fn node_signer(data: &Path) -> Result<NodeSigner, CountyError> {
    Ok(NodeSigner {
        root_pem: ca_cert(data)?,
        issuing: issuing_ca(data)?,
    })
}

/// The issuing CA that signs node certificates (the running hub reads this, never the root's key).
pub fn issuing_ca(data: &Path) -> Result<CertKey, CountyError> {
    let dir = tls_dir(data);
    let (cert, key) = (dir.join("issuing.pem"), dir.join("issuing.key"));
    if !cert.exists() || !key.exists() {
        return Err(CountyError::Invalid(format!(
            "this hub has no issuing CA ({}): make one with `tongban-hub renew --data {}` \
             (it signs with the county CA key)",
            cert.display(),
            data.display()
        )));
    }
    Ok(CertKey {
        cert_pem: read(&cert)?,
        key_pem: read(&key)?,
    })
}

pub fn hub_cert(data: &Path) -> Result<CertKey, CountyError> {
    let dir = tls_dir(data);
    Ok(CertKey {
        cert_pem: read(&dir.join("hub.pem"))?,
        key_pem: read(&dir.join("hub.key"))?,
    })
}

/// Writes `files` (name in `tls/`, content) each aside and renamed into place, keys first, so a
/// crash never leaves a certificate without its key.
fn replace_tls_files(data: &Path, files: &[(&str, &str)]) -> Result<(), CountyError> {
    let dir = tls_dir(data);
    for (name, content) in files {
        let path = dir.join(name);
        let fresh = path.with_extension("new");
        let _ = std::fs::remove_file(&fresh);
        write_private(&fresh, content.as_bytes()).map_err(io(&fresh))?;
        std::fs::rename(&fresh, &path).map_err(io(&path))?;
    }
    Ok(())
}

/// The certificate the web UI is served with over HTTPS: an operator's own (`--tls-cert/--tls-key`)
/// as given, otherwise `tls/web.pem`, which must name each of `names`. The running hub does not
/// issue it (that needs the county CA key): `init` and `tongban-hub web-cert` do.
pub fn web_cert(
    data: &Path,
    names: &[String],
    operator: Option<(&Path, &Path)>,
) -> Result<CertKey, CountyError> {
    if let Some((cert, key)) = operator {
        return Ok(CertKey {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        });
    }
    let dir = tls_dir(data);
    let current = CertKey {
        cert_pem: read(&dir.join("web.pem"))?,
        key_pem: read(&dir.join("web.key"))?,
    };
    let named = tongban_runtime::web_tls::names_of(&current.cert_pem)?;
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !named.contains(&tongban_runtime::web_tls::canonical(n)))
        .collect();
    if !missing.is_empty() {
        let asked: Vec<String> = missing.iter().map(|n| format!("--web-name {n}")).collect();
        return Err(CountyError::Invalid(format!(
            "the web certificate {} does not name {}: issue one with `tongban-hub web-cert \
             --data {} {}` (it signs with the county CA key), then start the hub again",
            dir.join("web.pem").display(),
            missing
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            data.display(),
            asked.join(" ")
        )));
    }
    let ends = tls::not_after(&current.cert_pem)?;
    if ends < chrono::Utc::now() + chrono::Duration::days(30) {
        tracing::warn!(until = %ends, "the web certificate ends soon: run `tongban-hub renew`");
    }
    Ok(current)
}

/// `tongban-hub web-cert`: issues `tls/web.pem` with the county root for the default names, those
/// the current certificate has, and `names`.
pub fn issue_web_cert(
    data: &Path,
    root: &CertKey,
    names: &[String],
) -> Result<Vec<String>, CountyError> {
    let mut wanted = tongban_runtime::web_tls::default_names();
    if let Ok(current) = read(&tls_dir(data).join("web.pem")) {
        wanted.extend(tongban_runtime::web_tls::names_of(&current)?);
    }
    wanted.extend(names.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    wanted.retain(|n| seen.insert(tongban_runtime::web_tls::canonical(n)));
    let county_code = tls::identity_of_pem(&hub_cert(data)?.cert_pem)?.code;
    let issued = tongban_runtime::web_tls::issue_web(root, &county_code, &wanted)?;
    replace_tls_files(
        data,
        &[("web.key", &issued.key_pem), ("web.pem", &issued.cert_pem)],
    )?;
    Ok(wanted)
}

/// `tongban-hub renew`: new sync and web certificates for the hub (same names), and a new issuing
/// CA when there is none or it has less left than a node certificate lasts. Takes effect when the
/// hub starts next; nodes need nothing (they trust the root and the hub's name).
pub fn renew(data: &Path, root: &CertKey) -> Result<Vec<String>, CountyError> {
    let mut renewed = Vec::new();
    let county_code = tls::identity_of_pem(&hub_cert(data)?.cert_pem)?.code;
    let issuing_ends = issuing_ca(data)
        .ok()
        .map(|ca| tls::not_after(&ca.cert_pem))
        .transpose()?;
    let soon = chrono::Utc::now() + chrono::Duration::days(365 * i64::from(tls::NODE_CERT_YEARS));
    if issuing_ends.is_none_or(|ends| ends < soon) {
        let name = store_county_name(data)?;
        let issuing = tls::issue_issuing_ca(root, &county_code, &name)?;
        replace_tls_files(
            data,
            &[
                ("issuing.key", &issuing.key_pem),
                ("issuing.pem", &issuing.cert_pem),
            ],
        )?;
        renewed.push(format!(
            "issuing CA until {}",
            tls::not_after(&issuing.cert_pem)?.format("%Y-%m-%d")
        ));
    }
    let hub = tls::issue_hub(root, &county_code)?;
    replace_tls_files(
        data,
        &[("hub.key", &hub.key_pem), ("hub.pem", &hub.cert_pem)],
    )?;
    renewed.push(format!(
        "sync certificate until {}",
        tls::not_after(&hub.cert_pem)?.format("%Y-%m-%d")
    ));
    issue_web_cert(data, root, &[])?;
    renewed.push(format!(
        "web certificate until {}",
        tls::not_after(&read(&tls_dir(data).join("web.pem"))?)?.format("%Y-%m-%d")
    ));
    Ok(renewed)
}

/// The county's name as the root certificate says it (`通办 <name> 县级CA`).
fn store_county_name(data: &Path) -> Result<String, CountyError> {
    let pem = ca_cert(data)?;
    let subject = tls::subject_common_name(&pem)?;
    Ok(subject
        .trim_start_matches("通办 ")
        .trim_end_matches(" 县级CA")
        .to_string())
}

/// The key the hub's QUIC endpoint derives stateless-reset tokens from, created on first use (hubs
/// initialised before it existed get one at their next start). Kept across restarts so that a
/// restarted hub can tell nodes at once that their old connection is gone, instead of leaving their
/// sessions to time out after 30 s.
pub fn reset_key(data: &Path) -> Result<Vec<u8>, CountyError> {
    let path = tls_dir(data).join("reset.key");
    match std::fs::read(&path) {
        Ok(key) if key.len() == 64 => Ok(key),
        Ok(_) => Err(CountyError::Invalid(format!(
            "{} is not a 64-byte key; delete it and restart the hub",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 64];
            rand::thread_rng().fill_bytes(&mut key);
            write_private(&path, &key).map_err(io(&path))?;
            Ok(key)
        }
        Err(e) => Err(io(&path)(e)),
    }
}
