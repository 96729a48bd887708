//! What a hostile peer can send in a sync session, refused case by case while the session goes on
//! (issue 12, findings 3 and 6): documents that inflate past the cap when loaded.

use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use tongban_runtime::replica::SledReplica;
use tongban_runtime::store::Store;
use tongban_shared::inflation::MAX_INFLATED_BYTES;
use tongban_shared::limits::MAX_CASE_BYTES;
use tongban_shared::sync::frame::{DocMsg, Msg};
use tongban_shared::sync::session::ServerSession;

const VILLAGE: &str = "420222100201";
const ACTOR: [u8; 16] = [0x22; 16];

fn county_store(dir: &std::path::Path) -> Store {
    tongban_tests::rogue::county_store(dir, VILLAGE, ACTOR)
}

fn doc_msg(case_no: &str, msg: Option<Vec<u8>>, full: Option<Vec<u8>>) -> DocMsg {
    DocMsg {
        case_no: case_no.to_string(),
        msg,
        full,
        want_full: false,
    }
}

/// automerge inflated a peer's compressed columns and changes with no cap, so a few KiB of saved
/// bytes, inside every size check made on the bytes, could become gigabytes at the hub. A document
/// (new at the hub) and a sync message (changes to a case the hub holds) that would inflate past
/// the cap are now refused by themselves before automerge sees them; the honest case in the same
/// request lands.
#[test]
fn documents_and_changes_that_inflate_past_the_cap_are_refused_before_loading() {
    let dir = tempfile::tempdir().unwrap();
    let hub = county_store(dir.path());
    // One repeated character, twice the cap: a few KiB once compressed.
    let bomb_text = "办".repeat(2 * MAX_INFLATED_BYTES / 3);
    let (held_no, mut held) = tongban_tests::rogue::case_document(VILLAGE, 1, "原有办件", ACTOR);
    let (new_no, mut new_doc) = tongban_tests::rogue::case_document(VILLAGE, 2, "新件", ACTOR);
    let (honest_no, mut honest) =
        tongban_tests::rogue::case_document(VILLAGE, 3, "正常办件", ACTOR);

    let mut server = SledReplica::new(&hub);
    let mut session = ServerSession::new(VILLAGE);
    session
        .handle(
            &mut server,
            Msg::Sync {
                docs: vec![doc_msg(&held_no, None, Some(held.save()))],
            },
        )
        .unwrap();
    let held_before = hub.document(&held_no).unwrap();

    new_doc
        .put(automerge::ROOT, "padding", bomb_text.as_str())
        .unwrap();
    let new_bytes = new_doc.save();
    assert!(new_bytes.len() < MAX_CASE_BYTES, "{}", new_bytes.len());

    // The changes the hub lacks, as the peer's sync message after learning what the hub has.
    let mut hub_copy = held.fork();
    held.put(automerge::ROOT, "padding", bomb_text.as_str())
        .unwrap();
    held.commit();
    let (mut hub_side, mut peer_side) = (sync::State::new(), sync::State::new());
    let hello = hub_copy
        .sync()
        .generate_sync_message(&mut hub_side)
        .unwrap();
    held.sync()
        .receive_sync_message(&mut peer_side, hello)
        .unwrap();
    let changes = held.sync().generate_sync_message(&mut peer_side).unwrap();
    assert!(!changes.changes.is_empty());
    let message = changes.encode();
    assert!(message.len() < MAX_CASE_BYTES, "{}", message.len());

    let reply = session
        .handle(
            &mut server,
            Msg::Sync {
                docs: vec![
                    doc_msg(&new_no, None, Some(new_bytes)),
                    doc_msg(&held_no, Some(message), None),
                    doc_msg(&honest_no, None, Some(honest.save())),
                ],
            },
        )
        .expect("the session answers");
    let Msg::SyncReply { refused, .. } = reply else {
        panic!("{reply:?}")
    };
    tongban_tests::rogue::assert_refused_by_themselves(
        &hub,
        &refused,
        (&new_no, &held_no, &held_before),
        &honest_no,
        "inflate past",
    );
}

/// Finding 6: an actor id nobody had bound was bound to whichever peer first sent a change by it, so
/// a peer that learnt a standalone village's actor (a township relays its documents) could claim it
/// before that village was enrolled, and the village's own cases were refused for good. Now actors
/// are bound at enrolment (the certificate's, and those a standalone node's request declared) or as
/// the one the presenting peer's own certificate implies; a change by any other is refused, case by
/// case, and leaves the actor free for the node it belongs to.
#[test]
fn an_actor_nobody_enrolled_is_refused_and_stays_free_for_its_owner() {
    const OTHER_VILLAGE: &str = "420222100202";
    const STANDALONE_ACTOR: [u8; 16] = [0x44; 16];
    let dir = tempfile::tempdir().unwrap();
    let hub = county_store(dir.path());
    let serial = "7a3f00c1";
    let certified = tongban_runtime::tls::actor_for_serial(serial);

    let (claimed_no, mut claimed) =
        tongban_tests::rogue::case_document(VILLAGE, 10, "冒认的办件", STANDALONE_ACTOR);
    let (own_no, mut own) = tongban_tests::rogue::case_document(VILLAGE, 11, "本站办件", certified);
    let mut server = SledReplica::serving(&hub, VILLAGE, serial);
    let reply = ServerSession::new(VILLAGE)
        .handle(
            &mut server,
            Msg::Sync {
                docs: vec![
                    doc_msg(&claimed_no, None, Some(claimed.save())),
                    doc_msg(&own_no, None, Some(own.save())),
                ],
            },
        )
        .expect("the session answers");
    let Msg::SyncReply { refused, .. } = reply else {
        panic!("{reply:?}")
    };
    assert!(
        refused
            .iter()
            .any(|r| r.subject == claimed_no && r.reason.contains("not bound")),
        "{refused:?}"
    );
    assert!(hub.document(&claimed_no).unwrap().is_none());
    assert_eq!(
        hub.actor_node(&STANDALONE_ACTOR).unwrap(),
        None,
        "still free"
    );
    assert!(
        hub.document(&own_no).unwrap().is_some(),
        "the actor of the peer's own certificate is its own"
    );
    assert_eq!(
        hub.actor_node(&certified).unwrap().as_deref(),
        Some(VILLAGE)
    );

    // The village the actor belongs to declares it in its request at enrolment; its case lands.
    let request = tongban_runtime::bundle::declare_actors(
        "-----BEGIN CERTIFICATE REQUEST-----\n",
        &[STANDALONE_ACTOR.to_vec()],
    );
    let declared = tongban_runtime::bundle::declared_actors(&request).unwrap();
    assert_eq!(declared, vec![STANDALONE_ACTOR]);
    hub.bind_actor(&declared[0], OTHER_VILLAGE).unwrap();
    let (theirs_no, mut theirs) =
        tongban_tests::rogue::case_document(OTHER_VILLAGE, 1, "接入前的办件", STANDALONE_ACTOR);
    let mut server = SledReplica::serving(&hub, OTHER_VILLAGE, "0b0b");
    let reply = ServerSession::new(OTHER_VILLAGE)
        .handle(
            &mut server,
            Msg::Sync {
                docs: vec![doc_msg(&theirs_no, None, Some(theirs.save()))],
            },
        )
        .unwrap();
    let Msg::SyncReply { refused, .. } = reply else {
        panic!("{reply:?}")
    };
    assert!(refused.is_empty(), "{refused:?}");
    assert!(hub.document(&theirs_no).unwrap().is_some());
}
