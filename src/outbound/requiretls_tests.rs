use super::*;
use crate::config::values::Host;
use crate::outbound::connector::Connectors;
use crate::outbound::policy::Plaintext;
use crate::tls::client::Negotiated;

#[test]
fn tls_required_no_header() {
    assert!(tls_required_no(b"From: a\r\nTLS-Required: No\r\n\r\nbody"));
    assert!(tls_required_no(b"tls-required:no\r\n\r\n"));
    assert!(!tls_required_no(b"From: a\r\n\r\nTLS-Required: No\r\n"));
    assert!(!tls_required_no(b"TLS-Required: Yes\r\n\r\n"));
}

fn connectors(requiretls: &str) -> Connectors {
    let toml =
        format!("name = \"c\"\nrecipient_domains = [\"*\"]\nrequiretls = \"{requiretls}\"\n");
    let connector: crate::config::OutboundConnector = toml::from_str(&toml).unwrap();
    Connectors::new(&[connector]).unwrap()
}

fn envelope(flagged: bool) -> Envelope {
    Envelope {
        requiretls: flagged,
        ..Envelope::default()
    }
}

#[test]
fn the_flag_wins_over_the_header_and_off_ignores_it() {
    let enforce = connectors("enforce");
    let off = connectors("off");
    let domain = "example.test".parse().unwrap();
    let (enforce, off) = (enforce.for_domain(&domain), off.for_domain(&domain));
    let lifted = b"TLS-Required: No\r\n\r\nbody";
    let plain = b"Subject: x\r\n\r\nbody";
    assert_eq!(
        Demand::of(&envelope(true), lifted, enforce),
        Demand::Required
    );
    assert_eq!(Demand::of(&envelope(true), plain, off), Demand::Off);
    assert_eq!(
        Demand::of(&envelope(false), lifted, enforce),
        Demand::Lifted
    );
    assert_eq!(Demand::of(&envelope(false), plain, enforce), Demand::Usual);
    // No connector: the default one enforces.
    let default = Connectors::new(&[]).unwrap();
    let default = default.for_domain(&domain);
    assert_eq!(
        Demand::of(&envelope(true), plain, default),
        Demand::Required
    );
    assert!(!Demand::Lifted.policies_apply());
    assert_eq!(
        [Demand::Usual, Demand::Required, Demand::Off, Demand::Lifted].map(Demand::word),
        ["-", "required", "off", "lifted"]
    );
}

#[test]
fn only_a_smarthost_a_secure_mx_or_an_enforced_policy_authenticate_the_hop() {
    let hop = |mx| Hop {
        host: Host::Name("mx.example.test".parse().unwrap()),
        port: 25,
        mx,
    };
    assert!(hop_authenticated(&hop(Status::Insecure), true, false));
    assert!(hop_authenticated(&hop(Status::Secure), false, false));
    assert!(hop_authenticated(&hop(Status::Insecure), false, true));
    assert!(!hop_authenticated(&hop(Status::Insecure), false, false));
    assert!(!hop_authenticated(&hop(Status::Bogus), false, false));
}

#[test]
fn only_a_checked_name_a_pin_or_dane_verify_the_certificate() {
    let tls = |note| How::Tls {
        negotiated: Negotiated {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
            group: None,
        },
        note,
    };
    assert!(verified(&tls(Note::Verified)));
    assert!(verified(&tls(Note::Pinned)));
    assert!(verified(&tls(Note::DaneVerified { usage: 3 })));
    assert!(!verified(&tls(Note::VerifiedChain)));
    assert!(!verified(&tls(Note::DaneEncryptOnly)));
    assert!(!verified(&tls(Note::Untrusted("self-signed".into()))));
    assert!(!verified(&tls(Note::NameMismatch("other".into()))));
    assert!(!verified(&How::Plaintext(Plaintext::NotOffered)));
}

#[test]
fn levels_that_authenticate() {
    use TlsLevel::*;
    let all = [
        None,
        Opportunistic,
        Required,
        VerifyCa,
        VerifyHost,
        VerifyDomain,
        Pinned,
        Dane,
    ];
    let raised: Vec<bool> = all.iter().map(|l| level_authenticates(*l)).collect();
    assert_eq!(raised, [false, false, false, false, true, true, true, true]);
}

#[test]
fn a_message_returns_only_when_every_hop_was_refused_for_requiretls() {
    let mut tally = Tally::default();
    assert!(!tally.returns(), "no hop at all: waits");
    tally.skipped(true);
    assert!(tally.returns());
    tally.skipped(false);
    assert!(!tally.returns(), "one hop merely unreachable: waits");
    assert_eq!(
        returned_reason("b.test", "mx.b.test: why"),
        "REQUIRETLS: no next hop for b.test met the requirement (RFC 8689): mx.b.test: why"
    );
}
