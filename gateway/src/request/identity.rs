//! The identity headers a back-end receives for an allowed, logged-in request (CONTRACT.md
//! "Headers sent to back-ends"), built from the session's verified principal, only for the
//! attributes the service's policy lists. Names are parsed once per snapshot; values are encoded
//! so that no attribute can add a header or break framing.

use http::header::{HeaderName, HeaderValue};
use policies::{Attribute, Comune, Service};

/// `X-Varco-Level`.
pub(crate) const X_VARCO_LEVEL: HeaderName = HeaderName::from_static("x-varco-level");
/// `X-Varco-Idp`.
pub(crate) const X_VARCO_IDP: HeaderName = HeaderName::from_static("x-varco-idp");
/// `X-Varco-Assertion`: the signed identity JWT.
pub(crate) const X_VARCO_ASSERTION: HeaderName = HeaderName::from_static("x-varco-assertion");
/// `X-Varco-Comune`.
pub(crate) const X_VARCO_COMUNE: HeaderName = HeaderName::from_static("x-varco-comune");

/// The default identity header for an attribute, when CONTRACT.md defines one.
pub(crate) fn default_identity_header(a: Attribute) -> Option<&'static str> {
    match a {
        Attribute::FiscalNumber => Some("X-Varco-Fiscal-Number"),
        Attribute::Name => Some("X-Varco-Name"),
        Attribute::FamilyName => Some("X-Varco-Family-Name"),
        Attribute::Email => Some("X-Varco-Email"),
        _ => None,
    }
}

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

    /// The headers for `principal`, in the order they are set on the upstream request (a later
    /// one of the same name replaces an earlier one), after every inbound copy was removed.
    pub fn values(&self, principal: &idp_bridge::Principal) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(4 + self.attributes.len());
        out.push((
            X_VARCO_LEVEL,
            HeaderValue::from_static(principal.level().as_str()),
        ));
        out.push((X_VARCO_IDP, encode(principal.idp())));
        out.push((X_VARCO_COMUNE, self.comune.clone()));
        for (name, attribute) in &self.attributes {
            if let Some(value) = principal.value_for_back_ends(*attribute) {
                out.push((name.clone(), encode(&value)));
            }
        }
        out
    }
}

/// Printable ASCII stays as it is; every other byte (non-ASCII letters, CR, LF, controls) and `%`
/// itself are percent-encoded UTF-8, so back-ends decode values with a URL decoder.
pub(crate) fn encode(value: &str) -> HeaderValue {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_break_framing() {
        assert_eq!(encode("Mario").to_str().ok(), Some("Mario"));
        assert_eq!(encode("Niccolò").to_str().ok(), Some("Niccol%C3%B2"));
        assert_eq!(
            encode("a\r\nX-Varco-Level: SpidL3").to_str().ok(),
            Some("a%0D%0AX-Varco-Level: SpidL3")
        );
        assert_eq!(encode("100%").to_str().ok(), Some("100%25"));
    }
}
