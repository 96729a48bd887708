//! Accounts at the node: argon2 password hashes, web sessions (cookie + CSRF token) and HTTP Basic for
//! scripts. Session state is memory only: a restarted node asks the agent to log in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const SESSION_COOKIE: &str = "tongban_session";

/// An agent logs in once in the morning; a working day plus margin.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Bounded so that a script that logs in on every request cannot grow memory without limit.
const MAX_SESSIONS: usize = 256;
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

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A minimum that stops the most guessable passwords without frustrating people who are new to computers.
pub fn check_new_password(password: &str) -> Result<(), String> {
    if password.chars().count() < 6 {
        return Err("密码至少需要6位。".to_string());
    }
    Ok(())
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
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
    basic: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl Sessions {
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
            expires: now + SESSION_TTL,
        };
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(token.clone(), session.clone());
        (token, session)
    }

    pub fn get(&self, token: &str, now: Instant) -> Option<Session> {
        let map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.get(token).filter(|s| s.expires > now).cloned()
    }

    pub fn end(&self, token: &str) {
        self.by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
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
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let (token, session) = s.start("daiban", "李代办", "agent", t0);
        assert_eq!(s.get(&token, t0).unwrap().csrf, session.csrf);
        assert!(s.get(&token, t0 + SESSION_TTL).is_none());
        s.end(&token);
        assert!(s.get(&token, t0).is_none());
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
