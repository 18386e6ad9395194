//! Reading SMTP replies (RFC 5321 §4.2) from a peer, sans-IO.
//!
//! The caller feeds whatever bytes arrived, in any chunking; the reader
//! returns a complete [`Reply`] once its last line (`NNN SP text`) is in, and
//! leaves the bytes after it untouched, so a caller can see data that arrived
//! early (pipelining, or response injection after `STARTTLS`, RFC 3207 §5).
//!
//! The line grammar is `smtp_proto`'s [`ResponseReceiver`]; on top of it this
//! module bounds each line and the number of lines (a hostile server must not
//! make us buffer without end), checks that every line carries the same code
//! (RFC 5321 §4.2.1) and keeps the raw bytes so that EHLO replies can be read
//! with `smtp_proto`'s [`EhloResponse`].

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::EhloResponse;

use super::status::EnhancedStatus;

/// RFC 5321 §4.5.3.1.5 allows 512 octets per reply line; real servers
/// sometimes send longer banners, so we allow the text-line limit instead.
pub const MAX_LINE_LENGTH: usize = 1000;
/// Far more than any EHLO reply carries (typically under 20 lines).
pub const MAX_LINES: usize = 100;
/// The most a [`ReplyReader`] ever holds for one reply, whatever a server
/// sends: every line at its limit, counting the one that breaks a limit.
pub const MAX_BUFFERED: usize = (MAX_LINES + 1) * (MAX_LINE_LENGTH + 1);

/// One complete reply: its code and the text of each line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code (RFC 3463) when the server sent one, e.g. `[2, 0, 0]`.
    pub enhanced: Option<[u8; 3]>,
    /// Text after `NNN-`/`NNN ` (and after the enhanced code), one entry per line.
    pub lines: Vec<String>,
    raw: Vec<u8>,
}

impl Reply {
    /// 2xx: the command succeeded.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The reply in one line, as an administrator would quote it in a log.
    pub fn summary(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }

    /// The reply as the server sent it, on one line with its enhanced
    /// code: what a DSN quotes after `Diagnostic-Code: smtp;` (RFC 3464
    /// §2.3.6), so the sender sees the remote server's own words.
    pub fn as_sent(&self) -> String {
        let enhanced = self
            .enhanced
            .map_or(String::new(), |[class, subject, detail]| {
                format!("{class}.{subject}.{detail} ")
            });
        format!("{} {enhanced}{}", self.code, self.lines.join(" "))
    }

    /// The enhanced status code (RFC 3463) the server sent, if it sent a
    /// valid one.
    pub fn status(&self) -> Option<EnhancedStatus> {
        self.enhanced.and_then(EnhancedStatus::from_parts)
    }

    /// The reply as it came, every line with its code and line ending.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Reads this reply as an EHLO answer (capabilities such as STARTTLS, SIZE).
    pub fn ehlo(&self) -> Result<EhloResponse<String>, ReplyError> {
        EhloResponse::parse(&mut self.raw.iter()).map_err(|e| ReplyError::Ehlo(e.to_string()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_LINE_LENGTH} octets")]
    LineTooLong,
    #[error("reply longer than {MAX_LINES} lines")]
    TooManyLines,
    #[error("reply too long")]
    TooLong,
    #[error("malformed reply: {0}")]
    Syntax(String),
    #[error("reply lines carry different codes ({first} then {other})")]
    MixedCodes { first: u16, other: u16 },
    #[error("EHLO reply not understood: {0}")]
    Ehlo(String),
}

/// Incremental reader of replies; keep one per connection and feed it all input.
pub struct ReplyReader {
    inner: ResponseReceiver,
    raw: Vec<u8>,
    line_len: usize,
    lines: usize,
}

impl Default for ReplyReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplyReader {
    pub fn new() -> Self {
        Self {
            inner: ResponseReceiver::default(),
            raw: Vec::new(),
            line_len: 0,
            lines: 0,
        }
    }

    /// Bytes of the reply in progress held so far; never above [`MAX_BUFFERED`].
    pub fn buffered(&self) -> usize {
        self.raw.len()
    }

    /// Consumes bytes from the front of `input` until one reply is complete.
    ///
    /// Returns `Ok(None)` when all of `input` was consumed and more is needed.
    /// On `Ok(Some(_))`, `input` holds what followed the reply. After an error
    /// the connection should be dropped: the stream is out of step.
    pub fn read(&mut self, input: &mut &[u8]) -> Result<Option<Reply>, ReplyError> {
        while !input.is_empty() {
            // Feed at most one line at a time so that the bounds are checked per line.
            let take = input
                .iter()
                .position(|&b| b == b'\n')
                .map_or(input.len(), |i| i + 1);
            let (chunk, rest) = input.split_at(take);
            let ends_line = chunk.last() == Some(&b'\n');
            let text_len = chunk.len() - usize::from(ends_line);
            let room = MAX_LINE_LENGTH - self.line_len;
            if text_len > room {
                // What fits is parsed first: a syntax error in it comes
                // before the line grows too long, however the bytes were
                // cut (one piece, or the fitting part in an earlier read).
                let mut fits = chunk[..room].iter();
                return Err(match self.inner.parse(&mut fits) {
                    Err(smtp_proto::Error::ResponseTooLong) => ReplyError::TooLong,
                    Err(smtp_proto::Error::NeedsMoreData { .. }) | Ok(_) => ReplyError::LineTooLong,
                    Err(e) => ReplyError::Syntax(e.to_string()),
                });
            }
            self.line_len += text_len;
            self.raw.extend_from_slice(chunk);
            *input = rest;
            let mut iter = chunk.iter();
            let parsed = self.inner.parse(&mut iter);
            if ends_line {
                self.line_len = 0;
                self.lines += 1;
                if self.lines > MAX_LINES {
                    return Err(ReplyError::TooManyLines);
                }
            }
            match parsed {
                Ok(response) => return self.finish(response).map(Some),
                Err(smtp_proto::Error::NeedsMoreData { .. }) => {}
                Err(smtp_proto::Error::ResponseTooLong) => return Err(ReplyError::TooLong),
                Err(e) => return Err(ReplyError::Syntax(e.to_string())),
            }
        }
        Ok(None)
    }

    fn finish(&mut self, response: smtp_proto::Response<String>) -> Result<Reply, ReplyError> {
        let raw = std::mem::take(&mut self.raw);
        self.inner.reset();
        self.lines = 0;
        self.line_len = 0;
        let code = response.code;
        if !(200..600).contains(&code) {
            return Err(ReplyError::Syntax(format!(
                "reply code {code} out of range"
            )));
        }
        for line in raw.split(|&b| b == b'\n').filter(|l| l.len() >= 3) {
            let other = line[..3]
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d.wrapping_sub(b'0')));
            if other != code {
                return Err(ReplyError::MixedCodes { first: code, other });
            }
        }
        Ok(Reply {
            code,
            enhanced: (response.esc != [0, 0, 0]).then_some(response.esc),
            lines: response.message.split('\n').map(str::to_owned).collect(),
            raw,
        })
    }
}

#[cfg(test)]
mod tests;
