//! What both binaries' processes need around their commands: logging (to stderr, or to daily files
//! for a service; text for people or JSON lines for a log shipper), the async runtime, and the
//! ctrl-c / SIGTERM signal that starts a graceful shutdown.

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// What both binaries' `main` does: logs to stderr (`RUST_LOG`, default info), runs the command, and
/// turns an error into one line on stderr and a non-zero exit code.
pub fn cli_main<C>(
    command: C,
    run: impl FnOnce(C) -> anyhow::Result<()>,
) -> std::process::ExitCode {
    cli_main_logging(command, None, LogFormat::Text, run)
}

/// Log files of one day each, and how many are kept (two weeks: enough to look back at what went
/// wrong after a holiday, small on an old PC's disk).
const LOG_FILES_KEPT: usize = 14;

/// How log lines are written (`serve --log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One line a person reads.
    #[default]
    Text,
    /// One JSON object a line (`timestamp`, `level`, `fields`, `target`, spans) for a log shipper.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: text or json")),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// [`cli_main`], logging to daily files `<prefix>.YYYY-MM-DD.log` in `log_dir` when one is given (a
/// service has no console to write to).
pub fn cli_main_logging_to<C>(
    command: C,
    log_dir: Option<(&std::path::Path, &str)>,
    run: impl FnOnce(C) -> anyhow::Result<()>,
) -> std::process::ExitCode {
    cli_main_logging(command, log_dir, LogFormat::Text, run)
}

/// [`cli_main_logging_to`] with the lines in `format`.
pub fn cli_main_logging<C>(
    command: C,
    log_dir: Option<(&std::path::Path, &str)>,
    format: LogFormat,
    run: impl FnOnce(C) -> anyhow::Result<()>,
) -> std::process::ExitCode {
    use std::io::IsTerminal;
    let files = log_dir.map(|(dir, prefix)| {
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix(prefix)
            .filename_suffix("log")
            .max_log_files(LOG_FILES_KEPT)
            .build(dir)
    });
    match files {
        Some(Ok(files)) => init_logging(files, false, format),
        other => {
            // Colours only on a terminal that shows them (not in a file, not in the old Windows
            // console, which prints the escape codes).
            let ansi = std::io::stderr().is_terminal() && cfg!(unix);
            init_logging(std::io::stderr, ansi, format);
            if let Some(Err(e)) = other {
                tracing::error!(error = %e, "cannot write log files; logging to stderr");
            }
        }
    }
    ignore_file_size_signal();
    give_large_allocations_back();
    match run(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("错误 error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Installs the process's subscriber: `RUST_LOG` (default info) into `writer`, as text or JSON lines.
fn init_logging<W>(writer: W, ansi: bool, format: LogFormat)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        // Escape codes inside JSON strings would only corrupt what a shipper reads.
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// The async runtime of both binaries: two workers (the machines have two cores), multi-threaded
/// because store work runs in `block_in_place`.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// A write past the process's file-size limit (`ulimit -f`) raises SIGXFSZ, whose default action kills
/// the process without a word. Ignored, the write fails with EFBIG instead, and the store reports it
/// like a full disk: the case is refused with a reason, nothing acknowledged is lost.
#[cfg(unix)]
fn ignore_file_size_signal() {
    // SAFETY: installs the predefined SIG_IGN disposition for one signal at start-up, before any
    // threads exist; no handler code runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// glibc serves large allocations from its heap once one of that size has been freed (its mmap
/// threshold follows the largest freed block, up to 32 MiB) and keeps the heap's memory: argon2's
/// 19 MiB per password check, a big upload's buffers stayed in the RSS of a village PC. A fixed
/// threshold maps every allocation from 256 KiB up on its own, returned to the system when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_large_allocations_back() {
    // SAFETY: mallopt only sets an allocator parameter (under the allocator's own lock).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Other allocators give large blocks back by themselves (Windows' heap maps blocks above 512 KiB
/// on their own, musl always does).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_large_allocations_back() {}

/// Windows has no file-size signal: a write that does not fit fails with an error (disk full), which
/// the store already reports as a fault.
#[cfg(windows)]
fn ignore_file_size_signal() {}

/// Where a command's password comes from (CONTRACT: `--password PW`, `--password-file FILE`, else a
/// prompt on a terminal or one line of stdin). `--password` stays for scripts, with a warning: the
/// command line of a running process is visible to every user of the machine.
pub fn password_from(
    given: Option<String>,
    file: Option<&std::path::Path>,
    what: &str,
) -> anyhow::Result<String> {
    password_from_env(given, None, file, what)
}

/// [`password_from`] for an option that may also come from environment variable `env` (which other
/// users cannot read, so no warning for it).
pub fn password_from_env(
    given: Option<String>,
    env: Option<&str>,
    file: Option<&std::path::Path>,
    what: &str,
) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if let Some(pw) = given {
        let from_env = env.is_some_and(|name| std::env::var(name).ok().as_deref() == Some(&pw));
        if !from_env {
            eprintln!(
                "warning: a password on the command line can be seen by other users of this machine; prefer --password-file FILE or the prompt"
            );
        }
        return Ok(pw);
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--password-file {}: {e}", path.display()))?;
        // The file's first line; editors add a final newline the password does not contain.
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("{what}: "))?;
        let again = rpassword::prompt_password(format!("{what} (again): "))?;
        if first != again {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        anyhow::bail!("no password: give --password-file FILE, or type it at the prompt");
    }
    Ok(pw)
}

/// Who a command-line action is recorded as in the audit log: the machine's user that ran it (the
/// person at the console has no Tongban account of their own).
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default();
    if user.is_empty() {
        "cli".into()
    } else {
        format!("cli:{user}")
    }
}

/// `audit verify` of both tiers: prints what it found; an error (exit 1) names the first broken
/// record.
pub fn verify_audit_log(data: &std::path::Path) -> anyhow::Result<()> {
    use crate::store::audit::{verify, Verified};
    match verify(data)? {
        Verified::Whole { records } => {
            println!("audit log whole: {records} records, each chained to the one before");
            Ok(())
        }
        Verified::Broken { line, seq, reason } => {
            let seq = seq.map_or("-".to_string(), |s| s.to_string());
            anyhow::bail!(
                "audit log broken at line {line} (record seq {seq}): {reason}; the records from there on cannot be trusted"
            )
        }
    }
}
