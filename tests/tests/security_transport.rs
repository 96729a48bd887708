//! Issue 12, finding 1 (cleartext on the LAN), shown against running processes: the web app over
//! HTTPS as an independent TLS client (openssl, curl) sees it, plain HTTP refused beyond loopback,
//! and enrolment by certificate request, so that no node's private key crosses the network.

use std::process::Command;

use serde_json::{json, Value};
use tongban_tests::*;

const VILLAGE: &str = "420222100201";

/// `openssl s_client` against `port` with extra arguments; its whole output (stdout and stderr).
fn s_client(port: &str, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn port_of(url: &str) -> String {
    url.rsplit(':').next().unwrap_or_default().to_string()
}

/// curl over HTTPS trusting only the county CA: `(status line + headers, body)`.
fn curl(ca: &std::path::Path, args: &[&str], url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "--cacert"])
        .arg(ca)
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) => (head.to_string(), body.to_string()),
        None => (text, String::new()),
    }
}

/// The hub's HTTPS port offers TLS 1.2 and 1.3 only, with a certificate chain to the county CA; over
/// it the session cookie is `Secure` and answers carry HSTS. Before this issue there was no HTTPS.
#[test]
fn the_hub_serves_https_with_tls_1_2_or_newer_and_the_county_chain() {
    let dir = tempfile::tempdir().unwrap();
    let hub =
        HubProcess::serve_with(dir.path(), "127.0.0.1:0", &["--https", "127.0.0.1:0"]).unwrap();
    let https = hub
        .https
        .clone()
        .expect("the hub says where it serves HTTPS");
    let port = port_of(&https);
    let ca = dir.path().join("tls").join("ca.pem");
    let ca_arg = ca.to_str().unwrap();

    for version in ["-tls1_2", "-tls1_3"] {
        let out = s_client(&port, &[version, "-CAfile", ca_arg]);
        assert!(
            out.contains("Verify return code: 0 (ok)"),
            "{version}: {out}"
        );
        assert!(
            out.contains("depth=1") && out.contains("tongban 420222"),
            "{out}"
        );
    }
    assert!(s_client(&port, &["-tls1_2", "-CAfile", ca_arg]).contains("Protocol  : TLSv1.2"));
    // The client offers TLS 1.1 (security level 0 lets it); the server ends the handshake.
    let old = s_client(&port, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(old.contains("Cipher is (NONE)"), "{old}");
    assert!(old.contains("alert"), "{old}");

    let (head, _) = curl(
        &ca,
        &[
            "--data",
            &format!("user=admin&password={HUB_ADMIN_PASSWORD}&next=%2F"),
        ],
        &format!("https://localhost:{port}/login"),
    );
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{head}"
    );
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("a login answers a cookie: {head}"));
    assert!(cookie.contains("; secure"), "{cookie}");
    assert!(cookie.contains("httponly"), "{cookie}");

    // The CA and how to install it, in Chinese, without logging in; the same file is in the install.
    let (_, page) = curl(&ca, &[], &format!("https://localhost:{port}/ca"));
    assert!(page.contains("受信任的根证书颁发机构"), "{page}");
    let fingerprint =
        tongban_runtime::tls::fingerprint(&std::fs::read_to_string(&ca).unwrap()).unwrap();
    assert!(page.contains(&fingerprint));
    let (_, pem) = curl(&ca, &[], &format!("https://localhost:{port}/ca.pem"));
    assert_eq!(pem, std::fs::read_to_string(&ca).unwrap());
    let howto =
        std::fs::read_to_string(dir.path().join("ca-install").join("安装说明.txt")).unwrap();
    assert!(howto.contains(&fingerprint));
}

/// Plain HTTP on an address other PCs reach is refused at start, by hub and node alike, unless HTTPS
/// is there to redirect to; nothing is bound. Before this issue the deploy guide said `0.0.0.0:8080`.
#[test]
fn plain_http_beyond_loopback_is_refused_without_https() {
    let hub_dir = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    let (ok, _, err) = hub_cmd(&[
        "serve",
        "--data",
        hub_dir.path().to_str().unwrap(),
        "--http",
        "0.0.0.0:0",
        "--quic",
        "127.0.0.1:0",
    ])
    .unwrap();
    assert!(!ok);
    assert!(err.contains("--https"), "{err}");

    let node_dir = tempfile::tempdir().unwrap();
    init_node(node_dir.path()).unwrap();
    let (ok, _, err) = node_cmd(&[
        "serve",
        "--data",
        node_dir.path().to_str().unwrap(),
        "--http",
        "0.0.0.0:0",
    ])
    .unwrap();
    assert!(!ok);
    assert!(err.contains("--https"), "{err}");
}

/// `POST /api/nodes` used to answer the node's private key. Now it needs the node's certificate
/// request and answers certificates only; the key stays where `tongban-node csr` made it (0600), and
/// the node enrolled that way syncs. A request made for another code is refused. The command-line
/// bundle with a key (USB stick) says it is secret and is readable by its owner only.
#[test]
fn no_private_key_crosses_the_network_at_enrolment() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let admin = basic_auth("admin", HUB_ADMIN_PASSWORD);
    let enrol = |body: Value| {
        let mut resp = client()
            .post(hub.url("/api/nodes"))
            .header("Authorization", &admin)
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(&body).unwrap().as_slice())
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.body_mut().read_to_string().unwrap())
    };
    let request =
        json!({"code": VILLAGE, "name": "请求村", "tier": "village", "upstream": hub.quic});
    let (status, body) = enrol(request.clone());
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("证书请求"), "{body}");

    let station = tempfile::tempdir().unwrap();
    let data = station.path().join("node");
    let csr = station.path().join("req.pem");
    let (ok, _, err) = node_cmd(&[
        "csr",
        "--data",
        data.to_str().unwrap(),
        "--code",
        VILLAGE,
        "--out",
        csr.to_str().unwrap(),
    ])
    .unwrap();
    assert!(ok, "{err}");
    let csr_pem = std::fs::read_to_string(&csr).unwrap();
    assert!(csr_pem.contains("BEGIN CERTIFICATE REQUEST") && !csr_pem.contains("PRIVATE KEY"));
    let key = data.join("tls").join("node.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the node's key is its owner's only");
    }

    let mut other = request.clone();
    other["code"] = "420222100202".into();
    other["csr"] = csr_pem.clone().into();
    let (status, body) = enrol(other);
    assert_eq!(
        status, 422,
        "a request made for {VILLAGE} is not signed for another code: {body}"
    );

    let mut with_csr = request;
    with_csr["csr"] = csr_pem.into();
    let (status, body) = enrol(with_csr);
    assert_eq!(status, 201, "{body}");
    assert!(
        !body.contains("PRIVATE KEY"),
        "the answer holds no key: {body}"
    );
    let bundle = station.path().join("bundle.json");
    std::fs::write(&bundle, &body).unwrap();
    init_node_from_bundle(&data, &bundle).unwrap();
    let node = NodeProcess::serve_with(&data, &["--sync-interval", "3600"]).unwrap();
    let (status, answer) =
        post_json(&client(), &node.url("/api/sync/now"), &Value::Null, None).unwrap();
    assert_eq!(status, 200, "the node enrolled by request syncs: {answer}");

    // The USB-stick path keeps its key, marked and private.
    let usb = station.path().join("usb.json");
    drop(hub);
    let (ok, _, err) = hub_cmd(&[
        "enroll",
        "--data",
        hub_dir.path().to_str().unwrap(),
        "--code",
        "420222100203",
        "--name",
        "U盘村",
        "--tier",
        "village",
        "--upstream",
        "127.0.0.1:4433",
        "--out",
        usb.to_str().unwrap(),
    ])
    .unwrap();
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&usb).unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert!(parsed["secret"].as_str().unwrap().contains("private key"));
    assert!(parsed["node"]["key_pem"]
        .as_str()
        .unwrap()
        .contains("PRIVATE KEY"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&usb).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// Finding 6: node certificates end (3 years), so a node renews its own before then, and its key
/// still never leaves the PC: `renew --out` makes the next key and a request, the county signs it
/// with `replace`, `renew --bundle` installs the answer. The certificate in use keeps working until
/// the county has signed; from then on only the new one is accepted.
#[test]
fn a_node_renews_its_certificate_and_the_one_it_replaced_is_refused() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = HubProcess::serve(hub_dir.path(), "127.0.0.1:0").unwrap();
    let village = hub.enrolled_village(VILLAGE).unwrap();
    let data = village.path().join("node");
    let data_arg = path_str(&data).unwrap().to_string();
    let node = NodeProcess::serve(&data).unwrap();
    assert_eq!(node.sync_now().0, 200);

    let request = village.path().join("renew.csr");
    let (ok, out, err) = node_cmd(&[
        "renew",
        "--data",
        &data_arg,
        "--out",
        path_str(&request).unwrap(),
    ])
    .unwrap();
    assert!(ok, "{out}{err}");
    assert_eq!(
        node.sync_now().0,
        200,
        "the certificate in use works until the county signs"
    );
    let csr = std::fs::read_to_string(&request).unwrap();
    assert!(csr.contains("CERTIFICATE REQUEST") && !csr.contains("PRIVATE KEY"));

    let mut resp = client()
        .post(hub.url("/api/nodes"))
        .header("Authorization", &basic_auth("admin", HUB_ADMIN_PASSWORD))
        .header("Content-Type", "application/json")
        .send(
            serde_json::to_vec(&json!({
                "code": VILLAGE, "name": "测试村", "tier": "village",
                "upstream": hub.quic, "csr": csr, "replace": true,
            }))
            .unwrap()
            .as_slice(),
        )
        .unwrap();
    let body = resp.body_mut().read_to_string().unwrap();
    assert_eq!(resp.status(), 201, "{body}");
    let answer = village.path().join("renewed.json");
    std::fs::write(&answer, &body).unwrap();

    let (status, refused) = node.sync_now();
    assert_eq!(
        status, 503,
        "the replaced certificate is refused: {refused}"
    );
    drop(node);
    let (ok, out, err) = node_cmd(&[
        "renew",
        "--data",
        &data_arg,
        "--bundle",
        path_str(&answer).unwrap(),
    ])
    .unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("valid until"), "{out}");
    let node = NodeProcess::serve(&data).unwrap();
    let (status, body) = node.sync_now();
    assert_eq!(status, 200, "the new certificate syncs: {body}");
    let (ok, _, err) = node_cmd(&[
        "renew",
        "--data",
        &data_arg,
        "--bundle",
        path_str(&answer).unwrap(),
    ])
    .unwrap();
    assert!(!ok && err.contains("no renewal is under way"), "{err}");
}

/// Finding 7: the running hub read the county CA key (web enrolment and the web certificate signed
/// with it), so whoever took over the web process held the county's identity. Now the hub serves,
/// enrols nodes and syncs with the key gone from the PC; the signing commands (`web-cert`, `renew`)
/// refuse without it and take it from where the operator keeps it (`--ca-key`, a USB stick); a web
/// name the certificate lacks stops the start with the command that issues it.
#[test]
fn the_running_hub_works_without_the_county_ca_key_which_only_the_signing_commands_read() {
    let hub_dir = tempfile::tempdir().unwrap();
    let stick = tempfile::tempdir().unwrap();
    HubProcess::init(hub_dir.path()).unwrap();
    let tls = hub_dir.path().join("tls");
    let key_on_stick = stick.path().join("ca.key");
    std::fs::copy(tls.join("ca.key"), &key_on_stick).unwrap();
    std::fs::remove_file(tls.join("ca.key")).unwrap();
    let data = path_str(hub_dir.path()).unwrap().to_string();
    let stick_key = path_str(&key_on_stick).unwrap().to_string();

    let hub =
        HubProcess::serve_with(hub_dir.path(), "127.0.0.1:0", &["--https", "127.0.0.1:0"]).unwrap();
    let quic = hub.quic.clone();
    let village = hub.enrolled_village(VILLAGE).unwrap();
    let node = NodeProcess::serve(&village.path().join("node")).unwrap();
    assert_eq!(
        node.sync_now().0,
        200,
        "enrolled and syncing without the CA key"
    );
    drop(hub);

    let err = HubProcess::serve_with(
        hub_dir.path(),
        &quic,
        &["--https", "127.0.0.1:0", "--web-name", "10.9.8.7"],
    )
    .err()
    .expect("a web name the certificate lacks stops the start")
    .to_string();
    assert!(
        err.contains("tongban-hub web-cert") && err.contains("10.9.8.7"),
        "{err}"
    );
    let (ok, _, err) = hub_cmd(&["web-cert", "--data", &data, "--web-name", "10.9.8.7"]).unwrap();
    assert!(!ok);
    assert!(err.contains("--ca-key"), "{err}");
    let (ok, out, err) = hub_cmd(&[
        "web-cert",
        "--data",
        &data,
        "--web-name",
        "10.9.8.7",
        "--ca-key",
        &stick_key,
    ])
    .unwrap();
    assert!(ok, "{out}{err}");
    let before = std::fs::read_to_string(tls.join("hub.pem")).unwrap();
    let (ok, out, err) = hub_cmd(&["renew", "--data", &data, "--ca-key", &stick_key]).unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("sync certificate until"), "{out}");
    assert_ne!(
        std::fs::read_to_string(tls.join("hub.pem")).unwrap(),
        before
    );
    assert!(!tls.join("ca.key").exists(), "the key stays on the stick");

    let hub = HubProcess::serve_with(
        hub_dir.path(),
        &quic,
        &["--https", "127.0.0.1:0", "--web-name", "10.9.8.7"],
    )
    .unwrap();
    assert_eq!(
        node.sync_now().0,
        200,
        "the node trusts the renewed hub certificate"
    );
    let (status, audit) = get_json_as(
        &client(),
        &hub.url("/api/audit"),
        &basic_auth("admin", HUB_ADMIN_PASSWORD),
    )
    .unwrap();
    assert_eq!(status, 200);
    let done: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["what"].as_str())
        .collect();
    assert!(
        done.contains(&"cert.web") && done.contains(&"cert.renewed"),
        "{done:?}"
    );
}
