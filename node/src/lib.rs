//! Tongban node: the program on a village station's or township centre's PC. It serves the case web
//! app of `tongban-web` over the cases in its scope and syncs them with its upstream.
//!
//! Modules form a tree, leaves first:
//! - [`setup`]: initialising a data directory, enrolling a standalone node.
//! - [`users`]: the station's per-person accounts on a stopped node (`tongban-node user …`).
//! - [`demo_data`]: generated cases for demos and benchmarks.
//! - [`links`]: a township's view of its villages' links.
//! - [`relay`]: a township's sync endpoint for its villages.
//! - [`uplink`]: the owner task that syncs with the upstream, its status and `/api/sync*`.
//! - [`restore`]: a replacement PC pulling its scope back (`init --restore`).
//! - [`sync_api`]: `GET /api/sync`, `POST /api/sync/now` over the uplink.
//! - [`site`]: what the node adds to the web app (badge, clock warning, hand-off to the uplink).
//! - [`serve`]: running all of it until shutdown.
//! - [`service`]: the node as a Windows service (install, uninstall, run under the service manager).

pub mod demo_data;
pub mod links;
pub mod relay;
pub mod restore;
pub mod serve;
pub mod service;
pub mod setup;
pub mod site;
pub mod sync_api;
pub mod uplink;
pub mod users;
