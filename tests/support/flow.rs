//! A relay whose delivery cannot keep up, for inbound flow control
//! (`[queue] backlog_limit`, `in_flow_delay`): its next hop never greets,
//! so every attempt holds its delivery slot and what comes after waits.

use std::time::{Duration, Instant};

use super::hostile::Hostile;
use super::relay::{base_config, Relay};
use super::smtp::{assert_queued, Client};

/// The refusal at `MAIL` once the backlog reaches the limit.
pub const REFUSED: &str = "452 4.3.1 Too much mail is waiting for delivery; try again later\r\n";

/// More messages than the manager's delivery slots (64) and any limit a
/// test sets: the bound of [`fill_backlog`].
const AT_MOST: usize = 200;

/// A relay with `backlog_limit` and `in_flow_delay` (e.g. `"1s"`), whose
/// next hop holds every connection until [`Hostile::behave`].
pub fn stalled_relay(backlog_limit: usize, in_flow_delay: &str) -> (Relay, Hostile) {
    let next_hop = Hostile::start(|c| c.hold());
    let config = format!(
        "{}[queue]\nbacklog_limit = {backlog_limit}\nin_flow_delay = \"{in_flow_delay}\"\n",
        base_config().replace("127.0.0.1:1", &next_hop.addr.to_string())
    );
    (Relay::start_with(&config), next_hop)
}

/// Sends messages in one session until `MAIL` is refused with
/// [`REFUSED`] (bounded); the session, still open, and how long each
/// message's `250` took after its end of data.
pub fn fill_backlog(relay: &Relay) -> (Client, Vec<Duration>) {
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    let mut waits = Vec::new();
    loop {
        assert!(waits.len() < AT_MOST, "{AT_MOST} messages and no 452");
        let reply = c.command("MAIL FROM:<alice@sender.test>");
        if reply == REFUSED {
            return (c, waits);
        }
        assert_eq!(reply, "250 2.1.0 Ok\r\n");
        assert_eq!(c.command("RCPT TO:<bob@example.test>"), "250 2.1.5 Ok\r\n");
        assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
        c.send(format!("Subject: {}\r\n\r\nwaiting\r\n", waits.len()).as_bytes());
        let sent = Instant::now();
        assert_queued(&c.command("."));
        waits.push(sent.elapsed());
    }
}
