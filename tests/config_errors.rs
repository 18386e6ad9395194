//! Invalid configurations: each fails with its own message, placed at the
//! right line and column, in the form `FILE:LINE:COL: key.path: message`.

use std::path::Path;

use tlsrelay::config::Config;

const BASE: &str = "[server]\nhostname = \"relay.example.test\"\nlisten = [\"127.0.0.1:2525\"]\n";
const CERT: &str = "[tls]\ncert = \"relay.crt\"\nkey = \"relay.key\"\n";

/// The errors for BASE followed by `extra`, with the file name stripped.
fn errors(extra: &str) -> String {
    let text = format!("{BASE}{extra}");
    match Config::parse(Path::new("bad.toml"), text) {
        Ok(_) => "accepted".to_string(),
        Err(e) => {
            e.0.iter()
                .map(|e| e.to_string().trim_start_matches("bad.toml:").to_string())
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

fn outbound(fields: &str) -> String {
    format!("[[outbound]]\nname = \"p\"\nrecipient_domains = [\"partner.test\"]\n{fields}")
}

#[test]
fn each_invalid_configuration_gets_its_own_message() {
    let tls_none = CERT.to_string() + &outbound("tls = \"none\"\nclient_cert = true\n");
    let cases: Vec<(&str, String, &str)> = vec![
        ("TOML syntax", "[tls\n".into(), "4:5: TOML syntax: unclosed table, expected `]`"),
        ("unknown section", "[servr]\n".into(), "4:2: servr: unknown key `servr`; known keys here: `server`, `tls`, `relay`, `inbound`, `outbound`, `queue`, `delivery`, `dns`, `mta_sts`, `tls_rpt`, `report`, `admin`"),
        ("misspelt key", "max_recipient = 5\n".into(), "4:1: server.max_recipient: unknown key `max_recipient`; known keys here: `hostname`, `listen`, `listen_implicit_tls`, `spool_dir`, `max_message_size`, `max_recipients`, `max_connections`, `max_connections_per_ip`, `max_hops`, `bare_lf`, `command_timeout`, `data_timeout`, `min_data_rate`, `tls_handshake_timeout`, `max_errors`, `shutdown_grace`"),
        ("missing required key", "[[outbound]]\nname = \"p\"\n".into(), "4:1: outbound[0].recipient_domains: missing: this key is required"),
        ("wrong type", "max_recipients = \"100\"\n".into(), "4:18: server.max_recipients: invalid type: string \"100\", expected a whole number"),
        ("size", "max_message_size = \"35 megs\"\n".into(), "4:20: server.max_message_size: invalid size \"35 megs\": write a number with B, KiB, MiB or GiB (or kB, MB, GB), for example \"25MiB\""),
        ("duration", "[queue]\nretry_intervals = [\"1m\", \"5 minutes\"]\n".into(), "5:26: queue.retry_intervals[1]: invalid duration \"5 minutes\": write a number with a unit (ms, s, m, h, d), for example \"30s\", \"5m\" or \"1h30m\""),
        ("listen address", "listen_implicit_tls = [\"127.0.0.1\"]\n".into(), "4:24: server.listen_implicit_tls[0]: invalid listen address \"127.0.0.1\": write an IP address and port, for example \"0.0.0.0:25\" or \"[::]:25\""),
        ("bare_lf", "bare_lf = \"allow\"\n".into(), "4:11: server.bare_lf: invalid value `allow`; use `reject` or `normalize`"),
        ("TLS 1.1", "[tls]\nmin_version = \"1.1\"\n".into(), "5:15: tls.min_version: TLS 1.1 is not offered: it is broken; use \"1.2\" or \"1.3\""),
        ("CIDR host bits", "[[inbound]]\nname = \"lan\"\nremote_ips = [\"10.0.0.1/8\"]\n".into(), "6:15: inbound[0].remote_ips[0]: network \"10.0.0.1/8\" has host bits set: did you mean \"10.0.0.0/8\"?"),
        ("IPv6 prefix", "[[inbound]]\nname = \"lan\"\nremote_ips = [\"2001:db8::/129\"]\n".into(), "6:15: inbound[0].remote_ips[0]: invalid network \"2001:db8::/129\": write an address with a prefix length, for example \"10.0.0.0/8\" or \"2001:db8::/32\""),
        ("smarthost port", outbound("smarthosts = [\"mx.partner.test:99999\"]\n"), "7:15: outbound[0].smarthosts[0]: invalid port in \"mx.partner.test:99999\": use 1 to 65535"),
        ("domain pattern", "[[outbound]]\nname = \"p\"\nrecipient_domains = [\"mail.*.test\"]\n".into(), "6:22: outbound[0].recipient_domains[0]: invalid domain pattern \"mail.*.test\": write \"example.test\", \"*.example.test\" or \"*\""),
        ("TLS level", outbound("tls = \"verify-everything\"\n"), "7:7: outbound[0].tls: invalid value `verify-everything`; use `none`, `opportunistic`, `required`, `verify-ca`, `verify-host`, `verify-domain`, `pinned`, `dane`"),
        ("pinned without fingerprints", outbound("tls = \"pinned\"\n"), "4:1: outbound[0].fingerprints: tls = \"pinned\" needs fingerprints: the \"sha256:…\" values from `tlsrelay cert-info`"),
        ("fingerprints without pinned", outbound(&format!("tls = \"verify-ca\"\nfingerprints = [\"sha256:{}\"]\n", "ab".repeat(32))), "8:16: outbound[0].fingerprints: fingerprints are only used with tls = \"pinned\" (this connector has tls = \"verify-ca\")"),
        ("fingerprint format", outbound("tls = \"pinned\"\nfingerprints = [\"md5:abcd\"]\n"), "8:17: outbound[0].fingerprints[0]: invalid fingerprint \"md5:abcd\": write \"sha256:\" and 64 hex digits (a pin `tlsrelay cert-info` prints), or the AB:CD:… that `openssl x509 -fingerprint -sha256` prints"),
        ("wildcard-only tls_domains", outbound("tls = \"verify-domain\"\ntls_domains = [\"*\"]\n"), "8:16: outbound[0].tls_domains[0]: \"*\" would accept a certificate for any name: list the names, for example \"mail.example.test\" or \"*.example.test\""),
        ("tls_domains without verify-domain", outbound("tls = \"verify-host\"\ntls_domains = [\"mx.partner.test\"]\n"), "8:15: outbound[0].tls_domains: tls_domains are only used with tls = \"verify-domain\" (this connector has tls = \"verify-host\")"),
        ("client_cert with tls none", tls_none, "11:15: outbound[0].client_cert: a client certificate needs TLS, and this connector has tls = \"none\""),
        ("require_tls without certificate", "[[inbound]]\nname = \"lan\"\nremote_ips = [\"10.0.0.0/8\"]\nrequire_tls = true\n".into(), "7:15: inbound[0].require_tls: requiring STARTTLS needs our certificate: set tls.cert and tls.key"),
        ("implicit TLS without certificate", "listen_implicit_tls = [\"127.0.0.1:4650\"]\n".into(), "4:23: server.listen_implicit_tls: implicit TLS needs our certificate: set tls.cert and tls.key"),
        ("certificate without key", "[tls]\ncert = \"relay.crt\"\n".into(), "5:8: tls.cert: tls.key is missing: a certificate needs its private key"),
        ("duplicate listener", format!("listen_implicit_tls = [\"127.0.0.1:2525\"]\n{CERT}"), "4:24: server.listen_implicit_tls[0]: 127.0.0.1:2525 is already listed at server.listen[0]"),
        ("duplicate inbound names", "[[inbound]]\nname = \"lan\"\nremote_ips = [\"10.0.0.0/8\"]\n[[inbound]]\nname = \"lan\"\nremote_ips = [\"10.1.0.0/16\"]\n".into(), "8:8: inbound[1].name: connector name \"lan\" is already used by inbound[0]"),
        ("connector matching no one", "[[inbound]]\nname = \"lan\"\nallow_relay = true\n".into(), "5:8: inbound[0].name: this connector matches no client: set remote_ips or tls_client_cert_names"),
        ("TLS-RPT without organisation", "[tls_rpt]\nenabled = true\n".into(), "5:11: tls_rpt.enabled: TLS-RPT reports need the sender's organisation: set [tls_rpt] organization_name (for example \"Example Org\"), or enabled = false"),
        ("TLS-RPT with an empty organisation", "[tls_rpt]\nenabled = true\norganization_name = \" \"\n".into(), "6:21: tls_rpt.organization_name: TLS-RPT reports need the sender's organisation: set [tls_rpt] organization_name (for example \"Example Org\"), or enabled = false"),
        ("open relay by IP", "[[inbound]]\nname = \"all\"\nremote_ips = [\"0.0.0.0/0\"]\nallow_relay = true\n".into(), "6:15: inbound[0].remote_ips[0]: allow_relay for 0.0.0.0/0 lets anyone relay (an open relay); list your own networks"),
        ("open relay by halves", "[[inbound]]\nname = \"low\"\nremote_ips = [\"0.0.0.0/1\"]\nallow_relay = true\n[[inbound]]\nname = \"high\"\nremote_ips = [\"10.0.0.0/8\", \"128.0.0.0/1\"]\nallow_relay = true\n".into(), "6:15: inbound[0].remote_ips[0]: the allow_relay networks 0.0.0.0/1, 10.0.0.0/8, 128.0.0.0/1 together cover every IPv4 address, so anyone could relay (an open relay); list your own networks"),
        ("open relay by IPv6 halves", "[[inbound]]\nname = \"v6\"\nremote_ips = [\"::/1\", \"8000::/1\"]\nallow_relay = true\n".into(), "6:15: inbound[0].remote_ips[0]: the allow_relay networks ::/1, 8000::/1 together cover every IPv6 address, so anyone could relay (an open relay); list your own networks"),
        ("client cert names without client CA", format!("{CERT}[[inbound]]\nname = \"partner\"\ntls_client_cert_names = [\"mail.partner.test\"]\n"), "9:25: inbound[0].tls_client_cert_names: client certificates are verified against tls.client_ca, which is empty: add the partner's CA file"),
        ("restrict without sender domains", "[[inbound]]\nname = \"lan\"\nremote_ips = [\"10.0.0.0/8\"]\nrestrict_sender_domains = true\n".into(), "7:27: inbound[0].restrict_sender_domains: needs sender_domains: the domains only this connector may send from"),
        ("two connectors, one domain", format!("{}[[outbound]]\nname = \"q\"\nrecipient_domains = [\"other.test\", \"partner.test\"]\n", outbound("")), "9:36: outbound[1].recipient_domains[1]: partner.test is already claimed by outbound connector \"p\"; a domain can have one route"),
        ("accepted domain loops by MX", "[relay]\naccepted_domains = [\"example.test\"]\n".into(), "5:21: relay.accepted_domains[0]: mail for example.test is accepted here and would be delivered by MX lookup, which points back here (mail loop); add an [[outbound]] connector with recipient_domains = [\"example.test\"] and smarthosts = your internal server"),
        ("accepted domain routed to MX", "[relay]\naccepted_domains = [\"*.example.test\"]\n[[outbound]]\nname = \"all\"\nrecipient_domains = [\"*\"]\n".into(), "5:21: relay.accepted_domains[0]: mail for *.example.test is accepted here and outbound connector \"all\" would deliver it by MX lookup, which points back here (mail loop); give that connector smarthosts, such as your internal server"),
        ("domain with no A-label form", "[[inbound]]\nname = \"p\"\nremote_ips = [\"10.0.0.0/8\"]\nsender_domains = [\"bücher.test\", \"b\u{fffd}cher.test\"]\n".into(), "7:34: inbound[0].sender_domains[1]: domain name \"b\u{fffd}cher.test\" has no IDNA 2008 A-label form (UTS #46 mapping failed)"),
        ("broken A-label", outbound("smarthosts = [\"mx.xn--a.test\"]\n"), "7:15: outbound[0].smarthosts[0]: domain name \"mx.xn--a.test\" has no IDNA 2008 A-label form (UTS #46 mapping failed)"),
        ("IP address as a domain", "[relay]\naccepted_domains = [\"192.0.2.1\"]\n".into(), "5:21: relay.accepted_domains[0]: invalid domain name \"192.0.2.1\": this is an IP address, not a domain name; write the address literal [192.0.2.1]"),
        ("bad address literal", "[relay]\naccepted_domains = [\"[192.0.2.256]\"]\n".into(), "5:21: relay.accepted_domains[0]: invalid address literal \"[192.0.2.256]\": not an IPv4 address; write [192.0.2.1] or [IPv6:2001:db8::1]"),
        ("general address literal", "[relay]\naccepted_domains = [\"[x-tag:abc]\"]\n".into(), "5:21: relay.accepted_domains[0]: invalid address literal \"[x-tag:abc]\": general address literals ([tag:content]) are not supported; write [192.0.2.1] or [IPv6:2001:db8::1]"),
        ("accepted address literal delivered to itself", "[relay]\naccepted_domains = [\"[192.0.2.1]\"]\n".into(), "5:21: relay.accepted_domains[0]: mail for [192.0.2.1] is accepted here and would be delivered straight to that address, which is this relay (mail loop); add an [[outbound]] connector with recipient_domains = [\"[192.0.2.1]\"] and smarthosts = your internal server"),
        ("address literal as a certificate name", outbound("tls = \"verify-domain\"\ntls_domains = [\"[192.0.2.1]\"]\n"), "8:16: outbound[0].tls_domains[0]: \"[192.0.2.1]\" is an address literal; a certificate name is a DNS name, for example \"mail.example.test\" or \"*.example.test\""),
        ("accepting everything", "[relay]\naccepted_domains = [\"*\"]\n".into(), "5:21: relay.accepted_domains[0]: \"*\" would accept mail for every domain from anyone (an open relay); list your domains"),
        ("delay warning after max age", "[queue]\nmax_age = \"1d\"\ndelay_warning_after = \"2d\"\n".into(), "6:23: queue.delay_warning_after: is not shorter than queue.max_age (1d): the warning would never be sent"),
        ("in-flow delay too long", "[queue]\nin_flow_delay = \"11s\"\n".into(), "5:17: queue.in_flow_delay: must be at most 10s (as Postfix's): a client waits that long for each message's 250"),
        ("port out of range", "[delivery]\nmx_port = 70000\n".into(), "5:11: delivery.mx_port: invalid value: integer `70000`, expected a port number from 1 to 65535"),
        ("DNS timeout", "[dns]\ntimeout = \"500ms\"\n".into(), "5:11: dns.timeout: must be at least 1s, for example \"5s\""),
        ("dane with smarthosts", outbound("smarthosts = [\"mx.partner.test\"]\ntls = \"dane\"\n"), "7:14: outbound[0].smarthosts: tls = \"dane\" authenticates the MX hosts of the recipient domain by their TLSA records: remove the smarthosts, or use tls = \"verify-host\" or \"pinned\" for a smarthost"),
        ("dane with DANE off", outbound("tls = \"dane\"\n") + "[delivery]\ndane = false\n", "7:7: outbound[0].tls: tls = \"dane\" needs [delivery] dane = true (it is off, so every message would wait in the queue)"),
        ("dane without DNSSEC", outbound("tls = \"dane\"\n") + "[dns]\ndnssec = false\n", "7:7: outbound[0].tls: tls = \"dane\" needs [dns] dnssec = true: without DNSSEC validation no TLSA record can be trusted"),
        ("nameserver", "[dns]\nnameservers = [\"dns.example.test\"]\n".into(), "5:16: dns.nameservers[0]: invalid nameserver \"dns.example.test\": write an IP address, optionally with a port, for example \"127.0.0.1:5353\""),
    ];
    let mut failures = Vec::new();
    for (name, extra, expected) in &cases {
        let actual = errors(extra);
        if actual != *expected {
            failures.push(format!(
                "{name}:\n  expected: {expected}\n  actual:   {actual}"
            ));
        }
    }
    assert!(cases.len() >= 20);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A public relay network wider than a /16 (IPv6: /32) is allowed with a
/// warning; private ranges and narrower public ones are quiet; a network
/// keyed by client certificate is not an address-only relay.
#[test]
fn wide_public_relay_networks_are_warned_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("wide.toml");
    let text = format!(
        "{BASE}[relay]\naccepted_domains = []\n\
         [[inbound]]\nname = \"lan\"\nremote_ips = [\"10.0.0.0/8\", \"198.50.0.0/15\", \"203.0.113.0/24\", \"2001:db8::/29\"]\nallow_relay = true\n"
    );
    std::fs::write(&file, &text).expect("write");
    let config = Config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = tlsrelay::preflight::check_files(&config)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|w| {
            w.to_string()
                .replace(&file.display().to_string(), "wide.toml")
        })
        .collect();
    assert_eq!(
        warnings,
        [
            "wide.toml:8:29: inbound[0].remote_ips[1]: warning: allow_relay for 198.50.0.0/15 lets every host of a wide public network relay; list only your own mail servers if you can",
            "wide.toml:8:64: inbound[0].remote_ips[3]: warning: allow_relay for 2001:db8::/29 lets every host of a wide public network relay; list only your own mail servers if you can",
        ]
    );
}

/// One run reports every problem it can find: a missing required key, a
/// wrong value, an unknown key and a cross-field error (the open relay)
/// together, in file order. Checks that read a section where a key was
/// refused are left for the next run instead of judging what is left.
#[test]
fn every_problem_is_reported_in_one_run() {
    let text = "[server]\nlisten = [\"127.0.0.1:2525\"]\nmax_hops = \"many\"\n\
                [tls]\nmin_version = \"1.0\"\n\
                [[inbound]]\nname = \"all\"\nremote_ips = [\"0.0.0.0/1\", \"128.0.0.0/1\"]\nallow_relay = true\n\
                [[outbound]]\nname = \"p\"\nrecipient_domains = [\"partner.test\", \"bad..test\"]\ntlss = \"none\"\n\
                [queue]\nmax_age = \"0s\"\n";
    let errors = match Config::parse(Path::new("bad.toml"), text.to_string()) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(
        lines,
        [
            "bad.toml:1:1: server.hostname: missing: this key is required",
            "bad.toml:3:12: server.max_hops: invalid type: string \"many\", expected a whole number",
            "bad.toml:5:15: tls.min_version: TLS 1.0 is not offered: it is broken; use \"1.2\" or \"1.3\"",
            "bad.toml:8:15: inbound[0].remote_ips[0]: the allow_relay networks 0.0.0.0/1, 128.0.0.0/1 together cover every IPv4 address, so anyone could relay (an open relay); list your own networks",
            "bad.toml:12:38: outbound[0].recipient_domains[1]: invalid domain name \"bad..test\": it has an empty label (two dots in a row, or a leading dot)",
            "bad.toml:13:1: outbound[0].tlss: unknown key `tlss`; known keys here: `name`, `recipient_domains`, `smarthosts`, `tls`, `tls_domains`, `ca_file`, `fingerprints`, `client_cert`, `min_tls_version`, `requiretls`",
            "bad.toml:15:11: queue.max_age: must be longer than 0s, for example \"5d\"",
        ],
        "{errors}"
    );
}

/// `[dns] trust_anchor`: check-config reads the DNSKEY file, places a bad
/// record in that file by line and column, and names the anchor in force
/// in its summary (relative to the configuration's folder).
#[test]
fn check_config_reads_the_dnssec_trust_anchor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relay.toml");
    std::fs::write(
        &file,
        format!("{BASE}[dns]\ntrust_anchor = \"keys/anchor.key\"\n"),
    )
    .expect("write config");
    std::fs::create_dir(dir.path().join("keys")).expect("keys folder");
    let anchor = dir.path().join("keys/anchor.key");
    let ksk = "test. IN DNSKEY 257 3 13 MTJrr58Vg1jr+oaNnl1Qof+7yjlklX/HXljAsYKwA95W+NBUY8TCT6F4Fbv1g+fqC1fneJe3JZbuauqIJRjBlA==";
    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
            .args(["check-config", "-c"])
            .arg(&file)
            .output()
            .expect("run check-config");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };

    std::fs::write(
        &anchor,
        format!("; test.\n{ksk}\n   test. IN DS 1 13 2 AB\n"),
    )
    .expect("anchor");
    let (code, text) = check();
    assert_eq!(code, Some(1), "{text}");
    let place = format!("{}:3:4: dns.trust_anchor: ", anchor.display());
    assert!(text.contains(&place) && text.contains("not DS"), "{text}");

    std::fs::write(&anchor, format!("{ksk}\n")).expect("anchor");
    let (code, text) = check();
    assert_eq!(code, Some(0), "{text}");
    let summary = format!(
        "DNSSEC      validated in process, trust anchor {}",
        anchor.display()
    );
    assert!(text.contains(&summary), "{text}");

    std::fs::remove_file(&anchor).expect("remove anchor");
    let (code, text) = check();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("relay.toml:5:16: dns.trust_anchor: ") && text.contains("cannot read"),
        "{text}"
    );
}
