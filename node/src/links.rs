//! A township's view of its villages' links (last seen, sessions, refusals, pending cases), written by
//! the relay as villages sync and reported to the county by the uplink in every session.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tongban_shared::sync::frame::LinkReport;

/// What the township knows of each village's link, by village code.
pub type Links = Arc<Mutex<BTreeMap<String, LinkReport>>>;
