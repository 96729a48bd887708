//! Operator-facing operations behind the CLI: `init` a data directory, fill it with demo or benchmark
//! cases, and run the HTTP server until ctrl-c / SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset};
use rand::{Rng, RngCore, SeedableRng};
use tongban_shared::case::{self, Agent, ApplicantInput, IntakeContext, IntakeRequest};
use tongban_shared::catalog::{Catalog, BUILTIN_CATALOG_JSON};
use tongban_shared::validate;

use crate::app::{self, AppState};
use crate::auth;
use tongban_runtime::store::{Created, NodeIdentity, Store, StoreError, UserRecord};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
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
    auth::check_new_password(opts.password)
        .map_err(|_| SetupError::Invalid("--password must have at least 6 characters".into()))?;
    let hash = auth::hash_password(opts.password)
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
        name: user,
        display_name: opts.display_name.unwrap_or(opts.user).trim().to_string(),
        role: "agent".into(),
        password_hash: hash,
        created_at: now.to_rfc3339(),
    })?;
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
    auth::check_new_password(password)
        .map_err(|_| SetupError::Invalid("--password must have at least 6 characters".into()))?;
    let hash = auth::hash_password(password)
        .map_err(|e| SetupError::Invalid(format!("cannot hash password: {e}")))?;
    if data.join("db").exists() {
        return Err(StoreError::AlreadyInitialised(data.display().to_string()).into());
    }
    std::fs::create_dir_all(data).map_err(|e| SetupError::Invalid(e.to_string()))?;
    crate::sync::install_bundle_files(data, &bundle)
        .map_err(|e| SetupError::Invalid(e.to_string()))?;
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
        name: user,
        display_name: display_name.unwrap_or(&bundle.name).trim().to_string(),
        role: "agent".into(),
        password_hash: hash,
        created_at: now.to_rfc3339(),
    })?;
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
    crate::sync::install_bundle_files(data, &bundle)
        .map_err(|e| SetupError::Invalid(e.to_string()))?;
    identity.name = bundle.name.clone();
    identity.tier = bundle.tier;
    identity.parent = bundle.parent.clone();
    identity.upstream = Some(bundle.upstream.clone());
    identity.upstream_name = Some(bundle.upstream_name.clone());
    identity.fallback = bundle.fallback.clone();
    store.set_identity(&identity)?;
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

const SURNAMES: [&str; 12] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
];
const GIVEN: [&str; 12] = [
    "秀英", "桂兰", "建国", "志强", "玉珍", "德明", "春花", "国华", "丽娟", "长青", "金凤", "家旺",
];

/// A plausible intake for item `n` of the catalogue, with a valid ID number born in the given year range.
pub fn sample_intake(catalog: &Catalog, rng: &mut impl Rng) -> IntakeRequest {
    let item = &catalog.items[rng.gen_range(0..catalog.items.len())];
    let year = rng.gen_range(1940..2005);
    let first17 = format!(
        "420222{year}{:02}{:02}{:03}",
        rng.gen_range(1..=12),
        rng.gen_range(1..=28),
        rng.gen_range(0..1000)
    );
    IntakeRequest {
        item_code: item.code.clone(),
        applicant: ApplicantInput {
            kind: "1".into(),
            name: format!(
                "{}{}",
                SURNAMES[rng.gen_range(0..SURNAMES.len())],
                GIVEN[rng.gen_range(0..GIVEN.len())]
            ),
            id_number: validate::id_with_check_char(&first17).unwrap_or_default(),
            phone: format!("13{:09}", rng.gen_range(0..1_000_000_000u32)),
            ..Default::default()
        },
        materials: item
            .materials
            .iter()
            .filter(|m| m.required || rng.gen_bool(0.5))
            .map(|m| m.id.clone())
            .collect(),
        delivery: "代办员送达".into(),
        note: String::new(),
    }
}

/// Stores `count` generated cases spread over the days before `now`, flushing once at the end.
/// For demo data and benchmarks; seeded, so the same seed gives the same county.
pub fn fill(
    store: &Store,
    count: u64,
    seed: u64,
    now: DateTime<FixedOffset>,
    agent_user: &str,
) -> Result<u64, SetupError> {
    let identity = store.identity()?;
    let catalog = store.catalog()?;
    let actor = automerge::ActorId::from(store.actor()?);
    let agent = store
        .user(agent_user)?
        .ok_or_else(|| SetupError::Invalid(format!("no account {agent_user}")))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut stored = 0;
    for i in 0..count {
        // Newest last; at most ~one case every few minutes back in time.
        let at = now - Duration::seconds(((count - i) * 217) as i64);
        let req = sample_intake(&catalog, &mut rng);
        let intake = case::validate_intake(&catalog, &req, at.date_naive())
            .map_err(|e| SetupError::Invalid(format!("generated case invalid: {e:?}")))?;
        let password = format!("{:06}", rng.gen_range(0..1_000_000));
        let day = at.format("%Y%m%d").to_string();
        let created = store.create_case_unflushed(&day, |seq| {
            let no = case::format_case_no(&identity.code, at.date_naive(), seq);
            let (mut doc, c) = case::new_case_document(
                &intake,
                IntakeContext {
                    case_no: &no,
                    agent: Agent {
                        user: agent.name.clone(),
                        name: agent.display_name.clone(),
                        node_code: identity.code.clone(),
                        node_name: identity.name.clone(),
                    },
                    now: at,
                    query_password: &password,
                    actor: actor.clone(),
                },
            )
            .map_err(Box::new)?;
            Ok::<_, Box<case::CaseDocError>>((doc.save(), c.summary()))
        })?;
        match created {
            Ok(Created::New(_)) => stored += 1,
            Ok(Created::Replayed(_)) => {}
            Err(e) => return Err(SetupError::Invalid(e.to_string())),
        }
    }
    store.flush()?;
    Ok(stored)
}

/// Binds the listener and serves until ctrl-c or SIGTERM; prints the URL on stdout once listening
/// (scripts and tests read that line to learn the port when `--http` names port 0). An enrolled node
/// also runs its sync loop.
pub async fn serve(
    store: Store,
    addr: SocketAddr,
    data: &Path,
    sync: crate::sync::SyncTiming,
    relay: Option<SocketAddr>,
) -> Result<(), SetupError> {
    let links = crate::relay::Links::default();
    let relay = match relay {
        Some(quic) => {
            let (endpoint, local) = crate::relay::start(&store, data, quic, links.clone())
                .map_err(|e| SetupError::Invalid(e.to_string()))?;
            println!("tongban-node relay quic {local}");
            Some(endpoint)
        }
        None => None,
    };
    let sync = crate::sync::SyncHandle::for_store(&store, data, sync, links)
        .map_err(|e| SetupError::Invalid(e.to_string()))?;
    let state = Arc::new(AppState::new(store, sync.clone())?);
    let stop_sync = Arc::new(tokio::sync::Notify::new());
    let sync_task = sync.map(|s| tokio::spawn(s.run_loop(stop_sync.clone())));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SetupError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SetupError::Bind { addr, source })?;
    tracing::info!(code = %state.identity.code, %local, "node serving");
    println!("tongban-node serving http://{local}/");
    let router = app::router(state.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(tongban_runtime::process::shutdown_signal())
        .await
        .map_err(SetupError::Serve)?;
    stop_sync.notify_one();
    if let Some(task) = sync_task {
        let _ = task.await;
    }
    if let Some(endpoint) = relay {
        endpoint.close(0u32.into(), b"township shutting down");
    }
    state.store.flush()?;
    tracing::info!("node stopped");
    Ok(())
}
