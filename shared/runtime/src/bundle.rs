//! The enrolment bundle: everything a node needs to join the county, written by `tongban-hub enroll`
//! and read by `tongban-node init --bundle` / `enroll`. It holds the node's private key, so it is
//! written readable by its owner only.

use std::path::Path;

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
    pub node: CertKey,
}

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

/// Creates a new file readable by its owner only (keys), failing if it exists.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
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

impl NodeTls {
    /// Writes the bundle's CA, certificate and key into the data directory (the key readable by the
    /// owner only). Refuses to replace files that are already there.
    pub fn install(data: &Path, bundle: &Bundle) -> Result<(), TlsFilesError> {
        let dir = tls_dir(data);
        let err = |reason: String| TlsFilesError {
            dir: dir.display().to_string(),
            reason,
        };
        if dir.join(NODE_KEY_FILE).exists() {
            return Err(err("this node is already enrolled".into()));
        }
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        for (name, content) in [
            (CA_FILE, &bundle.ca_pem),
            (NODE_CERT_FILE, &bundle.node.cert_pem),
            (NODE_KEY_FILE, &bundle.node.key_pem),
        ] {
            write_private(&dir.join(name), content.as_bytes())
                .map_err(|e| err(format!("{name}: {e}")))?;
        }
        Ok(())
    }

    /// Reads the installed files.
    pub fn load(data: &Path) -> Result<NodeTls, TlsFilesError> {
        let dir = tls_dir(data);
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
