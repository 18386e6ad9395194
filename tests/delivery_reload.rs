//! One deliverer across reloads (issue 14): SIGHUP swaps the settings
//! inside it, so `max_connections_per_destination` keeps holding while a
//! reload happens under load (before, each reload built a second
//! deliverer with limits of its own, and both sent at once).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::relay::{base_config, Relay};
use support::smtp::submit;

/// A next hop that counts its open connections and keeps the most it
/// had at once; it holds each message `HOLD` before taking it, so that
/// attempts overlap.
struct Counting {
    addr: SocketAddr,
    most: Arc<AtomicUsize>,
    taken: Arc<AtomicUsize>,
}

const HOLD: Duration = Duration::from_millis(300);

/// Decrements the open count when a connection's thread ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Counting {
    fn start() -> Counting {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (open, most, taken) = (
            Arc::<AtomicUsize>::default(),
            Arc::default(),
            Arc::default(),
        );
        let counting = Counting {
            addr,
            most: Arc::clone(&most),
            taken: Arc::clone(&taken),
        };
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let (guard, taken) = (Open(Arc::clone(&open)), Arc::clone(&taken));
                std::thread::spawn(move || {
                    let _guard = guard;
                    serve(stream, &taken);
                });
            }
        });
        counting
    }
}

/// Plain SMTP, no extensions: every command 250, DATA 354 then 250 after
/// `HOLD`; ends on QUIT, EOF or a silent minute.
fn serve(stream: TcpStream, taken: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut out = stream;
    let mut reader = BufReader::new(read_half);
    let _ = out.write_all(b"220 counting.test\r\n");
    let (mut line, mut in_data) = (String::new(), false);
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let reply: &[u8] = match (in_data, line.get(..4).map(str::to_ascii_uppercase)) {
            (true, _) if line == ".\r\n" => {
                in_data = false;
                std::thread::sleep(HOLD);
                taken.fetch_add(1, Ordering::SeqCst);
                b"250 2.0.0 taken\r\n"
            }
            (true, _) => continue,
            (false, Some(verb)) if verb == "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            (false, Some(verb)) if verb == "QUIT" => {
                let _ = out.write_all(b"221 bye\r\n");
                return;
            }
            _ => b"250 ok\r\n",
        };
        let _ = out.write_all(reply);
    }
}

#[test]
fn a_reload_under_load_keeps_the_per_destination_limit() {
    const LIMIT: usize = 2;
    const MESSAGES: usize = 24;
    let next_hop = Counting::start();
    let config = format!(
        "{}[delivery]\nmax_connections_per_destination = {LIMIT}\n",
        base_config().replace(
            "127.0.0.1:1\"]\n[dns]",
            &format!("{}\"]\n[dns]", next_hop.addr)
        )
    );
    assert!(config.contains(&next_hop.addr.to_string()), "{config}");
    let relay = Relay::start_with(&config);
    // Messages arrive faster than LIMIT connections carry them, before,
    // during and after three reloads: attempts that began under each
    // configuration overlap.
    std::thread::scope(|scope| {
        let smtp = relay.smtp;
        scope.spawn(move || {
            for i in 0..MESSAGES {
                let content = format!("Subject: load {i}\r\n\r\nmessage {i}\r\n");
                submit(smtp, "alice@sender.test", &["bob@example.test"], &content);
                std::thread::sleep(HOLD / 3);
            }
        });
        for n in 1..=3 {
            std::thread::sleep(HOLD * 2);
            relay.sighup();
            relay.wait_for_log("configuration reloaded", n);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while next_hop.taken.load(Ordering::SeqCst) < MESSAGES {
        assert!(Instant::now() < deadline, "not every message arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let most = next_hop.most.load(Ordering::SeqCst);
    assert_eq!(
        most, LIMIT,
        "at most {LIMIT} connections at once to one destination, reloads or not"
    );
}
