//! A real `tlsrelay serve` process for tests: its own folder, config,
//! certificate and spool; listeners on 127.0.0.1 port 0, found from its
//! JSON log; killed (by pid, the process we started) on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tlsrelay::queue::envelope::Envelope;
use tlsrelay::queue::spool::SpoolView;
use tlsrelay::queue::state::{DeliveryState, StateStore};

/// The `[server]`, `[tls]` and routing lines every test relay starts from;
/// `{DIR}` is the relay's folder. Tests append sections or override keys
/// by passing their own text to [`Relay::start_with`].
pub fn base_config() -> String {
    "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
     [tls]\ncert = \"relay.crt\"\nkey = \"relay.key\"\ngenerate_if_missing = true\n\
     [relay]\naccepted_domains = [\"example.test\"]\n\
     [[outbound]]\nname = \"internal\"\nrecipient_domains = [\"example.test\"]\nsmarthosts = [\"127.0.0.1:1\"]\n\
     [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
        .to_string()
}

/// [`base_config`] with `also` (TOML strings, e.g. `"[127.0.0.1]"`)
/// accepted and routed to the internal smarthost like example.test.
pub fn base_config_accepting(also: &str) -> String {
    base_config()
        .replace(
            "accepted_domains = [\"example.test\"]",
            &format!("accepted_domains = [\"example.test\", {also}]"),
        )
        .replace(
            "recipient_domains = [\"example.test\"]",
            &format!("recipient_domains = [\"example.test\", {also}]"),
        )
}

/// A relay that routes every domain by MX lookup (no outbound
/// connector): it relays for loopback clients (the `lan` connector), asks
/// only the name server at `nameserver`, reaches MX hosts on `mx_port`
/// (they listen on 127.0.0.x) and retries every second. Tests add keys
/// with [`with_keys`].
pub fn mx_config(mx_port: u16, nameserver: SocketAddr) -> String {
    format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [queue]\nretry_intervals = [\"1s\"]\n\
         [delivery]\nmx_port = {mx_port}\nconnect_timeout = \"2s\"\n{}",
        super::dns::dns_section(nameserver)
    )
}

/// `config` with `keys` (`key = value` lines) added to its first
/// `[section]`, which must not already have them.
pub fn with_keys(config: &str, section: &str, keys: &str) -> String {
    let header = format!("[{section}]\n");
    assert!(config.contains(&header), "no [{section}] in {config}");
    config.replacen(&header, &format!("{header}{keys}\n"), 1)
}

/// The envelope's recipient addresses, in RCPT order.
pub fn recipients(envelope: &Envelope) -> Vec<&str> {
    envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect()
}

pub struct Relay {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The STARTTLS-capable SMTP listener.
    pub smtp: SocketAddr,
    /// The implicit-TLS listener, when configured.
    pub implicit_tls: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    /// Extra environment for the process (NOTIFY_SOCKET, …).
    env: Vec<(String, String)>,
    /// The soft RLIMIT_NOFILE the process starts with, when not inherited.
    open_file_limit: Option<u64>,
    /// The umask the process starts with, when not inherited.
    umask: Option<u32>,
    /// The configuration file: `tlsrelay.toml` in `dir` unless installed.
    config: PathBuf,
    /// The program and the arguments before tlsrelay's own: the built
    /// binary, or a wrapper such as `setpriv … /ROOT/usr/local/bin/tlsrelay`.
    program: Vec<String>,
}

impl Relay {
    /// A relay on [`base_config`] plus `extra` (more sections).
    pub fn start(extra: &str) -> Relay {
        Relay::start_with(&format!("{}{extra}", base_config()))
    }

    /// A relay on [`base_config`] with more `[server]` keys (`server`, one
    /// `key = value` a line, none of those in the base) plus `extra`.
    pub fn start_server(server: &str, extra: &str) -> Relay {
        let config = with_keys(&base_config(), "server", server);
        Relay::start_with(&format!("{config}{extra}"))
    }

    /// A relay on exactly `config`.
    pub fn start_with(config: &str) -> Relay {
        Relay::start_with_files(config, &[])
    }

    /// A relay on exactly `config`, with `files` (name, contents) written
    /// into its folder first, for the paths the config names.
    pub fn start_with_files(config: &str, files: &[(&str, &str)]) -> Relay {
        Relay::start_with_env(config, files, &[])
    }

    /// Like [`Relay::start_with_files`], with `env` set for the process.
    pub fn start_with_env(config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Relay {
        Relay::start_full(config, files, env, None, None)
    }

    /// A relay on exactly `config` whose process starts with `umask`.
    pub fn start_with_umask(config: &str, umask: u32) -> Relay {
        Relay::start_full(config, &[], &[], None, Some(umask))
    }

    /// A relay on exactly `config` whose process starts with a soft
    /// open-file limit of `soft` (the hard one is inherited), as a
    /// login session's default would give it.
    pub fn start_with_open_file_limit(config: &str, soft: u64) -> Relay {
        Relay::start_full(config, &[], &[], Some(soft), None)
    }

    fn start_full(
        config: &str,
        files: &[(&str, &str)],
        env: &[(&str, &str)],
        open_file_limit: Option<u64>,
        umask: Option<u32>,
    ) -> Relay {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("tlsrelay.toml"), config).expect("write config");
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).expect("write relay file");
        }
        let config = dir.path().join("tlsrelay.toml");
        let mut relay = Relay::prepared(
            dir,
            config,
            vec![env!("CARGO_BIN_EXE_tlsrelay").to_string()],
        );
        relay.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        relay.open_file_limit = open_file_limit;
        relay.umask = umask;
        relay.launch();
        relay
    }

    /// A relay not started yet: `config` in `dir`, run by `program`, with
    /// the environment, limits and umask it inherits.
    fn prepared(dir: tempfile::TempDir, config: PathBuf, program: Vec<String>) -> Relay {
        Relay {
            child: None,
            dir,
            smtp: "127.0.0.1:1".parse().expect("addr"),
            implicit_tls: None,
            log: Arc::default(),
            env: Vec::new(),
            open_file_limit: None,
            umask: None,
            config,
            program,
        }
    }

    /// A relay installed as a service would be: `config` (in `root`, which
    /// is removed on drop) run by `program`, e.g. a `setpriv` wrapper
    /// ending with the installed binary. Waits for its listeners.
    pub fn start_installed(root: tempfile::TempDir, config: PathBuf, program: &[&str]) -> Relay {
        let program = program.iter().map(|a| a.to_string()).collect();
        let mut relay = Relay::prepared(root, config, program);
        relay.launch();
        relay
    }

    /// Sets `key` in the environment of the next [`Relay::launch`].
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Starts the process on the relay's folder and waits for its listeners.
    pub fn launch(&mut self) {
        // Only this start's log lines count: after a restart the previous
        // process's `listening` lines name ports nobody listens on.
        let first_line = self.log.lock().expect("log lock").len();
        let config = std::fs::read_to_string(&self.config).unwrap_or_default();
        let wants_implicit = config.contains("listen_implicit_tls = [\"");
        let mut command = Command::new(&self.program[0]);
        command.args(&self.program[1..]);
        if let Some(mask) = self.umask {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask is async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    libc::umask(mask as libc::mode_t);
                    Ok(())
                });
            }
        }
        if let Some(soft) = self.open_file_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let mut limit = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    limit.rlim_cur = soft.min(limit.rlim_max);
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .args(["--log-format", "json", "--log-level", "info", "serve", "-c"])
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tlsrelay serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().expect("log lock").push(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (smtp, implicit) = self.listening(first_line);
            // Each listener logs its own line; wait for all the config names.
            if let (Some(smtp), true) = (smtp, implicit.is_some() || !wants_implicit) {
                self.smtp = smtp;
                self.implicit_tls = implicit;
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tlsrelay exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tlsrelay did not listen within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The addresses of the `listening` log lines from line `first_line` on.
    fn listening(&self, first_line: usize) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let log = self.log.lock().expect("log lock");
        let mut smtp = None;
        let mut implicit = None;
        for line in log.iter().skip(first_line) {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let fields = &event["fields"];
            if fields["message"] != "listening" {
                continue;
            }
            let address = fields["address"].as_str().and_then(|a| a.parse().ok());
            match fields["mode"].as_str() {
                Some("implicit-tls") => implicit = implicit.or(address),
                _ => smtp = smtp.or(address),
            }
        }
        (smtp, implicit)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The relay's own certificate (PEM), to trust in clients.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("relay.crt")
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// The committed messages in the spool, oldest first.
    pub fn spooled(&self) -> Vec<(String, Envelope, Vec<u8>)> {
        spooled_in(&self.dir.path().join("spool"))
    }

    /// True while message `id` is in the queue (in a segment or a file).
    pub fn queued(&self, id: &str) -> bool {
        tlsrelay::queue::spool::SpoolView::open(&self.dir.path().join("spool"))
            .is_ok_and(|view| view.contains(id))
    }

    /// Writes message `id` into the spool of the stopped relay, in the
    /// spool's format, as a run before would have left it: for envelopes
    /// no SMTP client of the tests can make.
    pub fn put_spooled(&self, id: &str, envelope: &Envelope, content: &str) {
        let head = serde_json::to_string(envelope).expect("envelope as JSON");
        let file = self.dir.path().join("spool/queue").join(id);
        std::fs::write(file, format!("tlsrelay-spool 1\n{head}\n{content}")).expect("spool file");
    }

    /// Every file in the spool's `queue/` and `state/` folders, `.tmp`
    /// ones included, and every message in its segments (as
    /// `segments/ID`): what sessions and deliveries left there.
    pub fn spool_files(&self) -> Vec<String> {
        let mut files: Vec<String> = spooled_in(&self.dir.path().join("spool"))
            .into_iter()
            .map(|(id, _, _)| format!("segments/{id}"))
            .filter(|name| {
                let id = name.trim_start_matches("segments/");
                !self.dir.path().join("spool/queue").join(id).exists()
            })
            .collect();
        for folder in ["queue", "state"] {
            let path = self.dir.path().join("spool").join(folder);
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                files.push(format!("{folder}/{}", entry.file_name().to_string_lossy()));
            }
        }
        files
    }

    /// Waits (bounded) until the spool holds `n` messages.
    pub fn wait_for_spooled(&self, n: usize) -> Vec<(String, Envelope, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spooled = self.spooled();
            if spooled.len() >= n || Instant::now() > deadline {
                return spooled;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) for the spool to hold `n` messages, and checks it
    /// holds exactly that many.
    pub fn expect_spooled(&self, n: usize) -> Vec<(String, Envelope, Vec<u8>)> {
        let spooled = self.wait_for_spooled(n);
        assert_eq!(
            spooled.len(),
            n,
            "spooled messages; relay log:\n{}",
            self.log()
        );
        spooled
    }

    /// The delivery state saved for queued message `id` (after its first
    /// attempt), as `queue show` reads it.
    pub fn state(&self, id: &str) -> Option<DeliveryState> {
        let view = SpoolView::open(&self.dir.path().join("spool")).ok()?;
        StateStore::reader(&view).load(id)
    }

    /// Waits (bounded, 20 s) until message `id` has a saved state for
    /// which `done` holds; that state.
    pub fn wait_for_state(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&DeliveryState) -> bool,
    ) -> DeliveryState {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(state) = self.state(id).filter(|s| done(s)) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never reached {what}: {:?}\n{}",
                self.state(id),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded, 20 s) until the spool is empty: every message done.
    pub fn wait_spool_empty(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.spooled().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the spool still holds mail:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL: the crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn terminate(&mut self) -> ExitStatus {
        self.sigterm();
        self.wait_exit()
    }

    /// Sends SIGTERM to the relay process (the one we started), no waiting.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// SIGHUP: reload the configuration.
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// Sends `kill -NAME` to the relay process (the one we started).
    fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("relay running");
        let status = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", child.id());
    }

    /// Waits (bounded) until the log has `needle` in `n` lines; the lines.
    pub fn wait_for_log(&self, needle: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines: Vec<String> = self
                .log
                .lock()
                .expect("log lock")
                .iter()
                .filter(|l| l.contains(needle))
                .cloned()
                .collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "no {n} log lines with {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) for the relay to exit; its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("relay running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "tlsrelay did not stop within 60 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The queued messages of the spool at `spool` (segments and files),
/// oldest first, as `tlsrelay queue` reads them; nothing when there is no
/// spool (yet).
pub fn spooled_in(spool: &Path) -> Vec<(String, Envelope, Vec<u8>)> {
    let Ok(view) = tlsrelay::queue::spool::SpoolView::open(spool) else {
        return Vec::new();
    };
    view.ids()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|id| {
            let (envelope, content) = view.read(&id).ok()?;
            Some((id, envelope, content))
        })
        .collect()
}
