//! A minimal W3C WebDriver client over ureq, enough to drive headless Chromium through chromedriver:
//! sessions, navigation, finding elements, typing, clicking, reading text and screenshots.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Chromedriver {
    child: Child,
    base: String,
}

impl Chromedriver {
    /// Starts chromedriver on a free loopback port and waits until it reports ready.
    pub fn start() -> anyhow::Result<Chromedriver> {
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_string());
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("starting {bin}: install Debian's chromium and chromium-driver packages")
            })?;
        let driver = Chromedriver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        crate::wait_until_up(&format!("{}/status", driver.base), Duration::from_secs(20))?;
        Ok(driver)
    }

    /// A new headless browser session with a 1366×768 window (the agents' screens).
    pub fn session(&self) -> anyhow::Result<Browser> {
        let chromium =
            std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--window-size=1366,768",
                        "--lang=zh-CN"
                    ]
                }
            }}
        });
        let agent = crate::client();
        let value = call(
            &agent,
            "POST",
            &format!("{}/session", self.base),
            Some(caps),
        )?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {value}"))?;
        Ok(Browser {
            agent,
            url: format!("{}/session/{id}", self.base),
            width: std::cell::Cell::new(1366),
        })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut resp = match method {
        "GET" => agent.get(url).call()?,
        "DELETE" => agent.delete(url).call()?,
        _ => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(&body.unwrap_or(json!({})))?.as_slice())?,
    };
    let status = resp.status().as_u16();
    let parsed: Value = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
    if status != 200 {
        bail!("webdriver {method} {url} → {status}: {}", parsed["value"]);
    }
    Ok(parsed["value"].clone())
}

pub struct Browser {
    agent: ureq::Agent,
    url: String,
    /// The window's width in CSS pixels (1366 unless a test asks for another).
    width: std::cell::Cell<u64>,
}

pub struct Element(String);

impl Browser {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        call(&self.agent, method, &format!("{}{path}", self.url), body)
    }

    pub fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))?;
        Ok(())
    }

    pub fn current_url(&self) -> anyhow::Result<String> {
        Ok(self
            .cmd("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub fn find(&self, css: &str) -> anyhow::Result<Element> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        Ok(Element(
            v[ELEMENT_KEY]
                .as_str()
                .ok_or_else(|| anyhow!("no element {css}: {v}"))?
                .to_string(),
        ))
    }

    pub fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str().map(|s| Element(s.to_string())))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let el = self.find(css)?;
        self.cmd("POST", &format!("/element/{}/clear", el.0), Some(json!({})))?;
        self.cmd(
            "POST",
            &format!("/element/{}/value", el.0),
            Some(json!({ "text": text })),
        )?;
        Ok(())
    }

    pub fn click(&self, el: &Element) -> anyhow::Result<()> {
        self.cmd("POST", &format!("/element/{}/click", el.0), Some(json!({})))?;
        Ok(())
    }

    pub fn click_css(&self, css: &str) -> anyhow::Result<()> {
        let el = self.find(css)?;
        self.click(&el)
    }

    /// Clicks something that loads a new page (link, submit button) and returns once the new document
    /// has finished loading. The old document is marked first, so a click that returns before the
    /// navigation starts is not mistaken for its end.
    pub fn click_and_wait(&self, el: &Element) -> anyhow::Result<()> {
        self.script("window.__tongbanOldPage = true; return null;")?;
        self.click(el)?;
        let start = std::time::Instant::now();
        loop {
            let loaded = self
                .script("return window.__tongbanOldPage === undefined && document.readyState === 'complete';")
                .unwrap_or(serde_json::Value::Bool(false));
            if loaded == serde_json::Value::Bool(true) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(15) {
                bail!("page did not load within 15 s after the click");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn click_css_and_wait(&self, css: &str) -> anyhow::Result<()> {
        let el = self.find(css)?;
        self.click_and_wait(&el)
    }

    pub fn text(&self, el: &Element) -> anyhow::Result<String> {
        Ok(self
            .cmd("GET", &format!("/element/{}/text", el.0), None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub fn is_displayed(&self, el: &Element) -> anyhow::Result<bool> {
        Ok(self
            .cmd("GET", &format!("/element/{}/displayed", el.0), None)?
            .as_bool()
            .unwrap_or(false))
    }

    pub fn page_text(&self) -> anyhow::Result<String> {
        let body = self.find("body")?;
        self.text(&body)
    }

    /// Runs a script in the page and returns its value.
    pub fn script(&self, js: &str) -> anyhow::Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": [] })),
        )
    }

    /// Sets the window to `width` × `height` CSS pixels (1093 × 614 is a 1366 × 768 screen at
    /// Windows' 125 % scaling); screenshots keep the width.
    pub fn resize(&self, width: u64, height: u64) -> anyhow::Result<()> {
        self.width.set(width);
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )?;
        Ok(())
    }

    /// Logs in on `base`'s login page as `user`.
    pub fn log_in(&self, base: &str, user: &str, password: &str) -> anyhow::Result<()> {
        self.goto(&format!("{base}/login"))?;
        self.type_into("#user", user)?;
        self.type_into("#password", password)?;
        self.click_css_and_wait("#login-button")
    }

    /// Saves a screenshot of the page as `docs/screens/<name>.png`, where the README links them.
    pub fn screenshot_for_docs(&self, name: &str) -> anyhow::Result<()> {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screens");
        std::fs::create_dir_all(&dir)?;
        self.screenshot(&dir.join(format!("{name}.png")))
    }

    /// Saves a PNG of the whole page (resizing the window to the document height first).
    pub fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let height = self
            .script("return Math.max(document.body.scrollHeight, 768);")?
            .as_u64()
            .unwrap_or(768)
            .min(4000);
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": self.width.get(), "height": height + 120 })),
        )?;
        let b64 = self.cmd("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .context("screenshot is not base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": self.width.get(), "height": 768 })),
        )?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(&self.agent, "DELETE", &self.url, None);
    }
}
