//! HTTPS terminated by varco (`[server.tls]`): the certificates by host name, chosen during the
//! handshake from the client's SNI, swapped atomically when the files change (a reload, SIGHUP)
//! without touching open connections; TLS 1.2 at least with Mozilla's "intermediate" ciphers;
//! HSTS on every HTTPS answer. The handshake for `[cns] host`, and no other, asks the browser for
//! a CNS card's certificate ([`CardPresented`]).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::tls::ext;
use pingora::tls::pkey::{PKey, Private};
use pingora::tls::ssl::{NameType, SslRef, SslVerifyMode, SslVersion};
use pingora::tls::x509::{X509Name, X509};
use policies::{CertFiles, TlsConfig};

use crate::error::{Error, Result};

/// One certificate chain (leaf first) with its key.
#[derive(Debug)]
pub(crate) struct Keyed {
    chain: Vec<X509>,
    key: PKey<Private>,
}

/// A certificate's `notAfter` in Unix seconds.
pub(crate) fn not_after(cert: &openssl::x509::X509Ref) -> Option<i64> {
    idp_bridge::cns::unix_seconds(cert.not_after())
}

/// A certificate chain (leaf first) and its key, checked to belong together.
pub(crate) fn load_pair(files: &CertFiles) -> Result<(Vec<X509>, PKey<Private>)> {
    Keyed::load(files).map(|k| (k.chain, k.key))
}

impl Keyed {
    fn load(files: &CertFiles) -> Result<Self> {
        let bad = |what: &str, path: &std::path::Path, reason: String| Error::Tls {
            path: path.to_path_buf(),
            reason: format!("{what}: {reason}"),
        };
        let pem = std::fs::read(&files.cert)
            .map_err(|e| bad("cannot read", &files.cert, e.to_string()))?;
        let chain = X509::stack_from_pem(&pem)
            .map_err(|e| bad("not a PEM certificate chain", &files.cert, e.to_string()))?;
        let Some(leaf) = chain.first() else {
            return Err(bad("no certificate in it", &files.cert, String::new()));
        };
        let key_pem =
            std::fs::read(&files.key).map_err(|e| bad("cannot read", &files.key, e.to_string()))?;
        let key = PKey::private_key_from_pem(&key_pem)
            .map_err(|e| bad("not a PEM private key", &files.key, e.to_string()))?;
        let matches = leaf
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(bad(
                "is not the key of",
                &files.key,
                files.cert.display().to_string(),
            ));
        }
        Ok(Self { chain, key })
    }

    /// The leaf's `notAfter`, Unix seconds.
    pub(crate) fn not_after(&self) -> Option<i64> {
        not_after(self.chain.first()?)
    }
}

/// Every certificate of `[server.tls]`, by host name.
#[derive(Debug)]
pub struct CertStore {
    exact: HashMap<String, Arc<Keyed>>,
    /// `*.example.org` → "example.org".
    wildcard: HashMap<String, Arc<Keyed>>,
    default: Arc<Keyed>,
    /// (file, notAfter) of each certificate, for the expiry metric.
    pub(crate) expiries: Vec<(String, i64)>,
    /// The CNS login's host, whose handshake asks for a client certificate.
    client_auth: Option<ClientAuth>,
}

/// `[cns] host`, with the card CAs' names the certificate request lists (browsers offer only
/// certificates of those issuers).
struct ClientAuth {
    host: String,
    cas: Vec<X509Name>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("host", &self.host)
            .field("cas", &self.cas.len())
            .finish()
    }
}

/// What the handshake for `[cns] host` received: the browser's certificate chain, DER, its own
/// first (empty when it sent none). Not verified here: only that the browser holds the first
/// one's key, which the handshake proved. At most [`idp_bridge::cns::MAX_CHAIN`] + 1 are kept,
/// so that a longer chain is still refused as one.
#[derive(Debug)]
pub(crate) struct CardPresented {
    pub(crate) chain: Vec<Vec<u8>>,
}

impl CertStore {
    /// Loads and checks every file (each key must belong to its certificate); `cns`, when
    /// configured, makes its host's handshakes ask for a card.
    pub(crate) fn load(config: &TlsConfig, cns: Option<&idp_bridge::CnsTrust>) -> Result<Self> {
        let default = Arc::new(Keyed::load(&config.default)?);
        let mut expiries = Vec::new();
        if let Some(t) = default.not_after() {
            expiries.push((config.default.cert.display().to_string(), t));
        }
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in &config.certs {
            let k = Arc::new(Keyed::load(&c.files)?);
            if let Some(t) = k.not_after() {
                expiries.push((c.files.cert.display().to_string(), t));
            }
            for h in &c.hosts {
                match h.strip_prefix("*.") {
                    Some(domain) => wildcard.insert(domain.to_string(), k.clone()),
                    None => exact.insert(h.clone(), k.clone()),
                };
            }
        }
        let client_auth = cns.map(|t| ClientAuth {
            host: t.config.host.clone(),
            cas: t
                .ca_subjects()
                .filter_map(|n| pingora::tls::x509::X509NameRef::to_owned(n).ok())
                .collect(),
        });
        Ok(Self {
            exact,
            wildcard,
            default,
            expiries,
            client_auth,
        })
    }

    /// Whether the certificate served for `host` names it (a subject alternative name, exact or
    /// a one-label wildcard): a browser refuses one that does not.
    pub fn covers(&self, host: &str) -> bool {
        let Some(leaf) = self.pick(Some(host)).chain.first() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        leaf.subject_alt_names().is_some_and(|names| {
            names.iter().filter_map(|n| n.dnsname()).any(|n| {
                let n = n.trim_end_matches('.').to_ascii_lowercase();
                match n.strip_prefix("*.") {
                    Some(domain) => host
                        .split_once('.')
                        .is_some_and(|(label, parent)| !label.is_empty() && parent == domain),
                    None => n == host,
                }
            })
        })
    }

    /// The CNS login's client authentication, if `server_name` is its host.
    fn client_auth_for(&self, server_name: Option<&str>) -> Option<&ClientAuth> {
        let ca = self.client_auth.as_ref()?;
        let name = server_name?.trim_end_matches('.');
        name.eq_ignore_ascii_case(&ca.host).then_some(ca)
    }

    /// The certificate for `server_name` (the client's SNI), or the default.
    pub(crate) fn pick(&self, server_name: Option<&str>) -> &Arc<Keyed> {
        let Some(name) = server_name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) else {
            return &self.default;
        };
        if let Some(k) = self.exact.get(&name) {
            return k;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

/// Checks `[server.tls]`'s certificates and keys, as `varco check` does.
pub fn check(
    config: &policies::Config,
    cns: Option<&idp_bridge::CnsTrust>,
) -> Result<Option<CertStore>> {
    config
        .server
        .tls
        .as_ref()
        .map(|t| CertStore::load(t, cns))
        .transpose()
}

/// The handshake's certificate callback, over the store that reloads swap.
#[derive(Debug)]
pub struct SniCerts {
    store: ArcSwap<CertStore>,
}

impl SniCerts {
    /// The certificates of `config` (and the CNS host's client authentication).
    pub(crate) fn load(config: &TlsConfig, cns: Option<&idp_bridge::CnsTrust>) -> Result<Self> {
        Ok(Self {
            store: ArcSwap::from_pointee(CertStore::load(config, cns)?),
        })
    }

    /// Swaps `store` in (loaded with [`CertStore::load`]); handshakes in progress finish
    /// with the certificate they picked.
    pub(crate) fn swap(&self, store: CertStore) {
        self.store.store(Arc::new(store));
    }

    /// The certificates serving now.
    pub(crate) fn current(&self) -> Arc<CertStore> {
        self.store.load_full()
    }
}

/// The callback pingora calls during each handshake: it holds the store behind an `Arc`.
pub(crate) struct Callback(pub(crate) Arc<SniCerts>);

#[async_trait]
impl TlsAccept for Callback {
    async fn certificate_callback(&self, ssl: &mut SslRef) {
        let store = self.0.store.load();
        let keyed = store.pick(ssl.servername(NameType::HOST_NAME));
        let Some(leaf) = keyed.chain.first() else {
            return;
        };
        // A failure here fails the handshake (no certificate), which the client reports.
        if let Err(e) = ext::ssl_use_certificate(ssl, leaf) {
            tracing::error!(error = %e, "TLS: cannot use the certificate");
            return;
        }
        for c in &keyed.chain[1..] {
            if let Err(e) = ext::ssl_add_chain_cert(ssl, c) {
                tracing::error!(error = %e, "TLS: cannot add a chain certificate");
            }
        }
        if let Err(e) = ext::ssl_use_private_key(ssl, &keyed.key) {
            tracing::error!(error = %e, "TLS: cannot use the private key");
        }
        if let Some(ca) = store.client_auth_for(ssl.servername(NameType::HOST_NAME)) {
            // Ask, and accept whatever comes (or nothing): the handshake proves the browser
            // holds the key, and the login verifies the chain, so that a citizen whose card is
            // refused reads why on a page instead of a browser's TLS error.
            ssl.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
            if let Ok(mut names) = openssl::stack::Stack::new() {
                for n in &ca.cas {
                    if let Ok(n) = pingora::tls::x509::X509NameRef::to_owned(n) {
                        let _ = names.push(n);
                    }
                }
                ssl.set_client_ca_list(names);
            }
        }
    }

    async fn handshake_complete_callback(
        &self,
        ssl: &SslRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let store = self.0.store.load();
        store.client_auth_for(ssl.servername(NameType::HOST_NAME))?;
        let mut chain: Vec<Vec<u8>> = Vec::new();
        if let Some(leaf) = ssl.peer_certificate() {
            // On a server, the chain the peer sent leaves out its own certificate (skipped here
            // should a library put it in).
            let rest = ssl.peer_cert_chain().into_iter().flatten();
            for der in std::iter::once(&*leaf)
                .chain(rest)
                .filter_map(|c| c.to_der().ok())
            {
                if chain.len() > idp_bridge::cns::MAX_CHAIN {
                    break;
                }
                if chain.first() != Some(&der) {
                    chain.push(der);
                }
            }
        }
        Some(Arc::new(CardPresented { chain }))
    }
}

/// pingora's settings for the HTTPS listener: certificates from `certs`, TLS 1.2 and up, the
/// Mozilla "intermediate" cipher choice (pingora's default builder), HTTP/1.1.
pub(crate) fn settings(certs: Arc<SniCerts>) -> Result<pingora::listeners::tls::TlsSettings> {
    let mut s = pingora::listeners::tls::TlsSettings::with_callbacks(Box::new(Callback(certs)))
        .map_err(|e| Error::Listen {
            addr: "[server.tls]".into(),
            reason: e.to_string(),
        })?;
    s.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| Error::Listen {
            addr: "[server.tls]".into(),
            reason: e.to_string(),
        })?;
    Ok(s)
}
