//! What one step of the session gives the connection driver: the reply
//! bytes to send, message content to append, and the refusals to log with
//! the command they answered (DESIGN §7).

use crate::smtp::replies::ServerReply;

/// Output of one step: wire replies and message content to append.
#[derive(Debug, Default)]
pub struct Output {
    pub replies: Vec<u8>,
    pub content: Vec<u8>,
    /// The command being answered, for the refusal log.
    pub context: Context,
    /// Every `4xx`/`5xx` reply given since the driver last looked: the
    /// driver logs each as `refused` (DESIGN §7), so no refusal goes
    /// unlogged whichever rule gave it.
    pub refusals: Vec<Refusal>,
}

/// What a reply answers: the command's verb, the address it names, the
/// transaction's sender, and for a timeout the phase it happened in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub command: String,
    pub address: Option<String>,
    pub sender: Option<String>,
    pub phase: Option<&'static str>,
}

/// A `4xx`/`5xx` reply and what it answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub context: Context,
    /// The reply line as sent, without CRLF.
    pub reply: String,
}

/// Longest address kept for a log line; a client controls it.
const LOGGED_ADDRESS: usize = 256;

impl Context {
    /// The context of command `line` (whatever its syntax), within a
    /// transaction from `sender` if one is open.
    pub fn of_line(line: &[u8], sender: Option<&str>) -> Context {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        let command: String = text
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .take(16)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let address = match command.as_str() {
            "MAIL" | "RCPT" => text.split_once(':').map(|(_, rest)| {
                let rest = rest.trim_start();
                let path = match rest.starts_with('<') {
                    true => rest.find('>').map_or(rest, |end| &rest[..=end]),
                    false => rest.split_whitespace().next().unwrap_or(""),
                };
                path.chars().take(LOGGED_ADDRESS).collect()
            }),
            _ => None,
        };
        Context {
            command: if command.is_empty() {
                "?".into()
            } else {
                command
            },
            address,
            sender: sender.map(|s| format!("<{s}>")),
            phase: None,
        }
    }
}

impl Output {
    /// One reply line, from the table in [`crate::smtp::replies`].
    pub fn reply(&mut self, reply: &ServerReply) {
        let line = reply.to_string();
        self.replies.extend_from_slice(line.as_bytes());
        self.replies.extend_from_slice(b"\r\n");
        if reply.is_refusal() {
            self.refusals.push(Refusal {
                context: self.context.clone(),
                reply: line,
            });
        }
    }
}
