//! A resolver double that answers as a validating resolver would
//! (secure, insecure, bogus), for the in-process DANE and REQUIRETLS
//! routing tests; what it lacks is securely denied.

use std::collections::HashMap;
use std::net::IpAddr;

use tlsrelay::outbound::dane::{Checked, Security, TlsaAnswer, Validated};
use tlsrelay::outbound::route::{LookupError, MxAnswer, Resolve};

/// Answers as a validating resolver would; what it lacks is securely denied.
#[derive(Default)]
pub struct SignedDns {
    pub mx: HashMap<&'static str, Checked<MxAnswer>>,
    pub addresses: HashMap<&'static str, Checked<Vec<IpAddr>>>,
    pub tlsa: HashMap<&'static str, TlsaAnswer>,
}

pub fn secure<T>(value: T) -> Checked<T> {
    Ok(Validated {
        value,
        security: Security::Secure,
    })
}

pub fn insecure<T>(value: T) -> Checked<T> {
    Ok(Validated {
        value,
        security: Security::Insecure,
    })
}

fn unchecked<T: Clone>(name: &str, answer: Option<&Checked<T>>, none: T) -> Result<T, LookupError> {
    match answer {
        Some(Ok(answer)) => Ok(answer.value.clone()),
        Some(Err(fault)) => Err(LookupError {
            name: name.to_string(),
            reason: fault.to_string(),
        }),
        None => Ok(none),
    }
}

impl Resolve for SignedDns {
    async fn mx(&self, domain: &str) -> Result<MxAnswer, LookupError> {
        unchecked(domain, self.mx.get(domain), MxAnswer::NxDomain)
    }

    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        unchecked(host, self.addresses.get(host), Vec::new())
    }

    fn validates(&self) -> bool {
        true
    }

    async fn mx_checked(&self, domain: &str) -> Checked<MxAnswer> {
        let answer = self.mx.get(domain).cloned();
        answer.unwrap_or_else(|| secure(MxAnswer::NxDomain))
    }

    async fn addresses_checked(&self, host: &str) -> Checked<Vec<IpAddr>> {
        self.addresses
            .get(host)
            .cloned()
            .unwrap_or_else(|| secure(Vec::new()))
    }

    async fn tlsa(&self, host: &str, _port: u16) -> TlsaAnswer {
        let answer = self.tlsa.get(host).cloned();
        answer.unwrap_or(TlsaAnswer::SecureDenial)
    }
}
