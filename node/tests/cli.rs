//! The `tongban-node` command line as an operator uses it (CONTRACT.md).

use std::process::Command;

fn node() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tongban-node"));
    c.env("RUST_LOG", "warn");
    c
}

fn init(dir: &std::path::Path, code: &str) -> std::process::Output {
    node()
        .args(["init", "--data"])
        .arg(dir)
        .args([
            "--code",
            code,
            "--name",
            "测试村便民服务站",
            "--user",
            "daiban",
            "--password",
            "secret-1",
        ])
        .output()
        .unwrap()
}

#[test]
fn init_creates_a_store_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = init(dir.path(), "420222100201");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = init(dir.path(), "420222100202");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already initialised"), "{err}");
    // Beside the warning that a password on the command line is visible to other users.
    let errors = err.trim().lines().filter(|l| !l.starts_with("warning:"));
    assert_eq!(errors.count(), 1, "one-line error: {err}");
}

#[test]
fn init_rejects_bad_codes_and_weak_passwords_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), "4202221");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("区划代码"));
    let out = init(dir.path(), "420222");
    assert!(!out.status.success(), "a county code is the hub's");
    let out = node()
        .args(["init", "--data"])
        .arg(dir.path())
        .args([
            "--code",
            "420222100201",
            "--name",
            "村",
            "--user",
            "daiban",
            "--password",
            "123",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        !dir.path().join("db").exists(),
        "refused init left a store behind"
    );
    // After all the refusals a correct init still works.
    assert!(init(dir.path(), "420222100201").status.success());
}

#[test]
fn serve_refuses_an_uninitialised_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = node()
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--http", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not initialised"));
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["init", "serve", "demo"] {
        let out = node().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
    }
}

/// The session idle timeout is the operator's to set (等保 登录连接超时), within bounds.
#[test]
fn serve_takes_a_session_idle_timeout_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    for minutes in ["0", "721", "半小时"] {
        let out = node()
            .args(["serve", "--data"])
            .arg(dir.path())
            .args(["--http", "127.0.0.1:0", "--session-idle-minutes", minutes])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{minutes} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--session-idle-minutes"), "{err}");
    }
    // In range it passes parsing and stops only at the missing store.
    let out = node()
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--http", "127.0.0.1:0", "--session-idle-minutes", "15"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not initialised"));
}

/// `serve --log-dir` (what the Windows service does with DATA\logs): the log goes to a daily file,
/// not to stderr.
#[test]
fn serve_logs_to_a_daily_file_in_the_log_dir() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    assert!(init(&data, "420222100201").status.success());
    let logs = dir.path().join("logs");
    let mut child = node()
        .env("RUST_LOG", "info")
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--http", "127.0.0.1:0", "--log-dir"])
        .arg(&logs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("tongban-node serving "), "{line}");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("tongban-node.") && name.ends_with(".log"),
        "{name}"
    );
    let logged = std::fs::read_to_string(&files[0]).unwrap();
    assert!(logged.contains("node serving"), "{logged}");
    assert!(
        !logged.contains('\u{1b}'),
        "no terminal colours in a file: {logged}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("node serving"), "{stderr}");
}

/// The Windows service commands say where they belong instead of failing obscurely.
#[cfg(not(windows))]
#[test]
fn service_commands_say_they_are_for_windows() {
    let out = node()
        .args(["service", "install", "--data", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only on Windows"), "{err}");
}
