//! A TLS-RPT report as mail (RFC 8460 §5.3): `multipart/report;
//! report-type="tlsrpt"`, a short text part, and the gzipped JSON report
//! as an `application/tlsrpt+gzip` attachment named
//! `SUBMITTER!DOMAIN!BEGIN!END.json.gz` (§5.1). The message carries
//! `TLS-Required: No` (RFC 8689 §4.1): a report about failing TLS must
//! still reach a domain whose TLS fails, and delivery leaves it out of
//! the counts it reports on.

use std::io::Write;

use base64::Engine;

/// What one report mail says.
pub struct ReportMail<'a> {
    /// `From:` (and the envelope sender), e.g. `postmaster@relay.example`.
    pub from: &'a str,
    /// The `mailto:` address of the `rua`.
    pub to: &'a str,
    /// The policy domain the report is about.
    pub domain: &'a str,
    /// Our name (`[tls_rpt] submitter`).
    pub submitter: &'a str,
    /// The report's `report-id`.
    pub report_id: &'a str,
    /// The report's range, in seconds since the epoch (§5.1 file name).
    pub begin: i64,
    pub end: i64,
    /// `Date:`, RFC 5322 form.
    pub date: &'a str,
}

/// The report gzipped, as §5.1 sends it (over https too).
pub fn gzip(json: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(json);
    encoder.finish().unwrap_or_default()
}

impl ReportMail<'_> {
    /// The attachment's file name (§5.1).
    pub fn file_name(&self) -> String {
        format!(
            "{}!{}!{}!{}.json.gz",
            self.submitter, self.domain, self.begin, self.end
        )
    }

    /// The whole message, CRLF line ends, with `report` (the JSON) gzipped
    /// and base64-encoded in 76-column lines.
    pub fn render(&self, report: &[u8]) -> Vec<u8> {
        let boundary = format!("tlsrpt-{}-{}", self.begin, hex_of(self.report_id));
        let encoded = base64::engine::general_purpose::STANDARD.encode(gzip(report));
        let mut body = String::new();
        let header = |body: &mut String, name: &str, value: &str| {
            body.push_str(name);
            body.push_str(": ");
            body.push_str(value);
            body.push_str("\r\n");
        };
        header(&mut body, "From", &format!("<{}>", self.from));
        header(&mut body, "To", &format!("<{}>", self.to));
        header(&mut body, "Date", self.date);
        header(
            &mut body,
            "Subject",
            &format!(
                "Report Domain: {} Submitter: {} Report-ID: <{}>",
                self.domain, self.submitter, self.report_id
            ),
        );
        header(&mut body, "Message-ID", &format!("<{}>", self.report_id));
        header(&mut body, "TLS-Report-Domain", self.domain);
        header(&mut body, "TLS-Report-Submitter", self.submitter);
        header(&mut body, "TLS-Required", "No");
        header(&mut body, "Auto-Submitted", "auto-generated");
        header(&mut body, "MIME-Version", "1.0");
        header(
            &mut body,
            "Content-Type",
            &format!("multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\""),
        );
        body.push_str("\r\nThis is a multipart message in MIME format.\r\n");
        body.push_str(&format!("\r\n--{boundary}\r\n"));
        header(&mut body, "Content-Type", "text/plain; charset=us-ascii");
        body.push_str(&format!(
            "\r\nThis is an aggregate TLS report (RFC 8460) from {} for {}.\r\n",
            self.submitter, self.domain
        ));
        body.push_str(&format!("\r\n--{boundary}\r\n"));
        header(&mut body, "Content-Type", "application/tlsrpt+gzip");
        header(&mut body, "Content-Transfer-Encoding", "base64");
        header(
            &mut body,
            "Content-Disposition",
            &format!("attachment; filename=\"{}\"", self.file_name()),
        );
        body.push_str("\r\n");
        for line in encoded.as_bytes().chunks(76) {
            body.push_str(&String::from_utf8_lossy(line));
            body.push_str("\r\n");
        }
        body.push_str(&format!("\r\n--{boundary}--\r\n"));
        body.into_bytes()
    }
}

/// A boundary-safe form of the report id: its bytes in hex, at most 16.
fn hex_of(text: &str) -> String {
    text.bytes().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn mail() -> ReportMail<'static> {
        ReportMail {
            from: "postmaster@relay.example.test",
            to: "tlsrpt@secure.test",
            domain: "secure.test",
            submitter: "relay.example.test",
            report_id: "2026-12-06.secure.test@relay.example.test",
            begin: 1_796_515_200,
            end: 1_796_601_599,
            date: "Mon, 07 Dec 2026 04:00:00 +0000",
        }
    }

    #[test]
    fn the_attachment_is_the_gzipped_report() {
        let json = br#"{"organization-name":"Example"}"#;
        let text = String::from_utf8(mail().render(json)).unwrap();
        assert!(text.contains("TLS-Report-Domain: secure.test\r\n"));
        assert!(text.contains("TLS-Report-Submitter: relay.example.test\r\n"));
        assert!(text.contains("TLS-Required: No\r\n"));
        assert!(text.contains("multipart/report; report-type=\"tlsrpt\""));
        assert!(text
            .contains("filename=\"relay.example.test!secure.test!1796515200!1796601599.json.gz\""));
        assert!(
            !text.lines().any(|l| l.len() > 998),
            "a line over RFC 5322's limit"
        );
        let (_, after) = text
            .split_once("Content-Transfer-Encoding: base64\r\n")
            .unwrap();
        let (_, encoded) = after.split_once("\r\n\r\n").unwrap();
        let encoded: String = encoded.lines().take_while(|l| !l.is_empty()).collect();
        let gz = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, json);
    }
}
