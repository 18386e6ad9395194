//! The REQUIRETLS lab tested on its own, with nothing the relay does not
//! do today, so that a failing cell elsewhere is the relay's and not the
//! lab's:
//!
//! * each kind of hop, sent a message by Python's smtplib directly: the
//!   EHLO keywords before and after STARTTLS are what the hop is meant
//!   to offer (REQUIRETLS after STARTTLS only, never, or in plaintext
//!   too; STARTTLS hidden by the proxy), the test-CA certificates verify
//!   for the host's name, and the record holds the MAIL line (with
//!   REQUIRETLS where sent), the TLS version and SNI, the content;
//! * the relay delivers unflagged mail through every kind of hop, over
//!   connectors (`verify-host`, the default level, `requiretls = "off"`)
//!   and MX routing (an MTA-STS `enforce` policy; a `TLS-Required: No`
//!   message to a plaintext-only MX without a policy).

use std::time::{Duration, Instant};

use super::cells::{Cell, Expect, Flag, DEFAULT, ENFORCE, MX, OFF, VERIFY_HOST as VERIFY};
use super::check::{far_side, notices};
use super::client::{smtplib, Mail};
use super::lab::{Far, Hop};
use super::run::{send_and_settle, Lab};
use crate::mta_sts::check::{assert_all_right, tlsrelay};
use crate::support::dns::DnsServer;
use crate::support::dsn;
use crate::support::relay::Relay;

const DELIVERED_TLS: Expect = Expect::Delivered {
    at: 0,
    tls: true,
    param: false,
};
const DELIVERED_CLEAR: Expect = Expect::Delivered {
    at: 0,
    tls: false,
    param: false,
};

#[rustfmt::skip]
pub const CELLS: [Cell; 10] = [
    Cell { name: "h-rt", route: VERIFY, hops: &[Hop::Rt], flag: Flag::Unflagged, expect: DELIVERED_TLS, word: "-" },
    Cell { name: "h-postfix", route: VERIFY, hops: &[Hop::Postfix], flag: Flag::Unflagged, expect: DELIVERED_TLS, word: "-" },
    Cell { name: "h-selfsigned", route: DEFAULT, hops: &[Hop::RtSelfSigned], flag: Flag::Unflagged, expect: DELIVERED_TLS, word: "-" },
    Cell { name: "h-silent", route: DEFAULT, hops: &[Hop::RtSilent], flag: Flag::Unflagged, expect: DELIVERED_TLS, word: "-" },
    Cell { name: "h-plain", route: DEFAULT, hops: &[Hop::Plain(true)], flag: Flag::Unflagged, expect: DELIVERED_CLEAR, word: "-" },
    Cell { name: "h-strip", route: DEFAULT, hops: &[Hop::Strip], flag: Flag::Unflagged, expect: DELIVERED_CLEAR, word: "-" },
    Cell { name: "h-off", route: OFF, hops: &[Hop::Plain(false)],
        flag: Flag::Unflagged, expect: DELIVERED_CLEAR, word: "-" },
    Cell { name: "h-sts", route: ENFORCE, hops: &[Hop::Rt],
        flag: Flag::Unflagged, expect: DELIVERED_TLS, word: "-" },
    Cell { name: "h-lifted", route: MX, hops: &[Hop::Plain(false)],
        flag: Flag::Header, expect: DELIVERED_CLEAR, word: "-" },
    // Waits under MTA-STS, then `queue bounce`: the notice's way home.
    Cell { name: "h-bounced", route: ENFORCE, hops: &[Hop::Plain(false)],
        flag: Flag::Unflagged, expect: Expect::Deferred, word: "-" },
];

pub fn run() {
    let lab = Lab::start(&CELLS);
    for (cell, hosts) in CELLS.iter().zip(&lab.hosts) {
        direct(&lab, cell, &hosts[0]);
    }
    let server = lab.policy_server(&CELLS).expect("an MTA-STS cell");
    let dns = DnsServer::start(&lab.zone(&CELLS));
    let relay = lab.relay(&CELLS, dns.addr, server.port, None);
    let outcome = send_and_settle(&lab, &relay, &CELLS);
    let mut failures = Vec::new();
    for (i, cell) in CELLS.iter().enumerate() {
        let mut wrong = far_side(cell, &lab.hosts[i], &outcome.made[i]);
        let queued = cell.expect == Expect::Deferred;
        if outcome.gone.get(&outcome.ids[i]) != Some(&!queued) {
            wrong.push(format!("queued: {}", !queued));
        }
        if queued {
            wrong.extend(bounced(&relay, &lab, cell, &outcome.ids[i]));
        }
        crate::mta_sts::check::note(&mut failures, cell.name, &outcome.ids[i], &wrong);
    }
    assert_all_right(&failures, &relay, "the REQUIRETLS lab, unflagged mail");
}

/// smtplib sends one message straight to `far` (flagged where the hop
/// offers REQUIRETLS on the channel smtplib gets), verifying test-CA
/// certificates for the host's name; what it saw and what the hop
/// recorded must agree with the kind of hop.
fn direct(lab: &Lab, cell: &Cell, far: &Far) {
    let addr = std::net::SocketAddr::new(far.ip.parse().expect("ip"), lab.port);
    let (ca, name) = match far.hop {
        Hop::Rt | Hop::Postfix => (lab.certs.ca.pem(), far.host.as_str()),
        _ => ("-", "-"),
    };
    let flagged = matches!(far.hop, Hop::Rt | Hop::RtSelfSigned | Hop::Plain(true));
    let secret = format!("direct to {}", far.host);
    let mail = Mail {
        from: "harness@sender.test".into(),
        to: vec![cell.recipient()],
        data: format!("Subject: direct\r\n\r\n{secret}\r\n"),
        requiretls: flagged,
    };
    let (before, after) = smtplib(addr, ca, name, &[mail]);
    let has = |words: &[String], w: &str| words.iter().any(|x| x == w);
    let (starttls, requiretls_before, requiretls_after) = match far.hop {
        Hop::Rt | Hop::RtSelfSigned => (true, false, Some(true)),
        Hop::RtSilent => (true, false, Some(false)),
        Hop::Postfix => (true, false, Some(false)),
        Hop::Plain(offers) => (false, offers, None),
        Hop::Strip => (false, false, None),
    };
    let context = format!("{:?} {}: EHLO {before:?} then {after:?}", far.hop, far.host);
    assert_eq!(has(&before, "starttls"), starttls, "{context}");
    assert_eq!(has(&before, "requiretls"), requiretls_before, "{context}");
    assert_eq!(
        after.as_deref().map(|a| has(a, "requiretls")),
        requiretls_after,
        "{context}"
    );
    let got = far.stored(&secret, true);
    let requiretls = far.receiver().map(|_| flagged);
    let want = super::lab::Got {
        tls: starttls,
        requiretls,
    };
    assert_eq!(got, [want], "{context}\n{}", far.describe());
    if let (Hop::Rt, Some(receiver)) = (far.hop, far.receiver()) {
        let sessions = receiver.sessions();
        let session = sessions
            .iter()
            .find(|s| !s.messages.is_empty())
            .expect("the session");
        assert_eq!(
            session.sni.as_deref(),
            Some(far.host.as_str()),
            "{session:#?}"
        );
        assert_eq!(session.tls.as_deref(), Some("TLSv1.3"), "{session:#?}");
        assert!(
            session.messages[0].mail.ends_with(" REQUIRETLS"),
            "{session:#?}"
        );
        assert!(session
            .plaintext
            .iter()
            .all(|l| !crate::support::requiretls_receiver::is_mail_command(l)));
    }
}

/// `tlsrelay queue bounce ID` returns the waiting message: its notice
/// comes home from `<>` over TLS through the `verify-host` connector
/// and reads as a DSN that reports the recipient failed.
fn bounced(relay: &Relay, lab: &Lab, cell: &Cell, id: &str) -> Vec<String> {
    let (ok, out, err) = tlsrelay(relay, &["queue", "bounce", id]);
    if !ok {
        return vec![format!("queue bounce {id}: {out}{err}")];
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = notices(cell, lab);
    while found.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        found = notices(cell, lab);
    }
    let [notice] = found.as_slice() else {
        return vec![format!(
            "{} notices at home, not 1: {found:#?}",
            found.len()
        )];
    };
    let report = dsn::parse(notice.data.as_bytes());
    let action = report.recipient(&cell.recipient()).get("Action");
    match (notice.sender().as_str(), notice.tls, action) {
        ("", true, Some("failed")) => Vec::new(),
        _ => vec![format!("the notice came as {notice:#?}")],
    }
}
