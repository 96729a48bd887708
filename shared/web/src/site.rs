//! The one place where the tiers differ inside the case web app: a [`Site`] is what the node or the
//! hub plugs in. Everything else in this crate behaves the same at every tier.
//!
//! The trait is small on purpose: a tier that needs more than a hook here has its own routes in its
//! own crate (the node's `/api/sync*`, the hub's `/nodes`, `/queue`, …), merged into [`crate::router`].

use tongban_runtime::store::{Store, StoreError};
use tongban_shared::case::CaseDoc;
use tongban_shared::workflow::ActionInput;

/// The link badge in every page's header.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Badge {
    /// `badge-online` or `badge-offline` (the stylesheet colours them).
    pub class: &'static str,
    pub text: String,
    /// Shown on hover: what the state means for the agent.
    pub hint: String,
    /// Shown on every page when set, above everything: the station must act (it was revoked).
    pub alert: Option<String>,
    /// Whether the page offers 立即同步 (a node with an upstream).
    pub sync_now: bool,
}

/// A warning that the times some node wrote into a case may be wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockWarning {
    /// The node whose history entries are flagged.
    pub node: String,
    pub sentence: String,
}

/// What a tier adds to the shared case web app.
pub trait Site: Send + Sync + 'static {
    /// A case write (a new case or an action) is durable. The node's uplink sends it up soon.
    fn after_write(&self) {}

    /// An action is durable; runs on a blocking thread with the store. The hub queues the text that
    /// tells the applicant (acceptance, correction request, rejection, result ready) here, with
    /// the county's settings (where results are collected).
    fn after_action(
        &self,
        _store: &Store,
        _input: &ActionInput,
        _case: &CaseDoc,
        _county: &tongban_shared::catalog::CountySettings,
        _now_rfc3339: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The header badge: the state of the link to the upstream, or the county's own.
    fn badge(&self) -> Badge;

    /// Whether times in `case` may be wrong; runs on a blocking thread (the hub reads its node records).
    fn clock_warning(&self, _store: &Store, _case: &CaseDoc) -> Option<ClockWarning> {
        None
    }

    /// Why the upstream refused this case in the last sync session, if it did (a case over the size
    /// budget, one the county's rules do not accept): the case page says so.
    fn sync_refusal(&self, _case_no: &str) -> Option<String> {
        None
    }

    /// Cases written here that the upstream has not yet taken (the home page's 待上传); `None` when
    /// nothing goes up from this tier (the hub) or there is no upstream yet (a standalone node).
    fn pending_up(&self) -> Option<u64> {
        None
    }

    /// Where `/` sends an account of `role` instead of the station's home page: the county's
    /// staff start at their queue. `None`: the home page with the to-do inbox.
    fn home_for(&self, _role: &str) -> Option<&'static str> {
        None
    }

    /// Extra links in the header's navigation, `(href, label)`.
    fn nav(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}
