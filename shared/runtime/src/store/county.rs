//! Records only the county hub keeps: the enrolled nodes (with their sync statistics) and the outbox
//! of texts to applicants. Reached through [`Store::county`], so that a node's code never touches them.

use chrono::{DateTime, FixedOffset, NaiveDate, Offset};
use serde::{Deserialize, Serialize};
use tongban_shared::Tier;

use super::error::{corrupt, StoreError};
use super::Store;

/// One text message to an applicant, kept until a sender has passed it on (and after, as a record).
///
/// The fields after `sender` came with the SMS gateway; they are `#[serde(default)]` so that records
/// written before read as they were (a record with `sent_at` reads as `sent`, see [`decode`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: u64,
    pub case_no: String,
    pub phone: String,
    /// `correction`, `result_ready`, …
    pub kind: String,
    pub text: String,
    pub created_at: String,
    pub sent_at: Option<String>,
    /// Which sender passed it on (`log` by default).
    pub sender: Option<String>,
    #[serde(default)]
    pub state: OutboxState,
    /// Attempts made so far, successful or not.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed, or why the message was held back (shown to staff).
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_attempt_at: Option<String>,
    /// A pending message is not tried before this (RFC 3339); `None`: at once.
    #[serde(default)]
    pub next_attempt_at: Option<String>,
    /// The account that re-queued a failed or held-back message by hand. Such a message is not held
    /// back by the daily limit again: a person decided it should go.
    #[serde(default)]
    pub requeued_by: Option<String>,
}

/// Where a message stands. Only `pending` messages are tried; `failed` and `capped` wait for a person
/// (`requeue`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    #[default]
    Pending,
    Sent,
    /// Every automatic attempt failed.
    Failed,
    /// Held back: the applicant's number had had its day's share of texts.
    Capped,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
            OutboxState::Capped => "capped",
        }
    }
}

impl OutboxMessage {
    /// Whether the sender should try it at `now`.
    pub fn is_due(&self, now: DateTime<FixedOffset>) -> bool {
        self.state == OutboxState::Pending && self.next_attempt().is_none_or(|at| at <= now)
    }

    /// When a pending message is next to be tried (`None`: at once, or not pending).
    pub fn next_attempt(&self) -> Option<DateTime<FixedOffset>> {
        if self.state != OutboxState::Pending {
            return None;
        }
        self.next_attempt_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    }

    /// Whether it was sent on `day`, a date in Beijing time (whatever offset `sent_at` was written in).
    pub fn sent_on(&self, day: NaiveDate) -> bool {
        self.state == OutboxState::Sent
            && self
                .sent_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t.with_timezone(&beijing()).date_naive() == day)
    }
}

fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Utc.fix())
}

/// Reads a stored message; one written before `state` existed is `sent` when it has a `sent_at`.
fn decode(bytes: &[u8]) -> Result<OutboxMessage, serde_json::Error> {
    let mut msg: OutboxMessage = serde_json::from_slice(bytes)?;
    if msg.state == OutboxState::Pending && msg.sent_at.is_some() {
        msg.state = OutboxState::Sent;
    }
    Ok(msg)
}

/// What `requeue` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeue {
    Requeued(Box<OutboxMessage>),
    /// Only failed and capped messages are re-queued; the message is in this state.
    NotStuck(OutboxState),
    NotFound,
}

/// A node as the hub knows it: enrolment, revocation, and how its syncing goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub code: String,
    pub name: String,
    pub tier: Tier,
    pub parent: Option<String>,
    pub enrolled_at: String,
    pub revoked: bool,
    /// Serial of the certificate issued at enrolment (hex).
    pub serial: String,
    pub last_seen: Option<String>,
    pub sessions: u64,
    pub failed_sessions: u64,
    /// Changes and scopes refused from this node, ever.
    pub refusals: u64,
    /// The last session's first refusal (`subject: reason`), while the node keeps sending it.
    #[serde(default)]
    pub last_refusal: Option<String>,
    /// Local writes the node reported as not yet gone up, at its last session.
    #[serde(default)]
    pub pending: u64,
    /// The township the node last synced through, as that township reported.
    #[serde(default)]
    pub via: Option<String>,
    /// Sessions and refusals on the node's link to its township (as the township reported them).
    #[serde(default)]
    pub relayed_sessions: u64,
    #[serde(default)]
    pub relayed_refusals: u64,
    pub last_error: Option<String>,
    /// The node's clock minus the hub's at its last session (seconds).
    #[serde(default)]
    pub clock_skew_s: Option<i64>,
    /// The sync address its bundle names (for a township: the hub's, which its villages fall back to).
    #[serde(default)]
    pub upstream: Option<String>,
}

/// The hub's records in a store.
pub struct CountyRecords<'a> {
    store: &'a Store,
}

impl Store {
    /// The county's own records (nodes, outbox).
    pub fn county(&self) -> CountyRecords<'_> {
        CountyRecords { store: self }
    }
}

impl CountyRecords<'_> {
    /// Writes a hub-side node record (durable).
    pub fn put_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(|e| corrupt(&record.code, e))?;
        self.store.nodes.insert(record.code.as_bytes(), bytes)?;
        self.store.sync()
    }

    pub fn node_record(&self, code: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.store
            .nodes
            .get(code.as_bytes())?
            .map(|v| serde_json::from_slice(&v).map_err(|e| corrupt(code, e)))
            .transpose()
    }

    /// Updates a node record in place (sync statistics); not flushed, they are statistics.
    pub fn update_node(
        &self,
        code: &str,
        f: impl Fn(&mut NodeRecord),
    ) -> Result<Option<NodeRecord>, StoreError> {
        let mut out = None;
        let mut undecodable = false;
        // Returning `None` from the closure would delete the key: a record that does not decode is
        // kept as it is and reported, never dropped.
        self.store.nodes.fetch_and_update(code.as_bytes(), |old| {
            let old = old?;
            let Ok(mut rec) = serde_json::from_slice::<NodeRecord>(old) else {
                undecodable = true;
                return Some(old.to_vec());
            };
            f(&mut rec);
            out = Some(rec.clone());
            Some(serde_json::to_vec(&rec).unwrap_or_else(|_| old.to_vec()))
        })?;
        if undecodable {
            return Err(corrupt(code, "node record does not decode"));
        }
        Ok(out)
    }

    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.store
            .nodes
            .iter()
            .map(|e| {
                let (k, v) = e?;
                serde_json::from_slice(&v)
                    .map_err(|e| corrupt(String::from_utf8_lossy(&k).into_owned(), e))
            })
            .collect()
    }

    /// Queues a message durably; returns its id.
    pub fn enqueue_message(
        &self,
        case_no: &str,
        phone: &str,
        kind: &str,
        text: &str,
        created_at: &str,
    ) -> Result<u64, StoreError> {
        let id = self.store.db.generate_id()?;
        let msg = OutboxMessage {
            id,
            case_no: case_no.to_string(),
            phone: phone.to_string(),
            kind: kind.to_string(),
            text: text.to_string(),
            created_at: created_at.to_string(),
            sent_at: None,
            sender: None,
            state: OutboxState::Pending,
            attempts: 0,
            last_error: None,
            last_attempt_at: None,
            next_attempt_at: None,
            requeued_by: None,
        };
        let bytes = serde_json::to_vec(&msg).map_err(|e| corrupt("outbox", e))?;
        self.store.outbox.insert(id.to_be_bytes(), bytes)?;
        self.store.sync()?;
        Ok(id)
    }

    /// Messages, oldest first; with `unsent_only` those not sent (pending, failed or capped).
    pub fn outbox(&self, unsent_only: bool) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut out = Vec::new();
        for entry in self.store.outbox.iter() {
            let (_, v) = entry?;
            let msg = decode(&v).map_err(|e| corrupt("outbox", e))?;
            if !unsent_only || msg.state != OutboxState::Sent {
                out.push(msg);
            }
        }
        Ok(out)
    }

    /// One message.
    pub fn message(&self, id: u64) -> Result<Option<OutboxMessage>, StoreError> {
        self.store
            .outbox
            .get(id.to_be_bytes())?
            .map(|v| decode(&v).map_err(|e| corrupt(format!("outbox {id}"), e)))
            .transpose()
    }

    /// What the sender has to do at `now`, in one pass over the outbox.
    pub fn due_messages(&self, now: DateTime<FixedOffset>) -> Result<DueMessages, StoreError> {
        let today = now.with_timezone(&beijing()).date_naive();
        let mut due = DueMessages::default();
        for entry in self.store.outbox.iter() {
            let (k, v) = entry?;
            // A damaged record must not hold up every message after it: it is skipped (and kept).
            let msg = match decode(&v) {
                Ok(m) => m,
                Err(_) => {
                    let mut id = [0u8; 8];
                    if k.len() == 8 {
                        id.copy_from_slice(&k);
                    }
                    due.damaged.push(u64::from_be_bytes(id));
                    continue;
                }
            };
            if msg.sent_on(today) {
                *due.sent_today.entry(msg.phone.clone()).or_default() += 1;
            }
            if msg.is_due(now) {
                due.due.push(msg);
            } else if let Some(at) = msg.next_attempt() {
                due.next = Some(due.next.map_or(at, |n| n.min(at)));
            }
        }
        Ok(due)
    }

    /// Records that a sender passed message `id` on.
    pub fn mark_sent(&self, id: u64, sender: &str, at: &str) -> Result<(), StoreError> {
        self.update_message(id, |msg| {
            msg.state = OutboxState::Sent;
            msg.attempts = msg.attempts.saturating_add(1);
            msg.last_attempt_at = Some(at.to_string());
            msg.next_attempt_at = None;
            msg.sent_at = Some(at.to_string());
            msg.sender = Some(sender.to_string());
            true
        })?;
        Ok(())
    }

    /// Records a failed attempt: tried again from `retry_at`, or, with `None`, `failed` for good.
    pub fn record_failure(
        &self,
        id: u64,
        at: &str,
        error: &str,
        retry_at: Option<&str>,
    ) -> Result<(), StoreError> {
        self.update_message(id, |msg| {
            msg.attempts = msg.attempts.saturating_add(1);
            msg.last_attempt_at = Some(at.to_string());
            msg.last_error = Some(error.to_string());
            msg.next_attempt_at = retry_at.map(str::to_string);
            msg.state = if retry_at.is_some() {
                OutboxState::Pending
            } else {
                OutboxState::Failed
            };
            true
        })?;
        Ok(())
    }

    /// Holds a message back without trying it (the number's daily limit): `capped`, with `reason`.
    pub fn mark_capped(&self, id: u64, reason: &str) -> Result<(), StoreError> {
        self.update_message(id, |msg| {
            msg.state = OutboxState::Capped;
            msg.last_error = Some(reason.to_string());
            msg.next_attempt_at = None;
            true
        })?;
        Ok(())
    }

    /// A person sends a failed or capped message again: `pending`, due at once, with a fresh set of
    /// attempts (the count starts over; the last error stays until the next attempt).
    pub fn requeue(&self, id: u64, by: &str) -> Result<Requeue, StoreError> {
        let mut found = None;
        let updated = self.update_message(id, |msg| {
            found = Some(msg.state);
            if !matches!(msg.state, OutboxState::Failed | OutboxState::Capped) {
                return false;
            }
            msg.state = OutboxState::Pending;
            msg.attempts = 0;
            msg.next_attempt_at = None;
            msg.requeued_by = Some(by.to_string());
            true
        })?;
        Ok(match (updated, found) {
            (Some(msg), _) => Requeue::Requeued(Box::new(msg)),
            (None, Some(state)) => Requeue::NotStuck(state),
            (None, None) => Requeue::NotFound,
        })
    }

    /// Changes message `id` atomically when `change` says so (returns true); the changed message, or
    /// `None` when it is missing or `change` left it alone. A record that does not decode is kept as
    /// it is and reported.
    fn update_message(
        &self,
        id: u64,
        mut change: impl FnMut(&mut OutboxMessage) -> bool,
    ) -> Result<Option<OutboxMessage>, StoreError> {
        let mut changed = None;
        let mut damaged = None;
        self.store
            .outbox
            .fetch_and_update(id.to_be_bytes(), |old| {
                // sled may call this more than once (compare-and-swap); each call starts afresh.
                changed = None;
                damaged = None;
                let old = old?;
                // Kept as it is when it does not decode (`None` would delete it).
                let mut msg = match decode(old) {
                    Ok(m) => m,
                    Err(e) => {
                        damaged = Some(e.to_string());
                        return Some(old.to_vec());
                    }
                };
                if !change(&mut msg) {
                    return Some(old.to_vec());
                }
                match serde_json::to_vec(&msg) {
                    Ok(bytes) => {
                        changed = Some(msg);
                        Some(bytes)
                    }
                    Err(e) => {
                        damaged = Some(e.to_string());
                        Some(old.to_vec())
                    }
                }
            })?;
        if let Some(reason) = damaged {
            return Err(corrupt(format!("outbox {id}"), reason));
        }
        if changed.is_some() {
            self.store.sync()?;
        }
        Ok(changed)
    }
}

/// The sender's work at one moment ([`CountyRecords::due_messages`]).
#[derive(Debug, Default)]
pub struct DueMessages {
    /// Pending messages to try now, oldest first.
    pub due: Vec<OutboxMessage>,
    /// The earliest time a pending message that is not yet due is to be tried.
    pub next: Option<DateTime<FixedOffset>>,
    /// Messages sent today (Beijing time) per phone number, for the daily limit.
    pub sent_today: std::collections::HashMap<String, u32>,
    /// Ids of records that do not decode: skipped, and kept as they are.
    pub damaged: Vec<u64>,
}

#[cfg(test)]
mod outbox_tests {
    use super::*;

    fn at(t: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(t).unwrap()
    }

    fn message() -> OutboxMessage {
        decode(
            br#"{"id":7,"case_no":"YX1","phone":"13800271234","kind":"accepted","text":"t",
                 "created_at":"2026-11-27T09:00:00+08:00","sent_at":null,"sender":null}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_record_written_before_the_gateway_reads_as_it_was() {
        let msg = message();
        assert_eq!(msg.state, OutboxState::Pending);
        assert_eq!((msg.attempts, msg.last_error.as_deref()), (0, None));
        let sent = decode(
            br#"{"id":8,"case_no":"YX1","phone":"1","kind":"accepted","text":"t",
                 "created_at":"2026-11-27T09:00:00+08:00","sent_at":"2026-11-27T09:00:01+08:00",
                 "sender":"log"}"#,
        )
        .unwrap();
        assert_eq!(sent.state, OutboxState::Sent);
    }

    #[test]
    fn a_pending_message_is_due_once_its_time_has_come() {
        let mut msg = message();
        assert!(msg.is_due(at("2026-11-27T09:00:00+08:00")));
        msg.next_attempt_at = Some("2026-11-27T09:00:30+08:00".into());
        assert!(!msg.is_due(at("2026-11-27T09:00:29+08:00")));
        assert!(
            msg.is_due(at("2026-11-27T01:00:30Z")),
            "same instant in UTC"
        );
        msg.state = OutboxState::Failed;
        assert!(!msg.is_due(at("2026-11-28T00:00:00+08:00")));
        assert_eq!(msg.next_attempt(), None);
    }

    #[test]
    fn the_day_of_a_sent_message_is_the_beijing_day() {
        let mut msg = message();
        msg.state = OutboxState::Sent;
        // 16:30 UTC on the 26th is half past midnight on the 27th in Beijing.
        msg.sent_at = Some("2026-11-26T16:30:00Z".into());
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        assert!(msg.sent_on(day));
        assert!(!msg.sent_on(day.pred_opt().unwrap()));
        msg.state = OutboxState::Capped;
        assert!(!msg.sent_on(day), "only sent messages count");
    }
}
