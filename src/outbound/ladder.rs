//! The steps of the TLS ladder on one connection: connect, greeting and
//! EHLO; STARTTLS, the handshake of one rung, EHLO again over TLS.

use std::net::SocketAddr;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::client::Client;
use super::deliver::{Deliverer, Route, TlsStream};
use super::policy::{Checks, Failure, Rung};
use super::route::{Hop, Resolve};
use crate::config::values::{Host, TlsVersion};
use crate::tls::client::{config as tls_config, Negotiated};

impl<R: Resolve> Deliverer<R> {
    /// TCP connect, greeting, EHLO: a client ready for the policy's question.
    pub(crate) async fn connect(&self, addr: SocketAddr) -> Result<Client<TcpStream>, String> {
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Err(_) => {
                return Err(format!(
                    "connect: no answer within {:?}",
                    self.connect_timeout
                ))
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut client = Client::new(tcp);
        client.timeout_scale = self.timeout_scale;
        let greeting = client
            .reply(super::client::Phase::Greeting)
            .await
            .map_err(|e| e.to_string())?;
        if greeting.code != 220 {
            client.quit().await;
            return Err(format!("greeting: {}", greeting.summary()));
        }
        match client.hello(&self.hostname).await {
            Ok(reply) if reply.is_positive() => Ok(client),
            Ok(reply) => Err(format!("EHLO: {}", reply.summary())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// STARTTLS, the handshake of `rung`, then EHLO again over TLS (RFC
    /// 3207 §4.2). A refused EHLO, or a connection closed instead of an
    /// answer, is [`Failure::RefusedAfterTls`]: that is how a TLS 1.3
    /// server that wants a client certificate says so. Delivery and
    /// `probe` both go through here, so `probe` predicts it.
    pub(crate) async fn upgrade(
        &self,
        client: Client<TcpStream>,
        hop: &Hop,
        rung: Rung,
        route: &Route<'_>,
    ) -> Result<Upgraded, Failure> {
        let stream = match client.starttls().await {
            Ok(Ok(stream)) => stream,
            Ok(Err((reply, plain))) => {
                plain.quit().await;
                let refused = format!("STARTTLS refused: {}", reply.summary());
                return Err(Failure::Handshake(refused));
            }
            Err(e) => return Err(Failure::Handshake(e.to_string())),
        };
        let (tls, checks) = self
            .handshake(stream, hop, rung, route)
            .await
            .map_err(Failure::Handshake)?;
        let negotiated = Negotiated::of(tls.get_ref().1);
        let chain: Vec<CertificateDer<'static>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .to_vec();
        let mut client = Client::new(tls);
        client.timeout_scale = self.timeout_scale;
        let what = match client.hello(&self.hostname).await {
            Ok(reply) if reply.is_positive() => {
                return Ok(Upgraded {
                    client,
                    negotiated,
                    chain,
                    checks,
                })
            }
            Ok(reply) => {
                let refused = format!("EHLO refused: {}", reply.summary());
                client.quit().await;
                refused
            }
            Err(e) => format!("EHLO: {e}"),
        };
        Err(Failure::RefusedAfterTls(format!(
            "{} {}, then {what}",
            negotiated.version, negotiated.cipher
        )))
    }

    /// The TLS handshake of one rung, then what the certificate is worth.
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
        hop: &Hop,
        rung: Rung,
        route: &Route<'_>,
    ) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Checks), String> {
        let minimum = route
            .connector
            .map_or(TlsVersion::Tls12, |c| c.min_tls_version);
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = match (rung, minimum) {
            (Rung::Modern, TlsVersion::Tls12) => {
                vec![&rustls::version::TLS13, &rustls::version::TLS12]
            }
            (Rung::Modern, TlsVersion::Tls13) => vec![&rustls::version::TLS13],
            (_, TlsVersion::Tls12) => vec![&rustls::version::TLS12],
            (_, TlsVersion::Tls13) => return Err("TLS 1.2 is below min_tls_version".into()),
        };
        let identity = match route.connector {
            Some(c) if c.client_cert => self.identity.as_deref(),
            _ => None,
        };
        let config = tls_config(&versions, identity).map_err(|e| format!("TLS setup: {e}"))?;
        let name = match &hop.host {
            Host::Name(name) => {
                ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?
            }
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
        };
        let connect = tokio_rustls::TlsConnector::from(config).connect(name, stream);
        let tls = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(format!("handshake: {}", crate::tls::reason::io_reason(&e))),
            Err(_) => return Err(format!("handshake stalled past {:?}", self.connect_timeout)),
        };
        let chain: Vec<CertificateDer<'static>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .unwrap_or_default()
            .to_vec();
        let checks = route.checks(&chain, &hop.host);
        Ok((tls, checks))
    }
}

/// A session upgraded to TLS on one rung, its EHLO answered.
pub(crate) struct Upgraded {
    pub(crate) client: Client<TlsStream>,
    pub(crate) negotiated: Negotiated,
    /// The server's certificates, leaf first.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) checks: Checks,
}
