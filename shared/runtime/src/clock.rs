//! The wall clock node and hub read. A village PC's clock is often wrong (no NTP, a dead CMOS
//! battery); sync sessions exchange clocks so that the county sees each node's skew and a node knows
//! its own (see docs/SYNC.md). `TONGBAN_CLOCK_OFFSET_SECS` shifts this process's clock, to rehearse a
//! wrong clock in tests and drills; it is never set in production.

use std::sync::OnceLock;

use chrono::{DateTime, Duration, FixedOffset, Offset, Utc};

/// Skews beyond this are shown to people as a warning: a few minutes are normal drift.
pub const SKEW_WARNING_SECS: i64 = 300;

fn offset() -> Duration {
    static OFFSET: OnceLock<Duration> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var("TONGBAN_CLOCK_OFFSET_SECS")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map(Duration::seconds)
            .unwrap_or_else(Duration::zero)
    })
}

/// Now, by this machine's clock (and the rehearsal offset, if any).
pub fn now_utc() -> DateTime<Utc> {
    Utc::now() + offset()
}

/// China has one time zone; a village PC set to UTC must still date its cases in Beijing time.
pub fn beijing_now() -> DateTime<FixedOffset> {
    let beijing = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix());
    now_utc().with_timezone(&beijing)
}

/// Milliseconds since the Unix epoch, as sent in `Hello` / `HelloReply`.
pub fn now_ms() -> i64 {
    now_utc().timestamp_millis()
}

/// A skew in seconds as a Chinese phrase ("快约 1 天 0 小时" / "慢约 3 小时 5 分").
pub fn describe_skew(skew_s: i64) -> String {
    let direction = if skew_s >= 0 { "快" } else { "慢" };
    // To the nearest minute: the measurement is only good to about one network delay.
    let m = (skew_s.unsigned_abs() + 30) / 60;
    let (days, hours, minutes) = (m / 1440, m % 1440 / 60, m % 60);
    if days > 0 {
        format!("{direction}约 {days} 天 {hours} 小时")
    } else if hours > 0 {
        format!("{direction}约 {hours} 小时 {minutes} 分")
    } else {
        format!("{direction}约 {minutes} 分")
    }
}

#[cfg(test)]
mod tests {
    use super::describe_skew;

    #[test]
    fn skews_read_as_people_say_them() {
        assert_eq!(describe_skew(86_399), "快约 1 天 0 小时");
        assert_eq!(describe_skew(-3 * 3600 - 5 * 60), "慢约 3 小时 5 分");
        assert_eq!(describe_skew(400), "快约 7 分");
    }
}
