use std::sync::Mutex;

use super::*;
use crate::tls_rpt::schedule::{GIVE_UP, SPREAD};

const DAY: &str = "2026-12-06";
const END: i64 = 1_796_601_600; // 2026-12-07T00:00:00Z

/// A scripted relay: one day with the given domains, TXT answers by
/// name, posts that fail while `fail_posts` is set.
#[derive(Default)]
struct Fake {
    domains: Vec<String>,
    txt: Vec<(String, Result<Vec<String>, String>)>,
    fail_posts: Mutex<bool>,
    posted: Mutex<Vec<(String, String, Vec<u8>)>>,
    queued: Mutex<Vec<(String, String, Vec<u8>)>>,
}

impl Outside for &Fake {
    async fn days(&self, _now: i64) -> Vec<(String, Vec<String>)> {
        vec![(DAY.to_string(), self.domains.clone())]
    }
    async fn report(&self, day: &str, domain: &str) -> Option<Report> {
        Some(Report {
            json: format!("{{\"day\":\"{day}\",\"domain\":\"{domain}\"}}").into_bytes(),
            report_id: format!("{day}.{domain}@relay.test"),
        })
    }
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        (self.txt.iter().find(|(n, _)| n == name))
            .map_or(Ok(Vec::new()), |(_, answer)| answer.clone())
    }
    async fn post(&self, url: &str, content_type: &str, body: Vec<u8>) -> Result<(), String> {
        if *self.fail_posts.lock().unwrap() {
            return Err("HTTP 503".into());
        }
        let posted = (url.to_string(), content_type.to_string(), body);
        self.posted.lock().unwrap().push(posted);
        Ok(())
    }
    async fn enqueue(&self, sender: &str, to: &str, content: Vec<u8>) -> Result<String, String> {
        let mut queued = self.queued.lock().unwrap();
        queued.push((sender.to_string(), to.to_string(), content));
        Ok(format!("Q{}", queued.len()))
    }
}

fn who() -> Identity {
    Identity {
        submitter: "relay.test".into(),
        from: "postmaster@relay.test".into(),
        history: 30 * 86_400,
    }
}

fn record(domain: &str, value: &str) -> (String, Result<Vec<String>, String>) {
    (format!("_smtp._tls.{domain}"), Ok(vec![value.to_string()]))
}

#[tokio::test]
async fn every_rua_gets_the_report_once_after_the_day() {
    let fake = Fake {
        domains: vec!["a.test".into(), "quiet.test".into()],
        txt: vec![record(
            "a.test",
            "v=TLSRPTv1; rua=mailto:rpt@a.test,https://collector.test/r",
        )],
        ..Fake::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut sender = Sender::open(dir.path(), &fake, who()).unwrap();
    let wake = sender.tick(END - 1).await;
    assert_eq!(wake, None, "the day is not over");
    let wake = sender.tick(END).await.expect("reports are due");
    assert!((END..=END + SPREAD).contains(&wake));
    sender.tick(END + SPREAD).await;
    let posted = fake.posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].0, "https://collector.test/r");
    assert_eq!(posted[0].1, "application/tlsrpt+gzip");
    assert_eq!(&posted[0].2[..2], &[0x1f, 0x8b], "gzip");
    let queued = fake.queued.lock().unwrap().clone();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].1, "rpt@a.test");
    let mail = String::from_utf8(queued[0].2.clone()).unwrap();
    assert!(mail.contains("TLS-Report-Domain: a.test\r\n"));
    assert!(mail.contains("relay.test!a.test!1796515200!1796601599.json.gz"));
    // Nothing twice, also after a restart.
    drop(sender);
    let mut sender = Sender::open(dir.path(), &fake, who()).unwrap();
    assert_eq!(sender.tick(END + 2 * SPREAD).await, None);
    assert_eq!(fake.posted.lock().unwrap().len(), 1);
    assert_eq!(fake.queued.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failing_collector_is_retried_for_a_day_then_given_up() {
    // The collector answers again after the third try.
    let (fake, tries, _) = run_failing(Some(3)).await;
    assert_eq!(fake.posted.lock().unwrap().len(), 1, "posted when up");
    assert_eq!(tries, 3, "three failed ticks, then the one that posted");
    // It never does.
    let (fake, tries, now) = run_failing(None).await;
    assert!(now <= END + SPREAD + GIVE_UP, "given up within a day");
    assert!(tries > 20, "tried through the day, {tries} times");
    assert!(fake.posted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_record_lookup_is_retried_and_no_record_means_no_report() {
    let fake = Fake {
        domains: vec!["a.test".into(), "none.test".into()],
        txt: vec![("_smtp._tls.a.test".to_string(), Err("SERVFAIL".to_string()))],
        ..Fake::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut sender = Sender::open(dir.path(), &fake, who()).unwrap();
    let next = sender.tick(END + SPREAD).await;
    let entries = &sender.book().entries[DAY];
    assert!(entries["none.test"].finished, "no record: nothing to send");
    assert!(
        !entries["a.test"].finished,
        "a failed lookup is tried again"
    );
    assert!(next.is_some());
}

/// Ticks a sender whose collector fails (until try `recovers_after`)
/// until it has nothing left; the fake, the tries and the last tick.
async fn run_failing(recovers_after: Option<u32>) -> (Fake, u32, i64) {
    let fake = Fake {
        domains: vec!["a.test".into()],
        txt: vec![record("a.test", "v=TLSRPTv1; rua=https://collector.test/r")],
        fail_posts: Mutex::new(true),
        ..Fake::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut sender = Sender::open(dir.path(), &fake, who()).unwrap();
    let mut now = END + SPREAD;
    let mut tries = 0;
    while let Some(next) = sender.tick(now).await {
        tries += 1;
        now = next.max(now);
        assert!(tries < 100, "bounded");
        if Some(tries) == recovers_after {
            *fake.fail_posts.lock().unwrap() = false;
        }
    }
    drop(sender);
    (fake, tries, now)
}
