//! A small HTTPS client for the two jobs the relay has on the web: the
//! MTA-STS policy fetch (RFC 8461 §3.3) and, later, TLS-RPT reports by
//! POST (RFC 8460 §3). Built on hyper's HTTP/1.1 client over our own TCP
//! connection and tokio-rustls, so that:
//!
//! * the addresses come from the relay's resolver (the caller looks them
//!   up and hands them in: this module knows no DNS);
//! * the certificate is checked by WebPKI against the webpki roots plus
//!   the CAs the caller adds, for the host name, which is also the SNI;
//! * nothing is followed: a redirect is an answer like any other status.
//!
//! Every request is bounded: one overall time limit (connect, handshake,
//! request, body) and, for GET, a body size cap.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

/// Why a request gave no usable answer. [`HttpsError::is_tls`] tells a
/// certificate or handshake failure (TLS-RPT's `sts-webpki-invalid`)
/// from every other failure (`sts-policy-fetch-error`).
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("TLS with {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("HTTP: {0}")]
    Http(String),
    #[error("HTTP status {0} (only 200 is accepted, redirects are not followed)")]
    Status(u16),
    #[error("content type {found:?}, expected {expected}")]
    ContentType { found: String, expected: String },
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("no complete answer within {0:?}")]
    TimedOut(Duration),
}

impl HttpsError {
    /// The TLS handshake or the certificate failed.
    pub fn is_tls(&self) -> bool {
        matches!(self, HttpsError::Tls { .. })
    }
}

/// Where a request goes: the name (Host header, SNI, certificate name),
/// its addresses, the port and the path.
pub struct Target<'a> {
    pub host: &'a str,
    pub addresses: &'a [IpAddr],
    pub port: u16,
    /// Origin form: `/.well-known/mta-sts.txt`.
    pub path: &'a str,
}

/// The client: its trust anchors and time limit. Cheap to share.
#[derive(Clone)]
pub struct Client {
    tls: Arc<ClientConfig>,
    timeout: Duration,
}

impl Client {
    /// Trusting the webpki roots plus `extra` (private or test CAs).
    pub fn new(extra: &[CertificateDer<'static>], timeout: Duration) -> Result<Client, String> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for (i, cert) in extra.iter().enumerate() {
            roots
                .add(cert.clone())
                .map_err(|e| format!("CA certificate #{} is unusable: {e}", i + 1))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client {
            tls: Arc::new(tls),
            timeout,
        })
    }

    /// GET: the body of a `200` answer whose content type is `expected`
    /// (parameters allowed), at most `cap` bytes.
    pub async fn get(
        &self,
        target: &Target<'_>,
        expected: &str,
        cap: usize,
    ) -> Result<Bytes, HttpsError> {
        let request = self.request(target, hyper::Method::GET, Full::new(Bytes::new()));
        let work = async {
            let response = self.exchange(target, request?).await?;
            if response.status() != hyper::StatusCode::OK {
                return Err(HttpsError::Status(response.status().as_u16()));
            }
            let found = response
                .headers()
                .get(CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            if !content_type_is(&found, expected) {
                let expected = expected.to_string();
                return Err(HttpsError::ContentType { found, expected });
            }
            let declared = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|n| n > cap as u64) {
                return Err(HttpsError::TooLarge(cap));
            }
            match Limited::new(response.into_body(), cap).collect().await {
                Ok(body) => Ok(body.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(HttpsError::TooLarge(cap))
                }
                Err(e) => Err(HttpsError::Http(e.to_string())),
            }
        };
        self.bounded(work).await
    }

    /// POST `body` as `content_type`; any 2xx status is success.
    pub async fn post(
        &self,
        target: &Target<'_>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<u16, HttpsError> {
        let work = async {
            let mut request =
                self.request(target, hyper::Method::POST, Full::new(Bytes::from(body)))?;
            let value = hyper::header::HeaderValue::from_str(content_type)
                .map_err(|e| HttpsError::Http(e.to_string()))?;
            request.headers_mut().insert(CONTENT_TYPE, value);
            let response = self.exchange(target, request).await?;
            let status = response.status();
            // Read (and drop) what the server says, within the time limit.
            let _ = Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await;
            match status.is_success() {
                true => Ok(status.as_u16()),
                false => Err(HttpsError::Status(status.as_u16())),
            }
        };
        self.bounded(work).await
    }

    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, HttpsError>>,
    ) -> Result<T, HttpsError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(HttpsError::TimedOut(self.timeout)),
        }
    }

    fn request(
        &self,
        target: &Target<'_>,
        method: hyper::Method,
        body: Full<Bytes>,
    ) -> Result<hyper::Request<Full<Bytes>>, HttpsError> {
        let authority = match target.port {
            443 => target.host.to_string(),
            port => format!("{}:{port}", target.host),
        };
        hyper::Request::builder()
            .method(method)
            .uri(target.path)
            .header(HOST, authority)
            .header(USER_AGENT, concat!("tlsrelay/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .map_err(|e| HttpsError::Http(e.to_string()))
    }

    /// Connects (each address in turn), TLS, one HTTP/1.1 exchange.
    async fn exchange(
        &self,
        target: &Target<'_>,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, HttpsError> {
        let host = target.host.to_string();
        let name = ServerName::try_from(host.clone()).map_err(|e| HttpsError::Tls {
            host: host.clone(),
            reason: e.to_string(),
        })?;
        let mut last = HttpsError::NoAddress { host: host.clone() };
        let mut tcp = None;
        for ip in target.addresses {
            let addr = SocketAddr::new(*ip, target.port);
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => {
                    let reason = e.to_string();
                    last = HttpsError::Connect { addr, reason };
                }
            }
        }
        let tcp = tcp.ok_or(last)?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| HttpsError::Tls {
                host,
                reason: crate::tls::reason::io_reason(&e),
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| HttpsError::Http(e.to_string()))?;
        // The connection runs beside the request; it ends with the
        // exchange, or when the caller's time limit drops the sender.
        let driver = AbortOnDrop(Some(tokio::spawn(async move {
            let _ = connection.await;
        })));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| HttpsError::Http(e.to_string()));
        if response.is_ok() {
            driver.detach();
        }
        response
    }
}

/// Aborts the connection task unless the exchange got an answer.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    /// The answer came: the connection lives on to carry the body, and
    /// ends when the body is read or dropped.
    fn detach(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Whether a `Content-Type` value is `expected`, parameters allowed
/// (`text/plain; charset=utf-8`), case-insensitive.
pub fn content_type_is(value: &str, expected: &str) -> bool {
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case(expected)
}

#[cfg(test)]
mod tests {
    use super::content_type_is;

    #[test]
    fn content_types() {
        for (value, ok) in [
            ("text/plain", true),
            ("text/plain; charset=utf-8", true),
            ("TEXT/Plain;charset=\"us-ascii\"", true),
            (" text/plain ", true),
            ("text/html", false),
            ("text/plainx", false),
            ("", false),
            ("application/octet-stream", false),
        ] {
            assert_eq!(content_type_is(value, "text/plain"), ok, "{value}");
        }
    }
}
