//! A small blocking client for the operator endpoints of CONTRACT.md (health, case list and detail,
//! case actions, sync now), which is all the demo needs to drive its own servers the way a person or a
//! script would. No workflow knowledge lives here; that is `seed.rs`, and the rules are the servers'.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::county::Login;

/// One server (hub or node) at its HTTP address.
pub struct Server {
    base: String,
    /// Reports every status instead of failing on 4xx/5xx, so a refusal's Chinese reason can be shown.
    agent: ureq::Agent,
}

/// What the demo reads of a case: the contract's fields only, so richer case JSON never breaks it.
#[derive(Debug, Deserialize)]
pub struct Case {
    pub case_no: String,
    pub item_code: String,
    pub state: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub history: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    pub action: String,
}

#[derive(Deserialize)]
struct Page {
    cases: Vec<Case>,
    next: Option<String>,
}

fn basic(login: Login<'_>) -> String {
    let pair = format!("{}:{}", login.user, login.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

impl Server {
    pub fn new(addr: SocketAddr) -> Server {
        Server {
            base: format!("http://{addr}"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                // A sync session on loopback takes well under a second; a stuck one must not hang the
                // start for ever.
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .into(),
        }
    }

    fn call(
        &self,
        login: Option<Login<'_>>,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut resp = match body {
            None => {
                let mut req = self.agent.get(&url);
                if let Some(l) = login {
                    req = req.header("Authorization", &basic(l));
                }
                req.call()
            }
            Some(b) => {
                let mut req = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                if let Some(l) = login {
                    req = req.header("Authorization", &basic(l));
                }
                req.send(serde_json::to_vec(b)?.as_slice())
            }
        }
        .with_context(|| format!("requesting {url}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer of {url}"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Waits until `/api/health` answers with `role`; bounded, because a server that failed to bind
    /// reports its error on its own task and the start must not wait for it for ever.
    pub fn wait_healthy(&self, role: &str, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Ok((200, health)) = self.call(None, "/api/health", None) {
                if health["role"] == role {
                    return Ok(());
                }
                bail!(
                    "{} answers as {} instead of {role}",
                    self.base,
                    health["role"]
                );
            }
            if start.elapsed() > limit {
                bail!("{} did not answer within {limit:?}", self.base);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every case the server lists to `login`, following the cursors.
    pub fn cases(&self, login: Login<'_>) -> anyhow::Result<Vec<Case>> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let path = format!("/api/cases?limit=500&cursor={cursor}");
            let (status, body) = self.call(Some(login), &path, None)?;
            if status != 200 {
                bail!("{}{path} answered {status}: {body}", self.base);
            }
            let page: Page = serde_json::from_value(body).context("reading a case list")?;
            out.extend(page.cases);
            match page.next {
                Some(next) => cursor = next,
                None => return Ok(out),
            }
        }
    }

    /// One case as this server holds it.
    pub fn case(&self, login: Login<'_>, case_no: &str) -> anyhow::Result<Case> {
        let (status, body) = self.call(Some(login), &format!("/api/cases/{case_no}"), None)?;
        if status != 200 {
            bail!("{} has no case {case_no} ({status}: {body})", self.base);
        }
        serde_json::from_value(body).with_context(|| format!("reading case {case_no}"))
    }

    /// `POST /api/cases/{no}/actions` as `login`; the server applies the workflow's rules.
    pub fn act(&self, login: Login<'_>, case_no: &str, input: &Value) -> anyhow::Result<()> {
        let (status, body) = self.call(
            Some(login),
            &format!("/api/cases/{case_no}/actions"),
            Some(input),
        )?;
        if status != 200 {
            bail!(
                "{} refused {} on {case_no} by {} ({status}: {})",
                self.base,
                input["action"],
                login.user,
                body["error"]
            );
        }
        Ok(())
    }

    /// One sync session of this node with its upstream, run to completion.
    pub fn sync_now(&self, login: Login<'_>) -> anyhow::Result<()> {
        let (status, body) = self.call(Some(login), "/api/sync/now", Some(&Value::Null))?;
        if status != 200 {
            bail!("sync of {} failed ({status}: {})", self.base, body["error"]);
        }
        Ok(())
    }
}
