//! Address literals in MAIL and RCPT paths (RFC 5321 §4.1.3:
//! `user@[192.0.2.1]`, `user@[IPv6:2001:db8::1]`).
//!
//! smtp-proto's path parser stops at `[`, so a literal is masked before
//! the line is parsed: the bracketed text is swapped for a placeholder
//! domain, smtp-proto parses the line (parameters included), and
//! [`restore`] puts the literal back into the parsed address. What the
//! literal holds is judged later, with every other domain
//! (`config::domain::MailDomain`).

/// The domain that stands in for the literal while smtp-proto parses.
/// `.invalid` (RFC 2606) so that it can never be a real domain; it never
/// leaves this module's callers.
const PLACEHOLDER: &str = "address-literal.invalid";

/// Longer than any IPv4 or `IPv6:` literal (the longest is 52 bytes): a
/// longer bracket is left alone, and smtp-proto refuses the path.
const MAX_LITERAL: usize = 64;

/// A command line whose path's domain is an address literal, with the
/// literal replaced by [`PLACEHOLDER`].
#[derive(Debug, PartialEq, Eq)]
pub struct Masked {
    pub line: Vec<u8>,
    /// The literal as the client wrote it, brackets included.
    pub literal: String,
}

/// Masks the address literal of a `MAIL FROM:<…>` or `RCPT TO:<…>` line,
/// if its path ends in one; `None` leaves the line to smtp-proto as it is.
/// The path ends at the first `>` outside a quoted local part, and the
/// domain follows its last `@`, so a literal inside a quoted local part
/// (`"x@[1.2.3.4]"@example.test`) is never taken for the domain.
pub fn mask(line: &[u8]) -> Option<Masked> {
    let verb = line.get(..4)?;
    if !verb.eq_ignore_ascii_case(b"MAIL") && !verb.eq_ignore_ascii_case(b"RCPT") {
        return None;
    }
    let colon = line.iter().position(|&b| b == b':')?;
    let open = colon + 1 + line[colon + 1..].iter().position(|&b| b != b' ')?;
    if line[open] != b'<' {
        return None;
    }
    let close = path_end(line, open + 1)?;
    let path = &line[open + 1..close];
    let at = path.iter().rposition(|&b| b == b'@')?;
    let domain = &path[at + 1..];
    let inside = domain.strip_prefix(b"[")?.strip_suffix(b"]")?;
    if domain.len() > MAX_LITERAL || inside.iter().any(|b| b"[]\"\\ <>".contains(b)) {
        return None;
    }
    let literal = std::str::from_utf8(domain).ok()?.to_string();
    let start = open + 1 + at + 1;
    let masked = [&line[..start], PLACEHOLDER.as_bytes(), &line[close..]].concat();
    Some(Masked {
        line: masked,
        literal,
    })
}

/// The parsed address with its literal back in place of the placeholder;
/// `None` when the parser's address does not end in it (then the masking
/// misread the path, and the command is refused as bad syntax).
pub fn restore(address: &str, literal: &str) -> Option<String> {
    let local = address.strip_suffix(PLACEHOLDER)?.strip_suffix('@')?;
    Some(format!("{local}@{literal}"))
}

/// The offset of the `>` that ends a path starting at `from`: the first
/// one outside a quoted string (RFC 5321 §4.1.2, `\` escapes inside it).
fn path_end(line: &[u8], from: usize) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in line.iter().enumerate().skip(from) {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i),
            b'\r' | b'\n' => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(line: &str) -> Option<(String, String)> {
        mask(line.as_bytes()).map(|m| (String::from_utf8_lossy(&m.line).into_owned(), m.literal))
    }

    #[test]
    fn literals_are_masked_and_restored() {
        assert_eq!(
            masked("MAIL FROM:<a@[192.0.2.1]> SIZE=10\r\n"),
            Some((
                "MAIL FROM:<a@address-literal.invalid> SIZE=10\r\n".into(),
                "[192.0.2.1]".into()
            ))
        );
        assert_eq!(
            masked("rcpt to: <\"x>y\"@[IPv6:2001:db8::1]>\r\n"),
            Some((
                "rcpt to: <\"x>y\"@address-literal.invalid>\r\n".into(),
                "[IPv6:2001:db8::1]".into()
            ))
        );
        assert_eq!(
            restore("a@address-literal.invalid", "[192.0.2.1]").as_deref(),
            Some("a@[192.0.2.1]")
        );
        assert_eq!(restore("a@example.test", "[192.0.2.1]"), None);
    }

    #[test]
    fn everything_else_is_left_alone() {
        for line in [
            "MAIL FROM:<a@example.test>\r\n",
            "RCPT TO:<\"x@[192.0.2.1]\"@example.test>\r\n",
            "RCPT TO:<\"x@[192.0.2.1]>\r\n",
            "RCPT TO:<a@[192.0.2.1] >\r\n",
            "RCPT TO:<a@[1.2.3.4]x>\r\n",
            "RCPT TO:<a@[[1.2.3.4]]>\r\n",
            "RCPT TO:<@[1.2.3.4]:a@example.test>\r\n",
            "NOOP <a@[1.2.3.4]>\r\n",
            "RCPT TO:a@[1.2.3.4]\r\n",
        ] {
            assert_eq!(masked(line), None, "{line:?}");
        }
        let long = format!("RCPT TO:<a@[{}]>\r\n", "1".repeat(MAX_LITERAL));
        assert_eq!(masked(&long), None);
    }
}
