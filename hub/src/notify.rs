//! Notifications to applicants: the hub's outbox (written by `take_action` with the action that causes
//! a message, see `tongban_shared::workflow::applicant_notice`) is drained by a pluggable sender. The
//! default sender only logs; `serve --sms-url` posts to an SMS gateway ([`crate::sms`]).
//!
//! A message that fails is tried again after 30 s, 2 min, 10 min, 1 h, 3 h, 6 h and 12 h (about a day
//! in all); after the 8th failed attempt it is `failed` and waits for a person
//! (`POST /api/outbox/{id}/retry`). With a gateway, one number gets at most `--sms-daily-cap` texts a
//! Beijing day: a message past that is `capped` (held back for good, shown on `/outbox`, re-queued by
//! hand like a failed one) rather than sent the next day, when it would be stale or out of order.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tongban_runtime::clock::beijing_now;
use tongban_runtime::store::county::OutboxMessage;
use tongban_runtime::store::{Store, StoreError};

/// Passes a message on (an SMS gateway, in a deployment that has one).
pub trait Sender: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// `Err` is the reason, as staff read it in the outbox; it must not hold the full phone number.
    fn send(&self, msg: &OutboxMessage) -> Result<(), String>;
}

/// Writes each message to the log.
pub struct LogSender;

impl Sender for LogSender {
    fn name(&self) -> &'static str {
        "log"
    }

    /// The log is read by more people than the applicant's own text should be: the phone is masked,
    /// the text goes only to DEBUG, and as a quoted string, so a newline in it cannot start a line
    /// that looks like another record.
    fn send(&self, msg: &OutboxMessage) -> Result<(), String> {
        tracing::info!(case_no = %msg.case_no, phone = %masked_phone(&msg.phone), kind = %msg.kind, chars = msg.text.chars().count(), "sms (log sender)");
        tracing::debug!(case_no = %msg.case_no, text = ?msg.text, "sms text (log sender)");
        Ok(())
    }
}

/// `138****1234`: enough for staff to tell numbers apart, not to call one.
pub fn masked_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let (head, tail) = (&chars[..3], &chars[chars.len() - 4..]);
    format!(
        "{}****{}",
        head.iter().collect::<String>(),
        tail.iter().collect::<String>()
    )
}

/// The wait after the n-th failed attempt, in units of [`Policy::retry_base`]: 30 s, 2 min, 10 min,
/// 1 h, 3 h, 6 h, 12 h with the default base. A gateway that is down for a while loses no message,
/// and a number that is wrong stops costing attempts within a day.
const RETRY_STEPS: [u32; 7] = [1, 4, 20, 120, 360, 720, 1440];

/// However the base is set, no retry waits longer (and the time stays far from chrono's limits).
const LONGEST_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Attempts before a message is `failed`.
pub const MAX_ATTEMPTS: u32 = 8;

/// Texts one number may receive per Beijing day through a gateway, unless `--sms-daily-cap` says.
pub const DEFAULT_DAILY_CAP: u32 = 5;

/// The drain's longest sleep: also the pace at which it notices a message re-queued in another way
/// than through the wake (none today, but a missed wake then costs no more than this).
const IDLE: Duration = Duration::from_secs(30);

/// How the sender treats failures and numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The first retry's wait; later ones are multiples of it ([`RETRY_STEPS`]). 30 s; tests shorten
    /// it with the hidden `serve --sms-retry-base-ms`.
    pub retry_base: Duration,
    pub max_attempts: u32,
    /// Texts per number per Beijing day; `None`: no limit (the log sender, or `--sms-daily-cap 0`).
    pub daily_cap: Option<u32>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            retry_base: Duration::from_secs(30),
            max_attempts: MAX_ATTEMPTS,
            daily_cap: None,
        }
    }
}

impl Policy {
    /// The wait before the next attempt after `attempts` attempts have failed; `None` when none is
    /// left.
    pub fn retry_delay(&self, attempts: u32) -> Option<Duration> {
        if attempts == 0 || attempts >= self.max_attempts {
            return None;
        }
        let step = (attempts as usize - 1).min(RETRY_STEPS.len() - 1);
        Some(
            self.retry_base
                .saturating_mul(RETRY_STEPS[step])
                .min(LONGEST_WAIT),
        )
    }

    /// Whether `msg` must be held back, when its number has had `sent_today` texts today. A message
    /// a person re-queued goes anyway: someone decided it should.
    pub fn holds_back(&self, msg: &OutboxMessage, sent_today: u32) -> bool {
        msg.requeued_by.is_none() && self.daily_cap.is_some_and(|cap| sent_today >= cap)
    }
}

/// The sender and its policy, as `serve` runs them.
#[derive(Clone)]
pub struct Outbox {
    pub sender: Arc<dyn Sender>,
    pub policy: Policy,
}

impl Outbox {
    /// The default: every message to the log, none held back (nothing reaches a phone).
    pub fn log() -> Outbox {
        Outbox {
            sender: Arc::new(LogSender),
            policy: Policy::default(),
        }
    }
}

/// Wakes the sender at once (a message queued, or re-queued by hand). In the hub's router as an
/// extension, for the handlers that re-queue.
#[derive(Clone, Default)]
pub struct OutboxWake(pub Arc<Notify>);

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Pass {
    sent: usize,
    failed: usize,
    capped: usize,
    /// When a pending message is next due.
    next: Option<DateTime<FixedOffset>>,
}

/// One pass over the due messages: each is tried once, and its outcome stored before the next one.
/// A failed message only delays itself; a store fault ends the pass (nothing more could be recorded,
/// and a message sent but not recorded is sent again with the same id, which the gateway recognises).
fn drain(
    store: &Store,
    sender: &dyn Sender,
    policy: &Policy,
    shutdown: &CancellationToken,
) -> Result<Pass, StoreError> {
    let county = store.county();
    let work = county.due_messages(beijing_now())?;
    for id in &work.damaged {
        tracing::error!(message_id = id, "outbox record does not decode; skipped");
    }
    let mut sent_today = work.sent_today;
    let mut pass = Pass {
        next: work.next,
        ..Pass::default()
    };
    for msg in work.due {
        // A slow gateway must not hold up the hub's shutdown for the whole queue.
        if shutdown.is_cancelled() {
            break;
        }
        let phone = masked_phone(&msg.phone);
        let today = sent_today.get(&msg.phone).copied().unwrap_or(0);
        if policy.holds_back(&msg, today) {
            let cap = policy.daily_cap.unwrap_or_default();
            county.mark_capped(
                msg.id,
                &format!("该号码今天已发送{today}条短信（每天最多{cap}条），本条未发送。"),
            )?;
            tracing::warn!(message_id = msg.id, case_no = %msg.case_no, %phone, kind = %msg.kind, cap, "sms held back: the number's daily limit is reached");
            pass.capped += 1;
            continue;
        }
        let outcome = sender.send(&msg);
        let now = beijing_now();
        let attempts = msg.attempts.saturating_add(1);
        match outcome {
            Ok(()) => {
                county.mark_sent(msg.id, sender.name(), &now.to_rfc3339())?;
                *sent_today.entry(msg.phone.clone()).or_default() += 1;
                tracing::info!(message_id = msg.id, case_no = %msg.case_no, %phone, kind = %msg.kind, attempts, sender = sender.name(), "sms sent");
                pass.sent += 1;
            }
            Err(reason) => {
                let retry_at = policy.retry_delay(attempts).and_then(|d| {
                    chrono::Duration::from_std(d)
                        .ok()
                        .and_then(|d| now.checked_add_signed(d))
                });
                county.record_failure(
                    msg.id,
                    &now.to_rfc3339(),
                    &reason,
                    retry_at.map(|t| t.to_rfc3339()).as_deref(),
                )?;
                match retry_at {
                    Some(at) => {
                        tracing::warn!(message_id = msg.id, case_no = %msg.case_no, %phone, attempts, error = %reason, retry_at = %at.to_rfc3339(), "sms not sent; will retry");
                        pass.next = Some(pass.next.map_or(at, |n| n.min(at)));
                    }
                    None => {
                        tracing::error!(message_id = msg.id, case_no = %msg.case_no, %phone, attempts, error = %reason, "sms failed for good; re-queue it from /outbox");
                        pass.failed += 1;
                    }
                }
            }
        }
    }
    Ok(pass)
}

/// How long to wait for the next pass: until the next retry is due, at most [`IDLE`].
fn wait_for(next: Option<DateTime<FixedOffset>>, now: DateTime<FixedOffset>) -> Duration {
    next.map_or(IDLE, |at| (at - now).to_std().unwrap_or(Duration::ZERO))
        .min(IDLE)
}

/// Drains the outbox whenever `wake` fires, when a retry is due, and every 30 s, until `shutdown` is
/// cancelled.
pub async fn run(store: Store, outbox: Outbox, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let (s, o, stop) = (store.clone(), outbox.clone(), shutdown.clone());
        let pass =
            tokio::task::spawn_blocking(move || drain(&s, o.sender.as_ref(), &o.policy, &stop))
                .await;
        let next = match pass {
            Ok(Ok(pass)) => {
                if pass.sent + pass.failed + pass.capped > 0 {
                    tracing::debug!(
                        sent = pass.sent,
                        failed = pass.failed,
                        capped = pass.capped,
                        "outbox pass"
                    );
                }
                pass.next
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "outbox not drained; will retry");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "outbox task failed");
                None
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait_for(next, beijing_now())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> OutboxMessage {
        serde_json::from_value(serde_json::json!({
            "id": 1, "case_no": "YX1", "phone": "13800271234", "kind": "accepted", "text": "t",
            "created_at": "2026-11-27T09:00:00+08:00", "sent_at": null, "sender": null
        }))
        .unwrap()
    }

    #[test]
    fn retries_back_off_and_stop_after_the_last_attempt() {
        let p = Policy::default();
        let waits: Vec<u64> = (1..MAX_ATTEMPTS)
            .map(|n| p.retry_delay(n).unwrap().as_secs())
            .collect();
        assert_eq!(waits, [30, 120, 600, 3600, 10800, 21600, 43200]);
        assert_eq!(
            p.retry_delay(MAX_ATTEMPTS),
            None,
            "the 8th failure is final"
        );
        assert_eq!(p.retry_delay(0), None);
        let fast = Policy {
            retry_base: Duration::from_millis(100),
            ..Policy::default()
        };
        assert_eq!(fast.retry_delay(2), Some(Duration::from_millis(400)));
    }

    #[test]
    fn the_daily_cap_holds_back_all_but_a_requeued_message() {
        let capped = Policy {
            daily_cap: Some(2),
            ..Policy::default()
        };
        let mut msg = message();
        assert!(!capped.holds_back(&msg, 1));
        assert!(capped.holds_back(&msg, 2));
        assert!(!Policy::default().holds_back(&msg, 1000), "no cap: never");
        msg.requeued_by = Some("admin".into());
        assert!(!capped.holds_back(&msg, 2));
    }

    #[test]
    fn the_sender_sleeps_until_the_next_retry_but_never_long() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T09:00:00+08:00").unwrap();
        assert_eq!(wait_for(None, now), IDLE);
        let soon = now + chrono::Duration::milliseconds(250);
        assert_eq!(wait_for(Some(soon), now), Duration::from_millis(250));
        let past = now - chrono::Duration::seconds(5);
        assert_eq!(wait_for(Some(past), now), Duration::ZERO);
        let later = now + chrono::Duration::hours(1);
        assert_eq!(wait_for(Some(later), now), IDLE);
    }

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(masked_phone("13800271234"), "138****1234");
        assert_eq!(masked_phone("12345"), "*****");
    }
}
