//! Tongban runtime: the parts node and hub share that do I/O, kept out of the pure `tongban-shared`.
//!
//! - [`store`]: the sled store of cases, indexes, sync summaries, accounts and identity.
//! - [`bundle`]: the enrolment bundle a node joins the county with.
//! - [`clock`]: the wall clock, and the skew between a node's and the county's.
//! - [`config`]: `--config FILE`, every option of both binaries in a TOML file.
//! - [`control`], [`maintenance`]: backup and restore, also of a running process.
//! - [`metrics`]: the registry of `GET /metrics` and every metric family in it.
//! - [`process`]: logging, the async runtime and the shutdown signal of both binaries.
//! - [`replica`]: the sync protocol's [`tongban_shared::sync::Replica`] over that store.
//! - [`tls`]: the county CA, certificates and the mutual-TLS configurations.
//! - [`transport`]: the QUIC driver of sync sessions (client and server).
//! - [`web_tls`]: the HTTPS certificate and server configuration of the web UI.

pub mod bundle;
pub mod clock;
pub mod config;
pub mod control;
pub mod link;
pub mod maintenance;
pub mod metrics;
pub mod process;
pub mod push;
mod quic;
pub mod replica;
pub mod store;
pub mod tls;
pub mod transport;
pub mod udp;
pub mod upstream_tls;
pub mod web_tls;
