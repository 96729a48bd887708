//! Tongban county hub.
//!
//! - [`county`]: init (CA, hub certificate, store, admin), enrolment bundles, accounts.
//! - [`error`]: the error of those offline operations.
//! - [`certs`]: the county's certificate files; the signing commands `renew` and `web-cert`.
//! - [`gate`]: which peers may sync, and their statistics.
//! - [`web`]: hub routes (nodes, revocation, queues, dashboard) merged into the shared case web app.
//! - [`charts`]: server-drawn SVG charts.
//! - [`report`]: the monthly assessment workbook (.xlsx).
//! - [`notify`]: the outbox sender (log by default), its retries and daily limit.
//! - [`sms`]: the HTTP SMS gateway sender (`serve --sms-url`).
//! - [`site`]: what the hub adds to the shared case web app (texts to applicants, clock warnings, navigation).
//! - [`server`]: `serve`, the HTTP app and the QUIC sync endpoint together.

pub mod certs;
pub mod charts;
pub mod county;
pub mod error;
pub mod gate;
pub mod notify;
pub mod report;
pub mod server;
pub mod site;
pub mod sms;
pub mod web;
