//! The sync protocol over two real sled stores: summaries maintained by the store agree with the
//! reference summary, cases flow both ways, and a no-change session is one small round trip.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit};
use chrono::DateTime;
use tongban_runtime::replica::SledReplica;
use tongban_runtime::store::{NodeIdentity, Store};
use tongban_shared::case::{self, Agent, ApplicantInput, IntakeContext, IntakeRequest};
use tongban_shared::catalog::{Catalog, BUILTIN_CATALOG_JSON};
use tongban_shared::sync::memory::converse;
use tongban_shared::sync::summary::{heads_digest, MemSummary, Prefix};
use tongban_shared::sync::Replica;
use tongban_shared::Tier;

const VILLAGE: &str = "420222100201";
const HUB: &str = "420222";

fn open(dir: &std::path::Path, code: &str, tier: Tier, actor: u8) -> Store {
    Store::create(
        dir,
        &NodeIdentity {
            code: code.into(),
            name: "测试".into(),
            tier,
            parent: None,
            upstream: None,
            upstream_name: None,
            created_at: "2026-11-27T09:00:00+08:00".into(),
        },
        &[actor; 16],
        BUILTIN_CATALOG_JSON,
    )
    .unwrap()
}

fn file(store: &Store, n: u32) -> String {
    let catalog = Catalog::builtin().unwrap();
    let item = &catalog.items[(n as usize) % catalog.items.len()];
    let req = IntakeRequest {
        item_code: item.code.clone(),
        applicant: ApplicantInput {
            name: format!("申请人{n}"),
            id_number: "11010519491231002X".into(),
            phone: "13800271234".into(),
            ..Default::default()
        },
        materials: item.materials.iter().map(|m| m.id.clone()).collect(),
        delivery: "代办员送达".into(),
        note: String::new(),
    };
    let now = DateTime::parse_from_rfc3339("2026-11-27T09:30:00+08:00").unwrap();
    let intake = case::validate_intake(&catalog, &req, now.date_naive()).unwrap();
    let created = store
        .create_case("20261127", None, |seq| {
            let no = case::format_case_no(VILLAGE, now.date_naive(), seq);
            let (mut doc, c) = case::new_case_document(
                &intake,
                IntakeContext {
                    case_no: &no,
                    agent: Agent {
                        user: "daiban".into(),
                        name: "代办员".into(),
                        node_code: VILLAGE.into(),
                        node_name: "村".into(),
                    },
                    now,
                    query_password: "123456",
                    actor: ActorId::from([1u8; 16].as_slice()),
                },
            )
            .unwrap();
            Ok::<_, ()>((doc.save(), c.summary()))
        })
        .unwrap()
        .unwrap();
    match created {
        tongban_runtime::store::Created::New(s) => s.case_no,
        other => panic!("{other:?}"),
    }
}

#[test]
fn sled_summaries_match_the_reference_and_cases_flow_both_ways() {
    let (vd, hd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let village = open(vd.path(), VILLAGE, Tier::Village, 1);
    let hub = open(hd.path(), HUB, Tier::County, 200);
    let mut nos = Vec::new();
    for n in 0..300 {
        nos.push(file(&village, n));
    }

    // The store's incremental trie equals the reference built from scratch.
    let mut reference = MemSummary::default();
    let vr = SledReplica::new(&village);
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

    let mut vrep = SledReplica::new(&village);
    let mut hrep = SledReplica::new(&hub);
    let first = converse(&mut vrep, vec![VILLAGE.into()], &mut hrep, VILLAGE).unwrap();
    assert_eq!(first.client.cases_sent, 300);
    assert_eq!(hub.count(None).unwrap(), 300);
    assert_eq!(
        hub.summary(&nos[5]).unwrap().unwrap().applicant_name,
        "申请人5"
    );

    let again = converse(&mut vrep, vec![VILLAGE.into()], &mut hrep, VILLAGE).unwrap();
    assert_eq!(again.client.round_trips, 1);
    assert!(again.bytes_up + again.bytes_down <= 2048, "{again:?}");

    // The hub changes a case's state; it comes down and the village's index follows.
    let mut doc = AutoCommit::load(&hub.document(&nos[9]).unwrap().unwrap()).unwrap();
    doc.set_actor(ActorId::from([200u8; 16].as_slice()));
    doc.put(automerge::ROOT, "state", "RECEIVED").unwrap();
    doc.commit();
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
    let new = file(&village, 300);
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
