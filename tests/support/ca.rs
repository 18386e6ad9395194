//! A test certificate authority built with rcgen: roots, intermediates and
//! leaves with any key type, written as PEM.
//!
//! Also compiled into the library's unit tests (`#[path]`), so it uses only
//! crates, never `tlsrelay` itself.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, RsaKeySize, SignatureAlgorithm,
};
use rustls::pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    P256,
    P384,
    Ed25519,
}

pub fn key_pair(key: Key) -> KeyPair {
    let rsa = |size| KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size);
    let pair = match key {
        Key::Rsa2048 => rsa(RsaKeySize::_2048),
        Key::Rsa3072 => rsa(RsaKeySize::_3072),
        Key::Rsa4096 => rsa(RsaKeySize::_4096),
        Key::P256 => KeyPair::generate_for(alg(key)),
        Key::P384 => KeyPair::generate_for(alg(key)),
        Key::Ed25519 => KeyPair::generate_for(alg(key)),
    };
    pair.expect("generate test key")
}

fn alg(key: Key) -> &'static SignatureAlgorithm {
    match key {
        Key::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Key::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Key::Ed25519 => &rcgen::PKCS_ED25519,
        _ => &rcgen::PKCS_RSA_SHA256,
    }
}

/// A certificate with its key, as PEM and DER.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

/// A CA (root or intermediate) that can sign further certificates.
pub struct TestCa {
    pub issued: Issued,
    issuer: Issuer<'static, KeyPair>,
}

/// Subject fields and validity of a certificate to make.
#[derive(Clone, Debug)]
pub struct Spec {
    pub names: Vec<String>,
    pub organization: Option<String>,
    pub unit: Option<String>,
    pub key: Key,
    /// Validity relative to now.
    pub not_before: Duration,
    pub not_after: Duration,
    /// Extended key usage: serverAuth and clientAuth (`true`, the default),
    /// or serverAuth alone, as public CAs issue server certificates now.
    pub client_auth: bool,
}

impl Spec {
    pub fn new(names: &[&str], key: Key) -> Self {
        Spec {
            names: names.iter().map(|n| n.to_string()).collect(),
            organization: None,
            unit: None,
            key,
            not_before: Duration::days(-1),
            not_after: Duration::days(365),
            client_auth: true,
        }
    }

    /// Extended key usage serverAuth only: not usable as a client certificate.
    pub fn server_auth_only(mut self) -> Self {
        self.client_auth = false;
        self
    }

    pub fn org(mut self, organization: &str, unit: &str) -> Self {
        self.organization = Some(organization.into());
        self.unit = Some(unit.into());
        self
    }

    pub fn valid(mut self, not_before: Duration, not_after: Duration) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::new(self.names.clone()).expect("test names");
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = self.names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, cn.as_str());
        }
        if let Some(o) = &self.organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, o.as_str());
        }
        if let Some(ou) = &self.unit {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, ou.as_str());
        }
        let now = OffsetDateTime::now_utc();
        params.not_before = now + self.not_before;
        params.not_after = now + self.not_after;
        params
    }
}

fn ca_params(cn: &str, key: Key) -> CertificateParams {
    let mut params = Spec::new(&[], key)
        .valid(Duration::days(-1), Duration::days(3650))
        .params();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "tlsrelay tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn issued(cert: rcgen::Certificate, key: &KeyPair) -> Issued {
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

impl TestCa {
    pub fn root(cn: &str, key: Key) -> TestCa {
        let params = ca_params(cn, key);
        let pair = key_pair(key);
        let cert = params.self_signed(&pair).expect("self-sign root");
        TestCa {
            issued: issued(cert, &pair),
            issuer: Issuer::new(params, pair),
        }
    }

    pub fn intermediate(&self, cn: &str, key: Key) -> TestCa {
        let params = ca_params(cn, key);
        let pair = key_pair(key);
        let cert = params
            .signed_by(&pair, &self.issuer)
            .expect("sign intermediate");
        TestCa {
            issued: issued(cert, &pair),
            issuer: Issuer::new(params, pair),
        }
    }

    /// A server+client leaf for `spec`, signed by this CA.
    pub fn leaf(&self, spec: &Spec) -> Issued {
        let pair = key_pair(spec.key);
        let cert = leaf_params(spec)
            .signed_by(&pair, &self.issuer)
            .expect("sign leaf");
        issued(cert, &pair)
    }

    pub fn pem(&self) -> &str {
        &self.issued.cert_pem
    }
}

fn leaf_params(spec: &Spec) -> CertificateParams {
    let mut params = spec.params();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if spec.client_auth {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    params
}

/// A self-signed leaf (not a CA), like `gen-cert` makes.
pub fn self_signed(spec: &Spec) -> Issued {
    let pair = key_pair(spec.key);
    let cert = leaf_params(spec)
        .self_signed(&pair)
        .expect("self-sign leaf");
    issued(cert, &pair)
}

/// Leaf, intermediate and root made in one go.
pub struct Chain {
    pub root: TestCa,
    pub intermediate: TestCa,
    pub leaf: Issued,
}

impl Chain {
    pub fn new(spec: &Spec) -> Chain {
        let root = TestCa::root("tlsrelay test root", Key::P256);
        let intermediate = root.intermediate("tlsrelay test intermediate", Key::P256);
        let leaf = intermediate.leaf(spec);
        Chain {
            root,
            intermediate,
            leaf,
        }
    }

    /// The PEM a server presents: leaf, then intermediate.
    pub fn served_pem(&self) -> String {
        format!("{}{}", self.leaf.cert_pem, self.intermediate.pem())
    }

    /// Leaf, intermediate and root, as some administrators paste them.
    pub fn full_pem(&self) -> String {
        format!("{}{}", self.served_pem(), self.root.pem())
    }
}
