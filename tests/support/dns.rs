//! DNS for the routing tests, over real sockets:
//!
//! * [`DnsServer`]: hickory-server, authoritative for the zone `test.`
//!   that a test writes as zone-file lines, on UDP and TCP of one
//!   127.0.0.1 port, on its own thread and runtime so blocking tests can
//!   use it. A name under `test.` that the zone lacks is NXDOMAIN.
//! * [`Silent`]: a UDP and TCP port that takes queries and never answers,
//!   for the "DNS timed out" case.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::{LowerName, Name};
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;

/// The head of every test zone: one-second TTLs (also for NXDOMAIN, the
/// SOA minimum) so nothing a test changes is hidden by a cache for long.
const ZONE_HEAD: &str = "$ORIGIN test.\n$TTL 1\n\
    @ IN SOA ns.test. hostmaster.test. 1 60 60 60 1\n\
    @ IN NS ns.test.\n";

/// The zone of the bounce tests: `b.test` is where mail goes (its MX
/// host on 127.0.0.2), `sender.test` where notices to the sender go
/// (127.0.0.4).
pub const MAIL_AND_SENDER_ZONE: &str = "\
b.test.          MX 10 mx1.b.test.
mx1.b.test.      A 127.0.0.2
sender.test.     MX 10 mx.sender.test.
mx.sender.test.  A 127.0.0.4
";

/// A UDP socket and a TCP listener on the same 127.0.0.1 port, the way a
/// resolver expects one name server to listen (RFC 1035 §4.2, RFC 7766).
fn bind_udp_and_tcp() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let addr = udp.local_addr().expect("UDP local_addr");
        // The TCP port of the same number may be taken; then try another.
        if let Ok(tcp) = TcpListener::bind(addr) {
            return (udp, tcp);
        }
    }
    panic!("no 127.0.0.1 port free for both UDP and TCP in 50 tries");
}

/// An authoritative DNS server for `test.`; stopped on drop.
pub struct DnsServer {
    /// Where the relay's `[dns] nameservers` should point.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serves `records`: zone-file lines (RFC 1035 §5) of the zone `test.`,
    /// names absolute (`mx.b.test.`) or relative to `test.`, such as
    ///
    /// ```text
    /// b.test.    MX 10 mx1.b.test.
    /// mx1.b.test. A 127.0.0.2
    /// ```
    pub fn start(records: &str) -> DnsServer {
        DnsServer::serve(bind_udp_and_tcp(), records)
    }

    /// Like [`DnsServer::start`], on `addr` (UDP and TCP): the address of
    /// a server this one replaces, so a relay's `[dns] nameservers` stays
    /// right while a test changes the zone (a new TXT `id`). Waits
    /// (bounded, 5 s) for the old server to let go of the port.
    pub fn start_at(addr: SocketAddr, records: &str) -> DnsServer {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let (Ok(udp), Ok(tcp)) = (UdpSocket::bind(addr), TcpListener::bind(addr)) {
                return DnsServer::serve((udp, tcp), records);
            }
            assert!(Instant::now() < deadline, "cannot bind {addr} again");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn serve((udp, tcp): (UdpSocket, TcpListener), records: &str) -> DnsServer {
        let text = format!("{ZONE_HEAD}{records}\n");
        let origin = Name::from_ascii("test.").expect("origin name");
        let (origin, zone) = Parser::new(text.as_str(), None, Some(origin))
            .parse()
            .unwrap_or_else(|e| panic!("test zone does not parse: {e}\n{text}"));
        let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
            origin.clone(),
            zone,
            ZoneType::Primary,
            AxfrPolicy::Deny,
        )
        .unwrap_or_else(|e| panic!("test zone: {e}"));
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::from(origin), vec![Arc::new(handler)]);

        let addr = udp.local_addr().expect("UDP local_addr");
        udp.set_nonblocking(true).expect("nonblocking UDP");
        tcp.set_nonblocking(true).expect("nonblocking TCP");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("DNS server runtime");
            runtime.block_on(async move {
                let mut server = Server::new(catalog);
                server.register_socket(
                    tokio::net::UdpSocket::from_std(udp).expect("tokio UDP socket"),
                );
                server.register_listener(
                    tokio::net::TcpListener::from_std(tcp).expect("tokio TCP listener"),
                    Duration::from_secs(5),
                    64 * 1024,
                );
                let _ = stopped.await;
                let _ = server.shutdown_gracefully().await;
            });
        });
        DnsServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The `[dns]` section of a relay asking this server only.
    pub fn dns_section(&self) -> String {
        dns_section(self.addr)
    }
}

/// `[dns]` naming only `addr`, without reverse lookups of clients, and
/// without DNSSEC validation: [`DnsServer`] serves an unsigned `test.`
/// and is no root server, so a validating resolver (anchored at the IANA
/// root keys) cannot prove `test.` unsigned and finds every answer bogus,
/// as it would behind a resolver that strips DNSSEC; with DANE on, mail
/// would wait (tested in tests/dane_routing.rs). The signed tree of
/// `signed_dns` is where validation is tested.
pub fn dns_section(addr: SocketAddr) -> String {
    format!("[dns]\nreverse_lookups = false\nnameservers = [\"{addr}\"]\ndnssec = false\n")
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Bounded: a server that does not stop within 5 s is left to the
        // end of the test process rather than hanging the test.
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

/// A name server that never answers: queries sit in its UDP buffer and
/// its TCP backlog until the resolver gives up.
pub struct Silent {
    pub addr: SocketAddr,
    _udp: UdpSocket,
    _tcp: TcpListener,
}

impl Silent {
    pub fn start() -> Silent {
        let (udp, tcp) = bind_udp_and_tcp();
        Silent {
            addr: udp.local_addr().expect("UDP local_addr"),
            _udp: udp,
            _tcp: tcp,
        }
    }
}
