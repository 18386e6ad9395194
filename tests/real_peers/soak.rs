//! The soak (issue 6): Postfix's `smtp-source` sends 20,000 messages in 20
//! sessions through tlsrelay to `smtp-sink` while tlsrelay is SIGKILLed
//! and restarted 5 times. Every message whose `250` a source saw must
//! reach the sink at least once; duplicates are counted and reported.
//!
//! Each session is its own `smtp-source -s 1 -d -v` process, so its
//! verbose log is one dialogue in order and tells exactly which message
//! (a unique recipient, from `-N`) got its `250` after the dot. A source
//! whose connection the kill cut exits; it is started again, against the
//! relay's new port, for what it still has to send.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::postfix::SmtpSink;
use crate::support::relay::{base_config, Relay};

const SESSIONS: usize = 20;
const PER_SESSION: usize = 1_000;
const KILLS: usize = 5;
const DEADLINE: Duration = Duration::from_secs(900);

/// One `smtp-source` session and what it has had acknowledged so far.
struct Source {
    index: usize,
    run: usize,
    child: Option<(Child, PathBuf)>,
    acknowledged: Vec<String>,
}

impl Source {
    fn remaining(&self) -> usize {
        PER_SESSION.saturating_sub(self.acknowledged.len())
    }

    fn spawn(&mut self, relay: &Relay, dir: &Path) {
        let log = dir.join(format!("source-{}-{}.log", self.index, self.run));
        let out = std::fs::File::create(&log).expect("source log");
        let child = Command::new("/usr/sbin/smtp-source")
            .args(["-v", "-N", "-d", "-s", "1", "-l", "1000"])
            .args(["-m", &self.remaining().to_string()])
            .args(["-f", "source@sender.test"])
            .args(["-t", &format!("w{}r{}@example.test", self.index, self.run)])
            .arg(relay.smtp.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("run smtp-source");
        self.run += 1;
        self.child = Some((child, log));
    }

    /// When the running source has exited: take in what its log shows.
    fn reap(&mut self) -> bool {
        let Some((child, log)) = &mut self.child else {
            return true;
        };
        if child.try_wait().ok().flatten().is_none() {
            return false;
        }
        let text = std::fs::read_to_string(&*log).unwrap_or_default();
        self.acknowledged.extend(acknowledged(&text));
        self.child = None;
        true
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some((child, _)) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The recipients whose message got a 2xx after its final dot, from an
/// `smtp-source -v` log of one session.
fn acknowledged(log: &str) -> Vec<String> {
    let mut found = Vec::new();
    let (mut rcpt, mut after_dot) = (None::<String>, false);
    for line in log.lines() {
        // smtp-source names itself by its argv[0], the full path here.
        let Some((_, line)) = line.split_once("smtp-source: ") else {
            continue;
        };
        if let Some(address) = line.strip_prefix("RCPT TO:<") {
            rcpt = Some(address.trim_end_matches('>').to_string());
        } else if line == "." {
            after_dot = true;
        } else if let Some(reply) = line.strip_prefix("<<< ") {
            if after_dot && reply.starts_with('2') {
                found.extend(rcpt.take());
            }
            after_dot = false;
        }
    }
    found
}

/// How often each recipient arrived, from smtp-sink's `X-Rcpt-Args` lines.
#[test]
fn the_source_log_parser_counts_only_messages_acknowledged_after_the_dot() {
    let log = "/usr/sbin/smtp-source: RCPT TO:<1w0r0@example.test>\n\
               /usr/sbin/smtp-source: <<< 250 2.1.5 Ok\n\
               /usr/sbin/smtp-source: DATA\n\
               /usr/sbin/smtp-source: <<< 354 End data\n\
               /usr/sbin/smtp-source: .\n\
               /usr/sbin/smtp-source: <<< 250 2.0.0 Ok: queued as X\n\
               /usr/sbin/smtp-source: RCPT TO:<2w0r0@example.test>\n\
               /usr/sbin/smtp-source: <<< 250 2.1.5 Ok\n\
               /usr/sbin/smtp-source: DATA\n\
               /usr/sbin/smtp-source: <<< 354 End data\n\
               /usr/sbin/smtp-source: .\n\
               /usr/sbin/smtp-source: smtp_get: EOF\n";
    assert_eq!(acknowledged(log), ["1w0r0@example.test"]);
}

fn arrivals(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in sink.messages() {
        for line in message.lines() {
            if let Some(args) = line.strip_prefix("X-Rcpt-Args: ") {
                let address = args.trim().trim_start_matches('<');
                let address = address.split('>').next().unwrap_or_default();
                *counts.entry(address.to_string()).or_default() += 1;
            }
        }
    }
    counts
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn twenty_thousand_messages_through_five_sigkills_lose_nothing_acknowledged() {
    let sink = SmtpSink::start("sink.test", &[]);
    let config = base_config().replace(
        "smarthosts = [\"127.0.0.1:1\"]",
        &format!("smarthosts = [\"{}\"]\ntls = \"none\"", sink.addr()),
    );
    let mut relay = Relay::start_with(&config);
    let logs = tempfile::tempdir().expect("tempdir");
    let mut sources: Vec<Source> = (0..SESSIONS)
        .map(|index| Source {
            index,
            run: 0,
            child: None,
            acknowledged: Vec::new(),
        })
        .collect();
    let start = Instant::now();
    let mut kills = 0;
    let total = SESSIONS * PER_SESSION;
    loop {
        assert!(
            start.elapsed() < DEADLINE,
            "soak did not finish in {DEADLINE:?}"
        );
        let mut running = 0;
        for source in &mut sources {
            if source.reap() && source.remaining() > 0 {
                source.spawn(&relay, logs.path());
            }
            running += usize::from(source.child.is_some());
        }
        let acknowledged: usize = sources.iter().map(|s| s.acknowledged.len()).sum();
        if running == 0 && acknowledged >= total {
            break;
        }
        // Kill when the sink has seen the next sixth of the run.
        if kills < KILLS && sink.count() >= (kills + 1) * total / (KILLS + 1) {
            relay.kill();
            kills += 1;
            eprintln!("soak: SIGKILL {kills} at {:?}", start.elapsed());
            relay.launch();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(kills, KILLS, "the run ended before every kill");

    // Every acknowledged message reaches the sink (bounded wait).
    let acknowledged: Vec<String> = sources
        .iter()
        .flat_map(|s| s.acknowledged.clone())
        .collect();
    assert_eq!(acknowledged.len(), total);
    let deadline = Instant::now() + Duration::from_secs(300);
    let counts = loop {
        let counts = arrivals(&sink);
        let missing = acknowledged
            .iter()
            .filter(|a| !counts.contains_key(*a))
            .count();
        if missing == 0 {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged messages never reached the sink\n{}",
            relay
                .log()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    relay.wait_spool_empty();
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    let unacknowledged_arrivals = counts.len() - acknowledged.len();
    eprintln!(
        "soak: {total} acknowledged, 0 lost, {duplicates} duplicates, {unacknowledged_arrivals} messages cut before their 250 arrived anyway, {KILLS} SIGKILLs, {:?}",
        start.elapsed()
    );
}
