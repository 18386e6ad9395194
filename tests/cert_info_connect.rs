//! `tlsrelay cert-info --connect` against in-test servers on 127.0.0.1:0.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::ca::{Chain, Key, Spec};
use support::{arg, openssl_fingerprint, stderr, stdout, write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How the test server behaves before (or instead of) TLS.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    StartTls,
    NoStartTls,
    ImplicitTls,
    Silent,
}

fn acceptor(chain: &Chain) -> TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain.served_pem().as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(chain.leaf.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Reads one CRLF-terminated command line.
async fn command(tcp: &mut TcpStream) -> String {
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        if tcp.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// Serves one connection per `script`; returns the port and the commands the client sent.
async fn serve(chain: &Chain, script: Script) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = acceptor(chain);
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        if script == Script::Silent {
            tokio::time::sleep(Duration::from_secs(10)).await;
            return seen;
        }
        if script != Script::ImplicitTls {
            tcp.write_all(b"220-test.example ESMTP\r\n220 hello\r\n")
                .await
                .unwrap();
            seen.push(command(&mut tcp).await);
            let ehlo: &[u8] = match script {
                Script::StartTls => {
                    b"250-test.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
                }
                _ => b"250-test.example\r\n250 PIPELINING\r\n",
            };
            tcp.write_all(ehlo).await.unwrap();
            seen.push(command(&mut tcp).await);
            if script == Script::NoStartTls {
                return seen;
            }
            tcp.write_all(b"220 2.0.0 Ready to start TLS\r\n")
                .await
                .unwrap();
        }
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        seen
    });
    (port, task)
}

/// Runs the binary off the runtime so the server keeps running.
async fn cert_info(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::tlsrelay(&args)
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_reports_certificate_and_tls_details() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256).org("Example Ltd", "Mail"));
    let leaf = write(dir.path(), "leaf.pem", &chain.leaf.cert_pem);
    let root = write(dir.path(), "root.pem", chain.root.pem());
    let (port, server) = serve(&chain, Script::StartTls).await;
    let target = format!("127.0.0.1:{port}");

    let out = cert_info(args(&[
        "cert-info",
        "--connect",
        &target,
        "--starttls",
        "--servername",
        "mx.example.test",
        "--ca-file",
        arg(&root),
    ]))
    .await;
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "SHA-256 fingerprint    {}",
            openssl_fingerprint(&leaf)
        )),
        "{text}"
    );
    assert!(text.contains("TLS version            TLSv1.3"), "{text}");
    assert!(text.contains("Cipher suite           TLS_"), "{text}");
    assert!(text.contains("Key exchange           "), "{text}");
    assert!(text.contains("Name matches           yes"), "{text}");
    assert!(text.contains("Verified               yes"), "{text}");
    assert!(
        text.contains(&format!(
            "Server                 {target} (127.0.0.1:{port}, SMTP STARTTLS)"
        )),
        "{text}"
    );
    assert!(
        text.contains("Organization (O)                     Example Ltd"),
        "{text}"
    );

    let seen = server.await.unwrap();
    assert_eq!(seen, vec!["EHLO [127.0.0.1]\r\n", "STARTTLS\r\n"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_json_and_name_mismatch() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::Rsa2048));
    let (port, server) = serve(&chain, Script::ImplicitTls).await;
    let target = format!("127.0.0.1:{port}");
    let out = cert_info(args(&[
        "cert-info",
        "--connect",
        &target,
        "--servername",
        "other.test",
        "--json",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let connection = &report["connection"];
    assert_eq!(connection["starttls"], false);
    assert_eq!(connection["tls_version"], "TLSv1.3");
    assert_eq!(connection["name_matches"], false);
    assert_eq!(
        connection["name_problem"],
        "certificate is not valid for other.test (it names: mx.example.test)"
    );
    assert_eq!(report["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(report["chain"]["verified"], false);
    assert_eq!(report["partner"]["key_strength"], "RSA 2048 bits");
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn server_without_starttls_is_a_clear_runtime_error() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    let (port, server) = serve(&chain, Script::NoStartTls).await;
    let out = cert_info(args(&[
        "cert-info",
        "--connect",
        &format!("127.0.0.1:{port}"),
        "--starttls",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("server does not offer STARTTLS"),
        "{}",
        stderr(&out)
    );
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_server_times_out_naming_the_phase() {
    let chain = Chain::new(&Spec::new(&["mx.example.test"], Key::P256));
    for (starttls, phase) in [(true, "SMTP greeting"), (false, "TLS handshake")] {
        let (port, server) = serve(&chain, Script::Silent).await;
        let mut list = args(&[
            "cert-info",
            "--connect",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "1",
        ]);
        if starttls {
            list.push("--starttls".into());
        }
        let started = Instant::now();
        let out = cert_info(list).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(out.status.code(), Some(2));
        let expected = format!("timed out after 1s waiting for the {phase}");
        assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
        server.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_target_is_a_user_error() {
    let out = cert_info(args(&["cert-info", "--connect", "no-port-here"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not HOST:PORT"),
        "{}",
        stderr(&out)
    );
}
