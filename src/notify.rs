//! systemd's notify protocol (sd_notify(3)): `READY=1` once listeners are
//! bound and the spool is recovered, `STOPPING=1` when the stop begins.
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
