//! `config/grafana-dashboard.json` plots only series the relay exports:
//! every metric name in its `expr`s is in the rendered exposition text
//! once one event of each kind has been counted.

use crate::transit::{Event, Method, Policy, Sink};

const DASHBOARD: &str = include_str!("../../config/grafana-dashboard.json");

fn exprs(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value.as_str()) {
                    ("expr", Some(expr)) => found.push(expr.to_string()),
                    _ => exprs(value, found),
                }
            }
        }
        serde_json::Value::Array(list) => list.iter().for_each(|v| exprs(v, found)),
        _ => {}
    }
}

/// The `tlsrelay_…` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("tlsrelay_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_the_dashboard_plots_exists() {
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).unwrap_or_else(|e| panic!("not JSON: {e}"));
    assert!(dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    assert_eq!(dashboard["templating"]["list"][0]["type"], "datasource");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = crate::transit::Store::open(dir.path(), std::time::Duration::from_secs(86_400))
        .unwrap_or_else(|e| panic!("{e}"));
    crate::metrics::tls_rpt_report(crate::metrics::ReportResult::Posted);
    for method in Method::ALL {
        store.record(Event {
            at: std::time::SystemTime::now(),
            domain: "example.test".into(),
            policy: Policy::none(),
            mx_host: "mx.example.test".into(),
            receiving_ip: None,
            sending_ip: None,
            method,
            tls_version: Some("1.3".into()),
            failure: None,
            sessions: 1,
            messages: 1,
            policy_deferred: false,
            requiretls_delivered: 0,
            requiretls_returned: 0,
        });
    }
    super::delivery_attempt(&super::AttemptLabels {
        connector: "-".into(),
        level: "opportunistic".into(),
        tls: "TLSv1.3".into(),
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
        outcome: "sent",
        dane: "off",
    });
    super::recipient(super::RecipientResult::Delivered);
    let text = super::render();
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(found.len() >= 10, "{found:?}");
    let mut names: Vec<String> = found.iter().flat_map(|e| metric_names(e)).collect();
    names.sort();
    names.dedup();
    assert!(names.contains(&"tlsrelay_transit_sessions_total".to_string()));
    assert!(names.contains(&"tlsrelay_transit_messages_total".to_string()));
    for name in names {
        let series = text
            .lines()
            .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")));
        assert!(series, "{name} is not in the metrics:\n{text}");
    }
}
