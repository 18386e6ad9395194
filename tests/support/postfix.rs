//! Real Postfix peers for the real-peer suite: a private Postfix instance and
//! an `smtp-sink`, each started by a test on 127.0.0.1 and stopped on drop.
//!
//! What this machine taught us (Debian 12, Postfix 3.7):
//!
//! * Postfix is installed with debconf "No configuration", so there is no
//!   `/etc/postfix/main.cf`. A private instance does not need one: as root,
//!   `postfix -c DIR start-fg` accepts any DIR (`alternate_config_directories`
//!   only matters to the set-gid commands run by non-root users). Tools that
//!   read the default config (`posttls-finger`, `postqueue`) are pointed at
//!   the instance with `MAIL_CONFIG`; see [`Postfix::command`].
//! * Nothing listens on `/dev/log`, and Postfix reports fatal errors only via
//!   syslog by default, so a failed start says nothing. The instance logs to
//!   its own file instead (`maillog_file` through the `postlog` service, with
//!   a matching `maillog_file_prefixes`), and every startup panic quotes it.
//! * The config folder must not contain the queue (`postfix-script` walks the
//!   config folder and warns about every queue folder not owned by root); the
//!   data folder must belong to `postfix` or the master cannot take its lock;
//!   the tempdir must be traversable (0755) by the `postfix` user.
//! * The default `alias_maps` names `/etc/aliases.db` and NIS; both are
//!   cleared so smtpd logs no errors on the first connection.
//! * `postfix start` forks the master away from the test (and PID 1 here does
//!   not reap). `start-fg` keeps it a descendant of the test, so the test owns
//!   what it started; `postfix -c DIR stop` ends it and the child is reaped.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod config;
mod process;
mod sink;

use config::{main_cf, master_cf};

pub use process::{free_port, run_bounded};
use process::{smtp_banner, try_run_bounded, wait_deadline};
// Only the real-peer suite uses the sink; every test binary compiles this.
#[allow(unused_imports)]
pub use sink::SmtpSink;

const POSTFIX: &str = "/usr/sbin/postfix";
/// How long a start may take before the test gives up (a cold start is ~0.3 s).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `postfix stop` and the reaping of what we started may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a private Postfix instance should do. Build it up, then [`Postfix::start`].
#[derive(Clone, Debug)]
pub struct PostfixOptions {
    hostname: String,
    ip: Ipv4Addr,
    smtp_port: Option<u16>,
    tls: Option<(PathBuf, PathBuf)>,
    relayhost: Option<SocketAddr>,
    smtp_tls_security_level: Option<String>,
    mydestination: Vec<String>,
    relay_domains: Vec<String>,
    maildir_domains: Vec<String>,
    main_cf: Vec<(String, String)>,
}

impl Default for PostfixOptions {
    fn default() -> Self {
        Self {
            hostname: "postfix.test".into(),
            ip: Ipv4Addr::LOCALHOST,
            smtp_port: None,
            tls: None,
            relayhost: None,
            smtp_tls_security_level: None,
            mydestination: Vec::new(),
            relay_domains: Vec::new(),
            maildir_domains: Vec::new(),
            main_cf: Vec::new(),
        }
    }
}

impl PostfixOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// `myhostname`: the greeting, EHLO and Received name.
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = name.into();
        self
    }

    /// Listen on `ip` instead of 127.0.0.1 (only inside a network namespace
    /// of the test's own, whose `lo` carries that address), with the port
    /// given by [`PostfixOptions::smtp_port`].
    pub fn listen_ip(mut self, ip: Ipv4Addr) -> Self {
        self.ip = ip;
        self
    }

    /// Listen on this port of 127.0.0.1 (default: a free port).
    pub fn smtp_port(mut self, port: u16) -> Self {
        self.smtp_port = Some(port);
        self
    }

    /// Offer STARTTLS (`smtpd_tls_security_level = may`) with this PEM certificate
    /// (chain, leaf first) and PEM key.
    pub fn starttls(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.tls = Some((cert.as_ref().into(), key.as_ref().into()));
        self
    }

    /// Send everything not delivered here to `[ADDR]:PORT` (no MX lookup).
    pub fn relayhost(mut self, addr: SocketAddr) -> Self {
        self.relayhost = Some(addr);
        self
    }

    /// `smtp_tls_security_level` for outbound mail: `none`, `may`, `encrypt`,
    /// `verify`, `secure`, … (Postfix default: none).
    pub fn smtp_tls_security_level(mut self, level: &str) -> Self {
        self.smtp_tls_security_level = Some(level.into());
        self
    }

    /// Domains Postfix treats as local (`mydestination`); empty by default.
    pub fn mydestination(mut self, domains: &[&str]) -> Self {
        self.mydestination = domains.iter().map(|d| d.to_string()).collect();
        self
    }

    /// Domains Postfix relays for anyone (`relay_domains`). 127.0.0.0/8 is in
    /// `mynetworks`, so local clients may relay anywhere regardless.
    pub fn relay_domains(mut self, domains: &[&str]) -> Self {
        self.relay_domains = domains.iter().map(|d| d.to_string()).collect();
        self
    }

    /// Accept mail for these domains and deliver every recipient into one
    /// maildir in the instance's folder; read it with [`Postfix::delivered`].
    pub fn maildir_domains(mut self, domains: &[&str]) -> Self {
        self.maildir_domains = domains.iter().map(|d| d.to_string()).collect();
        self
    }

    /// Any other `main.cf` setting; later ones win.
    pub fn main_cf(mut self, key: &str, value: &str) -> Self {
        self.main_cf.push((key.into(), value.into()));
        self
    }

    pub fn start(self) -> Postfix {
        Postfix::start(self)
    }
}

/// One smtpd session as its `disconnect` line sums it up.
#[derive(Clone, Debug)]
pub struct SessionSummary {
    /// `ehlo=2`, `starttls=1`, `mail=1`, … (`N/M` when some failed).
    pub counts: Vec<String>,
}

impl SessionSummary {
    /// The session issued `command` (`starttls`, `mail`, `data`, …) at all.
    pub fn has(&self, command: &str) -> bool {
        self.counts
            .iter()
            .any(|c| c.starts_with(&format!("{command}=")))
    }

    /// A mail transaction without TLS: MAIL, and no STARTTLS in the session.
    pub fn plaintext_mail(&self) -> bool {
        self.has("mail") && !self.has("starttls")
    }
}

/// A running private Postfix instance, stopped and removed on drop.
#[derive(Debug)]
pub struct Postfix {
    dir: TempDir,
    ip: Ipv4Addr,
    port: u16,
    child: Option<Child>,
}

impl Postfix {
    /// Panics, quoting Postfix's log, when the instance does not come up.
    pub fn start(options: PostfixOptions) -> Postfix {
        preflight();
        // A port we picked may be taken between picking and binding: pick again.
        let attempts = if options.smtp_port.is_some() { 1 } else { 3 };
        for attempt in 1..=attempts {
            let port = options.smtp_port.unwrap_or_else(free_port);
            match Postfix::start_on(&options, port) {
                Ok(postfix) => return postfix,
                Err(why) if attempt < attempts && why.contains("Address already in use") => {}
                Err(why) => panic!("{why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn start_on(options: &PostfixOptions, port: u16) -> Result<Postfix, String> {
        let dir = tempfile::Builder::new()
            .prefix("tlsrelay-postfix.")
            .tempdir()
            .expect("create tempdir");
        let root = dir.path();
        // The postfix user must reach the spool, data and mail folders.
        set_mode(root, 0o755);
        for sub in ["etc", "spool", "data", "mail"] {
            fs::create_dir(root.join(sub)).expect("create instance folder");
        }
        chown_postfix(&root.join("data"));
        chown_postfix(&root.join("mail"));
        fs::write(root.join("etc/main.cf"), main_cf(root, options)).expect("write main.cf");
        fs::write(root.join("etc/master.cf"), master_cf(options.ip, port))
            .expect("write master.cf");
        fs::write(root.join("maillog"), "").expect("create maillog");

        let out = fs::File::create(root.join("postfix.out")).expect("create postfix.out");
        let child = Command::new(POSTFIX)
            .arg("-c")
            .arg(root.join("etc"))
            .arg("start-fg")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup postfix.out"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {POSTFIX}: {e}"));
        let mut postfix = Postfix {
            dir,
            ip: options.ip,
            port,
            child: Some(child),
        };
        postfix.wait_until_ready()?;
        Ok(postfix)
    }

    pub fn smtp_port(&self) -> u16 {
        self.port
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port))
    }

    /// The instance's folder (`etc/`, `spool/`, `data/`, `mail/`, `maillog`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the instance has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("maillog")).unwrap_or_default()
    }

    /// smtpd's summary of every finished session, from its `disconnect
    /// from … ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7`
    /// log lines, in order.
    pub fn sessions(&self) -> Vec<SessionSummary> {
        self.log()
            .lines()
            .filter_map(|line| line.split_once(": disconnect from "))
            .map(|(_, rest)| SessionSummary {
                counts: rest.split_whitespace().skip(1).map(str::to_owned).collect(),
            })
            .collect()
    }

    /// How many sessions smtpd has begun (`connect from` lines).
    pub fn connections(&self) -> usize {
        self.log().matches(": connect from ").count()
    }

    /// Waits until the log contains `needle`, then returns the log; panics with
    /// the log after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            if Instant::now() > deadline {
                panic!("Postfix did not log {needle:?} within {timeout:?}; its log:\n{log}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A Postfix tool (`posttls-finger`, `postqueue`, `sendmail`, …) reading
    /// this instance's configuration instead of the absent default one.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("MAIL_CONFIG", self.dir().join("etc"));
        command
    }

    /// Deliver deferred mail now (`postqueue -f`).
    pub fn flush(&self) {
        let output = run_bounded(
            self.command("/usr/sbin/postqueue").arg("-f"),
            Duration::from_secs(10),
        );
        assert!(output.status.success(), "postqueue -f: {output:?}");
    }

    /// Messages delivered to the maildir of [`PostfixOptions::maildir_domains`].
    pub fn delivered(&self) -> Vec<String> {
        read_files(&self.dir().join("mail/inbox/new"))
    }

    /// [`Postfix::delivered`] as bytes, for mail that is not UTF-8.
    pub fn delivered_bytes(&self) -> Vec<Vec<u8>> {
        read_files_bytes(&self.dir().join("mail/inbox/new"))
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut();
            if let Some(status) = child.and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                let diagnostics = self.diagnostics();
                return Err(format!(
                    "Postfix exited during startup ({status})\n{diagnostics}"
                ));
            }
            // The master binds its listeners before it logs this line.
            if self.log().contains("daemon started") && smtp_banner(self.smtp_addr()).is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                // Drop stops what did start.
                return Err(format!(
                    "Postfix did not answer on {} within {START_TIMEOUT:?}\n{}",
                    self.smtp_addr(),
                    self.diagnostics()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log and the command's own output, for panic messages.
    fn diagnostics(&self) -> String {
        let out = fs::read_to_string(self.dir().join("postfix.out")).unwrap_or_default();
        format!(
            "--- postfix -c {}/etc start-fg said:\n{out}--- maillog:\n{}",
            self.dir().display(),
            self.log()
        )
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let etc = self.dir().join("etc");
        let mut stop = Command::new(POSTFIX);
        stop.arg("-c").arg(&etc).arg("stop");
        // `postfix stop` waits up to 5 s for the master, then kills its group.
        let stopped = try_run_bounded(&mut stop, STOP_TIMEOUT);
        if !matches!(&stopped, Ok(o) if o.status.success()) {
            eprintln!("postfix stop failed: {stopped:?}");
        }
        if wait_deadline(&mut child, STOP_TIMEOUT).is_none() {
            eprintln!("Postfix in {} did not stop; killing it", etc.display());
            if let Ok(pid) = fs::read_to_string(self.dir().join("spool/pid/master.pid")) {
                // The master leads its own process group: ours, started above.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", pid.trim())])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
fn preflight() {
    if !Path::new(POSTFIX).exists() {
        panic!("{POSTFIX} is missing: the real-peer suite needs Debian's postfix (see .ci/run)");
    }
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        panic!(
            "a private Postfix instance must be started as root (euid {uid}); run .ci/run as root"
        );
    }
}

/// The uid and gid of the `postfix` user, from /etc/passwd.
fn postfix_ids() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postfix") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .expect("no postfix user in /etc/passwd: is postfix installed?")
}

fn chown_postfix(path: &Path) {
    let (uid, gid) = postfix_ids();
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown postfix {}: {e}", path.display()));
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// The UTF-8 files in `dir`, in the order of their names.
fn read_files(dir: &Path) -> Vec<String> {
    read_files_bytes(dir)
        .into_iter()
        .filter_map(|bytes| String::from_utf8(bytes).ok())
        .collect()
}

/// The files in `dir`, in the order of their names.
fn read_files_bytes(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths.iter().filter_map(|p| fs::read(p).ok()).collect()
}

/// The first `Received:` field of a message Postfix stored (LF line ends),
/// with its continuation lines: the one Postfix's smtpd added.
pub fn first_received(message: &str) -> String {
    let mut lines = message.lines().skip_while(|l| !l.starts_with("Received: "));
    let mut field = lines.next().unwrap_or_default().to_string();
    for line in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        field.push('\n');
        field.push_str(line);
    }
    field
}
