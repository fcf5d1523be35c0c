//! Loading: the main file, then every `*.toml` in the policies directory, then the checks that
//! span files, then the compiled [`Snapshot`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::{read_config, Config};
use crate::diag::{Diagnostic, Diagnostics, SourceFile};
use crate::error::{Error, Result};
use crate::policy::{read_comune, Comune, Service};
use crate::reader::{parse, Sink, TableReader};
use crate::route::{shadows_portal, RouteTable, ServiceRef};

/// An immutable, validated view of the whole configuration, ready to serve.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Main configuration.
    pub config: Config,
    /// Every comune, sorted by IPA code.
    pub comuni: Vec<Comune>,
    /// Compiled routes.
    pub routes: RouteTable,
    /// Every file read (main file and policy files), for reload watching.
    pub files: Vec<PathBuf>,
}

impl Snapshot {
    /// The comune and service behind a route.
    pub fn service(&self, r: ServiceRef) -> Option<(&Comune, &Service)> {
        let comune = self.comuni.get(r.comune as usize)?;
        Some((comune, comune.services.get(r.service as usize)?))
    }

    /// Every service with its reference.
    pub fn services(&self) -> impl Iterator<Item = (ServiceRef, &Comune, &Service)> {
        self.comuni.iter().enumerate().flat_map(|(ci, c)| {
            c.services.iter().enumerate().map(move |(si, s)| {
                (
                    ServiceRef {
                        comune: ci as u32,
                        service: si as u32,
                    },
                    c,
                    s,
                )
            })
        })
    }
}

fn read_file(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<SourceFile> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(SourceFile::new(path, text)),
            Err(e) => {
                let f = SourceFile::new(path, String::from_utf8_lossy(e.as_bytes()).into_owned());
                let at = e.utf8_error().valid_up_to();
                diags.push(f.diag(&(at..at), "file is not valid UTF-8"));
                None
            }
        },
        Err(e) => {
            diags.push(Diagnostic {
                path: path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!("cannot read file: {e}"),
            });
            None
        }
    }
}

/// Policy files of a directory: `*.toml`, not hidden (editors' temporary files), sorted.
fn policy_files(dir: &Path, config_path: &Path, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic {
                path: config_path.to_path_buf(),
                line: 1,
                col: 1,
                message: format!(
                    "policies directory \"{}\" cannot be read: {e}",
                    dir.display()
                ),
            });
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "toml")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
                && p.is_file()
        })
        .collect();
    files.sort();
    files
}

/// Reads and validates the main configuration at `config_path` and every policy file, reporting
/// all problems at once as [`Error::Invalid`].
pub fn load(config_path: &Path) -> Result<Snapshot> {
    let mut diags = Vec::new();
    let Some(main) = read_file(config_path, &mut diags) else {
        return Err(Error::Invalid(Diagnostics::from_vec(diags)));
    };
    let Some(main_table) = parse(&main, &mut diags) else {
        return Err(Error::Invalid(Diagnostics::from_vec(diags)));
    };
    let (config, sp_ok) = {
        let mut sink = Sink {
            file: &main,
            diags: &mut diags,
        };
        read_config(
            config_path,
            TableReader::new(main_table.get_ref(), 0..0, "main configuration"),
            &mut sink,
        )
    };
    let portal_host = config.server.public_url.host.clone();

    let paths = policy_files(&config.policies_dir, config_path, &mut diags);
    let mut sources = Vec::with_capacity(paths.len());
    for p in &paths {
        if let Some(f) = read_file(p, &mut diags) {
            sources.push(f);
        }
    }
    // (file index, comune, spans)
    let mut read = Vec::with_capacity(sources.len());
    for (fi, file) in sources.iter().enumerate() {
        let Some(table) = parse(file, &mut diags) else {
            continue;
        };
        let mut sink = Sink {
            file,
            diags: &mut diags,
        };
        let root = TableReader::new(table.get_ref(), 0..0, "policy file");
        if let Some(c) = read_comune(root, &mut sink, sp_ok.then_some(&config.sp)) {
            read.push((fi, c));
        }
    }

    // Checks across files: codes and routes are unique; services keep off portal paths.
    read.sort_by(|a, b| a.1.comune.ipa_code.cmp(&b.1.comune.ipa_code));
    let mut routes: Vec<(String, String, ServiceRef, usize, Range<usize>)> = Vec::new();
    // Each host belongs to one comune: the first (in IPA order) whose file routes it. Another
    // comune's service there could make the owner's subtree public or take its citizens'
    // identity headers to its own back-end.
    let mut owners: std::collections::HashMap<&str, (usize, ServiceRef, Range<usize>)> =
        std::collections::HashMap::new();
    for (ci, (fi, rc)) in read.iter().enumerate() {
        let file = &sources[*fi];
        for (fj, other) in read.iter().take(ci) {
            if other.comune.ipa_code == rc.comune.ipa_code {
                diags.push(file.diag(
                    &rc.ipa_span,
                    format!(
                        "[comune]: IPA code \"{}\" is already used by {}",
                        rc.comune.ipa_code.as_str(),
                        sources[*fj].path.display()
                    ),
                ));
            }
            if other.comune.istat_code == rc.comune.istat_code {
                diags.push(file.diag(
                    &rc.istat_span,
                    format!(
                        "[comune]: ISTAT code \"{}\" is already used by {}",
                        rc.comune.istat_code.as_str(),
                        sources[*fj].path.display()
                    ),
                ));
            }
        }
        for (si, (service, spans)) in rc.comune.services.iter().zip(&rc.spans).enumerate() {
            let r = &service.route;
            if r.host == portal_host && shadows_portal(&r.match_prefix) {
                diags.push(file.diag(&spans.route, format!(
                    "service.route: path_prefix \"{}\" on the portal host would hide the portal's own pages (`/`, `/catalog`, `/assets/`); use a more specific prefix",
                    r.path_prefix
                )));
                continue;
            }
            if config.cns.as_ref().is_some_and(|c| c.host == r.host) {
                diags.push(file.diag(&spans.route, format!(
                    "service.route: host \"{}\" is [cns]'s `host`, which asks every browser for a certificate and serves only the CNS login; give the service another host",
                    r.host
                )));
                continue;
            }
            let shared = config.server.shared_hosts.contains(&r.host);
            let here = ServiceRef {
                comune: ci as u32,
                service: si as u32,
            };
            match owners.get(r.host.as_str()) {
                Some((ofi, owner, ospan)) if owner.comune != here.comune && !shared => {
                    let (line, col) = sources[*ofi].locate(ospan.start);
                    let oc = &read[owner.comune as usize].1.comune;
                    diags.push(file.diag(&spans.route, format!(
                        "service.route: host \"{}\" belongs to {} (service \"{}\" at {}:{line}:{col}); each host serves one comune, so that no comune can take over another's paths (a host shared on purpose is listed in [server] shared_hosts)",
                        r.host,
                        oc.name,
                        oc.services[owner.service as usize].id.as_str(),
                        sources[*ofi].path.display()
                    )));
                    continue;
                }
                Some(_) => {}
                None => {
                    owners.insert(r.host.as_str(), (*fi, here, spans.route.clone()));
                }
            }
            if let Some((_, _, owner, ofi, ospan)) = routes
                .iter()
                .find(|(h, p, ..)| *h == r.host && *p == r.match_prefix)
            {
                let (line, col) = sources[*ofi].locate(ospan.start);
                let os = &read[owner.comune as usize].1.comune.services[owner.service as usize];
                diags.push(file.diag(&spans.route, format!(
                    "service.route: host \"{}\" and path_prefix \"{}\" are already claimed by service \"{}\" at {}:{line}:{col}",
                    r.host, r.path_prefix, os.id.as_str(), sources[*ofi].path.display()
                )));
                continue;
            }
            routes.push((
                r.host.clone(),
                r.match_prefix.clone(),
                ServiceRef {
                    comune: ci as u32,
                    service: si as u32,
                },
                *fi,
                spans.route.clone(),
            ));
        }
    }

    if !diags.is_empty() {
        return Err(Error::Invalid(Diagnostics::from_vec(diags)));
    }
    let table = RouteTable::new(
        &portal_host,
        routes.into_iter().map(|(h, p, r, ..)| (h, p, r)),
    );
    let mut files = vec![config_path.to_path_buf()];
    files.extend(sources.iter().map(|s| s.path.clone()));
    Ok(Snapshot {
        config,
        comuni: read.into_iter().map(|(_, rc)| rc.comune).collect(),
        routes: table,
        files,
    })
}

/// Validates one policy file's text on its own: everything but the checks that need the main
/// configuration or the other files (attribute coverage, duplicate codes and routes). For editor
/// integrations and the fuzzer.
pub fn check_policy(path: &Path, text: &str) -> Result<Comune> {
    let file = SourceFile::new(path, text.to_string());
    let mut diags = Vec::new();
    let comune = parse(&file, &mut diags).and_then(|table| {
        let mut sink = Sink {
            file: &file,
            diags: &mut diags,
        };
        read_comune(
            TableReader::new(table.get_ref(), 0..0, "policy file"),
            &mut sink,
            None,
        )
    });
    match comune {
        Some(rc) if diags.is_empty() => Ok(rc.comune),
        _ => Err(Error::Invalid(Diagnostics::from_vec(diags))),
    }
}

/// Checks one main configuration file's text alone (`path` names it in diagnostics, and its
/// directory is where relative paths point): the configuration, or every problem found. The
/// policy files are not read.
pub fn check_config(path: &Path, text: &str) -> Result<Config> {
    let file = SourceFile::new(path, text.to_string());
    let mut diags = Vec::new();
    let config = parse(&file, &mut diags).map(|table| {
        let mut sink = Sink {
            file: &file,
            diags: &mut diags,
        };
        read_config(
            path,
            TableReader::new(table.get_ref(), 0..0, "main configuration"),
            &mut sink,
        )
        .0
    });
    match config {
        Some(c) if diags.is_empty() => Ok(c),
        _ => Err(Error::Invalid(Diagnostics::from_vec(diags))),
    }
}

#[cfg(test)]
mod tests;
