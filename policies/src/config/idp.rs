//! `[[idp]]`: the identity providers varco trusts, by their metadata files.

use std::path::{Path, PathBuf};

use super::existing_file;
use crate::reader::{At, Sink, TableReader};

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

pub(super) fn read_idp(
    mut t: TableReader<'_, '_>,
    sink: &mut Sink<'_>,
    base: &Path,
) -> Option<IdpConfig> {
    let metadata = t
        .str(sink, "metadata", "IdP metadata file")
        .map(|m| existing_file(sink, base, "metadata", m));
    let kind = match t.opt_str(sink, "kind") {
        None => Some(IdpKind::Spid),
        Some(At { value, .. }) if value == "spid" => Some(IdpKind::Spid),
        Some(At { value, .. }) if value == "cie" => Some(IdpKind::Cie),
        Some(At { value, span }) => {
            sink.error(
                &span,
                format!("[[idp]]: `kind` must be \"spid\" or \"cie\", found \"{value}\""),
            );
            None
        }
    };
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
