//! The CNS login (Carta Nazionale dei Servizi, the TS-CNS health card): what a card's TLS client
//! certificate is checked against ([`CnsTrust`]: the CAs that issue cards and their revocation
//! lists, from `[cns]`), and what is read from it (the holder's fiscal code and names).
//!
//! The certificate reaches varco in its own TLS handshake on `[cns] host`, which proves that the
//! browser holds the card's key; nothing in it is trusted before [`CnsTrust::verify`] built a
//! chain to a configured CA at the login's time, found the card in no revocation list of a
//! current one, and read one valid fiscal code from its subject. The login door's flow is in
//! [`flow`].

pub(crate) mod flow;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use openssl::nid::Nid;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{
    CrlStatus, X509Crl, X509NameRef, X509PurposeId, X509Ref, X509StoreContext, X509,
};
use policies::{Attribute, CnsConfig, LoginFailure};

use crate::error::{Error, Result};

/// Certificates a browser may send for one login (the card's and its issuers').
pub const MAX_CHAIN: usize = 4;
/// Largest certificate read from a browser (a card's is about 1.5 KiB).
pub const MAX_CERTIFICATE: usize = 16 * 1024;

/// The CAs that issue CNS cards, with their revocation lists: read from `[cns]` at every load.
pub struct CnsTrust {
    /// As configured.
    pub config: CnsConfig,
    /// Every certificate of the `ca` files, each trusted to issue cards.
    anchors: Vec<Anchor>,
    /// The revocation lists, each checked at load against the CA that issued it.
    crls: Vec<Crl>,
}

struct Anchor {
    cert: X509,
    file: PathBuf,
}

struct Crl {
    crl: X509Crl,
    file: PathBuf,
    /// Index in `anchors` of its issuer.
    issuer: usize,
}

impl std::fmt::Debug for CnsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CnsTrust")
            .field("host", &self.config.host)
            .field("cas", &self.anchors.len())
            .field("crls", &self.crls.len())
            .finish()
    }
}

/// One date to watch: a CA certificate's `notAfter`, a revocation list's `nextUpdate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnsDate {
    /// `cns_ca` or `cns_crl`.
    pub kind: &'static str,
    /// The file, and the CA's subject.
    pub name: String,
    /// Unix seconds.
    pub at: i64,
}

/// Why a card's certificate was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CnsError {
    /// The browser sent no certificate.
    #[error("no client certificate was sent")]
    NoCertificate,
    /// The login it claims to finish is unknown, used, expired, or another browser's.
    #[error("no pending CNS login for this answer in this browser")]
    NoPendingLogin,
    /// What the browser sent is not a certificate chain varco reads.
    #[error("malformed certificate chain: {0}")]
    Malformed(String),
    /// No chain to a configured CA at the login's time (another issuer, expired, not for
    /// client authentication).
    #[error("certificate not accepted: {0}")]
    Untrusted(String),
    /// A revocation list of the chain's CA lists it.
    #[error("certificate serial {serial} is revoked by {issuer}")]
    Revoked {
        /// The certificate's serial number (hex).
        serial: String,
        /// The CA that revoked it.
        issuer: String,
    },
    /// The CA's revocation list is past its `nextUpdate`: nothing it issued is accepted until a
    /// current one is in place.
    #[error(
        "the revocation list of {issuer} expired at {next_update}: put a current one in place"
    )]
    StaleRevocationList {
        /// The CA.
        issuer: String,
        /// Its `nextUpdate`.
        next_update: String,
    },
    /// No revocation list of the chain's CA is configured.
    #[error("no revocation list of {issuer} is configured")]
    NoRevocationList {
        /// The CA.
        issuer: String,
    },
    /// The subject carries no single valid fiscal code, or lacks what the login asked for.
    #[error("certificate subject: {0}")]
    Subject(&'static str),
    /// `[cns]` is not configured (any more).
    #[error("CNS login is not configured")]
    NotConfigured,
}

impl CnsError {
    /// What the citizen is told.
    pub fn failure(&self) -> LoginFailure {
        match self {
            CnsError::NoCertificate => LoginFailure::NoCertificate,
            CnsError::NoPendingLogin => LoginFailure::Expired,
            CnsError::Revoked { .. } => LoginFailure::CertificateRevoked,
            CnsError::Malformed(_) | CnsError::Untrusted(_) | CnsError::Subject(_) => {
                LoginFailure::CertificateRefused
            }
            // varco's side cannot check the card now: not the citizen's fault.
            CnsError::StaleRevocationList { .. }
            | CnsError::NoRevocationList { .. }
            | CnsError::NotConfigured => LoginFailure::ProviderFailed,
        }
    }

    /// The HTTP status of the page.
    pub fn status(&self) -> u16 {
        match self {
            CnsError::StaleRevocationList { .. }
            | CnsError::NoRevocationList { .. }
            | CnsError::NotConfigured => 503,
            CnsError::NoPendingLogin => 400,
            _ => 403,
        }
    }
}

/// Who a verified card belongs to.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// The 16-character fiscal code, upper case.
    pub fiscal_code: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// SHA-256 of the card's certificate, hex: the subject's stable name at this card.
    pub certificate_digest: String,
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Holder([redacted])")
    }
}

/// What a CNS login can release.
pub(crate) const RELEASED: [Attribute; 3] = [
    Attribute::FiscalNumber,
    Attribute::Name,
    Attribute::FamilyName,
];

/// Whether a CNS login can give every attribute of `needs`.
pub fn releases(needs: policies::AttributeMask) -> bool {
    needs.iter().all(|a| RELEASED.contains(&a))
}

impl CnsTrust {
    /// Reads the CAs and revocation lists of `config`; each revocation list must be signed by
    /// one of the CAs, and each CA must have one.
    pub fn load(config: &CnsConfig) -> Result<Self> {
        let bad = |path: &Path, reason: String| Error::Cns {
            path: path.to_path_buf(),
            reason,
        };
        let mut anchors = Vec::new();
        for file in &config.ca {
            let pem = std::fs::read(file).map_err(|e| bad(file, format!("cannot read: {e}")))?;
            let certs = X509::stack_from_pem(&pem)
                .map_err(|e| bad(file, format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(bad(file, "no certificate in it".into()));
            }
            anchors.extend(certs.into_iter().map(|cert| Anchor {
                cert,
                file: file.clone(),
            }));
        }
        let mut crls = Vec::new();
        for file in &config.crl {
            let bytes = std::fs::read(file).map_err(|e| bad(file, format!("cannot read: {e}")))?;
            let crl = if bytes.starts_with(b"-----") {
                X509Crl::from_pem(&bytes)
            } else {
                X509Crl::from_der(&bytes)
            }
            .map_err(|e| {
                bad(
                    file,
                    format!("not a certificate revocation list (PEM or DER): {e}"),
                )
            })?;
            let issuer = anchors
                .iter()
                .position(|a| {
                    same_name(a.cert.subject_name(), crl.issuer_name())
                        && a.cert
                            .public_key()
                            .and_then(|k| crl.verify(&k))
                            .unwrap_or(false)
                })
                .ok_or_else(|| {
                    bad(
                        file,
                        format!(
                            "not signed by any CA in [cns] `ca` (its issuer is {})",
                            one_line(crl.issuer_name())
                        ),
                    )
                })?;
            crls.push(Crl {
                crl,
                file: file.clone(),
                issuer,
            });
        }
        if let Some((_, a)) = anchors
            .iter()
            .enumerate()
            .find(|(i, _)| !crls.iter().any(|c| c.issuer == *i))
        {
            return Err(bad(
                &a.file,
                format!(
                    "the CA {} has no revocation list in [cns] `crl`: without one no card it issued could be checked",
                    one_line(a.cert.subject_name())
                ),
            ));
        }
        Ok(Self {
            config: config.clone(),
            anchors,
            crls,
        })
    }

    /// The CAs' subjects, which the TLS handshake sends to the browser so that it offers only
    /// the card's certificate.
    pub fn ca_subjects(&self) -> impl Iterator<Item = &X509NameRef> {
        self.anchors.iter().map(|a| a.cert.subject_name())
    }

    /// Dates that stop CNS logins when they pass: each CA's `notAfter`, each revocation list's
    /// `nextUpdate`.
    pub fn dates(&self) -> Vec<CnsDate> {
        let mut out = Vec::new();
        for a in &self.anchors {
            if let Some(at) = unix_seconds(a.cert.not_after()) {
                out.push(CnsDate {
                    kind: "cns_ca",
                    name: format!("{} ({})", a.file.display(), one_line(a.cert.subject_name())),
                    at,
                });
            }
        }
        for c in &self.crls {
            if let Some(at) = c.crl.next_update().and_then(unix_seconds) {
                out.push(CnsDate {
                    kind: "cns_crl",
                    name: c.file.display().to_string(),
                    at,
                });
            }
        }
        out
    }

    /// Verifies a card's certificate chain (DER, the card's first) at `now`: a chain to a
    /// configured CA, valid for client authentication, in no current revocation list, with one
    /// valid fiscal code in its subject.
    pub(crate) fn verify(&self, chain: &[Vec<u8>], now: DateTime<Utc>) -> Result<Holder, CnsError> {
        let Some((leaf_der, rest)) = chain.split_first() else {
            return Err(CnsError::NoCertificate);
        };
        if chain.len() > MAX_CHAIN || chain.iter().any(|c| c.len() > MAX_CERTIFICATE) {
            return Err(CnsError::Malformed(
                "too many or too large certificates".into(),
            ));
        }
        let malformed = |e: openssl::error::ErrorStack| CnsError::Malformed(e.to_string());
        let leaf = X509::from_der(leaf_der).map_err(malformed)?;
        let mut untrusted = Stack::new().map_err(malformed)?;
        for der in rest {
            untrusted
                .push(X509::from_der(der).map_err(malformed)?)
                .map_err(malformed)?;
        }
        let verified = self.chain(&leaf, &untrusted, now)?;
        // Each certificate below the CA must be in no current revocation list of its issuer.
        for pair in verified.windows(2) {
            self.check_revocation(&pair[0], &pair[1], now)?;
        }
        let mut holder = holder_of(&leaf)?;
        holder.certificate_digest = {
            use sha2::Digest as _;
            crate::secret::to_hex(&sha2::Sha256::digest(leaf_der))
        };
        Ok(holder)
    }

    /// The chain OpenSSL builds from `leaf` to a configured CA, leaf first.
    fn chain(
        &self,
        leaf: &X509,
        untrusted: &openssl::stack::StackRef<X509>,
        now: DateTime<Utc>,
    ) -> Result<Vec<X509>, CnsError> {
        let internal = |e: openssl::error::ErrorStack| CnsError::Untrusted(e.to_string());
        let mut store = X509StoreBuilder::new().map_err(internal)?;
        for a in &self.anchors {
            store.add_cert(a.cert.clone()).map_err(internal)?;
        }
        // Every configured certificate is an anchor: a card CA's intermediate is trusted as
        // configured, whether or not its root is there too.
        store
            .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
            .map_err(internal)?;
        store
            .set_purpose(X509PurposeId::SSL_CLIENT)
            .map_err(internal)?;
        let mut param = X509VerifyParam::new().map_err(internal)?;
        param.set_time(now.timestamp() as _);
        store.set_param(&param).map_err(internal)?;
        let store = store.build();
        let mut ctx = X509StoreContext::new().map_err(internal)?;
        let outcome = ctx
            .init(&store, leaf, untrusted, |c| {
                let ok = c.verify_cert()?;
                let chain: Vec<X509> = c
                    .chain()
                    .map(|s| s.iter().map(ToOwned::to_owned).collect())
                    .unwrap_or_default();
                Ok((ok, c.error(), chain))
            })
            .map_err(internal)?;
        match outcome {
            (true, _, chain) if !chain.is_empty() => Ok(chain),
            (_, error, _) => Err(CnsError::Untrusted(error.error_string().to_string())),
        }
    }

    fn check_revocation(
        &self,
        cert: &X509,
        issuer: &X509,
        now: DateTime<Utc>,
    ) -> Result<(), CnsError> {
        let issuer_name = one_line(issuer.subject_name());
        let key = issuer
            .public_key()
            .map_err(|e| CnsError::Untrusted(e.to_string()))?;
        // The newest list this issuer signed.
        let crl = self
            .crls
            .iter()
            .filter(|c| {
                same_name(c.crl.issuer_name(), issuer.subject_name())
                    && c.crl.verify(&key).unwrap_or(false)
            })
            .max_by(|a, b| {
                a.crl
                    .last_update()
                    .compare(b.crl.last_update())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .ok_or_else(|| CnsError::NoRevocationList {
                issuer: issuer_name.clone(),
            })?;
        let stale = match crl.crl.next_update().and_then(unix_seconds) {
            Some(next) => next <= now.timestamp(),
            // A list without `nextUpdate` says nothing of when it stops being current.
            None => true,
        };
        if stale {
            return Err(CnsError::StaleRevocationList {
                issuer: issuer_name,
                next_update: crl
                    .crl
                    .next_update()
                    .map_or_else(|| "(none)".to_string(), |t| t.to_string()),
            });
        }
        match crl.crl.get_by_cert(cert) {
            CrlStatus::NotRevoked | CrlStatus::RemoveFromCrl(_) => Ok(()),
            CrlStatus::Revoked(_) => Err(CnsError::Revoked {
                serial: cert
                    .serial_number()
                    .to_bn()
                    .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
                    .unwrap_or_default(),
                issuer: issuer_name,
            }),
        }
    }
}

/// Whether two names are the same (their DER encodings, as OpenSSL's lookups compare them).
fn same_name(a: &X509NameRef, b: &X509NameRef) -> bool {
    matches!((a.to_der(), b.to_der()), (Ok(x), Ok(y)) if x == y)
}

/// `C=IT, O=…, CN=…`, for messages.
fn one_line(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_else(|_| "?".into());
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// An ASN.1 time (a certificate's `notAfter`, a list's `nextUpdate`) in Unix seconds.
pub fn unix_seconds(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// The one value of `nid` in `name`: `Ok(None)` when absent, an error when there are two.
fn single(name: &X509NameRef, nid: Nid) -> Result<Option<String>, CnsError> {
    let mut values = name.entries_by_nid(nid);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(CnsError::Subject(
            "an attribute of the subject appears twice",
        ));
    }
    let value = first
        .data()
        .to_string()
        .map_err(|_| CnsError::Subject("an attribute of the subject is not text"))?;
    Ok(Some(value.trim().to_string()))
}

/// The holder as the card's subject names them. TS-CNS subjects carry the fiscal code in the
/// common name, `<fiscal code>/<card number>.<hash>`; newer cards (ETSI EN 319 412-1) also in
/// `serialNumber`, `TINIT-<fiscal code>` (older ones `IT:<fiscal code>`). When both are there
/// they must agree.
pub(crate) fn holder_of(cert: &X509Ref) -> Result<Holder, CnsError> {
    let subject = cert.subject_name();
    // Another kind of serial number (a card's) is not a fiscal code.
    let from_serial = single(subject, Nid::SERIALNUMBER)?.and_then(|s| {
        let upper = s.to_ascii_uppercase();
        upper
            .strip_prefix("TINIT-")
            .or_else(|| upper.strip_prefix("IT:"))
            .map(str::to_string)
    });
    // `<fiscal code>/…`, or a common name that is a fiscal code and nothing else; a name
    // ("Mario Rossi") is not one.
    let from_cn = single(subject, Nid::COMMONNAME)?.and_then(|cn| match cn.split_once('/') {
        Some((code, _)) => Some(code.to_ascii_uppercase()),
        None => is_fiscal_code(&cn).then_some(cn),
    });
    let fiscal_code = match (from_serial, from_cn) {
        (Some(a), Some(b)) if a != b => {
            return Err(CnsError::Subject(
                "serialNumber and commonName name different fiscal codes",
            ))
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Err(CnsError::Subject("no fiscal code in the subject")),
    };
    if !is_fiscal_code(&fiscal_code) {
        return Err(CnsError::Subject("the subject's fiscal code is not valid"));
    }
    let name = |nid| {
        single(subject, nid)
            .map(|v| v.filter(|s| !s.is_empty() && !s.chars().any(char::is_control)))
    };
    Ok(Holder {
        fiscal_code,
        given_name: name(Nid::GIVENNAME)?,
        family_name: name(Nid::SURNAME)?,
        certificate_digest: String::new(),
    })
}

/// Whether `s` is a person's fiscal code: the layout of DM 23/12/1976 (letters for name and
/// month, digits or their omocodia letters elsewhere) and its check character.
pub fn is_fiscal_code(s: &str) -> bool {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    const OMOCODIA: &[u8] = b"LMNPQRSTUV";
    const MONTHS: &[u8] = b"ABCDEHLMPRST";
    let b = s.as_bytes();
    if b.len() != 16 {
        return false;
    }
    let digitish = |c: u8| c.is_ascii_digit() || OMOCODIA.contains(&c);
    let layout = b.iter().enumerate().all(|(i, &c)| match i {
        0..=5 | 11 | 15 => c.is_ascii_uppercase(),
        8 => MONTHS.contains(&c),
        6 | 7 | 9 | 10 | 12..=14 => digitish(c),
        _ => false,
    });
    if !layout {
        return false;
    }
    let sum: u32 = b[..15]
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let v = if c.is_ascii_digit() {
                c - b'0'
            } else {
                c - b'A'
            } as usize;
            if i % 2 == 0 {
                ODD[v]
            } else {
                v as u32
            }
        })
        .sum();
    b[15] == b'A' + (sum % 26) as u8
}

#[cfg(test)]
mod tests;
