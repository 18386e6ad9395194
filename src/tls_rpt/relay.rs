//! The sender's [`Outside`] in the running relay: the transit files for
//! the counts, the relay's resolver for `_smtp._tls` and the collectors'
//! addresses, the HTTPS client of MTA-STS (webpki roots plus `[mta_sts]
//! ca_file`) for posts, and our own queue for report mail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::queue_mail::Outbox;
use super::schedule::date_end;
use super::send::{Identity, Outside, Report, Sender};
use crate::config::values::Host;
use crate::config::Config;
use crate::outbound::route::{addresses, Resolve};
use crate::tls::certs::load_ca_file;
use crate::transit::files;
use crate::transit::journal::{self, day_name, parse_day};
use crate::transit::tls_rpt::{report, report_id, Submitter};

/// How many finished days back the sender looks: a relay stopped for
/// longer does not report the days it missed (a late report is of little
/// use to the receiver, RFC 8460 §4.1).
const DAYS_BACK: i64 = 3;

pub struct RelayOutside<R> {
    pub resolver: R,
    pub https: crate::https::Client,
    /// `SPOOL_DIR/transit`.
    pub folder: PathBuf,
    pub who: Submitter,
    pub outbox: Outbox,
}

impl<R: Resolve> Outside for RelayOutside<R> {
    async fn days(&self, now: i64) -> Vec<(String, Vec<String>)> {
        let folder = self.folder.clone();
        off_runtime(move || finished_days(&folder, now))
            .await
            .unwrap_or_default()
    }

    async fn report(&self, day: &str, domain: &str) -> Option<Report> {
        let (folder, who) = (self.folder.clone(), self.who.clone());
        let (day, domain) = (day.to_string(), domain.to_string());
        off_runtime(move || {
            let date = parse_day(&day)?;
            let read = files::read_day(&folder, date).ok()?;
            let counts = read
                .counts
                .domains
                .get(&domain)
                .filter(|c| c.has_sessions())?;
            let value = report(date, &domain, counts, &who);
            Some(Report {
                json: serde_json::to_vec(&value).ok()?,
                report_id: report_id(date, &domain, &who.submitter),
            })
        })
        .await
        .flatten()
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        self.resolver.txt(name).await.map_err(|e| e.to_string())
    }

    async fn post(&self, url: &str, content_type: &str, body: Vec<u8>) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let (host, host_name) = match parsed.host() {
            Some(url::Host::Domain(name)) => (
                Host::Name(name.parse().map_err(|e| format!("{url}: {e}"))?),
                name.to_string(),
            ),
            Some(url::Host::Ipv4(ip)) => (Host::Ip(ip.into()), ip.to_string()),
            Some(url::Host::Ipv6(ip)) => (Host::Ip(ip.into()), ip.to_string()),
            None => return Err(format!("{url}: no host")),
        };
        let port = parsed.port().unwrap_or(443);
        let path = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_string(),
        };
        let ips = addresses(&self.resolver, &host)
            .await
            .map_err(|(_, reason)| reason)?;
        let target = crate::https::Target {
            host: &host_name,
            addresses: &ips,
            port,
            path: &path,
        };
        self.https
            .post(&target, content_type, body)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn enqueue(
        &self,
        sender: &str,
        recipient: &str,
        content: Vec<u8>,
    ) -> Result<String, String> {
        self.outbox.enqueue(sender, recipient, &content).await
    }
}

/// File work on the blocking pool; `None` if it could not run.
async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

/// The days of `folder` that ended before `now`, at most [`DAYS_BACK`]
/// ago, each with the policy domains it counted.
fn finished_days(folder: &Path, now: i64) -> Vec<(String, Vec<String>)> {
    let days = files::days(folder).unwrap_or_else(|e| {
        tracing::warn!(folder = %folder.display(), error = %e, "cannot list the transit records for TLS-RPT");
        Vec::new()
    });
    let mut found = Vec::new();
    for day in days {
        let Some(end) = date_end(day) else { continue };
        if end > now || end + DAYS_BACK * 86_400 < now {
            continue;
        }
        match files::read_day(folder, day) {
            Ok(read) => {
                let domains = (read.counts.reported_domains())
                    .map(|(domain, _)| domain.clone())
                    .collect();
                found.push((day_name(day), domains));
            }
            Err(e) => {
                tracing::warn!(day = %day_name(day), error = %e, "cannot read the transit records for TLS-RPT")
            }
        }
    }
    found
}

/// How long one report post may take, all of it.
const POST_TIMEOUT: Duration = Duration::from_secs(60);

/// The TLS-RPT sender of a starting relay; `None` unless `[tls_rpt]
/// enabled`. Posts trust the webpki roots plus `[mta_sts] ca_file`.
pub fn sender<R: Resolve>(
    config: &Config,
    resolver: R,
    outbox: Outbox,
) -> Result<Option<Sender<RelayOutside<R>>>, String> {
    if !config.tls_rpt.enabled {
        return Ok(None);
    }
    let extra = match &config.mta_sts.ca_file {
        Some(path) => load_ca_file(path).map_err(|e| format!("[mta_sts] ca_file: {e}"))?,
        None => Vec::new(),
    };
    let https = crate::https::Client::new(&extra, POST_TIMEOUT)
        .map_err(|e| format!("[mta_sts] ca_file: {e}"))?;
    let spool_dir = &config.server.spool_dir;
    let who = Submitter::of(config);
    let identity = Identity {
        submitter: who.submitter.clone(),
        from: format!("postmaster@{}", config.server.hostname),
        history: config.report.history.0.as_secs() as i64,
    };
    let outside = RelayOutside {
        resolver,
        https,
        folder: journal::folder(spool_dir),
        who,
        outbox,
    };
    Sender::open(spool_dir, outside, identity)
        .map(Some)
        .map_err(|e| format!("{}: {e}", spool_dir.join("tls-rpt").display()))
}
