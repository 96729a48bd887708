//! The case's event log (全程留痕): every action ever taken on a case, as its author wrote it.
//!
//! An event is written once and never changed. Each one is a single root key of the case document,
//! `e/<id>`, holding the event as JSON: two tiers appending concurrently write different keys, so
//! automerge merges them without reordering or touching anything already there, and a change that
//! alters an existing event is visible as a new value under an old key (the upstream refuses it).
//! What a case *is* now (its state, deadline, decision…) is never stored as truth: [`crate::fold`]
//! derives it from the events.
//!
//! This module owns the event types and reading and writing them in a document; it never decides
//! whether an event is allowed (that is the fold's and the ingress check's).

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ReadDoc, ScalarValueRef, ValueRef, ROOT};
use serde::{Deserialize, Serialize};

use crate::action::ActionKind;
use crate::case::Applicant;
use crate::Tier;

/// Root keys of events start with this; nothing else in a case document does.
pub const EVENT_PREFIX: &str = "e/";

/// Longest event JSON a reader accepts: an event is a few hundred bytes; anything far larger is an
/// attack on memory, not an action.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;

/// Who wrote an event, as they declared it. The upstream checks these fields against the node that
/// sent the event ([`crate::ingress`]); the fold trusts them only as far as that check went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// Account name at the author's node.
    pub account: String,
    /// Display name as it was then.
    pub name: String,
    /// Stored role of the account (`agent`, `clerk`, `window`, `dept:<部门>`, `supervisor`, `admin`).
    pub role: String,
    pub tier: Tier,
    /// Division code of the node (or hub) where it happened.
    pub node: String,
}

/// The inputs of an event: what the author typed, and what the county computed when it acted
/// (deadlines come from the county's calendar at the time of the event, so every tier derives the same
/// deadline whatever calendar version it holds). Empty fields are left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Inputs {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// request_correction: material ids still needed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// request_correction: what is wrong with each missing material (id → problem), when said.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub problems: std::collections::BTreeMap<String, String>,
    /// submit_correction: material ids now collected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub materials: Vec<String>,
    /// forward: the department that takes over; assist_opinion: the assisting department.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dept: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub result_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub result_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// accept: the window marked the case urgent (10-minute hand-over).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
    /// approve/deny (and complete_*): whether the decision grants the application; review_appeal:
    /// whether the department's appeal is granted (the review is overturned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<bool>,
    /// accept/resume: the promised completion date the county computed (YYYY-MM-DD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// resume: working days the clock was stopped by the suspension it ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_days: Option<u64>,
    /// refuse: the event an upstream did not adopt.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// amend: the corrected applicant (before the county received the case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applicant: Option<Applicant>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub delivery: String,
    /// evaluate: who gave it (`applicant_online`, `applicant_at_station`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// approve: the fee the applicant owes (分), from the catalogue when the approver acted (or typed
    /// by the approver for a fee set by a rule); record_payment: the amount paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_fen: Option<u64>,
    /// record_payment: how it was paid (现金, 银行卡, 微信, 支付宝, 非税缴款书).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pay_method: String,
    /// record_payment: the number of the payment receipt (票据号).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pay_receipt: String,
    /// Converted from a history entry of the list format: `note` is the entry's text as it was.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub legacy: bool,
    /// The state the legacy entry recorded after itself (kept for the record; the fold derives its own).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub legacy_state: String,
}

/// One event of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique within the case; also the last tie-break of the fold's order.
    pub id: String,
    pub kind: ActionKind,
    pub by: Author,
    /// RFC 3339 with offset, from the author's clock (a node's may be wrong: see the ingress check).
    pub at: String,
    /// The state the author saw when acting (what the page showed them).
    pub saw: String,
    /// The events the author had seen that no other seen event follows: the causal parents.
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub input: Inputs,
}

/// An event as read from a document, with the automerge actor of the change that wrote it (what
/// the upstream compares with the node the actor is bound to).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub event: Event,
    pub actor: Option<ActorId>,
    /// The JSON exactly as stored: "never changed" is checked on these bytes.
    pub raw: String,
}

/// A root key that claims to be an event and is not one (bad JSON, wrong id, too long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEvent {
    pub key: String,
    pub problem: String,
}

fn key_of(id: &str) -> String {
    format!("{EVENT_PREFIX}{id}")
}

/// Whether an event id has the shape writers produce: short, printable ASCII, no separators.
pub fn is_event_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Every event of the document (ordered by id), and the keys that claim to be events but do not read
/// as one. Never fails: a hostile document gives bad events, not an error.
pub fn read_events(doc: &AutoCommit) -> (Vec<StoredEvent>, Vec<BadEvent>) {
    let mut events = Vec::new();
    let mut bad = Vec::new();
    // '0' follows '/' in ASCII: the range covers exactly the keys with the prefix.
    for item in doc.map_range(ROOT, "e/".to_string().."e0".to_string()) {
        let key = item.key.to_string();
        let id = &key[EVENT_PREFIX.len()..];
        let fail = |problem: &str| BadEvent {
            key: key.clone(),
            problem: problem.to_string(),
        };
        let ValueRef::Scalar(ScalarValueRef::Str(text)) = &item.value else {
            bad.push(fail("not a text value"));
            continue;
        };
        if text.len() > MAX_EVENT_BYTES {
            bad.push(fail("event too large"));
            continue;
        }
        let event: Event = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) => {
                bad.push(fail(&format!("not an event: {e}")));
                continue;
            }
        };
        if event.id != id || !is_event_id(id) {
            bad.push(fail("event id does not match its key"));
            continue;
        }
        let actor = match item.id() {
            ObjId::Id(_, actor, _) => Some(actor),
            ObjId::Root => None,
        };
        events.push(StoredEvent {
            event,
            actor,
            raw: text.to_string(),
        });
    }
    (events, bad)
}

/// Writes `event` under its key. The caller commits; an id already present is an error (events are
/// written once).
pub fn write_event(doc: &mut AutoCommit, event: &Event) -> Result<(), automerge::AutomergeError> {
    let key = key_of(&event.id);
    if doc.get(ROOT, key.as_str())?.is_some() {
        return Err(automerge::AutomergeError::InvalidOp(
            automerge::ObjType::Map,
        ));
    }
    let json = serde_json::to_string(event).unwrap_or_default();
    doc.put(ROOT, key, json)
}

/// The causal frontier of a set of events: the ids no other event names as a parent. What a new event
/// written now names in `after`.
pub fn frontier(events: &[Event]) -> Vec<String> {
    let named: std::collections::BTreeSet<&str> = events
        .iter()
        .flat_map(|e| e.after.iter().map(String::as_str))
        .collect();
    let mut heads: Vec<String> = events
        .iter()
        .filter(|e| !named.contains(e.id.as_str()))
        .map(|e| e.id.clone())
        .collect();
    heads.sort();
    heads.dedup();
    heads
}

/// A fresh event id from the writer's random source (the caller passes it in: this crate draws no
/// randomness). 16 hex digits: collisions within a case are out of reach.
pub fn event_id(random: u64) -> String {
    format!("{random:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, after: &[&str]) -> Event {
        Event {
            id: id.into(),
            kind: ActionKind::Escalate,
            by: Author {
                account: "a".into(),
                name: "A".into(),
                role: "agent".into(),
                tier: Tier::Village,
                node: "420222103201".into(),
            },
            at: "2026-11-02T09:00:00+08:00".into(),
            saw: "SUBMITTED".into(),
            after: after.iter().map(|s| s.to_string()).collect(),
            input: Inputs::default(),
        }
    }

    #[test]
    fn events_round_trip_and_concurrent_appends_merge_as_a_set() {
        let mut a = AutoCommit::new();
        write_event(&mut a, &ev("one", &[])).unwrap();
        a.commit();
        let mut b = a.fork();
        write_event(&mut a, &ev("two", &["one"])).unwrap();
        write_event(&mut b, &ev("three", &["one"])).unwrap();
        a.merge(&mut b).unwrap();
        let (events, bad) = read_events(&a);
        assert!(bad.is_empty());
        let ids: Vec<&str> = events.iter().map(|e| e.event.id.as_str()).collect();
        assert_eq!(ids, ["one", "three", "two"]);
        assert_eq!(events[1].event, ev("three", &["one"]));
        let all: Vec<Event> = events.into_iter().map(|e| e.event).collect();
        assert_eq!(frontier(&all), ["three", "two"]);
        // Written once: a second write of the same id is refused.
        assert!(write_event(&mut a, &ev("one", &[])).is_err());
    }

    #[test]
    fn keys_that_are_not_events_are_reported_not_read() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "e/x", "{not json").unwrap();
        doc.put(ROOT, "e/y", 5).unwrap();
        let mut wrong = ev("z", &[]);
        wrong.id = "other".into();
        doc.put(ROOT, "e/z", serde_json::to_string(&wrong).unwrap())
            .unwrap();
        doc.put(ROOT, "state", "SUBMITTED").unwrap();
        let (events, bad) = read_events(&doc);
        assert!(events.is_empty());
        assert_eq!(bad.len(), 3, "{bad:?}");
    }
}
