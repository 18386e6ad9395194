//! Where mail comes from and goes to: next hops (`host:port`), listen
//! addresses, client networks (CIDR) and DNS servers.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::DomainName;
use crate::config::domain::DomainError;

/// The host part of a `host:port`: a DNS name or an IP literal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Name(DomainName),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Host::Name(name) => write!(f, "{name}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A next hop: `mx.example.test:25`, `192.0.2.1:587`, `[2001:db8::1]:25`,
/// or a name alone (port 25). Brackets around a name are accepted, as
/// Postfix writes them; smarthosts are never looked up by MX anyway.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: Host,
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let help = || {
            format!("invalid host {text:?}: write \"name:port\", \"192.0.2.1:port\" or \"[2001:db8::1]:port\"")
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(help)?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(help)?),
            };
            (inside, port)
        } else if text.matches(':').count() > 1 {
            return Err(format!("{}; put IPv6 addresses in brackets", help()));
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = match port {
            None => 25,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(format!("invalid port in {text:?}: use 1 to 65535")),
            },
        };
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(host.parse().map_err(|e: DomainError| e.to_string())?),
        };
        Ok(HostPort { host, port })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A socket address to listen on; the port is required.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        text.parse().map(ListenAddr).map_err(|_| {
            format!("invalid listen address {text:?}: write an IP address and port, for example \"0.0.0.0:25\" or \"[::]:25\"")
        })
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`); a bare
/// address means that one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr(pub ipnet::IpNet);

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client reaching a dual-stack listener arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Cidr(ipnet::IpNet::from(ip)));
        }
        let net: ipnet::IpNet = text.parse().map_err(|_| {
            format!("invalid network {text:?}: write an address with a prefix length, for example \"10.0.0.0/8\" or \"2001:db8::/32\"")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "network {text:?} has host bits set: did you mean \"{}\"?",
                net.trunc()
            ));
        }
        Ok(Cidr(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A DNS server: an IP address with an optional port (53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nameserver(pub SocketAddr);

impl<'de> Deserialize<'de> for Nameserver {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Nameserver(SocketAddr::new(ip, 53)));
        }
        text.parse().map(Nameserver).map_err(|_| {
            de::Error::custom(format!(
                "invalid nameserver {text:?}: write an IP address, optionally with a port, for example \"127.0.0.1:5353\""
            ))
        })
    }
}
