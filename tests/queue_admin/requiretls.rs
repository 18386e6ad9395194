//! A message flagged REQUIRETLS (RFC 8689) says so in `queue show` (among
//! the MAIL options) and in `queue list` (after its sender); an unflagged
//! one does not.

use super::support::relay::Relay;
use super::support::smtp::{assert_queued, Client};
use super::support::tls::client_config;
use super::{id_of, queue, wait_deferred};

/// Over STARTTLS, a message from `mail` (the MAIL line) to the internal
/// smarthost, which is unreachable: the message stays deferred.
fn send_secure(relay: &Relay, mail: &str, subject: &str) {
    let (mut c, _) = Client::connect(relay.smtp);
    c.ehlo();
    let mut c = c.starttls(client_config(None));
    let ehlo = c.ehlo();
    assert!(ehlo.contains("250 REQUIRETLS\r\n"), "{ehlo}");
    assert_eq!(c.command(mail), "250 2.1.0 Ok\r\n", "{mail}");
    assert_eq!(c.command("RCPT TO:<bob@example.test>"), "250 2.1.5 Ok\r\n");
    assert_eq!(c.command("DATA"), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send(format!("Subject: {subject}\r\n\r\nbody\r\n").as_bytes());
    assert_queued(&c.command("."));
    c.command("QUIT");
}

#[test]
fn queue_show_and_list_name_the_requiretls_flag() {
    let relay = Relay::start("");
    send_secure(
        &relay,
        "MAIL FROM:<alice@sender.test> REQUIRETLS RET=HDRS",
        "flagged",
    );
    send_secure(&relay, "MAIL FROM:<carol@sender.test>", "plain");
    let listed = wait_deferred(&relay, 2);
    let (flagged, plain) = (id_of(&listed, "flagged"), id_of(&listed, "plain"));

    let (code, text, err) = queue(&relay, &["show", &flagged]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("options:   RET=HDRS REQUIRETLS\n"), "{text}");
    let (_, text, _) = queue(&relay, &["show", &plain]);
    assert!(!text.contains("REQUIRETLS"), "{text}");

    let (code, text, err) = queue(&relay, &["list"]);
    assert_eq!(code, 0, "{err}");
    let line = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not in {text}"))
            .to_string()
    };
    assert!(
        line(&flagged).ends_with("  <alice@sender.test>  (REQUIRETLS)"),
        "{text}"
    );
    assert!(line(&plain).ends_with("  <carol@sender.test>"), "{text}");

    let (_, json, _) = queue(&relay, &["list", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&json).expect("list json");
    let flag = |id: &str| {
        entries
            .as_array()
            .and_then(|all| all.iter().find(|e| e["id"] == id))
            .map(|e| e["envelope"]["requiretls"].as_bool().unwrap_or(false))
    };
    assert_eq!((flag(&flagged), flag(&plain)), (Some(true), Some(false)));
}
