//! What each cell asks of a run, through what the far sides recorded
//! and the relay's own surfaces: the spool, the `message accepted`,
//! `delivery attempt` and `failed` log lines, the notice at the sender's
//! receiver (parsed as a DSN) and `tlsrelay report --json`.

use serde_json::Value;

use super::cells::{Cell, Expect, Flag};
use super::lab::{Far, Got};
use super::run::{Lab, Outcome};
use crate::mta_sts::check::{self, events};
use crate::support::dsn;
use crate::support::relay::Relay;
use crate::support::requiretls_receiver::Message;

/// The word of `key` in a log event: its field (a string or a bool), or
/// `key=WORD` in the line's text.
pub fn word(event: &Value, key: &str) -> Option<String> {
    match &event["fields"][key] {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => {
            let text = event.to_string();
            let (_, after) = text.split_once(&format!("{key}="))?;
            after
                .split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '\\')
                .next()
                .map(str::to_string)
        }
    }
}

/// The log lines `message` of queue id `id`.
pub fn lines_of(relay: &Relay, message: &str, id: &str) -> Vec<Value> {
    events(relay, message)
        .into_iter()
        .filter(|e| e["fields"]["queue_id"] == id)
        .collect()
}

/// Every check of one cell; what is wrong, if anything.
pub fn cell(cell: &Cell, relay: &Relay, lab: &Lab, index: usize, outcome: &Outcome) -> Vec<String> {
    let id = &outcome.ids[index];
    let mut wrong = far_side(cell, &lab.hosts[index], &outcome.made[index]);
    let gone = outcome.gone.get(id).copied().unwrap_or(false);
    wrong.extend(queue(cell, relay, gone));
    wrong.extend(log(cell, relay, id));
    if let (Flag::Header, Expect::Delivered { at, .. }) = (cell.flag, cell.expect) {
        let kept = lab.hosts[index][at].receiver().is_some_and(|r| {
            r.messages().iter().any(|m| {
                m.data.contains(&cell.secret()) && m.data.contains("\r\nTLS-Required: No\r\n")
            })
        });
        if !kept {
            wrong.push("the TLS-Required: No header was not passed on".into());
        }
    }
    wrong.extend(notice(cell, lab));
    wrong
}

/// Gone after the first attempt (delivered or returned at once), or
/// waiting with a 4.7.x status.
pub fn queue(cell: &Cell, relay: &Relay, gone: bool) -> Vec<String> {
    match (cell.expect, gone) {
        (Expect::Deferred, true) => vec!["left the queue".into()],
        (Expect::Deferred, false) => match check::listed(relay, &cell.recipient()) {
            Ok((state, code, _)) if state == "deferred" && code.starts_with("4.7.") => Vec::new(),
            Ok(listed) => vec![format!("queue list: {listed:?}, not deferred 4.7.x")],
            Err(why) => vec![why],
        },
        (_, false) => vec!["still queued after the first attempt".into()],
        (_, true) => Vec::new(),
    }
}

/// The log: `message accepted` says `requiretls=true|false`; every
/// `delivery attempt` line the cell's word; a returned message has an
/// attempt line naming REQUIRETLS and one `failed` line with
/// `status=5.7.30` and a reason `REQUIRETLS:…`; no other fails.
pub fn log(cell: &Cell, relay: &Relay, id: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let flagged = (cell.flag == Flag::Param).to_string();
    let accepted: Vec<Option<String>> = lines_of(relay, "message accepted", id)
        .iter()
        .map(|e| word(e, "requiretls"))
        .collect();
    if accepted != [Some(flagged.clone())] {
        wrong.push(format!(
            "requiretls words of `message accepted` {accepted:?}, not [{flagged}]"
        ));
    }
    let attempts = lines_of(relay, "delivery attempt", id);
    let words: Vec<Option<String>> = attempts.iter().map(|e| word(e, "requiretls")).collect();
    if words.is_empty() || words.iter().any(|w| w.as_deref() != Some(cell.word)) {
        wrong.push(format!(
            "requiretls words of the attempts {words:?}, not all {}",
            cell.word
        ));
    }
    let failed: Vec<Value> = lines_of(relay, "failed", id)
        .into_iter()
        .filter(|e| e["fields"]["to"] == cell.recipient().as_str())
        .collect();
    if !cell.returned() {
        if !failed.is_empty() {
            wrong.push(format!("failed: {failed:?}"));
        }
        return wrong;
    }
    if !attempts
        .iter()
        .any(|e| e.to_string().contains("REQUIRETLS"))
    {
        wrong.push("no `delivery attempt` line says REQUIRETLS".into());
    }
    let right = |e: &Value| {
        word(e, "status").as_deref() == Some("5.7.30")
            && e["fields"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("REQUIRETLS:"))
    };
    if failed.len() != 1 || !failed.iter().all(right) {
        wrong.push(format!(
            "want one `failed` line status=5.7.30 reason `REQUIRETLS:…`: {failed:?}"
        ));
    }
    wrong
}

/// What the cell's hops got: the message where it belongs and nowhere
/// else; no mail command at all at a hop a flagged message skipped;
/// nothing of a flagged message in the clear.
pub fn far_side(cell: &Cell, hosts: &[Far], made: &[usize]) -> Vec<String> {
    let mut wrong = Vec::new();
    let secret = cell.secret();
    for (i, far) in hosts.iter().enumerate() {
        let (want, here) = match cell.expect {
            Expect::Delivered { at, tls, param } if at == i => {
                let requiretls = far.receiver().map(|_| param);
                (vec![Got { tls, requiretls }], true)
            }
            _ => (Vec::new(), false),
        };
        let got = far.stored(&secret, here);
        if got != want {
            wrong.push(format!(
                "{} ({:?}) stored {got:?}, not {want:?}\n{}",
                far.host,
                far.hop,
                far.describe()
            ));
        }
        let commands = far.mail_commands();
        if cell.flag == Flag::Param && !here && !commands.is_empty() {
            wrong.push(format!(
                "{} ({:?}) got mail commands: {commands:?}",
                far.host, far.hop
            ));
        }
        let clear = far.clear_text();
        if cell.flag == Flag::Param && cell.word == "required" && clear.contains(&secret) {
            wrong.push(format!(
                "{} got the message in the clear:\n{clear}",
                far.host
            ));
        }
    }
    let total: usize = made.iter().sum();
    match cell.expect {
        Expect::Returned {
            connected: Some(false),
        } if total != 0 => {
            wrong.push(format!(
                "{made:?} connections to hops that are not authenticated"
            ));
        }
        Expect::Returned {
            connected: Some(true),
        } if total == 0 => {
            wrong.push("no hop was even tried".into());
        }
        _ => {}
    }
    wrong
}

/// The notices at the sender's receiver for this cell's sender.
pub fn notices(cell: &Cell, lab: &Lab) -> Vec<Message> {
    lab.home
        .receiver()
        .map(|home| home.messages())
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.recipients() == [cell.sender()])
        .collect()
}

/// A returned message's notice: one, from `<>`, itself under REQUIRETLS
/// over TLS, `Status: 5.7.30` for the recipient, the original's headers
/// as `text/rfc822-headers` and not one line of its body. Any other
/// cell: no notice.
fn notice(cell: &Cell, lab: &Lab) -> Vec<String> {
    let found = notices(cell, lab);
    if !cell.returned() {
        return match found.is_empty() {
            true => Vec::new(),
            false => vec![format!("a notice came back: {found:#?}")],
        };
    }
    let [notice] = found.as_slice() else {
        return vec![format!("{} notices, not 1: {found:#?}", found.len())];
    };
    let mut wrong = Vec::new();
    if !(notice.sender().is_empty() && notice.requiretls() && notice.tls) {
        wrong.push(format!(
            "the notice came as {:?} (TLS {}), not MAIL FROM:<> REQUIRETLS over TLS",
            notice.mail, notice.tls
        ));
    }
    if notice.data.contains(&cell.secret()) {
        wrong.push(format!(
            "the notice carries the original's body:\n{}",
            notice.data
        ));
    }
    let data = notice.data.clone();
    let parsed = std::panic::catch_unwind(move || dsn::parse(data.as_bytes()));
    let Ok(report) = parsed else {
        wrong.push(format!("the notice is not a DSN:\n{}", notice.data));
        return wrong;
    };
    let group = report.recipients.iter().find(|f| {
        f.get("Final-Recipient")
            .is_some_and(|v| v.ends_with(&cell.recipient()))
    });
    let first = |name: &str| {
        group
            .and_then(|f| f.get(name))
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_string)
    };
    let (action, status) = (first("Action"), first("Status"));
    if (action.as_deref(), status.as_deref()) != (Some("failed"), Some("5.7.30")) {
        wrong.push(format!(
            "the notice says {action:?} {status:?} for {}, not failed 5.7.30",
            cell.recipient()
        ));
    }
    let types = &report.part_types;
    if !types.iter().any(|t| t.starts_with("text/rfc822-headers"))
        || types.iter().any(|t| t.starts_with("message/rfc822"))
    {
        wrong.push(format!(
            "the notice's parts are {types:?}: want text/rfc822-headers only"
        ));
    }
    if !notice.data.contains(&cell.message_id()) {
        wrong.push(format!(
            "the notice lacks the original's headers:\n{}",
            notice.data
        ));
    }
    wrong
}

/// `report --json`: per cell domain, flagged messages delivered and
/// returned (`requiretls_delivered`, `requiretls_returned`); the notices
/// to `sender.test` count as delivered flagged messages; the totals.
pub fn report(relay: &Relay, cells: &[Cell]) -> Vec<String> {
    let report = match check::report(relay) {
        Ok(report) => report,
        Err(why) => return vec![why],
    };
    let domains = report["domains"].as_array().cloned().unwrap_or_default();
    let count = |domain: &str, key: &str| {
        domains
            .iter()
            .find(|d| d["domain"] == domain)
            .map_or(0, |d| d[key].as_u64().unwrap_or(0))
    };
    let mut wrong = Vec::new();
    let mut want_total = (0, 0);
    for cell in cells {
        let flagged_delivered =
            cell.flag == Flag::Param && matches!(cell.expect, Expect::Delivered { .. });
        let want = (u64::from(flagged_delivered), u64::from(cell.returned()));
        want_total.0 += want.0;
        want_total.1 += want.1;
        let domain = cell.domain();
        let got = (
            count(&domain, "requiretls_delivered"),
            count(&domain, "requiretls_returned"),
        );
        if got != want {
            wrong.push(format!(
                "report {domain}: requiretls delivered, returned {got:?}, not {want:?}"
            ));
        }
    }
    let notices = (count("sender.test", "requiretls_delivered"), want_total.1);
    if notices.0 != notices.1 {
        wrong.push(format!(
            "report sender.test: {} flagged notices delivered, not {}",
            notices.0, notices.1
        ));
    }
    let totals = &report["totals"];
    let total = |key: &str| totals[key].as_u64().or_else(|| report[key].as_u64());
    let want = (Some(want_total.0 + want_total.1), Some(want_total.1));
    let got = (total("requiretls_delivered"), total("requiretls_returned"));
    if got != want {
        wrong.push(format!(
            "report totals requiretls delivered, returned {got:?}, not {want:?}:\n{totals:#}"
        ));
    }
    wrong
}

/// Runs every cell's checks and the report's; panics with all that is
/// wrong and the relay's log.
pub fn all(
    cells: &[Cell],
    relay: &Relay,
    lab: &Lab,
    outcome: &Outcome,
    with_report: bool,
    context: &str,
) {
    let mut failures = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        check::note(
            &mut failures,
            c.name,
            &outcome.ids[i],
            &cell(c, relay, lab, i, outcome),
        );
    }
    if with_report {
        failures.extend(report(relay, cells));
    }
    check::assert_all_right(&failures, relay, context);
}
