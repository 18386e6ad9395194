//! A notice that cannot go under REQUIRETLS is dropped, never bounced
//! (RFC 8689 §5; RFC 5321 §6.2: no notice about a notice): the sender's
//! domain is served by Postfix (verified, no REQUIRETLS), so the notice
//! of a returned message is itself skipped there and fails with 5.7.30,
//! and nothing of it reaches Postfix.

use std::time::{Duration, Instant};

use super::cells::{Cell, Expect, Flag, VERIFY_HOST};
use super::check::{far_side, lines_of, log, queue, word};
use super::lab::Hop;
use super::run::{send_and_settle, Lab};
use crate::mta_sts::check::{assert_all_right, events, note, settle};
use crate::support::dns::DnsServer;
use crate::support::relay::Relay;

#[rustfmt::skip]
pub const CELLS: [Cell; 1] = [
    Cell { name: "c-dropped", route: VERIFY_HOST, hops: &[Hop::Postfix], flag: Flag::Param,
        expect: Expect::Returned { connected: Some(true) }, word: "required" },
];

pub fn run() {
    let lab = Lab::start_with_home(&CELLS, Hop::Postfix);
    let dns = DnsServer::start(&lab.zone(&CELLS));
    let relay = lab.relay(&CELLS, dns.addr, 1, None);
    let outcome = send_and_settle(&lab, &relay, &CELLS);
    let (cell, id) = (&CELLS[0], &outcome.ids[0]);
    let mut wrong = far_side(cell, &lab.hosts[0], &outcome.made[0]);
    wrong.extend(queue(cell, &relay, outcome.gone.get(id) == Some(&true)));
    wrong.extend(log(cell, &relay, id));
    wrong.extend(notice_dropped(cell, &relay, id));
    let home = lab.home.mail_commands();
    if !home.is_empty() {
        wrong.push(format!("the sender's Postfix got mail commands: {home:?}"));
    }
    let mut failures = Vec::new();
    note(&mut failures, cell.name, id, &wrong);
    assert_all_right(
        &failures,
        &relay,
        "a notice that cannot go under REQUIRETLS",
    );
}

/// The notice of `id` was queued, skipped the sender's Postfix (an
/// attempt line `requiretls=required`), failed with 5.7.30 and a reason
/// `REQUIRETLS:…`, left the queue, and no notice was queued about it.
fn notice_dropped(cell: &Cell, relay: &Relay, id: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let notice = loop {
        let queued = events(relay, "delivery status notification queued");
        let found = queued
            .iter()
            .find(|e| e["fields"]["queue_id"] == id)
            .and_then(|e| e["fields"]["dsn_queue_id"].as_str().map(str::to_string));
        match found {
            Some(notice) => break notice,
            None if Instant::now() > deadline => return vec!["no notice was queued".into()],
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let mut wrong = Vec::new();
    if settle(relay, std::slice::from_ref(&notice), 1).get(&notice) != Some(&true) {
        wrong.push(format!("the notice {notice} is still queued"));
    }
    let attempts: Vec<Option<String>> = lines_of(relay, "delivery attempt", &notice)
        .iter()
        .map(|e| word(e, "requiretls"))
        .collect();
    if attempts.is_empty() || attempts.iter().any(|w| w.as_deref() != Some("required")) {
        wrong.push(format!("the notice's attempts say requiretls {attempts:?}"));
    }
    let failed: Vec<(Option<String>, String)> = lines_of(relay, "failed", &notice)
        .iter()
        .filter(|e| e["fields"]["to"] == cell.sender().as_str())
        .map(|e| {
            let reason = e["fields"]["reason"].as_str().unwrap_or_default();
            (word(e, "status"), reason.to_string())
        })
        .collect();
    if !matches!(failed.as_slice(), [(Some(status), reason)]
        if status == "5.7.30" && reason.starts_with("REQUIRETLS:"))
    {
        wrong.push(format!(
            "the notice {notice} failed as {failed:?}, not once 5.7.30 REQUIRETLS:…"
        ));
    }
    let bounced = events(relay, "delivery status notification queued")
        .iter()
        .any(|e| e["fields"]["queue_id"] == notice.as_str());
    if bounced {
        wrong.push(format!("a notice was queued about the notice {notice}"));
    }
    wrong
}
