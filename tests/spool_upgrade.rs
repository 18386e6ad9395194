//! A spool written by the previous release (commit f4fc6a7, before
//! REQUIRETLS) still lists and delivers: the committed fixture
//! `tests/fixtures/spool-f4fc6a7/` (its README says how it was made) is
//! copied, listed with `tlsrelay queue list`, then served by this release
//! with a next hop that takes everything. Every pending recipient arrives
//! with its message byte for byte as the old release stored it (delivery
//! adds no header) and its MAIL and RCPT parameters intact; the recipient
//! the old release had delivered is not sent again.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use support::hostile::{Conn, Hostile};
use support::relay::Relay;
use support::{arg, stderr, stdout, tlsrelay};

/// One message of the fixture.
struct Expected {
    id: &'static str,
    /// The MAIL line the next hop must see: the parameters the old
    /// release's client gave, passed on.
    mail: &'static str,
    /// The RCPT lines, for the recipients still pending.
    rcpts: &'static [&'static str],
    /// Every recipient and its state in `queue list` before the start.
    states: &'static [(&'static str, &'static str)],
}

const EXPECTED: [Expected; 4] = [
    Expected {
        id: "620918DDBFF9000000",
        mail: "MAIL FROM:<alice@sender.test>",
        rcpts: &["RCPT TO:<bob@example.test>"],
        states: &[("bob@example.test", "deferred")],
    },
    Expected {
        id: "620918DDBFF9000001",
        mail: "MAIL FROM:<jürgen@sender.test> BODY=8BITMIME SMTPUTF8",
        rcpts: &["RCPT TO:<josé@example.test>"],
        states: &[("josé@example.test", "deferred")],
    },
    Expected {
        id: "620918DDBFF9000002",
        mail: "MAIL FROM:<alice@sender.test> RET=HDRS ENVID=fixture+2Benvid",
        rcpts: &["RCPT TO:<dsn@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;original+2Brecipient@example.test"],
        states: &[("dsn@example.test", "deferred")],
    },
    Expected {
        id: "620918DDBFF9000003",
        mail: "MAIL FROM:<alice@sender.test>",
        rcpts: &["RCPT TO:<carol@example.test>"],
        states: &[
            ("kept@example.test", "delivered"),
            ("carol@example.test", "deferred"),
        ],
    },
];

/// One transaction the next hop took.
#[derive(Clone, Debug, Default)]
struct Taken {
    mail: String,
    rcpts: Vec<String>,
    content: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A next hop offering what the fixture's messages use (8BITMIME,
/// SMTPUTF8, DSN), so every parameter is passed on; it takes everything
/// and records each transaction.
fn next_hop() -> (Hostile, Arc<Mutex<Vec<Taken>>>) {
    let taken: Arc<Mutex<Vec<Taken>>> = Arc::default();
    let record = taken.clone();
    let hop = Hostile::start(move |conn| {
        let _ = serve(conn, &record);
    });
    (hop, taken)
}

fn serve(conn: &mut Conn, taken: &Mutex<Vec<Taken>>) -> Option<()> {
    conn.hello(
        b"250-next.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n",
    )?;
    let mut current = Taken::default();
    loop {
        let line = conn.line()?;
        let reply: &[u8] = match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
            Some("MAIL") => {
                current = Taken {
                    mail: line,
                    ..Taken::default()
                };
                b"250 2.1.0 ok\r\n"
            }
            Some("RCPT") => {
                current.rcpts.push(line);
                b"250 2.1.5 ok\r\n"
            }
            Some("DATA") => {
                conn.send(b"354 go ahead\r\n").ok()?;
                current.content = conn.content()?;
                lock(taken).push(std::mem::take(&mut current));
                b"250 2.0.0 ok\r\n"
            }
            Some("QUIT") => {
                conn.send(b"221 2.0.0 bye\r\n").ok()?;
                return Some(());
            }
            _ => b"250 2.0.0 ok\r\n",
        };
        conn.send(reply).ok()?;
    }
}

/// Copies the fixture's folder `from` to `to` with the modes the relay
/// gives its spool (0700 folders, 0600 files): git keeps neither.
fn copy_spool(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("spool folder");
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).expect("chmod folder");
    for entry in fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_spool(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy fixture file");
            fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).expect("chmod file");
        }
    }
}

/// The content of a spool file: what follows the format line and the
/// envelope line.
fn stored_content(path: &Path) -> Vec<u8> {
    let file = fs::read(path).expect("read spool file");
    let mut lines = file.splitn(3, |&b| b == b'\n');
    let (_, _, content) = (lines.next(), lines.next(), lines.next());
    content
        .expect("format line, envelope line, content")
        .to_vec()
}

/// `tlsrelay queue ARGS -c CONFIG`, checked to succeed: its stdout.
fn queue(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-c", arg(config)]);
    let out = tlsrelay(&all);
    assert!(out.status.success(), "queue {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The latest `next_attempt` among the fixture's state files.
fn latest_next_attempt(spool: &Path) -> i64 {
    let mut latest = 0;
    for entry in fs::read_dir(spool.join("state")).expect("state folder") {
        let text = fs::read_to_string(entry.expect("state entry").path()).expect("read state");
        let state: serde_json::Value = serde_json::from_str(&text).expect("state JSON");
        latest = latest.max(state["next_attempt"].as_i64().expect("next_attempt"));
    }
    latest
}

/// `queue list` (text and JSON) and `queue show` on the copy, before the
/// start: every message as the old release left it, parameters and
/// recipient states included.
fn assert_listed(config: &Path) {
    let listed: serde_json::Value =
        serde_json::from_str(&queue(config, &["list", "--json"])).expect("list JSON");
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let states: Vec<(String, Vec<String>)> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|e| {
            let recipients = e["recipients"].as_array().expect("recipients");
            let states = recipients
                .iter()
                .map(|r| format!("{} {}", text(&r["address"]), text(&r["state"])))
                .collect();
            (text(&e["id"]), states)
        })
        .collect();
    let want: Vec<(String, Vec<String>)> = EXPECTED
        .iter()
        .map(|m| {
            let states = m.states.iter().map(|(a, s)| format!("{a} {s}")).collect();
            (m.id.to_string(), states)
        })
        .collect();
    assert_eq!(states, want, "{listed:#}");
    let list = queue(config, &["list"]);
    for m in &EXPECTED {
        assert!(list.contains(m.id), "{list}");
    }
    assert!(list.contains("-- 4 message(s)"), "{list}");
    assert!(list.contains("4 recipient(s) pending"), "{list}");
    let show = queue(config, &["show", "620918DDBFF9000002"]);
    assert!(
        show.contains("options:   RET=HDRS ENVID=fixture+envid\n"),
        "{show}"
    );
    assert!(
        show.contains("  deferred   dsn@example.test  NOTIFY=SUCCESS,FAILURE\n"),
        "{show}"
    );
    let show = queue(config, &["show", "620918DDBFF9000001"]);
    assert!(
        show.contains("options:   BODY=8BITMIME SMTPUTF8\n"),
        "{show}"
    );
}

#[test]
fn a_spool_of_the_previous_release_lists_and_delivers() {
    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spool-f4fc6a7/spool");
    let (hop, taken) = next_hop();
    let root = tempfile::tempdir().expect("temp dir");
    let spool = root.path().join("spool");
    copy_spool(&fixture, &spool);
    let config = root.path().join("tlsrelay.toml");
    fs::write(
        &config,
        format!(
            "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
             [[outbound]]\nname = \"next\"\nrecipient_domains = [\"*\"]\nsmarthosts = [\"{}\"]\ntls = \"none\"\n\
             [queue]\nretry_intervals = [\"1s\"]\nmax_age = \"3650d\"\ndelay_warning_after = \"0s\"\n\
             [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n",
            hop.addr
        ),
    )
    .expect("write config");

    assert_listed(&config);

    let stored: Vec<Vec<u8>> = EXPECTED
        .iter()
        .map(|m| stored_content(&spool.join("queue").join(m.id)))
        .collect();
    // A machine whose clock is behind the fixture's making would wait for
    // the old release's next_attempt: make the messages due there with
    // the queue tool, otherwise the relay finds them due on its own.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    if now < latest_next_attempt(&spool) {
        queue(&config, &["retry", "--all"]);
    }

    let relay = Relay::start_installed(root, config, &[env!("CARGO_BIN_EXE_tlsrelay")]);
    relay.wait_spool_empty();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lock(&taken).len() < EXPECTED.len() {
        assert!(
            Instant::now() < deadline,
            "{:?}\n{}",
            lock(&taken),
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let taken = lock(&taken).clone();
    assert_eq!(taken.len(), EXPECTED.len(), "{taken:#?}");
    for (m, content) in EXPECTED.iter().zip(&stored) {
        let got = taken
            .iter()
            .find(|t| t.content.as_bytes() == &content[..])
            .unwrap_or_else(|| panic!("{} not delivered byte for byte: {taken:#?}", m.id));
        let rcpts: Vec<&str> = got.rcpts.iter().map(String::as_str).collect();
        assert_eq!(
            (got.mail.as_str(), rcpts),
            (m.mail, m.rcpts.to_vec()),
            "{}",
            m.id
        );
    }
    // None of the old files was set aside as unreadable.
    let quarantined = fs::read_dir(relay.dir().join("spool/quarantine"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(quarantined, 0, "{}", relay.log());
}
