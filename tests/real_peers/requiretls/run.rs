//! One run of a cell table: the hops started and checked, the names that
//! lead to them, one relay, every cell's message sent at once by Python's
//! smtplib over the relay's STARTTLS (flagged with `mail_options =
//! ["REQUIRETLS"]`), one attempt each (`retry_intervals = ["1h"]`: a
//! message that is not done at the first attempt stays queued, so
//! "returned at once" can be told from "deferred").
//!
//! The sender's domain `sender.test` is served by an `Rt` receiver
//! (`home`) through a `verify-host` connector: the notices of returned
//! messages travel under REQUIRETLS themselves and arrive there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::cells::{Cell, Flag, Route};
use super::client::{smtplib, Mail};
use super::lab::{Far, Hop};
use crate::mta_sts::check::{self, events};
use crate::mta_sts::lab::{lab_port, Certs};
use crate::mta_sts::lab_address;
use crate::support::ca::{Key, Spec};
use crate::support::dns::DnsServer;
use crate::support::policy_server::{policy, Answer, PolicyServer};
use crate::support::relay::Relay;

/// The host of the sender's domain, where notices go.
pub const HOME: &str = "home.sender.test";

/// The started hops of a cell table.
pub struct Lab {
    pub certs: Certs,
    pub port: u16,
    /// The sender's domain's receiver: the notices arrive here.
    pub home: Far,
    /// Per cell, its hops in order.
    pub hosts: Vec<Vec<Far>>,
}

impl Lab {
    /// Starts and checks every hop: `home` (an `Rt`) on the first
    /// address, then each cell's in order.
    pub fn start(cells: &[Cell]) -> Lab {
        Lab::start_with_home(cells, Hop::Rt)
    }

    /// Like [`Lab::start`], with `home` of another kind.
    pub fn start_with_home(cells: &[Cell], home: Hop) -> Lab {
        let certs = Certs::new();
        let port = lab_port();
        let mut next = 0;
        let mut start = |domain: &str, host: &str, hop: Hop| {
            let (ip, back) = lab_address(next);
            next += 1;
            Far::start(&certs, domain, host, hop, (&ip, &back), port)
        };
        let home = start("sender.test", HOME, home);
        let hosts: Vec<Vec<Far>> = cells
            .iter()
            .map(|cell| {
                (0..cell.hops.len())
                    .map(|i| start(&cell.domain(), &cell.host(i), cell.hops[i]))
                    .collect()
            })
            .collect();
        for far in hosts.iter().flatten().chain([&home]) {
            far.check(port);
        }
        Lab {
            certs,
            port,
            home,
            hosts,
        }
    }

    /// Zone lines of `test.`: an A record for every host; for MX routes
    /// the MX records and, with a policy, `_mta-sts` and `mta-sts` (on
    /// 127.0.0.1, where the policy server listens).
    pub fn zone(&self, cells: &[Cell]) -> String {
        let mut text = format!("{HOME}. A {}\n", self.home.ip);
        for (cell, hosts) in cells.iter().zip(&self.hosts) {
            let domain = cell.domain();
            for (i, far) in hosts.iter().enumerate() {
                text.push_str(&format!("{}. A {}\n", far.host, far.ip));
                if let Route::Mx { .. } = cell.route {
                    text.push_str(&format!("{domain}. MX {} {}.\n", 10 * (i + 1), far.host));
                }
            }
            if let Route::Mx { sts, .. } = cell.route {
                if !sts.is_empty() {
                    text.push_str(&format!("_mta-sts.{domain}. TXT \"v=STSv1; id=17\"\n"));
                    text.push_str(&format!("mta-sts.{domain}. A 127.0.0.1\n"));
                }
            }
        }
        text
    }

    /// The policy server, serving each MX cell's policy (every host of
    /// the cell named), when some cell has one.
    pub fn policy_server(&self, cells: &[Cell]) -> Option<PolicyServer> {
        let with: Vec<&Cell> = cells
            .iter()
            .filter(|c| matches!(c.route, Route::Mx { sts, .. } if !sts.is_empty()))
            .collect();
        if with.is_empty() {
            return None;
        }
        let names: Vec<String> = with
            .iter()
            .map(|c| format!("mta-sts.{}", c.domain()))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (chain, key) = self.certs.policy_chain(&names);
        let server = PolicyServer::start(&chain, &key, None);
        for cell in with {
            let Route::Mx { sts, .. } = cell.route else {
                continue;
            };
            let hosts: Vec<String> = (0..cell.hops.len()).map(|i| cell.host(i)).collect();
            let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let text = policy(sts, &hosts, 86400);
            server.answer(
                &format!("mta-sts.{}", cell.domain()),
                &Answer::policy(&text),
            );
        }
        Some(server)
    }

    /// The relay: the MTA-STS lab's configuration (MX on the lab port,
    /// `dns`, the policy server's port, the lab CA) with a certificate of
    /// the lab CA for its STARTTLS, the `home` connector and one per
    /// connector cell. With `anchor`, DNSSEC is validated against it.
    pub fn relay(
        &self,
        cells: &[Cell],
        dns: SocketAddr,
        https_port: u16,
        anchor: Option<&Path>,
    ) -> Relay {
        let mut config = crate::mta_sts::lab::relay_config(self.port, dns, https_port);
        if let Some(anchor) = anchor {
            config = config.replace(
                "dnssec = false\n",
                &format!(
                    "dnssec = true\ntrust_anchor = \"{}\"\ntimeout = \"2s\"\n",
                    anchor.display()
                ),
            );
        }
        config.push_str("[tls]\ncert = \"relay.crt\"\nkey = \"relay.key\"\n");
        let connector = |name: &str, domain: &str, hosts: &[String], tls: &str, off: bool| {
            let hosts: Vec<String> = hosts
                .iter()
                .map(|h| format!("\"{h}:{}\"", self.port))
                .collect();
            let mut text = format!(
                "[[outbound]]\nname = \"{name}\"\nrecipient_domains = [\"{domain}\"]\n\
                 smarthosts = [{}]\nca_file = \"ca.pem\"\n",
                hosts.join(", ")
            );
            if !tls.is_empty() {
                text.push_str(&format!("tls = \"{tls}\"\n"));
            }
            if off {
                text.push_str("requiretls = \"off\"\n");
            }
            text
        };
        config.push_str(&connector(
            "home",
            "sender.test",
            &[HOME.to_string()],
            "verify-host",
            false,
        ));
        for cell in cells {
            match cell.route {
                Route::Connector { tls, off } => {
                    let hosts: Vec<String> = (0..cell.hops.len()).map(|i| cell.host(i)).collect();
                    config.push_str(&connector(cell.name, &cell.domain(), &hosts, tls, off));
                }
                Route::Mx {
                    connector: true, ..
                } => {
                    config.push_str(&connector(cell.name, &cell.domain(), &[], "", false));
                }
                Route::Mx { .. } => {}
            }
        }
        let relay = self
            .certs
            .ca
            .leaf(&Spec::new(&["relay.example.test"], Key::P256));
        let files = [
            ("ca.pem", self.certs.ca.pem()),
            ("relay.crt", relay.cert_pem.as_str()),
            ("relay.key", relay.key_pem.as_str()),
        ];
        Relay::start_with_files(&config, &files)
    }

    /// Waits (bounded, 5 s in all) until every scripted receiver's
    /// connections have closed, so their records are complete; one the
    /// relay keeps open for reuse is taken as it stands.
    pub fn quiesce(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let receivers: Vec<_> = self
            .hosts
            .iter()
            .flatten()
            .chain([&self.home])
            .filter_map(Far::receiver)
            .collect();
        while !receivers.iter().all(|r| r.all_closed()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Connections each cell's hops have had so far.
    pub fn connections(&self) -> Vec<Vec<usize>> {
        self.hosts
            .iter()
            .map(|hosts| hosts.iter().map(Far::connections).collect())
            .collect()
    }
}

/// What a run came to: each cell's queue id, whether it left the queue,
/// and the connections its hops had from the relay.
pub struct Outcome {
    pub ids: Vec<String>,
    pub gone: BTreeMap<String, bool>,
    pub made: Vec<Vec<usize>>,
}

/// Sends every cell's message through `relay` (one smtplib session over
/// STARTTLS, trusting the lab CA), waits for one attempt each, and for
/// the notices of the returned ones at `home`.
pub fn send_and_settle(lab: &Lab, relay: &Relay, cells: &[Cell]) -> Outcome {
    lab.quiesce();
    let before = lab.connections();
    let mails: Vec<Mail> = cells
        .iter()
        .map(|c| Mail {
            from: c.sender(),
            to: vec![c.recipient()],
            data: c.content(),
            requiretls: c.flag == Flag::Param,
        })
        .collect();
    smtplib(relay.smtp, lab.certs.ca.pem(), "-", &mails);
    let ids = queue_ids(relay, cells);
    let gone = check::settle(relay, &ids, 1);
    let returned = cells.iter().filter(|c| c.returned()).count();
    if returned > 0 {
        if let Some(home) = lab.home.receiver() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while home.messages().len() < returned && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    lab.quiesce();
    let made = lab
        .connections()
        .iter()
        .zip(&before)
        .map(|(now, then)| now.iter().zip(then).map(|(n, t)| n - t).collect())
        .collect();
    Outcome { ids, gone, made }
}

/// Runs `cells` against the test DNS (unsigned, no DNSSEC) and, when a
/// cell has a policy, the policy server; then every cell's checks and
/// the report's.
pub fn with_test_dns(cells: &[Cell], context: &str) {
    let lab = Lab::start(cells);
    let server = lab.policy_server(cells);
    let dns = DnsServer::start(&lab.zone(cells));
    let https_port = server.as_ref().map_or(1, |s| s.port);
    let relay = lab.relay(cells, dns.addr, https_port, None);
    let outcome = send_and_settle(&lab, &relay, cells);
    super::check::all(cells, &relay, &lab, &outcome, true, context);
}

/// The queue id of each cell's message, from its `message accepted`
/// line (by sender; bounded, 20 s).
fn queue_ids(relay: &Relay, cells: &[Cell]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let accepted = events(relay, "message accepted");
        let ids: Vec<Option<String>> = cells
            .iter()
            .map(|c| {
                accepted
                    .iter()
                    .find(|e| e["fields"]["from"] == c.sender().as_str())
                    .and_then(|e| e["fields"]["queue_id"].as_str().map(str::to_string))
            })
            .collect();
        if ids.iter().all(Option::is_some) {
            return ids.into_iter().flatten().collect();
        }
        assert!(
            Instant::now() < deadline,
            "not every cell's message was accepted:\n{}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
