//! `/dashboard`: county statistics with server-drawn charts.

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tongban_web::extract::WebUser;
use tongban_web::pages::common::PageCtx;
use tongban_web::{service, AppError};

use super::state::HubState;

pub fn routes() -> Router<HubState> {
    Router::new().route("/dashboard", get(dashboard_page))
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    /// The shared header: place, link badge, navigation, logout.
    page: PageCtx,
    total: u64,
    overdue: u64,
    yellow: u64,
    on_time: String,
    evaluation: String,
    bad: u64,
    escalations: u64,
    /// Cases a department signed for late (the county's receipt to 签收).
    handover_late: u64,
    /// Average village→county transit (intake at the node to the county's receipt), its own figure.
    transit: String,
    in_transit: u64,
    /// 待缴费 in the county, and the fees paid (sum, as 元).
    awaiting_payment: u64,
    fees_total: String,
    /// Per department with fee activity: (department, 待缴费, payments, 元).
    fee_rows: Vec<(String, u64, u64, String)>,
    /// 中台 per department asked anything: (department, answered, average hours, open).
    answer_rows: Vec<(String, u64, String, u64)>,
    /// (title, inline SVG)
    charts: Vec<(String, String)>,
    /// The month picker of the assessment workbook, for the roles that may download it: the month
    /// preselected (the last complete one) and the latest that can be picked.
    report: Option<(String, String)>,
}

/// `/dashboard`: county statistics with server-drawn charts.
async fn dashboard_page(State(state): State<HubState>, WebUser(user): WebUser) -> Response {
    if let Err(e) = tongban_web::access::require_endpoint(&user, "/dashboard") {
        return e.into_response();
    }
    use crate::charts;
    use tongban_shared::case::CaseState;
    let stats = match service::compute_stats(&state.app).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let by_state: Vec<(String, Vec<u64>)> = stats
        .by_state
        .iter()
        .map(|(s, n)| {
            (
                CaseState::parse(s)
                    .map(|st| st.label_at(tongban_shared::Tier::County, "").to_string())
                    .unwrap_or_else(|| s.clone()),
                vec![*n],
            )
        })
        .collect();
    let group_rows = |m: &std::collections::BTreeMap<String, tongban_shared::stats::Group>| {
        m.iter()
            .map(|(k, g)| (k.clone(), vec![g.overdue, g.yellow, g.total]))
            .collect::<Vec<_>>()
    };
    let days: Vec<(String, u64)> = stats
        .intake_per_day
        .iter()
        .map(|(d, n)| (d.clone(), *n))
        .collect();
    let pct = |r: Option<f64>| {
        r.map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "—".into())
    };
    let charts = vec![
        (
            "各状态办件".to_string(),
            charts::bars(&by_state, &["#0b57d0"], &["办件数"]),
        ),
        (
            "各部门超期与黄灯".to_string(),
            charts::bars(
                &group_rows(&stats.per_department),
                &["#b3261e", "#e0b000", "#9aa7b4"],
                &["超期", "黄灯", "全部"],
            ),
        ),
        (
            "各乡镇超期与黄灯".to_string(),
            charts::bars(
                &group_rows(&stats.per_township),
                &["#b3261e", "#e0b000", "#9aa7b4"],
                &["超期", "黄灯", "全部"],
            ),
        ),
        (
            "近30天每日收件".to_string(),
            charts::columns(&days, "#0b57d0"),
        ),
    ];
    let yuan = tongban_shared::manual::yuan_text;
    let fee_rows: Vec<(String, u64, u64, String)> = stats
        .per_department
        .iter()
        .filter(|(_, g)| g.awaiting_payment > 0 || g.payments > 0)
        .map(|(d, g)| (d.clone(), g.awaiting_payment, g.payments, yuan(g.fees_fen)))
        .collect();
    let answer_rows = stats
        .per_department
        .iter()
        .filter(|(_, g)| g.answered > 0 || g.questions_open > 0)
        .map(|(d, g)| {
            let hours = g
                .answer_hours()
                .map(|h| format!("{h:.1}小时"))
                .unwrap_or_else(|| "—".into());
            (d.clone(), g.answered, hours, g.questions_open)
        })
        .collect();
    let page = DashboardPage {
        answer_rows,
        awaiting_payment: stats
            .per_department
            .values()
            .map(|g| g.awaiting_payment)
            .sum(),
        fees_total: yuan(stats.per_department.values().map(|g| g.fees_fen).sum()),
        fee_rows,
        page: PageCtx::new(&state.app, &user),
        total: stats.total,
        overdue: stats.overdue,
        yellow: stats.yellow,
        on_time: pct(stats.on_time_rate),
        evaluation: stats
            .avg_evaluation
            .map(|e| format!("{e:.1}"))
            .unwrap_or_else(|| "—".into()),
        bad: stats.bad_reviews,
        escalations: stats.escalations,
        handover_late: stats.handover_late,
        transit: stats
            .transit_avg_minutes
            .map(|m| format!("{m:.0}分钟"))
            .unwrap_or_else(|| "—".into()),
        in_transit: stats.in_transit,
        charts,
        report: (tongban_web::access::may_use(&user.role, "GET /api/reports/monthly")
            == Some(true))
        .then(report_months),
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => AppError::internal(e).into_response(),
    }
}

/// (last complete month, this month) as `YYYY-MM`, Beijing time.
fn report_months() -> (String, String) {
    use chrono::Datelike;
    let today = tongban_runtime::clock::beijing_now().date_naive();
    let first = today.with_day(1).unwrap_or(today);
    let last_month = first.pred_opt().unwrap_or(first);
    (
        last_month.format("%Y-%m").to_string(),
        today.format("%Y-%m").to_string(),
    )
}
