//! `tongban-hub` command line (CONTRACT.md): init, enroll, user add, serve, calendar due, demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use tongban_hub::certs;
use tongban_hub::county::{self, EnrollRequest};
use tongban_hub::notify::{Outbox, Policy};
use tongban_hub::server::HubOptions;
use tongban_runtime::clock::beijing_now;
use tongban_runtime::transport::ServerLimits;
use tongban_shared::calendar::Calendar;
use tongban_shared::Tier;

#[derive(Parser)]
#[command(name = "tongban-hub", version, about = "通办 county hub")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A TOML file with options (/etc/tongban/hub.toml in the package); the command line wins.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum TierArg {
    Township,
    Village,
}

#[derive(Subcommand)]
enum Command {
    /// Create the county CA, the hub's certificate, the store and the admin account.
    Init {
        #[arg(long, env = "TONGBAN_HUB_DATA")]
        data: PathBuf,
        /// County division code (6 digits), e.g. 420222.
        #[arg(long)]
        county: String,
        /// County name, e.g. 阳新县.
        #[arg(long)]
        name: String,
        /// Visible to other users of the machine: prefer --admin-password-file or the prompt.
        #[arg(long, env = "TONGBAN_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
        /// A file whose first line is the admin password.
        #[arg(long, conflicts_with = "admin_password")]
        admin_password_file: Option<PathBuf>,
    },
    /// Issue a node certificate and write its enrolment bundle (on a stopped hub).
    Enroll {
        #[arg(long, env = "TONGBAN_HUB_DATA")]
        data: PathBuf,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        tier: TierArg,
        /// Parent division code (derived from the code when omitted).
        #[arg(long)]
        parent: Option<String>,
        /// IP:PORT the node syncs with (the hub's --quic address, or its township's).
        #[arg(long)]
        upstream: String,
        /// TLS name of the upstream when it is a township node (default: the hub).
        #[arg(long)]
        upstream_name: Option<String>,
        /// The hub's IP:PORT for a village behind a township: used when the township is unreachable.
        #[arg(long)]
        fallback: Option<String>,
        /// The node's certificate request (`tongban-node csr`): the bundle then holds no private key.
        /// Without it the hub makes the key and the bundle is secret (USB-stick path).
        #[arg(long)]
        csr: Option<PathBuf>,
        /// Give an enrolled node a new certificate (renewal, or a replaced PC); the old one is
        /// refused from then on.
        #[arg(long)]
        replace: bool,
        /// Where to write the bundle (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Accounts of the hub.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Run the hub: web UI and API on --http, sync endpoint on --quic.
    Serve {
        #[arg(long, env = "TONGBAN_HUB_DATA")]
        data: PathBuf,
        /// Plain HTTP: the whole app on a loopback address; on any other address (with --https)
        /// only a redirect to HTTPS.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// HTTPS for the hall's browsers, e.g. 0.0.0.0:8443.
        #[arg(long)]
        https: Option<SocketAddr>,
        /// Names and addresses the hall's PCs reach the hub by (repeatable), for the certificate the
        /// county CA issues; localhost and the --https address are always in it.
        #[arg(long = "web-name")]
        web_names: Vec<String>,
        /// An operator-supplied certificate chain (PEM) for HTTPS instead of the county CA's.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:4433")]
        quic: SocketAddr,
        /// Seconds a node may stay silent in the middle of a sync session before it is cut off.
        #[arg(long, default_value_t = 60)]
        sync_message_timeout: u64,
        /// Open sync connections one node may hold.
        #[arg(long, default_value_t = 4)]
        sync_max_per_node: usize,
        /// Sync sessions one node may start per minute (bursts of up to 30 are allowed).
        #[arg(long, default_value_t = 60)]
        sync_sessions_per_minute: u32,
        /// Minutes a web session may stay unused before it ends (等保: 登录连接超时), 1–720.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=720))]
        session_idle_minutes: u64,
        /// SMS gateway (http:// or https://) the texts to applicants are posted to as JSON; without
        /// it they are only written to the log.
        #[arg(long, requires = "sms_key_file")]
        sms_url: Option<String>,
        /// A file whose first line is the gateway's API key (sent as `Authorization: Bearer KEY`).
        #[arg(long, requires = "sms_url")]
        sms_key_file: Option<PathBuf>,
        /// The gateway's template id per message kind, e.g.
        /// accepted=SMS_1,correction=SMS_2,rejected=SMS_3,denied=SMS_4,result_ready=SMS_5.
        #[arg(long, requires = "sms_url")]
        sms_templates: Option<String>,
        /// Texts one phone number may get per Beijing day through the gateway; more are held back
        /// (state `capped`). 0: no limit.
        #[arg(long, default_value_t = tongban_hub::notify::DEFAULT_DAILY_CAP, requires = "sms_url")]
        sms_daily_cap: u32,
        /// Wait before the first retry of a failed text, in milliseconds; later retries wait
        /// multiples of it. Only tests shorten it.
        #[arg(long, hide = true, default_value_t = 30_000, requires = "sms_url")]
        sms_retry_base_ms: u64,
        /// How log lines are written to stderr: text (for people) or json (one object a line).
        #[arg(long, env = "TONGBAN_LOG_FORMAT", default_value_t)]
        log_format: tongban_runtime::process::LogFormat,
    },
    /// Issue the HTTPS certificate for more names the hall reaches the hub by (signs with the county
    /// CA key; the running hub never reads it), on a stopped hub.
    WebCert {
        #[arg(long, env = "TONGBAN_HUB_DATA")]
        data: PathBuf,
        /// A DNS name or IP address to add (repeat for several).
        #[arg(long = "web-name", required = true)]
        web_names: Vec<String>,
        /// The county CA key when it is kept off this PC (default DIR/tls/ca.key).
        #[arg(long)]
        ca_key: Option<PathBuf>,
    },
    /// Renew the hub's own certificates (sync, web) and, when it nears its end, the issuing CA that
    /// signs node certificates. Signs with the county CA key, on a stopped hub.
    Renew {
        #[arg(long, env = "TONGBAN_HUB_DATA")]
        data: PathBuf,
        /// The county CA key when it is kept off this PC (default DIR/tls/ca.key).
        #[arg(long)]
        ca_key: Option<PathBuf>,
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
    /// Working-day calendar (statutory holidays and makeup working days).
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an account (on a stopped hub).
    Add {
        #[arg(long, env = "TONGBAN_HUB_DATA")]
        data: PathBuf,
        #[arg(long)]
        name: String,
        /// Visible to other users of the machine: prefer --password-file or the prompt.
        #[arg(long, hide_env_values = true)]
        password: Option<String>,
        /// A file whose first line is the password.
        #[arg(long, conflicts_with = "password")]
        password_file: Option<PathBuf>,
        /// admin, window (front desk), dept (back office of --dept) or supervisor.
        #[arg(long)]
        role: String,
        #[arg(long)]
        dept: Option<String>,
        /// A window's service area (社会事务, 企业事务, 不动产交易, 公安 … as the catalogue lists
        /// them): it receives only that area's items. Without it a window receives every item.
        #[arg(long)]
        area: Option<String>,
        /// The person's name as history, receipts and notices show it (e.g. 刘芳); the account
        /// name when omitted.
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain (also while the hub runs); exit 0 when whole, else name the first
    /// record that does not fit.
    Verify {
        #[arg(long, env = "TONGBAN_HUB_DATA")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// Print the date on which N working days, counted from the day after --from, are complete.
    Due {
        /// Start date, YYYY-MM-DD (e.g. the day of acceptance).
        #[arg(long)]
        from: NaiveDate,
        /// Number of working days.
        #[arg(long)]
        days: u32,
        /// Hub data directory whose calendar to use (built-in 2026 table without it).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = tongban_runtime::config::parse::<Cli>();
    let log_format = match &cli.command {
        Command::Serve { log_format, .. } => *log_format,
        _ => Default::default(),
    };
    tongban_runtime::process::cli_main_logging(cli, None, log_format, run)
}

use tongban_runtime::process::runtime;

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            data,
            county: code,
            name,
            admin_password,
            admin_password_file,
        } => {
            let admin_password = tongban_runtime::process::password_from_env(
                admin_password,
                Some("TONGBAN_ADMIN_PASSWORD"),
                admin_password_file.as_deref(),
                "password for admin",
            )?;
            county::init(&data, &code, &name, &admin_password, beijing_now())?;
            println!("initialised county {code} ({name}) in {}", data.display());
            println!(
                "county CA fingerprint (SHA-256), for the notice to the halls: {}",
                tongban_runtime::tls::fingerprint(&certs::ca_cert(&data)?)?
            );
            println!(
                "the county CA key is {}: the running hub never reads it; keep it on a USB stick \
                 (the signing commands take --ca-key FILE) and a backup in a safe",
                certs::tls_dir(&data).join("ca.key").display()
            );
            println!(
                "the CA certificate and how to install it: {}",
                county::ca_install_dir(&data).display()
            );
            Ok(())
        }
        Command::Enroll {
            data,
            code,
            name,
            tier,
            parent,
            upstream,
            upstream_name,
            fallback,
            csr,
            replace,
            out,
        } => {
            let csr = csr
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("--csr {}: {e}", path.display()))
                })
                .transpose()?;
            let store = county::open(&data)?;
            let signer = certs::node_signer(&data)?;
            let bundle = county::enroll(
                &store,
                &signer,
                &EnrollRequest {
                    code: &code,
                    name: &name,
                    tier: match tier {
                        TierArg::Township => Tier::Township,
                        TierArg::Village => Tier::Village,
                    },
                    parent: parent.as_deref(),
                    upstream: &upstream,
                    upstream_name: upstream_name.as_deref(),
                    fallback: fallback.as_deref(),
                    csr: csr.as_deref(),
                    replace,
                },
                Some(&out),
                beijing_now(),
            )?;
            let who = tongban_runtime::process::cli_actor();
            store.audit(&who, "node.enrolled", &bundle.code, None)?;
            let expires = tongban_runtime::tls::not_after(&bundle.node.cert_pem)?;
            if bundle.secret.is_some() {
                println!(
                    "enrolled {} ({}); bundle written to {} — it holds the node's private key: carry it by hand, keep it secret, delete it once installed (certificate valid until {})",
                    bundle.code,
                    bundle.name,
                    out.display(),
                    expires.format("%Y-%m-%d")
                );
            } else {
                println!(
                    "enrolled {} ({}); bundle written to {} — certificates only, the key stays on the node (valid until {})",
                    bundle.code,
                    bundle.name,
                    out.display(),
                    expires.format("%Y-%m-%d")
                );
            }
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    data,
                    name,
                    password,
                    password_file,
                    role,
                    dept,
                    area,
                    display_name,
                },
        } => {
            let password = tongban_runtime::process::password_from(
                password,
                password_file.as_deref(),
                &format!("password for {name}"),
            )?;
            let store = county::open(&data)?;
            county::add_user(
                &store,
                &county::NewUser {
                    name: &name,
                    password: &password,
                    role: &role,
                    dept: dept.as_deref(),
                    area: area.as_deref(),
                    display_name: display_name.as_deref(),
                },
                beijing_now(),
            )?;
            let who = tongban_runtime::process::cli_actor();
            store.audit(&who, "account.added", &format!("{name} ({role})"), None)?;
            println!("added account {name} ({role})");
            Ok(())
        }
        Command::Serve {
            data,
            http,
            https,
            web_names,
            tls_cert,
            tls_key,
            quic,
            sync_message_timeout,
            sync_max_per_node,
            sync_sessions_per_minute,
            session_idle_minutes,
            sms_url,
            sms_key_file,
            sms_templates,
            sms_daily_cap,
            sms_retry_base_ms,
            log_format: _,
        } => {
            let outbox = match (sms_url, sms_key_file) {
                (Some(url), Some(key_file)) => {
                    let config = tongban_hub::sms::SmsConfig::from_options(
                        &url,
                        &key_file,
                        sms_templates.as_deref(),
                    )
                    .map_err(anyhow::Error::msg)?;
                    Outbox {
                        sender: std::sync::Arc::new(tongban_hub::sms::HttpSmsSender::new(config)),
                        policy: Policy {
                            retry_base: std::time::Duration::from_millis(sms_retry_base_ms.max(1)),
                            daily_cap: (sms_daily_cap > 0).then_some(sms_daily_cap),
                            ..Policy::default()
                        },
                    }
                }
                _ => Outbox::log(),
            };
            let mut web =
                tongban_hub::server::WebListen::new(http, https, web_names, tls_cert.zip(tls_key))?;
            web.idle_timeout = std::time::Duration::from_secs(session_idle_minutes * 60);
            let store = county::open(&data)?;
            let limits = ServerLimits {
                message_timeout: std::time::Duration::from_secs(sync_message_timeout.max(1)),
                max_connections_per_peer: sync_max_per_node.max(1),
                sessions_per_minute: sync_sessions_per_minute.max(1),
                ..ServerLimits::default()
            };
            runtime()?.block_on(async {
                let shutdown = tokio_util::sync::CancellationToken::new();
                let on_signal = shutdown.clone();
                tokio::spawn(async move {
                    tongban_runtime::process::shutdown_signal().await;
                    on_signal.cancel();
                });
                let options = HubOptions {
                    web,
                    quic,
                    limits,
                    outbox,
                };
                tongban_hub::server::serve_with(&data, store, options, shutdown, |b| {
                    match b.https {
                        Some(https) => println!(
                            "tongban-hub serving http://{}/ quic {} https https://{}/",
                            b.http, b.quic, https
                        ),
                        None => println!("tongban-hub serving http://{}/ quic {}", b.http, b.quic),
                    }
                })
                .await
            })?;
            Ok(())
        }
        Command::WebCert {
            data,
            web_names,
            ca_key,
        } => {
            // On a stopped hub (the store's lock says so), which serves it from its next start and
            // whose audit log records it.
            let store = county::open(&data)?;
            let root = certs::root_ca(&data, ca_key.as_deref())?;
            let names = certs::issue_web_cert(&data, &root, &web_names)?;
            let who = tongban_runtime::process::cli_actor();
            store.audit(&who, "cert.web", &names.join(" "), None)?;
            println!(
                "issued the web certificate for {}; start the hub to serve it",
                names.join(", ")
            );
            Ok(())
        }
        Command::Renew { data, ca_key } => {
            let store = county::open(&data)?;
            let root = certs::root_ca(&data, ca_key.as_deref())?;
            let renewed = certs::renew(&data, &root)?;
            let who = tongban_runtime::process::cli_actor();
            store.audit(&who, "cert.renewed", &renewed.join("; "), None)?;
            println!("renewed: {}; start the hub to use them", renewed.join("; "));
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify { data },
        } => tongban_runtime::process::verify_audit_log(&data),
        Command::Backup(args) => tongban_runtime::maintenance::run_backup(&args),
        Command::Restore(args) => {
            tongban_runtime::maintenance::run_restore(&args, "tongban-hub serve")
        }
        Command::Calendar {
            command: CalendarCommand::Due { from, days, data },
        } => {
            let calendar = match data {
                Some(data) => county::open(&data)?.calendar()?,
                None => Calendar::builtin()?,
            };
            let due = calendar.due_date(from, days);
            for year in [from.format("%Y"), due.format("%Y")] {
                let year: i32 = year.to_string().parse()?;
                if !calendar.covers(year) {
                    eprintln!(
                        "warning: no holiday table for {year}; only weekends counted as days off"
                    );
                }
            }
            println!("{}", due.format("%Y-%m-%d"));
            Ok(())
        }
    }
}
