use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(Path::new("/etc/tlsrelay/t.toml"), text.to_string())
}

#[test]
fn minimal_file_gets_documented_defaults() {
    let config =
        parse("[server]\nhostname = \"relay.example.test\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.listen[0].0.to_string(), "0.0.0.0:25");
    assert_eq!(config.server.max_message_size, values::Size(35 << 20));
    assert_eq!(config.queue.retry_intervals.len(), 7);
    assert_eq!(config.delivery.mx_port, 25);
    assert_eq!(config.dns.timeout, None, "the resolver's own timeout");
    assert!(config.admin.metrics_listen.is_none());
    assert_eq!(
        config.server.spool_dir,
        Path::new("/var/lib/tlsrelay/spool")
    );
}

#[test]
fn relative_paths_resolve_against_the_file() {
    let config = parse(
        "[server]\nhostname = \"r.test\"\nspool_dir = \"../var/spool\"\n[tls]\ncert = \"c.pem\"\nkey = \"/abs/k.pem\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.spool_dir, Path::new("/etc/var/spool"));
    assert_eq!(
        config.tls.cert.as_deref(),
        Some(Path::new("/etc/tlsrelay/c.pem"))
    );
    assert_eq!(config.tls.key.as_deref(), Some(Path::new("/abs/k.pem")));
}

#[test]
fn several_errors_come_back_in_file_order() {
    let errors = parse(
        "[server]\nhostname = \"r.test\"\nmax_recipients = 0\n[[outbound]]\nname = \"x\"\nrecipient_domains = [\"a.test\"]\ntls = \"pinned\"\n",
    )
    .err()
    .map(|e| e.to_string());
    assert_eq!(
        errors.as_deref(),
        Some(
            "/etc/tlsrelay/t.toml:3:18: server.max_recipients: must be at least 1\n\
             /etc/tlsrelay/t.toml:4:1: outbound[0].fingerprints: tls = \"pinned\" needs fingerprints: the \"sha256:…\" values from `tlsrelay cert-info`"
        )
    );
}

#[test]
fn port_zero_listeners_are_not_duplicates() {
    let config = parse(
        "[server]\nhostname = \"r.test\"\nlisten = [\"127.0.0.1:0\"]\nlisten_implicit_tls = [\"127.0.0.1:0\"]\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
    );
    assert!(
        config.is_ok(),
        "{}",
        config.err().map(|e| e.to_string()).unwrap_or_default()
    );
}

#[test]
fn phase_timeout_scale_defaults_to_the_rfc_deadlines_and_is_bounded() {
    let config = parse("[server]\nhostname = \"r.test\"\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.delivery.phase_timeout_scale, 1.0);
    let fast = parse("[server]\nhostname = \"r.test\"\n[delivery]\nphase_timeout_scale = 0.005\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fast.delivery.phase_timeout_scale, 0.005);
    for bad in ["0.0", "-1.0", "11.0", "nan"] {
        let errors = parse(&format!(
            "[server]\nhostname = \"r.test\"\n[delivery]\nphase_timeout_scale = {bad}\n"
        ))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            errors.contains("delivery.phase_timeout_scale: must be more than 0"),
            "{bad}: {errors}"
        );
    }
}

/// A short `max_age` alone is never an error: the delay notice that the
/// user did not set adapts to half of it. Only an explicit
/// `delay_warning_after` must be shorter than `max_age`; `"0s"` is off.
#[test]
fn the_default_delay_notice_adapts_to_a_short_max_age() {
    let queue = |keys: &str| {
        parse(&format!(
            "[server]\nhostname = \"relay.example.test\"\n[queue]\n{keys}"
        ))
        .map(|c| c.queue.delay_warning().map(|d| d.to_string()))
    };
    let hours =
        |h: u64| Some(values::HumanDuration(std::time::Duration::from_secs(h * 3600)).to_string());
    assert_eq!(queue("").ok(), Some(hours(4)));
    assert_eq!(queue("max_age = \"2h\"\n").ok(), Some(hours(1)));
    assert_eq!(
        queue("max_age = \"2h\"\ndelay_warning_after = \"0s\"\n").ok(),
        Some(None)
    );
    assert_eq!(
        queue("max_age = \"5h\"\ndelay_warning_after = \"2h\"\n").ok(),
        Some(hours(2))
    );
    let explicit = queue("max_age = \"2h\"\ndelay_warning_after = \"4h\"\n");
    assert!(
        explicit
            .as_ref()
            .is_err_and(|e| e.to_string().contains("queue.delay_warning_after")),
        "{explicit:?}"
    );
}

/// Issue 12 item 3: U-labels (and other spellings) are accepted wherever
/// a domain is configured, and kept in the one canonical A-label form
/// that every comparison uses; address literals are accepted domains.
#[test]
fn every_domain_key_takes_u_labels_in_canonical_form() {
    let config = parse(
        "[server]\nhostname = \"Relay.Bücher.test\"\n[tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = [\"ca\"]\n\
         [relay]\naccepted_domains = [\"bücher.test\", \"[192.0.2.1]\"]\n\
         [[inbound]]\nname = \"partner\"\ntls_client_cert_names = [\"mail.ｐａｒｔｎｅｒ.test\"]\n\
         sender_domains = [\"*.partner.test\", \"faß.test\"]\nrestrict_sender_domains = true\n\
         [[outbound]]\nname = \"in\"\nrecipient_domains = [\"BÜCHER.test.\", \"[IPv6:::ffff:192.0.2.1]\"]\n\
         smarthosts = [\"mx.bücher.test:25\"]\ntls = \"verify-domain\"\ntls_domains = [\"*.bücher.test\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let show = |items: &[values::DomainPattern]| -> Vec<String> {
        items.iter().map(ToString::to_string).collect()
    };
    assert_eq!(config.server.hostname.as_str(), "relay.xn--bcher-kva.test");
    assert_eq!(
        show(&config.relay.accepted_domains),
        ["xn--bcher-kva.test", "[192.0.2.1]"]
    );
    let inbound = &config.inbound[0];
    assert_eq!(
        inbound.tls_client_cert_names[0].to_string(),
        "mail.partner.test"
    );
    assert_eq!(
        show(&inbound.sender_domains),
        ["*.partner.test", "xn--fa-hia.test"]
    );
    let outbound = &config.outbound[0];
    assert_eq!(
        show(&outbound.recipient_domains),
        ["xn--bcher-kva.test", "[192.0.2.1]"]
    );
    assert_eq!(
        outbound.smarthosts[0].to_string(),
        "mx.xn--bcher-kva.test:25"
    );
    assert_eq!(outbound.tls_domains[0].to_string(), "*.xn--bcher-kva.test");
}
