//! A deliberately plain SMTP client over a blocking socket, for tests that
//! must control every byte (pipelining, smuggling, odd line endings).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Client {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Client {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> (Client, String) {
        let stream = TcpStream::connect(addr).expect("connect to relay");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut client = Client { reader, stream };
        let greeting = client.reply();
        (client, greeting)
    }

    /// Writes raw bytes, exactly.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to relay");
    }

    /// Reads one whole reply (all lines of a multi-line one), CRLFs kept.
    pub fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return reply,
                Ok(_) => {}
                Err(e) => panic!("reading a reply after {reply:?}: {e}"),
            }
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// Sends a command line and returns its reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// True when the server has closed the connection (reads EOF).
    pub fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}
