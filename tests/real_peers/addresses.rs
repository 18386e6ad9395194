//! Issue 12, items 3 and 12, with real clients: Python's smtplib sends
//! internationalised sender domains under SMTPUTF8 (swaks 20201014 cannot
//! add the SMTPUTF8 parameter), swaks (`--protocol ESMTP`) sends address
//! literals. What the client was told and what the spool holds is the
//! proof.

use std::process::Command;
use std::time::Duration;

use crate::support::postfix::run_bounded;
use crate::support::relay::{base_config_accepting, recipients, Relay};
use crate::{message, run_peer, write_file};

/// One smtplib session from `source` (an address on lo): for each
/// sender, `MAIL FROM:<sender> SMTPUTF8` and the reply code, then RSET;
/// a sender marked `+` is taken on to a whole message for bob@example.test.
const SMTPLIB_SENDERS: &str = r#"
import smtplib, sys
host, port, source, message = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with smtplib.SMTP(host, port, local_hostname="client.python.test", timeout=10,
                  source_address=(source, 0)) as smtp:
    smtp.ehlo()
    for sender in sys.argv[5:]:
        whole = sender.startswith("+")
        sender = sender.lstrip("+")
        code, text = smtp.mail(sender, ["SMTPUTF8"])
        print(code, sender, text.decode("utf-8", "replace"))
        if whole and code == 250:
            code, _ = smtp.rcpt("bob@example.test")
            with open(message, "rb") as f:
                code, text = smtp.data(f.read())
            print("DATA", code, text.decode())
        smtp.rset()
"#;

/// Restricted sender domains (an A-label, an ASCII name) owned by the
/// connector for 127.0.0.2; clients from 127.0.0.1 are anonymous.
const PARTNER: &str = "[[inbound]]\nname = \"partner\"\nremote_ips = [\"127.0.0.2/32\"]\n\
    sender_domains = [\"xn--bcher-kva.test\", \"partner.test\"]\nrestrict_sender_domains = true\n";

fn smtplib_senders(relay: &Relay, source: &str, senders: &[&str]) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = write_file(
        tmp.path(),
        "message.eml",
        message("smtplib, SMTPUTF8").as_bytes(),
    );
    run_peer(
        Command::new("python3")
            .args([
                "-c",
                SMTPLIB_SENDERS,
                "127.0.0.1",
                &relay.smtp.port().to_string(),
            ])
            .args([source, crate::support::arg(&data)])
            .args(senders),
    )
}

#[test]
#[ignore = "real peer: run by .ci/run"]
fn smtplib_unicode_spellings_of_a_restricted_sender_domain_are_refused() {
    let relay = Relay::start(PARTNER);
    let senders = [
        "a@bücher.test",
        "a@ｐａｒｔｎｅｒ.test",
        "a@BÜCHER.test.",
        "a@partner。test",
        "a@elsewhere.test",
    ];
    let transcript = smtplib_senders(&relay, "127.0.0.1", &senders);
    let refused = "550 {} 5.7.1 Sender domain not permitted through this connection";
    for sender in &senders[..4] {
        assert!(
            transcript.contains(&refused.replace("{}", sender)),
            "{sender} should be refused to an anonymous client:\n{transcript}"
        );
    }
    assert!(
        transcript.contains("250 a@elsewhere.test 2.1.0 Ok"),
        "{transcript}"
    );
    // From the owner, the same spellings are the owned domain: accepted,
    // and the envelope keeps the spelling the client used.
    let transcript = smtplib_senders(&relay, "127.0.0.2", &["+a@bücher.test"]);
    assert!(
        transcript.contains("DATA 250 2.0.0 Ok: queued as "),
        "{transcript}"
    );
    let spooled = relay.expect_spooled(1);
    assert_eq!(spooled[0].1.sender, "a@bücher.test");
    assert!(spooled[0].1.smtputf8);
}

/// swaks `--protocol ESMTP` to `postmaster@[127.0.0.1]` (configured as
/// local) from `a@[192.0.2.1]`; to another literal it is told
/// "Relaying denied", and to a bare dotted quad how to write one.
#[test]
#[ignore = "real peer: run by .ci/run"]
fn swaks_sends_to_and_from_address_literals() {
    let relay = Relay::start_with(&base_config_accepting("\"[127.0.0.1]\""));
    let swaks = |from: &str, to: &str| {
        let output = run_bounded(
            Command::new("swaks")
                .args(["--server", &relay.smtp.to_string(), "--timeout", "10"])
                .args(["--protocol", "ESMTP", "--helo", "client.swaks.test"])
                .args(["--from", from, "--to", to]),
            Duration::from_secs(30),
        );
        let transcript = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), transcript)
    };
    let (ok, transcript) = swaks("a@[192.0.2.1]", "postmaster@[127.0.0.1]");
    assert!(ok, "{transcript}");
    assert!(transcript.contains("<-  250 2.1.5 Ok"), "{transcript}");
    let spooled = relay.expect_spooled(1);
    assert_eq!(spooled[0].1.sender, "a@[192.0.2.1]");
    assert_eq!(recipients(&spooled[0].1), ["postmaster@[127.0.0.1]"]);

    let (ok, transcript) = swaks("a@[192.0.2.1]", "bob@[192.0.2.1]");
    assert!(
        !ok && transcript.contains("<** 550 5.7.1 Relaying denied"),
        "{transcript}"
    );
    let (ok, transcript) = swaks("a@[192.0.2.1]", "x@1.2.3.4");
    assert!(
        !ok && transcript.contains(
            "<** 501 5.1.3 Bad recipient address syntax: an IP address is written as an address literal, [1.2.3.4]"
        ),
        "{transcript}"
    );
    let (ok, transcript) = swaks("a@[x-tag:abc]", "postmaster@[127.0.0.1]");
    assert!(
        !ok && transcript.contains("<** 501 5.1.7 Bad address literal: general address literals"),
        "{transcript}"
    );
}
