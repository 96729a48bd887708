//! Helpers shared by the runtime's integration tests: stores in temp dirs and real case documents.
// Each test binary that includes this module uses a different subset of it.
#![allow(dead_code)]

use automerge::{ActorId, AutoCommit};
use chrono::DateTime;
use tongban_runtime::store::{NodeIdentity, Store};
use tongban_shared::case::{
    self, Agent, ApplicantInput, CaseSummary, IntakeContext, IntakeRequest,
};
use tongban_shared::catalog::{Catalog, BUILTIN_CATALOG_JSON};
use tongban_shared::Tier;

pub const VILLAGE: &str = "420222100201";
pub const HUB: &str = "420222";

pub fn open(dir: &std::path::Path, code: &str, tier: Tier, actor: u8) -> Store {
    Store::create(
        dir,
        &NodeIdentity {
            code: code.into(),
            name: "测试".into(),
            tier,
            parent: None,
            upstream: None,
            upstream_name: None,
            fallback: None,
            created_at: "2026-11-27T09:00:00+08:00".into(),
        },
        &[actor; 16],
        BUILTIN_CATALOG_JSON,
    )
    .unwrap()
}

/// A valid case document numbered `<VILLAGE>-20261127-<seq>`, written by actor 1 (the village).
pub fn case_doc(seq: u32) -> (String, AutoCommit, CaseSummary) {
    let catalog = Catalog::builtin().unwrap();
    let item = &catalog.items[(seq as usize) % catalog.items.len()];
    let req = IntakeRequest {
        item_code: item.code.clone(),
        applicant: ApplicantInput {
            name: format!("申请人{seq}"),
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
    let no = case::format_case_no(VILLAGE, now.date_naive(), seq);
    let (doc, c) = case::new_case_document(
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
    let summary = c.summary();
    (no, doc, summary)
}

/// Stores case `seq` durably and returns its number.
pub fn add_case(store: &Store, seq: u32) -> String {
    let (no, mut doc, summary) = case_doc(seq);
    store
        .merge_case(&no, |_| Ok::<_, ()>((doc.save(), summary)))
        .unwrap()
        .unwrap();
    store.flush().unwrap();
    no
}
