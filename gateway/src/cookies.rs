//! varco's cookies: one list of names ([`Cookie`]) for the ones it sets, the ones it reads, and
//! the ones it keeps from back-ends in both directions. Every name starts with `varco_`, and
//! every cookie in that namespace is varco's: a back-end never sees one, and never sets one.

use std::sync::Arc;

use http::header::HeaderValue;
use idp_bridge::BrowserBinding;
use pingora::http::RequestHeader;

use crate::runtime::Runtime;
use crate::state::Shared;
use crate::store::{Session, SessionId, StateStore as _, StoreResult};

/// The namespace of varco's cookie names.
pub const PREFIX: &str = "varco_";

/// One of varco's cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    /// The session: host-only on the portal (`__Host-` over https), or for the whole
    /// `cookie_domain` when one is configured (`__Secure-` over https, as `__Host-` forbids a
    /// Domain); host-only on a service host it was handed off to.
    Session,
    /// Binds pending logins to the browser, on the portal (`Path=/.sso/`).
    Login,
    /// Set by a service host when it sends a browser to log in, so that the one-time code
    /// bringing the session back can be redeemed by that browser only.
    Handoff,
}

impl Cookie {
    /// Every cookie varco sets.
    pub const ALL: [Cookie; 3] = [Cookie::Session, Cookie::Login, Cookie::Handoff];

    /// The name over plain http.
    pub const fn base(self) -> &'static str {
        match self {
            Cookie::Session => "varco_session",
            Cookie::Login => "varco_login",
            Cookie::Handoff => "varco_handoff",
        }
    }

    /// The name on a portal served over `https` (`domain`: set for a whole `cookie_domain`).
    pub const fn name(self, https: bool, domain: bool) -> &'static str {
        match (self, https, domain) {
            (c, false, _) => c.base(),
            (Cookie::Session, true, false) => "__Host-varco_session",
            (Cookie::Session, true, true) => "__Secure-varco_session",
            (Cookie::Login, true, _) => "__Secure-varco_login",
            (Cookie::Handoff, true, _) => "__Secure-varco_handoff",
        }
    }
}

/// The value of the cookie `name` the browser sent.
pub(crate) fn cookie_value<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The binding token in the browser's `cookie` (login or handoff), if well formed.
pub fn presented_binding(
    req: &RequestHeader,
    cookie: Cookie,
    https: bool,
) -> Option<BrowserBinding> {
    presented_cookie_binding(req, cookie.name(https, false))
}

/// A binding cookie (`name`) the browser sent, if well formed.
pub fn presented_cookie_binding(req: &RequestHeader, name: &str) -> Option<BrowserBinding> {
    cookie_value(req, name)
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(BrowserBinding::from_untrusted)
}

/// A binding cookie: `Path=/.sso/`, HttpOnly, for [`idp_bridge::LOGIN_TTL`] (set again, so
/// refreshed, at every login start), `SameSite=None; Secure` over https when the IdP's cross-site
/// POST must carry it, `Lax` otherwise.
pub(crate) fn binding_cookie(
    cookie: Cookie,
    binding: &BrowserBinding,
    https: bool,
    cross_site: bool,
) -> Option<HeaderValue> {
    let attrs = match (https, cross_site) {
        (true, true) => "; Secure; SameSite=None",
        (true, false) => "; Secure; SameSite=Lax",
        (false, _) => "; SameSite=Lax",
    };
    HeaderValue::from_str(&format!(
        "{}={}; Path=/.sso/; HttpOnly; Max-Age={}{attrs}",
        cookie.name(https, false),
        binding.secret(),
        idp_bridge::LOGIN_TTL.as_secs()
    ))
    .ok()
}

/// The session cookie for `id`: for the portal (and its `cookie_domain`), or host-only.
pub(crate) fn session_cookie(rt: &Runtime, id: &SessionId, host_only: bool) -> Option<HeaderValue> {
    HeaderValue::from_str(&session_cookie_text(rt, id.secret(), host_only, "")).ok()
}

/// The cookie that ends the portal's session in the browser.
pub(crate) fn clear_session_cookie(rt: &Runtime) -> HeaderValue {
    HeaderValue::from_str(&session_cookie_text(rt, "", false, "; Max-Age=0")).unwrap_or(
        HeaderValue::from_static("varco_session=; Path=/; Max-Age=0"),
    )
}

fn session_cookie_text(rt: &Runtime, value: &str, host_only: bool, extra: &str) -> String {
    let https = rt.snapshot.config.server.public_url.https;
    let domain = if host_only {
        None
    } else {
        rt.snapshot.config.session.cookie_domain.as_deref()
    };
    let secure = if https { "; Secure" } else { "" };
    let domain_attr = domain
        .map(|d| format!("; Domain={}", d.trim_start_matches('.')))
        .unwrap_or_default();
    format!(
        "{}={value}; Path=/{extra}; HttpOnly; SameSite=Lax{secure}{domain_attr}",
        Cookie::Session.name(https, domain.is_some()),
    )
}

/// Whether the portal's session cookie reaches `host`.
pub(crate) fn cookie_reaches(rt: &Runtime, host: &str) -> bool {
    let config = &rt.snapshot.config;
    host == config.server.public_url.host
        || config.session.cookie_domain.as_deref().is_some_and(|d| {
            let d = d.trim_start_matches('.');
            host == d || host.ends_with(&format!(".{d}"))
        })
}

/// The session the request's cookie names, if live.
pub(crate) async fn current_session(
    rt: &Runtime,
    shared: &Shared,
    req: &RequestHeader,
) -> StoreResult<Option<(SessionId, Arc<Session>)>> {
    let https = rt.snapshot.config.server.public_url.https;
    for name in [
        Cookie::Session.name(https, false),
        Cookie::Session.name(https, true),
    ] {
        let Some(id) = cookie_value(req, name).and_then(SessionId::from_untrusted) else {
            continue;
        };
        if let Some(s) = shared.store.session(&id).await? {
            return Ok(Some((id, s)));
        }
    }
    Ok(None)
}

/// Whether a cookie name is in varco's namespace (with or without a `__Host-`/`__Secure-`
/// prefix), in any case: browsers have read prefixes case-insensitively, and back-ends compare
/// names in all sorts of ways.
pub fn is_varco_cookie(name: &[u8]) -> bool {
    let mut rest = name.trim_ascii();
    loop {
        let lower = |p: &[u8]| rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p);
        if lower(b"__host-") {
            rest = &rest[7..];
        } else if lower(b"__secure-") {
            rest = &rest[9..];
        } else {
            break;
        }
    }
    let prefix = PREFIX.as_bytes();
    rest.len() >= prefix.len() && rest[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Whether a `Set-Cookie` value sets one of varco's cookies.
pub fn sets_varco_cookie(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    let name = bytes.split(|b| *b == b'=').next().unwrap_or(bytes);
    is_varco_cookie(name)
}

/// Removes varco's cookies from the upstream request's `Cookie` header(s).
pub fn strip_varco_cookies(up: &mut RequestHeader) -> pingora::Result<()> {
    let cookie = http::header::COOKIE;
    let has_one = up.headers.get_all(&cookie).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b';')
            .any(|c| is_varco_cookie(c.split(|b| *b == b'=').next().unwrap_or(c)))
    });
    if !has_one {
        return Ok(());
    }
    let kept: Vec<String> = up
        .headers
        .get_all(&cookie)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !is_varco_cookie(c.split('=').next().unwrap_or(c).as_bytes()))
        .map(String::from)
        .collect();
    up.remove_header(&cookie);
    if !kept.is_empty() {
        up.insert_header(cookie, kept.join("; "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cookie_varco_sets_is_in_its_namespace() {
        for c in Cookie::ALL {
            for (https, domain) in [(false, false), (true, false), (true, true)] {
                let name = c.name(https, domain);
                assert!(is_varco_cookie(name.as_bytes()), "{name}");
                assert!(name.ends_with(c.base()), "{name}");
            }
        }
    }

    #[test]
    fn every_spelling_of_a_varco_cookie_is_recognised() {
        for name in [
            "varco_session",
            "__Host-varco_session",
            "__HOST-VARCO_SESSION",
            "__secure-varco_login",
            "__Secure-__Host-varco_session",
            " varco_handoff",
            "Varco_Anything",
        ] {
            assert!(is_varco_cookie(name.as_bytes()), "{name}");
        }
        for name in [
            "varcosession",
            "my_varco_session",
            "__Host-other",
            "",
            "varco",
        ] {
            assert!(!is_varco_cookie(name.as_bytes()), "{name}");
        }
        let planted = HeaderValue::from_static("__Host-varco_session=x; Path=/; Secure");
        assert!(sets_varco_cookie(&planted));
        assert!(!sets_varco_cookie(&HeaderValue::from_static(
            "PHPSESSID=varco_session"
        )));
    }

    #[test]
    fn varco_cookies_never_reach_the_back_end() {
        let mut up = RequestHeader::build("GET", b"/", None).expect("request");
        up.append_header("cookie", "a=1; varco_session=secret; b=2")
            .expect("h");
        up.append_header("cookie", "varco_login=x").expect("h");
        strip_varco_cookies(&mut up).expect("strip");
        assert_eq!(
            up.headers.get("cookie").map(|v| v.as_bytes()),
            Some(&b"a=1; b=2"[..])
        );
        let mut only = RequestHeader::build("GET", b"/", None).expect("request");
        only.append_header("cookie", "__Host-varco_session=s")
            .expect("h");
        strip_varco_cookies(&mut only).expect("strip");
        assert!(only.headers.get("cookie").is_none());
    }
}
