//! The node's [`Site`]: the header badge from the uplink's status, new writes handed to the uplink,
//! and the warning when this PC's clock is off against the county's.

use std::sync::Arc;

use tongban_runtime::clock::{describe_skew, SKEW_WARNING_SECS};
use tongban_runtime::store::Store;
use tongban_shared::case::CaseDoc;
use tongban_web::site::{Badge, ClockWarning, Site};
use tongban_web::text::format_time;

use crate::uplink::{LinkState, SyncHandle};

pub struct NodeSite {
    /// This node's code: its own history entries are the ones a wrong clock affects.
    pub code: String,
    /// `None` while the node works standalone.
    pub uplink: Option<Arc<SyncHandle>>,
}

impl Site for NodeSite {
    fn after_write(&self) {
        if let Some(uplink) = &self.uplink {
            uplink.local_write();
        }
    }

    fn badge(&self) -> Badge {
        let Some(uplink) = &self.uplink else {
            return Badge {
                class: "badge-offline",
                text: "离线 · 单机运行".to_string(),
                hint: "本站尚未接入县级平台：办件安全保存在本机，接入后自动上报。".to_string(),
                alert: None,
                sync_now: false,
            };
        };
        uplink.looked_at();
        let st = uplink.status();
        let last = st
            .last_success
            .as_deref()
            .map(format_time)
            .unwrap_or_else(|| "尚未同步".to_string());
        let n = st.pending_up;
        let waiting = if n > 0 {
            format!(" · 待上传 {n} 件")
        } else {
            String::new()
        };
        let (class, text, hint, alert) = match LinkState::of(&st, st.connection == "up") {
            LinkState::Syncing => (
                "badge-online",
                if n > 0 {
                    format!("正在同步 {n} 件")
                } else {
                    "正在同步…".to_string()
                },
                format!("正在与上级平台同步。最近同步：{last}"),
                None,
            ),
            LinkState::Synced if n == 0 => (
                "badge-online",
                "在线 · 已同步".to_string(),
                format!("最近同步：{last}"),
                None,
            ),
            LinkState::Synced => (
                "badge-online",
                format!("在线{waiting}"),
                format!("最近同步：{last}，新办件将在几秒内上传。"),
                None,
            ),
            LinkState::Offline => {
                let since = st
                    .offline_since
                    .as_deref()
                    .map(|t| format!("（{}起）", format_time(t)))
                    .unwrap_or_default();
                (
                    "badge-offline",
                    format!("离线{since}{waiting}"),
                    format!(
                        "暂时连不上上级平台：办件照常保存在本机，网络恢复后自动上传。最近同步：{last}"
                    ),
                    None,
                )
            }
            LinkState::Revoked => (
                "badge-offline",
                "已被县级停用".to_string(),
                "县级平台已停用本站的接入证书，本站的办件不能再上报县级。".to_string(),
                Some(
                    "本站已被县级平台停用：新收的办件只存在本机，不能上报县级，群众的事项不会被办理。\
                     请先不要收件，电话联系县政务服务中心，由县里为本站重新接入（换发证书）后再办理。"
                        .to_string(),
                ),
            ),
            LinkState::Failing => (
                "badge-offline",
                format!("同步出错{waiting}"),
                format!(
                    "连续{}次同步没有成功：{}。办件照常保存在本机。最近同步：{last}",
                    st.failures_in_a_row,
                    st.problem.as_deref().unwrap_or("原因不明")
                ),
                None,
            ),
        };
        Badge {
            class,
            text,
            hint,
            alert,
            sync_now: true,
        }
    }

    fn pending_up(&self) -> Option<u64> {
        Some(self.uplink.as_ref()?.status().pending_up)
    }

    fn sync_refusal(&self, case_no: &str) -> Option<String> {
        let status = self.uplink.as_ref()?.status();
        let refused = &status.last_session.as_ref()?.refused;
        refused
            .iter()
            .find(|r| r.subject == case_no)
            .map(|r| r.reason.clone())
    }

    /// This PC's clock as measured against the county's in the last session.
    fn clock_warning(&self, _store: &Store, _case: &CaseDoc) -> Option<ClockWarning> {
        let skew = self.uplink.as_ref()?.status().clock_skew_s?;
        (skew.abs() > SKEW_WARNING_SECS).then(|| ClockWarning {
            node: self.code.clone(),
            sentence: format!(
                "本机时钟比县级服务器{}，本机记下的时间可能不准，请校准电脑时间。办理期限以县级时间为准。",
                describe_skew(skew)
            ),
        })
    }
}
