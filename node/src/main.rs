//! `tongban-node` command line (CONTRACT.md): init, serve, demo, the Windows service, plus `fill` for
//! benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tongban_node::demo_data;
use tongban_node::serve::{self, ServeOptions};
use tongban_node::service;
use tongban_node::setup::{self, InitOptions};
use tongban_node::uplink::SyncTiming;
use tongban_runtime::clock::beijing_now;
use tongban_runtime::store::Store;

#[derive(Parser)]
#[command(
    name = "tongban-node",
    version,
    about = "通办 village / township node: offline proxy-case intake"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A TOML file with options (/etc/tongban/node.toml in the package); the command line wins.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a person's account: `agent` (代办员 / 乡镇窗口) or `head` (站长, also manages accounts).
    Add {
        #[arg(long, env = "TONGBAN_DATA")]
        data: PathBuf,
        /// Login name: 1-32 ASCII letters, digits, '_', '-' or '.'.
        #[arg(long)]
        name: String,
        /// The person's name as history and receipts show it (e.g. 李春梅); defaults to --name.
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long, default_value = "agent")]
        role: String,
        /// Visible to other users of the machine: prefer --password-file or the prompt.
        #[arg(long, hide_env_values = true)]
        password: Option<String>,
        /// A file whose first line is the password.
        #[arg(long, conflicts_with = "password")]
        password_file: Option<PathBuf>,
    },
    /// Disable an account: its cases keep naming it; no password logs it in.
    Disable {
        #[arg(long, env = "TONGBAN_DATA")]
        data: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Set a new password (also re-enables a disabled account).
    Passwd {
        #[arg(long, env = "TONGBAN_DATA")]
        data: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, hide_env_values = true)]
        password: Option<String>,
        #[arg(long, conflicts_with = "password")]
        password_file: Option<PathBuf>,
    },
    /// List the accounts: name, role, display name, whether disabled.
    List {
        #[arg(long, env = "TONGBAN_DATA")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Create the node's data directory and its first local account.
    Init {
        /// Data directory (must not hold a store yet).
        #[arg(long, env = "TONGBAN_DATA")]
        data: PathBuf,
        /// First account's login name.
        #[arg(long)]
        user: String,
        /// First account's password (at least 8 characters, not the account name, not a common one).
        /// Visible to other users of the machine: prefer --password-file or the prompt.
        #[arg(long, env = "TONGBAN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// A file whose first line is the password.
        #[arg(long, conflicts_with = "password")]
        password_file: Option<PathBuf>,
        /// Display name of the first account (shown on receipts); defaults to --user, or with
        /// --bundle to the station's name.
        #[arg(long)]
        display_name: Option<String>,
        /// Enrolment bundle from `tongban-hub enroll`.
        #[arg(long, conflicts_with_all = ["code", "name"], required_unless_present_all = ["code", "name"])]
        bundle: Option<PathBuf>,
        /// A replacement PC: pull every case of the node's scope from upstream before serving
        /// (resumes when run again after a failed pull).
        #[arg(long, requires = "bundle")]
        restore: bool,
        /// Division code: 9 digits for a township, 12 for a village (standalone node).
        #[arg(long, requires = "name")]
        code: Option<String>,
        /// Node name as people know it, e.g. 兴国镇示范村便民服务站.
        #[arg(long, requires = "code")]
        name: Option<String>,
    },
    /// Run the node: web UI and API on --http.
    Serve(ServeArgs),
    /// The station's per-person accounts, on a stopped node (a running one: its 账号管理 page).
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// The node as a Windows service (Windows only): install, uninstall, and what the service
    /// manager runs.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Attach a standalone node to the county with a bundle from `tongban-hub enroll`, keeping its cases.
    Enroll {
        #[arg(long, env = "TONGBAN_DATA")]
        data: PathBuf,
        #[arg(long)]
        bundle: PathBuf,
    },
    /// Make this node's key (kept in DIR, readable by its owner only) and write a certificate
    /// request for the county to sign (`tongban-hub enroll --csr`, or the hub's 站点同步 page). The key
    /// never leaves this PC.
    Csr {
        #[arg(long, env = "TONGBAN_DATA")]
        data: PathBuf,
        /// This node's division code: 9 digits for a township, 12 for a village.
        #[arg(long)]
        code: String,
        /// Where to write the request (PEM; not secret).
        #[arg(long)]
        out: PathBuf,
    },
    /// Renew this enrolled node's certificate before it ends (node certificates last 3 years): with
    /// --out, make a new key and write the request for the county (`enroll --csr FILE --replace`);
    /// with --bundle, install the county's answer. The current certificate works until then.
    Renew {
        #[arg(long, env = "TONGBAN_DATA")]
        data: PathBuf,
        /// Where to write the request (PEM; not secret).
        #[arg(long, conflicts_with = "bundle", required_unless_present = "bundle")]
        out: Option<PathBuf>,
        /// The bundle the county answered the request with.
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// A consistent backup of the data directory, also of a running process (through it).
    Backup(tongban_runtime::maintenance::BackupArgs),
    /// A new data directory from a backup.
    Restore(tongban_runtime::maintenance::RestoreArgs),
    /// The audit log (DIR/audit.log).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Start a demo village node with sample cases on loopback and print its URL and login.
    Demo {
        /// Where to keep the demo data (reused if it already holds a demo node).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
    },
    /// Add generated cases to a stopped node (demo data and benchmarks); flushed once at the end.
    #[command(hide = true)]
    Fill {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Account recorded as the agent of the generated cases.
        #[arg(long)]
        user: String,
        /// Spread the cases over this many villages' numbers (a county hub's store; 0: this node's
        /// own number only).
        #[arg(long, default_value_t = 0)]
        villages: u32,
    },
}

/// What `serve` (and the Windows service) runs with.
#[derive(clap::Args)]
struct ServeArgs {
    #[arg(long, env = "TONGBAN_DATA")]
    data: PathBuf,
    /// Address of the web UI and API, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, env = "TONGBAN_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// A township's sync endpoint for its villages (UDP), e.g. 0.0.0.0:4434.
    #[arg(long)]
    quic: Option<SocketAddr>,
    /// HTTPS for the station's other PCs, e.g. 0.0.0.0:8443; required for a --http beyond
    /// loopback, which then only redirects. Served with the node's county certificate unless
    /// --tls-cert/--tls-key are given.
    #[arg(long)]
    https: Option<SocketAddr>,
    #[arg(long, requires = "tls_key", requires = "https")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds between background sync sessions when nothing triggers one sooner.
    #[arg(long, env = "TONGBAN_SYNC_INTERVAL", default_value_t = 30)]
    sync_interval: u64,
    /// Seconds the township may stay unreachable before a village syncs with the hub directly
    /// (needs a bundle with a fallback).
    #[arg(long, env = "TONGBAN_FALLBACK_AFTER", default_value_t = 600)]
    fallback_after: u64,
    /// Minutes a web session may stay unused before it ends (等保: 登录连接超时), 1–720.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=720))]
    session_idle_minutes: u64,
    /// Write the log to daily files in DIR (the last 14 kept) instead of stderr; the Windows
    /// service logs to DATA\logs.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// How log lines are written: text (for people) or json (one object a line).
    #[arg(long, env = "TONGBAN_LOG_FORMAT", default_value_t)]
    log_format: tongban_runtime::process::LogFormat,
}

#[derive(Subcommand)]
enum ServiceCommand {
    /// Register the Windows service "TongbanNode": it starts at boot, is restarted after a crash,
    /// and serves DATA on HTTP (as `serve`). Run as administrator; the service is started at once.
    Install {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// A township's sync endpoint for its villages (as `serve --quic`).
        #[arg(long)]
        quic: Option<SocketAddr>,
    },
    /// Stop the service and remove it; the data directory stays.
    Uninstall,
    /// Serve as the service (started by the Windows service manager, not by hand).
    #[command(hide = true)]
    Run(ServeArgs),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain (also while the node runs); exit 0 when whole, else name the first
    /// record that does not fit.
    Verify {
        #[arg(long)]
        data: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = tongban_runtime::config::parse::<Cli>();
    let (log_dir, log_format) = match &cli.command {
        Command::Serve(args) => (args.log_dir.clone(), args.log_format),
        Command::Service {
            command: ServiceCommand::Run(args),
        } => (
            Some(
                args.log_dir
                    .clone()
                    .unwrap_or_else(|| args.data.join("logs")),
            ),
            args.log_format,
        ),
        _ => (None, Default::default()),
    };
    let log_to = log_dir.as_deref().map(|dir| (dir, "tongban-node"));
    tongban_runtime::process::cli_main_logging(cli, log_to, log_format, run)
}

/// `serve`, until `shutdown` is cancelled (ctrl-c or SIGTERM when none is given).
fn serve_until(
    args: &ServeArgs,
    shutdown: Option<tokio_util::sync::CancellationToken>,
) -> anyhow::Result<()> {
    let store = Store::open(&args.data)?;
    let opts = ServeOptions {
        data: &args.data,
        http: args.http,
        sync: SyncTiming {
            period: std::time::Duration::from_secs(args.sync_interval.max(1)),
            fallback_after: std::time::Duration::from_secs(args.fallback_after),
        },
        relay: args.quic,
        https: args.https,
        tls_files: args.tls_cert.clone().zip(args.tls_key.clone()),
        idle_timeout: std::time::Duration::from_secs(args.session_idle_minutes * 60),
    };
    runtime()?.block_on(async {
        let shutdown = shutdown.unwrap_or_else(serve::on_signal);
        serve::serve(store, opts, shutdown).await
    })?;
    Ok(())
}

use tongban_runtime::process::runtime;

const DEMO_USER: &str = "daiban";
const DEMO_PASSWORD: &str = "daiban-2026";

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            data,
            user,
            password,
            password_file,
            display_name,
            bundle,
            restore,
            code,
            name,
        } => {
            if restore && tongban_node::restore::pending(&data) {
                // A pull that failed half-way: the store is made, only the pull is left.
                let store = Store::open(&data)?;
                let held = tongban_node::restore::pull_scope(&data, &store)?;
                println!(
                    "restore finished: {held} cases; start the node with `tongban-node serve`"
                );
                return Ok(());
            }
            let password = tongban_runtime::process::password_from_env(
                password,
                Some("TONGBAN_PASSWORD"),
                password_file.as_deref(),
                &format!("password for {user}"),
            )?;
            if let Some(bundle) = bundle {
                let store = setup::init_from_bundle(
                    &data,
                    &bundle,
                    &user,
                    display_name.as_deref(),
                    &password,
                    beijing_now(),
                )?;
                let id = store.identity()?;
                println!(
                    "initialised node {} ({}) in {}, syncing with {}",
                    id.code,
                    id.name,
                    data.display(),
                    id.upstream.unwrap_or_default()
                );
                if restore {
                    tongban_node::restore::mark_pending(&data)?;
                    let held = tongban_node::restore::pull_scope(&data, &store)?;
                    println!(
                        "restore finished: {held} cases; start the node with `tongban-node serve`"
                    );
                }
                return Ok(());
            }
            let (Some(code), Some(name)) = (code, name) else {
                bail!("--code and --name are required without --bundle");
            };
            setup::init(
                &InitOptions {
                    data: &data,
                    code: &code,
                    name: &name,
                    user: &user,
                    display_name: display_name.as_deref(),
                    password: &password,
                },
                beijing_now(),
            )?;
            println!("initialised node {code} in {}", data.display());
            Ok(())
        }
        Command::Serve(args) => serve_until(&args, None),
        Command::Service { command } => match command {
            ServiceCommand::Install { data, http, quic } => {
                service::install(&data, http, quic)?;
                println!(
                    "service {} installed and started: http://{http}/ (data in {})",
                    service::SERVICE_NAME,
                    data.display()
                );
                Ok(())
            }
            ServiceCommand::Uninstall => {
                service::uninstall()?;
                println!(
                    "service {} removed; the data directory stays",
                    service::SERVICE_NAME
                );
                Ok(())
            }
            ServiceCommand::Run(args) => service::run(move |stop| serve_until(&args, Some(stop))),
        },
        Command::Enroll { data, bundle } => {
            setup::enroll(&data, &bundle)?;
            println!(
                "node in {} is now enrolled; its cases will sync when it serves",
                data.display()
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { data },
        } => tongban_runtime::process::verify_audit_log(&data),
        Command::Backup(args) => tongban_runtime::maintenance::run_backup(&args),
        Command::Restore(args) => {
            tongban_runtime::maintenance::run_restore(&args, "tongban-node serve")
        }
        Command::Renew {
            data,
            out: Some(out),
            ..
        } => {
            if out.exists() {
                bail!("--out {} exists; refusing to overwrite it", out.display());
            }
            let request = tongban_runtime::bundle::NodeTls::renewal_request(&data)?;
            // The actor this node's cases are written by goes with the request: a county restored
            // from a backup older than this node's enrolment binds it again when it signs.
            let actor = tongban_runtime::maintenance::store_actor(&data)?;
            let request = tongban_runtime::bundle::declare_actors(&request, &[actor]);
            std::fs::write(&out, request)
                .map_err(|e| anyhow::anyhow!("--out {}: {e}", out.display()))?;
            println!(
                "renewal request written to {}; the new key stays in {} and the current certificate works until the county's answer is installed with `tongban-node renew --bundle`",
                out.display(),
                data.display()
            );
            Ok(())
        }
        Command::Renew {
            data,
            bundle: Some(bundle),
            ..
        } => {
            let bundle = tongban_runtime::bundle::Bundle::load(&bundle)?;
            tongban_runtime::bundle::NodeTls::renew(&data, &bundle)?;
            let ends = tongban_runtime::tls::not_after(&bundle.node.cert_pem)?;
            println!(
                "new certificate installed, valid until {}; restart `tongban-node serve` if it is running",
                ends.format("%Y-%m-%d")
            );
            Ok(())
        }
        Command::Renew { .. } => bail!("renew needs --out FILE or --bundle FILE"),
        Command::User { action } => user_command(action),
        Command::Csr { data, code, out } => {
            setup::certificate_request(&data, &code, &out)?;
            println!(
                "certificate request for {code} written to {}; the key stays in {} — give the request to the county, then run `tongban-node init --bundle` with the bundle it answers",
                out.display(),
                data.display()
            );
            Ok(())
        }
        Command::Demo { dir, http } => {
            let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("tongban-demo-node"));
            let store = match Store::open(&dir) {
                Ok(store) => store,
                Err(tongban_runtime::store::StoreError::NotInitialised(_)) => {
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    let store = setup::init(
                        &InitOptions {
                            data: &dir,
                            code: "420222100201",
                            name: "兴国镇示范村便民服务站",
                            user: DEMO_USER,
                            display_name: Some("李代办"),
                            password: DEMO_PASSWORD,
                        },
                        beijing_now(),
                    )?;
                    demo_data::fill(&store, 12, 2026, beijing_now(), DEMO_USER, 0)?;
                    store
                }
                Err(e) => return Err(e.into()),
            };
            println!("通办 demo village node");
            println!("  data:  {}", dir.display());
            println!("  open:  http://{http}/");
            println!("  login: {DEMO_USER} / {DEMO_PASSWORD}");
            let opts = ServeOptions {
                data: &dir,
                http,
                sync: SyncTiming::default(),
                relay: None,
                https: None,
                tls_files: None,
                idle_timeout: tongban_web::accounts::DEFAULT_IDLE_TIMEOUT,
            };
            runtime()?.block_on(async { serve::serve(store, opts, serve::on_signal()).await })?;
            Ok(())
        }
        Command::Fill {
            data,
            count,
            seed,
            user,
            villages,
        } => {
            let store = Store::open(&data)?;
            let n = demo_data::fill(&store, count, seed, beijing_now(), &user, villages)?;
            println!("stored {n} cases");
            Ok(())
        }
    }
}

fn user_command(action: UserAction) -> anyhow::Result<()> {
    use tongban_node::users;
    use tongban_runtime::process::password_from;
    match action {
        UserAction::Add {
            data,
            name,
            display_name,
            role,
            password,
            password_file,
        } => {
            let password = password_from(
                password,
                password_file.as_deref(),
                &format!("password for {name}"),
            )?;
            let added = users::add(&data, &name, &display_name, &role, &password)?;
            println!(
                "added account {} ({}, {})",
                added.name, added.role, added.display_name
            );
        }
        UserAction::Disable { data, name } => {
            users::disable(&data, &name)?;
            println!("disabled account {name}");
        }
        UserAction::Passwd {
            data,
            name,
            password,
            password_file,
        } => {
            let password = password_from(
                password,
                password_file.as_deref(),
                &format!("password for {name}"),
            )?;
            users::passwd(&data, &name, &password)?;
            println!("password of {name} changed");
        }
        UserAction::List { data } => {
            for u in users::list(&data)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    u.name,
                    u.role,
                    u.display_name,
                    if u.is_disabled() {
                        "disabled"
                    } else {
                        "enabled"
                    }
                );
            }
        }
    }
    Ok(())
}
