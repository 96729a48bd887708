//! `tongban-hub` on a stopped hub: init, enroll, user add (CONTRACT.md).

use std::process::Command;

fn hub(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tongban-hub"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_enroll_and_user_add_on_a_stopped_hub() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let d = data.to_str().unwrap();
    let init = [
        "init",
        "--data",
        d,
        "--county",
        "420222",
        "--name",
        "阳新县",
        "--admin-password",
        "secret-1",
    ];
    let (ok, _, err) = hub(&init);
    assert!(ok, "{err}");
    let (ok, _, err) = hub(&init);
    assert!(!ok, "init twice must refuse");
    assert!(err.contains("already initialised"), "{err}");

    let out = dir.path().join("v.json");
    let o = out.to_str().unwrap();
    let enroll = |code: &str, tier: &str, out: &str| {
        hub(&[
            "enroll",
            "--data",
            d,
            "--code",
            code,
            "--name",
            "村",
            "--tier",
            tier,
            "--upstream",
            "127.0.0.1:4433",
            "--out",
            out,
        ])
    };
    let (ok, _, err) = enroll("420222100201", "village", o);
    assert!(ok, "{err}");
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(bundle["code"], "420222100201");
    assert_eq!(bundle["parent"], "420222100");
    assert!(bundle["node"]["key_pem"]
        .as_str()
        .unwrap()
        .contains("PRIVATE KEY"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "bundle readable by others: {mode:o}");
    }
    // Twice, a wrong tier, a code from another county: refused.
    let o2 = dir.path().join("v2.json");
    assert!(!enroll("420222100201", "village", o2.to_str().unwrap()).0);
    assert!(!enroll("420222100202", "township", o2.to_str().unwrap()).0);
    assert!(!enroll("420111100201", "village", o2.to_str().unwrap()).0);
    assert!(!o2.exists());

    let (ok, _, err) = hub(&[
        "user",
        "add",
        "--data",
        d,
        "--name",
        "window1",
        "--password",
        "secret-2",
        "--role",
        "window",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = hub(&[
        "user",
        "add",
        "--data",
        d,
        "--name",
        "x",
        "--password",
        "secret-2",
        "--role",
        "king",
    ]);
    assert!(!ok);
    assert!(err.contains("--role"), "{err}");
    let (ok, _, _) = hub(&[
        "user",
        "add",
        "--data",
        d,
        "--name",
        "d1",
        "--password",
        "secret-2",
        "--role",
        "dept",
    ]);
    assert!(!ok, "a dept account needs --dept");
}
