use super::*;
use crate::outbound::policy::Failure as TlsFailure;
use crate::tls::client::Negotiated;

fn tls(version: &str, note: Note) -> How {
    How::Tls {
        negotiated: Negotiated {
            version: version.into(),
            cipher: "TLS_AES_256_GCM_SHA384".into(),
            group: None,
        },
        note,
    }
}

#[test]
fn methods() {
    use TlsLevel::*;
    let cases = [
        (
            tls("TLSv1.3", Note::DaneVerified { usage: 3 }),
            Dane,
            false,
            Method::Dane,
        ),
        (
            tls("TLSv1.3", Note::Verified),
            VerifyHost,
            true,
            Method::MtaSts,
        ),
        (
            tls("TLSv1.3", Note::Verified),
            VerifyHost,
            false,
            Method::Connector,
        ),
        (
            tls("TLSv1.2", Note::Pinned),
            Pinned,
            false,
            Method::Connector,
        ),
        (
            tls("TLSv1.3", Note::Verified),
            Opportunistic,
            false,
            Method::Tls13Unverified,
        ),
        (
            tls("TLSv1.2", Note::Untrusted("x".into())),
            Required,
            false,
            Method::Tls12Unverified,
        ),
        (
            tls("TLSv1.3", Note::DaneEncryptOnly),
            Dane,
            false,
            Method::Tls13Unverified,
        ),
        (
            How::Plaintext(Plaintext::NotOffered),
            Opportunistic,
            false,
            Method::Plaintext,
        ),
        (
            How::Plaintext(Plaintext::LevelNone),
            None,
            false,
            Method::Plaintext,
        ),
        (
            How::Plaintext(Plaintext::LowerRungs),
            Opportunistic,
            false,
            Method::PlaintextAfterFailure,
        ),
        (
            How::Plaintext(Plaintext::MemorySkipped),
            Opportunistic,
            false,
            Method::PlaintextAfterFailure,
        ),
    ];
    for (how, level, sts, want) in cases {
        assert_eq!(method(&how, level, sts), want, "{how:?} {level:?}");
    }
}

#[test]
fn result_types_of_deferrals() {
    use ResultType::*;
    let sts = |d: Deferral| Deferral::MtaSts(Box::new(d));
    let cases = [
        (sts(Deferral::NoStartTls), true, StarttlsNotSupported),
        (
            Deferral::DaneFailed("x".into()),
            false,
            StarttlsNotSupported,
        ),
        (
            sts(Deferral::NameMismatch("not valid for mx".into())),
            true,
            CertificateHostMismatch,
        ),
        (
            sts(Deferral::Untrusted("expired".into())),
            true,
            CertificateExpired,
        ),
        (
            sts(Deferral::Untrusted("self-signed certificate".into())),
            true,
            CertificateNotTrusted,
        ),
        (
            sts(Deferral::TlsFailed(TlsFailure::Handshake("h".into()))),
            true,
            ValidationFailure,
        ),
        (
            Deferral::DaneFailed("no match".into()),
            true,
            ValidationFailure,
        ),
        (
            Deferral::DaneHostUnusable("bogus".into()),
            true,
            DnssecInvalid,
        ),
        (Deferral::DaneMxBogus("bogus".into()), true, DnssecInvalid),
        (Deferral::DaneRequired("none".into()), true, DaneRequired),
    ];
    for (deferral, starttls, want) in cases {
        assert_eq!(deferral_type(&deferral, starttls), want, "{deferral:?}");
    }
}

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Event>>);

impl Sink for Recorder {
    fn record(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

#[test]
fn failed_rungs_take_the_attempts_method_and_the_last_carries_the_message() {
    let sink = Recorder::default();
    let host = Host::Name("mx.example.test".parse().unwrap());
    let mut sessions = Sessions::new("example.test".into(), host, None, Policy::none());
    sessions.greeted(true);
    sessions.tls_failed("handshake: boom".into());
    sessions.greeted(true);
    let how = How::Plaintext(Plaintext::LowerRungs);
    sessions.finish(&sink, Some(&how), TlsLevel::Opportunistic, None, true);
    let events = sink.0.lock().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.sessions == 1));
    assert!(events
        .iter()
        .all(|e| e.method == Method::PlaintextAfterFailure));
    assert_eq!(events[0].messages, 0);
    assert_eq!(events[1].messages, 1);
    let failure = events[0].failure.as_ref().map(|f| f.result_type);
    assert_eq!(failure, Some(ResultType::ValidationFailure));
    assert_eq!(events[1].failure, None);
}

#[test]
fn silent_mail_is_not_recorded() {
    let sink = Recorder::default();
    let host = Host::Name("mx.example.test".parse().unwrap());
    let mut sessions = Sessions::new("example.test".into(), host, None, Policy::none());
    sessions.silent = true;
    sessions.greeted(false);
    let how = How::Plaintext(Plaintext::NotOffered);
    sessions.finish(&sink, Some(&how), TlsLevel::Opportunistic, None, true);
    assert!(sink.0.lock().unwrap().is_empty());
}
