//! The DANE table of DESIGN.md §5b, one block per row, in its order.

use super::*;
use Status::{Bogus, Failed, Insecure, Secure};

fn record(text: &str) -> Tlsa {
    text.parse().expect("test TLSA record")
}

fn failed() -> TlsaAnswer {
    TlsaAnswer::Failed {
        kind: FailKind::TimedOut,
        reason: "no answer".into(),
    }
}

/// Every TLSA answer, for rows that must not depend on it.
fn every_tlsa() -> Vec<Option<TlsaAnswer>> {
    vec![
        None,
        Some(TlsaAnswer::Records(vec![record("3 1 1 00")])),
        Some(TlsaAnswer::SecureDenial),
        Some(TlsaAnswer::Insecure),
        Some(TlsaAnswer::Bogus("x".into())),
        Some(failed()),
    ]
}

#[test]
fn row_1_mx_bogus_defers_the_domain() {
    // | MX RRset bogus | defer the domain (4.7.x), no fallback to A records |
    for addresses in [Secure, Insecure, Bogus, Failed] {
        for tlsa in every_tlsa() {
            let got = outcome(Bogus, addresses, tlsa.as_ref());
            assert!(matches!(got, HostDane::DeferDomain(_)), "{got:?}");
        }
    }
    // Not in the table, same consequence: an MX lookup that failed.
    assert!(matches!(
        outcome(Failed, Secure, None),
        HostDane::DeferDomain(_)
    ));
}

#[test]
fn row_2_insecure_mx_or_addresses_means_no_dane() {
    // | MX or the host's address records insecure | no DANE |
    for tlsa in every_tlsa() {
        let got = outcome(Insecure, Secure, tlsa.as_ref());
        assert_eq!(got, HostDane::NoDane(NoDaneWhy::InsecureMx));
        let got = outcome(Secure, Insecure, tlsa.as_ref());
        assert_eq!(got, HostDane::NoDane(NoDaneWhy::InsecureAddresses));
    }
    assert!(!needs_tlsa(Insecure, Secure) && !needs_tlsa(Secure, Insecure));
    assert!(needs_tlsa(Secure, Secure));
}

#[test]
fn row_3_secure_denial_means_no_dane() {
    // | TLSA securely denied (NXDOMAIN/NODATA with valid proof) | no DANE |
    let got = outcome(Secure, Secure, Some(&TlsaAnswer::SecureDenial));
    assert_eq!(got, HostDane::NoDane(NoDaneWhy::NoTlsa));
    assert_eq!(got.label(), "none");
    // A TLSA answer from an unsigned zone below a signed MX: no DANE either.
    let got = outcome(Secure, Secure, Some(&TlsaAnswer::Insecure));
    assert_eq!(got, HostDane::NoDane(NoDaneWhy::InsecureTlsa));
}

#[test]
fn row_4_bogus_or_failed_tlsa_makes_the_host_unusable() {
    // | TLSA bogus, SERVFAIL or time-out | host unusable: next host, then defer; never "no DANE" |
    let servfail = TlsaAnswer::Failed {
        kind: FailKind::ServFail,
        reason: "SERVFAIL".into(),
    };
    for tlsa in [TlsaAnswer::Bogus("expired".into()), servfail, failed()] {
        let got = outcome(Secure, Secure, Some(&tlsa));
        assert!(
            matches!(got, HostDane::HostUnusable(_)),
            "{tlsa:?} -> {got:?}"
        );
    }
    // Addresses that cannot be had: the host is unusable too.
    for addresses in [Bogus, Failed] {
        let got = outcome(Secure, addresses, Some(&TlsaAnswer::SecureDenial));
        assert!(matches!(got, HostDane::HostUnusable(_)), "{got:?}");
    }
    // A caller that skipped a TLSA lookup it needed gets no "no DANE".
    assert!(matches!(
        outcome(Secure, Secure, None),
        HostDane::HostUnusable(_)
    ));
}

#[test]
fn row_5_a_usable_record_makes_tls_mandatory_and_authenticated() {
    // | TLSA secure with a usable record (usage 2 or 3) | TLS mandatory; authenticated |
    for usable in ["3 1 1 00", "3 0 2 00", "2 1 1 00", "2 0 0 00"] {
        let records = vec![record("1 1 1 00"), record(usable), record("0 0 1 00")];
        let got = outcome(Secure, Secure, Some(&TlsaAnswer::Records(records)));
        assert_eq!(
            got,
            HostDane::Authenticate(vec![record(usable)]),
            "{usable}"
        );
    }
}

#[test]
fn row_6_records_but_none_usable_is_encrypt_only() {
    // | TLSA secure, no usable record | TLS mandatory, unauthenticated |
    for unusable in ["0 0 1 00", "1 1 1 00", "3 2 1 00", "3 1 3 00", "4 1 1 00"] {
        let got = outcome(
            Secure,
            Secure,
            Some(&TlsaAnswer::Records(vec![record(unusable)])),
        );
        assert_eq!(got, HostDane::EncryptOnly, "{unusable}");
        assert_eq!(got.label(), "encrypt-only");
    }
}

#[test]
fn status_reads_checked_answers() {
    let secure: Checked<()> = Ok(Validated {
        value: (),
        security: Security::Secure,
    });
    let insecure: Checked<()> = Ok(Validated {
        value: (),
        security: Security::Insecure,
    });
    let bogus: Checked<()> = Err(Fault::Bogus {
        name: "x".into(),
        reason: "y".into(),
    });
    let failed: Checked<()> = Err(Fault::Failed {
        name: "x".into(),
        kind: FailKind::ServFail,
        reason: "y".into(),
    });
    assert_eq!(Status::of(&secure), Secure);
    assert_eq!(Status::of(&insecure), Insecure);
    assert_eq!(Status::of(&bogus), Bogus);
    assert_eq!(Status::of(&failed), Failed);
}

/// Every level of DESIGN.md §5, in its order.
const LEVELS: [TlsLevel; 8] = [
    TlsLevel::None,
    TlsLevel::Opportunistic,
    TlsLevel::Required,
    TlsLevel::VerifyCa,
    TlsLevel::VerifyHost,
    TlsLevel::VerifyDomain,
    TlsLevel::Pinned,
    TlsLevel::Dane,
];

/// Every outcome for one host, and what each level makes of it: one row
/// per (level, outcome), read against DESIGN.md §5b's precedence.
#[test]
fn each_level_meets_each_dane_outcome_as_section_5b_says() {
    let ee = vec![record("3 1 1 00")];
    let outcomes = [
        HostDane::Off,
        HostDane::NoDane(NoDaneWhy::InsecureMx),
        HostDane::NoDane(NoDaneWhy::InsecureAddresses),
        HostDane::NoDane(NoDaneWhy::InsecureTlsa),
        HostDane::NoDane(NoDaneWhy::NoTlsa),
        HostDane::Authenticate(ee.clone()),
        HostDane::EncryptOnly,
        HostDane::HostUnusable("TLSA bogus".into()),
        HostDane::DeferDomain("the MX answer is DNSSEC-bogus".into()),
    ];
    for level in LEVELS {
        for dane in &outcomes {
            let got = governs(level, dane);
            let want = match (level, dane) {
                // `none`, `verify-*`, `pinned` keep their own check.
                (
                    TlsLevel::None
                    | TlsLevel::VerifyCa
                    | TlsLevel::VerifyHost
                    | TlsLevel::VerifyDomain
                    | TlsLevel::Pinned,
                    _,
                ) => Governs::Level,
                // No DANE: the level as it is.
                (
                    TlsLevel::Opportunistic | TlsLevel::Required,
                    HostDane::Off | HostDane::NoDane(_),
                ) => Governs::Level,
                // DANE upgrades opportunistic and required, and is what `dane` wants.
                (_, HostDane::Authenticate(records)) => {
                    Governs::Dane(Mandatory::Authenticate(records.clone()))
                }
                (TlsLevel::Opportunistic | TlsLevel::Required, HostDane::EncryptOnly) => {
                    Governs::Dane(Mandatory::EncryptOnly)
                }
                // Never "no DANE": next host, or the whole domain waits.
                (_, HostDane::HostUnusable(why)) => {
                    Governs::NextHost(Deferral::DaneHostUnusable(why.clone()))
                }
                (_, HostDane::DeferDomain(why)) => {
                    Governs::DeferDomain(Deferral::DaneMxBogus(why.clone()))
                }
                // `dane` without usable secure TLSA: this host is not used.
                (TlsLevel::Dane, _) => match &got {
                    Governs::NextHost(Deferral::DaneRequired(_)) => got.clone(),
                    other => panic!("dane x {dane:?} -> {other:?}"),
                },
            };
            assert_eq!(got, want, "{level} x {dane:?}");
            if let Governs::NextHost(d) | Governs::DeferDomain(d) = &got {
                assert!(d.to_string().contains("DANE"), "{d}");
                assert_eq!(d.status().to_string().get(..4), Some("4.7."), "{d}");
                assert!(d.dane_word().is_some(), "{d}");
            }
        }
    }
    assert!(
        !asked_for(TlsLevel::None)
            && !asked_for(TlsLevel::VerifyHost)
            && !asked_for(TlsLevel::Pinned)
    );
    assert!(
        asked_for(TlsLevel::Opportunistic)
            && asked_for(TlsLevel::Required)
            && asked_for(TlsLevel::Dane)
    );
}

#[test]
fn labels_are_the_attempt_log_words() {
    let words: Vec<&str> = [
        HostDane::Off,
        HostDane::NoDane(NoDaneWhy::InsecureMx),
        HostDane::NoDane(NoDaneWhy::NoTlsa),
        HostDane::EncryptOnly,
        HostDane::HostUnusable(String::new()),
        HostDane::DeferDomain(String::new()),
    ]
    .iter()
    .map(HostDane::label)
    .collect();
    assert_eq!(
        words,
        [
            "off",
            "insecure",
            "none",
            "encrypt-only",
            "host-unusable",
            "mx-bogus"
        ]
    );
    let required = Deferral::DaneRequired("x".into());
    assert_eq!(required.dane_word(), Some("required-missing"));
    assert_eq!(Deferral::DaneFailed("x".into()).dane_word(), Some("failed"));
}
