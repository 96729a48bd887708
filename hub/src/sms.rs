//! Texts to applicants through an SMS gateway over HTTP(S): `serve --sms-url … --sms-key-file …`.
//!
//! One `POST` of JSON per message, with the key as `Authorization: Bearer <key>`:
//!
//! ```json
//! {"phone": "13800271234", "template_id": "SMS_1001", "kind": "accepted",
//!  "params": {"case_no": "…", "text": "…"}, "text": "…", "message_id": 42}
//! ```
//!
//! `message_id` is the outbox id and stays the same on every retry, so that the gateway can drop a
//! repeat of a message it already took (the hub may not have heard its answer). Any 2xx answer is
//! success; any other status, a timeout or a connection error is a failed attempt, retried by
//! [`crate::notify`]. HTTPS uses rustls on *ring* with the Mozilla root certificates built in.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tongban_runtime::store::county::OutboxMessage;

use crate::notify::{masked_phone, Sender};

/// The kinds of text the workflow queues (`tongban_shared::workflow::applicant_notice`): the only
/// names `--sms-templates` takes, so that a misspelt kind is a startup error rather than texts
/// without a template.
pub const KINDS: &[&str] = &[
    "accepted",
    "correction",
    "rejected",
    "denied",
    "fee_due",
    "result_ready",
];

/// How long one request to the gateway may take in all, and to connect.
pub const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Of a refusal's body, this much goes into the message's `last_error`.
const ERROR_BODY_CHARS: usize = 200;

/// The gateway, checked at startup.
#[derive(Clone)]
pub struct SmsConfig {
    pub url: String,
    key: String,
    /// Template id per message kind; a kind without one is sent with `"template_id": null`.
    pub templates: BTreeMap<String, String>,
}

impl std::fmt::Debug for SmsConfig {
    /// Without the key: a config printed in an error or a log must not reveal it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("url", &self.url)
            .field("templates", &self.templates)
            .finish_non_exhaustive()
    }
}

impl SmsConfig {
    /// `--sms-url`, `--sms-key-file`, `--sms-templates`; every problem is a sentence for the operator.
    pub fn from_options(
        url: &str,
        key_file: &Path,
        templates: Option<&str>,
    ) -> Result<SmsConfig, String> {
        check_url(url)?;
        let key = read_key(key_file)?;
        let templates = templates.map(parse_templates).transpose()?;
        Ok(SmsConfig {
            url: url.to_string(),
            key,
            templates: templates.unwrap_or_default(),
        })
    }
}

/// An absolute http:// or https:// URL with a host and no user name or password in it (the key file
/// is the one place for a secret: a URL ends up in logs and process lists).
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("--sms-url {url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "--sms-url {url:?} must start with http:// or https://"
            ))
        }
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("--sms-url {url:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(
            "--sms-url must not carry a user name or password: put the key in --sms-key-file"
                .into(),
        );
    }
    if authority.host().is_empty() {
        return Err(format!("--sms-url {url:?} has no host"));
    }
    Ok(())
}

/// The key is the file's first line, trimmed.
fn read_key(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--sms-key-file {}: {e}", path.display()))?;
    let key = text.lines().next().unwrap_or_default().trim();
    if key.is_empty() {
        return Err(format!(
            "--sms-key-file {}: the first line (the gateway's API key) is empty",
            path.display()
        ));
    }
    // It goes into an HTTP header: a control character would break (or forge) the request.
    if key.chars().any(|c| c.is_control()) {
        return Err(format!(
            "--sms-key-file {}: the key holds a control character",
            path.display()
        ));
    }
    Ok(key.to_string())
}

/// `accepted=SMS_1,correction=SMS_2`: template id per kind (see [`KINDS`]).
pub fn parse_templates(spec: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((kind, id)) = pair.split_once('=') else {
            return Err(format!(
                "--sms-templates: {pair:?} is not KIND=TEMPLATE_ID (e.g. accepted=SMS_1001)"
            ));
        };
        let (kind, id) = (kind.trim(), id.trim());
        if !KINDS.contains(&kind) {
            return Err(format!(
                "--sms-templates: unknown message kind {kind:?}; the kinds are {}",
                KINDS.join(", ")
            ));
        }
        if id.is_empty() || id.chars().any(|c| c.is_control()) {
            return Err(format!(
                "--sms-templates: the template id for {kind} is empty or holds a control character"
            ));
        }
        if out.insert(kind.to_string(), id.to_string()).is_some() {
            return Err(format!("--sms-templates: {kind} is given twice"));
        }
    }
    if out.is_empty() {
        return Err("--sms-templates is empty; leave it out to send no template ids".into());
    }
    Ok(out)
}

/// Posts each message to the gateway.
pub struct HttpSmsSender {
    agent: ureq::Agent,
    url: String,
    authorization: String,
    templates: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Request<'a> {
    phone: &'a str,
    template_id: Option<&'a str>,
    kind: &'a str,
    params: Params<'a>,
    text: &'a str,
    message_id: u64,
}

#[derive(Serialize)]
struct Params<'a> {
    case_no: &'a str,
    text: &'a str,
}

impl HttpSmsSender {
    pub fn new(config: SmsConfig) -> HttpSmsSender {
        let agent = ureq::Agent::config_builder()
            // Every status comes back as an answer, so that its code and body make the reason.
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            // A gateway that redirects is misconfigured; following it would post the applicant's
            // text somewhere nobody configured.
            .max_redirects(0)
            .user_agent(concat!("tongban-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpSmsSender {
            agent,
            authorization: format!("Bearer {}", config.key),
            url: config.url,
            templates: config.templates,
        }
    }
}

impl Sender for HttpSmsSender {
    fn name(&self) -> &'static str {
        "sms-http"
    }

    fn send(&self, msg: &OutboxMessage) -> Result<(), String> {
        let body = Request {
            phone: &msg.phone,
            template_id: self.templates.get(&msg.kind).map(String::as_str),
            kind: &msg.kind,
            params: Params {
                case_no: &msg.case_no,
                text: &msg.text,
            },
            text: &msg.text,
            message_id: msg.id,
        };
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.authorization)
            .send_json(&body)
            .map_err(describe_error)?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let answer = resp
            .body_mut()
            .with_config()
            .limit(16 * 1024)
            .read_to_string()
            .unwrap_or_default();
        Err(format!(
            "短信网关答复 HTTP {status}{}",
            excerpt(&answer, &msg.phone)
        ))
    }
}

/// A transport failure as staff read it in the outbox.
fn describe_error(e: ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("短信网关在{}秒内没有答复（{e}）", TIMEOUT.as_secs()),
        ureq::Error::HostNotFound => "找不到短信网关的主机（域名解析失败）".to_string(),
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) => {
            format!("连不上短信网关：{e}")
        }
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => {
            format!("与短信网关的 HTTPS 连接失败：{e}")
        }
        other => format!("请求短信网关失败：{other}"),
    }
}

/// The start of a refusal's body on one line, with the applicant's number masked (gateways like to
/// echo the request).
fn excerpt(body: &str, phone: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let masked = if phone.is_empty() {
        one_line
    } else {
        one_line.replace(phone, &masked_phone(phone))
    };
    let mut short: String = masked.chars().take(ERROR_BODY_CHARS).collect();
    if short.is_empty() {
        return String::new();
    }
    if masked.chars().count() > ERROR_BODY_CHARS {
        short.push('…');
    }
    format!("：{short}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_known_kinds_once() {
        let t = parse_templates("accepted=SMS_1, correction = SMS_2,").unwrap();
        assert_eq!(t.get("accepted").map(String::as_str), Some("SMS_1"));
        assert_eq!(t.get("correction").map(String::as_str), Some("SMS_2"));
        for bad in [
            "accepted",
            "acepted=SMS_1",
            "accepted=",
            "accepted=1,accepted=2",
            "",
        ] {
            assert!(parse_templates(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn only_plain_gateway_urls_pass() {
        assert!(check_url("http://127.0.0.1:9000/send").is_ok());
        assert!(check_url("https://sms.example.cn/v1/send").is_ok());
        for bad in [
            "ftp://example.cn/",
            "example.cn/send",
            "http://user:pw@example.cn/",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_key_is_the_first_line_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "  s3cret \nsecond line\n").unwrap();
        let config = SmsConfig::from_options("http://127.0.0.1:1/", &file, None).unwrap();
        assert_eq!(config.key, "s3cret");
        assert!(!format!("{config:?}").contains("s3cret"));
        std::fs::write(&file, "\n").unwrap();
        assert!(SmsConfig::from_options("http://127.0.0.1:1/", &file, None).is_err());
        assert!(
            SmsConfig::from_options("http://127.0.0.1:1/", &dir.path().join("none"), None).is_err()
        );
    }

    /// HTTPS runs on the *ring* provider (a missing provider would panic here, at the first request),
    /// and a server that does not speak TLS is a failed attempt with a reason, not a crash.
    #[test]
    fn an_https_gateway_that_does_not_speak_tls_is_a_failed_attempt() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut buf = [0u8; 512];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "k\n").unwrap();
        let url = format!("https://127.0.0.1:{port}/send");
        let sender = HttpSmsSender::new(SmsConfig::from_options(&url, &file, None).unwrap());
        let msg: OutboxMessage = serde_json::from_value(serde_json::json!({
            "id": 1, "case_no": "YX1", "phone": "13800271234", "kind": "accepted", "text": "t",
            "created_at": "2026-11-27T09:00:00+08:00", "sent_at": null, "sender": null
        }))
        .unwrap();
        let e = sender.send(&msg).unwrap_err();
        assert!(!e.contains("13800271234"), "{e}");
        assert!(e.contains("短信网关"), "{e}");
    }

    #[test]
    fn a_refusal_is_quoted_short_and_without_the_number() {
        let e = excerpt("{\"error\": \"bad number 13800271234\"}\n", "13800271234");
        assert_eq!(e, "：{\"error\": \"bad number 138****1234\"}");
        assert!(excerpt(&"x".repeat(500), "1").chars().count() < 210);
        assert_eq!(excerpt("  ", "1"), "");
    }
}
