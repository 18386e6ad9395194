//! Delivery against receivers that misbehave, scripted in the test:
//!
//! * one whose TLS is broken (offers STARTTLS, says 220, hangs up): the
//!   opportunistic ladder still delivers, in plaintext on the last rung,
//!   and later messages, also after a restart, start at the rung that worked;
//! * one that takes the content and never answers: the sender is killed
//!   mid-delivery and delivers again after its restart (at least once).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use support::faulty::{wait_for, AfterStartTls, FaultyReceiver, Seen};
use support::relay::Relay;
use support::smtp::{assert_queued, Client};

fn sender(to: SocketAddr) -> Relay {
    Relay::start_with(&format!(
        "[server]\nhostname = \"out.sender.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"broken\"\nrecipient_domains = [\"broken.test\"]\nsmarthosts = [\"{to}\"]\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
    ))
}

fn send(relay: &Relay, subject: &str) {
    let (mut client, _) = Client::connect(relay.smtp);
    client.command("EHLO client.test");
    assert_queued(&client.deliver(
        "a@sender.test",
        &["b@broken.test"],
        &format!("Subject: {subject}\r\n\r\nhi\r\n"),
    ));
}

#[test]
fn broken_starttls_goes_down_the_ladder_and_is_remembered_across_restarts() {
    let receiver = FaultyReceiver::start(AfterStartTls::HangUp);
    let mut relay = sender(receiver.addr);
    send(&relay, "first");
    let after_first = receiver.wait_for("first");
    // Rung 1 (TLS 1.3+1.2) and rung 2 (TLS 1.2) both fail, rung 3 delivers.
    assert_eq!(
        after_first.iter().filter(|s| *s == "starttls").count(),
        2,
        "{after_first:?}"
    );
    // The attempt's line is logged after the receiver's 250: wait for it.
    relay.wait_for_log("plaintext (TLS failed on higher rungs)", 1);

    send(&relay, "second");
    let after_second = receiver.wait_for("second");
    assert_eq!(
        after_second.iter().filter(|s| *s == "starttls").count(),
        2,
        "second message started at the plaintext rung: {after_second:?}"
    );

    relay.terminate();
    relay.launch();
    send(&relay, "third");
    let after_third = receiver.wait_for("third");
    assert_eq!(
        after_third.iter().filter(|s| *s == "starttls").count(),
        2,
        "remembered across the restart: {after_third:?}"
    );
}

/// A receiver that takes the content but never answers the first time
/// (so the sender can be killed mid-delivery), and says 250 afterwards.
fn stalling_receiver() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().flatten().enumerate() {
            let log = log.clone();
            std::thread::spawn(move || stall_then_accept(stream, &log, n == 0));
        }
    });
    (addr, seen)
}

fn stall_then_accept(mut stream: TcpStream, seen: &Seen, stall: bool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap_or_else(|e| panic!("{e}")));
    let _ = stream.write_all(b"220 stall.test ESMTP\r\n");
    let mut line = String::new();
    let mut in_data = false;
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                let kind = if stall { "stalled" } else { "accepted" };
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(kind.into());
                if stall {
                    std::thread::sleep(Duration::from_secs(30));
                    return;
                }
                let _ = stream.write_all(b"250 2.0.0 ok\r\n");
            }
        } else {
            let reply: &[u8] = match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                "EHLO" => b"250-stall.test\r\n250 PIPELINING\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go\r\n"
                }
                "QUIT" => return,
                _ => b"250 ok\r\n",
            };
            let _ = stream.write_all(reply);
        }
        line.clear();
    }
}

#[test]
fn a_delivery_cut_short_by_sigkill_is_made_again_after_restart() {
    let (addr, seen) = stalling_receiver();
    let mut relay = Relay::start_with(&format!(
        "[server]\nhostname = \"out.sender.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [[outbound]]\nname = \"stall\"\nrecipient_domains = [\"stall.test\"]\nsmarthosts = [\"{addr}\"]\ntls = \"none\"\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
    ));
    let (mut client, _) = Client::connect(relay.smtp);
    client.command("EHLO client.test");
    assert_queued(&client.deliver(
        "a@sender.test",
        &["b@stall.test"],
        "Subject: once\r\n\r\nhi\r\n",
    ));
    wait_for(&seen, "stalled");
    relay.kill(); // mid-delivery: the content is out, the 250 never came
    relay.launch();
    let after = wait_for(&seen, "accepted");
    assert_eq!(
        after,
        ["stalled", "accepted"],
        "delivered at least once after the crash"
    );
    relay.wait_spool_empty();
}
