//! `tongban-node user add|disable|passwd|list`: a station's per-person accounts (each of its 2–6
//! staff logs in as themself, so history, receipts and the monthly workbook name the person), kept
//! on a stopped node. A running node manages them on its pages and `POST /api/users` (the station
//! head's). The rules of an account are `tongban_web::accounts::new_account`'s, the same as the API's.

use std::path::Path;

use anyhow::{bail, Context};
use tongban_runtime::clock::beijing_now;
use tongban_runtime::process::cli_actor;
use tongban_runtime::store::{Store, UserRecord};
use tongban_web::accounts::{self, NewAccount};

/// Opens a stopped node's store; a running node's lock is answered with what to do instead.
pub fn open(data: &Path) -> anyhow::Result<Store> {
    Store::open(data).map_err(|e| {
        if e.to_string().to_lowercase().contains("lock") {
            anyhow::anyhow!(
                "{} is in use by a running node: manage its accounts on its 账号管理 page (station head), or stop it first ({e})",
                data.display()
            )
        } else {
            anyhow::Error::from(e).context(format!("opening {}", data.display()))
        }
    })
}

/// Adds an account (`agent` or `head`), durable and audited before it returns.
pub fn add(
    data: &Path,
    name: &str,
    display_name: &str,
    role: &str,
    password: &str,
) -> anyhow::Result<UserRecord> {
    let store = open(data)?;
    let tier = store.identity()?.tier;
    let record = accounts::new_account(
        tier,
        &NewAccount {
            name,
            display_name,
            password,
            role,
            dept: None,
            area: None,
        },
        &beijing_now().to_rfc3339(),
    )
    .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.message))?;
    store
        .add_user(&record)
        .with_context(|| format!("adding account {}", record.name))?;
    store.audit(
        &cli_actor(),
        "account.added",
        &format!("{} ({role})", record.name),
        None,
    )?;
    Ok(record)
}

/// Disables an account: it keeps its record (cases name it) but no password logs it in. The last
/// enabled station head is kept, so someone can still manage the station's accounts.
pub fn disable(data: &Path, name: &str) -> anyhow::Result<()> {
    let store = open(data)?;
    let users = store.users()?;
    let Some(target) = users.iter().find(|u| u.name == name) else {
        bail!("no account {name} at this node");
    };
    let heads_left = users
        .iter()
        .filter(|u| u.role == "head" && !u.is_disabled() && u.name != name)
        .count();
    if target.role == "head" && !target.is_disabled() && heads_left == 0 {
        bail!("{name} is the last enabled station head: add another head first");
    }
    store.update_user(name, |u| u.disable())?;
    store.audit(&cli_actor(), "account.disabled", name, None)?;
    Ok(())
}

/// Sets a new password (the policy of every password), which also enables a disabled account.
pub fn passwd(data: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    let store = open(data)?;
    let hash = accounts::hash_new(name, password)
        .map_err(|e| anyhow::anyhow!("--password: {}", e.message))?;
    if store
        .update_user(name, |u| u.password_hash = hash.clone())?
        .is_none()
    {
        bail!("no account {name} at this node");
    }
    store.audit(&cli_actor(), "password.reset", name, None)?;
    Ok(())
}

/// Every account of the node, by name.
pub fn list(data: &Path) -> anyhow::Result<Vec<UserRecord>> {
    Ok(open(data)?.users()?)
}
