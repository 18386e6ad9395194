//! The little SMTP both tools need: a boxed stream that plaintext and TLS
//! share (STARTTLS changes the type underneath), bounded line reading,
//! multi-line replies (RFC 5321 §4.2.1), and the generated message.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite};

/// Plaintext TCP before STARTTLS, a TLS stream after.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A boxed [`Stream`].
pub type Boxed = Box<dyn Stream>;

/// Longest line either tool accepts (RFC 5321 §4.5.3.1.6 allows 1,000 for
/// text; replies and commands are far shorter).
pub const MAX_LINE: usize = 4096;

/// Reads one line, CRLF included, into `line` (cleared first). `Ok(false)`
/// on a clean end of stream before any byte.
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    loop {
        let (done, used) = {
            let buf = r.fill_buf().await?;
            if buf.is_empty() {
                return if line.is_empty() {
                    Ok(false)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "end of stream mid-line",
                    ))
                };
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    line.extend_from_slice(&buf[..=i]);
                    (true, i + 1)
                }
                None => {
                    line.extend_from_slice(buf);
                    (false, buf.len())
                }
            }
        };
        r.consume(used);
        if done {
            return Ok(true);
        }
        if line.len() > MAX_LINE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
    }
}

/// A complete server reply: its code and the text of every line.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// EHLO keywords, upper-cased (the first line is the greeting name).
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.text.lines().skip(1).any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
        })
    }
}

/// Reads a reply, following `250-` continuation lines to the last `250 `.
pub async fn read_reply<R: AsyncBufRead + Unpin>(
    r: &mut R,
    line: &mut Vec<u8>,
) -> io::Result<Reply> {
    let mut text = String::new();
    loop {
        if !read_line(r, line).await? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a reply",
            ));
        }
        let code = line
            .get(..3)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<u16>().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "reply without a code"))?;
        let last = line.get(3) != Some(&b'-');
        if line.len() > 4 {
            text.push_str(String::from_utf8_lossy(&line[4..]).trim_end());
        }
        text.push('\n');
        if last {
            return Ok(Reply { code, text });
        }
    }
}

/// Message content of about `size` bytes (at least the headers): a small
/// header block, then 76-byte lines, every 32nd starting with a dot so the
/// receiver has dot-stuffing to undo. Returned in wire form, `.` included.
pub fn message_wire(size: usize, rcpt_domain: &str) -> Vec<u8> {
    let mut content = format!(
        "From: Load Generator <loadgen@example.net>\r\nTo: <rcpt0@{rcpt_domain}>\r\n\
         Subject: tlsrelay load test\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\n\
         Message-ID: <loadgen@example.net>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let mut n = 0u32;
    while content.len() + 76 <= size {
        let lead = if n % 32 == 31 { '.' } else { ' ' };
        content.extend_from_slice(
            format!(
                "{lead}{n:07} The quick brown fox jumps over the lazy dog, again and again.\r\n"
            )
            .as_bytes(),
        );
        n += 1;
    }
    while content.len() + 2 < size {
        content.push(b'x');
    }
    tlsrelay::smtp::stuff::dot_stuff(&content)
}
