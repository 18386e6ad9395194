//! The sender: each finished UTC day's report for each policy domain,
//! to every `rua` URI of the domain's `_smtp._tls` record, looked up when
//! the report is due (RFC 8460 §3). What it needs from the rest of the
//! relay sits behind [`Outside`], so the schedule, the retries and what
//! is logged are tested without a network.
//!
//! One log line per destination and try, `tls-rpt report` with `day`,
//! `domain`, `rua`, `result` (`posted`, `queued`, `failed`, `given-up`,
//! `no-record`) and the reason or queue id: one grep finds a report's fate.

use std::future::Future;
use std::path::{Path, PathBuf};

use super::mail::{gzip, ReportMail};
use super::record::{self, RecordError, Rua};
use super::schedule::{day_end, Book};
use crate::metrics::ReportResult;

/// Stands for "look the record up again" among the pending destinations:
/// the record lookup itself failed (a DNS failure is retried like a
/// failed post).
const LOOKUP: &str = "_smtp._tls";

/// One day's report for one domain, as the transit store builds it.
pub struct Report {
    /// The RFC 8460 JSON.
    pub json: Vec<u8>,
    pub report_id: String,
}

/// What the sender asks of the relay.
pub trait Outside: Send + Sync {
    /// The finished UTC days (`YYYY-MM-DD`) at `now` worth reporting,
    /// each with the policy domains that had sessions.
    fn days(&self, now: i64) -> impl Future<Output = Vec<(String, Vec<String>)>> + Send;
    /// The report of `domain` for `day`; `None` when nothing was counted.
    fn report(&self, day: &str, domain: &str) -> impl Future<Output = Option<Report>> + Send;
    /// The TXT strings at `name`; `Ok(empty)` when there are none.
    fn txt(&self, name: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// POSTs `body` to `url`; `Ok` on a 2xx answer.
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Commits a message to our own queue; its queue id.
    fn enqueue(
        &self,
        sender: &str,
        recipient: &str,
        content: Vec<u8>,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// Who we are in reports.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `[tls_rpt] submitter`, else `[server] hostname`.
    pub submitter: String,
    /// The report mail's `From:` and envelope sender.
    pub from: String,
    /// `[report] history`, in seconds: older days are forgotten.
    pub history: i64,
}

/// The sender's state, saved in `SPOOL_DIR/tls-rpt/schedule.json`.
pub struct Sender<O> {
    outside: O,
    who: Identity,
    file: PathBuf,
    book: Book,
}

impl<O: Outside> Sender<O> {
    /// Opens the schedule under `spool_dir` (a missing or unreadable file
    /// starts empty: at worst a report is sent twice, never lost).
    pub fn open(spool_dir: &Path, outside: O, who: Identity) -> std::io::Result<Self> {
        let folder = spool_dir.join("tls-rpt");
        crate::queue::modes::create_folder(&folder)?;
        let file = folder.join("schedule.json");
        let book = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %file.display(), error = %e, "TLS-RPT schedule unreadable; starting afresh");
                Book::default()
            }),
            Err(_) => Book::default(),
        };
        Ok(Sender {
            outside,
            who,
            file,
            book,
        })
    }

    /// The schedule as it stands.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// Notes new finished days, sends what is due at `now` (Unix
    /// seconds); returns when to call again at the latest.
    pub async fn tick(&mut self, now: i64) -> Option<i64> {
        let before = self.book.clone();
        for (day, domains) in self.outside.days(now).await {
            if day_end(&day).is_some_and(|end| end + self.who.history < now) {
                continue;
            }
            for domain in domains {
                self.book.add(&day, &domain, now, crate::random::unit());
            }
        }
        self.book.prune(now - self.who.history);
        for (day, domain) in self.book.due(now) {
            let pending = self.pending(&day, &domain).await;
            let left = self.serve(&day, &domain, pending).await;
            if let Some(given_up) = self.book.tried(&day, &domain, now, left) {
                for rua in given_up {
                    tracing::warn!(day, domain, rua, result = "given-up", "tls-rpt report");
                    crate::metrics::tls_rpt_report(ReportResult::GivenUp);
                }
            }
        }
        if self.book != before {
            self.save();
        }
        self.book.next_wake()
    }

    /// The destinations still to serve: all of the record's at the first
    /// try (or after a failed lookup), else those that failed.
    async fn pending(&self, day: &str, domain: &str) -> Vec<String> {
        let entry = self.book.entries.get(day).and_then(|d| d.get(domain));
        let pending = entry.map(|e| e.pending.clone()).unwrap_or_default();
        let first = entry.is_some_and(|e| e.tries == 0);
        if !first && pending.iter().all(|p| p != LOOKUP) {
            return pending;
        }
        let name = format!("_smtp._tls.{domain}");
        match self.outside.txt(&name).await.map(|txt| record::parse(&txt)) {
            Ok(Ok(ruas)) => ruas.iter().map(ToString::to_string).collect(),
            Ok(Err(RecordError::Missing)) => {
                tracing::info!(
                    day,
                    domain,
                    rua = "-",
                    result = "no-record",
                    "tls-rpt report"
                );
                Vec::new()
            }
            Ok(Err(e)) => {
                tracing::warn!(day, domain, rua = "-", result = "no-record", reason = %e, "tls-rpt report");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(day, domain, rua = "-", result = "failed", reason = %format!("{name}: {e}"), "tls-rpt report");
                vec![LOOKUP.to_string()]
            }
        }
    }

    /// Sends the report to each of `pending`; returns those that failed.
    async fn serve(&self, day: &str, domain: &str, pending: Vec<String>) -> Vec<String> {
        if pending.is_empty() || pending.iter().any(|p| p == LOOKUP) {
            return pending;
        }
        let Some(report) = self.outside.report(day, domain).await else {
            return Vec::new();
        };
        let begin = day_end(day).map_or(0, |end| end - 86_400);
        let mut left = Vec::new();
        for uri in pending {
            let Some(rua) = record::rua(&uri) else {
                continue;
            };
            let sent = match &rua {
                Rua::Https(url) => self
                    .outside
                    .post(url, "application/tlsrpt+gzip", gzip(&report.json))
                    .await
                    .map(|()| ("posted", String::new())),
                Rua::Mailto(to) => {
                    let date = crate::smtp::date::rfc5322_date(time::OffsetDateTime::now_utc());
                    let mail = ReportMail {
                        from: &self.who.from,
                        to,
                        domain,
                        submitter: &self.who.submitter,
                        report_id: &report.report_id,
                        begin,
                        end: begin + 86_399,
                        date: &date,
                    };
                    let content = mail.render(&report.json);
                    (self.outside.enqueue(&self.who.from, to, content).await)
                        .map(|id| ("queued", id))
                }
            };
            match sent {
                Ok((result, queue_id)) => {
                    tracing::info!(day, domain, rua = %rua, result, queue_id, report_id = report.report_id, "tls-rpt report");
                    crate::metrics::tls_rpt_report(match rua {
                        Rua::Https(_) => ReportResult::Posted,
                        Rua::Mailto(_) => ReportResult::Queued,
                    });
                }
                Err(reason) => {
                    tracing::warn!(day, domain, rua = %rua, result = "failed", reason, "tls-rpt report");
                    crate::metrics::tls_rpt_report(ReportResult::Failed);
                    left.push(uri);
                }
            }
        }
        left
    }

    fn save(&self) {
        let written = serde_json::to_vec(&self.book)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::queue::modes::replace_file(&self.file, &bytes));
        if let Err(e) = written {
            tracing::warn!(file = %self.file.display(), error = %e, "cannot save the TLS-RPT schedule");
        }
    }
}

#[cfg(test)]
#[path = "send_tests.rs"]
mod tests;
