//! Managing a tier's accounts as its manager (the county's `admin`, a station's `head`): add,
//! disable, reset a password. The JSON API (`api/users.rs`) and the accounts page
//! (`pages/accounts.rs`) both come here, so the rules, the sessions ended and the audit record are
//! the same whichever way a manager works.

use tongban_runtime::clock::beijing_now;
use tongban_runtime::store::UserRecord;

use crate::accounts::{self, NewAccount};
use crate::audit;
use crate::error::AppError;
use crate::extract::CurrentUser;
use crate::state::{blocking, SharedState};

/// Adds an account after the rules of [`accounts::new_account`]; durable and audited.
pub async fn add(
    state: &SharedState,
    user: &CurrentUser,
    req: &NewAccount<'_>,
) -> Result<UserRecord, AppError> {
    crate::access::require_manager(state.identity.tier, user)?;
    let areas = state.catalog().county.service_areas.clone();
    if let Some(area) = req.area.map(str::trim).filter(|a| !a.is_empty()) {
        if !areas.iter().any(|a| a == area) {
            return Err(AppError::Invalid(vec![tongban_shared::FieldError::new(
                "area",
                format!("服务区只能是：{}。", areas.join("、")),
            )]));
        }
    }
    let record = accounts::new_account(state.identity.tier, req, &beijing_now().to_rfc3339())
        .map_err(|e| AppError::Invalid(vec![e]))?;
    let st = state.clone();
    let stored = record.clone();
    blocking(move || Ok(st.store.add_user(&stored)?)).await?;
    let subject = format!("{} ({})", record.name, req.role);
    audit::record(
        &state.store,
        &user.name,
        "account.added",
        &subject,
        user.source,
    )
    .await?;
    Ok(record)
}

/// Disables account `name` (never the manager's own): it keeps its record, its sessions end now.
pub async fn disable(state: &SharedState, user: &CurrentUser, name: &str) -> Result<(), AppError> {
    crate::access::require_manager(state.identity.tier, user)?;
    if name == user.name {
        return Err(AppError::Conflict("不能停用自己正在使用的账号。".into()));
    }
    change(state, user, name, "account.disabled", |u| u.disable()).await
}

/// Sets a new password for `name` (the password policy applies); its sessions end now.
pub async fn reset_password(
    state: &SharedState,
    user: &CurrentUser,
    name: &str,
    password: &str,
) -> Result<(), AppError> {
    crate::access::require_manager(state.identity.tier, user)?;
    let hash = accounts::hash_new(name, password).map_err(|e| AppError::Invalid(vec![e]))?;
    change(state, user, name, "password.reset", move |u| {
        u.password_hash = hash.clone()
    })
    .await
}

/// Every account of the tier, for its manager.
pub async fn list(state: &SharedState, user: &CurrentUser) -> Result<Vec<UserRecord>, AppError> {
    crate::access::require_manager(state.identity.tier, user)?;
    let st = state.clone();
    blocking(move || Ok(st.store.users()?)).await
}

/// Applies `change` to account `name` (404 when there is none), ends every session of it at once
/// and records `what` by `user` in the audit log.
async fn change(
    state: &SharedState,
    user: &CurrentUser,
    name: &str,
    what: &'static str,
    change: impl Fn(&mut UserRecord) + Send + 'static,
) -> Result<(), AppError> {
    let st = state.clone();
    let n = name.to_string();
    blocking(move || Ok(st.store.update_user(&n, change)?))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("没有账号“{name}”。")))?;
    state.sessions.end_all_of(name);
    audit::record(&state.store, &user.name, what, name, user.source).await
}
