//! `[[idp]]`: the identity providers varco trusts, by their metadata files; `[[idp_source]]`:
//! sets of them from a federation's registry (an `EntitiesDescriptor` signed by its operator),
//! fetched and refreshed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::{duration, existing_file, is_loopback_host};
use crate::reader::{At, Sink, TableReader};

/// One `[[idp_source]]`: a registry of IdPs varco fetches, verifies and refreshes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpSourceConfig {
    /// Where the signed `EntitiesDescriptor` is (https; plain http on loopback only).
    pub url: Url,
    /// The certificate that must have signed it (AgID's metadata-signing certificate).
    pub federation_cert: PathBuf,
    /// SPID or CIE rules for every IdP in it.
    pub kind: IdpKind,
    /// How often it is fetched again (default 6 h).
    pub refresh: Duration,
    /// The last good copy, written at each successful fetch and read at start (so that varco
    /// starts with IdPs when the registry cannot be reached).
    pub cache: PathBuf,
    /// The only CA its HTTPS certificate may chain to, if set (else the system's).
    pub ca: Option<PathBuf>,
    /// How long a set without `validUntil` may be used after it was fetched (default 7 days;
    /// AgID's registry carries none).
    pub max_age: Duration,
}

/// One `[[idp]]`.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// Metadata file.
    pub metadata: PathBuf,
    /// SPID or CIE rules.
    pub kind: IdpKind,
    /// Certificate that must have signed the metadata, if set.
    pub federation_cert: Option<PathBuf>,
}

/// Which federation rules an IdP follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdpKind {
    /// SPID.
    Spid,
    /// CIE (ForceAuthn always, CIE attributes only).
    Cie,
    /// Neither: an OpenID Connect provider of its own (the Region's platform, a Keycloak), with
    /// its own button. Never a SAML IdP.
    Other,
}

/// `kind` of a SAML IdP (`[[idp]]`, `[[idp_source]]`): "spid" (the default) or "cie".
fn read_saml_kind(
    t: &mut TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    table: &str,
) -> Option<IdpKind> {
    match t.opt_str(sink, "kind") {
        None => Some(IdpKind::Spid),
        Some(At { value, .. }) if value == "spid" => Some(IdpKind::Spid),
        Some(At { value, .. }) if value == "cie" => Some(IdpKind::Cie),
        Some(At { value, span }) => {
            sink.error(
                &span,
                format!("{table}: `kind` must be \"spid\" or \"cie\", found \"{value}\""),
            );
            None
        }
    }
}

pub(super) fn read_idp_source(
    mut t: TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
    index: usize,
) -> Option<IdpSourceConfig> {
    let url = t
        .str(sink, "url", "the registry's URL (an EntitiesDescriptor signed by the federation)")
        .and_then(|At { value, span }| match Url::parse(&value) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => Some(u),
            Ok(u) if u.scheme() == "http" && u.host_str().is_some_and(is_loopback_host) => Some(u),
            Ok(_) => {
                sink.error(
                    &span,
                    format!("[[idp_source]]: `url` must be https (plain http only on loopback), found \"{value}\""),
                );
                None
            }
            Err(e) => {
                sink.error(&span, format!("[[idp_source]]: `url` is not a URL ({e}): \"{value}\""));
                None
            }
        });
    let federation_cert = t
        .str(
            sink,
            "federation_cert",
            "the certificate the registry is signed with (AgID's metadata-signing certificate)",
        )
        .map(|c| existing_file(sink, base, "federation_cert", c));
    let kind = read_saml_kind(&mut t, sink, "[[idp_source]]");
    let refresh = duration(&mut t, sink, "refresh").unwrap_or(Duration::from_secs(6 * 3600));
    let max_age = duration(&mut t, sink, "max_age").unwrap_or(Duration::from_secs(7 * 24 * 3600));
    let cache = match t.opt_str(sink, "cache") {
        Some(At { value, span }) if value.trim().is_empty() => {
            sink.error(&span, "[[idp_source]]: `cache` must be a file path");
            None
        }
        Some(c) => Some(base.join(c.value)),
        None => Some(base.join(format!(
            "state/idps/source-{index}-{}.xml",
            match kind {
                Some(IdpKind::Cie) => "cie",
                _ => "spid",
            }
        ))),
    };
    let ca = t
        .opt_str(sink, "ca")
        .map(|c| existing_file(sink, base, "ca", c));
    t.finish(sink);
    Some(IdpSourceConfig {
        url: url?,
        federation_cert: federation_cert?,
        kind: kind?,
        refresh,
        cache: cache?,
        ca,
        max_age,
    })
}

pub(super) fn read_idp(
    mut t: TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
) -> Option<IdpConfig> {
    let metadata = t
        .str(sink, "metadata", "IdP metadata file")
        .map(|m| existing_file(sink, base, "metadata", m));
    let kind = read_saml_kind(&mut t, sink, "[[idp]]");
    let federation_cert = t
        .opt_str(sink, "federation_cert")
        .map(|c| existing_file(sink, base, "federation_cert", c));
    t.finish(sink);
    Some(IdpConfig {
        metadata: metadata?,
        kind: kind?,
        federation_cert,
    })
}
