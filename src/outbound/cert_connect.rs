//! `cert-info --connect`: fetch a server's chain, optionally after SMTP
//! STARTTLS; the report itself is `crate::tls::cert_info`'s.
//!
//! The handshake accepts any chain (handshake signatures are still checked,
//! so the server proves it holds the key) because the point is to *report*
//! untrusted certificates; the chain is verified separately with
//! [`TrustStore`]. Every phase has its own timeout and the error names it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::client::{Client, ClientError, Phase as ClientPhase, StartTls};
use super::stream::Stream;
use crate::tls::cert_info::{build, CertInfoError, ConnectRequest, Connection, Phase, Report};
use crate::tls::client::{AcceptAnyChain, Negotiated};
use crate::tls::trust::{check_name, TrustStore};

pub async fn from_server(request: &ConnectRequest) -> Result<Report, CertInfoError> {
    let target = request.target.clone();
    let (host, port) = split_target(&target)?;
    let name = request.servername.clone().unwrap_or_else(|| host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| CertInfoError::BadServerName { name: name.clone() })?;
    let store = TrustStore::with_ca_files(&request.ca_files)?;
    let session = Session {
        request,
        target: target.clone(),
    };

    let mut tcp = session
        .phase(Phase::Connect, TcpStream::connect((host.as_str(), port)))
        .await?;
    let address = tcp
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| target.clone());
    if request.starttls {
        tcp = session.starttls(tcp).await?;
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| session.protocol(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyChain::new(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = session
        .phase(Phase::Handshake, connector.connect(server_name, tcp))
        .await?;
    let (_, conn) = tls.get_ref();
    let chain: Vec<CertificateDer<'static>> = conn.peer_certificates().unwrap_or_default().to_vec();
    let leaf = chain.first().ok_or_else(|| CertInfoError::NoCertificate {
        target: target.clone(),
    })?;
    let name_problem = check_name(leaf, &name).err().map(|e| e.to_string());
    let negotiated = Negotiated::of(conn);
    let connection = Connection {
        target: target.clone(),
        address,
        starttls: request.starttls,
        server_name: name,
        tls_version: negotiated.version,
        cipher_suite: negotiated.cipher,
        key_exchange_group: negotiated.group,
        name_matches: name_problem.is_none(),
        name_problem,
    };
    // Politeness only: a close_notify, not waited for long.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tls.shutdown()).await;
    build(
        format!("server {target}"),
        &chain,
        &store,
        Some(connection),
        |message| session.protocol(format!("the server's certificate is unreadable: {message}")),
    )
}

/// `host:port`, `[v6]:port`; a bare IPv6 address is ambiguous and refused.
fn split_target(target: &str) -> Result<(String, u16), CertInfoError> {
    let bad = |reason: &str| CertInfoError::BadTarget {
        target: target.to_owned(),
        reason: reason.to_owned(),
    };
    if let Ok(addr) = target.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = target.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err(bad("port 0"));
    }
    if host.is_empty() || host.contains(':') || host.contains('[') {
        return Err(bad("not a host name or address"));
    }
    Ok((host.to_owned(), port))
}

struct Session<'a> {
    request: &'a ConnectRequest,
    target: String,
}

impl Session<'_> {
    /// Runs one phase under the request's timeout, naming the phase on failure.
    async fn phase<T>(
        &self,
        phase: Phase,
        work: impl Future<Output = std::io::Result<T>>,
    ) -> Result<T, CertInfoError> {
        match tokio::time::timeout(self.request.timeout, work).await {
            Err(_) => Err(CertInfoError::Timeout {
                phase,
                target: self.target.clone(),
                secs: self.request.timeout.as_secs(),
            }),
            Ok(Err(source)) => Err(CertInfoError::Io {
                phase,
                target: self.target.clone(),
                source,
            }),
            Ok(Ok(value)) => Ok(value),
        }
    }

    fn protocol(&self, message: String) -> CertInfoError {
        CertInfoError::Protocol {
            target: self.target.clone(),
            message,
        }
    }

    /// The client's result within the request's timeout for `phase`;
    /// its errors in cert-info's words.
    async fn step<T>(
        &self,
        phase: Phase,
        work: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, CertInfoError> {
        let target = self.target.clone();
        match tokio::time::timeout(self.request.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Err(_) | Ok(Err(ClientError::Timeout(_))) => Err(CertInfoError::Timeout {
                phase,
                target,
                secs: self.request.timeout.as_secs(),
            }),
            Ok(Err(ClientError::Closed(_))) => Err(CertInfoError::Closed { phase, target }),
            Ok(Err(ClientError::Io(_, source))) => Err(CertInfoError::Io {
                phase,
                target,
                source,
            }),
            Ok(Err(e)) => Err(self.protocol(format!("bad {phase}: {e}"))),
        }
    }

    /// RFC 3207: greeting, EHLO, STARTTLS, 220, through the SMTP client
    /// delivery uses. Anything the server sends after that 220 is
    /// discarded (response injection), as DESIGN.md §5 asks.
    async fn starttls(&self, tcp: TcpStream) -> Result<TcpStream, CertInfoError> {
        let helo = local_name(&tcp);
        let mut client = Client::new(Stream::Plain(tcp));
        let greeting = self
            .step(Phase::Greeting, client.reply(ClientPhase::Greeting))
            .await?;
        if greeting.code != 220 {
            return Err(self.protocol(format!(
                "server refused the session: {}",
                greeting.summary()
            )));
        }
        let ehlo = self.step(Phase::Ehlo, client.hello(&helo)).await?;
        if !ehlo.is_positive() {
            return Err(self.protocol(format!("server refused EHLO: {}", ehlo.summary())));
        }
        if !client.capabilities.starttls {
            return Err(CertInfoError::NoStartTls {
                target: self.target.clone(),
                ehlo: ehlo.summary(),
            });
        }
        match self.step(Phase::StartTls, client.starttls()).await? {
            StartTls::Ready(stream) => stream
                .into_plain()
                .ok_or_else(|| self.protocol("STARTTLS inside TLS".into())),
            StartTls::Refused { reply, .. } => {
                Err(self.protocol(format!("server refused STARTTLS: {}", reply.summary())))
            }
        }
    }
}

/// Our EHLO name: the address literal of our end (RFC 5321 §4.1.3), always valid.
fn local_name(tcp: &TcpStream) -> String {
    match tcp.local_addr().map(|a| a.ip()) {
        Ok(std::net::IpAddr::V4(ip)) => format!("[{ip}]"),
        Ok(std::net::IpAddr::V6(ip)) => format!("[IPv6:{ip}]"),
        Err(_) => "[127.0.0.1]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            split_target("mx.example.test:25").unwrap(),
            ("mx.example.test".into(), 25)
        );
        assert_eq!(split_target("[::1]:2525").unwrap(), ("::1".into(), 2525));
        assert_eq!(
            split_target("127.0.0.1:465").unwrap(),
            ("127.0.0.1".into(), 465)
        );
        for bad in [
            "mx.example.test",
            "::1:25",
            "host:port",
            ":25",
            "h:0",
            "h:70000",
        ] {
            let err = split_target(bad).unwrap_err();
            assert!(err.is_user_error(), "{bad}");
        }
    }
}
