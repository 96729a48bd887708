//! What both binaries' processes need around their commands: logging to stderr, the async runtime,
//! and the ctrl-c / SIGTERM signal that starts a graceful shutdown.

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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    ignore_file_size_signal();
    match run(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("错误 error: {e:#}");
            std::process::ExitCode::FAILURE
        }
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

/// Windows has no file-size signal: a write that does not fit fails with an error (disk full), which
/// the store already reports as a fault.
#[cfg(windows)]
fn ignore_file_size_signal() {}
