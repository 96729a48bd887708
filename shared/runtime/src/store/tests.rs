//! The store's own tests: formats, migrations, counters, idempotency, lists, durability.

use std::path::Path;

use tongban_shared::case::{CaseState, CaseSummary};
use tongban_shared::todo::TodoKind;
use tongban_shared::Tier;

use super::tables::{self, K_VERSION};
use super::*;

fn identity() -> NodeIdentity {
    NodeIdentity {
        code: "420222103201".into(),
        name: "测试村便民服务站".into(),
        tier: Tier::Village,
        parent: None,
        upstream: None,
        upstream_name: None,
        fallback: None,
        created_at: "2026-11-27T09:00:00+08:00".into(),
    }
}

fn summary(no: &str, ms: i64, name: &str) -> CaseSummary {
    CaseSummary {
        case_no: no.into(),
        item_code: "YX-RS-001".into(),
        item_name: "测试事项".into(),
        department: "人社".into(),
        state: "SUBMITTED".into(),
        created_at: String::new(),
        created_ms: ms,
        applicant_name: name.into(),
        applicant_cert_no: String::new(),
        phone: String::new(),
        agent: "daiban".into(),
        deadline: None,
        delivery: String::new(),
        materials_missing: 0,
        kind: "承诺".into(),
        handling_dept: "人社".into(),
        decided_on: None,
        evaluation: 0,
        escalations: 0,
        correction_rounds: 0,
        received_ms: 0,
        dept_received_ms: 0,
        urgent: false,
        not_adopted: 0,
        ..Default::default()
    }
}

pub(super) fn new_store(dir: &Path) -> Store {
    Store::create(
        dir,
        &identity(),
        &[1; 16],
        tongban_shared::catalog::BUILTIN_CATALOG_JSON,
    )
    .unwrap()
}

fn doc_bytes(no: &str) -> Vec<u8> {
    use automerge::transaction::Transactable;
    let mut doc = automerge::AutoCommit::new();
    doc.put(automerge::ROOT, "case_no", no).unwrap();
    doc.save()
}

fn add(store: &Store, ms: i64, name: &str, key: Option<&str>) -> Created {
    store
        .create_case("20261127", key, |seq| {
            let no = format!("420222103201-20261127-{seq:04}");
            Ok::<_, ()>((doc_bytes(&no), summary(&no, ms, name)))
        })
        .unwrap()
        .unwrap()
}

#[test]
fn init_refuses_existing_directory_and_open_needs_init() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::NotInitialised(_))
    ));
    drop(new_store(dir.path()));
    let again = Store::create(
        dir.path(),
        &identity(),
        &[1; 16],
        tongban_shared::catalog::BUILTIN_CATALOG_JSON,
    );
    assert!(matches!(again, Err(StoreError::AlreadyInitialised(_))));
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.identity().unwrap(), identity());
}

/// A new case document of the built-in catalogue's first item, numbered `no`, taken in on
/// 2026-11-27 by village 420222103201; and that item.
fn case_document(
    no: &str,
    applicant: &str,
) -> (
    automerge::AutoCommit,
    tongban_shared::case::CaseDoc,
    tongban_shared::catalog::Item,
) {
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap();
    let item = catalog.items[0].clone();
    let req = tongban_shared::case::IntakeRequest {
        item_code: item.code.clone(),
        applicant: tongban_shared::case::ApplicantInput {
            name: applicant.into(),
            id_number: "11010519491231002X".into(),
            phone: "13800271234".into(),
            ..Default::default()
        },
        materials: item.materials.iter().map(|m| m.id.clone()).collect(),
        ..Default::default()
    };
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T09:30:00+08:00").unwrap();
    let intake = tongban_shared::case::validate_intake(&catalog, &req, now.date_naive()).unwrap();
    let (doc, case) = tongban_shared::case::new_case_document(
        &intake,
        tongban_shared::case::IntakeContext {
            case_no: no,
            agent: tongban_shared::case::Agent {
                user: "a".into(),
                name: "a".into(),
                node_code: "420222103201".into(),
                node_name: "v".into(),
            },
            now,
            query_password: "1",
            actor: automerge::ActorId::from([1u8; 16].as_slice()),
        },
    )
    .unwrap();
    (doc, case, item)
}

#[test]
fn a_version_1_store_is_migrated_by_rebuilding_summaries_from_documents() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    let no = "420222103201-20261127-0001";
    let (mut doc, case, item) = case_document(no, "旧版");
    store
        .merge_case(no, |_| Ok::<_, ()>((doc.save(), case.summary())))
        .unwrap()
        .unwrap();
    // Make it look like version 1: an index value the new summary type cannot read.
    store
        .index
        .insert(no.as_bytes(), b"old".as_slice())
        .unwrap();
    store.meta.insert(K_VERSION, &1u32.to_be_bytes()).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.summary(no).unwrap().unwrap().kind, item.kind.label());
    let raw = store.meta.get(K_VERSION).unwrap().unwrap();
    assert_eq!(raw.as_ref(), &STORE_VERSION.to_be_bytes());
}

#[test]
fn a_version_3_store_gets_the_to_do_index_of_its_cases() {
    use tongban_shared::workflow::{self, ActionInput, ActionKind, Actor, Context, Role};
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    let no = "420222103201-20261127-0001";
    let (mut doc, _, item) = case_document(no, "补正");
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:30:00+08:00").unwrap();
    let calendar = tongban_shared::calendar::Calendar::builtin().unwrap();
    let window = Actor {
        user: "w",
        name: "w",
        role: "window",
        tier: Tier::County,
        node: "420222",
    };
    let mut case = None;
    for (n, kind) in [ActionKind::Receive, ActionKind::RequestCorrection]
        .into_iter()
        .enumerate()
    {
        let mut input = ActionInput::new(kind);
        input.missing = vec![item.materials[0].id.clone()];
        let ctx = Context {
            now,
            calendar: &calendar,
            departments: Vec::new(),
            event_id: tongban_shared::event::event_id(n as u64 + 1),
            rectify_days: 5,
            item_fee: None,
        };
        case = Some(workflow::apply(&mut doc, &input, &window, &Role::Window, &ctx).unwrap());
    }
    let case = case.unwrap();
    store
        .merge_case(no, |_| Ok::<_, ()>((doc.save(), case.summary())))
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .todo_list(TodoKind::Correction, "420222103201", 10)
            .unwrap()
            .1,
        1
    );
    // Make it look like version 3: no to-do index, and summaries the new type cannot read.
    store.by_todo.clear().unwrap();
    store
        .index
        .insert(no.as_bytes(), b"old".as_slice())
        .unwrap();
    store.meta.insert(K_VERSION, &3u32.to_be_bytes()).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let (cases, total) = store
        .todo_list(TodoKind::Correction, "420222103201", 10)
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(cases[0].case_no, no);
    assert_eq!(cases[0].state(), Some(CaseState::Correction));
    assert!(
        store
            .todo_list(TodoKind::Correction, "420222103202", 10)
            .unwrap()
            .1
            == 0
    );
}

#[test]
fn newer_store_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    store
        .meta
        .insert(K_VERSION, &(STORE_VERSION + 1).to_be_bytes())
        .unwrap();
    store.flush().unwrap();
    drop(store);
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::NewerFormat { .. })
    ));
}

#[test]
fn case_numbers_grow_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    let first = add(&store, 1000, "甲", None);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let second = add(&store, 2000, "乙", None);
    match (first, second) {
        (Created::New(a), Created::New(b)) => {
            assert!(a.case_no.ends_with("-0001"));
            assert!(b.case_no.ends_with("-0002"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn same_request_key_returns_the_first_case() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    let a = add(&store, 1000, "甲", Some("k1"));
    let b = add(&store, 2000, "甲", Some("k1"));
    let Created::New(a) = a else { panic!() };
    assert_eq!(b, Created::Replayed(a));
    assert_eq!(store.count(None).unwrap(), 1);
}

#[test]
fn list_pages_newest_first_with_filters_and_totals() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    for i in 0..25 {
        add(
            &store,
            1000 + i,
            if i % 5 == 0 { "张三" } else { "李四" },
            None,
        );
    }
    let page = store
        .list(&ListQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.total, 25);
    assert_eq!(page.cases.len(), 10);
    assert_eq!(page.cases[0].created_ms, 1024);
    let page2 = store
        .list(&ListQuery {
            limit: 10,
            cursor: page.next.clone(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page2.cases[0].created_ms, 1014);
    let text = store
        .list(&ListQuery {
            limit: 3,
            text: Some("张三".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((text.total, text.cases.len()), (5, 3));
    let text2 = store
        .list(&ListQuery {
            limit: 3,
            text: Some("张三".into()),
            cursor: text.next,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((text2.total, text2.cases.len(), text2.next), (5, 2, None));
    let by_state = store
        .list(&ListQuery {
            limit: 100,
            state: Some(CaseState::Submitted),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((by_state.total, by_state.cases.len()), (25, 25));
    let none = store
        .list(&ListQuery {
            limit: 100,
            state: Some(CaseState::Accepted),
            ..Default::default()
        })
        .unwrap();
    assert_eq!((none.total, none.cases.len()), (0, 0));
    let recent = store
        .list(&ListQuery {
            limit: 100,
            since_ms: Some(1020),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recent.total, 5);
}

fn refusal(e: StoreError) -> Refusal {
    assert!(
        !e.is_fault(),
        "a refusal must not look like a broken disk: {e}"
    );
    match e {
        StoreError::Refused(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn refused_writes_are_refusals_and_leave_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    let Created::New(first) = add(&store, 1_000, "王秀英", None) else {
        panic!("new case expected")
    };

    // A merge whose document names another case.
    let other = "420222103201-20261127-0099";
    let e = store
        .merge_case(&first.case_no, |_| {
            Ok::<_, ()>((doc_bytes(other), summary(other, 2_000, "李四")))
        })
        .unwrap_err();
    assert!(matches!(refusal(e), Refusal::Invalid { .. }));
    // Bytes that are no automerge document.
    let e = store
        .merge_case(&first.case_no, |_| {
            Ok::<_, ()>((
                b"not a document".to_vec(),
                summary(&first.case_no, 2_000, "王"),
            ))
        })
        .unwrap_err();
    assert!(matches!(refusal(e), Refusal::Invalid { .. }));
    assert_eq!(store.summary(&first.case_no).unwrap(), Some(first.clone()));

    // County data that does not parse, or is not newer.
    assert!(matches!(
        refusal(store.set_catalog("{ not json").unwrap_err()),
        Refusal::Invalid { .. }
    ));
    let current = store.catalog_json().unwrap();
    assert!(matches!(
        refusal(store.set_catalog(&current).unwrap_err()),
        Refusal::NotNewer { .. }
    ));
    assert!(matches!(
        refusal(store.add_calendar_year("{\"year\": \"soon\"}").unwrap_err()),
        Refusal::Invalid { .. }
    ));

    // An account that exists; an identity of another node.
    let user = UserRecord {
        name: "daiban".into(),
        display_name: "李代办".into(),
        role: "agent".into(),
        password_hash: "$argon2id$x".into(),
        created_at: "2026-11-27T09:00:00+08:00".into(),
    };
    store.add_user(&user).unwrap();
    assert!(matches!(
        refusal(store.add_user(&user).unwrap_err()),
        Refusal::Exists(_)
    ));
    let mut foreign = identity();
    foreign.code = "420222103202".into();
    assert!(matches!(
        refusal(store.set_identity(&foreign).unwrap_err()),
        Refusal::WrongNode { .. }
    ));

    // The store still takes cases.
    assert!(matches!(add(&store, 3_000, "张三", None), Created::New(_)));
}

#[test]
fn a_record_that_does_not_decode_is_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    let Created::New(first) = add(&store, 1_000, "王秀英", None) else {
        panic!("new case expected")
    };
    store
        .index
        .insert(first.case_no.as_bytes(), &b"\xff\xff garbage"[..])
        .unwrap();
    let e = store.summary(&first.case_no).unwrap_err();
    assert!(e.is_fault(), "{e}");
    store.meta.insert(tables::K_IDENTITY, &b"{"[..]).unwrap();
    assert!(store.identity().unwrap_err().is_fault());
}

#[test]
fn a_node_record_that_does_not_decode_is_kept_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    store
        .nodes
        .insert(b"420222103202", &b"{broken"[..])
        .unwrap();
    let e = store
        .county()
        .update_node("420222103202", |r| r.sessions += 1)
        .unwrap_err();
    assert!(e.is_fault(), "{e}");
    assert_eq!(
        store.nodes.get(b"420222103202").unwrap().as_deref(),
        Some(&b"{broken"[..]),
        "the damaged record must not be deleted"
    );
}

#[test]
fn a_store_claiming_format_0_is_a_fault_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    assert!(store.migrate_from(0).unwrap_err().is_fault());
}

#[test]
fn a_version_4_store_moves_its_counters_out_of_meta_and_keeps_counting() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    for i in 0..3 {
        add(&store, 1000 + i, "甲", None);
    }
    // Make it look like version 4: every counter in `meta`, beside the catalogue.
    let counters: Vec<(sled::IVec, sled::IVec)> =
        store.counters.iter().map(|e| e.unwrap()).collect();
    assert!(
        counters.len() >= 4,
        "seq, count/ALL, count/SUBMITTED, writes"
    );
    store.counters.clear().unwrap();
    for (k, v) in &counters {
        store.meta.insert(k, v.clone()).unwrap();
    }
    store.meta.insert(K_VERSION, &4u32.to_be_bytes()).unwrap();
    store.flush().unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.count(None).unwrap(), 3);
    assert_eq!(store.count(Some(CaseState::Submitted)).unwrap(), 3);
    let next = add(&store, 2000, "乙", None);
    let Created::New(s) = next else {
        panic!("a new case")
    };
    assert_eq!(s.case_no, "420222103201-20261127-0004");
    assert_eq!(store.count(None).unwrap(), 4);
    for (k, _) in &counters {
        assert!(store.meta.get(k).unwrap().is_none(), "{k:?} left in meta");
    }
    drop(store);
    // The seal (written with the count of case writes) still agrees after the move.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.count(None).unwrap(), 4);
}

#[test]
fn a_version_6_store_gets_its_summaries_new_fields_and_keeps_them_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    for i in 0..3 {
        add(&store, 1000 + i, "甲", None);
    }
    // Format 6's summaries ended before the six fee and question fields (one byte each at their
    // defaults), and had none of format 7's tokens.
    let entries: Vec<(sled::IVec, sled::IVec)> = store.index.iter().map(|e| e.unwrap()).collect();
    for (key, raw) in &entries {
        assert_eq!(&raw[raw.len() - 6..], &[0; 6]);
        store.index.insert(key, &raw[..raw.len() - 6]).unwrap();
    }
    store.postings.clear().unwrap();
    store.posting_counts.clear().unwrap();
    store.meta.insert(K_VERSION, &6u32.to_be_bytes()).unwrap();
    store.flush().unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    for (key, raw) in &entries {
        assert_eq!(store.index.get(key).unwrap().unwrap(), *raw);
    }
    let page = store
        .list(&ListQuery {
            text: Some("甲".into()),
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(page.total, 3, "the search tokens were rebuilt");
    assert!(page
        .cases
        .iter()
        .all(|s| s.fee_due_fen == 0 && s.questions_open.is_empty()));
}
