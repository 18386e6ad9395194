use super::*;

#[test]
fn exposition_text_groups_series_under_their_family() {
    let metrics = Metrics::new();
    let delivered = ResultLabels {
        result: RecipientResult::Delivered,
    };
    metrics.recipients.get_or_create(&delivered).inc();
    metrics.recipients.get_or_create(&delivered).inc();
    metrics
        .recipients
        .get_or_create(&ResultLabels {
            result: RecipientResult::Deferred,
        })
        .inc();
    metrics
        .sessions
        .get_or_create(&SessionLabels {
            connector: "odd \"name\"\\".into(),
            tls: "TLSv1.3".into(),
        })
        .inc();
    let text = metrics.render();
    assert!(
        text.contains("# TYPE tlsrelay_recipients_total counter\n"),
        "{text}"
    );
    assert!(text.contains("tlsrelay_recipients_total{result=\"delivered\"} 2\n"));
    assert!(text.contains("tlsrelay_recipients_total{result=\"deferred\"} 1\n"));
    assert!(
        text.contains(
            "tlsrelay_sessions_total{connector=\"odd \\\"name\\\"\\\\\",tls=\"TLSv1.3\"} 1\n"
        ),
        "{text}"
    );
    // Series without labels show from the start; families with labels
    // show none until counted.
    assert!(text.contains("\ntlsrelay_sessions_current 0\n"), "{text}");
    assert!(
        text.contains("\ntlsrelay_log_lines_dropped_total 0\n"),
        "{text}"
    );
    assert!(!text.contains("tlsrelay_notices_total{"));
    let series_of_recipients = text
        .lines()
        .filter(|l| l.starts_with("tlsrelay_recipients_total"))
        .count();
    assert_eq!(series_of_recipients, 2);
}

#[test]
fn attempt_labels_keep_their_order() {
    let metrics = Metrics::new();
    metrics
        .delivery_attempts
        .get_or_create(&AttemptLabels {
            connector: "-".into(),
            level: "opportunistic".into(),
            tls: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            outcome: "sent",
            dane: "off",
        })
        .inc();
    let text = metrics.render();
    assert!(
        text.contains("tlsrelay_delivery_attempts_total{connector=\"-\",level=\"opportunistic\",tls=\"TLSv1.3\",cipher=\"TLS13_AES_256_GCM_SHA384\",outcome=\"sent\",dane=\"off\"} 1\n"),
        "{text}"
    );
}

#[test]
fn requiretls_outcomes_are_one_family() {
    let metrics = Metrics::new();
    for outcome in [
        RequireTlsOutcome::Accepted,
        RequireTlsOutcome::Delivered,
        RequireTlsOutcome::Delivered,
        RequireTlsOutcome::Returned,
    ] {
        metrics
            .requiretls_messages
            .get_or_create(&RequireTlsLabels { outcome })
            .inc();
    }
    let text = metrics.render();
    assert!(
        text.contains("# TYPE tlsrelay_requiretls_messages_total counter\n"),
        "{text}"
    );
    for (outcome, n) in [("accepted", 1), ("delivered", 2), ("returned", 1)] {
        let series = format!("tlsrelay_requiretls_messages_total{{outcome=\"{outcome}\"}} {n}\n");
        assert!(text.contains(&series), "{series} in {text}");
    }
}
