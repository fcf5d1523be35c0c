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
    /// Province name.
    pub province: String,
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
                province: f[2].to_string(),
                cadastral: f[4].to_string(),
            })
        })
        .collect()
}

/// Typical on-line services of an Italian comune: (name, category, keywords).
const SERVICES: &[(&str, &str, &str)] = &[
    (
        "Pagamento TARI",
        "tributi-finanze-e-contravvenzioni",
        "rifiuti, tassa, pagopa",
    ),
    (
        "Iscrizione alla mensa scolastica",
        "educazione-e-formazione",
        "refezione, scuola, pasti",
    ),
    (
        "Certificato anagrafico",
        "anagrafe-e-stato-civile",
        "residenza, stato di famiglia",
    ),
    (
        "Cambio di residenza",
        "anagrafe-e-stato-civile",
        "trasloco, indirizzo",
    ),
    (
        "Permesso ZTL",
        "mobilita-e-trasporti",
        "traffico, centro storico, auto",
    ),
    (
        "Segnalazione disservizi",
        "ambiente",
        "buche, illuminazione, rifiuti abbandonati",
    ),
    (
        "Prenotazione sale comunali",
        "cultura-e-tempo-libero",
        "spazi, eventi",
    ),
    (
        "SUAP: avvio attività",
        "imprese-e-commercio",
        "scia, sportello unico, negozio",
    ),
    (
        "Pratiche edilizie",
        "catasto-e-urbanistica",
        "sue, permesso di costruire, cila",
    ),
    (
        "Iscrizione al nido",
        "educazione-e-formazione",
        "asilo, prima infanzia",
    ),
    (
        "Trasporto scolastico",
        "educazione-e-formazione",
        "scuolabus",
    ),
    (
        "Pagamento IMU",
        "tributi-finanze-e-contravvenzioni",
        "casa, imposta",
    ),
    (
        "Contravvenzioni",
        "tributi-finanze-e-contravvenzioni",
        "multe, verbali",
    ),
    (
        "Contrassegno disabili",
        "mobilita-e-trasporti",
        "parcheggio, invalidi",
    ),
    (
        "Bonus e contributi sociali",
        "salute-benessere-e-assistenza",
        "sostegno, isee",
    ),
    (
        "Assistenza domiciliare",
        "salute-benessere-e-assistenza",
        "anziani",
    ),
    (
        "Occupazione suolo pubblico",
        "autorizzazioni",
        "dehors, cantiere",
    ),
    ("Bandi di gara", "appalti-pubblici", "appalti, fornitori"),
    (
        "Biblioteca on-line",
        "cultura-e-tempo-libero",
        "libri, prestito",
    ),
    ("Albo dei volontari", "vita-lavorativa", "volontariato"),
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
    public_url: &str,
) -> std::io::Result<PathBuf> {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/keys");
    std::fs::copy(keys.join("sp.key"), dir.join("sp.key"))?;
    std::fs::copy(keys.join("sp.crt"), dir.join("sp.crt"))?;
    std::fs::copy(keys.join("audit.key"), dir.join("audit.key"))?;
    std::fs::create_dir_all(dir.join("keys"))?;
    std::fs::copy(keys.join("jwt.pem"), dir.join("keys/jwt.pem"))?;
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies)?;
    for c in tuscany() {
        let host = c.cadastral.to_ascii_lowercase();
        let ipa = format!("c_{host}");
        let mut text = format!(
            "[comune]\nname = \"Comune di {}\"\nipa_code = \"{ipa}\"\nistat_code = \"{}\"\nprovince = \"{}\"\n",
            c.name, c.istat, c.province
        );
        for i in 0..services {
            let level = ["public", "SpidL1", "SpidL2", "SpidL3"][i % 4];
            let attrs = if level == "public" {
                ""
            } else {
                "attributes = [\"fiscalNumber\", \"name\", \"familyName\"]\n"
            };
            let (name, category, keywords) = SERVICES[i % SERVICES.len()];
            let round = i / SERVICES.len();
            let name = if round == 0 {
                name.to_string()
            } else {
                format!("{name} ({})", round + 1)
            };
            let keywords = keywords
                .split(", ")
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(
                text,
                "\n[[service]]\nid = \"servizio-{i}\"\nname = \"{name}\"\ndescription = \"{name} del Comune di {}\"\ncategory = \"{category}\"\nkeywords = [{keywords}]\nroute = {{ host = \"{host}.toscana.test\", path_prefix = \"/servizio-{i}/\" }}\nupstream = \"{upstream}\"\nlevel = \"{level}\"\n{attrs}",
                c.name,
            );
        }
        std::fs::write(policies.join(format!("{ipa}.toml")), text)?;
    }
    let main = dir.join("varco.toml");
    std::fs::write(
        &main,
        format!(
            "[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\npublic_url = \"{public_url}\"\naccess_log = false\n\n\
[sp]\nentity_id = \"{public_url}/.sso/metadata\"\nkey = \"sp.key\"\ncert = \"sp.crt\"\naudit_key = \"audit.key\"\n\
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
            "https://portale.toscana.test",
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
        assert_eq!(c.province.as_deref(), Some("Lucca"));

        // The catalog of the whole region: every service listed, searchable, filterable.
        let cat = catalog::Catalog::build(&snap);
        assert_eq!((cat.comuni.len(), cat.services.len()), (273, 273 * 40));
        let (q, e) = catalog::Query::parse("q=mensa+scolastica&comune=c_b648", true);
        assert!(e.is_empty());
        let hits: Vec<_> = cat.select(&q).map(|s| s.id.as_str()).collect();
        assert_eq!(hits, ["c_b648/servizio-1", "c_b648/servizio-21"]);
        // "rifiuti": TARI (public) and the reports of abandoned waste (SpidL1), twice each.
        let (q, _) = catalog::Query::parse("q=rifiuti&level=public", true);
        assert!(cat.select(&q).all(|s| s.search_text().contains(" rifiuti")));
        assert_eq!(cat.select(&q).count(), 273 * 2);
        let (q, _) = catalog::Query::parse("q=Rifiùti", true);
        assert_eq!(cat.select(&q).count(), 273 * 4);
        let whole: serde_json::Value = serde_json::from_str(cat.json().text()).expect("JSON");
        assert_eq!(whole["total"], 273 * 40);
        assert_eq!(whole["comuni"].as_array().map(Vec::len), Some(273));
        let page = catalog::results(
            &catalog::Site::example(),
            &cat,
            &catalog::Query::parse("q=ztl", false).0,
            &[],
            None,
        );
        assert!(
            page.contains("546 servizi trovati, pagina 1 di 28."),
            "{}",
            page.split("role=\"status\"").nth(1).unwrap_or("")
        );
        assert_eq!(page.matches("<li><h2>").count(), catalog::PAGE_SIZE);
        let home = catalog::home(&catalog::Site::example(), &cat, None);
        assert!(home.contains("Provincia di Lucca") && home.contains("/catalog?comune=c_b648"));
    }
}
