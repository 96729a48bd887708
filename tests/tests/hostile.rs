//! Hostile peers with real certificates against a real hub: broken frames are answered with a reason
//! and end only that session; an honest node syncing afterwards is unaffected.

use tongban_shared::sync::frame::{FrameDecoder, Msg, PROTOCOL_VERSION};
use tongban_tests::rogue::Rogue;
use tongban_tests::*;

const V1: &str = "420222100201";

/// Sends `bytes` on a fresh stream and returns the server's answer.
async fn answer_to(rogue: &Rogue, bytes: &[u8]) -> Msg {
    let bundle = &rogue.bundle;
    let config = tongban_runtime::tls::client_config(&bundle.ca_pem, &bundle.node).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(
            config,
            bundle.upstream.parse().unwrap(),
            &bundle.upstream_name,
        )
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let _ = send.finish();
    let reply = recv.read_to_end(1 << 20).await.unwrap();
    let mut dec = FrameDecoder::default();
    dec.push(&reply);
    let msg = dec
        .next_msg()
        .unwrap()
        .expect("the server answers before hanging up");
    conn.close(0u32.into(), b"");
    msg
}

fn reason(msg: Msg) -> String {
    match msg {
        Msg::Error { reason } => reason,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_frames_get_a_reason_and_do_not_disturb_honest_nodes() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub =
        tokio::task::block_in_place(|| HubProcess::serve(hub_dir.path(), "127.0.0.1:0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.json");
    tokio::task::block_in_place(|| hub.enroll_village(V1, &bundle)).unwrap();
    let rogue = Rogue::new(&dir.path().join("rogue"), &bundle).unwrap();

    // An unknown protocol version.
    let r = reason(answer_to(&rogue, &[9, 0, 0, 0, 1, 0]).await);
    assert!(r.contains("version 9"), "{r}");
    // A frame announcing 100 MB: refused from the header, before anything is buffered.
    let r = reason(answer_to(&rogue, &[PROTOCOL_VERSION, 0x06, 0x00, 0x00, 0x00]).await);
    assert!(r.contains("exceeds"), "{r}");
    // A well-framed payload that is not a message.
    let r = reason(answer_to(&rogue, &[PROTOCOL_VERSION, 0, 0, 0, 3, 0xff, 0xff, 0xff]).await);
    assert!(r.contains("malformed"), "{r}");
    // A response where a request belongs.
    let frame = tongban_shared::sync::frame::encode(&Msg::CompareReply { differ: vec![] }).unwrap();
    let r = reason(answer_to(&rogue, &frame).await);
    assert!(r.contains("not a request"), "{r}");

    // The same node, now honest, still syncs.
    let (no, mut doc) = rogue.case(V1, 1, "诚实", [9; 16]);
    rogue.put(&no, &mut doc);
    let report = rogue.sync().await.unwrap();
    assert_eq!(report.cases_sent, 1, "{report:?}");
    let status = tokio::task::block_in_place(|| {
        client()
            .get(hub.url(&format!("/api/cases/{no}")))
            .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
            .call()
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
}
