//! The previous document format (case schema 1 without events: an append-only `history` list and
//! stored `state`/`workflow` fields), converted into events.
//!
//! Two uses: a store of format 2 converts every case when it opens, and during a mixed-version period
//! an upstream imports what a node still on the previous release appended to the list (see
//! docs/WORKFLOW.md, "Mixed versions"). Conversion is deterministic: the same entry gives the same event
//! (id, parents, inputs) at every tier, so two tiers converting the same case concurrently write
//! identical events.

use crate::action::ActionKind;
use crate::case::{CaseDoc, HistoryEntry};
use crate::event::{Author, Event, Inputs};
use crate::fold::tier_of_code;
use crate::Tier;

/// FNV-1a: a stable hash for deterministic ids (not a defence against anything).
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The id a converted history entry gets: from its content, so a tier that converts a longer list
/// gives the shared entries the same ids.
fn entry_id(e: &HistoryEntry) -> String {
    if e.action == ActionKind::Intake.as_str() {
        return crate::case::INTAKE_EVENT_ID.to_string();
    }
    content_id(&[&e.at, &e.by, &e.node, &e.action, &e.note])
}

/// The id of a (non-intake) entry of this content: time, account, node, action, note.
fn content_id(parts: &[&str; 5]) -> String {
    format!("h{:016x}", stable_hash(parts))
}

/// The role a converted entry's author acted with: the previous format stored no role, so it follows
/// from the tier and the action (county actions by departments name the case's handling department).
fn role_of(kind: ActionKind, tier: Tier, handling_dept: &str) -> String {
    match tier {
        Tier::Village | Tier::Township => "agent".into(),
        Tier::County => match kind {
            ActionKind::Suspend
            | ActionKind::Resume
            | ActionKind::Approve
            | ActionKind::Deny
            | ActionKind::IssueResult => format!("dept:{handling_dept}"),
            _ => "window".into(),
        },
    }
}

/// Names of materials in a "需补正：A、B。…" note, as ids of the case's checklist.
fn missing_from_note(note: &str, case: &CaseDoc) -> Vec<String> {
    let Some(rest) = note.strip_prefix("需补正：") else {
        return Vec::new();
    };
    let names = rest.split('。').next().unwrap_or_default();
    names
        .split('、')
        .filter_map(|n| case.materials.iter().find(|m| m.name == n))
        .map(|m| m.id.clone())
        .collect()
}

/// One history entry as an event, with the inputs the previous format kept (final values, where it
/// kept only those: the last deadline, the total of suspended days, the result).
fn convert(
    e: &HistoryEntry,
    case: &CaseDoc,
    last_of_kind: bool,
    after: Vec<String>,
    handling_dept: &str,
) -> Event {
    let kind = ActionKind::parse(&e.action).unwrap_or(ActionKind::Escalate);
    let tier = tier_of_code(&e.node).unwrap_or(Tier::Village);
    let wf = &case.workflow;
    let mut input = Inputs {
        note: e.note.clone(),
        legacy: true,
        legacy_state: e.state.clone(),
        ..Default::default()
    };
    match kind {
        ActionKind::Reject | ActionKind::Suspend => input.reason = e.note.clone(),
        ActionKind::Escalate => {
            input.reason = e
                .note
                .strip_prefix("办不成事反映：")
                .unwrap_or(&e.note)
                .to_string()
        }
        ActionKind::RequestCorrection => input.missing = missing_from_note(&e.note, case),
        ActionKind::Forward => {
            input.dept = e
                .note
                .strip_prefix("转交")
                .and_then(|r| r.split('。').next())
                .unwrap_or(&wf.dept)
                .to_string()
        }
        ActionKind::Accept | ActionKind::Resume if last_of_kind => {
            input.deadline = case.deadline.clone();
            if kind == ActionKind::Resume {
                input.stopped_days = Some(wf.suspended_days);
            }
        }
        ActionKind::Deny => input.reason = wf.reason.clone(),
        ActionKind::IssueResult => {
            input.result_name = wf.result_name.clone();
            input.result_no = wf.result_no.clone();
        }
        ActionKind::Evaluate => {
            input.score = u8::try_from(wf.evaluation).ok();
            input.comment = wf.evaluation_comment.clone();
        }
        _ => {}
    }
    Event {
        id: entry_id(e),
        kind,
        by: Author {
            account: e.by.clone(),
            name: e.by_name.clone(),
            role: role_of(kind, tier, handling_dept),
            tier,
            node: e.node.clone(),
        },
        at: e.at.clone(),
        saw: String::new(),
        after,
        input,
    }
}

/// The events of a document of the previous format: its history list in order, each entry after the
/// one before it. Entries with an action this program does not know are kept as escalations would
/// be, with their text (nothing is dropped); the fold then judges them like any event.
pub fn events_from_history(case: &CaseDoc) -> Vec<Event> {
    convert_entries(case, &case.history, Vec::new())
}

fn convert_entries(case: &CaseDoc, entries: &[HistoryEntry], mut after: Vec<String>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::with_capacity(entries.len());
    // The department handling the case at each entry: the item's until a forward names another.
    let mut dept = case.item.department.clone();
    for (i, e) in entries.iter().enumerate() {
        let last_of_kind = !entries[i + 1..]
            .iter()
            .any(|later| later.action == e.action);
        let ev = convert(e, case, last_of_kind, std::mem::take(&mut after), &dept);
        if ev.kind == ActionKind::Forward && !ev.input.dept.is_empty() {
            dept = ev.input.dept.clone();
        }
        after = vec![ev.id.clone()];
        out.push(ev);
    }
    out
}

/// Whether `e` is the conversion of an entry a node on the previous release appended to the history
/// list of `doc`: an upstream that imported it wrote it with its own actor in the name of the entry's
/// author, which an event of this release may not do. The proof is in the document itself: every field
/// the event id is made from (time, account, node, action, note) of some list entry was written by an
/// actor bound to the event's node (`actor_node`), and they hash to the event's id. A projection that
/// later stamps the entry's `id` or other fields does not touch those.
pub fn accounts_for(
    e: &Event,
    doc: &automerge::AutoCommit,
    actor_node: &dyn Fn(&automerge::ActorId) -> Option<String>,
) -> bool {
    use automerge::{ObjType, ReadDoc, ScalarValue, Value};
    if !e.input.legacy || e.kind == ActionKind::Intake {
        return false;
    }
    let Ok(Some((Value::Object(ObjType::List), list))) = doc.get(automerge::ROOT, "history") else {
        return false;
    };
    let by_node = |id: &automerge::ObjId| match id {
        automerge::ObjId::Id(_, actor, _) => {
            actor_node(actor).as_deref() == Some(e.by.node.as_str())
        }
        automerge::ObjId::Root => false,
    };
    let field = |entry: &automerge::ObjId, key: &str| -> Option<String> {
        match doc.get(entry, key).ok()?? {
            (Value::Scalar(v), id) if by_node(&id) => match v.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        }
    };
    (0..doc.length(&list)).any(|i| {
        let Ok(Some((Value::Object(ObjType::Map), entry))) = doc.get(&list, i) else {
            return false;
        };
        let parts: Option<Vec<String>> = ["at", "by", "node", "action", "note"]
            .iter()
            .map(|k| field(&entry, k))
            .collect();
        let Some(p) = parts else { return false };
        p[2] == e.by.node
            && p[3] == e.kind.as_str()
            && content_id(&[&p[0], &p[1], &p[2], &p[3], &p[4]]) == e.id
    })
}

/// What a node on the previous release appended to the history list since the events were written:
/// entries without an event id that no event accounts for (same time, author, node and action). They
/// are converted after the events' frontier; the upstream then judges them like any event it receives.
pub fn unimported(case: &CaseDoc, events: &[Event]) -> Vec<Event> {
    let known: std::collections::BTreeSet<(&str, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.at.as_str(),
                e.by.account.as_str(),
                e.by.node.as_str(),
                e.kind.as_str(),
            )
        })
        .collect();
    let fresh: Vec<HistoryEntry> = case
        .history
        .iter()
        .filter(|h| h.id.is_empty())
        .filter(|h| {
            !known.contains(&(
                h.at.as_str(),
                h.by.as_str(),
                h.node.as_str(),
                h.action.as_str(),
            ))
        })
        .cloned()
        .collect();
    if fresh.is_empty() {
        return Vec::new();
    }
    convert_entries(case, &fresh, crate::event::frontier(events))
}
