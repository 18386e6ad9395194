//! DESIGN.md §5, row by row: every cell of the table is one assertion.

use super::*;

/// The short form of a step, as the table writes it.
fn cell(step: Step) -> &'static str {
    match step {
        Step::Plaintext => "plaintext",
        Step::StartTls => "starttls",
        Step::Deliver { .. } => "deliver",
        Step::NextRung => "next rung",
        Step::Defer { .. } => "defer",
    }
}

fn checks(chain: bool, name: bool, pinned: bool) -> Checks {
    Checks {
        chain: if chain {
            Ok(())
        } else {
            Err("self-signed".into())
        },
        name: if name {
            Ok(())
        } else {
            Err("certificate for mx.b.test not valid for fabrikam.test".into())
        },
        pinned,
    }
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
            cell(after_ehlo(level, Rung::Modern, false)),
            not_offered,
            "{level}: STARTTLS not offered"
        );
        if level == None {
            assert_eq!(
                cell(after_ehlo(level, Rung::Modern, true)),
                "plaintext",
                "none never tries STARTTLS"
            );
            continue;
        }
        assert_eq!(
            cell(after_ehlo(level, Rung::Modern, true)),
            "starttls",
            "{level}: offered"
        );
        assert_eq!(
            cell(after_failed_handshake(level, Rung::Modern, true, "alert")),
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
    assert_eq!(
        cell(after_ehlo(TlsLevel::Pinned, Rung::Modern, false)),
        "defer"
    );
    assert_eq!(
        cell(after_failed_handshake(
            TlsLevel::Pinned,
            Rung::Modern,
            true,
            "x"
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
        after_failed_handshake(level, Rung::Modern, true, "x"),
        Step::NextRung
    );
    assert_eq!(
        after_failed_handshake(level, Rung::Tls12, true, "x"),
        Step::NextRung
    );
    assert_eq!(
        cell(after_failed_handshake(level, Rung::Tls12, false, "x")),
        "defer"
    );
    assert_eq!(
        after_ehlo(level, Rung::Plaintext, true),
        Step::Plaintext,
        "rung 3 never tries STARTTLS"
    );
    assert_eq!(Rung::Modern.below(), Some(Rung::Tls12));
    assert_eq!(Rung::Plaintext.below(), Option::None);
}

#[test]
fn reasons_name_what_failed() {
    let step = after_handshake(TlsLevel::VerifyDomain, &checks(true, false, false));
    assert_eq!(
        step,
        Step::Defer {
            reason: "certificate for mx.b.test not valid for fabrikam.test".into()
        }
    );
    let step = after_ehlo(TlsLevel::Required, Rung::Modern, false);
    assert_eq!(
        step,
        Step::Defer {
            reason: "STARTTLS not offered".into()
        }
    );
    let step = after_handshake(TlsLevel::Opportunistic, &checks(false, true, false));
    assert_eq!(
        step,
        Step::Deliver {
            note: "untrusted: self-signed".into()
        }
    );
}
