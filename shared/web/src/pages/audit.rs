//! `/audit`: the audit log for the tier's manager, newest first, by day range, with the link that
//! downloads the same range as JSON (`/api/audit`) to keep a copy.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tongban_runtime::store::audit::AuditRecord;

use super::common::{page_error, render, PageCtx};
use crate::api::audit::Range;
use crate::extract::WebUser;
use crate::state::{blocking, SharedState};

/// A page shows the newest this many; the download has the rest.
const PAGE_RECORDS: usize = 500;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/audit", get(audit_page))
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: PageCtx,
    from: String,
    to: String,
    records: Vec<Row>,
    more: bool,
}

struct Row {
    seq: u64,
    at: String,
    who: String,
    what: &'static str,
    subject: String,
    ip: String,
}

/// The event codes as the manager reads them.
fn label(what: &str) -> &'static str {
    match what {
        "login" => "登录成功",
        "login.failed" => "登录失败",
        "login.locked" => "登录失败，账号锁定",
        "login.refused_locked" => "锁定期间尝试登录",
        "password.changed" => "修改本人密码",
        "password.reset" => "重置密码",
        "account.added" => "新增账号",
        "account.disabled" => "停用账号",
        "node.enrolled" => "站点接入",
        "node.revoked" => "吊销站点",
        "cert.web" => "签发网页证书",
        "cert.renewed" => "更新县中心证书",
        "catalog.published" => "发布事项目录",
        "calendar.published" => "发布节假日日历",
        "report.downloaded" => "下载月报",
        "personal_data.viewed" => "查看完整个人信息",
        "document.exported" => "导出办件原始数据",
        "audit.read" => "导出审计日志",
        "outbox.requeued" => "重新发送短信",
        _ => "其他",
    }
}

async fn audit_page(
    State(state): State<SharedState>,
    WebUser(user): WebUser,
    Query(range): Query<Range>,
) -> Response {
    if let Err(e) = crate::access::require_manager(state.identity.tier, &user) {
        return page_error(e);
    }
    let (from, to) = match range.days() {
        Ok(days) => days,
        Err(e) => return page_error(e),
    };
    let st = state.clone();
    let read = blocking(move || Ok(st.store.audit_log().records(from, to, PAGE_RECORDS)?)).await;
    let (records, more) = match read {
        Ok(found) => found,
        Err(e) => return page_error(e),
    };
    let rows = records
        .into_iter()
        .rev()
        .map(|r: AuditRecord| Row {
            seq: r.seq,
            at: r.at.get(..19).unwrap_or(&r.at).replace('T', " "),
            what: label(&r.what),
            who: r.who,
            subject: r.subject,
            ip: r.ip.unwrap_or_default(),
        })
        .collect();
    render(&AuditPage {
        page: PageCtx::new(&state, &user),
        from: from.map(|d| d.to_string()).unwrap_or_default(),
        to: to.map(|d| d.to_string()).unwrap_or_default(),
        records: rows,
        more,
    })
}
