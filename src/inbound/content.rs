//! Message content in the session: the DATA and BDAT commands, their
//! content as it arrives (through the receivers of `smtp::data`), the
//! checks at its end (size, NUL, hop count), and the driver's callbacks
//! that open and commit the spool file.

use super::session::{Action, CommitError, Output, Phase, Session};
use crate::smtp::data::{BdatReceiver, Content, DataReceiver, DataStatus};
use crate::smtp::replies::{self, ServerReply};

impl Session {
    pub(super) fn data_input(&mut self, input: &[u8], out: &mut Output) -> (usize, Action) {
        let Phase::Data(receiver) = &mut self.phase else {
            return (0, Action::None);
        };
        let (n, status) = receiver.feed(input, &mut out.content);
        match status {
            DataStatus::NeedMore => (n, Action::None),
            DataStatus::Complete => {
                let Phase::Data(receiver) = std::mem::replace(&mut self.phase, Phase::Command)
                else {
                    return (n, Action::None);
                };
                self.content = Some(receiver.content);
                (n, self.content_complete(out))
            }
            DataStatus::BareLineEnding => (n, self.bare_line_ending(out)),
        }
    }

    /// A bare LF or CR under `bare_lf = "reject"`, in DATA or BDAT: the
    /// message is refused and the session ends (as Postfix's
    /// `smtpd_forbid_bare_newline = reject` does); the open spool file is
    /// dropped with the connection, so nothing is spooled.
    fn bare_line_ending(&mut self, out: &mut Output) -> Action {
        self.phase = Phase::Waiting;
        self.envelope = None;
        self.content = None;
        out.reply(&replies::BARE_LINE_ENDING);
        Action::Close
    }

    pub(super) fn bdat_input(&mut self, input: &[u8], out: &mut Output) -> (usize, Action) {
        let Phase::Bdat { chunk, refused, .. } = &mut self.phase else {
            return (0, Action::None);
        };
        let (n, status) = match (refused.is_none(), self.content.as_mut()) {
            (true, Some(content)) => chunk.feed(input, content, &mut out.content),
            // Read to be dropped: nothing is kept.
            _ => chunk.feed(input, &mut Content::new(0), &mut Vec::new()),
        };
        match status {
            DataStatus::NeedMore => (n, Action::None),
            DataStatus::Complete => (n, self.bdat_chunk_done(out)),
            DataStatus::BareLineEnding => (n, self.bare_line_ending(out)),
        }
    }

    /// A BDAT chunk is fully read: answer it, or complete the message.
    pub(super) fn bdat_chunk_done(&mut self, out: &mut Output) -> Action {
        let Phase::Bdat {
            chunk,
            last,
            size,
            refused,
        } = std::mem::replace(&mut self.phase, Phase::Command)
        else {
            return Action::None;
        };
        if let Some(reply) = refused {
            return self.error(out, &reply);
        }
        if last {
            if let Some(content) = self.content.as_mut() {
                if chunk.finish_message(content, &mut out.content) == DataStatus::BareLineEnding {
                    return self.bare_line_ending(out);
                }
            }
            return self.content_complete(out);
        }
        out.reply(&replies::chunk_received(size));
        Action::None
    }

    /// The whole content is in: refuse it or ask the driver to commit it.
    fn content_complete(&mut self, out: &mut Output) -> Action {
        let Some(content) = &self.content else {
            return Action::None;
        };
        if content.too_large() {
            out.reply(&replies::TOO_LARGE);
        } else if content.has_nul() {
            // Refused, not stripped or passed on: a NUL is not text
            // (RFC 5322 §3.5, RFC 6152), and a next hop that drops NULs
            // would read `CRLF NUL . CRLF` as the end of the data.
            // Postfix admins get it with `message_reject_characters = \0`.
            out.reply(&replies::NUL_IN_CONTENT);
        } else if content.received_headers() > self.policy.max_hops {
            out.reply(&replies::TOO_MANY_HOPS);
        } else {
            self.phase = Phase::Waiting;
            return Action::Commit;
        }
        self.end_transaction();
        Action::Abort
    }

    /// The driver opened a spool file with id `queue_id`: write our
    /// Received header first, then invite the content for DATA.
    pub fn message_opened(&mut self, queue_id: &str, date: &str, out: &mut Output) -> Action {
        let header = self.received_header(queue_id, date);
        out.content.extend_from_slice(header.as_bytes());
        self.queue_id = Some(queue_id.to_string());
        match self.phase {
            Phase::Waiting => {
                // DATA: content is read only after the 354.
                self.phase = Phase::Data(DataReceiver::new(
                    self.policy.bare_lf,
                    self.policy.max_message_size,
                ));
                out.reply(&replies::START_DATA);
                Action::None
            }
            Phase::Bdat { size: 0, .. } => self.bdat_chunk_done(out),
            _ => Action::None,
        }
    }

    /// The driver's verdict on durability: `250` only when it is on disk.
    pub fn committed(&mut self, result: Result<(), CommitError>, out: &mut Output) {
        match (result, self.queue_id.take()) {
            (Ok(()), Some(id)) => out.reply(&replies::queued(&id)),
            (Ok(()), None) => out.reply(&replies::LOCAL_ERROR),
            (Err(CommitError::NoSpace), _) => out.reply(&replies::NO_SPACE),
            (Err(CommitError::Failed), _) => out.reply(&replies::LOCAL_ERROR),
        }
        self.end_transaction();
    }

    /// The reply for DATA/BDAT without a usable transaction, if any.
    fn transaction_problem(&self) -> Option<ServerReply> {
        match &self.envelope {
            None => Some(replies::NEED_MAIL),
            Some(e) if e.recipients.is_empty() => Some(replies::NO_RECIPIENTS),
            Some(_) => None,
        }
    }

    pub(super) fn data(&mut self, out: &mut Output) -> Action {
        if self.content.is_some() {
            return self.error(out, &replies::DATA_AFTER_BDAT);
        }
        if let Some(reply) = self.transaction_problem() {
            return self.error(out, &reply);
        }
        self.phase = Phase::Waiting;
        Action::OpenMessage
    }

    pub(super) fn bdat(&mut self, size: usize, last: bool, out: &mut Output) -> Action {
        let first = self.content.is_none();
        let size = size as u64;
        if let Some(reply) = self.transaction_problem() {
            // RFC 3030 §2: the chunk is read and dropped all the same.
            self.content = None;
            self.phase = Phase::Bdat {
                chunk: BdatReceiver::discard(size),
                last: false,
                size,
                refused: Some(reply),
            };
            return self.finish_empty_chunk(size, out);
        }
        self.phase = Phase::Bdat {
            chunk: BdatReceiver::new(size, self.policy.bare_lf),
            last,
            size,
            refused: None,
        };
        if first {
            self.content = Some(Content::new(self.policy.max_message_size));
            return Action::OpenMessage;
        }
        self.finish_empty_chunk(size, out)
    }

    /// `BDAT 0 …` has nothing to read: complete it at once.
    fn finish_empty_chunk(&mut self, size: u64, out: &mut Output) -> Action {
        match size {
            0 => self.bdat_chunk_done(out),
            _ => Action::None,
        }
    }
}

/// RFC 3030 §2: `"BDAT" SP chunk-size [ SP end-marker ] CRLF`, where
/// `chunk-size = 1*DIGIT` and `end-marker = "LAST"`. smtp-proto skips
/// whatever follows `LAST` (`BDAT 5 LAST junk`); we refuse it, as Postfix
/// does (`501 5.5.4`, several blanks allowed like Postfix), and a size
/// that smtp-proto read otherwise than written (one past `u64`, which it
/// wraps). The chunk of a refused BDAT is not read: its size is not
/// trusted, so its bytes come as commands, as in Postfix.
pub(super) fn bdat_syntax_ok(line: &[u8], parsed: usize) -> bool {
    let mut words = line
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty());
    let (Some(_verb), Some(size)) = (words.next(), words.next()) else {
        return false;
    };
    let size_ok = size.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(size)
            .ok()
            .and_then(|digits| digits.parse::<u64>().ok())
            == Some(parsed as u64);
    match (words.next(), words.next()) {
        (None, _) => size_ok,
        (Some(last), None) => size_ok && last.eq_ignore_ascii_case(b"LAST"),
        _ => false,
    }
}
