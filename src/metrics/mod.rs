//! Prometheus metrics (text exposition format 0.0.4) at `[admin]
//! metrics_listen` (DESIGN.md §7).
//!
//! Every family is a typed field of one process-wide [`Metrics`], built on
//! the `prometheus-client` crate: a label set is a struct and a closed set
//! of label values an enum, so a misspelt metric or label cannot exist. The
//! inbound sessions, the delivery attempts and the queue count where the
//! event happens through the functions below, with no handle passed through
//! every layer. The queue's size and its oldest message's arrival are kept
//! by the queue manager as messages come and go ([`queue_measured`]); a
//! scrape works out the age and reads no folder.
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `tlsrelay_sessions_current` | | inbound SMTP sessions open now |
//! | `tlsrelay_sessions_total` | `connector`, `tls` | inbound sessions ended, by connector and TLS version (`plaintext`) |
//! | `tlsrelay_messages_accepted_total` | `connector` | messages acknowledged with `250` (on disk) |
//! | `tlsrelay_recipients_total` | `result` | recipient outcomes per attempt: `delivered`, `deferred`, `failed` (also `max_age` and `tlsrelay queue bounce`) |
//! | `tlsrelay_notices_total` | `kind` | DSNs queued: `failure` (bounces), `delay` |
//! | `tlsrelay_delivery_attempts_total` | `connector`, `level`, `tls`, `cipher`, `outcome`, `dane` | one per attempt log line: the outbound connector's name (`-` for MX delivery without one; bounded by the config); TLS level asked; `TLSv1.3`, `TLSv1.2`, `plaintext`, `plaintext_fallback` or `-`; `sent` (a transaction was made), `deferred_for_policy`, `tls_rung_failed`, `connect_failed`, `refused_after_tls`; what DANE decided (README, "DANE") |
//! | `tlsrelay_queue_messages` | | messages in the spool |
//! | `tlsrelay_queue_oldest_seconds` | | age of the oldest one |
//! | `tlsrelay_queue_backlog` | | messages due now and waiting for a delivery slot (what inbound flow control reads) |
//! | `tlsrelay_flow_delayed_total` | | messages whose `250` inbound flow control delayed (backlog past half `backlog_limit`) |
//! | `tlsrelay_flow_refused_total` | | `MAIL` commands refused `452 4.3.1` because the backlog reached `backlog_limit` |
//! | `tlsrelay_spool_syncs_total` | | `fdatasync`/`fsync` calls the spool made on a segment, a message file or a folder |
//! | `tlsrelay_spool_batches_total` | | batches of records the committer wrote (one write each; synced when it holds a message) |
//! | `tlsrelay_certificate_expiry_timestamp_seconds` | `certificate` | `notAfter` of each certificate in use (Unix time) |
//! | `tlsrelay_log_lines_dropped_total` | | log lines dropped because the log output was stuck, slow or gone |
//! | `tlsrelay_transit_sessions_total` | `method`, `tls` | outbound sessions by how they travelled (`transit::Method` words) and TLS version (`1.3`, `1.2`, `none`), counted by the transit store |
//! | `tlsrelay_transit_messages_total` | `method`, `tls` | messages delivered, by the same labels |
//! | `tlsrelay_tls_rpt_reports_total` | `result` | TLS-RPT reports per destination: `posted`, `queued`, `failed` (tried again), `given-up` |
//! | `tlsrelay_requiretls_messages_total` | `outcome` | messages flagged REQUIRETLS (RFC 8689): `accepted` once per message; `delivered`, `returned` (5.7.30) per message and destination domain |

mod labels;
mod serve;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use serve::{bind, serve, CONTENT_TYPE};

use crate::transit::Method;
pub use labels::{AttemptLabels, NoticeKind, RecipientResult, ReportResult, RequireTlsOutcome};
use labels::{
    CertificateLabels, ConnectorLabels, NoticeLabels, ReportLabels, RequireTlsLabels, ResultLabels,
    SessionLabels, TransitLabels, TransitTls,
};

/// Every family of the process, and the registry that shows them.
struct Metrics {
    registry: Registry,
    sessions_current: Gauge,
    sessions: Family<SessionLabels, Counter>,
    messages_accepted: Family<ConnectorLabels, Counter>,
    recipients: Family<ResultLabels, Counter>,
    notices: Family<NoticeLabels, Counter>,
    delivery_attempts: Family<AttemptLabels, Counter>,
    queue_messages: Gauge,
    queue_oldest_seconds: Gauge,
    queue_backlog: Gauge,
    flow_delayed: Counter,
    flow_refused: Counter,
    spool_syncs: Counter,
    spool_batches: Counter,
    certificate_expiry: Family<CertificateLabels, Gauge>,
    log_lines_dropped: Counter,
    transit_sessions: Family<TransitLabels, Counter>,
    transit_messages: Family<TransitLabels, Counter>,
    tls_rpt_reports: Family<ReportLabels, Counter>,
    requiretls_messages: Family<RequireTlsLabels, Counter>,
}

impl Metrics {
    fn new() -> Self {
        let mut metrics = Metrics {
            registry: Registry::default(),
            sessions_current: Gauge::default(),
            sessions: Family::default(),
            messages_accepted: Family::default(),
            recipients: Family::default(),
            notices: Family::default(),
            delivery_attempts: Family::default(),
            queue_messages: Gauge::default(),
            queue_oldest_seconds: Gauge::default(),
            queue_backlog: Gauge::default(),
            flow_delayed: Counter::default(),
            flow_refused: Counter::default(),
            spool_syncs: Counter::default(),
            spool_batches: Counter::default(),
            certificate_expiry: Family::default(),
            log_lines_dropped: Counter::default(),
            transit_sessions: Family::default(),
            transit_messages: Family::default(),
            tls_rpt_reports: Family::default(),
            requiretls_messages: Family::default(),
        };
        let registry = &mut metrics.registry;
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "tlsrelay_sessions_current",
            "Inbound SMTP sessions open now",
            metrics.sessions_current.clone(),
        );
        registry.register(
            "tlsrelay_sessions",
            "Inbound SMTP sessions ended, by inbound connector and TLS version",
            metrics.sessions.clone(),
        );
        registry.register(
            "tlsrelay_messages_accepted",
            "Messages acknowledged with 250 after they were on stable storage",
            metrics.messages_accepted.clone(),
        );
        registry.register(
            "tlsrelay_recipients",
            "Recipient outcomes of delivery attempts",
            metrics.recipients.clone(),
        );
        registry.register(
            "tlsrelay_notices",
            "Delivery status notifications queued (failure = bounce)",
            metrics.notices.clone(),
        );
        registry.register(
            "tlsrelay_delivery_attempts",
            "Delivery attempts by outbound connector, TLS level asked, TLS outcome and cipher",
            metrics.delivery_attempts.clone(),
        );
        registry.register(
            "tlsrelay_queue_messages",
            "Messages in the spool",
            metrics.queue_messages.clone(),
        );
        registry.register(
            "tlsrelay_queue_oldest_seconds",
            "Age of the oldest message in the spool",
            metrics.queue_oldest_seconds.clone(),
        );
        registry.register(
            "tlsrelay_queue_backlog",
            "Messages due now and waiting for a delivery slot",
            metrics.queue_backlog.clone(),
        );
        registry.register(
            "tlsrelay_flow_delayed",
            "Messages whose 250 inbound flow control delayed (backlog past half backlog_limit)",
            metrics.flow_delayed.clone(),
        );
        registry.register(
            "tlsrelay_flow_refused",
            "MAIL commands refused 452 4.3.1 because the backlog reached backlog_limit",
            metrics.flow_refused.clone(),
        );
        registry.register(
            "tlsrelay_spool_syncs",
            "fdatasync/fsync calls the spool made on a segment, a message file or a folder",
            metrics.spool_syncs.clone(),
        );
        registry.register(
            "tlsrelay_spool_batches",
            "Batches of records the spool's committer wrote, one write each",
            metrics.spool_batches.clone(),
        );
        registry.register(
            "tlsrelay_certificate_expiry_timestamp_seconds",
            "notAfter of each certificate in use, in Unix seconds",
            metrics.certificate_expiry.clone(),
        );
        registry.register(
            "tlsrelay_log_lines_dropped",
            "Log lines dropped because the log output was stuck, slow or gone",
            metrics.log_lines_dropped.clone(),
        );
        registry.register(
            "tlsrelay_transit_sessions",
            "Outbound delivery sessions by how they travelled (method) and TLS version",
            metrics.transit_sessions.clone(),
        );
        registry.register(
            "tlsrelay_transit_messages",
            "Messages delivered by how they travelled (method) and TLS version",
            metrics.transit_messages.clone(),
        );
        registry.register(
            "tlsrelay_tls_rpt_reports",
            "TLS-RPT report deliveries by result: posted, queued (mail), failed (retried), given-up",
            metrics.tls_rpt_reports.clone(),
        );
        registry.register(
            "tlsrelay_requiretls_messages",
            "Messages flagged REQUIRETLS: accepted, and delivered or returned per destination domain",
            metrics.requiretls_messages.clone(),
        );
        metrics
    }

    /// The exposition text (Prometheus text format 0.0.4).
    fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

static GLOBAL: OnceLock<Metrics> = OnceLock::new();

fn global() -> &'static Metrics {
    GLOBAL.get_or_init(Metrics::new)
}

/// The exposition text of the process's metrics, the queue's age measured
/// now.
pub fn render() -> String {
    measure_queue();
    global().render()
}

/// Counts one log line dropped. Never logs: it is called from the logger.
pub fn log_line_dropped() {
    log_lines_dropped(1);
}

/// `count` log lines lost together (one failed write of several).
pub fn log_lines_dropped(count: u64) {
    global().log_lines_dropped.inc_by(count);
}

/// One message acknowledged with `250` on an inbound session of
/// `connector` (`-`: anonymous).
pub fn message_accepted(connector: &str) {
    global()
        .messages_accepted
        .get_or_create(&ConnectorLabels {
            connector: connector.to_string(),
        })
        .inc();
}

/// One recipient's outcome in one attempt (or given up without one).
pub fn recipient(result: RecipientResult) {
    global()
        .recipients
        .get_or_create(&ResultLabels { result })
        .inc();
}

/// One delivery status notification queued.
pub fn notice_queued(kind: NoticeKind) {
    global().notices.get_or_create(&NoticeLabels { kind }).inc();
}

/// One delivery attempt line.
pub fn delivery_attempt(labels: &AttemptLabels) {
    global().delivery_attempts.get_or_create(labels).inc();
}

/// One TLS-RPT report to one destination, and what became of it.
pub fn tls_rpt_report(result: ReportResult) {
    global()
        .tls_rpt_reports
        .get_or_create(&ReportLabels { result })
        .inc();
}

/// One message flagged REQUIRETLS (RFC 8689) accepted, or delivered to or
/// returned from one destination domain.
pub fn requiretls_message(outcome: RequireTlsOutcome) {
    global()
        .requiretls_messages
        .get_or_create(&RequireTlsLabels { outcome })
        .inc();
}

/// One transit event (`crate::transit::Sink::record`): `sessions` new
/// sessions and `messages` messages that travelled by `method` over TLS
/// `tls` (`Some("1.3")`, `Some("1.2")`, `None`).
pub fn transit(method: Method, tls: Option<&str>, sessions: u32, messages: u32) {
    let labels = TransitLabels {
        method,
        tls: match tls {
            Some("1.3") => TransitTls::V13,
            Some("1.2") => TransitTls::V12,
            _ => TransitTls::None,
        },
    };
    let metrics = global();
    if sessions > 0 {
        metrics
            .transit_sessions
            .get_or_create(&labels)
            .inc_by(u64::from(sessions));
    }
    if messages > 0 {
        metrics
            .transit_messages
            .get_or_create(&labels)
            .inc_by(u64::from(messages));
    }
}

/// Inbound flow control delayed one message's `250`.
pub fn flow_delayed() {
    global().flow_delayed.inc();
}

/// Inbound flow control refused one `MAIL` (`452 4.3.1`).
pub fn flow_refused() {
    global().flow_refused.inc();
}

/// The spool asked for one `fdatasync` or `fsync` (a segment, a large
/// message's file or a folder): syncs per accepted message is what group
/// commit is judged by.
pub fn spool_synced() {
    global().spool_syncs.inc();
}

/// The spool's committer wrote one batch of records.
pub fn spool_batch_written() {
    global().spool_batches.inc();
}

/// An inbound session: counted open now, and by how it ended when dropped.
pub struct SessionGauge {
    pub connector: String,
    pub tls: String,
}

impl SessionGauge {
    pub fn open() -> Self {
        global().sessions_current.inc();
        SessionGauge {
            connector: "-".into(),
            tls: "plaintext".into(),
        }
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        let metrics = global();
        metrics.sessions_current.dec();
        metrics
            .sessions
            .get_or_create(&SessionLabels {
                connector: std::mem::take(&mut self.connector),
                tls: std::mem::take(&mut self.tls),
            })
            .inc();
    }
}

/// Records `notAfter` of the certificate `name` (`tls.cert`, …) from `path`.
pub fn certificate_expiry(name: &str, path: &Path) {
    let Ok(certs) = crate::tls::certs::read_certificates(path) else {
        return;
    };
    let Some(first) = certs.first() else {
        return;
    };
    use x509_parser::prelude::{FromDer, X509Certificate};
    if let Ok((_, cert)) = X509Certificate::from_der(first.as_ref()) {
        let not_after = cert.validity().not_after.timestamp();
        global()
            .certificate_expiry
            .get_or_create(&CertificateLabels {
                certificate: name.to_string(),
            })
            .set(not_after);
    }
}

/// Arrival (Unix seconds) of the oldest queued message; `i64::MIN`: none.
static OLDEST_ARRIVAL: AtomicI64 = AtomicI64::new(i64::MIN);

/// The queue manager's count: `messages` queued, the oldest arrived at
/// `oldest` (Unix seconds), `backlog` of them due and waiting for a slot.
pub fn queue_measured(messages: usize, oldest: Option<i64>, backlog: usize) {
    let metrics = global();
    metrics
        .queue_messages
        .set(i64::try_from(messages).unwrap_or(i64::MAX));
    metrics
        .queue_backlog
        .set(i64::try_from(backlog).unwrap_or(i64::MAX));
    OLDEST_ARRIVAL.store(oldest.unwrap_or(i64::MIN), Ordering::Relaxed);
}

/// The oldest message's age now, from the arrival the queue keeps.
fn measure_queue() {
    let oldest = OLDEST_ARRIVAL.load(Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let age = match oldest {
        i64::MIN => 0,
        at => now.saturating_sub(at).max(0),
    };
    global().queue_oldest_seconds.set(age);
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "dashboard_tests.rs"]
mod dashboard_tests;
