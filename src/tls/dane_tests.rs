//! TLSA matching against rcgen chains: every selector and matching type
//! for DANE-EE, the chain and name rules of DANE-TA, unusable records.

use rustls::pki_types::{CertificateDer, UnixTime};
use time::Duration;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::tls::test_ca::{self as ca, Chain, Key, Spec};

const MX: &str = "mx.secure.test";

fn spki(cert: &CertificateDer<'_>) -> Vec<u8> {
    let (_, parsed) = X509Certificate::from_der(cert).expect("parse test cert");
    parsed.public_key().raw.to_vec()
}

/// The record of `usage selector matching` for `cert`, computed the long way.
fn record_for(usage: u8, selector: u8, matching: u8, cert: &CertificateDer<'_>) -> Tlsa {
    let selected = match selector {
        0 => cert.as_ref().to_vec(),
        _ => spki(cert),
    };
    let data = match matching {
        0 => selected,
        1 => digest(&SHA256, &selected).as_ref().to_vec(),
        _ => digest(&SHA512, &selected).as_ref().to_vec(),
    };
    Tlsa {
        usage,
        selector,
        matching,
        data,
    }
}

fn chain() -> (Chain, Vec<CertificateDer<'static>>) {
    let chain = Chain::new(&Spec::new(&[MX], Key::P256));
    let served = vec![
        chain.leaf.der.clone(),
        chain.intermediate.issued.der.clone(),
    ];
    (chain, served)
}

fn now() -> UnixTime {
    UnixTime::now()
}

#[test]
fn dane_ee_matches_certificate_or_key_by_every_matching_type() {
    let (_, served) = chain();
    for selector in [0, 1] {
        for matching in [0, 1, 2] {
            let record = record_for(3, selector, matching, &served[0]);
            let label = format!("3 {selector} {matching}");
            assert_eq!(
                check_record(&record, &served, &[MX], now()),
                RecordCheck::Matches,
                "{label}"
            );
            let mut wrong = record.clone();
            wrong.data[0] ^= 1;
            assert_eq!(
                check_record(&wrong, &served, &[MX], now()),
                RecordCheck::NoMatch,
                "{label}"
            );
        }
    }
    // Usage 3 is about the leaf: the intermediate's key does not do.
    let intermediate = record_for(3, 1, 1, &served[1]);
    assert_eq!(
        check_record(&intermediate, &served, &[MX], now()),
        RecordCheck::NoMatch
    );
}

#[test]
fn dane_ee_ignores_name_expiry_and_issuer() {
    let spec = Spec::new(&["somewhere.else.test"], Key::Rsa2048)
        .valid(Duration::days(-30), Duration::days(-1));
    let expired_self_signed = ca::self_signed(&spec);
    let served = vec![expired_self_signed.der.clone()];
    let record = record_for(3, 1, 1, &served[0]);
    let got = authenticate(std::slice::from_ref(&record), &served, &[MX], now());
    assert_eq!(got, Ok(Authenticated { record }));
}

#[test]
fn dane_ta_builds_from_the_matching_certificate_and_checks_the_name() {
    let (chain, served) = chain();
    // The intermediate as TA: it is in the chain.
    for (selector, matching) in [(0, 1), (1, 1), (1, 2), (0, 0)] {
        let record = record_for(2, selector, matching, &served[1]);
        assert_eq!(
            check_record(&record, &served, &[MX], now()),
            RecordCheck::Matches
        );
    }
    // The root as TA: only when the server sends it.
    let root = record_for(2, 1, 1, &chain.root.issued.der);
    assert_eq!(
        check_record(&root, &served, &[MX], now()),
        RecordCheck::NoMatch
    );
    let mut with_root = served.clone();
    with_root.push(chain.root.issued.der.clone());
    assert_eq!(
        check_record(&root, &with_root, &[MX], now()),
        RecordCheck::Matches
    );
    // The next-hop domain counts as a reference name too.
    let by_domain = Chain::new(&Spec::new(&["secure.test"], Key::P256));
    let served = vec![
        by_domain.leaf.der.clone(),
        by_domain.intermediate.issued.der.clone(),
    ];
    let record = record_for(2, 1, 1, &served[1]);
    assert_eq!(
        check_record(&record, &served, &[MX, "secure.test"], now()),
        RecordCheck::Matches
    );
    // A wrong name fails, and says why.
    match check_record(&record, &served, &["mx.other.test"], now()) {
        RecordCheck::NameFails(reason) => assert!(reason.contains("mx.other.test"), "{reason}"),
        other => panic!("expected a name failure, got {other:?}"),
    }
}

#[test]
fn dane_ta_refuses_a_chain_that_does_not_build() {
    let (_, served) = chain();
    let stranger = ca::TestCa::root("someone else", Key::P256);
    // The server appends a certificate that matches the record but did not issue the leaf.
    let mut spliced = vec![served[0].clone(), stranger.issued.der.clone()];
    let record = record_for(2, 1, 1, &spliced[1]);
    assert!(matches!(
        check_record(&record, &spliced, &[MX], now()),
        RecordCheck::ChainFails(_)
    ));
    spliced.truncate(1);
    let got = authenticate(&[record], &spliced, &[MX], now());
    assert_eq!(got, Err(DaneError::NoMatch { usable: 1 }));
}

#[test]
fn dane_ta_checks_expiry_below_the_anchor() {
    let root = ca::TestCa::root("ta root", Key::P256);
    let spec = Spec::new(&[MX], Key::P256).valid(Duration::days(-30), Duration::days(-1));
    let served = vec![root.leaf(&spec).der, root.issued.der.clone()];
    let record = record_for(2, 0, 1, &served[1]);
    assert!(matches!(
        check_record(&record, &served, &[MX], now()),
        RecordCheck::ChainFails(_)
    ));
}

#[test]
fn unusable_records_never_authenticate() {
    let (_, served) = chain();
    for (usage, selector, matching) in [(0, 1, 1), (1, 1, 1), (3, 2, 1), (3, 1, 3), (4, 1, 1)] {
        let mut record = record_for(3, 1, 1, &served[0]);
        (record.usage, record.selector, record.matching) = (usage, selector, matching);
        assert_eq!(
            check_record(&record, &served, &[MX], now()),
            RecordCheck::Unusable
        );
        assert_eq!(
            authenticate(&[record], &served, &[MX], now()),
            Err(DaneError::NoUsableRecord)
        );
    }
    let record = record_for(3, 1, 1, &served[0]);
    assert_eq!(
        authenticate(&[record], &[], &[MX], now()),
        Err(DaneError::NoCertificate)
    );
}

#[test]
fn one_matching_record_among_several_is_enough() {
    let (_, served) = chain();
    let other = ca::self_signed(&Spec::new(&[MX], Key::P256));
    let records = [
        record_for(3, 1, 1, &other.der),
        record_for(1, 1, 1, &served[0]),
        record_for(3, 1, 1, &served[0]),
    ];
    let got = authenticate(&records, &served, &[MX], now()).expect("third record");
    assert_eq!(got.record, records[2]);
}

#[test]
fn presentation_format_round_trips() {
    let record: Tlsa = "3 1 1 0A0b 0c".parse().expect("parses");
    assert_eq!(record.data, vec![0x0a, 0x0b, 0x0c]);
    assert_eq!(record.to_string(), "3 1 1 0a0b0c");
    for bad in ["", "3 1", "3 1 1", "3 1 1 abc", "3 1 1 zz", "300 1 1 00"] {
        assert!(bad.parse::<Tlsa>().is_err(), "{bad:?}");
    }
    let (_, served) = chain();
    let spki_record = Tlsa::dane_ee_spki_sha256(&spki(&served[0]));
    assert_eq!(spki_record, record_for(3, 1, 1, &served[0]));
}
