use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::config::domain::MailDomain;
use crate::config::Config;

struct FakeDns(HashMap<&'static str, Result<MxAnswer, LookupError>>);

impl Resolve for FakeDns {
    async fn mx(&self, domain: &str) -> Result<MxAnswer, LookupError> {
        self.0
            .get(domain)
            .cloned()
            .unwrap_or(Ok(MxAnswer::NxDomain))
    }
    async fn addresses(&self, _host: &str) -> Result<Vec<IpAddr>, LookupError> {
        Ok(vec![IpAddr::from([127, 0, 0, 2])])
    }
}

fn config() -> Config {
    let text = "[server]\nhostname = \"r.test\"\n\
        [[outbound]]\nname = \"exact\"\nrecipient_domains = [\"fabrikam.test\"]\nsmarthosts = [\"mx1.fabrikam.test:2525\", \"[192.0.2.1]\"]\n\
        [[outbound]]\nname = \"subs\"\nrecipient_domains = [\"*.fabrikam.test\"]\ntls = \"verify-ca\"\n\
        [[outbound]]\nname = \"deeper\"\nrecipient_domains = [\"*.eu.fabrikam.test\"]\ntls = \"required\"\n\
        [[outbound]]\nname = \"idn\"\nrecipient_domains = [\"*.BÜCHER.test\"]\nsmarthosts = [\"mx.bücher.test\"]\n\
        [[outbound]]\nname = \"literal\"\nrecipient_domains = [\"[192.0.2.7]\", \"[IPv6:2001:db8::7]\"]\nsmarthosts = [\"192.0.2.25\"]\n\
        [[outbound]]\nname = \"rest\"\nrecipient_domains = [\"*\"]\ntls = \"none\"\n";
    Config::parse(Path::new("t.toml"), text.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn domain(name: &str) -> MailDomain {
    name.parse().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_most_specific_connector_wins() {
    let config = config();
    let name = |d: &str| connector_for(&config.outbound, &domain(d)).map(|c| c.name.clone());
    assert_eq!(name("fabrikam.test").as_deref(), Some("exact"));
    assert_eq!(name("mail.fabrikam.test").as_deref(), Some("subs"));
    assert_eq!(name("a.eu.fabrikam.test").as_deref(), Some("deeper"));
    assert_eq!(name("eu.fabrikam.test").as_deref(), Some("subs"));
    assert_eq!(name("contoso.test").as_deref(), Some("rest"));
    // Patterns and domains meet in canonical form, however either is spelt.
    assert_eq!(name("mx.xn--bcher-kva.test").as_deref(), Some("idn"));
    assert_eq!(name("mx.ｂüｃｈｅｒ.test").as_deref(), Some("idn"));
    assert_eq!(name("bücher.test").as_deref(), Some("rest"));
    // An address literal: its own connector, else `*` (everything else).
    assert_eq!(name("[192.0.2.7]").as_deref(), Some("literal"));
    assert_eq!(name("[IPv6:2001:DB8:0::7]").as_deref(), Some("literal"));
    assert_eq!(name("[192.0.2.8]").as_deref(), Some("rest"));
    let none: Vec<crate::config::OutboundConnector> = Vec::new();
    assert!(connector_for(&none, &domain("contoso.test")).is_none());
}

#[test]
fn mx_order_by_preference_and_equal_ones_shuffled() {
    let records = vec![
        (20, "c.test".to_string()),
        (10, "b.test".into()),
        (10, "a.test".into()),
        (5, ".".into()),
    ];
    assert_eq!(
        order_mx(records.clone(), |_| {}),
        ["b.test", "a.test", "c.test"]
    );
    assert_eq!(
        order_mx(records, |g| g.reverse()),
        ["a.test", "b.test", "c.test"]
    );
}

#[tokio::test]
async fn hops_from_smarthosts_mx_implicit_mx_and_failures() {
    let config = config();
    let dns = FakeDns(HashMap::from([
        (
            "contoso.test",
            Ok(MxAnswer::Hosts(vec![
                (10, "mx2.contoso.test.".into()),
                (5, "mx1.contoso.test.".into()),
            ])),
        ),
        ("implicit.test", Ok(MxAnswer::NoMx)),
        ("null.test", Ok(MxAnswer::NullMx)),
        (
            "broken.test",
            Err(LookupError {
                name: "broken.test".into(),
                reason: "timed out".into(),
            }),
        ),
    ]));
    let show = |hops: Result<Hops, LookupError>| match hops {
        Ok(Hops::Try(list)) => list
            .iter()
            .map(|h| format!("{}:{}", h.host, h.port))
            .collect::<Vec<_>>()
            .join(" "),
        Ok(Hops::Fail { status, reason }) => format!("fail {status} {reason}"),
        Ok(Hops::MxFault(fault)) => format!("defer {fault}"),
        Err(e) => format!("defer {e}"),
    };
    let exact = connector_for(&config.outbound, &domain("fabrikam.test"))
        .map_or(&[][..], |c| &c.smarthosts);
    assert_eq!(
        show(hops(&dns, exact, &domain("fabrikam.test"), 25, false, |_| {}).await),
        "mx1.fabrikam.test:2525 192.0.2.1:25"
    );
    assert_eq!(
        show(hops(&dns, &[], &domain("contoso.test"), 2525, false, |_| {}).await),
        "mx1.contoso.test:2525 mx2.contoso.test:2525"
    );
    assert_eq!(
        show(hops(&dns, &[], &domain("implicit.test"), 25, false, |_| {}).await),
        "implicit.test:25"
    );
    assert_eq!(
        show(hops(&dns, &[], &domain("null.test"), 25, false, |_| {}).await),
        "fail 5.1.10 null.test accepts no mail (null MX, RFC 7505)"
    );
    assert_eq!(
        show(hops(&dns, &[], &domain("nowhere.test"), 25, false, |_| {}).await),
        "fail 5.1.2 domain nowhere.test does not exist"
    );
    assert_eq!(
        show(hops(&dns, &[], &domain("broken.test"), 25, false, |_| {}).await),
        "defer DNS lookup for broken.test failed: timed out"
    );
    // An address literal is its own next hop, on the MX port, no lookup
    // (FakeDns would say NXDOMAIN), unless a connector has smarthosts.
    assert_eq!(
        show(hops(&dns, &[], &domain("[192.0.2.9]"), 2525, false, |_| {}).await),
        "192.0.2.9:2525"
    );
    assert_eq!(
        show(hops(&dns, &[], &domain("[IPv6:2001:db8::9]"), 25, false, |_| {}).await),
        "[2001:db8::9]:25"
    );
    let literal =
        connector_for(&config.outbound, &domain("[192.0.2.7]")).map_or(&[][..], |c| &c.smarthosts);
    assert_eq!(
        show(hops(&dns, literal, &domain("[192.0.2.7]"), 25, false, |_| {}).await),
        "192.0.2.25:25"
    );
}

#[test]
fn an_mx_answer_that_failed_waits_as_a_dns_failure_a_bogus_one_as_a_security_one() {
    let bogus = Fault::Bogus {
        name: "example.test".into(),
        reason: "RRSIG expired".into(),
    };
    let (word, deferral) = mx_fault(TlsLevel::Opportunistic, &bogus);
    assert_eq!(
        (word, deferral.status().to_string()),
        ("mx-bogus", "4.7.5".into())
    );
    assert!(deferral.to_string().contains("RRSIG expired"), "{deferral}");
    let failed = Fault::Failed {
        name: "example.test".into(),
        kind: FailKind::ServFail,
        reason: "server failure".into(),
    };
    let (word, deferral) = mx_fault(TlsLevel::Opportunistic, &failed);
    assert_eq!(
        (word, deferral.status().to_string()),
        ("mx-failed", "4.4.3".into())
    );
    assert_eq!(deferral.dane_word(), Some("mx-failed"));
    assert!(deferral.to_string().contains("SERVFAIL"), "{deferral}");
}
