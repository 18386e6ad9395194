//! `tlsrelay tls-memory list | forget HOST | forget --all` (DESIGN.md §2):
//! what the broken-TLS memory holds, and clearing it. While the relay
//! runs, through its [control socket](crate::queue::control), so that the
//! memory the deliveries use changes; otherwise on the file, holding the
//! spool's lock so that a relay starting meanwhile waits.

use std::path::Path;
use std::time::Duration;

use super::memory::{Entry, TlsMemory, CONFIRM_FAILURES, CONFIRM_SPREAD, RETRY_EVERY};
use super::memory_file::system_clock;
use crate::queue::admin::{age, AdminError};
use crate::queue::control::{self, ControlError, Request, Response};
use crate::queue::spool::{Spool, SpoolError};

/// The answer to a memory request; `None` for any other request.
pub fn answer(memory: &TlsMemory, request: &Request) -> Option<Response> {
    match request {
        Request::TlsMemoryList => Some(Response::ok(render(&memory.list(), memory.now()))),
        Request::TlsMemoryForget { host } => {
            let count = memory.forget(host.as_deref());
            Some(match (host, count) {
                (Some(host), 0) => Response::error(format!(
                    "{host}: not in the broken-TLS memory (see `tlsrelay tls-memory list`)"
                )),
                (Some(host), n) => Response::ok(format!("{host}: {n} entr{} forgotten", plural(n))),
                (None, n) => Response::ok(format!("{n} entr{} forgotten", plural(n))),
            })
        }
        _ => None,
    }
}

/// Through the running relay, or on the file when none runs.
pub async fn execute(
    spool_dir: &Path,
    lifetime: Duration,
    request: &Request,
) -> Result<Response, AdminError> {
    match control::send(spool_dir, request).await {
        Ok(response) => Ok(response),
        Err(ControlError::NotRunning { .. }) => {
            let _lock = match Spool::open(spool_dir) {
                Ok(spool) => spool,
                Err(SpoolError::Locked { path }) => return Err(AdminError::Unreachable { path }),
                Err(e) => return Err(e.into()),
            };
            let memory = TlsMemory::reader(spool_dir, lifetime, system_clock());
            let response = answer(&memory, request)
                .unwrap_or_else(|| Response::error("not a tls-memory request"));
            if matches!(request, Request::TlsMemoryForget { .. }) && response.ok {
                memory.save().map_err(|source| SpoolError::File {
                    path: spool_dir.join(super::memory_file::FILE),
                    source,
                })?;
            }
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "y"
    } else {
        "ies"
    }
}

/// The table of `tls-memory list`: one line per host and rung.
pub fn render(entries: &[Entry], now: i64) -> String {
    use std::fmt::Write;
    if entries.is_empty() {
        return "The broken-TLS memory is empty: every delivery starts at the top rung.\n".into();
    }
    let ago = |t: i64| format!("{} ago", age(now - t));
    let mut out = format!(
        "{:<30} {:<24} {:<7} {:<9} {:>8} {:>13} {:>13} {:>9}\n",
        "HOST", "SERVER", "RUNG", "STATE", "FAILURES", "FIRST FAILURE", "LAST FAILURE", "UNTIL"
    );
    for e in entries {
        let _ = writeln!(
            out,
            "{:<30} {:<24} {:<7} {:<9} {:>8} {:>13} {:>13} {:>9}",
            e.host,
            e.server,
            e.rung.name(),
            e.state(now),
            e.failures,
            ago(e.first_failure),
            ago(e.last_failure),
            format!("in {}", age(e.until - now)),
        );
    }
    let _ = writeln!(
        out,
        "-- {} entr{}. A rung is broken after {CONFIRM_FAILURES} failed attempts over {} minutes or more \
         (\"counting\" until then); a broken rung is skipped, yet tried first once every {} minutes, \
         and forgotten at its first success.",
        entries.len(),
        plural(entries.len()),
        CONFIRM_SPREAD / 60,
        RETRY_EVERY / 60,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::policy::Rung;

    #[test]
    fn the_table_says_host_rung_state_failures_and_times() {
        let now = 1_800_000_000;
        let entry = Entry {
            server: "192.0.2.1:25".into(),
            host: "mx.example.test".into(),
            rung: Rung::Modern,
            failures: 3,
            first_failure: now - 3600,
            last_failure: now - 1200,
            last_tried: now - 1200,
            until: now + 20 * 3600,
        };
        let table = render(&[entry], now);
        let line = table.lines().nth(1).unwrap_or_default();
        for field in [
            "mx.example.test",
            "192.0.2.1:25",
            "modern",
            "broken",
            " 3 ",
            "60m ago",
            "20m ago",
            "in 20h",
        ] {
            assert!(line.contains(field), "{field:?} not in {line:?}");
        }
        assert!(render(&[], now).contains("empty"));
    }
}
