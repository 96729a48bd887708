//! Operations on a hub's data directory that work with the hub stopped: `init` (county CA, hub
//! certificate, store, admin account), `enroll` (a node's certificate and bundle), `user add`, and
//! the signing commands `renew` and `web-cert`.
//!
//! Layout: `DIR/db` (the store) and in `DIR/tls/` (keys readable by the owner): `ca.pem`, the county
//! root that nodes and browsers trust; `ca.key`, its key, read only by the signing commands (`init`,
//! `renew`, `web-cert`) and never by the running hub, so it can be kept off the PC and named with
//! `--ca-key`; `issuing.{pem,key}`, the issuing CA the hub signs node certificates with (also the
//! running hub's `POST /api/nodes`); `hub.{pem,key}`, its sync certificate; `web.{pem,key}`, HTTPS.

use std::path::Path;

use chrono::{DateTime, FixedOffset};
use rand::RngCore;
use tongban_runtime::bundle::{
    write_private, Bundle, NodeCredentials, BUNDLE_VERSION, SECRET_NOTICE,
};
use tongban_runtime::store::county::NodeRecord;
use tongban_runtime::store::{NodeIdentity, Store, StoreError, UserRecord};
use tongban_runtime::tls::{self, HUB_SERVER_NAME};
use tongban_shared::catalog::BUILTIN_CATALOG_JSON;
use tongban_shared::validate::check_division_code;
use tongban_shared::Tier;
use tongban_web::accounts as auth;

pub const ROLES: [&str; 4] = ["admin", "window", "dept", "supervisor"];

use crate::certs::{tls_dir, NodeSigner};
use crate::error::io;
use crate::error::CountyError;

/// Opens the store with a hint when another process (a running hub) holds it.
pub fn open(data: &Path) -> Result<Store, CountyError> {
    Store::open(data).map_err(|e| {
        if e.to_string().to_lowercase().contains("lock") {
            CountyError::Invalid(format!(
                "{} is in use by a running hub: use its HTTP API, or stop it first ({e})",
                data.display()
            ))
        } else {
            e.into()
        }
    })
}

fn check_password(user: &str, pw: &str) -> Result<String, CountyError> {
    auth::check_new_password(user, pw)
        .map_err(|why| CountyError::Invalid(format!("password refused: {why}")))?;
    auth::hash_password(pw).map_err(|e| CountyError::Invalid(format!("cannot hash password: {e}")))
}

/// Creates the county: CA, hub certificate, store and the `admin` account.
pub fn init(
    data: &Path,
    county: &str,
    name: &str,
    admin_password: &str,
    now: DateTime<FixedOffset>,
) -> Result<Store, CountyError> {
    if check_division_code(county).ok() != Some(Tier::County) {
        return Err(CountyError::Invalid(format!(
            "--county {county}: a county code has 6 digits, e.g. 420222"
        )));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(CountyError::Invalid(
            "--name must be 1-60 characters".into(),
        ));
    }
    let hash = check_password("admin", admin_password)?;
    if data.join("db").exists() || tls_dir(data).exists() {
        return Err(StoreError::AlreadyInitialised(data.display().to_string()).into());
    }
    let ca = tls::generate_ca(county, name)?;
    let issuing = tls::issue_issuing_ca(&ca, county, name)?;
    let hub = tls::issue_hub(&ca, county)?;
    let web = tongban_runtime::web_tls::issue_web(
        &ca,
        county,
        &tongban_runtime::web_tls::default_names(),
    )?;
    let dir = tls_dir(data);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    for (file, content) in [
        ("ca.pem", &ca.cert_pem),
        ("ca.key", &ca.key_pem),
        ("issuing.pem", &issuing.cert_pem),
        ("issuing.key", &issuing.key_pem),
        ("hub.pem", &hub.cert_pem),
        ("hub.key", &hub.key_pem),
        ("web.pem", &web.cert_pem),
        ("web.key", &web.key_pem),
    ] {
        let path = dir.join(file);
        write_private(&path, content.as_bytes()).map_err(io(&path))?;
    }
    write_ca_install(data, &ca.cert_pem)?;
    let mut actor = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut actor);
    let store = Store::create(
        data,
        &NodeIdentity {
            code: county.to_string(),
            name: format!("{name}政务服务中心"),
            tier: Tier::County,
            parent: None,
            upstream: None,
            upstream_name: None,
            fallback: None,
            created_at: now.to_rfc3339(),
        },
        &actor,
        BUILTIN_CATALOG_JSON,
    )?;
    store.add_user(&UserRecord {
        name: "admin".into(),
        display_name: "管理员".into(),
        role: "admin".into(),
        password_hash: hash,
        created_at: now.to_rfc3339(),
    })?;
    let who = tongban_runtime::process::cli_actor();
    store.audit(&who, "account.added", "admin (admin)", None)?;
    Ok(store)
}

/// Where `init` puts what the hall's PCs need to trust the hub's HTTPS: the CA certificate and
/// instructions in Chinese (the same as the `/ca` page), to copy onto a USB stick.
pub fn ca_install_dir(data: &Path) -> std::path::PathBuf {
    data.join("ca-install")
}

fn write_ca_install(data: &Path, ca_pem: &str) -> Result<(), CountyError> {
    let dir = ca_install_dir(data);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let fingerprint = tls::fingerprint(ca_pem)?;
    let howto = format!(
        "安装县级根证书\r\n\r\n\
         每台办公电脑第一次使用通办前安装一次。\r\n\r\n\
         1. 核对指纹：双击 county-ca.crt，在“详细信息”页找到“指纹”（SHA-256），\r\n\
         \u{20}  须与下面一行完全一致，不一致不要安装并电话告知县政务服务中心：\r\n\
         \u{20}  {fingerprint}\r\n\
         2. 在“常规”页点“安装证书”，存储位置选“本地计算机”。\r\n\
         3. 选“将所有的证书都放入下列存储”→“浏览”→“受信任的根证书颁发机构”→“确定”→“下一步”→“完成”。\r\n\
         4. 关闭所有浏览器窗口，重新打开通办的 https 地址。\r\n\r\n\
         火狐浏览器：设置 → 隐私与安全 → 证书 → 查看证书 → 证书颁发机构 → 导入，\r\n\
         勾选“信任由此证书颁发机构来标识网站”。\r\n"
    );
    for (name, content) in [
        ("county-ca.crt", ca_pem.to_string()),
        ("安装说明.txt", howto),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).map_err(io(&path))?;
    }
    Ok(())
}

pub struct EnrollRequest<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub tier: Tier,
    pub parent: Option<&'a str>,
    pub upstream: &'a str,
    /// TLS name of the upstream; the hub's unless the node syncs through a township.
    pub upstream_name: Option<&'a str>,
    /// The hub's own sync address, for a node whose upstream is a township.
    pub fallback: Option<&'a str>,
    /// The node's PEM certificate request (`tongban-node csr`): the bundle then holds no key.
    /// Without one the hub makes the key, for the USB-stick path only.
    pub csr: Option<&'a str>,
    /// Re-enrol an enrolled code (a renewed or replaced certificate): the old certificate is refused
    /// from then on, the node's record and history stay.
    pub replace: bool,
}

/// Issues a node certificate, records the node and returns its bundle; with `out`, also writes the
/// bundle there (never over an existing file). Works on a store the caller opened (a stopped hub, or
/// the running hub's own store, whose API hands the bundle back instead of writing it).
pub fn enroll(
    store: &Store,
    signer: &NodeSigner,
    req: &EnrollRequest<'_>,
    out: Option<&Path>,
    now: DateTime<FixedOffset>,
) -> Result<Bundle, CountyError> {
    let county = store.identity()?.code;
    let tier = check_division_code(req.code).map_err(CountyError::Invalid)?;
    if tier != req.tier || tier == Tier::County {
        return Err(CountyError::Invalid(format!(
            "--code {} does not fit --tier {:?} (township 9 digits, village 12)",
            req.code, req.tier
        )));
    }
    if !req.code.starts_with(&county) {
        return Err(CountyError::Invalid(format!(
            "--code {} is not in county {county}",
            req.code
        )));
    }
    let expected_parent = match tier {
        Tier::Village => &req.code[..9],
        _ => &req.code[..6],
    };
    if let Some(p) = req.parent {
        if p != expected_parent {
            return Err(CountyError::Invalid(format!(
                "--parent {p}: the parent of {} is {expected_parent}",
                req.code
            )));
        }
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(CountyError::Invalid(
            "--name must be 1-60 characters".into(),
        ));
    }
    req.upstream.parse::<std::net::SocketAddr>().map_err(|e| {
        CountyError::Invalid(format!("--upstream {}: {e} (use IP:PORT)", req.upstream))
    })?;
    let existing = store.county().node_record(req.code)?;
    // A village behind its enrolled township: by default it names the township's TLS name for the
    // address it dials, and keeps the hub (the address the township was given) as its fallback.
    let township_upstream = match tier {
        Tier::Village => store
            .county()
            .node_record(expected_parent)?
            .filter(|t| t.tier == Tier::Township)
            .and_then(|t| t.upstream)
            .filter(|hub| hub != req.upstream),
        _ => None,
    };
    let township_name = tls::township_server_name(expected_parent);
    let upstream_name = match (req.upstream_name, &township_upstream) {
        (Some(name), _) => name,
        (None, Some(_)) => township_name.as_str(),
        (None, None) => HUB_SERVER_NAME,
    };
    let fallback = req
        .fallback
        .map(str::to_string)
        .or_else(|| township_upstream.clone());
    match (&existing, req.replace) {
        (Some(existing), false) => {
            return Err(CountyError::Invalid(format!(
                "node {} ({}) is already enrolled{}; to give it a new certificate use --replace (`\"replace\": true` in the API)",
                existing.code,
                existing.name,
                if existing.revoked { " and revoked" } else { "" }
            )))
        }
        (Some(existing), true) if existing.tier != tier => {
            return Err(CountyError::Invalid(format!(
                "node {} is enrolled as a {:?}; --replace keeps the tier",
                existing.code, existing.tier
            )))
        }
        (None, true) => {
            return Err(CountyError::Invalid(format!(
                "--replace: node {} is not enrolled yet",
                req.code
            )))
        }
        _ => {}
    }
    if let Some(out) = out.filter(|o| o.exists()) {
        return Err(CountyError::Invalid(format!(
            "--out {} exists; refusing to overwrite it",
            out.display()
        )));
    }
    let (node, secret) = match req.csr {
        Some(request) => {
            let cert_pem = tls::sign_node_request(
                &signer.issuing,
                request,
                req.code,
                tier,
                Some(expected_parent),
                tls::Validity::years_from_today(tls::NODE_CERT_YEARS),
            )
            .map_err(|e| CountyError::Invalid(e.to_string()))?;
            (
                NodeCredentials {
                    cert_pem,
                    key_pem: None,
                },
                None,
            )
        }
        None => {
            let made = tls::issue_node(&signer.issuing, req.code, tier, Some(expected_parent))?;
            (
                NodeCredentials {
                    cert_pem: made.cert_pem,
                    key_pem: Some(made.key_pem),
                },
                Some(SECRET_NOTICE.to_string()),
            )
        }
    };
    let identity = tls::identity_of_pem(&node.cert_pem)?;
    // What a standalone node wrote before enrolment, bound to it now and to no other node ever.
    let own_actor = tls::actor_for_serial(&identity.serial);
    let mut actors: Vec<String> = store
        .actors_by_node()?
        .remove(req.code)
        .unwrap_or_default()
        .iter()
        .filter(|a| **a != own_actor)
        .map(|a| a.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let declared = match req.csr {
        Some(request) => tongban_runtime::bundle::declared_actors(request)
            .map_err(|e| CountyError::Invalid(e.to_string()))?,
        None => Vec::new(),
    };
    for actor in declared.iter().filter(|a| **a != own_actor) {
        let hex: String = actor.iter().map(|b| format!("{b:02x}")).collect();
        if let Some(owner) = store.actor_node(actor)?.filter(|owner| owner != req.code) {
            return Err(CountyError::Invalid(format!(
                "the request declares actor {hex}, which the county bound to node {owner}: \
                 make the request with `tongban-node csr` on {}'s own PC",
                req.code
            )));
        }
        if !actors.contains(&hex) {
            actors.push(hex);
        }
    }
    let bundle = Bundle {
        version: BUNDLE_VERSION,
        county: county.clone(),
        code: req.code.to_string(),
        name: name.to_string(),
        tier,
        parent: Some(expected_parent.to_string()),
        upstream: req.upstream.to_string(),
        upstream_name: upstream_name.to_string(),
        fallback,
        ca_pem: signer.root_pem.clone(),
        node,
        secret,
        actors,
    };
    if let Some(out) = out {
        bundle.save(out)?;
    }
    // The node's actor id follows from its certificate; bound now, so relayed changes are attributable.
    store.bind_actor(&own_actor, req.code)?;
    for actor in &declared {
        store.bind_actor(actor, req.code)?;
    }
    if let Some(mut record) = existing {
        // Renewal or replacement: the new serial is the only one the gate admits from now on.
        record.serial = identity.serial.clone();
        record.upstream = Some(req.upstream.to_string());
        record.name = name.to_string();
        record.revoked = false;
        store.county().put_node(&record)?;
        return Ok(bundle);
    }
    store.county().put_node(&NodeRecord {
        code: req.code.to_string(),
        name: name.to_string(),
        tier,
        parent: Some(expected_parent.to_string()),
        enrolled_at: now.to_rfc3339(),
        revoked: false,
        serial: identity.serial.clone(),
        last_seen: None,
        sessions: 0,
        failed_sessions: 0,
        refusals: 0,
        last_refusal: None,
        pending: 0,
        via: None,
        relayed_sessions: 0,
        relayed_refusals: 0,
        last_error: None,
        clock_skew_s: None,
        upstream: Some(req.upstream.to_string()),
    })?;
    Ok(bundle)
}

/// A county account as `tongban-hub user add` asks for it.
pub struct NewUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    /// One of [`ROLES`].
    pub role: &'a str,
    /// A department account's department.
    pub dept: Option<&'a str>,
    /// A window's service area (one of the catalogue's); none: a general window.
    pub area: Option<&'a str>,
    pub display_name: Option<&'a str>,
}

pub fn add_user(
    store: &Store,
    new: &NewUser<'_>,
    now: DateTime<FixedOffset>,
) -> Result<(), CountyError> {
    let NewUser {
        name,
        password,
        role,
        dept,
        area,
        display_name,
    } = *new;
    if !ROLES.contains(&role) {
        return Err(CountyError::Invalid(format!(
            "--role {role}: one of {}",
            ROLES.join(", ")
        )));
    }
    if role == "dept" && dept.is_none_or(|d| d.trim().is_empty()) {
        return Err(CountyError::Invalid("--role dept needs --dept".into()));
    }
    let area = area.map(str::trim).filter(|a| !a.is_empty());
    if let Some(area) = area {
        let areas = store.catalog()?.county.service_areas;
        if role != "window" {
            return Err(CountyError::Invalid("--area is for --role window".into()));
        }
        if !areas.iter().any(|a| a == area) {
            return Err(CountyError::Invalid(format!(
                "--area {area}: one of the catalogue's service areas ({})",
                areas.join(", ")
            )));
        }
    }
    let name = name.trim();
    if name.is_empty()
        || name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(CountyError::Invalid(
            "--name must be 1-32 ASCII letters, digits, '_', '-' or '.'".into(),
        ));
    }
    let hash = check_password(name, password)?;
    let person = display_name.map(str::trim).filter(|d| !d.is_empty());
    if person.is_some_and(|d| d.chars().count() > 32 || d.chars().any(char::is_control)) {
        return Err(CountyError::Invalid(
            "--display-name must be at most 32 characters, without control characters".into(),
        ));
    }
    // A department's people read as 民政·张三; without a name, the account stands in.
    let display = match (role, dept, person) {
        ("dept", Some(d), Some(p)) => format!("{}·{p}", d.trim()),
        ("dept", Some(d), None) => format!("{d}（{name}）"),
        (_, _, Some(p)) => p.to_string(),
        _ => name.to_string(),
    };
    store.add_user(&UserRecord {
        name: name.to_string(),
        display_name: display,
        // A department account's role names its department: "dept:民政".
        role: match (role, dept, area) {
            ("dept", Some(d), _) => format!("dept:{}", d.trim()),
            ("window", _, Some(a)) => format!("window:{a}"),
            _ => role.to_string(),
        },
        password_hash: hash,
        created_at: now.to_rfc3339(),
    })?;
    Ok(())
}
