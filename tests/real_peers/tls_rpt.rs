//! TLS-RPT end to end (RFC 8460, issue 16): the relay delivers to a TLS
//! receiver of a domain that publishes `_smtp._tls` with a mailto and an
//! https `rua`, and to a receiver of another domain that offers no
//! STARTTLS (its report must carry `failure-details`); it is restarted
//! in the middle of the day, then restarted
//! with its report clock past the day's end (`TLSRELAY_TEST_CLOCK_OFFSET`).
//! The report must reach an https collector (Python's `ssl`, a CA of the
//! test's) and, through the relay's own queue, a mail receiver; Python's
//! `gzip`, `json` and `email` modules, not our code, take both apart, and
//! the counts must equal the TLS sessions the receiver saw.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::version::{TLS12, TLS13};
use serde_json::Value;

use super::support::ca::{Key, Spec, TestCa};
use super::support::dns::DnsServer;
use super::support::receiver::Receiver;
use super::support::relay::{mx_config, Relay};
use super::support::smtp::submit;
use super::support::tls_receiver::{AfterTls, TlsReceiver};
use super::support::{arg, stderr, stdout, tlsrelay};

/// An https collector: saves each POST as N.body and N.meta (path and
/// content type, written last) in the folder given.
const COLLECTOR: &str = r#"
import http.server, json, os, ssl, sys
root, cert, key = sys.argv[1:4]
class Collect(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        n = len([f for f in os.listdir(root) if f.endswith(".meta")])
        with open(os.path.join(root, f"{n}.body"), "wb") as f:
            f.write(body)
        meta = {"path": self.path, "content_type": self.headers.get("Content-Type")}
        with open(os.path.join(root, f"{n}.meta"), "w") as f:
            json.dump(meta, f)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collect)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("READY", server.server_address[1], flush=True)
server.serve_forever()
"#;

/// Takes a report mail apart with Python's `email`, and a report body
/// with `gzip` and `json`; prints what it found as JSON.
const PARSE: &str = r#"
import email, email.policy, gzip, json, sys
kind, path = sys.argv[1:3]
raw = open(path, "rb").read()
if kind == "post":
    print(json.dumps({"report": json.loads(gzip.decompress(raw))}))
    sys.exit(0)
message = email.message_from_bytes(raw, policy=email.policy.default)
parts = [p for p in message.walk() if not p.is_multipart()]
attachments = [p for p in parts if p.get_content_type() == "application/tlsrpt+gzip"]
assert len(attachments) == 1, [p.get_content_type() for p in parts]
print(json.dumps({
    "content_type": message.get_content_type(),
    "report_type": message.get_param("report-type"),
    "domain": message["TLS-Report-Domain"],
    "submitter": message["TLS-Report-Submitter"],
    "tls_required": message["TLS-Required"],
    "subject": message["Subject"],
    "parts": [p.get_content_type() for p in parts],
    "filename": attachments[0].get_filename(),
    "report": json.loads(gzip.decompress(attachments[0].get_content())),
}))
"#;

struct Collector {
    child: Child,
    port: u16,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collector(dir: &Path, cert: &Path, key: &Path) -> Collector {
    let posts = dir.join("posts");
    std::fs::create_dir_all(&posts).expect("posts folder");
    let mut child = Command::new("python3")
        .args(["-c", COLLECTOR])
        .args([&posts, cert, key])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the python collector");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("collector stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("READY line");
    let port = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("collector said {line:?}"));
    Collector { child, port }
}

fn parse(kind: &str, path: &Path) -> Value {
    let out = Command::new("python3")
        .args(["-c", PARSE, kind])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python could not take the {kind} apart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser output is JSON")
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const SENDER: &str = "alice@relay.example.test";

fn send(relay: &Relay, n: usize) {
    for i in 0..n {
        let content = format!("Subject: report test {i}\r\n\r\nmessage {i}\r\n");
        submit(
            relay.smtp,
            SENDER,
            &["bob@a.test", "carol@b.test"],
            &content,
        );
    }
}

/// The POSTed reports, by policy domain, once `n` have arrived.
fn posted(posts: &Path, n: usize) -> Vec<(Value, Value)> {
    let meta = |i: usize| posts.join(format!("{i}.meta"));
    wait_for(
        "the POSTs at the collector",
        Duration::from_secs(60),
        || meta(n - 1).exists(),
    );
    (0..n)
        .map(|i| {
            let bytes = std::fs::read(meta(i)).expect("meta");
            let meta: Value = serde_json::from_slice(&bytes).expect("meta json");
            let body = posts.join(format!("{i}.body"));
            (meta, parse("post", &body)["report"].clone())
        })
        .collect()
}

fn domain_of(report: &Value) -> &str {
    report["policies"][0]["policy"]["policy-domain"]
        .as_str()
        .unwrap_or_default()
}

#[test]
#[ignore = "real-peer suite: python3 (ssl, email); run by .ci/run"]
fn a_days_report_reaches_the_https_collector_and_the_mailbox_with_the_sessions_made() {
    let work = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::root("TLS-RPT test CA", Key::P256);
    let issued = ca.leaf(&Spec::new(&["collector.reports.test"], Key::P256));
    let (cert, key) = (work.path().join("c.pem"), work.path().join("c.key"));
    std::fs::write(&cert, &issued.cert_pem).expect("cert");
    std::fs::write(&key, &issued.key_pem).expect("key");
    let collector = collector(work.path(), &cert, &key);

    // a.test's MX on 127.0.0.2, reports.test's on 127.0.0.3, same port.
    let listener = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let port = listener.local_addr().expect("addr").port();
    let versions = [&TLS13, &TLS12];
    let mx = TlsReceiver::on(listener, "mx.a.test", &versions, AfterTls::Serve);
    let reports_addr: SocketAddr = format!("127.0.0.3:{port}").parse().expect("addr");
    let mailbox = TlsReceiver::start(reports_addr, "mx.reports.test", &versions, AfterTls::Serve);
    // b.test's MX on 127.0.0.4 offers no STARTTLS.
    let plain = Receiver::start(format!("127.0.0.4:{port}").parse().expect("addr"));

    let rua = format!(
        "mailto:tlsrpt@reports.test,https://collector.reports.test:{}/v1/tlsrpt",
        collector.port
    );
    let dns = DnsServer::start(&format!(
        "a.test. MX 10 mx.a.test.\nmx.a.test. A 127.0.0.2\n\
         _smtp._tls.a.test. TXT \"v=TLSRPTv1; rua={rua}\"\n\
         b.test. MX 10 mx.b.test.\nmx.b.test. A 127.0.0.4\n\
         _smtp._tls.b.test. TXT \"v=TLSRPTv1; rua=https://collector.reports.test:{}/b\"\n\
         reports.test. MX 10 mx.reports.test.\nmx.reports.test. A 127.0.0.3\n\
         collector.reports.test. A 127.0.0.1\n",
        collector.port
    ));
    let config = format!(
        "{}[mta_sts]\nca_file = \"ca.pem\"\n\
         [tls_rpt]\nenabled = true\norganization_name = \"Test Org\"\n\
         contact_info = \"mailto:postmaster@relay.example.test\"\nsubmitter = \"relay.example.test\"\n",
        mx_config(port, dns.addr)
    );
    let mut relay = Relay::start_with_files(&config, &[("ca.pem", ca.pem())]);

    send(&relay, 3);
    mx.wait_until("3 messages", |s| {
        s.iter().map(|s| s.messages.len()).sum::<usize>() == 3
    });
    // A restart in the middle of the day loses no count.
    relay.terminate();
    relay.launch();
    send(&relay, 2);
    let sessions = mx.wait_until("5 messages", |s| {
        s.iter().map(|s| s.messages.len()).sum::<usize>() == 5
    });
    let made = sessions.iter().filter(|s| s.version.is_some()).count();
    assert!(made >= 2, "a restart means a new session: {made}");
    let seen = plain.wait_until("5 plaintext messages", |s| s.delivered().len() == 5);
    let plain_sessions = seen.connections;

    // The report clock past the end of today and the 4 h spread.
    relay.terminate();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let midnight = (now / 86_400 + 1) * 86_400;
    let offset = midnight - now + 4 * 3600 + 60;
    relay.set_env("TLSRELAY_TEST_CLOCK_OFFSET", &offset.to_string());
    relay.launch();

    let posts = work.path().join("posts");
    let reports = posted(&posts, 2);
    let (meta, posted) = (reports.iter())
        .find(|(_, r)| domain_of(r) == "a.test")
        .cloned()
        .unwrap_or_else(|| panic!("no report for a.test: {reports:?}"));
    assert_eq!(meta["path"], "/v1/tlsrpt");
    assert_eq!(meta["content_type"], "application/tlsrpt+gzip");
    let (meta_b, report_b) = (reports.iter())
        .find(|(_, r)| domain_of(r) == "b.test")
        .cloned()
        .unwrap_or_else(|| panic!("no report for b.test: {reports:?}"));
    assert_eq!(meta_b["path"], "/b");
    assert_eq!(meta_b["content_type"], "application/tlsrpt+gzip");
    let policy_b = &report_b["policies"][0];
    assert_eq!(policy_b["policy"]["policy-type"], "no-policy-found");
    assert_eq!(policy_b["summary"]["total-successful-session-count"], 0);
    assert_eq!(
        policy_b["summary"]["total-failure-session-count"], plain_sessions as u64,
        "every session to the receiver without STARTTLS: {report_b}"
    );
    let details = policy_b["failure-details"]
        .as_array()
        .expect("failure-details");
    assert_eq!(details.len(), 1, "{report_b}");
    let detail = &details[0];
    assert_eq!(detail["result-type"], "starttls-not-supported");
    assert_eq!(detail["sending-mta-ip"], "127.0.0.1");
    assert_eq!(detail["receiving-mx-hostname"], "mx.b.test");
    assert_eq!(detail["receiving-ip"], "127.0.0.4");
    assert_eq!(detail["failed-session-count"], plain_sessions as u64);

    let mail = mailbox.wait_until("the report mail", |s| {
        s.iter().any(|s| !s.messages.is_empty())
    });
    let mail: Vec<&String> = mail.iter().flat_map(|s| &s.messages).collect();
    assert_eq!(mail.len(), 1, "one report mail");
    let raw = work.path().join("mail.eml");
    std::fs::write(&raw, mail[0]).expect("write mail");
    let mail = parse("mail", &raw);
    assert_eq!(mail["content_type"], "multipart/report");
    assert_eq!(mail["report_type"], "tlsrpt");
    assert_eq!(mail["domain"], "a.test");
    assert_eq!(mail["submitter"], "relay.example.test");
    assert_eq!(mail["tls_required"], "No");
    assert_eq!(mail["parts"][0], "text/plain");
    let day_start = midnight - 86_400;
    assert_eq!(
        mail["filename"],
        format!(
            "relay.example.test!a.test!{day_start}!{}.json.gz",
            midnight - 1
        )
    );
    assert_eq!(mail["report"], posted, "the same report both ways");

    let report = &posted;
    assert_eq!(report["organization-name"], "Test Org");
    assert_eq!(
        report["contact-info"],
        "mailto:postmaster@relay.example.test"
    );
    assert!(report["report-id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let range = &report["date-range"];
    let day = time::OffsetDateTime::from_unix_timestamp(day_start as i64).expect("day");
    let day = format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        day.month() as u8,
        day.day()
    );
    assert_eq!(range["start-datetime"], format!("{day}T00:00:00Z"));
    assert_eq!(range["end-datetime"], format!("{day}T23:59:59Z"));
    let policies = report["policies"].as_array().expect("policies");
    assert_eq!(policies.len(), 1, "{report}");
    let policy = &policies[0];
    assert_eq!(policy["policy"]["policy-type"], "no-policy-found");
    assert_eq!(policy["policy"]["policy-domain"], "a.test");
    assert_eq!(
        policy["summary"]["total-successful-session-count"], made as u64,
        "every TLS session the receiver saw, across the restart: {report}"
    );
    assert_eq!(policy["summary"]["total-failure-session-count"], 0);

    // The report mail's own session is not counted.
    let config_path = relay.dir().join("tlsrelay.toml");
    let out = tlsrelay(&["tls-rpt", "show", "--day", &day, "-c", arg(&config_path)]);
    assert!(out.status.success(), "tls-rpt show: {}", stderr(&out));
    let shown: Value = serde_json::from_str(&stdout(&out)).expect("tls-rpt show is JSON");
    let domains: Vec<&Value> = shown
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| &r["policies"][0]["policy"]["policy-domain"])
        .collect();
    assert_eq!(domains, vec!["a.test", "b.test"], "{shown}");
    // Sent once: a restart sends nothing again.
    relay.terminate();
    relay.launch();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!posts.join("2.meta").exists(), "posted twice");
    let log = relay.log();
    assert!(log.contains("\"result\":\"posted\""), "{log}");
    assert!(log.contains("\"result\":\"queued\""), "{log}");
}
