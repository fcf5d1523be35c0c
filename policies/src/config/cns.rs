//! `[cns]`: login with the Carta Nazionale dei Servizi (the TS-CNS health card): a TLS client
//! certificate asked for on one host name of its own, verified against the CAs that issue the
//! cards and their revocation lists.

use std::path::{Path, PathBuf};

use super::existing_file;
use crate::identity::Level;
use crate::reader::{At, Sink, TableReader};

/// The name a CNS login is started with (`/.sso/login?idp=cns`): never a SAML entityID or an
/// OpenID issuer, which are URLs.
pub const CNS_PROVIDER: &str = "cns";

/// `[cns]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnsConfig {
    /// The host name whose TLS handshake asks for the card's certificate (lower case), e.g.
    /// `cns.servizi.example`: it must reach varco's `[server.tls]` listener. No other host asks.
    pub host: String,
    /// Files of the CAs that issue CNS cards (PEM, several certificates each allowed). Every
    /// certificate in them is trusted to issue cards.
    pub ca: Vec<PathBuf>,
    /// Their certificate revocation lists (PEM or DER), one at least for each CA; read again at
    /// every reload (a changed file reloads).
    pub crl: Vec<PathBuf>,
    /// The level a CNS login counts as.
    pub level: Level,
    /// The button's name on the choice page.
    pub display_name: String,
}

impl CnsConfig {
    /// Every file it reads.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.ca.iter().chain(&self.crl).map(PathBuf::as_path)
    }
}

pub(super) fn read_cns(
    mut t: TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
) -> Option<CnsConfig> {
    let span = t.span().clone();
    let host = t
        .str(
            sink,
            "host",
            "the host name that asks for the card (e.g. \"cns.servizi.example\")",
        )
        .and_then(|At { value, span }| {
            let name = value.trim_end_matches('.').to_ascii_lowercase();
            let valid = name.contains('.') && name.split('.').all(crate::codes::is_dns_label);
            if valid {
                Some(name)
            } else {
                sink.error(
                    &span,
                    format!("[cns]: `host` must be a host name, found \"{value}\""),
                );
                None
            }
        });
    let mut files = |key: &'static str, what: &str| -> Option<Vec<PathBuf>> {
        match t.opt_str_array(sink, key) {
            Some(At { value, .. }) if !value.is_empty() => Some(
                value
                    .into_iter()
                    .map(|f| existing_file(sink, base, key, f))
                    .collect(),
            ),
            Some(At { span, .. }) => {
                sink.error(&span, format!("[cns]: `{key}` must list {what}"));
                None
            }
            None => {
                sink.error(&span, format!("[cns]: `{key}` is required: {what}"));
                None
            }
        }
    };
    let ca = files("ca", "the files of the CAs that issue CNS cards");
    let crl = files(
        "crl",
        "the revocation lists of those CAs (one at least for each)",
    );
    let level = match t.str(
        sink,
        "level",
        "the level a CNS login counts as (\"SpidL2\" or \"SpidL3\")",
    ) {
        Some(At { value, span }) => match value.parse::<Level>() {
            Ok(l) => Some(l),
            Err(()) => {
                sink.error(
                    &span,
                    format!("[cns]: `level` must be \"SpidL1\", \"SpidL2\" or \"SpidL3\", found \"{value}\""),
                );
                None
            }
        },
        None => None,
    };
    let display_name = match t.opt_str(sink, "display_name") {
        Some(At { value, span }) if value.trim().is_empty() => {
            sink.error(&span, "[cns]: `display_name` must not be empty");
            None
        }
        Some(At { value, .. }) => Some(value),
        None => Some("Carta Nazionale dei Servizi (CNS)".to_string()),
    };
    t.finish(sink);
    Some(CnsConfig {
        host: host?,
        ca: ca?,
        crl: crl?,
        level: level?,
        display_name: display_name?,
    })
}
