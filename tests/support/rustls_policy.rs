//! An in-process (rustls) HTTPS server for MTA-STS policy files (RFC 8461 §3.3) on a port-0
//! port of 127.0.0.1: rustls with a certificate from the test CA naming
//! every `mta-sts.` host the test serves, and per host the answer a test
//! sets (status, content type, body), so redirects, 404s, wrong content
//! types and oversize bodies can be served on purpose.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server answers for one host.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    pub fn policy(body: &str) -> Answer {
        Answer {
            status: "200 OK",
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }
}

pub struct PolicyServer {
    pub addr: SocketAddr,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    /// Requests seen, by host.
    seen: Arc<Mutex<Vec<String>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl PolicyServer {
    /// Serves `chain_pem` / `key_pem`; a host with no answer gets 404.
    pub fn start(chain_pem: &str, key_pem: &str) -> PolicyServer {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("chain");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (answers2, seen2) = (answers.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, answers, seen) =
                        (acceptor.clone(), answers2.clone(), seen2.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut request = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        let text = String::from_utf8_lossy(&request).to_string();
                        let host = text
                            .lines()
                            .find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: ")))
                            .map(|h| h.split(':').next().unwrap_or("").to_string())
                            .unwrap_or_default();
                        seen.lock().unwrap().push(host.clone());
                        let answer = answers.lock().unwrap().get(&host).cloned();
                        let answer = answer.unwrap_or(Answer {
                            status: "404 Not Found",
                            content_type: "text/plain",
                            body: "not here".into(),
                        });
                        let response = format!(
                            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nLocation: https://elsewhere.test/\r\nConnection: close\r\n\r\n{}",
                            answer.status,
                            answer.content_type,
                            answer.body.len(),
                            answer.body
                        );
                        let _ = tls.write_all(response.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        });
        PolicyServer {
            addr,
            answers,
            seen,
            _thread: thread,
        }
    }

    /// What `host` (`mta-sts.DOMAIN`) answers from now on; `None`: 404.
    pub fn set(&self, host: &str, answer: Option<Answer>) {
        let mut answers = self.answers.lock().unwrap();
        match answer {
            Some(answer) => answers.insert(host.to_string(), answer),
            None => answers.remove(host),
        };
    }

    /// How many requests came for `host`.
    pub fn requests(&self, host: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|h| *h == host)
            .count()
    }
}
