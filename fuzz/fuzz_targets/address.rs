//! Address parsing and relay control as the inbound side does them:
//! smtp-proto parses `RCPT TO:` / `MAIL FROM:` with the fuzzed path, then
//! `InboundPolicy::recipient` and `sender_allowed` (src/inbound/policy.rs)
//! judge the address. Asserts, for any path:
//!
//! * an anonymous client is accepted only for an accepted domain
//!   (`example.test`, `*.sub.example.test`), checked here by plain string
//!   comparison, never for a local part holding `%`, `!` or `@`;
//! * a relaying connector is refused exactly the relay tricks and the
//!   domains that are no domain (then everyone is);
//! * a restricted sender domain (`contoso.test`, in any spelling that
//!   maps to it) is refused to everyone but its connector, and no other
//!   sender is refused;
//! * an accepted recipient, and a sender that passes the session's syntax
//!   check, written as a path by our outbound client
//!   (`outbound::client::path`), parse back to the same address.
#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use smtp_proto::Request;
use tlsrelay::config::domain::MailDomain;
use tlsrelay::config::Config;
use tlsrelay::inbound::policy::{sender_domain, InboundPolicy, RecipientVerdict};
use tlsrelay::outbound::client::path;

const CONFIG: &str = "[server]\nhostname = \"mx.example.test\"\n\
    [relay]\naccepted_domains = [\"example.test\", \"*.sub.example.test\"]\n\
    [[outbound]]\nname = \"inside\"\nrecipient_domains = [\"example.test\", \"*.sub.example.test\"]\nsmarthosts = [\"192.0.2.25\"]\n\
    [[inbound]]\nname = \"lan\"\nremote_ips = [\"10.0.0.0/8\"]\nallow_relay = true\n\
    [[inbound]]\nname = \"contoso\"\nremote_ips = [\"192.0.2.0/24\"]\nsender_domains = [\"contoso.test\"]\nrestrict_sender_domains = true\n";
const LAN: usize = 0;
const CONTOSO: usize = 1;

fn policy() -> &'static InboundPolicy {
    static POLICY: OnceLock<Arc<InboundPolicy>> = OnceLock::new();
    POLICY.get_or_init(|| {
        let config = Config::parse(Path::new("fuzz.toml"), CONFIG.to_string())
            .unwrap_or_else(|e| panic!("fuzz config: {e}"));
        Arc::new(InboundPolicy::new(&config, Default::default()))
    })
}

/// The domain as DNS compares it: one trailing dot dropped, lower case.
fn plain(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

fn check_recipient(address: &str) {
    let policy = policy();
    let anonymous = policy.recipient(address, None);
    let relay = policy.recipient(address, Some(LAN));
    let Some((local, domain)) = address.rsplit_once('@') else {
        assert_eq!(anonymous, RecipientVerdict::RelayDenied, "{address:?}");
        assert_eq!(relay, RecipientVerdict::RelayDenied, "{address:?}");
        return;
    };
    if local.contains(['@', '%', '!']) {
        assert_eq!(anonymous, RecipientVerdict::RelayTrick, "{address:?}");
        assert_eq!(relay, RecipientVerdict::RelayTrick, "{address:?}");
        return;
    }
    if let RecipientVerdict::BadDomain(_) = relay {
        assert_eq!(anonymous, relay, "{address:?}");
        return;
    }
    assert_eq!(relay, RecipientVerdict::Accept, "{address:?}");
    if anonymous == RecipientVerdict::Accept {
        // Compared in canonical form: a U-label spelling of an accepted
        // domain is that domain; an ASCII one only changes case.
        let raw = domain;
        let domain = match domain.parse::<MailDomain>() {
            Ok(MailDomain::Name(name)) => name.to_string(),
            other => panic!("anonymous relay to {address:?} ({other:?})"),
        };
        assert!(
            domain == "example.test" || domain.ends_with(".sub.example.test"),
            "anonymous relay to {address:?}"
        );
        if address.is_ascii() {
            assert_eq!(plain(raw), domain, "{address:?}");
        }
    }
    let line = format!("RCPT TO:<{}>\r\n", path(address));
    match Request::parse(&mut line.as_bytes().iter()) {
        Ok(Request::Rcpt { to }) => assert_eq!(to.address, address, "{line:?}"),
        other => panic!("{address:?} written as {line:?} parses as {other:?}"),
    }
}

fn check_sender(address: &str) {
    let policy = policy();
    // A sender the session refuses by syntax never reaches the restriction.
    let Ok(domain) = sender_domain(address) else {
        return;
    };
    let domain = domain.as_ref();
    let restricted = domain.is_some_and(|d| d.to_string() == "contoso.test");
    // An ASCII spelling is restricted exactly when it is contoso.test by DNS rules.
    if address.is_ascii() {
        let plain_match = address
            .rsplit_once('@')
            .is_some_and(|(_, d)| plain(d) == "contoso.test");
        assert_eq!(restricted, plain_match, "{address:?}");
    }
    assert_eq!(
        policy.sender_allowed(domain, None),
        !restricted,
        "{address:?}"
    );
    assert_eq!(
        policy.sender_allowed(domain, Some(LAN)),
        !restricted,
        "{address:?}"
    );
    assert!(policy.sender_allowed(domain, Some(CONTOSO)), "{address:?}");
    // A sender the session takes is written back by our client unchanged.
    let line = format!("MAIL FROM:<{}>\r\n", path(address));
    match Request::parse(&mut line.as_bytes().iter()) {
        Ok(Request::Mail { from }) => assert_eq!(from.address, address, "{line:?}"),
        other => panic!("{address:?} written as {line:?} parses as {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.contains(&b'\n') {
        return;
    }
    for verb in [&b"RCPT TO:"[..], b"MAIL FROM:"] {
        let line = [verb, data, b"\r\n"].concat();
        match Request::parse(&mut line.iter()) {
            Ok(Request::Rcpt { to }) => check_recipient(&to.address),
            Ok(Request::Mail { from }) => check_sender(&from.address),
            _ => {}
        }
    }
});
