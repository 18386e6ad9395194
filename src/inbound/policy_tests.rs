use std::path::Path;

use super::*;

fn policy(extra: &str) -> InboundPolicy {
    config_policy("\"example.test\", \"*.sub.example.test\"", extra)
}

/// `accepted` (TOML strings) as the accepted domains, each routed inside.
fn policy_with_accepted(accepted: &str) -> InboundPolicy {
    config_policy(accepted, "")
}

fn config_policy(accepted: &str, extra: &str) -> InboundPolicy {
    let text = format!(
        "[server]\nhostname = \"relay.example.test\"\n[tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = [\"ca\"]\n\
         [relay]\naccepted_domains = [{accepted}]\n\
         [[outbound]]\nname = \"in\"\nrecipient_domains = [{accepted}]\nsmarthosts = [\"10.0.0.5\"]\n{extra}"
    );
    match Config::parse(Path::new("t.toml"), text) {
        Ok(config) => InboundPolicy::new(&config, Default::default()),
        Err(e) => panic!("{e}"),
    }
}

const CONNECTORS: &str = "[[inbound]]\nname = \"wide\"\nremote_ips = [\"10.0.0.0/8\"]\n\
    [[inbound]]\nname = \"narrow\"\nremote_ips = [\"10.1.0.0/16\", \"2001:db8::/32\"]\nallow_relay = true\n\
    [[inbound]]\nname = \"partner\"\ntls_client_cert_names = [\"mail.contoso.test\", \"*.out.contoso.test\"]\n\
    sender_domains = [\"contoso.test\"]\nrestrict_sender_domains = true\nallow_relay = true\n";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn certificate_beats_ip_and_narrowest_network_wins() {
    let p = policy(CONNECTORS);
    assert_eq!(p.match_connector(ip("10.2.3.4"), &[]), Some(0));
    assert_eq!(p.match_connector(ip("10.1.3.4"), &[]), Some(1));
    assert_eq!(p.match_connector(ip("::ffff:10.1.3.4"), &[]), Some(1));
    assert_eq!(p.match_connector(ip("2001:db8::7"), &[]), Some(1));
    assert_eq!(p.match_connector(ip("192.0.2.1"), &[]), None);
    assert_eq!(
        p.match_connector(ip("10.1.3.4"), &["mail.contoso.test".into()]),
        Some(2)
    );
    assert_eq!(
        p.match_connector(ip("192.0.2.1"), &["a.out.contoso.test".into()]),
        Some(2)
    );
    // RFC 6125: the wildcard covers one label only.
    assert_eq!(
        p.match_connector(ip("192.0.2.1"), &["a.b.out.contoso.test".into()]),
        None
    );
    assert_eq!(
        p.match_connector(ip("192.0.2.1"), &["evil.contoso.test".into()]),
        None
    );
}

#[test]
fn relay_control() {
    let p = policy(CONNECTORS);
    use RecipientVerdict::*;
    assert_eq!(p.recipient("bob@example.test", None), Accept);
    assert_eq!(p.recipient("bob@EXAMPLE.test", None), Accept);
    assert_eq!(p.recipient("bob@a.sub.example.test", None), Accept);
    assert_eq!(p.recipient("bob@sub.example.test", None), RelayDenied);
    assert_eq!(p.recipient("bob@elsewhere.test", None), RelayDenied);
    assert_eq!(p.recipient("bob@elsewhere.test", Some(0)), RelayDenied);
    assert_eq!(p.recipient("bob@elsewhere.test", Some(1)), Accept);
    for trick in [
        "user%elsewhere.test@example.test",
        "elsewhere.test!user@example.test",
        "user@elsewhere.test@example.test",
        "user\u{ff20}elsewhere.test@example.test",
        "user\u{ff05}elsewhere.test@example.test",
        "elsewhere.test\u{fe57}user@example.test",
    ] {
        assert_eq!(p.recipient(trick, None), RelayTrick, "{trick}");
        assert_eq!(p.recipient(trick, Some(1)), RelayTrick, "{trick}");
    }
    assert_eq!(p.recipient("no-domain", None), RelayDenied);
    // Accepted domains match however the client spells them.
    assert_eq!(p.recipient("bob@ＥＸＡＭＰＬＥ.test", None), Accept);
    assert_eq!(p.recipient("bob@a.SUB.example.test.", None), Accept);
    // An address literal is not local unless listed: it needs allow_relay.
    assert_eq!(p.recipient("bob@[192.0.2.1]", None), RelayDenied);
    assert_eq!(p.recipient("bob@[192.0.2.1]", Some(1)), Accept);
    let listed = policy_with_accepted("\"[192.0.2.1]\", \"[IPv6:2001:db8::1]\"");
    assert_eq!(listed.recipient("bob@[192.0.2.1]", None), Accept);
    assert_eq!(
        listed.recipient("bob@[IPv6:::ffff:192.0.2.1]", None),
        Accept
    );
    assert_eq!(listed.recipient("bob@[IPv6:2001:db8:0::1]", None), Accept);
    assert_eq!(listed.recipient("bob@[192.0.2.2]", None), RelayDenied);
}

#[test]
fn duplicate_recipients_are_one_mailbox_in_any_spelling() {
    assert!(super::same_mailbox(
        "Bob@bücher.test",
        "bob@XN--BCHER-KVA.test."
    ));
    assert!(super::same_mailbox(
        "bob@[IPv6:::ffff:192.0.2.1]",
        "bob@[192.0.2.1]"
    ));
    assert!(!super::same_mailbox("bob@bücher.test", "bob@bucher.test"));
    assert!(!super::same_mailbox(
        "bob@example.test",
        "alice@example.test"
    ));
}

/// Found by the address fuzz target: smtp-proto hands on a domain holding
/// `>` and quotes (from `<xt.tesy@e\xf9ample\xff\xff""">…`), and a
/// relaying connector accepted it, so our client would have written a
/// broken path onwards. Only domains and address literals pass, for every
/// connector.
#[test]
fn recipient_domains_must_be_domains_or_literals() {
    let p = policy(CONNECTORS);
    use RecipientVerdict::*;
    for bad in [
        "xt.tesy@e\u{fffd}ample\u{fffd}\u{fffd}\"\"\">\u{fffd}\u{fffd}\"\"",
        "x@example.test> NOTIFY=NEVER",
        "x@exa mple.test",
        "x@[300.1.1.1]",
        "x@[tag:content]",
        "x@1.2.3.4",
        "x@xn--a.test",
        "x@",
    ] {
        let expected = match bad.rsplit_once('@').map(|(_, d)| d.parse::<MailDomain>()) {
            Some(Err(e)) => BadDomain(e),
            other => panic!("{bad}: {other:?}"),
        };
        assert_eq!(p.recipient(bad, Some(1)), expected, "{bad}");
        assert_eq!(p.recipient(bad, None), expected, "{bad}");
    }
    for good in [
        "x@[192.0.2.1]",
        "x@[IPv6:2001:db8::1]",
        "x@bücher.test",
        "x@elsewhere.test.",
    ] {
        assert_eq!(p.recipient(good, Some(1)), Accept, "{good}");
    }
    assert_eq!(super::sender_domain(""), Ok(None));
    assert!(matches!(super::sender_domain("a@B.test"), Ok(Some(_))));
    assert!(super::sender_domain("a@b.test>x").is_err());
    assert!(super::sender_domain("bob").is_err());
}

#[test]
fn restricted_sender_domains_only_through_their_connector() {
    let p = policy(CONNECTORS);
    let d = |text: &str| text.parse::<MailDomain>().unwrap_or_else(|e| panic!("{e}"));
    assert!(p.sender_allowed(Some(&d("contoso.test")), Some(2)));
    assert!(!p.sender_allowed(Some(&d("contoso.test")), Some(1)));
    assert!(!p.sender_allowed(Some(&d("CONTOSO.test")), None));
    assert!(!p.sender_allowed(Some(&d("ｃｏｎｔｏｓｏ.test")), None));
    assert!(p.sender_allowed(Some(&d("fabrikam.test")), None));
    assert!(p.sender_allowed(None, None));
    assert_eq!(p.postmaster().as_deref(), Some("postmaster@example.test"));
}

#[test]
fn per_ip_counts() {
    let mut counts = IpCounts::default();
    assert!(counts.try_add(ip("192.0.2.1"), 2));
    assert!(counts.try_add(ip("192.0.2.1"), 2));
    assert!(!counts.try_add(ip("192.0.2.1"), 2));
    assert!(counts.try_add(ip("192.0.2.2"), 2));
    counts.remove(ip("192.0.2.1"));
    assert!(counts.try_add(ip("192.0.2.1"), 2));
}
