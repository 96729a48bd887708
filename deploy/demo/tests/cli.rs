//! The demo's command line refuses what it cannot do before touching anything. Being an integration
//! test, it also makes `cargo test --workspace` build `tongban-demo`, which `tests/tests/demo.rs`
//! runs as a process.

use std::process::Command;

fn demo(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tongban-demo"))
        .args(args)
        .output()
        .expect("running tongban-demo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_directory_holding_something_else_is_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("notes.txt"), "mine").expect("write");
    let path = dir.path().to_str().expect("utf-8 path");
    let (ok, err) = demo(&["--dir", path, "--http-port", "1", "--quic-port", "1"]);
    assert!(!ok);
    assert!(err.contains("holds no demo county"), "{err}");
    let entries = std::fs::read_dir(dir.path()).expect("read dir").count();
    assert_eq!(
        entries, 1,
        "the demo wrote into a directory that was not its own"
    );
}

#[test]
fn ports_past_the_last_one_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("county");
    let path = path.to_str().expect("utf-8 path");
    let (ok, err) = demo(&["--dir", path, "--http-port", "65533"]);
    assert!(!ok);
    assert!(err.contains("--http-port 65533"), "{err}");
    assert!(!dir.path().join("county").exists());
}
