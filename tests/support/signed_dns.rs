//! A DNSSEC-signed tree for the DANE tests, built afresh on every run and
//! served by a real authoritative server (nsd) on a loopback port:
//!
//! * `test.`, signed with its own KSK and ZSK: the trust anchor (both
//!   keys go in [`SignedDns::anchor`], as hickory needs; see
//!   ../shared/notes/dane-mtasts-testing.md);
//! * child zones delegated from it, each [`Kind`]: `Secure` (signed, DS in
//!   `test.`), `Insecure` (unsigned, no DS), `Bogus` (signed, DS in
//!   `test.`, signatures that expired in 2020), `BrokenTlsa` (secure, but
//!   every TLSA record altered after signing, so only the TLSA RRset is
//!   bogus).
//!
//! Zones are signed with ldns-signzone (NSEC3, no extra iterations, no
//! salt, RFC 9276) from keys ldns-keygen makes for this run (ECDSA P-256);
//! signatures made now are valid for four weeks, so nothing is kept
//! between runs. Records are zone-file lines relative to the zone (`@ MX
//! 10 mx`, `_25._tcp.mx TLSA 3 1 1 …`), so the tests write TLSA records
//! from the certificates they made for this run. Negative answers carry a
//! 300 s TTL (SOA minimum), long enough for the cache tests.
//!
//! nsd needs a concrete port: one free for UDP and TCP is found by binding
//! port 0 and releasing it; if nsd loses the race for it, it is started
//! again on another (a bounded number of times). nsd runs in the
//! foreground (`-d`) as our child and is stopped by its pid on drop
//! (SIGTERM, so that it takes the server processes it forked along).

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::postfix::run_bounded;

/// How a child zone is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Secure,
    Insecure,
    Bogus,
    BrokenTlsa,
}

/// A child zone of `test.` to build.
struct Zone {
    name: String,
    kind: Kind,
    records: String,
}

/// Builds the tree; [`SignedDnsBuilder::start`] signs it and starts nsd.
#[derive(Default)]
pub struct SignedDnsBuilder {
    zones: Vec<Zone>,
}

impl SignedDnsBuilder {
    /// A child zone `name` (e.g. `secure.test`) with `records`, one per line.
    pub fn zone(mut self, name: &str, kind: Kind, records: &str) -> Self {
        self.zones.push(Zone {
            name: name.trim_end_matches('.').to_string(),
            kind,
            records: records.to_string(),
        });
        self
    }

    pub fn start(self) -> SignedDns {
        let dir = tempfile::tempdir().expect("tempdir for the signed zones");
        let mut delegations = String::new();
        for zone in &self.zones {
            let label = zone
                .name
                .strip_suffix(".test")
                .expect("zones sit under test.");
            let _ = writeln!(delegations, "{label} NS ns1.test.");
            if zone.kind != Kind::Insecure {
                let ksk = sign_child(dir.path(), zone);
                delegations.push_str(&read(&dir.path().join(format!("{ksk}.ds"))));
            } else {
                write_zone(dir.path(), &zone.name, &zone.records);
            }
        }
        let parent = format!("ns1 A 127.0.0.1\n{delegations}");
        write_zone(dir.path(), "test", &parent);
        let (ksk, zsk) = keys(dir.path(), "test");
        sign(dir.path(), "test", &[&zsk, &ksk], &[]);
        let anchor = dir.path().join("anchor.key");
        let keys = read(&dir.path().join(format!("{ksk}.key")))
            + &read(&dir.path().join(format!("{zsk}.key")));
        std::fs::write(&anchor, keys).expect("write the trust anchor");

        let mut zones: Vec<(String, String)> = vec![("test".into(), "test.signed".into())];
        for zone in &self.zones {
            let file = match zone.kind {
                Kind::Insecure => format!("{}.zone", zone.name),
                _ => format!("{}.signed", zone.name),
            };
            zones.push((zone.name.clone(), file));
        }
        let (nsd, addr) = start_nsd(dir.path(), &zones);
        SignedDns {
            addr,
            anchor,
            nsd: Some(nsd),
            _dir: dir,
        }
    }
}

/// The tree, served; nsd stops on drop.
pub struct SignedDns {
    /// Where `[dns] nameservers` should point.
    pub addr: SocketAddr,
    /// The DNSKEYs of `test.`, for `[dns] trust_anchor`.
    pub anchor: PathBuf,
    nsd: Option<Child>,
    _dir: tempfile::TempDir,
}

impl SignedDns {
    pub fn builder() -> SignedDnsBuilder {
        SignedDnsBuilder::default()
    }

    /// Stops nsd now, and waits until nothing answers on its port (to
    /// show that answers come from a cache afterwards). SIGTERM, not
    /// SIGKILL: nsd's main process then stops the server processes it
    /// forked, which a SIGKILL would leave answering for a while.
    pub fn stop(&mut self) {
        self.halt();
        let deadline = Instant::now() + Duration::from_secs(10);
        while answers(self.addr) {
            assert!(
                Instant::now() < deadline,
                "nsd still answers after it stopped"
            );
        }
    }

    fn halt(&mut self) {
        let Some(mut nsd) = self.nsd.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(nsd.id()) {
            // SAFETY: kill(2) on the pid of our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(nsd.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nsd.kill();
        let _ = nsd.wait();
    }
}

impl Drop for SignedDns {
    fn drop(&mut self) {
        self.halt();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write_zone(dir: &Path, origin: &str, records: &str) {
    let text = format!(
        "$ORIGIN {origin}.\n$TTL 300\n\
         @ IN SOA ns1.test. hostmaster.test. 1 3600 600 86400 300\n\
         @ IN NS ns1.test.\n{records}\n"
    );
    std::fs::write(dir.join(format!("{origin}.zone")), text).expect("write zone");
}

/// Runs a DNS tool in `dir` (bounded) and returns its stdout.
fn tool(dir: &Path, program: &str, args: &[&str]) -> String {
    let output = run_bounded(
        Command::new(program).args(args).current_dir(dir),
        Duration::from_secs(30),
    );
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A KSK and a ZSK for `origin`: their base names (`K<origin>.+013+<id>`).
fn keys(dir: &Path, origin: &str) -> (String, String) {
    let ksk = tool(dir, "ldns-keygen", &["-a", "ECDSAP256SHA256", "-k", origin]);
    let zsk = tool(dir, "ldns-keygen", &["-a", "ECDSAP256SHA256", origin]);
    (ksk, zsk)
}

/// Signs `ORIGIN.zone` into `ORIGIN.signed` (NSEC3, 0 iterations, no salt).
fn sign(dir: &Path, origin: &str, keys: &[&str], extra: &[&str]) {
    let zone = format!("{origin}.zone");
    let signed = format!("{origin}.signed");
    let mut args = vec!["-n", "-t", "0", "-o", origin, "-f", &signed];
    args.extend_from_slice(extra);
    args.push(&zone);
    args.extend_from_slice(keys);
    tool(dir, "ldns-signzone", &args);
}

/// Signs a child zone as its kind says; returns its KSK's base name.
fn sign_child(dir: &Path, zone: &Zone) -> String {
    write_zone(dir, &zone.name, &zone.records);
    let (ksk, zsk) = keys(dir, &zone.name);
    let expired: &[&str] = match zone.kind {
        Kind::Bogus => &["-i", "20200101000000", "-e", "20200201000000"],
        _ => &[],
    };
    sign(dir, &zone.name, &[&zsk, &ksk], expired);
    if zone.kind == Kind::BrokenTlsa {
        let path = dir.join(format!("{}.signed", zone.name));
        let broken: String = read(&path)
            .lines()
            .map(|line| match line.split_whitespace().nth(3) {
                // name TTL IN TLSA u s m DATA: flip the data's last digit.
                Some("TLSA") => {
                    let flipped = match line.chars().last() {
                        Some('0') => '1',
                        _ => '0',
                    };
                    format!("{}{flipped}\n", &line[..line.len() - 1])
                }
                _ => format!("{line}\n"),
            })
            .collect();
        std::fs::write(&path, broken).expect("rewrite the signed zone");
    }
    ksk
}

/// A port free on 127.0.0.1 for both UDP and TCP, released for nsd to take.
fn free_dns_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().expect("UDP local_addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no 127.0.0.1 port free for both UDP and TCP in 50 tries");
}

fn start_nsd(dir: &Path, zones: &[(String, String)]) -> (Child, SocketAddr) {
    let mut last_log = String::new();
    for _ in 0..5 {
        let port = free_dns_port();
        let conf = nsd_conf(dir, port, zones);
        let log = dir.join("nsd.log");
        let mut child = Command::new("nsd")
            .args(["-d", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nsd (Debian package nsd)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if wait_answering(&mut child, addr) {
            return (child, addr);
        }
        let _ = child.kill();
        let _ = child.wait();
        last_log = std::fs::read_to_string(&log).unwrap_or_default();
    }
    panic!("nsd did not start in 5 tries; its log:\n{last_log}");
}

fn nsd_conf(dir: &Path, port: u16, zones: &[(String, String)]) -> PathBuf {
    let d = dir.display();
    let mut text = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  username: \"\"\n  chroot: \"\"\n\
         \x20 database: \"\"\n  zonesdir: \"{d}\"\n  zonelistfile: \"{d}/zone.list\"\n\
         \x20 pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n\
         \x20 logfile: \"{d}/nsd.log\"\n  server-count: 1\n  verbosity: 1\n\
         remote-control:\n  control-enable: no\n"
    );
    for (name, file) in zones {
        let _ = writeln!(text, "zone:\n  name: \"{name}.\"\n  zonefile: \"{file}\"");
    }
    let path = dir.join("nsd.conf");
    std::fs::write(&path, text).expect("write nsd.conf");
    path
}

/// Asks `test. SOA` over UDP until nsd answers (bounded), or it exits.
fn wait_answering(child: &mut Child, addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        if answers(addr) {
            return true;
        }
    }
    false
}

/// Whether a DNS server answers `test. SOA` at `addr` within 100 ms.
fn answers(addr: SocketAddr) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a query socket");
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    // id 0x5445, RD, one question: test. SOA IN.
    let query = b"\x54\x45\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04test\x00\x00\x06\x00\x01";
    let mut reply = [0u8; 512];
    let _ = socket.send_to(query, addr);
    matches!(socket.recv_from(&mut reply), Ok((n, _)) if n >= 12 && reply[..2] == query[..2])
}
