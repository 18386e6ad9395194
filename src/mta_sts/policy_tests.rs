use super::*;
use proptest::prelude::*;

const GOOD: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n";

#[test]
fn a_good_policy() {
    let policy = parse(GOOD.as_bytes()).unwrap();
    assert_eq!(policy.mode, Mode::Enforce);
    assert_eq!(policy.mx, ["mx1.example.com", "*.example.net"]);
    assert_eq!(policy.max_age, 86400);
    assert_eq!(policy.lines.len(), 5);
    assert_eq!(policy.lines[0], "version: STSv1");
}

/// Mode, max_age and the number of mx patterns, or the error.
type Expected = Result<(Mode, u64, usize), PolicyError>;

#[test]
fn table() {
    use PolicyError::{BadMx, MaxAge, NoMx, NotText, Version};
    let cases: &[(&str, Expected)] = &[
        (GOOD, Ok((Mode::Enforce, 86400, 2))),
        // LF only, blanks around values, unknown keys ignored.
        (
            "version:STSv1\nmode:  testing \nmx: a.example\nmax_age: 5\nfoo: bar\n",
            Ok((Mode::Testing, 5, 1)),
        ),
        (
            "version: STSv1\nmode: none\nmax_age: 60\n",
            Ok((Mode::None, 60, 0)),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999\n",
            Err(MaxAge),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 9999999999\n",
            Ok((Mode::Enforce, MAX_AGE_CAP, 1)),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\n",
            Err(MaxAge),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
            Err(MaxAge),
        ),
        ("version: STSv1\nmode: enforce\nmax_age: 60\n", Err(NoMx)),
        ("version: STSv1\nmode: testing\nmax_age: 60\n", Err(NoMx)),
        (
            "version: STSv2\nmode: enforce\nmx: a\nmax_age: 60\n",
            Err(Version),
        ),
        ("mode: enforce\nmx: a\nmax_age: 60\n", Err(Version)),
        (
            "version: STSv1\nmode: strict\nmx: a\nmax_age: 60\n",
            Err(PolicyError::Mode),
        ),
        (
            "version: STSv1\nmx: a\nmax_age: 60\n",
            Err(PolicyError::Mode),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: bad host\nmax_age: 60\n",
            Err(BadMx("bad host".into())),
        ),
        ("", Err(Version)),
        ("<html>not a policy</html>", Err(Version)),
    ];
    for (text, want) in cases {
        let got = parse(text.as_bytes()).map(|p| (p.mode, p.max_age, p.mx.len()));
        assert_eq!(&got, want, "{text:?}");
    }
    assert_eq!(parse(b"\xff\xfe"), Err(NotText));
}

#[test]
fn mx_matching() {
    let policy = parse(GOOD.as_bytes()).unwrap();
    for (host, want) in [
        ("mx1.example.com", true),
        ("MX1.Example.COM.", true),
        ("mx2.example.com", false),
        ("a.example.net", true),
        ("a.b.example.net", false),
        ("example.net", false),
        (".example.net", false),
        ("xexample.net", false),
    ] {
        assert_eq!(policy.matches(host), want, "{host}");
    }
}

proptest! {
    /// Any bytes: an answer, never a panic.
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    /// A policy written out parses back to itself, with LF or CRLF.
    #[test]
    fn round_trip(
        mode in prop_oneof![Just("enforce"), Just("testing")],
        numbers in proptest::collection::vec((0u32..100_000, 0u8..26), 1..5),
        max_age in 0u64..100_000_000,
        crlf in any::<bool>(),
    ) {
        let hosts: Vec<String> = numbers
            .iter()
            .map(|(n, letter)| format!("mx{n}.{}.example", char::from(b'a' + letter)))
            .collect();
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("version: STSv1{end}mode: {mode}{end}");
        for host in &hosts {
            text.push_str(&format!("mx: {host}{end}"));
        }
        text.push_str(&format!("max_age: {max_age}{end}"));
        let policy = parse(text.as_bytes()).unwrap();
        prop_assert_eq!(policy.mode.word(), mode);
        prop_assert_eq!(&policy.mx, &hosts);
        prop_assert_eq!(policy.max_age, max_age.min(MAX_AGE_CAP));
        for host in &hosts {
            prop_assert!(policy.matches(host));
        }
    }
}

#[test]
fn stray_carriage_returns_do_not_change_the_policy_on_a_second_reading() {
    // Found by the fuzzer: a line ending CR CR LF kept one CR in its
    // stored line, so the policy's own lines parsed to another policy.
    let text = b"version: STSv1\r\nmode: enforce\r\nmx: mail\n\r\r.e\rxample.com\r\nmx: *.example.net\r\nmax_age: 604800\r\r";
    let policy = parse(text).unwrap();
    assert_eq!(policy.max_age, 604800);
    assert!(
        policy.lines.iter().all(|l| l.trim() == l),
        "{:?}",
        policy.lines
    );
    let again = parse(policy.lines.join("\r\n").as_bytes()).unwrap();
    assert_eq!(again, policy);
}
