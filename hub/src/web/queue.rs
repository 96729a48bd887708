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
    /// How many cases the queue holds; `rows` shows the first [`QUEUE_ROWS`].
    total: u64,
    rows: Vec<QueueRow>,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    /// The shared header: place, link badge, navigation, logout.
    page: PageCtx,
    /// A window's service area, when its queues hold only that area's items.
    area: Option<String>,
    queues: Vec<Queue>,
}

/// Rows a queue shows: the most urgent first (longest waiting, earliest deadline); the count says
/// how many more there are, and the case list finds any of them.
const QUEUE_ROWS: usize = 100;

/// How a queue's rows get their clock column.
#[derive(Clone, Copy)]
enum Clock {
    /// Minutes since the intake (transit from the village: never a late hand-over).
    Waited,
    /// The deadline, coloured.
    Deadline,
    BadReview,
    Escalations,
    /// The rectification's due date and call-backs, red once past.
    Rectification,
}

impl Clock {
    /// The clock column's heading.
    fn title(self) -> &'static str {
        match self {
            Clock::Waited => "交接时间",
            Clock::Deadline => "办结期限",
            Clock::BadReview => "评价",
            Clock::Escalations => "反映次数",
            Clock::Rectification => "答复期限",
        }
    }
}

/// What one queue reads from the store's indexes.
enum Source {
    State(tongban_shared::case::CaseState),
    Token(String),
    /// Several queue tokens read as one (a service area's items).
    Tokens(Vec<String>),
    Overdue,
}

/// `/queue`: what the logged-in account has to do — the window its 待接收 (with the 10/30-minute
/// hand-over clocks), 待受理 and 待补正; a department its cases under review with deadline colours; results
/// to hand out; the supervisor overdue cases, bad reviews and 办不成事 escalations. Each queue is one
/// range of an index (`tongban_shared::postings`), however many cases the county holds.
async fn queue_page(State(state): State<HubState>, WebUser(user): WebUser) -> Response {
    if let Err(e) = tongban_web::access::require_endpoint(&user, "/queue") {
        return e.into_response();
    }
    use tongban_shared::case::CaseState;
    use tongban_shared::postings::queue;
    use tongban_shared::workflow::Role;
    let role = Role::from_account(&user.role);
    let is = |r: &Role| role.as_ref() == Some(r);
    let admin = is(&Role::Admin);
    let mut wanted: Vec<(&'static str, &'static str, Source, Clock)> = Vec::new();
    // A window of one service area sees the cases of the items its area receives.
    let area_items: Option<Vec<String>> =
        tongban_web::access::window_area(state.app.identity.tier, &user.role).map(|area| {
            state
                .app
                .catalog()
                .received_at(Some(area))
                .map(|i| i.code.clone())
                .collect()
        });
    let window_source = |s: CaseState| match &area_items {
        Some(codes) => Source::Tokens(
            codes
                .iter()
                .map(|code| queue::window(s.as_str(), code))
                .collect(),
        ),
        None => Source::State(s),
    };
    if admin || is(&Role::Window) {
        wanted.push((
            "to-receive",
            "待接收",
            window_source(CaseState::Submitted),
            Clock::Waited,
        ));
        wanted.push((
            "to-accept",
            "待受理",
            window_source(CaseState::Received),
            Clock::Deadline,
        ));
        wanted.push((
            "in-correction",
            "待补正",
            window_source(CaseState::Correction),
            Clock::Deadline,
        ));
        wanted.push((
            "results",
            "结果待出件",
            window_source(CaseState::ResultReady),
            Clock::Deadline,
        ));
    }
    if admin || is(&Role::Window) {
        wanted.push((
            "to-pay",
            "待缴费",
            match &area_items {
                Some(codes) => Source::Tokens(
                    codes
                        .iter()
                        .map(|code| queue::window(queue::AWAITING_PAYMENT, code))
                        .collect(),
                ),
                None => Source::Token(queue::PAYMENT.into()),
            },
            Clock::Waited,
        ));
    }
    if let Some(Role::Dept(d)) = &role {
        wanted.push((
            "in-review",
            "审批中",
            Source::Token(queue::of(queue::REVIEW, d)),
            Clock::Deadline,
        ));
    }
    if admin {
        wanted.push((
            "in-review",
            "审批中（全部部门）",
            Source::Token(queue::REVIEW.into()),
            Clock::Deadline,
        ));
    }
    if admin || is(&Role::Supervisor) {
        wanted.push(("overdue", "超期办件", Source::Overdue, Clock::Deadline));
        // Bad reviews and escalations wait for 督办 until a rectification is opened; then the
        // rectification is followed by its due date, red once past it.
        wanted.push((
            "bad-reviews",
            "差评待督办",
            Source::Token(queue::BAD_REVIEW.into()),
            Clock::BadReview,
        ));
        wanted.push((
            "escalations",
            "办不成事反映待督办",
            Source::Token(queue::ESCALATED.into()),
            Clock::Escalations,
        ));
        wanted.push((
            "rectifications",
            "整改中",
            Source::Token(queue::RECTIFY.into()),
            Clock::Rectification,
        ));
    }
    if let Some(Role::Dept(d)) = &role {
        wanted.push((
            "to-answer",
            "待答复的政策咨询（中台）",
            Source::Token(queue::of(queue::ASK, d)),
            Clock::Waited,
        ));
        // 联办: the lead decides only after every assisting department's opinion.
        wanted.push((
            "to-assist",
            "联办待出具协办意见",
            Source::Token(queue::of(queue::ASSIST, d)),
            Clock::Deadline,
        ));
        wanted.push((
            "to-rectify",
            "待整改",
            Source::Token(queue::of(queue::RECTIFY, d)),
            Clock::Rectification,
        ));
    }
    let now = beijing_now();
    let today = now.date_naive();
    let st = state.app.clone();
    let calendar = state.app.calendar();
    let queues = match blocking(move || {
        let cal = &*calendar;
        let mut queues = Vec::new();
        for (id, title, source, clock) in wanted {
            let (cases, total) = match source {
                Source::State(s) => st.store.oldest_in_state(s, QUEUE_ROWS)?,
                Source::Token(t) => st.store.queue(&t, QUEUE_ROWS)?,
                Source::Tokens(t) => st.store.queues_merged(&t, QUEUE_ROWS)?,
                Source::Overdue => st.store.overdue(today, QUEUE_ROWS)?,
            };
            let rows = cases
                .iter()
                .map(|s| row(s, clock, now, today, cal))
                .collect();
            queues.push(Queue {
                id,
                title,
                clock_title: clock.title(),
                total,
                rows,
            });
        }
        Ok(queues)
    })
    .await
    {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let page = QueuePage {
        page: PageCtx::new(&state.app, &user),
        area: tongban_web::access::window_area(state.app.identity.tier, &user.role)
            .map(str::to_string),
        queues,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => AppError::internal(e).into_response(),
    }
}

/// One row of a queue, its clock column as the queue wants it.
fn row(
    s: &tongban_shared::case::CaseSummary,
    clock: Clock,
    now: chrono::DateTime<chrono::FixedOffset>,
    today: chrono::NaiveDate,
    cal: &tongban_shared::calendar::Calendar,
) -> QueueRow {
    use tongban_shared::stats::{urgency, Urgency};
    let (dept, text, colour) = match clock {
        Clock::Waited => {
            let waited = (now.timestamp_millis() - s.created_ms) / 60_000;
            (
                s.handling_dept.clone(),
                format!("收件后{}分钟", waited.max(0)),
                "",
            )
        }
        Clock::Deadline => {
            let colour = match urgency(s, today, cal, YELLOW_DAYS) {
                Some(Urgency::Red) => "red",
                Some(Urgency::Yellow) => "yellow",
                _ => "",
            };
            let deadline = s.deadline.clone().unwrap_or_else(|| "—".into());
            (s.handling_dept.clone(), deadline, colour)
        }
        Clock::BadReview => (
            s.handling_dept.clone(),
            format!("{}分", s.evaluation),
            "red",
        ),
        Clock::Escalations => (
            s.handling_dept.clone(),
            format!("{}次", s.escalations),
            "yellow",
        ),
        Clock::Rectification => {
            let today = today.format("%Y-%m-%d").to_string();
            let colour = if s.rectification_due.as_str() < today.as_str() {
                "red"
            } else {
                ""
            };
            let text = format!("{}（回访{}次）", s.rectification_due, s.callbacks);
            (s.rectification_owner.clone(), text, colour)
        }
    };
    QueueRow {
        case_no: s.case_no.clone(),
        item: s.item_name.clone(),
        applicant: s.applicant_name.clone(),
        dept,
        clock: text,
        colour,
    }
}
