//! Tongban node: the program on a village station's or township centre's PC.
//!
//! The durable sled store lives in `tongban_runtime::store`, shared with the hub.
//! - [`auth`]: accounts, password hashes, sessions.
//! - [`app`]: state, errors, authentication, the intake service and the router.
//! - [`api`] / [`ui`]: JSON endpoints and server-rendered pages.
//! - [`setup`]: initialising a data directory, demo data, and running the server.
//! - [`sync`]: the owner task that syncs with the upstream, and its status.
//! - [`relay`]: a township's sync endpoint for its villages.

pub mod api;
pub mod app;
pub mod auth;
pub mod relay;
pub mod setup;
pub mod sync;
pub mod ui;
