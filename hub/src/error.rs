//! The error of the hub's offline operations (`county`, `certs`): what the command line prints.

use std::path::Path;

use tongban_runtime::store::StoreError;
use tongban_runtime::tls;

#[derive(Debug, thiserror::Error)]
pub enum CountyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    #[error("{0}")]
    Bundle(#[from] tongban_runtime::bundle::BundleError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CountyError + '_ {
    move |source| CountyError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn read(path: &Path) -> Result<String, CountyError> {
    std::fs::read_to_string(path).map_err(io(path))
}
