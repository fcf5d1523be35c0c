//! `varco metadata --export DIR`: what a Region sends AgID to register its SP entities, as one
//! folder: every entity's signed SPID and CIE metadata (the SP of `[sp]`, and in aggregator mode
//! each comune), the list of services with the level and attributes each asks for (AgID asks
//! aggregators for it), and a `SHA256SUMS` manifest signed with the SP key.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use policies::{Access, Snapshot};

use crate::error::{Error, Result};
use crate::runtime::Identity;

/// What was written.
#[derive(Debug)]
pub struct Exported {
    /// Every file, relative to the folder, in the manifest's order.
    pub files: Vec<PathBuf>,
}

/// Writes the export of `snapshot` into `dir` (created if missing; files of an earlier export
/// with the same names are replaced).
pub fn export(snapshot: &Snapshot, identity: &Identity, dir: &Path) -> Result<Exported> {
    let config = &snapshot.config;
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![
        ("spid/sp.xml".into(), identity.metadata_spid.to_vec()),
        ("cie/sp.xml".into(), identity.metadata_cie.to_vec()),
    ];
    if config.sp.mode.aggregator().is_some() {
        for comune in &snapshot.comuni {
            for (folder, profile) in [
                ("spid", idp_bridge::Profile::Spid),
                ("cie", idp_bridge::Profile::Cie),
            ] {
                let xml = idp_bridge::signed_metadata(
                    config,
                    &identity.keys,
                    profile,
                    idp_bridge::MetadataOf::Comune(comune),
                )
                .map_err(|e| Error::Identity(vec![e]))?
                .unwrap_or_default();
                files.push((
                    format!("{folder}/{}.xml", comune.ipa_code.as_str()).into(),
                    xml.into_bytes(),
                ));
            }
        }
    }
    files.push(("services.csv".into(), services_csv(snapshot).into_bytes()));

    let write = |path: &Path, bytes: &[u8]| {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&full, bytes)
    };
    let io = |e: std::io::Error| Error::Export {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let mut manifest = String::new();
    for (path, bytes) in &files {
        write(path, bytes).map_err(io)?;
        let _ = writeln!(
            manifest,
            "{}  {}",
            idp_bridge::to_hex(&sha2::Digest::finalize(
                <sha2::Sha256 as sha2::Digest>::new_with_prefix(bytes)
            )),
            path.display()
        );
    }
    let signature = sign(identity, manifest.as_bytes()).map_err(|e| Error::Export {
        dir: dir.to_path_buf(),
        reason: format!("cannot sign SHA256SUMS: {e}"),
    })?;
    let cert_pem = std::fs::read(&config.sp.cert).map_err(io)?;
    write(Path::new("SHA256SUMS"), manifest.as_bytes()).map_err(io)?;
    write(Path::new("SHA256SUMS.sig"), &signature).map_err(io)?;
    write(Path::new("sp.crt"), &cert_pem).map_err(io)?;
    let mut names: Vec<PathBuf> = files.into_iter().map(|(p, _)| p).collect();
    names.extend([
        "SHA256SUMS".into(),
        "SHA256SUMS.sig".into(),
        "sp.crt".into(),
    ]);
    Ok(Exported { files: names })
}

/// An RSA-SHA256 (PKCS#1 v1.5) signature by the SP key: `openssl dgst -sha256 -verify`.
fn sign(
    identity: &Identity,
    data: &[u8],
) -> std::result::Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), identity.keys.key())?;
    signer.update(data)?;
    signer.sign_to_vec()
}

/// One line per service that needs a login: the comune, the SP entity its logins are made for,
/// the service, its address, the SPID level, the AttributeConsumingService index it asks with
/// and the attributes it receives.
pub fn services_csv(snapshot: &Snapshot) -> String {
    let config = &snapshot.config;
    let public = &config.server.public_url.url;
    let port = public.port().map(|p| format!(":{p}")).unwrap_or_default();
    let mut out = String::from(
        "comune,ipa_code,entity_id,service,service_name,url,level,attribute_set,attributes\n",
    );
    for comune in &snapshot.comuni {
        let audience = config.audience_for(comune);
        let entity = config.entity_id(&audience);
        for s in &comune.services {
            let Access::Login(level) = s.access else {
                continue;
            };
            let set = config
                .sp
                .smallest_set_covering(&s.attributes)
                .map(|a| a.index.to_string())
                .unwrap_or_default();
            let attributes: Vec<&str> = s.attributes.iter().map(|a| a.as_str()).collect();
            let url = format!(
                "{}://{}{port}{}",
                public.scheme(),
                s.route.host,
                s.route.path_prefix
            );
            let fields = [
                comune.name.as_str(),
                comune.ipa_code.as_str(),
                &entity,
                s.id.as_str(),
                s.name.as_str(),
                &url,
                level.as_str(),
                &set,
                &attributes.join(" "),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
    }
    out
}

/// RFC 4180 quoting, and no formula a spreadsheet would run (`=`, `+`, `-`, `@` first).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}
