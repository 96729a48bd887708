//! Accounts at the node: argon2 password hashes, web sessions (cookie + CSRF token) and HTTP Basic for
//! scripts. Session state is memory only: a restarted node asks the agent to log in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tongban_runtime::store::UserRecord;
use tongban_shared::FieldError;

pub const SESSION_COOKIE: &str = "tongban_session";

/// Longest a session lives however busy it is: a working day plus margin.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A session unused this long ends (等保: 登录连接超时自动退出); the serve commands can change it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Sessions one account may hold at once (a station's few browsers, a hall PC and a phone). Beyond it
/// the account's own oldest ends: one account cannot evict anyone else's.
const SESSIONS_PER_ACCOUNT: usize = 8;
/// Verified Basic credentials are remembered briefly: argon2 takes tens of milliseconds by design, and a
/// script filing many cases should not pay it on every request.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(300);
const MAX_BASIC_CACHE: usize = 64;

pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` is the one `phc` was made from. argon2's working memory (19 MiB with the
/// default parameters) is allocated for this check and given back after it: the process start
/// (`tongban_runtime::process`) makes glibc map allocations that large on their own, so they leave
/// the process when freed instead of staying in a malloc arena (kept per checker thread before, they
/// stayed in the RSS of every node for its whole life).
pub fn verify_password(password: &str, phc: &str) -> bool {
    let mut blocks: Vec<argon2::Block> = Vec::new();
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (hash.hash, hash.salt) else {
        return false;
    };
    let Ok(params) = argon2::Params::try_from(&hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    blocks.resize(params.block_count(), argon2::Block::default());
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        &mut blocks[..],
    );
    // `Output`'s equality is constant-time.
    hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
}

/// Shortest password accepted (等保 level 3: 口令复杂度).
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Published lists' most common passwords; see the file's header.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// What a new password must be: at least [`MIN_PASSWORD_CHARS`] characters, not the account's name,
/// not one of the most common passwords, not one character repeated. Kept to rules a person new to
/// computers can follow from the one sentence that explains a refusal.
pub fn check_new_password(user: &str, password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("密码至少需要{MIN_PASSWORD_CHARS}位。"));
    }
    let lower = password.to_lowercase();
    if lower == user.to_lowercase() {
        return Err("密码不能与账号名相同。".to_string());
    }
    let mut chars = lower.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err("密码不能是同一个字符的重复。".to_string());
    }
    let common = COMMON_PASSWORDS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.trim() == lower);
    if common {
        return Err("这个密码太常见，很容易被猜到，请换一个。".to_string());
    }
    Ok(())
}

/// A new account as a manager asks for it (the API's body, the node's `user add`).
pub struct NewAccount<'a> {
    pub name: &'a str,
    /// The person's name as history and receipts show it; the account name when empty.
    pub display_name: &'a str,
    pub password: &'a str,
    /// One of [`grantable`] at the tier.
    pub role: &'a str,
    /// A county department account's department.
    pub dept: Option<&'a str>,
    /// A county window's service area (社会事务, 企业事务 …); none: a general window that receives
    /// every item (e.g. 潮汐岗 staff).
    pub area: Option<&'a str>,
}

/// The roles an account manager may give at each tier.
pub fn grantable(tier: tongban_shared::Tier) -> &'static [&'static str] {
    match tier {
        tongban_shared::Tier::County => &["admin", "window", "dept", "supervisor"],
        _ => &["agent", "head"],
    }
}

/// The password policy, then the hash; the error names the `password` field.
pub fn hash_new(user: &str, password: &str) -> Result<String, FieldError> {
    check_new_password(user, password)
        .map_err(|why| FieldError::new("password", format!("新密码不符合要求：{why}")))?;
    hash_password(password).map_err(|e| FieldError::new("password", format!("密码无法保存：{e}")))
}

/// The record of a new account, or the first field that is wrong: the one set of rules for every
/// way an account is added at a node or the hub's API.
pub fn new_account(
    tier: tongban_shared::Tier,
    req: &NewAccount<'_>,
    created_at: &str,
) -> Result<UserRecord, FieldError> {
    let name = req.name.trim();
    if name.is_empty()
        || name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(FieldError::new(
            "name",
            "账号应为1到32位字母、数字、“_”、“-”或“.”。",
        ));
    }
    if !grantable(tier).contains(&req.role) {
        return Err(FieldError::new(
            "role",
            format!("角色只能是：{}。", grantable(tier).join("、")),
        ));
    }
    let dept = req.dept.map(str::trim).filter(|d| !d.is_empty());
    let area = req.area.map(str::trim).filter(|a| !a.is_empty());
    let role = match (req.role, dept, area) {
        ("dept", Some(d), _) if d.chars().count() <= 50 => format!("dept:{d}"),
        ("dept", _, _) => {
            return Err(FieldError::new(
                "dept",
                "部门账号需要填写1到50字的部门名称。",
            ))
        }
        ("window", _, Some(a)) if a.chars().count() <= 20 && !a.chars().any(char::is_control) => {
            format!("window:{a}")
        }
        (_, _, Some(_)) => {
            return Err(FieldError::new(
                "area",
                "服务区只适用于窗口账号，最多20个字。",
            ))
        }
        (r, _, None) => r.to_string(),
    };
    let display = req.display_name.trim();
    if display.chars().count() > 30 || display.chars().any(char::is_control) {
        return Err(FieldError::new("display_name", "显示名称最多30个字。"));
    }
    Ok(UserRecord {
        display_name: if display.is_empty() {
            name.to_string()
        } else {
            display.to_string()
        },
        name: name.to_string(),
        role,
        password_hash: hash_new(name, req.password)?,
        created_at: created_at.to_string(),
    })
}

/// Compares a submitted token with the session's in time independent of where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub display_name: String,
    /// Role at login (`agent`, `admin`, `window`, `dept`, `supervisor`).
    pub role: String,
    /// Must accompany every form POST of this session (hidden field `csrf`).
    pub csrf: String,
    started: Instant,
    last_seen: Instant,
}

pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    basic: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    idle_timeout: Duration,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(DEFAULT_IDLE_TIMEOUT)
    }
}

impl Sessions {
    pub fn new(idle_timeout: Duration) -> Sessions {
        Sessions {
            by_token: Mutex::default(),
            basic: Mutex::default(),
            idle_timeout,
        }
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.started) < SESSION_LIFETIME
            && now.saturating_duration_since(s.last_seen) < self.idle_timeout
    }

    pub fn start(
        &self,
        user: &str,
        display_name: &str,
        role: &str,
        now: Instant,
    ) -> (String, Session) {
        let token = random_token();
        let session = Session {
            user: user.to_string(),
            display_name: display_name.to_string(),
            role: role.to_string(),
            csrf: random_token(),
            started: now,
            last_seen: now,
        };
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| self.live(s, now));
        let mut own: Vec<(Instant, String)> = map
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(k, s)| (s.last_seen, k.clone()))
            .collect();
        own.sort();
        for (_, oldest) in own
            .iter()
            .take((own.len() + 1).saturating_sub(SESSIONS_PER_ACCOUNT))
        {
            map.remove(oldest);
        }
        map.insert(token.clone(), session.clone());
        (token, session)
    }

    /// The live session of `token`; using it counts as activity.
    pub fn get(&self, token: &str, now: Instant) -> Option<Session> {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        let live = map.get(token).is_some_and(|s| self.live(s, now));
        if !live {
            map.remove(token);
            return None;
        }
        let s = map.get_mut(token)?;
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn end(&self, token: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    /// Ends every session of `user` (password changed, account disabled).
    pub fn end_all_of(&self, user: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| s.user != user);
        // A remembered Basic header would otherwise still pass with the old password.
        self.basic
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (cached, _)| cached != user);
    }

    fn basic_key(header: &str) -> [u8; 32] {
        Sha256::digest(header.as_bytes()).into()
    }

    pub fn cached_basic(&self, header: &str, now: Instant) -> Option<String> {
        let map = self.basic.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&Self::basic_key(header))
            .filter(|(_, until)| *until > now)
            .map(|(user, _)| user.clone())
    }

    pub fn remember_basic(&self, header: &str, user: &str, now: Instant) {
        let mut map = self.basic.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, until)| *until > now);
        if map.len() >= MAX_BASIC_CACHE {
            map.clear();
        }
        map.insert(
            Self::basic_key(header),
            (user.to_string(), now + BASIC_CACHE_TTL),
        );
    }
}

/// Value of one cookie from a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_only_the_right_password() {
        let h = hash_password("cunzhan123").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("cunzhan123", &h));
        assert!(!verify_password("cunzhan124", &h));
        assert!(!verify_password("cunzhan123", "not a hash"));
    }

    #[test]
    fn weak_passwords_are_refused_with_the_reason() {
        assert!(check_new_password("admin", "admin123").is_err());
        assert!(check_new_password("zhang", "admin123")
            .unwrap_err()
            .contains("常见"));
        assert!(check_new_password("zhang", "Admin123")
            .unwrap_err()
            .contains("常见"));
        assert!(check_new_password("zhang", "abc123")
            .unwrap_err()
            .contains("8位"));
        assert!(check_new_password("zhangsan", "ZhangSan")
            .unwrap_err()
            .contains("账号"));
        assert!(check_new_password("zhang", "aaaaaaaaa").is_err());
        assert!(check_new_password("zhang", "黄石-阳新-07").is_ok());
        assert!(check_new_password("zhang", "Cunzhan#2026").is_ok());
    }

    #[test]
    fn sessions_end_when_idle_at_their_lifetime_and_on_logout() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let (token, session) = s.start("daiban", "李代办", "agent", t0);
        assert_eq!(s.get(&token, t0).unwrap().csrf, session.csrf);
        assert!(s.get(&token, t0 + DEFAULT_IDLE_TIMEOUT).is_none(), "idle");

        let (token, _) = s.start("daiban", "李代办", "agent", t0);
        // Used every 20 minutes it stays, up to its lifetime.
        let mut at = t0;
        while at + Duration::from_secs(20 * 60) < t0 + SESSION_LIFETIME {
            at += Duration::from_secs(20 * 60);
            assert!(s.get(&token, at).is_some(), "{:?}", at - t0);
        }
        assert!(s.get(&token, t0 + SESSION_LIFETIME).is_none(), "lifetime");

        let (token, _) = s.start("daiban", "李代办", "agent", t0);
        s.end(&token);
        assert!(s.get(&token, t0).is_none());
    }

    #[test]
    fn one_account_filling_its_sessions_evicts_only_its_own() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let (other, _) = s.start("chuangkou", "窗口", "window", t0);
        let first = s.start("daiban", "李代办", "agent", t0).0;
        for i in 1..100u64 {
            s.start("daiban", "李代办", "agent", t0 + Duration::from_millis(i));
        }
        assert!(s.get(&other, t0).is_some());
        assert!(s.get(&first, t0).is_none());
        let own = s
            .by_token
            .lock()
            .unwrap()
            .values()
            .filter(|v| v.user == "daiban")
            .count();
        assert_eq!(own, SESSIONS_PER_ACCOUNT);
        s.end_all_of("daiban");
        assert_eq!(s.by_token.lock().unwrap().len(), 1);
    }

    #[test]
    fn cookie_parsing() {
        assert_eq!(
            cookie_value("a=1; tongban_session=abc; b=2", SESSION_COOKIE),
            Some("abc")
        );
        assert_eq!(cookie_value("a=1", SESSION_COOKIE), None);
    }
}
