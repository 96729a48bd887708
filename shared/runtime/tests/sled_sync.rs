//! The sync protocol over two real sled stores: summaries maintained by the store agree with the
//! reference summary, cases flow both ways, and a no-change session is one small round trip.

mod common;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit};
use common::{add_case, open, HUB, VILLAGE};
use tongban_runtime::replica::SledReplica;
use tongban_shared::case;
use tongban_shared::sync::memory::converse;
use tongban_shared::sync::summary::{heads_digest, MemSummary, Prefix};
use tongban_shared::sync::Replica;
use tongban_shared::Tier;

#[test]
fn sled_summaries_match_the_reference_and_cases_flow_both_ways() {
    let (vd, hd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let village = open(vd.path(), VILLAGE, Tier::Village, 1);
    let hub = open(hd.path(), HUB, Tier::County, 200);
    // As enrolment does: the hub knows the village's actor.
    hub.bind_actor(&village.actor().unwrap(), VILLAGE).unwrap();
    let mut nos = Vec::new();
    for n in 0..300 {
        nos.push(add_case(&village, n + 1));
    }

    // The store's incremental trie equals the reference built from scratch.
    let mut reference = MemSummary::default();
    let vr = SledReplica::client(&village);
    for no in &nos {
        let mut doc = vr.load(no).unwrap().unwrap();
        reference.set(VILLAGE, no, heads_digest(&doc.get_heads()));
    }
    for prefix in [
        Prefix::ROOT,
        Prefix::ROOT.child(3),
        Prefix::ROOT.child(3).child(7),
    ] {
        assert_eq!(
            vr.node(VILLAGE, prefix).unwrap(),
            reference.node(VILLAGE, prefix)
        );
        let mut a = vr.items(VILLAGE, prefix).unwrap();
        let mut b = reference.items(VILLAGE, prefix);
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    let mut vrep = SledReplica::client(&village);
    let mut hrep = SledReplica::new(&hub);
    let first = converse(&mut vrep, vec![VILLAGE.into()], &mut hrep, VILLAGE).unwrap();
    assert_eq!(first.client.cases_sent, 300);
    assert_eq!(hub.count(None).unwrap(), 300);
    assert_eq!(
        hub.summary(&nos[5]).unwrap().unwrap().applicant_name,
        "申请人6"
    );

    let again = converse(&mut vrep, vec![VILLAGE.into()], &mut hrep, VILLAGE).unwrap();
    assert_eq!(again.client.round_trips, 1);
    assert!(again.bytes_up + again.bytes_down <= 2048, "{again:?}");

    // The hub changes a case's state; it comes down and the village's index follows.
    let mut doc = AutoCommit::load(&hub.document(&nos[9]).unwrap().unwrap()).unwrap();
    doc.set_actor(ActorId::from([200u8; 16].as_slice()));
    let calendar = tongban_shared::calendar::Calendar::builtin().unwrap();
    tongban_shared::workflow::apply(
        &mut doc,
        &tongban_shared::workflow::ActionInput::new(tongban_shared::action::ActionKind::Receive),
        &tongban_shared::workflow::Actor {
            user: "window",
            name: "窗口",
            role: "window",
            tier: Tier::County,
            node: HUB,
        },
        &tongban_shared::workflow::Role::Window,
        &tongban_shared::workflow::Context {
            now: chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00+08:00").unwrap(),
            calendar: &calendar,
            departments: Vec::new(),
            event_id: "receive1".into(),
            rectify_days: 5,
            item_fee: None,
        },
    )
    .unwrap();
    hrep.store(&nos[9], &mut doc).unwrap();
    hrep.commit().unwrap();
    let down = converse(&mut vrep, vec![VILLAGE.into()], &mut hrep, VILLAGE).unwrap();
    assert_eq!(down.client.cases_received, 1);
    assert_eq!(village.summary(&nos[9]).unwrap().unwrap().state, "RECEIVED");
    assert_eq!(
        village.count(Some(case::CaseState::Received)).unwrap(),
        1,
        "state counters follow synced changes"
    );

    // One new case: one case sent, a few KB.
    let new = add_case(&village, 301);
    let one = converse(&mut vrep, vec![VILLAGE.into()], &mut hrep, VILLAGE).unwrap();
    assert_eq!(one.client.cases_sent, 1);
    assert!(one.bytes_up + one.bytes_down <= 8 * 1024, "{one:?}");
    assert!(hub.summary(&new).unwrap().is_some());
}

#[test]
fn documents_that_are_not_cases_are_refused_by_the_store() {
    let hd = tempfile::tempdir().unwrap();
    let hub = open(hd.path(), HUB, Tier::County, 200);
    let mut hrep = SledReplica::new(&hub);
    let mut junk = AutoCommit::new();
    junk.put(automerge::ROOT, "hello", "world").unwrap();
    junk.commit();
    assert!(hrep.store("420222100201-20261127-0001", &mut junk).is_err());
    assert_eq!(hub.count(None).unwrap(), 0);
}
