//! Writing XML by hand: escaping, and the signature template xmlsec fills in.
//!
//! SP metadata and requests are written as text rather than through samael's serializer, which
//! drops `ID` and `Signature`, cannot write `md:Extensions` and defaults to SHA-1 digests
//! (STACK.md §7).

use std::fmt::Write;

/// Escapes text for element content and double-quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// An enveloped-signature template over the element with `ID="{id}"`: RSA-SHA256, SHA-256
/// digest, exclusive canonicalisation, the signing certificate in `KeyInfo`.
pub(crate) fn signature_template(id: &str, cert_b64: &str) -> String {
    let mut s = String::with_capacity(1024 + cert_b64.len());
    let _ = write!(
        s,
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
<ds:SignedInfo>\
<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\
<ds:Reference URI=\"#{id}\">\
<ds:Transforms>\
<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
</ds:Transforms>\
<ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\
<ds:DigestValue></ds:DigestValue>\
</ds:Reference>\
</ds:SignedInfo>\
<ds:SignatureValue></ds:SignatureValue>\
<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\
</ds:Signature>"
    );
    s
}
