//! Inbound flow control against real clients: with the backlog at
//! `backlog_limit`, swaks and Postfix's `smtp-source` get `452 4.3.1` at
//! `MAIL`, take it as temporary, and nothing of theirs is spooled.

use std::process::Command;
use std::time::Duration;

use crate::support::flow::{fill_backlog, stalled_relay};
use crate::support::postfix::run_bounded;
use crate::SENDER;

const TEXT: &str = "452 4.3.1 Too much mail is waiting for delivery; try again later";

#[test]
#[ignore = "real peer: run by .ci/run"]
fn swaks_and_smtp_source_get_452_at_mail_past_the_backlog_limit() {
    let (relay, _next_hop) = stalled_relay(4, "0s");
    let (_filler, waits) = fill_backlog(&relay);
    let spooled = relay.spooled().len();
    let server = relay.smtp.to_string();
    let swaks = run_bounded(
        Command::new("swaks")
            .args(["--server", &server, "--timeout", "10"])
            .args(["--helo", "client.swaks.test", "--from", SENDER])
            .args(["--to", "bob@example.test"]),
        Duration::from_secs(30),
    );
    let transcript = String::from_utf8_lossy(&swaks.stdout);
    assert!(
        !swaks.status.success(),
        "swaks took a 452 as success:\n{transcript}"
    );
    assert!(transcript.contains(&format!("<** {TEXT}")), "{transcript}");
    let source = run_bounded(
        Command::new("/usr/sbin/smtp-source")
            .args(["-s", "1", "-m", "1", "-f", SENDER, "-t", "bob@example.test"])
            .arg(&server),
        Duration::from_secs(30),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&source.stdout),
        String::from_utf8_lossy(&source.stderr)
    );
    assert!(
        said.contains(TEXT),
        "smtp-source: {:?}\n{said}",
        source.status
    );
    assert_eq!(relay.spooled().len(), spooled, "nothing more spooled");
    assert!(waits.len() > 64);
}
