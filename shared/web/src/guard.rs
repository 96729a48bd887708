//! Password checks under guard: every login (form or HTTP Basic) at every tier goes through
//! [`LoginGuard::verify`].
//!
//! - **Bounded work.** argon2 takes about 19 MiB and tens of milliseconds per check by design; without
//!   a bound, 64 parallel wrong passwords took a hub from 126 MB to 2.3 GB. At most
//!   [`VERIFY_SLOTS`] checks run at once; a request that waits longer than [`VERIFY_WAIT`] for a slot
//!   is answered 429.
//! - **Lockout.** [`FAILURE_LIMIT`] failures within [`FAILURE_WINDOW`] lock the account, and
//!   [`SOURCE_FAILURE_LIMIT`] the source address, for [`LOCK_TIME`] (等保 level 3, 身份鉴别: 登录失败处理). A locked
//!   login is refused before any password is checked.
//! - **No oracle.** An unknown account costs the same argon2 check as a known one (against a hash of
//!   a random password), and answers the same sentence.
//!
//! The failure table is memory only and bounded ([`MAX_TRACKED`]): a restart clears it, which an
//! attacker cannot cause from outside.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tongban_runtime::metrics::{LoginFailure, Metrics};
use tongban_runtime::store::{Store, UserRecord};

use crate::accounts;
use crate::audit;
use crate::error::AppError;

/// Checks running at once: two cores, and 2 × 19 MiB is what a village PC can spare.
pub const VERIFY_SLOTS: usize = 2;
/// How long a login waits for a slot before it is told to try again.
pub const VERIFY_WAIT: Duration = Duration::from_secs(3);
/// Failures of one account that lock it.
pub const FAILURE_LIMIT: u32 = 5;
/// Failures from one address that lock it: higher, since a hall's PCs may share one address.
pub const SOURCE_FAILURE_LIMIT: u32 = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const LOCK_TIME: Duration = Duration::from_secs(15 * 60);
/// Accounts and addresses with recent failures that are remembered; beyond it the oldest go first.
pub const MAX_TRACKED: usize = 10_000;

/// One password check, run on a checker thread.
type Check = Box<dyn FnOnce() + Send>;

/// Who failed: the account name tried, or where the attempt came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Account(String),
    Source(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// What a login attempt is refused with, or the account it proved.
#[derive(Debug)]
pub enum Verdict {
    Valid(UserRecord),
    /// Wrong account or password.
    Wrong,
    /// Locked after too many failures; the time left.
    Locked(Duration),
}

pub struct LoginGuard {
    slots: Semaphore,
    failures: Mutex<HashMap<Subject, Failures>>,
    /// Checked against for unknown accounts, so they cost what a known one costs.
    decoy: Arc<OnceLock<String>>,
    /// Where checks go to the checker threads (see [`LoginGuard::run_check`]).
    checkers: OnceLock<std::sync::mpsc::Sender<Check>>,
    /// Counts failed checks for monitoring (a burst of them is someone guessing).
    metrics: Arc<Metrics>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        LoginGuard::new(Arc::new(Metrics::new()))
    }
}

impl LoginGuard {
    pub fn new(metrics: Arc<Metrics>) -> LoginGuard {
        LoginGuard {
            slots: Semaphore::new(VERIFY_SLOTS),
            failures: Mutex::new(HashMap::new()),
            decoy: Arc::default(),
            checkers: OnceLock::new(),
            metrics,
        }
    }

    /// Checks `password` for `user`, coming from `source` (unknown for in-process callers).
    /// `Err` is 429 (no slot in time) or a store failure; a wrong password is `Ok(Verdict::Wrong)`.
    pub async fn verify(
        &self,
        store: &Store,
        user: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<Verdict, AppError> {
        let now = Instant::now();
        if let Some(left) = self.locked(user, source, now) {
            self.metrics.login_failed(LoginFailure::Locked);
            audit::record(store, user, "login.refused_locked", "", source).await?;
            return Ok(Verdict::Locked(left));
        }
        let permit = tokio::time::timeout(VERIFY_WAIT, self.slots.acquire())
            .await
            .map_err(|_| AppError::Busy("登录的人太多，请稍等几秒再试。".into()))?
            .map_err(AppError::internal)?;
        let (in_check, decoy) = (store.clone(), self.decoy.clone());
        let (name, password) = (user.to_string(), password.to_string());
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.run_check(Box::new(move || {
            let found = in_check.user(&name).map(|record| {
                let hash = match &record {
                    Some(r) => r.password_hash.as_str(),
                    // Made on first use: it costs one argon2 hash.
                    None => decoy.get_or_init(|| {
                        accounts::hash_password(&accounts::random_token()).unwrap_or_default()
                    }),
                };
                let ok = accounts::verify_password(&password, hash);
                record.filter(|_| ok)
            });
            // The request may have gone (client closed): nobody to tell.
            let _ = answer.send(found);
        }))?;
        let found = answered
            .await
            .map_err(|_| AppError::Internal("password check ended without an answer".into()))?
            .map_err(AppError::from);
        drop(permit);
        match found? {
            Some(record) => {
                self.succeeded(user);
                audit::record(store, user, "login", "", source).await?;
                Ok(Verdict::Valid(record))
            }
            None => {
                self.metrics.login_failed(LoginFailure::WrongPassword);
                let locked = self.failed(user, source, Instant::now());
                // A name nobody has is recorded as typed (bounded, one line): guessing is what the
                // record is for.
                let what = if locked {
                    "login.locked"
                } else {
                    "login.failed"
                };
                audit::record(store, user, what, "", source).await?;
                Ok(Verdict::Wrong)
            }
        }
    }

    /// Runs a check on one of the [`VERIFY_SLOTS`] checker threads, started on first use. Dedicated,
    /// long-lived threads matter for memory: argon2's 19 MiB comes from the allocator of the thread
    /// that runs it, and on a pool of many short-lived threads (tokio's blocking pool) each thread's
    /// arena kept its own 19 MiB — 64 parallel wrong passwords still took a hub to 469–526 MB with the
    /// slots bounded. Two threads keep at most two such blocks.
    fn run_check(&self, check: Check) -> Result<(), AppError> {
        let jobs = self.checkers.get_or_init(|| {
            let (jobs, queue) = std::sync::mpsc::channel::<Check>();
            let queue = Arc::new(Mutex::new(queue));
            for i in 0..VERIFY_SLOTS {
                let queue = queue.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("password-check-{i}"))
                    .spawn(move || loop {
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match next {
                            Ok(check) => check(),
                            // The guard is gone: so is the server.
                            Err(_) => return,
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a password-check thread");
                }
            }
            jobs
        });
        jobs.send(check)
            .map_err(|_| AppError::Internal("no password-check thread is running".into()))
    }

    /// Time left on a lock of `user` or `source`: a locked account is locked also for a script
    /// whose right password was remembered before the lock.
    pub fn lock_left(&self, user: &str, source: Option<IpAddr>) -> Option<Duration> {
        self.locked(user, source, Instant::now())
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Subject, Failures>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Time left on the longer lock of the account and the source, if either is locked.
    fn locked(&self, user: &str, source: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let table = self.table();
        subjects(user, source)
            .filter_map(|s| table.get(&s)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failure against the account and the source; returns whether that locked either.
    fn failed(&self, user: &str, source: Option<IpAddr>, now: Instant) -> bool {
        let mut table = self.table();
        if table.len() >= MAX_TRACKED {
            table.retain(|_, f| {
                f.locked_until.is_some_and(|u| u > now) || now - f.first < FAILURE_WINDOW
            });
            while table.len() >= MAX_TRACKED {
                let Some(oldest) = table
                    .iter()
                    .min_by_key(|(_, f)| f.first)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                table.remove(&oldest);
            }
        }
        let mut locked = false;
        for subject in subjects(user, source) {
            let f = table.entry(subject.clone()).or_insert(Failures {
                count: 0,
                first: now,
                locked_until: None,
            });
            if now - f.first >= FAILURE_WINDOW || f.locked_until.is_some_and(|u| u <= now) {
                *f = Failures {
                    count: 0,
                    first: now,
                    locked_until: None,
                };
            }
            f.count += 1;
            let limit = match subject {
                Subject::Account(_) => FAILURE_LIMIT,
                Subject::Source(_) => SOURCE_FAILURE_LIMIT,
            };
            if f.count >= limit && f.locked_until.is_none() {
                f.locked_until = Some(now + LOCK_TIME);
                locked = true;
            }
        }
        locked
    }

    /// A right password clears the account's failures (the source's stay: one address guessing at
    /// many accounts is still locked out).
    fn succeeded(&self, user: &str) {
        self.table().remove(&Subject::Account(user.to_string()));
    }
}

fn subjects(user: &str, source: Option<IpAddr>) -> impl Iterator<Item = Subject> {
    std::iter::once(Subject::Account(user.to_string())).chain(source.map(Subject::Source))
}

/// The sentence a locked login is answered with.
pub fn locked_message(left: Duration) -> String {
    let minutes = left.as_secs().div_ceil(60).max(1);
    format!("登录失败次数过多，已暂时锁定。请{minutes}分钟后再试，或请管理员协助。")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_the_account_from_everywhere_and_the_lock_runs_out() {
        let guard = LoginGuard::default();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..FAILURE_LIMIT - 1 {
            assert!(!guard.failed("daiban", Some(ip), t0 + Duration::from_secs(u64::from(i))));
        }
        assert!(guard.locked("daiban", None, t0).is_none());
        assert!(guard.failed("daiban", Some(ip), t0 + Duration::from_secs(10)));
        let left = guard
            .locked("daiban", None, t0 + Duration::from_secs(10))
            .unwrap();
        assert_eq!(left, LOCK_TIME);
        let elsewhere: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(guard.locked("daiban", Some(elsewhere), t0).is_some());
        assert!(
            guard.locked("other", Some(ip), t0).is_none(),
            "the address is not locked yet"
        );
        let later = t0 + Duration::from_secs(10) + LOCK_TIME;
        assert!(guard.locked("daiban", Some(ip), later).is_none());
        assert!(
            !guard.failed("daiban", Some(ip), later),
            "a new window starts"
        );
    }

    #[test]
    fn one_address_guessing_many_accounts_is_locked_for_all() {
        let guard = LoginGuard::default();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let locked: Vec<bool> = (0..SOURCE_FAILURE_LIMIT)
            .map(|i| guard.failed(&format!("name{i}"), Some(ip), t0))
            .collect();
        assert_eq!(locked.iter().filter(|l| **l).count(), 1);
        assert!(locked[usize::try_from(SOURCE_FAILURE_LIMIT).unwrap() - 1]);
        assert!(guard.locked("daiban", Some(ip), t0).is_some());
        assert!(guard.locked("daiban", None, t0).is_none());
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_lock() {
        let guard = LoginGuard::default();
        let t0 = Instant::now();
        for i in 0..3 * FAILURE_LIMIT {
            let at = t0 + FAILURE_WINDOW / 3 * i;
            assert!(!guard.failed("daiban", None, at), "failure {i}");
        }
    }

    #[test]
    fn the_table_stays_bounded() {
        let guard = LoginGuard::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED + 10 {
            guard.failed(&format!("user{i}"), None, t0);
        }
        assert!(guard.table().len() <= MAX_TRACKED);
    }
}
