//! Shared fixtures of the benchmarks and scale tests: a generated configuration with every comune
//! of Tuscany (ISTAT list in `examples/data/comuni-toscana.csv`) and N services each.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One comune of the ISTAT list.
#[derive(Debug, Clone)]
pub struct ComuneRow {
    /// 6-digit ISTAT code.
    pub istat: String,
    /// Name.
    pub name: String,
    /// Cadastral code (`B648`), which gives the IPA code `c_b648`.
    pub cadastral: String,
}

/// The 273 comuni of Tuscany.
pub fn tuscany() -> Vec<ComuneRow> {
    let csv = include_str!("../../examples/data/comuni-toscana.csv");
    csv.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() == 5).then(|| ComuneRow {
                istat: f[0].to_string(),
                name: f[1].to_string(),
                cadastral: f[4].to_string(),
            })
        })
        .collect()
}

const CATEGORIES: &[&str] = &[
    "anagrafe-e-stato-civile",
    "tributi-finanze-e-contravvenzioni",
    "educazione-e-formazione",
    "mobilita-e-trasporti",
    "ambiente",
    "cultura-e-tempo-libero",
    "imprese-e-commercio",
    "autorizzazioni",
];

/// Writes a main configuration and one policy file per Tuscan comune, each with `services`
/// services on host `<cadastral code>.toscana.test` (a quarter public, the rest SpidL1-3), all proxied to
/// `upstream`. Returns the main file's path.
pub fn write_tuscany(
    dir: &Path,
    services: usize,
    upstream: &str,
    listen: &str,
    admin: &str,
) -> std::io::Result<PathBuf> {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/keys");
    std::fs::copy(keys.join("sp.key"), dir.join("sp.key"))?;
    std::fs::copy(keys.join("sp.crt"), dir.join("sp.crt"))?;
    std::fs::create_dir_all(dir.join("keys"))?;
    std::fs::copy(keys.join("jwt.pem"), dir.join("keys/jwt.pem"))?;
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies)?;
    for c in tuscany() {
        let host = c.cadastral.to_ascii_lowercase();
        let ipa = format!("c_{host}");
        let mut text = format!(
            "[comune]\nname = \"Comune di {}\"\nipa_code = \"{ipa}\"\nistat_code = \"{}\"\n",
            c.name, c.istat
        );
        for i in 0..services {
            let level = ["public", "SpidL1", "SpidL2", "SpidL3"][i % 4];
            let attrs = if level == "public" {
                ""
            } else {
                "attributes = [\"fiscalNumber\", \"name\", \"familyName\"]\n"
            };
            let _ = write!(
                text,
                "\n[[service]]\nid = \"servizio-{i}\"\nname = \"Servizio {i} di {}\"\ndescription = \"Servizio numero {i}\"\ncategory = \"{}\"\nroute = {{ host = \"{host}.toscana.test\", path_prefix = \"/servizio-{i}/\" }}\nupstream = \"{upstream}\"\nlevel = \"{level}\"\n{attrs}",
                c.name,
                CATEGORIES[i % CATEGORIES.len()],
            );
        }
        std::fs::write(policies.join(format!("{ipa}.toml")), text)?;
    }
    let main = dir.join("varco.toml");
    std::fs::write(
        &main,
        format!(
            "[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\npublic_url = \"http://portale.toscana.test\"\naccess_log = false\n\n\
[sp]\nentity_id = \"http://portale.toscana.test/.sso/metadata\"\nkey = \"sp.key\"\ncert = \"sp.crt\"\n\
organization = {{ name = \"Regione Toscana\", display_name = \"Regione Toscana\", url = \"https://www.regione.toscana.it\" }}\n\
contact = {{ ipa_code = \"r_toscan\", email = \"spid@regione.toscana.it\", municipality = \"048017\" }}\n\n\
[[sp.attribute_set]]\nindex = 0\nname = \"Identità di base\"\nattributes = [\"fiscalNumber\", \"name\", \"familyName\"]\n"
        ),
    )?;
    Ok(main)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_of_tuscany_loads_and_routes() {
        let rows = tuscany();
        assert_eq!(rows.len(), 273);
        let dir = tempfile::tempdir().expect("tempdir");
        let main = write_tuscany(
            dir.path(),
            40,
            "http://127.0.0.1:9",
            "127.0.0.1:0",
            "127.0.0.1:1",
        )
        .expect("write");
        let snap = policies::load(&main).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(snap.comuni.len(), 273);
        assert_eq!(snap.services().count(), 273 * 40);
        let m = snap
            .routes
            .resolve("b648.toscana.test", "/servizio-39/x")
            .expect("valid");
        let policies::RouteMatch::Service(r) = m else {
            panic!("{m:?}")
        };
        let (c, s) = snap.service(r).expect("service");
        assert_eq!(
            (c.name.as_str(), s.id.as_str()),
            ("Comune di Capannori", "servizio-39")
        );
    }
}
