//! A real HTTPS server for MTA-STS policies (RFC 8461 §3.3): Python's
//! `http.server` on OpenSSL (`policy_server.py` beside this file), a TLS
//! stack other than the relay's rustls. It listens on 127.0.0.1 port 0
//! (the relay reaches it through `[mta_sts] https_port`), answers each
//! `mta-sts.DOMAIN` as the test scripted it ([`Answer`]: a policy, a
//! 404, a redirect, a wrong content type, an oversize body), can serve a
//! certificate that does not name one host, and counts every request per
//! host. [`PolicyServer::stop`] takes it down (connections refused) and
//! [`PolicyServer::restart`] brings it back on the same port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the server answers for one host.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
    /// Bytes of `ext: xxx…` lines appended to the body.
    pub pad: usize,
    /// A `Location` header (redirects).
    pub location: Option<String>,
}

impl Answer {
    /// 200, `text/plain`, `body`.
    pub fn policy(body: &str) -> Answer {
        Answer {
            status: 200,
            content_type: "text/plain".into(),
            body: body.into(),
            pad: 0,
            location: None,
        }
    }

    fn json(&self) -> String {
        let mut value = serde_json::json!({
            "status": self.status,
            "content_type": self.content_type,
            "body": self.body,
            "pad": self.pad,
        });
        if let Some(location) = &self.location {
            value["location"] = location.as_str().into();
        }
        value.to_string()
    }
}

/// The policy text (CRLF line ends) of `mode` with `mx` patterns.
pub fn policy(mode: &str, mx: &[&str], max_age: u64) -> String {
    let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
    for pattern in mx {
        text.push_str(&format!("mx: {pattern}\r\n"));
    }
    text.push_str(&format!("max_age: {max_age}\r\n"));
    text
}

pub struct PolicyServer {
    pub port: u16,
    root: tempfile::TempDir,
    args: Vec<PathBuf>,
    bad_names: Vec<String>,
    child: Option<Child>,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl PolicyServer {
    /// Serves `cert_pem` (chain) with `key_pem`; a client whose SNI is
    /// one of `bad_names` gets `bad` (chain, key) instead.
    pub fn start(cert_pem: &str, key_pem: &str, bad: Option<(&str, &str, &[&str])>) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let file = |name: &str, text: &str| {
            let path = root.path().join(name);
            std::fs::write(&path, text).expect("write policy server file");
            path
        };
        let mut args = vec![
            file("policy_server.py", include_str!("policy_server.py")),
            root.path().join("answers"),
            file("cert.pem", cert_pem),
            file("key.pem", key_pem),
        ];
        std::fs::create_dir(&args[1]).expect("answers folder");
        let mut bad_names = Vec::new();
        if let Some((chain, key, names)) = bad {
            args.push(file("bad.pem", chain));
            args.push(file("bad.key", key));
            bad_names = names.iter().map(|n| n.to_string()).collect();
        }
        let mut server = PolicyServer {
            port: 0,
            root,
            args,
            bad_names,
            child: None,
            requests: Arc::default(),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let mut child = Command::new("python3")
            .arg("-u")
            .args(&self.args)
            .args(&self.bad_names)
            .env("PORT", self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run python3 policy_server.py");
        let stdout = child.stdout.take().expect("stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let requests = self.requests.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut words = line.split_whitespace();
                match (words.next(), words.next(), words.next()) {
                    (Some("READY"), Some(port), _) => {
                        let _ = ready_tx.send(port.parse::<u16>().unwrap_or(0));
                    }
                    (Some("REQUEST"), Some(host), path) => lock(&requests)
                        .push((host.to_string(), path.unwrap_or_default().to_string())),
                    _ => {}
                }
            }
        });
        self.child = Some(child);
        let port = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("policy server not READY within 20 s: {e}"));
        assert!(port != 0, "policy server printed no port");
        self.port = port;
    }

    /// Scripts what `host` (`mta-sts.DOMAIN`) gets from now on.
    pub fn answer(&self, host: &str, answer: &Answer) {
        let dir = self.args[1].clone();
        let tmp = dir.join(format!(".{host}.tmp"));
        std::fs::write(&tmp, answer.json()).expect("write answer");
        std::fs::rename(&tmp, dir.join(format!("{host}.json"))).expect("rename answer");
    }

    /// Requests so far for `host`.
    pub fn requests(&self, host: &str) -> usize {
        lock(&self.requests)
            .iter()
            .filter(|(h, _)| h == host)
            .count()
    }

    /// Every request so far: (host, path).
    pub fn all_requests(&self) -> Vec<(String, String)> {
        lock(&self.requests).clone()
    }

    /// Waits (bounded, 10 s) until `host` was asked `n` times.
    pub fn wait_requests(&self, host: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.requests(host) < n {
            assert!(
                Instant::now() < deadline,
                "{host} asked {} times, not {n}",
                self.requests(host)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Down: the process (ours) is killed; connections are refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Up again on the same port, with the same answers.
    pub fn restart(&mut self) {
        if self.child.is_none() {
            self.launch();
        }
    }

    /// The folder holding the server's files.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.stop();
    }
}
