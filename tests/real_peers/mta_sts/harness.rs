//! The MTA-STS lab tested on its own, with no relay: so a failing cell
//! elsewhere is the relay's, not the lab's.
//!
//! * The policy server, asked by curl (libcurl on OpenSSL) with the lab
//!   CA alone: every scripted answer comes as scripted (status, content
//!   type, size, `Location`); a host scripted with the bad certificate
//!   fails verification; stopped, it refuses connections; restarted, it
//!   answers on the same port; it counted every request.
//! * The receivers, asked by `openssl s_client` (verifying against the lab
//!   CA and the MX host name) and sent a message directly: the good
//!   certificate verifies, the wrong-name one fails on the name only, the
//!   self-signed one on trust only; the proxy hides STARTTLS and passes
//!   mail to its Postfix; each stores what it was sent.

use std::process::Command;
use std::time::Duration;

use super::lab::{lab_port, Certs, Mx, Rx, LAB_CHECK};
use crate::support::dns::DnsServer;
use crate::support::policy_server::{policy, Answer, PolicyServer};
use crate::support::postfix::run_bounded;
use crate::support::smtp::Client;

const KINDS: [Rx; 5] = [
    Rx::Good,
    Rx::WrongName,
    Rx::SelfSigned,
    Rx::Strip,
    Rx::Plain,
];

pub fn addresses() -> Vec<String> {
    super::lab_addresses(KINDS.len())
}

/// `curl` for `https://HOST:PORT/.well-known/mta-sts.txt`, resolved to
/// 127.0.0.1, trusting `ca` only: (exit code, `status content-type
/// size redirect-url`, body).
fn curl(port: u16, host: &str, ca: &std::path::Path) -> (i32, String, String) {
    let body = tempfile::NamedTempFile::new().expect("tempfile");
    let output = run_bounded(
        Command::new("curl")
            .args(["-s", "--max-time", "10", "--cacert"])
            .arg(ca)
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
            .args([
                "-w",
                "%{http_code} %{content_type} %{size_download} %{redirect_url}",
            ])
            .arg("-o")
            .arg(body.path())
            .arg(format!("https://{host}:{port}/.well-known/mta-sts.txt")),
        Duration::from_secs(20),
    );
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
        std::fs::read_to_string(body.path()).unwrap_or_default(),
    )
}

/// curl fetches `mta-sts.lab-check.test` (scripted here) over the lab
/// CA; with `bad`, also a host served the bad certificate, which fails.
pub fn curl_fetch(server: &PolicyServer, certs: &Certs, bad: Option<&str>) {
    let ca = server.dir().join("curl-ca.pem");
    std::fs::write(&ca, certs.ca.pem()).expect("write CA");
    let text = policy("enforce", &["mx.lab-check.test"], 600);
    server.answer(LAB_CHECK, &Answer::policy(&text));
    let before = server.requests(LAB_CHECK);
    let (code, info, body) = curl(server.port, LAB_CHECK, &ca);
    assert_eq!((code, body.as_str()), (0, text.as_str()), "{info}");
    assert!(info.starts_with("200 text/plain "), "{info}");
    assert_eq!(server.requests(LAB_CHECK), before + 1);
    if let Some(host) = bad {
        let (code, info, _) = curl(server.port, host, &ca);
        // 60: peer certificate cannot be authenticated.
        assert_eq!(code, 60, "{host} with the bad certificate: {info}");
    }
}

pub fn run() {
    let certs = Certs::new();
    let names: Vec<String> = ["redirect", "html", "big", "unscripted"]
        .iter()
        .map(|d| format!("mta-sts.{d}.test"))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (chain, key) = certs.policy_chain(&refs);
    let (bad_chain, bad_key) = certs.chain(&["mta-sts.elsewhere.test"]);
    let mut server = PolicyServer::start(
        &chain,
        &key,
        Some((&bad_chain, &bad_key, &["mta-sts.badcert.test"])),
    );
    curl_fetch(&server, &certs, Some("mta-sts.badcert.test"));
    let ca = server.dir().join("curl-ca.pem");

    let body = policy("enforce", &["mx.redirect.test"], 600);
    let mut redirect = Answer::policy(&body);
    redirect.status = 301;
    redirect.location = Some("https://mta-sts.lab-check.test/.well-known/mta-sts.txt".into());
    server.answer("mta-sts.redirect.test", &redirect);
    let (_, info, _) = curl(server.port, "mta-sts.redirect.test", &ca);
    assert_eq!(
        info,
        format!(
            "301 text/plain {} https://mta-sts.lab-check.test/.well-known/mta-sts.txt",
            body.len()
        )
    );
    let mut html = Answer::policy(&body);
    html.content_type = "text/html".into();
    server.answer("mta-sts.html.test", &html);
    let (_, info, _) = curl(server.port, "mta-sts.html.test", &ca);
    assert!(info.starts_with("200 text/html "), "{info}");
    let mut big = Answer::policy(&body);
    big.pad = 70 * 1024;
    server.answer("mta-sts.big.test", &big);
    let (_, info, fetched) = curl(server.port, "mta-sts.big.test", &ca);
    assert!(info.starts_with("200 text/plain "), "{info}");
    assert!(
        fetched.len() > 64 * 1024 && fetched.starts_with(&body),
        "{info}"
    );
    let (_, info, _) = curl(server.port, "mta-sts.unscripted.test", &ca);
    assert!(info.starts_with("404 "), "{info}");
    assert_eq!(server.requests("mta-sts.redirect.test"), 1);
    // Down: refused (curl exit 7); up again on the same port.
    server.stop();
    let (code, info, _) = curl(server.port, LAB_CHECK, &ca);
    assert_eq!(code, 7, "a stopped server: {info}");
    server.restart();
    curl_fetch(&server, &certs, None);

    receivers(&certs);
    dns_swap();
}

/// The raw answer of `server` to a TXT query for `name` (UDP).
fn txt_answer(server: std::net::SocketAddr, name: &str) -> Vec<u8> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).expect("short label"));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 16, 0, 1]);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    socket.send_to(&query, server).expect("send query");
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).expect("a DNS answer");
    buf[..n].to_vec()
}

/// `DnsServer::start_at` serves a changed zone on the old address (the
/// cache test changes the TXT id under a running relay this way).
fn dns_swap() {
    let zone = |id: &str| format!("_mta-sts.swap.test. TXT \"v=STSv1; id={id}\"\n");
    let has = |answer: &[u8], id: &str| {
        let text = format!("v=STSv1; id={id}");
        answer.windows(text.len()).any(|w| w == text.as_bytes())
    };
    let dns = DnsServer::start(&zone("one"));
    let addr = dns.addr;
    assert!(has(&txt_answer(addr, "_mta-sts.swap.test"), "one"));
    drop(dns);
    let _dns = DnsServer::start_at(addr, &zone("two"));
    let answer = txt_answer(addr, "_mta-sts.swap.test");
    assert!(has(&answer, "two") && !has(&answer, "one"), "{answer:?}");
}

/// Each kind of receiver verifies (or not) as meant and stores mail sent
/// to it directly.
fn receivers(certs: &Certs) {
    let port = lab_port();
    let ca = certs.dir.path().join("s_client-ca.pem");
    std::fs::write(&ca, certs.ca.pem()).expect("write CA");
    for (i, rx) in KINDS.iter().enumerate() {
        let (ip, back) = super::lab_address(i);
        let host = format!("mx{i}.harness.test");
        let mx = Mx::start(certs, "harness.test", &host, *rx, (&ip, &back), port);
        let base = mx.settled_connections();
        mx.check(port);
        let verify = match rx {
            Rx::Good => Some("Verify return code: 0 (ok)"),
            Rx::WrongName => Some("Verify return code: 62 (hostname mismatch)"),
            Rx::SelfSigned => Some("Verify return code: 18 (self-signed certificate)"),
            Rx::Strip | Rx::Plain => None,
        };
        if let Some(verify) = verify {
            let output = run_bounded(
                Command::new("openssl")
                    .args(["s_client", "-starttls", "smtp", "-connect"])
                    .arg(mx.addr(port).to_string())
                    .args(["-servername", &host, "-verify_hostname", &host, "-CAfile"])
                    .arg(&ca),
                Duration::from_secs(20),
            );
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(text.contains(verify), "{rx:?}: {text}");
        }
        let (mut client, _) = Client::connect(mx.addr(port));
        client.command("EHLO harness.test");
        let text = format!("Subject: direct\r\n\r\ndirect to {host}\r\n");
        for (line, code) in [
            ("MAIL FROM:<a@sender.test>", "250"),
            ("RCPT TO:<b@harness.test>", "250"),
            ("DATA", "354"),
            (&format!("{text}."), "250"),
        ] {
            let reply = client.command(line);
            assert!(reply.starts_with(code), "{rx:?} {line}: {reply}");
        }
        client.command("QUIT");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !mx
            .delivered()
            .iter()
            .any(|(m, tls)| m.contains(&format!("direct to {host}")) && !tls)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{rx:?} stored nothing:\n{}",
                mx.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let made = 2 + usize::from(verify.is_some());
        assert_eq!(
            mx.settled_connections() - base,
            made,
            "{rx:?}: check, s_client, this one"
        );
        // Postfix logs a session's summary when it ends: wait for it.
        while mx.plaintext().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "{rx:?}: no plaintext mail seen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
