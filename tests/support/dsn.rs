//! Reads a delivery status notification the way a mail client would
//! (RFC 3464 in a `multipart/report`, RFC 6522), so tests assert on its
//! fields rather than on substrings of our own rendering.

use super::receiver::Receiver;

/// A parsed DSN: its top-level headers and the `message/delivery-status`
/// part split into the per-message and per-recipient field groups.
#[derive(Debug)]
pub struct Dsn {
    /// Unfolded header fields of the notice itself.
    pub headers: Vec<(String, String)>,
    /// `Content-Type` of each body part, in order.
    pub part_types: Vec<String>,
    /// The human-readable first part.
    pub text: String,
    /// RFC 3464 §2.2.
    pub per_message: Fields,
    /// RFC 3464 §2.3, one group per recipient.
    pub recipients: Vec<Fields>,
}

/// `Name: value` fields; names compared without case (RFC 5322 §1.2.2).
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The field, which must be there.
    pub fn field(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no {name} field in {self:?}"))
    }
}

impl Dsn {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The per-recipient group for `address` (`Final-Recipient: rfc822; …`).
    pub fn recipient(&self, address: &str) -> &Fields {
        self.recipients
            .iter()
            .find(|f| {
                f.get("Final-Recipient")
                    .is_some_and(|v| v.eq_ignore_ascii_case(&format!("rfc822; {address}")))
            })
            .unwrap_or_else(|| panic!("no report for {address} in {self:#?}"))
    }
}

/// Header block and body of a message or body part.
fn split(entity: &str) -> (&str, &str) {
    entity
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {entity:?}"))
}

/// Unfolded fields (RFC 5322 §2.2.3) of a header block or of a
/// delivery-status group, which has the same syntax (RFC 3464 §2.1).
fn fields(block: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            let last = out
                .last_mut()
                .unwrap_or_else(|| panic!("continuation first: {block:?}"));
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not a field: {line:?}"));
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    out
}

/// The `boundary` parameter of a Content-Type value (RFC 2046 §5.1.1).
fn boundary(content_type: &str) -> String {
    let start = content_type
        .find("boundary=")
        .unwrap_or_else(|| panic!("no boundary in {content_type:?}"))
        + "boundary=".len();
    let rest = &content_type[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default().to_string(),
        None => rest
            .split([';', ' '])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The one notice `receiver` (the MX host of `sender`'s domain) accepted,
/// checked to travel as every DSN must: from `<>` (RFC 5321 §4.5.5) to
/// the original envelope sender; parsed.
pub fn bounce_at(receiver: &Receiver, sender: &str) -> Dsn {
    let notice = receiver.wait_delivered(1).remove(0);
    assert_eq!(notice.mail_from, "", "a DSN comes from the null sender");
    assert_eq!(notice.rcpt_to, [sender]);
    parse(notice.data.as_deref().unwrap_or_default())
}

/// Parses `content` as a DSN; panics, quoting it, when it is not one.
pub fn parse(content: &[u8]) -> Dsn {
    let text = String::from_utf8_lossy(content).into_owned();
    let (head, body) = split(&text);
    let headers = fields(head);
    let content_type = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("multipart/report;")
            && content_type.contains("report-type=delivery-status"),
        "not a delivery report: {content_type:?}\n{text}"
    );
    let delimiter = format!("--{}", boundary(&content_type));
    let close = format!("{delimiter}--");
    assert!(body.contains(&close), "no closing delimiter:\n{text}");
    let mut parts: Vec<(String, String)> = Vec::new();
    for part in body.split(&delimiter).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let (part_head, part_body) = split(part);
        let part_type = fields(part_head)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
            .map(|(_, v)| v)
            .unwrap_or_else(|| "text/plain".into());
        parts.push((part_type, part_body.to_string()));
    }
    let status = parts
        .iter()
        .find(|(t, _)| t.starts_with("message/delivery-status"))
        .unwrap_or_else(|| panic!("no message/delivery-status part:\n{text}"));
    let mut groups = status.1.split("\r\n\r\n").filter(|g| !g.trim().is_empty());
    let per_message = Fields(fields(groups.next().unwrap_or_default()));
    let recipients = groups.map(|g| Fields(fields(g))).collect();
    Dsn {
        headers,
        part_types: parts.iter().map(|(t, _)| t.clone()).collect(),
        text: parts.first().map(|(_, b)| b.clone()).unwrap_or_default(),
        per_message,
        recipients,
    }
}

/// What Python's `email` package (a parser that is not ours) makes of a
/// notice: `{"type", "parts": [{"type", "size"}], "per_message": {…},
/// "recipients": [{field: value}]}`, field names lowercase, sizes in
/// bytes of each part's decoded content.
pub fn python_view(content: &[u8]) -> serde_json::Value {
    const SCRIPT: &str = r#"
import email, email.policy, json, sys
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
out = {"type": msg.get_content_type(), "parts": [], "per_message": {}, "recipients": []}
for part in msg.get_payload():
    kind = part.get_content_type()
    payload = part.get_payload()
    if kind in ("message/delivery-status", "message/global-delivery-status"):
        groups = [dict((k.lower(), v) for k, v in g.items()) for g in payload]
        out["per_message"], out["recipients"] = groups[0], groups[1:]
        size = 0
    elif isinstance(payload, list):
        size = sum(len(p.as_bytes()) for p in payload)
    else:
        size = len(payload)
    out["parts"].append({"type": kind, "size": size})
print(json.dumps(out))
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(content)
        .expect("feed python3");
    let output = child.wait_with_output().expect("python3 output");
    assert!(
        output.status.success(),
        "python3 could not read the notice: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python3 JSON")
}
