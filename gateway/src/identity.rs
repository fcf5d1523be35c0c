//! The identity headers a back-end receives for an allowed, logged-in request (CONTRACT.md
//! "Headers sent to back-ends"), built from the session's verified principal, only for the
//! attributes the service's policy lists. Names are parsed once per snapshot; values are encoded
//! so that no attribute can add a header or break framing.

use http::header::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use policies::{Attribute, Comune, Service};

use crate::explain::default_identity_header;

/// `X-Varco-Level`.
pub const X_VARCO_LEVEL: HeaderName = HeaderName::from_static("x-varco-level");
/// `X-Varco-Idp`.
pub const X_VARCO_IDP: HeaderName = HeaderName::from_static("x-varco-idp");
/// `X-Varco-Assertion`: the signed identity JWT.
pub const X_VARCO_ASSERTION: HeaderName = HeaderName::from_static("x-varco-assertion");
/// `X-Varco-Comune`.
pub const X_VARCO_COMUNE: HeaderName = HeaderName::from_static("x-varco-comune");

/// A service's identity headers, compiled.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    /// (header, attribute): the defaults for the listed attributes, then the service's mapping.
    attributes: Vec<(HeaderName, Attribute)>,
    /// Every attribute the policy lists: all the JWT may carry.
    released: Vec<Attribute>,
    comune: HeaderValue,
}

impl IdentityHeaders {
    /// Compiles the headers of `service` (names were validated by `policies`).
    pub fn compile(comune: &Comune, service: &Service) -> Self {
        let mut attributes = Vec::new();
        for a in &service.attributes {
            if let Some(name) =
                default_identity_header(*a).and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            {
                attributes.push((name, *a));
            }
        }
        for (name, a) in &service.headers {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                attributes.push((name, *a));
            }
        }
        let comune = HeaderValue::from_str(comune.ipa_code.as_str())
            .unwrap_or(HeaderValue::from_static("-"));
        Self {
            attributes,
            released: service.attributes.clone(),
            comune,
        }
    }

    /// The attributes the service's policy lists (the JWT carries these and no other).
    pub fn released(&self) -> &[Attribute] {
        &self.released
    }

    /// Sets the headers on the upstream request. Runs after every inbound copy was removed.
    pub fn inject(
        &self,
        up: &mut RequestHeader,
        principal: &idp_bridge::Principal,
    ) -> pingora::Result<()> {
        up.insert_header(X_VARCO_LEVEL, principal.level().as_str())?;
        up.insert_header(X_VARCO_IDP, encode(principal.idp()))?;
        up.insert_header(X_VARCO_COMUNE, self.comune.clone())?;
        for (name, attribute) in &self.attributes {
            if let Some(value) = principal.attribute(attribute.as_str()) {
                let value = if *attribute == Attribute::FiscalNumber {
                    fiscal_number(value)
                } else {
                    value.to_string()
                };
                up.insert_header(name.clone(), encode(&value))?;
            }
        }
        Ok(())
    }
}

/// The codice fiscale as back-ends expect it: upper case, without SPID's `TINIT-` prefix.
pub fn fiscal_number(raw: &str) -> String {
    let upper = raw.trim().to_ascii_uppercase();
    upper.strip_prefix("TINIT-").unwrap_or(&upper).to_string()
}

/// Printable ASCII stays as it is; every other byte (non-ASCII letters, CR, LF, controls) and `%`
/// itself are percent-encoded UTF-8, so back-ends decode values with a URL decoder.
pub fn encode(value: &str) -> HeaderValue {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).unwrap_or(HeaderValue::from_static(""))
}

/// Whether a cookie name is one of varco's (`varco_session`, `varco_login`, `varco_handoff`,
/// with or without a `__Host-`/`__Secure-` prefix), in any case: browsers have read prefixes
/// case-insensitively, and back-ends compare names in all sorts of ways.
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
    rest.len() >= 6 && rest[..6].eq_ignore_ascii_case(b"varco_")
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
    fn values_cannot_break_framing() {
        assert_eq!(encode("Mario").to_str().ok(), Some("Mario"));
        assert_eq!(encode("Niccolò").to_str().ok(), Some("Niccol%C3%B2"));
        assert_eq!(
            encode("a\r\nX-Varco-Level: SpidL3").to_str().ok(),
            Some("a%0D%0AX-Varco-Level: SpidL3")
        );
        assert_eq!(encode("100%").to_str().ok(), Some("100%25"));
        assert_eq!(
            fiscal_number(" tinit-rssmra80a01h501u "),
            "RSSMRA80A01H501U"
        );
        assert_eq!(fiscal_number("RSSMRA80A01H501U"), "RSSMRA80A01H501U");
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
