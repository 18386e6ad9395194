//! The one tlsrelay of a matrix run: its configuration (a connector per
//! cell), its files, the messages sent through it, and where each stands.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tlsrelay::queue::state::DeliveryState;

use super::receivers::{Certs, Kind, Receiver, TLS_DOMAIN};
use super::{recipient, subject, Cell};
use crate::support::ca::{Key, Spec};
use crate::support::relay::Relay;
use crate::support::smtp::submit_all;

/// `[delivery] connect_timeout`, which also bounds a handshake.
const HANDSHAKE_TIMEOUT: &str = "4s";

/// The relay configuration: one outbound connector per cell.
pub(super) fn relay_config(cells: &[Cell], receivers: &BTreeMap<Kind, Receiver>) -> String {
    let mut config = format!(
        "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:0\"]\nspool_dir = \"spool\"\n\
         [tls]\ncert = \"relay.crt\"\nkey = \"relay.key\"\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"127.0.0.0/8\"]\nallow_relay = true\n\
         [queue]\nretry_intervals = [\"1h\"]\n\
         [delivery]\nconnect_timeout = \"{HANDSHAKE_TIMEOUT}\"\n\
         [dns]\nreverse_lookups = false\nnameservers = [\"127.0.0.1:1\"]\n"
    );
    // Another receiver's key: the foreign pin, and the fingerprint of the
    // pinned connectors to receivers without a certificate (pinned needs
    // one to start).
    let foreign = receivers
        .get(&Kind::Tls13)
        .and_then(|r| r.pin.clone())
        .unwrap_or_else(|| format!("sha256:{}", "00".repeat(32)));
    for cell in cells {
        let receiver = &receivers[&cell.kind];
        config.push_str(&format!(
            "[[outbound]]\nname = \"{name}\"\nrecipient_domains = [\"{domain}\"]\n\
             smarthosts = [\"{addr}\"]\ntls = \"{level}\"\n",
            name = cell.name(),
            domain = cell.domain(),
            addr = receiver.addr(),
            level = cell.level,
        ));
        if cell.level != "none" {
            config.push_str("ca_file = \"ca.pem\"\n");
        }
        match cell.level {
            "verify-domain" => config.push_str(&format!("tls_domains = [\"{TLS_DOMAIN}\"]\n")),
            "pinned" => {
                let pin = match (&receiver.pin, cell.foreign_pin) {
                    (Some(own), false) => own.clone(),
                    _ => foreign.clone(),
                };
                config.push_str(&format!("fingerprints = [\"{pin}\"]\n"));
            }
            _ => {}
        }
    }
    config
}

/// The relay's own certificate, from the test CA, and the CA file, as the
/// files its configuration names.
pub(super) fn relay_files(certs: &Certs) -> Vec<(&'static str, String)> {
    let relay = certs
        .ca
        .leaf(&Spec::new(&["relay.example.test"], Key::P256));
    vec![
        ("relay.crt", relay.cert_pem),
        ("relay.key", relay.key_pem),
        ("ca.pem", certs.ca.pem().to_string()),
    ]
}

pub(super) fn start_relay(config: &str, certs: &Certs) -> Relay {
    let files = relay_files(certs);
    let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
    Relay::start_with_files(config, &files)
}

/// Sends one message per connector name (to `bob@NAME.test`) in one
/// session; the queue id of each.
pub(super) fn send_all(relay: &Relay, names: &[String]) -> Vec<String> {
    let messages: Vec<[String; 3]> = names
        .iter()
        .map(|name| {
            let to = recipient(name);
            let content = format!(
                "From: alice@sender.test\r\nTo: {to}\r\n{subject}\r\n\
                 Message-ID: <{name}@matrix.test>\r\n\r\nthe secret of cell {name}\r\n",
                subject = subject(name),
            );
            ["alice@sender.test".to_string(), to, content]
        })
        .collect();
    submit_all(relay.smtp, &messages)
}

/// Where a cell stands in the relay's spool.
#[derive(Debug)]
pub(super) enum Settled {
    /// The message left the queue (delivered, or failed and bounced).
    Gone,
    /// Attempted and still queued, with the recipient's code and reason.
    Queued(DeliveryState),
}

fn settled(relay: &Relay, id: &str) -> Option<Settled> {
    let spool = relay.dir().join("spool");
    let view = tlsrelay::queue::spool::SpoolView::open(&spool).ok();
    let Some(view) = view.filter(|v| v.contains(id)) else {
        return Some(Settled::Gone);
    };
    let state = tlsrelay::queue::state::StateStore::reader(&view).load(id)?;
    (state.attempts > 0).then_some(Settled::Queued(state))
}

/// Waits (bounded) until every message was delivered or attempted.
pub(super) fn wait_until_settled(relay: &Relay, ids: &[String], limit: Duration) -> Vec<Settled> {
    let deadline = Instant::now() + limit;
    loop {
        let states: Vec<Option<Settled>> = ids.iter().map(|id| settled(relay, id)).collect();
        if states.iter().all(Option::is_some) {
            return states.into_iter().flatten().collect();
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} messages unsettled after {limit:?}; relay log:\n{}",
            states.iter().filter(|s| s.is_none()).count(),
            ids.len(),
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `tls` field of every `delivery attempt` log line of `id`.
pub(super) fn attempt_outcomes(relay: &Relay, id: &str) -> Vec<String> {
    relay
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| {
            let fields = &event["fields"];
            fields["message"] == "delivery attempt" && fields["queue_id"] == id
        })
        .map(|event| event["fields"]["tls"].as_str().unwrap_or("").to_string())
        .collect()
}
