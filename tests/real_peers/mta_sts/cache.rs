//! The policy cache (RFC 8461 §5.1, the contract's cache rules): two
//! `enforce` domains, `cgood.test` whose MX has a good certificate and
//! `cbad.test` whose MX's certificate names another host. In turn:
//!
//! 1. fetched once each: cgood delivered (`sts=enforced`), cbad deferred;
//! 2. server up, TXT id unchanged: cgood delivered again from the cache,
//!    no request at the server;
//! 3. server down, the relay restarted: the policy comes from the spool
//!    (`SPOOL/mta-sts/`, 0700 and 0600): cgood delivered enforced, cbad
//!    still deferred;
//! 4. server still down, the TXT id changed: the refetch fails, the
//!    cached policy stays: the same again (`cached-after-fetch-error`);
//! 5. server up with cbad now in `testing`: refetched, cbad delivered.
//!
//! Throughout, cbad's receiver never gets a mail command in plaintext.

use std::os::unix::fs::PermissionsExt;

use super::check::{self, Mail};
use super::lab::{lab_port, start_relay, zone, Certs, Mx, Rx};
use crate::support::dns::DnsServer;
use crate::support::policy_server::{policy, Answer, PolicyServer};
use crate::support::relay::Relay;

pub fn addresses() -> Vec<String> {
    super::lab_addresses(2)
}

struct Lab {
    good: Mx,
    bad: Mx,
}

impl Lab {
    fn records(&self, id: &str) -> String {
        zone("cgood.test", &[(10, &self.good)], Some(id))
            + &zone("cbad.test", &[(10, &self.bad)], Some(id))
    }
}

/// Sends a new message to cgood.test and waits for it to be delivered
/// over TLS under the enforced policy; panics with the log if not.
fn good_delivered(relay: &Relay, lab: &Lab, step: &str) {
    let mail = Mail::new(&format!("good-{step}"), "cgood.test");
    let ids = check::send(relay, std::slice::from_ref(&mail));
    let gone = check::settle(relay, &ids, 1);
    let stored = lab.good.stored(&mail.secret(), true);
    let words = check::sts_words(relay, &ids[0]);
    assert!(
        gone[&ids[0]] && stored == [true] && words.last().map(String::as_str) == Some("enforced"),
        "step {step}: cgood gone {}, stored {stored:?}, sts {words:?}\n{}",
        gone[&ids[0]],
        relay.log()
    );
}

/// Retries cbad's message (`attempts` made so far + 1) and checks it is
/// still deferred by MTA-STS, with nothing in plaintext at its MX.
fn bad_deferred(relay: &Relay, lab: &Lab, id: &str, mail: &Mail, attempts: u32, step: &str) {
    if attempts > 1 {
        let (ok, out, err) = check::tlsrelay(relay, &["queue", "retry", id]);
        assert!(ok, "queue retry: {out}{err}");
    }
    let gone = check::settle(relay, &[id.to_string()], attempts);
    let words = check::sts_words(relay, id);
    let mut wrong = check::check_deferred(relay, mail, Some("4.7.5"));
    if gone[id]
        || words.len() != attempts as usize
        || words.last().map(String::as_str) != Some("failed")
    {
        wrong.push(format!("gone {}, sts words {words:?}", gone[id]));
    }
    let plain = lab.bad.plaintext();
    if !lab.bad.delivered().is_empty() || !plain.is_empty() {
        wrong.push(format!("cbad's MX got mail: {plain}"));
    }
    assert!(
        wrong.is_empty(),
        "step {step}: {}\n{}",
        wrong.join("; "),
        relay.log()
    );
}

/// The `mta-sts policy` results logged for `domain` since `from` lines.
fn results_since(relay: &Relay, domain: &str, from: usize) -> Vec<String> {
    let mut all = check::policy_results(relay, domain);
    all.split_off(from.min(all.len()))
}

pub fn run() {
    let certs = Certs::new();
    let port = lab_port();
    let (ip, back) = super::lab_address(0);
    let good = Mx::start(
        &certs,
        "cgood.test",
        "mx.cgood.test",
        Rx::Good,
        (&ip, &back),
        port,
    );
    let (ip, back) = super::lab_address(1);
    let bad = Mx::start(
        &certs,
        "cbad.test",
        "mx.cbad.test",
        Rx::WrongName,
        (&ip, &back),
        port,
    );
    let lab = Lab { good, bad };
    let (chain, key) = certs.policy_chain(&["mta-sts.cgood.test", "mta-sts.cbad.test"]);
    let mut server = PolicyServer::start(&chain, &key, None);
    for domain in ["cgood.test", "cbad.test"] {
        let text = policy("enforce", &[&format!("mx.{domain}")], 86400);
        server.answer(&format!("mta-sts.{domain}"), &Answer::policy(&text));
    }
    let dns = DnsServer::start(&lab.records("one"));
    super::check_lab(&[&lab.good, &lab.bad], port, &server, &certs);
    let mut relay = start_relay(&certs, port, dns.addr, server.port);

    // 1. Fetched once each.
    good_delivered(&relay, &lab, "1");
    let bad_mail = Mail::new("bad", "cbad.test");
    let bad_id = check::send(&relay, std::slice::from_ref(&bad_mail)).remove(0);
    bad_deferred(&relay, &lab, &bad_id, &bad_mail, 1, "1");
    for domain in ["cgood.test", "cbad.test"] {
        assert_eq!(
            server.requests(&format!("mta-sts.{domain}")),
            1,
            "step 1 {domain}"
        );
        assert_eq!(
            check::policy_results(&relay, domain)
                .first()
                .map(String::as_str),
            Some("fetched")
        );
    }

    // 2. Same id, cache valid: no fetch.
    let seen = check::policy_results(&relay, "cgood.test").len();
    good_delivered(&relay, &lab, "2");
    assert_eq!(
        server.requests("mta-sts.cgood.test"),
        1,
        "step 2: fetched again"
    );
    assert_eq!(
        results_since(&relay, "cgood.test", seen),
        ["cached"],
        "step 2\n{}",
        relay.log()
    );

    // 3. Server down, relay restarted: the cache is on disk.
    server.stop();
    relay.terminate();
    let folder = relay.dir().join("spool/mta-sts");
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    };
    assert_eq!(mode(&folder), Some(0o700), "{}", folder.display());
    let files: Vec<_> = std::fs::read_dir(&folder)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert_eq!(files.len(), 2, "one cache file per domain: {files:?}");
    for file in &files {
        assert_eq!(mode(&file.path()), Some(0o600), "{file:?}");
        let text = std::fs::read_to_string(file.path()).unwrap_or_default();
        assert!(
            text.contains("mode: enforce") && text.contains("one"),
            "{file:?}: {text}"
        );
    }
    relay.launch();
    good_delivered(&relay, &lab, "3");
    bad_deferred(&relay, &lab, &bad_id, &bad_mail, 2, "3");

    // 4. TXT id changed, the fetch fails: the cached policy stays.
    let addr = dns.addr;
    drop(dns);
    let dns = DnsServer::start_at(addr, &lab.records("two"));
    std::thread::sleep(std::time::Duration::from_secs(2)); // past the 1 s TTL
    let seen = check::policy_results(&relay, "cbad.test").len();
    bad_deferred(&relay, &lab, &bad_id, &bad_mail, 3, "4");
    let seen_good = check::policy_results(&relay, "cgood.test").len();
    good_delivered(&relay, &lab, "4");
    for (domain, from) in [("cbad.test", seen), ("cgood.test", seen_good)] {
        let results = results_since(&relay, domain, from);
        assert_eq!(
            results,
            ["cached-after-fetch-error"],
            "step 4 {domain}\n{}",
            relay.log()
        );
    }

    // 5. Up again, cbad now testing: refetched (new id), delivered.
    let text = policy("testing", &["mx.cbad.test"], 86400);
    server.answer("mta-sts.cbad.test", &Answer::policy(&text));
    server.restart();
    let (ok, out, err) = check::tlsrelay(&relay, &["queue", "retry", &bad_id]);
    assert!(ok, "queue retry: {out}{err}");
    let gone = check::settle(&relay, std::slice::from_ref(&bad_id), 4);
    let words = check::sts_words(&relay, &bad_id);
    assert!(
        gone[&bad_id] && words.last().map(String::as_str) == Some("testing-failed"),
        "step 5: gone {}, sts {words:?}\n{}",
        gone[&bad_id],
        relay.log()
    );
    assert_eq!(
        server.requests("mta-sts.cbad.test"),
        2,
        "step 5: refetched once"
    );
    drop(dns);
}
