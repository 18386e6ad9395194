//! Limits answer with the RFC reply (DESIGN.md §4): never a hang, a crash
//! or a message that should not be there.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::relay::{recipients, Relay};
use support::smtp::{assert_queued, Client};

const TOO_BIG: &str = "552 5.3.4 Message size exceeds fixed maximum message size\r\n";

#[test]
fn oversized_messages_get_552_at_mail_and_after_data_and_are_not_spooled() {
    let relay = Relay::start_server("max_message_size = \"10KiB\"", "");
    let (mut c, _) = Client::connect(relay.smtp);
    assert!(c.ehlo().contains("250-SIZE 10240\r\n"));
    assert_eq!(
        c.command("MAIL FROM:<alice@sender.test> SIZE=10241"),
        TOO_BIG
    );
    // The announced size was a lie: the content itself is too large.
    assert_eq!(
        c.command("MAIL FROM:<alice@sender.test> SIZE=10240"),
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.command("RCPT TO:<bob@example.test>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    let line = format!("{}\r\n", "x".repeat(98));
    c.send(b"Subject: big\r\n\r\n");
    for _ in 0..110 {
        c.send(line.as_bytes());
    }
    assert_eq!(c.command("."), TOO_BIG);
    // The session goes on, and a message within the limit is taken.
    let reply = c.deliver(
        "alice@sender.test",
        &["bob@example.test"],
        "Subject: small\r\n\r\nfits\r\n",
    );
    assert_queued(&reply);
    let spooled = relay.expect_spooled(1);
    assert!(spooled[0].2.ends_with(b"Subject: small\r\n\r\nfits\r\n"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(relay.spooled().len(), 1, "the oversized one was spooled");
}

#[test]
fn one_recipient_past_max_recipients_gets_452() {
    let relay = Relay::start_server("max_recipients = 3", "");
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    assert_eq!(
        c.command("MAIL FROM:<alice@sender.test>"),
        "250 2.1.0 Ok\r\n"
    );
    for n in 1..=3 {
        let reply = c.command(&format!("RCPT TO:<r{n}@example.test>"));
        assert_eq!(reply, "250 2.1.5 Ok\r\n");
    }
    assert_eq!(
        c.command("RCPT TO:<r4@example.test>"),
        "452 4.5.3 Too many recipients\r\n"
    );
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send(b"Subject: three\r\n\r\n");
    assert_queued(&c.command("."));
    let spooled = relay.expect_spooled(1);
    assert_eq!(
        recipients(&spooled[0].1),
        ["r1@example.test", "r2@example.test", "r3@example.test"]
    );
}

#[test]
fn a_2000_byte_command_gets_500_and_the_session_goes_on() {
    let relay = Relay::start("");
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    let long = format!("NOOP {}", "x".repeat(1995));
    assert_eq!(long.len(), 2000);
    assert_eq!(c.command(&long), "500 5.5.2 Line too long\r\n");
    assert_eq!(c.command("NOOP"), "250 2.0.0 Ok\r\n");
}

#[test]
fn a_third_connection_from_one_ip_gets_421_until_one_closes() {
    let relay = Relay::start_server("max_connections_per_ip = 2", "");
    let greeting = "220 relay.example.test ESMTP tlsrelay\r\n";
    let (mut first, g1) = Client::connect(relay.smtp);
    let (_second, g2) = Client::connect(relay.smtp);
    assert_eq!((g1.as_str(), g2.as_str()), (greeting, greeting));
    let (mut third, g3) = Client::connect(relay.smtp);
    assert_eq!(
        g3,
        "421 4.7.0 relay.example.test Too many connections, try again later\r\n"
    );
    assert!(third.closed());

    assert_eq!(first.command("QUIT"), "221 2.0.0 Bye\r\n");
    assert!(first.closed());
    // The place is freed once the relay has seen the close: bounded retry.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, g) = Client::connect(relay.smtp);
        if g == greeting {
            break;
        }
        assert!(Instant::now() < deadline, "place never freed: {g}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_client_dripping_one_byte_a_second_is_cut_off_by_the_command_deadline() {
    let relay = Relay::start_server("command_timeout = \"2s\"", "");
    let (mut c, _) = Client::connect(relay.smtp);
    let started = Instant::now();
    let mut writer = c.stream().try_clone().expect("clone socket");
    // Stops at the first refused write, or after the 18 bytes (18 s).
    let dripper = std::thread::spawn(move || {
        for byte in b"EHLO client.test\r\n" {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    assert_eq!(
        c.reply(),
        "421 4.4.2 relay.example.test Error: timeout exceeded\r\n"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(6),
        "cut off after {elapsed:?}"
    );
    assert!(c.closed());
    let _ = c.stream().shutdown(std::net::Shutdown::Both);
    dripper.join().expect("dripper");
}

#[test]
fn too_many_bad_commands_end_the_session_with_421() {
    let relay = Relay::start_server("max_errors = 3", "");
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    let unknown = "500 5.5.2 Syntax error, command unrecognized\r\n";
    assert_eq!(c.command("BOGUS 1"), unknown);
    assert_eq!(c.command("BOGUS 2"), unknown);
    assert_eq!(
        c.command("BOGUS 3"),
        "421 4.7.0 relay.example.test Too many errors; closing\r\n"
    );
    assert!(c.closed());
}
