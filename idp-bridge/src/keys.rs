//! The SP's signing key and certificate, loaded from the PEM files the configuration names.

use std::path::Path;

use base64::Engine as _;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::error::{Error, Result};

/// The SP key pair. The private key never prints.
pub struct SpKeys {
    key: PKey<Private>,
    key_der: Vec<u8>,
    cert: X509,
    cert_b64: String,
    /// The certificate of the next signing key, published beside the current one during a
    /// rotation (`[sp] next_cert`).
    next: Option<(X509, String)>,
}

impl std::fmt::Debug for SpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpKeys")
            .field("key", &"[redacted]")
            .field("cert_subject", &self.cert.subject_name())
            .finish()
    }
}

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::SpKey {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl SpKeys {
    /// Loads and checks the pair: an RSA key of at least 2048 bits, and a certificate that is
    /// valid now and carries that key's public half.
    pub fn load(key_path: &Path, cert_path: &Path) -> Result<Self> {
        let key_pem =
            std::fs::read(key_path).map_err(|e| refuse(key_path, format!("cannot read: {e}")))?;
        let key = PKey::private_key_from_pem(&key_pem)
            .map_err(|_| refuse(key_path, "not a PEM private key"))?;
        let rsa = key
            .rsa()
            .map_err(|_| refuse(key_path, "SPID requires an RSA key"))?;
        if rsa.size() * 8 < 2048 {
            return Err(refuse(
                key_path,
                format!(
                    "RSA key of {} bits; SPID requires at least 2048",
                    rsa.size() * 8
                ),
            ));
        }
        let cert_pem =
            std::fs::read(cert_path).map_err(|e| refuse(cert_path, format!("cannot read: {e}")))?;
        let cert =
            X509::from_pem(&cert_pem).map_err(|_| refuse(cert_path, "not a PEM certificate"))?;
        let public = cert
            .public_key()
            .map_err(|_| refuse(cert_path, "certificate without a usable public key"))?;
        if !public.public_eq(&key) {
            return Err(refuse(
                cert_path,
                format!(
                    "the certificate does not belong to the key {}",
                    key_path.display()
                ),
            ));
        }
        let now = openssl::asn1::Asn1Time::days_from_now(0)
            .map_err(|e| refuse(cert_path, e.to_string()))?;
        if cert.not_after() < now {
            return Err(refuse(
                cert_path,
                format!("certificate expired on {}", cert.not_after()),
            ));
        }
        if cert.not_before() > now {
            return Err(refuse(
                cert_path,
                format!("certificate not valid before {}", cert.not_before()),
            ));
        }
        let key_der = key
            .private_key_to_der()
            .map_err(|e| refuse(key_path, e.to_string()))?;
        let cert_der = cert
            .to_der()
            .map_err(|e| refuse(cert_path, e.to_string()))?;
        let cert_b64 = base64::engine::general_purpose::STANDARD.encode(cert_der);
        Ok(Self {
            key,
            key_der,
            cert,
            cert_b64,
            next: None,
        })
    }

    /// With the next signing certificate (`[sp] next_cert`): the metadata publishes it beside
    /// the current one, so that IdPs trust both before varco switches (a rotation).
    pub fn with_next(mut self, next_cert: Option<&Path>) -> Result<Self> {
        let Some(path) = next_cert else {
            return Ok(self);
        };
        let pem = std::fs::read(path).map_err(|e| refuse(path, format!("cannot read: {e}")))?;
        let cert = X509::from_pem(&pem).map_err(|_| refuse(path, "not a PEM certificate"))?;
        let rsa_bits = cert
            .public_key()
            .ok()
            .and_then(|k| k.rsa().ok())
            .map(|r| r.size() * 8);
        if rsa_bits.is_none_or(|b| b < 2048) {
            return Err(refuse(
                path,
                "the next certificate must carry an RSA key of at least 2048 bits",
            ));
        }
        let now =
            openssl::asn1::Asn1Time::days_from_now(0).map_err(|e| refuse(path, e.to_string()))?;
        if cert.not_after() < now {
            return Err(refuse(
                path,
                format!("certificate expired on {}", cert.not_after()),
            ));
        }
        if cert
            .public_key()
            .map(|p| p.public_eq(&self.key))
            .unwrap_or(false)
        {
            return Err(refuse(
                path,
                "next_cert is the current key's certificate: nothing to rotate to",
            ));
        }
        let der = cert.to_der().map_err(|e| refuse(path, e.to_string()))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        self.next = Some((cert, b64));
        Ok(self)
    }

    /// Every certificate the metadata publishes for signing: the current one, then the next.
    pub fn published_certs_b64(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.cert_b64.as_str()).chain(self.next.as_ref().map(|(_, b)| b.as_str()))
    }

    /// The current certificate.
    pub fn cert(&self) -> &X509 {
        &self.cert
    }

    /// The next certificate, during a rotation.
    pub fn next_cert(&self) -> Option<&X509> {
        self.next.as_ref().map(|(c, _)| c)
    }

    /// The private key, for signing requests.
    pub fn key(&self) -> &PKey<Private> {
        &self.key
    }

    /// DER of the private key, for xmlsec.
    pub(crate) fn key_der(&self) -> &[u8] {
        &self.key_der
    }

    /// The certificate, base64 DER (as in `ds:X509Certificate`).
    pub fn cert_b64(&self) -> &str {
        &self.cert_b64
    }
}
