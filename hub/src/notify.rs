//! Notifications to applicants: the hub's outbox (written by `take_action` with the action that causes
//! a message, see `tongban_shared::workflow::applicant_notice`) is drained by a pluggable sender. The
//! default sender only logs; no SMS gateway is wired in.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tongban_runtime::store::county::OutboxMessage;
use tongban_runtime::store::Store;

/// Passes a message on (an SMS gateway, in a deployment that has one).
pub trait Sender: Send + Sync + 'static {
    fn name(&self) -> &'static str;
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
fn masked_phone(phone: &str) -> String {
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

/// Drains the outbox whenever `wake` fires and every 30 s, until `shutdown` is cancelled.
pub async fn run(
    store: Store,
    sender: Arc<dyn Sender>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let s = store.clone();
        let sender = sender.clone();
        let drained = tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let mut n = 0;
            for msg in s.county().outbox(true).map_err(|e| e.to_string())? {
                sender.send(&msg)?;
                let at = tongban_runtime::clock::beijing_now().to_rfc3339();
                s.county()
                    .mark_sent(msg.id, sender.name(), &at)
                    .map_err(|e| e.to_string())?;
                n += 1;
            }
            Ok(n)
        })
        .await;
        match drained {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "outbox not drained; will retry"),
            Err(e) => tracing::error!(error = %e, "outbox task failed"),
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
}
