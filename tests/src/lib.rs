//! Helpers for cross-process tests and the bench: start real `tongban-node` processes on loopback
//! (port 0, temp dirs), talk HTTP to them, and kill them. [`webdriver`] drives headless Chromium.
//!
//! The binaries are the ones cargo built for this workspace (`target/<profile>/tongban-node`), or the
//! path in `TONGBAN_NODE_BIN`. The processes log at `warn`; `TONGBAN_TEST_LOG=info` (any `RUST_LOG`
//! filter) shows more, on the stderr a failing test prints.

pub mod faultproxy;
pub mod rogue;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use serde_json::Value;

pub const TEST_USER: &str = "daiban";
pub const TEST_PASSWORD: &str = "daiban-test-1";
pub const TEST_CODE: &str = "420222100201";

/// Directory holding the workspace's binaries: next to the test executable's `deps/` folder.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

pub fn node_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TONGBAN_NODE_BIN") {
        return PathBuf::from(p);
    }
    bin_dir().join("tongban-node")
}

/// Runs a `tongban-node` subcommand to completion; returns (success, stdout, stderr).
pub fn node_cmd(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let bin = node_bin();
    let out = Command::new(&bin)
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("TONGBAN_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .output()
        .with_context(|| {
            format!(
                "running {} (build it with `cargo build -p tongban-node`)",
                bin.display()
            )
        })?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Initialises a standalone village node in `dir` with the test account.
pub fn init_node(dir: &Path) -> anyhow::Result<()> {
    init_standalone_node(dir, TEST_CODE, "测试村便民服务站")
}

pub fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", p.display()))
}

/// A running node process; killed (SIGKILL) when dropped.
pub struct NodeProcess {
    /// `None` for a handle attached to a node someone else owns.
    child: Option<Child>,
    pub base: String,
    /// Lines the process printed before the one that said it was serving.
    pub preamble: Vec<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl NodeProcess {
    /// Starts `serve` on 127.0.0.1:0 and waits for the line that names the URL.
    pub fn serve(dir: &Path) -> anyhow::Result<NodeProcess> {
        NodeProcess::serve_with(dir, &[])
    }

    /// `serve` with extra arguments (e.g. `--sync-interval 1`).
    pub fn serve_with(dir: &Path, extra: &[&str]) -> anyhow::Result<NodeProcess> {
        let mut args = vec!["serve", "--data", path_str(dir)?, "--http", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (mut process, rest) = spawn_server(&node_bin(), &args, "tongban-node serving ")?;
        process.base = rest.trim_end_matches('/').to_string();
        Ok(process)
    }

    /// `serve` in a process whose files may not grow past `max_file_bytes` (`ulimit -f`): the
    /// store's next write past it fails as on a full disk. Unix only: Windows has no file-size limit.
    #[cfg(unix)]
    pub fn serve_with_file_limit(dir: &Path, max_file_bytes: u64) -> anyhow::Result<NodeProcess> {
        use std::os::unix::process::CommandExt;
        let args = ["serve", "--data", path_str(dir)?, "--http", "127.0.0.1:0"];
        let (mut process, rest) =
            spawn_server_with(&node_bin(), &args, "tongban-node serving ", |c| {
                // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
                unsafe {
                    c.pre_exec(move || {
                        let limit = libc::rlimit {
                            rlim_cur: max_file_bytes as libc::rlim_t,
                            rlim_max: max_file_bytes as libc::rlim_t,
                        };
                        if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            })?;
        process.base = rest.trim_end_matches('/').to_string();
        Ok(process)
    }

    /// `serve` with extra arguments and environment variables (e.g. a rehearsed clock offset).
    pub fn serve_with_env(
        dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<NodeProcess> {
        let mut args = vec!["serve", "--data", path_str(dir)?, "--http", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (mut process, rest) =
            spawn_server_with(&node_bin(), &args, "tongban-node serving ", |c| {
                c.envs(env.iter().copied());
            })?;
        process.base = rest.trim_end_matches('/').to_string();
        Ok(process)
    }

    /// A handle to a node at `base` that this handle does not own (never killed by it).
    pub fn attach(base: &str) -> NodeProcess {
        NodeProcess {
            child: None,
            base: base.to_string(),
            preamble: Vec::new(),
            stderr: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL: no shutdown path runs, exactly like a power cut for the process.
    pub fn kill(mut self) -> String {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `POST /api/sync/now` as the test account: one session with the upstream, (status, body).
    pub fn sync_now(&self) -> (u16, Value) {
        post_json(&client(), &self.url("/api/sync/now"), &Value::Null, None)
            .unwrap_or_else(|e| panic!("sync now: {e}"))
    }

    /// The address a township's relay listens on, as `serve --quic` printed it.
    pub fn relay_addr(&self) -> Option<String> {
        self.preamble
            .iter()
            .find_map(|l| l.strip_prefix("tongban-node relay quic "))
            .map(str::to_string)
    }

    /// SIGTERM, as a service manager stops the program: waits up to `within` for it to exit and
    /// returns its exit status and what it logged. A process still running then is killed and the
    /// call fails. Unix only: Windows has no SIGTERM (a service is stopped through the service control
    /// manager, which the Windows service build handles), so `tests/shutdown.rs` runs on Unix.
    #[cfg(unix)]
    pub fn terminate(
        mut self,
        within: Duration,
    ) -> anyhow::Result<(std::process::ExitStatus, String)> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("not our process"))?;
        let pid = child.id() as libc::pid_t;
        // SAFETY: sends a signal to our own child, whose pid cannot have been reused: it has not
        // been waited for yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            status
        });
        if rx.recv_timeout(within).is_err() {
            // SAFETY: as above; the child is still not reaped (the waiter is blocked on it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = waiter.join();
            bail!("still running {within:?} after SIGTERM");
        }
        let status = waiter.join().map_err(|_| anyhow!("waiter panicked"))??;
        let log = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Ok((status, log))
    }
}

/// Spawns a server binary and waits for the stdout line starting with `prefix`; returns the process
/// (base still empty) and the rest of that line.
pub fn spawn_server(
    bin: &Path,
    args: &[&str],
    prefix: &str,
) -> anyhow::Result<(NodeProcess, String)> {
    spawn_server_with(bin, args, prefix, |_| {})
}

/// [`spawn_server`] with the command adjusted first (environment, resource limits).
pub fn spawn_server_with(
    bin: &Path,
    args: &[&str],
    prefix: &str,
    adjust: impl FnOnce(&mut Command),
) -> anyhow::Result<(NodeProcess, String)> {
    let mut command = Command::new(bin);
    command.args(args).env(
        "RUST_LOG",
        std::env::var("TONGBAN_TEST_LOG").unwrap_or_else(|_| "warn".into()),
    );
    // After the defaults, so a test can set its own log level.
    adjust(&mut command);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut stderr_pipe = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut preamble = Vec::new();
    let rest = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    break rest.to_string();
                }
                preamble.push(line);
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap_or_default();
                bail!("{} exited before serving: {err}", bin.display());
            }
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((
        NodeProcess {
            child: Some(child),
            base: String::new(),
            preamble,
            stderr: Some(stderr),
        },
        rest,
    ))
}

pub fn hub_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TONGBAN_HUB_BIN") {
        return PathBuf::from(p);
    }
    bin_dir().join("tongban-hub")
}

/// The demo county binary (`deploy/demo`); like the others, built by `cargo build -p tongban-demo`
/// (or any workspace build) before the tests run, or named by `TONGBAN_DEMO_BIN`.
pub fn demo_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TONGBAN_DEMO_BIN") {
        return PathBuf::from(p);
    }
    bin_dir().join("tongban-demo")
}

pub const HUB_ADMIN_PASSWORD: &str = "admin-test-1";

/// Runs a `tongban-hub` subcommand to completion; returns (success, stdout, stderr).
pub fn hub_cmd(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(hub_bin())
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("TONGBAN_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .output()
        .with_context(|| format!("running {}", hub_bin().display()))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A running hub process: HTTP base URL and QUIC address.
pub struct HubProcess {
    pub process: NodeProcess,
    pub quic: String,
    /// `https://127.0.0.1:PORT` when served with `--https`.
    pub https: Option<String>,
}

impl HubProcess {
    /// Initialises a hub data directory (county 420222, admin password [`HUB_ADMIN_PASSWORD`]).
    pub fn init(dir: &Path) -> anyhow::Result<()> {
        let (ok, _, err) = hub_cmd(&[
            "init",
            "--data",
            path_str(dir)?,
            "--county",
            "420222",
            "--name",
            "阳新县",
            "--admin-password",
            HUB_ADMIN_PASSWORD,
        ])?;
        if !ok {
            bail!("hub init failed: {err}");
        }
        Ok(())
    }

    /// Adds an account to a stopped hub.
    pub fn add_user(dir: &Path, name: &str, role: &str, dept: Option<&str>) -> anyhow::Result<()> {
        let mut args = vec![
            "user",
            "add",
            "--data",
            path_str(dir)?,
            "--name",
            name,
            "--password",
            TEST_PASSWORD,
            "--role",
            role,
        ];
        if let Some(d) = dept {
            args.extend(["--dept", d]);
        }
        let (ok, _, err) = hub_cmd(&args)?;
        if !ok {
            bail!("user add failed: {err}");
        }
        Ok(())
    }

    /// A hub in a new temp dir with the county's staff of one department's work, all with
    /// [`TEST_PASSWORD`]: `window1` (window), `dept1` (the department `dept`), `sup1` (supervisor).
    /// Keep the directory alive as long as the process.
    pub fn staffed(dept: &str) -> anyhow::Result<(HubProcess, tempfile::TempDir)> {
        let dir = tempfile::tempdir()?;
        HubProcess::init(dir.path())?;
        HubProcess::add_user(dir.path(), "window1", "window", None)?;
        HubProcess::add_user(dir.path(), "dept1", "dept", Some(dept))?;
        HubProcess::add_user(dir.path(), "sup1", "supervisor", None)?;
        Ok((HubProcess::serve(dir.path(), "127.0.0.1:0")?, dir))
    }

    /// `init`s (if needed) and serves a hub; `quic` may be `127.0.0.1:0`.
    pub fn serve(dir: &Path, quic: &str) -> anyhow::Result<HubProcess> {
        HubProcess::serve_with(dir, quic, &[])
    }

    /// `serve` with extra arguments (e.g. `--sync-message-timeout 2`).
    pub fn serve_with(dir: &Path, quic: &str, extra: &[&str]) -> anyhow::Result<HubProcess> {
        HubProcess::spawn(dir, quic, extra, |_| {})
    }

    /// [`Self::serve_with`] logging at INFO (QUIC on port 0), for tests that read what the hub logs:
    /// its stderr is what `process.kill()` returns.
    pub fn serve_logging_info(dir: &Path, extra: &[&str]) -> anyhow::Result<HubProcess> {
        HubProcess::spawn(dir, "127.0.0.1:0", extra, |c| {
            c.env("RUST_LOG", "info");
        })
    }

    fn spawn(
        dir: &Path,
        quic: &str,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> anyhow::Result<HubProcess> {
        if !dir.join("db").exists() {
            HubProcess::init(dir)?;
        }
        let mut args = vec![
            "serve",
            "--data",
            path_str(dir)?,
            "--http",
            "127.0.0.1:0",
            "--quic",
            quic,
        ];
        args.extend_from_slice(extra);
        let (mut process, rest) =
            spawn_server_with(&hub_bin(), &args, "tongban-hub serving ", adjust)?;
        let mut parts = rest.split_whitespace();
        process.base = parts
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        let quic = parts.nth(1).unwrap_or_default().to_string();
        let https = (parts.next() == Some("https"))
            .then(|| parts.next().map(|u| u.trim_end_matches('/').to_string()))
            .flatten();
        Ok(HubProcess {
            process,
            quic,
            https,
        })
    }

    pub fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    /// Enrols a village through the API and writes its bundle into `out`.
    pub fn enroll_village(&self, code: &str, out: &Path) -> anyhow::Result<()> {
        self.enroll(code, "village", &self.quic, None, out)
    }

    /// Enrols any node through the API: its upstream address and TLS name (the hub's when `None`).
    pub fn enroll(
        &self,
        code: &str,
        tier: &str,
        upstream: &str,
        upstream_name: Option<&str>,
        out: &Path,
    ) -> anyhow::Result<()> {
        self.enroll_with(
            out,
            serde_json::json!({
                "code": code,
                "name": format!("测试站{code}"),
                "tier": tier,
                "upstream": upstream,
                "upstream_name": upstream_name,
            }),
        )
    }

    /// Enrols as a station does: `tongban-node csr` makes the key in a staging directory beside
    /// `out` ([`key_dir_of`]; [`init_node_from_bundle`] moves it into the node's data directory), the
    /// request goes to `POST /api/nodes` with the fields of `request`, and the answered bundle
    /// (certificates only) is written to `out`.
    pub fn enroll_with(&self, out: &Path, request: serde_json::Value) -> anyhow::Result<()> {
        self.enroll_node_in(&key_dir_of(out), out, request)
    }

    /// [`Self::enroll_with`] for a node whose key `csr` makes in `data` (its data directory, which
    /// may already hold a standalone node's store).
    pub fn enroll_node_in(
        &self,
        data: &Path,
        out: &Path,
        mut request: serde_json::Value,
    ) -> anyhow::Result<()> {
        let code = request["code"].as_str().unwrap_or_default().to_string();
        let csr = out.with_extension("csr");
        let (ok, _, err) = node_cmd(&[
            "csr",
            "--data",
            path_str(data)?,
            "--code",
            &code,
            "--out",
            path_str(&csr)?,
        ])?;
        if !ok {
            bail!("tongban-node csr failed: {err}");
        }
        request["csr"] = std::fs::read_to_string(&csr)?.into();
        let mut resp = client()
            .post(self.url("/api/nodes"))
            .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(&request)?.as_slice())?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string()?;
        if status != 201 {
            bail!("enrol answered {status}: {body}");
        }
        std::fs::write(out, body)?;
        Ok(())
    }
}

impl HubProcess {
    /// A village enrolled with this hub, initialised from its bundle in a temp dir (node data in
    /// `<dir>/node`), not yet serving.
    pub fn enrolled_village(&self, code: &str) -> anyhow::Result<tempfile::TempDir> {
        let dir = tempfile::tempdir()?;
        let bundle = dir.path().join("bundle.json");
        self.enroll_village(code, &bundle)?;
        init_node_from_bundle(&dir.path().join("node"), &bundle)?;
        Ok(dir)
    }

    /// An enrolled village serving with `args`; keep the directory alive as long as the process.
    pub fn village(
        &self,
        code: &str,
        args: &[&str],
    ) -> anyhow::Result<(NodeProcess, tempfile::TempDir)> {
        let dir = self.enrolled_village(code)?;
        let node = NodeProcess::serve_with(&dir.path().join("node"), args)?;
        Ok((node, dir))
    }
}

/// A case as `user` reads it over `base`'s API (`GET /api/cases/{no}`).
pub fn case_json(base: &str, user: (&str, &str), case_no: &str) -> Value {
    get_json_as(
        &client(),
        &format!("{base}/api/cases/{case_no}"),
        &basic_auth(user.0, user.1),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .1
}

/// Files a valid case at a node and returns its number (panics on anything but 201).
pub fn file_case(node: &NodeProcess, applicant: &str) -> String {
    let (status, body) = post_json(
        &client(),
        &node.url("/api/cases"),
        &valid_case_body(applicant),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 201, "{body}");
    body["case_no"].as_str().unwrap_or_default().to_string()
}

/// Initialises a standalone node (no bundle: a code and a name) with the test account.
pub fn init_standalone_node(dir: &Path, code: &str, name: &str) -> anyhow::Result<()> {
    let (ok, _, err) = node_cmd(&[
        "init",
        "--data",
        path_str(dir)?,
        "--code",
        code,
        "--name",
        name,
        "--user",
        TEST_USER,
        "--display-name",
        "测试代办员",
        "--password",
        TEST_PASSWORD,
    ])?;
    if !ok {
        bail!("init failed: {err}");
    }
    Ok(())
}

/// Initialises a node from a bundle with the test account.
/// Where [`HubProcess::enroll_with`] keeps the key of the node whose bundle goes to `bundle`, until
/// the node's data directory exists.
pub fn key_dir_of(bundle: &Path) -> std::path::PathBuf {
    bundle.with_extension("keydir")
}

/// The certificate and key of the node whose bundle is at `path`: the key from the bundle (USB-stick
/// kind), or from where [`HubProcess::enroll_with`] had `csr` make it.
pub fn node_credentials(
    path: &Path,
    bundle: &tongban_runtime::bundle::Bundle,
) -> anyhow::Result<tongban_runtime::tls::CertKey> {
    Ok(tongban_runtime::tls::CertKey {
        cert_pem: bundle.node.cert_pem.clone(),
        key_pem: match &bundle.node.key_pem {
            Some(key) => key.clone(),
            None => std::fs::read_to_string(key_dir_of(path).join("tls").join("node.key"))?,
        },
    })
}

/// `tongban-node init --bundle` into `dir`; the key a certificate-only bundle answers is moved in
/// first from [`key_dir_of`] (as an operator would run `csr` with `--data` the node's directory).
pub fn init_node_from_bundle(dir: &Path, bundle: &Path) -> anyhow::Result<()> {
    init_node_from_bundle_with(dir, bundle, &[]).map(|_| ())
}

/// [`init_node_from_bundle`] with extra arguments (`--restore`); returns what `init` printed.
pub fn init_node_from_bundle_with(
    dir: &Path,
    bundle: &Path,
    extra: &[&str],
) -> anyhow::Result<String> {
    let staged = key_dir_of(bundle);
    if staged.exists() {
        std::fs::create_dir_all(dir)?;
        std::fs::rename(staged.join("tls"), dir.join("tls"))?;
        std::fs::remove_dir_all(&staged)?;
    }
    let mut args = vec![
        "init",
        "--data",
        path_str(dir)?,
        "--bundle",
        path_str(bundle)?,
        "--user",
        TEST_USER,
        "--password",
        TEST_PASSWORD,
    ];
    args.extend_from_slice(extra);
    let (ok, out, err) = node_cmd(&args)?;
    if !ok {
        bail!("init --bundle failed: {err}");
    }
    Ok(out)
}

/// `GET {base}{path}` as `user` (HTTP Basic): status and body text (pages and JSON alike).
pub fn get_text_as(base: &str, user: (&str, &str), path: &str) -> (u16, String) {
    let mut resp = client()
        .get(format!("{base}{path}"))
        .header("Authorization", &basic_auth(user.0, user.1))
        .call()
        .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// Polls `check` until it returns true or `limit` passes (for effects of background sync, which has
/// no event a test could wait on across processes).
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// HTTP client that reports every status instead of failing on 4xx/5xx.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .max_redirects(0)
        .build()
        .into()
}

pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub fn test_auth() -> String {
    basic_auth(TEST_USER, TEST_PASSWORD)
}

/// (status, parsed JSON body or Null).
pub fn get_json(agent: &ureq::Agent, url: &str) -> anyhow::Result<(u16, Value)> {
    get_json_as(agent, url, &test_auth())
}

/// `get_json` with another `Authorization` header (e.g. the hub's admin).
pub fn get_json_as(agent: &ureq::Agent, url: &str, auth: &str) -> anyhow::Result<(u16, Value)> {
    let mut resp = agent.get(url).header("Authorization", auth).call()?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// `POST` of a JSON body with an `Authorization` header: (status, parsed JSON body or Null).
pub fn post_json_as(url: &str, auth: &str, body: &Value) -> (u16, Value) {
    let mut resp = client()
        .post(url)
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body).unwrap_or_default().as_slice())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn post_json(
    agent: &ureq::Agent,
    url: &str,
    body: &Value,
    idempotency_key: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = agent
        .post(url)
        .header("Authorization", &test_auth())
        .header("Content-Type", "application/json");
    if let Some(k) = idempotency_key {
        req = req.header("Idempotency-Key", k);
    }
    let mut resp = req.send(serde_json::to_vec(body)?.as_slice())?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// A valid intake body for the built-in catalogue's first item, with every required material and a
/// distinct applicant name (so duplicates are visible).
pub fn valid_case_body(applicant_name: &str) -> Value {
    case_body(0, applicant_name)
}

/// A valid intake body for the built-in catalogue's item number `item`.
pub fn case_body(item: usize, applicant_name: &str) -> Value {
    let catalog = tongban_shared::catalog::Catalog::builtin().unwrap_or_else(|e| panic!("{e}"));
    let item = &catalog.items[item];
    serde_json::json!({
        "item_code": item.code,
        "applicant": {
            "name": applicant_name,
            "id_number": "11010519491231002X",
            "phone": "13800271234"
        },
        "materials": item.materials.iter().filter(|m| m.required).map(|m| m.id.clone()).collect::<Vec<_>>(),
        "delivery": "代办员送达",
        "note": "测试"
    })
}

/// A villager's everyday request for `item`: a personal applicant with a valid identity number and
/// every required material, delivered by the agent. What the simulator and the benches file.
pub fn villager_request(
    item: &tongban_shared::catalog::Item,
) -> tongban_shared::case::IntakeRequest {
    tongban_shared::case::IntakeRequest {
        item_code: item.code.clone(),
        applicant: tongban_shared::case::ApplicantInput {
            name: "王秀英".into(),
            id_number: "11010519491231002X".into(),
            phone: "13800271234".into(),
            address: "某村三组".into(),
            ..Default::default()
        },
        materials: item
            .materials
            .iter()
            .filter(|m| m.required)
            .map(|m| m.id.clone())
            .collect(),
        delivery: "代办员送达".into(),
        note: String::new(),
    }
}

/// `POST {base}/api/cases/{case_no}/actions` as `user`: status and answer.
pub fn act_as(base: &str, user: (&str, &str), case_no: &str, body: &Value) -> (u16, Value) {
    let mut resp = client()
        .post(format!("{base}/api/cases/{case_no}/actions"))
        .header("Authorization", &basic_auth(user.0, user.1))
        .header("Content-Type", "application/json")
        .send(serde_json::to_vec(body).unwrap_or_default().as_slice())
        .unwrap_or_else(|e| panic!("{e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every case number the node lists, following cursors.
pub fn all_case_numbers(agent: &ureq::Agent, node: &NodeProcess) -> anyhow::Result<Vec<Value>> {
    all_cases_as(agent, node, &test_auth())
}

/// Every case summary a node or hub lists, through its paginated API, as the user of `auth`.
pub fn all_cases_as(
    agent: &ureq::Agent,
    node: &NodeProcess,
    auth: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get_json_as(
            agent,
            &node.url(&format!("/api/cases?limit=500&cursor={cursor}")),
            auth,
        )?;
        if status != 200 {
            bail!("list answered {status}: {page}");
        }
        out.extend(page["cases"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(n) => cursor = n.to_string(),
            None => return Ok(out),
        }
    }
}

/// Peak resident set size (VmHWM) of a process in KiB, from /proc (Linux); 0 if unknown.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident set size of a process in KiB, from /proc (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// One `kB` line of `/proc/PID/status` (`VmRSS:`, `RssAnon:`, `RssFile:` …).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Polls `url` until it answers 200 or `limit` passes; returns the time it took.
pub fn wait_until_up(url: &str, limit: Duration) -> anyhow::Result<Duration> {
    let agent = client();
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(resp) = agent.get(url).call() {
            if resp.status().as_u16() == 200 {
                return Ok(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("{url} not up within {limit:?}")
}

/// A browser-like session of `user` at `base`: its cookie and the CSRF token of `page`.
pub fn session(base: &str, user: (&str, &str), page: &str) -> (String, String) {
    let body = format!("user={}&password={}&next=%2F", user.0, user.1);
    let resp = client()
        .post(format!("{base}/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(body.as_bytes())
        .unwrap();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let (_, html) = page_with(base, &cookie, page);
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token on the page")
        .to_string();
    (cookie, csrf)
}

pub fn page_with(base: &str, cookie: &str, path: &str) -> (u16, String) {
    let mut resp = client()
        .get(format!("{base}{path}"))
        .header("Cookie", cookie)
        .call()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// Posts a form of the session; answers the page it redirects to.
pub fn submit(
    base: &str,
    (cookie, csrf): &(String, String),
    path: &str,
    pairs: &[(&str, &str)],
) -> String {
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(pairs);
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(all)
        .finish();
    let resp = client()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Cookie", cookie)
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "{path}");
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_string();
    page_with(base, cookie, &location).1
}

/// Posts a form of the session and answers (status, body) as they come (a page that renders its
/// result instead of redirecting, or a download).
pub fn post_form(
    base: &str,
    (cookie, csrf): &(String, String),
    path: &str,
    pairs: &[(&str, &str)],
) -> (u16, String) {
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(pairs);
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(all)
        .finish();
    let mut resp = client()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Cookie", cookie)
        .send(body.as_bytes())
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// Copies a directory tree (a store kept aside, a fixture), files and all.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
