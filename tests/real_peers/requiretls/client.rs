//! The client side of the lab: Python's smtplib (another SMTP and TLS
//! stack than the relay's), for flagged submissions to the relay and for
//! the harness's messages straight to each hop.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::support::postfix::run_bounded;

/// Python's smtplib: one session to HOST:PORT, STARTTLS when offered
/// (verifying against CAFILE, or not at all for `-`; the name SERVERNAME
/// checked unless `-`), then each message of the JSON batch with
/// `sendmail`, REQUIRETLS in `mail_options` when asked. Prints the EHLO
/// keywords before and after STARTTLS as JSON.
const SMTPLIB: &str = r#"
import json, smtplib, ssl, sys
host, port, cafile, name, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
if cafile == "-":
    context = ssl._create_unverified_context()
else:
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = name != "-"
with open(batch) as f:
    mails = json.load(f)
seen = {"before": None, "after": None}
with smtplib.SMTP(host, port, local_hostname="client.requiretls.test", timeout=20) as smtp:
    if name != "-":
        smtp._host = name
    smtp.ehlo()
    seen["before"] = sorted(smtp.esmtp_features)
    if smtp.has_extn("starttls"):
        smtp.starttls(context=context)
        smtp.ehlo()
        seen["after"] = sorted(smtp.esmtp_features)
    for m in mails:
        options = ["REQUIRETLS"] if m["requiretls"] else []
        refused = smtp.sendmail(m["from"], m["to"], m["data"].encode(), mail_options=options)
        if refused:
            sys.exit(f"refused: {refused}")
print(json.dumps(seen))
"#;

/// One message for [`smtplib`]: sender, recipients, content, flagged.
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    pub requiretls: bool,
}

/// Sends `mails` with [`SMTPLIB`] to `addr`; the EHLO keywords it saw
/// (lowercase) before and after STARTTLS. Panics, quoting Python, when
/// a message is refused.
pub fn smtplib(
    addr: SocketAddr,
    ca: &str,
    name: &str,
    mails: &[Mail],
) -> (Vec<String>, Option<Vec<String>>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch: Vec<serde_json::Value> = mails
        .iter()
        .map(|m| serde_json::json!({"from": m.from, "to": m.to, "data": m.data, "requiretls": m.requiretls}))
        .collect();
    let batch_file = dir.path().join("batch.json");
    std::fs::write(&batch_file, serde_json::to_string(&batch).expect("json")).expect("write batch");
    let ca_file = match ca {
        "-" => "-".to_string(),
        pem => {
            let path = dir.path().join("ca.pem");
            std::fs::write(&path, pem).expect("write ca");
            path.display().to_string()
        }
    };
    let output = run_bounded(
        Command::new("python3")
            .args([
                "-c",
                SMTPLIB,
                &addr.ip().to_string(),
                &addr.port().to_string(),
            ])
            .args([&ca_file, name])
            .arg(&batch_file),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "smtplib to {addr} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("smtplib's JSON");
    let words = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect()
    };
    let after = (!seen["after"].is_null()).then(|| words(&seen["after"]));
    (words(&seen["before"]), after)
}
