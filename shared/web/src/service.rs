//! The case service: what a person can do with cases, the same at every tier and from every door
//! (JSON API, form, demo). No HTTP here: callers pass the account and plain values, and get a case or
//! an [`AppError`]. Store work runs on blocking threads; writes are durable before these return.

use rand::Rng;
use tongban_runtime::clock::beijing_now;
use tongban_runtime::store::Created;
use tongban_shared::case::{self, Agent, CaseDoc, CaseNo, IntakeRequest};
use tongban_shared::stats::Stats;
use tongban_shared::todo::TodoKind;
use tongban_shared::workflow::{self, ActionError, ActionInput, Actor, Role};
use tongban_shared::FieldError;

use crate::access::{self, Capability};
use crate::error::AppError;
use crate::extract::CurrentUser;
use crate::state::{blocking, SharedState};

/// Deadline colour threshold: yellow when at most this many working days are left (DOMAIN.md default).
pub const YELLOW_DAYS: u32 = 1;

/// Validates an intake, builds its document and stores it durably. Shared by the JSON API and the form,
/// so both apply exactly the same rules and both acknowledge only after the flush.
pub async fn file_case(
    state: &SharedState,
    user: &CurrentUser,
    req: IntakeRequest,
    request_key: Option<String>,
) -> Result<Created, AppError> {
    crate::access::require(state.identity.tier, user, crate::access::Capability::File)?;
    state.check_writable()?;
    // A key is the submitting account's own: another account that happens to send the same key
    // files its own case instead of being shown someone else's.
    let request_key = request_key.map(|k| format!("{}\u{1f}{k}", user.name));
    let now = beijing_now();
    if let Some(item) = state.catalog().item(&req.item_code) {
        access::require_area(state.identity.tier, user, item)?;
    }
    let intake = case::validate_intake(&state.catalog(), &req, now.date_naive())
        .map_err(AppError::Invalid)?;
    let st = state.clone();
    let agent = Agent {
        user: user.name.clone(),
        name: user.display_name.clone(),
        node_code: state.identity.code.clone(),
        node_name: state.identity.name.clone(),
    };
    blocking(move || {
        let day = now.format("%Y%m%d").to_string();
        let password = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
        let created = st
            .store
            .create_case(&day, request_key.as_deref(), |seq| {
                case::build_case(&intake, agent, now, seq, &password, st.actor.clone())
                    .map_err(Box::new)
            })?
            .map_err(AppError::internal)?;
        if let Created::New(summary) = &created {
            tracing::info!(case_no = %summary.case_no, item = %summary.item_code, "case filed");
        }
        Ok(created)
    })
    .await
    .inspect(|created| {
        if let Created::New(_) = created {
            state.metrics.intake();
            state.site.after_write();
        }
    })
    .inspect_err(|e| state.note_write_error(e))
}

fn not_found(case_no: &str) -> AppError {
    AppError::NotFound(format!("没有找到办件“{case_no}”。"))
}

/// A case number from a URL or form: 404 when it is not one (no such case can exist).
pub fn case_no(raw: &str) -> Result<CaseNo, AppError> {
    raw.parse().map_err(|_| not_found(raw))
}

/// Loads and reads one case document; 404 for an unknown number.
pub async fn load_case(
    state: &SharedState,
    case_no: &CaseNo,
) -> Result<(Vec<u8>, CaseDoc), AppError> {
    let st = state.clone();
    let no = case_no.clone();
    blocking(move || load_case_blocking(&st, &no)).await
}

/// A case as `user` may see it: 403 for a role that reads no cases, 404 outside a department's own,
/// personal data masked unless the role needs it in full (each full view in the audit log before it
/// is shown).
pub async fn load_case_for(
    state: &SharedState,
    user: &CurrentUser,
    case_no: &CaseNo,
) -> Result<CaseDoc, AppError> {
    let tier = state.identity.tier;
    crate::access::require(tier, user, crate::access::Capability::Read)?;
    let (_, mut case) = load_case(state, case_no).await?;
    crate::access::require_in_scope(tier, user, &case)?;
    if crate::access::case_as_seen_by(tier, user, &mut case) {
        crate::audit::record(
            &state.store,
            &user.name,
            "personal_data.viewed",
            &case.case_no,
            user.source,
        )
        .await?;
    }
    Ok(case)
}

/// [`load_case`] for callers already on a blocking thread.
pub fn load_case_blocking(
    state: &SharedState,
    case_no: &CaseNo,
) -> Result<(Vec<u8>, CaseDoc), AppError> {
    let bytes = state
        .store
        .document(case_no.as_str())?
        .ok_or_else(|| not_found(case_no.as_str()))?;
    let doc = automerge::AutoCommit::load(&bytes).map_err(AppError::internal)?;
    let case = case::read_case(&doc).map_err(AppError::internal)?;
    Ok((bytes, case))
}

/// The role `user` acts with at this tier; 403 for an account that may not act on cases.
pub fn acting_role(state: &SharedState, user: &CurrentUser) -> Result<Role, AppError> {
    Role::acting(&user.role, state.identity.tier)
        .ok_or_else(|| AppError::Forbidden(format!("账号“{}”没有办件权限。", user.name)))
}

/// One workflow action by `user` on a case, with the roles and rules of `tongban_shared::workflow`.
/// At a node the account acts as the agent and the change syncs up; at the hub it acts with its county
/// role. Durable before it returns.
pub async fn take_action(
    state: &SharedState,
    user: &CurrentUser,
    case_no: &CaseNo,
    input: ActionInput,
) -> Result<CaseDoc, AppError> {
    state.check_writable()?;
    let role = acting_role(state, user)?;
    let st = state.clone();
    let no = case_no.clone();
    let input_action = input.action;
    let user_name = user.name.clone();
    let user = user.clone();
    let case = blocking(move || {
        let (_, before) = load_case_blocking(&st, &no)?;
        let catalog = st.catalog();
        let item = catalog.item(&before.item.code);
        if let Some(item) = item {
            access::require_area(st.identity.tier, &user, item)?;
        }
        let item_fee = item.and_then(|i| i.fee.clone());
        let now = beijing_now();
        let mut outcome = None;
        st.store.merge_case(no.as_str(), |current| {
            let bytes = current.ok_or_else(|| AppError::NotFound("办件不存在。".into()))?;
            let mut doc = automerge::AutoCommit::load(&bytes).map_err(AppError::internal)?;
            doc.set_actor(st.actor.clone());
            let actor = Actor {
                user: &user.name,
                name: &user.display_name,
                role: access::recorded_role(&user.role),
                tier: st.identity.tier,
                node: &st.identity.code,
            };
            let calendar = st.calendar();
            let ctx = workflow::Context {
                now,
                calendar: &calendar,
                departments: st
                    .catalog()
                    .departments()
                    .into_iter()
                    .map(String::from)
                    .collect(),
                event_id: tongban_shared::event::event_id(rand::thread_rng().gen()),
                rectify_days: st.catalog().county.rectify_days,
                item_fee: item_fee.clone(),
            };
            let case = workflow::apply(&mut doc, &input, &actor, &role, &ctx)
                .map_err(|e| action_error(e, &user.name))?;
            let summary = case.summary();
            outcome = Some(case);
            Ok::<_, AppError>((doc.save(), summary))
        })??;
        st.store.flush()?;
        let case = outcome.ok_or_else(|| AppError::internal("action produced no case"))?;
        st.site.after_action(
            &st.store,
            &input,
            &case,
            &st.catalog().county,
            &now.to_rfc3339(),
        )?;
        Ok(case)
    })
    .await
    .inspect_err(|e| state.note_write_error(e))?;
    tracing::info!(case_no = %case.case_no, action = %input_action, by = %user_name, "case action");
    state.metrics.action(input_action.as_str());
    state.site.after_write();
    Ok(case)
}

fn action_error(e: ActionError, user: &str) -> AppError {
    match e {
        ActionError::Forbidden(_) => {
            AppError::Forbidden(format!("账号“{user}”无权对该办件进行此操作。"))
        }
        ActionError::WrongState { state, why, .. } => AppError::Conflict(format!(
            "办件当前状态为“{}”，不能进行此操作：{why}",
            case::CaseState::parse(&state)
                .map(|s| s.label())
                .unwrap_or("未知")
        )),
        ActionError::Invalid(f) => AppError::Invalid(vec![f]),
        ActionError::Unknown(a) => AppError::Invalid(vec![FieldError::new(
            "action",
            format!("不认识的操作“{a}”。"),
        )]),
        ActionError::Document(e) => AppError::internal(e),
    }
}

/// One line of the to-do inbox.
pub struct TodoItem {
    pub case_no: String,
    pub since: String,
    /// How long it has waited (`2天`).
    pub waited: String,
    pub item_name: String,
    pub applicant_name: String,
    /// The reason or the county's note (missing materials, why it was rejected, the reply).
    pub note: String,
}

/// The inbox's rows of one kind: the longest waiting first, at most [`TODO_ROWS`] of `total`.
pub struct TodoGroup {
    pub kind: TodoKind,
    pub total: u64,
    pub items: Vec<TodoItem>,
}

pub struct Inbox {
    pub groups: Vec<TodoGroup>,
}

impl Inbox {
    pub fn total(&self) -> u64 {
        self.groups.iter().map(|g| g.total).sum()
    }
}

/// Rows of one kind the inbox lists (the count says how many more there are).
pub const TODO_ROWS: usize = 50;

/// The inbox of this station: the to-do items of the cases it took in itself (a township holds its
/// villages' cases too, but they are the villages' to handle).
pub async fn todo(state: &SharedState, user: &CurrentUser) -> Result<Inbox, AppError> {
    access::require(state.identity.tier, user, Capability::Read)?;
    let st = state.clone();
    let own = state.identity.code.clone();
    let now = beijing_now();
    blocking(move || {
        let mut groups = Vec::new();
        for kind in TodoKind::ALL {
            let (cases, total) = st.store.todo_list(kind, &own, TODO_ROWS)?;
            let items = cases
                .into_iter()
                .map(|c| TodoItem {
                    waited: crate::text::waited(&c.todo_since, now),
                    since: c.todo_since,
                    case_no: c.case_no,
                    item_name: c.item_name,
                    applicant_name: c.applicant_name,
                    note: c.todo_note,
                })
                .collect();
            groups.push(TodoGroup { kind, total, items });
        }
        Ok(Inbox { groups })
    })
    .await
}

/// How many to-do items this station has (the header's count): index keys only.
pub async fn todo_total(state: &SharedState, user: &CurrentUser) -> Result<u64, AppError> {
    access::require(state.identity.tier, user, Capability::Read)?;
    let st = state.clone();
    let own = state.identity.code.clone();
    blocking(move || {
        let mut total = 0;
        for kind in TodoKind::ALL {
            total += st.store.todo_list(kind, &own, 0)?.1;
        }
        Ok(total)
    })
    .await
}

/// Supervision numbers over every case this tier holds (the hub: the county).
pub async fn compute_stats(state: &SharedState) -> Result<Stats, AppError> {
    let st = state.clone();
    blocking(move || {
        let now = beijing_now();
        let calendar = st.calendar();
        // The numbers are kept with every case write (the store's parts): reading them does not
        // grow with the county's cases, only with its departments, nodes and open deadlines.
        let today = now.date_naive();
        let first_day = today - chrono::Days::new(29);
        let parts = st.store.stats_parts(first_day, now.timestamp_millis())?;
        Ok(tongban_shared::aggregate::stats_from_parts(
            &parts,
            today,
            &calendar,
            YELLOW_DAYS,
        ))
    })
    .await
}
