//! `/queue`: what the logged-in county account has to do, per role, with hand-over and deadline clocks.

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tongban_runtime::clock::beijing_now;
use tongban_web::extract::WebUser;
use tongban_web::pages::common::PageCtx;
use tongban_web::service::YELLOW_DAYS;
use tongban_web::{blocking, AppError};

use super::state::HubState;

pub fn routes() -> Router<HubState> {
    Router::new().route("/queue", get(queue_page))
}

struct QueueRow {
    case_no: String,
    item: String,
    applicant: String,
    dept: String,
    clock: String,
    /// "red", "yellow" or "".
    colour: &'static str,
}

struct Queue {
    id: &'static str,
    title: &'static str,
    clock_title: &'static str,
    rows: Vec<QueueRow>,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    /// The shared header: place, link badge, navigation, logout.
    page: PageCtx,
    queues: Vec<Queue>,
}

/// `/queue`: what the logged-in account has to do — the window its 待接收 (with the 10/30-minute
/// hand-over clocks), 待受理 and 待补正; a department its cases under review with deadline colours; results
/// to hand out; the supervisor overdue cases, bad reviews and 办不成事 escalations.
async fn queue_page(State(state): State<HubState>, WebUser(user): WebUser) -> Response {
    if let Err(e) = tongban_web::access::require_endpoint(&user, "/queue") {
        return e.into_response();
    }
    use tongban_shared::case::{CaseState, CaseSummary};
    use tongban_shared::stats::{is_bad_review, urgency, Urgency};
    use tongban_shared::workflow::Role;
    let role = Role::from_account(&user.role);
    let st = state.app.clone();
    let all = match blocking(move || {
        let mut v: Vec<CaseSummary> = Vec::new();
        st.store.for_each_summary(|s| {
            let open = !matches!(
                s.state(),
                Some(CaseState::Evaluated | CaseState::Rejected | CaseState::Withdrawn)
            );
            if open || is_bad_review(u64::from(s.evaluation)) {
                v.push(s.clone());
            }
        })?;
        Ok(v)
    })
    .await
    {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let now = beijing_now();
    let today = now.date_naive();
    let calendar = state.app.calendar();
    let cal = &*calendar;
    let row = |s: &CaseSummary, clock: String, colour: &'static str| QueueRow {
        case_no: s.case_no.clone(),
        item: s.item_name.clone(),
        applicant: s.applicant_name.clone(),
        dept: s.handling_dept.clone(),
        clock,
        colour,
    };
    let deadline_row = |s: &CaseSummary| {
        let colour = match urgency(s, today, cal, YELLOW_DAYS) {
            Some(Urgency::Red) => "red",
            Some(Urgency::Yellow) => "yellow",
            _ => "",
        };
        row(s, s.deadline.clone().unwrap_or_else(|| "—".into()), colour)
    };
    let in_state = |states: &[CaseState]| -> Vec<&CaseSummary> {
        all.iter()
            .filter(|s| s.state().is_some_and(|st| states.contains(&st)))
            .collect()
    };
    let is = |r: &Role| role.as_ref() == Some(r);
    let admin = is(&Role::Admin);
    let mut queues = Vec::new();
    if admin || is(&Role::Window) {
        let waiting = in_state(&[CaseState::Submitted])
            .into_iter()
            .map(|s| {
                // Transit from the village: its own figure, never a late hand-over (that clock
                // starts at the county's receipt).
                let waited = (now.timestamp_millis() - s.created_ms) / 60_000;
                row(s, format!("收件后{}分钟", waited.max(0)), "")
            })
            .collect();
        queues.push(Queue {
            id: "to-receive",
            title: "待接收",
            clock_title: "交接时间",
            rows: waiting,
        });
        queues.push(Queue {
            id: "to-accept",
            title: "待受理",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::Received])
                .into_iter()
                .map(deadline_row)
                .collect(),
        });
        queues.push(Queue {
            id: "in-correction",
            title: "待补正",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::Correction])
                .into_iter()
                .map(deadline_row)
                .collect(),
        });
        queues.push(Queue {
            id: "results",
            title: "结果待出件",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::ResultReady])
                .into_iter()
                .map(deadline_row)
                .collect(),
        });
    }
    if let Some(Role::Dept(d)) = &role {
        queues.push(Queue {
            id: "in-review",
            title: "审批中",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::Accepted, CaseState::Review, CaseState::Suspended])
                .into_iter()
                .filter(|s| &s.handling_dept == d)
                .map(deadline_row)
                .collect(),
        });
    }
    if admin {
        queues.push(Queue {
            id: "in-review",
            title: "审批中（全部部门）",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::Accepted, CaseState::Review, CaseState::Suspended])
                .into_iter()
                .map(deadline_row)
                .collect(),
        });
    }
    if admin || is(&Role::Supervisor) {
        queues.push(Queue {
            id: "overdue",
            title: "超期办件",
            clock_title: "办结期限",
            rows: all
                .iter()
                .filter(|s| urgency(s, today, cal, 0) == Some(Urgency::Red))
                .map(deadline_row)
                .collect(),
        });
        // Bad reviews and escalations wait for 督办 until a rectification is opened; then the
        // rectification is followed by its due date, red once past it.
        queues.push(Queue {
            id: "bad-reviews",
            title: "差评待督办",
            clock_title: "评价",
            rows: all
                .iter()
                .filter(|s| is_bad_review(u64::from(s.evaluation)) && s.rectification.is_empty())
                .map(|s| row(s, format!("{}分", s.evaluation), "red"))
                .collect(),
        });
        queues.push(Queue {
            id: "escalations",
            title: "办不成事反映待督办",
            clock_title: "反映次数",
            rows: all
                .iter()
                .filter(|s| s.escalations > 0 && s.rectification.is_empty())
                .map(|s| row(s, format!("{}次", s.escalations), "yellow"))
                .collect(),
        });
        queues.push(rectifications(
            "rectifications",
            "整改中",
            &all,
            None,
            &today,
        ));
    }
    if let Some(Role::Dept(d)) = &role {
        // 联办: the lead decides only after every assisting department's opinion.
        queues.push(Queue {
            id: "to-assist",
            title: "联办待出具协办意见",
            clock_title: "办结期限",
            rows: in_state(&[CaseState::Accepted, CaseState::Review])
                .into_iter()
                .filter(|s| s.assist_departments.contains(d))
                .map(deadline_row)
                .collect(),
        });
        queues.push(rectifications(
            "to-rectify",
            "待整改",
            &all,
            Some(d),
            &today,
        ));
    }
    let page = QueuePage {
        page: PageCtx::new(&state.app, &user),
        queues,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => AppError::internal(e).into_response(),
    }
}

/// Open rectifications (of `owner` only, when given), each with its due date; red once past it.
fn rectifications(
    id: &'static str,
    title: &'static str,
    all: &[tongban_shared::case::CaseSummary],
    owner: Option<&String>,
    today: &chrono::NaiveDate,
) -> Queue {
    let today = today.format("%Y-%m-%d").to_string();
    Queue {
        id,
        title,
        clock_title: "答复期限",
        rows: all
            .iter()
            .filter(|s| s.rectification == "open")
            .filter(|s| owner.is_none_or(|d| &s.rectification_owner == d))
            .map(|s| QueueRow {
                case_no: s.case_no.clone(),
                item: s.item_name.clone(),
                applicant: s.applicant_name.clone(),
                dept: s.rectification_owner.clone(),
                clock: format!("{}（回访{}次）", s.rectification_due, s.callbacks),
                colour: if s.rectification_due.as_str() < today.as_str() {
                    "red"
                } else {
                    ""
                },
            })
            .collect(),
    }
}
