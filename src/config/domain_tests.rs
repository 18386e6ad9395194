use super::*;

fn name(text: &str) -> Result<String, DomainError> {
    canonical(text)
}

#[test]
fn every_spelling_of_a_domain_has_one_canonical_form() {
    for spelling in [
        "xn--bcher-kva.test",
        "XN--BCHER-KVA.TEST",
        "bücher.test",
        "BÜCHER.test",
        "bu\u{308}cher.test",    // decomposed ü (NFD)
        "ｂüｃｈｅｒ．ｔｅｓｔ", // full-width letters and dot
        "bücher。test.",         // ideographic full stop, trailing dot
        "bü\u{ad}cher.test",     // a soft hyphen is mapped away
    ] {
        assert_eq!(
            name(spelling).as_deref(),
            Ok("xn--bcher-kva.test"),
            "{spelling:?}"
        );
    }
    assert_eq!(name("ｐａｒｔｎｅｒ.test").as_deref(), Ok("partner.test"));
    assert_eq!(name("Partner.Test.").as_deref(), Ok("partner.test"));
    assert_eq!(
        name("_mta-sts.example.test").as_deref(),
        Ok("_mta-sts.example.test")
    );
    // IDNA 2008, not 2003: ß and ς are kept, not folded to ss and σ.
    assert_eq!(name("faß.test").as_deref(), Ok("xn--fa-hia.test"));
}

#[test]
fn names_that_do_not_map_or_are_no_domains_are_refused() {
    for (text, unmappable) in [
        ("xn--a.test", true),      // broken Punycode
        ("a\u{200d}b.test", true), // a joiner outside its context (CONTEXTJ)
        ("1\u{5d0}.test", true),   // an RTL label starting with a digit (bidi rule)
        ("\u{fffd}.test", true),   // a disallowed code point
        ("", false),
        ("a..b", false),
        ("-a.test", false),
        ("a-.test", false),
        ("a b.test", false),
        ("ex@mple.test", false),
        ("ex＠mple.test", false), // full-width @ maps to @, still no domain
        (".", false),
    ] {
        match name(text) {
            Err(DomainError::Unmappable { .. }) => assert!(unmappable, "{text:?}"),
            Err(DomainError::Syntax { .. }) => assert!(!unmappable, "{text:?}"),
            other => panic!("{text:?} gave {other:?}"),
        }
    }
    assert_eq!(
        name("192.0.2.1"),
        Err(DomainError::BareAddress {
            text: "192.0.2.1".into()
        })
    );
    // Full-width digits are the same dotted quad.
    assert!(matches!(
        name("１９２．０．２．１"),
        Err(DomainError::BareAddress { .. })
    ));
    assert!(name(&format!("{}.test", "a".repeat(64))).is_err());
}

#[test]
fn address_literals() {
    let parse = |text: &str| text.parse::<MailDomain>();
    let v4 = MailDomain::Literal(
        "192.0.2.1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
    );
    assert_eq!(parse("[192.0.2.1]"), Ok(v4.clone()));
    // An IPv4-mapped IPv6 literal is the IPv4 address.
    assert_eq!(parse("[IPv6:::ffff:192.0.2.1]"), Ok(v4.clone()));
    assert_eq!(v4.to_string(), "[192.0.2.1]");
    let v6 = parse("[ipv6:2001:DB8:0::1]");
    assert_eq!(
        v6.as_ref().map(ToString::to_string).as_deref(),
        Ok("[IPv6:2001:db8::1]")
    );
    for bad in [
        "[999.1.1.1]",
        "[1.2.3]",
        "[01.2.3.4]",
        "[2001:db8::1]",
        "[IPv6:1.2.3.4]",
        "[x-tag:abc]",
        "[192.0.2.1",
        "[]",
    ] {
        assert!(
            matches!(parse(bad), Err(DomainError::Literal { .. })),
            "{bad:?} gave {:?}",
            parse(bad)
        );
    }
    assert_eq!(
        MailDomain::of_address("a@bücher.test"),
        Some(parse("xn--bcher-kva.test"))
    );
    assert_eq!(MailDomain::of_address(""), None);
}
