//! The self-query page's guard against guessing (`pages::query`): lookups counted per source
//! address and wrong passwords per case number, in fixed windows, in memory only (a restart clears
//! it, which nobody outside can cause). Kept apart from the page so the app state can hold it
//! without depending on the pages.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lookups one address may make in [`WINDOW`] (right or wrong): a hall's shared address still has
/// room for a queue of villagers, a script does not get far.
pub const SOURCE_LIMIT: u32 = 30;
/// Wrong passwords for one case number in [`WINDOW`] before the number is locked for the window.
pub const CASE_FAILURE_LIMIT: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries kept; beyond it the oldest windows are forgotten first.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Source(IpAddr),
    Case(String),
}

/// Counts of lookups per address and failures per case number, in fixed windows; memory only.
#[derive(Default)]
pub struct QueryThrottle {
    table: Mutex<HashMap<Subject, (u32, Instant)>>,
}

impl QueryThrottle {
    fn count(&self, subject: &Subject, now: Instant) -> u32 {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        match table.get(subject) {
            Some((n, start)) if now - *start < WINDOW => *n,
            _ => 0,
        }
    }

    fn bump(&self, subject: Subject, now: Instant) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_TRACKED {
            table.retain(|_, (_, start)| now - *start < WINDOW);
        }
        let entry = table.entry(subject).or_insert((0, now));
        if now - entry.1 >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Whether a lookup of `case_no` from `source` may go ahead; counts it against the address.
    pub fn admit(
        &self,
        source: Option<IpAddr>,
        case_no: &str,
        now: Instant,
    ) -> Result<(), &'static str> {
        if let Some(ip) = source {
            if self.count(&Subject::Source(ip), now) >= SOURCE_LIMIT {
                return Err("查询次数过多，请15分钟后再试。");
            }
            self.bump(Subject::Source(ip), now);
        }
        if self.count(&Subject::Case(case_no.to_string()), now) >= CASE_FAILURE_LIMIT {
            return Err("这个办件编号的查询密码输错次数过多，已暂停查询15分钟。");
        }
        Ok(())
    }

    pub fn failed(&self, case_no: &str, now: Instant) {
        self.bump(Subject::Case(case_no.to_string()), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_locks_a_case_number_after_five_failures_and_an_address_after_thirty_lookups() {
        let t = QueryThrottle::default();
        let now = Instant::now();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..CASE_FAILURE_LIMIT {
            assert!(t.admit(None, "A", now).is_ok());
            t.failed("A", now);
        }
        assert!(t.admit(None, "A", now).is_err());
        assert!(t.admit(None, "B", now).is_ok());
        assert!(t.admit(None, "A", now + WINDOW).is_ok());
        for i in 0..SOURCE_LIMIT {
            assert!(t.admit(Some(ip), &format!("C{i}"), now).is_ok());
        }
        assert!(t.admit(Some(ip), "D", now).is_err());
    }
}
