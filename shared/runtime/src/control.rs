//! The local control channel of a running hub or node: how `backup` reaches a process that holds its
//! store open (sled allows one process per database).
//!
//! `serve` listens on a loopback TCP port (port 0: the system picks one; TCP because Windows has it
//! too) and writes the port and a random token to `DIR/control.json`, readable only by the service
//! account like the rest of the data directory. A command that finds the store locked reads that file
//! and sends one JSON line; knowing the token proves it could read the data directory, which is the
//! same right as running the command on a stopped store. The answer is one JSON line.
//!
//! Commands: `backup` (write a backup to `out`) and `actor` (the automerge actor the node writes
//! with, which `tongban-node renew --out` declares to the county so that a county restored from an
//! older backup binds it again).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::store::backup::BackupSummary;
use crate::store::Store;

/// In the data directory while `serve` runs.
pub const CONTROL_FILE: &str = "control.json";
/// A request line is a path and a token: anything longer is not one of ours.
const MAX_REQUEST: u64 = 8 * 1024;

#[derive(Serialize, Deserialize)]
struct ControlFile {
    port: u16,
    token: String,
    pid: u32,
}

#[derive(Serialize, Deserialize)]
struct Request {
    token: String,
    command: String,
    #[serde(default)]
    out: PathBuf,
    #[serde(default)]
    made_at: String,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    ok: Option<serde_json::Value>,
    error: Option<String>,
}

impl Answer {
    fn refused(why: String) -> Answer {
        Answer {
            ok: None,
            error: Some(why),
        }
    }
}

/// Starts the control listener for `store` (open in `dir`); it ends with `shutdown`.
pub async fn serve(dir: &Path, store: Store, shutdown: CancellationToken) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let mut token = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut token);
    let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
    let file = ControlFile {
        port: listener.local_addr()?.port(),
        token: token.clone(),
        pid: std::process::id(),
    };
    let path = dir.join(CONTROL_FILE);
    // A file left by a process that was killed holds an old port and token.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    crate::bundle::write_private(
        &path,
        &serde_json::to_vec(&file).map_err(std::io::Error::other)?,
    )?;
    let dir = dir.to_path_buf();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    tokio::spawn(answer(stream, store.clone(), dir.clone(), token.clone()));
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(())
}

async fn answer(stream: tokio::net::TcpStream, store: Store, dir: PathBuf, token: String) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let answer = match serde_json::from_str::<Request>(&line) {
        Err(e) => Answer::refused(format!("not a control request: {e}")),
        Ok(r) if !constant_time_eq(r.token.as_bytes(), token.as_bytes()) => {
            Answer::refused("wrong control token".into())
        }
        Ok(r) => {
            let done = tokio::task::spawn_blocking(move || run(&store, &dir, &r)).await;
            match done {
                Ok(Ok(value)) => Answer {
                    ok: Some(value),
                    error: None,
                },
                Ok(Err(e)) => Answer::refused(e),
                Err(e) => Answer::refused(format!("the {} task failed: {e}", "control")),
            }
        }
    };
    if let Ok(mut bytes) = serde_json::to_vec(&answer) {
        bytes.push(b'\n');
        let _ = write.write_all(&bytes).await;
    }
}

/// Carries out one request (blocking: store work).
fn run(store: &Store, dir: &Path, r: &Request) -> Result<serde_json::Value, String> {
    match r.command.as_str() {
        "backup" => {
            let summary = store
                .write_backup(dir, &r.out, &r.made_at)
                .map_err(|e| e.to_string())?;
            let _ = store.audit(
                &crate::process::cli_actor(),
                "backup.written",
                &format!("{} ({} bytes)", r.out.display(), summary.bytes),
                None,
            );
            serde_json::to_value(summary).map_err(|e| e.to_string())
        }
        "actor" => {
            let actor = store.actor().map_err(|e| e.to_string())?;
            Ok(serde_json::Value::String(crate::store::keys::hex(&actor)))
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What asking a running process gave.
pub enum Asked<T> {
    /// No process of this data directory is running (no control file, or nobody answers at it).
    NotRunning,
    Done(T),
}

/// Asks the process serving `dir` to write a backup to `out` (blocking; made for the command line).
pub fn request_backup(
    dir: &Path,
    out: &Path,
    made_at: &str,
) -> anyhow::Result<Asked<BackupSummary>> {
    use anyhow::Context;
    // The process writes the file itself, from its own working directory: give it an absolute path.
    let out = std::path::absolute(out).context("--out")?;
    ask(dir, "backup", out, made_at)
}

/// Asks the process serving `dir` for the actor its store writes with.
pub fn request_actor(dir: &Path) -> anyhow::Result<Asked<Vec<u8>>> {
    Ok(match ask::<String>(dir, "actor", PathBuf::new(), "")? {
        Asked::NotRunning => Asked::NotRunning,
        Asked::Done(hex) => Asked::Done(
            crate::bundle::parse_actor(&hex)
                .ok_or_else(|| anyhow::anyhow!("the running process answered actor {hex:?}"))?
                .to_vec(),
        ),
    })
}

fn ask<T: serde::de::DeserializeOwned>(
    dir: &Path,
    command: &str,
    out: PathBuf,
    made_at: &str,
) -> anyhow::Result<Asked<T>> {
    use anyhow::Context;
    let Ok(raw) = std::fs::read(dir.join(CONTROL_FILE)) else {
        return Ok(Asked::NotRunning);
    };
    let file: ControlFile = serde_json::from_slice(&raw)
        .with_context(|| format!("{} is damaged", dir.join(CONTROL_FILE).display()))?;
    // A control file left by a process that was killed: nobody listens at its port.
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", file.port)) else {
        return Ok(Asked::NotRunning);
    };
    let mut line = serde_json::to_vec(&Request {
        token: file.token,
        command: command.to_string(),
        out,
        made_at: made_at.to_string(),
    })?;
    line.push(b'\n');
    stream.write_all(&line).context("sending the request")?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .context("reading the answer")?;
    if answer.is_empty() {
        // Something else took the port after the process ended.
        return Ok(Asked::NotRunning);
    }
    let answer: Answer = serde_json::from_str(&answer).context("the running process's answer")?;
    match (answer.ok, answer.error) {
        (Some(value), _) => Ok(Asked::Done(
            serde_json::from_value(value).context("the running process's answer")?,
        )),
        (None, Some(e)) => anyhow::bail!("the running process refused the {command}: {e}"),
        (None, None) => anyhow::bail!("the running process gave an empty answer"),
    }
}
