//! The case as an event log over real sled stores and the real sync session:
//! - stores written by the previous release (tests/fixtures/format2) open converted, nothing lost;
//! - a node still on the previous release keeps syncing, and what it appended offline is imported;
//! - events a node may not write are refused once, the refusal reaches the node, nothing is re-sent;
//!   among them events a township writes with its own actor in one of its villages' names.

use std::path::{Path, PathBuf};
use tongban_tests::copy_dir;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit};
use autosurgeon::hydrate;
use chrono::DateTime;
use tongban_runtime::replica::SledReplica;
use tongban_runtime::store::Store;
use tongban_shared::action::ActionKind;
use tongban_shared::calendar::Calendar;
use tongban_shared::case::{self, CaseDoc, CaseState};
use tongban_shared::event::{self, Author, Event, Inputs};
use tongban_shared::sync::memory::{converse, MemReplica};
use tongban_shared::sync::Replica;
use tongban_shared::workflow::{self, ActionInput, Actor, Context, Role};
use tongban_shared::Tier;

const VILLAGE: &str = "420222103201";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/format2")
        .join(name)
}

/// A copy of a fixture store in a temporary directory (the fixture itself is never opened).
fn copy_store(name: &str) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join(name);
    copy_dir(&fixture(name), &to);
    let store = Store::open(&to).unwrap();
    (dir, store)
}

/// `hub-cases.txt`: case number, state, deadline, history actions, as the previous release had them.
fn expected() -> Vec<(String, String, Option<String>, Vec<String>)> {
    std::fs::read_to_string(fixture("hub-cases.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            let deadline = parts[2]
                .strip_prefix("Some(\"")
                .map(|d| d.trim_end_matches("\")").to_string());
            (
                parts[0].to_string(),
                parts[1].to_string(),
                deadline,
                parts[3].split(',').map(str::to_string).collect(),
            )
        })
        .collect()
}

fn read(store: &Store, no: &str) -> CaseDoc {
    case::read_case(&AutoCommit::load(&store.document(no).unwrap().unwrap()).unwrap()).unwrap()
}

#[test]
fn stores_of_the_previous_release_open_with_every_case_converted_and_nothing_lost() {
    let (_dir, hub) = copy_store("hub");
    let cases = expected();
    assert_eq!(cases.len(), 12);
    assert_eq!(hub.count(None).unwrap(), 12);
    for (no, state, deadline, actions) in &cases {
        let bytes = hub.document(no).unwrap().unwrap();
        let doc = AutoCommit::load(&bytes).unwrap();
        let (stored, bad) = event::read_events(&doc);
        assert!(bad.is_empty(), "{no}: {bad:?}");
        assert_eq!(
            stored.len(),
            actions.len(),
            "{no}: every entry became an event"
        );
        let c = case::read_case(&doc).unwrap();
        assert_eq!(&c.state, state, "{no}");
        assert_eq!(&c.deadline, deadline, "{no}");
        let got: Vec<&str> = c.history.iter().map(|h| h.action.as_str()).collect();
        assert_eq!(got, *actions, "{no}");
        assert!(
            c.history.iter().all(|h| h.effective),
            "{no}: {:#?}",
            c.history
        );
        // Notes as the previous release wrote them, not regenerated.
        let summary = hub.summary(no).unwrap().unwrap();
        assert_eq!(&summary.state, state, "{no}: the index follows");
    }
    let suspended = read(&hub, &cases[5].0);
    assert_eq!(suspended.workflow.suspended_days, 3);
    assert_eq!(suspended.workflow.reason, "现场核查");
    let evaluated = read(&hub, &cases[9].0);
    assert_eq!(
        (
            evaluated.workflow.evaluation,
            evaluated.workflow.escalations
        ),
        (2, 1)
    );
    assert_eq!(evaluated.workflow.evaluation_comment, "等得太久");
    let corrected = read(&hub, &cases[2].0);
    assert_eq!(
        corrected.workflow.missing.len(),
        1,
        "{:?}",
        corrected.workflow
    );
    assert_eq!(
        hub.count(Some(CaseState::Received)).unwrap(),
        2,
        "state counters survive the migration"
    );

    // The village's store converts too: the cases that came down show the county's steps.
    let (_vdir, village) = copy_store("village");
    assert_eq!(village.count(None).unwrap(), 12);
    assert_eq!(read(&village, &cases[1].0).state, "RECEIVED");
    assert_eq!(read(&village, &cases[2].0).state, "SUBMITTED");
}

/// Syncs the old node's copy of `no` (a MemReplica stands for the node on the previous release: it
/// keeps what it is sent and runs none of the new code) with the hub; returns the node's copy after.
fn sync_old_node(hub: &Store, node: &mut MemReplica) {
    let mut server = SledReplica::new(hub);
    let c = converse(node, vec![VILLAGE.into()], &mut server, VILLAGE).unwrap();
    assert!(c.client.refused.is_empty(), "{:?}", c.client.refused);
}

#[test]
fn a_node_on_the_previous_release_keeps_syncing_and_its_offline_escalation_is_imported() {
    let (_dir, hub) = copy_store("hub");
    let no = "420222103201-20261102-0012";
    assert_eq!(read(&hub, no).state, "RECEIVED");
    let legacy = std::fs::read(fixture(&format!("legacy-docs/{no}.village.automerge"))).unwrap();
    let mut old_doc = AutoCommit::load(&legacy).unwrap();
    assert!(
        event::read_events(&old_doc).0.is_empty(),
        "the old copy has no events"
    );
    let mut node = MemReplica::default();
    node.write(no, &mut old_doc).unwrap();

    sync_old_node(&hub, &mut node);

    // The county now has both: its receipt and the village's offline escalation, as events.
    let at_hub = read(&hub, no);
    let actions: Vec<(&str, bool)> = at_hub
        .history
        .iter()
        .map(|h| (h.action.as_str(), h.effective))
        .collect();
    assert_eq!(
        actions,
        [("intake", true), ("receive", true), ("escalate", true)],
        "{:#?}",
        at_hub.history
    );
    assert_eq!(at_hub.state, "RECEIVED");
    assert_eq!(at_hub.workflow.escalations, 1);
    let escalation = &at_hub.history[2];
    assert_eq!(
        (escalation.node.as_str(), escalation.by.as_str()),
        (VILLAGE, "daiban")
    );

    // What the old node reads (only the plain fields) agrees with the county's case.
    let back = node.load(no).unwrap().unwrap();
    let plain: CaseDoc = hydrate(&back).unwrap();
    assert_eq!(plain.state, "RECEIVED");
    assert_eq!(plain.workflow.escalations, 1);
    let plain_actions: Vec<&str> = plain.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(plain_actions, ["intake", "receive", "escalate"]);

    // A second session finds nothing to do and imports nothing twice.
    sync_old_node(&hub, &mut node);
    assert_eq!(read(&hub, no).history.len(), 3);
}

fn village_event(
    kind: ActionKind,
    id: &str,
    after: Vec<String>,
    author: Author,
    input: Inputs,
) -> Event {
    Event {
        id: id.into(),
        kind,
        by: author,
        at: "2026-11-03T09:00:00+08:00".into(),
        saw: "RECEIVED".into(),
        after,
        input,
    }
}

fn agent() -> Author {
    Author {
        account: "daiban".into(),
        name: "李代办".into(),
        role: "agent".into(),
        tier: Tier::Village,
        node: VILLAGE.into(),
    }
}

/// A village store on this release that pulls its cases from the (converted) fixture hub. The
/// fixture's own village store lacks two of the village's deliveries that its generator merged
/// straight into the hub, so it cannot write as that village's actor without clashing.
fn fresh_village(dir: &Path, hub: &Store) -> Store {
    fresh_node(
        dir,
        VILLAGE,
        "测试村便民服务站",
        Tier::Village,
        &VILLAGE_ACTOR2,
        hub,
    )
}

/// A store of this release for node `code`, with `actor` as its automerge actor, which `hub` binds
/// to the node as enrolment does.
fn fresh_node(dir: &Path, code: &str, name: &str, tier: Tier, actor: &[u8], hub: &Store) -> Store {
    hub.bind_actor(actor, code).unwrap();
    let identity = tongban_runtime::store::NodeIdentity {
        code: code.into(),
        name: name.into(),
        tier,
        parent: Some("420222".into()),
        upstream: None,
        upstream_name: None,
        fallback: None,
        created_at: "2026-11-01T09:00:00+08:00".into(),
    };
    Store::create(
        dir,
        &identity,
        actor,
        tongban_shared::catalog::BUILTIN_CATALOG_JSON,
    )
    .unwrap()
}

const VILLAGE_ACTOR2: [u8; 16] = [0x33; 16];

/// Syncs the village with the hub, then returns its copy of `no`, ready to write as the village.
fn pulled(client: &mut SledReplica<'_>, village: &Store, hub: &Store, no: &str) -> AutoCommit {
    let mut server = SledReplica::new(hub);
    converse(client, vec![VILLAGE.into()], &mut server, VILLAGE).unwrap();
    let mut doc = AutoCommit::load(&village.document(no).unwrap().unwrap()).unwrap();
    doc.set_actor(ActorId::from(VILLAGE_ACTOR2.as_slice()));
    doc
}

#[test]
fn events_a_village_may_not_write_are_refused_once_and_the_refusal_reaches_it() {
    let (_dir, hub) = copy_store("hub");
    let vdir = tempfile::tempdir().unwrap();
    let village = fresh_village(vdir.path(), &hub);
    let no = "420222103201-20261102-0002";
    let mut client = SledReplica::client(&village);
    let mut doc = pulled(&mut client, &village, &hub, no);
    let events: Vec<Event> = event::read_events(&doc)
        .0
        .into_iter()
        .map(|s| s.event)
        .collect();
    let heads = event::frontier(&events);
    // A county-only action written by the village's agent…
    let accept = village_event(
        ActionKind::Accept,
        "forged-accept",
        heads.clone(),
        agent(),
        Inputs::default(),
    );
    // …and an escalation that claims a county author.
    let mut county = agent();
    county.tier = Tier::County;
    county.role = "window".into();
    county.node = "420222".into();
    let posing = village_event(
        ActionKind::Escalate,
        "posing-as-county",
        heads.clone(),
        county,
        Inputs {
            reason: "冒名".into(),
            ..Default::default()
        },
    );
    // An honest escalation in the same change is adopted.
    let honest = village_event(
        ActionKind::Escalate,
        "honest-escalation",
        heads,
        agent(),
        Inputs {
            reason: "两天没有消息".into(),
            ..Default::default()
        },
    );
    for e in [&accept, &posing, &honest] {
        event::write_event(&mut doc, e).unwrap();
    }
    doc.commit();
    let summary = case::read_case(&doc).unwrap().summary();
    village
        .merge_case(no, |_| Ok::<_, ()>((doc.save(), summary)))
        .unwrap()
        .unwrap();
    village.flush().unwrap();

    let mut server = SledReplica::new(&hub);
    let first = converse(&mut client, vec![VILLAGE.into()], &mut server, VILLAGE).unwrap();
    assert!(
        first.client.refused.is_empty(),
        "no case is refused whole: {:?}",
        first.client.refused
    );
    let at_hub = read(&hub, no);
    let entry = |c: &CaseDoc, id: &str| c.history.iter().find(|h| h.id == id).cloned().unwrap();
    assert_eq!(
        at_hub.state, "RECEIVED",
        "the forged accept changed nothing"
    );
    assert!(entry(&at_hub, "forged-accept").refused);
    assert!(entry(&at_hub, "posing-as-county").refused);
    assert!(entry(&at_hub, "honest-escalation").effective);
    assert_eq!(at_hub.workflow.escalations, 1);

    // The refusals came back in the same session: the village shows 未采纳 with the reason.
    let at_village = read(&village, no);
    let forged = entry(&at_village, "forged-accept");
    assert!(
        forged.refused && forged.why.contains("县级操作"),
        "{forged:?}"
    );
    assert_eq!(at_village, at_hub, "both tiers derive the same case");

    // Nothing is refused or sent again.
    let again = converse(&mut client, vec![VILLAGE.into()], &mut server, VILLAGE).unwrap();
    assert!(again.client.refused.is_empty());
    assert_eq!(again.client.round_trips, 1, "{again:?}");
}

#[test]
fn a_forged_completion_on_site_of_a_promised_item_is_refused_once() {
    let (_dir, hub) = copy_store("hub");
    let vdir = tempfile::tempdir().unwrap();
    let village = fresh_village(vdir.path(), &hub);
    let no = "420222103201-20261102-0001";
    let mut client = SledReplica::client(&village);
    let mut doc = pulled(&mut client, &village, &hub, no);
    let c = case::read_case(&doc).unwrap();
    assert!(
        !c.item.village_completable(),
        "the fixture's item is a 承诺 item"
    );
    // The agent's own page never offers it; a modified node writes it anyway.
    let ctx = Context {
        now: DateTime::parse_from_rfc3339("2026-11-03T09:00:00+08:00").unwrap(),
        calendar: &Calendar::builtin().unwrap(),
        departments: Vec::new(),
        event_id: "complete1".into(),
        rectify_days: 5,
        item_fee: None,
    };
    let by = Actor {
        user: "daiban",
        name: "李代办",
        role: "agent",
        tier: Tier::Village,
        node: VILLAGE,
    };
    let err = workflow::apply(
        &mut doc,
        &ActionInput::new(ActionKind::CompleteOnSite),
        &by,
        &Role::Agent,
        &ctx,
    );
    assert!(
        matches!(err, Err(workflow::ActionError::Forbidden(_))),
        "{err:?}"
    );
    let events: Vec<Event> = event::read_events(&doc)
        .0
        .into_iter()
        .map(|s| s.event)
        .collect();
    let forged = village_event(
        ActionKind::CompleteOnSite,
        "forged-completion",
        event::frontier(&events),
        agent(),
        Inputs {
            result_name: "证".into(),
            ..Default::default()
        },
    );
    event::write_event(&mut doc, &forged).unwrap();
    doc.put(automerge::ROOT, "state", "DELIVERED").unwrap();
    doc.commit();
    let summary = case::read_case(&doc).unwrap().summary();
    village
        .merge_case(no, |_| Ok::<_, ()>((doc.save(), summary)))
        .unwrap()
        .unwrap();
    village.flush().unwrap();

    let mut server = SledReplica::new(&hub);
    converse(&mut client, vec![VILLAGE.into()], &mut server, VILLAGE).unwrap();
    let at_hub = read(&hub, no);
    assert_eq!(at_hub.state, "SUBMITTED");
    let h = at_hub
        .history
        .iter()
        .find(|h| h.id == "forged-completion")
        .unwrap();
    assert!(h.refused && h.why.contains("未授权村级直接办结"), "{h:?}");
    let at_village = read(&village, no);
    assert_eq!(at_village.state, "SUBMITTED");
    assert!(at_village
        .history
        .iter()
        .any(|h| h.id == "forged-completion" && h.refused));
    let again = converse(&mut client, vec![VILLAGE.into()], &mut server, VILLAGE).unwrap();
    assert!(
        again.client.refused.is_empty() && again.client.cases_sent == 0,
        "{again:?}"
    );
}

const TOWNSHIP: &str = "420222103";
const TOWNSHIP_ACTOR: [u8; 16] = [0x44; 16];

/// A new township node under the fixture hub, after its first session with it.
fn synced_township(dir: &Path, hub: &Store) -> Store {
    let township = fresh_node(
        dir,
        TOWNSHIP,
        "测试镇便民服务中心",
        Tier::Township,
        &TOWNSHIP_ACTOR,
        hub,
    );
    let mut client = SledReplica::client(&township);
    converse(
        &mut client,
        vec![TOWNSHIP.into()],
        &mut SledReplica::new(hub),
        TOWNSHIP,
    )
    .unwrap();
    township
}

/// A township relays its villages' events with the villages' own actors; with its own actor it
/// writes in its own name (and imports of previous-release entries). An escalation it writes in a
/// village's name is refused by the hub once, next to its honest one in its own name.
#[test]
fn a_township_writing_in_a_villages_name_is_refused_once() {
    let (_dir, hub) = copy_store("hub");
    let tdir = tempfile::tempdir().unwrap();
    let township = synced_township(tdir.path(), &hub);
    let no = "420222103201-20261102-0002";
    let mut client = SledReplica::client(&township);
    let mut server = SledReplica::new(&hub);
    let mut doc = AutoCommit::load(&township.document(no).unwrap().unwrap()).unwrap();
    doc.set_actor(ActorId::from(TOWNSHIP_ACTOR.as_slice()));
    let events: Vec<Event> = event::read_events(&doc)
        .0
        .into_iter()
        .map(|s| s.event)
        .collect();
    let heads = event::frontier(&events);
    let clerk = Author {
        account: "zhenban".into(),
        name: "王办事员".into(),
        role: "agent".into(),
        tier: Tier::Township,
        node: TOWNSHIP.into(),
    };
    let reason = |r: &str| Inputs {
        reason: r.into(),
        ..Default::default()
    };
    let honest = village_event(
        ActionKind::Escalate,
        "township-escalation",
        heads.clone(),
        clerk,
        reason("乡镇代为反映"),
    );
    let in_villages_name = village_event(
        ActionKind::Escalate,
        "escalation-in-villages-name",
        heads,
        agent(),
        reason("冒用村站名义"),
    );
    // A forger that knows the import rule: a "legacy" event with the id of a history entry it
    // appends itself, with its own actor.
    let note = "办不成事反映：冒充旧版记录";
    let mut dressed = village_event(
        ActionKind::Escalate,
        "",
        honest.after.clone(),
        agent(),
        Inputs {
            reason: "冒充旧版记录".into(),
            note: note.into(),
            legacy: true,
            ..Default::default()
        },
    );
    let parts = [dressed.at.as_str(), "daiban", VILLAGE, "escalate", note];
    dressed.id = format!("h{:016x}", tongban_shared::legacy::stable_hash(&parts));
    for e in [&honest, &in_villages_name, &dressed] {
        event::write_event(&mut doc, e).unwrap();
    }
    let (_, list) = automerge::ReadDoc::get(&doc, automerge::ROOT, "history")
        .unwrap()
        .unwrap();
    let len = automerge::ReadDoc::length(&doc, &list);
    let forged_entry = doc
        .insert_object(&list, len, automerge::ObjType::Map)
        .unwrap();
    for (key, value) in ["at", "by", "node", "action", "note"].iter().zip(parts) {
        doc.put(&forged_entry, *key, value).unwrap();
    }
    doc.put(&forged_entry, "by_name", "李代办").unwrap();
    doc.put(&forged_entry, "state", "RECEIVED").unwrap();
    doc.commit();
    let summary = case::read_case(&doc).unwrap().summary();
    township
        .merge_case(no, |_| Ok::<_, ()>((doc.save(), summary)))
        .unwrap()
        .unwrap();
    township.flush().unwrap();

    let first = converse(&mut client, vec![TOWNSHIP.into()], &mut server, TOWNSHIP).unwrap();
    assert!(
        first.client.refused.is_empty(),
        "{:?}",
        first.client.refused
    );
    let entry = |c: &CaseDoc, id: &str| c.history.iter().find(|h| h.id == id).cloned().unwrap();
    let at_hub = read(&hub, no);
    let forged = entry(&at_hub, "escalation-in-villages-name");
    assert!(
        forged.refused && forged.why.contains("写入它的站点"),
        "{forged:?}"
    );
    let dressed_up = entry(&at_hub, &dressed.id);
    assert!(
        dressed_up.refused && dressed_up.why.contains("写入它的站点"),
        "{dressed_up:?}"
    );
    assert!(entry(&at_hub, "township-escalation").effective);
    assert_eq!(at_hub.workflow.escalations, 1);
    let at_township = read(&township, no);
    assert!(entry(&at_township, "escalation-in-villages-name").refused);
    assert_eq!(at_township, at_hub, "both tiers derive the same case");

    let again = converse(&mut client, vec![TOWNSHIP.into()], &mut server, TOWNSHIP).unwrap();
    assert!(
        again.client.refused.is_empty() && again.client.round_trips == 1,
        "{again:?}"
    );
}

/// During a mixed-version period a township imports what a village still on the previous release
/// appended offline, with its own actor in the village's name; the hub adopts that import (it is the
/// conversion of an entry in the history list) as it adopts its own.
#[test]
fn a_townships_import_of_a_previous_release_villages_entry_is_adopted_by_the_hub() {
    let (_dir, hub) = copy_store("hub");
    // The county enrolled the village under the township; the township learns from the county
    // which actors are the village's (here the one the previous release bound on first use).
    for (code, tier, parent) in [
        (TOWNSHIP, "township", "420222"),
        (VILLAGE, "village", TOWNSHIP),
    ] {
        let record = serde_json::from_value(serde_json::json!({
            "code": code, "name": code, "tier": tier, "parent": parent,
            "enrolled_at": "2026-11-01T09:00:00+08:00", "revoked": false, "serial": format!("{code}01"),
            "last_seen": null, "sessions": 0, "failed_sessions": 0, "refusals": 0, "last_error": null,
        }))
        .unwrap();
        hub.county().put_node(&record).unwrap();
    }
    assert_eq!(
        hub.actor_node(&[0x11; 16]).unwrap().as_deref(),
        Some(VILLAGE),
        "the fixture hub bound the previous-release village's actor"
    );
    let tdir = tempfile::tempdir().unwrap();
    let township = synced_township(tdir.path(), &hub);
    let no = "420222103201-20261102-0012";
    let mut up = SledReplica::client(&township);
    let mut server = SledReplica::new(&hub);

    let legacy = std::fs::read(fixture(&format!("legacy-docs/{no}.village.automerge"))).unwrap();
    let mut old_doc = AutoCommit::load(&legacy).unwrap();
    let mut node = MemReplica::default();
    node.write(no, &mut old_doc).unwrap();
    let mut at_township_server = SledReplica::new(&township);
    let c = converse(
        &mut node,
        vec![VILLAGE.into()],
        &mut at_township_server,
        VILLAGE,
    )
    .unwrap();
    assert!(c.client.refused.is_empty(), "{:?}", c.client.refused);
    let imported = read(&township, no);
    let escalation = imported
        .history
        .iter()
        .find(|h| h.action == "escalate")
        .cloned()
        .unwrap();
    assert!(escalation.effective, "{escalation:?}");

    let c = converse(&mut up, vec![TOWNSHIP.into()], &mut server, TOWNSHIP).unwrap();
    assert!(c.client.refused.is_empty(), "{:?}", c.client.refused);
    let at_hub = read(&hub, no);
    let at_hub_escalation = at_hub
        .history
        .iter()
        .find(|h| h.id == escalation.id)
        .cloned()
        .unwrap();
    assert!(
        at_hub_escalation.effective && !at_hub_escalation.refused,
        "{at_hub_escalation:?}"
    );
    assert_eq!(at_hub.workflow.escalations, 1);
    assert_eq!(read(&township, no), at_hub);
}
