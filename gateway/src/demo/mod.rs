//! `varco demo`: the whole flow on one laptop, in one process. The gateway with the three example
//! comuni, a DEMO SAML identity provider ([`idp`]) and a DEMO OpenID provider beside it ([`op`]),
//! and a back-end per comune that shows what it
//! received ([`backend`]). Keys and certificates are generated on first run in a state folder and
//! kept; the configuration is written there on every run (ports may change).
//!
//! Everything binds to loopback only, and the DEMO IdP exists only here: `varco run` has no
//! setting that starts it (its metadata in a `run` configuration would name an IdP that is not
//! running).

mod backend;
pub mod citizens;
mod idp;
mod op;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509Builder, X509NameBuilder, X509};

use crate::error::{Error, Result};

/// Where the demo listens and keeps its state.
#[derive(Debug, Clone)]
pub struct Options {
    /// State folder (keys, certificates, generated configuration, audit trail).
    pub state: PathBuf,
    /// The gateway (the portal's URL is `http://<listen>`).
    pub listen: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The DEMO IdP.
    pub idp: SocketAddr,
    /// The three comuni's back-ends.
    pub backends: [SocketAddr; 3],
}

const COMUNI: [(&str, &str, &str); 3] = [
    ("capannori", "Comune di Capannori", "c_b648"),
    ("lucca", "Comune di Lucca", "c_e715"),
    ("porcari", "Comune di Porcari", "c_g882"),
];

const POLICIES: [&str; 3] = [
    include_str!("../../../examples/policies/capannori.toml"),
    include_str!("../../../examples/policies/lucca.toml"),
    include_str!("../../../examples/policies/porcari.toml"),
];

/// An HTML page of the demo's helper servers: not cached, with `csp` when given.
/// What every demo page shows around its content: the kit's look (served by varco, and by the
/// DEMO IdP for its own origin), and a banner that says what the page is.
#[derive(Debug, Clone)]
struct Chrome {
    title: String,
    banner: String,
    tagline: &'static str,
    /// `demo-idp` (the IdP's warning colour) or `demo-backend`.
    header_class: &'static str,
    kit_version: &'static str,
    own_version: &'static str,
}

impl Chrome {
    fn new(title: &str, banner: &str, tagline: &'static str, header_class: &'static str) -> Self {
        Self {
            title: title.to_string(),
            banner: banner.to_string(),
            tagline,
            header_class,
            kit_version: catalog::assets::KIT_VERSION,
            own_version: catalog::assets::own_version(),
        }
    }
}

/// Renders a demo page (a template's formatting fails only on a value's `Display`).
fn render(t: &impl askama::Template) -> String {
    t.render()
        .unwrap_or_else(|e| format!("<!doctype html>\n<html lang=\"it\"><head><meta charset=\"utf-8\"><title>Errore</title></head><body><main><h1>Errore</h1><p>{}</p></main></body></html>\n", catalog::escape(&e.to_string())))
}

/// The demo's pages' CSP: the kit's styles, fonts and images from the page's own origin.
const DEMO_STYLES: &str = "style-src 'self'; font-src 'self' data:; img-src 'self' data:";

fn html_response(
    status: http::StatusCode,
    html: String,
    csp: Option<&str>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(html)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if let Some(v) = csp.and_then(|c| http::HeaderValue::from_str(c).ok()) {
        h.insert(http::header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// The CSP of the demo providers' own pages: their styles, forms that post to themselves.
fn own_pages_csp() -> String {
    format!(
        "default-src 'none'; {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        DEMO_STYLES
    )
}

#[derive(askama::Template)]
#[template(path = "demo_idp_refuse.html")]
struct RefuseTemplate<'a> {
    chrome: Chrome,
    why: &'a str,
}

/// A demo provider's page for a request it refuses.
fn refusal(
    chrome: Chrome,
    status: hyper::StatusCode,
    why: &str,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let html = render(&RefuseTemplate { chrome, why });
    html_response(status, html, Some(&own_pages_csp()))
}

/// One test citizen on a demo provider's login page (`demo_choose_citizen.html`).
struct CitizenChoice {
    index: usize,
    label: String,
}

/// One level on a demo provider's login page.
struct LevelChoice {
    value: &'static str,
    label: &'static str,
    checked: bool,
}

/// Every test citizen, as the login pages list them.
fn citizen_choices() -> Vec<CitizenChoice> {
    citizens::CITIZENS
        .iter()
        .enumerate()
        .map(|(index, c)| CitizenChoice {
            index,
            label: format!(
                "{} {} · nato/a a {} il {} · {}",
                c.name,
                c.family_name,
                c.birthplace_name,
                c.birth,
                c.fiscal_number()
            ),
        })
        .collect()
}

/// `levels` to grant, `checked` chosen; named after SPID (and CIE) when `spid`.
fn level_choices(
    levels: &[policies::Level],
    checked: policies::Level,
    spid: bool,
) -> Vec<LevelChoice> {
    use policies::Level;
    levels
        .iter()
        .map(|l| LevelChoice {
            value: l.as_str(),
            label: match (l, spid) {
                (Level::SpidL1, true) => "SPID livello 1 (password)",
                (Level::SpidL2, true) => "SPID livello 2 (password e codice)",
                (Level::SpidL3, true) => "SPID livello 3 / CIE (dispositivo)",
                (Level::SpidL1, false) => "livello 1 (password)",
                (Level::SpidL2, false) => "livello 2 (password e codice)",
                (Level::SpidL3, false) => "livello 3 (dispositivo)",
            },
            checked: *l == checked,
        })
        .collect()
}

fn demo_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Demo(format!("{what}: {e}"))
}

/// An RSA-2048 key and a self-signed certificate (10 years), PEM.
fn self_signed(common_name: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let make = || -> std::result::Result<(Vec<u8>, Vec<u8>), openssl::error::ErrorStack> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("C", "IT")?;
        name.append_entry_by_text("O", "varco demo (non valido)")?;
        name.append_entry_by_text("CN", common_name)?;
        let name = name.build();
        let mut b = X509Builder::new()?;
        b.set_version(2)?;
        let serial = openssl::bn::BigNum::from_u32(rand_u32())?.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let (from, to) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(3650)?);
        b.set_not_before(&from)?;
        b.set_not_after(&to)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok((key.private_key_to_pem_pkcs8()?, b.build().to_pem()?))
    };
    make().map_err(|e| demo_error("cannot generate a key", e))
}

fn rand_u32() -> u32 {
    u32::from_str_radix(&idp_bridge::random_token(4, false), 16).unwrap_or(1) | 1
}

/// Writes a private key once, readable by its owner only from the start.
fn write_once(path: &Path, make: impl FnOnce() -> Result<Vec<u8>>) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if path.exists() {
        return Ok(());
    }
    let bytes = make()?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| demo_error(&path.display().to_string(), e))
}

/// The file that marks a folder as a demo state folder: `varco demo` writes its configuration and
/// a DEMO IdP key into it, so it refuses any other non-empty folder (a production one, say).
const MARKER: &str = ".varco-demo";

fn claim_state_folder(state: &Path) -> Result<()> {
    let marker = state.join(MARKER);
    if marker.exists() {
        return Ok(());
    }
    let non_empty = std::fs::read_dir(state).is_ok_and(|mut d| d.next().is_some());
    if non_empty {
        return Err(Error::Demo(format!(
            "{} is not empty and not a demo state folder (no {MARKER}): choose another --state",
            state.display()
        )));
    }
    std::fs::create_dir_all(state).map_err(|e| demo_error(&state.display().to_string(), e))?;
    std::fs::write(
        &marker,
        "varco demo state: keys here are for the demo only\n",
    )
    .map_err(|e| demo_error(&marker.display().to_string(), e))
}

/// Creates what is missing in the state folder: SP key and certificate, the identity-JWT key,
/// the DEMO IdP's key and certificate.
fn keys(state: &Path) -> Result<()> {
    claim_state_folder(state)?;
    let mkdir =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| demo_error(&p.display().to_string(), e));
    mkdir(state)?;
    mkdir(&state.join("keys"))?;
    mkdir(&state.join("policies"))?;
    if !state.join("sp.key").exists() || !state.join("sp.crt").exists() {
        let (key, cert) = self_signed("varco demo SP")?;
        std::fs::write(state.join("sp.crt"), cert).map_err(|e| demo_error("sp.crt", e))?;
        let _ = std::fs::remove_file(state.join("sp.key"));
        write_once(&state.join("sp.key"), || Ok(key))?;
    }
    if !state.join("idp.key").exists() || !state.join("idp.crt").exists() {
        let (key, cert) = self_signed("varco DEMO IdP (non valido)")?;
        std::fs::write(state.join("idp.crt"), cert).map_err(|e| demo_error("idp.crt", e))?;
        let _ = std::fs::remove_file(state.join("idp.key"));
        write_once(&state.join("idp.key"), || Ok(key))?;
    }
    // The DEMO OpenID provider's signing key, and varco's key at it.
    for name in ["keys/oidc-op.pem", "keys/oidc-rp.pem"] {
        write_once(&state.join(name), || {
            Rsa::generate(2048)
                .and_then(|k| k.private_key_to_pem())
                .map_err(|e| demo_error("cannot generate an OpenID Connect key", e))
        })?;
    }
    write_once(&state.join("keys/audit.key"), || {
        let mut key = vec![0u8; 32];
        openssl::rand::rand_bytes(&mut key)
            .map_err(|e| demo_error("cannot generate the audit key", e))?;
        Ok(key)
    })?;
    write_once(&state.join("keys/jwt.pem"), || {
        PKey::generate_ed25519()
            .and_then(|k| k.private_key_to_pem_pkcs8())
            .map_err(|e| demo_error("cannot generate the JWT key", e))
    })
}

fn loopback_only(o: &Options) -> Result<()> {
    for a in [
        o.listen,
        o.admin,
        o.idp,
        o.backends[0],
        o.backends[1],
        o.backends[2],
    ] {
        if !a.ip().is_loopback() {
            return Err(Error::Demo(format!(
                "{a}: the demo listens on loopback addresses only (127.0.0.1 or ::1)"
            )));
        }
    }
    Ok(())
}

fn main_config(o: &Options) -> String {
    let portal = format!("http://{}", o.listen);
    let idp_origin = format!("http://{}", o.idp);
    format!(
        r#"# Written by `varco demo` on every start: edit the policies in examples/ instead.
[server]
listen = "{listen}"
admin_listen = "{admin}"
public_url = "{portal}"
upstream_connect_timeout = "2s"

[sp]
entity_id = "{portal}/.sso/metadata"
key = "sp.key"
cert = "sp.crt"
audit_key = "keys/audit.key"
organization = {{ name = "Provincia di Lucca (demo)", display_name = "Demo varco", url = "https://www.provincia.lucca.it" }}
contact = {{ ipa_code = "p_lu", email = "spid@provincia.lucca.example", public = true, municipality = "046017" }}

[[sp.attribute_set]]
index = 0
name = "Identità di base"
attributes = ["fiscalNumber", "name", "familyName"]

[[sp.attribute_set]]
index = 1
name = "Identità e contatti"
attributes = ["fiscalNumber", "name", "familyName", "email", "mobilePhone"]

[[idp]]
metadata = "idp-spid.xml"
kind = "spid"

[[idp]]
metadata = "idp-cie.xml"
kind = "cie"

[[oidc]]
issuer = "{oidc_issuer}"
client_id = "{client_id}"
key = "keys/oidc-rp.pem"
display_name = "DEMO OpenID (non valido)"
kind = "other"
scopes = ["openid", "profile", "email"]

[session]
store = "memory"

[policies]
dir = "policies"

[portal]
accessibility_url = "https://form.agid.gov.it/view/provincia-di-lucca-esempio"
privacy_url = "https://www.provincia.lucca.example/privacy"
# DEMO IdP: {idp_origin}/demo/spid and {idp_origin}/demo/cie; DEMO OpenID provider: {idp_origin}/demo/oidc
"#,
        listen = o.listen,
        admin = o.admin,
        oidc_issuer = op::Op::issuer(&idp_origin),
        client_id = op::CLIENT_ID,
    )
}

/// Prepares the state folder (keys, policies, the DEMO IdP's metadata, then the configuration that
/// trusts it); returns the main configuration's path.
fn prepare(o: &Options) -> Result<PathBuf> {
    loopback_only(o)?;
    keys(&o.state)?;
    let write = |name: &str, text: &str| {
        let p = o.state.join(name);
        std::fs::write(&p, text).map_err(|e| demo_error(&p.display().to_string(), e))
    };
    for (i, text) in POLICIES.iter().enumerate() {
        let text = text.replace(
            &format!("127.0.0.1:{}", 9101 + i),
            &o.backends[i].to_string(),
        );
        write(&format!("policies/{}.toml", COMUNI[i].0), &text)?;
    }
    let cert = read_cert(&o.state.join("idp.crt"))?;
    let der = cert.to_der().map_err(|e| demo_error("idp.crt", e))?;
    let der = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
    let origin = format!("http://{}", o.idp);
    write(
        "idp-spid.xml",
        &idp::metadata(&origin, idp::Kind::Spid, &der),
    )?;
    write("idp-cie.xml", &idp::metadata(&origin, idp::Kind::Cie, &der))?;
    write("varco.toml", &main_config(o))?;
    Ok(o.state.join("varco.toml"))
}

fn read_cert(path: &Path) -> Result<X509> {
    let pem = std::fs::read(path).map_err(|e| demo_error(&path.display().to_string(), e))?;
    X509::from_pem(&pem).map_err(|e| demo_error(&path.display().to_string(), e))
}

fn idp_setup(o: &Options) -> Result<idp::Setup> {
    let portal = format!("http://{}", o.listen);
    Ok(idp::Setup {
        origin: format!("http://{}", o.idp),
        sp_entity_id: format!("{portal}/.sso/metadata"),
        acs_url: format!("{portal}/.sso/acs"),
        slo_url: format!("{portal}/.sso/slo"),
        sp_cert: read_cert(&o.state.join("sp.crt"))?,
        key_pem: o.state.join("idp.key"),
        cert_pem: o.state.join("idp.crt"),
        // The SP as the configuration written above declares it.
        sp: policies::load(&o.state.join("varco.toml"))?
            .config
            .sp
            .clone(),
    })
}

/// Starts the DEMO IdP and the back-ends on a runtime of their own; returns once they listen.
fn start_helpers(o: &Options) -> Result<()> {
    let setup = idp_setup(o)?;
    let portal = format!("http://{}", o.listen);
    let op_setup = op::OpSetup {
        origin: format!("http://{}", o.idp),
        redirect_uri: format!("{portal}{}", idp_bridge::oidc::CALLBACK_PATH),
        logged_out_uri: format!("{portal}{}", idp_bridge::oidc::logout::LOGGED_OUT_PATH),
        key_pem: o.state.join("keys/oidc-op.pem"),
        rp_key_pem: o.state.join("keys/oidc-rp.pem"),
    };
    let jwt_pem =
        std::fs::read(o.state.join("keys/jwt.pem")).map_err(|e| demo_error("keys/jwt.pem", e))?;
    let jwt_key = PKey::private_key_from_pem(&jwt_pem)
        .and_then(|k| k.raw_public_key())
        .and_then(|raw| PKey::public_key_from_raw_bytes(&raw, openssl::pkey::Id::ED25519))
        .map_err(|e| demo_error("keys/jwt.pem", e))?;
    let (idp_addr, backs) = (o.idp, o.backends);
    let (tx, rx) = std::sync::mpsc::channel::<std::result::Result<(), String>>();
    std::thread::Builder::new()
        .name("varco-demo".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let bind = |a: SocketAddr| async move {
                    tokio::net::TcpListener::bind(a)
                        .await
                        .map_err(|e| format!("cannot listen on {a}: {e}"))
                };
                let mut listeners = Vec::new();
                for a in backs {
                    match bind(a).await {
                        Ok(l) => listeners.push(l),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                let idp_listener = match bind(idp_addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                for (l, (_, comune, ipa)) in listeners.into_iter().zip(COMUNI) {
                    tokio::spawn(backend::serve(
                        l,
                        backend::Backend {
                            comune: comune.into(),
                            ipa: ipa.into(),
                            portal: portal.clone(),
                            jwt_key: jwt_key.clone(),
                        },
                    ));
                }
                let _ = tx.send(Ok(()));
                if let Err(e) = idp::serve(idp_listener, setup, op_setup).await {
                    tracing::error!(error = %e, "the DEMO IdP stopped");
                }
            });
        })
        .map_err(|e| demo_error("cannot start the demo thread", e))?;
    rx.recv()
        .map_err(|e| demo_error("demo thread", e))?
        .map_err(Error::Demo)
}

/// Prepares the state, starts the DEMO IdP and back-ends, then serves the gateway until Ctrl-C.
pub fn run(o: &Options) -> Result<()> {
    let config = prepare(o)?;
    start_helpers(o)?;
    let portal = format!("http://{}", o.listen);
    #[allow(clippy::print_stdout)] // the URL to open is this command's output
    {
        println!(
            "\nvarco demo: open {portal}/ in a browser (Ctrl-C stops it)\n  \
DEMO identity provider: http://{idp}/ (test citizens, SPID errors nr19-nr25; and a DEMO OpenID provider)\n  \
back-ends of Capannori, Lucca, Porcari: {b0}, {b1}, {b2}\n  \
metrics: http://{admin}/metrics · state and keys: {state}\n",
            idp = o.idp,
            b0 = o.backends[0],
            b1 = o.backends[1],
            b2 = o.backends[2],
            admin = o.admin,
            state = o.state.display(),
        );
    }
    crate::server::run(&config, crate::server::Stop::Signals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> Options {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        Options {
            state: dir.to_path_buf(),
            listen: a(18080),
            admin: a(19090),
            idp: a(18081),
            backends: [a(19101), a(19102), a(19103)],
        }
    }

    #[test]
    fn the_state_folder_gives_a_valid_configuration_and_keeps_its_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = options(dir.path());
        let config = prepare(&o).expect("prepare");
        let snapshot = policies::load(&config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(snapshot.comuni.len(), 3);
        let identity = crate::runtime::Identity::build(&snapshot).expect("keys and IdPs load");
        let names: Vec<(String, policies::IdpKind)> = identity
            .idps
            .iter()
            .map(|i| (i.display_name.clone(), i.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("DEMO (non valido)".to_string(), policies::IdpKind::Spid),
                ("DEMO (non valido)".to_string(), policies::IdpKind::Cie)
            ]
        );
        let oidc: Vec<(&str, &str)> = identity
            .oidc
            .iter()
            .map(|p| (p.config.issuer.as_str(), p.config.display_name.as_str()))
            .collect();
        assert_eq!(
            oidc,
            [(
                "http://127.0.0.1:18081/demo/oidc",
                "DEMO OpenID (non valido)"
            )]
        );
        let key = std::fs::read(dir.path().join("sp.key")).expect("key");
        prepare(&o).expect("second start");
        assert_eq!(
            std::fs::read(dir.path().join("sp.key")).expect("key"),
            key,
            "keys are kept"
        );
        let upstreams: Vec<String> = snapshot
            .services()
            .map(|(_, _, s)| s.upstream.authority())
            .collect();
        assert!(
            upstreams.iter().all(|u| u.starts_with("127.0.0.1:1910")),
            "{upstreams:?}"
        );
    }

    #[test]
    fn a_folder_that_is_not_a_demo_state_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("varco.toml"), "# production").expect("write");
        let e = prepare(&options(dir.path())).expect_err("refused");
        assert!(e.to_string().contains("not a demo state folder"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("varco.toml")).expect("read"),
            "# production"
        );
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = options(dir.path());
        o.idp = SocketAddr::from(([0, 0, 0, 0], 18081));
        let e = prepare(&o).expect_err("refused");
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
