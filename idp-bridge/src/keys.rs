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
        })
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
