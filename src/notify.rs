//! systemd's notify protocol (sd_notify(3)): `READY=1` once listeners are
//! bound and the spool is recovered, `RELOADING=1` (with `MONOTONIC_USEC`,
//! as `Type=notify-reload` wants) then `READY=1` around a SIGHUP reload,
//! `STOPPING=1` when the stop begins.
//! A datagram to `$NOTIFY_SOCKET`; nothing when it is unset.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (such as `READY=1`) to the service manager, if any.
pub fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        if let Err(e) = notify_to(&path.to_string_lossy(), state) {
            tracing::warn!(error = %e, state, "could not notify systemd");
        }
    }
}

/// When systemd's watchdog is on for us (`WatchdogSec=` sets
/// `WATCHDOG_USEC`, and `WATCHDOG_PID` when given names this process):
/// how often to send `WATCHDOG=1`, half the timeout as sd_watchdog_enabled(3)
/// advises.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| std::time::Duration::from_micros(usec / 2))
}

/// `RELOADING=1` with the time the reload began on CLOCK_MONOTONIC, which
/// systemd uses to tell this reload's `READY=1` from an earlier one.
pub fn reloading() {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer to a
    // value we own; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// Sends `state` to the socket `path` (`@name` for an abstract one).
fn notify_to(path: &str, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let sent = match path.strip_prefix('@') {
        // An abstract socket (Linux): the name after '@'.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|address| socket.send_to_addr(state.as_bytes(), &address))
        }
        None => socket.send_to(state.as_bytes(), path),
    };
    sent.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_the_state_to_the_socket() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("notify.sock");
        let listener =
            std::os::unix::net::UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        super::notify_to(&path.to_string_lossy(), "READY=1").unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap_or(0);
        assert_eq!(&buf[..n], b"READY=1");
    }
}
