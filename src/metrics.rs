//! Prometheus metrics (text exposition format 0.0.4) at `[admin]
//! metrics_listen` (DESIGN.md §7).
//!
//! Counters and gauges live in one process-wide [`Registry`]: the inbound
//! sessions, the delivery attempts and the queue each count where the
//! event happens, with no handle passed through every layer. The queue's
//! size and its oldest message's arrival are kept by the queue manager as
//! messages come and go ([`queue_measured`]); a scrape works out the age
//! and reads no folder.
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `tlsrelay_sessions_current` | | inbound SMTP sessions open now |
//! | `tlsrelay_sessions_total` | `connector`, `tls` | inbound sessions ended, by connector and TLS version (`plaintext`) |
//! | `tlsrelay_messages_accepted_total` | `connector` | messages acknowledged with `250` (on disk) |
//! | `tlsrelay_recipients_total` | `result` | recipient outcomes per attempt: `delivered`, `deferred`, `failed` (also `max_age` and `tlsrelay queue bounce`) |
//! | `tlsrelay_notices_total` | `kind` | DSNs queued: `failure` (bounces), `delay` |
//! | `tlsrelay_delivery_attempts_total` | `connector`, `level`, `tls`, `cipher`, `outcome` | one per attempt log line: the outbound connector's name (`-` for MX delivery without one; bounded by the config); TLS level asked; `TLSv1.3`, `TLSv1.2`, `plaintext`, `plaintext_fallback` or `-`; `sent` (a transaction was made), `deferred_for_policy`, `tls_rung_failed`, `connect_failed`, `refused_after_tls` |
//! | `tlsrelay_queue_messages` | | messages in the spool |
//! | `tlsrelay_queue_oldest_seconds` | | age of the oldest one |
//! | `tlsrelay_certificate_expiry_timestamp_seconds` | `certificate` | `notAfter` of each certificate in use (Unix time) |
//! | `tlsrelay_log_lines_dropped_total` | | log lines dropped because the log output was stuck, slow or gone |

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A metric's name and type, with its help text.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "tlsrelay_sessions_current",
        kind: "gauge",
        help: "Inbound SMTP sessions open now.",
    },
    Family {
        name: "tlsrelay_sessions_total",
        kind: "counter",
        help: "Inbound SMTP sessions ended, by inbound connector and TLS version.",
    },
    Family {
        name: "tlsrelay_messages_accepted_total",
        kind: "counter",
        help: "Messages acknowledged with 250 after they were on stable storage.",
    },
    Family {
        name: "tlsrelay_recipients_total",
        kind: "counter",
        help: "Recipient outcomes of delivery attempts.",
    },
    Family {
        name: "tlsrelay_notices_total",
        kind: "counter",
        help: "Delivery status notifications queued (failure = bounce).",
    },
    Family {
        name: "tlsrelay_delivery_attempts_total",
        kind: "counter",
        help: "Delivery attempts by outbound connector, TLS level asked, TLS outcome and cipher.",
    },
    Family {
        name: "tlsrelay_queue_messages",
        kind: "gauge",
        help: "Messages in the spool.",
    },
    Family {
        name: "tlsrelay_queue_oldest_seconds",
        kind: "gauge",
        help: "Age of the oldest message in the spool.",
    },
    Family {
        name: LOG_LINES_DROPPED,
        kind: "counter",
        help: "Log lines dropped because the log output was stuck, slow or gone.",
    },
    Family {
        name: "tlsrelay_certificate_expiry_timestamp_seconds",
        kind: "gauge",
        help: "notAfter of each certificate in use, in Unix seconds.",
    },
];

/// Label pairs in a fixed order, so one series has one key.
type Labels = Vec<(&'static str, String)>;

/// All series of the process.
#[derive(Default)]
pub struct Registry {
    values: Mutex<BTreeMap<(&'static str, Labels), f64>>,
}

static GLOBAL: OnceLock<Registry> = OnceLock::new();

/// The process's registry.
pub fn global() -> &'static Registry {
    GLOBAL.get_or_init(Registry::default)
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> (&'static str, Labels) {
    (
        name,
        labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    )
}

impl Registry {
    /// Adds `by` to a series (counters: `by` ≥ 0; gauges: either sign).
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: f64) {
        if let Ok(mut values) = self.values.lock() {
            *values.entry(key(name, labels)).or_default() += by;
        }
    }

    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1.0);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        if let Ok(mut values) = self.values.lock() {
            values.insert(key(name, labels), value);
        }
    }

    /// The exposition text: every family with a value, `# HELP` and
    /// `# TYPE` first; families without a series yet show as 0 when they
    /// have no labels, so a dashboard sees them from the start.
    pub fn render(&self) -> String {
        let Ok(values) = self.values.lock() else {
            return String::new();
        };
        let mut out = String::new();
        for family in FAMILIES {
            let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
            let mut any = false;
            for ((name, labels), value) in values.range((family.name, Vec::new())..) {
                if *name != family.name {
                    break;
                }
                any = true;
                let _ = writeln!(out, "{name}{} {value}", label_text(labels));
            }
            if !any && !family.name.ends_with("_total") && family.name != CERT_EXPIRY {
                let _ = writeln!(out, "{} 0", family.name);
            }
        }
        out
    }
}

const CERT_EXPIRY: &str = "tlsrelay_certificate_expiry_timestamp_seconds";

/// Log lines the log sink could not write (`crate::log_sink`).
pub const LOG_LINES_DROPPED: &str = "tlsrelay_log_lines_dropped_total";

/// Counts one log line dropped. Never logs: it is called from the logger.
pub fn log_line_dropped() {
    global().inc(LOG_LINES_DROPPED, &[]);
}

fn label_text(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// Label values escape `\`, `"` and newlines (exposition format).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// An inbound session: counted open now, and by how it ended when dropped.
pub struct SessionGauge {
    pub connector: String,
    pub tls: String,
}

impl SessionGauge {
    pub fn open() -> Self {
        global().add("tlsrelay_sessions_current", &[], 1.0);
        SessionGauge {
            connector: "-".into(),
            tls: "plaintext".into(),
        }
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        let registry = global();
        registry.add("tlsrelay_sessions_current", &[], -1.0);
        registry.inc(
            "tlsrelay_sessions_total",
            &[("connector", &self.connector), ("tls", &self.tls)],
        );
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
        let not_after = cert.validity().not_after.timestamp() as f64;
        global().set(CERT_EXPIRY, &[("certificate", name)], not_after);
    }
}

/// Arrival (Unix seconds) of the oldest queued message; `i64::MIN`: none.
static OLDEST_ARRIVAL: AtomicI64 = AtomicI64::new(i64::MIN);

/// The queue manager's count: `messages` queued, the oldest arrived at
/// `oldest` (Unix seconds).
pub fn queue_measured(messages: usize, oldest: Option<i64>) {
    global().set("tlsrelay_queue_messages", &[], messages as f64);
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
    global().set("tlsrelay_queue_oldest_seconds", &[], age as f64);
}

/// A request head is small; anything bigger is not a scrape.
const MAX_REQUEST: usize = 8192;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) {
    while let Some((stream, _)) =
        crate::net::next_connection("metrics", &shutdown, || listener.accept()).await
    {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream)).await;
        });
    }
}

/// Binds the metrics listener, when one is configured.
pub async fn bind(addr: Option<SocketAddr>) -> std::io::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => {
            let listener = crate::net::bind("metrics", addr).await?;
            tracing::info!(address = %listener.local_addr()?, "metrics listening");
            Ok(Some(listener))
        }
        None => Ok(None),
    }
}

async fn answer(mut stream: TcpStream) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => {
            measure_queue();
            ("200 OK", global().render())
        }
        ("GET", _) => ("404 Not Found", "only /metrics is here\n".to_string()),
        _ => ("405 Method Not Allowed", "GET only\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_text_groups_series_under_their_family() {
        let registry = Registry::default();
        registry.inc("tlsrelay_recipients_total", &[("result", "delivered")]);
        registry.inc("tlsrelay_recipients_total", &[("result", "delivered")]);
        registry.inc("tlsrelay_recipients_total", &[("result", "deferred")]);
        registry.inc(
            "tlsrelay_sessions_total",
            &[("connector", "odd \"name\"\\"), ("tls", "TLSv1.3")],
        );
        let text = registry.render();
        assert!(text.contains("# TYPE tlsrelay_recipients_total counter\n"));
        assert!(text.contains("tlsrelay_recipients_total{result=\"delivered\"} 2\n"));
        assert!(text.contains("tlsrelay_recipients_total{result=\"deferred\"} 1\n"));
        assert!(text.contains(
            "tlsrelay_sessions_total{connector=\"odd \\\"name\\\"\\\\\",tls=\"TLSv1.3\"} 1\n"
        ));
        // A gauge without series shows 0; a counter without series shows nothing.
        assert!(text.contains("\ntlsrelay_sessions_current 0\n"));
        assert!(!text.contains("tlsrelay_notices_total{"));
        let series_of_recipients = text
            .lines()
            .filter(|l| l.starts_with("tlsrelay_recipients_total"))
            .count();
        assert_eq!(series_of_recipients, 2);
    }
}
