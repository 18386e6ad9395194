//! What the MTA-STS cells ask of the relay, each through the product's
//! own surfaces: the spool (what was delivered, what waits), `queue list
//! --json`, the `delivery attempt` and `mta-sts policy` log lines, `tlsrelay
//! tls-rpt show` and `tlsrelay report --json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::postfix::run_bounded;
use crate::support::relay::Relay;
use crate::support::smtp::submit_all;

/// One message of a cell: from `NAME@sender.test` to `NAME@DOMAIN`, with
/// a text no other cell's shares.
pub struct Mail {
    pub name: String,
    pub domain: String,
}

impl Mail {
    pub fn new(name: &str, domain: &str) -> Mail {
        Mail {
            name: name.into(),
            domain: domain.into(),
        }
    }

    pub fn recipient(&self) -> String {
        format!("{}@{}", self.name, self.domain)
    }

    pub fn secret(&self) -> String {
        format!("the secret of mta-sts cell {}.", self.name)
    }

    fn content(&self) -> String {
        format!(
            "From: {name}@sender.test\r\nTo: {to}\r\nSubject: mta-sts cell {name}\r\n\
             Message-ID: <{name}@mta-sts.test>\r\n\r\n{secret}\r\n",
            name = self.name,
            to = self.recipient(),
            secret = self.secret(),
        )
    }
}

/// Sends every mail through `relay` in one session; their queue ids.
pub fn send(relay: &Relay, mails: &[Mail]) -> Vec<String> {
    let messages: Vec<[String; 3]> = mails
        .iter()
        .map(|m| {
            [
                format!("{}@sender.test", m.name),
                m.recipient(),
                m.content(),
            ]
        })
        .collect();
    submit_all(relay.smtp, &messages)
}

/// Whether message `id` is done with its latest attempt: gone (delivered)
/// or still queued with at least `attempts` attempts made.
fn settled(relay: &Relay, id: &str, attempts: u32) -> Option<bool> {
    if !relay.queued(id) {
        return Some(true);
    }
    let state = relay.state(id)?;
    (state.attempts >= attempts).then_some(false)
}

/// Waits (bounded, 60 s) until every message in `ids` left the queue or
/// made `attempts` attempts; id → gone.
pub fn settle(relay: &Relay, ids: &[String], attempts: u32) -> BTreeMap<String, bool> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done = BTreeMap::new();
    while done.len() < ids.len() {
        for id in ids {
            if !done.contains_key(id) {
                if let Some(gone) = settled(relay, id, attempts) {
                    done.insert(id.clone(), gone);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "unsettled after 60 s: {ids:?} {done:?}\n{}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    done
}

/// The relay's log lines as JSON, those whose message is `message`.
pub fn events(relay: &Relay, message: &str) -> Vec<Value> {
    relay
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["fields"]["message"] == message)
        .collect()
}

/// The `sts=` words of message `id`'s `delivery attempt` lines, in order:
/// the field `sts`, or `sts=WORD` in the line's text.
pub fn sts_words(relay: &Relay, id: &str) -> Vec<String> {
    events(relay, "delivery attempt")
        .iter()
        .filter(|e| e["fields"]["queue_id"] == id)
        .filter_map(|e| match e["fields"]["sts"].as_str() {
            Some(word) => Some(word.to_string()),
            None => {
                let text = e.to_string();
                let (_, after) = text.split_once("sts=")?;
                after
                    .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
                    .next()
                    .map(str::to_string)
            }
        })
        .collect()
}

/// The `result` of every `mta-sts policy` line for `domain`, in order.
pub fn policy_results(relay: &Relay, domain: &str) -> Vec<String> {
    events(relay, "mta-sts policy")
        .iter()
        .filter(|e| e["fields"]["domain"] == domain)
        .map(|e| e["fields"]["result"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn config(relay: &Relay) -> PathBuf {
    relay.dir().join("tlsrelay.toml")
}

/// `tlsrelay ARGS… -c CONFIG` (bounded): exit success, stdout, stderr.
pub fn tlsrelay(relay: &Relay, args: &[&str]) -> (bool, String, String) {
    let output = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_tlsrelay"))
            .args(args)
            .arg("-c")
            .arg(config(relay))
            .env_remove("RUST_LOG"),
        Duration::from_secs(60),
    );
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What `queue list --json` says of `recipient`: (state, code, reason);
/// and that the text listing shows the same code and reason.
pub fn listed(relay: &Relay, recipient: &str) -> Result<(String, String, String), String> {
    let (ok, out, err) = tlsrelay(relay, &["queue", "list", "--json"]);
    let list: Value = serde_json::from_str(&out)
        .map_err(|e| format!("queue list --json ({ok}): {e}\n{out}{err}"))?;
    let entry = list
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["recipients"].as_array().into_iter().flatten())
        .find(|r| r["address"] == recipient)
        .ok_or_else(|| format!("queue list has no {recipient}:\n{out}"))?;
    let word = |key: &str| entry[key].as_str().unwrap_or_default().to_string();
    let (state, code, reason) = (word("state"), word("code"), word("reason"));
    let (_, text, _) = tlsrelay(relay, &["queue", "list"]);
    let line = format!("({code} {reason})");
    if !text
        .lines()
        .any(|l| l.contains(recipient) && l.contains(&line))
    {
        return Err(format!(
            "queue list does not show {recipient} {line}:\n{text}"
        ));
    }
    Ok((state, code, reason))
}

/// The cell's message waits for MTA-STS: `deferred`, `code` a `4.7.x`
/// (`want`, when given, exactly), a reason `MX-HOST: MTA-STS…` (the
/// queue names the host a reason is about, as it does for DANE).
pub fn check_deferred(relay: &Relay, mail: &Mail, want: Option<&str>) -> Vec<String> {
    match listed(relay, &mail.recipient()) {
        Err(why) => vec![why],
        Ok((state, code, reason)) => {
            let code_ok = want.map_or(code.starts_with("4.7."), |w| code == w);
            let about_sts = reason
                .split_once(": ")
                .is_some_and(|(host, why)| host.starts_with("mx") && why.starts_with("MTA-STS"));
            if state == "deferred" && code_ok && about_sts {
                Vec::new()
            } else {
                vec![format!(
                    "queue list: {state} {code} {reason:?}, not deferred {} `HOST: MTA-STS…`",
                    want.unwrap_or("4.7.x")
                )]
            }
        }
    }
}

/// `tlsrelay tls-rpt show --domain DOMAIN`: the report's one policy
/// entry for `domain` (`policies[]` whose `policy-domain` is it).
pub fn tls_rpt_policy(relay: &Relay, domain: &str) -> Result<Value, String> {
    let (ok, out, err) = tlsrelay(relay, &["tls-rpt", "show", "--domain", domain]);
    let reports: Value =
        serde_json::from_str(&out).map_err(|e| format!("tls-rpt show ({ok}): {e}\n{out}{err}"))?;
    let policies: Vec<&Value> = reports
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["policies"].as_array().into_iter().flatten())
        .filter(|p| p["policy"]["policy-domain"] == domain)
        .collect();
    match policies.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(format!(
            "tls-rpt show: {} policy entries for {domain}, not 1:\n{out}",
            policies.len()
        )),
    }
}

/// The TLS-RPT aggregate of `domain` is exactly: policy type `kind`,
/// `successes` successful sessions, and `failures` failed ones all of
/// `result_type` (`*`: any) at `mx` ("": any host), when given.
pub fn check_tls_rpt(
    relay: &Relay,
    domain: &str,
    kind: &str,
    (successes, failures): (usize, usize),
    failed: Option<(&str, &str)>,
) -> Vec<String> {
    let entry = match tls_rpt_policy(relay, domain) {
        Ok(entry) => entry,
        Err(why) => return vec![why],
    };
    let mut wrong = Vec::new();
    let count = |v: &Value| v.as_u64().map(|n| n as usize);
    if entry["policy"]["policy-type"] != kind {
        wrong.push(format!("policy-type is not {kind}"));
    }
    let summary = &entry["summary"];
    if count(&summary["total-successful-session-count"]) != Some(successes)
        || count(&summary["total-failure-session-count"]) != Some(failures)
    {
        wrong.push(format!(
            "summary is not {successes} successful, {failures} failed"
        ));
    }
    let details: Vec<&Value> = entry["failure-details"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if let Some((result_type, mx)) = failed {
        let matching: usize = details
            .iter()
            .filter(|d| result_type == "*" || d["result-type"] == result_type)
            .filter(|d| mx.is_empty() || d["receiving-mx-hostname"] == mx)
            .filter_map(|d| count(&d["failed-session-count"]))
            .sum();
        let all: usize = details
            .iter()
            .filter_map(|d| count(&d["failed-session-count"]))
            .sum();
        if matching != failures || all != failures {
            wrong.push(format!(
                "failure-details: {matching} {result_type} at {mx} of {all}, not {failures}"
            ));
        }
    } else if !details.is_empty() {
        wrong.push("failure-details is not empty".into());
    }
    if !wrong.is_empty() {
        wrong = vec![format!("tls-rpt {domain}: {}\n{entry:#}", wrong.join("; "))];
    }
    wrong
}

/// `tlsrelay report --json`, parsed.
pub fn report(relay: &Relay) -> Result<Value, String> {
    let (ok, out, err) = tlsrelay(relay, &["report", "--json"]);
    serde_json::from_str(&out).map_err(|e| format!("report --json ({ok}): {e}\n{out}{err}"))
}

/// Adds a cell's findings, if any, to `failures` under its name and id.
pub fn note(failures: &mut Vec<String>, name: &str, id: &str, wrong: &[String]) {
    if !wrong.is_empty() {
        failures.push(format!("{name} ({id}):\n  - {}", wrong.join("\n  - ")));
    }
}

/// Panics with every failure found, `context` and the relay's log.
pub fn assert_all_right(failures: &[String], relay: &Relay, context: &str) {
    assert!(
        failures.is_empty(),
        "{} wrong:\n{}\n--- {context}\n--- relay log:\n{}",
        failures.len(),
        failures.join("\n\n"),
        relay.log()
    );
}
