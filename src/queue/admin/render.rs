//! What `tlsrelay queue list` and `queue show` print: the `mailq`-like
//! listing and one message in full.

use super::Entry;
use crate::queue::envelope::{Envelope, Ret};
use crate::queue::finish::unix;

/// The `mailq`-like listing: one block per message, one line per recipient.
pub fn render_list(entries: &[Entry], now: i64) -> String {
    use std::fmt::Write;
    if entries.is_empty() {
        return "The queue is empty.\n".into();
    }
    let mut out = format!(
        "{:<20} {:>6} {:>10}  SENDER / RECIPIENTS\n",
        "ID", "AGE", "SIZE"
    );
    let mut total = 0;
    let mut pending = 0;
    let mut held = 0;
    for entry in entries {
        total += entry.size;
        held += usize::from(entry.held);
        // Facts about the whole message follow the sender, so the columns
        // stay where scripts and eyes expect them.
        let _ = writeln!(
            out,
            "{:<20} {:>6} {:>10}  {}{}{}",
            entry.id,
            age(now - entry.received_at),
            size(entry.size),
            sender(&entry.envelope),
            if entry.envelope.requiretls {
                "  (REQUIRETLS)"
            } else {
                ""
            },
            if entry.held { "  (held)" } else { "" }
        );
        for r in &entry.recipients {
            pending += usize::from(matches!(r.state, "queued" | "deferred" | "held"));
            let _ = write!(out, "{:41}{:<10} {}", "", r.state, r.address);
            if let Some(reason) = &r.reason {
                let code = r.code.map_or(String::new(), |c| format!("{c} "));
                let _ = write!(out, "  ({code}{reason})");
            }
            out.push('\n');
        }
    }
    let held = match held {
        0 => String::new(),
        n => format!(", {n} message(s) held"),
    };
    let _ = writeln!(
        out,
        "-- {} message(s), {}, {pending} recipient(s) pending{held}",
        entries.len(),
        size(total)
    );
    out
}

/// Everything known of one message, then its header block.
pub fn render_show(entry: &Entry, content: &[u8], now: i64) -> String {
    use std::fmt::Write;
    let envelope = &entry.envelope;
    let client = &envelope.client;
    let mut out = String::new();
    let _ = writeln!(out, "id:        {}", entry.id);
    let _ = writeln!(
        out,
        "received:  {} ({} ago) from {} [{}]{}{}",
        date(entry.received_at),
        age(now - entry.received_at),
        client.helo,
        client.ip,
        client
            .connector
            .as_deref()
            .map_or(String::new(), |c| format!(", connector {c}")),
        client
            .tls
            .as_deref()
            .map_or(", plaintext".into(), |t| format!(", {t}"))
    );
    let _ = writeln!(out, "size:      {} bytes", entry.size);
    let _ = writeln!(out, "sender:    {}", sender(envelope));
    let mut parameters = Vec::new();
    if envelope.eight_bit {
        parameters.push("BODY=8BITMIME".to_string());
    }
    if envelope.smtputf8 {
        parameters.push("SMTPUTF8".into());
    }
    match envelope.ret {
        Some(Ret::Full) => parameters.push("RET=FULL".into()),
        Some(Ret::Hdrs) => parameters.push("RET=HDRS".into()),
        None => {}
    }
    if let Some(envid) = &envelope.envid {
        parameters.push(format!("ENVID={envid}"));
    }
    if envelope.requiretls {
        parameters.push("REQUIRETLS".into());
    }
    if !parameters.is_empty() {
        let _ = writeln!(out, "options:   {}", parameters.join(" "));
    }
    let _ = match entry.next_attempt {
        _ if entry.held => writeln!(
            out,
            "attempts:  {}; held: not delivered, never expires, until `tlsrelay queue release {}`",
            entry.attempts, entry.id
        ),
        None => writeln!(out, "attempts:  none yet"),
        Some(at) if at <= now => writeln!(out, "attempts:  {}, next: due now", entry.attempts),
        Some(at) => writeln!(
            out,
            "attempts:  {}, next in {} ({})",
            entry.attempts,
            age(at - now),
            date(at)
        ),
    };
    let _ = writeln!(out, "recipients:");
    for (r, original) in entry.recipients.iter().zip(&envelope.recipients) {
        let _ = write!(out, "  {:<10} {}", r.state, r.address);
        if let Some(notify) = original.notify {
            let _ = write!(out, "  NOTIFY={notify}");
        }
        out.push('\n');
        if let Some(reason) = &r.reason {
            let code = r.code.map_or(String::new(), |c| format!("{c} "));
            let _ = writeln!(out, "             {code}{reason}");
        }
        if let Some(mta) = &r.remote_mta {
            let _ = writeln!(out, "             remote: {mta}");
        }
    }
    let _ = writeln!(out, "headers:");
    // Only the empty line that ends the header section is empty.
    let headers = String::from_utf8_lossy(crate::queue::dsn::headers(content));
    for line in headers.lines().filter(|l| !l.is_empty()) {
        let _ = writeln!(out, "  {line}");
    }
    out
}

pub(super) fn sender(envelope: &Envelope) -> String {
    format!("<{}>", envelope.sender)
}

/// `45s`, `12m`, `3h`, `2d`: the largest whole unit.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `912 B`, `1.2 KiB`, `35.0 MiB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

fn date(unix_seconds: i64) -> String {
    crate::smtp::date::rfc5322_date(unix(unix_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_like_mailq() {
        assert_eq!(age(-3), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(5 * 86_400), "5d");
        assert_eq!(size(912), "912 B");
        assert_eq!(size(1229), "1.2 KiB");
        assert_eq!(size(35 * 1_048_576), "35.0 MiB");
    }
}
