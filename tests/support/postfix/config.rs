//! The instance's `main.cf` and `master.cf`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use super::{postfix_ids, PostfixOptions};

pub(super) fn main_cf(root: &Path, options: &PostfixOptions) -> String {
    let root = root.display();
    let mut settings: Vec<(String, String)> = vec![
        ("compatibility_level".into(), "3.6".into()),
        ("queue_directory".into(), format!("{root}/spool")),
        ("data_directory".into(), format!("{root}/data")),
        ("mail_owner".into(), "postfix".into()),
        ("setgid_group".into(), "postdrop".into()),
        ("maillog_file".into(), format!("{root}/maillog")),
        ("maillog_file_prefixes".into(), root.to_string()),
        ("inet_interfaces".into(), options.ip.to_string()),
        ("inet_protocols".into(), "ipv4".into()),
        ("smtp_bind_address".into(), "127.0.0.1".into()),
        ("myhostname".into(), options.hostname.clone()),
        ("myorigin".into(), "$myhostname".into()),
        ("mynetworks".into(), "127.0.0.0/8".into()),
        ("mydestination".into(), options.mydestination.join(", ")),
        ("relay_domains".into(), options.relay_domains.join(", ")),
        ("alias_maps".into(), String::new()),
        ("alias_database".into(), String::new()),
        ("smtpd_peername_lookup".into(), "no".into()),
        ("biff".into(), "no".into()),
        // Tests wait for retries: keep the queue manager quick.
        ("queue_run_delay".into(), "1s".into()),
        ("minimal_backoff_time".into(), "1s".into()),
        ("maximal_backoff_time".into(), "2s".into()),
        ("smtp_connect_timeout".into(), "5s".into()),
        ("smtpd_tls_loglevel".into(), "1".into()),
        ("smtp_tls_loglevel".into(), "1".into()),
    ];
    match &options.tls {
        Some((cert, key)) => settings.extend([
            ("smtpd_tls_security_level".into(), "may".into()),
            ("smtpd_tls_cert_file".into(), cert.display().to_string()),
            ("smtpd_tls_key_file".into(), key.display().to_string()),
        ]),
        None => settings.push(("smtpd_tls_security_level".into(), "none".into())),
    }
    if let Some(addr) = options.relayhost {
        settings.push((
            "relayhost".into(),
            format!("[{}]:{}", addr.ip(), addr.port()),
        ));
    }
    if let Some(level) = &options.smtp_tls_security_level {
        settings.push(("smtp_tls_security_level".into(), level.clone()));
    }
    if !options.maildir_domains.is_empty() {
        let (uid, gid) = postfix_ids();
        settings.extend([
            (
                "virtual_mailbox_domains".into(),
                options.maildir_domains.join(", "),
            ),
            ("virtual_mailbox_base".into(), format!("{root}/mail")),
            // One maildir (trailing slash) for every recipient.
            ("virtual_mailbox_maps".into(), "static:inbox/".into()),
            ("virtual_minimum_uid".into(), uid.to_string()),
            ("virtual_uid_maps".into(), format!("static:{uid}")),
            ("virtual_gid_maps".into(), format!("static:{gid}")),
        ]);
    }
    settings.extend(options.main_cf.iter().cloned());
    settings
        .iter()
        .fold(String::new(), |mut text, (key, value)| {
            let _ = writeln!(text, "{key} = {value}");
            text
        })
}

/// Only what the tests use; nothing chrooted (the queue is a tempdir).
pub(super) fn master_cf(ip: Ipv4Addr, port: u16) -> String {
    let services = [
        "pickup    unix  n - n 60    1 pickup",
        "cleanup   unix  n - n -     0 cleanup",
        "qmgr      unix  n - n 300   1 qmgr",
        "tlsmgr    unix  - - n 1000? 1 tlsmgr",
        "rewrite   unix  - - n -     - trivial-rewrite",
        "bounce    unix  - - n -     0 bounce",
        "defer     unix  - - n -     0 bounce",
        "trace     unix  - - n -     0 bounce",
        "verify    unix  - - n -     1 verify",
        "flush     unix  n - n 1000? 0 flush",
        "proxymap  unix  - - n -     - proxymap",
        "smtp      unix  - - n -     - smtp",
        "relay     unix  - - n -     - smtp",
        "showq     unix  n - n -     - showq",
        "error     unix  - - n -     - error",
        "retry     unix  - - n -     - error",
        "discard   unix  - - n -     - discard",
        "local     unix  - n n -     - local",
        "virtual   unix  - n n -     - virtual",
        "anvil     unix  - - n -     1 anvil",
        "scache    unix  - - n -     1 scache",
        "postlog   unix-dgram n - n - 1 postlogd",
    ];
    let mut text = format!("{ip}:{port} inet n - n - - smtpd\n");
    for line in services {
        text.push_str(line);
        text.push('\n');
    }
    text
}
