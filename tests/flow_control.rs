//! Inbound flow control (`[queue] backlog_limit`, `in_flow_delay`): when
//! delivery cannot keep up, the `250` to each message slows down past
//! half the limit, `MAIL` is refused `452 4.3.1` at it, and mail is taken
//! again once delivery catches up. Timing checks are lower bounds only.

mod support;

use std::time::{Duration, Instant};

use support::flow::{fill_backlog, stalled_relay, REFUSED};
use support::smtp::assert_queued;

#[test]
fn a_backlog_slows_then_refuses_mail_until_delivery_catches_up() {
    let (relay, next_hop) = stalled_relay(8, "1s");
    let (mut c, waits) = fill_backlog(&relay);
    assert!(
        waits.len() > 64,
        "refused after {}: below the slots",
        waits.len()
    );
    // Past half the limit the 250 waited: 3/4 of in_flow_delay at 7 of 8.
    let slowest = waits.iter().max().copied().unwrap_or_default();
    assert!(
        slowest >= Duration::from_millis(500),
        "the slowest 250 came after {slowest:?}"
    );
    let refusal = relay.wait_for_log("Too much mail is waiting", 1);
    assert!(refusal[0].contains("\"refused\""), "{}", refusal[0]);
    assert!(refusal[0].contains("\"MAIL\""), "{}", refusal[0]);
    // The session goes on.
    assert_eq!(c.command("RSET"), "250 2.0.0 Ok\r\n");
    assert_eq!(c.command("NOOP"), "250 2.0.0 Ok\r\n");
    // Delivery catches up: MAIL is taken again, and a message with it.
    next_hop.behave();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.command("MAIL FROM:<alice@sender.test>") == REFUSED {
        assert!(Instant::now() < deadline, "still refused after 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.command("RSET"), "250 2.0.0 Ok\r\n");
    let reply = c.deliver(
        "alice@sender.test",
        &["bob@example.test"],
        "Subject: after\r\n\r\ntaken\r\n",
    );
    assert_queued(&reply);
    assert_eq!(c.command("QUIT"), "221 2.0.0 Bye\r\n");
}

/// `backlog_limit = 0`: past the 64 delivery slots and more, every
/// message is still taken.
#[test]
fn without_a_limit_nothing_is_refused() {
    let (relay, _next_hop) = stalled_relay(0, "1s");
    let (mut c, _) = support::smtp::Client::connect(relay.smtp);
    c.ehlo();
    for n in 0..80 {
        let reply = c.deliver(
            "alice@sender.test",
            &["bob@example.test"],
            &format!("Subject: {n}\r\n\r\nwaiting\r\n"),
        );
        assert_queued(&reply);
    }
}

/// With every delivery slot taken and more due, the queue manager waits
/// for a finished attempt instead of waking for what is due at every
/// timer tick: the relay uses next to no CPU while delivery is stuck.
#[test]
fn a_backlogged_relay_does_not_spin() {
    let (relay, _next_hop) = stalled_relay(8, "0s");
    let (_session, waits) = fill_backlog(&relay);
    assert!(waits.len() > 64);
    let before = cpu_ticks(relay.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(relay.pid()) - before;
    // Waking at every timer tick (1 ms) for what is due cost 22 ticks
    // here (11 % of a core); waiting for a free slot, 3.
    assert!(used < 12, "{used} ticks of CPU in 2 s with delivery stuck");
}

/// User and system CPU time of process `pid`, in clock ticks
/// (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name may hold spaces: fields are counted after its `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}
