//! An upstream's check of what a node sends: authority per event, never per document state.
//!
//! The hub (and a township, for its villages) runs [`judge`] on every case a peer's changes touch,
//! after merging them into a copy. Two outcomes:
//! - the document as a whole is refused (`Err`) when it was tampered with: an event changed or
//!   removed, a key that claims to be an event and is not one, the intake's fixed fields rewritten, a
//!   new case whose intake fails the catalogue. An honest node never writes such a document.
//! - otherwise every event new to the upstream is judged on its own: may this author, at this tier,
//!   from this node, write this kind of event on this item? One that may not gets a `refuse` event
//!   written by the upstream into the same document (县级未采纳 with the reason). The node's events
//!   are kept, so the node's automerge history and ours agree and nothing is sent again; the fold
//!   then leaves the refused event without effect at every tier. An entitled event is never refused
//!   because of what someone else did concurrently: that is the fold's business (未生效).
//!
//! Events a node on the previous release appended to the history list are imported here as events
//! (see `legacy`) and judged like the rest.

use std::collections::BTreeMap;

use automerge::{ActorId, AutoCommit, ReadDoc};
use chrono::{DateTime, FixedOffset};

use crate::action::ActionKind;
use crate::case::{self, ApplicantInput, CaseDoc, IntakeRequest, ItemRef};
use crate::catalog::Catalog;
use crate::event::{self, Author, Event, Inputs};
use crate::fold::{self, tier_of_code};
use crate::sync::scope;
use crate::workflow::Role;
use crate::Tier;

/// Who judges, and what it judges with.
pub struct Upstream<'a> {
    /// The author of the refusals this upstream writes (the hub, or a township).
    pub author: Author,
    /// The catalogue of a version, if this upstream knows it: a new case is checked against the
    /// version it names.
    pub catalog: &'a dyn Fn(u64) -> Option<Catalog>,
    /// The node an automerge actor is bound to (the node that first wrote with it).
    pub actor_node: &'a dyn Fn(&ActorId) -> Option<String>,
    /// This upstream's clock.
    pub now: DateTime<FixedOffset>,
}

/// What the check did to the document beyond judging it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Judged {
    /// Events refused (id, reason); each got a `refuse` event.
    pub refused: Vec<(String, String)>,
    /// History entries of the previous format imported as events.
    pub imported: usize,
    /// Events whose author's clock is implausible (id, why): recorded, never used for deadlines.
    pub clock_flags: Vec<(String, String)>,
    /// The case as the judged document derives it (its events and the imports, before any refusal).
    pub derived: Option<CaseDoc>,
    /// Heads of the judged document, set by the caller that has them: when the document settled is
    /// that one and there is nothing to write, [`settle`] only projects `derived`.
    pub heads: Vec<automerge::ChangeHash>,
}

/// The upstream's id for its refusal of `target`: the same refusal written twice (a retried session)
/// is one event.
fn refusal_id(upstream: &str, target: &str) -> String {
    format!("r{:016x}", crate::legacy::stable_hash(&[upstream, target]))
}

/// The intake's fixed fields: nobody changes them once the case exists.
fn fixed_fields(c: &CaseDoc) -> impl PartialEq + '_ {
    (
        &c.schema,
        &c.case_no,
        &c.item,
        &c.channel,
        &c.agent,
        &c.query_password,
        &c.created_at,
    )
}

/// The item a case names, as the catalogue of that version has it.
fn item_matches(item: &ItemRef, catalog: &Catalog, legacy: bool) -> Result<(), String> {
    let Some(cat) = catalog.item(&item.code) else {
        return Err(format!(
            "事项“{}”不在第{}版事项目录中。",
            item.code, catalog.version
        ));
    };
    let same = item.name == cat.name
        && item.department == cat.department
        && item.kind == cat.kind.label()
        && item.case_type == cat.kind.case_type()
        && item.legal_days == u64::from(cat.legal_days)
        && item.promised_days == u64::from(cat.promised_days)
        && item.day_unit == cat.day_unit.as_str()
        // A case filed on the previous release carries no authorisation fields.
        && (legacy
            || (item.village == cat.village
                && item.urgent == cat.urgent
                && item.assist_departments == cat.assist_departments
                && item.higher_authority == cat.higher_authority));
    if same {
        Ok(())
    } else {
        Err(format!(
            "办件记载的事项“{}”（部门、时限或类别）与第{}版事项目录不符。",
            item.name, catalog.version
        ))
    }
}

/// A new case's intake, checked as if it were typed in here: the case number, the item against the
/// catalogue version it names, applicant and materials against the intake rules.
fn check_new_case(base: &CaseDoc, intake: &Event, peer: &str, up: &Upstream) -> Result<(), String> {
    if !case::is_case_no(&base.case_no) {
        return Err(format!("“{}”不是有效的办件编号。", base.case_no));
    }
    let scope = scope::scope_of(&base.case_no).unwrap_or_default();
    if !scope::may_hold(peer, scope) || intake.by.node != scope || base.agent.node_code != scope {
        return Err("办件编号、收件站点与发送站点不一致。".into());
    }
    let catalog = (up.catalog)(base.item.catalog_version).ok_or_else(|| {
        format!(
            "本级没有第{}版事项目录，无法核对此件。",
            base.item.catalog_version
        )
    })?;
    item_matches(&base.item, &catalog, intake.input.legacy)?;
    let applicant = intake.input.applicant.as_ref().unwrap_or(&base.applicant);
    let organisation = applicant.kind != "1";
    let materials = if intake.input.legacy {
        base.materials
            .iter()
            .filter(|m| m.collected)
            .map(|m| m.id.clone())
            .collect()
    } else {
        intake.input.materials.clone()
    };
    let req = IntakeRequest {
        item_code: base.item.code.clone(),
        applicant: ApplicantInput {
            kind: applicant.kind.clone(),
            name: applicant.name.clone(),
            id_number: applicant.id_number.clone(),
            phone: applicant.phone.clone(),
            credit_code: if organisation {
                applicant.cert_no.clone()
            } else {
                String::new()
            },
            legal_rep: applicant.legal_rep.clone(),
            address: applicant.address.clone(),
        },
        materials,
        delivery: if intake.input.legacy {
            base.delivery.clone()
        } else {
            intake.input.delivery.clone()
        },
        note: base.note.clone(),
    };
    let day = base
        .created_at()
        .map(|t| t.date_naive())
        .unwrap_or(up.now.date_naive());
    case::validate_intake(&catalog, &req, day).map_err(|errors| {
        let all: Vec<String> = errors.into_iter().map(|e| e.message).collect();
        format!("收件信息未通过核对：{}", all.join(""))
    })?;
    Ok(())
}

/// What an event is judged against: the case as this upstream sees it after the merge.
struct Judging<'a> {
    /// The node that sent the changes.
    peer: &'a str,
    /// Every event of the merged document (with imports), by id.
    all: &'a BTreeMap<String, Event>,
    /// Ids of the events this upstream held before the merge.
    known_here: &'a std::collections::BTreeSet<&'a str>,
    derived: &'a CaseDoc,
    /// Whether an event is the import of a previous-release history entry (see `legacy::accounts_for`).
    imported_below: &'a dyn Fn(&Event) -> bool,
    up: &'a Upstream<'a>,
}

/// Whether `e`, new to this upstream and sent by the peer, is one the peer may write. `actor` is the
/// automerge actor of the change that wrote it (`None` for events this upstream imported itself).
fn judge_event(e: &Event, actor: Option<&ActorId>, j: &Judging) -> Result<(), String> {
    let Judging {
        peer,
        all,
        known_here,
        derived,
        imported_below,
        up,
    } = *j;
    crate::limits::check_event_inputs(&e.input).map_err(|f| f.message)?;
    let node = e.by.node.as_str();
    if !scope::may_hold(peer, node) {
        return Err(format!("操作记载的站点{node}不在发送站点{peer}的范围内。"));
    }
    if let Some(actor) = actor {
        // The actor's node is the author's: a village's own actor (bound at enrolment, or on its
        // first session with the township that relays it) writes in its name only. A township's
        // actor writes in a village's name only what it imported from that village's previous-
        // release history list.
        match (up.actor_node)(actor) {
            Some(bound) if bound == node => {}
            Some(bound) if scope::may_hold(&bound, node) && imported_below(e) => {}
            _ => return Err(format!("操作记载的站点{node}与写入它的站点不符。")),
        }
    }
    if tier_of_code(node) != Some(e.by.tier) || e.by.tier == Tier::County {
        return Err("操作记载的层级与站点不符（乡村站点不能以县级名义操作）。".into());
    }
    let role = fold::author_role(e).ok_or("操作人的角色与所在层级不符。")?;
    if !matches!(role, Role::Agent | Role::Township) {
        return Err("乡村站点的账号不能以县级角色操作。".into());
    }
    match e.kind {
        ActionKind::Refuse => {
            let target = all
                .get(&e.input.target)
                .ok_or("未采纳记录指向的操作不存在。")?;
            // A township's refusal of an event claiming another tier's name stands only when that
            // event is new here too: it came up from the township's villages, forged. An event this
            // upstream already held (a real county event) is not the township's to refuse.
            let from_below =
                target.by.tier == Tier::Village || !known_here.contains(target.id.as_str());
            if e.by.tier != Tier::Township || !fold::township_may_refuse(e, target) || !from_below {
                return Err("只有乡镇可以对本乡镇所辖村的操作不予采纳。".into());
            }
        }
        kind if !kind.by_node() => {
            return Err(format!("“{}”是县级操作，乡村站点不能进行。", kind.label()));
        }
        // Who may do it for this item (村级可直接办结 only where the catalogue says so).
        kind => fold::authorised(kind, &role, derived)?,
    }
    Ok(())
}

/// Flags an author clock that cannot be right (more than 10 minutes ahead of ours, or before 2020):
/// nothing derives deadlines or hand-over clocks from it, but people should know.
fn clock_flag(e: &Event, now: DateTime<FixedOffset>) -> Option<String> {
    let at = DateTime::parse_from_rfc3339(&e.at).ok()?;
    let ahead = (at - now).num_minutes();
    if ahead > 10 {
        return Some(format!(
            "操作时间比本级时钟快{ahead}分钟，该站点时钟可能不准。"
        ));
    }
    if at.format("%Y").to_string().as_str() < "2020" {
        return Some("操作时间早于2020年，该站点时钟可能不准。".into());
    }
    None
}

/// The events a document holds plus those its previous-format history adds (converted, not yet
/// written): what judging and settling both work on.
fn events_with_imports(
    doc: &AutoCommit,
    base: &CaseDoc,
    stored: &[event::StoredEvent],
) -> Result<(Vec<Event>, Vec<Event>), String> {
    let events: Vec<Event> = stored.iter().map(|s| s.event.clone()).collect();
    let converted = if stored.is_empty() {
        crate::legacy::events_from_history(base)
    } else {
        // `read_parts` leaves the stored history out of documents with events.
        let mut with_history = base.clone();
        with_history.history = case::stored_history(doc).map_err(|e| e.to_string())?;
        crate::legacy::unimported(&with_history, &events)
    };
    Ok((events, converted))
}

/// Judges what the peer's changes did to a case: `old` as held here (`None` for a case new here),
/// `merged` after merging the peer's changes into a copy. Writes nothing; [`settle`] writes the
/// verdict into the stored document.
pub fn judge(
    old: Option<&AutoCommit>,
    merged: &AutoCommit,
    peer: &str,
    up: &Upstream,
) -> Result<Judged, String> {
    let (base, _) =
        case::read_parts(merged).map_err(|e| format!("not a valid case document: {e}"))?;
    let (stored, bad) = event::read_events(merged);
    let (old_stored, old_bad, old_base) = match old {
        Some(doc) => {
            let (s, b) = event::read_events(doc);
            let (ob, _) =
                case::read_parts(doc).map_err(|e| format!("stored case unreadable: {e}"))?;
            (s, b, Some(ob))
        }
        None => (Vec::new(), Vec::new(), None),
    };
    if let Some(b) = bad.iter().find(|b| !old_bad.contains(b)) {
        return Err(format!("key {} is not an event: {}", b.key, b.problem));
    }
    let new_raw: BTreeMap<&str, &str> = stored
        .iter()
        .map(|s| (s.event.id.as_str(), s.raw.as_str()))
        .collect();
    for o in &old_stored {
        match new_raw.get(o.event.id.as_str()) {
            Some(raw) if *raw == o.raw => {}
            Some(_) => return Err(format!("event {} was changed", o.event.id)),
            None => return Err(format!("event {} was removed", o.event.id)),
        }
    }
    if let Some(ob) = &old_base {
        if fixed_fields(ob) != fixed_fields(&base) {
            return Err("the intake's fixed fields were changed".into());
        }
        if old_stored.is_empty() {
            return Err("the case held here has not been converted to events".into());
        }
    }
    let known_here: std::collections::BTreeSet<&str> =
        old_stored.iter().map(|s| s.event.id.as_str()).collect();
    // New events with the actor that wrote them; converted ones will be written by us.
    let mut fresh: Vec<(Event, Option<ActorId>)> = stored
        .iter()
        .filter(|s| !known_here.contains(s.event.id.as_str()))
        .map(|s| (s.event.clone(), s.actor.clone()))
        .collect();
    // A case new here cannot carry appends of a previous-release node after its events: that node
    // got the events from upstream, so the upstream has the case (a township imports them first).
    let (mut events, converted) = if old.is_none() && !stored.is_empty() {
        (stored.iter().map(|s| s.event.clone()).collect(), Vec::new())
    } else {
        events_with_imports(merged, &base, &stored)?
    };
    let mut judged = Judged {
        imported: converted.len(),
        ..Default::default()
    };
    for e in converted {
        events.push(e.clone());
        fresh.push((e, None));
    }
    let all: BTreeMap<String, Event> = events.iter().map(|e| (e.id.clone(), e.clone())).collect();
    let derived = fold::fold(base.clone(), &events);
    if old.is_none() {
        let intake = fresh
            .iter()
            .map(|(e, _)| e)
            .find(|e| e.kind == ActionKind::Intake)
            .ok_or("a new case must begin with its intake")?;
        check_new_case(&base, intake, peer, up)?;
    }
    // The history list is read only for an event a township's actor wrote in a village's name.
    let imported_below = |e: &Event| crate::legacy::accounts_for(e, merged, up.actor_node);
    // Refusals first: an event a township has already refused (its refusal standing here) is not
    // refused a second time by the hub.
    fresh.sort_by_key(|(e, _)| e.kind != ActionKind::Refuse);
    let mut refused_below: std::collections::BTreeSet<String> = old_stored
        .iter()
        .filter(|s| s.event.kind == ActionKind::Refuse)
        .map(|s| s.event.input.target.clone())
        .collect();
    let judging = Judging {
        peer,
        all: &all,
        known_here: &known_here,
        derived: &derived,
        imported_below: &imported_below,
        up,
    };
    for (e, actor) in &fresh {
        if let Some(flag) = clock_flag(e, up.now) {
            judged.clock_flags.push((e.id.clone(), flag));
        }
        if refused_below.contains(&e.id) {
            continue;
        }
        let verdict = judge_event(e, actor.as_ref(), &judging);
        if verdict.is_ok() && e.kind == ActionKind::Refuse {
            refused_below.insert(e.input.target.clone());
        }
        if let Err(reason) = verdict {
            if e.kind == ActionKind::Intake {
                return Err(reason);
            }
            judged.refused.push((e.id.clone(), reason));
        }
    }
    judged.derived = Some(derived);
    Ok(judged)
}

/// Writes a verdict into the stored document (the upstream's copy after the merge, under its write
/// lock, with its own actor): the imported history entries, a `refuse` event for each refused event,
/// and the projection of the case as it now derives. Returns whether it wrote anything; the caller
/// commits. Deterministic ids make a second settle of the same verdict write nothing.
pub fn settle(
    doc: &mut AutoCommit,
    judged: &Judged,
    author: &Author,
    now: DateTime<FixedOffset>,
) -> Result<bool, String> {
    if judged.refused.is_empty() && judged.imported == 0 && !judged.heads.is_empty() {
        if let Some(derived) = &judged.derived {
            if doc.get_heads() == judged.heads {
                // The very document judged, nothing to add: only the projection may be due.
                return case::project(doc, derived).map_err(|e| e.to_string());
            }
        }
    }
    let (base, _) = case::read_parts(doc).map_err(|e| e.to_string())?;
    let (stored, _) = event::read_events(doc);
    let (mut events, converted) = events_with_imports(doc, &base, &stored)?;
    let mut wrote = false;
    for e in converted {
        event::write_event(doc, &e).map_err(|err| err.to_string())?;
        events.push(e);
        wrote = true;
    }
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    for (target, reason) in &judged.refused {
        let id = refusal_id(&author.node, target);
        if events.iter().any(|e| e.id == id) {
            continue;
        }
        let refusal = Event {
            id,
            kind: ActionKind::Refuse,
            by: author.clone(),
            at: at.clone(),
            saw: String::new(),
            after: event::frontier(&events),
            input: Inputs {
                target: target.clone(),
                reason: reason.clone(),
                ..Default::default()
            },
        };
        event::write_event(doc, &refusal).map_err(|err| err.to_string())?;
        events.push(refusal);
        wrote = true;
    }
    let derived = fold::fold(base, &events);
    if case::project(doc, &derived).map_err(|e| e.to_string())? {
        wrote = true;
    }
    Ok(wrote)
}

/// Whether a document holds any event (documents of the previous format hold none).
pub fn has_events(doc: &AutoCommit) -> bool {
    doc.map_range(automerge::ROOT, "e/".to_string().."e0".to_string())
        .next()
        .is_some()
}
