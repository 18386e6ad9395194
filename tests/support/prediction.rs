//! Probe against delivery (issue 14): for each domain, `probe`'s verdict
//! (in-process, typed) and then what delivery did with one message, in
//! terms both share, under one configuration and one deliverer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tlsrelay::config::domain::MailDomain;
use tlsrelay::outbound::deliver::Deliverer;
use tlsrelay::outbound::deliver::RecipientOutcome;
use tlsrelay::outbound::ladder::{How, Stop};
use tlsrelay::outbound::memory::TlsMemory;
use tlsrelay::outbound::memory_file::system_clock;
use tlsrelay::outbound::outcome::Verdict;
use tlsrelay::outbound::probe::{predict, Prediction, Report};
use tlsrelay::outbound::route::Resolve;
use tlsrelay::queue::body::Body;
use tlsrelay::queue::envelope::{Envelope, Recipient};

/// The TLS levels, in the order of DESIGN.md §5.
pub const LEVELS: [&str; 7] = [
    "none",
    "opportunistic",
    "required",
    "verify-ca",
    "verify-host",
    "verify-domain",
    "pinned",
];

/// What one domain's mail came to: over which TLS with which
/// verification note, in plaintext and why, or deferred with which status
/// and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    Tls { version: String, note: String },
    Plaintext(String),
    Deferred { status: String, reason: String },
    Other(String),
}

/// Probe's verdict.
pub fn predicted(prediction: &Prediction) -> Fate {
    match prediction {
        Prediction::Deliver {
            how: How::Tls { negotiated, note },
            ..
        } => Fate::Tls {
            version: negotiated.version.clone(),
            note: note.to_string(),
        },
        Prediction::Deliver {
            how: How::Plaintext(why),
            ..
        } => Fate::Plaintext(why.to_string()),
        Prediction::Wait {
            stop: Some(Stop::Deferred(deferral)),
            ..
        } => Fate::Deferred {
            status: deferral.status().to_string(),
            reason: deferral.to_string(),
        },
        other => Fate::Other(format!("{other:?}")),
    }
}

/// What delivery did: the connection the ladder ended on (whatever the
/// server then answered to MAIL, which probe does not send), or why no
/// address took the mail.
pub fn delivered(outcome: &RecipientOutcome) -> Fate {
    match (outcome.tls.as_deref(), &outcome.verdict) {
        (Some(tls), _) if tls.starts_with("plaintext") => Fate::Plaintext(tls.to_string()),
        // `TLSv1.3 TLS_AES_256_GCM_SHA384 key-exchange X25519MLKEM768 verified`
        (Some(tls), _) => match tls.splitn(5, ' ').collect::<Vec<_>>()[..] {
            [version, _, "key-exchange", _, note] => Fate::Tls {
                version: version.to_string(),
                note: note.to_string(),
            },
            _ => Fate::Other(tls.to_string()),
        },
        // `127.0.0.1: the policy's reason`
        (None, Verdict::Deferred { status, reason, .. }) => Fate::Deferred {
            status: status.to_string(),
            reason: reason
                .split_once(": ")
                .map_or(reason.as_str(), |(_, why)| why)
                .to_string(),
        },
        (None, other) => Fate::Other(format!("{other:?}")),
    }
}

/// One case: mail to `domain` for `recipient`.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub domain: String,
    pub recipient: String,
    /// The message, with a Subject the receiver can tell apart.
    pub content: String,
}

/// For each case (all at once), probe then one delivery in-process under
/// the configuration file `config`; returns (name, probe, delivery,
/// probe's report) per case.
pub fn probe_and_deliver(config: &Path, cases: &[Case]) -> Vec<(String, Fate, Fate, String)> {
    let config = tlsrelay::config::Config::load(config).expect("the config loads");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let memory = Arc::new(TlsMemory::reader(
            &config.server.spool_dir,
            Duration::from_secs(3600),
            system_clock(),
        ));
        let deliverer = tlsrelay::daemon::deliverer(&config, memory).expect("deliverer");
        let mut running = tokio::task::JoinSet::new();
        for case in cases {
            let (case, deliverer) = (case.clone(), deliverer.clone());
            running.spawn(async move {
                let (report, outcome) =
                    probe_then_deliver(&deliverer, &case.domain, &case.recipient, &case.content)
                        .await;
                let probe = predicted(&report.prediction);
                (case.name, probe, delivered(&outcome), report.text)
            });
        }
        let mut results = Vec::new();
        while let Some(done) = running.join_next().await {
            results.push(done.expect("case task"));
        }
        assert_eq!(results.len(), cases.len());
        results
    })
}

/// Probe's report for `domain`, then one delivery attempt of `content`
/// to `recipient` with the same deliverer, and its outcome.
pub async fn probe_then_deliver<R: Resolve>(
    deliverer: &Deliverer<R>,
    domain: &str,
    recipient: &str,
    content: &str,
) -> (Report, RecipientOutcome) {
    let parsed: MailDomain = domain.parse().expect("domain");
    let report = predict(deliverer, &parsed, None).await;
    let recipient = Recipient {
        address: recipient.to_string(),
        orcpt: None,
        notify: None,
    };
    let envelope = Envelope {
        sender: "alice@relay.example.test".into(),
        recipients: vec![recipient.clone()],
        ..Envelope::default()
    };
    let mut outcomes = deliverer
        .attempt(
            "probe-vs-delivery",
            &envelope,
            &Body::in_memory(content.as_bytes().to_vec()),
            &[&recipient],
        )
        .await;
    (report, outcomes.remove(0))
}

/// The cases where probe and delivery differ (or either is unexpected).
pub fn differences(results: &[(String, Fate, Fate, String)]) -> Vec<String> {
    results
        .iter()
        .filter(|(_, probe, delivery, _)| probe != delivery || matches!(probe, Fate::Other(_)))
        .map(|(name, probe, delivery, text)| {
            format!("{name}: probe said {probe:?}, delivery did {delivery:?}\n{text}")
        })
        .collect()
}
