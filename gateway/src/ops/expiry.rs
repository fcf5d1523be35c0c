//! Every certificate varco holds or trusts, with when it expires: the SP's (and the next one,
//! during a rotation), each IdP's signing certificates, the federations' metadata-signing
//! certificates, the TLS certificates, the CAs and client certificates of upstreams, and the
//! CAs of CNS cards. The metric `varco_certificate_expiry_seconds` gives each one's `notAfter`
//! (for a CNS revocation list, `kind="cns_crl"`, its `nextUpdate`); `varco check` warns 30 days
//! ahead of a certificate's end, and when a revocation list is past its `nextUpdate` (lists are
//! issued for a day or a week: their end is routine, only a list not replaced in time is news).

use std::path::Path;

use chrono::{DateTime, Utc};
use openssl::x509::X509;

use crate::tls::{not_after, CertStore};

/// How long before an expiry `varco check` warns.
pub const WARN_DAYS: i64 = 30;

/// One certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertExpiry {
    /// `sp`, `sp_next`, `idp`, `federation`, `registry_ca`, `tls`, `upstream_ca`,
    /// `upstream_client`, `cns_ca`, `cns_crl`.
    pub kind: &'static str,
    /// Which one: a file, or an IdP's entityID.
    pub name: String,
    /// Its `notAfter`, Unix seconds.
    pub not_after: i64,
}

fn from_files<'a>(
    kind: &'static str,
    paths: impl Iterator<Item = &'a Path>,
    out: &mut Vec<CertExpiry>,
) {
    for p in paths {
        let Ok(pem) = std::fs::read(p) else { continue };
        for c in X509::stack_from_pem(&pem).unwrap_or_default() {
            if let Some(t) = not_after(&c) {
                out.push(CertExpiry {
                    kind,
                    name: p.display().to_string(),
                    not_after: t,
                });
            }
        }
    }
}

/// Every certificate of `snapshot`'s configuration, of the SP `keys`, of the trusted `idps` and
/// of the TLS store.
pub fn certificates(
    snapshot: &policies::Snapshot,
    keys: &idp_bridge::SpKeys,
    idps: &idp_bridge::IdpRegistry,
    cns: Option<&idp_bridge::CnsTrust>,
    tls: Option<&CertStore>,
) -> Vec<CertExpiry> {
    let config = &snapshot.config;
    let mut out = Vec::new();
    if let Some(t) = not_after(keys.cert()) {
        out.push(CertExpiry {
            kind: "sp",
            name: config.sp.cert.display().to_string(),
            not_after: t,
        });
    }
    if let (Some(next), Some(path)) = (keys.next_cert(), &config.sp.next_cert) {
        if let Some(t) = not_after(next) {
            out.push(CertExpiry {
                kind: "sp_next",
                name: path.display().to_string(),
                not_after: t,
            });
        }
    }
    for idp in idps.iter() {
        for der in &idp.signing_certs {
            if let Some(t) = X509::from_der(der.der_data())
                .ok()
                .and_then(|c| not_after(&c))
            {
                out.push(CertExpiry {
                    kind: "idp",
                    name: idp.entity_id.clone(),
                    not_after: t,
                });
            }
        }
    }
    from_files(
        "federation",
        config
            .idps
            .iter()
            .filter_map(|i| i.federation_cert.as_deref())
            .chain(
                config
                    .idp_sources
                    .iter()
                    .map(|s| s.federation_cert.as_path()),
            ),
        &mut out,
    );
    from_files(
        "registry_ca",
        config.idp_sources.iter().filter_map(|s| s.ca.as_deref()),
        &mut out,
    );
    let services: Vec<&policies::Service> = snapshot.services().map(|(_, _, s)| s).collect();
    let mut upstream_cas: Vec<&Path> = services
        .iter()
        .filter_map(|s| s.upstream_tls.ca.as_deref())
        .collect();
    upstream_cas.sort();
    upstream_cas.dedup();
    from_files("upstream_ca", upstream_cas.into_iter(), &mut out);
    let mut clients: Vec<&Path> = services
        .iter()
        .filter_map(|s| s.upstream_tls.client.as_ref().map(|c| c.cert.as_path()))
        .collect();
    clients.sort();
    clients.dedup();
    from_files("upstream_client", clients.into_iter(), &mut out);
    for d in cns.map(idp_bridge::CnsTrust::dates).unwrap_or_default() {
        out.push(CertExpiry {
            kind: d.kind,
            name: d.name,
            not_after: d.at,
        });
    }
    if let Some(store) = tls {
        for (name, t) in &store.expiries {
            out.push(CertExpiry {
                kind: "tls",
                name: name.clone(),
                not_after: *t,
            });
        }
    }
    out
}

/// A line for each certificate that expires within [`WARN_DAYS`] of `now` (or has expired).
pub fn warnings(list: &[CertExpiry], now: DateTime<Utc>) -> Vec<String> {
    let mut lines: Vec<String> = list
        .iter()
        .filter(|c| match c.kind {
            "cns_crl" => c.not_after <= now.timestamp(),
            _ => c.not_after - now.timestamp() < WARN_DAYS * 86_400,
        })
        .map(|c| {
            let when = DateTime::<Utc>::from_timestamp(c.not_after, 0)
                .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| c.not_after.to_string());
            let days = (c.not_after - now.timestamp()).div_euclid(86_400);
            if c.kind == "cns_crl" {
                format!(
                    "warning: CNS revocation list {} was to be replaced by {when}: cards of its CA are refused until a current one is in place",
                    c.name
                )
            } else if c.not_after <= now.timestamp() {
                format!(
                    "warning: {} certificate {} expired on {when}",
                    c.kind, c.name
                )
            } else {
                format!(
                    "warning: {} certificate {} expires on {when} (in {days} days)",
                    c.kind, c.name
                )
            }
        })
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: &'static str, name: &str, not_after: i64) -> CertExpiry {
        CertExpiry {
            kind,
            name: name.into(),
            not_after,
        }
    }

    #[test]
    fn only_what_expires_within_thirty_days_is_warned_about() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("now");
        let day = 86_400;
        let list = [
            at("sp", "keys/sp.crt", now.timestamp() + 90 * day),
            at("tls", "tls/a.pem", now.timestamp() + 12 * day + 3600),
            at("idp", "https://idp.example", now.timestamp() - day),
            at(
                "federation",
                "keys/agid.pem",
                now.timestamp() + 30 * day + 1,
            ),
            // A revocation list is news only once it is past its next update.
            at("cns_crl", "cns/current.crl", now.timestamp() + day),
            at("cns_crl", "cns/stale.crl", now.timestamp() - 60),
        ];
        let w = warnings(&list, now);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].starts_with("warning: CNS revocation list cns/stale.crl was to be replaced by "),
            "{w:?}"
        );
        let w = &w[1..];
        assert!(
            w[0].starts_with("warning: idp certificate https://idp.example expired on "),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("warning: tls certificate tls/a.pem expires on ")
                && w[1].ends_with("(in 12 days)"),
            "{w:?}"
        );
    }
}
