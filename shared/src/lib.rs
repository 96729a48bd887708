//! Tongban shared core: what every tier (village node, township node, county hub) must agree on.
//!
//! - [`action`]: every action a case can see (names, labels, which tiers take them).
//! - [`catalog`]: the service-item catalogue (data, versioned).
//! - [`catalog_diff`]: what a new catalogue changes, for the admin to check before publishing.
//! - [`calendar`]: the working-day calendar (data, one table a year).
//! - [`validate`]: ID numbers, credit codes, mobiles, division codes.
//! - [`case`]: the case document (automerge), its states and intake validation.
//! - [`case_no`]: case numbers, checked once where they enter.
//! - [`event`]: the case's event log as stored in its document.
//! - [`fold`]: the case's state and workflow derived from its events, with the conflict rules.
//! - [`ingress`]: an upstream's check of the events a node sends (authority per event).
//! - [`legacy`]: converting the history list of the previous document format into events.
//! - [`limits`]: how long every text of an action may be, and the size budget of a case document.
//! - [`sync`]: the sans-IO sync protocol (frames, set summaries, scopes, session state machines).
//! - [`workflow`]: roles and taking an action (checked against the fold, written as an event).
//! - [`stats`]: deadline colours, hand-over delays and the supervision counts.
//! - [`aggregate`]: those counts as parts the store keeps with every case write.
//! - [`postings`]: the tokens a case is filed under for searches, department lists and queues.
//! - [`todo`]: what a case asks of the station that took it (the agent's inbox).
//!
//! Nothing here does I/O, reads a clock or draws randomness: callers pass those in, so the same code runs
//! in the node, the hub and a deterministic simulator.

pub mod action;
pub mod aggregate;
pub mod calendar;
pub mod case;
pub mod case_no;
pub mod catalog;
pub mod catalog_diff;
pub mod event;
pub mod fold;
pub mod inflation;
pub mod ingress;
pub mod legacy;
pub mod limits;
pub mod manual;
pub mod postings;
pub mod stats;
pub mod sync;
pub mod todo;
pub mod validate;
pub mod workflow;

pub use validate::FieldError;

/// Place of a node in the county: decides its scope and who its upstream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    County,
    Township,
    Village,
}

impl Tier {
    /// The `role` of `GET /api/health`.
    pub fn role(self) -> &'static str {
        match self {
            Tier::County => "hub",
            Tier::Township => "township",
            Tier::Village => "village",
        }
    }

    /// The name stored in documents (`county`, `township`, `village`).
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::County => "county",
            Tier::Township => "township",
            Tier::Village => "village",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Tier::County => "县级政务服务中心",
            Tier::Township => "乡镇便民服务中心",
            Tier::Village => "村（社区）便民服务站",
        }
    }
}
