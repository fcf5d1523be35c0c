//! Logs in to a running varco through the test IdP (spid-sp-test's, whose key is in
//! `idp-bridge/test_vectors/`) and prints the session cookie, so that a load test can send
//! authenticated requests. Benchmarks and tests only: it signs as the test IdP.
//!
//! `bench-login http://bench.localhost:18183 127.0.0.1:18183 http://bench.localhost:18183/auth/`
//!
//! An https portal URL is reached with the CA in `BENCH_CA` (a PEM file) trusted.

use std::io::Read as _;

use anyhow::{anyhow, Context as _};
use base64::Engine as _;
use idp_bridge::insecure_test_idp::{ResponseBuilder, TestIdpKey};

#[allow(clippy::print_stdout)] // the cookie is this tool's output
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, portal, addr, target] = &args[..] else {
        return Err(anyhow!("usage: bench-login PORTAL_URL ADDR TARGET_URL"));
    };
    let portal_url = url::Url::parse(portal)?;
    let host = portal_url
        .host_str()
        .ok_or_else(|| anyhow!("portal URL without host"))?
        .to_string();
    let addr: std::net::SocketAddr = addr.parse()?;
    let vectors = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../idp-bridge/test_vectors/spid-sp-test-idp");
    let key = TestIdpKey::from_pem(
        &std::fs::read(vectors.join("private.key"))?,
        &std::fs::read(vectors.join("public.cert"))?,
    )
    .map_err(|e| anyhow!(e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addr);
        if let Ok(ca) = std::env::var("BENCH_CA") {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca)?)?);
        }
        let c = b.build()?;
        let base = portal.trim_end_matches('/');
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let r = c
            .get(format!(
                "{base}/.sso/login?idp={}&return_to={}",
                enc("https://localhost:8443"),
                enc(target)
            ))
            .send()
            .await?;
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("no redirect to the IdP")?
            .to_string();
        let binding = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("no binding cookie")?
            .to_string();
        let query = location.split_once('?').context("no query")?.1;
        let request = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "SAMLRequest")
            .context("no SAMLRequest")?
            .1
            .into_owned();
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(
            &base64::engine::general_purpose::STANDARD.decode(request)?[..],
        )
        .read_to_string(&mut xml)?;
        let id = xml
            .split("ID=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .context("no ID")?;
        let entity = format!("{base}/.sso/metadata");
        let answer = ResponseBuilder::new(
            "https://localhost:8443",
            &entity,
            &format!("{base}/.sso/acs"),
            id,
        )
        .to_base64(&key)
        .map_err(|e| anyhow!(e))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", &answer)
            .finish();
        let r = c
            .post(format!("{base}/.sso/acs"))
            .header("cookie", binding)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        let session = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .context("login refused")?;
        println!("{session}");
        Ok(())
    })
}
