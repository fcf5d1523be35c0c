//! A scripted citizen: a browser-like client with a cookie jar that follows redirects, and a
//! scripted SPID IdP (the spid-sp-test IdP key) that answers each AuthnRequest it is sent to.

use std::io::Read as _;

use base64::Engine as _;
use idp_bridge::insecure_test_idp::{ResponseBuilder, TestIdpKey};
use policies::Level;

use crate::harness::*;

/// The test IdP's entityID (and where its SSO endpoint lives).
pub(crate) const IDP: &str = "https://localhost:8443";

/// The test IdP's signing key.
pub(crate) fn idp_key() -> TestIdpKey {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../idp-bridge/test_vectors/spid-sp-test-idp");
    TestIdpKey::from_pem(
        &std::fs::read(dir.join("private.key")).expect("key"),
        &std::fs::read(dir.join("public.cert")).expect("cert"),
    )
    .expect("key pair")
}

/// A query parameter of a URL, decoded.
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The XML of a SAML message sent by HTTP-Redirect: parameter `name` of `url`, base64, inflated.
pub(crate) fn saml_param(url: &str, name: &str) -> String {
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(query_param(url, name).unwrap_or_else(|| panic!("no {name} in {url}")))
        .expect("b64");
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .expect("inflate");
    xml
}

/// The value of the first `name="…"` attribute in `xml`.
pub(crate) fn xml_attr(xml: &str, name: &str) -> Option<String> {
    xml.split(&format!(" {name}=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(str::to_string)
}

/// `GET /.sso/session` on `host` of the instance at `port` with this cookie: the status.
pub(crate) async fn session_status(gw: &Gateway, port: u16, host: &str, cookie: &str) -> u16 {
    gw.client()
        .get(format!("http://{host}:{port}/.sso/session"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("send")
        .status()
        .as_u16()
}

/// What the scripted IdP answers.
#[derive(Debug, Clone)]
pub(crate) struct IdpScript {
    pub(crate) level: Level,
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) error_code: Option<u8>,
    pub(crate) name_id: String,
}

impl Default for IdpScript {
    fn default() -> Self {
        Self {
            level: Level::SpidL2,
            attributes: vec![
                ("fiscalNumber".into(), "TINIT-RSSMRA80A01H501U".into()),
                ("name".into(), "Mario".into()),
                ("familyName".into(), "Rossi".into()),
            ],
            error_code: None,
            name_id: "_citizen-mario".into(),
        }
    }
}

/// One AuthnRequest the IdP received.
#[derive(Debug, Clone)]
pub(crate) struct SeenRequest {
    pub(crate) xml: String,
}

impl SeenRequest {
    pub(crate) fn attr(&self, name: &str) -> Option<String> {
        xml_attr(&self.xml, name)
    }

    /// The SP entity that sent it (`saml:Issuer`).
    pub(crate) fn issuer(&self) -> Option<String> {
        let start = self.xml.find("<saml:Issuer")?;
        let rest = &self.xml[start..];
        let open = rest.find('>')? + 1;
        let close = rest.find("</saml:Issuer>")?;
        Some(rest[open..close].to_string())
    }
}

#[derive(Debug, Clone)]
struct Cookie {
    name: String,
    value: String,
    /// Host it was set by, or its Domain attribute (then `domain_match`).
    domain: String,
    domain_match: bool,
    path: String,
}

/// Where a visit ended.
#[derive(Debug)]
pub(crate) struct Landing {
    pub(crate) status: u16,
    pub(crate) url: String,
    pub(crate) body: String,
}

/// A browser: cookie jar, redirects, a scripted IdP.
pub(crate) struct Browser {
    client: reqwest::Client,
    jar: Vec<Cookie>,
    /// The IdP's next answers.
    pub(crate) idp: IdpScript,
    /// Every AuthnRequest the IdP saw.
    pub(crate) seen: Vec<SeenRequest>,
    /// Every `Set-Cookie` received, as sent.
    pub(crate) set_cookies: Vec<String>,
    /// The instance (port) each request goes to: the "load balancer".
    pub(crate) port: u16,
    /// When set, the IdP posts its answer to this instance instead.
    pub(crate) acs_port: Option<u16>,
    /// The portal's public origin (`http://portal.localhost:1234`), whatever instance serves it.
    public_origin: String,
    /// SP entities the IdP knows besides the portal's own (entityID, ACS URL), as their metadata
    /// registered them: the IdP answers the AuthnRequest's `Issuer` at that entity's ACS.
    pub(crate) sp_entities: Vec<(String, String)>,
}

fn host_of(url: &url::Url) -> String {
    url.host_str().unwrap_or("").to_ascii_lowercase()
}

impl Browser {
    /// A browser in front of `gw`.
    pub(crate) fn new(gw: &Gateway) -> Self {
        Self::with_origin(gw, &gw.url("portal.localhost", ""))
    }

    /// A browser in front of `gw` whose public origin is `origin` (TLS terminated, or a balancer).
    pub(crate) fn with_origin(gw: &Gateway, origin: &str) -> Self {
        Self {
            client: gw.client(),
            jar: Vec::new(),
            idp: IdpScript::default(),
            seen: Vec::new(),
            set_cookies: Vec::new(),
            port: gw.port,
            acs_port: None,
            public_origin: origin.to_string(),
            sp_entities: Vec::new(),
        }
    }

    /// The cookie value this browser holds for `host` under `name`.
    pub(crate) fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar
            .iter()
            .find(|c| c.name == name && self.matches(c, host, "/"))
            .map(|c| c.value.clone())
    }

    /// Replaces (or adds) a cookie for `host`, as a hostile page could.
    pub(crate) fn set_cookie(&mut self, host: &str, name: &str, value: &str) {
        self.jar.retain(|c| !(c.name == name && c.domain == host));
        self.jar.push(Cookie {
            name: name.into(),
            value: value.into(),
            domain: host.into(),
            domain_match: false,
            path: "/".into(),
        });
    }

    /// Forgets every cookie.
    pub(crate) fn clear_cookies(&mut self) {
        self.jar.clear();
    }

    fn matches(&self, c: &Cookie, host: &str, path: &str) -> bool {
        let host_ok = if c.domain_match {
            host == c.domain || host.ends_with(&format!(".{}", c.domain))
        } else {
            host == c.domain
        };
        host_ok && path.starts_with(&c.path)
    }

    fn cookie_header(&self, url: &url::Url) -> Option<String> {
        let host = host_of(url);
        let pairs: Vec<String> = self
            .jar
            .iter()
            .filter(|c| self.matches(c, &host, url.path()))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn store(&mut self, url: &url::Url, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().expect("ascii").to_string();
            self.set_cookies.push(v.clone());
            let mut parts = v.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let mut cookie = Cookie {
                name: name.into(),
                value: value.into(),
                domain: host_of(url),
                domain_match: false,
                path: "/".into(),
            };
            let mut delete = false;
            for attr in parts {
                let (k, val) = attr.split_once('=').unwrap_or((attr, ""));
                match k.to_ascii_lowercase().as_str() {
                    "domain" => {
                        cookie.domain = val.trim_start_matches('.').to_ascii_lowercase();
                        cookie.domain_match = true;
                    }
                    "path" => cookie.path = val.into(),
                    "max-age" if val == "0" => delete = true,
                    _ => {}
                }
            }
            self.jar
                .retain(|c| !(c.name == cookie.name && c.domain == cookie.domain));
            if !delete {
                self.jar.push(cookie);
            }
        }
    }

    /// The URL actually connected to: same host and path, over plain http, on the chosen instance.
    fn wire(&self, url: &url::Url, port: u16) -> url::Url {
        let mut w = url.clone();
        let _ = w.set_scheme("http");
        let _ = w.set_port(Some(port));
        w
    }

    /// One request, cookies in and out; no redirect followed.
    pub(crate) async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<String>,
        port: u16,
    ) -> reqwest::Response {
        self.send_as(method, url, form, port, false).await
    }

    /// [`Self::send`]; `cross_site`: the request comes from another site's page (the IdP's
    /// auto-posted form), so `SameSite=Lax` cookies (varco's session cookies) stay behind, as a
    /// browser leaves them.
    async fn send_as(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<String>,
        port: u16,
        cross_site: bool,
    ) -> reqwest::Response {
        let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        // The Host header is the URL's own, port included: the instance (port) connected to may
        // differ, as behind a port mapping or a load balancer.
        let host = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or("")),
            None => parsed.host_str().unwrap_or("").to_string(),
        };
        let mut rb = self
            .client
            .request(method, self.wire(&parsed, port).as_str())
            .header(reqwest::header::HOST, host);
        let cookies = self.cookie_header(&parsed).map(|h| {
            h.split("; ")
                .filter(|c| !(cross_site && c.contains("varco_session=")))
                .collect::<Vec<_>>()
                .join("; ")
        });
        if let Some(cookies) = cookies.filter(|c| !c.is_empty()) {
            rb = rb.header("cookie", cookies);
        }
        if let Some(body) = form {
            rb = rb
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let r = rb.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        self.store(&parsed, &r);
        r
    }

    /// Starts a login with the test IdP at the portal (returning to the portal's home): the URL
    /// at the IdP and the AuthnRequest's ID, which the IdP has not answered yet.
    pub(crate) async fn start_login(&mut self, gw: &Gateway) -> (String, String) {
        let r = self.get(&login_url(gw)).await;
        let at_idp = location_of(&r);
        let id = xml_attr(&saml_param(&at_idp, "SAMLRequest"), "ID").expect("ID");
        (at_idp, id)
    }

    /// GET one URL, no redirect followed.
    pub(crate) async fn get(&mut self, url: &str) -> reqwest::Response {
        let port = self.port;
        self.send(reqwest::Method::GET, url, None, port).await
    }

    /// Opens `url` and follows redirects, the choice page (picking the test IdP) and the IdP
    /// (answering as scripted) until a page that is not a redirect.
    pub(crate) async fn visit(&mut self, url: &str) -> Landing {
        let mut url = url.to_string();
        for _ in 0..16 {
            if url.starts_with(&format!("{IDP}/")) {
                match self.answer_at_idp(&url).await {
                    Ok(next) => {
                        url = next;
                        continue;
                    }
                    Err(refused) => return refused,
                }
            }
            let r = self.get(&url).await;
            let status = r.status().as_u16();
            if (300..400).contains(&status) {
                let next = location_of(&r);
                url = url::Url::parse(&url)
                    .and_then(|base| base.join(&next))
                    .expect("location")
                    .to_string();
                continue;
            }
            if let Some(next) = onward_of(&r) {
                // The page that answers a form POST goes on by `Refresh`, as a browser does.
                url = url::Url::parse(&url)
                    .and_then(|base| base.join(&next))
                    .expect("refresh")
                    .to_string();
                continue;
            }
            let body = r.text().await.expect("body");
            let choice = url.contains("/.sso/login") && !url.contains("idp=") && status == 200;
            if choice && body.contains("Entra con SPID") {
                let sep = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{sep}idp={}", enc(IDP));
                continue;
            }
            return Landing { status, url, body };
        }
        panic!("too many redirects from {url}");
    }

    /// The IdP's part: reads the AuthnRequest, posts the scripted answer to the ACS, returns where
    /// the ACS sends the browser, or the ACS's own page when it does not redirect.
    async fn answer_at_idp(&mut self, url: &str) -> Result<String, Landing> {
        let seen = SeenRequest {
            xml: saml_param(url, "SAMLRequest"),
        };
        let id = seen.attr("ID").expect("ID");
        let issuer = seen.issuer();
        self.seen.push(seen);
        let (audience, acs) = self
            .sp_entities
            .iter()
            .find(|(entity, _)| Some(entity.as_str()) == issuer.as_deref())
            .cloned()
            .unwrap_or_else(|| {
                (
                    "http://portal.localhost/.sso/metadata".to_string(),
                    format!("{}/.sso/acs", self.public_origin),
                )
            });
        let mut b = ResponseBuilder::new(IDP, &audience, &acs, &id);
        b.level = self.idp.level;
        b.attributes = self.idp.attributes.clone();
        b.error_code = self.idp.error_code;
        b.name_id = self.idp.name_id.clone();
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("SAMLResponse", &b.to_base64(&idp_key()).expect("sign"));
        if let Some(rs) = query_param(url, "RelayState") {
            form.append_pair("RelayState", &rs);
        }
        let port = self.acs_port.unwrap_or(self.port);
        let r = self
            .send_as(reqwest::Method::POST, &acs, Some(form.finish()), port, true)
            .await;
        if let Some(next) = onward_of(&r) {
            Ok(next)
        } else {
            Err(Landing {
                status: r.status().as_u16(),
                url: acs,
                body: r.text().await.expect("body"),
            })
        }
    }
}

/// `/.sso/login` with the test IdP, returning to the portal's home.
pub(crate) fn login_url(gw: &Gateway) -> String {
    gw.url(
        "portal.localhost",
        &format!(
            "/.sso/login?idp={}&return_to={}",
            enc(IDP),
            enc(&gw.url("portal.localhost", "/"))
        ),
    )
}

/// Form-encodes one value.
pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
