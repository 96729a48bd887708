//! The hub's [`Site`]: the county badge, the texts to applicants queued with the county's actions,
//! the warning when the node that took a case in has a wrong clock, and the county's navigation.

use std::sync::Arc;

use tokio::sync::Notify;
use tongban_runtime::clock::{describe_skew, SKEW_WARNING_SECS};
use tongban_runtime::store::{Store, StoreError};
use tongban_shared::case::CaseDoc;
use tongban_shared::catalog::CountySettings;
use tongban_shared::workflow::{self, ActionInput};
use tongban_web::site::{Badge, ClockWarning, Site};

pub struct HubSite {
    /// Woken when a text to an applicant is queued (the outbox sender waits on it).
    pub outbox_wake: Arc<Notify>,
}

impl Site for HubSite {
    /// The county tells the applicant what concerns them; nodes leave that to the county.
    fn after_action(
        &self,
        store: &Store,
        input: &ActionInput,
        case: &CaseDoc,
        county: &CountySettings,
        now_rfc3339: &str,
    ) -> Result<(), StoreError> {
        if let Some((kind, text)) = workflow::applicant_notice(input.action, case, &county.hall) {
            store.county().enqueue_message(
                &case.case_no,
                &case.applicant.phone,
                kind,
                &text,
                now_rfc3339,
            )?;
            self.outbox_wake.notify_one();
        }
        Ok(())
    }

    fn badge(&self) -> Badge {
        Badge {
            class: "badge-online",
            text: "县级平台".to_string(),
            hint: "县级政务服务中心：汇总全县各站点的办件。".to_string(),
            alert: None,
            sync_now: false,
        }
    }

    /// The clock of the node that took the case in, as measured in its last session.
    fn clock_warning(&self, store: &Store, case: &CaseDoc) -> Option<ClockWarning> {
        let rec = store.county().node_record(&case.agent.node_code).ok()??;
        let skew = rec.clock_skew_s?;
        (skew.abs() > SKEW_WARNING_SECS).then(|| ClockWarning {
            node: rec.code.clone(),
            sentence: format!(
                "代办点“{}”的时钟比县级服务器{}，它记下的时间可能不准。办理期限以县级时间为准。",
                rec.name,
                describe_skew(skew)
            ),
        })
    }

    /// Every county role has its queue (the admin's is the whole county's).
    fn home_for(&self, _role: &str) -> Option<&'static str> {
        Some("/queue")
    }

    fn nav(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("/queue", "待办"),
            ("/dashboard", "统计"),
            ("/nodes", "站点同步"),
            ("/outbox", "短信"),
            ("/calendar", "日历"),
            ("/catalog", "目录"),
        ]
    }
}
