//! Making a node's data directory: `init` (standalone or from an enrolment bundle) and `enroll` (a
//! standalone node joins the county, keeping its cases). Everything is checked before anything is
//! written.

use std::path::Path;

use chrono::{DateTime, FixedOffset};
use rand::RngCore;
use tongban_runtime::bundle::NodeTls;
use tongban_runtime::store::{NodeIdentity, Store, StoreError, UserRecord};
use tongban_shared::catalog::BUILTIN_CATALOG_JSON;
use tongban_shared::validate;
use tongban_web::accounts;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

pub struct InitOptions<'a> {
    pub data: &'a Path,
    pub code: &'a str,
    pub name: &'a str,
    pub user: &'a str,
    pub display_name: Option<&'a str>,
    pub password: &'a str,
}

/// Creates a standalone node store with its first account. Everything is checked before anything is
/// written, so a refused `init` leaves no half-made directory behind.
pub fn init(opts: &InitOptions<'_>, now: DateTime<FixedOffset>) -> Result<Store, SetupError> {
    let tier = validate::check_division_code(opts.code).map_err(SetupError::Invalid)?;
    if tier == tongban_shared::Tier::County {
        return Err(SetupError::Invalid(
            "a 6-digit county code belongs to the hub; a node needs a 9-digit township or 12-digit village code".into(),
        ));
    }
    let name = opts.name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(SetupError::Invalid("--name must be 1-60 characters".into()));
    }
    let user = check_account_name(opts.user)?;
    accounts::check_new_password(&user, opts.password)
        .map_err(|why| SetupError::Invalid(format!("--password refused: {why}")))?;
    let hash = accounts::hash_password(opts.password)
        .map_err(|e| SetupError::Invalid(format!("cannot hash password: {e}")))?;
    let parent = match tier {
        tongban_shared::Tier::Village => Some(opts.code[..9].to_string()),
        _ => Some(opts.code[..6].to_string()),
    };
    let identity = NodeIdentity {
        code: opts.code.to_string(),
        name: name.to_string(),
        tier,
        parent,
        upstream: None,
        upstream_name: None,
        fallback: None,
        created_at: now.to_rfc3339(),
    };
    let mut actor = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut actor);
    let store = Store::create(opts.data, &identity, &actor, BUILTIN_CATALOG_JSON)?;
    store.add_user(&UserRecord {
        name: user.clone(),
        display_name: opts.display_name.unwrap_or(opts.user).trim().to_string(),
        // The one who sets the station up is its head: they add the other agents (`/api/users`).
        role: "head".into(),
        password_hash: hash,
        created_at: now.to_rfc3339(),
    })?;
    let who = tongban_runtime::process::cli_actor();
    store.audit(&who, "account.added", &format!("{user} (head)"), None)?;
    Ok(store)
}

/// Creates an enrolled node from a bundle: identity, TLS files and the first account.
pub fn init_from_bundle(
    data: &Path,
    bundle_path: &Path,
    user: &str,
    display_name: Option<&str>,
    password: &str,
    now: DateTime<FixedOffset>,
) -> Result<Store, SetupError> {
    let bundle = tongban_runtime::bundle::Bundle::load(bundle_path)
        .map_err(|e| SetupError::Invalid(e.to_string()))?;
    let user = check_account_name(user)?;
    accounts::check_new_password(&user, password)
        .map_err(|why| SetupError::Invalid(format!("--password refused: {why}")))?;
    let hash = accounts::hash_password(password)
        .map_err(|e| SetupError::Invalid(format!("cannot hash password: {e}")))?;
    if data.join("db").exists() {
        return Err(StoreError::AlreadyInitialised(data.display().to_string()).into());
    }
    std::fs::create_dir_all(data).map_err(|e| SetupError::Invalid(e.to_string()))?;
    NodeTls::install(data, &bundle).map_err(|e| SetupError::Invalid(e.to_string()))?;
    let identity = NodeIdentity {
        code: bundle.code.clone(),
        name: bundle.name.clone(),
        tier: bundle.tier,
        parent: bundle.parent.clone(),
        upstream: Some(bundle.upstream.clone()),
        upstream_name: Some(bundle.upstream_name.clone()),
        fallback: bundle.fallback.clone(),
        created_at: now.to_rfc3339(),
    };
    // Known to the hub from enrolment (see `actor_for_serial`).
    let serial = tongban_runtime::tls::identity_of_pem(&bundle.node.cert_pem)
        .map_err(|e| SetupError::Invalid(format!("bundle certificate: {e}")))?
        .serial;
    let actor = tongban_runtime::tls::actor_for_serial(&serial);
    let store = Store::create(data, &identity, &actor, BUILTIN_CATALOG_JSON)?;
    store.add_user(&UserRecord {
        name: user.clone(),
        display_name: display_name.unwrap_or(&bundle.name).trim().to_string(),
        // The one who sets the station up is its head: they add the other agents (`/api/users`).
        role: "head".into(),
        password_hash: hash,
        created_at: now.to_rfc3339(),
    })?;
    let who = tongban_runtime::process::cli_actor();
    store.audit(&who, "account.added", &format!("{user} (head)"), None)?;
    Ok(store)
}

/// Attaches a standalone node to the county: same code, every case kept.
pub fn enroll(data: &Path, bundle_path: &Path) -> Result<(), SetupError> {
    let bundle = tongban_runtime::bundle::Bundle::load(bundle_path)
        .map_err(|e| SetupError::Invalid(e.to_string()))?;
    let store = Store::open(data)?;
    let mut identity = store.identity()?;
    if identity.code != bundle.code {
        return Err(SetupError::Invalid(format!(
            "this node is {}, the bundle is for {}: enrol it with a bundle for its own code",
            identity.code, bundle.code
        )));
    }
    // The county knows who wrote this node's cases only if its actor is the certificate's or one
    // the request declared; otherwise they would be refused upstream for good.
    let serial = tongban_runtime::tls::identity_of_pem(&bundle.node.cert_pem)
        .map_err(|e| SetupError::Invalid(format!("bundle certificate: {e}")))?
        .serial;
    let certified = tongban_runtime::tls::actor_for_serial(&serial);
    let actor = store.actor()?;
    let declared = bundle
        .actors
        .iter()
        .any(|a| tongban_runtime::bundle::parse_actor(a).is_some_and(|a| a[..] == actor[..]));
    let switch_actor = actor[..] != certified[..] && !declared;
    if switch_actor {
        let held = store.count(None)?;
        if held > 0 {
            return Err(SetupError::Invalid(format!(
                "this node holds {held} cases written before enrolment, and this bundle does not \
                 name their author to the county, which would refuse them: enrol with a request \
                 instead: `tongban-node csr --data {} --code {}  --out FILE`, have the county sign \
                 FILE (`tongban-hub enroll ... --csr FILE`, or 站点管理 on the hub), then \
                 `tongban-node enroll --bundle` with the bundle it answers",
                data.display(),
                identity.code
            )));
        }
    }
    NodeTls::install(data, &bundle).map_err(|e| SetupError::Invalid(e.to_string()))?;
    if switch_actor {
        store.set_actor(&certified)?;
    }
    identity.name = bundle.name.clone();
    identity.tier = bundle.tier;
    identity.parent = bundle.parent.clone();
    identity.upstream = Some(bundle.upstream.clone());
    identity.upstream_name = Some(bundle.upstream_name.clone());
    identity.fallback = bundle.fallback.clone();
    store.set_identity(&identity)?;
    Ok(())
}

/// `tongban-node csr`: the node's key (made once, kept in `data`) and a request for it in `out`.
pub fn certificate_request(data: &Path, code: &str, out: &Path) -> Result<(), SetupError> {
    let tier = validate::check_division_code(code).map_err(SetupError::Invalid)?;
    if tier == tongban_shared::Tier::County {
        return Err(SetupError::Invalid(
            "--code: a node has a 9-digit township or 12-digit village code".into(),
        ));
    }
    if out.exists() {
        return Err(SetupError::Invalid(format!(
            "--out {} exists; refusing to overwrite it",
            out.display()
        )));
    }
    // A standalone node's cases were written by its own actor: the request names it to the county.
    let mut actors = Vec::new();
    if data.join("db").exists() {
        let store = Store::open(data)?;
        let identity = store.identity()?;
        if identity.code != code {
            return Err(SetupError::Invalid(format!(
                "this node is {}, not {code}",
                identity.code
            )));
        }
        actors.push(store.actor()?);
    }
    let request = NodeTls::request(data, code).map_err(|e| SetupError::Invalid(e.to_string()))?;
    let request = tongban_runtime::bundle::declare_actors(&request, &actors);
    std::fs::write(out, request)
        .map_err(|e| SetupError::Invalid(format!("--out {}: {e}", out.display())))?;
    Ok(())
}

fn check_account_name(raw: &str) -> Result<String, SetupError> {
    let name = raw.trim();
    if name.is_empty()
        || name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(SetupError::Invalid(
            "--user must be 1-32 ASCII letters, digits, '_', '-' or '.'".into(),
        ));
    }
    Ok(name.to_string())
}
