//! The enrolment bundle: everything a node needs to join the county, written by `tongban-hub enroll`
//! and read by `tongban-node init --bundle` / `enroll`.
//!
//! Two kinds: answering a certificate request (`tongban-node csr`, then `enroll --csr` or
//! `POST /api/nodes`), it holds only certificates, because the node's key never left the node; made
//! for the USB-stick path (`enroll --out` alone), it also holds the key the hub made, says so in the
//! file, and is written readable by its owner only.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tongban_shared::Tier;

use crate::tls::CertKey;

pub const BUNDLE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    pub version: u32,
    pub county: String,
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub parent: Option<String>,
    /// HOST:PORT of the upstream's sync endpoint.
    pub upstream: String,
    /// TLS server name of the upstream.
    pub upstream_name: String,
    /// HOST:PORT of the hub, for a village behind a township: used when the township has been
    /// unreachable for a while.
    #[serde(default)]
    pub fallback: Option<String>,
    pub ca_pem: String,
    pub node: NodeCredentials,
    /// Present exactly when the bundle holds a private key: a warning for whoever opens the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Automerge actors (hex) the county bound to the node besides its certificate's: those its
    /// request declared (`tls::DECLARED_ACTOR`). A standalone node's own must be among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actors: Vec<String>,
}

/// The node's certificate and, in a USB-stick bundle only, its private key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeCredentials {
    pub cert_pem: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
}

/// What a bundle with a key says about itself.
pub const SECRET_NOTICE: &str = "SECRET: this file holds the node's private key. Carry it on a USB stick, install it with `tongban-node init --bundle`, then delete it. 本文件含站点私钥，请妥善保管，导入后删除。";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read bundle {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("bundle {path} is not a Tongban enrolment bundle: {reason}")]
    Invalid { path: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl Bundle {
    pub fn load(path: &Path) -> Result<Bundle, BundleError> {
        let text = std::fs::read_to_string(path).map_err(|source| BundleError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let invalid = |reason: String| BundleError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        let b: Bundle = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if b.version != BUNDLE_VERSION {
            return Err(invalid(format!(
                "version {} (expected {BUNDLE_VERSION})",
                b.version
            )));
        }
        if tongban_shared::validate::check_division_code(&b.code).ok() != Some(b.tier) {
            return Err(invalid(format!(
                "code {} does not fit tier {:?}",
                b.code, b.tier
            )));
        }
        b.upstream
            .parse::<std::net::SocketAddr>()
            .map_err(|e| invalid(format!("upstream {}: {e}", b.upstream)))?;
        let named = crate::tls::identity_of_pem(&b.node.cert_pem)
            .map_err(|e| invalid(format!("node certificate: {e}")))?;
        if named.code != b.code {
            return Err(invalid(format!(
                "its certificate is for {}, not {}",
                named.code, b.code
            )));
        }
        Ok(b)
    }

    /// Writes the bundle; refuses to overwrite an existing file.
    pub fn save(&self, path: &Path) -> Result<(), BundleError> {
        let write_err = |source| BundleError::Write {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
        write_private(path, json.as_bytes()).map_err(write_err)
    }
}

/// Creates a new file readable by its owner only (keys, backups, the control token), failing if it
/// exists. Windows has no mode bits: the file inherits its directory's access list (the data
/// directory's is the service account's and administrators', docs/SECURITY.md).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// [`create_private`] with `bytes` in it, made durable.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = create_private(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Where a data directory keeps its TLS files (node and hub alike): the one place that says so.
pub fn tls_dir(data: &Path) -> std::path::PathBuf {
    data.join("tls")
}

/// The CA certificate, certificate and key of an enrolled node, as installed from its bundle.
pub struct NodeTls {
    pub ca_pem: String,
    pub own: CertKey,
}

/// Why a node's TLS files cannot be installed or read.
#[derive(Debug, thiserror::Error)]
#[error("TLS files in {dir}: {reason}")]
pub struct TlsFilesError {
    pub dir: String,
    pub reason: String,
}

const CA_FILE: &str = "ca.pem";
const NODE_CERT_FILE: &str = "node.pem";
const NODE_KEY_FILE: &str = "node.key";
/// A renewal's new key until its certificate is installed, and that certificate until the switch.
const NEXT_KEY_FILE: &str = "node.key.next";
const NEXT_CERT_FILE: &str = "node.pem.next";

/// Completes a renewal whose new certificate is in place: the new key, then the certificate, take the
/// current ones' names. Either crash point leaves a state this finishes: key renamed and certificate
/// not yet (the next certificate then certifies the current key), or nothing renamed.
fn finish_renewal(dir: &Path) -> std::io::Result<()> {
    let next_cert = dir.join(NEXT_CERT_FILE);
    if !next_cert.exists() {
        return Ok(());
    }
    let cert = std::fs::read_to_string(&next_cert)?;
    let next_key = dir.join(NEXT_KEY_FILE);
    let key_path = if next_key.exists() {
        next_key.clone()
    } else {
        dir.join(NODE_KEY_FILE)
    };
    let key = std::fs::read_to_string(&key_path)?;
    if !crate::tls::certifies_key(&cert, &key).unwrap_or(false) {
        // Not for the key it would go with: it must not replace a working certificate.
        std::fs::remove_file(&next_cert)?;
        return sync_dir(dir);
    }
    if key_path == next_key {
        std::fs::rename(&next_key, dir.join(NODE_KEY_FILE))?;
    }
    std::fs::rename(&next_cert, dir.join(NODE_CERT_FILE))?;
    sync_dir(dir)
}

/// A certificate request for the key in `dir/key_file`, which is made first (0600) when there is
/// none: asked again before the county answered, it is a request for the same key.
/// Above a standalone node's certificate request, one such line per automerge actor the node wrote
/// its cases with before enrolment (`tongban-node csr`). The county binds those actors to the node
/// when it signs the request, so the cases are attributable and no other peer can claim the actor
/// first. Outside the PEM block, where RFC 7468 allows explanatory text; the operator carries the
/// file to the county as they carry the request itself.
pub const DECLARED_ACTOR: &str = "Tongban-Actor: ";

/// `request_pem` with a `DECLARED_ACTOR` line above it for each of `actors`.
pub fn declare_actors(request_pem: &str, actors: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for actor in actors {
        out.push_str(DECLARED_ACTOR);
        out.push_str(&crate::store::keys::hex(actor));
        out.push('\n');
    }
    out.push_str(request_pem);
    out
}

/// The actors a request file declares (see `DECLARED_ACTOR`).
pub fn declared_actors(text: &str) -> Result<Vec<[u8; 16]>, crate::tls::TlsError> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix(DECLARED_ACTOR.trim_end()))
        .map(|value| {
            parse_actor(value.trim()).ok_or_else(|| {
                crate::tls::TlsError::Request(format!(
                    "\"{DECLARED_ACTOR}{}\" is not a 32-digit hex actor id",
                    value.trim()
                ))
            })
        })
        .collect()
}

/// A 16-byte actor id from its hex form.
pub fn parse_actor(hex: &str) -> Option<[u8; 16]> {
    crate::store::keys::unhex(hex)?.try_into().ok()
}

fn key_and_request(dir: &Path, key_file: &str, code: &str) -> Result<String, String> {
    let key_path = dir.join(key_file);
    if key_path.exists() {
        let key = std::fs::read_to_string(&key_path).map_err(|e| format!("{key_file}: {e}"))?;
        let (_, request) =
            crate::tls::node_request_for_key(code, &key).map_err(|e| e.to_string())?;
        return Ok(request);
    }
    let (key, request) = crate::tls::node_request(code).map_err(|e| e.to_string())?;
    write_private(&key_path, key.as_bytes()).map_err(|e| format!("{key_file}: {e}"))?;
    Ok(request)
}

/// Makes renames in `dir` durable (Unix: fsync of the directory; Windows commits them with the files).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl NodeTls {
    /// Writes the bundle's CA and certificate into the data directory, and its key when it holds one
    /// (readable by the owner only). A bundle without a key answers this node's certificate request:
    /// the key `tongban-node csr` made must be there and be the one the certificate is for. Refuses
    /// to replace an installed certificate.
    pub fn install(data: &Path, bundle: &Bundle) -> Result<(), TlsFilesError> {
        let dir = tls_dir(data);
        let err = |reason: String| TlsFilesError {
            dir: dir.display().to_string(),
            reason,
        };
        if dir.join(NODE_CERT_FILE).exists() {
            return Err(err("this node is already enrolled".into()));
        }
        let key_path = dir.join(NODE_KEY_FILE);
        let key_pem = match (&bundle.node.key_pem, key_path.exists()) {
            (Some(_), true) => {
                return Err(err(format!(
                    "this bundle carries a key, but {} already holds one from `tongban-node csr`: \
                     ask the county for a bundle that answers that request",
                    key_path.display()
                )))
            }
            (Some(key), false) => key.clone(),
            (None, false) => {
                return Err(err(format!(
                    "this bundle answers a certificate request, but {} has no key: run \
                     `tongban-node csr --data {} --code {}` on this PC and have the county sign that",
                    dir.display(),
                    data.display(),
                    bundle.code
                )))
            }
            (None, true) => std::fs::read_to_string(&key_path)
                .map_err(|e| err(format!("{NODE_KEY_FILE}: {e}")))?,
        };
        if !crate::tls::certifies_key(&bundle.node.cert_pem, &key_pem)
            .map_err(|e| err(e.to_string()))?
        {
            return Err(err(
                "the bundle's certificate is not for this node's key (was the request made on another PC?)"
                    .into(),
            ));
        }
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let mut files = Vec::new();
        if let Some(key) = &bundle.node.key_pem {
            files.push((NODE_KEY_FILE, key));
        }
        // The certificate last: its presence is what "enrolled" means (see the check above).
        files.push((CA_FILE, &bundle.ca_pem));
        files.push((NODE_CERT_FILE, &bundle.node.cert_pem));
        for (name, content) in files {
            write_private(&dir.join(name), content.as_bytes())
                .map_err(|e| err(format!("{name}: {e}")))?;
        }
        Ok(())
    }

    /// Makes this node's key (once; kept in the data directory, 0600) and answers a PEM certificate
    /// request for it. Asked again before the bundle came back, it answers a request for the same key.
    pub fn request(data: &Path, code: &str) -> Result<String, TlsFilesError> {
        let dir = tls_dir(data);
        let err = |reason: String| TlsFilesError {
            dir: dir.display().to_string(),
            reason,
        };
        if dir.join(NODE_CERT_FILE).exists() {
            return Err(err("this node is already enrolled".into()));
        }
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        crate::store::restrict_dir_to_owner(data).map_err(|e| err(e.to_string()))?;
        crate::store::restrict_dir_to_owner(&dir).map_err(|e| err(e.to_string()))?;
        key_and_request(&dir, NODE_KEY_FILE, code).map_err(err)
    }

    /// What both renewal steps start from: the TLS directory, the installed files, the code their
    /// certificate names, and the error maker for that directory.
    fn enrolled(
        data: &Path,
    ) -> Result<(PathBuf, NodeTls, String, impl Fn(String) -> TlsFilesError), TlsFilesError> {
        let dir = tls_dir(data);
        let shown = dir.display().to_string();
        let err = move |reason: String| TlsFilesError {
            dir: shown.clone(),
            reason,
        };
        let current = NodeTls::load(data)?;
        let code = crate::tls::identity_of_pem(&current.own.cert_pem)
            .map_err(|e| err(e.to_string()))?
            .code;
        Ok((dir, current, code, err))
    }

    /// Renewal, step 1 on an enrolled node: makes the next key (once, 0600, beside the current
    /// one, which stays in use) and answers a certificate request for it. The county signs it with
    /// `enroll --csr FILE --replace` (or `POST /api/nodes` with `"replace": true`).
    pub fn renewal_request(data: &Path) -> Result<String, TlsFilesError> {
        let (dir, _, code, err) = NodeTls::enrolled(data)?;
        key_and_request(&dir, NEXT_KEY_FILE, &code).map_err(err)
    }

    /// Renewal, step 2: installs the county's answer (a bundle of certificates only, for this very
    /// node and the next key) and switches to it. The switch is two renames; a crash between them is
    /// finished by the next [`NodeTls::load`].
    pub fn renew(data: &Path, bundle: &Bundle) -> Result<(), TlsFilesError> {
        let (dir, current, code, err) = NodeTls::enrolled(data)?;
        if bundle.code != code {
            return Err(err(format!(
                "the bundle is for {}, this node is {code}",
                bundle.code
            )));
        }
        if bundle.node.key_pem.is_some() {
            return Err(err(
                "this bundle carries a key: a renewal answers `tongban-node renew --out`".into(),
            ));
        }
        if bundle.ca_pem.trim() != current.ca_pem.trim() {
            return Err(err("the bundle is from another county CA".into()));
        }
        let next_key = std::fs::read_to_string(dir.join(NEXT_KEY_FILE)).map_err(|_| {
            err(format!(
                "no renewal is under way: run `tongban-node renew --data {} --out FILE` first",
                data.display()
            ))
        })?;
        if !crate::tls::certifies_key(&bundle.node.cert_pem, &next_key)
            .map_err(|e| err(e.to_string()))?
        {
            return Err(err(
                "the bundle's certificate is not for this node's new key (answered another request?)"
                    .into(),
            ));
        }
        let next_cert = dir.join(NEXT_CERT_FILE);
        let _ = std::fs::remove_file(&next_cert);
        write_private(&next_cert, bundle.node.cert_pem.as_bytes())
            .map_err(|e| err(format!("{NEXT_CERT_FILE}: {e}")))?;
        finish_renewal(&dir).map_err(|e| err(e.to_string()))
    }

    /// Reads the installed files.
    pub fn load(data: &Path) -> Result<NodeTls, TlsFilesError> {
        let dir = tls_dir(data);
        finish_renewal(&dir).map_err(|e| TlsFilesError {
            dir: dir.display().to_string(),
            reason: format!("finishing a renewal: {e}"),
        })?;
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| TlsFilesError {
                dir: dir.display().to_string(),
                reason: format!("{name}: {e}"),
            })
        };
        Ok(NodeTls {
            ca_pem: read(CA_FILE)?,
            own: CertKey {
                cert_pem: read(NODE_CERT_FILE)?,
                key_pem: read(NODE_KEY_FILE)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crash between the two renames of a renewal's switch (the new key in place, the new
    /// certificate not yet) is finished at the next load: key and certificate match again.
    #[test]
    fn a_renewal_cut_short_between_its_renames_is_finished_at_load() {
        let ca = crate::tls::generate_ca("420222", "阳新县").unwrap();
        let code = "420222100201";
        let sign = |request: &str| {
            crate::tls::sign_node_request(
                &ca,
                request,
                code,
                Tier::Village,
                Some("420222100"),
                crate::tls::Validity::years_from_today(crate::tls::NODE_CERT_YEARS),
            )
            .unwrap()
        };
        let data = tempfile::tempdir().unwrap();
        let dir = tls_dir(data.path());
        std::fs::create_dir_all(&dir).unwrap();
        let (key, request) = crate::tls::node_request(code).unwrap();
        for (name, content) in [
            (CA_FILE, ca.cert_pem.clone()),
            (NODE_KEY_FILE, key.clone()),
            (NODE_CERT_FILE, sign(&request)),
        ] {
            write_private(&dir.join(name), content.as_bytes()).unwrap();
        }
        let renewal = NodeTls::renewal_request(data.path()).unwrap();
        let next_key = std::fs::read_to_string(dir.join(NEXT_KEY_FILE)).unwrap();
        assert_ne!(next_key, key);
        assert_eq!(
            NodeTls::load(data.path()).unwrap().own.key_pem,
            key,
            "the current key stays in use until the answer is installed"
        );

        // The state a crash after the first rename leaves.
        std::fs::rename(dir.join(NEXT_KEY_FILE), dir.join(NODE_KEY_FILE)).unwrap();
        write_private(&dir.join(NEXT_CERT_FILE), sign(&renewal).as_bytes()).unwrap();
        let loaded = NodeTls::load(data.path()).unwrap();
        assert_eq!(loaded.own.key_pem, next_key);
        assert!(crate::tls::certifies_key(&loaded.own.cert_pem, &loaded.own.key_pem).unwrap());
        assert!(!dir.join(NEXT_CERT_FILE).exists());

        // A leftover certificate for some other key never replaces a working one.
        let (_, stranger) = crate::tls::node_request(code).unwrap();
        write_private(&dir.join(NEXT_CERT_FILE), sign(&stranger).as_bytes()).unwrap();
        let again = NodeTls::load(data.path()).unwrap();
        assert_eq!(again.own.cert_pem, loaded.own.cert_pem);
        assert!(!dir.join(NEXT_CERT_FILE).exists());
    }
}
