//! The MTA-STS policy parser (`tlsrelay::mta_sts::policy::parse`, RFC 8461
//! §3.2) on any bytes a policy server may send. Asserts that it never
//! panics and that whatever it accepts holds the RFC's promises:
//!
//! * `max_age` is at most 31557600;
//! * a mode other than `none` has at least one `mx` pattern;
//! * every pattern is lower case, without a trailing dot, and a wildcard
//!   only as a whole first label (`*.`);
//! * every pattern matches itself as a host, and a wildcard matches one
//!   label in front of its suffix;
//! * the policy's lines, joined with CRLF, parse to the same policy.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsrelay::mta_sts::policy::{parse, Mode, MAX_AGE_CAP};

fuzz_target!(|data: &[u8]| {
    let Ok(policy) = parse(data) else {
        return;
    };
    assert!(policy.max_age <= MAX_AGE_CAP);
    assert!(policy.mode == Mode::None || !policy.mx.is_empty());
    for pattern in &policy.mx {
        assert_eq!(pattern, &pattern.to_ascii_lowercase());
        assert!(!pattern.ends_with('.'));
        let name = pattern.strip_prefix("*.").unwrap_or(pattern);
        assert!(!name.contains('*'), "{pattern:?}");
        match pattern.strip_prefix("*.") {
            Some(suffix) => {
                assert!(policy.matches(&format!("a.{suffix}")), "{pattern:?}");
            }
            None => assert!(policy.matches(pattern), "{pattern:?}"),
        }
    }
    let again = parse(policy.lines.join("\r\n").as_bytes()).expect("its own lines parse");
    assert_eq!(again, policy);
});
