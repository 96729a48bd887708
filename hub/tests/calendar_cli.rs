//! `tongban-hub calendar due` as CONTRACT.md specifies it.

use std::process::Command;

fn due(from: &str, days: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tongban-hub"))
        .args(["calendar", "due", "--from", from, "--days", days])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn due_dates_follow_the_2026_holiday_table() {
    assert_eq!(due("2026-11-27", "1"), (true, "2026-11-30".into()));
    // Across National Day with the Saturday makeup day (Oct 10) counted.
    assert_eq!(due("2026-09-29", "5"), (true, "2026-10-12".into()));
    // Across the Spring Festival with the Saturday makeup day (Feb 14) counted.
    assert_eq!(due("2026-02-13", "2"), (true, "2026-02-24".into()));
}

#[test]
fn bad_dates_are_refused() {
    let (ok, _) = due("2026-02-30", "3");
    assert!(!ok);
}
