//! DESIGN.md §5, row by row: every cell of the table is one assertion.

use super::*;

/// The short form of an answer, as the table writes it.
trait Cell {
    fn cell(&self) -> &'static str;
}

impl Cell for AfterEhlo {
    fn cell(&self) -> &'static str {
        match self {
            AfterEhlo::Plaintext(_) => "plaintext",
            AfterEhlo::StartTls => "starttls",
            AfterEhlo::Defer(_) => "defer",
        }
    }
}

impl Cell for AfterFailure {
    fn cell(&self) -> &'static str {
        match self {
            AfterFailure::NextRung(_) => "next rung",
            AfterFailure::Defer(_) => "defer",
        }
    }
}

impl Cell for AfterHandshake {
    fn cell(&self) -> &'static str {
        match self {
            AfterHandshake::Deliver(_) => "deliver",
            AfterHandshake::Defer(_) => "defer",
        }
    }
}

fn cell(answer: impl Cell) -> &'static str {
    answer.cell()
}

/// The first connection's EHLO, STARTTLS offered or not.
fn ehlo(level: TlsLevel, offered: bool) -> AfterEhlo {
    after_ehlo(level, Rung::Modern, false, offered)
}

fn handshake(what: &str) -> Failure {
    Failure::Handshake(what.into())
}

fn checks(chain: bool, name: bool, pinned: bool) -> Checks {
    Checks {
        chain: if chain {
            Ok(())
        } else {
            Err("self-signed".into())
        },
        host: if name {
            Ok(())
        } else {
            Err("certificate is not valid for mx.fabrikam.test (it names: mx.b.test)".into())
        },
        domain: if name {
            Ok(())
        } else {
            Err("certificate for mx.b.test not valid for fabrikam.test".into())
        },
        pinned,
    }
}

#[test]
fn verify_host_reads_the_host_check_and_verify_domain_the_domain_check() {
    let host_only = Checks {
        domain: Err("certificate for mx.b.test not valid for fabrikam.test".into()),
        ..checks(true, true, false)
    };
    let domain_only = Checks {
        host: Err("certificate is not valid for 192.0.2.1 (it names: mx.b.test)".into()),
        ..checks(true, true, false)
    };
    for (level, checks, expected) in [
        (TlsLevel::VerifyHost, &host_only, "deliver"),
        (TlsLevel::VerifyDomain, &host_only, "defer"),
        (TlsLevel::VerifyHost, &domain_only, "defer"),
        (TlsLevel::VerifyDomain, &domain_only, "deliver"),
    ] {
        assert_eq!(cell(after_handshake(level, checks)), expected, "{level}");
    }
    // Below verify-host the note is about the host, as the log line says.
    let note = match after_handshake(TlsLevel::Required, &domain_only) {
        AfterHandshake::Deliver(note) => note,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        note,
        Note::NameMismatch("certificate is not valid for 192.0.2.1 (it names: mx.b.test)".into())
    );
    assert_eq!(
        note.to_string(),
        "trusted chain, name mismatch: certificate is not valid for 192.0.2.1 (it names: mx.b.test)"
    );
}

#[test]
fn the_table_of_design_section_5() {
    use TlsLevel::*;
    // level, STARTTLS not offered, handshake fails, chain does not verify, name does not match
    let table = [
        (None, "plaintext", "-", "-", "-"),
        (
            Opportunistic,
            "plaintext",
            "next rung",
            "deliver",
            "deliver",
        ),
        (Required, "defer", "defer", "deliver", "deliver"),
        (VerifyCa, "defer", "defer", "defer", "deliver"),
        (VerifyHost, "defer", "defer", "defer", "defer"),
        (VerifyDomain, "defer", "defer", "defer", "defer"),
    ];
    for (level, not_offered, handshake_fails, bad_chain, bad_name) in table {
        assert_eq!(
            cell(ehlo(level, false)),
            not_offered,
            "{level}: STARTTLS not offered"
        );
        if level == None {
            assert_eq!(
                cell(ehlo(level, true)),
                "plaintext",
                "none never tries STARTTLS"
            );
            continue;
        }
        assert_eq!(cell(ehlo(level, true)), "starttls", "{level}: offered");
        assert_eq!(
            cell(after_failure(
                level,
                Rung::Modern,
                true,
                &handshake("alert")
            )),
            handshake_fails,
            "{level}: handshake fails"
        );
        assert_eq!(
            cell(after_handshake(level, &checks(false, true, false))),
            bad_chain,
            "{level}: chain does not verify"
        );
        assert_eq!(
            cell(after_handshake(level, &checks(true, false, false))),
            bad_name,
            "{level}: name does not match"
        );
        assert_eq!(
            cell(after_handshake(level, &checks(true, true, false))),
            "deliver",
            "{level}: all good"
        );
    }
}

#[test]
fn pinned_lets_the_fingerprint_decide() {
    assert_eq!(cell(ehlo(TlsLevel::Pinned, false)), "defer");
    assert_eq!(
        cell(after_failure(
            TlsLevel::Pinned,
            Rung::Modern,
            true,
            &handshake("x")
        )),
        "defer"
    );
    for (chain, name) in [(false, false), (true, true), (false, true), (true, false)] {
        assert_eq!(
            cell(after_handshake(
                TlsLevel::Pinned,
                &checks(chain, name, true)
            )),
            "deliver"
        );
        assert_eq!(
            cell(after_handshake(
                TlsLevel::Pinned,
                &checks(chain, name, false)
            )),
            "defer"
        );
    }
}

#[test]
fn the_opportunistic_ladder_goes_down_to_plaintext_only_when_allowed() {
    let level = TlsLevel::Opportunistic;
    assert_eq!(
        after_failure(level, Rung::Modern, true, &handshake("x")),
        AfterFailure::NextRung(Rung::Tls12)
    );
    assert_eq!(
        after_failure(level, Rung::Tls12, true, &handshake("x")),
        AfterFailure::NextRung(Rung::Plaintext)
    );
    assert_eq!(
        after_failure(level, Rung::Tls12, false, &handshake("x")),
        AfterFailure::Defer(Deferral::FallbackOff(handshake("x")))
    );
    // Fallback off: the modern rung's failure still leads to TLS 1.2.
    assert_eq!(
        after_failure(level, Rung::Modern, false, &handshake("x")),
        AfterFailure::NextRung(Rung::Tls12)
    );
    assert_eq!(
        after_ehlo(level, Rung::Plaintext, false, true),
        AfterEhlo::Plaintext(Plaintext::LowerRungs),
        "rung 3 never tries STARTTLS"
    );
    assert_eq!(
        after_ehlo(level, Rung::Plaintext, true, true),
        AfterEhlo::Plaintext(Plaintext::MemorySkipped),
        "the memory started the ladder there"
    );
    assert_eq!(
        after_ehlo(level, Rung::Tls12, false, false),
        AfterEhlo::Plaintext(Plaintext::NotOffered)
    );
    assert!(Plaintext::LowerRungs.is_fallback() && Plaintext::MemorySkipped.is_fallback());
    assert!(!Plaintext::NotOffered.is_fallback() && !Plaintext::LevelNone.is_fallback());
    assert_eq!(Rung::Modern.below(), Some(Rung::Tls12));
    assert_eq!(Rung::Plaintext.below(), Option::None);
}

#[test]
fn reasons_name_what_failed() {
    let mismatch = "certificate for mx.b.test not valid for fabrikam.test";
    assert_eq!(
        after_handshake(TlsLevel::VerifyDomain, &checks(true, false, false)),
        AfterHandshake::Defer(Deferral::NameMismatch(mismatch.into()))
    );
    assert_eq!(
        ehlo(TlsLevel::Required, false),
        AfterEhlo::Defer(Deferral::NoStartTls)
    );
    assert_eq!(
        after_handshake(TlsLevel::Opportunistic, &checks(false, true, false)),
        AfterHandshake::Deliver(Note::Untrusted("self-signed".into()))
    );
    // Each deferral's status and its text in the log and the queue.
    let refused = Failure::RefusedAfterTls("TLSv1.3 x, then EHLO refused".into());
    for (deferral, status, text) in [
        (Deferral::NoStartTls, "4.7.4", "STARTTLS not offered"),
        (
            Deferral::TlsFailed(handshake("handshake: eof")),
            "4.7.5",
            "TLS failed: handshake: eof",
        ),
        (
            Deferral::FallbackOff(handshake("handshake: eof")),
            "4.7.5",
            "TLS failed (handshake: eof) and opportunistic_fallback is off",
        ),
        (
            Deferral::ClientCertWanted("TLSv1.3 x, then EHLO refused".into()),
            "4.7.1",
            "the server wants a client certificate (it refused the session right after the TLS handshake: TLSv1.3 x, then EHLO refused)",
        ),
        (
            Deferral::Untrusted("expired".into()),
            "4.7.5",
            "certificate not trusted: expired",
        ),
        (Deferral::NameMismatch(mismatch.into()), "4.7.5", mismatch),
        (
            Deferral::NotPinned,
            "4.7.5",
            "certificate matches none of the pinned fingerprints",
        ),
    ] {
        assert_eq!((deferral.status().to_string(), deferral.to_string()), (status.to_string(), text.to_string()));
    }
    assert_eq!(
        after_failure(TlsLevel::Required, Rung::Modern, true, &refused),
        AfterFailure::Defer(Deferral::ClientCertWanted(
            "TLSv1.3 x, then EHLO refused".into()
        ))
    );
}

/// DESIGN.md §5: "a server that refuses EHLO right after the handshake (a
/// TLS 1.3 server demanding a client certificate)" is a failed rung for
/// `opportunistic`, a 4.7.x deferral saying so for every forced level.
#[test]
fn a_refusal_right_after_the_handshake_is_a_failed_rung() {
    let refused = Failure::RefusedAfterTls(
        "EHLO after STARTTLS refused: 421 4.7.1 No client certificate presented".into(),
    );
    let opportunistic = TlsLevel::Opportunistic;
    assert_eq!(
        after_failure(opportunistic, Rung::Modern, true, &refused),
        AfterFailure::NextRung(Rung::Tls12)
    );
    assert_eq!(
        after_failure(opportunistic, Rung::Tls12, true, &refused),
        AfterFailure::NextRung(Rung::Plaintext)
    );
    assert_eq!(
        cell(after_failure(opportunistic, Rung::Tls12, false, &refused)),
        "defer",
        "no plaintext with opportunistic_fallback off"
    );
    for level in [
        TlsLevel::Required,
        TlsLevel::VerifyCa,
        TlsLevel::VerifyHost,
        TlsLevel::VerifyDomain,
        TlsLevel::Pinned,
    ] {
        assert_eq!(
            after_failure(level, Rung::Modern, true, &refused),
            AfterFailure::Defer(Deferral::ClientCertWanted(
                "EHLO after STARTTLS refused: 421 4.7.1 No client certificate presented".into()
            )),
            "{level}"
        );
        assert_eq!(
            after_failure(level, Rung::Modern, true, &handshake("x")),
            AfterFailure::Defer(Deferral::TlsFailed(handshake("x"))),
            "{level}"
        );
    }
}

/// The memory's say on the ladder's start: (what it remembers of modern,
/// of tls12; fallback) -> (first rung, note). Only `opportunistic` asks.
#[test]
fn the_memory_moves_the_start_of_the_opportunistic_ladder_only() {
    use Remembered::{Broken, No, RetryDue};
    let table = [
        ((No, No), true, Rung::Modern, "-"),
        ((No, Broken), true, Rung::Modern, "-"),
        (
            (RetryDue, Broken),
            true,
            Rung::Modern,
            "retried-rung-modern",
        ),
        ((Broken, No), true, Rung::Tls12, "skipped-rung-modern"),
        (
            (Broken, RetryDue),
            true,
            Rung::Tls12,
            "skipped-rung-modern,retried-rung-tls12",
        ),
        (
            (Broken, Broken),
            true,
            Rung::Plaintext,
            "skipped-rung-modern,skipped-rung-tls12",
        ),
        // Never a plaintext start when plaintext is not allowed at all.
        ((Broken, Broken), false, Rung::Tls12, "skipped-rung-modern"),
    ];
    for ((modern, tls12), fallback, rung, note) in table {
        let remembered = |r: Rung| match r {
            Rung::Modern => modern,
            Rung::Tls12 => tls12,
            Rung::Plaintext => No,
        };
        let start = first_rung(TlsLevel::Opportunistic, fallback, remembered);
        assert_eq!(
            (start.rung, start.note().as_str()),
            (rung, note),
            "{modern:?} {tls12:?} {fallback}"
        );
        for level in [
            TlsLevel::None,
            TlsLevel::Required,
            TlsLevel::VerifyCa,
            TlsLevel::VerifyHost,
            TlsLevel::VerifyDomain,
            TlsLevel::Pinned,
        ] {
            assert_eq!(
                first_rung(level, fallback, remembered),
                Start::TOP,
                "{level}"
            );
            assert!(!memory_applies(level), "{level}");
        }
    }
}

/// The versions each rung offers, within `min_tls_version`.
#[test]
fn tls_versions_per_rung_and_minimum() {
    use rustls::version::{TLS12, TLS13};
    let names = |rung, minimum| {
        tls_versions(rung, minimum).map(|list| {
            list.iter()
                .map(|v| format!("{:?}", v.version))
                .collect::<Vec<_>>()
        })
    };
    let (v12, v13) = (
        format!("{:?}", TLS12.version),
        format!("{:?}", TLS13.version),
    );
    assert_eq!(
        names(Rung::Modern, TlsVersion::Tls12),
        Ok(vec![v13.clone(), v12.clone()])
    );
    assert_eq!(names(Rung::Modern, TlsVersion::Tls13), Ok(vec![v13]));
    assert_eq!(names(Rung::Tls12, TlsVersion::Tls12), Ok(vec![v12]));
    assert_eq!(
        names(Rung::Tls12, TlsVersion::Tls13),
        Err(handshake("TLS 1.2 is below min_tls_version"))
    );
}

/// The `dane` row of DESIGN.md §5 (and any level DANE upgraded, which
/// climbs the ladder as `dane`): STARTTLS missing or a failed handshake
/// defer naming DANE, never a lower rung; the TLSA records decide the
/// certificate, whatever its chain and name.
#[test]
fn the_dane_row_defers_naming_dane_and_lets_tlsa_decide() {
    let level = TlsLevel::Dane;
    let named = |d: &Deferral| d.to_string().contains("DANE") && d.dane_word() == Some("failed");
    match ehlo(level, false) {
        AfterEhlo::Defer(d) => assert!(named(&d), "{d}"),
        other => panic!("STARTTLS not offered under DANE: {other:?}"),
    }
    assert_eq!(ehlo(level, true), AfterEhlo::StartTls);
    // Even where the memory or a lower rung would have put an opportunistic ladder.
    assert_eq!(
        after_ehlo(level, Rung::Plaintext, true, true),
        AfterEhlo::StartTls
    );
    for failure in [handshake("alert"), Failure::RefusedAfterTls("530".into())] {
        for rung in [Rung::Modern, Rung::Tls12] {
            match after_failure(level, rung, true, &failure) {
                AfterFailure::Defer(d) => assert!(named(&d), "{d}"),
                other => panic!("{failure:?} under DANE: {other:?}"),
            }
        }
    }
    assert!(!memory_applies(level));
    assert_eq!(first_rung(level, true, |_| Remembered::Broken), Start::TOP);
    // TLSA decides: a verifier's verdict, whatever the chain and name say.
    let authenticate = Mandatory::Authenticate(vec!["3 1 1 00".parse().expect("record")]);
    assert_eq!(
        after_dane_handshake(&authenticate, Some(&Ok(3))),
        AfterHandshake::Deliver(Note::DaneVerified { usage: 3 })
    );
    for not in [Some(&Err("no match".to_string())), None] {
        match after_dane_handshake(&authenticate, not) {
            AfterHandshake::Defer(d) => assert!(named(&d), "{d}"),
            other => panic!("{not:?}: {other:?}"),
        }
    }
    assert_eq!(
        after_dane_handshake(&Mandatory::EncryptOnly, None),
        AfterHandshake::Deliver(Note::DaneEncryptOnly)
    );
    // The level alone, without what DANE found, never delivers.
    assert_eq!(
        cell(after_handshake(level, &checks(true, true, true))),
        "defer"
    );
}
