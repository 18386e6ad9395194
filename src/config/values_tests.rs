use std::net::IpAddr;

use super::*;
use crate::config::domain::MailDomain;

#[test]
fn sizes() {
    assert_eq!("25MiB".parse::<Size>(), Ok(Size(25 << 20)));
    assert_eq!("10MB".parse::<Size>(), Ok(Size(10_000_000)));
    assert_eq!("512 KiB".parse::<Size>(), Ok(Size(512 << 10)));
    assert_eq!("1024".parse::<Size>(), Ok(Size(1024)));
    assert!("25 MiBs".parse::<Size>().is_err());
    assert!("MiB".parse::<Size>().is_err());
    assert!("99999999999GiB".parse::<Size>().is_err());
    assert_eq!(Size(35 << 20).to_string(), "35MiB");
    assert_eq!(Size(1000).to_string(), "1000B");
}

#[test]
fn durations() {
    let d = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
    assert_eq!(d("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(d("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(d("5d"), Ok(Duration::from_secs(432_000)));
    assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
    for bad in ["", "30", "5 minutes", "m", "1h30", "-5s", "1.5h"] {
        assert!(d(bad).is_err(), "{bad:?} should be refused");
    }
    assert_eq!(
        HumanDuration(Duration::from_secs(5400)).to_string(),
        "1h30m"
    );
    assert_eq!(
        HumanDuration(Duration::from_secs(432_000)).to_string(),
        "5d"
    );
}

#[test]
fn domain_names_and_patterns() {
    assert_eq!(
        "Example.TEST.".parse::<DomainName>().map(|d| d.to_string()),
        Ok("example.test".into())
    );
    for bad in [
        "",
        "a..b",
        "-a.test",
        "a-.test",
        "a b.test",
        "ex@mple.test",
        "xn--a.test",
        "192.0.2.1",
        "[192.0.2.1]",
    ] {
        assert!(
            bad.parse::<DomainName>().is_err(),
            "{bad:?} should be refused"
        );
    }
    let p = |s: &str| s.parse::<DomainPattern>().unwrap_or(DomainPattern::Any);
    let d = |s: &str| s.parse::<MailDomain>().unwrap_or_else(|e| panic!("{e}"));
    assert!(p("*.fabrikam.test").matches(&d("mx.fabrikam.test")));
    assert!(!p("*.fabrikam.test").matches(&d("fabrikam.test")));
    assert!(!p("*.fabrikam.test").matches(&d("notfabrikam.test")));
    assert!(p("fabrikam.test").matches(&d("FABRIKAM.test")));
    // U-labels are accepted in the configuration, in canonical form.
    assert_eq!(p("*.Bücher.test").to_string(), "*.xn--bcher-kva.test");
    assert!(p("bücher.test").matches(&d("xn--bcher-kva.test")));
    assert!(p("*.xn--bcher-kva.test").matches(&d("mx.BÜCHER.test.")));
    // Address literals match only themselves, and `*` everything.
    assert!(p("[192.0.2.1]").matches(&d("[192.0.2.1]")));
    assert!(p("[IPv6:2001:db8::1]").matches(&d("[IPv6:2001:DB8:0:0::1]")));
    assert!(!p("[192.0.2.1]").matches(&d("[192.0.2.2]")));
    assert!(p("*").matches(&d("[192.0.2.1]")));
    assert!(p("*").covers(&p("[192.0.2.1]")));
    assert!(!p("[192.0.2.1]").covers(&p("*")));
    assert!(!p("*.test").covers(&p("[192.0.2.1]")));
    assert!(p("[192.0.2.1]").specificity() > p("*.a.test").specificity());
    assert!("[192.0.2.1]".parse::<NamePattern>().is_err());
    assert!(p("*").covers(&p("*.a.test")));
    assert!(p("*.a.test").covers(&p("*.b.a.test")));
    assert!(p("*.a.test").covers(&p("b.a.test")));
    assert!(!p("*.a.test").covers(&p("a.test")));
    assert!(!p("a.test").covers(&p("*.a.test")));
    assert!(p("a.test").specificity() > p("*.a.test").specificity());
    assert!(p("*.b.a.test").specificity() > p("*.a.test").specificity());
    assert!("mail.*.test".parse::<DomainPattern>().is_err());
    assert!("*".parse::<NamePattern>().is_err());
}

#[test]
fn host_ports() {
    let h = |s: &str| s.parse::<HostPort>().map(|h| h.to_string());
    assert_eq!(h("mx.fabrikam.test:25"), Ok("mx.fabrikam.test:25".into()));
    assert_eq!(h("mx.fabrikam.test"), Ok("mx.fabrikam.test:25".into()));
    assert_eq!(
        h("[mx.fabrikam.test]:587"),
        Ok("mx.fabrikam.test:587".into())
    );
    assert_eq!(h("192.0.2.1:2525"), Ok("192.0.2.1:2525".into()));
    assert_eq!(h("[2001:db8::1]:25"), Ok("[2001:db8::1]:25".into()));
    for bad in [
        "2001:db8::1",
        "mx:0",
        "mx:99999",
        "mx:",
        "[::1",
        "bad host:25",
    ] {
        assert!(h(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn networks_and_fingerprints() {
    let net = |s: &str| s.parse::<Cidr>();
    assert!(net("10.0.0.0/8")
        .is_ok_and(|n| n.contains("10.1.2.3".parse().unwrap_or(IpAddr::from([0; 4])))));
    assert!(net("10.0.0.0/8")
        .is_ok_and(|n| n.contains("::ffff:10.1.2.3".parse().unwrap_or(IpAddr::from([0; 4])))));
    assert!(net("2001:db8::/32").is_ok());
    assert!(net("192.0.2.7").is_ok_and(|n| n.0.prefix_len() == 32));
    assert_eq!(
        net("10.0.0.1/8").err(),
        Some("network \"10.0.0.1/8\" has host bits set: did you mean \"10.0.0.0/8\"?".into())
    );
    assert!(net("10.0.0.0/33").is_err());
    let hex = "ab".repeat(32);
    assert_eq!(
        format!("sha256:{hex}")
            .parse::<Fingerprint>()
            .map(|f| f.to_string()),
        Ok(format!("sha256:{hex}"))
    );
    let colons = vec!["AB"; 32].join(":");
    assert_eq!(
        format!("sha256:{colons}")
            .parse::<Fingerprint>()
            .map(|f| f.0),
        Ok([0xab; 32])
    );
    // What `openssl x509 -noout -fingerprint -sha256` prints (OpenSSL 3
    // and 1.1 spellings), and its value alone.
    for openssl in [
        format!("sha256 Fingerprint={colons}"),
        format!("SHA256 Fingerprint={colons}\n"),
        colons.clone(),
    ] {
        assert_eq!(openssl.parse::<Fingerprint>().map(|f| f.0), Ok([0xab; 32]));
    }
    assert!(hex.parse::<Fingerprint>().is_err());
    assert!("sha256:abcd".parse::<Fingerprint>().is_err());
    assert!(colons[3..].parse::<Fingerprint>().is_err());
    assert!("md5 Fingerprint=AB:CD".parse::<Fingerprint>().is_err());
}

#[test]
fn tls_versions() {
    assert_eq!("1.3".parse(), Ok(TlsVersion::Tls13));
    assert!("1.1"
        .parse::<TlsVersion>()
        .is_err_and(|e| e.contains("not offered")));
}
